"""`python -m retrieval_kd` = `rkd`."""
from .cli import main

main()
