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


def _disco_batch(seed: int = 0):
    """Student scores, a ragged candidate mask and a teacher distribution over it (0 outside), as DiSCo has."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(4, 7, generator=g) * 3
    mask = torch.rand(4, 7, generator=g) > 0.3
    mask[:, 0] = True
    p = torch.softmax(torch.randn(4, 7, generator=g).masked_fill(~mask, float("-inf")), -1)
    return s, mask, p


def test_kl_on_probabilities_is_discos_kl_exactly():
    s, m, p = _disco_batch()
    temp = 3.0
    s1, s2 = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    logq = torch.log_softmax(s1.masked_fill(~m, float("-inf")) / temp, dim=-1)
    disco = (p * (torch.log(p.clamp_min(1e-12)) - logq)).masked_fill(~m, 0).sum(-1).mean()
    ours = get_loss("kl")(s2, p, m, tau_s=temp, target="probs")
    assert torch.equal(disco, ours)
    disco.backward()
    ours.backward()
    assert torch.equal(s1.grad, s2.grad)
    assert make_loss("kl")(s, p, m, None, 1.0, temp, "probs").item() == ours.item()


def test_listwise_losses_take_scores_or_their_distribution():
    p = torch.softmax(T, -1)
    for name in ("listnet", "kl"):
        want = make_loss(name)(S, T, ALL).item()
        assert make_loss(name)(S, p, ALL, target="probs").item() == pytest.approx(want, rel=1e-6)
    q = softmax([1, 0, 2])
    want = -sum(pi * math.log(qi) for pi, qi in zip(p.tolist()[0], q))
    assert make_loss("listnet")(S, p, ALL, target="probs").item() == pytest.approx(want, rel=1e-6)
    rev = make_loss("kl", direction="reverse")
    assert rev(S, p, ALL, target="probs").item() == pytest.approx(rev(S, T, ALL).item(), rel=1e-5)


def test_infonce_is_discos_cross_entropy_on_the_target_argmax():
    import torch.nn.functional as F

    s, m, p = _disco_batch(1)
    disco = F.cross_entropy(s.masked_fill(~m, float("-inf")), p.argmax(-1))
    labels = torch.zeros_like(m).scatter(1, p.argmax(-1, keepdim=True), True)
    ours = get_loss("infonce")(s, p, m, labels, tau_s=1.0, target="probs")
    assert ours.item() == pytest.approx(disco.item(), rel=1e-6, abs=1e-7)
    assert get_loss("infonce")(s, p, m, target="probs").item() == pytest.approx(disco.item(), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name", ["mse", "margin_mse", "ranknet"])
def test_losses_needing_scores_refuse_probabilities(name):
    with pytest.raises(ConfigError, match=name):
        make_loss(name)(S, torch.softmax(T, -1), ALL, target="probs")
    with pytest.raises(ConfigError, match="target"):
        make_loss("listnet")(S, T, ALL, target="logits")


def test_regularizers_by_hand_and_families():
    q = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert get_loss("flops")(q).item() == pytest.approx(2.0**2 + 0 + 1.0**2)
    assert get_loss("l1")(q).item() == pytest.approx((3 + 3) / 2)
    assert available("regularizer") == ["flops", "l1"] and available("token") == ["weighted_bce"]
    assert get_loss("flops").family == "regularizer" and get_loss("kl").family == "ranking"
    with pytest.raises(ConfigError, match="not a ranking loss"):
        make_loss("flops")


def test_weighted_bce_is_the_taggers_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, generator=g)
    labels = torch.tensor([[1, 0, 0, -100, -100], [0, 1, 1, 0, -100], [1, 0, 0, 0, 0]])
    w = 1.0 + 3.0 * (torch.rand(3, 5, generator=g) > 0.5).float()
    pos_weight = torch.tensor(2.5)
    on = labels != -100
    fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    want = (fn(logits[on], labels[on].float()) * w[on]).sum() / w[on].sum()
    assert torch.equal(get_loss("weighted_bce")(logits, labels, w, pos_weight), want)
    # by hand on one token: -(pw·y·log σ(x) + (1-y)·log(1-σ(x)))
    x = torch.tensor([[0.3, -1.2]])
    y = torch.tensor([[1, 0]])
    sig = [1 / (1 + math.exp(-0.3)), 1 / (1 + math.exp(1.2))]
    by_hand = (-2.0 * math.log(sig[0]) - math.log(1 - sig[1])) / 2
    assert get_loss("weighted_bce")(x, y, None, 2.0).item() == pytest.approx(by_hand, rel=1e-6)
