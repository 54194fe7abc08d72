"""The textbook Section 7 loop that `benchmarks/cnn.py` times ex4 against.

What a course notebook does: torchvision `ImageFolder` datasets whose transforms decode and resize every image
on every pass, a `DataLoader` per split, and every (baseline, learning rate) run end to end through the whole
network, the frozen-backbone linear probe included; the scikit-learn probe extracts its own features; float32,
default (NCHW) memory layout, evaluation under `torch.no_grad()` in batches of the training size.

To make its accuracies comparable with ex4's, it starts every run from the same weights (ex4's
`resnet18_binary(seed, state)`), replays the same batches (`batch_orders`), orders each split like ex4's loader
(real before fake, by path) and freezes the probe's backbone in eval mode, as ex4 does. Labels come from the
folder word (real=0, fake=1), not from ImageFolder's alphabetical class index, which would swap them.
"""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from ex4.experiments.section7 import run_label
from ex4.data.faces import class_label
from ex4.models.resnet import IMAGENET_MEAN, IMAGENET_STD, resnet18_binary
from ex4.train.cnn import batch_orders

XGB_RESIZE = 224
TORCH_BASELINES = ("scratch", "linear_probe", "finetune")


def image_folder(root: Path, split: str, transform) -> datasets.ImageFolder:
    """ImageFolder with labels from the folder word and ex4's sample order (real first, then by path)."""
    dataset = datasets.ImageFolder(str(root / split), transform=transform)
    label_of = {index: class_label(Path(name)) for name, index in dataset.class_to_idx.items()}
    dataset.samples = sorted(((path, label_of[index]) for path, index in dataset.samples),
                             key=lambda sample: (sample[1], Path(sample[0]).relative_to(root).as_posix()))
    dataset.targets = [label for _, label in dataset.samples]
    dataset.imgs = dataset.samples
    return dataset


def pretrained_transform(size: int):
    return transforms.Compose([transforms.Resize(int(round(size * 256 / 224))), transforms.CenterCrop(size),
                               transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def scratch_transform(size: int):
    # CenterCrop is a no-op for square images (the course's and the stand-in's); it keeps others batchable
    return transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])


def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, np.ndarray]:
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for images, targets in loader:
            logits.append(model(images).reshape(-1))
            labels.append(targets)
    logits, labels = torch.cat(logits), torch.cat(labels)
    accuracy = float(((logits > 0).long() == labels).float().mean())
    return accuracy, logits.numpy()


def train(model: nn.Module, dataset, lr: float, batch_size: int, epochs: int, seed: int,
          parameters=None, train_mode: bool = True) -> None:
    optimizer = torch.optim.Adam(parameters if parameters is not None else model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    # ex4's rule: a one-sample last batch joins the previous one when batch norm trains (undefined otherwise)
    for batches in batch_orders(len(dataset), batch_size, epochs, seed, merge_single=train_mode):
        loader = DataLoader(dataset, batch_sampler=[batch.tolist() for batch in batches])
        model.train(train_mode)
        for images, targets in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images).reshape(-1), targets.float())
            loss.backward()
            optimizer.step()


