"""DiSCo trainer (Lupart et al., SIGIR 2025): distil rewrite teachers into a conversational SPLADE query encoder.

The document encoder is frozen (its vectors are computed once). For each training turn the student reads the
conversation (see `methods.disco.conversation.conversation_text`) and is trained so that its scores over candidate documents
match the teachers' scores for the turn's rewrite(s):

    loss = kl_weight · KL(p_teacher ‖ softmax(s_student / T)) + infonce_weight · InfoNCE(s_student, top teacher doc)
           + flops_weight · FLOPS(q) + l1_weight · L1(q) + rep_weight · rep(q, q_teacher)

With `train.utterance_mix` α the query is q = student(conversation) + α · SPLADE_doc(utterance) in every term
above (the utterance's vector is frozen, so the student learns a residual: what the utterance lacks); the run's
meta.json records α, and `rkd eval cast`, `rkd eval cast-mix` and the bundle query with the same sum.

rep (`rep_loss`: vector_mse | vector_cosine) pulls the student's SPLADE vector of the conversation towards the
teachers' SPLADE vector of the rewrite (the mean over the teachers that have one: ConvDR-style representation
distillation), on the vocabulary rows the batch's documents or rewrites use (the rows the student is decoded on).

Candidates of a turn: documents sampled from configurable rank ranges of each teacher's ranking (hard
negatives; `[start, end, n]`), with `context` N the turn's own last N system responses (context negatives: the
text the student reads, as documents; a response already in the pool is that pool document), and with `in_batch`
the other turns' candidates too. With `data.pseudo_responses` a turn whose previous turn has no system response
(CAsT 2019/2020, CANARD) reads one: the pool document the teachers rank first for the previous turn's rewrite, what
a retrieval system would have shown; with `context` it is also that turn's candidate. Teacher scores are computed
online for every (turn, candidate) pair; `teachers.rewrites.aggregate` merges several teachers.
Evaluation conversations are never trained on: turn ids shared with the evaluation dataset are an error.
The terms are `retrieval_kd.losses`' kl and infonce (target="probs": the teachers give a distribution),
flops, l1 and the representation losses; the loop (AdamW, clipping at norm 1, linear schedule with warm-up) is `retrieval_kd.training`'s.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retrieval_kd.artifacts import write_meta
from retrieval_kd.errors import ConfigError
from retrieval_kd.methods.disco.config import DiscoConfig
from retrieval_kd.threads import set_threads
from retrieval_kd.utils import atomic_dir, run_info

KIND = "disco-student"
FORMAT_VERSION = 1


def _rewrite_key(turn: dict) -> str | None:
    """A turn's human rewrite, lower-cased, when it is long enough (5+ words) to identify the turn."""
    words = str(turn.get("manual") or "").lower().split()
    return " ".join(words) if len(words) >= 5 else None


def training_turns(cfg: DiscoConfig, train_ds, eval_ds=None) -> list[dict]:
    """Turns of the configured training collections, refusing any turn that is an evaluation turn (same id, or
    same human rewrite of 5+ words: a topic copied under another id) or comes from an evaluation collection."""
    turns = [{**t, "conversation": f"{c.get('collection')}/{c['id']}", "collection": c.get("collection")}
             for c in train_ds.conversations if c.get("collection") in cfg.data.collections for t in c["turns"]]
    if eval_ds is not None:
        eval_turns = [t for c in eval_ds.conversations for t in c["turns"]]
        leaked = {t["id"] for t in turns} & ({t["id"] for t in eval_turns} | set(eval_ds.queries))
        if leaked:
            raise ConfigError(f"training turns overlap the evaluation set '{eval_ds.name}': {sorted(leaked)[:5]}")
        texts = {k for k in map(_rewrite_key, eval_turns) if k}
        copied = [t["id"] for t in turns if _rewrite_key(t) in texts]
        if copied:
            raise ConfigError(f"training turns {copied[:3]} have the human rewrite of an evaluation turn of "
                              f"'{eval_ds.name}'")
        bad = set(cfg.data.collections) & {c.get("collection") for c in eval_ds.conversations}
        if bad:
            raise ConfigError(f"collections {sorted(bad)} are evaluation collections of '{eval_ds.name}'")
    return turns


def sample_turns(turns: list[dict], sample: dict[str, int], seed: int) -> list[dict]:
    """At most `sample[collection]` turns of each named collection, drawn at random (order kept); others all."""
    rng = np.random.default_rng(seed)
    keep = np.ones(len(turns), dtype=bool)
    for coll, n in sample.items():
        idx = np.array([i for i, t in enumerate(turns) if t["collection"] == coll], dtype=np.int64)
        if len(idx) > n:
            keep[np.setdiff1d(idx, rng.choice(idx, size=n, replace=False))] = False
    return [t for t, k in zip(turns, keep, strict=True) if k]


