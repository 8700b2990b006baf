"""Soak + chaos benchmark: a real uvicorn process on loopback under mixed valid and invalid load, killed and
restarted in the middle, a bundle file damaged and restored while it serves.

    rkd bench chaos [--bundle B] [--duration 60] [--clients 16] [--out runs/bench_chaos]
    python eval/chaos.py  (same options)

Serves --bundle (default: the CACM bundle of `rkd bench server`, built when missing) from a private copy.
Before the load: the answers to fixed queries, the idle RSS, the D4 request (64 queries of 4,000 bytes,
admitted by a raised token budget) and the RSS after it. Then `clients` keep-alive clients for `duration`
seconds, one request in five invalid (NaN, lone surrogates, bad k, unknown index, broken JSON); at 25% of the
run index/docids.txt is damaged in place (restored at 40%), at 50% the server is SIGKILLed and restarted on
the same port. Prints requests, answers by class per phase, p50/p99, RSS over time (plot), and the checks:
no 5xx outside the restart window (only the designed 503 while the file is damaged), identical answers after
the restart, RSS after the heavy request <= 1.3x idle. Only loopback; every loop is bounded in count and time.
"""
from __future__ import annotations

import asyncio
import json
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from retrieval_kd.bench.server import ensure_baseline, ensure_bundle
from retrieval_kd.paths import run_path

HEAVY = [(f"word{i} " * 600)[:4000] for i in range(64)]
INVALID = [b'{"query": NaN}', b'{"query": "\\ud800"}', b'{"query": "a", "k": 0}', b'{"query": "a", "k": Infinity}',
           b'{"query": "a", "k": "ten"}', b'{"queries": []}', b"{not json", b'{"query": ""}']
SERVER_ENV = {"RKD_MAX_REQUEST_TOKENS": "20000", "RKD_REQUEST_TIMEOUT_S": "30", "RKD_HEALTH_INTERVAL_S": "0.5",
              "RKD_SHUTDOWN_DRAIN_S": "0"}
DAMAGED = "index/docids.txt"


def _requests(name: str, queries: list[str]) -> list[tuple[str, bytes, bool]]:
    """(path, body, valid) of the mix: four valid searches or batches in five, one invalid request."""
    search, batch = f"/v1/indexes/{name}/search", f"/v1/indexes/{name}/search/batch"
    out: list[tuple[str, bytes, bool]] = []
    rng = random.Random(0)
    for i, q in enumerate(queries * 4):
        if i % 5 == 4:
            bad = INVALID[i % len(INVALID)]
            out.append(("/v1/indexes/no-such-index/search" if i % 25 == 4 else search, bad, False))
        elif i % 10 == 3:
            out.append((batch, json.dumps({"queries": rng.sample(queries, 4), "k": 10}).encode(), True))
        else:
            out.append((search, json.dumps({"query": q, "k": 10, "with_text": i % 3 == 0}).encode(), True))
    return out


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes) -> int:
    """One HTTP/1.1 request on an open connection; the status (the body is read and dropped)."""
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status = int((await reader.readline()).split()[1])
    length, close = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        low = line.lower()
        if low.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        close = close or low.startswith(b"connection:") and b"close" in low
    await reader.readexactly(length)
    return -status if close else status


async def _client(port: int, mix: list, offset: int, stop_at: float, log: list) -> None:
    """Keep-alive requests back to back until stop_at; reconnects after errors (bounded)."""
    conn = None
    for i in range(200_000):
        now = time.perf_counter()
        if now >= stop_at:
            break
        path, body, valid = mix[(offset + i) % len(mix)]
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            status = await asyncio.wait_for(_exchange(*conn, path, body), 35)
            if status < 0:
                conn[1].close()
                conn, status = None, -status
            log.append((now, time.perf_counter() - now, status, valid))
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as e:
            log.append((now, time.perf_counter() - now, type(e).__name__, valid))
            if conn is not None:
                conn[1].close()
            conn = None
            await asyncio.sleep(0.05)
    if conn is not None:
        conn[1].close()


def _answers(url: str, name: str, queries: list[str]) -> list[list[str]]:
    """The top-10 ids of each query over HTTP."""
    from retrieval_kd.serving.process import http_json

    out = []
    for q in queries:
        status, body = http_json(f"{url}/v1/indexes/{name}/search", {"query": q, "k": 10})
        out.append([h["id"] for h in body["hits"]] if status == 200 else [f"status {status}"])
    return out