def run_reference(root: Path, values: dict[str, Any], backbone_state: dict[str, torch.Tensor] | None,
                  learning_rates: list[float] | None = None, baselines: list[str] | None = None,
                  log=print) -> dict[str, dict[str, Any]]:
    """Every requested run, textbook style: label -> {baseline, lr, val_acc, test_acc, wall_time}."""
    torch.set_num_threads(os.cpu_count() or 1)
    seed, size = values["seed"], values["cnn_image_size"]
    batch_size, epochs = values["cnn_batch_size"], values["cnn_epochs"]
    learning_rates = learning_rates or values["cnn_learning_rates"]
    results: dict[str, dict[str, Any]] = {}

    def record(baseline: str, lr: float | None, val_acc: float, test_acc: float, started: float) -> None:
        label = run_label(baseline, lr)
        results[label] = {"baseline": baseline, "lr": lr, "val_acc": val_acc, "test_acc": test_acc,
                          "wall_time": time.perf_counter() - started}
        log(f"  reference {label:<24} test {test_acc:.4f}  {results[label]['wall_time']:7.1f} s")

    for baseline in baselines or values["cnn_baselines"]:
        if baseline == "xgboost":
            from xgboost import XGBClassifier

            started = time.perf_counter()
            crop = values["cnn_xgb_crop"]
            transform = transforms.Compose([transforms.Resize(XGB_RESIZE), transforms.CenterCrop(crop),
                                            transforms.ToTensor()])
            arrays = {}
            for split in ("train", "val", "test"):
                loader = DataLoader(image_folder(root, split, transform), batch_size=batch_size)
                pixels, labels = zip(*((images.flatten(1), targets) for images, targets in loader))
                arrays[split] = (torch.cat(pixels).numpy(), torch.cat(labels).numpy())
            model = XGBClassifier(random_state=seed, n_jobs=os.cpu_count() or 1).fit(*arrays["train"])
            val_acc, test_acc = (float((model.predict(arrays[split][0]) == arrays[split][1]).mean())
                                 for split in ("val", "test"))
            record(baseline, None, val_acc, test_acc, started)
        elif baseline in ("scratch", "finetune", "linear_probe"):
            pretrained = baseline != "scratch"
            transform = pretrained_transform(size) if pretrained else scratch_transform(size)
            data = {split: image_folder(root, split, transform) for split in ("train", "val", "test")}
            for lr in learning_rates:
                started = time.perf_counter()
                model = resnet18_binary(seed, backbone_state if pretrained else None)
                if baseline == "linear_probe":
                    for parameter in model.parameters():
                        parameter.requires_grad_(False)
                    for parameter in model.fc.parameters():
                        parameter.requires_grad_(True)
                    train(model, data["train"], lr, batch_size, epochs, seed, model.fc.parameters(), train_mode=False)
                else:
                    train(model, data["train"], lr, batch_size, epochs, seed)
                val_acc, _ = evaluate(model, DataLoader(data["val"], batch_size=batch_size))
                test_acc, _ = evaluate(model, DataLoader(data["test"], batch_size=batch_size))
                record(baseline, lr, val_acc, test_acc, started)
        elif baseline == "sklearn_probe":
            from sklearn.exceptions import ConvergenceWarning
            from sklearn.linear_model import LogisticRegression

            started = time.perf_counter()
            model = resnet18_binary(seed, backbone_state)
            model.fc = nn.Identity()
            model.eval()
            features = {}
            for split in ("train", "val", "test"):
                loader = DataLoader(image_folder(root, split, pretrained_transform(size)), batch_size=batch_size)
                with torch.no_grad():
                    parts, labels = zip(*((model(images), targets) for images, targets in loader))
                features[split] = (torch.cat(parts).numpy(), torch.cat(labels).numpy())
            with warnings.catch_warnings():  # default max_iter stops early here, as in the course; ex4 records it
                warnings.simplefilter("ignore", ConvergenceWarning)
                probe = LogisticRegression().fit(*features["train"])
            val_acc, test_acc = (float(probe.score(*features[split])) for split in ("val", "test"))
            record(baseline, None, val_acc, test_acc, started)
    return results



# --- ex4 against this reference (benchmarks/cnn.py --textbook) ----------------------------------------------


