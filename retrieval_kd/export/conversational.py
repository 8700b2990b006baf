"""Build time for DiSCo: ONNX export of the conversational student and the sparse-conversational bundle."""
from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.artifacts import write_meta
from retrieval_kd.errors import BundleError
from retrieval_kd.export.bundle import bundle_name, documents_of, write_manifest
from retrieval_kd.index.impact import FILES as INDEX_FILES
from retrieval_kd.index.impact import ImpactIndex
from retrieval_kd.methods.disco.conversation import read_student_config
from retrieval_kd.methods.disco.mixing import MIX_KIND, combine, read_mixture
from retrieval_kd.serving.conversational import ENCODER_DIR, INDEX_DIR

UTTERANCE_DIR = "utterance_encoder"
PARITY_TURNS = (  # (history, utterance) the exported mixture is checked on
    ([{"role": "user", "text": "what are the most common types of breast cancer?"},
      {"role": "system", "text": "Ductal carcinoma is the most common type of breast cancer."}], "how deadly is it?"),
    ([], "x"),
)


def _export_module(student_dir: Path):
    """(torch module input_ids, attention_mask -> SPLADE vector with segment ids inside, tokenizer, config)."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from retrieval_kd.teachers.splade import pool_mask, segment_ids, splade_pool

    cfg = read_student_config(student_dir)
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    model = AutoModelForMaskedLM.from_pretrained(student_dir).eval()
    sep_id, segments, pool = int(tokenizer.sep_token_id), bool(cfg.get("segments", False)), str(cfg.get("pool", "all"))

    class ConversationalSplade(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            types = segment_ids(input_ids, sep_id) if segments else torch.zeros_like(input_ids)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=types)
            return splade_pool(out.logits, pool_mask(input_ids, attention_mask, sep_id, pool))

    return ConversationalSplade().eval(), tokenizer, cfg


def export_student_onnx(student_dir: str | Path, dest: str | Path, parity_texts: Sequence[str] | None = None,
                        atol: float = 1e-4) -> dict[str, Any]:
    """ONNX graph of a trained student (segment ids and SPLADE pooling inside), parity-checked, written atomically.

    The folder holds query_encoder.onnx (inputs input_ids/attention_mask, output `sentence_embedding`
    [batch, vocab]), the tokenizer files and meta.json (kind "onnx-encoder"; its "conversation" section is the input
    format).
    """
    import tempfile

    from retrieval_kd.export.onnx import ENCODER_FILE, INPUTS, OUTPUT, ExportError, export_graph, parity_check, tokens
    from retrieval_kd.utils import atomic_dir, run_info

    student_dir = Path(student_dir)
    module, tokenizer, cfg = _export_module(student_dir)
    texts = list(parity_texts or ["how deadly is it? [SEP] what are the most common types of breast cancer?", "x"])
    max_length = int(cfg["max_length"])
    with tempfile.TemporaryDirectory(prefix="rkd-disco-onnx-") as work, atomic_dir(dest) as tmp:
        path = Path(work) / ENCODER_FILE
        exporter = export_graph(module, tokens(tokenizer, texts[:2], max_length), path, None)
        diff = parity_check(module, tokenizer, path, texts, max_length)
        if not diff <= atol:
            raise ExportError(f"{student_dir}: ONNX output differs from torch by {diff:.2e} > {atol:g}")
        (tmp / ENCODER_FILE).write_bytes(path.read_bytes())
        tokenizer.save_pretrained(str(tmp))
        info = {"file": ENCODER_FILE, "pooling": "splade", "normalize": False, "max_length": max_length,
                "exporter": exporter, "precision": "fp32", "parity_max_abs_diff": diff, "source": str(student_dir),
                "inputs": list(INPUTS), "output": OUTPUT, "dim": int(module.model.config.vocab_size),
                "pad_token": tokenizer.pad_token, "segments": bool(cfg.get("segments", False)),
                "pool": str(cfg.get("pool", "all"))}
        write_meta(tmp, "onnx-encoder", 1, encoder=info, conversational=True, conversation=cfg, run_info=run_info())
    return info


def _student_source(src: Path) -> tuple[Path, str | None, dict]:
    """(student folder, its document encoder or None, run meta) from a DiSCo run folder or a student folder."""
    meta_path = src / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    if meta.get("kind") == "disco-student":
        return src / meta.get("student", "student"), meta.get("document_encoder"), meta
    if (src / "config.json").is_file():
        doc = read_student_config(src).get("document_encoder")
        return src, doc, {}
    raise BundleError(f"{src}: neither a DiSCo run folder (meta.json kind 'disco-student'), a mixture folder "
                      "(kind 'disco-mixture', rkd eval cast-mix) nor a model folder")


def _sources(src: Path) -> tuple[list[tuple[Path, float]], float, str | None, dict]:
    """([(student folder, weight)], utterance weight, document encoder, meta) of a run, student or mixture folder."""
    meta_path = src / "meta.json"
    if meta_path.is_file() and json.loads(meta_path.read_text(encoding="utf-8")).get("kind") == MIX_KIND:
        mix = read_mixture(src)
        members = [(_student_source(Path(m["run"]))[0], m["weight"]) for m in mix["members"]]
        doc = mix["document_encoder"] or _student_source(Path(mix["members"][0]["run"]))[1]
        return members, mix["utterance"], doc, mix
    student, doc, meta = _student_source(src)  # a run trained with the utterance term keeps it (train.utterance_mix)
    return [(student, 1.0)], float(meta.get("utterance_mix") or 0.0), doc, meta


def _export_mixture(members: list[tuple[Path, float]], utterance: float, document_encoder: str | None,
                    dest: Path, atol: float = 1e-4) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Export each member (and the utterance encoder) into dest; (first member's info, manifest `mixing` or None).
    A mixture is also checked end to end: the ONNX mixture against the torch one (`mixture.MixtureEncoder`)."""
    import numpy as np

    from retrieval_kd.export.onnx import ExportError
    from retrieval_kd.methods.disco.mixture import MixtureEncoder
    from retrieval_kd.serving.conversational import OnnxConversationalEncoder
    from retrieval_kd.teachers.splade import resolve_splade_path

    dirs = [ENCODER_DIR, *(f"{ENCODER_DIR}_{i + 1}" for i in range(1, len(members)))]
    infos = [export_student_onnx(folder, dest / d) for (folder, _), d in zip(members, dirs, strict=True)]
    if len(members) == 1 and not utterance:
        return infos[0], None
    mixing: dict[str, Any] = {"members": [{"dir": d, "weight": w, "parity_max_abs_diff": i["parity_max_abs_diff"]}
                                          for d, (_, w), i in zip(dirs, members, infos, strict=True)]}
    if utterance:
        info = export_student_onnx(resolve_splade_path(document_encoder), dest / UTTERANCE_DIR)
        mixing["utterance"] = {"dir": UTTERANCE_DIR, "weight": utterance,
                               "parity_max_abs_diff": info["parity_max_abs_diff"]}
    torch_mix = MixtureEncoder([f for f, _ in members], [w for _, w in members], utterance, document_encoder)
    onnx = [OnnxConversationalEncoder(dest / d) for d in dirs]
    utt = OnnxConversationalEncoder(dest / UTTERANCE_DIR).encoder if utterance else None
    diff = 0.0
    for history, text in PARITY_TURNS:
        vecs = [e.encode(history, text)[0] for e in onnx]
        u = utt.encode([text])[0][0] if utt is not None else None
        got = combine(vecs, [w for _, w in members], u, utterance)
        diff = max(diff, float(np.max(np.abs(got - torch_mix.encode(history, text)))))
    if not diff <= atol:
        raise ExportError(f"{dest}: the ONNX mixture differs from the torch mixture by {diff:.2e} > {atol:g}")
    mixing["parity_max_abs_diff"] = diff
    return infos[0], mixing


