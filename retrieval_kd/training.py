"""One training skeleton for every trainer: optimiser step, LR schedule, progress, log records, checkpoints.

    sched = make_scheduler(opt, "linear", warmup_steps, total)          # transformers.get_scheduler
    loop = TrainLoop(opt, sched, total, clip_norm=1.0, log_every=20, hooks=[records.append])
    result = loop.run(step_loss)      # step_loss(step) -> (loss tensor, {name: number} parts of this step)

A trainer supplies only `step_loss`; the loop zeroes the gradients, back-propagates, clips the gradient norm
(optional), steps the optimiser and the schedule, averages the parts over `log_every` steps into one record
{"step", "loss", **parts, "lr", "seconds"} (to `log_file` as JSON lines and to `hooks`), and with a `Checkpoint`
saves/restores modules, optimiser, schedule, extra state (e.g. a loss weight) and the torch/numpy/CUDA RNG states,
so a resumed run continues bit-for-bit.

Schedules come from `transformers.get_scheduler` (a name, warm-up steps, total steps); where they differ from the
hand-written lambdas they replaced (all within noise):
- warm-up rises as s / warmup from 0 (the old lambdas used (s + 1) / warmup): the first warm-up step has LR 0 and
  the ramp lags one step. Distill-VQ's constant/linear/cosine map to constant_with_warmup/linear/cosine; its
  shipped configs (constant, warm-up 0) keep exactly the old learning rates.
- DiSCo: min((s + 1) / w, (T - s) / (T - w)) with w = max(1, warmup·T) is now linear with int(warmup·T) warm-up
  steps. With warmup: 0 the decay is (T - s) / T where it was (T - s) / (T - 1).
- extractive tagger: the product min(1, (s + 1) / w) · (1 - s / T) (w = T // 10) is now linear (warm-up w, then
  (T - s) / (T - w)): the peak factor is 1 instead of about 0.9, the decay after warm-up about 11% higher.
- seq2seq rewriter: it had no scheduler; it now uses "constant" (the same constant learning rate).
A log record averages its steps' parts (the tagger used to print the last step's loss of each 50).

Data parallel (`TrainLoop(..., distributed=True)` under an initialised torch.distributed group of more than one
rank, e.g. started by `torchrun`): `step_loss` returns this rank's share of the global batch loss (the shares
summing to the single-process loss); after `backward` the gradients of the optimiser's parameters and the loss are
all-reduced by SUM (a parameter keeps grad None only where no rank has one), so every rank clips and steps the same
gradient and the parameters stay equal (`broadcast_module` makes them equal at the start). Rank 0 alone writes the
log file and checkpoints and shows the progress bar; `after_step`'s stop decision is rank 0's; every rank resumes
from the same checkpoint file (a folder every rank can read). Without a group (or with `distributed=False`, the
default: a trainer that does not split its batches) nothing changes, bit for bit.
Import this module from training code only: it imports torch.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval_kd.utils import atomic_file

CHECKPOINT_FORMAT = 1
StepLoss = Callable[[int], "tuple[torch.Tensor, dict[str, Any]]"]


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int):
    """`transformers.get_scheduler(name, optimizer, warmup_steps, total_steps)` (a LambdaLR for the usual names)."""
    from transformers import get_scheduler

    return get_scheduler(name, optimizer, num_warmup_steps=int(warmup_steps), num_training_steps=int(total_steps))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def dist_world() -> tuple[int, int]:
    """(rank, world size) of the initialised torch.distributed group; (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """`t` summed over the ranks, in place (unchanged without a group of more than one rank)."""
    if dist_world()[1] > 1:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


@torch.no_grad()
def broadcast_module(module: torch.nn.Module | None, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers into every rank's `module` (no-op without a group)."""
    if module is None or dist_world()[1] == 1:
        return
    import torch.distributed as dist

    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src)


def progress_bar(iterable: Iterable, **kw: Any) -> Iterable:
    """tqdm over `iterable` when tqdm is installed (the standalone GPU script may run without it)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **kw)


def open_log(path: Path, start: int):
    """A JSON-lines log opened for appending, keeping only the records up to the resumed step `start`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = []
    if start and path.exists():
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= start]
    with atomic_file(path, "w") as fh:
        fh.write("".join(ln + "\n" for ln in keep))
    return open(path, "a")


@dataclass
class Checkpoint:
    """Where the loop saves (every `every` steps and at the end of a run) and what it saves besides its own state."""

    path: Path
    every: int = 0  # 0: only at the end of the run
    modules: dict[str, Any] = field(default_factory=dict)  # name -> torch module (or None), saved under that key
    state: dict[str, Any] = field(default_factory=dict)  # values saved and restored in place (e.g. a loss weight)
    meta: dict[str, Any] = field(default_factory=dict)  # saved for information only

    def due(self, done: int, end: int) -> bool:
        """Whether to save after step `done` of a run ending at `end`."""
        return bool(self.every and done % self.every == 0) or done == end

    def save(self, step: int, optimizer: Any, scheduler: Any) -> None:
        """Everything needed to continue bit-for-bit, written atomically."""
        state = {"format": CHECKPOINT_FORMAT, "step": step, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "numpy_rng": np.random.get_state(), **self.meta, **self.state}
        state.update({k: m.state_dict() if m is not None else None for k, m in self.modules.items()})
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        with atomic_file(self.path, "wb") as fh:
            torch.save(state, fh)

    def load(self, optimizer: Any, scheduler: Any) -> int:
        """Restore modules, optimiser, schedule, state and RNGs from `path`; the step to continue from (0: none)."""
        if not self.path.exists():
            return 0
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        for key, module in self.modules.items():
            if module is not None and state.get(key) is not None:
                module.load_state_dict(state[key])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.state.update({k: state[k] for k in self.state if k in state})
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return int(state["step"])


