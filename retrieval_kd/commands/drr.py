"""Distill-Retrieve-Read commands: train rewriter, teacher llm, export rewriter, index bm25, rewrite."""
from __future__ import annotations

import json

import typer

from retrieval_kd.cli import app, export_app, index_app, teacher_app, train_app

_SET = typer.Option(None, "--set", help="override a config key, e.g. --set train.epochs=1 (repeatable)")


@train_app.command("rewriter")
def train_rewriter_cmd(
    config: str = typer.Option(..., "--config", "-c", help="YAML, e.g. configs/drr_liveqa.yaml"),
    overrides: list[str] | None = _SET,
) -> None:
    """Train a query-rewriter student (extractive tagger or seq2seq) from teacher queries."""
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.drr.config import TrainRewriterConfig
    from retrieval_kd.methods.drr.recipes import train_rewriter

    cfg = load_config(config, TrainRewriterConfig, overrides)
    out = train_rewriter(cfg, log=typer.echo)
    typer.echo(f"student -> {out}")


@teacher_app.command("llm")
def teacher_llm_cmd(
    config: str = typer.Option(..., "--config", "-c", help="YAML, e.g. configs/drr_llm_teacher.yaml"),
    overrides: list[str] | None = _SET,
) -> None:
    """Ask an OpenAI-compatible LLM to call the `search` tool for each dialogue (cached; failures reported)."""
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.drr.config import LLMTeacherConfig
    from retrieval_kd.methods.drr.recipes import run_llm_teacher

    cfg = load_config(config, LLMTeacherConfig, overrides)
    report = run_llm_teacher(cfg, log=typer.echo)
    typer.echo(f"queries -> {cfg.out}  ({report['parsed']}/{report['asked']} parsed, "
               f"{sum(report['failed'].values())} failed, {report['cached']} from cache)")


@export_app.command("rewriter")
def export_rewriter_cmd(
    src: str = typer.Argument(..., help="trained extractive student folder"),
    dest: str = typer.Argument(..., help="output folder (rewriter.onnx, tokenizer.json, rewriter.json)"),
    vocabulary: str | None = typer.Option(None, help="dataset whose corpus gives the correction vocabulary"),
    names_field: str = typer.Option("drug", help="corpus field holding entity names (zh medicine names)"),
) -> None:
    """Export the extractive rewriter to ONNX (parity-checked) for the torch-free server."""
    from retrieval_kd.export.rewriter import export_tagger

    info = export_tagger(src, dest, corrector=_corrector(vocabulary, names_field) if vocabulary else None)
    typer.echo(json.dumps(info, indent=2))


@export_app.command("medical-bundle")
def export_medical_bundle_cmd(
    rewriter_dir: str = typer.Argument(..., help="trained extractive student folder, or its exported ONNX folder"),
    dest: str = typer.Argument(..., help="bundle folder to create"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="medicine database: registered name or folder"),
    name: str | None = typer.Option(None, help="index name (default: the folder name)"),
    tokenizer: str = typer.Option("en", help="BM25 tokenizer: en | zh-bigram | zh-jieba"),
    fusion: str = typer.Option("rrf-max", help="fusion of several queries of one dialogue: rrf-max | rrf"),
    correct: bool = typer.Option(False, help="correct query terms against the database vocabulary (safe: entity "
                                 "names never change; zh medicine databases always link names and aspects)"),
) -> None:
    """A "medical" serving bundle (Distill-Retrieve-Read): ONNX rewriter + BM25 + doc store."""
    from retrieval_kd.export.medical import build_medical_bundle

    m = build_medical_bundle(rewriter_dir, dest, name=name, dataset=dataset, tokenizer=tokenizer, fusion=fusion,
                             correct=correct)
    typer.echo(f"{m['name']} (medical): {m['docstore']['count']} documents, metrics {m['metrics']} -> {dest}")


def _corrector(vocabulary: str, names_field: str = "drug"):
    """Correction vocabulary of a dataset's corpus: medicine names + aspect words when its records name drugs, else
    the safe English corrector (entity names and dictionary words are never changed)."""
    from retrieval_kd.datasets import load
    from retrieval_kd.methods.drr.safety import corrector_for

    return corrector_for(load(vocabulary), names_field)


@index_app.command("bm25")
def index_bm25_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    out: str = typer.Option(..., "--out", "-o"),
    tokenizer: str = typer.Option("en", help="en | zh-bigram | zh-jieba"),
    k1: float = typer.Option(0.9),
    b: float = typer.Option(0.4),
) -> None:
    """Build the built-in BM25 index (numpy; meta.json, terms, docids, postings)."""
    from retrieval_kd.datasets import load
    from retrieval_kd.index.bm25 import BM25Index

    ds = load(dataset)
    idx = BM25Index.build(ds.doc_texts, ds.doc_ids, tokenizer, k1=k1, b=b, meta={"dataset": ds.name})
    idx.save(out)
    typer.echo(f"{ds.name}: {idx.meta['n_docs']} docs, {idx.meta['n_terms']} terms -> {out}")


@app.command("rewrite")
def rewrite_cmd(
    rewriter: str = typer.Argument(..., help="student folder (torch or exported ONNX), last-utterance, whole-dialogue"),
    turns: list[str] = typer.Argument(..., help="dialogue turns, oldest first; prefix 'assistant:' for replies"),
    vocabulary: str | None = typer.Option(None, help="torch student: dataset giving the correction vocabulary"),
) -> None:
    """Rewrite one dialogue into search queries."""
    from pathlib import Path

    dialogue = [{"role": "assistant", "text": t[len("assistant:"):].strip()} if t.startswith("assistant:")
                else {"role": "user", "text": t} for t in turns]
    if (Path(rewriter) / "rewriter.onnx").exists():
        from retrieval_kd.serving.rewriter import OnnxRewriter

        rw = OnnxRewriter(rewriter)
    else:
        from retrieval_kd.methods.drr.rewriters import load_rewriter

        kw = {}
        if vocabulary:
            kw["corrector"] = _corrector(vocabulary)
        rw = load_rewriter(rewriter, **kw)
    for q in rw.rewrite(dialogue):
        typer.echo(q)
