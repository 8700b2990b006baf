"""A local JSON-over-HTTP stub for the LLM teacher tests: subclasses answer POSTs with `answer(body)`."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer


class JSONStub(BaseHTTPRequestHandler):
    """`answer(self, body) -> (status, payload)` decides each POST's reply."""

    def answer(self, body: dict) -> tuple[int, dict]:
        raise NotImplementedError

    def do_POST(self):  # noqa: N802 - http.server API
        status, payload = self.answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextmanager
def serving(handler: type[JSONStub]) -> Iterator[str]:
    """Serve `handler` on a free loopback port; yields the OpenAI-style base URL (…/v1)."""
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
