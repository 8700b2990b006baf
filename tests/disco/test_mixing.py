"""DiSCo query mixtures: the candidate grid, the weighted sum, the mixture folder, and `rkd eval cast-mix` choosing
on the choice set with real SPLADE-tiny students over a small two-set collection."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp


def test_candidates_start_with_the_first_run_alone_and_check_weights():
    from retrieval_kd.bench.cast_mix import candidate_name, candidates
    from retrieval_kd.errors import ConfigError

    grid = candidates(2, [0.5, 1], [0.25])
    assert grid[0] == ((1.0, 0.0), 0.0)  # always a candidate, though 0 is in neither list
    assert set(grid[1:]) == {((1.0, 0.5), 0.25), ((1.0, 1.0), 0.25)}
    assert candidates(1, [0, 0.5], [0, 0.25]) == [((1.0,), 0.0), ((1.0,), 0.25)]
    assert candidate_name((1.0, 0.0, 0.5), 0.25) == "mix 1*s1 + 0.5*s3 + 0.25*utterance"
    for bad in ([-1], [float("nan")], [True]):
        with pytest.raises(ConfigError, match="--weights"):
            candidates(2, bad, [0])


def test_combine_is_the_weighted_sum_for_dense_and_sparse():
    from retrieval_kd.methods.disco.mixing import combine

    a, b, u = np.array([1.0, 0.0, 2.0]), np.array([0.0, 4.0, 1.0]), np.array([3.0, 0.0, 0.0])
    assert np.allclose(combine([a, b], [1.0, 0.5], u, 0.25), [1.75, 2.0, 2.5])
    assert np.allclose(combine([a], [1.0]), a)
    got = combine([sp.csr_matrix(a), sp.csr_matrix(b)], [1.0, 0.5], sp.csr_matrix(u), 0.25)
    assert np.allclose(got.toarray()[0], [1.75, 2.0, 2.5])
    with pytest.raises(ValueError, match="shape"):
        combine([a, np.zeros(4)], [1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        combine([a], [1.0, 1.0])


def test_read_mixture_names_the_field(tmp_path):
    from retrieval_kd.artifacts import write_meta
    from retrieval_kd.errors import RKDError
    from retrieval_kd.methods.disco.mixing import MIX_KIND, read_mixture

    write_meta(tmp_path, MIX_KIND, 1, members=[{"run": "/r/a", "weight": 1}], utterance=0.25)
    assert read_mixture(tmp_path)["members"] == [{"run": "/r/a", "weight": 1.0}]
    for fields, field in (({"members": []}, "members"), ({"members": [{"run": "/r/a", "weight": -1}]}, "weight"),
                          ({"members": [{"weight": 1}]}, "members\\[0\\]"),
                          ({"members": [{"run": "/r/a", "weight": 0}]}, "anchors"),
                          ({"members": [{"run": "/r/a", "weight": 1}], "utterance": "x"}, "utterance")):
        write_meta(tmp_path, MIX_KIND, 1, fields)
        with pytest.raises(RKDError, match=field):
            read_mixture(tmp_path)


def _two_set_dataset(tmp_path, mini):
    """Real cast-mini turns: 6 CAsT 2021 (choice) and 6 iKAT 2023 (report) judged turns over their judged passages
    and some distractors, saved as a dataset folder."""
    from retrieval_kd.data.dataset import Dataset

    convs, qrels = [], {}
    for coll in ("cast2021", "ikat2023"):
        conv = next(c for c in mini.conversations if c.get("collection") == coll
                    and sum(1 for t in c["turns"] if mini.qrels.get(t["id"])) >= 6)
        turns = [t for t in conv["turns"] if mini.qrels.get(t["id"])][:6]
        convs.append({**conv, "turns": turns})
        qrels.update({t["id"]: mini.qrels[t["id"]] for t in turns})
    judged = {d for q in qrels.values() for d in q}
    corpus = [d for d in mini.corpus if d["id"] in judged] + [d for d in mini.corpus if d["id"] not in judged][:20]
    ds = Dataset("mix-slice", corpus, {t["id"]: t["utterance"] for c in convs for t in c["turns"]}, qrels, convs,
                 dict(mini.meta))
    ds.save(tmp_path / "dataset")
    return tmp_path / "dataset"


@pytest.fixture(scope="module")
def students(tmp_path_factory, splade_path):
    """Two real (untrained) SPLADE-tiny students with different input settings."""
    from retrieval_kd.methods.disco.student import SpladeStudent

    root = tmp_path_factory.mktemp("students")
    a = SpladeStudent(device="cpu", max_length=64, segments=True).save(root / "a")
    b = SpladeStudent(device="cpu", max_length=64, segments=False, responses="none").save(root / "b")
    return a, b


def test_cast_mix_chooses_on_the_choice_set_and_writes_a_loadable_mixture(tmp_path, mini, students, capsys):
    import retrieval_kd
    from retrieval_kd.bench.cast_mix import run_mix
    from retrieval_kd.methods.disco.mixture import MixtureEncoder

    data = _two_set_dataset(tmp_path, mini)
    res = run_mix(list(students), tmp_path / "out", str(data), weights=[0, 1], alphas=[0, 0.5])
    grid = res["grid"]
    assert len(grid) == 4 and grid[0]["weights"] == [1.0, 0.0] and grid[0]["alpha"] == 0.0
    for g in grid:  # the choice figure is the CAsT 2021 row's, never the report set's
        choice = [r for r in g["rows"] if r["role"] == "choice"]
        assert [r["set"] for r in choice] == ["CAsT 2021"] and g["choice nDCG@3"] == choice[0]["nDCG@3"]
        assert any(r["set"] == "iKAT 2023" and r["role"] == "report" for r in g["rows"])
    best = max(grid, key=lambda g: g["choice nDCG@3"])
    assert res["chosen"]["weights"] == best["weights"] and res["chosen"]["alpha"] == best["alpha"]
    assert {p["set"] for p in res["paired"]} == {"CAsT 2021", "iKAT 2023"}
    assert "Chosen:" in capsys.readouterr().out and (tmp_path / "out" / "table.md").exists()
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["chosen"] == res["chosen"]
    enc = retrieval_kd.load(tmp_path / "out" / "mixture")
    assert isinstance(enc, MixtureEncoder)
    assert enc.weights == [w for w in best["weights"] if w]
    assert enc.utterance_weight == pytest.approx(best["alpha"] * sum(best["weights"]))
    # the loaded mixture reproduces the weighted sum of its members and the utterance encoder
    parts = MixtureEncoder(list(students), [1.0, 1.0], 1.0)
    turn = mini.conversations[0]["turns"][1]
    got = MixtureEncoder(list(students), [1.0, 0.5], 0.25).encode(turn["history"], turn["utterance"])
    a = MixtureEncoder([students[0]], [1.0]).encode(turn["history"], turn["utterance"])
    b = MixtureEncoder([students[1]], [1.0]).encode(turn["history"], turn["utterance"])
    u = parts.utterance.encode([turn["utterance"]]).toarray()[0]
    assert np.allclose(got, a + 0.5 * b + 0.25 * u, atol=1e-5) and not np.allclose(a, b)


def test_cast_mix_refuses_a_dataset_without_a_choice_set(tmp_path, students):
    from retrieval_kd.bench.cast_mix import run_mix
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.errors import RKDError

    turns = [{"id": "t0", "utterance": "how do glaciers form", "history": []}]
    Dataset("mine", [{"id": "d1", "contents": "glaciers form from snow"}], {"t0": turns[0]["utterance"]},
            {"t0": {"d1": 1}}, [{"id": "c", "collection": "ikat2023", "turns": turns}],
            {"rel_threshold": 1}).save(tmp_path / "ds")
    with pytest.raises(RKDError, match="no choice-set turns"):
        run_mix([students[0]], tmp_path / "out", str(tmp_path / "ds"))
    assert not (tmp_path / "out" / "mixture").exists()


def test_a_member_trained_with_the_utterance_term_enters_with_it(tmp_path, mini, students):
    """A run whose meta says utterance_mix a is scored (and written) as student + a x utterance: alone it gives the
    figures of the plain student mixed at alpha = a, and its mixture folder carries the weight."""
    import shutil

    from retrieval_kd.artifacts import read_meta, write_meta
    from retrieval_kd.bench.cast_mix import run_mix

    data = _two_set_dataset(tmp_path, mini)
    run = tmp_path / "run"
    shutil.copytree(students[0], run / "student")
    write_meta(run, "disco-student", 1, student="student", utterance_mix=0.5, train_seconds=1.0)
    trained = run_mix([run], tmp_path / "a", str(data), alphas=[0])
    plain = run_mix([students[0]], tmp_path / "b", str(data), alphas=[0.5])
    alone = [r for r in trained["grid"][0]["rows"]]
    mixed = [r for r in plain["grid"] if r["alpha"] == 0.5][0]["rows"]
    assert [r["nDCG@3"] for r in alone] == [r["nDCG@3"] for r in mixed]
    assert read_meta(tmp_path / "a" / "mixture")["utterance"] == 0.5


def test_rkd_eval_cast_scores_a_residual_run_with_its_utterance_term(tmp_path, mini, students):
    """`bench.cast.train_and_score` (rkd eval cast / cast-ablations) reads a run's utterance_mix: its row equals the
    plain student mixed at that alpha by cast-mix, and differs from the plain student's row."""
    import shutil

    from retrieval_kd import datasets
    from retrieval_kd.artifacts import write_meta
    from retrieval_kd.bench.cast import split_queries, train_and_score
    from retrieval_kd.bench.cast_mix import run_mix
    from retrieval_kd.config import load_config
    from retrieval_kd.index.impact import ImpactIndex
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.teachers.splade import SpladeEncoder

    data = _two_set_dataset(tmp_path, mini)
    ds = datasets.load(str(data))
    enc = SpladeEncoder(None)
    index = ImpactIndex.build(enc.encode(ds.doc_texts), ds.doc_ids, enc.vocab)
    cfg = load_config(None, DiscoConfig, ["model.max_length=64"])
    rows = {}
    for alpha in (0.0, 1.0):
        run = tmp_path / f"run{alpha}"
        shutil.copytree(students[0], run / "student")
        write_meta(run, "disco-student", 1, student="student", utterance_mix=alpha, train_seconds=1.0)
        rows[alpha] = [r["nDCG@3"] for r in train_and_score(cfg, "x", run, ds, split_queries(ds), index, reuse=True)]
    mixed = next(g for g in run_mix([students[0]], tmp_path / "m", str(data), alphas=[1.0])["grid"]
                 if g["alpha"] == 1.0)
    assert rows[1.0] == [r["nDCG@3"] for r in mixed["rows"]] and rows[1.0] != rows[0.0]


