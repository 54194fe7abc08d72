"""The fast linear probe (a head trained on cached features) equals the textbook one (trained through the net)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import RandomSampler

from ex4.models.resnet import frozen_backbone, make_head, resnet18_binary
from ex4.train.cnn import batch_orders, binary_metrics, fit_binary
from ex4.train.features import InputSpec, centre_crop, run_inference, to_input

SEED = 3
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 24, 24, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 8, dtype=np.int64)
    return images, labels


@pytest.fixture(scope="module")
def pretrained_state() -> dict[str, torch.Tensor]:
    """Stands for pretrained weights: a ResNet18 with non-trivial BatchNorm statistics."""
    model = resnet18_binary(seed=99)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return {name: value for name, value in model.state_dict().items() if not name.startswith("fc.")}


def probe_through_network(state, images, labels, train_mode: bool, lr: float = 0.01):
    """The textbook probe: whole network forward on every batch, only `fc` trains."""
    model = resnet18_binary(SEED, state)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in model.fc.parameters():
        parameter.requires_grad_(True)
    spec = InputSpec(normalize=True)
    losses = fit_binary(model, lambda rows: to_input(images[rows.numpy()], spec, CPU), torch.from_numpy(labels),
                        lr=lr, batch_size=8, epochs=2, seed=SEED, device=CPU,
                        parameters=model.fc.parameters(), train_mode=train_mode)
    return model.fc, losses


def probe_on_features(state, images, labels, lr: float = 0.01):
    features = run_inference(frozen_backbone(resnet18_binary(SEED, state)), images, InputSpec(normalize=True), CPU)
    head = make_head(SEED)
    losses = fit_binary(head, lambda rows: features[rows], torch.from_numpy(labels), lr=lr, batch_size=8,
                        epochs=2, seed=SEED, device=CPU)
    return head, losses


def test_probe_on_cached_features_equals_probe_through_frozen_backbone(tiny_images, pretrained_state):
    images, labels = tiny_images
    through, through_losses = probe_through_network(pretrained_state, images, labels, train_mode=False)
    cached, cached_losses = probe_on_features(pretrained_state, images, labels)
    assert torch.allclose(cached.weight, through.weight, atol=1e-5, rtol=1e-4)
    assert torch.allclose(cached.bias, through.bias, atol=1e-5, rtol=1e-4)
    assert np.allclose(cached_losses, through_losses, atol=1e-5)
    assert not torch.equal(cached.weight, make_head(SEED).weight)  # it did train


def test_batchnorm_in_train_mode_would_break_the_equivalence(tiny_images, pretrained_state):
    """Why the frozen backbone must be in eval mode: batch statistics make features depend on the batch."""
    images, labels = tiny_images
    through, _ = probe_through_network(pretrained_state, images, labels, train_mode=True)
    cached, _ = probe_on_features(pretrained_state, images, labels)
    assert not torch.allclose(cached.weight, through.weight, atol=1e-5, rtol=1e-4)


def test_features_do_not_depend_on_batch_size(tiny_images, pretrained_state):
    images, _ = tiny_images
    backbone = frozen_backbone(resnet18_binary(SEED, pretrained_state))
    whole = run_inference(backbone, images, InputSpec(normalize=True), CPU, batch_size=16)
    pieces = run_inference(backbone, images, InputSpec(normalize=True), CPU, batch_size=3)
    assert whole.shape == (16, 512) and torch.allclose(whole, pieces, atol=1e-5)


def test_batch_order_is_a_seeded_permutation_per_epoch():
    orders = batch_orders(10, 4, epochs=2, seed=7)
    sampler = RandomSampler(range(10), generator=torch.Generator().manual_seed(7))
    assert torch.cat(orders[0]).tolist() == list(iter(sampler))  # what a seeded DataLoader draws first
    assert sorted(torch.cat(orders[1]).tolist()) == list(range(10)) and not torch.equal(*map(torch.cat, orders))
    assert [len(batch) for batch in orders[0]] == [4, 4, 2]
    assert all(torch.equal(a, b) for a, b in zip(orders[1], batch_orders(10, 4, epochs=2, seed=7)[1]))


def test_inputs_match_torchvision_to_tensor_and_normalize(tiny_images):
    from torchvision.transforms import functional as F

    images, _ = tiny_images
    ours = to_input(images[:2], InputSpec(normalize=True), CPU)
    theirs = torch.stack([F.normalize(F.to_tensor(image), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
                          for image in images[:2]])
    assert torch.equal(ours.contiguous(), theirs)
    plain = to_input(images[:2], InputSpec(normalize=False), CPU)
    assert torch.equal(plain.contiguous(), torch.stack([F.to_tensor(image) for image in images[:2]]))


def test_centre_crop_rounds_like_torchvision():
    from torchvision.transforms import functional as F

    images = np.arange(2 * 9 * 9 * 3, dtype=np.uint8).reshape(2, 9, 9, 3)
    ours = centre_crop(images, 4)
    theirs = F.center_crop(torch.from_numpy(images).permute(0, 3, 1, 2), [4, 4]).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(ours, theirs)


def test_binary_metrics_counts_and_diverged_runs():
    metrics = binary_metrics(torch.tensor([2.0, -1.0, 0.5, -3.0]), torch.tensor([1, 1, 0, 0]))
    assert metrics["confusion"] == [[1, 1], [1, 1]] and metrics["acc"] == 0.5 and not metrics["diverged"]
    nan = binary_metrics(torch.tensor([float("nan"), 1.0]), torch.tensor([0, 1]))
    assert nan["diverged"] and nan["loss"] is None and nan["acc"] == 1.0  # NaN counts as predicting real