def _heavy_rss(sp: Any, name: str) -> dict[str, float]:
    """Idle RSS (after warm-up), then the D4 request, then the RSS once it answered."""
    from retrieval_kd.serving.process import http_json

    for _ in range(5):
        http_json(f"{sp.url}/v1/indexes/{name}/search", {"query": "warm up", "k": 10})
    idle = sp.rss_mb()
    t0 = time.perf_counter()
    status, _ = http_json(f"{sp.url}/v1/indexes/{name}/search/batch", {"queries": HEAVY, "k": 10}, timeout=120)
    took = time.perf_counter() - t0
    time.sleep(0.5)
    return {"idle_mb": idle, "after_heavy_mb": sp.rss_mb(), "heavy_status": status, "heavy_s": took}


class Chaos:
    """The server under test plus the timeline of events (damage, restore, kill, restart) and RSS samples."""

    def __init__(self, bundle: Path, port: int):
        from retrieval_kd.serving.process import ServerProcess

        self.bundle, self.port = bundle, port
        self.sp = ServerProcess([bundle], port=port, env=SERVER_ENV).wait_ready()
        self.events: list[tuple[float, str]] = []
        self.rss: list[tuple[float, float]] = []
        self.restart_window: tuple[float, float] = (0.0, 0.0)
        self.damage_window: tuple[float, float] = (0.0, 0.0)

    def timeline(self, t0: float, duration: float, stop: threading.Event) -> None:
        """Sample RSS every 0.25 s and fire the events at 25%, 40% and 50% of the run."""
        from retrieval_kd.serving.process import ServerProcess

        target = self.bundle / DAMAGED
        original = target.read_bytes()
        plan = [(0.25, "damage"), (0.40, "restore"), (0.50, "kill")]
        while not stop.is_set() and time.perf_counter() - t0 < duration + 5:
            now = time.perf_counter()
            if plan and now - t0 >= plan[0][0] * duration:
                what = plan.pop(0)[1]
                self.events.append((now - t0, what))
                if what == "damage":
                    target.write_bytes(b"damaged\n" + original[8:])
                    self.damage_window = (now, 0.0)
                elif what == "restore":
                    target.write_bytes(original)
                    self.damage_window = (self.damage_window[0], now + 1.5)  # + the re-check interval
                else:
                    self.sp.kill()
                    self.sp = ServerProcess([self.bundle], port=self.port, env=SERVER_ENV).wait_ready()
                    self.restart_window = (now, time.perf_counter() + 0.5)
                    self.events.append((time.perf_counter() - t0, "ready again"))
            self.rss.append((now - t0, self.sp.rss_mb()))
            stop.wait(0.25)


def _phase(t: float, lat: float, chaos: Chaos) -> str:
    """Which window a request [t, t + lat] overlaps: "restart", "damaged" or "steady"."""
    start, end = chaos.restart_window
    if start and t <= end and t + lat >= start:
        return "restart"
    start, end = chaos.damage_window
    if start and t <= (end or float("inf")) and t + lat >= start:
        return "damaged"
    return "steady"


def summarise(log: list, chaos: Chaos, wall: float) -> dict[str, Any]:
    """Requests, answers by class and phase, p50/p99 of the valid 2xx answers, the 5xx outside the windows."""
    import numpy as np

    by: dict[str, dict[str, int]] = {}
    for t, lat, status, valid in log:
        cls = f"{status // 100}xx" if isinstance(status, int) else status
        key = f"{_phase(t, lat, chaos)} / {'valid' if valid else 'invalid'}"
        by.setdefault(key, {}).setdefault(cls, 0)
        by[key][cls] += 1
    ok = np.asarray([lat for _, lat, s, v in log if v and isinstance(s, int) and s < 300]) * 1000.0
    stray = [s for t, lat, s, _ in log if isinstance(s, int) and s >= 500 and _phase(t, lat, chaos) == "steady"]
    damaged_5xx = {s for t, lat, s, _ in log if isinstance(s, int) and s >= 500
                   and _phase(t, lat, chaos) == "damaged"}
    conn_errors = [s for t, lat, s, _ in log if not isinstance(s, int) and _phase(t, lat, chaos) != "restart"]
    return {"requests": len(log), "q/s": len(log) / wall, "by_phase": by,
            "p50 ms": float(np.percentile(ok, 50)) if len(ok) else 0.0,
            "p99 ms": float(np.percentile(ok, 99)) if len(ok) else 0.0,
            "5xx outside the windows": len(stray), "5xx while damaged": sorted(damaged_5xx),
            "connection errors outside the restart window": len(conn_errors)}


