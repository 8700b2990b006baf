"""Server benchmark: a real uvicorn process on loopback serving the CACM bundle, against in-process search.

    rkd bench server [--index runs/cacm-vq] [--duration 30] [--clients 1,4,16] [--out runs/bench_server]
    python eval/server_bench.py  (same options)

Serves the Distill-VQ index given by --index, else the faiss baseline "OPQ8,IVFn,PQ8x8np" built from the
full CACM with the MiniLM teacher. Measures: served q/s, p50/p99 latency and errors of the server's default
settings at 1, 4, 16 concurrent keep-alive clients, and at the top level 1 thread vs all cores (onnxruntime
and faiss intra-op threads, or one worker per core), with and without micro-batching, each as a ratio to the
one-thread micro-batch figure of the same run; the same queries in-process (ONNX encode + faiss search of the
bundle) at batch sizes 1..32 at 1 thread and all cores; ONNX fp32 / int8 vs torch encoding speed and
nDCG@10. Target at 16 clients: served q/s >= 80% of the best in-process q/s, and the default settings above
the one-thread figure. Only loopback; request loops are bounded.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

from retrieval_kd.paths import run_path

FACTORY = "OPQ8,IVFn,PQ8x8np"
BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def ensure_baseline(dest: Path) -> Path:
    """The faiss baseline over the full CACM (teacher embeddings cached), built once."""
    import numpy as np

    from retrieval_kd import datasets
    from retrieval_kd.index import FaissIndex
    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus

    if (dest / "meta.json").exists():
        return dest
    ds = datasets.load("cacm")
    enc = DenseEncoder()
    emb = np.asarray(encode_corpus(enc, ds))
    FaissIndex.build(emb, ds.doc_ids, FACTORY, meta={"dataset": "cacm", "teacher": "minilm",
                                                     "teacher_fingerprint": enc.fingerprint}).save(dest)
    return dest


def ensure_bundle(index_dir: Path, dest: Path, int8: bool, rebuild: bool) -> Path:
    """A bundle of `index_dir`, rebuilt when asked or when it was made from another index folder."""
    from retrieval_kd.export.dense import build_bundle

    man = dest / "manifest.json"
    if rebuild or not man.exists() or json.loads(man.read_text())["source"]["index"] != str(index_dir.resolve()):
        build_bundle(index_dir, dest, name=dest.name, int8=int8)
    return dest


def _rate(fn, n_items: int, min_seconds: float) -> float:
    """Items per second of `fn()` (each call handles n_items), repeated for at least min_seconds."""
    fn()  # warm-up
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds or calls >= 10_000:
            return calls * n_items / dt


def encoder_speed(fp32: Path, int8: Path | None, queries: list[str], seconds: float) -> list[dict]:
    """q/s of torch (transformers) vs onnxruntime fp32 / int8 encoding, batch 1 and 32, and nDCG@10."""
    from retrieval_kd.serving.bundle import open_bundle
    from retrieval_kd.teachers.dense import DenseEncoder

    rows = []
    torch_enc = DenseEncoder()
    encoders = [("torch fp32", lambda b: torch_enc.encode(b), None)]
    for label, path in (("onnx fp32", fp32), ("onnx int8", int8)):
        if path is not None:
            s = open_bundle(path)
            encoders.append((label, s.encoder.encode, s.manifest["metrics"].get("nDCG@10")))
    for label, fn, ndcg in encoders:
        row = {"encoder": label}
        for bs in (1, 32):
            batches = [queries[i : i + bs] for i in range(0, len(queries) - bs + 1, bs)] or [queries[:bs]]
            state = {"i": 0}

            def step(batches=batches, state=state, fn=fn):
                fn(batches[state["i"] % len(batches)])
                state["i"] += 1

            row[f"q/s b={bs}"] = _rate(step, bs, seconds)
        row["nDCG@10"] = ndcg if ndcg is not None else ""
        rows.append(row)
    return rows


def in_process(bundles: dict[str, Path], queries: list[str], seconds: float, cores: int = 1) -> list[dict]:
    """q/s of each bundle's encode + search (what the server runs) at batch sizes 1..32, 1 thread and all cores."""
    from retrieval_kd.serving.bundle import open_bundle
    from retrieval_kd.serving.runtime import RuntimeOptions

    rows = [{"batch": bs} for bs in BATCH_SIZES]
    runs = [(label, bundle, 1) for label, bundle in bundles.items()]
    runs += [(f"fp32 {cores}t", bundles["fp32"], cores)] if cores > 1 else []
    for label, bundle, threads in runs:
        s = open_bundle(bundle, RuntimeOptions(threads=threads))
        for row, bs in zip(rows, BATCH_SIZES, strict=True):
            state = {"i": 0}

            def step(bs=bs, state=state, s=s):
                start = (state["i"] * bs) % len(queries)
                s.search_batch([queries[(start + j) % len(queries)] for j in range(bs)], 10)
                state["i"] += 1

            row[f"{label} q/s"] = _rate(step, bs, seconds)
        s.close()
    return rows


