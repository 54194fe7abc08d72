"""The appendix's build records come from the build log and the store (nothing runs), and its wording follows
whether there was a log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chapter_text import chapter_text
from ex4.analysis import provenance
from ex4.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def build(tmp_path, data_europe_dir):
    """A store with two experiment results and one piece (no data folder), and a log asking for them 3 times."""
    store = Store(tmp_path / "store")
    first = store.get_or_compute("mlp-lr", {"seed": 0, "mlp_lr": 0.001}, "data-a", [], lambda: ({"x": 1}, {}),
                                 extra_meta={"data_dir": str(data_europe_dir)})
    second = store.get_or_compute("cnn", {"seed": 0, "device": "cpu"}, "data-b", [], lambda: ({"y": 2}, {}),
                                  extra_meta={"data_dir": str(tmp_path / "faces")})
    store.get_or_compute("cnn-features", {"seed": 0}, "data-b", [], lambda: ({"z": 3}, {}))
    log = tmp_path / "build.jsonl"
    log.write_text("".join(json.dumps({"experiment": outcome.experiment, "key": outcome.key, "hit": hit}) + "\n"
                           for outcome, hit in ((first, True), (second, False), (first, True))))
    return store, log, first, second


def test_records_follow_the_log_in_first_use_order(build):
    store, log, first, second = build
    records = provenance.build_records(store, log)
    assert records.from_log and records.requests == 3
    assert [entry["key"] for entry in records.entries] == [first.key, second.key]
    assert (records.n_hits, records.n_computed) == (1, 1)
    runs = records.runs_rows()
    assert list(runs["hit"]) == [True, False] and list(runs["experiment"]) == ["mlp-lr", "cnn"]
    values = records.params_rows()
    assert ("cnn", "device", "cpu") in set(map(tuple, values.to_numpy()))
    data = records.data_rows()
    assert "train.csv" in set(data["file"]) and data.iloc[0]["sha256"] == "data-a"


def test_without_a_log_the_store_results_of_experiment_runs_are_listed(build, monkeypatch):
    store, _, first, second = build
    monkeypatch.delenv("EX4_BUILD_LOG", raising=False)
    records = provenance.build_records(store)
    assert not records.from_log
    assert {entry["key"] for entry in records.entries} == {first.key, second.key}  # not the cnn-features piece
    assert set(records.hits.values()) == {None} and records.n_hits == records.n_computed == 0


@pytest.mark.slow
def test_the_appendix_words_a_build_with_and_without_a_log(build, monkeypatch):
    store, log, _, _ = build
    monkeypatch.setenv("EX4_STORE", str(store.root))
    monkeypatch.setenv("EX4_BUILD_LOG", str(log))
    with_log = chapter_text(ROOT / "report" / "appendix.qmd", {})
    assert "asked the store for 3 results (2 distinct)" in with_log
    assert "1 came from the store and 1 were computed" in with_log and "ran on its own" not in with_log
    monkeypatch.delenv("EX4_BUILD_LOG")
    without = chapter_text(ROOT / "report" / "appendix.qmd", {})
    assert "No chapter of this build asked the store" in without and "came from the store" not in without
    assert "lists the 2 experiment results the store holds" in without and "not known (appendix run" in without
