"""Distill-VQ benchmark vs faiss IVFPQ / OPQ+IVFPQ: `python eval/distill_vq.py [options]` = `rkd bench vq`."""
from retrieval_kd.cli import run_recipe

if __name__ == "__main__":
    run_recipe("bench", "vq", prog="python eval/distill_vq.py")
