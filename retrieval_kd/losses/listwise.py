"""Listwise distillation: ListNet cross-entropy and KL divergence (forward, reverse or symmetric).

Both take the teacher as scores (softmax(teacher / tau_t)) or, with target="probs", as a distribution.
"""
from __future__ import annotations

import torch

from retrieval_kd.errors import ConfigError
from retrieval_kd.losses import register_loss
from retrieval_kd.losses._masked import masked_log_softmax, masked_sum, teacher_distribution


@register_loss("listnet")
def listnet(student, teacher, mask, labels=None, tau_t: float = 1.0, tau_s: float = 1.0,
            target: str = "scores") -> torch.Tensor:
    """Cross-entropy between the teacher's distribution and softmax(student/tau_s) over each query's candidates."""
    p_t, _ = teacher_distribution("listnet", teacher, mask, tau_t, target)
    log_p_s = masked_log_softmax(student / tau_s, mask)
    return -masked_sum(p_t * log_p_s, mask).mean()


@register_loss("kl")
def kl(student, teacher, mask, labels=None, tau_t: float = 1.0, tau_s: float = 1.0, target: str = "scores",
       direction: str = "forward") -> torch.Tensor:
    """KL(teacher || student) ('forward'), KL(student || teacher) ('reverse') or their mean ('symmetric')."""
    if direction not in {"forward", "reverse", "symmetric"}:
        raise ConfigError(f"loss.params.direction must be forward, reverse or symmetric, got {direction!r}")
    p_t, log_t = teacher_distribution("kl", teacher, mask, tau_t, target)
    log_s = masked_log_softmax(student / tau_s, mask)
    forward = direction in {"forward", "symmetric"}
    reverse = direction in {"reverse", "symmetric"}
    fwd = masked_sum(p_t * (log_t - log_s), mask).mean() if forward else None
    rev = masked_sum(log_s.exp() * (log_s - log_t), mask).mean() if reverse else None
    if not reverse:
        return fwd
    return rev if not forward else 0.5 * (fwd + rev)
