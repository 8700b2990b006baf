"""Run time, torch-free: bundle reader and manifest checks, ONNX runtimes, the searcher protocol, bundle kinds."""
