"""The Distill-VQ training loop on plain tensors (torch + numpy only): candidates, losses, AdamW, checkpoints.

The step itself (zero_grad / backward / step, schedule, log records, checkpoints) is `retrieval_kd.training`'s
loop; this module supplies the batches and the IVF + w·PQ loss of one step.

Data parallel (a torch.distributed group, see `distributed.py`): every rank builds the same candidate pool from the
whole global batch (`batch_indices` is a function of the step) and scores only its contiguous share of the rows
(`row_share`); its loss is that share's part of the global loss (`share_weight`: rows / B for the losses that
average over query rows, candidate entries for mse and margin_mse), so the shares sum to the single-process loss
and the loop's SUM all-reduce gives its gradient. The logged parts and the first step's w come from the global
losses (all-reduced). A rank without rows (a last batch smaller than the world) contributes zero.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval_kd.losses import make_loss
from retrieval_kd.methods.distill_vq.config import OptimConfig, TrainConfig, VQConfig
from retrieval_kd.methods.distill_vq.student import VQStudent

ROTATE_ONCE_BYTES = 512 << 20  # largest rotated copy of the documents kept for a run (1M x 384 float32: 1.5 GB)
# optim.schedule -> transformers.get_scheduler name (warm-up steps from optim.warmup_steps)
SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


@dataclass
class TrainData:
    """Teacher embeddings of documents and training queries, the teacher's top-K, optional positives/texts."""

    doc_emb: torch.Tensor  # [N, d]
    q_emb: torch.Tensor  # [Q, d]
    topk: torch.Tensor  # [Q, K] document rows, best first
    positives: list[np.ndarray] | None = None  # per query: document rows treated as labels
    q_text: list[str] | None = None  # needed only when the query encoder is fine-tuned
    n_pseudo: int | None = None  # rows [0, n_pseudo) are pseudo-queries (None: every row)


