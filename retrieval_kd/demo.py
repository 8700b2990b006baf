"""`rkd demo`: the whole path on the embedded CACM — teacher, faiss baselines, Distill-VQ, bundle, server."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from retrieval_kd.bench.baselines import Prepared

DEMO_FACTORIES = ("IVFn,PQ8x8np", "OPQ8,IVFn,PQ8x8np", "OPQ16,IVFn,PQ16x8np")
DEMO_NPROBE = 16  # the Distill-VQ configs' nprobe: every row of the demo table searches the same lists


def run_demo(out: Path, serve: bool = True) -> list[dict]:
    """Run the demo end to end and print the CACM table; returns its rows."""
    from retrieval_kd.bench.baselines import COLUMNS, baseline_rows, prepare
    from retrieval_kd.bench.report import write_results
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.paths import run_path
    from retrieval_kd.threads import set_threads

    set_threads()
    out = run_path(out)
    t0 = time.perf_counter()
    typer.echo("[1/4] CACM: normalise, encode with all-MiniLM-L6-v2 (cached after the first run), exact search")
    p = prepare("cacm")
    typer.echo(f"      {p.ds.counts()}  ({time.perf_counter() - t0:.0f} s)")
    typer.echo("[2/4] faiss baselines " + ", ".join(DEMO_FACTORIES) + f" (nprobe={DEMO_NPROBE})")
    rows = baseline_rows(p, DEMO_FACTORIES, DEMO_NPROBE, save_dir=out / "indexes")
    vq_rows, vq_dir, training = _distill_vq_rows(p, out, DEMO_NPROBE)
    rows += vq_rows
    typer.echo("\n" + format_table(rows, COLUMNS) + "\n")
    write_results(out, {"title": "rkd demo: CACM, faiss baselines and Distill-VQ at 8 bytes", "command": "rkd demo",
                        "dataset": {"name": "cacm", "docs": len(p.ds.doc_ids), "queries": len(p.ds.queries),
                                    "judged": len(p.ds.judged_queries())},
                        "rows": [_report_row(r) for r in rows], "columns": COLUMNS, "training": training})
    if serve:
        _serve_once(out, vq_dir or out / "indexes" / "cacm" / DEMO_FACTORIES[1].replace(",", "_"))
    typer.echo(f"demo finished in {time.perf_counter() - t0:.0f} s; outputs in {out}")
    return rows


def _distill_vq_rows(p: Prepared, out: Path, nprobe: int) -> tuple[list[dict], Path | None, dict]:
    """Train Distill-VQ at 8 bytes/vector on CACM (from the OPQ8 baseline) and score it like the baselines."""
    from retrieval_kd.bench.baselines import ms_per_query, score_run
    from retrieval_kd.index import FaissIndex
    from retrieval_kd.methods.distill_vq.trainer import DistillVQ
    from retrieval_kd.paths import REPO_DIR

    cfg = REPO_DIR / "configs" / "vq_8b.yaml"
    sets = [f"output_dir={out / 'vq-work'}", f"index.nprobe={nprobe}", "train.progress=true"]
    vq = DistillVQ.from_config(cfg, sets) if cfg.exists() else DistillVQ({"dataset": "cacm", **_flat(sets)})
    typer.echo(f"[3/4] Distill-VQ ({vq.config.index.factory}, loss {vq.config.loss.name}, trained on pseudo-queries, "
               "early-stopped on held-out ones; real queries held out)")
    start = FaissIndex.load(out / "indexes" / "cacm" / vq.config.index.factory.replace(",", "_"))
    vq.fit(p.ds, start=start)
    dest = vq.save(out / "distill-vq-8b")
    run = vq.index.search_run(p.qids, p.q_emb, 100, nprobe)
    t = vq.timings
    val = vq.result.get("validation") or {}
    if val:
        typer.echo(f"      held-out pseudo-queries TR@10: start {val['start_tr10']:.3f} -> best {val['best_tr10']:.3f} "
                   f"at step {val['best_step']} of {vq.result['steps']}" + (" (the start is kept)" if val["kept_start"]
                                                                           else ""))
    typer.echo(f"      trained in {t['train_s']:.0f} s; whole run {t['run_s']:.0f} s without teacher document encoding")
    row = score_run(p, run, f"Distill-VQ {vq.index.factory} np={nprobe}", bytes=vq.index.bytes_per_vector,
                    ms_q=ms_per_query(vq.index, p.q_emb, 100, nprobe), build_s=t["run_s"])
    return [row], dest, {"loss_curve": vq.result.get("loss_curve", []), "validation": val}


def _report_row(row: dict) -> dict:
    """A demo table row with the keys the report's recall-vs-bytes plot reads."""
    name = row["index"]
    family = ("Distill-VQ" if name.startswith("Distill-VQ") else "faiss OPQ+IVFPQ" if "OPQ" in name
              else "faiss IVFPQ" if "PQ" in name else "exact")
    return {**row, "method": name, "bytes/vec": row["bytes"], "TR@10": row["teacher-R@10"], "family": family}


def _flat(sets: list[str]) -> dict:
    """--set style overrides as a nested config dict."""
    from retrieval_kd.config import parse_overrides

    return parse_overrides(sets)


def _serve_once(out: Path, index_dir: Path) -> None:
    """Build the CACM bundle, serve it on loopback briefly, print one search result over HTTP."""
    from retrieval_kd.export.dense import build_bundle
    from retrieval_kd.quickstart import query_once

    bundle = out / "bundle-cacm"
    typer.echo(f"[4/4] bundle {bundle} from {index_dir} (ONNX encoder, parity-checked), served on loopback")
    build_bundle(index_dir, bundle, name="cacm")
    query_once(bundle, "parallel sorting algorithms", k=3)
    typer.echo(f"      browse it: rkd serve {bundle}  ->  search page: http://127.0.0.1:8000/")