def sample_candidates(ranks: np.ndarray, ranges, rng: np.random.Generator) -> list[int]:
    """Doc indices sampled from rank ranges [start, end, n] of each available teacher's ranking [T, depth]."""
    out: list[int] = []
    for r in ranks:
        if r[0] < 0:
            continue
        for lo, hi, n in ranges:
            pool = r[lo:hi]
            if len(pool):
                out.extend(rng.choice(pool, size=min(n, len(pool)), replace=False).tolist())
    return list(dict.fromkeys(out))


def pseudo_responses(turns: list[dict], ranks: np.ndarray, doc_texts) -> int:
    """Give each turn whose history ends with a user turn (the previous turn has no system response) a response:
    the text of the pool document ranked first, by the first teacher that has a ranking, for that previous turn's
    rewrite, when the previous turn is a training turn of the same conversation. The history lists are replaced,
    not changed in place. Returns how many turns received one."""
    from retrieval_kd.methods.disco.conversation import is_response, squash

    before: dict[tuple[str, str], int] = {}
    for i, t in enumerate(turns):
        before.setdefault((t["conversation"], squash(t["utterance"])), i)
    n = 0
    for t in turns:
        hist = list(t["history"])
        if not hist or is_response(hist[-1]):
            continue
        j = before.get((t["conversation"], squash(hist[-1].get("text", ""))))
        if j is None:
            continue
        ranked = [r[0] for r in ranks[:, j] if r[0] >= 0]
        if ranked:
            t["history"] = [*hist, {"role": "system", "text": doc_texts[int(ranked[0])]}]
            n += 1
    return n


