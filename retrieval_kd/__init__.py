"""retrieval_kd: retrieval distillation — small, fast indexes and query encoders taught by strong teachers."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["DistillVQ", "datasets", "load", "__version__"]

# Lazy: `import retrieval_kd` (and `rkd --help`, and the server) stay free of torch/faiss imports.
_LAZY = {"DistillVQ": "retrieval_kd.methods.distill_vq.trainer:DistillVQ", "datasets": "retrieval_kd.datasets",
         "load": "retrieval_kd.artifacts:load"}


def __getattr__(name: str):
    if name in _LAZY:
        from retrieval_kd.registry import import_target

        return import_target(_LAZY[name])
    raise AttributeError(name)
