"""Distill-VQ cost curve: seconds per stage and peak RSS vs collection size on synthetic clustered vectors.

    rkd bench cost-curve [--sizes 10000,100000,1000000] [--queries 50000] [--steps 50] [--out runs/bench_cost]
    python eval/cost_curve.py  (same options)

Each size N runs in a fresh process (so its RSS is its own): unit vectors from an anisotropic Gaussian mixture
with clusters of varying size (weights ∝ rank^-0.5), training and evaluation queries that are noisy copies of
random documents, then the timed stages on the given float32 embeddings: teacher top-K of the training queries
(`retrieval_kd.index.topk.teacher_topk`: exact in document chunks up to ANN_ABOVE_PAIRS query·document pairs),
the faiss start (OPQm,IVF√N,PQmx8 trained on a sample, read into the torch student), `--steps` training steps of
the library's loop, and the export to faiss. Peak RSS per stage comes from a thread sampling VmRSS. Writes
table.md, results.json and cost_curve.png (log-log) to --out.
"""
from __future__ import annotations

import contextlib
import math
import resource
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.index.topk import ANN_ABOVE_PAIRS
from retrieval_kd.methods.distill_vq.config import IndexConfig
from retrieval_kd.paths import run_path

COLUMNS = ("N", "top-K s", "start s", "s/step", "export s", "total s", "peak RSS GB")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
STAGES = ("topk", "start", "train", "export")  # the timed stages; "data" (generation) is not counted
EVAL_QUERIES = 500
CLUSTERS, SKEW, NOISE = 1000, 0.5, 0.6


OPQ_ITERATIONS = IndexConfig().opq_iterations  # the Distill-VQ recipe's start


def synthetic(n: int, d: int, seed: int, clusters: int = 2000, skew: float = 0.0, chunk: int = 262144) -> np.ndarray:
    """Unit vectors from an anisotropic Gaussian mixture (so OPQ and PQ both matter); cluster weights ∝ rank^-skew."""
    import torch

    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(1.5, 0.2, d)
    centers = torch.randn(clusters, d, generator=g) * scale
    weights = torch.arange(1, clusters + 1, dtype=torch.float64) ** -skew if skew else None
    out = torch.empty(n, d)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        if weights is None:
            c = torch.randint(0, clusters, (m,), generator=g)
        else:
            c = torch.multinomial(weights, m, replacement=True, generator=g)
        out[s : s + m] = centers[c] + 0.8 * torch.randn(m, d, generator=g) * scale
    return torch.nn.functional.normalize(out, dim=1).numpy()


