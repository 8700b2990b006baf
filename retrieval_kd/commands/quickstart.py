"""`rkd quickstart CORPUS ...` (collection → served Distill-VQ index with a report) and `rkd report RUN`."""
from __future__ import annotations

from pathlib import Path

import typer

from retrieval_kd.cli import app
from retrieval_kd.commands.options import command_line


def guess_format(path: Path) -> str:
    """--format from the file: a BEIR folder, a .zip (SciFact), .jsonl/.json, .tsv, .csv, else TREC SGML."""
    from retrieval_kd.errors import ConfigError

    if path.is_dir():
        if (path / "corpus.jsonl").exists() or (path / "corpus.jsonl.gz").exists():
            return "beir"
        raise ConfigError(f"{path}: a folder that is neither a dataset folder (meta.json) nor BEIR (corpus.jsonl)")
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    return {".zip": "scifact", ".jsonl": "jsonl", ".json": "jsonl", ".tsv": "tsv", ".csv": "csv"}.get(last, "trec")


def load_source(corpus: str, fmt: str | None, queries: Path | None, qrels: Path | None, fields: str | None,
                name: str | None, split: str) -> object:
    """A registered name or dataset folder as it is; anything else imported as `rkd data import` does (into
    $RKD_CACHE/imported/NAME, so a second quickstart reuses it)."""
    from retrieval_kd import datasets
    from retrieval_kd.data.formats.importer import import_collection
    from retrieval_kd.data.formats.tabular import parse_fields
    from retrieval_kd.data.registry import READERS, imported_path

    path = Path(corpus).expanduser()
    if fmt is None and ((path / "meta.json").is_file() or not path.exists()):  # a dataset folder, or a name
        return datasets.load(corpus)
    fmt = fmt or guess_format(path)
    name = name or path.name.split(".")[0]
    if name in READERS:
        name = f"{name}-imported"  # never shadow a registered collection
    typer.echo(f"importing {path} as {fmt} -> dataset {name!r}")
    return import_collection(fmt, path, name, imported_path(name), queries=queries, qrels=qrels,
                             fields=parse_fields(fields or ""), split=split)


@app.command("quickstart")
def quickstart(
    ctx: typer.Context,
    corpus: str = typer.Argument(..., help="dataset name or folder, or a corpus in a known format (see --format)"),
    queries: Path | None = typer.Option(None, help="queries file (optional: without it pseudo-queries evaluate)"),
    qrels: Path | None = typer.Option(None, help="TREC or BEIR qrels file (optional)"),
    fmt: str | None = typer.Option(None, "--format", help="beir | jsonl | tsv | csv | trec | scifact (default: "
                                   "guessed from the file name)"),
    fields: str | None = typer.Option(None, help="column mapping, e.g. id=doc_id,text=body,title=headline"),
    name: str | None = typer.Option(None, help="dataset name (default: from the corpus file name)"),
    split: str = typer.Option("test", help="BEIR qrels split"),
    m: int = typer.Option(8, "--bytes", help="bytes per vector of the deployed index (PQ sub-vectors)"),
    nprobe: int = typer.Option(16, help="IVF lists searched, for every row"),
    seed: int = typer.Option(0),
    out: Path | None = typer.Option(None, help="run folder (default: runs/quickstart-NAME under the runs root)"),
    query: str | None = typer.Option(None, help="serve the bundle briefly on loopback and print this query's top 5"),
    serve: bool = typer.Option(False, "--serve", help="end by serving the bundle (search page at /)"),
    port: int = typer.Option(8000, help="port for --serve"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars (also RKD_QUIET=1)"),
    set_: list[str] | None = typer.Option(None, "--set", help="Distill-VQ config override, e.g. train.min_samples=5000"),
) -> None:
    """Teacher encoding, faiss baselines, Distill-VQ, bundle, report (and serve) for any collection."""
    from retrieval_kd.paths import run_path
    from retrieval_kd.quickstart import run_quickstart

    ds = load_source(corpus, fmt, queries, qrels, fields, name, split)
    dest = run_path(out if out is not None else f"runs/quickstart-{ds.name}")
    typer.echo(f"run folder: {dest}")
    run_quickstart(ds, dest, m=m, nprobe=nprobe, seed=seed, serve=serve, quiet=quiet, command=command_line(ctx),
                   port=port, sets=set_, query=query)


@app.command("report")
def report(run: Path = typer.Argument(..., help="a run folder holding results.json")) -> None:
    """Re-render a run's report.md and plots from its results.json."""
    from retrieval_kd.bench.report import render

    for path in render(run):
        typer.echo(str(path))
