"""Where raw data, caches and the bundled models live."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def data_root() -> Path:
    """Raw collections: $RKD_DATA, else ../shared/data beside the checkout (or the cwd)."""
    env = os.environ.get("RKD_DATA")
    if env:
        return Path(env).expanduser().resolve()
    for base in (REPO_DIR, Path.cwd()):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand.resolve()
    return (REPO_DIR.parent / "shared" / "data").resolve()


def cache_root() -> Path:
    """Normalised datasets and teacher caches: $RKD_CACHE, else ~/.cache/retrieval_kd."""
    env = os.environ.get("RKD_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "retrieval_kd"
    root.mkdir(parents=True, exist_ok=True)
    return root
