"""`rkd data import` (bring your own collection) and `rkd data build-demo`; `data list|prepare` are in spine.py."""
from __future__ import annotations

import warnings
from pathlib import Path

import typer

from retrieval_kd.cli import data_app


@data_app.command("import")
def data_import(
    source: Path = typer.Argument(..., help="corpus file, BEIR folder, SciFact zip or CAsT/iKAT topic file"),
    fmt: str = typer.Option(..., "--format", "-f", help="beir | jsonl | tsv | csv | trec | scifact | cast"),
    name: str = typer.Option(..., "--name", "-n", help="dataset name (meta and the default folder)"),
    queries: Path | None = typer.Option(None, help="queries: TREC topics (XML/SGML/TSV), JSONL, TSV or CSV"),
    qrels: Path | None = typer.Option(None, help="judgements: TREC qrels (qid 0 docid grade) or BEIR TSV"),
    fields: str = typer.Option("", help="corpus columns, e.g. id=doc_id,text=body,title=headline (1-based "
                                        "numbers without a header: id=1,text=2)"),
    query_fields: str = typer.Option("", help="query columns, e.g. id=qid,text=question"),
    split: str = typer.Option("test", help="BEIR qrels split (qrels/<split>.tsv); SciFact: test or train"),
    header: bool | None = typer.Option(None, "--header/--no-header",
                                       help="TSV/CSV first row is a header (TSV default: if it names the id column)"),
    topic_field: str = typer.Option("title", help="TREC topic text: title, desc or narr"),
    rel_threshold: int | None = typer.Option(None, help="lowest grade counted relevant (default 1)"),
    drop_missing: bool = typer.Option(False, help="drop judgements of documents not in the corpus or queries "
                                                  "without text (warned), instead of failing"),
    out: Path | None = typer.Option(None, help="dataset folder to write (default: $RKD_CACHE/imported/NAME)"),
) -> None:
    """Normalise your own collection into a dataset folder (checked, written atomically); `datasets.load(NAME)`
    or `--dataset NAME` then opens it."""
    from retrieval_kd.data.formats.importer import import_collection
    from retrieval_kd.data.formats.tabular import parse_fields
    from retrieval_kd.data.registry import READERS, imported_path
    from retrieval_kd.errors import ConfigError, DataWarning

    if out is None:
        if name in READERS:
            raise ConfigError(f"--name {name!r} is a registered dataset; choose another name or give --out")
        out = imported_path(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        ds = import_collection(fmt, source, name, out, rel_threshold=rel_threshold,
                               missing="drop" if drop_missing else "error", queries=queries, qrels=qrels,
                               fields=parse_fields(fields), query_fields=parse_fields(query_fields, ("id", "text")),
                               split=split, header=header, topic_field=topic_field)
    for w in caught:
        if issubclass(w.category, DataWarning):
            typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    counts = ", ".join(f"{k} {v:,}" for k, v in ds.counts().items())
    grades = ", ".join(f"{g}: {n:,}" for g, n in ds.meta.get("grade_counts", {}).items())
    rel = f"grades {{{grades}}}, relevant >= {ds.rel_threshold}" if grades else "no judgements"
    typer.echo(f"{name}: {counts}; {rel}\n-> {ds.path}")


@data_app.command("build-demo")
def data_build_demo(names: list[str] = typer.Argument(None, help="demo collections (default: all)")) -> None:
    """Regenerate the embedded demo collections from the raw data (as `python -m retrieval_kd.data build-demo`)."""
    from retrieval_kd.data.demo import NOTICES
    from retrieval_kd.data.registry import build_demo

    for n in names or NOTICES:
        dest = build_demo(n)
        typer.echo(f"{dest}: {sum(p.stat().st_size for p in dest.iterdir()):,} bytes")
