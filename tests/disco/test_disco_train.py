"""DiSCo pieces: student input text, SPLADE pooling, teacher aggregation, a short real training run, ONNX parity."""
from __future__ import annotations

import json

import numpy as np
import pytest

from retrieval_kd.errors import ConfigError
from retrieval_kd.methods.disco.conversation import conversation_text, history_text
from retrieval_kd.teachers.rewrites import aggregate

HISTORY = [{"role": "user", "text": "What is throat cancer?"}, {"role": "system", "text": "A cancer of the throat."},
           {"role": "user", "text": "Is it treatable?"}, {"role": "assistant", "text": "Often, if found early."}]


def test_conversation_text_order_and_responses():
    assert conversation_text(HISTORY, "What are its symptoms?") == (
        "What are its symptoms? [SEP] Often, if found early. [SEP] Is it treatable? [SEP] What is throat cancer?")
    assert conversation_text(HISTORY, "x", responses="none") == "x [SEP] Is it treatable? [SEP] What is throat cancer?"
    assert conversation_text(HISTORY, "x", responses="all").count("[SEP]") == 4
    assert history_text(HISTORY, "What are its symptoms?") == (
        "What is throat cancer? Is it treatable? What are its symptoms?")
    with pytest.raises(ValueError):
        conversation_text(HISTORY, "x", responses="first")


def test_torch_free_tokens_match_transformers(splade_path):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    text = conversation_text(HISTORY, "What are its symptoms?")
    fast = Tokenizer.from_file(str(splade_path / "tokenizer.json")).encode(text).ids
    assert fast == AutoTokenizer.from_pretrained(splade_path)(text)["input_ids"]
    assert fast.count(102) == 4  # [SEP] inside the text is the special token, not '[', 'sep', ']'


def test_splade_pool_and_segments():
    import torch

    from retrieval_kd.teachers.splade import segment_ids, splade_pool

    g = torch.Generator().manual_seed(0)
    logits, mask = torch.randn(3, 7, 50, generator=g) * 3, torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6])
    ref = (torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1)).max(1).values
    assert torch.allclose(splade_pool(logits, mask), ref, atol=1e-6)
    ids = torch.tensor([[101, 5, 102, 6, 7, 102, 8, 102]])
    assert segment_ids(ids, 102).tolist() == [[0, 0, 0, 1, 1, 1, 1, 1]]


def test_aggregations_hand_computed():
    s = np.array([[[2.0, 1.0, 0.0]], [[0.0, 3.0, 0.0]]])  # 2 teachers, 1 turn, 3 candidates
    both = np.array([[True], [True]])

    def softmax(x):
        e = np.exp(x - x.max())
        return e / e.sum()

    one = aggregate(s[:1], both[:1], "mean", 2.0)[0]
    for m in ("mean", "mixture", "union"):  # one teacher: all reduce to softmax(s / T)
        assert aggregate(s[:1], both[:1], m, 2.0)[0] == pytest.approx(softmax(s[0, 0] / 2.0), abs=1e-6)
    assert one == pytest.approx(softmax(s[0, 0] / 2.0), abs=1e-6)
    mix = aggregate(s, both, "mixture", 1.0)[0]
    assert mix == pytest.approx((softmax(s[0, 0]) + softmax(s[1, 0])) / 2, abs=1e-6)
    z0, z1 = (s[0, 0] - 1) / np.sqrt(2 / 3), (s[1, 0] - 1) / np.sqrt(2)
    scale = (np.sqrt(2 / 3) + np.sqrt(2)) / 2
    assert aggregate(s, both, "mean", 1.0)[0] == pytest.approx(softmax((z0 + z1) / 2 * scale), abs=1e-5)
    assert aggregate(s, both, "union", 1.0)[0] == pytest.approx(softmax(np.maximum(z0, z1) * scale), abs=1e-5)
    only_second = aggregate(s, np.array([[False], [True]]), "mixture", 1.0)[0]
    assert only_second == pytest.approx(softmax(s[1, 0]), abs=1e-6)  # a teacher without a rewrite is left out


def test_student_subset_decoder_is_exact(splade_path):
    import torch

    from retrieval_kd.methods.disco.student import SpladeStudent

    st = SpladeStudent(splade_path, max_length=64)
    texts = [conversation_text(HISTORY, "What are its symptoms?"), "tiger sharks"]
    sub = torch.tensor([1996, 4456, 7388, 8169, 19877, 100, 3])
    with torch.no_grad():
        full, part = st.forward(texts), st.forward(texts, sub)
    assert part.shape == (2, 7) and torch.allclose(full[:, sub], part, atol=1e-5)


def test_evaluation_turns_are_refused(shared_data):
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import DiscoTrainer

    cfg = DiscoConfig.model_validate({"data": {"train": "cast-mini", "collections": ["cast2021"]}})
    with pytest.raises(ConfigError, match="overlap the evaluation set"):
        DiscoTrainer(cfg, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mini, train_slice):
    """A short real DiSCo run (human teacher) on 3 training conversations over a 48-document slice."""
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import DiscoTrainer

    cfg = load_config(None, DiscoConfig, [f"data.train={train_slice}", "model.max_length=128",
                                          "model.doc_max_length=128", "train.max_steps=30", "train.lr=3e-4",
                                          "train.log_every=10", "train.warmup=0"])
    tr = DiscoTrainer(cfg, progress=False)
    rows = list(range(8))
    before = tr.batch_loss(rows, np.random.default_rng(1))[1]
    tr.fit()
    import torch

    with torch.no_grad():
        after = tr.batch_loss(rows, np.random.default_rng(1))[1]
    return tr, before, after, tr.save(tmp_path_factory.mktemp("disco") / "run")


