"""`python -m retrieval_kd.data build-demo [NAME...]`: regenerate the embedded demo collections from the raw data."""
import sys

from retrieval_kd.data.demo import NOTICES
from retrieval_kd.data.registry import build_demo

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "build-demo":
        sys.exit("usage: python -m retrieval_kd.data build-demo [NAME...]")
    for n in args[1:] or NOTICES:
        out = build_demo(n)
        print(f"{out}: {sum(p.stat().st_size for p in out.iterdir()):,} bytes")
