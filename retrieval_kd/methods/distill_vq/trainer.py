"""Distill-VQ (Xiao et al., SIGIR 2022): train a faiss IVF-PQ index to rank like a dense teacher."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.config import load_config
from retrieval_kd.errors import ConfigError, RKDError
from retrieval_kd.methods.distill_vq.config import VQConfig
from retrieval_kd.methods.distill_vq.queries import pseudo_count, pseudo_queries, query_lengths, split_queries
from retrieval_kd.threads import set_threads
from retrieval_kd.utils import atomic_dir, run_info, write_json

FORMAT = "distill-vq"


def loss_curve(records: list[dict], points: int = 200) -> list[list[float]]:
    """[[step, mean loss], ...] of a run's log records, averaged into at most `points` buckets (for the report)."""
    if not records:
        return []
    per = -(-len(records) // points)
    out = []
    for i in range(0, len(records), per):
        part = records[i : i + per]
        out.append([int(part[-1]["step"]), round(float(sum(r["loss"] for r in part) / len(part)), 6)])
    return out


class DistillVQ:
    """`DistillVQ(config).fit(dataset)` trains from a faiss start; `.save(dir)`, `.search(queries, k, nprobe)`."""

    def __init__(self, config: VQConfig | dict | None = None):
        if isinstance(config, dict) or config is None:
            try:
                config = VQConfig.model_validate(config or {})
            except Exception as e:  # pydantic ValidationError -> one line naming the fields
                raise ConfigError(str(e).replace("\n", " ")) from None
        self.config: VQConfig = config
        self.student = None
        self.index = None  # retrieval_kd FaissIndex of the trained quantizer
        self.start_index = None  # the faiss index training started from
        self.split: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.encoder = None  # the teacher (or fine-tuned) query encoder
        self.finetuned = False
        self.export_info: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self.soft_tau_absolute: float | None = None
        self.dataset_name: str | None = None
        self.val_data = None  # the held-out pseudo-queries validation measured (loop.ValData)

    @classmethod
    def from_config(cls, path: str | Path, overrides: list[str] | None = None) -> DistillVQ:
        """Read a YAML config (with `--set a.b=v` style overrides)."""
        return cls(load_config(path, VQConfig, overrides))

    # ---- training ----
    def device(self) -> str:
        """The torch device the config asks for ('auto': cuda when available)."""
        import torch

        dev = self.config.device
        if dev == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if dev == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' requested but torch sees no GPU")
        return dev

    def fit(self, dataset: Any, resume: bool = False, stop_after: int | None = None, start: Any = None) -> DistillVQ:
        """Train on `dataset` (pseudo-queries + optional real training queries); export when all steps are done.

        `start`: a FaissIndex already built over this dataset's teacher embeddings with this config's factory
        (saves rebuilding it); by default it is built here with `index.factory` and the config's seed.
        Under a torch.distributed group (see `distributed.py`) every rank trains; rank 0 alone prints, writes
        output_dir and exports (`index` stays None on the other ranks).
        """
        from retrieval_kd.methods.distill_vq.loop import fit_loop
        from retrieval_kd.training import dist_world

        cfg = self.config
        lead = dist_world()[0] == 0
        set_threads(cfg.threads)
        dev = self.device()
        work = Path(cfg.output_dir) if cfg.output_dir else None
        if resume and work is None:
            raise ConfigError("output_dir: --resume needs an output_dir holding checkpoints")
        t0 = time.perf_counter()
        docs, q_emb, texts, psrc, train_real = self._encode(dataset, dev, cfg.train.progress and lead)
        t1 = time.perf_counter()
        self.start_index = self._start_index(dataset, docs, start)
        self.timings["faiss_build_s"] = time.perf_counter() - t1
        student, data, tower, val = self._train_data(dataset, docs, q_emb, texts, psrc, train_real, dev)
        if work is not None and lead:
            self._prepare_work(work, resume)
        t2 = time.perf_counter()
        records: list[dict] = []
        self.result = fit_loop(student, data, cfg, work, resume, stop_after, tower, hooks=[records.append], val=val,
                               start_index=self.start_index)
        self.timings["train_s"] = time.perf_counter() - t2
        self.result["loss_curve"] = loss_curve(records)
        self.student = student
        self.finetuned = tower.encoder is not None
        if self.finetuned:
            self.encoder = tower.encoder
        if self.result["finished"] and lead:
            t3 = time.perf_counter()
            self._export(data.doc_emb, dataset.doc_ids)
            self.timings["export_s"] = time.perf_counter() - t3
        self.timings["total_s"] = time.perf_counter() - t0
        # the run without the teacher's document embeddings (shared with the faiss baselines); the pseudo-query
        # encoding counts
        self.timings["run_s"] = self.timings["total_s"] - self.timings["encode_docs_s"]
        return self

    def _encode(self, dataset: Any, dev: str, progress: bool
                ) -> tuple[np.ndarray, Any, list[str], np.ndarray, list[str]]:
        """Teacher embeddings of the documents and of the training queries (pseudo + real); records the split."""
        from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus, encode_queries

        cfg, q = self.config, self.config.queries
        t0 = time.perf_counter()
        self.encoder = DenseEncoder(cfg.teacher.model, device=dev, max_length=cfg.teacher.max_length,
                                    batch_size=cfg.teacher.batch_size)
        docs = np.array(encode_corpus(self.encoder, dataset, show_progress=progress), dtype=np.float32)
        self.timings["encode_docs_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        train_real, eval_qids = split_queries(list(dataset.queries), q.real_train_fraction)
        lengths = query_lengths(list(dataset.queries.values())) if q.lengths == "auto" else None
        per_doc = pseudo_count(len(dataset.doc_ids), q.budget, q.pseudo_per_doc)
        ptexts, psrc = pseudo_queries(dataset.doc_texts, per_doc, q.min_words, q.max_words, cfg.seed, lengths)
        texts = ptexts + [dataset.queries[i] for i in train_real]
        if not texts:
            raise ConfigError("queries: no training queries (the pseudo-query budget is 0 and no real query trains)")
        if progress:
            print(f"distill-vq: {len(texts)} training queries ({len(ptexts)} pseudo) to encode (cached)", flush=True)
        _, q_emb = encode_queries(self.encoder, {str(i): t for i, t in enumerate(texts)}, f"{dataset.name}:vq-train")
        self.timings["encode_queries_s"] = time.perf_counter() - t1
        self.dataset_name = dataset.name
        words = [int(lengths.min()), int(np.median(lengths)), int(lengths.max())] if lengths is not None else \
            [q.min_words, q.max_words]
        self.split = {"pseudo_queries": len(ptexts), "pseudo_seed": cfg.seed, "pseudo_per_doc": round(per_doc, 4),
                      "pseudo_lengths": "real queries' word counts (min, median, max)" if lengths is not None
                      else "uniform (min, max)", "pseudo_words": words,
                      "real_train_fraction": q.real_train_fraction, "train_qids": train_real, "eval_qids": eval_qids,
                      "labels_used": bool(q.use_labels and train_real)}
        return docs, q_emb, texts, psrc, train_real

    def _start_index(self, dataset: Any, docs: np.ndarray, start: Any = None) -> Any:
        """The faiss index training starts from: `start` (checked) or one built with `index.factory`."""
        from retrieval_kd.index.faiss_ivfpq import FaissIndex

        cfg = self.config
        if start is None:
            return FaissIndex.build(docs, dataset.doc_ids, cfg.index.factory, seed=cfg.seed,
                                    train_size=cfg.index.train_size, opq_iterations=cfg.index.opq_iterations)
        if start.docids != dataset.doc_ids:
            raise RKDError("start index: its docids are not this dataset's documents in corpus order")
        return start

    def _train_data(self, dataset: Any, docs: np.ndarray, q_emb: Any, texts: list[str], psrc: np.ndarray,
                    train_real: list[str], dev: str) -> tuple[Any, Any, Any, Any]:
        """(student from the start index, the loop's TrainData on `dev`, the query tower, ValData or None)."""
        import torch

        from retrieval_kd.methods.distill_vq.loop import QueryTower, TrainData, ValData, drop_source, teacher_topk
        from retrieval_kd.methods.distill_vq.student import VQStudent
        from retrieval_kd.teachers.dense import DenseEncoder

        cfg = self.config
        student = VQStudent.from_faiss(self.start_index, learn_opq=cfg.student.learn_opq,
                                       update_ivf=cfg.student.update_ivf).to(dev)
        doc_t = torch.from_numpy(docs).to(dev)
        self.soft_tau_absolute = student.calibrate_tau(doc_t, cfg.student.soft_tau)
        q_all = np.array(q_emb, dtype=np.float32)
        positives = self._positives(dataset, psrc, train_real) if cfg.candidates.positives else None
        val_rows = self._val_rows(len(psrc))
        keep = np.setdiff1d(np.arange(len(q_all)), val_rows)
        q_t = torch.from_numpy(q_all[keep]).to(dev)
        if positives is not None:
            positives = [positives[i] for i in keep]
        data = TrainData(doc_t, q_t, teacher_topk(q_t, doc_t, cfg.candidates.top_k), positives,
                         [texts[i] for i in keep], n_pseudo=len(psrc) - len(val_rows))
        val = None
        if len(val_rows):
            qv = torch.from_numpy(q_all[val_rows]).to(dev)
            src = psrc[val_rows] if cfg.candidates.exclude_source else None  # left out, as in training
            top = teacher_topk(qv, doc_t, 10 if src is None else 11).cpu().numpy()
            val = ValData(q_all[val_rows], drop_source(top, src, 10), src)
        self.split["validation_pseudo_queries"] = len(val_rows)
        self.val_data = val
        tower = QueryTower()
        if cfg.student.finetune_query_encoder:
            tower = QueryTower(DenseEncoder(cfg.teacher.model, device=dev, max_length=cfg.teacher.max_length))
        return student, data, tower, val

    def _val_rows(self, n_pseudo: int) -> np.ndarray:
        """Pseudo-query rows held out for validation (none when validation is off or there are too few)."""
        t = self.config.train
        n = min(t.val_queries, n_pseudo // 10)
        if not t.validation or self.config.student.finetune_query_encoder or n < 10:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.random.default_rng([self.config.seed, 7]).choice(n_pseudo, n, replace=False))

    def _prepare_work(self, work: Path, resume: bool) -> None:
        """output_dir: the resume check, run_info.json and config.yaml."""
        work.mkdir(parents=True, exist_ok=True)
        self._check_resume(work, resume)
        write_json(work / "run_info.json", run_info(self.config.model_dump()))
        (work / "config.yaml").write_text(self.config_yaml(), encoding="utf-8")

    def _positives(self, dataset: Any, psrc: np.ndarray, train_real: list[str]) -> list[np.ndarray]:
        """Per training query: the pseudo-query's source row; labelled positives of real ones if use_labels."""
        out = [np.array([r]) for r in psrc]
        row = {d: i for i, d in enumerate(dataset.doc_ids)}
        thr = dataset.rel_threshold
        for qid in train_real:
            rel = dataset.qrels.get(qid, {}) if self.config.queries.use_labels else {}
            out.append(np.array([row[d] for d, g in rel.items() if g >= thr and d in row], dtype=np.int64))
        return out

    def _check_resume(self, work: Path, resume: bool) -> None:
        marker = work / "config_hash.txt"
        h = self.config.config_hash()
        if resume and marker.exists() and marker.read_text().strip() != h:
            raise ConfigError(f"{work}: checkpoint was made with another config (hash {marker.read_text().strip()})")
        if not resume:
            ckpt = work / "checkpoints" / "last.pt"
            if ckpt.exists():
                ckpt.unlink()
        marker.write_text(h + "\n")

    def _export(self, doc_t: Any, docids: list[str]) -> None:
        from retrieval_kd.index.faiss_ivfpq import FaissIndex

        val = self.result.get("validation") or {}
        if val.get("kept_start"):  # no trained state beat the faiss start on the held-out pseudo-queries
            self.export_info = {"kept_start": True, "ntotal": int(self.start_index.index.ntotal)}
            self.index = FaissIndex(self.start_index.index, docids, self.start_index.factory, "ip", self.meta())
            return
        index, info = self.student.to_faiss(doc_t, self.start_index.factory)
        self.export_info = info
        self.index = FaissIndex(index, docids, self.start_index.factory, "ip", self.meta())

    # ---- outputs ----
    def config_yaml(self) -> str:
        """The config as YAML."""
        import yaml

        return yaml.safe_dump(self.config.model_dump(), sort_keys=False)

    def meta(self) -> dict[str, Any]:
        """What the saved index folder says about how it was made."""
        c = self.config
        return {"trainer": FORMAT, "dataset": self.dataset_name or c.dataset, "config_hash": c.config_hash(),
                "teacher": {"model": str(self.encoder.path) if self.encoder else c.teacher.model,
                            "max_length": c.teacher.max_length, "pooling": "mean", "normalize": True},
                "loss": {"name": c.loss.name, "params": c.loss.params, "teacher_temperature": c.loss.teacher_temperature,
                         "student_temperature": c.loss.student_temperature, "weight": self.result.get("loss_weight")},
                "nprobe": c.index.nprobe, "split": self.split, "soft_tau_absolute": self.soft_tau_absolute, "assignment": "training assignment (fixed for the run)",
                "query_encoder": "query_encoder" if self.finetuned else None,
                "valid_only_with_query_encoder": self.finetuned, "steps": self.result.get("steps"),
                "validation": self.result.get("validation"), "stopped_early": self.result.get("stopped_early"),
                "timings": {k: round(v, 3) for k, v in self.timings.items()}, **self.export_info}

    def save(self, dest: str | Path) -> Path:
        """Write index.faiss, docids.txt, meta.json (+ config.yaml, run_info.json, query_encoder/) atomically."""
        if self.index is None:
            raise RKDError("nothing to save: fit() has not finished all its steps")
        dest = Path(dest)
        self.index.meta.update(self.meta())
        with atomic_dir(dest) as tmp:
            self.index.save(tmp)
            (tmp / "config.yaml").write_text(self.config_yaml(), encoding="utf-8")
            write_json(tmp / "run_info.json", run_info(self.config.model_dump()))
            if self.finetuned:
                self.encoder.model.save_pretrained(tmp / "query_encoder")
                self.encoder.tokenizer.save_pretrained(tmp / "query_encoder")
        return dest

    @classmethod
    def load(cls, src: str | Path) -> DistillVQ:
        """Open a folder written by `save` (index, config and, when fine-tuned, the query encoder)."""
        from retrieval_kd.index.faiss_ivfpq import FaissIndex

        src = Path(src)
        index = FaissIndex.load(src)
        vq = cls(load_config(src / "config.yaml", VQConfig))
        vq.index = index
        vq.split = index.meta.get("split", {})
        vq.finetuned = bool(index.meta.get("valid_only_with_query_encoder"))
        vq._encoder_path = src / "query_encoder" if vq.finetuned else None
        return vq

    # ---- searching ----
    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query embeddings from the (fine-tuned, if any) query encoder."""
        from retrieval_kd.teachers.dense import DenseEncoder

        if self.encoder is None:
            model = getattr(self, "_encoder_path", None) or self.config.teacher.model
            self.encoder = DenseEncoder(model, device=self.device(), max_length=self.config.teacher.max_length)
        return self.encoder.encode(texts)

    def search(self, queries: list[str] | np.ndarray, k: int = 10, nprobe: int | None = None
               ) -> list[list[tuple[str, float]]]:
        """Top-k (docid, score) per query from the trained faiss index (texts are encoded first)."""
        if self.index is None:
            raise RKDError("no trained index: call fit() or DistillVQ.load()")
        q = self.encode_queries(list(queries)) if not isinstance(queries, np.ndarray) else queries
        scores, idx = self.index.search(q, k, nprobe or self.config.index.nprobe)
        return [[(self.index.docids[i], float(s)) for s, i in zip(sr, ir) if i >= 0] for sr, ir in zip(scores, idx)]
