"""Data-parallel Distill-VQ: the torch.distributed process group `torchrun` describes in the environment.

    torchrun --nproc_per_node 2 -m retrieval_kd train vq -c configs/vq_8b.yaml --set output_dir=runs/vq_ddp

`rkd train vq` trains inside `process_group(device)`: with WORLD_SIZE > 1 it joins the group (gloo on CPU, NCCL
on CUDA, one GPU per process: cuda:LOCAL_RANK), yields (rank, world size) and leaves it at the end; with one
process it yields (0, 1) and touches nothing. Every rank loads the data and encodes it with the teacher (the
embedding cache is shared under a file lock); each step every rank builds the whole batch's candidate pool,
scores its share of the rows and the shared loop all-reduces the gradients (see `loop.py`, `training.py`).
Rank 0 alone writes output_dir (config, metrics.jsonl, checkpoints) and exports and saves the index; on several
machines output_dir must be a folder every rank reads (--resume loads the same checkpoint on every rank).
The NCCL path is written but has only been run on CPU (gloo) so far.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def env_world() -> int:
    """WORLD_SIZE as torchrun sets it (1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def backend_for(device: str) -> str:
    """The collective backend for a torch device: NCCL on CUDA, gloo otherwise."""
    return "nccl" if device.startswith("cuda") else "gloo"


@contextlib.contextmanager
def process_group(device: str) -> Iterator[tuple[int, int]]:
    """(rank, world size) inside torchrun's process group when WORLD_SIZE > 1 (joined here, left after)."""
    if env_world() <= 1:
        yield 0, 1
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():  # already joined by the caller: use it, leave it to the caller
        yield dist.get_rank(), dist.get_world_size()
        return
    if backend_for(device) == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend_for(device))
    try:
        yield dist.get_rank(), dist.get_world_size()
    finally:
        dist.destroy_process_group()
