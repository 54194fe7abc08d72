"""Section 7: five ways to tell real from fake images, each torch baseline at every learning rate.

Experiment `cnn` runs XGBoost on pixels, ResNet18 from scratch, a linear probe and a scikit-learn logistic
regression on a frozen pretrained backbone, and a fine-tuned ResNet18, and stores per-run metrics and
per-image validation and test probabilities. Rankings, summaries and the images of the mistakes figure are
computed from them by `ex4.analysis` when a chapter asks, so they are not part of the store key: changing how
runs are ranked never retrains a network.

What makes it fast without changing the numbers:
- images are decoded once per size (the loader's cache) and turned into tensors batch by batch;
- a frozen backbone's features are computed once per (backbone, input size, split) and cached in the store
  (`cnn-features`); the linear probe at every learning rate and the scikit-learn probe train on them;
  without augmentation that is exactly training the head through the eval-mode backbone;
- the surrogate backbone (when no ImageNet weights exist) is pretrained once and cached (`cnn-surrogate`);
- inference under `torch.inference_mode()` in large batches;
- channels_last layout, with mixed precision where the hardware has it natively (bf16 on CPUs whose flags
  list AVX512_BF16 or AMX-BF16, bf16/fp16 on CUDA) and float32 elsewhere; `cnn_precision: float32` instead
  reproduces a textbook float32 NCHW loop bit for bit (same init, same batches; see benchmarks/reference_cnn.py);
- `cnn_image_size: auto`: the course's 224 for a user's images, the stand-in's native 64 for the bundled set
  (224 would upsample its 64 x 64 images, 12x the arithmetic for no information); the surrogate backbone is
  pretrained at the size it is then used at;
- on CUDA, the training split sits on the device as uint8 and evaluation batches go through pinned memory.

`device`, `cnn_precision` and `cnn_image_size` enter the store key as resolved on this machine and data, and the
result's `setup` records each resolved value with the reason.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ex4.errors import Ex4Error
from ex4.experiments import Context, Experiment
from ex4.fmt import format_lr

# every parameter the results depend on
PARAMS = ("seed", "device", "cnn_baselines", "cnn_learning_rates", "cnn_batch_size", "cnn_epochs", "cnn_image_size",
          "cnn_xgb_crop", "cnn_weights", "cnn_allow_download", "cnn_train_subset", "cnn_precision")
CODE = ("ex4.models.resnet", "ex4.train.cnn", "ex4.train.features", "ex4.train.xgb", "ex4.train.surrogate",
        "ex4.train.device", "ex4.data.faces")
PRETRAINED = ("linear_probe", "sklearn_probe", "finetune")
TORCH_BASELINES = ("scratch", "linear_probe", "finetune")
XGB_RESIZE = 224  # the course resizes to 224 before cropping the XGBoost pixels


# --- the pretrained backbone ---------------------------------------------------------------------------------


@dataclass
class Backbone:
    tag: str  # "imagenet" | "surrogate:<source>" | "file:<name>" (the chapters word it)
    state: dict[str, torch.Tensor]
    identity: str  # content identity (file hash or store key): the feature cache is keyed on it
    info: dict[str, Any] = field(default_factory=dict)


def excluded_digits(data_dir: Path) -> list[int]:
    """Digit indices the surrogate must not see: those behind the stand-in's val and test images."""
    manifest = data_dir / "manifest.json"
    try:
        indices = json.loads(manifest.read_text(encoding="utf-8")).get("source_indices") or {}
    except (OSError, ValueError, AttributeError):
        return []
    return sorted({int(index) for split in ("val", "test") for index in indices.get(split, [])})


def resolve_weights(choice: str, allow_download: bool) -> tuple[str, Path | None]:
    """('imagenet', file) | ('file', file) | ('surrogate', None) for a `cnn_weights` value; Ex4Error if impossible."""
    from ex4.models.resnet import fetch_imagenet, imagenet_weights_path, missing_imagenet_message

    if choice in ("auto", "imagenet"):
        path = fetch_imagenet(allow_download)
        if path is not None:
            return "imagenet", path
        if choice == "imagenet":
            raise Ex4Error(missing_imagenet_message(imagenet_weights_path()))
        return "surrogate", None
    if choice == "surrogate":
        return "surrogate", None
    path = Path(choice).expanduser()
    if not path.is_file():
        raise Ex4Error(f"cnn_weights: weights file {path} not found")
    return "file", path.resolve()


