"""Training of the one-logit classifiers (Adam + BCEWithLogitsLoss) and their binary metrics.

One loop serves every torch baseline. What differs is what `inputs(indices)` returns and which parameters
train: images through a whole ResNet18 (scratch, finetune), images through a frozen eval-mode backbone into
a linear head, or cached backbone features straight into that head (the fast linear probe). Batch order comes
from `batch_orders(n, batch_size, epochs, seed)`, one `randperm` per epoch from a seeded generator (the
first epoch is the order `RandomSampler(generator=torch.Generator().manual_seed(seed))` gives), so a textbook
DataLoader loop handed these batches replays the run exactly. A one-sample last batch is merged into the
previous one when the model trains batch norm.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ex4.errors import Ex4Error
from ex4.train.features import EXACT, Numerics, progress


def batch_orders(n: int, batch_size: int, epochs: int, seed: int, merge_single: bool = False
                 ) -> list[list[torch.Tensor]]:
    """Index batches of every epoch: one `randperm(n)` per epoch from a generator seeded with `seed`.

    With `merge_single` (models with batch norm in training mode), a last batch holding a single sample is
    merged into the previous batch: batch norm of one sample is undefined (PyTorch raises "Expected more than
    1 value per channel"). Section 6 follows the same rule.
    """
    generator = torch.Generator().manual_seed(seed)
    orders = []
    for _ in range(epochs):
        batches = list(torch.randperm(n, generator=generator).split(batch_size))
        if merge_single and len(batches) > 1 and len(batches[-1]) == 1:
            batches[-2:] = [torch.cat(batches[-2:])]
        orders.append(batches)
    return orders


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


def fit_binary(model: nn.Module, inputs: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor, *,
               lr: float, batch_size: int, epochs: int, seed: int, device: torch.device,
               parameters: Iterable[nn.Parameter] | None = None, train_mode: bool = True,
               how: Numerics = EXACT, desc: str = "training") -> list[float | None]:
    """Adam on BCEWithLogitsLoss over shuffled mini-batches; returns the mean training loss of each epoch.

    `inputs(indices)` gives the batch on `device` (in `how`'s layout); `parameters` (default: all of `model`'s)
    are the ones that train; `train_mode=False` keeps the model in eval mode (a frozen backbone's BatchNorm
    statistics stay put).
    """
    model.to(device, memory_format=how.memory_format)
    model.train(train_mode)
    batch_norm = train_mode and has_batch_norm(model)
    if batch_norm and len(labels) < 2:
        raise Ex4Error(f"{desc}: {len(labels)} training image(s); batch norm needs at least 2")
    trainable = [parameter for parameter in (model.parameters() if parameters is None else parameters)
                 if parameter.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=how.autocast == torch.float16)  # fp16 needs loss scaling
    loss_fn = nn.BCEWithLogitsLoss()
    targets = labels.to(device=device, dtype=torch.float32)
    epoch_losses = []
    orders = batch_orders(len(labels), batch_size, epochs, seed, merge_single=batch_norm)
    for epoch, batches in enumerate(orders):
        total = torch.zeros((), device=device)
        for indices in progress(batches, len(batches), f"{desc} (epoch {epoch + 1}/{epochs})"):
            optimizer.zero_grad(set_to_none=True)
            with how.context(device):
                logits = model(inputs(indices)).reshape(-1)
            loss = loss_fn(logits.float(), targets[indices.to(device)])
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += loss.detach() * len(indices)
        mean = float(total) / len(labels)
        epoch_losses.append(mean if math.isfinite(mean) else None)  # None: diverged (keeps the JSON standard)
    model.eval()
    return epoch_losses


def binary_metrics(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> dict:
    """Accuracy, mean BCE loss and confusion counts [[tn, fp], [fn, tp]] from logits (fake = positive class).

    A logit > 0 (probability > 0.5) predicts fake. Non-finite logits (a diverged run) count as predicting
    real and make the loss null rather than NaN, so the run still ranks and the JSON stays standard.
    """
    logits = torch.as_tensor(logits, dtype=torch.float32).reshape(-1)
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    finite = torch.isfinite(logits)
    predicted = (torch.where(finite, logits, torch.zeros_like(logits)) > 0).long()
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.float()).item() if len(labels) else math.nan
    confusion = [[int(((labels == truth) & (predicted == guess)).sum()) for guess in (0, 1)] for truth in (0, 1)]
    return {
        "acc": float((predicted == labels).float().mean()) if len(labels) else math.nan,
        "loss": loss if math.isfinite(loss) else None,
        "confusion": confusion,
        "diverged": bool((~finite).any()),
    }


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """sigmoid(logits) as float32; NaN logits give NaN probabilities (shown as such, never as a guess)."""
    return torch.sigmoid(logits.float().reshape(-1))
