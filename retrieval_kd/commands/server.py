"""Export and serving commands: export bundle|onnx, serve (bench server: commands/bench.py)."""
from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.cli import app, export_app


@export_app.command("bundle")
def export_bundle(
    src: Path = typer.Argument(..., help="saved faiss index folder (spine baseline or Distill-VQ run)"),
    dst: Path = typer.Argument(..., help="bundle folder to write (atomically)"),
    name: str | None = typer.Option(None, help="index name served (default: DST's folder name)"),
    int8: bool = typer.Option(False, "--int8", help="int8 dynamic quantisation of the query encoder"),
    dataset: str | None = typer.Option(None, help="dataset name or folder (default: the index's meta.json)"),
    teacher: str | None = typer.Option(None, help="encoder model folder (default: meta.json / query_encoder/)"),
    nprobe: int | None = typer.Option(None, help="default nprobe served (default: meta.json's or 8)"),
    metrics: bool = typer.Option(True, help="measure nDCG@10 / R@100 of the bundle on the judged queries"),
) -> None:
    """Build a serving bundle: ONNX query encoder (parity-checked), index, doc store, manifest with sha256."""
    from retrieval_kd.export.dense import build_bundle
    from retrieval_kd.threads import set_threads

    set_threads()
    m = build_bundle(src, dst, name=name, int8=int8, dataset=dataset, teacher=teacher, nprobe=nprobe,
                     with_metrics=metrics)
    enc = m["encoder"]
    typer.echo(f"{m['name']} ({m['kind']}): {len(m['files'])} files -> {dst}")
    typer.echo(f"encoder {enc['precision']} ({enc['exporter']} exporter), parity max|diff| "
               f"{enc['parity_max_abs_diff']:.2e}; index {m['index']['factory']} nprobe={m['index']['nprobe']}")
    shown = {k: v for k, v in m["metrics"].items() if isinstance(v, (int, float))}
    if shown:
        typer.echo("metrics: " + ", ".join(f"{k}={v}" for k, v in shown.items()))


@export_app.command("onnx")
def export_onnx(
    model: str = typer.Argument(..., help="local HF model folder, or 'minilm' for the bundled MiniLM"),
    dst: Path = typer.Argument(..., help="folder for query_encoder.onnx + tokenizer files + meta.json"),
    pooling: str = typer.Option("mean", help="mean | cls | splade"),
    normalize: bool = typer.Option(True, help="L2-normalise dense outputs"),
    max_length: int = typer.Option(256),
    int8: bool = typer.Option(False, "--int8"),
) -> None:
    """Export an encoder with its pooling head to one ONNX file (dynamic axes), parity-checked against torch."""
    from retrieval_kd.export.onnx import export_encoder
    from retrieval_kd.threads import set_threads

    set_threads()
    info = export_encoder(model, dst, pooling=pooling, normalize=normalize, max_length=max_length, int8=int8)
    typer.echo(f"{dst / info['file']}: {info['pooling']} pooling, dim {info['dim']}, {info['precision']}, "
               f"parity max|diff| {info['parity_max_abs_diff']:.2e} ({info['exporter']} exporter)")


@app.command("serve")
def serve(
    bundles: list[str] = typer.Argument(None, help="bundle folders (or names under RKD_BUNDLE_ROOT)"),
    host: str | None = typer.Option(None, help="default 127.0.0.1 (RKD_HOST)"),
    port: int | None = typer.Option(None, help="default 8000 (RKD_PORT)"),
    microbatch: bool | None = typer.Option(None, help="merge concurrent requests (RKD_MICROBATCH, default on)"),
    threads: int | None = typer.Option(None, help="onnxruntime/faiss threads (RKD_THREADS, default 1)"),
    workers: int | None = typer.Option(None, help="worker threads (RKD_WORKERS, default 1)"),
) -> None:
    """Serve bundles over HTTP: runs the app (`python -m server`) in this process's place (RKD_* variables set
    the other settings, see server/settings.py)."""
    import os
    import sys

    env = dict(os.environ)
    for key, value in (("RKD_THREADS", threads), ("RKD_WORKERS", workers)):
        if value is not None:
            env[key] = str(value)
    if microbatch is not None:
        env["RKD_MICROBATCH"] = "true" if microbatch else "false"
    argv = [sys.executable, "-m", "server", *(bundles or [])]
    argv += [*(["--host", host] if host else []), *(["--port", str(port)] if port is not None else [])]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)  # the library starts the app; it never imports it