def noisy_copies(x: np.ndarray, m: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Queries near random documents: (queries, source rows)."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(x), m)
    q = x[src] + noise * rng.standard_normal((m, x.shape[1])).astype(np.float32) / np.sqrt(x.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32), src


def vm_rss() -> int:
    """Resident set size of this process in bytes (/proc/self/status VmRSS; the lifetime peak elsewhere)."""
    with contextlib.suppress(OSError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RSSMonitor:
    """A thread sampling VmRSS every `interval` seconds; `stage(name)` records a stage's seconds and peak RSS."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.stages, self._peak = interval, {}, vm_rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, vm_rss())

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block; its peak RSS is the highest sample between its start and end."""
        self._peak = vm_rss()
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        self.stages[name] = {"s": seconds, "peak_gb": max(self._peak, vm_rss()) / 2**30}

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _per_step(marks: list[tuple[int, float]], fallback: float) -> float:
    """Median seconds per step between successive log records (the first record, with warm-up, dropped)."""
    rates = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(marks, marks[1:]) if s1 > s0]
    return float(np.median(rates)) if rates else fallback


def train_steps(student: Any, x: Any, q: np.ndarray, topk: np.ndarray, src: np.ndarray, cfg: dict) -> dict:
    """`cfg["steps"]` steps of the library's Distill-VQ loop; seconds per step, setup seconds, last loss."""
    import torch

    from retrieval_kd.methods.distill_vq.config import VQConfig
    from retrieval_kd.methods.distill_vq.loop import TrainData, fit_loop

    data = TrainData(x, torch.from_numpy(q), torch.from_numpy(topk), [np.array([s]) for s in src])
    vq = VQConfig.model_validate({"seed": cfg["seed"], "candidates": {"top_k": cfg["top_k"]},
                                  "train": {"batch_size": cfg["batch"], "steps": cfg["steps"], "progress": False}})
    marks: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    out = fit_loop(student, data, vq, hooks=[lambda rec: marks.append((rec["step"], time.perf_counter()))])
    total = time.perf_counter() - t0
    loop_s = float(out.get("seconds", total))
    return {"s_per_step": _per_step(marks, loop_s / max(1, out["steps"])), "train_setup_s": total - loop_s,
            "steps": out["steps"], "last_loss": out["last"].get("loss")}


def _teacher_recall(index: Any, q: np.ndarray, exact: np.ndarray, nprobe: int) -> float:
    """Teacher-recall@10 of a faiss IVF index at `nprobe`."""
    import faiss

    from retrieval_kd.index.topk import recall_at_k

    faiss.extract_index_ivf(index).nprobe = nprobe
    return recall_at_k(index.search(q, 10)[1], exact, 10)


def _data(n: int, cfg: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Documents, training queries with their source rows, evaluation queries."""
    x = synthetic(n, cfg["dim"], cfg["seed"], clusters=CLUSTERS, skew=SKEW, chunk=65536)
    q, src = noisy_copies(x, cfg["queries"], NOISE, cfg["seed"] + 1)
    q_eval, _ = noisy_copies(x, EVAL_QUERIES, NOISE, cfg["seed"] + 2)
    return x, q, src, q_eval


def run_size(n: int, cfg: dict) -> dict:
    """Every stage at one collection size (run it in a fresh process for a clean RSS); one result row."""
    import torch

    from retrieval_kd.index.faiss_ivfpq import FaissIndex
    from retrieval_kd.index.topk import exact_topk, teacher_topk, uses_ann
    from retrieval_kd.methods.distill_vq.student import VQStudent
    from retrieval_kd.threads import set_threads

    threads = set_threads(cfg["threads"])
    base_gb = vm_rss() / 2**30
    mon = RSSMonitor()
    with mon.stage("data"):
        x, q, src, q_eval = _data(n, cfg)
    with mon.stage("topk"):
        _, topk = teacher_topk(q, x, cfg["top_k"], ann_above=cfg["ann_above"])
    factory = f"OPQ{cfg['m']},IVF{max(1, round(math.sqrt(n)))},PQ{cfg['m']}x8np"
    with mon.stage("start"):
        start = FaissIndex.build(x, [str(i) for i in range(n)], factory, seed=cfg["seed"],
                                 train_size=min(cfg["train_size"], n), opq_iterations=OPQ_ITERATIONS)
        student = VQStudent.from_faiss(start)
        X = torch.from_numpy(x)
        student.calibrate_tau(X, 0.07)
    with mon.stage("train"):
        fit = train_steps(student, X, q, topk, src, cfg)
    with mon.stage("export"):
        index, info = student.to_faiss(X, start.factory)
    mon.close()
    exact = exact_topk(q_eval, x, 10)[1]
    st = mon.stages
    row = {"N": n, "top-K s": st["topk"]["s"], "start s": st["start"]["s"], "s/step": fit["s_per_step"],
           "export s": st["export"]["s"], "total s": sum(st[s]["s"] for s in STAGES),
           "peak RSS GB": max(st[s]["peak_gb"] for s in STAGES)}
    spe = -(-cfg["queries"] // cfg["batch"])
    fit.pop("s_per_step")
    row.update({"stages": st, **fit, "epoch_s_est": row["s/step"] * spe, "steps_per_epoch": spe,
                "topk_path": "ann" if uses_ann(len(q), n, cfg["ann_above"]) else "exact", "factory": start.factory,
                "TR@10 start": _teacher_recall(start.index, q_eval, exact, cfg["nprobe"]),
                "TR@10 trained": _teacher_recall(index, q_eval, exact, cfg["nprobe"]), **info,
                "base_rss_gb": base_gb, "ru_maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "threads": threads})
    return row


def run_isolated(n: int, cfg: dict) -> dict:
    """`run_size` in a fresh spawned process (its own RSS, nothing left over from a smaller size)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_size, n, cfg).result()


def plot(rows: Sequence[dict], path: Path) -> None:
    """Log-log: seconds per stage and peak RSS vs N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from retrieval_kd.utils import atomic_file

    ns = [r["N"] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    for col, style in (("top-K s", "o-"), ("start s", "s-"), ("s/step", "^-"), ("export s", "v-"),
                       ("total s", "k*-")):
        ax.plot(ns, [max(r[col], 1e-4) for r in rows], style, label=col)
    ax.set_ylabel("seconds")
    ax2.plot(ns, [r["peak RSS GB"] for r in rows], "o-", label="peak RSS")
    ax2.axhline(4.0, color="r", ls="--", lw=1, label="4 GB budget")
    ax2.set_ylabel("GB")
    ax2.set_ylim(0, max(4.5, 1.1 * max(r["peak RSS GB"] for r in rows)))
    ax.set_yscale("log")
    for a, title in ((ax, "seconds per stage (log-log)"), (ax2, "peak RSS of the timed stages")):
        a.set_xscale("log")
        a.set_xlabel("documents N")
        a.set_title(title)
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def summary(rows: Sequence[dict]) -> str:
    """The acceptance figures: per-step ratio largest / smallest N, peak RSS and total at the largest N."""
    lo, hi = min(rows, key=lambda r: r["N"]), max(rows, key=lambda r: r["N"])
    ratio = ""
    if lo is not hi:
        ratio = f"s/step at N={hi['N']} is {hi['s/step'] / max(lo['s/step'], 1e-12):.2f}x that at N={lo['N']}; "
    return (f"{ratio}peak RSS at N={hi['N']} {hi['peak RSS GB']:.2f} GB; total {hi['total s'] / 60:.1f} min "
            f"({hi['steps']} steps; one epoch of {hi['steps_per_epoch']} steps ≈ {hi['epoch_s_est'] / 60:.1f} min), "
            f"teacher top-K {hi['topk_path']}")


def run_cost_curve(
    sizes: Sequence[int] = DEFAULT_SIZES, dim: int = 384, m: int = 8, queries: int = 50_000, steps: int = 50,
    batch: int = 64, nprobe: int = 32, out: str | Path = "runs/bench_cost", threads: int | None = None,
    top_k: int = 200, train_size: int = 50_000, seed: int = 0, ann_above: float | None = ANN_ABOVE_PAIRS,
    isolate: bool = True,
) -> list[dict]:
    """Run every size, print the Markdown table, write table.md, results.json and cost_curve.png to `out`."""
    from retrieval_kd.errors import RKDError
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.utils import atomic_file, run_info, write_json

    if not sizes or min(sizes) < 256 or dim % m:
        raise RKDError(f"sizes must be >= 256 documents and dim ({dim}) a multiple of m ({m}); got sizes {sizes}")
    cfg = {"dim": dim, "m": m, "queries": queries, "steps": steps, "batch": batch, "nprobe": nprobe,
           "threads": threads, "top_k": top_k, "train_size": train_size, "seed": seed,
           "ann_above": ann_above}
    rows = []
    for n in sorted(sizes):
        rows.append(run_isolated(n, cfg) if isolate else run_size(n, cfg))
        print(format_table(rows[-1:], COLUMNS), flush=True)
    out = run_path(out)
    out.mkdir(parents=True, exist_ok=True)
    head = (f"d={dim}, OPQ{m},IVF√N,PQ{m}x8, {queries} training queries, top-{top_k}, batch {batch}, "
            f"{steps} steps, threads {rows[0]['threads']}")
    table = format_table(rows, COLUMNS)
    text = f"{head}\n\n{table}\n\n{summary(rows)}\n"
    with atomic_file(out / "table.md", "w", encoding="utf-8") as fh:
        fh.write(text)
    write_json(out / "results.json", {"rows": rows, "settings": cfg, "run_info": run_info(cfg)})
    plot(rows, out / "cost_curve.png")
    print("\n" + text)
    return rows
