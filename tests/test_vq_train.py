"""Distill-VQ on a real slice of CACM: faiss/torch score parity, --resume, and a short run that must help."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import vq_data

from retrieval_kd.data.dataset import Dataset
from retrieval_kd.errors import DataNotFoundError
from retrieval_kd.index.faiss_ivfpq import FaissIndex
from retrieval_kd.methods.distill_vq.trainer import DistillVQ

N_DOCS = 800


@pytest.fixture(scope="module")
def cacm_slice() -> Dataset:
    """The first 800 CACM documents with every real query (qrels restricted to the slice)."""
    try:
        return vq_data.cacm_slice(N_DOCS)
    except DataNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def start(cacm_slice) -> FaissIndex:
    """The faiss OPQ8,IVF16,PQ8x8 start index every run here trains from (built once)."""
    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus
    from retrieval_kd.threads import set_threads

    set_threads()
    docs = np.array(encode_corpus(DenseEncoder(), cacm_slice, show_progress=False))
    return FaissIndex.build(docs, cacm_slice.doc_ids, "OPQ8,IVF16,PQ8x8np", seed=0)


def small(**sections) -> dict:
    cfg = {"dataset": "cacm", "device": "cpu",
           "index": {"factory": "OPQ8,IVF16,PQ8x8np", "nprobe": 4},
           "queries": {"pseudo_per_doc": 2},
           "candidates": {"top_k": 50},
           "train": {"steps": 12, "batch_size": 32, "progress": False, "validation": False}}
    for k, v in sections.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def test_score_parity_and_training_assignment(cacm_slice, start, tmp_path):
    import faiss
    from faiss.contrib.inspect_tools import get_invlist

    vq = DistillVQ(small(student={"learn_opq": True, "update_ivf": True},
                         optim={"lr_rotation": 1e-3, "lr_centroids": 1e-3})).fit(cacm_slice, start=start)
    st = vq.student
    R = st.rotation.matrix().detach()
    assert torch.allclose(R @ R.T, torch.eye(R.shape[0]), atol=1e-4)  # learnable OPQ stays orthogonal
    assert not np.allclose(R.numpy(), _rotation(start.index), atol=1e-6)  # it did move
    vq.save(tmp_path / "vq")
    loaded = FaissIndex.load(tmp_path / "vq")
    meta = json.loads((tmp_path / "vq" / "meta.json").read_text())
    assert meta["trainer"] == "distill-vq" and meta["config_hash"] == vq.config.config_hash()
    assert meta["split"]["eval_qids"] == list(cacm_slice.queries) and meta["split"]["train_qids"] == []
    assert (tmp_path / "vq" / "config.yaml").exists() and (tmp_path / "vq" / "run_info.json").exists()

    # every document sits in its training list, in the deployed index and in the start index alike
    docs = torch.from_numpy(_docs(vq, cacm_slice))
    codes = st.encode(docs)
    for index in (loaded.index, start.index):
        ivf = faiss.extract_index_ivf(index)
        for lst in range(ivf.nlist):
            ids, list_codes = get_invlist(ivf.invlists, lst)
            assert (st.assign.numpy()[ids] == lst).all()
            if index is loaded.index:
                assert (list_codes == codes[ids]).all()

    # faiss scores == torch student scores on the same queries (max abs diff <= 1e-4)
    q = vq.encode_queries(list(cacm_slice.queries.values()))
    torch_scores = st.score_codes(torch.from_numpy(q), codes).numpy()
    for nprobe in (2, 16):
        scores, idx = loaded.search(q, 20, nprobe)
        ok = idx >= 0
        diff = np.abs(np.take_along_axis(torch_scores, np.where(ok, idx, 0), 1) - scores)[ok]
        assert diff.max() <= 1e-4, diff.max()
    # with every list probed, faiss's top-20 is the student's top-20
    top = np.sort(torch_scores, 1)[:, ::-1][:, :20]
    assert np.abs(np.sort(scores, 1)[:, ::-1] - top).max() <= 1e-4


def _rotation(index):
    import faiss
    from faiss.contrib.inspect_tools import get_LinearTransform_matrix

    return get_LinearTransform_matrix(faiss.downcast_VectorTransform(index.chain.at(0)))[0]


def _docs(vq, ds):
    from retrieval_kd.teachers.dense import encode_corpus

    return np.array(encode_corpus(vq.encoder, ds, show_progress=False), dtype=np.float32)


def test_resume_gives_the_same_codebooks(cacm_slice, start, tmp_path):
    cfg = small(student={"learn_opq": True}, train={"checkpoint_every": 3}, optim={"warmup_steps": 4,
                                                                                  "schedule": "cosine"})
    full = DistillVQ({**cfg, "output_dir": str(tmp_path / "a")}).fit(cacm_slice, start=start)
    part = DistillVQ({**cfg, "output_dir": str(tmp_path / "b")}).fit(cacm_slice, stop_after=5, start=start)
    assert part.index is None and part.result["steps"] == 5
    assert (tmp_path / "b" / "checkpoints" / "last.pt").exists()
    resumed = DistillVQ({**cfg, "output_dir": str(tmp_path / "b")}).fit(cacm_slice, resume=True, start=start)
    assert resumed.result["finished"]
    assert torch.equal(full.student.codebooks, resumed.student.codebooks)
    assert torch.equal(full.student.rotation.matrix(), resumed.student.rotation.matrix())
    assert not torch.equal(full.student.codebooks, part.student.codebooks)  # the resumed part did something
    log_a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_b] == list(range(1, 13))
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]


def test_short_training_beats_the_faiss_start(cacm_slice, start):
    from retrieval_kd.methods.distill_vq.report import HeldOut

    vq = DistillVQ(small(index={"factory": "OPQ8,IVF16,PQ8x8np", "nprobe": 8}, candidates={"top_k": 100},
                         train={"steps": 150, "batch_size": 32})).fit(cacm_slice, start=start)
    held = HeldOut.of(cacm_slice, vq.encoder, vq.split["eval_qids"])
    before = held.row("start", vq.start_index, 8)
    after = held.row("dvq", vq.index, 8)
    print(f"teacher-recall@10 start {before['TR@10']:.3f} -> Distill-VQ {after['TR@10']:.3f}")
    assert after["TR@10"] >= before["TR@10"] + 0.015, (before, after)


def test_joint_query_encoder_is_saved_with_the_index(cacm_slice, start, tmp_path):
    vq = DistillVQ(small(student={"finetune_query_encoder": True}, train={"steps": 3, "batch_size": 8},
                         optim={"lr_encoder": 1e-4})).fit(cacm_slice, start=start)
    assert vq.finetuned
    dest = vq.save(tmp_path / "vq")
    meta = json.loads((dest / "meta.json").read_text())
    assert meta["valid_only_with_query_encoder"] and (dest / "query_encoder" / "config.json").exists()
    again = DistillVQ.load(dest)
    texts = list(cacm_slice.queries.values())[:3]
    tuned = again.encode_queries(texts)
    assert np.allclose(tuned, vq.encode_queries(texts), atol=1e-5)
    teacher = DistillVQ(small()).encode_queries(texts)
    assert not np.allclose(tuned, teacher, atol=1e-4)  # the encoder was trained
    hits = again.search(texts, k=5)
    assert len(hits) == 3 and all(len(h) == 5 for h in hits)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_schedules_without_warmup_keep_the_old_learning_rates(schedule):
    import math

    from retrieval_kd.methods.distill_vq.loop import SCHEDULES
    from retrieval_kd.training import make_scheduler

    total = 37
    old = {"constant": lambda s: 1.0, "linear": lambda s: max(0.0, 1.0 - s / total),
           "cosine": lambda s: 0.5 * (1.0 + math.cos(math.pi * min(1.0, s / total)))}[schedule]
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = make_scheduler(opt, SCHEDULES[schedule], 0, total)
    got = []
    for _ in range(total):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert got == pytest.approx([1e-3 * old(s) for s in range(total)], rel=1e-12, abs=1e-18)


def _toy_run(tmp, stop_after=None, resume=False):
    """A linear model trained by the shared loop on seeded noise (dropout makes the torch RNG matter)."""
    from retrieval_kd.training import Checkpoint, TrainLoop, make_scheduler, seed_everything

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Dropout(0.3), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    state = {"calls": 0}
    ckpt = Checkpoint(tmp / "last.pt", 3, {"model": model}, state)
    records: list[dict] = []
    loop = TrainLoop(opt, make_scheduler(opt, "cosine", 2, 10), 10, clip_norm=0.5, log_every=2, progress=False,
                     log_file=tmp / "metrics.jsonl", hooks=[records.append], checkpoint=ckpt)
    seed_everything(1)
    start = loop.resume() if resume else 0

    def step_loss(step):
        state["calls"] += 1
        x = torch.randn(8, 4)
        return ((model(x) - x.sum(-1, keepdim=True)) ** 2).mean(), {"calls": state["calls"]}

    out = loop.run(step_loss, start, stop_after)
    return model, out, records, state


def test_train_loop_logs_clips_checkpoints_and_resumes_bit_for_bit(tmp_path):
    full, out, records, _ = _toy_run(tmp_path / "a")
    assert out["finished"] and out["steps"] == 10 and [r["step"] for r in records] == [2, 4, 6, 8, 10]
    assert records[0]["calls"] == 1.5  # the parts of a record's steps are averaged
    part, out_part, _, _ = _toy_run(tmp_path / "b", stop_after=5)
    assert not out_part["finished"] and (tmp_path / "b" / "last.pt").exists()
    resumed, out_resumed, _, state = _toy_run(tmp_path / "b", resume=True)
    assert out_resumed["finished"] and state["calls"] == 10  # the extra state was restored
    assert torch.equal(full[1].weight, resumed[1].weight) and torch.equal(full[1].bias, resumed[1].bias)
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    want = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 5, 6, 8, 10]  # stop_after=5 logged its last step
    assert [r["loss"] for r in lines if r["step"] != 5][-2:] == [r["loss"] for r in want][-2:]


def test_validation_keeps_the_start_when_training_cannot_beat_it(cacm_slice, start):
    # a learning rate that wrecks the codebooks: no trained state beats the faiss start on held-out pseudo-queries
    vq = DistillVQ(small(optim={"lr_codebooks": 5.0}, train={"steps": 20, "validation": True, "eval_every": 5,
                                                             "patience": 10})).fit(cacm_slice, start=start)
    val = vq.result["validation"]
    assert val["kept_start"] and val["best_step"] == 0 and val["history"][0][0] == 0
    assert [s for s, _ in val["history"]] == [0, 5, 10, 15, 20]
    assert all(tr < val["start_tr10"] for _, tr in val["history"][1:])
    assert vq.index.index is vq.start_index.index and vq.index.meta["kept_start"]
    assert vq.split["validation_pseudo_queries"] == 160  # 10% of 1,600 pseudo-queries


def test_validation_keeps_the_best_state_and_stops_early(cacm_slice, start):
    from retrieval_kd.methods.distill_vq.loop import ValData, teacher_recall_at_10

    vq = DistillVQ(small(index={"factory": "OPQ8,IVF16,PQ8x8np", "nprobe": 16}, candidates={"top_k": 100},
                         train={"steps": 400, "validation": True, "eval_every": 10, "patience": 2}))
    vq.fit(cacm_slice, start=start)
    val, out = vq.result["validation"], vq.result
    assert out["stopped_early"] and out["steps"] < 400 and out["steps"] == val["history"][-1][0]
    best = max(tr for _, tr in val["history"])
    assert abs(val["best_tr10"] - best) < 1e-4 and dict(map(tuple, val["history"]))[val["best_step"]] == best
    # the index kept is the best state's: re-measured on the same held-out pseudo-queries it gives best_tr10
    assert teacher_recall_at_10(vq.index.index, vq.val_data, 16) == val["best_tr10"]
    assert isinstance(vq.val_data, ValData) and len(vq.val_data.q_emb) == 160


def test_pseudo_queries_follow_the_real_query_lengths():
    from retrieval_kd.methods.distill_vq.queries import pseudo_count, pseudo_queries, query_lengths

    docs = [" ".join(f"w{i}_{j}" for j in range(200)) for i in range(50)]
    lengths = query_lengths([" ".join(["x"] * n) for n in (5, 5, 9, 9, 9, 40, 40, 40, 40, 40)])
    qs, src = pseudo_queries(docs, 20, seed=3, lengths=lengths)
    counts = [len(q.split()) for q in qs]
    assert set(counts) == {5, 9, 40} and len(qs) == 1000 and src.max() == 49
    assert 0.3 < counts.count(40) / len(counts) < 0.7  # drawn in proportion (half the real queries are 40 words)
    assert query_lengths(["a b c"] * 9) is None  # fewer than 10 real queries: the uniform default applies
    assert pseudo_count(3204) == 6.0 and pseudo_count(1_000_000) == 0.1 and pseudo_count(10, budget=25) == 2.5


def test_exclude_source_leaves_each_pseudo_querys_document_out_of_training_and_validation(cacm_slice, start):
    from retrieval_kd.methods.distill_vq.loop import TrainData, _batch, _csr, drop_source, teacher_recall_at_10

    vq = DistillVQ(small(candidates={"top_k": 50, "exclude_source": True},
                         train={"steps": 4, "validation": True, "eval_every": 2, "patience": 5}))
    vq.fit(cacm_slice, start=start)
    val = vq.val_data
    assert val.source is not None and len(val.source) == len(val.q_emb) == 160
    assert not (val.top10 == val.source[:, None]).any()  # the teacher's top-10 without the source document
    assert 0.0 < teacher_recall_at_10(vq.index.index, val, 16) <= 1.0
    assert vq.result["finished"] and np.isfinite(vq.result["validation"]["best_tr10"])
    # in a batch, a query's positives (its source document) are labels but not candidates of that query
    g = torch.Generator().manual_seed(0)
    doc, q = torch.randn(30, 8, generator=g), torch.randn(6, 8, generator=g)
    data = TrainData(doc, q, torch.argsort(-(q @ doc.T), dim=1)[:, :5], [np.array([i]) for i in range(6)],
                     n_pseudo=4)  # rows 4 and 5 are real queries: their labelled positives stay candidates
    for in_batch in (True, False):
        _, pool, mask, labels = _batch(data, _csr(data.positives), np.arange(6), in_batch, torch.device("cpu"), True)
        col = {int(d): j for j, d in enumerate(pool.tolist())}
        assert all(labels[b, col[b]] and mask[b, col[b]] == (b >= 4) for b in range(6))
        _, _, keep, _ = _batch(data, _csr(data.positives), np.arange(6), in_batch, torch.device("cpu"), False)
        assert all(keep[b, col[b]] for b in range(6)) and int((keep & ~mask).sum()) == 4
    assert drop_source(np.array([[3, 1, 2]]), np.array([1]), 2).tolist() == [[3, 2]]
    assert drop_source(np.array([[3, 1, 2]]), None, 2).tolist() == [[3, 1]]


def test_exclude_source_needs_the_source_rows():
    from retrieval_kd.methods.distill_vq.config import VQConfig

    assert VQConfig().candidates.exclude_source  # the default
    with pytest.raises(ValueError, match="candidates.exclude_source"):
        VQConfig(candidates={"exclude_source": True, "positives": False})
    assert not VQConfig(candidates={"exclude_source": False, "positives": False}).candidates.positives
