"""The compiled CPU kernel (`ex4.train.mlp_kernel`, engine "kernel") against the torch engine, and its own
guarantees: batched runs equal runs alone, determinism, divergence recorded, engine choice in the store key.

Data: the tiny stand-in of `mlp_stand_in` (97 training rows: batches of 16 leave one row, which batch norm
merges into the previous batch), not the Europe set.
"""

import math
from pathlib import Path

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

    from ex4.train.mlp_kernel import numba_cache_folder

    source = Path(ex4.train.mlp_kernel.__file__).read_bytes()
    if not __import__("os").environ.get("NUMBA_CACHE_DIR"):
        assert numba.config.CACHE_DIR == numba_cache_folder(source, str(cache_dir() / "numba"))
        assert Path(numba.config.CACHE_DIR).parent == cache_dir() / "numba"


def test_numba_cache_folder_is_keyed_by_source_content():
    """numba checks only a source's size and mtime; the folder name carries its content hash instead, so an
    in-place edit that keeps both (same length, mtime restored) can never reuse the old compiled code."""
    from ex4.train.mlp_kernel import numba_cache_folder

    source = b"def f(x):\n    return x + 1\n"
    edited = b"def f(x):\n    return x - 1\n"
    assert len(source) == len(edited)
    assert numba_cache_folder(source, "/c") != numba_cache_folder(edited, "/c")
    assert numba_cache_folder(source, "/c") == numba_cache_folder(source, "/c")
    assert numba_cache_folder(source, "/c").startswith("/c/mlp_kernel-")


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


def assert_bitwise_same(result, alone):
    """Same numbers bit for bit (NaN included): step losses, every tensor of the state dict, history, norms."""
    def raw(tensor):
        return tensor.contiguous().numpy().tobytes()

    assert (result.step_losses is None) == (alone.step_losses is None)
    if alone.step_losses is not None:
        assert raw(result.step_losses) == raw(alone.step_losses)
    assert set(result.state_dict) == set(alone.state_dict)
    assert all(raw(result.state_dict[key]) == raw(alone.state_dict[key]) for key in alone.state_dict)
    assert result.history == alone.history and result.grad_norms == alone.grad_norms
    assert (result.diverged, result.diverged_epoch) == (alone.diverged, alone.diverged_epoch)


def test_runs_of_several_seeds_in_one_call_equal_each_run_trained_alone(splits, monkeypatch):
    """One call trains the runs of three seeds (two on shared splits, one on splits of its own), their groups
    shared out over two threads: every run is bit for bit that run trained alone with its seed, and `done`
    hands each result over once, in the calling thread."""
    import threading

    from mlp_stand_in import voronoi

    from ex4.train.mlp_engine import Splits

    generator = torch.Generator().manual_seed(5)
    own = Splits.from_arrays({name: voronoi(n, generator) for name, n in (("train", 83), ("val", 30), ("test", 30))},
                             N_CLASSES)
    monkeypatch.setenv("EX4_KERNEL_THREADS", "2")
    per_seed = {0: splits, 1: splits, 7: own}
    specs, seeds, split_of = [], [], []
    for seed, its_splits in per_seed.items():
        runs = [*specs_for({"batch_norm": True}, "adam", rates=(0.01, 0.003)),
                *specs_for({"residual": True}, "sgd", rates=(0.02, 1e6), epochs=3),
                RunSpec("sine", Architecture(2, 5, N_CLASSES, implicit=True), 0.01, 8, 2, record_step_losses=True)]
        for spec in runs:
            specs.append(RunSpec(**{**spec.__dict__, "label": f"{spec.label} seed {seed}"}))
            seeds.append(seed)
            split_of.append(its_splits)
    handed, caller = {}, threading.get_ident()

    def done(index, result):
        assert threading.get_ident() == caller and index not in handed
        handed[index] = result

    together = train_runs(specs, split_of, seeds, engine="kernel", progress=False, done=done)
    assert sorted(handed) == list(range(len(specs))) and all(handed[i] is together[i] for i in handed)
    monkeypatch.setenv("EX4_KERNEL_THREADS", "1")
    for spec, seed, its_splits, result in zip(specs, seeds, split_of, together):
        (alone,) = train_runs([spec], its_splits, seed, engine="kernel", progress=False)
        assert_bitwise_same(result, alone)
    assert together[0].history != together[len(specs) // 3].history  # seeds 0 and 1: other numbers


def test_one_seed_and_splits_per_run_or_for_all():
    with pytest.raises(ValueError, match="one seed and one Splits"):
        train_runs([RunSpec("a", Architecture(2, 4, N_CLASSES), 0.01, 16, 1)], stand_in_splits(), [0, 1],
                   engine="kernel", progress=False)
