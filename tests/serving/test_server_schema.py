"""Property-based runs against the OpenAPI schema: never a 5xx, every response as documented.

The fast run (CI): every operation gets valid (positive) and schema-violating (negative) requests, about 100 in
all, each validated by schemathesis's checks (status code, content type, headers and body documented; negative
data rejected, positive data accepted); half of the generated index names are replaced by the real one so
searches really run. The slow run (`-m slow`): the schemathesis CLI with every check, all modes and phases
(examples, coverage, fuzzing, stateful through the OpenAPI links) against a real uvicorn process, >= 5,000
requests counted by the server's own metrics, none answered 5xx.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

from retrieval_kd.serving.process import http_json, running_server  # noqa: E402
from server.app import create_app  # noqa: E402
from server.settings import ServerSettings  # noqa: E402

PER_MODE = 8
# 413 answers a schema-valid request over a limit JSON Schema cannot state (UTF-8 bytes, the request budget), so it
# counts as accepted-as-designed for valid data and as a rejection for invalid data; 5xx is never expected.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "413", "429"]
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""


def test_openapi_fuzz_never_5xx(bundle):
    app = create_app([bundle], ServerSettings(max_batch=8))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_str(CONFIG))
    seen: list[tuple[str, int]] = []
    failures: list[str] = []
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {"/v1/indexes/{name}/search", "/v1/indexes/{name}/search/batch", "/v1/rewrite"} <= {o.path for o in ops}

    def fuzz(op, mode):
        @given(case=op.as_strategy(generation_mode=mode), real=st.booleans())
        @settings(max_examples=PER_MODE, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def run(case, real):
            if real and case.path_parameters and "name" in case.path_parameters:
                case.path_parameters = {**case.path_parameters, "name": "cacm-slice"}
            response = case.call()
            seen.append((op.path, response.status_code))
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r} -> {response.status_code}")
            try:
                case.validate_response(response)
            except AssertionError as e:  # schemathesis's FailureGroup: the check and the request
                failures.append(str(e)[:600])

        return run

    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(op, mode)()
            except Unsatisfiable:  # nothing to violate (e.g. GET /health has no inputs)
                assert mode == GenerationMode.NEGATIVE, op.path
    assert not failures, failures[:5]
    statuses = {s for _, s in seen}
    assert len(seen) >= 90 and 200 in statuses and statuses & {404, 409, 413, 422}
    assert any(p.endswith("/search") and s == 200 for p, s in seen)


def _served_counts(url: str) -> tuple[int, int]:
    """(requests, 5xx answers) from the server's rkd_requests_total."""
    text = http_json(url + "/metrics")[1]
    rows = re.findall(r'^rkd_requests_total\{.*status="([^"]+)".*\} (\S+)$', text, re.M)
    return int(sum(float(n) for _, n in rows)), int(sum(float(n) for s, n in rows if s.startswith("5")))


@pytest.mark.slow
def test_schemathesis_cli_all_checks_5000_requests(bundle, tmp_path):
    """`schemathesis run --checks all --mode all` (examples, coverage, fuzzing, stateful): 0 failures, 0 5xx."""
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    with running_server([bundle]) as sp:
        cmd = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(tmp_path / "schemathesis.toml"),
               "run", f"{sp.url}/openapi.json", "--checks", "all", "--mode", "all", "-n", "400", "--seed", "1",
               "--workers", "2", "--suppress-health-check", "all", "--report", "json",
               "--report-json-path", str(tmp_path / "report.json")]
        out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
        requests, server_errors = _served_counts(sp.url)
    report = json.loads((tmp_path / "report.json").read_text())
    print(f"schemathesis: {requests} requests, {server_errors} 5xx, {report['failures']} check failures, "
          f"{report['test_cases']['generated']} test cases, phases {sorted(report['phases'])}")
    assert out.returncode == 0 and not report["failures"] and not report["errors"], out.stdout[-4000:]
    assert server_errors == 0 and requests >= 5000, (requests, server_errors)
