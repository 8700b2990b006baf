"""Configs (YAML, pydantic) of the DRR recipes and the code that reads them: train a rewriter, run the LLM teacher."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from ..config import StrictModel
from ..errors import ConfigError
from ..teachers.queries import Example


class TeacherSource(StrictModel):
    """Where (dialogue, teacher queries) pairs come from."""

    dataset: str  # conversations whose last turn carries teacher_queries, or any dataset with `jsonl`
    jsonl: str | None = None  # teacher queries by id (e.g. the LLM teacher's output) replacing the dataset's
    synthetic_dialogues: bool = False  # zh: multi-round dialogues built from the dataset's ask→title pairs
    exclude_names_from: str | None = None  # dataset whose medicine names the synthetic dialogues must not use
    limit: int | None = None


class TrainParams(StrictModel):
    epochs: int = 3
    batch_size: int = 16
    lr: float = 5e-5
    max_length: int = 256
    add_cjk: bool = False  # add CJK characters of the training data to the tokenizer (zh)
    unk_prob: float = 0.0  # word dropout to [UNK]: unseen medicine names must be judged from their context
    mask_entities: bool = False  # zh: medicine names mined from the training texts become [MASK] (see tagging.py)
    entity_weight: float = 1.0  # loss weight of [MASK]ed entity tokens (which entity to carry)
    seed: int = 0
    device: str | None = None  # None: cuda when available, else cpu


class TrainRewriterConfig(StrictModel):
    student: Literal["extractive", "seq2seq"] = "extractive"
    base: str | None = None  # extractive: encoder folder (None = bundled MiniLM); seq2seq: HF seq2seq folder
    tiny_seq2seq: bool = False  # seq2seq without `base`: start from a tiny T5 built from a config (completeness)
    teachers: list[TeacherSource]
    train: TrainParams = TrainParams()
    mode: Literal["append", "replace", "both"] = "append"  # appending kept words beat replacing the question
    boost: int = 2
    keep: Literal["terms", "entities"] = "terms"  # extractive: all kept words, or only masked entities (zh)
    carry: bool = False  # keep='entities': a question keeping no entity carries the history's most probable one
    #                      (otherwise only a history entity the tagger keeps is carried: the newest)
    out: str


class LLMTeacherConfig(StrictModel):
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "local"
    api_key_env: str | None = None  # name of the environment variable holding the key (never the key itself)
    dataset: str
    ids: list[str] | None = None
    limit: int | None = None
    cache: str = "runs/llm-teacher/cache.jsonl"
    out: str = "runs/llm-teacher/queries.jsonl"
    max_retries: int = 3
    timeout: float = 120.0
    temperature: float = 0.0
    max_tokens: int = 256
    tool_choice: str = "search"  # 'search' forces the tool; 'auto' or 'required' as the server supports


def collect_examples(sources: list[TeacherSource]) -> list[Example]:
    """Training examples from every source; a source with no usable example is an error naming it."""
    from .. import datasets
    from ..teachers.queries import attach, examples_from_dataset, read_jsonl_queries, zh_dialogue_examples

    out: list[Example] = []
    for src in sources:
        ds = datasets.load(src.dataset)
        if src.synthetic_dialogues:
            exclude = {d.get("drug", "") for d in datasets.load(src.exclude_names_from).corpus} \
                if src.exclude_names_from else set()
            ex = zh_dialogue_examples(ds, exclude - {""})
        elif src.jsonl:
            from ..teachers.queries import dialogue_of

            base = [{"id": c["id"], "dialogue": dialogue_of(c), "queries": []} for c in ds.conversations] or \
                [{"id": q, "dialogue": [{"role": "user", "text": t}], "queries": []} for q, t in ds.queries.items()]
            ex = attach(base, read_jsonl_queries(src.jsonl))
        else:
            ex = examples_from_dataset(ds)
        if src.limit:
            ex = ex[: src.limit]
        if not ex:
            raise ConfigError(f"teacher source {src.model_dump(exclude_none=True)} gave no examples")
        out.extend(ex)
    return out


def train_rewriter(cfg: TrainRewriterConfig, log=print) -> Path:
    """Collect teacher examples and train the configured student; the resolved config is saved beside it."""
    from ..trainers.rewriter import cjk_chars, init_tiny_seq2seq, train_seq2seq, train_tagger

    examples = collect_examples(cfg.teachers)
    log(f"{len(examples)} training examples from {len(cfg.teachers)} teacher source(s)")
    p = cfg.train
    names: list[str] = []
    if p.mask_entities:
        from ..data.medical_zh import mine_drug_names

        names = sorted(set(mine_drug_names(t["text"] for e in examples for t in e["dialogue"]))
                       | {n for e in examples for n in e.get("names", [])})
        log(f"{len(names)} medicine names mined from the training dialogues are [MASK]ed")
    if cfg.student == "extractive":
        return train_tagger(examples, cfg.out, base=cfg.base, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                            max_length=p.max_length, add_cjk=p.add_cjk, seed=p.seed, mode=cfg.mode, boost=cfg.boost,
                            keep=cfg.keep, carry=cfg.carry, unk_prob=p.unk_prob,
                            entity_weight=p.entity_weight, names=names, device=p.device, config=cfg.model_dump(), log=log)
    base = cfg.base
    if not base and cfg.tiny_seq2seq:
        extra = cjk_chars(examples) if p.add_cjk else []
        base = str(init_tiny_seq2seq(Path(cfg.out).with_name(Path(cfg.out).name + "-init"), extra_tokens=extra))
    if not base:
        raise ConfigError("student seq2seq needs `base` (a Hugging Face seq2seq folder) or tiny_seq2seq: true")
    return train_seq2seq(examples, cfg.out, base, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                         max_length=p.max_length, seed=p.seed, config=cfg.model_dump(), log=log)


def run_llm_teacher(cfg: LLMTeacherConfig, log=print) -> dict:
    """Ask the LLM teacher for every dialogue of a dataset; writes queries JSONL + report.json; returns the report."""
    from .. import datasets
    from ..teachers.llm import LLMTeacher
    from ..teachers.queries import dialogue_of, write_jsonl_queries
    from ..utils import run_info, write_json

    key = None
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ConfigError(f"api_key_env: environment variable {cfg.api_key_env} is not set")
    ds = datasets.load(cfg.dataset)
    dialogues = {c["id"]: dialogue_of(c) for c in ds.conversations} or \
        {q: [{"role": "user", "text": t}] for q, t in ds.queries.items()}
    if cfg.ids:
        dialogues = {i: dialogues[i] for i in cfg.ids if i in dialogues}
    if cfg.limit:
        dialogues = dict(list(dialogues.items())[: cfg.limit])
    teacher = LLMTeacher(cfg.base_url, cfg.model, key, cfg.cache, cfg.max_retries, cfg.timeout, cfg.temperature,
                         cfg.max_tokens, cfg.tool_choice)
    queries, rep = teacher.run(dialogues)
    write_jsonl_queries(cfg.out, queries)
    report = {**rep.as_dict(), "dataset": ds.name, "model": cfg.model, "base_url": cfg.base_url}
    write_json(Path(cfg.out).with_suffix(".report.json"), report)
    write_json(Path(cfg.out).with_suffix(".run_info.json"), run_info(cfg.model_dump()))
    log(json.dumps({k: v for k, v in report.items() if k != "failed_ids"}, ensure_ascii=False))
    return report
