"""Score regression: MSE on tempered scores and Margin-MSE on margins to the teacher's best candidate."""
from __future__ import annotations

import torch

from retrieval_kd.losses import register_loss
from retrieval_kd.losses._masked import check_target, masked_sum


@register_loss("mse")
def mse(student, teacher, mask, labels=None, tau_t: float = 1.0, tau_s: float = 1.0,
        target: str = "scores") -> torch.Tensor:
    """Mean over candidates of (student/tau_s - teacher/tau_t)^2."""
    check_target("mse", target, probs_ok=False)
    err = (student / tau_s - teacher / tau_t) ** 2
    return masked_sum(err, mask).sum() / mask.sum().clamp(min=1)


@register_loss("margin_mse")
def margin_mse(student, teacher, mask, labels=None, tau_t: float = 1.0, tau_s: float = 1.0,
               target: str = "scores") -> torch.Tensor:
    """Mean of (margin_s/tau_s - margin_t/tau_t)^2, margins taken from the teacher's top candidate to the others."""
    check_target("margin_mse", target, probs_ok=False)
    top = teacher.masked_fill(~mask, float("-inf")).argmax(-1, keepdim=True)
    m_t = teacher.gather(1, top) - teacher
    m_s = student.gather(1, top) - student
    others = mask & (torch.arange(mask.shape[1], device=mask.device)[None] != top)
    err = (m_s / tau_s - m_t / tau_t) ** 2
    return masked_sum(err, others).sum() / others.sum().clamp(min=1)
