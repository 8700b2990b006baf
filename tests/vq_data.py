"""The Distill-VQ tests' shared data: a slice of CACM (the embedded demo works without ../shared/data)."""
from __future__ import annotations

from retrieval_kd.data.dataset import Dataset


def cacm_slice(n_docs: int = 800) -> Dataset:
    """The first `n_docs` CACM documents with every real query (qrels restricted to the slice)."""
    from retrieval_kd import datasets

    ds = datasets.load("cacm")
    corpus = ds.corpus[:n_docs]
    keep = {d["id"] for d in corpus}
    qrels = {q: {d: g for d, g in r.items() if d in keep} for q, r in ds.qrels.items()}
    return Dataset(name=f"cacm-slice{n_docs}", corpus=corpus, queries=dict(ds.queries),
                   qrels={q: r for q, r in qrels.items() if r}, meta=dict(ds.meta))
