"""The batched MLP engine against plain PyTorch, and its bookkeeping (batches, divergence, determinism).

Data: the tiny stand-in of `mlp_stand_in` (points labelled by the nearest of a few random centres, i.e.
Voronoi cells), not the Europe set.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from ex4.errors import Ex4Error
from ex4.models.mlp import Architecture, build_mlp
from ex4.train.device import pick_device
from ex4.train.mlp_engine import (BatchedMLP, RunSpec, batch_sizes, initial_model, last_batch_kind,
                                  per_run_cross_entropy, train_runs)
from mlp_stand_in import N_CLASSES, stand_in_splits

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def train_torch(*args, **kwargs):
    """These tests are about the torch engine (bit-identity with the textbook loop); the CPU kernel has its own
    tests in test_mlp_kernel.py."""
    return train_runs(*args, engine="torch", **kwargs)


@pytest.fixture(scope="module")
def splits():
    return stand_in_splits()


def arch(depth=2, width=6, **flags):
    return Architecture(depth=depth, width=width, n_classes=N_CLASSES, **flags)


def plain_training(spec, splits, seed):
    """The textbook loop on one nn.Module: same initial weights, same batches as the engine."""
    model = initial_model(spec.arch, seed)
    optimizer = (torch.optim.Adam if spec.optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=spec.lr)
    generator = torch.Generator().manual_seed(seed)
    x, y = splits.x["train"], splits.y["train"]
    sizes = batch_sizes(len(y), spec.batch_size, spec.arch.batch_norm)
    losses, norms = [], {layer: [] for layer in spec.track_layers}
    for _ in range(spec.epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        for xb, yb in zip(x[order].split(sizes), y[order].split(sizes)):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            for layer in spec.track_layers:
                norms[layer].append(model.hidden[layer].linear.weight.grad.square().sum().item())
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        val_acc = (model(splits.x["val"]).argmax(1) == splits.y["val"]).float().mean().item()
    return model, torch.tensor(losses), val_acc, norms


def assert_same_model(state, model, skip_pre_norm_bias=False):
    reference = model.state_dict()
    assert set(state) == set(reference)
    for key, value in reference.items():
        if skip_pre_norm_bias and (key.endswith("linear.bias") or key.endswith("running_mean")):
            continue  # its gradient is ~0 (batch norm removes it): Adam turns that rounding noise into steps
        torch.testing.assert_close(state[key].to(value.dtype), value, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("flags", [{}, {"batch_norm": True}, {"residual": True}, {"implicit": True},
                                   {"batch_norm": True, "residual": True, "implicit": True}])
def test_batched_runs_equal_plain_pytorch_run_by_run(splits, flags, optimizer):
    lrs = [0.03, 0.005, 0.1] if optimizer == "sgd" else [0.01, 0.002, 0.02]
    specs = [RunSpec(f"r{i}", arch(3, 6, **flags), lr, 16, 2, optimizer, record_step_losses=True)
             for i, lr in enumerate(lrs)]
    batched = train_torch(specs, splits, seed=4, compile_steps=False, progress=False)
    alone = train_torch(specs[1:2], splits, seed=4, compile_steps=False, progress=False)[0]
    for spec, result in zip(specs, batched):
        model, losses, val_acc, _ = plain_training(spec, splits, seed=4)
        torch.testing.assert_close(result.step_losses, losses, rtol=1e-5, atol=1e-5)
        adam_with_norm = optimizer == "adam" and flags.get("batch_norm", False)
        assert_same_model(result.state_dict, model, skip_pre_norm_bias=adam_with_norm)
        if not adam_with_norm:  # (there the drifting pre-norm biases shift eval-mode outputs a little)
            assert result.final["val_acc"] == pytest.approx(val_acc, abs=1e-6)
    torch.testing.assert_close(alone.step_losses, batched[1].step_losses, rtol=1e-5, atol=1e-6)


def test_mixed_runs_in_one_group_equal_plain_pytorch(splits):
    # raw and sine input, plain and residual blocks share one batched model (zero-padded inputs, gated shortcut)
    specs = [RunSpec("raw", arch(3, 5), 0.05, 8, 2, record_step_losses=True),
             RunSpec("sine+res", arch(3, 5, implicit=True, residual=True), 0.02, 8, 2, record_step_losses=True),
             RunSpec("res", arch(3, 5, residual=True), 0.05, 8, 2, record_step_losses=True)]
    results = train_torch(specs, splits, seed=1, compile_steps=False, progress=False)
    for spec, result in zip(specs, results):
        model, losses, _, _ = plain_training(spec, splits, seed=1)
        torch.testing.assert_close(result.step_losses, losses, rtol=1e-5, atol=1e-6)
        assert_same_model(result.state_dict, model)


@pytest.mark.parametrize("flags", [{}, {"batch_norm": True}, {"residual": True, "implicit": True}])
def test_one_batched_step_gives_each_run_its_own_loss_and_gradients(splits, flags):
    models = [initial_model(arch(3, 4, **flags), seed) for seed in (0, 1, 2)]
    batched = BatchedMLP(models, torch.device("cpu"))
    x, y = splits.x["train"][:20], splits.y["train"][:20]
    inputs = torch.stack([torch.cat([torch.sin(x[:, :1] * torch.arange(1, 11) / 10),
                                     torch.sin(x[:, 1:] * torch.arange(1, 11) / 10)], 1)] * 3) \
        if flags.get("implicit") else x
    losses = per_run_cross_entropy(batched.logits(inputs, training=True), y)
    grads = torch.autograd.grad(losses.sum(), batched.params)
    for run, model in enumerate(models):
        model.train()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        assert losses[run].item() == pytest.approx(loss.item(), rel=1e-6)
        expected = [p.grad.t() if p.dim() == 2 else p.grad[None] for p in model.parameters()]
        assert len(expected) == len(grads)
        for got, want in zip(grads, expected):
            torch.testing.assert_close(got[run], want, rtol=1e-5, atol=1e-6)


def test_tracked_gradient_norms_equal_the_plain_loop(splits):
    spec = RunSpec("deep", arch(6, 3), 0.01, 32, 2, track_layers=(0, 3, 5))
    result = train_torch([spec], splits, seed=2, compile_steps=False, progress=False)[0]
    _, _, _, norms = plain_training(spec, splits, seed=2)
    per_epoch = math.ceil(97 / 32)
    for layer in (0, 3, 5):
        expected = [sum(norms[layer][e * per_epoch:(e + 1) * per_epoch]) / per_epoch for e in range(2)]
        assert result.grad_norms[layer] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("n, size, batch_norm, expected", [
    (97, 16, False, [16] * 6 + [1]),
    (97, 16, True, [16] * 5 + [17]),  # a one-row remainder is merged under batch norm
    (96, 16, True, [16] * 6),
    (100, 16, True, [16] * 6 + [4]),
    (5, 16, False, [5]),
    (106_897, 16, True, [16] * 6680 + [17]),  # the course's train set
])
def test_batch_sizes(n, size, batch_norm, expected):
    assert batch_sizes(n, size, batch_norm) == expected
    assert sum(expected) == n


def test_iterations_per_epoch_is_ceil_of_rows_over_batch(splits):
    specs = [RunSpec(f"b{size}", arch(), 0.01, size, 1) for size in (1, 16, 32, 200)]
    results = train_torch(specs, splits, seed=0, compile_steps=False, progress=False)
    assert [r.iterations_per_epoch for r in results] == [97, 7, 4, 1]
    assert [r.last_batch for r in results] == ["none", "partial", "partial", "partial"]


def test_one_sample_last_batch_with_batch_norm_is_merged_not_crashed(splits):
    spec = RunSpec("bn", arch(2, 4, batch_norm=True), 0.05, 16, 2, record_step_losses=True)  # 97 = 6*16 + 1
    result = train_torch([spec], splits, seed=0, compile_steps=False, progress=False)[0]
    assert result.iterations_per_epoch == 6 and result.last_batch == "merged" == last_batch_kind(97, 16, True)
    assert result.step_losses.shape == (12,) and torch.isfinite(result.step_losses).all()
    assert not result.diverged


def test_same_seed_same_numbers_other_seed_other_numbers(splits):
    specs = [RunSpec("a", arch(2, 5, batch_norm=True), 0.05, 16, 3),
             RunSpec("b", arch(2, 5, batch_norm=True), 0.01, 16, 3)]
    first = train_torch(specs, splits, seed=7, compile_steps=False, progress=False)
    again = train_torch(specs, splits, seed=7, compile_steps=False, progress=False)
    other = train_torch(specs, splits, seed=8, compile_steps=False, progress=False)
    for one, two in zip(first, again):
        assert one.history == two.history
        assert all(torch.equal(one.state_dict[k], two.state_dict[k]) for k in one.state_dict)
    assert first[0].history["train_loss"] != other[0].history["train_loss"]


def test_a_diverging_run_is_recorded_and_the_others_carry_on(splits):
    specs = [RunSpec("sane", arch(), 0.01, 16, 4), RunSpec("wild", arch(), 1e30, 16, 4)]
    sane, wild = train_torch(specs, splits, seed=3, compile_steps=False, progress=False)
    assert wild.diverged and wild.diverged_epoch == 1
    assert all(value is None for values in wild.history.values() for value in values)
    assert all(value is None for value in wild.final.values())
    alone = train_torch(specs[:1], splits, seed=3, compile_steps=False, progress=False)[0]
    assert not sane.diverged and sane.diverged_epoch is None
    for name, values in alone.history.items():
        assert sane.history[name] == pytest.approx(values, rel=1e-5)


def test_diverging_alone_stops_early_with_full_length_history(splits):
    spec = RunSpec("wild", arch(), 1e30, 16, 5, track_layers=(1,))
    result = train_torch([spec], splits, seed=3, compile_steps=False, progress=False)[0]
    assert result.diverged_epoch == 1
    assert len(result.history["val_loss"]) == 5 and len(result.grad_norms[1]) == 5


def test_runs_come_back_in_the_order_given_across_groups(splits):
    specs = [RunSpec("b16", arch(), 0.01, 16, 1), RunSpec("b8", arch(), 0.01, 8, 1),
             RunSpec("b16-2", arch(), 0.02, 16, 1)]
    results = train_torch(specs, splits, seed=0, compile_steps=False, progress=False)
    assert [r.spec.label for r in results] == ["b16", "b8", "b16-2"]


def test_bad_specs_are_refused(splits):
    with pytest.raises(ValueError, match="batch norm"):
        train_torch([RunSpec("x", arch(batch_norm=True), 0.1, 1, 1)], splits, seed=0, progress=False)
    with pytest.raises(ValueError, match="distinct"):
        train_torch([RunSpec("x", arch(), 0.1, 4, 1)] * 2, splits, seed=0, progress=False)
    with pytest.raises(ValueError, match="tracked layer"):
        train_torch([RunSpec("x", arch(2), 0.1, 4, 1, track_layers=(2,))], splits, seed=0, progress=False)


def test_model_depth_counts_hidden_layers_like_the_course():
    model = build_mlp(depth=6, width=16, batch_norm=True, n_classes=30)
    layers = list(model.modules())
    assert sum(isinstance(m, torch.nn.Linear) for m in layers) == 7
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in layers) == 6
    assert model(torch.zeros(4, 2)).shape == (4, 30)
    assert build_mlp(2, 4, implicit=True, n_classes=3).hidden[0].linear.in_features == 20


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(Ex4Error, match="device"):
            pick_device("cuda")


@pytest.mark.slow
def test_compiled_steps_equal_eager_steps(splits):
    specs = [RunSpec("a", arch(2, 5, batch_norm=True), 0.05, 16, 2, record_step_losses=True),
             RunSpec("b", arch(2, 5, batch_norm=True, residual=True), 0.01, 16, 2, record_step_losses=True)]
    eager = train_torch(specs, splits, seed=5, compile_steps=False, progress=False)
    compiled = train_torch(specs, splits, seed=5, compile_steps=True, progress=False)
    for one, two in zip(eager, compiled):
        torch.testing.assert_close(one.step_losses, two.step_losses, rtol=1e-5, atol=1e-5)
        assert one.iterations_per_epoch == two.iterations_per_epoch


def test_width_one_layers_train_alone_and_batched(splits):
    specs = [RunSpec("a", arch(3, 1), 0.05, 16, 1, record_step_losses=True),
             RunSpec("b", arch(3, 1), 0.01, 16, 1, record_step_losses=True)]
    for group in (specs[:1], specs):
        for spec, result in zip(group, train_torch(group, splits, seed=0, compile_steps=False, progress=False)):
            _, losses, _, _ = plain_training(spec, splits, seed=0)
            torch.testing.assert_close(result.step_losses, losses, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flags", [{}, {"batch_norm": True}, {"residual": True, "implicit": True}])
def test_a_single_run_is_bit_identical_to_the_textbook_loop(splits, flags):
    spec = RunSpec("one", arch(3, 6, **flags), 0.05, 16, 2, record_step_losses=True)
    result = train_torch([spec], splits, seed=6, compile_steps=False, progress=False)[0]
    model, losses, _, _ = plain_training(spec, splits, seed=6)
    assert torch.equal(result.step_losses, losses)
    assert all(torch.equal(result.state_dict[key], value) for key, value in model.state_dict().items())
