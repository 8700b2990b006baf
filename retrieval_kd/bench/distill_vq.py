"""Distill-VQ benchmark: exact teacher, faiss IVFPQ, faiss OPQ+IVFPQ and Distill-VQ variants on five collections.

    rkd bench vq [--datasets cacm,med] [--sizes 8,16] [--rows ivfpq,opq,listnet,...] [--out runs/bench_vq]
    python eval/distill_vq.py  (same options)

Every index uses nlist = √N and the same nprobe. Distill-VQ rows start from the OPQ+IVFPQ row's index (same seed)
and train on pseudo-queries only, so every real query is held out. Columns: nDCG@10 and R@100 against qrels
(judged held-out queries, binary measures at the dataset's rel_threshold), teacher-recall@10/@100 (share of the
exact teacher's top-k found, all held-out queries), bytes per vector (code size), training seconds (faiss build
+ distillation + export; encoding excluded), ms per query (faiss search, one query at a time, one thread).
Same-bytes peers (`bench/vq_peers.py`): ivfpq_fs (faiss PQ fast-scan), ivf_rq, ivf_lsq (additive quantizers), scann.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.bench.vq_peers import PEERS, peer_rows, scann_available
from retrieval_kd.paths import REPO_DIR, run_path

DATASETS = ("cacm", "med", "cisi", "cranfield", "cf", "scifact")
ROWS = ("ivfpq", "opq", "listnet", "listnet_opq", "kl", "margin_mse", "ivfpq_fs", "ivf_rq")
# Distill-VQ variants: name -> (label, --set overrides on top of configs/vq_<dataset>_<m>b.yaml)
VARIANTS = {
    "listnet": ("Distill-VQ (listnet)", []),
    "listnet_opq": ("Distill-VQ (listnet, learnable OPQ)", ["student.learn_opq=true"]),
    "kl": ("Distill-VQ (kl, reverse)", ["loss.name=kl", "loss.params.direction=reverse"]),
    "margin_mse": ("Distill-VQ (margin_mse)", ["loss.name=margin_mse"]),
    "ranknet": ("Distill-VQ (ranknet)", ["loss.name=ranknet"]),
    "mse": ("Distill-VQ (mse)", ["loss.name=mse"]),
    "infonce": ("Distill-VQ (infonce)", ["loss.name=infonce"]),
}
DEFAULT_NPROBE = 16
_NOTED: set[int] = set()  # code sizes whose recipe note was printed


def config_for(name: str, m: int, nprobe: int, extra: list[str]) -> Any:
    """The one recipe of every collection: configs/vq_<m>b.yaml (8 B's when there is none for m), plus overrides."""
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.distill_vq.config import VQConfig

    path = REPO_DIR / "configs" / f"vq_{m}b.yaml"
    base = path if path.exists() else REPO_DIR / "configs" / "vq_8b.yaml"
    if base != path and m not in _NOTED:
        _NOTED.add(m)
        print(f"note: no {path.name}; {m} bytes use the 8-byte recipe ({base.name}) with OPQ{m},IVFn,PQ{m}x8np",
              file=sys.stderr)
    sets = [f"dataset={name}", f"index.factory=OPQ{m},IVFn,PQ{m}x8np", f"index.nprobe={nprobe}",
            "output_dir=null", "train.progress=false", *extra]
    return load_config(base, VQConfig, sets)


def run_size(name: str, ds: Any, held: Any, m: int, rows: list[str], nprobe: int, seed: int, extra: list[str]) -> list[dict]:
    """Baseline and Distill-VQ rows of one dataset at PQ m x 8 (m bytes per vector)."""
    from retrieval_kd.index.faiss_ivfpq import FaissIndex
    from retrieval_kd.methods.distill_vq.trainer import DistillVQ

    out: list[dict] = []
    docs = held.exact.index.reconstruct_n(0, held.exact.index.ntotal)
    if "ivfpq" in rows:
        t0 = time.perf_counter()
        index = FaissIndex.build(docs, ds.doc_ids, f"IVFn,PQ{m}x8np", seed=seed)
        out.append(held.row("faiss IVFPQ", index, nprobe, time.perf_counter() - t0))
    recipe = config_for(name, m, nprobe, [f"seed={seed}", *extra]).index  # the start Distill-VQ trains from
    t0 = time.perf_counter()
    opq = FaissIndex.build(docs, ds.doc_ids, f"OPQ{m},IVFn,PQ{m}x8np", seed=seed, train_size=recipe.train_size,
                           opq_iterations=recipe.opq_iterations)
    opq_s = time.perf_counter() - t0
    if "opq" in rows:
        out.append(held.row("faiss OPQ+IVFPQ", opq, nprobe, opq_s))
    out += peer_rows(held, docs, ds.doc_ids, m, rows, nprobe, seed)  # checks bytes/vector == m
    for key in rows:
        if key not in VARIANTS:
            continue
        label, sets = VARIANTS[key]
        vq = DistillVQ(config_for(name, m, nprobe, [f"seed={seed}", *sets, *extra]))
        vq.fit(ds, start=opq)
        train_s = opq_s + vq.timings["run_s"]  # start + pseudo-query encoding + training + export
        out.append(held.row(label, vq.index, nprobe, train_s))
    for r in out:
        r["bytes/vec"] = m
    return out


def summary(rows: list[dict]) -> list[dict]:
    """Distill-VQ (listnet) minus faiss OPQ+IVFPQ in teacher-recall@10, against the issue's targets."""
    out = []
    get = {(r["dataset"], r["bytes/vec"], r["method"]): r for r in rows}
    for (name, m, method), r in get.items():
        if method != "Distill-VQ (listnet)" or (name, m, "faiss OPQ+IVFPQ") not in get:
            continue
        base = get[(name, m, "faiss OPQ+IVFPQ")]["TR@10"]
        target = {8: 0.05, 16: 0.03}.get(m)
        row = {"dataset": name, "bytes": m, "OPQ+IVFPQ TR@10": base, "Distill-VQ TR@10": r["TR@10"],
               "gain (points)": f"{100 * (r['TR@10'] - base):+.1f}",
               "target": f"+{int(100 * target)}" if target else "", "met": "" if target is None else
               ("yes" if r["TR@10"] - base >= target - 1e-9 else "no")}
        if m == 8 and (name, 16, "faiss OPQ+IVFPQ") in get:
            opq16 = get[(name, 16, "faiss OPQ+IVFPQ")]["TR@10"]
            row["8B Distill-VQ vs 16B OPQ (points)"] = f"{100 * (r['TR@10'] - opq16):+.1f}"
        out.append(row)
    return out


def plot(rows: list[dict], path: Path, name: str = "cacm") -> None:
    """Teacher-recall@10 vs bytes per vector for faiss OPQ+IVFPQ and Distill-VQ (listnet)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for method, style in (("faiss OPQ+IVFPQ", "o--"), ("Distill-VQ (listnet)", "s-")):
        pts = sorted((r["bytes/vec"], r["TR@10"]) for r in rows if r["dataset"] == name and r["method"] == method)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector")
    ax.set_ylabel("teacher-recall@10")
    ax.set_title(f"{name}: ranking like the MiniLM teacher")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


COLUMNS = ["dataset", "method", "bytes/vec", "nDCG@10", "R@100", "TR@10", "TR@100", "train s", "ms/query"]


def check_rows(rows: Sequence[str]) -> None:
    """Raise ConfigError naming the row keys that are neither a faiss baseline, a peer nor a Distill-VQ variant."""
    from retrieval_kd.errors import ConfigError

    unknown = set(rows) - {"ivfpq", "opq", *PEERS, *VARIANTS}
    if unknown:
        raise ConfigError(f"unknown rows: {', '.join(sorted(unknown))}")
    if "scann" in rows and not scann_available():
        raise ConfigError("row 'scann' needs the optional package scann (pip install scann)")


def dataset_rows(name: str, encoder: Any, sizes: Sequence[int], plot_sizes: Sequence[int], rows: Sequence[str],
                 nprobe: int, seed: int, sets: Sequence[str]) -> list[dict]:
    """The exact teacher row and every size's rows of one dataset (extra plot-only sizes on cacm)."""
    from retrieval_kd import datasets
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.methods.distill_vq.report import HeldOut

    ds = datasets.load(name)
    held = HeldOut.of(ds, encoder)
    exact = held.row("exact teacher", held.exact, None)
    exact["bytes/vec"] = held.exact.index.d * 4
    out = [exact]
    extra_sizes = [m for m in plot_sizes if name == "cacm" and m not in sizes]
    for m in [*sizes, *extra_sizes]:
        wanted = list(rows) if m in sizes else ["opq", "listnet"]
        new = run_size(name, ds, held, m, wanted, nprobe, seed, list(sets))
        for r in new:
            r["plot only"] = m not in sizes
        out += new
        print(format_table(new, COLUMNS), flush=True)
    return out


def run_distill_vq(datasets: Sequence[str] = DATASETS, sizes: Sequence[int] = (8, 16), rows: Sequence[str] = ROWS,
                   nprobe: int = DEFAULT_NPROBE, plot_sizes: Sequence[int] = (4, 8, 16, 32), seed: int = 0,
                   sets: Sequence[str] = (), out: str | Path = "runs/bench_vq",
                   threads: int | None = None) -> list[dict]:
    """Run the benchmark, print Markdown tables, write table.md, results.json and the plot under `out`."""
    from retrieval_kd.bench.report import write_results
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.teachers.dense import DenseEncoder
    from retrieval_kd.threads import set_threads
    from retrieval_kd.utils import run_info

    check_rows(rows)
    settings = {"datasets": ",".join(datasets), "sizes": ",".join(map(str, sizes)), "rows": ",".join(rows),
                "nprobe": nprobe, "plot_sizes": ",".join(map(str, plot_sizes)), "seed": seed, "sets": list(sets),
                "out": str(out), "threads": threads}
    set_threads(threads)
    out = run_path(out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = DenseEncoder()
    all_rows: list[dict] = []
    for name in datasets:
        all_rows += dataset_rows(name, encoder, sizes, plot_sizes, rows, nprobe, seed, sets)
    table = format_table([r for r in all_rows if not r.get("plot only")], COLUMNS)
    summ = summary(all_rows)
    summ_table = format_table(summ)
    (out / "table.md").write_text(f"nprobe = {nprobe}, nlist = √N\n\n{table}\n\n{summ_table}\n")
    if any(r["dataset"] == "cacm" for r in all_rows):
        plot(all_rows, out / "cacm_teacher_recall_vs_bytes.png")
    write_results(out, {"title": "rkd bench vq: Distill-VQ and same-bytes peers", "command": "rkd bench vq",
                        "rows": [r for r in all_rows if not r.get("plot only")], "columns": COLUMNS,
                        "all_rows": all_rows, "summary": summ, "run_info": run_info(settings), "plots": [],
                        "extra_plots": ["cacm_teacher_recall_vs_bytes.png"], "notes": [f"nprobe = {nprobe}, nlist = √N"]})
    print("\n" + table + "\n\n" + summ_table)
    print(json.dumps({"out": str(out)}))
    return all_rows


def trained_rows(vq: Any, ds: Any) -> list[dict]:
    """`rkd train vq`'s table: the start index and the trained one on the run's held-out real queries."""
    from retrieval_kd.methods.distill_vq.report import HeldOut

    held = HeldOut.of(ds, vq.encoder, vq.split["eval_qids"])
    nprobe, t = vq.config.index.nprobe, vq.timings
    q_emb = vq.encode_queries([ds.queries[q] for q in held.qids]) if vq.finetuned else None
    return [held.row(f"start {vq.start_index.factory}", vq.start_index, nprobe, t["faiss_build_s"], per_query=True),
            held.row(f"Distill-VQ ({vq.config.loss.name})", vq.index, nprobe, t["run_s"], q_emb, per_query=True)]


def train_results(vq: Any, ds: Any, rows: list[dict], command: str) -> dict:
    """results.json of a `rkd train vq` run (bench/report.py renders it)."""
    from retrieval_kd.utils import run_info

    val = vq.result.get("validation") or {}
    out = {"title": f"Distill-VQ {vq.config.index.factory} on {ds.name}", "command": command,
           "dataset": {"name": ds.name, "docs": len(ds.doc_ids), "queries": len(ds.queries),
                       "judged": sum(1 for q in ds.queries if ds.qrels.get(q))},
           "rows": rows, "columns": [c for c in COLUMNS if c != "dataset"],
           "training": {"loss_curve": vq.result.get("loss_curve", []), "validation": val},
           "timings": {k: round(v, 2) for k, v in vq.timings.items()}, "run_info": run_info(vq.config.model_dump()),
           "notes": [f"{vq.split['pseudo_queries']} pseudo-queries train (no labels); the real queries are held out"]}
    if len(rows) == 2:
        out["per_query"] = {"baseline": rows[0]["method"], "method": rows[1]["method"],
                            "values": {r["method"]: r.get("per-query TR@10", {}) for r in rows}}
    return out
