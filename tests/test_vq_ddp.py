"""Data-parallel training: 2 gloo CPU ranks under torchrun (loopback) reproduce one process with the same batch.

The file is also the ranks' script: `python -m torch.distributed.run ... tests/test_vq_ddp.py toy|vq ARGS`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
import vq_data

if TYPE_CHECKING:
    from retrieval_kd.index.faiss_ivfpq import FaissIndex

N_DOCS = 800
FACTORY = "OPQ8,IVF16,PQ8x8np"
BATCH = 33  # odd: the ranks score 17 and 16 rows; the last batch of the epoch has 1 row (rank 1 idles)


def cacm_slice():
    """The first 800 CACM documents with every real query (as in test_vq_train)."""
    return vq_data.cacm_slice(N_DOCS)


def vq_config() -> dict:
    """One epoch of 12 steps (422 pseudo-queries: 40 held out, 364 = 11 x 33 + 1 train), learnable OPQ and IVF;
    each pseudo-query's source document left out (the default)."""
    # modest learning rates: AdamW divides by sqrt(v) + 1e-8, so gradient entries near 1e-8 turn the rounding of a
    # sum taken in two halves into update differences of about lr / 40 a step (lr_rotation 1e-3: up to 4e-5); an
    # entry whose gradient is ~0 takes its sign from that rounding, about lr a step (rotation at 1e-4: the matrix
    # 1.1e-5 apart after 12 steps on embeddings that other tests cached), hence the rotation's rate of 3e-5
    return {"dataset": "cacm", "device": "cpu", "index": {"factory": FACTORY, "nprobe": 4},
            "queries": {"budget": 422}, "candidates": {"top_k": 50},
            "student": {"learn_opq": True, "update_ivf": True},
            "optim": {"lr_codebooks": 3e-4, "lr_rotation": 3e-5, "lr_centroids": 1e-3},
            "train": {"steps": 12, "batch_size": BATCH, "progress": False, "validation": True, "eval_every": 4,
                      "patience": 3, "checkpoint_every": 4}}


def separated_start(docs: np.ndarray, docids: list[str]) -> FaissIndex:
    """An OPQ8,IVF16,PQ8x8 start trained on 8 noisy copies of the documents, holding the documents in order."""
    # trained on the 800 documents alone, faiss's k-means leaves duplicate PQ codewords (empty clusters split):
    # float rounding then picks either of a tied pair, and any two runs that round differently (a sharded batch,
    # another machine) drift apart by about the learning rate
    from retrieval_kd.index.faiss_ivfpq import FaissIndex

    rng = np.random.default_rng(0)
    aug = np.concatenate([docs] + [docs + rng.normal(0, 0.02, docs.shape) for _ in range(7)]).astype(np.float32)
    aug /= np.linalg.norm(aug, axis=1, keepdims=True)
    index = FaissIndex.build(aug, [str(i) for i in range(len(aug))], FACTORY, seed=0, opq_iterations=5).index
    index.reset()
    index.add(np.ascontiguousarray(docs, dtype=np.float32))
    return FaissIndex(index, docids, FACTORY, "ip")


def _codebooks(index) -> np.ndarray:
    """PQ codebooks [M, 256, dsub] of a raw faiss (OPQ,)IVF-PQ index."""
    import faiss
    from faiss.contrib.inspect_tools import get_pq_centroids

    return get_pq_centroids(faiss.downcast_index(faiss.extract_index_ivf(index)).pq)


def _rotation(student, state) -> torch.Tensor:
    """The OPQ rotation matrix of a student state dict (or of a FaissIndex start)."""
    import copy

    from retrieval_kd.methods.distill_vq.student import VQStudent

    if not isinstance(state, dict):
        return VQStudent.from_faiss(state, learn_opq=True).rotation.matrix().detach()
    student = copy.deepcopy(student)
    student.load_state_dict(state)
    return student.rotation.matrix().detach()


