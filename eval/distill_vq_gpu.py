"""Distill-VQ at scale on one GPU: 1M vectors (d=384), seconds per epoch, faiss/torch parity on a sample.

    PYTHONPATH=. python eval/distill_vq_gpu.py                     # 1M synthetic vectors on CUDA
    PYTHONPATH=. python eval/distill_vq_gpu.py --n 20000 --device cpu --queries 4000   # a tiny CPU check
    PYTHONPATH=. python eval/distill_vq_gpu.py --emb docs.npy      # real float32 [N, d] embeddings instead

Needs torch, numpy, faiss-cpu, pydantic and transformers (only for its `get_scheduler`): faiss-cpu builds the
OPQ+IVF-PQ start (trained on a subsample) and holds the exported index; training is the library's own loop
(retrieval_kd.methods.distill_vq.loop, run by retrieval_kd.training) on `--device`, configured by a VQConfig.
Training queries are noisy copies of random documents (the synthetic stand-in for pseudo-queries).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from retrieval_kd.bench.cost_curve import noisy_copies, synthetic  # noqa: E402


def teacher_recall(student_ids: np.ndarray, teacher_ids: np.ndarray, k: int) -> float:
    """Mean share of the teacher's top-k that the student's top-k finds."""
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(student_ids, teacher_ids)]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--m", type=int, default=16, help="PQ sub-vectors = bytes per vector")
    ap.add_argument("--queries", type=int, default=200_000)
    ap.add_argument("--eval-queries", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=200)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--soft-tau", type=float, default=0.07, help="relative to the median codeword gap")
    ap.add_argument("--train-size", type=int, default=50_000, help="faiss start trained on this subsample")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--emb", default=None, help="optional .npy of real float32 embeddings [N, d]")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Build the faiss start, train Distill-VQ on `--device`, export, compare; prints and returns the report."""
    import faiss

    from retrieval_kd.index.faiss_ivfpq import FaissIndex
    from retrieval_kd.methods.distill_vq.student import VQStudent

    args = parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    report: dict = {"device": args.device, "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    t = time.perf_counter()
    x = np.ascontiguousarray(np.load(args.emb).astype(np.float32)) if args.emb else synthetic(args.n, args.d, args.seed)
    q_train, src = noisy_copies(x, args.queries, 0.6, args.seed + 1)
    q_eval, _ = noisy_copies(x, args.eval_queries, 0.6, args.seed + 2)
    report["data_s"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    factory = f"OPQ{args.m},IVF{max(1, int(round(np.sqrt(len(x)))))},PQ{args.m}x8np"
    start = FaissIndex.build(x, [str(i) for i in range(len(x))], factory, seed=args.seed,
                             train_size=min(args.train_size, len(x)))
    report["faiss_start_s"] = round(time.perf_counter() - t, 1)
    report["factory"] = start.factory

    dev = torch.device(args.device)
    student = VQStudent.from_faiss(start).to(dev)
    X = torch.from_numpy(x).to(dev)
    report["soft_tau"] = student.calibrate_tau(X, args.soft_tau)
    exact = train(args, student, X, q_train, src, q_eval, report)
    evaluate(args, student, start, X, q_eval, exact, report)
    print(json.dumps(report, indent=2))
    return report


def train(args: argparse.Namespace, student, X: torch.Tensor, q_train: np.ndarray, src: np.ndarray,
          q_eval: np.ndarray, report: dict) -> np.ndarray:
    """Teacher top-k and the library's loop (a VQConfig with these sizes); timings into `report`.

    Returns the teacher's exact top-100 of the evaluation queries.
    """
    from retrieval_kd.methods.distill_vq.config import VQConfig
    from retrieval_kd.methods.distill_vq.loop import TrainData, fit_loop, teacher_topk

    dev = X.device
    Q = torch.from_numpy(q_train).to(dev)
    t = time.perf_counter()
    topk = teacher_topk(Q, X, args.top_k)
    qe = torch.from_numpy(q_eval).to(dev)
    exact = teacher_topk(qe, X, 100).cpu().numpy()
    _sync(dev)
    report["teacher_topk_s"] = round(time.perf_counter() - t, 1)

    data = TrainData(X, Q, topk, [np.array([s]) for s in src])
    cfg = VQConfig.model_validate({"seed": args.seed, "candidates": {"top_k": args.top_k},
                                   "train": {"batch_size": args.batch, "epochs": args.epochs, "progress": False}})
    epoch_times: list[float] = []
    steps_per_epoch = -(-len(q_train) // args.batch)
    mark = [time.perf_counter()]

    def on_step(rec: dict) -> None:
        """Time each epoch (the loop's log record of its last step)."""
        if rec["step"] % steps_per_epoch == 0:
            _sync(dev)
            epoch_times.append(time.perf_counter() - mark[0])
            mark[0] = time.perf_counter()

    out = fit_loop(student, data, cfg, hooks=[on_step])
    report.update({"steps": out["steps"], "seconds_per_epoch": [round(e, 2) for e in epoch_times],
                   "train_queries": len(q_train), "batch": args.batch, "last_loss": out["last"].get("loss")})
    return exact


def evaluate(args: argparse.Namespace, student, start, X: torch.Tensor, q_eval: np.ndarray, exact: np.ndarray,
             report: dict) -> None:
    """Export to faiss, teacher recall of start vs trained index, faiss/torch score parity; into `report`."""
    import faiss

    dev = X.device
    t = time.perf_counter()
    index, info = student.to_faiss(X, start.factory)
    report["export_s"] = round(time.perf_counter() - t, 1)
    report.update(info)
    for name, ix in (("start", start.index), ("distill_vq", index)):
        faiss.extract_index_ivf(ix).nprobe = args.nprobe
        _, ids = ix.search(q_eval, 100)
        report[f"TR@10 {name}"] = round(teacher_recall(ids, exact, 10), 4)
        report[f"TR@100 {name}"] = round(teacher_recall(ids, exact, 100), 4)
    # parity on a sample: faiss's scores == the torch student's scores of the same (query, document) pairs
    sample = q_eval[:100]
    scores, ids = index.search(sample, 10)
    codes = student.encode(X)
    torch_scores = student.score_codes(torch.from_numpy(sample).to(dev), codes).cpu().numpy()
    ok = ids >= 0
    report["parity_max_abs_diff"] = float(np.abs(np.take_along_axis(torch_scores, np.where(ok, ids, 0), 1)
                                                 - scores)[ok].max())
    report["parity_ok"] = report["parity_max_abs_diff"] <= 1e-4


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
