"""The Distill-VQ training loop on plain tensors (torch + numpy only): candidates, losses, AdamW, checkpoints."""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval_kd.losses import make_loss
from retrieval_kd.methods.distill_vq.student import VQStudent
from retrieval_kd.utils import atomic_file

CKPT_FORMAT = 1


@dataclass
class LoopSettings:
    """Plain training settings (the YAML config is translated into these at the edge)."""

    loss: str = "listnet"
    loss_params: dict[str, Any] = field(default_factory=dict)
    tau_t: float = 0.05
    tau_s: float = 0.05
    top_k: int = 200
    in_batch: bool = True
    batch_size: int = 64
    epochs: int = 1
    steps: int | None = None
    lr_codebooks: float = 1e-3
    lr_centroids: float = 1e-4
    lr_rotation: float = 1e-4
    lr_encoder: float = 2e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"
    loss_weight: float | None = None
    seed: int = 0
    checkpoint_every: int = 0
    progress: bool = True


@dataclass
class TrainData:
    """Teacher embeddings of documents and training queries, the teacher's top-K, optional positives/texts."""

    doc_emb: torch.Tensor  # [N, d]
    q_emb: torch.Tensor  # [Q, d]
    topk: torch.Tensor  # [Q, K] document rows, best first
    positives: list[np.ndarray] | None = None  # per query: document rows treated as labels
    q_text: list[str] | None = None  # needed only when the query encoder is fine-tuned