def compare_with_textbook(values: dict, scratch: Path, reference_lrs: list[float] | None = None) -> None:
    """ex4 (cold store in `scratch`) against `run_reference` on the same data and backbone; prints the speed-up."""
    from ex4 import experiments
    from ex4.experiments.section7 import resolve_image_size
    from ex4.store import Store

    data_dir = Path(values["faces_dir"])
    if values["cnn_train_subset"] is not None:
        raise SystemExit("the reference trains on the whole training split; set cnn_train_subset=null")

    print(f"data: {data_dir}", flush=True)
    print(f"settings: image size {values['cnn_image_size']}, lrs {values['cnn_learning_rates']}, batch "
          f"{values['cnn_batch_size']}, epochs {values['cnn_epochs']}, baselines {values['cnn_baselines']}, "
          f"{os.cpu_count()} cores, torch threads {__import__('torch').get_num_threads()}", flush=True)

    started = time.perf_counter()
    outcome = experiments.run("cnn", values, store=Store(scratch / "store"))
    ex4_time = time.perf_counter() - started
    ex4_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = outcome.result
    timings = result["timings"]
    surrogate_time = result.get("backbone_info", {}).get("wall_time", 0.0) if result["backbone"].startswith(
        "surrogate") else 0.0
    ex4_by_baseline: dict[str, float] = defaultdict(float)
    for run in result["runs"]:
        ex4_by_baseline[run["baseline"]] += run["wall_time"]
    print(f"ex4: {ex4_time:.1f} s total ({result['numerics']}, backbone {result['backbone']}); "
          f"decode {timings.get('decode', 0):.1f} s, backbone {timings.get('backbone', 0):.1f} s "
          f"(surrogate pretraining {surrogate_time:.1f} s), features {timings.get('features', 0):.1f} s; "
          f"peak RSS {ex4_rss:.2f} GiB", flush=True)

    backbone_state = None
    if result["backbone"] != "none":
        backbone_state = _backbone_state(result, scratch / "store")
    started = time.perf_counter()
    sized = {**values, "cnn_image_size": resolve_image_size(values["cnn_image_size"], data_dir)[0]}
    reference = run_reference(data_dir, sized, backbone_state, reference_lrs)
    reference_measured = time.perf_counter() - started
    lr_scale = len(values["cnn_learning_rates"]) / len(reference_lrs) if reference_lrs else 1.0
    reference_by_baseline: dict[str, float] = defaultdict(float)
    for run in reference.values():
        scale = lr_scale if run["baseline"] in TORCH_BASELINES else 1.0
        reference_by_baseline[run["baseline"]] += run["wall_time"] * scale
    reference_time = sum(reference_by_baseline.values()) + surrogate_time
    reference_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    print(f"\n{'baseline':<14} {'reference s':>12} {'ex4 s':>8} {'speedup':>8}")
    shared = timings.get("features", 0.0)
    for baseline in values["cnn_baselines"]:
        ours = ex4_by_baseline[baseline]
        note = ""
        if baseline in ("linear_probe", "sklearn_probe"):
            note = f"  (+ shared feature extraction {shared:.1f} s)"
        ratio = reference_by_baseline[baseline] / max(ours, 1e-9)
        print(f"{baseline:<14} {reference_by_baseline[baseline]:12.1f} {ours:8.1f} {ratio:7.1f}x{note}")
    print(f"{'surrogate':<14} {surrogate_time:12.1f} {surrogate_time:8.1f}  (same pretraining charged to both)")
    if lr_scale != 1.0:
        print(f"reference ran lrs {reference_lrs} only ({reference_measured:.1f} s measured); torch "
              f"baselines scaled x{lr_scale:g}")
    print(f"peak RSS: ex4 phase {ex4_rss:.2f} GiB, whole process {reference_rss:.2f} GiB")

    deltas = []
    print(f"\n{'run':<26} {'reference':>9} {'ex4':>7} {'delta pp':>9}")
    ours_by_label = {run["label"]: run["final"]["test_acc"] for run in result["runs"]}
    for label, run in reference.items():
        if label in ours_by_label:
            delta = 100 * (ours_by_label[label] - run["test_acc"])
            deltas.append(abs(delta))
            print(f"{label:<26} {run['test_acc']:9.4f} {ours_by_label[label]:7.4f} {delta:+9.2f}")
    max_delta = max(deltas, default=float("nan"))
    print(f"section7 speedup: {reference_time / ex4_time:.1f}x (reference {reference_time:.0f} s, "
          f"ex4 {ex4_time:.0f} s), max |delta test acc| {max_delta:.2f} pp")


def _backbone_state(result: dict, store_dir: Path):
    """The backbone ex4 used: the surrogate from its store entry, or the ImageNet/.pth file."""
    from ex4.models.resnet import read_state_file
    from ex4.store import Store

    info = result["backbone_info"]
    if "store_key" in info:
        return Store(store_dir).load(info["store_key"]).tensors["backbone"]
    return read_state_file(info["file"])


