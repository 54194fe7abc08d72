"""Section 7's runs share out the cores by whole runs: a local sweep on threads, one torch thread per run.

The local executor starts a task once the tasks it depends on are done; the first failure stops the sweep
(the other threads' runs stop at their next step, nothing more starts); every Section 7 computation runs on one
torch thread whatever the caller set, so its numbers do not depend on the machine's cores nor on the runs
computed beside it.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

from ex4 import params
from ex4.cancel import CANCELLED, Cancelled
from ex4.errors import Ex4Error
from ex4.executor import LocalExecutor, Task
from ex4.store import Store

WAIT_S = 30  # a guard against a hang, not a timing: every wait below is released by another task


def record(log: list, name: str, ready: threading.Event | None = None, wait_for: threading.Event | None = None):
    log.append(f"start {name}")
    if ready is not None:
        ready.set()
    if wait_for is not None:
        assert wait_for.wait(WAIT_S), f"{name} waited alone: the tasks did not run side by side"
    log.append(f"end {name}")
    return name


def test_ready_tasks_run_side_by_side_and_a_task_waits_for_its_dependencies():
    log: list[str] = []
    a_started, c_started = threading.Event(), threading.Event()
    tasks = [
        Task("a", record, (log, "a", a_started, c_started)),  # finishes only once c has started: both run at once
        Task("b", record, (log, "b"), deps=("a",)),
        Task("c", record, (log, "c", c_started, a_started)),
    ]
    assert LocalExecutor().compute(tasks, workers=2) == ["a", "b", "c"]
    assert log.index("start b") > log.index("end a")
    assert log.index("start c") < log.index("end a")
    assert not CANCELLED.is_set()


def test_one_worker_runs_the_tasks_in_their_order():
    log: list[str] = []
    tasks = [Task(name, record, (log, name)) for name in ("x", "y", "z")]
    assert LocalExecutor().compute(tasks + tasks[:1], workers=1) == ["x", "y", "z", "x"]
    assert log == ["start x", "end x", "start y", "end y", "start z", "end z"]  # a repeated key runs once


def looping(log: list, started: threading.Event) -> str:
    from ex4.train.features import progress

    started.set()
    try:
        for _ in progress(range(10 ** 9), 10 ** 9, "endless"):
            time.sleep(0.001)
    except Cancelled:
        log.append("cancelled")
        raise
    return "never"


def failing(started: threading.Event) -> str:
    assert started.wait(WAIT_S)
    raise Ex4Error("bad image")


def test_the_first_failure_stops_the_running_tasks_and_starts_no_more():
    log: list[str] = []
    started = threading.Event()
    tasks = [Task("loop", looping, (log, started)), Task("fail", failing, (started,)),
             Task("later", record, (log, "later")), Task("after", record, (log, "after"), deps=("loop",))]
    with pytest.raises(Ex4Error, match="bad image"):
        LocalExecutor().compute(tasks, workers=2)
    assert log == ["cancelled"]  # the endless run stopped within a step; the queued tasks never started
    assert not CANCELLED.is_set()  # the next sweep starts clean


def test_a_dependency_that_fails_fails_the_sweep():
    log: list[str] = []
    started = threading.Event()
    started.set()
    tasks = [Task("fail", failing, (started,)), Task("child", record, (log, "child"), deps=("fail",))]
    with pytest.raises(Ex4Error, match="bad image"):
        LocalExecutor().compute(tasks, workers=2)
    assert log == []


def threads_seen(seen: list, store: Store, n: int) -> str:
    """A stand-in for `section7.run_task`: sets the run's thread count, notes it and stores a result."""
    from ex4.experiments import section7

    section7.one_thread()
    seen.append(torch.get_num_threads())
    return store.get_or_compute("test-run", {"n": n}, "data", (), lambda: ({"n": n}, {})).key


def test_section7_tasks_compute_on_one_torch_thread_and_the_callers_count_comes_back(tmp_path):
    from ex4.experiments import section7

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[int] = []
        store = Store(tmp_path)
        tasks = [Task(store.key_for("test-run", {"n": n}, "data", ()), threads_seen, (seen, store, n))
                 for n in range(3)]
        section7.compute_tasks(LocalExecutor(), tasks, store, "test", torch.device("cpu"))
        assert seen == [1, 1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert section7.local_workers(torch.device("cpu")) >= 1
    assert section7.local_workers(torch.device("cuda")) == 1  # runs on one GPU would only take turns


@pytest.mark.slow
def test_a_section7_result_does_not_depend_on_the_callers_threads_nor_on_runs_beside_it(
        tmp_path, data_faces_tree, monkeypatch):
    """The same tiny Section 7 computed on two threads side by side, and one run after another with the caller on
    two torch threads: the same keys and bit for bit the same numbers."""
    from ex4.experiments import run, section7
    from conftest import small_surrogate

    small_surrogate(monkeypatch)  # the probe depends on a pretrained backbone all the same
    tiny = {"faces_dir": str(data_faces_tree(per_class=4)), "cnn_image_size": 32, "cnn_learning_rates": [0.01, 0.1],
            "cnn_batch_size": 4, "cnn_xgb_crop": 8, "cnn_baselines": ["xgboost", "scratch", "sklearn_probe"]}
    values = params.resolve(("test", tiny))
    monkeypatch.setattr(section7, "local_workers", lambda device: 2)
    side_by_side = run("cnn", values, Store(tmp_path / "a"))
    before = torch.get_num_threads()
    monkeypatch.setattr(section7, "local_workers", lambda device: 1)
    torch.set_num_threads(2)
    try:
        alone = run("cnn", values, Store(tmp_path / "b"))
    finally:
        torch.set_num_threads(before)
    assert alone.key == side_by_side.key
    assert [r["final"] for r in alone.result["runs"]] == [r["final"] for r in side_by_side.result["runs"]]
    for split in ("val", "test"):
        for label, probabilities in alone.tensors["probabilities"][split].items():
            assert torch.equal(probabilities, side_by_side.tensors["probabilities"][split][label]), label
