"""The MiniLM student's first stage: it moves the masked LM towards SPLADE's vectors over the whole vocabulary,
starts sparse, is cached by settings and texts, and the trainer builds it for `student_init: minilm-splade`."""
from __future__ import annotations

import pytest

from retrieval_kd.methods.disco.config import InitConfig

TEXTS = ["what are the side effects of aspirin", "how do glaciers form", "tell me about the roman empire",
         "is coffee bad for your heart", "why is the sky blue", "best way to learn the piano",
         "symptoms of vitamin d deficiency", "how does a jet engine work"]


def test_first_stage_moves_towards_the_splade_teacher_and_is_cached(tmp_path, monkeypatch):
    import torch

    from retrieval_kd.methods.disco.init import _sparse_start, init_folder, splade_init
    from retrieval_kd.methods.disco.student import SpladeStudent
    from retrieval_kd.teachers.splade import SpladeEncoder

    monkeypatch.setenv("RKD_CACHE", str(tmp_path / "cache"))
    teacher = SpladeEncoder(None, max_length=32)
    target = teacher.embed(**teacher.tokenize(TEXTS, 32))

    def cosine(path):
        st = SpladeStudent(path, max_length=32, segments=False)
        with torch.no_grad():
            return float(torch.nn.functional.cosine_similarity(st.forward(TEXTS), target).mean()), st

    raw, st = cosine("minilm-mlm")
    _sparse_start(st, TEXTS)
    with torch.no_grad():
        nnz = float((st.forward(TEXTS) > 0).sum(-1).float().mean())
    assert nnz < 0.02 * st.model.config.vocab_size  # the start is sparse (the raw head is not)
    settings = InitConfig(steps=40, batch_size=8, lr=2e-4, max_length=32)
    said: list[str] = []
    out = splade_init(TEXTS, settings, teacher, log=said.append)
    after, _ = cosine(out)
    assert after > raw + 0.2, (raw, after)
    assert out == init_folder([t for t in TEXTS if t.strip()], settings) and (out / "config.json").exists()
    assert splade_init(TEXTS, settings, teacher, log=said.append) == out and "(cached)" in said[-1]
    assert init_folder(TEXTS, InitConfig(steps=41)) != init_folder(TEXTS, settings)


def test_init_settings_validate():
    from retrieval_kd.methods.disco.config import ModelConfig

    assert ModelConfig(student_init="minilm-splade").init.steps == 400
    with pytest.raises(ValueError):
        ModelConfig(init={"steps": 0})


def test_trainer_builds_the_first_stage_from_its_own_texts(shared_data, tmp_path, monkeypatch):
    """`student_init: minilm-splade` in a real (tiny) DiSCo run: the trainer's student starts from the cached first
    stage built over that run's turn inputs, utterances, rewrites and pool documents."""
    from retrieval_kd import datasets
    from retrieval_kd.config import load_config
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.methods.disco import init as init_mod
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import DiscoTrainer

    monkeypatch.setenv("RKD_CACHE", str(tmp_path / "cache"))
    train = datasets.load("cast-train")
    convs = [c for c in train.conversations if c["collection"] == "cast2022"][:1]
    folder = Dataset("tiny-init", train.corpus[:20], {}, {}, convs, {"rel_threshold": 1}).save(tmp_path / "tiny")
    seen: list[list[str]] = []
    real = init_mod.splade_init
    monkeypatch.setattr(init_mod, "splade_init", lambda texts, s, t, log: seen.append(list(texts)) or real(
        texts, s, t, log))
    cfg = load_config(None, DiscoConfig, [f"data.train={folder}", "model.max_length=64",
                                          "model.doc_max_length=64", "model.student_init=minilm-splade",
                                          "model.init.steps=2", "model.init.batch_size=4", "model.init.max_length=32"])
    tr = DiscoTrainer(cfg, progress=False)
    texts = seen[0]
    turn = tr.turns[0]
    assert tr.texts[0] in texts and turn["utterance"] in texts and train.corpus[0]["contents"] in texts
    assert tr.student.path == init_mod.init_folder(texts, cfg.model.init)
    assert tr.student.model.config.num_hidden_layers == 6  # MiniLM's body, not SPLADE-tiny's 2 layers
