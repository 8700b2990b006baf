"""InfoNCE: contrastive loss on labelled positives (or the teacher's top candidate when there are no labels)."""
from __future__ import annotations

import torch

from retrieval_kd.losses import register_loss
from retrieval_kd.losses._masked import check_target, masked_log_softmax


@register_loss("infonce")
def infonce(student, teacher, mask, labels=None, tau_t: float = 1.0, tau_s: float = 1.0,
            target: str = "scores") -> torch.Tensor:
    """-log Σ_pos softmax(student/tau_s) over the candidates; positives = labels, else the teacher's argmax.

    Only the teacher's order is used, so scores and probabilities (target="probs") alike are fine.
    """
    check_target("infonce", target, probs_ok=True)
    if labels is None or not bool((labels & mask).any(-1).all()):
        top = teacher.masked_fill(~mask, float("-inf")).argmax(-1, keepdim=True)
        fallback = torch.zeros_like(mask).scatter(1, top, True)
        labels = fallback if labels is None else torch.where((labels & mask).any(-1, keepdim=True), labels, fallback)
    log_p = masked_log_softmax(student / tau_s, mask)
    pos = labels & mask
    return -torch.logsumexp(log_p.masked_fill(~pos, float("-inf")), dim=-1).mean()
