"""ONNX export (onnx.py, imports torch) and serving bundles (bundle.py, runtime.py, dense.py: torch-free)."""