def plot_rss(chaos: Chaos, path: Path) -> None:
    """RSS over time with the events marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([t for t, _ in chaos.rss], [m for _, m in chaos.rss], lw=1.2)
    for t, what in chaos.events:
        ax.axvline(t, color="grey", ls="--", lw=0.8)
        ax.text(t, ax.get_ylim()[1], what, rotation=90, va="top", ha="right", fontsize=8)
    ax.set_xlabel("seconds into the load")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("rkd bench chaos: resident memory of the server process")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _load(chaos: Chaos, mix: list, clients: int, duration: float) -> tuple[list, float]:
    """Run the clients for `duration` s while the timeline thread fires the events; (log, wall seconds)."""
    log: list = []
    stop = threading.Event()
    t0 = time.perf_counter()
    events = threading.Thread(target=chaos.timeline, args=(t0, duration, stop), daemon=True)
    events.start()

    async def run() -> None:
        await asyncio.gather(*(_client(chaos.port, mix, 37 * c, t0 + duration, log) for c in range(clients)))

    asyncio.run(run())
    stop.set()
    events.join(60)
    return log, time.perf_counter() - t0


def run_chaos(bundle: Path | None = None, out: str | Path = "runs/bench_chaos", duration: float = 60.0,
              clients: int = 16) -> dict[str, Any]:
    """Run the soak + chaos benchmark; print the report, write report.md, results.json and rss.png under `out`."""
    from retrieval_kd.serving.bundle import read_manifest
    from retrieval_kd.serving.process import free_port
    from retrieval_kd.utils import run_info, write_json

    out = run_path(out)
    src = Path(bundle) if bundle else ensure_bundle(ensure_baseline(Path("runs/bench_server/cacm-faiss")).resolve(),
                                                    Path("runs/bench_server/bundles/cacm"), False, False)
    work = out / "bundle"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src, work)  # a private copy: its files are damaged in place
    name = read_manifest(work)["name"]
    queries = _queries(work)
    chaos = Chaos(work, free_port())
    try:
        before = _answers(chaos.sp.url, name, queries[:20])
        memory = _heavy_rss(chaos.sp, name)
        log, wall = _load(chaos, _requests(name, queries), clients, duration)
        after = _answers(chaos.sp.url, name, queries[:20])
    finally:
        exit_code = chaos.sp.stop()
    summary = summarise(log, chaos, wall)
    checks = _checks(summary, memory, before == after, exit_code)
    plot_rss(chaos, out / "rss.png")
    report = _report(summary, memory, chaos, checks)
    print(report)
    (out / "report.md").write_text(report + "\n", encoding="utf-8")
    result = {"summary": summary, "memory": memory, "events": chaos.events, "rss": chaos.rss, "checks": checks,
              "answers_equal": before == after, "exit_code": exit_code,
              "run_info": run_info({"bundle": str(src), "duration": duration, "clients": clients})}
    write_json(out / "results.json", result)
    return result


def _queries(bundle: Path) -> list[str]:
    """The queries of the bundle's dataset when it has judged ones, else a fixed list."""
    fallback = ["parallel sorting algorithms", "hash tables", "garbage collection", "matrix inversion",
                "compiler optimisation", "time sharing systems", "numerical integration", "deadlock detection"]
    try:
        from retrieval_kd import datasets

        ds = datasets.load(str(json.loads((bundle / "manifest.json").read_text())["metrics"]["measured_on"]))
        return list(ds.queries.values())[:200] or fallback
    except Exception:  # noqa: BLE001 - any dataset problem: the fixed queries will do
        return fallback


def _checks(summary: dict, memory: dict, same: bool, exit_code: int) -> dict[str, bool]:
    """The acceptance checks of the run."""
    return {"no 5xx outside the restart window (only 503 while damaged)":
            summary["5xx outside the windows"] == 0 and set(summary["5xx while damaged"]) <= {503},
            "identical answers after the restart": same,
            "RSS after the heavy request <= 1.3x idle": memory["after_heavy_mb"] <= 1.3 * memory["idle_mb"],
            "clean shutdown (exit 0)": exit_code == 0}


def _report(summary: dict, memory: dict, chaos: Chaos, checks: dict[str, bool]) -> str:
    lines = [f"requests: {summary['requests']} ({summary['q/s']:.1f}/s), valid 2xx p50 {summary['p50 ms']:.1f} ms, "
             f"p99 {summary['p99 ms']:.1f} ms",
             "answers by phase / validity: " + json.dumps(summary["by_phase"], sort_keys=True),
             f"events (s): {', '.join(f'{what} {t:.1f}' for t, what in chaos.events)}",
             f"RSS: idle {memory['idle_mb']:.0f} MiB, after the D4 request ({memory['heavy_status']}, "
             f"{memory['heavy_s']:.1f} s) {memory['after_heavy_mb']:.0f} MiB, max under load "
             f"{max((m for _, m in chaos.rss), default=0):.0f} MiB (plot: rss.png)",
             f"connection errors outside the restart window: {summary['connection errors outside the restart window']}"]
    lines += [f"{'PASS' if ok else 'FAIL'}  {what}" for what, ok in checks.items()]
    return "\n".join(lines)
