"""Issue 15 distillation: representation losses, the rep term in a batch, paired report rows, ablation files,
the masked LM built from a BertModel body."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval_kd.errors import ConfigError


def test_representation_losses_hand_computed():
    import torch

    from retrieval_kd.losses import available, family_of, get_loss

    s, t = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]]), torch.tensor([[0.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    assert get_loss("vector_mse")(s, t).item() == pytest.approx((1 + 10) / 2)
    cos0 = 2 * 2 / (np.sqrt(5) * 2)
    assert get_loss("vector_cosine")(s, t).item() == pytest.approx(((1 - cos0) + 1) / 2, abs=1e-6)
    assert family_of("vector_mse") == "representation" and "vector_mse" not in available()  # not a ranking loss
    assert set(available("representation")) == {"vector_mse", "vector_cosine"}


def test_mean_teacher_vectors():
    import scipy.sparse as sp

    from retrieval_kd.teachers.rewrites import RewriteTeachers

    tt = RewriteTeachers.__new__(RewriteTeachers)
    tt.available = np.array([[True, True], [True, False]])
    tt.vectors = [sp.csr_matrix(np.array([[2.0, 0, 0], [0, 1.0, 0]])), sp.csr_matrix(np.array([[0, 0, 4.0], [0, 0, 0]]))]
    assert tt.mean_vectors([0, 1]).toarray().tolist() == [[1.0, 0, 2.0], [0, 1.0, 0]]  # mean over available only


@pytest.fixture(scope="module")
def rep_trainer(mini_slice, tmp_path_factory, shared_data):
    from retrieval_kd import datasets
    from retrieval_kd.config import load_config
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import DiscoTrainer

    mini = datasets.load("cast-mini")
    train = datasets.load("cast-train")
    docs = [d for d in mini.corpus if d["id"] in set(mini_slice[0])]
    convs = [c for c in train.conversations if c["collection"] == "cast2022"][:2]
    path = Dataset("tiny-rep", docs, {}, {}, convs, {"rel_threshold": 1}).save(tmp_path_factory.mktemp("d") / "t")
    cfg = load_config(None, DiscoConfig, [f"data.train={path}", "data.collections=[cast2022]", "model.max_length=96",
                                          "model.doc_max_length=128", "train.rep_weight=0.05", "train.kl_weight=0",
                                          "train.infonce_weight=0", "train.max_steps=12", "train.warmup=0",
                                          "train.lr=1e-3", "train.log_every=4"])
    return DiscoTrainer(cfg, progress=False)


def test_representation_term_pulls_student_towards_rewrite(rep_trainer):
    import torch

    rows = list(range(6))
    before = rep_trainer.batch_loss(rows, np.random.default_rng(0))[1]
    rep_trainer.fit()
    with torch.no_grad():
        after = rep_trainer.batch_loss(rows, np.random.default_rng(0))[1]
    assert before["rep"] > 0 and after["rep"] < 0.8 * before["rep"], (before, after)
    assert before["loss"] == pytest.approx(0.05 * before["rep"], rel=1e-5)  # only the rep term is on


def test_paired_rows_against_each_baseline():
    from retrieval_kd.bench.cast import BASELINES, paired_rows

    pq = {"raw": [0.0, 0.5, 1.0, 0.0], "history": [0.0, 0.0, 0.5, 0.0], "teacher": [1.0, 1.0, 1.0, 0.5]}
    rows = [{"set": "S", "role": "report", "query": BASELINES[k], "nDCG@3": float(np.mean(v)), "R@100": 0.5,
             "_pq": {f"q{i}": x for i, x in enumerate(v)}} for k, v in pq.items()]
    rows.append({"set": "S", "role": "report", "query": "student", "nDCG@3": 0.75, "R@100": 0.7, "train_s": 1.0,
                 "_pq": {"q0": 1.0, "q1": 0.5, "q2": 1.0, "q3": 0.5}})
    (rec,) = paired_rows(rows, n=200)
    assert rec["vs raw"].startswith("+0.375 [") and rec["vs raw"].endswith("2/2/0")
    assert rec["vs teacher"].startswith("-0.125") and rec["% teacher"] == "86%"
    assert rec["R@100 - history"] == pytest.approx(0.2)


def test_ablation_rows_parse_and_errors_name_the_row(tmp_path):
    from retrieval_kd.bench.cast import ablation_configs
    from retrieval_kd.methods.disco.config import DiscoConfig

    base = DiscoConfig.model_validate({"data": {"eval": "cast-eval"}, "train": {"rep_weight": 0.02}})
    good = tmp_path / "a.yaml"
    good.write_text("rows:\n  - {key: best, name: best}\n  - {key: norep, name: no rep, set: [train.rep_weight=0]}\n"
                    "  - {key: shipped, name: shipped, config: configs/disco_cast.yaml}\n")
    rows = ablation_configs(base, good)
    assert [(k, c.train.rep_weight) for k, _, c in rows] == [("best", 0.02), ("norep", 0.0), ("shipped", 0.0)]
    assert rows[2][2].data.eval == "cast-eval" and rows[2][2].data.train == "cast-train"  # leak check on cast-eval
    bad = tmp_path / "b.yaml"
    bad.write_text("rows:\n  - {key: x, name: x, set: [train.rep_loss=huber]}\n")
    with pytest.raises(ConfigError, match=r"b.yaml: rows\[0\] \(x\): .*rep_loss"):
        ablation_configs(base, bad)
    bad.write_text("rows:\n  - {key: x, nam: x}\n")
    with pytest.raises(ConfigError, match=r"rows\[0\]: needs 'key' and 'name'"):
        ablation_configs(base, bad)


def test_masked_lm_from_a_bert_body_is_layernorm_times_embeddings(tmp_path, splade_path):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    from retrieval_kd.teachers.splade import build_mlm_from_encoder

    torch.manual_seed(0)
    body = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64))
    body.save_pretrained(tmp_path / "body")
    AutoTokenizer.from_pretrained(splade_path).save_pretrained(tmp_path / "body")
    mlm = BertForMaskedLM.from_pretrained(build_mlm_from_encoder(tmp_path / "body", tmp_path / "mlm")).eval()
    ids = torch.tensor([[101, 7592, 2088, 102]])
    with torch.no_grad():
        h = body.eval()(ids).last_hidden_state
        ref = torch.nn.functional.layer_norm(h, (32,), eps=body.config.layer_norm_eps) @ body.embeddings.word_embeddings.weight.T
        got = mlm(ids).logits
    assert mlm.cls.predictions.decoder.weight.data_ptr() == mlm.bert.embeddings.word_embeddings.weight.data_ptr()
    assert torch.allclose(got, ref, atol=1e-3)


def test_utterance_pooling_in_torch_and_in_the_onnx_graph(splade_path, tmp_path):
    import torch

    from retrieval_kd.errors import RKDError
    from retrieval_kd.export.conversational import export_student_onnx
    from retrieval_kd.methods.disco.student import SpladeStudent
    from retrieval_kd.teachers.splade import SpladeEncoder, pool_mask

    ids, att = torch.tensor([[101, 5, 102, 6, 102, 0]]), torch.tensor([[1, 1, 1, 1, 1, 0]])
    assert pool_mask(ids, att, 102, "utterance").tolist() == [[1, 1, 1, 0, 0, 0]]
    assert pool_mask(ids, att, 102, "all").tolist() == att.tolist()
    with pytest.raises(RKDError, match="model.pool must be one of"):
        pool_mask(ids, att, 102, "first")
    st = SpladeStudent(splade_path, max_length=64, pool="utterance")
    texts = ["what are its symptoms? [SEP] throat cancer is a cancer of the throat", "tiger sharks"]
    with torch.no_grad():
        q = st.forward(texts).numpy()
    run = st.save(tmp_path / "student")
    enc = SpladeEncoder(run, max_length=64)
    assert enc.pool == "utterance" and np.abs(enc.encode(texts).toarray() - q).max() < 1e-5
    full = SpladeEncoder(splade_path, max_length=64, segments=True).encode(texts[:1]).toarray()
    assert (q[0] > 0).sum() < (full[0] > 0).sum()  # the context's own terms are not pooled
    info = export_student_onnx(run, tmp_path / "onnx", parity_texts=texts)
    assert info["pool"] == "utterance" and info["parity_max_abs_diff"] <= 1e-4


def test_context_negatives_are_the_turns_own_last_responses(mini_slice, tmp_path, shared_data):
    """candidates.context 1: each turn's last system response is one of its candidates, as a document vector of the
    frozen encoder (appended once when it is not a pool document), never in the teachers' rankings; off by default."""
    import pydantic

    from retrieval_kd import datasets
    from retrieval_kd.config import load_config
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import DiscoTrainer

    train = datasets.load("cast-train")
    mini = datasets.load("cast-mini")
    convs = [c for c in train.conversations if c["collection"] == "cast2022"][:1]
    said = [" ".join(h["text"].split()) for t in convs[0]["turns"] for h in t["history"] if h.get("role") == "system"]
    said = list(dict.fromkeys(x for x in said if x))
    in_pool = {said[0]}  # one response is a pool document (its row is reused), the others are appended
    docs = [d for d in mini.corpus if d["id"] in set(mini_slice[0]) and " ".join(d["contents"].split()) not in said]
    docs.append({"id": "response-0", "contents": said[0]})
    path = Dataset("tiny-ctx", docs, {}, {}, convs, {"rel_threshold": 1}).save(tmp_path / "t")
    base = [f"data.train={path}", "data.collections=[cast2022]", "model.max_length=64", "model.doc_max_length=128",
            "candidates.in_batch=false"]
    tr = DiscoTrainer(load_config(None, DiscoConfig, [*base, "candidates.context=1"]), progress=False)
    n_pool = len(docs)
    assert tr.docs.shape[0] == n_pool + len(said) - 1 and int(tr.ranks.max()) < n_pool  # appended: never ranked
    last = [next((h["text"] for h in reversed(t["history"]) if h.get("role") == "system" and h.get("text")), None)
            for t in tr.turns]
    assert any(x is None for x in last) and sum(x is not None for x in last) >= 3
    rng = np.random.default_rng(0)
    for r, text in enumerate(last):
        assert len(tr.context[r]) == (text is not None)
        if text is None:
            continue
        row = tr.context[r][0]
        assert (row == n_pool - 1) == (" ".join(text.split()) in in_pool)  # the pool's own row, else an appended one
        want = tr.encoder.encode([" ".join(text.split())], show_progress=False)
        assert abs(tr.docs[row] - want).max() < 1e-4  # the response's own document vector
        cand, mask = tr._candidates([r], rng)
        assert mask[0, cand.index(row)]  # scored on it
    _, parts = tr.batch_loss(list(range(4)), rng)
    assert np.isfinite(parts["loss"])
    off = DiscoTrainer(load_config(None, DiscoConfig, base), progress=False)
    assert off.docs.shape[0] == n_pool and all(c == [] for c in off.context)
    with pytest.raises(pydantic.ValidationError, match="context"):
        DiscoConfig.model_validate({"candidates": {"context": -1}})


