"""The compiled CPU kernel (`ex4.train.mlp_kernel`, engine "kernel") against the torch engine, and its own
guarantees: batched runs equal runs alone, determinism, divergence recorded, engine choice in the store key.

Data: the tiny stand-in of `mlp_stand_in` (97 training rows: batches of 16 leave one row, which batch norm
merges into the previous batch), not the Europe set.
"""

import math

import pytest
import torch

from ex4 import params
from ex4.models.mlp import Architecture
from ex4.train.mlp_engine import RunSpec, resolve_engine, train_runs
from mlp_stand_in import N_CLASSES, stand_in_splits

TRACK = (0, 2)
pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def splits():
    return stand_in_splits()


@pytest.fixture(scope="module", autouse=True)
def compiled(splits):
    """Compile (or load from numba's cache) once per session, so each test measures only itself."""
    spec = RunSpec("warm", Architecture(2, 4, N_CLASSES), 0.01, 16, 1)
    train_runs([spec, RunSpec("warm2", spec.arch, 0.02, 16, 1)], splits, seed=0, engine="kernel", progress=False)


def specs_for(flags, optimizer, rates=(0.01, 0.003), epochs=2, depth=3, width=6):
    arch = Architecture(depth=depth, width=width, n_classes=N_CLASSES, **flags)
    return [RunSpec(f"lr={lr}", arch, lr, 16, epochs, optimizer, track_layers=TRACK, record_step_losses=True)
            for lr in rates]


def train(specs, splits, engine, seed=3):
    return train_runs(specs, splits, seed=seed, engine=engine, progress=False, compile_steps=False)


def assert_close_states(kernel, reference, skip_pre_norm_bias):
    assert set(kernel) == set(reference)
    for key, value in reference.items():
        if skip_pre_norm_bias and (key.endswith("linear.bias") or key.endswith("running_mean")):
            continue  # its gradient is ~0 (batch norm removes it): Adam turns that rounding noise into steps
        if key.endswith("num_batches_tracked"):
            assert torch.equal(kernel[key], value)
            continue
        torch.testing.assert_close(kernel[key], value, rtol=1e-4, atol=1e-5, msg=key)


CASES = [
    ({}, "sgd"),
    ({"batch_norm": True}, "sgd"),
    ({"residual": True}, "sgd"),
    ({}, "adam"),
    ({"batch_norm": True, "residual": True}, "adam"),
    ({"implicit": True, "batch_norm": True}, "sgd"),
]


@pytest.mark.parametrize("flags, optimizer", CASES, ids=lambda value: str(value))
def test_kernel_equals_torch_engine_within_float32_rounding(splits, flags, optimizer):
    specs = specs_for(flags, optimizer)
    kernel, reference = train(specs, splits, "kernel"), train(specs, splits, "torch")
    noisy_running_mean = flags.get("batch_norm", False) and optimizer == "adam"
    for ours, theirs in zip(kernel, reference):
        assert ours.iterations_per_epoch == theirs.iterations_per_epoch
        assert ours.last_batch == theirs.last_batch
        torch.testing.assert_close(ours.step_losses, theirs.step_losses, rtol=1e-4, atol=1e-6)
        assert_close_states(ours.state_dict, theirs.state_dict, noisy_running_mean)
        for layer in TRACK:
            assert ours.grad_norms[layer] == pytest.approx(theirs.grad_norms[layer], rel=1e-3)
        # evaluation uses the running mean, which that rounding noise moves (see assert_close_states)
        for name in ("train_loss",) if noisy_running_mean else ("train_loss", "val_loss", "test_loss"):
            assert ours.history[name] == pytest.approx(theirs.history[name], rel=1e-4)


def test_merged_last_batch_and_running_statistics(splits):
    (ours,) = train(specs_for({"batch_norm": True}, "sgd", rates=(0.01,)), splits, "kernel")
    (theirs,) = train(specs_for({"batch_norm": True}, "sgd", rates=(0.01,)), splits, "torch")
    assert ours.last_batch == "merged" and ours.iterations_per_epoch == 6  # 97 = 5 * 16 + 17
    for key in ("hidden.1.norm.running_mean", "hidden.1.norm.running_var"):
        torch.testing.assert_close(ours.state_dict[key], theirs.state_dict[key], rtol=1e-4, atol=1e-6)
    assert int(ours.state_dict["hidden.0.norm.num_batches_tracked"]) == 12


@pytest.mark.parametrize("flags, optimizer", [({}, "sgd"), ({"batch_norm": True, "residual": True}, "adam")])
def test_batched_runs_equal_each_run_alone(splits, flags, optimizer):
    specs = specs_for(flags, optimizer, rates=(0.01, 0.003, 0.03))
    together = train(specs, splits, "kernel")
    for spec, batched in zip(specs, together):
        (alone,) = train([spec], splits, "kernel")
        assert torch.equal(batched.step_losses, alone.step_losses)
        assert all(torch.equal(batched.state_dict[key], alone.state_dict[key]) for key in alone.state_dict)
        assert batched.grad_norms == alone.grad_norms


