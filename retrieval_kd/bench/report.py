"""Run reports: a run folder's results.json rendered as report.md and PNG plots; `rkd report RUN` re-renders.

results.json (written by `rkd quickstart`, `rkd train vq` and the demo) holds:
  title, dataset {name, docs, queries, judged}, command, rows (table rows: method, bytes/vec, TR@10, ...),
  columns, training {loss_curve [[step, loss]], validation {history [[step, TR@10]], start_tr10, best_tr10,
  best_step, kept_start}}, per_query {baseline, method, values {label: {qid: TR@10}}}, timings, notes, run_info.
Every part is optional; each plot is drawn when its data is there ("plots": the names to draw, default all;
"extra_plots": PNG files of the run folder the report shows as they are).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrieval_kd.errors import RKDError
from retrieval_kd.utils import atomic_file, write_json

RESULTS = "results.json"
DEFAULT_COLUMNS = ["method", "bytes/vec", "nDCG@10", "R@100", "TR@10", "TR@100", "train s", "ms/query"]


def write_results(run_dir: str | Path, results: Mapping[str, Any]) -> list[Path]:
    """Write results.json (rows without their per-query values) and render the report; the files written."""
    run_dir = Path(run_dir)
    rows = [{k: v for k, v in r.items() if k != "per-query TR@10"} for r in results.get("rows", [])]
    write_json(run_dir / RESULTS, {**results, "rows": rows})
    return render(run_dir)


def read_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        raise RKDError(f"{path}: no results.json (is {run_dir} a run folder of rkd quickstart / train vq / demo?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RKDError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise RKDError(f"{path}: top level must be an object")
    return data


def render(run_dir: str | Path) -> list[Path]:
    """(Re-)write report.md and the plots of a run folder from its results.json."""
    run_dir = Path(run_dir)
    res = read_results(run_dir)
    wanted = res.get("plots", list(PLOTS))
    plots = [p for name, draw in PLOTS.items() if name in wanted
             for p in [draw(res, run_dir / f"{name}.png")] if p is not None]
    plots += [run_dir / name for name in res.get("extra_plots", []) if (run_dir / name).is_file()]
    with atomic_file(run_dir / "report.md", "w", encoding="utf-8") as fh:
        fh.write(markdown(res, plots))
    return [run_dir / RESULTS, run_dir / "report.md", *plots]


def win_loss(values: Mapping[str, Mapping[str, float]], method: str, baseline: str) -> dict[str, int]:
    """Queries where `method` beats, ties or loses to `baseline` (per-query values, same queries)."""
    a, b = values.get(method, {}), values.get(baseline, {})
    shared = [q for q in a if q in b]
    wins = sum(a[q] > b[q] + 1e-12 for q in shared)
    losses = sum(a[q] < b[q] - 1e-12 for q in shared)
    return {"wins": wins, "ties": len(shared) - wins - losses, "losses": losses}


def markdown(res: Mapping[str, Any], plots: list[Path]) -> str:
    from retrieval_kd.evaluate import format_table

    ds = res.get("dataset", {})
    lines = [f"# {res.get('title', 'run report')}", ""]
    if ds:
        lines += [f"Collection **{ds.get('name', '?')}**: {ds.get('docs', '?')} documents, "
                  f"{ds.get('queries', 0)} real queries ({ds.get('judged', 0)} judged).", ""]
    if res.get("command"):
        lines += [f"Command: `{res['command']}`", ""]
    for note in res.get("notes", []):
        lines.append(f"- {note}")
    if res.get("notes"):
        lines.append("")
    if res.get("rows"):
        cols = [c for c in res.get("columns", DEFAULT_COLUMNS) if any(c in r for r in res["rows"])]
        lines += [format_table(res["rows"], cols), ""]
    val = (res.get("training") or {}).get("validation") or {}
    if val:
        kept = " — no step beat the start, so the start is returned" if val.get("kept_start") else ""
        lines += [f"Held-out pseudo-queries, teacher-recall@10: start {val['start_tr10']:.3f} → best "
                  f"{val['best_tr10']:.3f} at step {val['best_step']}{kept}.", ""]
    pq = res.get("per_query") or {}
    if pq.get("values"):
        wl = win_loss(pq["values"], pq["method"], pq["baseline"])
        lines += [f"Per query (TR@10), {pq['method']} vs {pq['baseline']}: {wl['wins']} wins, {wl['ties']} ties, "
                  f"{wl['losses']} losses.", ""]
    if res.get("timings"):
        lines += ["Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in res["timings"].items()
                                          if isinstance(v, (int, float))), ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines).rstrip() + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, dpi=110, format="png")
    _pyplot().close(fig)
    return path


def _training_plot(res: Mapping[str, Any], path: Path) -> Path | None:
    training = res.get("training") or {}
    curve, hist = training.get("loss_curve") or [], (training.get("validation") or {}).get("history") or []
    if not curve and len(hist) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    if curve:
        ax.plot([c[0] for c in curve], [c[1] for c in curve], color="tab:blue", lw=1, label="training loss")
        ax.set_ylabel("loss", color="tab:blue")
    ax.set_xlabel("step")
    if hist:
        ax2 = ax.twinx()
        ax2.plot([h[0] for h in hist], [h[1] for h in hist], "o-", color="tab:orange", label="held-out TR@10")
        ax2.set_ylabel("held-out teacher-recall@10", color="tab:orange")
        best = training["validation"].get("best_step")
        if best is not None:
            ax2.axvline(best, color="tab:orange", ls=":", lw=1)
    ax.set_title("training: loss and held-out pseudo-query teacher-recall@10")
    return _save(fig, path)


def _bytes_plot(res: Mapping[str, Any], path: Path) -> Path | None:
    pts: dict[str, list[tuple[float, float]]] = {}
    for r in res.get("rows", []):
        b, tr = r.get("bytes/vec"), r.get("TR@10")
        if isinstance(b, (int, float)) and isinstance(tr, (int, float)) and b > 0 and "exact" not in r["method"]:
            family = r.get("family", r["method"])
            pts.setdefault(family, []).append((float(b), float(tr)))
    if sum(len(v) for v in pts.values()) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, xy in pts.items():
        xy.sort()
        ax.plot([p[0] for p in xy], [p[1] for p in xy], "o-" if len(xy) > 1 else "s", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector")
    ax.set_ylabel("teacher-recall@10")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("teacher-recall@10 vs bytes per vector")
    return _save(fig, path)


def _per_query_plot(res: Mapping[str, Any], path: Path) -> Path | None:
    pq = res.get("per_query") or {}
    a, b = (pq.get("values") or {}).get(pq.get("method"), {}), (pq.get("values") or {}).get(pq.get("baseline"), {})
    diffs = sorted(a[q] - b[q] for q in a if q in b)
    if not diffs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    colors = ["tab:green" if d > 0 else "tab:red" if d < 0 else "tab:gray" for d in diffs]
    ax.bar(range(len(diffs)), diffs, color=colors, width=1.0)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("queries (sorted)")
    ax.set_ylabel("Δ teacher-recall@10")
    wl = win_loss(pq["values"], pq["method"], pq["baseline"])
    ax.set_title(f"{pq['method']} vs {pq['baseline']}: {wl['wins']} wins / {wl['losses']} losses", fontsize=9)
    return _save(fig, path)


PLOTS = {"training": _training_plot, "recall_vs_bytes": _bytes_plot, "per_query": _per_query_plot}
