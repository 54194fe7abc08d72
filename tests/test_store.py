"""The result store: stable keys, atomic writes, corruption detection, concurrent writers, invalidation."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from ex4 import store as store_module
from ex4.store import Store, fingerprint_files, make_key


def compute_counting(counter: list):
    def compute():
        counter.append(1)
        return {"runs": [{"final": {"val_acc": 0.5}}], "nan": float("nan")}, {"w": {"weight": torch.arange(6.0)}}

    return compute


def get(store, counter, params=None, data="d" * 64, code=("ex4.params",)):
    return store.get_or_compute("exp", params or {"lr": 0.1}, data, code, compute_counting(counter))


def test_miss_then_hit_returns_the_same_result_and_tensors(tmp_path):
    store, counter = Store(tmp_path), []
    first = get(store, counter)
    second = get(store, counter)
    assert counter == [1] and not first.hit and second.hit
    assert second.key == first.key and second.result["runs"] == first.result["runs"]
    assert torch.equal(second.tensors["w"]["weight"], torch.arange(6.0))
    assert second.meta["params"] == {"lr": 0.1} and second.meta["environment"]["cpu_count"] == os.cpu_count()


def test_key_changes_with_each_input_and_only_then(tmp_path):
    base = make_key("exp", {"lr": 0.1, "seed": 0}, "data", "code", {"torch": "1"})
    assert base == make_key("exp", {"seed": 0, "lr": 0.1}, "data", "code", {"torch": "1"})
    assert base != make_key("exp2", {"lr": 0.1, "seed": 0}, "data", "code", {"torch": "1"})
    assert base != make_key("exp", {"lr": 0.2, "seed": 0}, "data", "code", {"torch": "1"})
    assert base != make_key("exp", {"lr": 0.1, "seed": 0}, "data2", "code", {"torch": "1"})
    assert base != make_key("exp", {"lr": 0.1, "seed": 0}, "data", "code2", {"torch": "1"})
    assert base != make_key("exp", {"lr": 0.1, "seed": 0}, "data", "code", {"torch": "2"})


def test_data_fingerprint_follows_content(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("a\n")
    first = fingerprint_files([data], root=tmp_path)
    time.sleep(0.01)
    data.write_text("b\n")
    assert fingerprint_files([data], root=tmp_path) != first


def test_code_change_gives_a_new_key(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "trainer_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(package))
    store, counter = Store(tmp_path / "store"), []
    first = get(store, counter, code=("trainer_mod",))
    (package / "trainer_mod.py").write_text("X = 2\n")
    second = get(store, counter, code=("trainer_mod",))
    assert first.key != second.key and counter == [1, 1]


@pytest.mark.parametrize("victim", ["result.json", "tensors.pt", "meta.json"])
@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_corrupt_entry_is_detected_and_recomputed(tmp_path, victim, damage):
    store, counter = Store(tmp_path), []
    first = get(store, counter)
    path = store.entry_dir(first.key) / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:10] + b"\x00garbage" + data[18:])
    assert store.load(first.key) is None
    again = get(store, counter)
    assert counter == [1, 1] and not again.hit and store.load(first.key) is not None


def test_failed_compute_leaves_no_entry(tmp_path):
    store = Store(tmp_path)

    def explode():
        raise ValueError("boom")

    with pytest.raises(ValueError):
        store.get_or_compute("exp", {}, "d", ("ex4.params",), explode)
    assert store.entries() == []


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from ex4.store import Store
    import ex4.store as s
    original = s.Store._write
    def slow_write(self, *args):
        import json
        orig_dumps = json.dumps
        def slow(*a, **k):
            print("writing", flush=True)
            time.sleep(30)
            return orig_dumps(*a, **k)
        s.json.dumps = slow
        return original(self, *args)
    s.Store._write = slow_write
    Store(sys.argv[1]).get_or_compute("exp", {"lr": 0.1}, "d" * 64, ("ex4.params",), lambda: ({"a": 1}, {}))
    """
)


@pytest.mark.slow
def test_killed_mid_write_leaves_the_store_consistent(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store, counter = Store(tmp_path), []
    assert store.entries() == []
    assert not get(store, counter).hit and counter == [1]
    store.prune()
    assert not (tmp_path / ".tmp").exists() or not any((tmp_path / ".tmp").iterdir())


def _concurrent_worker(root, queue):
    def compute():
        time.sleep(1.0)
        return {"pid": os.getpid()}, {}

    outcome = Store(root).get_or_compute("exp", {"lr": 0.1}, "d" * 64, ("ex4.params",), compute)
    queue.put((outcome.hit, outcome.result["pid"]))


@pytest.mark.slow
def test_two_processes_same_key_compute_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_concurrent_worker, args=(str(tmp_path), queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join()
    assert sorted(hit for hit, _ in results) == [False, True]
    assert len({pid for _, pid in results}) == 1  # the second reused the first one's entry


def test_remove_and_prune(tmp_path):
    store, counter = Store(tmp_path), []
    first = get(store, counter)
    other = get(store, counter, params={"lr": 0.2})
    store.remove(first.key[:8])
    assert [row["key"] for row in store.entries()] == [other.key]
    meta_path = store.entry_dir(other.key) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["versions"] = {"torch": "0.0"}  # made by another library version: stale
    meta_bytes = json.dumps(meta).encode()
    meta_path.write_bytes(meta_bytes)
    (store.entry_dir(other.key) / "meta.sha256").write_text(store_module.sha256_bytes(meta_bytes))
    assert store.prune() == [other.key] and store.entries() == []
