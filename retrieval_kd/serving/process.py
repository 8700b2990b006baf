"""Run the server as a real uvicorn subprocess on a free loopback port (tests, benchmark, `rkd demo`)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.errors import RKDError

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_json(url: str, body: Any = None, timeout: float = 30.0, headers: Mapping[str, str] | None = None) -> tuple:
    """(status, parsed JSON or text) of a GET (body None) or JSON POST; never raises on HTTP errors."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class ServerProcess:
    """`python -m server BUNDLE...` on a loopback port; `url` once ready."""

    def __init__(self, bundles: Sequence[str | Path], port: int | None = None,
                 env: Mapping[str, str | None] | None = None, extra_args: Sequence[str] = ()):
        """`env` is laid over this process's environment; a None value removes that variable."""
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="rkd-server-", suffix=".log", delete=False)
        full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "server", *map(str, bundles), "--host", LOOPBACK, "--port", str(self.port),
               *extra_args]
        self.proc = subprocess.Popen(cmd, cwd=str(REPO), env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        """What the server printed so far."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> ServerProcess:
        """Poll GET /ready; raise RKDError with the server's output if it exits or stays unready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RKDError(f"server exited with code {self.proc.returncode}: {self.log().strip()[-2000:]}")
            with contextlib.suppress(OSError):
                if http_json(self.url + "/ready", timeout=2.0)[0] == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RKDError(f"server not ready after {timeout:.0f} s: {self.log().strip()[-2000:]}")

    def rss_mb(self) -> float:
        """Resident memory of the server process in MiB (Linux /proc; 0.0 where unknown)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0.0
        line = next((ln for ln in status.splitlines() if ln.startswith("VmRSS:")), "VmRSS: 0 kB")
        return int(line.split()[1]) / 1024.0

    def kill(self) -> int:
        """SIGKILL (a crash) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(30)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (then SIGKILL after `timeout`); returns the exit code (0 after a drained shutdown)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)
        return self.proc.returncode


@contextlib.contextmanager
def running_server(bundles: Sequence[str | Path], **kw: Any) -> Iterator[ServerProcess]:
    """Start a server subprocess, wait until ready, stop it on exit."""
    sp = ServerProcess(bundles, **kw)
    try:
        yield sp.wait_ready()
    finally:
        sp.stop()


def serve_once(bundle: str | Path, query: str, k: int = 3, with_text: bool = True) -> dict[str, Any]:
    """Serve `bundle` briefly on a free loopback port and return one search response fetched over HTTP."""
    from retrieval_kd.serving.bundle import read_manifest

    name = read_manifest(bundle)["name"]
    with running_server([bundle]) as sp:
        key = {"X-API-Key": os.environ["RKD_API_KEY"]} if os.environ.get("RKD_API_KEY") else {}
        status, body = http_json(f"{sp.url}/v1/indexes/{name}/search", {"query": query, "k": k, "with_text": with_text},
                                 headers=key)
    if status != 200:
        raise RKDError(f"search over HTTP answered {status}: {body}")
    return {"url": f"{sp.url}/v1/indexes/{name}/search", **body}
