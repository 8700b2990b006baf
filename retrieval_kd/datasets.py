"""`datasets.load(name)`: the public entry point to the normalised collections."""
from .data.dataset import Dataset
from .data.registry import available, describe, load, prepare, register

__all__ = ["Dataset", "available", "describe", "load", "prepare", "register"]
