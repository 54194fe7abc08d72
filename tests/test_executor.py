"""`executor: dask`: runs as tasks on a real distributed cluster (worker processes on 127.0.0.1), same numbers.

Every test here talks to loopback only: a `LocalCluster` of two worker processes, or a scheduler on 127.0.0.1
with one worker started in its own mount namespace (to show a worker that cannot see the store).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

distributed = pytest.importorskip("distributed")

from ex4 import params  # noqa: E402
from ex4.executor import check_scheduler, close_all, executor_for  # noqa: E402
from ex4.experiments import run  # noqa: E402
from ex4.store import Store  # noqa: E402

pytestmark = pytest.mark.slow

SWEEP = {"mlp_train_subset": 2000, "mlp_epochs": 2, "mlp_learning_rates": [0.01, 0.001],
         "mlp_extra_learning_rates": [0.2]}
DASK = {"executor": "dask", "dask_scheduler": "local:2"}


def values(**extra):
    return params.resolve(("test", {**SWEEP, **extra}))


def ex4_cli(*args, store):
    command = [sys.executable, "-m", "ex4.cli", "--store", str(store), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


TIMINGS = ("wall_time", "seconds", "timings")  # how long things took: all that differs between executors


def without_timings(value):
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items()
                if not any(key == name or key.endswith(name) for name in TIMINGS)}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def assert_same_outcome(local, remote):
    assert remote.key == local.key
    assert json.dumps(without_timings(remote.result), sort_keys=True) == \
        json.dumps(without_timings(local.result), sort_keys=True)
    assert_same_tensors(local.tensors, remote.tensors)


def stored_keys(root: Path) -> set[str]:
    return {row["key"] for row in Store(root).entries()}


@pytest.fixture(scope="module")
def cluster():
    executor = executor_for("dask", "local:2")
    yield executor
    close_all()


def test_scheduler_values_are_checked():
    assert check_scheduler("local:2") == "local:2"
    assert check_scheduler("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    for bad in ("local:0", "local:x", "127.0.0.1:8786", "", 3, "local:100000"):
        with pytest.raises(ValueError):
            check_scheduler(bad)
    with pytest.raises(Exception, match="dask_scheduler"):
        params.resolve(("test", {"dask_scheduler": "local"}))


def test_section6_sweep_on_dask_is_bit_identical_and_reuses_the_store(tmp_path, cluster):
    local = run("mlp-lr", values(), Store(tmp_path / "local"))
    before = cluster.submitted
    remote = run("mlp-lr", values(**DASK), Store(tmp_path / "dask"))
    assert cluster.submitted - before == 3  # one task per run (0.01, 0.001, 0.2)
    assert_same_outcome(local, remote)
    assert stored_keys(tmp_path / "dask") == stored_keys(tmp_path / "local")
    # a warm store: nothing is submitted, the result comes back as a hit
    before = cluster.submitted
    again = run("mlp-lr", values(**DASK), Store(tmp_path / "dask"))
    assert cluster.submitted == before and again.hit
    # a wider sweep submits only the new run
    wider = run("mlp-lr", values(**DASK, mlp_learning_rates=[0.01, 0.001, 0.1]), Store(tmp_path / "dask"))
    assert cluster.submitted - before == 1 and not wider.hit


def test_section7_smoke_on_dask_is_bit_identical_run_by_run(tmp_path, cluster):
    """Every Section 7 run is one task, after the surrogate and features tasks it needs; same runs, same keys,
    same numbers as computed locally; a warm store submits nothing; one more rate is one task per torch baseline."""
    import yaml

    smoke = yaml.safe_load((Path(__file__).parents[1] / "params" / "smoke.yml").read_text())
    local = run("cnn", params.resolve(("smoke", smoke)), Store(tmp_path / "local"))
    counter = tmp_path / "pretrainings"

    def count_pretraining(path):  # runs in every worker process: each surrogate pretraining appends a line
        import ex4.train.surrogate as module

        original = module.pretrain_surrogate

        def counted(*args, **kwargs):
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("pretrained\n")
            return original(*args, **kwargs)

        counted.__wrapped__ = original
        module.pretrain_surrogate = counted

    def uncount():
        import ex4.train.surrogate as module

        module.pretrain_surrogate = getattr(module.pretrain_surrogate, "__wrapped__", module.pretrain_surrogate)

    cluster.client.run(count_pretraining, str(counter))
    try:
        before = cluster.submitted
        remote = run("cnn", params.resolve(("smoke", {**smoke, **DASK})), Store(tmp_path / "dask"))
        n_runs = len(local.result["runs"])
        assert cluster.submitted - before == n_runs + 2  # each run, the surrogate and the features: one task each
        assert counter.read_text().splitlines() == ["pretrained"]  # three pretrained runs, one pretraining
        assert_same_outcome(local, remote)
        assert stored_keys(tmp_path / "dask") == stored_keys(tmp_path / "local")
        experiments_stored = sorted(row["experiment"] for row in Store(tmp_path / "dask").entries())
        assert experiments_stored == ["cnn", "cnn-features", *["cnn-run"] * n_runs, "cnn-surrogate"]
        before = cluster.submitted
        assert run("cnn", params.resolve(("smoke", {**smoke, **DASK})), Store(tmp_path / "dask")).hit
        assert cluster.submitted == before
        rates = [*smoke["cnn_learning_rates"], 0.001]
        wider = run("cnn", params.resolve(("smoke", {**smoke, **DASK, "cnn_learning_rates": rates})),
                    Store(tmp_path / "dask"))
        assert cluster.submitted - before == 3  # scratch, linear_probe and finetune at 0.001; nothing else
        assert counter.read_text().splitlines() == ["pretrained"]
        old = {r["label"]: without_timings(r) for r in remote.result["runs"]}
        assert [without_timings(r) for r in wider.result["runs"] if r["label"] in old] == list(old.values())
        assert len(wider.result["runs"]) == n_runs + 3
    finally:
        cluster.client.run(uncount)


def test_section7_seeds_on_dask_go_out_as_one_sweep(tmp_path, cluster, data_faces_tree):
    """Every missing Section 7 run of every seed is a task of one sweep; a seed past cnn_full_network_repeats has
    no full-network run; results and keys are those computed locally."""
    from ex4.experiments import run_seeds

    tiny = {"faces_dir": str(data_faces_tree(per_class=3)), "cnn_image_size": 32, "cnn_learning_rates": [0.01],
            "cnn_batch_size": 4, "cnn_xgb_crop": 8, "cnn_baselines": ["xgboost", "scratch"], "seed_repeats": 2,
            "cnn_full_network_repeats": 1}
    local = run_seeds(["cnn"], params.resolve(("test", tiny)), Store(tmp_path / "local"))["cnn"]
    assert [[r["label"] for r in o.result["runs"]] for o in local] == [["xgboost", "scratch lr=0.01"], ["xgboost"]]
    sweeps = []
    compute = cluster.compute
    cluster.compute = lambda tasks, progress=None: sweeps.append(len(tasks)) or compute(tasks, progress)
    try:
        remote = run_seeds(["cnn"], params.resolve(("test", {**tiny, **DASK})), Store(tmp_path / "dask"))["cnn"]
    finally:
        del cluster.compute
    assert sweeps == [3]  # seed 0: xgboost and scratch; seed 1: xgboost; one sweep, then only assembling
    assert [o.key for o in remote] == [o.key for o in local]
    assert [without_timings(o.result) for o in remote] == [without_timings(o.result) for o in local]
    assert stored_keys(tmp_path / "dask") == stored_keys(tmp_path / "local")


def test_a_worker_killed_mid_run_is_retried_and_leaves_no_partial_entry(tmp_path, cluster):
    # runs of a few seconds each (batch size 1 and 2 over 20,000 cities), so a worker can be caught training
    slow = {"mlp_train_subset": 20000, "mlp_batch_sizes": [1, 2], "mlp_epochs_per_batch_size": [3, 3]}
    store_root = tmp_path / "dask"
    box: dict = {}

    def sweep():
        try:
            box["outcome"] = run("mlp-batch-size", values(**slow, **DASK), Store(store_root))
        except BaseException as error:  # pragma: no cover - reported by the assertion below
            box["error"] = error

    client = cluster.client
    thread = threading.Thread(target=sweep)
    thread.start()
    victim = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and thread.is_alive():
        busy = [worker for worker, keys in client.processing().items()
                if any(str(key).startswith("ex4-") for key in keys)]
        if busy:
            time.sleep(1.0)  # well inside a run of several seconds
            victim = busy[0]
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    thread.join(timeout=600)
    assert victim is not None, "no worker was seen running a task"
    assert "error" not in box, box.get("error")
    outcome = box["outcome"]
    listing = ex4_cli("results", "ls", store=store_root)
    assert listing.returncode == 0 and "CORRUPT" not in listing.stdout
    for row in Store(store_root).entries():
        assert Store(store_root).load(row["key"]) is not None, row["key"]
    local = run("mlp-batch-size", values(**slow), Store(tmp_path / "local"))
    assert_same_outcome(local, outcome)


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    result = ex4_cli("run", "mlp-lr", "--set", "executor=dask", "--set", "dask_scheduler=tcp://127.0.0.1:9",
                     store=tmp_path / "store")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "dask_scheduler tcp://127.0.0.1:9" in lines[0] and "cannot connect" in lines[0], \
        result.stderr
    assert not (tmp_path / "store").exists() or not Store(tmp_path / "store").entries()


def _unshare_works() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs root and `unshare -m` to give a worker its own view of /")
def test_a_worker_that_cannot_see_the_store_is_one_line(tmp_path):
    hidden = tmp_path / "shared"
    hidden.mkdir()
    cluster = distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0", processes=True)
    worker = None
    try:
        address = cluster.scheduler_address
        # the worker sees an empty tmpfs where the client's store lies: the filesystem is not shared
        script = (f"mount -t tmpfs tmpfs {hidden} && exec {sys.executable} -m distributed.cli.dask_worker "
                  f"{address} --nthreads 1 --no-nanny --no-dashboard")
        worker = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        with distributed.Client(address, timeout="20s") as client:
            client.wait_for_workers(1, timeout=120)
        result = ex4_cli("run", "mlp-lr", "--set", "executor=dask", "--set", f"dask_scheduler={address}",
                         store=hidden / "store")
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot see the store" in lines[0] and str(hidden / "store") in lines[0], \
            result.stderr
        assert not [row for row in Store(hidden / "store").entries()]
    finally:
        if worker is not None:
            worker.kill()
            worker.wait(timeout=30)
        cluster.close()


def book_text(book) -> dict[str, str]:
    """Every page's visible text, by file name, with each result's provenance ("stored" or "computed now": the
    local smoke book may read results an earlier build stored) left out."""
    import re

    pages = {}
    for page in book.pages:
        text = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
        text = re.sub(r"\((stored|computed now)\)", "(provenance)", text)
        text = re.sub(r"\s+", " ", text)
        pages[page.name] = text
    return pages


def test_the_whole_smoke_book_from_a_cluster_reads_as_the_local_one(tmp_path, smoke_book, monkeypatch):
    """`ex4 render --set executor=dask --set dask_scheduler=local:2` on an empty store: every chapter sends its runs
    to a LocalCluster, and the book's pages say the same as the locally computed smoke book's."""
    from ex4.render import render_book

    if os.environ.get("EX4_BOOK_DIR"):
        pytest.skip("the smoke book here is a published book, not one computed locally under params/smoke.yml")
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("EX4_STORE", str(tmp_path / "store"))
    remote = render_book(root, params_file=root / "params" / "smoke.yml", out_dir=tmp_path / "book", renderer="ex4",
                         overrides={"executor": "dask", "dask_scheduler": "local:2"}, fresh=True)
    ran = {row["experiment"] for row in Store(tmp_path / "store").entries()}
    assert {"cnn-run", "mlp-run"} <= ran  # the cluster computed the runs into the empty store
    local, remote = book_text(smoke_book), book_text(remote)
    assert local.keys() == remote.keys()
    for name in local:
        if name == "appendix.html":  # its build records say when and for how long things ran: compare the keys
            assert_same_results_used(local[name], remote[name])
        else:
            assert remote[name] == local[name], name


def assert_same_results_used(local: str, remote: str) -> None:
    """The appendix's table of results used lists the same store keys (same parameters, data and code) in both."""
    import re

    keys = [set(re.findall(r"\b[0-9a-f]{24}\b", text)) for text in (local, remote)]
    assert keys[0] and keys[0] == keys[1]
