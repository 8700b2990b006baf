"""Distill-VQ config validation, pseudo-queries and the fixed train/eval split."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_kd.config import load_config
from retrieval_kd.errors import ConfigError
from retrieval_kd.methods.distill_vq.config import VQConfig
from retrieval_kd.methods.distill_vq.queries import pseudo_queries, split_queries
from retrieval_kd.methods.distill_vq.trainer import DistillVQ

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("vq_*.yaml"))


@pytest.mark.parametrize(
    "override, field",
    [
        ("train.stepz=3", "train.stepz"),
        ("optim.lr_codebooks=-1", "optim.lr_codebooks"),
        ("loss.name=hinge", "loss"),
        ("loss.params.direction=sideways", "loss"),
        ("loss.params.margin=1", "params.margin"),
        ("index.factory=Flat", "index.factory"),
        ("device=tpu", "device"),
        ("candidates.top_k=0", "candidates.top_k"),
        ("queries.real_train_fraction=1.5", "queries.real_train_fraction"),
        ("queries.min_words=9", None),  # fine on its own
    ],
)
def test_bad_key_or_value_names_the_field(override, field):
    if field is None:
        assert load_config(None, VQConfig, [override]).queries.min_words == 9
        return
    with pytest.raises(ConfigError) as e:
        load_config(None, VQConfig, [override])
    assert field in str(e.value)


def test_dict_config_errors_are_config_errors():
    with pytest.raises(ConfigError, match="student.learn_rotation"):
        DistillVQ({"student": {"learn_rotation": True}})


def test_shipped_configs_validate():
    # one recipe per code size serves every collection (its schedule scales with the collection size)
    assert {p.name for p in CONFIGS} >= {"vq_8b.yaml", "vq_16b.yaml"}
    for path in CONFIGS:
        cfg = load_config(path, VQConfig)
        assert cfg.output_dir and cfg.dataset in {"cacm", "med", "cisi", "cranfield", "cf"}
        m = int(path.stem.split("_")[-1].rstrip("b"))
        assert f"PQ{m}x8" in cfg.index.factory


def test_config_hash_ignores_paths_but_not_training():
    a = load_config(None, VQConfig, ["output_dir=a"])
    assert a.config_hash() == load_config(None, VQConfig, ["output_dir=b", "train.progress=false"]).config_hash()
    assert a.config_hash() != load_config(None, VQConfig, ["loss.name=kl"]).config_hash()


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: cacm\noutput_dir: x\ntrain:\n  epochz: 2\n")
    rkd = Path(sys.executable).with_name("rkd")
    out = subprocess.run([str(rkd), "train", "vq", "--config", str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "train.epochz" in out.stderr and "Traceback" not in out.stderr


def test_pseudo_queries_are_seeded_spans():
    docs = [f"w{i}" for i in range(40)], ["short doc"], []
    texts = [" ".join(docs[0]), " ".join(docs[1]), ""]
    q1, src1 = pseudo_queries(texts, 3, 8, 20, seed=1)
    q2, src2 = pseudo_queries(texts, 3, 8, 20, seed=1)
    q3, _ = pseudo_queries(texts, 3, 8, 20, seed=2)
    assert q1 == q2 and (src1 == src2).all() and q1 != q3
    assert list(src1) == [0, 0, 0, 1, 1, 1]  # the empty document yields nothing
    for q, s in zip(q1, src1):
        words = q.split()
        if s == 0:
            assert 8 <= len(words) <= 20 and q in texts[0]
        else:
            assert q == "short doc"
    many, _ = pseudo_queries(texts[:1], 2.5, seed=0)
    assert len(many) in (2, 3)


def test_split_is_fixed_and_held_out():
    qids = [str(i) for i in range(200)]
    train, held = split_queries(qids, 0.0)
    assert train == [] and held == qids
    train, held = split_queries(qids, 0.3)
    assert not set(train) & set(held) and len(train) + len(held) == 200
    assert 30 < len(train) < 90
    train_rev, _ = split_queries(list(reversed(qids)), 0.3)
    assert sorted(train) == sorted(train_rev)  # by hash of the id, not by position
