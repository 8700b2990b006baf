"""`rkd`: data, teacher, index, search, train, export, serve, eval, bench, demo."""
from __future__ import annotations

import importlib
import os
import sys

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(help="retrieval_kd: retrieval distillation toolkit.", no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="List and normalise collections.", no_args_is_help=True)
teacher_app = typer.Typer(help="Run teachers (dense encoder, SPLADE, rewrites, LLM).", no_args_is_help=True)
index_app = typer.Typer(help="Build indexes (faiss factory strings, impact, BM25).", no_args_is_help=True)
train_app = typer.Typer(help="Distillation trainers.", no_args_is_help=True)
export_app = typer.Typer(help="ONNX encoders and serving bundles.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate runs and recipes.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print tables.", no_args_is_help=True)

for _sub, _name in [(data_app, "data"), (teacher_app, "teacher"), (index_app, "index"), (train_app, "train"),
                    (export_app, "export"), (eval_app, "eval"), (bench_app, "bench")]:
    app.add_typer(_sub, name=_name)

# Each area adds its commands to the apps above (modules under retrieval_kd/commands/).
_COMMAND_MODULES = ("spine", "data", "vq", "server", "disco", "drr", "bench", "quickstart")
for _mod in _COMMAND_MODULES:
    try:
        importlib.import_module(f"retrieval_kd.commands.{_mod}")
    except ModuleNotFoundError as _e:
        if _e.name != f"retrieval_kd.commands.{_mod}":
            raise


# parameters that name a run's input or output folder: a leading `runs/` means the runs root (paths.run_path)
RUN_PARAMS = {"out", "dest", "dst", "src", "index", "index_dir", "run_dir", "impact_dir", "rewriter_dir", "bundle",
              "rewriter", "run", "model"}


def _map_runs(value):
    from pathlib import Path

    from retrieval_kd.paths import run_path

    if isinstance(value, (list, tuple)):
        return type(value)(_map_runs(v) for v in value)
    if isinstance(value, (str, Path)) and Path(value).parts[:1] == ("runs",):
        return type(value)(run_path(value))
    return value


def with_runs_root(command):
    """The click command tree with every folder parameter mapped through `paths.run_path` (see RUN_PARAMS)."""
    import click

    for param in command.params:
        if param.name in RUN_PARAMS or isinstance(getattr(param, "type", None), click.Path):
            old = param.callback
            param.callback = (lambda ctx, p, v, old=old: _map_runs(old(ctx, p, v) if old else v))
    for sub in getattr(command, "commands", {}).values():
        with_runs_root(sub)
    return command


def main() -> None:
    """Entry point: user errors print one clear line (no traceback) and exit 2."""
    from retrieval_kd.errors import RKDError
    from retrieval_kd.progress import quiet_third_party

    quiet_third_party()
    try:
        with_runs_root(typer.main.get_command(app)).main(prog_name="rkd")
    except RKDError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)



def run_recipe(*names: str, prog: str | None = None, defaults: dict[str, object] | None = None,
               argv: list[str] | None = None) -> None:
    """Run one `rkd` command (e.g. "bench", "vq") as a program of its own: the eval/ recipes."""
    from retrieval_kd.errors import RKDError
    from retrieval_kd.progress import quiet_third_party

    quiet_third_party()
    command = with_runs_root(typer.main.get_command(app))
    for name in names:
        command = command.commands[name]
    try:
        command.main(sys.argv[1:] if argv is None else argv, prog_name=prog or f"python {sys.argv[0]}",
                     default_map=defaults)
    except RKDError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)
