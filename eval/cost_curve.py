"""Distill-VQ cost curve (seconds per stage, peak RSS vs N): `python eval/cost_curve.py [options]` = `rkd bench cost-curve`."""
from retrieval_kd.cli import run_recipe

if __name__ == "__main__":
    run_recipe("bench", "cost-curve", prog="python eval/cost_curve.py")
