"""Spine commands: data list|prepare, teacher encode, index build, search, eval run, demo."""
from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.cli import app, data_app, eval_app, index_app, teacher_app


@data_app.command("list")
def data_list() -> None:
    """List registered collections, whether raw data is present and cached counts."""
    from retrieval_kd.datasets import describe
    from retrieval_kd.paths import data_root

    typer.echo(f"data root: {data_root()}")
    for row in describe():
        counts = row["counts"]
        c = f"docs={counts['docs']} queries={counts['queries']} qrels={counts['qrels']}" if counts else "not prepared"
        typer.echo(f"{row['name']:<24} raw={'yes' if row['raw'] else 'no ':<3} {c:<44} {row['description']}")


@data_app.command("prepare")
def data_prepare(
    names: list[str] = typer.Argument(None, help="dataset names (default: all with raw data present)"),
    refresh: bool = typer.Option(False, help="re-normalise even when cached"),
) -> None:
    """Normalise raw collections into the cache (corpus.jsonl, queries.tsv, qrels.txt, meta.json)."""
    from retrieval_kd.datasets import describe, load

    names = names or [r["name"] for r in describe() if r["raw"]]
    for name in names:
        ds = load(name, refresh=refresh)
        typer.echo(f"{name}: {ds.path}  {ds.counts()}")


@teacher_app.command("encode")
def teacher_encode(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name or folder"),
    model: str | None = typer.Option(None, help="local HF encoder folder (default: bundled all-MiniLM-L6-v2)"),
    batch_size: int = typer.Option(64),
    dtype: str = typer.Option("float32", help="float32 or float16 rows"),
    shard: str | None = typer.Option(None, help="i/n: encode only the i-th of n disjoint parts of the documents "
                                     "(run n of these anywhere the cache folder is shared, then once without)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar (also RKD_QUIET=1)"),
) -> None:
    """Embed a collection's documents and queries with the dense teacher (content-addressed cache, resumable)."""
    from retrieval_kd.datasets import load
    from retrieval_kd.progress import progress_enabled
    from retrieval_kd.teachers.dense import DenseEncoder, encode_cached, encode_queries
    from retrieval_kd.teachers.store import parse_shard
    from retrieval_kd.threads import set_threads

    parts = parse_shard(shard)
    set_threads()
    ds = load(dataset)
    enc = DenseEncoder(model, batch_size=batch_size)
    show = progress_enabled(quiet)
    if parts is not None:
        n = encode_cached(enc, ds.doc_texts, f"corpus:{ds.name}", show_progress=show, dtype=dtype, shard=parts)
        typer.echo(f"{ds.name}: shard {shard} encoded {n} documents (the rest were cached or other shards')")
        return
    docs = encode_cached(enc, ds.doc_texts, f"corpus:{ds.name}", show_progress=show, dtype=dtype)
    _, q = encode_queries(enc, ds.queries, ds.name, dtype=dtype)
    typer.echo(f"{ds.name}: docs {docs.shape} queries {q.shape} -> {Path(docs.filename).parent}")


@index_app.command("build")
def index_build(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    factory: str = typer.Option("OPQ16,IVFn,PQ16x8np", help="faiss factory string; IVFn = IVF√N"),
    out: Path = typer.Option(..., "--out", "-o", help="index folder to write (atomically)"),
    model: str | None = typer.Option(None, help="teacher model folder (default: bundled MiniLM)"),
    seed: int = typer.Option(0),
) -> None:
    """Train and fill a faiss index from the teacher's embeddings; save with docids + meta.json."""
    import numpy as np

    from retrieval_kd.datasets import load
    from retrieval_kd.index import FaissIndex
    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus
    from retrieval_kd.threads import set_threads

    set_threads()
    ds = load(dataset)
    enc = DenseEncoder(model)
    emb = np.asarray(encode_corpus(enc, ds))
    index = FaissIndex.build(emb, ds.doc_ids, factory, seed=seed,
                             meta={"dataset": dataset, "teacher": str(enc.path), "teacher_fingerprint": enc.fingerprint})
    index.save(out)
    typer.echo(f"{index.factory}: {index.index.ntotal} vectors, {index.bytes_per_vector:g} B/vector -> {out}")


@app.command("search")
def search(
    index_dir: Path = typer.Argument(..., help="saved index folder"),
    query: str = typer.Argument(...),
    k: int = typer.Option(10, "-k"),
    nprobe: int | None = typer.Option(None),
) -> None:
    """Search a saved faiss index with a text query (encoded by the index's teacher)."""
    from retrieval_kd.index import FaissIndex
    from retrieval_kd.teachers.dense import DenseEncoder

    index = FaissIndex.load(index_dir)
    enc_dir = index_dir / "query_encoder"
    enc = DenseEncoder(enc_dir if enc_dir.exists() else index.meta.get("teacher"))
    scores, idx = index.search(enc.encode([query]), k, nprobe)
    for rank, (s, i) in enumerate(zip(scores[0], idx[0]), 1):
        if i >= 0:
            typer.echo(f"{rank:>3}  {s:.4f}  {index.docids[i]}")


@eval_app.command("run")
def eval_run(
    run_file: Path = typer.Argument(..., help="TREC run file"),
    qrels: Path | None = typer.Option(None, help="TREC qrels file"),
    dataset: str | None = typer.Option(None, help="or: take qrels from this dataset"),
    measures: str = typer.Option("nDCG@10,RR@10,R@100,P@10", help="ir-measures strings, comma-separated"),
    rel: int | None = typer.Option(None, help="min grade counted relevant (default: dataset's or 1)"),
) -> None:
    """Evaluate a TREC run file against qrels with ir-measures."""
    from retrieval_kd.errors import RKDError
    from retrieval_kd.evaluate import evaluate, read_qrels, read_run

    if (qrels is None) == (dataset is None):
        raise RKDError("give exactly one of --qrels or --dataset")
    if dataset:
        from retrieval_kd.datasets import load

        ds = load(dataset)
        q, rel = ds.qrels, rel if rel is not None else ds.rel_threshold
    else:
        q = read_qrels(qrels)
    res = evaluate(read_run(run_file), q, measures.split(","), rel=rel or 1)
    for m, v in res.items():
        typer.echo(f"{m:<12} {v:.4f}")


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="where indexes, bundle and tables go"),
    serve: bool = typer.Option(True, help="end by serving the bundle briefly and querying it over HTTP"),
) -> None:
    """Encode CACM with the teacher, build exact + faiss baselines, train Distill-VQ, evaluate, serve."""
    from retrieval_kd.demo import run_demo

    run_demo(out, serve=serve)
