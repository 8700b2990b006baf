"""Distillation losses by name in one lazy registry (`LOSSES`); four families, one signature contract each.

ranking (listnet, kl, mse, margin_mse, ranknet, infonce): scores over each query's candidates,
    fn(student [B, N], teacher [B, N], mask [B, N] bool (True = candidate), labels [B, N] bool | None
       (positives), tau_t, tau_s, target="scores", **params) -> scalar
    target="scores": the teacher gives scores; listwise losses compare with softmax(teacher / tau_t).
    target="probs": the teacher already is a distribution over each row's masked candidates (tau_t unused):
    listnet and kl use p and log(p.clamp_min(1e-12)) directly, infonce only its argmax; mse, margin_mse and
    ranknet need scores and refuse it (ConfigError naming the loss).
regularizer (flops, l1): on the student's non-negative sparse representations, fn(q [B, V]) -> scalar.
representation (vector_mse, vector_cosine): student and teacher vectors of the same query, fn(student [B, V],
    teacher [B, V]) -> scalar (DiSCo: SPLADE vectors of the conversation and of its rewrite).
token (weighted_bce): per-token logits, fn(logits [B, L], labels [B, L] (-100 = ignored), weights [B, L] | None,
    pos_weight) -> scalar.

Names resolve without importing torch (one small module per family is imported when a loss is first used).
`available`, `check_params` and `make_loss` concern the ranking family (what configs name); `get_loss` any loss.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from retrieval_kd.errors import ConfigError
from retrieval_kd.registry import LazyRegistry

RANKING, REGULARIZER, TOKEN, REPRESENTATION = "ranking", "regularizer", "token", "representation"
COMMON_ARGS = ("student", "teacher", "mask", "labels", "tau_t", "tau_s", "target")
CONTRACTS = {RANKING: COMMON_ARGS, REGULARIZER: ("q",), TOKEN: ("logits", "labels", "weights"),
             REPRESENTATION: ("student", "teacher")}
TARGETS = ("scores", "probs")

# name -> (module of this package that defines it, family)
_BUILTIN = {"listnet": ("listwise", RANKING), "kl": ("listwise", RANKING), "mse": ("pointwise", RANKING),
            "margin_mse": ("pointwise", RANKING), "ranknet": ("pairwise", RANKING),
            "infonce": ("contrastive", RANKING), "flops": ("regularizers", REGULARIZER),
            "l1": ("regularizers", REGULARIZER), "weighted_bce": ("token", TOKEN),
            "vector_mse": ("representation", REPRESENTATION), "vector_cosine": ("representation", REPRESENTATION)}
_FAMILY = {name: family for name, (_, family) in _BUILTIN.items()}
LOSSES = LazyRegistry("loss", targets={name: f"{__name__}.{mod}:{name}" for name, (mod, _) in _BUILTIN.items()},
                      error=ConfigError)


def register_loss(name: str, family: str = RANKING) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make a loss function of `family` available by name (it gets a `family` attribute)."""
    if family not in CONTRACTS:
        raise ConfigError(f"loss family must be one of {', '.join(CONTRACTS)}, got {family!r}")
    _FAMILY[name] = family
    return LOSSES.add(name, family=family)


def family_of(name: str) -> str:
    """The family of a registered loss name (ranking, regularizer or token)."""
    get_loss(name)
    return _FAMILY.get(name, RANKING)


def available(family: str = RANKING) -> list[str]:
    """All loss names of a family (by default the ranking losses a config may name)."""
    return [n for n in LOSSES.names() if _FAMILY.get(n, RANKING) == family]


def get_loss(name: str) -> Callable[..., Any]:
    """The loss function registered under `name` (ConfigError naming the known ones otherwise)."""
    try:
        return LOSSES.get(name)
    except ConfigError as e:
        raise ConfigError(f"loss.name: {e}") from None


def loss_params(name: str) -> dict[str, Any]:
    """Extra parameters a loss accepts beyond its family's contract, with their defaults."""
    contract = CONTRACTS[family_of(name)]
    sig = inspect.signature(get_loss(name))
    return {k: p.default for k, p in sig.parameters.items() if k not in contract}


def check_params(name: str, params: dict[str, Any]) -> None:
    """Raise ConfigError naming `loss.params.<key>` for a parameter the loss does not take."""
    known = loss_params(name)
    for key in params:
        if key not in known:
            raise ConfigError(f"loss.params.{key}: not a parameter of loss {name!r} (takes: {', '.join(known) or 'none'})")


def make_loss(name: str, **params: Any) -> Callable[..., Any]:
    """Bind a ranking loss's extra parameters: returns fn(student, teacher, mask, labels, tau_t, tau_s, target)."""
    if family_of(name) != RANKING:
        raise ConfigError(f"loss.name: {name!r} is a {family_of(name)} loss, not a ranking loss")
    check_params(name, params)
    fn = get_loss(name)
    return lambda student, teacher, mask, labels=None, tau_t=1.0, tau_s=1.0, target="scores": fn(
        student, teacher, mask, labels, tau_t, tau_s, target, **params
    )