def _max_diff(a: dict, b: dict) -> dict[str, float]:
    """Largest absolute difference per floating-point entry of two state dicts."""
    return {k: float((a[k].double() - b[k].double()).abs().max()) for k in b if b[k].is_floating_point()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str, timeout: int = 240) -> None:
    """Run this file on 2 local ranks (gloo over 127.0.0.1); fails on a non-zero exit, kills all after `timeout`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "--max_restarts", "0", __file__, *args]
    threads = os.environ.get("RKD_THREADS", "1")  # the ranks round like this process
    env = {**os.environ, "OMP_NUM_THREADS": threads, "RKD_THREADS": threads}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: the agent and both ranks
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun ran past {timeout} s: {err[-3000:]}")
    assert proc.returncode == 0, out[-3000:] + err[-6000:]


# ---- the shared loop on a toy model ----
def _toy(out: Path, rank: int, world: int) -> dict:
    """11 rows of a linear fit shared 6/5 by 2 ranks; `only0` gets a gradient on rank 0 only, `never` on none."""
    from retrieval_kd.methods.distill_vq.loop import row_share
    from retrieval_kd.training import Checkpoint, TrainLoop, make_scheduler

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    only0, never = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([*model.parameters(), only0, never], lr=5e-2, weight_decay=0.1)
    gen = torch.Generator().manual_seed(1)
    x, noise = torch.randn(8, 11, 4, generator=gen), torch.randn(8, 11, 1, generator=gen)
    lo, hi = row_share(11, rank, world)

    def step_loss(step: int) -> tuple[torch.Tensor, dict]:
        xs = x[step, lo:hi]
        loss = ((model(xs) - xs.sum(-1, keepdim=True) - noise[step, lo:hi]) ** 2).sum() / 11
        if rank == 0:
            loss = loss + (only0 ** 2).sum() * 0.1
        return loss, {"rows": hi - lo}

    records: list[dict] = []
    stop_at = 6 if rank == 0 else 3  # rank 0's decision holds on every rank
    loop = TrainLoop(opt, make_scheduler(opt, "cosine", 1, 8), 8, clip_norm=0.5, log_every=2, progress=False,
                     log_file=out / f"metrics{rank}.jsonl", hooks=[records.append],
                     checkpoint=Checkpoint(out / f"last{rank}.pt", 2, {"model": model}),
                     after_step=lambda done, end: done >= stop_at, distributed=True)
    result = loop.run(step_loss)
    return {"params": [p.detach().clone() for p in (*model.parameters(), only0, never)], "records": records,
            "result": result}


def _toy_worker(args: list[str]) -> None:
    from retrieval_kd.methods.distill_vq.distributed import process_group

    out = Path(args[0])
    with process_group("cpu") as (rank, world):
        torch.save(_toy(out, rank, world), out / f"toy{rank}.pt")


def test_train_loop_all_reduces_gradients_and_follows_rank_0(tmp_path):
    single = _toy(tmp_path / "one", 0, 1)
    _torchrun("toy", str(tmp_path))
    ranks = [torch.load(tmp_path / f"toy{r}.pt", weights_only=False) for r in (0, 1)]
    for got in ranks:
        assert got["result"]["steps"] == 6 and got["result"]["stopped_early"]  # rank 1 wanted to stop at 3
        for a, b in zip(got["params"], single["params"]):
            assert torch.allclose(a, b, atol=1e-6, rtol=0), (a, b)
        assert torch.equal(got["params"][-1], torch.ones(2))  # no rank had a gradient: AdamW left it alone
        losses = [r["loss"] for r in got["records"]]
        assert losses == pytest.approx([r["loss"] for r in single["records"]], rel=1e-6)
    assert [r["rows"] for r in ranks[1]["records"]] == [5, 5, 5]  # parts are each rank's own
    assert not torch.equal(single["params"][2], torch.ones(3))  # rank 0's term reached the sum (and moved it)
    assert all(torch.equal(a, b) for a, b in zip(*(g["params"] for g in ranks)))  # the ranks agree bit for bit
    assert (tmp_path / "metrics0.jsonl").exists() and (tmp_path / "last0.pt").exists()
    assert not (tmp_path / "metrics1.jsonl").exists() and not (tmp_path / "last1.pt").exists()  # rank 0 writes
    logged = [json.loads(x)["step"] for x in (tmp_path / "metrics0.jsonl").read_text().splitlines()]
    assert logged == [2, 4, 6] and torch.load(tmp_path / "last0.pt", weights_only=False)["step"] == 6


# ---- every loss: the rank shares sum to the batch loss ----
@pytest.mark.parametrize("in_batch", [True, False])
def test_rank_shares_of_every_loss_sum_to_the_batch_loss(in_batch):
    from retrieval_kd.losses import available, make_loss
    from retrieval_kd.methods.distill_vq.loop import row_share, share_weight

    gen = torch.Generator().manual_seed(0)
    B, P = 7, 12
    student, teacher = torch.randn(B, P, generator=gen), torch.randn(B, P, generator=gen)
    mask = torch.ones(B, P, dtype=torch.bool) if in_batch else torch.rand(B, P, generator=gen) < 0.5
    mask[:, 0] = True
    labels = torch.zeros(B, P, dtype=torch.bool)
    labels[torch.arange(B), torch.randint(0, P, (B,), generator=gen)] = True
    labels &= mask
    for name in available():
        fn = make_loss(name)
        whole = float(fn(student, teacher, mask, labels, 0.5, 0.5))
        for world in (2, 3, 8):  # 8 > B: one rank has no rows
            shares = [row_share(B, r, world) for r in range(world)]
            assert [lo for lo, _ in shares] == [0] + [hi for _, hi in shares[:-1]] and shares[-1][1] == B
            total = sum(share_weight(name, mask, lo, hi) * float(fn(student[lo:hi], teacher[lo:hi], mask[lo:hi],
                                                                     labels[lo:hi], 0.5, 0.5))
                        for lo, hi in shares if hi > lo)
            assert total == pytest.approx(whole, rel=1e-5), (name, world)


# ---- `rkd train vq` under torchrun vs one process ----
def _vq_worker(args: list[str]) -> None:
    """`rkd train vq ARGS` on the CACM slice from the saved start; each rank dumps its student (trained, kept)."""
    from retrieval_kd import datasets
    from retrieval_kd.cli import main
    from retrieval_kd.index.faiss_ivfpq import FaissIndex
    from retrieval_kd.methods.distill_vq.loop import Validator
    from retrieval_kd.methods.distill_vq.trainer import DistillVQ

    start_dir, dump = Path(args[0]), Path(args[1])
    ds = cacm_slice()
    datasets.load = lambda name: ds  # the command loads its dataset by name
    fit = DistillVQ.fit

    def fit_from_start(self, dataset, resume=False, stop_after=None, start=None):
        out = fit(self, dataset, resume, stop_after, FaissIndex.load(start_dir))
        torch.save({"state": self.student.state_dict(), "result": self.result, "saved": self.index is not None},
                   dump / f"rank{os.environ['RANK']}.pt")
        return out

    def finish_after_dump(self):  # the trained state at the end of the loop, before the best one is loaded
        torch.save({k: v.clone() for k, v in self.student.state_dict().items()}, dump / f"end{os.environ['RANK']}.pt")
        return finish(self)

    finish = Validator.finish
    DistillVQ.fit, Validator.finish = fit_from_start, finish_after_dump
    sys.argv = ["rkd", *args[2:]]
    main()


@pytest.fixture(scope="module")
def vq_slice():
    from retrieval_kd.errors import DataNotFoundError

    try:
        return cacm_slice()
    except DataNotFoundError as e:
        pytest.skip(str(e))


def test_torchrun_train_vq_gives_the_codebooks_of_one_process(vq_slice, tmp_path):
    import yaml

    from retrieval_kd.index.faiss_ivfpq import FaissIndex
    from retrieval_kd.methods.distill_vq.trainer import DistillVQ
    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus
    from retrieval_kd.threads import set_threads

    set_threads()
    docs = np.array(encode_corpus(DenseEncoder(), vq_slice, show_progress=False))
    start = separated_start(docs, vq_slice.doc_ids)
    start.save(tmp_path / "start")
    one = DistillVQ({**vq_config(), "output_dir": str(tmp_path / "one")}).fit(vq_slice, start=start)
    assert (one.split["pseudo_queries"] - one.split["validation_pseudo_queries"]) % BATCH == 1  # a 1-row batch
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({**vq_config(), "output_dir": str(tmp_path / "ddp")}))
    _torchrun("vq", str(tmp_path / "start"), str(tmp_path), "train", "vq", "-c", str(tmp_path / "cfg.yaml"),
              "--no-evaluate")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    e0, e1 = (torch.load(tmp_path / f"end{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["saved"] and not r1["saved"]  # rank 0 alone exports
    for a, b in ((e0, e1), (r0["state"], r1["state"])):
        assert all(torch.equal(a[k], b[k]) for k in a)  # the ranks agree bit for bit, trained and kept
    # the trained state after step 12 (rank 0's checkpoint is e0) vs the single process's, and the kept states
    ends = [torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=False) for d in ("ddp", "one")]
    assert ends[0]["step"] == ends[1]["step"] == 12 and max(_max_diff(e0, ends[0]["student"]).values()) == 0
    # the rotation is compared as the matrix it parametrises (below): the raw `original` tensor of torch's orthogonal
    # parametrisation also holds directions the matrix ignores, where a gradient that is ~0 takes its sign from
    # rounding and Adam turns that into steps of about the learning rate
    diff = {k: v for k, v in _max_diff(e0, ends[1]["student"]).items() if ".original" not in k}
    print("max |2 ranks - 1 process| after 12 steps:", diff)
    assert set(diff) >= {"codebooks", "centroids"} and max(diff.values()) <= 1e-5, diff
    kept = {k: v for k, v in _max_diff(r0["state"], one.student.state_dict()).items() if ".original" not in k}
    assert max(kept.values()) <= 1e-5, kept
    rotations = [_rotation(one.student, state) for state in (e0, ends[1]["student"], start)]
    print("rotation matrix:", float((rotations[0] - rotations[1]).abs().max()))
    assert torch.allclose(rotations[0], rotations[1], atol=1e-5, rtol=0)
    moved = float((ends[1]["student"]["codebooks"] - torch.from_numpy(_codebooks(start.index))).abs().max())
    assert moved > 1e-3 and float((rotations[1] - rotations[2]).abs().max()) > 1e-4  # far beyond the tolerance
    assert [h[0] for h in r0["result"]["validation"]["history"]] == [0, 4, 8, 12]
    assert r0["result"]["validation"]["history"] == one.result["validation"]["history"]
    assert r0["result"]["loss_weight"] == pytest.approx(one.result["loss_weight"], rel=1e-5)
    logs = [[json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("ddp", "one")]
    assert [r["step"] for r in logs[0]] == list(range(1, 13))
    for key in ("loss", "loss_ivf", "loss_pq"):
        assert [r[key] for r in logs[0]] == pytest.approx([r[key] for r in logs[1]], rel=1e-5), key
    assert [r["pool"] for r in logs[0]] == [r["pool"] for r in logs[1]]
    saved = FaissIndex.load(tmp_path / "ddp" / "index")
    assert np.array_equal(_codebooks(saved.index), r0["state"]["codebooks"].numpy())


if __name__ == "__main__":  # a rank started by _torchrun
    {"toy": _toy_worker, "vq": _vq_worker}[sys.argv[1]](sys.argv[2:])
