"""Distillation losses by name: listnet, kl, mse, margin_mse, ranknet, infonce (one small file per family).

Every loss takes student and teacher scores [B, N] over candidates, a boolean `mask` [B, N] (True = candidate),
optional boolean `labels` [B, N] (positives), separate teacher and student temperatures, and returns a scalar.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from retrieval_kd.errors import ConfigError

# name -> module that defines it (imported lazily, so configs validate without importing torch)
_BUILTIN = {"listnet": "listwise", "kl": "listwise", "mse": "pointwise", "margin_mse": "pointwise",
            "ranknet": "pairwise", "infonce": "contrastive"}
_REGISTRY: dict[str, Callable[..., Any]] = {}
COMMON_ARGS = ("student", "teacher", "mask", "labels", "tau_t", "tau_s")


def register_loss(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make a loss function available by name."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = fn
        return fn

    return deco


def available() -> list[str]:
    """All loss names."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def get_loss(name: str) -> Callable[..., Any]:
    """The loss function registered under `name` (ConfigError naming the known ones otherwise)."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(f"{__name__}.{_BUILTIN[name]}")
    if name not in _REGISTRY:
        raise ConfigError(f"loss.name: unknown loss {name!r}; known: {', '.join(available())}")
    return _REGISTRY[name]


def loss_params(name: str) -> dict[str, Any]:
    """Extra parameters a loss accepts, with their defaults."""
    sig = inspect.signature(get_loss(name))
    return {k: p.default for k, p in sig.parameters.items() if k not in COMMON_ARGS}


def check_params(name: str, params: dict[str, Any]) -> None:
    """Raise ConfigError naming `loss.params.<key>` for a parameter the loss does not take."""
    known = loss_params(name)
    for key in params:
        if key not in known:
            raise ConfigError(f"loss.params.{key}: not a parameter of loss {name!r} (takes: {', '.join(known) or 'none'})")


def make_loss(name: str, **params: Any) -> Callable[..., Any]:
    """Bind a loss's extra parameters: returns fn(student, teacher, mask, labels, tau_t, tau_s)."""
    check_params(name, params)
    fn = get_loss(name)
    return lambda student, teacher, mask, labels=None, tau_t=1.0, tau_s=1.0: fn(
        student, teacher, mask, labels, tau_t, tau_s, **params
    )