class DiscoTrainer:
    """Holds the frozen document vectors, the teachers and the student; `fit()` trains, `save()` writes."""

    def __init__(self, cfg: DiscoConfig, progress: bool = True):
        from retrieval_kd.datasets import load
        from retrieval_kd.methods.disco.student import SpladeStudent
        from retrieval_kd.teachers.rewrites import RewriteTeachers, load_rewrites
        from retrieval_kd.teachers.splade import SpladeEncoder, encode_cached

        set_threads()
        self.cfg, self.progress = cfg, progress
        self.train_ds = load(cfg.data.train)
        eval_ds = load(cfg.data.eval) if cfg.data.eval else None
        turns = training_turns(cfg, self.train_ds, eval_ds)
        rewrites = [load_rewrites(t.source, turns) for t in cfg.teachers]
        turns = sample_turns([t for t in turns if any(t["id"] in rw for rw in rewrites)], cfg.data.sample,
                             cfg.train.seed)
        if cfg.data.max_turns:
            turns = turns[: cfg.data.max_turns]
        if not turns:
            raise ConfigError("no training turn has a rewrite from the configured teachers")
        self.turns = turns
        self.encoder = SpladeEncoder(cfg.model.document_encoder, max_length=cfg.model.doc_max_length)
        self.docs = encode_cached(self.encoder, self.train_ds.doc_texts, "corpus", show_progress=progress)
        self.teachers = RewriteTeachers([t.name for t in cfg.teachers], rewrites, [t["id"] for t in turns],
                                        self.encoder)
        depth = max(hi for _, hi, _ in cfg.candidates.ranges)
        self.ranks = self.teachers.rankings(self.docs, depth)
        self.student = SpladeStudent(self._init(turns, rewrites), max_length=cfg.model.max_length,
                                     responses=cfg.model.responses, segments=cfg.model.segments,
                                     pool=cfg.model.pool)
        # after the first stage (which reads the dataset's own turns) and before the inputs, candidates and context
        self.n_pseudo = pseudo_responses(turns, self.ranks, self.train_ds.doc_texts) if cfg.data.pseudo_responses \
            else 0
        self.texts = [self.student.text(t["history"], t["utterance"]) for t in turns]
        self.utterances = encode_cached(self.encoder, [t["utterance"] for t in turns], "utterances",
                                        show_progress=progress) if cfg.train.utterance_mix else None
        self.student_ranks = None
        if cfg.candidates.student_ranges:  # documents the untrained student wrongly favours, scored by the teachers
            init = SpladeEncoder(self.student.path, max_length=cfg.model.max_length, segments=cfg.model.segments,
                                 pool=cfg.model.pool)
            q = encode_cached(init, self.texts, f"student-input:{cfg.model.responses}", show_progress=progress)
            d = max(hi for _, hi, _ in cfg.candidates.student_ranges)
            self.student_ranks = RewriteTeachers.rank(q, self.docs, d)
        self.context = self._context_documents(turns, cfg.candidates.context)  # after every ranking
        self.log: list[dict] = []

    def _init(self, turns: list[dict], rewrites: list[dict[str, str]]):
        """The student's starting checkpoint; `minilm-splade` builds (once, cached) the SPLADE-taught MiniLM masked
        LM over this run's own texts: turn inputs, utterances, rewrites, pool documents (methods/disco/init.py)."""
        from retrieval_kd.methods.disco.init import MINILM_SPLADE, splade_init

        m = self.cfg.model
        if m.student_init != MINILM_SPLADE:
            return m.student_init or self.encoder.path
        from retrieval_kd.methods.disco.conversation import conversation_text

        if m.init_collections is not None:
            turns = [t for t in turns if t["collection"] in m.init_collections]
        texts = [conversation_text(t["history"], t["utterance"], m.responses) for t in turns]
        texts += [t["utterance"] for t in turns] + [rw[t["id"]] for rw in rewrites for t in turns if t["id"] in rw]
        return splade_init(texts + list(self.train_ds.doc_texts), m.init, self.encoder,
                           log=print if self.progress else (lambda s: None))

    def _context_documents(self, turns: list[dict], n: int) -> list[list[int]]:
        """Per turn, the document rows of its last `n` system responses; responses that are not pool documents
        are encoded once and appended to the document matrix (after the teachers' rankings: never ranked)."""
        if not n:
            return [[] for _ in turns]
        import scipy.sparse as sp

        from retrieval_kd.methods.disco.conversation import is_response, squash
        from retrieval_kd.teachers.splade import encode_cached

        row = {squash(text): i for i, text in enumerate(self.train_ds.doc_texts)}
        extra: list[str] = []
        out = []
        for t in turns:
            said = [squash(h.get("text", "")) for h in t["history"] if is_response(h)]
            mine = []
            for text in [x for x in said if x][-n:]:
                if text not in row:
                    row[text] = len(self.train_ds.doc_texts) + len(extra)
                    extra.append(text)
                mine.append(row[text])
            out.append(mine)
        if extra:
            mat = encode_cached(self.encoder, extra, "context-responses", show_progress=self.progress)
            self.docs = sp.vstack([self.docs, mat], format="csr")
        return out

    def _candidates(self, rows: list[int], rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        """The batch's candidate documents and the mask [B, C] of those each turn is scored on."""
        cfg = self.cfg
        own = [list(dict.fromkeys(sample_candidates(self.ranks[:, r], cfg.candidates.ranges, rng) + self.context[r]))
               for r in rows]
        if self.student_ranks is not None:
            own = [list(dict.fromkeys(o + sample_candidates(self.student_ranks[r][None], cfg.candidates.student_ranges,
                                                            rng))) for o, r in zip(own, rows, strict=True)]
        cand = sorted(set().union(*own))
        col = {d: j for j, d in enumerate(cand)}
        mask = np.ones((len(rows), len(cand)), dtype=bool)
        if not cfg.candidates.in_batch:
            mask[:] = False
            for i, o in enumerate(own):
                mask[i, [col[d] for d in o]] = True
        return cand, mask

    def batch_loss(self, rows: list[int], rng: np.random.Generator):
        """Loss and its parts for one batch of turn indices."""
        import torch

        from retrieval_kd.losses import get_loss
        from retrieval_kd.teachers.rewrites import aggregate

        cfg, t = self.cfg, self.cfg.train
        cand, mask = self._candidates(rows, rng)
        dmat = self.docs[cand]
        t_scores = self.teachers.scores(rows, dmat)
        target = aggregate(t_scores, self.teachers.available[:, rows], cfg.aggregation, t.temperature, mask)
        tvec = self.teachers.mean_vectors(rows) if t.rep_weight else None  # the rewrites' SPLADE vectors
        sub = np.unique(dmat.indices) if tvec is None else np.union1d(dmat.indices, tvec.indices)
        dev = self.student.device
        dsub = torch.from_numpy(dmat[:, sub].toarray()).to(dev)
        q = self.student.forward([self.texts[r] for r in rows], torch.from_numpy(sub).to(dev))
        if self.utterances is not None:  # the frozen utterance term: the student learns what it lacks
            q = q + t.utterance_mix * torch.from_numpy(self.utterances[rows][:, sub].toarray()).to(dev)
        s = q @ dsub.T
        m = torch.from_numpy(mask).to(s.device)
        p = torch.from_numpy(target).to(s.device)  # the teachers' distribution over each turn's candidates
        top = torch.zeros_like(m).scatter(1, p.argmax(-1, keepdim=True), True)
        kl = get_loss("kl")(s, p, m, tau_s=t.temperature, target="probs")
        nce = get_loss("infonce")(s, p, m, top, tau_s=1.0, target="probs")
        flops, l1 = get_loss("flops")(q), get_loss("l1")(q)
        rep = get_loss(t.rep_loss)(q, torch.from_numpy(tvec[:, sub].toarray()).to(dev)) if tvec is not None \
            else torch.zeros((), device=dev)
        loss = (t.kl_weight * kl + t.infonce_weight * nce + t.flops_weight * flops + t.l1_weight * l1
                + t.rep_weight * rep)
        parts = {"loss": loss.item(), "kl": kl.item(), "infonce": nce.item(), "flops": flops.item(),
                 "rep": rep.item(), "q_nnz": float((q > 0).sum(-1).float().mean()), "candidates": len(cand)}
        return loss, parts

    def _epoch(self) -> list[int]:
        """One epoch's turn indices: every turn once, a turn of a `data.repeat` collection that many times."""
        rep = self.cfg.data.repeat
        return [i for i, t in enumerate(self.turns) for _ in range(rep.get(t["collection"], 1))]

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        """One epoch's turn order: shuffled turns, or shuffled conversations with their turns kept together."""
        epoch = self._epoch()
        if self.cfg.train.batching == "random":
            return np.array(epoch, dtype=np.int64)[rng.permutation(len(epoch))] if self.cfg.data.repeat \
                else rng.permutation(len(self.turns))  # without repeats: the order earlier runs were trained in
        groups: dict[str, list[int]] = {}
        for i in epoch:
            groups.setdefault(self.turns[i]["conversation"], []).append(i)
        keys = list(groups)
        return np.array([i for k in rng.permutation(len(keys)) for i in groups[keys[k]]], dtype=np.int64)

    def _rows(self, rng: np.random.Generator):
        """Endless batches of turn indices: epochs of `_order`, a new order when the next batch would not fit."""
        bs, n = self.cfg.train.batch_size, len(self._epoch())
        order, pos = self._order(rng), 0
        while True:
            if pos + bs > n:
                order, pos = self._order(rng), 0
            yield order[pos : pos + bs].tolist()
            pos += bs

    def fit(self) -> list[dict]:
        """Train the student; returns the log (one record per `log_every` steps)."""
        import torch

        from retrieval_kd.training import TrainLoop, make_scheduler

        t = self.cfg.train
        torch.manual_seed(t.seed)
        rng = np.random.default_rng(t.seed)
        per_epoch = max(1, int(np.ceil(len(self._epoch()) / t.batch_size)))
        steps = t.max_steps or max(1, int(round(t.epochs * per_epoch)))
        opt = torch.optim.AdamW(self.student.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        sched = make_scheduler(opt, "linear", int(t.warmup * steps), steps)
        loop = TrainLoop(opt, sched, steps, clip_norm=1.0, log_every=t.log_every, progress=self.progress,
                         desc="disco", hooks=[self.log.append])
        batches = self._rows(rng)
        self.student.model.train()
        result = loop.run(lambda step: self.batch_loss(next(batches), rng))
        self.student.model.eval()
        self.seconds = result["seconds"]
        return self.log

    def save(self, dest: str | Path | None = None) -> Path:
        """Write student/ (HF model, tokenizer, settings), meta.json, config.yaml, run_info.json, train_log.jsonl."""
        import yaml

        dest = Path(dest or self.cfg.output)
        cfg = self.cfg.model_dump(mode="json")
        with atomic_dir(dest) as tmp:
            self.student.save(tmp / "student", {"document_encoder": str(self.encoder.path)})
            write_meta(tmp, KIND, FORMAT_VERSION, student="student", document_encoder=str(self.encoder.path),
                       document_fingerprint=self.encoder.fingerprint,
                       teachers=[t.model_dump() for t in self.cfg.teachers], aggregation=self.cfg.aggregation,
                       train_turns=len(self.turns), train_collections=self.cfg.data.collections,
                       steps=self.log[-1]["step"] if self.log else 0, train_seconds=round(self.seconds, 1),
                       utterance_mix=self.cfg.train.utterance_mix, pseudo_responses=self.n_pseudo,
                       how="DiSCo distillation of rewrite teachers into a conversational SPLADE query encoder")
            (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
            (tmp / "run_info.json").write_text(json.dumps(run_info(cfg), indent=2, default=str) + "\n")
            (tmp / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.log), encoding="utf-8")
        return dest


def train_disco(cfg: DiscoConfig, dest: str | Path | None = None, progress: bool = True) -> Path:
    """Build the trainer, fit, save; returns the run folder."""
    trainer = DiscoTrainer(cfg, progress=progress)
    trainer.fit()
    return trainer.save(dest)