def build_conversational_bundle(
    src: str | Path,
    dst: str | Path,
    *,
    name: str,
    dataset: str | Path = "cast-mini",
    index_dir: str | Path | None = None,
    document_encoder: str | None = None,
) -> dict[str, Any]:
    """Export the student to ONNX (parity-checked), build or copy the impact index, fill the doc store, write the manifest."""
    from retrieval_kd import datasets
    from retrieval_kd.index.docstore import DocStore
    from retrieval_kd.utils import atomic_dir

    src, dst = Path(src), Path(dst)
    name = bundle_name(name, dst, "conversational")
    members, utterance, run_doc_encoder, run_meta = _sources(src)
    student_dir = members[0][0]
    ds = datasets.load(str(dataset))
    if index_dir is not None:
        index = ImpactIndex.load(index_dir)
    else:
        from retrieval_kd.teachers.splade import SpladeEncoder, encode_corpus

        enc = SpladeEncoder(document_encoder or run_doc_encoder)
        index = ImpactIndex.build(encode_corpus(enc, ds, show_progress=False), ds.doc_ids, enc.vocab,
                                  meta={"dataset": ds.name, "encoder": str(enc.path),
                                        "encoder_fingerprint": enc.fingerprint})
    docs = documents_of(index.docids, ds, Path(index_dir or dst))
    with atomic_dir(dst) as tmp:
        info, mixing = _export_mixture(members, utterance, document_encoder or run_doc_encoder, tmp)
        if info["dim"] != len(index.vocab):
            raise BundleError(f"{student_dir}: encoder gives dim {info['dim']}, the impact index has "
                              f"{len(index.vocab)} terms (different vocabularies)")
        if index_dir is not None:
            (tmp / INDEX_DIR).mkdir()
            for f in INDEX_FILES:
                shutil.copyfile(Path(index_dir) / f, tmp / INDEX_DIR / f)
        else:
            index.save(tmp / INDEX_DIR)
        store = DocStore.build(tmp / "docstore.sqlite", docs)
        index_info = {"type": "impact", "scale": index.scale, "n_docs": len(index.docids),
                      "n_postings": int(len(index.docs)), "document_encoder": index.meta.get("encoder")}
        manifest = write_manifest(
            tmp, kind="sparse-conversational", name=name, encoder=info, index=index_info,
            docstore={"file": "docstore.sqlite", "count": len(store)},
            **({"mixing": mixing} if mixing else {}),
            source={"run": str(src.resolve()), "student": str(student_dir.resolve()), "dataset": str(dataset),
                    "index_dir": str(Path(index_dir).resolve()) if index_dir is not None else None,
                    "teachers": run_meta.get("teachers"), "aggregation": run_meta.get("aggregation")},
        )
        store.close()
    return manifest
