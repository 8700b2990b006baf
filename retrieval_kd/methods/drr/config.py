"""Configs (YAML, pydantic) of the Distill-Retrieve-Read recipes: train a rewriter, run the LLM teacher."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from retrieval_kd.config import RunPath, StrictModel


class TeacherSourceConfig(StrictModel):
    """Where (dialogue, teacher queries) pairs come from."""

    dataset: str  # conversations whose last turn carries teacher_queries, or any dataset with `jsonl`
    jsonl: RunPath | None = None  # teacher queries by id (e.g. the LLM teacher's output; `runs/...` as in `out`)
    synthetic_dialogues: bool = False  # zh: multi-round dialogues built from the dataset's ask→title pairs
    exclude_names_from: str | None = None  # dataset whose medicine names the synthetic dialogues must not use
    aside: bool = False  # zh synthetic dialogues: also 'aside' ones (the newest medicine named is not the user's own)
    split: Literal["all", "train", "dev"] = "all"  # 'train': leave the dev share out (settings are chosen on it)
    dev_share: float = Field(0.2, gt=0, lt=1)  # share of ids (stable hash) in the dev split
    limit: int | None = None


class TrainParamsConfig(StrictModel):
    """How a rewriter student is trained (optimiser, data, tagger-only options)."""

    epochs: int = 3
    batch_size: int = 16
    lr: float = 5e-5
    max_length: int = 256
    add_cjk: bool = False  # add CJK characters of the training data to the tokenizer (zh)
    unk_prob: float = 0.0  # word dropout to [UNK]: unseen medicine names must be judged from their context
    mask_entities: bool = False  # zh: medicine names mined from the training texts become [MASK] (see tagging.py)
    entity_weight: float = 1.0  # loss weight of [MASK]ed entity tokens (which entity to carry)
    heldout: float = Field(0.1, gt=0, lt=1)  # tagger: share of examples held out to choose the threshold
    seed: int = 0
    device: str | None = None  # None: cuda when available, else cpu


class DenseQueryConfig(StrictModel):
    """student: dense-query (methods/drr/dense_query.py): the dense encoder's query side, taught by gold answers."""

    prefix: bool = True  # the encoder reads 'kept terms . question' (teacher queries in training, the rewriter's
    #                      kept terms at search time); false: the question alone
    temperature: float = Field(0.05, gt=0)  # softmax temperature over the whole corpus


class TrainRewriterConfig(StrictModel):
    """One rewriter-training run: teacher sources, the student and its training, how the rewriter emits queries."""

    student: Literal["extractive", "seq2seq", "dense-query"] = "extractive"
    base: str | None = None  # extractive: encoder folder (None = bundled MiniLM); seq2seq: HF seq2seq folder
    tiny_seq2seq: bool = False  # seq2seq without `base`: start from a tiny T5 built from a config (completeness)
    warm_start: bool = False  # seq2seq without `base`: MiniLM encoder + MiniLM decoder (cross-attention new)
    copy_only: bool = True  # seq2seq decoding may only write tokens of the dialogue (+ ';'): a copy generator
    teachers: list[TeacherSourceConfig]
    train: TrainParamsConfig = TrainParamsConfig()
    dense: DenseQueryConfig = DenseQueryConfig()  # student: dense-query only
    mode: Literal["append", "replace", "both"] = "append"  # appending kept words beat replacing the question
    boost: int = 2
    keep: Literal["terms", "entities"] = "terms"  # extractive: all kept words, or only masked entities (zh)
    carry: bool = False  # keep='entities': a question keeping no entity carries the history's most probable one
    #                      (otherwise only a history entity the tagger keeps is carried: the newest)
    out: RunPath


class FeedbackConfig(StrictModel):
    """Retrieval-feedback filtering of sampled LLM queries: keep a query when BM25 over the dataset's corpus finds
    one of the dialogue's gold documents in its top k. Train split only: an id of the dev split, or of a report
    set, in the input is an error (they choose settings / report results and must not teach)."""

    k: int = Field(10, ge=1)
    rel: int = Field(1, ge=1)  # a qrels grade >= rel is gold evidence
    tokenizer: str = "en"  # BM25 tokenizer: en | zh-bigram | zh-jieba
    dev_share: float = Field(0.2, gt=0, lt=1)  # the dev split of teachers.queries.split_of
    report_sets: list[str] = ["medquad-liveqa"]  # datasets whose query ids must never be in the input


class LLMTeacherConfig(StrictModel):
    """One LLM-teacher run: the OpenAI-compatible endpoint, the dataset to ask about, cache and output."""

    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "local"
    api_key_env: str | None = None  # name of the environment variable holding the key (never the key itself)
    dataset: str
    ids: list[str] | None = None
    limit: int | None = None
    cache: RunPath = "runs/llm-teacher/cache.jsonl"
    out: RunPath = "runs/llm-teacher/queries.jsonl"
    max_retries: int = 3
    timeout: float = 120.0
    temperature: float = 0.0
    max_tokens: int = 256
    tool_choice: str = "search"  # 'search' forces the tool; 'auto' or 'required' as the server supports
    samples: int = Field(1, ge=1)  # tool calls per dialogue; > 1 sends seed = seed + sample index (temperature > 0)
    seed: int = 0
    feedback: FeedbackConfig | None = None  # keep only queries whose BM25 retrieval finds the gold evidence