def test_echo_rate_hand_computed():
    """echo@1: the top document is relevant to the previous turn and not to this one; turns after an unjudged (or
    first) turn are not counted."""
    from retrieval_kd.bench.cast_dev import echo_rate, previous_turns
    from retrieval_kd.data.dataset import Dataset

    turns = [{"id": f"t{i}", "utterance": f"u{i}", "history": []} for i in range(5)]
    qrels = {"t0": {"a": 1}, "t1": {"b": 1}, "t2": {"b": 1, "c": 1}, "t4": {"d": 1}}
    ds = Dataset("e", [{"id": x, "contents": x} for x in "abcd"], {t["id"]: t["utterance"] for t in turns}, qrels,
                 [{"id": "c", "turns": turns}], {"rel_threshold": 1})
    assert previous_turns(ds) == {"t1": "t0", "t2": "t1", "t3": "t2", "t4": "t3"}
    run = {"t1": {"a": 2.0, "b": 1.0},  # echoes t0's document
           "t2": {"b": 3.0},  # relevant to t1 but also to t2: not an echo
           "t3": {"c": 1.0},  # echoes t2's (t3 is unjudged but has a judged previous turn)
           "t4": {"d": 1.0}}  # previous turn t3 has no relevant document: not counted
    assert echo_rate(run, ds, ["t1", "t2", "t3", "t4"]) == (2 / 3, 3)
    assert echo_rate({}, ds, ["t1"]) == (0.0, 1)


