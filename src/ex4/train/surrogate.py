"""A stand-in for ImageNet pretraining: ResNet18 trained by ex4 itself on 10-class digit recognition.

No ImageNet weights can be downloaded here, yet three baselines need a pretrained backbone. The surrogate
is the honest substitute: a ResNet18 pretrained on a *source task* (scikit-learn's 8x8 handwritten digits,
rendered as coloured ink on coloured paper) that shares no image with the target's validation and test
splits. When the target is the bundled stand-in, whose images are built from the same digits, every digit
used in its val or test split is excluded (listed in its manifest's `source_indices`); for any other folder
all 1,797 digits are disjoint from it by construction.

Deterministic for a given seed, exclusion list and input size; the caller caches the weights in the store.
"""

from __future__ import annotations

import functools
import time
from typing import Iterable

import numpy as np
import torch

from ex4.models.resnet import backbone_state, resnet18_classifier
from ex4.train.cnn import batch_orders
from ex4.train.features import EXACT, Batches, InputSpec, Numerics, centre_crop, progress, run_inference

SOURCE = "sklearn-digits (10-class digit recognition)"
EPOCHS = 4
LEARNING_RATE = 1e-3
BATCH_SIZE = 32
HELD_OUT_SHARE = 0.1  # of the allowed digits, to report the source-task accuracy
PAPER_RANGE = (150, 256)  # random light paper colour per image (per channel)
INK_RANGE = (0, 110)  # random dark ink colour per image


@functools.lru_cache(maxsize=1)
def load_digits():
    """scikit-learn's 1,797 8x8 digits (shipped with scikit-learn, no download)."""
    from sklearn.datasets import load_digits as sklearn_digits

    return sklearn_digits()


def source_digits(exclude: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images float [n, 8, 8] in 0..16, classes int64 [n], original indices) of the digits not excluded."""
    digits = load_digits()
    excluded = set(int(index) for index in exclude)
    keep = np.array([index for index in range(len(digits.images)) if index not in excluded], dtype=np.int64)
    return digits.images[keep].astype(np.float32), digits.target[keep].astype(np.int64), keep


def render_digits(digits: np.ndarray, side: int, crop: int, seed: int) -> np.ndarray:
    """8x8 digits -> uint8 [n, crop, crop, 3]: bicubic upscaling to side x side, random colours, centre crop."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty((len(digits), side, side, 3), dtype=np.uint8)
    for index, digit in enumerate(digits):
        ink = Image.fromarray(digit / 16.0).resize((side, side), Image.Resampling.BICUBIC)
        ink = np.clip(np.asarray(ink, dtype=np.float32), 0.0, 1.0)[..., None]
        paper = rng.uniform(*PAPER_RANGE, size=3).astype(np.float32)
        pen = rng.uniform(*INK_RANGE, size=3).astype(np.float32)
        out[index] = np.clip(np.rint(paper * (1.0 - ink) + pen * ink), 0, 255).astype(np.uint8)
    return centre_crop(out, crop)


def pretrain_surrogate(exclude: Iterable[int], side: int, crop: int, seed: int, device: torch.device,
                       how: Numerics = EXACT, epochs: int | None = None
                       ) -> tuple[dict[str, torch.Tensor], dict]:
    """Train ResNet18 on the allowed digits; returns its backbone state dict and a short report.

    Inputs go through the same pipeline as the target's pretrained baselines (resize to `side`, centre crop
    `crop`, ImageNet normalisation), so the learned filters see strokes at the scale they will meet later.
    """
    started = time.perf_counter()
    epochs = EPOCHS if epochs is None else epochs
    images, classes, kept = source_digits(exclude)
    rendered = render_digits(images, side, crop, seed)
    order = np.random.default_rng(seed).permutation(len(kept))
    held = np.sort(order[: int(round(HELD_OUT_SHARE * len(kept)))])
    train = np.sort(order[len(held):])
    spec = InputSpec(normalize=True)
    model = resnet18_classifier(seed, classes=10).to(device, memory_format=how.memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scaler = torch.amp.GradScaler(device.type, enabled=how.autocast == torch.float16)
    loss_fn = torch.nn.CrossEntropyLoss()
    targets = torch.from_numpy(classes[train]).to(device)
    inputs = Batches(rendered[train], spec, device, how.channels_last)
    model.train()
    for epoch, batches in enumerate(batch_orders(len(train), BATCH_SIZE, epochs, seed, merge_single=True)):
        for indices in progress(batches, len(batches), f"surrogate pretraining (epoch {epoch + 1}/{epochs})"):
            optimizer.zero_grad(set_to_none=True)
            batch = inputs(indices)
            with how.context(device):
                logits = model(batch)
            scaler.scale(loss_fn(logits.float(), targets[indices.to(device)])).backward()
            scaler.step(optimizer)
            scaler.update()
    predicted = run_inference(model, rendered[held], spec, device, how, desc="surrogate held-out").argmax(1)
    accuracy = float((predicted.numpy() == classes[held]).mean()) if len(held) else None
    info = {
        "source": SOURCE,
        "digits_used": int(len(kept)),
        "digits_excluded": int(len(load_digits().images) - len(kept)),
        "train_images": int(len(train)),
        "held_out_images": int(len(held)),
        "held_out_accuracy": accuracy,
        "epochs": epochs,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "input": {"resize": side, "crop": crop, "normalize": "imagenet"},
        "numerics": how.name,
        "wall_time": time.perf_counter() - started,
    }
    return backbone_state(model), info
