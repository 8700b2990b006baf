"""MedicineQA / LiveQA-Med recipe: Distill-Retrieve-Read rows (rewriter × BM25 / dense / hybrid), one Markdown table.

    python eval/medicineqa.py [--config configs/drr_eval.yaml] [--set out=runs/drr-eval]
    rkd eval medicineqa       (same options)

English: LiveQA-Med 2017 test questions (104; 78 with a relevant answer) against MedQuAD answers (+ the judged
answers only in the qrels CSV), graded qrels (gain = grade - 1, relevant = grade >= 3): nDCG@10, R@100, HR@k.
Chinese: MedicineQA (PULSE-EVAL, 150 questions) against the (drug, attribute, text) records of its prompts:
HR@k at medicine level (a retrieved record names a gold medicine) and attribute level (a gold record), on the
single-turn questions and on the derived multi-round stress test ('pronoun', 'distractor' variants).
Rows: raw question (last turn), whole dialogue, teacher queries (NLM summary / drug + attribute: upper bound),
the extractive student (MiniLM tagger), the seq2seq student (tiny T5: completeness only). HR@1 carries a
bootstrap 95% interval. Students are trained first: configs/drr_liveqa.yaml, configs/drr_medicineqa.yaml,
configs/drr_seq2seq_tiny.yaml (see their headers).
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from retrieval_kd.bench.medicineqa import EvalConfig, run_eval
    from retrieval_kd.config import load_config
    from retrieval_kd.threads import set_threads

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/drr_eval.yaml")
    p.add_argument("--set", action="append", default=[], dest="overrides")
    args = p.parse_args(argv)
    set_threads()
    cfg = load_config(args.config, EvalConfig, args.overrides)
    _, table = run_eval(cfg, log=lambda s: print(s, file=sys.stderr))
    print(table)
    print(f"\nruns, queries, rows.json, table.md -> {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
