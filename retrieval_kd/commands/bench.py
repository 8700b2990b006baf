"""`rkd bench baselines|vq|server|chaos`, `rkd eval cast|cast-official|medicineqa`: each runs a bench function."""
from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.bench.baselines import DATASETS, DEFAULT_FACTORIES, DEFAULT_NPROBE
from retrieval_kd.bench.cast import VARIANTS as CAST_VARIANTS
from retrieval_kd.bench.distill_vq import DATASETS as VQ_DATASETS
from retrieval_kd.bench.distill_vq import DEFAULT_NPROBE as VQ_NPROBE
from retrieval_kd.bench.distill_vq import ROWS as VQ_ROWS
from retrieval_kd.bench.distill_vq import VARIANTS as VQ_VARIANTS
from retrieval_kd.bench.vq_peers import PEERS as VQ_PEERS
from retrieval_kd.cli import bench_app, eval_app
from retrieval_kd.commands.options import command_line, resolve_config, split_ints, split_list

_THREADS = typer.Option(None, help="torch/faiss threads (default $RKD_THREADS or 1)")


@bench_app.command("baselines")
def bench_baselines(
    datasets: str = typer.Option(",".join(DATASETS), help="comma-separated dataset names"),
    factories: str = typer.Option(";".join(DEFAULT_FACTORIES),
                                  help="';'-separated faiss factory strings (IVFn = IVF√N)"),
    nprobe: int = typer.Option(DEFAULT_NPROBE, help="IVF lists searched per query"),
    out: str = typer.Option("runs/bench_baselines", help="folder for table.md and results.json"),
    threads: int | None = _THREADS,
) -> None:
    """Exact MiniLM vs faiss IVF-PQ / OPQ baselines on cacm, med, cisi, cranfield, cf (a Markdown table)."""
    from retrieval_kd.bench.baselines import run_baselines

    run_baselines(split_list(datasets), factories.split(";"), nprobe, out, threads)


@bench_app.command("vq")
def bench_vq(
    datasets: str = typer.Option(",".join(VQ_DATASETS), help="comma-separated dataset names"),
    sizes: str = typer.Option("8,16", help="bytes per vector (PQ m x 8)"),
    rows: str = typer.Option(",".join(VQ_ROWS), help=f"rows to run, some of ivfpq,opq,{','.join(VQ_PEERS)},{','.join(VQ_VARIANTS)}"),
    nprobe: int = typer.Option(VQ_NPROBE, help="IVF lists searched per query (every row)"),
    plot_sizes: str = typer.Option("4,8,16,32", help="cacm sizes for the plot ('' to skip)"),
    seed: int = typer.Option(0, help="seed of the faiss builds and the Distill-VQ runs"),
    sets: list[str] = typer.Option([], "--set", help="config override for Distill-VQ rows, e.g. train.steps=30"),
    out: str = typer.Option("runs/bench_vq", help="folder for table.md, results.json and the plot"),
    threads: int | None = _THREADS,
) -> None:
    """Distill-VQ vs faiss IVFPQ / OPQ+IVFPQ and same-bytes peers on six collections (Markdown tables + plot)."""
    from retrieval_kd.bench.distill_vq import run_distill_vq

    run_distill_vq(split_list(datasets), split_ints(sizes), split_list(rows), nprobe, split_ints(plot_sizes), seed,
                   sets, out, threads)


@bench_app.command("server")
def bench_server(
    index: Path | None = typer.Option(None, help="Distill-VQ (or any saved faiss) index folder; default: baseline"),
    out: Path = typer.Option(Path("runs/bench_server"), help="folder for bundles, report.md and results.json"),
    duration: float = typer.Option(30.0, help="seconds per client level"),
    warmup: float = typer.Option(2.0, help="warm-up seconds before each client level"),
    clients: str = typer.Option("1,4,16", help="comma-separated concurrent client counts"),
    inproc_seconds: float = typer.Option(3.0, help="seconds per in-process / encoder measurement"),
    no_int8: bool = typer.Option(False, "--no-int8", help="skip the int8 bundle"),
    rebuild: bool = typer.Option(False, "--rebuild", help="rebuild the bundles even when present"),
) -> None:
    """Served vs in-process throughput and latency, micro-batching, ONNX fp32/int8 vs torch encoding."""
    from retrieval_kd.bench.server import run_server_bench

    run_server_bench(index, out, duration, warmup, split_ints(clients), inproc_seconds, not no_int8, rebuild)


