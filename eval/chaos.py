"""Soak + chaos benchmark of the server: `python eval/chaos.py [options]` = `rkd bench chaos`."""
from retrieval_kd.cli import run_recipe

if __name__ == "__main__":
    run_recipe("bench", "chaos", prog="python eval/chaos.py")
