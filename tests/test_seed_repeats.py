"""`seed_repeats`: every Section 6 run trained for seeds seed..seed+N-1, each stored under its own key.

Raising N trains only the new seed's runs; a seed's result is the result that seed gives alone (the same key,
the same numbers); N = 1 is exactly `run`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ex4 import params
from ex4.errors import Ex4Error
from ex4.experiments import run, run_seeds
from ex4.experiments import section6 as s6
from ex4.experiments.seeds import seeds_of
from ex4.store import Store
from test_mlp_experiments import TINY, write_cities

SECTION6 = list(s6.RUN_SPECS)


@pytest.fixture(scope="module")
def cities(tmp_path_factory):
    return write_cities(tmp_path_factory.mktemp("cities") / "europe")


def trained_runs(monkeypatch) -> list[int]:
    """Counts the runs the engine trains, call by call."""
    calls: list[int] = []
    original = s6.train_runs

    def counting(specs, *args, **kwargs):
        calls.append(len(specs))
        return original(specs, *args, **kwargs)

    monkeypatch.setattr(s6, "train_runs", counting)
    return calls


def test_raising_the_repeats_trains_only_the_new_seed(cities, tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    values = params.resolve(("test", {**TINY, "europe_dir": str(cities), "mlp_engine": "kernel"}))
    calls = trained_runs(monkeypatch)
    two = run_seeds(SECTION6, {**values, "seed_repeats": 2}, store)
    runs_per_seed = sum(calls)
    assert runs_per_seed > 0 and runs_per_seed % 2 == 0
    assert all(len(outcomes) == 2 for outcomes in two.values())
    assert all([o.result["seed"] for o in outcomes] == [0, 1] for outcomes in two.values())
    calls.clear()
    three = run_seeds(SECTION6, {**values, "seed_repeats": 3}, store)
    assert sum(calls) == runs_per_seed // 2  # only seed 2's runs
    for name in SECTION6:
        assert [o.key for o in three[name][:2]] == [o.key for o in two[name]]
        assert [o.result["seed"] for o in three[name]] == [0, 1, 2]
        assert three[name][2].result["runs"] != three[name][1].result["runs"]  # another seed, other numbers
    calls.clear()
    again = run_seeds(SECTION6, {**values, "seed_repeats": 3}, store)
    assert calls == [] and all(o.hit for outcomes in again.values() for o in outcomes)


def test_a_seed_over_seeds_is_that_seed_alone(cities, tmp_path):
    """Seed 1 trained among three seeds has the key and numbers of seed 1 trained on its own (N = 1)."""
    values = params.resolve(("test", {**TINY, "europe_dir": str(cities), "mlp_engine": "kernel"}))
    many = run_seeds(SECTION6, {**values, "seed_repeats": 3}, Store(tmp_path / "many"))
    for name in ("mlp-lr", "mlp-shapes", "mlp-gradients"):
        alone = run(name, {**values, "seed": 1}, Store(tmp_path / "alone"))
        assert many[name][1].key == alone.key
        assert many[name][1].result["runs"] == alone.result["runs"]


def test_one_repeat_is_run_itself(cities, tmp_path):
    values = params.resolve(("test", {**TINY, "europe_dir": str(cities)}))
    store = Store(tmp_path / "store")
    [outcome] = run_seeds("mlp-lr", values, store)["mlp-lr"]
    assert outcome.key == run("mlp-lr", values, store).key
    assert seeds_of({"seed": 7, "seed_repeats": 3}) == [7, 8, 9]


def test_repeats_are_checked_at_the_edge():
    with pytest.raises(Ex4Error, match="seed_repeats"):
        params.resolve(("test", {"seed_repeats": 0}))
    with pytest.raises(Ex4Error, match="last seed"):
        params.resolve(("test", {"seed": params.MAX_SEED, "seed_repeats": 2}))


@pytest.mark.slow
def test_seeds_on_dask_go_out_as_one_sweep_and_match_the_local_runs(cities, tmp_path):
    pytest.importorskip("distributed")
    from ex4.executor import close_all, executor_for
    from test_executor import without_timings

    values = params.resolve(("test", {**TINY, "europe_dir": str(cities), "mlp_engine": "kernel", "seed_repeats": 2}))
    local = run_seeds(["mlp-lr", "mlp-epochs"], values, Store(tmp_path / "local"))
    # one worker process with every core as a thread: two tasks train at once in one process, which is where
    # runs drawing their initial weights from torch's global generator at the same time would part ways
    cluster = executor_for("dask", "local:1")
    try:
        before = cluster.submitted
        remote = run_seeds(["mlp-lr", "mlp-epochs"], {**values, "executor": "dask", "dask_scheduler": "local:1"},
                           Store(tmp_path / "dask"))
        runs = len(local["mlp-lr"][0].result["runs"]) + len(local["mlp-epochs"][0].result["runs"])
        assert cluster.submitted - before == 2 * runs  # every run of both seeds, as tasks of one sweep
        for name in local:
            assert [o.key for o in remote[name]] == [o.key for o in local[name]]
            assert [without_timings(o.result) for o in remote[name]] == [without_timings(o.result) for o in local[name]]
    finally:
        close_all()


def test_the_command_line_runs_every_seed(cities, tmp_path):
    import json
    import os
    import subprocess
    import sys

    settings = [f"{name}={json.dumps(value)}" for name, value in {**TINY, "europe_dir": str(cities)}.items()]
    command = [sys.executable, "-m", "ex4.cli", "--store", str(tmp_path / "store"), "run", "mlp-epochs", "--json",
               *(item for setting in settings for item in ("--set", setting)), "--set", "seed_repeats=2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(s6.__file__).parents[2]),
                                                         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert [entry["seed"] for entry in printed] == [0, 1] and printed[0]["key"] != printed[1]["key"]
    assert "mlp-epochs (seed 1): result" in done.stderr


def test_section7_over_seeds_reuses_stored_runs_and_keeps_full_networks_to_the_first_seeds(
        tmp_path, monkeypatch, data_isolated_root, data_faces_tree):
    from ex4.experiments import section7 as s7
    from conftest import small_surrogate
    from test_cnn_experiment import TINY, counting

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    small_surrogate(monkeypatch)
    store = Store(tmp_path / "store")
    values = params.resolve(("test", {**TINY, "faces_dir": str(data_faces_tree(per_class=3)), "seed_repeats": 2,
                                      "cnn_baselines": ["xgboost", "scratch", "sklearn_probe"],
                                      "cnn_full_network_repeats": 1}))
    computed = counting(monkeypatch, s7, "compute_run")
    two = run_seeds("cnn", values, store)["cnn"]
    assert [[run["label"] for run in o.result["runs"]] for o in two] == \
        [["xgboost", "scratch lr=0.01", "sklearn_probe"], ["xgboost", "sklearn_probe"]]
    assert [{run["params"]["seed"] for run in o.result["runs"]} for o in two] == [{0}, {1}]
    assert len(computed) == 5
    computed.clear()
    three = run_seeds("cnn", {**values, "seed_repeats": 3}, store)["cnn"]
    assert sorted(computed) == [("sklearn_probe", None), ("xgboost", None)]  # seed 2's runs, and only the cheap ones
    assert [o.key for o in three[:2]] == [o.key for o in two] and all(o.hit for o in three[:2])
    # the first seed's result is the one `run` gives for that seed alone
    assert run("cnn", {**values, "seed_repeats": 1}, store).key == two[0].key
    # every seed with the full networks: only seed 1's scratch run is new, its cheap runs are reused
    computed.clear()
    every = run_seeds("cnn", {**values, "cnn_full_network_repeats": None}, store)["cnn"]
    assert computed == [("scratch", 0.01)]
    assert every[0].key == two[0].key and every[1].key != two[1].key
    assert [run["label"] for run in every[1].result["runs"]] == ["xgboost", "scratch lr=0.01", "sklearn_probe"]
    assert every[1].result["runs"][0] == two[1].result["runs"][0]  # the same stored XGBoost run


def test_a_seed_left_without_baselines_gives_no_cnn_result():
    from ex4.experiments.seeds import repeated, seed_values

    values = params.resolve(("test", {"seed": 3, "seed_repeats": 3, "cnn_full_network_repeats": 2,
                                      "cnn_baselines": ["scratch", "finetune"]}))
    assert repeated("cnn") and repeated("mlp-lr") and not repeated("elsewhere")
    assert [seed_values("cnn", values, seed) is None for seed in (3, 4, 5)] == [False, False, True]
    assert seed_values("mlp-lr", values, 5)["seed"] == 5  # only Section 7 drops baselines
    cheap = seed_values("cnn", {**values, "cnn_baselines": ["scratch", "xgboost"]}, 5)
    assert cheap["cnn_baselines"] == ["xgboost"] and cheap["seed"] == 5 and cheap["seed_repeats"] == 1
    with pytest.raises(Ex4Error, match="cnn_full_network_repeats"):
        params.resolve(("test", {"cnn_full_network_repeats": 0}))


def test_every_stored_run_of_every_seed_is_that_run_trained_alone(cities, tmp_path, monkeypatch):
    """All seeds' runs train in one kernel call, packed over two threads; each stored "mlp-run" holds bit for bit
    what training that run alone, one run at a time with its seed, gives (the timings aside)."""
    from ex4.experiments import Context
    from ex4.experiments.seeds import _refused, with_seed
    from ex4.hashing import file_digest, fingerprint_digests
    from ex4.train.mlp_engine import train_runs

    monkeypatch.setenv("EX4_KERNEL_THREADS", "2")
    store = Store(tmp_path / "store")
    values = params.resolve(("test", {**TINY, "europe_dir": str(cities), "mlp_engine": "kernel"}))
    run_seeds(SECTION6, {**values, "seed_repeats": 3}, store)
    monkeypatch.setenv("EX4_KERNEL_THREADS", "1")
    files = sorted(Path(cities).glob("*.csv"))
    data = fingerprint_digests(((path, file_digest(path)) for path in files), root=Path(cities))
    engine = s6._engine_identity("kernel")
    checked = set()
    for seed in (0, 1, 2):
        p = with_seed(values, seed)
        splits, _ = s6.load_splits(Context(params=dict(p), data_dir=Path(cities), store=store))
        for name in SECTION6:
            if _refused(name, p):
                continue
            for spec in s6.RUN_SPECS[name](p, splits.n_classes):
                identity = s6._run_identity(spec, p, engine)
                key = store.key_for("mlp-run", identity, data, s6.RUN_CODE)
                if key in checked:
                    continue
                checked.add(key)
                stored = store.load(key)
                assert stored is not None, f"seed {seed} {name} {spec.label} not stored"
                (alone,) = train_runs([spec], splits, seed, engine="kernel", progress=False)
                record, tensors = s6._run_record(alone)
                timings = ("epoch_seconds", "compile_seconds")
                assert {k: v for k, v in stored.result.items() if k not in timings} == \
                    {k: v for k, v in record.items() if k not in timings}
                assert set(stored.tensors) == set(tensors)
                for field, value in tensors.items():
                    ours = value if isinstance(value, dict) else {"": value}
                    theirs = stored.tensors[field] if isinstance(value, dict) else {"": stored.tensors[field]}
                    assert set(ours) == set(theirs)
                    assert all(ours[k].numpy().tobytes() == theirs[k].numpy().tobytes() for k in ours), (name, field)
    assert len(checked) > 3 * 10
