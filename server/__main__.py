"""`python -m server BUNDLE... --host 127.0.0.1 --port 8000` (torch-free entry point)."""
from .app import main

main()
