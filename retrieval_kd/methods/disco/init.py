"""A larger student from what is installed: all-MiniLM-L6-v2's 6-layer body as a masked LM (its tied vocabulary
projection, `teachers.splade.build_mlm_from_encoder`), first taught to *be* a SPLADE encoder, then trained by DiSCo.

Why a first stage: the DiSCo trainer decodes only the vocabulary rows of the batch's documents and rewrites. A head
that never was a SPLADE head starts with thousands of positive rows per query, and rows outside every batch never
receive a gradient, so they dominate at search time (README: the minilm-mlm row, nDCG@3 ≤ 0.01). Here the masked
LM first reproduces the frozen SPLADE document encoder's vectors of the same texts over the **whole** vocabulary
(squared error summed over the vocabulary), starting from a decoder bias that leaves ~0.5 % of the rows positive.
The texts are the training run's own: the student's turn inputs, the turns' utterances and rewrites, the pool's
documents (no evaluation text: the trainer's leak checks have already run). Built once into the cache, keyed by
the settings and the texts.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MINILM_SPLADE = "minilm-splade"


def init_folder(texts: Sequence[str], settings: Any) -> Path:
    """The cache folder of a first stage over these texts with these settings."""
    from retrieval_kd.paths import cache_root
    from retrieval_kd.utils import sha256_text

    key = sha256_text(settings.model_dump_json(), str(len(texts)), *texts)[:16]
    return cache_root() / "models" / f"{MINILM_SPLADE}-{key}"


def splade_init(texts: Sequence[str], settings: Any, teacher: Any, log: Callable[[str], Any] = print) -> Path:
    """The MiniLM masked LM taught to reproduce `teacher`'s SPLADE vectors of `texts` (cached; see the docstring)."""
    out = init_folder(texts, settings)
    if (out / "config.json").exists():
        log(f"student init: {out} (cached)")
        return out
    import torch

    from retrieval_kd.methods.disco.student import SpladeStudent
    from retrieval_kd.utils import atomic_dir

    torch.manual_seed(settings.seed)
    st = SpladeStudent("minilm-mlm", max_length=settings.max_length, segments=False)
    texts = [t for t in texts if t.strip()]
    random.Random(settings.seed).shuffle(texts)
    _sparse_start(st, texts[:32])
    t0 = time.perf_counter()
    cos = _fit(st, teacher, texts, settings, log)
    log(f"student init: {settings.steps} steps in {time.perf_counter() - t0:.0f}s over {len(texts)} texts, "
        f"cosine to the SPLADE teacher {cos:.3f}")
    with atomic_dir(out) as tmp:
        st.model.save_pretrained(tmp)
        st.tokenizer.save_pretrained(tmp)
    return out


def _sparse_start(st: Any, sample: Sequence[str]) -> None:
    """Decoder bias = minus the 99.5th percentile of the max-pooled logits of a sample: ~0.5 % of rows positive."""
    import torch

    with torch.no_grad():
        batch = st.tokenize(sample)
        logits = st.model(**batch).logits
        top = logits.masked_fill(batch["attention_mask"].unsqueeze(-1) == 0, float("-inf")).max(1).values
        st.decoder.bias.fill_(-float(torch.quantile(top.flatten()[:2_000_000].float(), 0.995)))


def _fit(st: Any, teacher: Any, texts: Sequence[str], settings: Any, log: Callable[[str], Any]) -> float:
    """AdamW, 50 warm-up steps then linear decay; the loss is Σ_vocab (student − teacher)²; returns the last
    batch's mean cosine to the teacher."""
    import torch

    opt = torch.optim.AdamW(st.model.parameters(), lr=settings.lr, weight_decay=0.01)
    n = settings.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / n))
    st.model.train()
    cos, bs = float("nan"), settings.batch_size
    for step in range(n):
        start = (step * bs) % max(len(texts) - bs + 1, 1)
        batch = list(texts[start : start + bs])
        with torch.no_grad():
            target = teacher.embed(**teacher.tokenize(batch, settings.max_length))
        vec = st.forward(batch)
        loss = ((vec - target) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(st.model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == n - 1:
            cos = float(torch.nn.functional.cosine_similarity(vec.detach(), target).mean())
            log(f"student init: step {step} loss {loss.item():.2f} cosine {cos:.3f}")
    st.model.eval()
    return cos