def teacher_topk(q: torch.Tensor, docs: torch.Tensor, k: int, chunk: int | None = None) -> torch.Tensor:
    """The teacher's top-k document rows [Q, k] for each query, best first, never a queries x documents matrix:
    faiss over document chunks on the CPU (`index.topk.teacher_topk`: exact, ANN above 5e10 pairs), torch over
    query chunks of at most 64M scores on a GPU."""
    k = min(k, len(docs))
    if q.device.type == "cpu":
        from retrieval_kd.index.topk import teacher_topk as faiss_topk

        if not len(q):
            return torch.zeros((0, k), dtype=torch.long)
        _, rows = faiss_topk(q.numpy(), docs.numpy(), k)
        return torch.from_numpy(rows)
    chunk = chunk or max(1, min(65536, 64_000_000 // max(1, len(docs))))
    out = [torch.topk(q[s : s + chunk] @ docs.T, k, dim=1).indices for s in range(0, len(q), chunk)]
    return torch.cat(out) if out else torch.zeros((0, k), dtype=torch.long)


def steps_per_epoch(n_queries: int, batch_size: int) -> int:
    """Steps of one pass over the training queries."""
    return max(1, math.ceil(n_queries / batch_size))


def total_steps(train: TrainConfig, n_queries: int) -> int:
    """train.steps, or train.epochs passes over the queries and at least train.min_samples queries seen."""
    if train.steps:
        return int(train.steps)
    return max(train.epochs * steps_per_epoch(n_queries, train.batch_size),
               math.ceil(train.min_samples / train.batch_size))


def batch_indices(step: int, n_queries: int, batch_size: int, seed: int) -> np.ndarray:
    """Query rows of a step: a seeded permutation per epoch, so any step can be recomputed on resume."""
    spe = steps_per_epoch(n_queries, batch_size)
    epoch, pos = divmod(step, spe)
    perm = np.random.default_rng([seed, epoch]).permutation(n_queries)
    return perm[pos * batch_size : (pos + 1) * batch_size]


def row_share(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows lo..hi of an n-row batch that rank `rank` of `world` scores (contiguous, sizes differing by at most 1)."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + int(rank < extra)


# losses averaged over candidate entries rather than query rows -> the entries per row they leave out
ENTRY_MEANS = {"mse": 0, "margin_mse": 1}


def share_weight(loss: str, mask: torch.Tensor, lo: int, hi: int) -> float:
    """The factor turning `loss` over rows lo..hi of a batch (mask [B, P]) into its share of the B rows' loss."""
    # plugin losses are taken to average over query rows
    if loss not in ENTRY_MEANS:
        return (hi - lo) / len(mask)
    k = ENTRY_MEANS[loss]
    part = int(mask[lo:hi].sum()) - k * (hi - lo)
    return part / max(1, int(mask.sum()) - k * len(mask))


def make_optimizer(student: VQStudent, optim: OptimConfig, encoder: torch.nn.Module | None = None):
    """AdamW with one parameter group per part (codebooks, centroids, rotation, query encoder)."""
    groups = [{"params": [student.codebooks], "lr": optim.lr_codebooks, "name": "codebooks"}]
    if student.centroids.requires_grad:
        groups.append({"params": [student.centroids], "lr": optim.lr_centroids, "name": "centroids"})
    if student.rotation is not None and student.rotation.learnable:
        groups.append({"params": list(student.rotation.parameters()), "lr": optim.lr_rotation, "name": "rotation"})
    if encoder is not None:
        groups.append({"params": [p for p in encoder.parameters() if p.requires_grad], "lr": optim.lr_encoder,
                       "name": "encoder"})
    return torch.optim.AdamW(groups, weight_decay=optim.weight_decay)


def _csr(rows: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-query positive rows as (flat, offsets)."""
    if not rows:
        return None
    lens = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if lens.sum() else np.zeros(0, np.int64)
    return flat, np.concatenate([[0], np.cumsum(lens)])


def _batch(data: TrainData, pos_csr, idx: np.ndarray, in_batch: bool, device: torch.device,
           exclude_source: bool = False):
    """Candidate pool (union of the batch's top-K and positives), mask [B, P] and labels [B, P].

    `exclude_source`: a pseudo-query's positive (its source document) is not one of its candidates; a real
    query's labelled positives stay.
    """
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
    if in_batch:
        mask = torch.ones((B, len(pool)), dtype=torch.bool, device=device)
    else:
        mask = torch.zeros((B, len(pool)), dtype=torch.bool, device=device)
        mask.scatter_(1, inv[: B * K].reshape(B, K), True)
        if labels is not None:
            mask |= labels
    if exclude_source and labels is not None:
        pseudo = idx < (data.n_pseudo if data.n_pseudo is not None else len(data.q_emb))
        mask &= ~(labels & torch.as_tensor(pseudo, device=device)[:, None])
    return tidx, pool, mask, labels


class QueryTower:
    """Student-side query embeddings: the teacher's (fixed), or a fine-tuned encoder's from the query texts."""

    def __init__(self, encoder: Any = None):
        self.encoder = encoder  # a retrieval_kd DenseEncoder being fine-tuned, or None

    @property
    def module(self) -> torch.nn.Module | None:
        """The torch module being fine-tuned (None: the teacher's fixed embeddings)."""
        return None if self.encoder is None else self.encoder.model

    def __call__(self, data: TrainData, tidx: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        """Query embeddings [B, d] of the batch rows `idx` (tensor rows `tidx`)."""
        if self.encoder is None:
            return data.q_emb[tidx]
        enc = self.encoder
        tok = enc.tokenizer([data.q_text[i] for i in idx], padding=True, truncation=True,
                            max_length=enc.max_length, return_tensors="pt").to(data.q_emb.device)
        return enc.embed(**tok).float()


@dataclass
class ValData:
    """Held-out pseudo-queries: their teacher embeddings and the teacher's exact top-10 over every document.

    With `source` (each query's source document row, `candidates.exclude_source`), that document is left out of
    both the teacher's top-10 and the index's results, as it is left out of training.
    """

    q_emb: np.ndarray  # [V, d] float32
    top10: np.ndarray  # [V, 10] document rows
    source: np.ndarray | None = None  # [V] rows left out, or None


def drop_source(rows: np.ndarray, source: np.ndarray | None, k: int) -> np.ndarray:
    """The first k entries of each row of `rows` that are not that row's source document (-1 padded)."""
    if source is None:
        return rows[:, :k]
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for i, (r, s) in enumerate(zip(rows, source)):
        kept = r[r != s][:k]
        out[i, : len(kept)] = kept
    return out


def teacher_recall_at_10(index: Any, val: ValData, nprobe: int | None) -> float:
    """Mean share of the teacher's top-10 that a raw faiss index returns in its top-10 (at `nprobe`)."""
    from retrieval_kd.index.faiss_ivfpq import search_index

    extra = 0 if val.source is None else 1
    _, got = search_index(index, val.q_emb, 10 + extra, nprobe)
    got = drop_source(np.asarray(got), val.source, 10)
    hits = [len(set(g[g >= 0].tolist()) & set(t.tolist())) for g, t in zip(got, val.top10)]
    return float(np.mean(hits)) / val.top10.shape[1] if hits else 0.0


class Validator:
    """Early stopping on held-out pseudo-queries: TR@10 of the exported index every `every` steps (the faiss start
    is step 0); keeps the best state in `state["val"]` (checkpointed with the run) and says when to stop."""

    def __init__(self, student: VQStudent, data: TrainData, val: ValData, cfg: VQConfig, start_index: Any,
                 state: dict, total: int):
        self.student, self.data, self.val, self.cfg, self.state = student, data, val, cfg, state
        self.factory, self.nprobe = start_index.factory, cfg.index.nprobe
        self.every = cfg.train.eval_every or max(10, math.ceil(total / 10))
        self.start_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
        start_tr = teacher_recall_at_10(start_index.index, val, self.nprobe)
        self.state.setdefault("val", {"start": start_tr, "best": start_tr, "best_step": 0, "bad": 0,
                                      "history": [(0, start_tr)], "best_state": None})

    def __call__(self, done: int, end: int) -> bool:
        """Evaluate after step `done` when due; True when `patience` evaluations in a row found nothing better."""
        if done % self.every and done != end:
            return False
        index, _ = self.student.to_faiss(self.data.doc_emb, self.factory, check=False)
        tr, v = teacher_recall_at_10(index, self.val, self.nprobe), self.state["val"]
        v["history"].append((done, tr))
        if tr > v["best"]:
            v.update(best=tr, best_step=done, bad=0,
                     best_state={k: t.detach().clone() for k, t in self.student.state_dict().items()})
        else:
            v["bad"] += 1
        return v["bad"] >= self.cfg.train.patience

    def finish(self) -> dict[str, Any]:
        """Load the best state into the student (the start's when no step beat it); the validation summary."""
        v = self.state["val"]
        self.student.load_state_dict(v["best_state"] if v["best_state"] is not None else self.start_state)
        return {"start_tr10": v["start"], "best_tr10": v["best"], "best_step": v["best_step"],
                "kept_start": v["best_step"] == 0, "eval_every": self.every,
                "history": [[int(s), round(float(t), 4)] for s, t in v["history"]]}


class VQStep:
    """One step's loss: IVF loss + w·PQ loss on the batch's candidate pool (w: loss.weight, else the first ratio)."""

    def __init__(self, student: VQStudent, data: TrainData, cfg: VQConfig, tower: QueryTower, state: dict):
        from retrieval_kd.training import dist_world

        self.student, self.data, self.cfg, self.tower, self.state = student, data, cfg, tower, state
        self.rank, self.world = dist_world()  # (0, 1) in one process
        self.loss_fn = make_loss(cfg.loss.name, **cfg.loss.params)
        self.pos_csr = _csr(data.positives)
        # a fixed rotation is applied to every document once, while that copy stays small; else per step's pool
        fixed = student.rotation is None or not student.rotation.learnable
        self.rotate_once = fixed and data.doc_emb.numel() * 4 <= ROTATE_ONCE_BYTES
        with torch.no_grad():
            self.doc_rot = student.rotate(data.doc_emb) if self.rotate_once else None

    def __call__(self, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """(loss, parts) of step `step` (with several ranks: this rank's share of the loss, the global parts)."""
        from torch.nn.utils import parametrize

        c, data, student = self.cfg, self.data, self.student
        idx = batch_indices(step, len(data.q_emb), c.train.batch_size, c.seed)
        tidx, pool, mask, labels = _batch(data, self.pos_csr, idx, c.candidates.in_batch, student.codebooks.device,
                                          c.candidates.exclude_source)
        lo, hi = row_share(len(idx), self.rank, self.world)  # (0, B) in one process
        if lo == hi:  # nothing to score on this rank: a zero share that still reaches the codebooks
            zero = student.codebooks.sum() * 0.0
            return self._share(zero, zero, 0.0, len(pool))
        rows = slice(lo, hi)
        x = data.doc_emb[pool]
        teacher = data.q_emb[tidx[rows]] @ x.T
        q = self.tower(data, tidx[rows], idx[rows])
        docs = self.doc_rot[pool] if self.rotate_once else x
        with parametrize.cached():  # the Cayley map once per step, shared by queries and documents
            ivf, pq = student(q, docs, student.assign[pool], rotated_docs=self.rotate_once)  # else rotates x
        tau_t, tau_s = c.loss.teacher_temperature, c.loss.student_temperature
        mask_r, labels_r = mask[rows], labels[rows] if labels is not None else None
        l_ivf = self.loss_fn(ivf, teacher, mask_r, labels_r, tau_t, tau_s)
        l_pq = self.loss_fn(pq, teacher, mask_r, labels_r, tau_t, tau_s)
        if self.world > 1:
            return self._share(l_ivf, l_pq, share_weight(c.loss.name, mask, lo, hi), len(pool))
        if self.state["loss_weight"] is None:
            self.state["loss_weight"] = float(l_ivf.detach() / l_pq.detach().clamp(min=1e-12))
        w = self.state["loss_weight"]
        return l_ivf + w * l_pq, {"loss_ivf": l_ivf.item(), "loss_pq": l_pq.item(), "w": w, "pool": len(pool)}

    def _share(self, l_ivf: torch.Tensor, l_pq: torch.Tensor, weight: float, pool: int
               ) -> tuple[torch.Tensor, dict[str, Any]]:
        """This rank's share weight·(IVF + w·PQ) and the global parts (w: the first step's global ratio)."""
        from retrieval_kd.training import all_reduce_sum

        both = torch.stack([l_ivf.detach(), l_pq.detach()]).double() * weight
        g_ivf, g_pq = all_reduce_sum(both).tolist()
        if self.state["loss_weight"] is None:
            self.state["loss_weight"] = g_ivf / max(g_pq, 1e-12)
        w = self.state["loss_weight"]
        return weight * (l_ivf + w * l_pq), {"loss_ivf": g_ivf, "loss_pq": g_pq, "w": w, "pool": pool}


def fit_loop(
    student: VQStudent,
    data: TrainData,
    cfg: VQConfig,
    work_dir: str | Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    tower: QueryTower | None = None,
    hooks: Sequence[Callable[[dict], None]] = (),
    val: ValData | None = None,
    start_index: Any = None,
) -> dict[str, Any]:
    """Train `student` in place as `cfg` says; writes work_dir/metrics.jsonl and work_dir/checkpoints/last.pt.

    With `val` (and the `start_index` it started from), the student ends in its best validated state (see
    `Validator`) and the result carries "validation".
    """
    # under a torch.distributed group every rank runs this with the same data and config (module docstring);
    # rank 0 alone writes files; every rank validates (deterministic for equal parameters), rank 0's stop holds
    from retrieval_kd.training import Checkpoint, TrainLoop, broadcast_module, make_scheduler, seed_everything

    tower = tower or QueryTower()
    broadcast_module(student)  # with several ranks: all start from rank 0's student (and encoder)
    broadcast_module(tower.module)
    opt = make_optimizer(student, cfg.optim, tower.module)
    total = total_steps(cfg.train, len(data.q_emb))
    sched = make_scheduler(opt, SCHEDULES[cfg.optim.schedule], cfg.optim.warmup_steps, total)
    work = Path(work_dir) if work_dir else None
    state = {"loss_weight": cfg.loss.weight}
    ckpt = None
    if work is not None:
        ckpt = Checkpoint(work / "checkpoints" / "last.pt", cfg.train.checkpoint_every,
                          {"student": student, "encoder": tower.module}, state,
                          {"settings": cfg.model_dump(mode="json")})
    validator = Validator(student, data, val, cfg, start_index, state, total) if val is not None else None
    loop = TrainLoop(opt, sched, total, progress=cfg.train.progress, desc="distill-vq",
                     log_file=work / "metrics.jsonl" if work else None, hooks=hooks, checkpoint=ckpt,
                     after_step=validator, distributed=True)
    seed_everything(cfg.seed)
    start = loop.resume() if resume else 0
    step_loss = VQStep(student, data, cfg, tower, state)
    student.train()
    out = loop.run(step_loss, start, stop_after)
    student.eval()
    if validator is not None and out["finished"]:
        out["validation"] = validator.finish()
    return {**out, "loss_weight": state["loss_weight"]}
