"""DiSCo commands: train disco, index impact|lucene-impact, export disco|disco-bundle, eval
cast-ablations|cast-mix|cast-dev (eval cast: commands/bench)."""
from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.cli import bench_app, eval_app, export_app, index_app, train_app


@train_app.command("disco")
def train_disco_cmd(
    ctx: typer.Context,
    config: Path | None = typer.Option(Path("configs/disco_cast.yaml"), "--config", "-c", help="YAML config"),
    overrides: list[str] = typer.Option([], "--set", help="override a config value, e.g. train.epochs=1"),
    out: Path | None = typer.Option(None, help="run folder (default: the config's `output`)"),
) -> None:
    """Train a DiSCo conversational SPLADE query encoder from rewrite teachers."""
    from retrieval_kd.commands.options import resolve_config
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import train_disco

    cfg = load_config(resolve_config(ctx, "config", config), DiscoConfig, overrides)
    dest = train_disco(cfg, out)
    typer.echo(f"student written to {dest}")


@index_app.command("impact")
def index_impact(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name or folder"),
    out: Path = typer.Option(..., help="index folder to write"),
    encoder: str | None = typer.Option(None, help="SPLADE masked-LM folder (default SPLADE-tiny-msmarco)"),
    scale: float = typer.Option(100.0, help="impact = round(weight * scale)"),
) -> None:
    """Encode a corpus with a SPLADE document encoder and build the built-in impact index."""
    from retrieval_kd.datasets import load
    from retrieval_kd.index.impact import ImpactIndex
    from retrieval_kd.teachers.splade import SpladeEncoder, encode_corpus
    from retrieval_kd.threads import set_threads

    set_threads()
    ds = load(dataset)
    enc = SpladeEncoder(encoder)
    idx = ImpactIndex.build(encode_corpus(enc, ds), ds.doc_ids, enc.vocab, scale,
                            meta={"dataset": ds.name, "encoder": str(enc.path), "encoder_fingerprint": enc.fingerprint})
    idx.save(out)
    typer.echo(f"{out}: {idx.meta['n_docs']} docs, {idx.meta['n_postings']} postings")


@index_app.command("lucene-impact")
def index_lucene_impact(
    impact_dir: Path = typer.Argument(..., help="a built-in impact index folder"),
    out: Path = typer.Argument(..., help="Lucene index folder to write"),
) -> None:
    """Export an impact index as a JsonVectorCollection and index it with Lucene (pyserini + Java 21)."""
    from retrieval_kd.index.impact import ImpactIndex
    from retrieval_kd.index.lucene import build_impact_index, export_json_vectors

    vectors = export_json_vectors(ImpactIndex.load(impact_dir), out.with_name(out.name + ".vectors"))
    build_impact_index(vectors, out)
    typer.echo(f"Lucene impact index written to {out}")


@export_app.command("disco")
def export_disco(
    run_dir: Path = typer.Argument(..., help="a DiSCo run folder (rkd train disco)"),
    out: Path = typer.Argument(..., help="folder for query_encoder.onnx + tokenizer + student.json"),
) -> None:
    """ONNX export of the student query encoder with SPLADE pooling inside (parity-checked)."""
    from retrieval_kd.export.conversational import export_student_onnx

    info = export_student_onnx(run_dir / "student", out)
    typer.echo(f"{out}: parity max abs diff {info['parity_max_abs_diff']:.2e}")


@export_app.command("disco-bundle")
def export_disco_bundle(
    run_dir: Path = typer.Argument(..., help="a DiSCo run folder (rkd train disco), a mixture folder (rkd eval cast-mix) or a student model folder"),
    out: Path = typer.Argument(..., help="bundle folder to write (served by `rkd serve`)"),
    name: str = typer.Option(..., help="index name the server exposes"),
    dataset: str = typer.Option("cast-mini", "--dataset", "-d", help="dataset name or folder (documents)"),
    index_dir: Path | None = typer.Option(None, help="a built impact index folder to copy (rkd index impact)"),
) -> None:
    """A sparse-conversational serving bundle: ONNX student + impact index + doc store + manifest."""
    from retrieval_kd.export.conversational import build_conversational_bundle
    from retrieval_kd.threads import set_threads

    set_threads()
    m = build_conversational_bundle(run_dir, out, name=name, dataset=dataset, index_dir=index_dir)
    typer.echo(f"{out}: bundle {m['name']} ({m['index']['n_docs']} docs, {len(m['files'])} files)")


