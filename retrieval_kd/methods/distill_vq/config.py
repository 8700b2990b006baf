"""The Distill-VQ YAML config (pydantic; unknown keys and bad values are ConfigErrors naming the field)."""
from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from retrieval_kd.config import RunPath, StrictModel
from retrieval_kd.utils import sha256_text


class TeacherConfig(StrictModel):
    """The dense teacher whose ranking the index learns (also the query encoder)."""

    model: str = "minilm"  # a local HF folder, or 'minilm' for the bundled all-MiniLM-L6-v2
    max_length: int = Field(256, ge=8)
    batch_size: int = Field(64, ge=1)


class IndexConfig(StrictModel):
    """The faiss IVF-PQ index: factory of the start (and deployed) index, search nprobe."""

    factory: str = "OPQ8,IVFn,PQ8x8np"  # IVFn -> IVF√N; the start index and the deployed one
    nprobe: int = Field(16, ge=1)
    train_size: int | None = Field(100_000, ge=1)  # the faiss start trains on a sample this large (None: all)
    opq_iterations: int = Field(25, ge=1)  # faiss OPQ alternations (faiss's default 50 gave the same start)

    @field_validator("factory")
    @classmethod
    def _ivfpq(cls, v: str) -> str:
        if not re.fullmatch(r"(OPQ\d+,)?IVF(n|\{n\}|\d+),PQ\d+(x8)?(np)?", v.replace(" ", "")):
            raise ValueError("must be '[OPQm,]IVF<n|nlist>,PQmx8[np]' (an IVF-PQ index with 8-bit codes)")
        return v.replace(" ", "")


class LossConfig(StrictModel):
    """The ranking loss by name (retrieval_kd.losses), its parameters, temperatures and PQ-loss weight."""

    name: str = "listnet"
    params: dict[str, Any] = Field(default_factory=dict)
    teacher_temperature: float = Field(0.05, gt=0)
    student_temperature: float = Field(0.05, gt=0)
    weight: float | None = Field(None, gt=0)  # w in IVF loss + w·PQ loss; None: the first batch's ratio

    @model_validator(mode="after")
    def _known(self) -> LossConfig:
        from retrieval_kd.losses import available, loss_params

        if self.name not in available():
            raise ValueError(f"name: unknown loss {self.name!r}; known: {', '.join(available())}")
        known = loss_params(self.name)
        for key in self.params:
            if key not in known:
                raise ValueError(f"params.{key}: not a parameter of loss {self.name!r} (takes: {', '.join(known) or 'none'})")
        if self.name == "kl" and self.params.get("direction", "forward") not in {"forward", "reverse", "symmetric"}:
            raise ValueError("params.direction: must be forward, reverse or symmetric")
        return self


class CandidatesConfig(StrictModel):
    """Each training query's candidate documents."""

    top_k: int = Field(200, ge=1)  # the teacher's exact top-K per training query
    in_batch: bool = True  # also every other candidate of the batch
    positives: bool = True  # a pseudo-query's source document (and labels when queries.use_labels)
    # leave each pseudo-query's source document out of its own candidates and validation: a span's source is its
    # near-duplicate (teacher score ~0.9 where real queries' top-1 is ~0.6), which would take all the target mass
    exclude_source: bool = True


class QueriesConfig(StrictModel):
    """Training queries: pseudo-queries (document spans) and optionally some real ones."""

    budget: int | None = Field(None, ge=0)  # pseudo-queries in all; None: 6 per document, at most 100,000
    pseudo_per_doc: float | None = Field(None, ge=0)  # spans per document instead of a budget
    # span lengths: "auto" draws them from the real queries' word counts (their texts only, never their labels)
    # when the dataset has at least 10 queries, else uniformly from min_words..max_words ("range" always does)
    lengths: Literal["auto", "range"] = "auto"
    min_words: int = Field(4, ge=1)
    max_words: int = Field(32, ge=1)
    real_train_fraction: float = Field(0.0, ge=0, le=1)  # hash-chosen real queries (text only) that join training
    use_labels: bool = False  # their qrels positives join the candidates and the labels

    @model_validator(mode="after")
    def _span(self) -> QueriesConfig:
        if self.max_words < self.min_words:
            raise ValueError("max_words: must be >= min_words")
        return self


class StudentConfig(StrictModel):
    """What the student learns besides the PQ codebooks."""

    learn_opq: bool = False  # learn the OPQ rotation (kept orthogonal)
    update_ivf: bool = False  # also train the coarse centroids (assignments stay fixed)
    finetune_query_encoder: bool = False  # the index is then only valid with the saved encoder
    # tau of the straight-through softmax(-distance/tau), in units of the median gap between each sub-vector's
    # nearest and second-nearest codeword at the start (so one value suits every PQ size and collection)
    soft_tau: float = Field(0.07, gt=0)


class OptimConfig(StrictModel):
    """AdamW learning rates per part, weight decay and the LR schedule (transformers.get_scheduler)."""

    lr_codebooks: float = Field(1e-3, gt=0)
    lr_centroids: float = Field(1e-4, gt=0)
    lr_rotation: float = Field(1e-4, gt=0)
    lr_encoder: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"


class TrainConfig(StrictModel):
    """Steps, batch size, validation on held-out pseudo-queries, checkpoints and the progress bar."""

    epochs: int = Field(1, ge=1)  # passes over the training queries (whose number scales with the collection)
    steps: int | None = Field(None, ge=1)  # overrides epochs and min_samples
    batch_size: int = Field(64, ge=1)
    # at least this many training queries seen (several passes on a small collection: ~300 steps of 64)
    min_samples: int = Field(20_000, ge=0)
    # validation: teacher-recall@10 of the exported index (at index.nprobe) on held-out pseudo-queries, the faiss
    # start being step 0; the best state is kept (the start itself when no step beats it); stop after `patience`
    # evaluations without a better one
    validation: bool = True
    val_queries: int = Field(500, ge=10)  # held-out pseudo-queries (at most 10% of them)
    eval_every: int | None = Field(None, ge=1)  # None: about 10 evaluations per run, at least 10 steps apart
    patience: int = Field(3, ge=1)
    checkpoint_every: int = Field(0, ge=0)  # 0: only at the end
    progress: bool = True


class VQConfig(StrictModel):
    """One Distill-VQ run: dataset, teacher, start index, loss, candidates, queries, options, optimiser."""

    dataset: str = "cacm"
    output_dir: RunPath | None = None  # checkpoints, metrics.jsonl, config and run info; None: nothing written
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)  # None: $RKD_THREADS or 1
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    candidates: CandidatesConfig = Field(default_factory=CandidatesConfig)
    queries: QueriesConfig = Field(default_factory=QueriesConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _source(self) -> VQConfig:
        if self.candidates.exclude_source and not self.candidates.positives:
            raise ValueError("candidates.exclude_source: needs candidates.positives (the source rows) to be true")
        return self

    def config_hash(self) -> str:
        """Hash of everything that changes the trained index (not output paths, progress bars, checkpoints)."""
        d = self.model_dump()
        d.pop("output_dir")
        d.pop("threads")
        d["train"].pop("progress")
        d["train"].pop("checkpoint_every")
        return sha256_text(json.dumps(d, sort_keys=True))[:16]