async def _client(port: int, path: str, bodies: list[bytes], offset: int, stop_at: float, max_requests: int,
                  lat: list[float], errors: list[int]) -> None:
    """One keep-alive HTTP/1.1 client sending requests back to back until stop_at."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    try:
        for i in range(max_requests):
            if time.perf_counter() >= stop_at:
                break
            body = bodies[(offset + i) % len(bodies)]
            t0 = time.perf_counter()
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(status)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        errors.append(-1)
    finally:
        writer.close()


def _batch_stats(url: str) -> tuple[float, float]:
    """Sum and count of the server's encoder batch sizes (Prometheus /metrics)."""
    from retrieval_kd.serving.process import http_json

    text = http_json(url + "/metrics")[1]
    total = sum(float(v) for v in re.findall(r"^rkd_encoder_batch_queries_sum\{[^}]*\} (\S+)", text, re.M))
    count = sum(float(v) for v in re.findall(r"^rkd_encoder_batch_queries_count\{[^}]*\} (\S+)", text, re.M))
    return total, count


def load_test(url: str, name: str, queries: list[str], clients: int, seconds: float, warmup: float) -> dict:
    """q/s, p50/p99 latency (ms), errors and mean encoder batch for `clients` concurrent clients."""
    import numpy as np

    port = int(url.rsplit(":", 1)[1])
    path = f"/v1/indexes/{name}/search"
    bodies = [json.dumps({"query": q, "k": 10}).encode() for q in queries]

    async def run(duration: float) -> tuple[list[float], list[int], float]:
        lat: list[float] = []
        errors: list[int] = []
        t0 = time.perf_counter()
        cap = int(duration * 2000) + 10  # bounded: far above any rate this box reaches
        await asyncio.gather(*(_client(port, path, bodies, 7 * c, t0 + duration, cap, lat, errors)
                               for c in range(clients)))
        return lat, errors, time.perf_counter() - t0

    asyncio.run(run(warmup))
    before = _batch_stats(url)
    lat, errors, wall = asyncio.run(run(seconds))
    after = _batch_stats(url)
    ms = np.asarray(lat) * 1000.0
    calls = after[1] - before[1]
    return {"clients": clients, "q/s": len(lat) / wall, "p50 ms": float(np.percentile(ms, 50)) if len(ms) else 0.0,
            "p99 ms": float(np.percentile(ms, 99)) if len(ms) else 0.0, "errors": len(errors),
            "mean batch": (after[0] - before[0]) / calls if calls else 0.0}


def server_configs(cores: int) -> list[tuple[str, dict[str, str | None]]]:
    """(label, environment) of each served configuration: the defaults first, then 1 vs all cores, +/- batching."""
    unset = {"RKD_THREADS": None, "RKD_WORKERS": None, "RKD_MICROBATCH": None}  # None: the server's default
    one = {**unset, "RKD_THREADS": "1", "RKD_WORKERS": "1"}
    configs = [(f"default ({cores} workers x 1 thread, no batching)" if cores > 1 else "default (1 thread, micro-batch)",
                unset),
               ("1 thread, micro-batch", one),
               ("1 thread, no batching", {**one, "RKD_MICROBATCH": "false"})]
    if cores > 1:
        many = {**unset, "RKD_WORKERS": "1"}  # one worker: its intra-op threads take every core
        configs += [(f"{cores} threads, micro-batch", many),
                    (f"{cores} threads, no batching", {**many, "RKD_MICROBATCH": "false"}),
                    (f"{cores} workers x 1 thread, micro-batch", {**unset, "RKD_MICROBATCH": "true"})]
    return configs


def served(bundle: Path, queries: list[str], clients: list[int], seconds: float, warmup: float,
           env: dict[str, str | None], label: str, precision: str = "fp32") -> list[dict]:
    """Load-test rows of one bundle served by a uvicorn subprocess under `env`, one row per client level."""
    from retrieval_kd.serving.bundle import read_manifest
    from retrieval_kd.serving.process import running_server

    name = read_manifest(bundle)["name"]
    rows = []
    with running_server([bundle], env=env) as sp:
        for c in clients:
            rows.append({"server": label, "precision": precision,
                         **load_test(sp.url, name, queries, c, seconds, warmup)})
    return rows


