"""Masked softmax helpers shared by the losses."""
from __future__ import annotations

import torch


def masked_log_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log softmax over the candidates of each row; -inf outside the mask."""
    return torch.log_softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row sums of `values` over the mask (entries outside ignored, even if inf/nan)."""
    return torch.where(mask, values, torch.zeros_like(values)).sum(-1)
