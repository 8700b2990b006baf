"""Each distillation loss on inputs small enough to check by hand."""
from __future__ import annotations

import math

import pytest
import torch

from retrieval_kd.errors import ConfigError
from retrieval_kd.losses import available, check_params, get_loss, make_loss

S = torch.tensor([[1.0, 0.0, 2.0]])
T = torch.tensor([[2.0, 1.0, 0.0]])
ALL = torch.ones_like(S, dtype=torch.bool)


def softmax(xs):
    z = sum(math.exp(x) for x in xs)
    return [math.exp(x) / z for x in xs]


def test_registry_names():
    assert available() == ["infonce", "kl", "listnet", "margin_mse", "mse", "ranknet"]
    with pytest.raises(ConfigError, match="loss.name"):
        get_loss("nope")
    with pytest.raises(ConfigError, match="loss.params.temperature"):
        check_params("listnet", {"temperature": 1})


def test_listnet_by_hand():
    p, q = softmax([2, 1, 0]), softmax([1, 0, 2])
    want = -sum(pi * math.log(qi) for pi, qi in zip(p, q))
    assert make_loss("listnet")(S, T, ALL).item() == pytest.approx(want, rel=1e-6)
    # separate temperatures: teacher /0.5, student /2
    p, q = softmax([4, 2, 0]), softmax([0.5, 0, 1])
    want = -sum(pi * math.log(qi) for pi, qi in zip(p, q))
    assert make_loss("listnet")(S, T, ALL, None, 0.5, 2.0).item() == pytest.approx(want, rel=1e-6)


def test_listnet_mask_drops_candidates():
    mask = torch.tensor([[True, True, False]])
    p, q = softmax([2, 1]), softmax([1, 0])
    want = -sum(pi * math.log(qi) for pi, qi in zip(p, q))
    got = make_loss("listnet")(S, T, mask)
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert torch.isfinite(got)


def test_kl_both_directions():
    p, q = softmax([2, 1, 0]), softmax([1, 0, 2])
    fwd = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    rev = sum(qi * math.log(qi / pi) for pi, qi in zip(p, q))
    assert make_loss("kl")(S, T, ALL).item() == pytest.approx(fwd, rel=1e-5)
    assert make_loss("kl", direction="reverse")(S, T, ALL).item() == pytest.approx(rev, rel=1e-5)
    assert make_loss("kl", direction="symmetric")(S, T, ALL).item() == pytest.approx((fwd + rev) / 2, rel=1e-5)
    assert make_loss("kl")(T, T, ALL).item() == pytest.approx(0.0, abs=1e-6)


def test_mse_and_margin_mse():
    assert make_loss("mse")(S, T, ALL).item() == pytest.approx((1 + 1 + 4) / 3)
    assert make_loss("mse")(S, T, ALL, None, 2.0, 1.0).item() == pytest.approx((0 + 0.25 + 4) / 3)
    # teacher's top is candidate 0: teacher margins (1, 2), student margins (1, -1)
    assert make_loss("margin_mse")(S, T, ALL).item() == pytest.approx((0 + 9) / 2)
    assert make_loss("margin_mse")(S + 5, T, ALL).item() == pytest.approx(4.5)  # shift-invariant


def test_ranknet_weighted_by_hand():
    p = softmax([2, 1, 0])
    pairs = [(0, 1), (0, 2), (1, 2)]  # teacher order 0 > 1 > 2
    s = [1.0, 0.0, 2.0]
    w = [abs(p[i] - p[j]) for i, j in pairs]
    lo = [math.log1p(math.exp(-(s[i] - s[j]))) for i, j in pairs]
    want = sum(a * b for a, b in zip(w, lo)) / sum(w)
    assert make_loss("ranknet")(S, T, ALL).item() == pytest.approx(want, rel=1e-6)
    only_top = make_loss("ranknet", top=1)(S, T, ALL).item()
    want1 = (w[0] * lo[0] + w[1] * lo[1]) / (w[0] + w[1])
    assert only_top == pytest.approx(want1, rel=1e-6)


def test_infonce_labels_and_fallback():
    q = softmax([1, 0, 2])
    labels = torch.tensor([[False, False, True]])
    assert make_loss("infonce")(S, T, ALL, labels).item() == pytest.approx(-math.log(q[2]), rel=1e-6)
    # no labels: the teacher's best (candidate 0) is the positive
    assert make_loss("infonce")(S, T, ALL).item() == pytest.approx(-math.log(q[0]), rel=1e-6)
    two = torch.tensor([[True, False, True]])
    assert make_loss("infonce")(S, T, ALL, two).item() == pytest.approx(-math.log(q[0] + q[2]), rel=1e-6)


@pytest.mark.parametrize("name", ["listnet", "kl", "mse", "margin_mse", "ranknet", "infonce"])
def test_gradient_moves_student_towards_teacher(name):
    s = S.clone().requires_grad_(True)
    loss = make_loss(name)(s, T, ALL)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    # descending the gradient must lower the loss (the student's order moves towards the teacher's)
    with torch.no_grad():
        after = make_loss(name)(s - 0.1 * s.grad, T, ALL)
    assert after.item() < loss.item()