@eval_app.command("cast-ablations")
def eval_cast_ablations(
    ctx: typer.Context,
    config: str = typer.Option("configs/disco_canard.yaml", "--config", "-c", help="base DiSCo YAML config"),
    ablations: str = typer.Option("configs/disco_ablations.yaml", help="YAML: rows of {key, name, config?, set?}"),
    out: str = typer.Option("runs/cast-ablations", help="folder for the index, students, table.md and results.json"),
    overrides: list[str] = typer.Option([], "--set", help="override a base config value, e.g. train.epochs=1"),
    reuse: bool = typer.Option(False, "--reuse", help="reuse students already trained under --out"),
    bm25: bool = typer.Option(False, "--bm25", help="add the BM25 reference rows"),
) -> None:
    """One table: references, then one trained student per ablation row, paired with raw / history / teacher."""
    from retrieval_kd.bench.cast import run_cast
    from retrieval_kd.commands.options import command_line, resolve_config
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.disco.config import DiscoConfig

    cfg = load_config(resolve_config(ctx, "config", config), DiscoConfig, overrides)
    run_cast(cfg, out, [], reuse, bm25, command_line(ctx), ablations=resolve_config(ctx, "ablations", ablations))


@eval_app.command("cast-mix")
def eval_cast_mix(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., help="a DiSCo run folder (rkd train disco): the mixture's first member"),
    more: list[Path] = typer.Option([], "--with", help="another DiSCo run folder to mix in (repeatable)"),
    weights: str = typer.Option("0,0.5,1", help="weights tried for each --with run (the first run's weight is 1)"),
    alphas: str = typer.Option("0,0.25,0.5,1", help="utterance shares tried (relative to the members' total weight)"),
    dataset: str = typer.Option("cast-eval", "--dataset", "-d", help="evaluation dataset with a CAsT 2021 part"),
    document_encoder: str | None = typer.Option(None, help="SPLADE document encoder folder (default SPLADE-tiny)"),
    out: str = typer.Option("runs/cast-mix", help="folder for table.md, results.json and mixture/"),
) -> None:
    """Mix students and the raw utterance's SPLADE vector; choose on CAsT 2021, report the rest, write the mixture."""
    from retrieval_kd.bench.cast_mix import run_mix
    from retrieval_kd.commands.options import command_line, split_floats

    res = run_mix([run_dir, *more], out, dataset, split_floats(weights, "--weights"), split_floats(alphas, "--alphas"),
                  document_encoder, command_line(ctx))
    typer.echo(f"chosen on the choice set: {res['chosen']['name']} -> {out}/mixture")


@eval_app.command("cast-dev")
def eval_cast_dev(
    ctx: typer.Context,
    runs: list[Path] = typer.Argument(..., help="DiSCo run folders (rkd train disco) never trained on the dataset"),
    alphas: str = typer.Option("0,0.25", help="utterance shares: each run alone (0) and with alpha*SPLADE(utterance)"),
    dataset: str = typer.Option("ikat2024-dev", "--dataset", "-d", help="development dataset (conversations + qrels)"),
    document_encoder: str | None = typer.Option(None, help="SPLADE document encoder folder (default SPLADE-tiny)"),
    out: str = typer.Option("runs/cast-dev", help="folder for table.md and results.json"),
) -> None:
    """Students on a development set beside raw / history / teacher, with echo@1 (top document = the previous
    turn's); nothing is chosen."""
    from retrieval_kd.bench.cast_dev import run_dev
    from retrieval_kd.commands.options import command_line, split_floats

    run_dev(runs, out, dataset, split_floats(alphas, "--alphas"), document_encoder, command_line(ctx))


@bench_app.command("conversational")
def bench_conversational(
    ctx: typer.Context,
    bundles: list[Path] = typer.Argument(..., help="sparse-conversational bundle folders (rkd export disco-bundle)"),
    dataset: str = typer.Option("cast-eval", "--dataset", "-d", help="evaluation dataset (conversations + qrels)"),
    threads: int | None = typer.Option(None, help="onnxruntime intra-op threads (default: all cores)"),
    out: str = typer.Option("runs/bench-conv", help="folder for table.md and results.json"),
) -> None:
    """Each bundle served in-process, one judged turn at a time: nDCG@3 / R@100 per set and encode+search latency."""
    from retrieval_kd.bench.conversational import run_bench
    from retrieval_kd.commands.options import command_line

    run_bench(bundles, dataset, threads, out, command_line(ctx))
