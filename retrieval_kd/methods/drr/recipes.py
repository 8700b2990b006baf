"""Configs (YAML, pydantic) of the DRR recipes and the code that reads them: train a rewriter, run the LLM teacher."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retrieval_kd.errors import ConfigError
from retrieval_kd.methods.drr.config import LLMTeacherConfig, TeacherSourceConfig, TrainRewriterConfig
from retrieval_kd.teachers.queries import Example


def collect_examples(sources: list[TeacherSourceConfig]) -> list[Example]:
    """Training examples from every source; a source with no usable example is an error naming it."""
    from retrieval_kd import datasets
    from retrieval_kd.teachers.queries import attach, examples_from_dataset, read_jsonl_queries, zh_dialogue_examples

    out: list[Example] = []
    for src in sources:
        ds = datasets.load(src.dataset)
        if src.synthetic_dialogues:
            exclude = {d.get("drug", "") for d in datasets.load(src.exclude_names_from).corpus} \
                if src.exclude_names_from else set()
            ex = zh_dialogue_examples(ds, exclude - {""}, aside=src.aside)
        elif src.jsonl:
            from retrieval_kd.teachers.queries import dialogue_of

            base = [{"id": c["id"], "dialogue": dialogue_of(c), "queries": []} for c in ds.conversations] or \
                [{"id": q, "dialogue": [{"role": "user", "text": t}], "queries": []} for q, t in ds.queries.items()]
            ex = attach(base, read_jsonl_queries(src.jsonl))
        else:
            ex = examples_from_dataset(ds)
        if src.split != "all":
            from retrieval_kd.teachers.queries import split_of

            ex = [e for e in ex if split_of(e["id"], src.dev_share) == src.split]
        if src.limit:
            ex = ex[: src.limit]
        if not ex:
            raise ConfigError(f"teacher source {src.model_dump(exclude_none=True)} gave no examples")
        out.extend(ex)
    return out


def train_rewriter(cfg: TrainRewriterConfig, log: Callable[[str], Any] = print) -> Path:
    """Collect teacher examples and train the configured student; the resolved config is saved beside it."""
    from retrieval_kd.methods.drr.train import cjk_chars, init_tiny_seq2seq, train_seq2seq, train_tagger

    if cfg.student == "dense-query":
        from retrieval_kd.methods.drr.dense_query import train_dense_query

        return train_dense_query(cfg, log)
    examples = collect_examples(cfg.teachers)
    log(f"{len(examples)} training examples from {len(cfg.teachers)} teacher source(s)")
    p = cfg.train
    names: list[str] = []
    if p.mask_entities:
        from retrieval_kd.data.medical_zh import mine_drug_names

        names = sorted(set(mine_drug_names(t["text"] for e in examples for t in e["dialogue"]))
                       | {n for e in examples for n in e.get("names", [])})
        log(f"{len(names)} medicine names mined from the training dialogues are [MASK]ed")
    if cfg.student == "extractive":
        return train_tagger(cfg, examples, cfg.out, names=names, log=log)
    base = cfg.base
    if not base and cfg.warm_start:
        from retrieval_kd.methods.drr.train import init_bert2bert

        base = str(init_bert2bert(Path(cfg.out).with_name(Path(cfg.out).name + "-init")))
    if not base and cfg.tiny_seq2seq:
        extra = cjk_chars(examples) if p.add_cjk else []
        base = str(init_tiny_seq2seq(Path(cfg.out).with_name(Path(cfg.out).name + "-init"), extra_tokens=extra))
    if not base:
        raise ConfigError("student seq2seq needs `base` (a Hugging Face seq2seq folder), warm_start: true or "
                          "tiny_seq2seq: true")
    return train_seq2seq(cfg, examples, base, cfg.out, log=log)


def run_llm_teacher(cfg: LLMTeacherConfig, log: Callable[[str], Any] = print) -> dict:
    """Ask the LLM teacher for every dialogue of a dataset; writes queries JSONL + report.json; returns the report.

    With `feedback`, `samples` tool calls per train-split dialogue are kept only where their BM25 retrieval finds
    the gold evidence (methods/drr/feedback.py); the JSONL then holds the kept queries.
    """
    from retrieval_kd import datasets
    from retrieval_kd.teachers.queries import dialogue_of, write_jsonl_queries
    from retrieval_kd.utils import run_info, write_json

    if cfg.samples > 1 and cfg.temperature <= 0:
        raise ConfigError(f"samples: {cfg.samples} samples need temperature > 0 (got {cfg.temperature})")
    if cfg.samples > 1 and cfg.feedback is None:
        raise ConfigError("samples: several samples per dialogue are only used with `feedback` (filtering)")
    ds = datasets.load(cfg.dataset)
    dialogues = {c["id"]: dialogue_of(c) for c in ds.conversations} or \
        {q: [{"role": "user", "text": t}] for q, t in ds.queries.items()}
    reports: dict[str, list[str]] = {}
    if cfg.feedback is not None:  # train split only: an asked-for dev / report id is an error, the rest is left out
        from retrieval_kd.methods.drr.feedback import check_train_only
        from retrieval_kd.teachers.queries import split_of

        reports = {name: list(datasets.load(name).queries) for name in cfg.feedback.report_sets}
        check_train_only(cfg.ids or [], ds.qrels, ds.name, cfg.feedback.dev_share, reports)
        dialogues = {i: d for i, d in dialogues.items() if split_of(i, cfg.feedback.dev_share) == "train"}
    if cfg.ids:
        dialogues = {i: dialogues[i] for i in cfg.ids if i in dialogues}
    if cfg.limit:
        dialogues = dict(list(dialogues.items())[: cfg.limit])
    teacher = _llm_teacher(cfg)
    extra: dict[str, Any] = {}
    if cfg.feedback is None:
        queries, rep = teacher.run(dialogues)
        report = rep.as_dict()
    else:
        from retrieval_kd.methods.drr.feedback import run_feedback

        queries, res = run_feedback(teacher, ds, dialogues, cfg, reports, log)
        report = res["report"]
        write_json(Path(cfg.out).with_suffix(".details.json"), {"details": res["details"], "samples": res["samples"]})
        extra = {"parsed_samples": {i: d["parsed_samples"] for i, d in res["details"].items()}}
    write_jsonl_queries(cfg.out, queries, **extra)
    report = {**report, "dataset": ds.name, "model": cfg.model, "base_url": cfg.base_url}
    write_json(Path(cfg.out).with_suffix(".report.json"), report)
    write_json(Path(cfg.out).with_suffix(".run_info.json"), run_info(cfg.model_dump()))
    log(json.dumps({k: v for k, v in report.items() if k != "failed_ids"}, ensure_ascii=False))
    return report


def _llm_teacher(cfg: LLMTeacherConfig):
    """The configured client; the API key is read from the environment variable `api_key_env` names."""
    from retrieval_kd.teachers.llm import LLMTeacher

    key = None
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ConfigError(f"api_key_env: environment variable {cfg.api_key_env} is not set")
    return LLMTeacher(cfg.base_url, cfg.model, key, cfg.cache, cfg.max_retries, cfg.timeout, cfg.temperature,
                      cfg.max_tokens, cfg.tool_choice)
