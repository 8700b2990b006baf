"""Server benchmark (served vs in-process search): `python eval/server_bench.py [options]` = `rkd bench server`."""
from retrieval_kd.cli import run_recipe

if __name__ == "__main__":
    run_recipe("bench", "server", prog="python eval/server_bench.py")
