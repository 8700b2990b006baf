"""Connection limits of the real uvicorn process (D9): slow bodies and slow heads are answered 408 and closed,
idle connections do not stay forever, and connections over RKD_MAX_CONNECTIONS are answered 503 and closed."""
from __future__ import annotations

import socket
import time

from retrieval_kd.serving.process import http_json, running_server

URL = "/v1/indexes/cacm-slice/search"


def _open(port: int, payload: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if payload:
        s.sendall(payload)
    return s


def _answer(s: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """(what the server sent, whether it closed the connection) within `timeout` seconds."""
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
        return data, True
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        return data, True
    finally:
        s.close()


def test_d9_slow_bodies_and_heads_are_closed(bundle):
    env = {"RKD_BODY_TIMEOUT_S": "1", "RKD_HEADER_TIMEOUT_S": "1"}
    with running_server([bundle], env=env) as sp:
        head = f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        slow_body = [_open(sp.port, head + b"Content-Length: 100\r\n\r\n" + b'{"query":"') for _ in range(100)]
        slow_head = [_open(sp.port, head) for _ in range(20)]
        silent = [_open(sp.port, b"") for _ in range(10)]
        t0 = time.monotonic()
        assert http_json(sp.url + URL, {"query": "sorting", "k": 1})[0] == 200  # still serving
        answers = [_answer(s, 8.0) for s in slow_body + slow_head + silent]
        took = time.monotonic() - t0
        assert all(closed for _, closed in answers), sum(not c for _, c in answers)
        assert all(data.startswith(b"HTTP/1.1 408") for data, _ in answers[:120]), answers[0][0][:80]
        assert took < 8.0, took
        assert http_json(sp.url + URL, {"query": "sorting", "k": 1})[0] == 200


def test_connections_over_the_cap_get_503(bundle):
    with running_server([bundle], env={"RKD_MAX_CONNECTIONS": "8", "RKD_HEADER_TIMEOUT_S": "30"}) as sp:
        held = [_open(sp.port, b"") for _ in range(8)]
        time.sleep(0.3)
        data, closed = _answer(_open(sp.port, b""), 5.0)
        assert closed and data.startswith(b"HTTP/1.1 503") and b"too many open connections" in data
        for s in held:
            s.close()
        time.sleep(0.3)
        assert http_json(sp.url + URL, {"query": "sorting", "k": 1})[0] == 200
