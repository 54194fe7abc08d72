"""In float32, ex4's training path equals a textbook ImageFolder + DataLoader loop bit for bit.

Same decoded pixels (the loader's resize/crop equals torchvision's transforms), same labels (from the folder
word, not ImageFolder's alphabetical index), same initial weights, same batches: so any accuracy difference
between ex4 and the reference in `benchmarks/cnn.py` comes from the faster numerics, not from a changed recipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from ex4.data.faces import class_label, load_faces
from ex4.models.resnet import IMAGENET_MEAN, IMAGENET_STD, resnet18_binary
from ex4.train.cnn import batch_orders, fit_binary
from ex4.train.features import InputSpec, centre_crop, resize_side, to_input

SIZE, SEED, LR, BATCH = 16, 5, 0.01, 4


@pytest.fixture
def noisy_tree(tmp_path: Path, data_isolated_root) -> Path:
    rng = np.random.default_rng(1)
    for split in ("train", "val", "test"):
        for folder in ("fake", "real"):
            for number in range(5):
                path = tmp_path / "faces" / split / folder / f"{number}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)).save(path)
    return tmp_path / "faces"


def textbook_training(root: Path, transform, pretrained: bool) -> dict[str, torch.Tensor]:
    dataset = datasets.ImageFolder(str(root / "train"), transform=transform)
    label_of = {index: class_label(Path(name)) for name, index in dataset.class_to_idx.items()}
    dataset.samples = sorted(((path, label_of[index]) for path, index in dataset.samples),
                             key=lambda sample: (sample[1], Path(sample[0]).relative_to(root).as_posix()))
    model = resnet18_binary(SEED, pretend_pretrained() if pretrained else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for batches in batch_orders(len(dataset), BATCH, 1, SEED):
        for images, targets in DataLoader(dataset, batch_sampler=[batch.tolist() for batch in batches]):
            optimizer.zero_grad()
            nn.BCEWithLogitsLoss()(model(images).reshape(-1), targets.float()).backward()
            optimizer.step()
    return model.state_dict()


def pretend_pretrained() -> dict[str, torch.Tensor]:
    return {name: value for name, value in resnet18_binary(99).state_dict().items() if not name.startswith("fc.")}


def ex4_training(root: Path, pretrained: bool) -> dict[str, torch.Tensor]:
    side = resize_side(SIZE) if pretrained else SIZE
    split = load_faces(root, side).train
    images = centre_crop(split.images, SIZE)
    spec = InputSpec(normalize=pretrained)
    model = resnet18_binary(SEED, pretend_pretrained() if pretrained else None)
    fit_binary(model, lambda rows: to_input(images[rows.numpy()], spec, torch.device("cpu")),
               torch.from_numpy(split.labels), lr=LR, batch_size=BATCH, epochs=1, seed=SEED, device=torch.device("cpu"))
    return model.state_dict()


@pytest.mark.parametrize("pretrained", [False, True], ids=["scratch", "finetune"])
def test_float32_training_equals_the_textbook_loop_bit_for_bit(noisy_tree, pretrained):
    if pretrained:
        transform = transforms.Compose([transforms.Resize(resize_side(SIZE)), transforms.CenterCrop(SIZE),
                                        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    else:
        transform = transforms.Compose([transforms.Resize(SIZE), transforms.CenterCrop(SIZE), transforms.ToTensor()])
    ours, theirs = ex4_training(noisy_tree, pretrained), textbook_training(noisy_tree, transform, pretrained)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)
    assert not torch.equal(ours["fc.weight"], resnet18_binary(SEED).fc.weight)  # it trained
