"""retrieval_kd: retrieval distillation — small, fast indexes and query encoders taught by strong teachers."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["DistillVQ", "datasets", "__version__"]


def __getattr__(name: str):
    # Lazy: keep `import retrieval_kd` (and `rkd --help`) free of torch/faiss imports.
    if name == "datasets":
        import importlib

        return importlib.import_module(f"{__name__}.datasets")  # `from . import` would recurse into __getattr__
    if name == "DistillVQ":
        from retrieval_kd.methods.distill_vq.trainer import DistillVQ

        return DistillVQ
    raise AttributeError(name)
