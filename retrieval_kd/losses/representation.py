"""Representation-level distillation (ConvDR-style): the student's vector of the conversation towards the
teacher's vector of the rewrite, fn(student [B, V], teacher [B, V]) -> scalar (here SPLADE term weights)."""
from __future__ import annotations

import torch

from retrieval_kd.losses import REPRESENTATION, register_loss


@register_loss("vector_mse", family=REPRESENTATION)
def vector_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Σ_v (s_v - t_v)² per row, averaged over the batch (ConvDR's MSE on the query embeddings)."""
    return ((student - teacher) ** 2).sum(-1).mean()


@register_loss("vector_cosine", family=REPRESENTATION)
def vector_cosine(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """1 - cos(s, t) per row, averaged over the batch (scale-free: only the direction is taught)."""
    return (1 - torch.nn.functional.cosine_similarity(student, teacher, dim=-1, eps=1e-8)).mean()
