"""Baseline benchmark (exact MiniLM vs faiss IVF-PQ): `python eval/baselines.py [options]` = `rkd bench baselines`."""
from retrieval_kd.cli import run_recipe

if __name__ == "__main__":
    run_recipe("bench", "baselines", prog="python eval/baselines.py")