COURSE_IMAGE_SIZE = 224  # the course: resize 256, centre crop 224


# why an image size was chosen (the chapters word these)
SIZE_FROM_PARAMETER, SIZE_STANDIN_NATIVE, SIZE_COURSE = "parameter", "standin-native", "course"


def resolve_image_size(requested: int | str, data_dir: Path) -> tuple[int, str]:
    """(side fed to ResNet18, why: one of the SIZE_* codes) for a `cnn_image_size` value and a faces folder.

    `auto` is the course's 224 for a user's images and the bundled stand-in's native side (64) for the stand-in:
    its pictures are 8x8 digits drawn at 64x64, so 224 would multiply the arithmetic by 12 for no information.
    """
    if requested != "auto":
        return int(requested), SIZE_FROM_PARAMETER
    manifest_path = data_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict) and manifest.get("standin") is True:
        recipe = manifest.get("recipe") if isinstance(manifest.get("recipe"), dict) else {}
        side = recipe.get("image_side")
        if isinstance(side, int) and not isinstance(side, bool) and side >= 16:
            return side, SIZE_STANDIN_NATIVE
    return COURSE_IMAGE_SIZE, SIZE_COURSE


def resolved_setup(values: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """What `auto` parameters become on this machine and data: device, numerics and image size, each with a
    reason code (see `resolve_image_size` and `ex4.train.features.choose_numerics`), and the CPU's bf16 flags."""
    from ex4.train.device import pick_device
    from ex4.train.features import choose_numerics

    device = pick_device(values["device"])
    how, why = choose_numerics(device, values["cnn_precision"])
    size, size_why = resolve_image_size(values["cnn_image_size"], data_dir)
    from ex4.train.device import native_bf16_flags

    return {"device": device.type, "numerics": how.name, "numerics_reason": why,
            "image_size": size, "image_size_reason": size_why,
            "bf16_flags": list(native_bf16_flags()) if device.type == "cpu" else []}


def key_params(values: dict[str, Any]) -> dict[str, Any]:
    """The store-key parameters of `cnn`, with `auto` values replaced by what will actually be used.

    `cnn_weights: auto` means ImageNet when its file is present and the surrogate otherwise, and a .pth path
    means that file's content, so the key must change when the file appears or changes (never downloads).
    `device`, `cnn_precision` and `cnn_image_size` enter as resolved on this machine and data (`cpu`, `bfloat16
    autocast, channels_last`, 64), so a store shared between a CPU with native bf16 and one without never hands
    one the other's numbers.
    """
    from ex4.data import resolve_faces_dir
    from ex4.models.resnet import imagenet_weights_path
    from ex4.store import fingerprint_files

    params = {name: values[name] for name in PARAMS}
    # the resolved device, arithmetic and image size, not the request: `auto` and an explicit value that resolve
    # alike compute the same bits and share a result; one that resolves otherwise (another CPU, a GPU) does not
    setup = resolved_setup(values, resolve_faces_dir(values["faces_dir"]))
    params["device"] = setup["device"]
    params["cnn_precision"] = setup["numerics"]
    params["cnn_image_size"] = setup["image_size"]
    choice = values["cnn_weights"]
    if not set(values["cnn_baselines"]) & set(PRETRAINED) or choice == "surrogate":
        return params
    path = imagenet_weights_path() if choice in ("auto", "imagenet") else Path(choice).expanduser()
    if path.is_file():
        kind = "file" if choice not in ("auto", "imagenet") else "imagenet"
        params["cnn_weights"] = f"{kind}:{fingerprint_files([path])}"
    elif choice == "auto":
        params["cnn_weights"] = "auto (no ImageNet file: surrogate)"
    return params


def load_backbone(ctx: Context, side: int, crop: int, device: torch.device, how) -> Backbone:
    from ex4.models import resnet
    from ex4.train import surrogate

    params = ctx.params
    kind, path = resolve_weights(params["cnn_weights"], params["cnn_allow_download"])
    if kind in ("imagenet", "file"):
        state = resnet.read_state_file(path)
        resnet.check_backbone_state(state, str(path))
        identity = f"{kind}:sha256:{resnet.file_sha256(path)}"
        if kind == "imagenet":
            return Backbone("imagenet", state, identity, {"file": str(path)})
        return Backbone(f"file:{path.name}", state, identity,
                        {"file": str(path)})
    excluded = excluded_digits(ctx.data_dir)
    exclusion = hashlib.sha256(json.dumps(excluded).encode()).hexdigest()
    key = {"seed": params["seed"], "resize": side, "crop": crop, "epochs": surrogate.EPOCHS,
           "excluded_digits": len(excluded), "exclusion_sha256": exclusion, "device_type": device.type,
           "numerics": how.name}
    outcome = ctx.store.get_or_compute(
        "cnn-surrogate", key, f"sklearn-digits;exclude={exclusion}",
        ("ex4.train.surrogate", "ex4.models.resnet", "ex4.train.features", "ex4.train.cnn"),
        lambda: _surrogate_entry(excluded, side, crop, params["seed"], device, how))
    info = {**outcome.result, "store_key": outcome.key, "from_store": outcome.hit}
    return Backbone(f"surrogate:{surrogate.SOURCE}", outcome.tensors["backbone"],
                    f"surrogate:{outcome.key}", info)


def _surrogate_entry(excluded: list[int], side: int, crop: int, seed: int, device: torch.device, how):
    from ex4.train.surrogate import pretrain_surrogate

    state, info = pretrain_surrogate(excluded, side, crop, seed, device, how)
    return info, {"backbone": state}


# --- data ------------------------------------------------------------------------------------------------------


class Images:
    """The faces splits at each size the baselines need, loaded (decoded once, cached) on first use."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.train_rows: np.ndarray | None = None  # a training subset (smoke runs), else all rows
        self._loaded: dict[int, Any] = {}

    def load(self, size: int):
        from ex4.data.faces import load_faces

        if size not in self._loaded:
            self._loaded[size] = load_faces(self.directory, size)
        return self._loaded[size]

    def release(self, size: int) -> None:
        """Drop one size's arrays (the 224 px XGBoost copy is ~0.3 GB on the stand-in)."""
        self._loaded.pop(size, None)

    def split(self, name: str, size: int, crop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images [n, crop, crop, 3], int64 labels) of one split; train restricted to the subset."""
        from ex4.train.features import centre_crop

        part = getattr(self.load(size), name)
        images, labels = part.images, part.labels
        if name == "train" and self.train_rows is not None:
            images, labels = images[self.train_rows], labels[self.train_rows]
        return (centre_crop(images, crop) if crop is not None and crop != size else images), labels


def train_subset_rows(labels: np.ndarray, subset: int | None, seed: int) -> np.ndarray | None:
    """Sorted rows of a class-stratified random subset of the training split, or None for all of it."""
    if subset is None or subset >= len(labels):
        return None
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    try:
        chosen, _ = train_test_split(rows, train_size=subset, stratify=labels, random_state=seed)
    except ValueError as error:
        raise Ex4Error(f"cnn_train_subset = {subset}: cannot draw a subset with both classes ({error})") from None
    return np.sort(chosen)


def class_counts(labels: np.ndarray) -> dict[str, int]:
    return {"real": int((labels == 0).sum()), "fake": int((labels == 1).sum())}


# --- runs --------------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    params: dict[str, Any]
    device: torch.device
    how: Any  # ex4.train.features.Numerics
    images: Images
    backbone: Backbone | None = None
    timings: dict[str, float] = field(default_factory=dict)
    reused: dict[str, bool] = field(default_factory=dict)  # shared parts found in the store


def run_label(baseline: str, lr: float | None) -> str:
    """A run's name in results, tables and figures: 'xgboost', 'finetune lr=1e-4'."""
    return baseline if lr is None else f"{baseline} lr={format_lr(lr)}"


def _finish_run(baseline: str, lr: float | None, backbone: str, run_params: dict[str, Any], logits: dict,
                labels: dict, started: float, extra: dict[str, Any] | None = None) -> tuple[dict, dict]:
    from ex4.train.cnn import binary_metrics, probabilities

    metrics = {split: binary_metrics(logits[split], labels[split]) for split in ("val", "test")}
    run = {
        "baseline": baseline,
        "lr": lr,
        "label": run_label(baseline, lr),
        "backbone": backbone,
        "params": run_params,
        "final": {"val_acc": metrics["val"]["acc"], "test_acc": metrics["test"]["acc"],
                  "val_loss": metrics["val"]["loss"], "test_loss": metrics["test"]["loss"]},
        "confusion": {split: metrics[split]["confusion"] for split in ("val", "test")},
        "diverged": metrics["val"]["diverged"] or metrics["test"]["diverged"],
        "wall_time": time.perf_counter() - started,
        **(extra or {}),
    }
    probs = {split: probabilities(torch.as_tensor(logits[split])) for split in ("val", "test")}
    return run, probs


def run_xgboost(setup: Setup) -> list[tuple[dict, dict]]:
    from ex4.train.xgb import fit_xgboost, pixel_features, xgboost_logits

    started = time.perf_counter()
    crop, seed = setup.params["cnn_xgb_crop"], setup.params["seed"]
    data = {split: setup.images.split(split, XGB_RESIZE) for split in ("train", "val", "test")}
    features = {split: pixel_features(images, crop) for split, (images, _) in data.items()}
    model = fit_xgboost(features["train"], data["train"][1], seed)
    logits = {split: xgboost_logits(model, features[split]) for split in ("val", "test")}
    run_params = {"model": "XGBClassifier() defaults", "resize": XGB_RESIZE, "crop": crop,
                  "features": 3 * crop * crop, "seed": seed}
    labels = {split: data[split][1] for split in ("val", "test")}
    return [_finish_run("xgboost", None, "none", run_params, logits, labels, started)]


def torch_run_params(setup: Setup, lr: float, image_size: int, normalize: bool) -> dict[str, Any]:
    params = setup.params
    return {"lr": lr, "optimizer": "adam", "loss": "BCEWithLogitsLoss", "batch_size": params["cnn_batch_size"],
            "epochs": params["cnn_epochs"], "image_size": image_size, "normalize": "imagenet" if normalize else None,
            "seed": params["seed"], "device": setup.device.type, "numerics": setup.how.name}


def run_full_network(setup: Setup, baseline: str) -> list[tuple[dict, dict]]:
    """scratch (random init, [0, 1] inputs) or finetune (pretrained, ImageNet-normalised), every lr."""
    from ex4.models.resnet import resnet18_binary
    from ex4.train.cnn import fit_binary
    from ex4.train.features import Batches, InputSpec, resize_side, run_inference

    params = setup.params
    size = params["cnn_image_size"]
    pretrained = baseline == "finetune"
    spec = InputSpec(normalize=pretrained)
    load_side = resize_side(size) if pretrained else size
    data = {split: setup.images.split(split, load_side, size) for split in ("train", "val", "test")}
    train_images, train_labels = data["train"]
    state = setup.backbone.state if pretrained else None
    tag = setup.backbone.tag if pretrained else "none"
    batches = Batches(train_images, spec, setup.device, setup.how.channels_last)
    initial = resnet18_binary(params["seed"], state)  # built once (random init of 11 M weights), copied per lr
    results = []
    for lr in params["cnn_learning_rates"]:
        started = time.perf_counter()
        model = copy.deepcopy(initial)
        losses = fit_binary(model, batches, torch.from_numpy(train_labels), lr=lr, batch_size=params["cnn_batch_size"],
                            epochs=params["cnn_epochs"], seed=params["seed"], device=setup.device,
                            how=setup.how, desc=f"{baseline} lr={lr:g}")
        logits = {split: run_inference(model, data[split][0], spec, setup.device, setup.how,
                                       desc=f"{baseline} lr={lr:g} {split}").reshape(-1)
                  for split in ("val", "test")}
        labels = {split: data[split][1] for split in ("val", "test")}
        run_params = {**torch_run_params(setup, lr, size, pretrained), "resize": load_side}
        results.append(_finish_run(baseline, lr, tag, run_params, logits, labels, started,
                                   {"train_loss": losses}))
        del model
    return results


def backbone_features(ctx: Context, setup: Setup) -> dict[str, torch.Tensor]:
    """512-d features of every split through the frozen backbone: from the store, or computed once."""
    from ex4.train.features import resize_side

    params = setup.params
    size = params["cnn_image_size"]
    key = {"backbone": setup.backbone.identity, "image_size": size, "resize": resize_side(size),
           "normalize": "imagenet", "train_subset": params["cnn_train_subset"], "seed": params["seed"],
           "device_type": setup.device.type, "numerics": setup.how.name}
    started = time.perf_counter()
    outcome = ctx.store.get_or_compute(
        "cnn-features", key, setup.images.load(resize_side(size)).fingerprint,  # the content decoded
        ("ex4.train.features", "ex4.models.resnet", "ex4.data.faces"),
        lambda: _features_entry(setup))
    setup.timings["features"] = time.perf_counter() - started
    setup.reused["features"] = outcome.hit
    return outcome.tensors


def _features_entry(setup: Setup):
    from ex4.models.resnet import frozen_backbone, resnet18_binary
    from ex4.train.features import InputSpec, resize_side, run_inference

    size = setup.params["cnn_image_size"]
    model = frozen_backbone(resnet18_binary(setup.params["seed"], setup.backbone.state))
    tensors = {}
    for split in ("train", "val", "test"):
        images, _ = setup.images.split(split, resize_side(size), size)
        tensors[split] = run_inference(model, images, InputSpec(normalize=True), setup.device, setup.how,
                                       desc=f"backbone features ({split})")
    return {"shapes": {split: list(value.shape) for split, value in tensors.items()}}, tensors


def run_linear_probe(setup: Setup, features: dict[str, torch.Tensor]) -> list[tuple[dict, dict]]:
    """A new Linear(512, 1) on the cached features, at every lr (same init and batches as through the net)."""
    from ex4.models.resnet import make_head
    from ex4.train.cnn import fit_binary
    from ex4.train.features import resize_side

    params = setup.params
    size = params["cnn_image_size"]
    labels = {split: setup.images.split(split, resize_side(size), size)[1] for split in ("train", "val", "test")}
    cpu = torch.device("cpu")  # a 512 -> 1 layer trains faster on the CPU than it launches on a GPU
    results = []
    for lr in params["cnn_learning_rates"]:
        started = time.perf_counter()
        head = make_head(params["seed"])
        train = features["train"]
        losses = fit_binary(head, lambda rows: train[rows], torch.from_numpy(labels["train"]), lr=lr,
                            batch_size=params["cnn_batch_size"], epochs=params["cnn_epochs"], seed=params["seed"],
                            device=cpu, desc=f"linear_probe lr={lr:g}")
        with torch.inference_mode():
            logits = {split: head(features[split]).reshape(-1) for split in ("val", "test")}
        run_params = {**torch_run_params(setup, lr, size, True), "resize": resize_side(size),
                      "trains": "head only (backbone frozen, eval mode); on cached features"}
        results.append(_finish_run("linear_probe", lr, setup.backbone.tag, run_params, logits, labels, started,
                                   {"train_loss": losses}))
    return results


def run_sklearn_probe(setup: Setup, features: dict[str, torch.Tensor]) -> list[tuple[dict, dict]]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from ex4.train.features import resize_side

    params = setup.params
    size = params["cnn_image_size"]
    labels = {split: setup.images.split(split, resize_side(size), size)[1] for split in ("train", "val", "test")}
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = LogisticRegression().fit(features["train"].numpy(), labels["train"])
    converged = not any(issubclass(warning.category, ConvergenceWarning) for warning in caught)
    logits = {split: model.decision_function(features[split].numpy()).astype(np.float32) for split in ("val", "test")}
    run_params = {"model": "LogisticRegression() defaults", "image_size": size, "resize": resize_side(size),
                  "normalize": "imagenet", "seed": params["seed"], "converged": converged}
    return [_finish_run("sklearn_probe", None, setup.backbone.tag, run_params, logits, labels, started)]


# --- the experiment ----------------------------------------------------------------------------------------------


def use_all_cores() -> None:
    torch.set_num_threads(os.cpu_count() or 1)


def check_image_passes(epochs: int, n_train: int) -> None:
    """Ex4Error before any training when epochs x training images exceeds `params.MAX_CNN_IMAGE_PASSES` (only
    here, with the images counted, is the product known)."""
    from ex4.params import MAX_CNN_IMAGE_PASSES

    if epochs * n_train > MAX_CNN_IMAGE_PASSES:
        raise Ex4Error(f"cnn_epochs: {epochs:,} epochs x {n_train:,} training images = {epochs * n_train:,} image "
                       f"passes per run; the limit is {MAX_CNN_IMAGE_PASSES:,} (lower cnn_epochs or set "
                       "cnn_train_subset)")


def compute_cnn(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    from ex4.train.device import cpu_description, pick_device
    from ex4.train.features import numerics, resize_side

    resolved = resolved_setup(ctx.params, ctx.data_dir)
    params = {**ctx.params, "cnn_image_size": resolved["image_size"]}  # every run below sees the resolved side
    baselines = list(params["cnn_baselines"])
    size = params["cnn_image_size"]
    if params["cnn_xgb_crop"] > XGB_RESIZE and "xgboost" in baselines:
        raise Ex4Error(f"cnn_xgb_crop = {params['cnn_xgb_crop']}: must be <= {XGB_RESIZE} "
                       f"(the XGBoost pixels are cropped from images resized to {XGB_RESIZE})")
    started = time.perf_counter()
    use_all_cores()
    device = pick_device(params["device"])
    how = numerics(device, params["cnn_precision"])

    images = Images(ctx.data_dir)
    first_size = size if "scratch" in baselines else resize_side(size) if set(baselines) & set(PRETRAINED) \
        else XGB_RESIZE
    reference = images.load(first_size)  # ids, labels and counts (the same at every size)
    rows = train_subset_rows(reference.train.labels, params["cnn_train_subset"], params["seed"])
    images.train_rows = rows
    train_labels = reference.train.labels if rows is None else reference.train.labels[rows]
    check_image_passes(params["cnn_epochs"], len(train_labels))
    setup = Setup(params, device, how, images)
    setup.timings["decode"] = time.perf_counter() - started

    if set(baselines) & set(PRETRAINED):
        t0 = time.perf_counter()
        setup.backbone = load_backbone(ctx, resize_side(size), size, device, how)
        setup.timings["backbone"] = time.perf_counter() - t0

    done: list[tuple[dict, dict]] = []
    features = None
    for baseline in baselines:
        if baseline == "xgboost":
            done += run_xgboost(setup)
            if first_size != XGB_RESIZE and XGB_RESIZE not in (size, resize_side(size)):
                images.release(XGB_RESIZE)
        elif baseline in ("scratch", "finetune"):
            done += run_full_network(setup, baseline)
        else:
            features = features if features is not None else backbone_features(ctx, setup)
            done += run_linear_probe(setup, features) if baseline == "linear_probe" \
                else run_sklearn_probe(setup, features)

    runs = [run for run, _ in done]
    probabilities = {split: {run["label"]: probs[split] for run, probs in done} for split in ("val", "test")}
    test_ids = list(reference.test.ids)
    backbone = setup.backbone
    result = {
        "experiment": "cnn",
        "backbone": backbone.tag if backbone else "none",
        "backbone_info": backbone.info if backbone else {},
        "data": {
            "is_standin": reference.is_standin,
            "description": reference.description,
            "counts": {"train": class_counts(train_labels), "val": class_counts(reference.val.labels),
                       "test": class_counts(reference.test.labels)},
            "train_subset": params["cnn_train_subset"],
            "test_ids": test_ids,
        },
        "device": device.type,
        "numerics": how.name,
        "setup": {**resolved, "requested_image_size": ctx.params["cnn_image_size"],
                  "requested_device": ctx.params["device"], "requested_precision": ctx.params["cnn_precision"],
                  "hardware": (torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description())},
        "runs": runs,
        "timings": {**setup.timings, "total": time.perf_counter() - started},
        "reused": {**setup.reused, "surrogate": bool(backbone and backbone.info.get("from_store"))},
    }
    tensors = {
        "probabilities": probabilities,
        "labels": {split: torch.from_numpy(getattr(reference, split).labels.copy()) for split in ("val", "test")},
    }
    return result, tensors


EXPERIMENTS = [
    Experiment(
        "cnn",
        "Section 7: XGBoost, ResNet18 from scratch, linear probe, scikit-learn probe and fine-tuning, "
        "real vs fake images",
        data="faces",
        params=PARAMS,
        code=CODE,
        compute=compute_cnn,
        key_params=key_params,
    )
]
