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


def runs_root() -> Path:
    """Where runs go: $RKD_RUNS, else ~/.local/share/retrieval_kd/runs ($XDG_DATA_HOME respected); never the clone."""
    env = os.environ.get("RKD_RUNS")
    if env:
        return Path(env).expanduser().resolve()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(data_home).expanduser() / "retrieval_kd" / "runs").resolve()


def run_path(path: str | Path) -> Path:
    """A run's folder: absolute paths and explicit relative ones (`./x`, `x`) stay; `runs/...` (every default in
    the configs and commands) lands under `runs_root()`, so nothing is written into the clone unless asked."""
    p = Path(path).expanduser()
    if p.is_absolute() or not p.parts or p.parts[0] != "runs":
        return p
    return runs_root().joinpath(*p.parts[1:])