@bench_app.command("chaos")
def bench_chaos(
    bundle: Path | None = typer.Option(None, help="bundle to serve (default: the CACM bundle of `rkd bench server`)"),
    out: Path = typer.Option(Path("runs/bench_chaos"), help="folder for report.md, results.json and rss.png"),
    duration: float = typer.Option(60.0, help="seconds of load"),
    clients: int = typer.Option(16, help="concurrent keep-alive clients"),
) -> None:
    """Soak + chaos: mixed valid/invalid load, a SIGKILL + restart, a damaged and restored file; RSS plot."""
    from retrieval_kd.bench.chaos import run_chaos

    res = run_chaos(bundle, out, duration, clients)
    if not all(res["checks"].values()):
        raise typer.Exit(1)


@eval_app.command("cast")
def eval_cast(
    ctx: typer.Context,
    config: str = typer.Option("configs/disco_cast.yaml", "--config", "-c",
                               help="DiSCo YAML config (a missing file given here is an error)"),
    out: str = typer.Option("runs/cast-bench", help="folder for the index, students, table.md and results.json"),
    overrides: list[str] = typer.Option([], "--set", help="config override a.b=value, e.g. train.epochs=1"),
    variants: str = typer.Option(",".join(CAST_VARIANTS), help=f"DiSCo rows to train, of {','.join(CAST_VARIANTS)}"),
    reuse: bool = typer.Option(False, "--reuse", help="reuse students already trained under --out"),
    no_bm25: bool = typer.Option(False, "--no-bm25", help="skip the BM25 reference rows"),
) -> None:
    """DiSCo vs rewrite baselines on CAsT 2021 + iKAT 2023 (cast-mini), one SPLADE encoder: a Markdown table."""
    from retrieval_kd.bench.cast import run_cast
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.disco.config import DiscoConfig

    cfg = load_config(resolve_config(ctx, "config", config), DiscoConfig, overrides)
    run_cast(cfg, out, split_list(variants), reuse, not no_bm25, command_line(ctx))


@eval_app.command("cast-official")
def eval_cast_official(
    run_file: Path = typer.Argument(..., help="TREC run over the real CAsT corpus"),
    collection: str = typer.Option(..., help="cast2019 | cast2020 | cast2021 | cast2022"),
) -> None:
    """Score a run with the official CAsT conventions and the track's qrels."""
    from retrieval_kd.bench.cast import official_evaluate
    from retrieval_kd.evaluate import read_run

    for m, v in official_evaluate(read_run(run_file), collection).items():
        typer.echo(f"{m:<10} {v:.4f}")


@eval_app.command("medicineqa")
def eval_medicineqa(
    config: str | None = typer.Option(None, "--config", "-c", help="YAML config (none: the EvalConfig defaults)"),
    overrides: list[str] = typer.Option([], "--set", help="override a config key, e.g. --set en.dataset=FOLDER "
                                        "(a dataset name or folder), --set out=runs/drr-eval"),
    side: list[str] = typer.Option([], "--side", help="run only this side: en or zh (repeatable; default both)"),
) -> None:
    """Every rewriter × retriever row on LiveQA-Med (en) and MedicineQA-zh (+ multi-round): a Markdown table."""
    from retrieval_kd.bench.medicineqa import EvalConfig, run_eval
    from retrieval_kd.config import load_config
    from retrieval_kd.threads import set_threads

    set_threads()
    cfg = load_config(config, EvalConfig, [*overrides, *([f"sides=[{','.join(side)}]"] if side else [])])
    _, table = run_eval(cfg, log=lambda s: typer.echo(s, err=True))
    typer.echo(table)
    typer.echo(f"\nruns, queries, rows.json, table.md -> {cfg.out}")
