"""Masked softmax helpers and the teacher-target contract shared by the ranking losses."""
from __future__ import annotations

import torch

from retrieval_kd.errors import ConfigError


def masked_log_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log softmax over the candidates of each row; -inf outside the mask."""
    return torch.log_softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row sums of `values` over the mask (entries outside ignored, even if inf/nan)."""
    return torch.where(mask, values, torch.zeros_like(values)).sum(-1)


def check_target(loss: str, target: str, probs_ok: bool) -> None:
    """ConfigError naming `loss` when `target` is unknown, or 'probs' for a loss that needs teacher scores."""
    if target not in ("scores", "probs"):
        raise ConfigError(f"loss {loss!r}: target must be 'scores' or 'probs', got {target!r}")
    if target == "probs" and not probs_ok:
        raise ConfigError(f"loss {loss!r} needs teacher scores; it cannot take teacher probabilities (target='probs')")


def teacher_distribution(loss: str, teacher: torch.Tensor, mask: torch.Tensor, tau_t: float,
                         target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(p, log p) of the teacher over each row's candidates: softmax(teacher / tau_t), or `teacher` itself."""
    check_target(loss, target, probs_ok=True)
    if target == "probs":
        return teacher, torch.log(teacher.clamp_min(1e-12))
    log_t = masked_log_softmax(teacher / tau_t, mask)
    return log_t.exp(), log_t
