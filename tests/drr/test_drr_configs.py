"""The DRR YAML configs validate; teacher sources assemble training examples (JSONL teacher included)."""
from __future__ import annotations

from pathlib import Path

import pytest

from retrieval_kd.bench.medicineqa import EvalConfig
from retrieval_kd.config import load_config
from retrieval_kd.errors import ConfigError
from retrieval_kd.methods.drr.config import LLMTeacherConfig, TeacherSourceConfig, TrainRewriterConfig
from retrieval_kd.methods.drr.recipes import collect_examples
from retrieval_kd.teachers.queries import write_jsonl_queries

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name,model", [("drr_liveqa.yaml", TrainRewriterConfig), ("drr_medicineqa.yaml",
                         TrainRewriterConfig), ("drr_seq2seq_minilm.yaml", TrainRewriterConfig),
                         ("drr_dense_query.yaml", TrainRewriterConfig), ("drr_eval.yaml", EvalConfig),
                         ("drr_eval_dev.yaml", EvalConfig), ("drr_llm_teacher.yaml", LLMTeacherConfig)])
def test_configs_validate(name, model):
    cfg = load_config(CONFIGS / name, model)
    assert cfg.model_dump()
    with pytest.raises(ConfigError, match="no_such_key: Extra inputs"):
        load_config(CONFIGS / name, model, ["no_such_key=1"])


def test_collect_examples_from_dataset_and_jsonl_teacher(shared_data, tmp_path):
    ex = collect_examples([TeacherSourceConfig(dataset="liveqa-med-train", limit=5)])
    assert len(ex) == 5 and all(e["queries"] for e in ex)
    path = write_jsonl_queries(tmp_path / "llm.jsonl", {"T1-Q1": ["cardiac amyloidosis literature"]})
    ex = collect_examples([TeacherSourceConfig(dataset="liveqa-med-train", jsonl=str(path))])
    assert [(e["id"], e["queries"]) for e in ex] == [("T1-Q1", ["cardiac amyloidosis literature"])]
    empty = write_jsonl_queries(tmp_path / "none.jsonl", {"nope": ["x"]})
    with pytest.raises(ConfigError, match="gave no examples"):
        collect_examples([TeacherSourceConfig(dataset="liveqa-med-train", jsonl=str(empty))])
