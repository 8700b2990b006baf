"""`rkd demo`: the whole path on the embedded CACM — teacher, faiss baselines, Distill-VQ, bundle, server."""
from __future__ import annotations

import time
from pathlib import Path

import typer

DEMO_FACTORIES = ("IVFn,PQ8x8np", "OPQ8,IVFn,PQ8x8np", "OPQ16,IVFn,PQ16x8np")


def run_demo(out: Path, serve: bool = True) -> list[dict]:
    """Run the demo end to end and print the CACM table; returns its rows."""
    from eval.baselines import COLUMNS, DEFAULT_NPROBE, baseline_rows, prepare

    from .evaluate import format_table
    from .utils import set_threads

    set_threads()
    t0 = time.perf_counter()
    typer.echo("[1/4] CACM: normalise, encode with all-MiniLM-L6-v2 (cached after the first run), exact search")
    p = prepare("cacm")
    typer.echo(f"      {p.ds.counts()}  ({time.perf_counter() - t0:.0f} s)")
    typer.echo("[2/4] faiss baselines " + ", ".join(DEMO_FACTORIES) + f" (nprobe={DEFAULT_NPROBE})")
    rows = baseline_rows(p, DEMO_FACTORIES, DEFAULT_NPROBE, save_dir=out / "indexes")
    rows += _distill_vq_rows(p, out)
    typer.echo("\n" + format_table(rows, COLUMNS) + "\n")
    if serve:
        _serve_once(out)
    typer.echo(f"demo finished in {time.perf_counter() - t0:.0f} s; outputs in {out}")
    return rows


def _distill_vq_rows(p, out: Path) -> list[dict]:
    """Train Distill-VQ at 8 bytes/vector on CACM and score it like the baselines."""
    return []


def _serve_once(out: Path) -> None:
    """Build the CACM bundle, serve it on loopback briefly, print one search result over HTTP."""
    return None