def _report(index_dir: Path, fp32: Path, rows: list[dict], inproc: list[dict], enc: list[dict],
            verdict: str) -> str:
    """The Markdown report: served, in-process and encoder tables, then the verdict."""
    from retrieval_kd.evaluate import format_table

    return "\n\n".join([
        f"index: {index_dir} ({json.loads((fp32 / 'manifest.json').read_text())['index']['factory']})",
        "Served (uvicorn subprocess on 127.0.0.1, keep-alive clients, k=10; 'vs in-process' = q/s over the best\n"
        "in-process q/s of the same precision; 'vs 1 thread' = q/s over '1 thread, micro-batch' at the same\n"
        "clients, in this run):\n" + format_table(rows),
        "In-process (the bundle's ONNX encode + faiss search, k=10, 1 thread and all cores):\n" + format_table(inproc),
        "Query encoders (q/s, one thread; nDCG@10 of the bundle on CACM):\n" + format_table(enc),
        verdict,
    ])


def ratios(rows: list[dict], inproc: list[dict], top: int) -> tuple[list[dict], str]:
    """Rows with 'vs in-process' / 'vs 1 thread' ratios, and the verdict lines at `top` clients."""
    best = {p: max(v for r in inproc for k, v in r.items() if k.startswith(p) and k.endswith("q/s"))
            for p in {r["precision"] for r in rows}}
    base = {r["clients"]: r["q/s"] for r in rows if r["server"] == "1 thread, micro-batch"}
    for r in rows:
        r["vs in-process"] = r["q/s"] / best[r["precision"]]
        r["vs 1 thread"] = r["q/s"] / base[r["clients"]] if base.get(r["clients"]) else float("nan")
    at = {r["server"]: r for r in rows if r["clients"] == top and r["precision"] == "fp32"}
    default = next(r for label, r in at.items() if label.startswith("default"))
    lines = [f"at {top} clients, default settings: {default['q/s']:.1f} q/s = {default['vs in-process']:.0%} of the "
             f"in-process best {best['fp32']:.1f} q/s, p99 {default['p99 ms']:.1f} ms; "
             f"{default['vs 1 thread']:.2f}x the one-thread micro-batch figure "
             f"({base.get(top, float('nan')):.1f} q/s, same run)"]
    for label, r in at.items():
        lines.append(f"  {label}: {r['q/s']:.1f} q/s ({r['vs 1 thread']:.2f}x one thread, p99 {r['p99 ms']:.1f} ms)")
    return rows, "\n".join(lines)


def run_server_bench(index: Path | None = None, out: str | Path = "runs/bench_server", duration: float = 30.0,
                     warmup: float = 2.0, clients: Sequence[int] = (1, 4, 16), inproc_seconds: float = 3.0,
                     int8: bool = True, rebuild: bool = False) -> dict:
    """Run the server benchmark: print the report, write report.md and results.json under `out`."""
    from retrieval_kd import datasets
    from retrieval_kd.threads import set_threads
    from retrieval_kd.utils import machine_cores, run_info, write_json

    settings = {"index": index, "out": run_path(out), "duration": duration, "warmup": warmup,
                "clients": ",".join(map(str, clients)), "inproc_seconds": inproc_seconds, "no_int8": not int8,
                "rebuild": rebuild}
    set_threads(1)
    out, clients, cores = run_path(out), list(clients), machine_cores()
    index_dir = (index or ensure_baseline(out / "cacm-faiss")).resolve()
    fp32 = ensure_bundle(index_dir, out / "bundles" / "cacm", False, rebuild)
    int8_dir = ensure_bundle(index_dir, out / "bundles" / "cacm-int8", True, rebuild) if int8 else None
    queries = list(datasets.load("cacm").queries.values())

    enc = encoder_speed(fp32, int8_dir, queries, inproc_seconds)
    inproc = in_process({"fp32": fp32, **({"int8": int8_dir} if int8_dir else {})}, queries, inproc_seconds, cores)
    rows: list[dict] = []
    for i, (label, env) in enumerate(server_configs(cores)):  # the default at every level, the others at the top
        rows += served(fp32, queries, clients if i == 0 else clients[-1:], duration, warmup, env, label)
    if int8_dir is not None:
        rows += served(int8_dir, queries, clients[-1:], duration, warmup, server_configs(cores)[0][1],
                       "int8, default", "int8")
    rows, verdict = ratios(rows, inproc, max(clients))
    report = _report(index_dir, fp32, rows, inproc, enc, verdict)
    print(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report + "\n", encoding="utf-8")
    result = {"served": rows, "in_process": inproc, "encoders": enc, "verdict": verdict, "cores": cores,
              "run_info": run_info(settings | {"index": str(index_dir), "out": str(out)})}
    write_json(out / "results.json", result)
    return result
