"""Store keys cannot miss a parameter: an experiment's compute function sees only the parameters it declares,
the device enters a key as the device actually used, and no environment variable changes a result behind the
key's back ($EX4_MLP_ENGINE and $EX4_TRAIN_THREADS are gone, $EX4_COMPILE is the `mlp_compile` parameter;
$EX4_KERNEL_THREADS stays, performance only: see test_mlp_kernel.py)."""

from __future__ import annotations

import pytest
import torch

import ex4.experiments as experiments
from ex4 import params
from ex4.experiments import Context, DeclaredParams, Experiment, UndeclaredParameter
from ex4.store import Store


def test_declared_parameters_read_and_undeclared_ones_raise():
    values = params.defaults()
    declared = DeclaredParams("demo", values, ("seed", "cnn_epochs"))
    assert declared["seed"] == 0 and declared.get("cnn_epochs") == 1 and "seed" in declared
    assert dict(declared) == {"seed": 0, "cnn_epochs": 1} and len(declared) == 2
    for read in (lambda: declared["device"], lambda: declared.get("device", "auto"), lambda: "device" in declared):
        with pytest.raises(UndeclaredParameter, match="experiment 'demo' read parameter 'device'"):
            read()
    with pytest.raises(TypeError):
        declared["seed"] = 1  # read-only


def test_run_gives_the_compute_function_only_the_declared_parameters(tmp_path, monkeypatch, data_faces_tree):
    seen = {}

    def compute(ctx: Context):
        seen["names"] = sorted(ctx.params)
        return {"epochs": ctx.params["cnn_epochs"], "precision": ctx.params["cnn_precision"]}, {}

    sneaky = Experiment("sneaky", "reads a parameter it does not declare", "faces", ("seed", "cnn_epochs"),
                        (), compute)
    monkeypatch.setattr(experiments, "registry", lambda: {"sneaky": sneaky})
    values = params.resolve(("test", {"faces_dir": str(data_faces_tree())}))
    with pytest.raises(UndeclaredParameter, match="'cnn_precision'"):
        experiments.run("sneaky", values, Store(tmp_path / "store"))
    assert seen["names"] == ["cnn_epochs", "seed"]
    assert not any((tmp_path / "store").glob("*/result.json"))  # nothing stored under an incomplete key


def test_the_cnn_key_records_the_device_used_and_not_the_mistakes_count(monkeypatch):
    import ex4.train.device
    from ex4.experiments.section7 import EXPERIMENTS

    (cnn,) = EXPERIMENTS
    values = params.resolve(("test", {"device": "cpu", "cnn_baselines": ["xgboost", "scratch"]}))
    key = cnn.key_params(values)
    assert key["device"] == "cpu" and "cnn_mistakes" not in key and "cnn_mistakes" not in cnn.params
    assert cnn.key_params({**values, "cnn_mistakes": 9}) == key  # the figure's image count retrains nothing
    monkeypatch.setattr(ex4.train.device, "pick_device", lambda choice: torch.device("cuda"))
    assert cnn.key_params({**values, "device": "auto"})["device"] == "cuda"


def test_compile_mode_is_a_validated_parameter():
    from ex4.models.mlp import Architecture
    from ex4.train.mlp_engine import RunSpec, should_compile

    small = RunSpec("one", Architecture(2, 4, 3), 0.1, 1, 1)
    assert not should_compile(small, 30_000, "eager")
    assert should_compile(small, 30_000, "small") and should_compile(small, 30_000, "all")
    with pytest.raises(ValueError, match="compile mode"):
        should_compile(small, 30_000, "1")
    with pytest.raises(params.Ex4Error, match="mlp_compile"):
        params.resolve(("test", {"mlp_compile": "1"}))


@pytest.mark.usefixtures("single_torch_thread")
def test_the_environment_does_not_change_what_the_torch_engine_computes(monkeypatch):
    """Two intra-op threads round differently from one, so $EX4_TRAIN_THREADS no longer exists: set or not,
    the numbers are the same (and $EX4_COMPILE no longer switches compiling on)."""
    from ex4.models.mlp import Architecture
    from ex4.train.mlp_engine import RunSpec, train_runs
    from mlp_stand_in import N_CLASSES, stand_in_splits

    splits = stand_in_splits()
    specs = [RunSpec("a", Architecture(4, 64, N_CLASSES, batch_norm=True), 0.01, 16, 2, record_step_losses=True)]

    def train():
        return train_runs(specs, splits, seed=0, engine="torch", progress=False)[0]

    monkeypatch.delenv("EX4_TRAIN_THREADS", raising=False)
    monkeypatch.delenv("EX4_COMPILE", raising=False)
    plain = train()
    monkeypatch.setenv("EX4_TRAIN_THREADS", "2")
    monkeypatch.setenv("EX4_COMPILE", "all")
    assert torch.equal(train().step_losses, plain.step_losses)
