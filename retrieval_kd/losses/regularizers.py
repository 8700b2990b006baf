"""Sparsity regularizers of SPLADE-like representations q [B, V] (non-negative term weights per query)."""
from __future__ import annotations

import torch

from retrieval_kd.losses import REGULARIZER, register_loss


@register_loss("flops", family=REGULARIZER)
def flops(q: torch.Tensor) -> torch.Tensor:
    """FLOPS (Paria et al., ICLR 2020): Σ_v (mean over the batch of q_v)², a smooth proxy of posting-list work."""
    return (q.mean(0) ** 2).sum()


@register_loss("l1", family=REGULARIZER)
def l1(q: torch.Tensor) -> torch.Tensor:
    """Mean L1 norm of the rows (q ≥ 0, so the row sum)."""
    return q.sum(-1).mean()
