"""Query mixtures of trained DiSCo students, chosen on the choice set and reported on the others.

    rkd eval cast-mix RUN [--with RUN2 ...] [--weights 0,0.5,1] [--alphas 0,0.25,0.5,1] [--out runs/cast-mix]

Every candidate is `v = student_1 + sum_j w_j * student_j + alpha * (1 + sum_j w_j) * SPLADE(utterance)` over the
same frozen document encoder and impact index as `rkd eval cast` (the members' vectors are encoded once; a candidate
costs one search). `w_j` runs over `--weights` for each `--with` run, `alpha` (the utterance's share, relative to the
members' total weight) over `--alphas`; the first run alone is always a candidate. A member trained with the
utterance term (`train.utterance_mix` a) enters as `student + a * SPLADE(utterance)`, as it was trained. The candidate with the highest nDCG@3 on the choice sets (CAsT 2021) wins;
ties go to the earlier candidate (fewer members, smaller alpha). The report sets are printed for the winner, the
first run alone and the references, paired with raw / history / teacher, never used for the choice. The winner is
written as a mixture folder (`OUT/mixture`, meta.json kind "disco-mixture", `methods/disco/mixing.py`) that
`retrieval_kd.load` opens and `rkd export disco-bundle` serves.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.bench.cast import (
    BASELINES,
    CHOICE_SETS,
    MEASURES,
    REWRITES,
    paired_rows,
    score_rows,
    set_label,
    sparse_run,
    split_queries,
    turn_texts,
)
from retrieval_kd.paths import run_path

REFERENCE_TEXTS = {"history": "history", "teacher": "manual"}  # BASELINES key -> turn text kind (raw: below)


def candidates(n_members: int, weights: Sequence[float], alphas: Sequence[float]) -> list[tuple[tuple[float, ...], float]]:
    """(member weights, utterance share) of every candidate; the first member's weight is 1."""
    from retrieval_kd.errors import ConfigError
    from retrieval_kd.methods.disco.mixing import check_weight

    ws = [check_weight(w, "--weights") for w in weights]
    al = [check_weight(a, "--alphas") for a in alphas]
    if not ws or not al:
        raise ConfigError("--weights and --alphas need at least one value each")
    alone = ((1.0, *([0.0] * (n_members - 1))), 0.0)  # the first run alone is always a candidate (and first)
    out = [alone, *(((1.0, *w), a) for w in itertools.product(ws, repeat=n_members - 1) for a in al)]
    return sorted(dict.fromkeys(out), key=lambda c: (sum(1 for w in c[0] if w), c[0], c[1]))


def candidate_name(weights: Sequence[float], alpha: float) -> str:
    return "mix " + " + ".join(f"{w:g}*s{i + 1}" for i, w in enumerate(weights) if w) + f" + {alpha:g}*utterance"


