"""`datasets.load(name)`: the public entry point to the normalised collections."""
from retrieval_kd.data.dataset import Dataset
from retrieval_kd.data.registry import available, describe, load, prepare, register

__all__ = ["Dataset", "available", "describe", "load", "prepare", "register"]