def teacher_topk(q: torch.Tensor, docs: torch.Tensor, k: int, chunk: int | None = None) -> torch.Tensor:
    """Exact inner-product top-k document rows for each query (in chunks of about 2 GB of scores)."""
    k = min(k, len(docs))
    chunk = chunk or max(1, min(65536, 500_000_000 // max(1, len(docs))))
    out = [torch.topk(q[s : s + chunk] @ docs.T, k, dim=1).indices for s in range(0, len(q), chunk)]
    return torch.cat(out) if out else torch.zeros((0, k), dtype=torch.long)


def steps_per_epoch(n_queries: int, batch_size: int) -> int:
    return max(1, math.ceil(n_queries / batch_size))


def total_steps(s: LoopSettings, n_queries: int) -> int:
    return int(s.steps) if s.steps else s.epochs * steps_per_epoch(n_queries, s.batch_size)


def batch_indices(step: int, n_queries: int, s: LoopSettings) -> np.ndarray:
    """Query rows of a step: a seeded permutation per epoch, so any step can be recomputed on resume."""
    spe = steps_per_epoch(n_queries, s.batch_size)
    epoch, pos = divmod(step, spe)
    perm = np.random.default_rng([s.seed, epoch]).permutation(n_queries)
    return perm[pos * s.batch_size : (pos + 1) * s.batch_size]


def _lr_lambda(s: LoopSettings, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if s.warmup_steps and step < s.warmup_steps:
            return (step + 1) / s.warmup_steps
        frac = (step - s.warmup_steps) / max(1, total - s.warmup_steps)
        if s.schedule == "linear":
            return max(0.0, 1.0 - frac)
        if s.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
        return 1.0

    return f


def make_optimizer(student: VQStudent, s: LoopSettings, encoder: torch.nn.Module | None = None):
    """AdamW with one parameter group per part (codebooks, centroids, rotation, query encoder)."""
    groups = [{"params": [student.codebooks], "lr": s.lr_codebooks, "name": "codebooks"}]
    if student.centroids.requires_grad:
        groups.append({"params": [student.centroids], "lr": s.lr_centroids, "name": "centroids"})
    if student.rotation is not None and student.rotation.learnable:
        groups.append({"params": list(student.rotation.parameters()), "lr": s.lr_rotation, "name": "rotation"})
    if encoder is not None:
        groups.append({"params": [p for p in encoder.parameters() if p.requires_grad], "lr": s.lr_encoder,
                       "name": "encoder"})
    return torch.optim.AdamW(groups, weight_decay=s.weight_decay)


def _csr(rows: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-query positive rows as (flat, offsets)."""
    if not rows:
        return None
    lens = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if lens.sum() else np.zeros(0, np.int64)
    return flat, np.concatenate([[0], np.cumsum(lens)])


def _batch(data: TrainData, pos_csr, idx: np.ndarray, s: LoopSettings, device: torch.device):
    """Candidate pool (union of the batch's top-K and positives), mask [B, P] and labels [B, P]."""
    tidx = torch.as_tensor(idx, device=device)
    cand = data.topk[tidx]
    B, K = cand.shape
    parts = [cand.reshape(-1)]
    if pos_csr is not None:
        flat, ptr = pos_csr
        lens = ptr[idx + 1] - ptr[idx]
        owner = np.repeat(np.arange(B), lens)
        take = np.repeat(ptr[idx] - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
        parts.append(torch.as_tensor(flat[take], device=device))
    pool, inv = torch.unique(torch.cat(parts), return_inverse=True)
    labels = None
    if pos_csr is not None:
        labels = torch.zeros((B, len(pool)), dtype=torch.bool, device=device)
        labels[torch.as_tensor(owner, device=device), inv[B * K :]] = True
    if s.in_batch:
        mask = torch.ones((B, len(pool)), dtype=torch.bool, device=device)
    else:
        mask = torch.zeros((B, len(pool)), dtype=torch.bool, device=device)
        mask.scatter_(1, inv[: B * K].reshape(B, K), True)
        if labels is not None:
            mask |= labels
    return tidx, pool, mask, labels


class QueryTower:
    """Student-side query embeddings: the teacher's (fixed), or a fine-tuned encoder's from the query texts."""

    def __init__(self, encoder: Any = None):
        self.encoder = encoder  # a retrieval_kd DenseEncoder being fine-tuned, or None

    @property
    def module(self) -> torch.nn.Module | None:
        return None if self.encoder is None else self.encoder.model

    def __call__(self, data: TrainData, tidx: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        if self.encoder is None:
            return data.q_emb[tidx]
        enc = self.encoder
        tok = enc.tokenizer([data.q_text[i] for i in idx], padding=True, truncation=True,
                            max_length=enc.max_length, return_tensors="pt").to(data.q_emb.device)
        return enc.embed(**tok).float()


def save_checkpoint(path: Path, step: int, student: VQStudent, opt, sched, w: float | None,
                    tower: QueryTower, s: LoopSettings) -> None:
    """Everything needed to continue bit-for-bit: parameters, optimiser, schedule, loss weight, RNG states."""
    state = {"format": CKPT_FORMAT, "step": step, "student": student.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "loss_weight": w, "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(), "settings": asdict(s),
             "encoder": tower.module.state_dict() if tower.module is not None else None}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic_file(path, "wb") as fh:
        torch.save(state, fh)


def fit_loop(
    student: VQStudent,
    data: TrainData,
    s: LoopSettings,
    work_dir: str | Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    tower: QueryTower | None = None,
    hooks: Sequence[Callable[[dict], None]] = (),
) -> dict[str, Any]:
    """Train `student` in place; writes work_dir/metrics.jsonl and work_dir/checkpoints/last.pt."""
    from torch.nn.utils import parametrize

    tower = tower or QueryTower()
    device = student.codebooks.device
    loss_fn = make_loss(s.loss, **s.loss_params)
    opt = make_optimizer(student, s, tower.module)
    n_q = len(data.q_emb)
    total = total_steps(s, n_q)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(s, total))
    work = Path(work_dir) if work_dir else None
    ckpt = work / "checkpoints" / "last.pt" if work else None
    start, w = 0, s.loss_weight
    torch.manual_seed(s.seed)
    np.random.seed(s.seed % 2**32)
    if resume and ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if state["encoder"] is not None and tower.module is not None:
            tower.module.load_state_dict(state["encoder"])
        start, w = int(state["step"]), state["loss_weight"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    log = _open_log(work, start) if work else None
    pos_csr = _csr(data.positives)
    rotate_once = student.rotation is None or not student.rotation.learnable
    with torch.no_grad():
        doc_rot = student.rotate(data.doc_emb) if rotate_once else None
    end = total if stop_after is None else min(total, int(stop_after))
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the GPU script may run without tqdm
        def tqdm(it, **_):
            return it
    t0 = time.perf_counter()
    student.train()
    rec: dict[str, Any] = {}
    for step in tqdm(range(start, end), initial=start, total=total, desc="distill-vq", disable=not s.progress,
                     unit="step"):
        idx = batch_indices(step, n_q, s)
        tidx, pool, mask, labels = _batch(data, pos_csr, idx, s, device)
        x = data.doc_emb[pool]
        teacher = data.q_emb[tidx] @ x.T
        q = tower(data, tidx, idx)
        docs = doc_rot[pool] if rotate_once else x
        with parametrize.cached():  # the Cayley map once per step, shared by queries and documents
            ivf, pq = student(q, docs, student.assign[pool], rotated_docs=rotate_once)
        l_ivf = loss_fn(ivf, teacher, mask, labels, s.tau_t, s.tau_s)
        l_pq = loss_fn(pq, teacher, mask, labels, s.tau_t, s.tau_s)
        if w is None:
            w = float(l_ivf.detach() / l_pq.detach().clamp(min=1e-12))
        loss = l_ivf + w * l_pq
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        rec = {"step": step + 1, "loss": loss.item(), "loss_ivf": l_ivf.item(), "loss_pq": l_pq.item(), "w": w,
               "lr": opt.param_groups[0]["lr"], "pool": len(pool), "seconds": round(time.perf_counter() - t0, 4)}
        if log:
            log.write(json.dumps(rec) + "\n")
            log.flush()
        for h in hooks:
            h(rec)
        done = step + 1
        if ckpt is not None and ((s.checkpoint_every and done % s.checkpoint_every == 0) or done == end):
            save_checkpoint(ckpt, done, student, opt, sched, w, tower, s)
    if log:
        log.close()
    student.eval()
    return {"steps": end, "total_steps": total, "seconds": time.perf_counter() - t0, "loss_weight": w,
            "last": rec, "finished": end == total}


def _open_log(work: Path, start: int):
    """metrics.jsonl, keeping only the records up to the resumed step."""
    path = work / "metrics.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    keep = []
    if start and path.exists():
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= start]
    with atomic_file(path, "w") as fh:
        fh.write("".join(ln + "\n" for ln in keep))
    return open(path, "a")
