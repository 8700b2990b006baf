"""`datasets.load(name_or_path)`: the public entry point to the normalised collections.

`load` takes a registered name (`cacm`, `scifact`, … see `available()`), the name given to `rkd data import`, or
the path of any dataset folder (one with meta.json); an unknown name errors listing the known ones.
"""
from retrieval_kd.data.dataset import Dataset
from retrieval_kd.data.registry import available, describe, load, prepare, register

__all__ = ["Dataset", "available", "describe", "load", "prepare", "register"]