def test_pseudo_responses_read_the_previous_turns_top_teacher_document():
    """data.pseudo_responses: a turn whose history ends with a user turn gets, as the last response, the text of the
    document the first available teacher ranks first for that previous turn; turns that already read a response,
    first turns and turns whose previous turn is not a training turn are left as they were; inputs not mutated."""
    from retrieval_kd.methods.disco.config import DataConfig
    from retrieval_kd.methods.disco.trainer import pseudo_responses

    u = lambda text: {"role": "user", "text": text}  # noqa: E731
    hist1 = [u("what is a reef")]
    turns = [
        {"conversation": "c/1", "utterance": "what is a reef", "history": []},
        {"conversation": "c/1", "utterance": "what threatens  it", "history": hist1},
        {"conversation": "c/1", "utterance": "and fish", "history": [*hist1, u("what threatens it")]},
        {"conversation": "c/2", "utterance": "x", "history": [u("q"), {"role": "system", "text": "said"}]},
        {"conversation": "c/3", "utterance": "y", "history": [u("not a training turn")]},
    ]
    ranks = np.array([[[2, 0], [-1, -1], [1, 2], [0, 1], [0, 1]],   # teacher 0 (no ranking for turn 1)
                      [[0, 1], [3, 0], [2, 0], [0, 1], [0, 1]]])    # teacher 1
    docs = ["d0", "d1", "d2", "d3"]
    assert pseudo_responses(turns, ranks, docs) == 2
    assert turns[0]["history"] == [] and hist1 == [u("what is a reef")]  # the shared list is not changed
    assert turns[1]["history"][-1] == {"role": "system", "text": "d2"}  # turn 0's first document by teacher 0
    assert turns[2]["history"][-1] == {"role": "system", "text": "d3"}  # turn 1: teacher 0 has none, teacher 1's
    assert turns[3]["history"][-1]["text"] == "said" and turns[4]["history"] == [u("not a training turn")]
    assert DataConfig().pseudo_responses is False


