"""The seven Section 6 experiments on a tiny course-format folder: result format, store round trip, errors.

Data: a stand-in written here (points labelled by the nearest of four centres), not the Europe set.
"""

import json

import numpy as np
import pytest
import torch

from ex4 import params
from ex4.errors import Ex4Error
from ex4.experiments import registry, run
from ex4.experiments.section6 import EXPERIMENTS
from ex4.models.mlp import load_mlp
from ex4.store import Store

NAMES = ["mlp-lr", "mlp-epochs", "mlp-batchnorm", "mlp-batch-size", "mlp-shapes", "mlp-gradients", "mlp-implicit"]
METRICS = {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"}
TINY = {
    "mlp_epochs": 2, "mlp_long_epochs": 2, "mlp_learning_rates": [0.05, 1e30], "mlp_extra_learning_rates": [0.01],
    "mlp_batch_sizes": [8, 64], "mlp_epochs_per_batch_size": [1, 2], "mlp_shapes": [[1, 4], [2, 6]],
    "mlp_shapes_epochs": 2, "mlp_shapes_batch_size": 16, "mlp_gradient_depth": 6, "mlp_gradient_width": 3,
    "mlp_gradient_epochs": 2, "mlp_gradient_layers": [0, 3, 5], "mlp_region_grid": 12, "mlp_batch_size": 32,
    "mlp_depth": 2, "mlp_width": 6,
}


def write_cities(folder, rows_per_split=(121, 30, 30), seed=0):
    """A course-format folder (`,long,lat,country` CSVs + countries.csv) of stand-in cities."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 45.0], [15.0, 50.0], [25.0, 60.0], [5.0, 38.0]])
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in zip(("train.csv", "validation.csv", "test.csv"), rows_per_split):
        points = rng.uniform([-10, 35], [30, 65], size=(n, 2))
        labels = np.linalg.norm(points[:, None] - centres[None], axis=2).argmin(1)
        rows = [f"{i},{x:.4f},{y:.4f},{c}" for i, ((x, y), c) in enumerate(zip(points, labels))]
        lines = [",long,lat,country"] + rows
        (folder / name).write_text("\n".join(lines) + "\n")
    (folder / "countries.csv").write_text("label,iso,name\n0,AA,Aland\n1,BB,Bland\n2,CC,Cland\n3,DD,Dland\n")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_cities(tmp_path_factory.mktemp("cities") / "europe")
    values = params.resolve(("test", {**TINY, "europe_dir": str(folder)}))
    store = Store(tmp_path_factory.mktemp("store"))
    return values, store


@pytest.fixture(scope="module")
def outcomes(tiny):
    values, store = tiny
    return {name: run(name, values, store=store) for name in NAMES}


def test_registry_has_the_seven_experiments_on_europe_data():
    assert [e.name for e in EXPERIMENTS] == NAMES
    assert all(e.data == "europe" and "seed" in e.params for e in EXPERIMENTS)
    # the data enter the key by content, the device as the one actually used (see key_params)
    assert all("europe_dir" not in e.params and "device" in e.params for e in EXPERIMENTS)
    assert all(set(e.params) <= set(params.SCHEMA) for e in EXPERIMENTS)
    assert set(NAMES) <= set(registry())


def test_every_result_has_the_common_format(outcomes):
    for name, outcome in outcomes.items():
        result = outcome.result
        json.dumps(result, allow_nan=False)  # None, never NaN
        assert result["experiment"] == name and result["n_train"] == 121 and result["n_classes"] == 4
        assert result["class_names"] == ["Aland", "Bland", "Cland", "Dland"]
        for entry in result["runs"]:
            assert set(entry["final"]) == METRICS and set(entry["history"]) == METRICS
            assert {"lr", "batch_size", "epochs", "batch_norm", "depth", "width", "optimizer"} <= set(entry["params"])
            epochs = entry["params"]["epochs"]
            assert all(len(values) == epochs for values in entry["history"].values())
            assert entry["iterations_per_epoch"] >= 1 and isinstance(entry["diverged"], bool)


def test_learning_rates_mark_the_extra_ones_and_survive_divergence(outcomes):
    runs = {r["label"]: r for r in outcomes["mlp-lr"].result["runs"]}
    assert [(label, r["extra"]) for label, r in runs.items()] == [("lr=0.05", False), ("lr=1e+30", False),
                                                                  ("lr=0.01", True)]
    assert runs["lr=1e+30"]["diverged"] and runs["lr=1e+30"]["final"]["val_acc"] is None
    assert not runs["lr=0.05"]["diverged"] and runs["lr=0.05"]["final"]["val_acc"] is not None


def test_batch_norm_experiment_compares_without_and_with(outcomes):
    runs = outcomes["mlp-batchnorm"].result["runs"]
    assert [r["params"]["batch_norm"] for r in runs] == [False, True]
    assert runs[0]["history"] == outcomes["mlp-epochs"].result["runs"][0]["history"]  # the same base run


def test_batch_size_records_iterations_and_every_step(outcomes):
    outcome = outcomes["mlp-batch-size"]
    runs = outcome.result["runs"]
    assert [r["iterations_per_epoch"] for r in runs] == [16, 2]  # ceil(121 / 8), ceil(121 / 64)
    for entry in runs:
        losses = outcome.tensors["step_losses"][entry["label"]]
        assert losses.dtype == torch.float32 and losses.shape == (entry["steps"],)
        assert entry["steps"] == entry["iterations_per_epoch"] * entry["params"]["epochs"]


def test_shapes_rank_count_regions_and_keep_what_figures_need(outcomes):
    outcome = outcomes["mlp-shapes"]
    result = outcome.result
    labels = [r["label"] for r in result["runs"]]
    assert labels == ["1x4", "2x6"] and {result["best"], result["worst"]} == set(labels)
    assert result["depth_series"] == ["2x6"] and result["width_series"] == ["2x6"]
    for entry in result["runs"]:
        assert 1 <= entry["regions_counted"] <= entry["region_bound"]
    assert result["runs"][0]["region_bound"] == 1 + 4 + 6
    for label in (result["best"], result["worst"]):
        grid = outcome.tensors["class_grids"][label]
        assert grid.shape == (12, 12) and grid.dtype == torch.uint8 and int(grid.max()) < 4
    entry = result["runs"][0]
    model = load_mlp(entry["arch"], outcome.tensors["models"][entry["label"]])
    long_min, long_max, lat_min, lat_max = result["grid_extent"]
    assert long_min < long_max and lat_min < lat_max
    assert model(torch.tensor([[long_min, lat_min]])).shape == (1, 4)


def test_gradients_track_the_chosen_layers_plain_and_residual(outcomes):
    result = outcomes["mlp-gradients"].result
    assert [r["params"]["residual"] for r in result["runs"]] == [False, True]
    for entry in result["runs"]:
        assert set(entry["grad_norms"]) == {"0", "3", "5"}
        assert all(len(values) == 2 for values in entry["grad_norms"].values())


def test_implicit_stores_both_models_and_grids(outcomes):
    outcome = outcomes["mlp-implicit"]
    runs = outcome.result["runs"]
    assert [r["input_features"] for r in runs] == [2, 20]
    assert [r["params"]["implicit"] for r in runs] == [False, True]
    for entry in runs:
        assert 1 <= entry["regions_counted"] <= entry["region_bound"]
        model = load_mlp(entry["arch"], outcome.tensors["models"][entry["label"]])
        assert model.hidden[0].linear.in_features == entry["input_features"]
        assert outcome.tensors["class_grids"][entry["label"]].shape == (12, 12)


def test_rerun_is_a_cache_hit_with_the_same_result(tiny, outcomes):
    values, store = tiny
    again = run("mlp-shapes", values, store=store)
    assert again.hit and again.key == outcomes["mlp-shapes"].key
    assert again.result == outcomes["mlp-shapes"].result
    assert torch.equal(again.tensors["class_grids"][again.result["best"]],
                       outcomes["mlp-shapes"].tensors["class_grids"][again.result["best"]])


def test_a_parameter_outside_the_key_still_hits_and_one_inside_misses(tiny, outcomes):
    values, store = tiny
    assert run("mlp-epochs", {**values, "mlp_shapes_epochs": 9}, store=store).hit
    changed = run("mlp-epochs", {**values, "mlp_lr": 0.02}, store=store)
    assert not changed.hit and changed.key != outcomes["mlp-epochs"].key


def test_train_subset_uses_that_many_rows(tiny):
    values, store = tiny
    outcome = run("mlp-epochs", {**values, "mlp_train_subset": 40}, store=store)
    assert outcome.result["n_train"] == 40 and outcome.result["runs"][0]["iterations_per_epoch"] == 2


def test_batch_norm_with_single_samples_is_a_parameter_error(tiny):
    values, store = tiny
    with pytest.raises(Ex4Error, match="mlp_batch_sizes"):
        run("mlp-batch-size", {**values, "mlp_batch_norm": True, "mlp_batch_sizes": [1, 8]}, store=store)
    with pytest.raises(Ex4Error, match="mlp_batch_size"):
        run("mlp-batchnorm", {**values, "mlp_batch_size": 1}, store=store)


def test_experiments_share_identical_runs_through_the_store(tmp_path, monkeypatch):
    """mlp-batchnorm's run without batch norm is mlp-epochs' run: stored once, trained once (kernel engine)."""
    import ex4.experiments.section6 as section6

    folder = write_cities(tmp_path / "europe", seed=3)
    values = params.resolve(("test", {**TINY, "europe_dir": str(folder), "mlp_engine": "kernel"}))
    store = Store(tmp_path / "store")
    trained = []
    real_train_runs = section6.train_runs

    def counting(specs, *args, **kwargs):
        trained.extend(spec.label for spec in specs)
        return real_train_runs(specs, *args, **kwargs)

    monkeypatch.setattr(section6, "train_runs", counting)
    epochs = run("mlp-epochs", values, store=store)
    both = run("mlp-batchnorm", values, store=store)
    assert trained == ["base", "with batch norm"]  # the run without batch norm came from the store
    without = next(entry for entry in both.result["runs"] if not entry["arch"]["batch_norm"])
    assert without["history"] == epochs.result["runs"][0]["history"] and without["label"] == "without batch norm"
    assert sum(entry["experiment"] == "mlp-run" for entry in store.entries()) == 2

    trained.clear()  # the torch engine batches runs differently, so it stores none and shares none
    torch_values = {**values, "mlp_engine": "torch"}
    run("mlp-epochs", torch_values, store=store)
    run("mlp-batchnorm", torch_values, store=store)
    assert trained == ["base", "without batch norm", "with batch norm"]
    assert sum(entry["experiment"] == "mlp-run" for entry in store.entries()) == 2


def test_a_kernel_run_computes_the_same_alone_or_beside_another_input(tmp_path):
    """Raw and sine runs train in separate kernel groups, so the raw model of mlp-implicit is bit for bit the
    base shape of mlp-shapes (and can be shared)."""
    from ex4.data.europe import load_europe
    from ex4.models.mlp import Architecture
    from ex4.train.mlp_engine import RunSpec, Splits, train_runs

    data = load_europe(write_cities(tmp_path / "europe", seed=4))
    splits = Splits.from_arrays({name: (part.x, part.y) for name, part in data.splits().items()}, data.n_classes)
    raw, sine = (RunSpec(label, Architecture(2, 6, data.n_classes, batch_norm=True, implicit=flag), 0.01, 16, 2)
                 for label, flag in (("raw", False), ("sine", True)))
    together = train_runs([raw, sine], splits, seed=0, progress=False, engine="kernel")[0]
    alone = train_runs([raw], splits, seed=0, progress=False, engine="kernel")[0]
    assert together.history == alone.history
    assert all(torch.equal(together.state_dict[key], alone.state_dict[key]) for key in alone.state_dict)