def mean_record(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One step's parts as they are; several steps' parts averaged key by key."""
    if len(parts) == 1:
        return dict(parts[0])
    return {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}


class TrainLoop:
    """The loop every trainer runs: `run(step_loss)` trains `total_steps` steps (or up to `stop_after`)."""

    def __init__(self, optimizer: Any, scheduler: Any, total_steps: int, *, clip_norm: float | None = None,
                 log_every: int = 1, progress: bool = True, desc: str = "train", log_file: Path | None = None,
                 hooks: Sequence[Callable[[dict[str, Any]], None]] = (), checkpoint: Checkpoint | None = None,
                 after_step: Callable[[int, int], bool] | None = None, distributed: bool = False):
        self.optimizer, self.scheduler, self.total_steps = optimizer, scheduler, int(total_steps)
        self.clip_norm, self.log_every, self.progress, self.desc = clip_norm, max(1, int(log_every)), progress, desc
        self.log_file, self.hooks, self.checkpoint = log_file, list(hooks), checkpoint
        self.after_step = after_step  # (steps done, last step of the run) -> True to stop here (early stopping)
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        # distributed: step_loss returns this rank's share of the loss (see the module docstring)
        self.rank, self.world = dist_world() if distributed else (0, 1)

    def resume(self) -> int:
        """Restore the checkpoint (when there is one); the step to continue from."""
        return self.checkpoint.load(self.optimizer, self.scheduler) if self.checkpoint is not None else 0

    def step(self, loss: torch.Tensor) -> float:
        """zero_grad, backward, (all-reduce), optional clipping, optimiser and schedule step; the loss to log."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        value = self._all_reduce(loss) if self.world > 1 else loss.item()
        if self.clip_norm:
            torch.nn.utils.clip_grad_norm_(self._params, self.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        return value

    def _all_reduce(self, loss: torch.Tensor) -> float:
        """Sum the gradients (one flat buffer per device and dtype) and the loss over the ranks; the summed loss."""
        import torch.distributed as dist

        flags = torch.tensor([loss.item()] + [float(p.grad is not None) for p in self._params],
                             dtype=torch.float64, device=loss.device)
        dist.all_reduce(flags)
        buckets: dict[tuple[Any, Any], list[torch.nn.Parameter]] = {}
        for p in self._params:
            buckets.setdefault((p.device, p.dtype), []).append(p)
        for ps in buckets.values():
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in ps])
            dist.all_reduce(flat)
            for p, g in zip(ps, flat.split([p.numel() for p in ps])):
                p.grad = g.view_as(p)
        for p, has in zip(self._params, flags[1:].tolist()):
            if not has:  # no rank has a gradient for it: the optimiser skips it, as in one process
                p.grad = None
        return float(flags[0])

    def _agree(self, stop: bool) -> bool:
        """Rank 0's stop decision on every rank."""
        if self.world == 1:
            return stop
        import torch.distributed as dist

        flag = torch.tensor([float(stop)], device=self._params[0].device)
        dist.broadcast(flag, 0)
        return bool(flag.item())

    def run(self, step_loss: StepLoss, start: int = 0, stop_after: int | None = None) -> dict[str, Any]:
        """Train steps start..end (`after_step` may stop earlier); returns steps, total_steps, seconds, the last
        log record, finished and stopped_early. Denormal floats are flushed to zero while it runs."""
        end = self.total_steps if stop_after is None else min(self.total_steps, int(stop_after))
        log = open_log(self.log_file, start) if self.log_file is not None and self.rank == 0 else None
        t0, acc, last, done, stopped = time.perf_counter(), [], {}, start, False
        torch.set_flush_denormal(True)  # the soft-assignment softmax at small tau fills the backward with them
        try:
            for step in progress_bar(range(start, end), initial=start, total=self.total_steps, desc=self.desc,
                                     disable=not self.progress or self.rank != 0, unit="step"):
                loss, parts = step_loss(step)
                acc.append({"loss": self.step(loss), **parts})
                done = step + 1
                if self.after_step is not None:
                    stopped = self._agree(bool(self.after_step(done, end))) and done < end
                if done % self.log_every == 0 or done == end or stopped:
                    last, acc = self._record(done, acc, t0, log), []
                if self.checkpoint is not None and self.rank == 0 and (self.checkpoint.due(done, end) or stopped):
                    self.checkpoint.save(done, self.optimizer, self.scheduler)
                if stopped:
                    break
        finally:
            torch.set_flush_denormal(False)
            if log is not None:
                log.close()
        return {"steps": done if stopped else end, "total_steps": self.total_steps,
                "seconds": time.perf_counter() - t0, "last": last, "finished": stopped or end == self.total_steps,
                "stopped_early": stopped}

    def _record(self, done: int, acc: list[dict[str, Any]], t0: float, log: Any) -> dict[str, Any]:
        """The log record of the steps in `acc`, written to the log file and handed to the hooks."""
        rec = {"step": done, **mean_record(acc), "lr": self.optimizer.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - t0, 4)}
        if log is not None:
            log.write(json.dumps(rec) + "\n")
            log.flush()
        for hook in self.hooks:
            hook(rec)
        return rec
