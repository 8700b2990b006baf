"""Weighted RankNet: logistic loss on pairs the teacher orders, weighted by the teacher's probability gap."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from retrieval_kd.losses import register_loss
from retrieval_kd.losses._masked import check_target, masked_log_softmax


@register_loss("ranknet")
def ranknet(student, teacher, mask, labels=None, tau_t: float = 1.0, tau_s: float = 1.0, target: str = "scores",
            top: int = 16) -> torch.Tensor:
    """Σ w_ij log(1 + exp(-(s_i - s_j)/tau_s)) / Σ w_ij over pairs t_i > t_j, i among the teacher's `top`.

    w_ij = |p_i - p_j| with p = softmax(teacher/tau_t) over the candidates.
    """
    check_target("ranknet", target, probs_ok=False)
    k = min(int(top), mask.shape[1])
    t_masked = teacher.masked_fill(~mask, float("-inf"))
    t_i, i = t_masked.topk(k, dim=-1)  # [B, k]
    p = masked_log_softmax(teacher / tau_t, mask).exp()
    s_i = student.gather(1, i)
    p_i = p.gather(1, i)
    valid = (t_i[:, :, None] > teacher[:, None, :]) & mask[:, None, :] & torch.isfinite(t_i)[:, :, None]
    w = torch.where(valid, (p_i[:, :, None] - p[:, None, :]).abs(), torch.zeros((), device=p.device))
    pair = F.softplus(-(s_i[:, :, None] - student[:, None, :]) / tau_s)
    per_query = (w * pair).sum((1, 2)) / w.sum((1, 2)).clamp(min=1e-12)
    return per_query.mean()
