"""Readers and writers only: raw collections -> one normalised Dataset form."""
from .dataset import Dataset

__all__ = ["Dataset"]
