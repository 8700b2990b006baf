"""Property-based run against the OpenAPI schema (schemathesis strategies driven by hypothesis): never a 5xx.

Every operation gets valid (positive) and schema-violating (negative) requests, about 100 in all; half of the
generated index names are replaced by the real one so searches really run.
"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from server.app import create_app  # noqa: E402
from server.settings import ServerSettings  # noqa: E402

PER_MODE = 7


def test_openapi_fuzz_never_5xx(bundle):
    app = create_app([bundle], ServerSettings(max_batch=8))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
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
