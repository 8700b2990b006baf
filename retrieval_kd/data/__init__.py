"""Readers and writers only: raw collections -> one normalised Dataset form."""
from retrieval_kd.data.dataset import Dataset

__all__ = ["Dataset"]