def _members(runs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Each run's student folder, input settings, training seconds and document-encoder fingerprint."""
    from retrieval_kd.artifacts import read_meta
    from retrieval_kd.errors import ConfigError
    from retrieval_kd.methods.disco.conversation import read_student_config
    from retrieval_kd.methods.disco.mixture import student_folder

    if not runs:
        raise ConfigError("cast-mix needs at least one DiSCo run folder")
    out = []
    for r in runs:
        r = Path(run_path(r))
        folder = student_folder(r)
        meta = read_meta(r) if folder != r else {}
        out.append({"run": r.resolve(), "folder": folder, "config": read_student_config(folder),
                    "train_s": meta.get("train_seconds"), "fingerprint": meta.get("document_fingerprint"),
                    "utterance_mix": float(meta.get("utterance_mix") or 0.0),
                    "train_collections": list(meta.get("train_collections") or [])})
    return out


def _document_encoder(members: list[dict[str, Any]], document_encoder: str | None):
    """The frozen SPLADE document encoder; ConfigError when a member was trained over another one."""
    from retrieval_kd.errors import ConfigError
    from retrieval_kd.teachers.splade import SpladeEncoder

    enc = SpladeEncoder(document_encoder)
    for m in members:
        if m["fingerprint"] and m["fingerprint"] != enc.fingerprint:
            raise ConfigError(f"{m['run']}: trained over document encoder {m['fingerprint']}, not {enc.path} "
                              f"({enc.fingerprint}); pass --document-encoder")
    return enc


class Scoring:
    """What scoring runs over a dataset needs, built once: the members, the dataset and its evaluation sets, the
    frozen document encoder and impact index, the turn ids and their raw utterances' vectors."""

    def __init__(self, runs: Sequence[str | Path], dataset: str, document_encoder: str | None = None,
                 require_choice: bool = False):
        from retrieval_kd.datasets import load
        from retrieval_kd.errors import RKDError
        from retrieval_kd.index.impact import ImpactIndex
        from retrieval_kd.teachers.splade import encode_cached
        from retrieval_kd.threads import set_threads

        self.members = _members(runs)
        set_threads()
        self.ds = load(dataset)
        self.splits = split_queries(self.ds)
        if require_choice and not any(c in CHOICE_SETS for c in self.splits):  # before any encoding
            raise RKDError(f"{dataset}: no choice-set turns ({', '.join(map(set_label, CHOICE_SETS))}); "
                           "cannot choose a mixture")
        self.enc = _document_encoder(self.members, document_encoder)
        self.index = ImpactIndex.build(encode_cached(self.enc, self.ds.doc_texts, "corpus"), self.ds.doc_ids,
                                       self.enc.vocab)
        raw = turn_texts(self.ds, "raw")
        self.qids = list(raw)
        self.utterances = self.enc.encode([raw[q] for q in self.qids])  # the raw row and every utterance term

    def references(self) -> list[tuple[str, dict, bool]]:
        """(row name, run, covered_only) of raw, history and teacher; raw searches the utterance vectors."""
        out = [(BASELINES["raw"], self.index.search_run(self.qids, self.utterances, 100), False)]
        for key, kind in REFERENCE_TEXTS.items():
            out.append((BASELINES[key], sparse_run(self.enc, self.index, turn_texts(self.ds, kind)), kind in REWRITES))
        return out

    def member_vectors(self, m: dict[str, Any]):
        """A member's query vectors of every turn; one trained with the utterance term (train.utterance_mix) is
        that sum, as it was trained."""
        from retrieval_kd.methods.disco.mixing import combine
        from retrieval_kd.teachers.splade import SpladeEncoder

        texts = turn_texts(self.ds, "student", m["config"].get("responses", "last"))
        student = SpladeEncoder(m["folder"], max_length=int(m["config"].get("max_length", 256)))
        return combine([student.encode([texts[q] for q in self.qids])], [1.0], self.utterances, m["utterance_mix"])

    def search(self, vecs: Any) -> dict:
        return self.index.search_run(self.qids, vecs, 100)


def _choice(rows: list[dict]) -> float:
    picked = [r["nDCG@3"] for r in rows if r["role"] == "choice"]
    return sum(picked) / len(picked) if picked else float("-inf")


def run_mix(runs: Sequence[str | Path], out: str | Path = "runs/cast-mix", dataset: str = "cast-eval",
            weights: Sequence[float] = (0.0, 0.5, 1.0), alphas: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
            document_encoder: str | None = None, command: str = "rkd eval cast-mix") -> dict[str, Any]:
    """Score every candidate, pick one on the choice sets, print the tables, write OUT/mixture; the results."""
    from retrieval_kd.methods.disco.mixing import combine

    grid = candidates(len(runs), weights, alphas)
    sc = Scoring(runs, dataset, document_encoder, require_choice=True)
    members, ds, splits, utterances = sc.members, sc.ds, sc.splits, sc.utterances
    out = Path(run_path(out))
    refs = [r for name, run, covered in sc.references() for r in score_rows(name, run, ds, splits,
                                                                            covered_only=covered)]
    mats = [sc.member_vectors(m) for m in members]
    scored = []
    for ws, alpha in grid:
        vecs = combine(mats, ws, utterances, alpha * sum(ws))
        train_s = sum(m["train_s"] or 0 for m, w in zip(members, ws, strict=True) if w)
        rows = score_rows(candidate_name(ws, alpha), sc.search(vecs), ds, splits, {"train_s": round(train_s, 1)})
        scored.append({"weights": list(ws), "alpha": alpha, "choice_ndcg3": _choice(rows), "rows": rows})
    best = max(scored, key=lambda s: s["choice_ndcg3"])  # max keeps the first of equal values
    alone = scored[0]
    rows = refs + alone["rows"] + (best["rows"] if best is not alone else [])
    result = {"command": command, "dataset": str(dataset), "runs": [str(m["run"]) for m in members],
              "chosen": {"weights": best["weights"], "alpha": best["alpha"], "name": best["rows"][0]["query"]},
              "grid": [{"weights": s["weights"], "alpha": s["alpha"], "choice nDCG@3": s["choice_ndcg3"],
                        "rows": [{k: v for k, v in r.items() if k != "_pq"} for r in s["rows"]]} for s in scored],
              "rows": [{k: v for k, v in r.items() if k != "_pq"} for r in rows], "paired": paired_rows(rows)}
    _write(out, result, rows, members, best, sc.enc, document_encoder)
    return result


def _write(out: Path, result: dict, rows: list[dict], members: list[dict], best: dict, enc: Any,
           document_encoder: str | None) -> None:
    """Print the grid (choice set) and the tables; write results.json, table.md and the mixture folder."""
    from retrieval_kd.artifacts import write_meta
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.methods.disco.mixing import MIX_KIND
    from retrieval_kd.utils import atomic_dir, run_info, write_json

    choice = ", ".join(map(set_label, CHOICE_SETS))
    grid = format_table([{"candidate": g["rows"][0]["query"], f"{choice} nDCG@3 (choice)": g["choice nDCG@3"]}
                         for g in result["grid"]])
    table = format_table(rows, ["set", "role", "query", *MEASURES, "turns", "train_s"])
    paired = format_table(result["paired"], ["set", "role", "query", "nDCG@3", *(f"vs {k}" for k in BASELINES),
                                             "% teacher", "R@100 - history"])
    text = (f"`{result['command'].strip()}`\n\nCandidates on the choice set:\n\n{grid}\n\nChosen: "
            f"**{result['chosen']['name']}**\n\n{table}\n\nnDCG@3 paired with each baseline (diff [95% CI] "
            f"wins/ties/losses):\n\n{paired}\n")
    print(f"\n{text}")
    write_json(out / "results.json", {**result, "run_info": run_info()})
    (out / "table.md").write_text(text, encoding="utf-8")
    ws, alpha = best["weights"], best["alpha"]
    with atomic_dir(out / "mixture") as tmp:
        write_meta(tmp, MIX_KIND, 1, members=[{"run": str(m["run"]), "weight": w}
                                              for m, w in zip(members, ws, strict=True) if w],
                   utterance=alpha * sum(ws) + sum(w * m["utterance_mix"] for m, w in zip(members, ws, strict=True)),
                   document_encoder=document_encoder,
                   document_fingerprint=enc.fingerprint, chosen_on=[set_label(c) for c in CHOICE_SETS],
                   dataset=result["dataset"], choice_ndcg3=best["choice_ndcg3"],
                   grid=[{k: g[k] for k in ("weights", "alpha", "choice nDCG@3")} for g in result["grid"]])
