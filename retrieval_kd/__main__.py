"""`python -m retrieval_kd` = `rkd`."""
from retrieval_kd.cli import main

main()
