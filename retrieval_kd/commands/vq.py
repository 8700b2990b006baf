"""Distill-VQ commands: `rkd train vq --config ... [--set k=v] [--resume]`, `rkd bench cost-curve` (bench vq: bench.py)."""
from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.cli import bench_app, train_app


@train_app.command("vq")
def train_vq(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="YAML config, e.g. configs/vq_8b.yaml"),
    set_: list[str] | None = typer.Option(None, "--set", help="override a field: --set train.steps=100"),
    resume: bool = typer.Option(False, "--resume", help="continue from output_dir/checkpoints/last.pt"),
    stop_after: int | None = typer.Option(None, help="stop (with a checkpoint) after this many steps"),
    evaluate: bool = typer.Option(True, help="print the start and trained index on the held-out real queries"),
) -> None:
    """Train a Distill-VQ index; writes output_dir/{index/, checkpoints/, metrics.jsonl, config.yaml, run_info.json,
    results.json, report.md, *.png}."""
    # data parallel: `torchrun --nproc_per_node N -m retrieval_kd train vq ...` (methods/distill_vq/distributed.py)
    from retrieval_kd import datasets
    from retrieval_kd.bench.distill_vq import COLUMNS, train_results, trained_rows
    from retrieval_kd.bench.report import write_results
    from retrieval_kd.commands.options import command_line
    from retrieval_kd.errors import ConfigError
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.methods.distill_vq.distributed import process_group
    from retrieval_kd.methods.distill_vq.trainer import DistillVQ

    vq = DistillVQ.from_config(config, set_)
    if vq.config.output_dir is None:
        raise ConfigError(f"{config}: output_dir: needed by `rkd train vq` (where the index and checkpoints go)")
    ds = datasets.load(vq.config.dataset)
    with process_group(vq.device()) as (rank, _):
        vq.fit(ds, resume=resume, stop_after=stop_after)
    if rank != 0:  # rank 0 saves the index and reports
        return
    if vq.index is None:
        typer.echo(f"stopped after step {vq.result['steps']} of {vq.result['total_steps']}; "
                   f"continue with --resume (checkpoint in {vq.config.output_dir}/checkpoints)")
        return
    dest = vq.save(Path(vq.config.output_dir) / "index")
    t = vq.timings
    typer.echo(f"saved {dest}  (faiss build {t['faiss_build_s']:.1f}s, training {t['train_s']:.1f}s, "
               f"run without encoding {t['run_s']:.1f}s)")
    rows = trained_rows(vq, ds) if evaluate and vq.split["eval_qids"] else []
    if rows:
        typer.echo(format_table(rows, COLUMNS))
    write_results(vq.config.output_dir, train_results(vq, ds, rows, command_line(ctx)))
    typer.echo(f"report: {Path(vq.config.output_dir) / 'report.md'} (re-render: rkd report {vq.config.output_dir})")


@bench_app.command("cost-curve")
def bench_cost_curve(
    sizes: str = typer.Option("10000,100000,1000000", help="comma-separated collection sizes N"),
    dim: int = typer.Option(384, help="vector dimension"),
    m: int = typer.Option(8, help="PQ sub-vectors = bytes per vector (OPQm,IVF√N,PQmx8)"),
    queries: int = typer.Option(50_000, help="training queries (noisy copies of random documents)"),
    steps: int = typer.Option(50, help="training steps timed at each size"),
    batch: int = typer.Option(64, help="training queries per step"),
    top_k: int = typer.Option(200, help="teacher top-K candidates per training query"),
    train_size: int = typer.Option(50_000, help="documents the faiss start is trained on"),
    nprobe: int = typer.Option(32, help="IVF lists searched for the teacher-recall check"),
    seed: int = typer.Option(0, help="seed of the data, the faiss start and the loop"),
    out: str = typer.Option("runs/bench_cost", help="folder for table.md, results.json and cost_curve.png"),
    threads: int | None = typer.Option(None, help="torch/faiss threads (default: retrieval_kd.threads.set_threads)"),
) -> None:
    """Seconds (teacher top-K, faiss start, per step, export) and peak RSS vs N on synthetic 384-d vectors."""
    from retrieval_kd.bench.cost_curve import run_cost_curve
    from retrieval_kd.commands.options import split_ints

    run_cost_curve(split_ints(sizes), dim, m, queries, steps, batch, nprobe, out, threads, top_k, train_size, seed)