def test_cast_dev_scores_runs_beside_the_references_and_refuses_one_trained_on_the_set(tmp_path, mini, students,
                                                                                      capsys):
    import shutil

    from retrieval_kd.artifacts import write_meta
    from retrieval_kd.bench.cast_dev import run_dev
    from retrieval_kd.errors import ConfigError

    data = _two_set_dataset(tmp_path, mini)
    res = run_dev([students[0]], tmp_path / "out", str(data), alphas=[0, 0.5])
    queries = {r["query"] for r in res["rows"]}
    assert {"SPLADE: raw utterance", "SPLADE: human rewrite (teacher bound)", "a", "a + 0.5*utterance"} <= queries
    assert all(0.0 <= r["echo@1"] <= 1.0 and r["echo turns"] >= 1 for r in res["rows"])
    assert {p["query"] for p in res["paired"]} == {"a", "a + 0.5*utterance"}
    assert "echo@1" in capsys.readouterr().out and (tmp_path / "out" / "table.md").exists()
    run = tmp_path / "run"
    shutil.copytree(students[0], run / "student")
    write_meta(run, "disco-student", 1, student="student", train_collections=["cast2019", "ikat2023"])
    with pytest.raises(ConfigError, match="trained on ikat2023"):
        run_dev([run], tmp_path / "out2", str(data))
