"""Listwise distillation: ListNet cross-entropy and KL divergence (forward, reverse or symmetric)."""
from __future__ import annotations

import torch

from retrieval_kd.errors import ConfigError
from retrieval_kd.losses import register_loss
from retrieval_kd.losses._masked import masked_log_softmax, masked_sum


@register_loss("listnet")
def listnet(student, teacher, mask, labels=None, tau_t: float = 1.0, tau_s: float = 1.0) -> torch.Tensor:
    """Cross-entropy between softmax(teacher/tau_t) and softmax(student/tau_s) over each query's candidates."""
    p_t = masked_log_softmax(teacher / tau_t, mask).exp()
    log_p_s = masked_log_softmax(student / tau_s, mask)
    return -masked_sum(p_t * log_p_s, mask).mean()


@register_loss("kl")
def kl(student, teacher, mask, labels=None, tau_t: float = 1.0, tau_s: float = 1.0,
       direction: str = "forward") -> torch.Tensor:
    """KL(teacher || student) ('forward'), KL(student || teacher) ('reverse') or their mean ('symmetric')."""
    if direction not in {"forward", "reverse", "symmetric"}:
        raise ConfigError(f"loss.params.direction must be forward, reverse or symmetric, got {direction!r}")
    log_t = masked_log_softmax(teacher / tau_t, mask)
    log_s = masked_log_softmax(student / tau_s, mask)
    fwd = masked_sum(log_t.exp() * (log_t - log_s), mask).mean()
    rev = masked_sum(log_s.exp() * (log_s - log_t), mask).mean()
    return {"forward": fwd, "reverse": rev, "symmetric": 0.5 * (fwd + rev)}[direction]