def test_per_run_inputs_raw_and_sine_in_one_group(splits):
    arch = Architecture(3, 6, N_CLASSES, batch_norm=True)
    specs = [RunSpec(label, Architecture(**{**arch.as_dict(), "implicit": flag}), 0.01, 16, 2,
                     record_step_losses=True) for label, flag in (("raw", False), ("sine", True))]
    together = train(specs, splits, "kernel")
    assert together[0].state_dict["hidden.0.linear.weight"].shape == (6, 2)
    assert together[1].state_dict["hidden.0.linear.weight"].shape == (6, 20)
    for spec, batched in zip(specs, together):
        (alone,) = train([spec], splits, "kernel")
        (reference,) = train([spec], splits, "torch")
        torch.testing.assert_close(batched.step_losses, alone.step_losses, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(batched.step_losses, reference.step_losses, rtol=1e-4, atol=1e-6)


def test_a_diverging_run_is_recorded_and_the_others_carry_on(splits):
    specs = specs_for({}, "sgd", rates=(1e6, 0.01), epochs=3)
    diverged, healthy = train(specs, splits, "kernel")
    assert diverged.diverged and diverged.diverged_epoch == 1
    assert all(value is None for value in diverged.history["val_acc"])
    assert not healthy.diverged and all(math.isfinite(value) for value in healthy.history["val_loss"])
    (alone,) = train([specs[1]], splits, "kernel")
    assert healthy.history == alone.history


def test_same_seed_bit_identical_whatever_the_thread_count(splits, monkeypatch):
    specs = specs_for({"batch_norm": True}, "adam", rates=(0.01, 0.003, 0.001))
    monkeypatch.setenv("EX4_KERNEL_THREADS", "1")
    first = train(specs, splits, "kernel")
    monkeypatch.setenv("EX4_KERNEL_THREADS", "2")
    for one, two in zip(first, train(specs, splits, "kernel")):
        assert torch.equal(one.step_losses, two.step_losses)
        assert all(torch.equal(one.state_dict[key], two.state_dict[key]) for key in one.state_dict)
    other_seed = train(specs, splits, "kernel", seed=4)
    assert not torch.equal(first[0].step_losses, other_seed[0].step_losses)


def test_engine_choice(monkeypatch):
    assert resolve_engine(None, "cpu") == "kernel"
    assert resolve_engine("auto", "cuda") == "torch"
    assert resolve_engine("torch", "cpu") == "torch"
    monkeypatch.setenv("EX4_MLP_ENGINE", "torch")  # gone: only the mlp_engine parameter chooses
    assert resolve_engine("auto", "cpu") == "kernel"
    with pytest.raises(ValueError, match="CPU"):
        resolve_engine("kernel", "cuda")


def test_store_key_carries_the_engine_and_the_device_actually_used(monkeypatch):
    import ex4.train.device
    from ex4.experiments.section6 import EXPERIMENTS

    values = params.resolve(("test", {"device": "cpu"}))
    assert values["mlp_engine"] == "auto"
    for experiment in EXPERIMENTS:
        key = experiment.key_params(values)
        assert key["mlp_engine"] == "kernel" and key["device"] == "cpu" and key["mlp_compile"] == "eager"
        assert experiment.key_params({**values, "mlp_engine": "torch"})["mlp_engine"] == "torch"
        assert experiment.key_params({**values, "mlp_compile": "all"})["mlp_compile"] == "all"
    # `auto` enters the key as the device it resolves to: the torch engine computes other bits on CUDA
    monkeypatch.setattr(ex4.train.device, "pick_device", lambda choice: torch.device("cuda"))
    cuda_key = EXPERIMENTS[0].key_params(params.resolve(("test", {"device": "auto"})))
    assert cuda_key["device"] == "cuda" and cuda_key["mlp_engine"] == "torch"


def test_numba_cache_lives_under_ex4_cache_dir(monkeypatch):
    import numba

    from ex4.paths import cache_dir

    import ex4.train.mlp_kernel  # noqa: F401  (configures numba on import)

    if not __import__("os").environ.get("NUMBA_CACHE_DIR"):
        assert numba.config.CACHE_DIR == str(cache_dir() / "numba")


def test_groups_trained_side_by_side_equal_groups_trained_alone(splits, monkeypatch):
    monkeypatch.setenv("EX4_KERNEL_THREADS", "2")
    specs = [RunSpec("narrow", Architecture(2, 4, N_CLASSES), 0.01, 16, 2, record_step_losses=True),
             RunSpec("wide", Architecture(3, 8, N_CLASSES, batch_norm=True), 0.01, 32, 2, record_step_losses=True),
             RunSpec("deep", Architecture(5, 4, N_CLASSES, residual=True), 0.01, 16, 2, record_step_losses=True)]
    together = train(specs, splits, "kernel")
    assert [result.spec.label for result in together] == ["narrow", "wide", "deep"]
    for spec, result in zip(specs, together):
        (alone,) = train([spec], splits, "kernel")
        assert torch.equal(result.step_losses, alone.step_losses)
        assert all(torch.equal(result.state_dict[key], alone.state_dict[key]) for key in alone.state_dict)