@pytest.fixture(scope="module")
def train_slice(tmp_path_factory, mini, mini_slice):
    from retrieval_kd import datasets
    from retrieval_kd.data.dataset import Dataset

    train = datasets.load("cast-train")
    docs = [d for d in mini.corpus if d["id"] in set(mini_slice[0])]
    convs = [c for c in train.conversations if c["collection"] == "cast2022"][:2]
    convs += [c for c in train.conversations if c["collection"] == "cast2020"][:1]
    return Dataset("tiny-train", docs, {}, {}, convs, {"rel_threshold": 1}).save(
        tmp_path_factory.mktemp("data") / "tiny-train")


def test_training_brings_student_towards_teacher(trained):
    tr, before, after, run = trained
    assert len(tr.turns) >= 30 and tr.log[-1]["step"] == 30
    assert after["kl"] < 0.6 * before["kl"], (before, after)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["kind"] == "disco-student" and meta["teachers"] == [{"name": "human", "source": "manual"}]
    assert json.loads((run / "student" / "meta.json").read_text())["kind"] == "splade-student" and (run / "config.yaml").exists()
    assert json.loads((run / "run_info.json").read_text())["config"]["train"]["max_steps"] == 30


def test_onnx_parity_and_torch_free_serving_path(trained, tmp_path, mini, mini_slice, splade):
    from retrieval_kd.export.conversational import export_student_onnx
    from retrieval_kd.index.impact import ImpactIndex
    from retrieval_kd.serving.conversational import OnnxConversationalEncoder
    from retrieval_kd.teachers.splade import SpladeEncoder

    _, _, _, run = trained
    turns = [t for c in mini.conversations for t in c["turns"]][2:6]  # real CAsT 2021 turns with history
    texts = [conversation_text(t["history"], t["utterance"]) for t in turns]
    info = export_student_onnx(run / "student", tmp_path / "onnx", parity_texts=texts)
    assert info["parity_max_abs_diff"] <= 1e-4 and info["segments"] is True
    enc = OnnxConversationalEncoder(tmp_path / "onnx")
    torch_vecs = SpladeEncoder(run / "student", max_length=128).encode(texts).toarray()
    idx = ImpactIndex.build(mini_slice[2], mini_slice[0], splade.vocab)
    for t, ref in zip(turns, torch_vecs, strict=True):
        vec, _ = enc.encode(t["history"], t["utterance"])
        assert np.abs(vec - ref).max() <= 1e-4
        assert idx.search(vec, 10)[0] == idx.search(ref, 10)[0]


def test_utterance_mix_trains_a_residual_and_the_run_queries_with_it(trained, train_slice, tmp_path, mini_slice):
    """`train.utterance_mix`: the batch's query is the student's vector + alpha x the frozen encoder's vector of the
    utterance (so the same weights give another loss), the run records alpha, and its bundle mixes with it."""
    import torch

    from retrieval_kd.config import load_config
    from retrieval_kd.export.conversational import _sources
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import DiscoTrainer

    sets = [f"data.train={train_slice}", "model.max_length=128", "model.doc_max_length=128", "train.max_steps=2",
            "train.log_every=1", "train.warmup=0"]
    base = trained[0]
    tr = DiscoTrainer(load_config(None, DiscoConfig, [*sets, "train.utterance_mix=0.5"]), progress=False)
    rows = list(range(8))
    u = tr.utterances[rows].toarray()
    assert tr.utterances.shape[0] == len(tr.turns) and (u > 0).sum(1).min() > 0
    with torch.no_grad():
        tr.student.model.load_state_dict(base.student.model.state_dict())
        mixed = tr.batch_loss(rows, np.random.default_rng(1))[1]
        plain = base.batch_loss(rows, np.random.default_rng(1))[1]
    assert mixed["q_nnz"] > plain["q_nnz"] and mixed["kl"] != pytest.approx(plain["kl"])
    tr.fit()
    run = tr.save(tmp_path / "run")
    assert json.loads((run / "meta.json").read_text())["utterance_mix"] == 0.5
    members, utterance, _, _ = _sources(run)
    assert [w for _, w in members] == [1.0] and utterance == 0.5
    with pytest.raises(Exception, match="utterance_mix"):
        load_config(None, DiscoConfig, ["train.utterance_mix=-1"])


def test_data_repeat_weights_a_collection_in_each_epoch(trained):
    """data.repeat {collection: k}: its turns come k times per epoch (epoch length and order); names and values
    are checked."""
    import pydantic

    from retrieval_kd.methods.disco.config import DataConfig

    tr = trained[0]
    colls = [t["collection"] for t in tr.turns]
    assert tr._epoch() == list(range(len(tr.turns)))  # default: every turn once
    tr.cfg.data.repeat = {"cast2020": 3}
    try:
        epoch = tr._epoch()
        assert len(epoch) == len(tr.turns) + 2 * colls.count("cast2020") and colls.count("cast2020") > 0
        order = tr._order(np.random.default_rng(0))
        assert sorted(order.tolist()) == sorted(epoch)
        assert all(order.tolist().count(i) == (3 if c == "cast2020" else 1) for i, c in enumerate(colls))
    finally:
        tr.cfg.data.repeat = {}
    with pytest.raises(pydantic.ValidationError, match="data.repeat.ikat2024"):
        DataConfig(collections=["cast2019"], repeat={"ikat2024": 2})
    with pytest.raises(pydantic.ValidationError, match="whole number"):
        DataConfig(collections=["cast2019"], repeat={"cast2019": 0})
