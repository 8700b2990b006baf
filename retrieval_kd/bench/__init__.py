"""Benchmarks and evaluation recipes the CLI runs (`rkd bench ...`, `rkd eval ...`); each prints its table."""
