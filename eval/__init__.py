"""Runnable recipes that write runs and reports (`python eval/<name>.py` or `rkd bench|eval <name>`)."""
