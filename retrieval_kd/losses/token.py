"""Token-level losses: the rewriter tagger's weighted binary cross-entropy on keep/drop labels."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from retrieval_kd.losses import TOKEN, register_loss


@register_loss("weighted_bce", family=TOKEN)
def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 pos_weight: torch.Tensor | float | None = None) -> torch.Tensor:
    """Σ w·BCEWithLogits(pos_weight) / Σ w over the labelled tokens (labels != -100); w = 1 without `weights`."""
    on = labels != -100
    w = torch.ones_like(logits) if weights is None else weights
    if pos_weight is not None:
        pos_weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    per_token = F.binary_cross_entropy_with_logits(logits[on], labels[on].to(logits.dtype), pos_weight=pos_weight,
                                                   reduction="none")
    return (per_token * w[on]).sum() / w[on].sum()