def test_init_collections_must_be_training_collections():
    """model.init_collections names training collections (the first stage reads their turns only)."""
    import pydantic

    from retrieval_kd.methods.disco.config import DiscoConfig

    ok = DiscoConfig.model_validate({"data": {"collections": ["cast2019", "canard"]},
                                     "model": {"init_collections": ["cast2019"]}})
    assert ok.model.init_collections == ["cast2019"] and DiscoConfig().model.init_collections is None
    with pytest.raises(pydantic.ValidationError, match="model.init_collections.ikat2024"):
        DiscoConfig.model_validate({"data": {"collections": ["cast2019"]}, "model": {"init_collections": ["ikat2024"]}})


def test_pseudo_responses_reach_the_students_input_and_its_candidates(mini_slice, tmp_path):
    """The trainer with data.pseudo_responses: CAsT 2019 turns (no responses) read the previous turn's top teacher
    document, which with candidates.context=1 is also their candidate; the count is recorded; off, nothing changes."""
    from retrieval_kd import datasets
    from retrieval_kd.config import load_config
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import DiscoTrainer

    train, mini = datasets.load("cast-train"), datasets.load("cast-mini")
    convs = [c for c in train.conversations if c["collection"] == "cast2019"][:1]
    docs = [d for d in mini.corpus if d["id"] in set(mini_slice[0])]
    path = Dataset("tiny-pseudo", docs, {}, {}, convs, {"rel_threshold": 1}).save(tmp_path / "t")
    base = [f"data.train={path}", "data.collections=[cast2019]", "model.max_length=64", "model.doc_max_length=128",
            "candidates.in_batch=false"]
    off = DiscoTrainer(load_config(None, DiscoConfig, base), progress=False)
    tr = DiscoTrainer(load_config(None, DiscoConfig, [*base, "data.pseudo_responses=true", "candidates.context=1"]),
                      progress=False)
    assert off.n_pseudo == 0 and tr.n_pseudo == len(tr.turns) - 1 >= 2  # every turn but the first
    for r, t in enumerate(tr.turns[1:], start=1):
        top = int(tr.ranks[0, r - 1, 0])
        assert t["history"][-1] == {"role": "system", "text": tr.train_ds.doc_texts[top]}
        assert tr.texts[r] != off.texts[r] and tr.context[r] == [top]  # read, and the pool's own row as candidate
    assert all(h.get("role") != "system" for c in convs for t in c["turns"] for h in t["history"])  # data unchanged
