"""`rkd bench server` configurations and ratios, `rkd bench chaos` phases, checks and a short real run (slow)."""
from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from retrieval_kd.bench.chaos import Chaos, _checks, _phase, _requests, summarise
from retrieval_kd.bench.server import ratios, server_configs
from retrieval_kd.cli import app


def test_server_configs_measure_one_thread_vs_all_cores_with_and_without_batching():
    configs = dict(server_configs(4))
    labels = list(configs)
    assert labels[0] == "default (4 workers x 1 thread, no batching)" and "1 thread, micro-batch" in labels
    assert {"1 thread, no batching", "4 threads, micro-batch", "4 threads, no batching",
            "4 workers x 1 thread, micro-batch"} <= set(labels)
    assert configs["4 workers x 1 thread, micro-batch"]["RKD_MICROBATCH"] == "true"
    assert configs[labels[0]] == {"RKD_THREADS": None, "RKD_WORKERS": None, "RKD_MICROBATCH": None}  # defaults
    assert configs["1 thread, micro-batch"]["RKD_WORKERS"] == "1" == configs["1 thread, micro-batch"]["RKD_THREADS"]
    assert configs["4 threads, micro-batch"] == {"RKD_THREADS": None, "RKD_WORKERS": "1", "RKD_MICROBATCH": None}
    assert [label for label, _ in server_configs(1)][1:] == labels[1:3]  # one core: nothing more to compare


def test_ratios_compare_to_the_one_thread_figure_of_the_same_run():
    rows = [{"server": "default (2 threads, micro-batch)", "precision": "fp32", "clients": 16, "q/s": 150.0,
             "p99 ms": 100.0},
            {"server": "1 thread, micro-batch", "precision": "fp32", "clients": 16, "q/s": 120.0, "p99 ms": 180.0}]
    inproc = [{"batch": 1, "fp32 q/s": 140.0, "fp32 2t q/s": 200.0}]
    rows, verdict = ratios(rows, inproc, 16)
    assert rows[0]["vs 1 thread"] == pytest.approx(1.25) and rows[0]["vs in-process"] == pytest.approx(0.75)
    assert "1.25x the one-thread micro-batch figure (120.0 q/s, same run)" in verdict


class _Windows:
    restart_window = (100.0, 102.0)
    damage_window = (50.0, 60.0)


def test_phases_and_checks():
    w = _Windows()
    assert _phase(99.5, 0.6, w) == "restart" and _phase(55.0, 0.1, w) == "damaged" and _phase(10.0, 0.1, w) == "steady"
    log = [(10.0, 0.01, 200, True), (11.0, 0.01, 422, False), (55.0, 0.01, 503, True),
           (100.5, 0.01, "ConnectionRefusedError", True), (101.0, 0.01, 500, True)]
    s = summarise(log, w, 10.0)
    assert s["requests"] == 5 and s["5xx outside the windows"] == 0 and s["5xx while damaged"] == [503]
    assert s["by_phase"]["steady / invalid"] == {"4xx": 1} and s["connection errors outside the restart window"] == 0
    checks = _checks(s, {"idle_mb": 200.0, "after_heavy_mb": 250.0}, True, 0)
    assert all(checks.values())
    bad = summarise(log + [(20.0, 0.01, 500, True)], w, 10.0)
    assert not _checks(bad, {"idle_mb": 200.0, "after_heavy_mb": 300.0}, False, 143)["identical answers after the restart"]
    assert sum(not ok for ok in _checks(bad, {"idle_mb": 200.0, "after_heavy_mb": 300.0}, False, 143).values()) == 4


def test_request_mix_is_one_invalid_in_five():
    mix = _requests("idx", [f"q{i}" for i in range(50)])
    assert sum(not valid for _, _, valid in mix) == len(mix) // 5
    assert any(path.endswith("/search/batch") for path, _, _ in mix)


def test_chaos_command_lists_its_options():
    res = CliRunner().invoke(app, ["bench", "chaos", "--help"])
    plain = re.sub(r"\x1b\[[0-9;]*m", "", res.output)
    assert res.exit_code == 0
    for opt in ("--bundle", "--out", "--duration", "--clients"):
        assert opt in plain


@pytest.mark.slow
def test_short_chaos_run_passes_its_checks(bundle, tmp_path):
    from retrieval_kd.bench.chaos import run_chaos

    res = run_chaos(bundle, tmp_path / "chaos", duration=8.0, clients=4)
    assert all(res["checks"].values()), res["checks"]
    assert (tmp_path / "chaos" / "rss.png").stat().st_size > 1000
    assert {what for _, what in res["events"]} >= {"damage", "restore", "kill", "ready again"}
    assert isinstance(Chaos, type)
