"""DiSCo vs rewrite baselines on CAsT 2021 + iKAT 2023: `python eval/cast.py [options]` = `rkd eval cast`."""
from retrieval_kd.cli import run_recipe

if __name__ == "__main__":
    run_recipe("eval", "cast", prog="python eval/cast.py")
