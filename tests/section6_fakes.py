"""Small hand-made Section 6 results, shaped like `ex4.experiments.section6`'s, for analysis and plot tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def fake_run(label: str, history: dict[str, list] | None = None, epochs: int = 3, lr: float = 1e-3,
             batch_size: int = 256, depth: int = 6, width: int = 16, n_classes: int = 3, batch_norm: bool = False,
             residual: bool = False, implicit: bool = False, diverged_epoch: int | None = None,
             **extra: Any) -> dict[str, Any]:
    """A run entry; metrics not given are flat (loss 2.0, accuracy 0.3); after `diverged_epoch` all are None."""
    history = dict(history or {})
    for metric in METRICS:
        history.setdefault(metric, [2.0 if metric.endswith("loss") else 0.3] * epochs)
        if diverged_epoch is not None:
            history[metric] = [None if epoch >= diverged_epoch else value
                               for epoch, value in enumerate(history[metric], start=1)]
    arch = {"depth": depth, "width": width, "n_classes": n_classes, "batch_norm": batch_norm, "residual": residual,
            "implicit": implicit}
    return {
        "label": label,
        "params": {"lr": lr, "batch_size": batch_size, "epochs": len(history["val_loss"]), "optimizer": "sgd",
                   **arch},
        "arch": arch,
        "final": {metric: values[-1] for metric, values in history.items()},
        "history": history,
        "diverged": diverged_epoch is not None,
        "diverged_epoch": diverged_epoch,
        "iterations_per_epoch": extra.pop("iterations_per_epoch", 4),
        "last_batch": extra.pop("last_batch", "partial"),
        **extra,
    }


def fake_result(experiment: str, runs: list[dict[str, Any]], n_train: int = 100, **extra: Any) -> dict[str, Any]:
    return {"experiment": experiment, "n_train": n_train, "n_classes": 3, "class_names": ["A", "B", "C"],
            "seed": 0, "runs": runs, **extra}


def fake_shapes_result() -> dict[str, Any]:
    """Four shapes: accuracy rises with depth (by less per layer) and with width; 1x16 worst, 6x32 best."""
    specs = [(1, 16, 0.40, 137, 30), (2, 16, 0.60, 18769, 200), (6, 16, 0.70, 6611856250609, 900),
             (6, 32, 0.75, 21_900_000_000_000_000, 1500)]
    runs = []
    for depth, width, acc, bound, counted in specs:
        history = {"train_acc": [acc - 0.1, acc], "val_acc": [acc - 0.1, acc], "test_acc": [acc - 0.1, acc - 0.01],
                   "train_loss": [2.0, 1.0], "val_loss": [2.0, 1.1], "test_loss": [2.0, 1.1]}
        runs.append(fake_run(f"{depth}x{width}", history, depth=depth, width=width, batch_norm=True,
                             region_bound=bound, regions_counted=counted))
    return fake_result("mlp-shapes", runs, best="6x32", worst="1x16", depth_series=["1x16", "2x16", "6x16"],
                       width_series=["6x16", "6x32"], grid_extent=[-10.0, 40.0, 35.0, 70.0], grid=8)


def fake_class_grids(labels: list[str], grid: int = 8, n_classes: int = 3) -> dict[str, torch.Tensor]:
    rows = torch.arange(grid).reshape(grid, 1).expand(grid, grid)
    return {label: ((rows + i) % n_classes).to(torch.uint8) for i, label in enumerate(labels)}


def fake_test_points(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(-10, 40, n), rng.uniform(35, 70, n)]).astype(np.float32)
    return x, rng.integers(0, 3, n)


def fake_gradients_result(plain: dict[str, list], residual: dict[str, list],
                          layers: tuple[int, ...] = (0, 5, 9)) -> dict[str, Any]:
    runs = [fake_run("plain", epochs=2, depth=10, width=4, grad_norms=plain),
            fake_run("residual", epochs=2, depth=10, width=4, residual=True, grad_norms=residual)]
    return fake_result("mlp-gradients", runs, layers=list(layers))
