"""The textbook training loop of the course skeleton, kept only as the yardstick for `benchmarks/mlp.py`.

A `Dataset` whose `__getitem__` returns one (features, label) pair, a `DataLoader` with default collation,
`loss.item()` and the correct count read back every step, and a DataLoader pass over validation and test
(batch 1024, as the skeleton's loaders) after every epoch; one run at a time, one `nn.Module`.

Two deliberate differences from a student's loop, so that accuracies can be compared run by run with the
ex4 engine: the model starts from `ex4.train.mlp_engine.initial_model(arch, seed)` and the training
DataLoader draws its order from a sampler that yields the same seeded permutation per epoch as the engine
(`torch.randperm(n, generator)`, which is also what `RandomSampler` does), with the same last-batch rule.
Neither changes the loop's cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ex4.train.mlp_engine import RunSpec, batch_sizes, initial_model

EVAL_BATCH_SIZE = 1024


class CitiesDataset(Dataset):
    """(long, lat) -> country; the sine representation, when used, is part of the model (`MLP.features`)."""

    def __init__(self, x, y):
        self.features = torch.as_tensor(x, dtype=torch.float32)
        self.labels = torch.as_tensor(y, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.features[index], self.labels[index]


class SeededBatches(Sampler):
    """Batches of one `torch.randperm` per epoch from a seeded generator (the engine's batch order)."""

    def __init__(self, n: int, batch_size: int, batch_norm: bool, seed: int):
        self.n = n
        self.sizes = batch_sizes(n, batch_size, batch_norm)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator).tolist()
        start = 0
        for size in self.sizes:
            yield order[start:start + size]
            start += size


@dataclass
class ReferenceResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        return {name: values[-1] for name, values in self.history.items()}


def evaluate(model: nn.Module, loader: DataLoader, criterion: nn.Module) -> tuple[float, float]:
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for features, labels in loader:
            outputs = model(features)
            total_loss += criterion(outputs, labels).item() * len(labels)
            correct += (outputs.argmax(dim=1) == labels).sum().item()
            count += len(labels)
    return total_loss / count, correct / count


def train_reference(spec: RunSpec, data: dict, seed: int, epochs: int | None = None) -> ReferenceResult:
    """Train one run the textbook way. `data` maps split -> (x, y); `epochs` overrides spec.epochs (timing)."""
    epochs = spec.epochs if epochs is None else epochs
    datasets = {split: CitiesDataset(x, y) for split, (x, y) in data.items()}
    n_train = len(datasets["train"])
    train_loader = DataLoader(datasets["train"],
                              batch_sampler=SeededBatches(n_train, spec.batch_size, spec.arch.batch_norm, seed))
    val_loader = DataLoader(datasets["val"], batch_size=EVAL_BATCH_SIZE, shuffle=False)
    test_loader = DataLoader(datasets["test"], batch_size=EVAL_BATCH_SIZE, shuffle=False)
    model = initial_model(spec.arch, seed)
    criterion = nn.CrossEntropyLoss()
    if spec.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr)
    result = ReferenceResult(history={name: [] for name in
                                      ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")})
    started = time.perf_counter()
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        model.train()
        loss_sum, correct, batches = 0.0, 0, 0
        for features, labels in train_loader:
            optimizer.zero_grad()
            outputs = model(features)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            correct += (outputs.argmax(dim=1) == labels).sum().item()
            batches += 1
        result.history["train_loss"].append(loss_sum / batches)
        result.history["train_acc"].append(correct / n_train)
        for split, loader in (("val", val_loader), ("test", test_loader)):
            loss_value, accuracy = evaluate(model, loader, criterion)
            result.history[f"{split}_loss"].append(loss_value)
            result.history[f"{split}_acc"].append(accuracy)
        result.epoch_seconds.append(time.perf_counter() - epoch_start)
    result.seconds = time.perf_counter() - started
    return result
