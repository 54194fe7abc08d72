"""Section 7: five ways to tell real from fake images, each torch baseline at every learning rate.

Experiment `cnn` runs XGBoost on pixels, ResNet18 from scratch, a linear probe and a scikit-learn logistic
regression on a frozen pretrained backbone, and a fine-tuned ResNet18, and stores per-run metrics and
per-image validation and test probabilities. Rankings, summaries and the images of the mistakes figure are
computed from them by `ex4.analysis` when a chapter asks, so they are not part of the store key: changing how
runs are ranked never retrains a network.

One run = one stored result. Every (baseline, learning rate) of the torch baselines, the scikit-learn probe and
XGBoost is stored on its own as a `cnn-run`, keyed by everything that decides its numbers and nothing else
(`run_identity`: baseline, lr, seed, training subset; batch size and epochs for the torch baselines; the
resolved device, arithmetic and image size for the networks; crop for XGBoost; the backbone's content identity
for the pretrained ones), by the data fingerprint and by the training code. Each run builds its initial weights
from the seed alone, so its numbers do not depend on the runs computed beside it or where: adding a learning
rate trains one run per torch baseline, and a run stored for one list of baselines serves every other. Two
shared pieces are stored units of their own: the surrogate backbone (`cnn-surrogate`, pretrained once when no
ImageNet weights exist) and a frozen backbone's features per (backbone, input size, split set)
(`cnn-features`), which the linear probe at every learning rate and the scikit-learn probe train on.
The `cnn` result is assembled from the stored runs.

Where the missing runs are computed is the executor's business: locally they run one after another in this
process (images decoded once, the backbone and features obtained once); on Dask each is one task, the
surrogate pretraining and the feature extraction are tasks too, and the runs that need them depend on them,
so Dask starts a run once what it reads is in the store. Workers write to the store themselves.
Every run trains on one torch thread (`one_thread`), on every executor and every machine: torch's intra-op thread
count changes the rounding of a ResNet18 step, so a thread count taken from the machine would make the same key
hold other numbers on a laptop and on a cluster node. The cores are shared out by whole runs instead: locally the
missing runs go to a pool of one thread per core (`LocalExecutor.compute(workers=...)`, each run once what it reads
is stored), on Dask to the workers' threads. Two one-thread runs side by side also did more per second than one
run on two threads (on a 2-core AVX2 EPYC: 0.49 s against 0.67 s per ResNet18 step at 64 px), and a run on one
thread does not stall when another process takes a core, as OpenMP's threads of one op do (README, *Near the
floor*). XGBoost and the scikit-learn probe run on one thread too.

What makes it fast without changing the numbers:
- images are decoded once per size (the loader's cache) and turned into tensors batch by batch;
- a frozen backbone's features are computed once and cached in the store; without augmentation training a
  head on them is exactly training the head through the eval-mode backbone;
- inference under `torch.inference_mode()` in large batches;
- channels_last layout, with mixed precision where the hardware has it natively (bf16 on CPUs whose flags
  list AVX512_BF16 or AMX-BF16, bf16/fp16 on CUDA) and float32 elsewhere; `cnn_precision: float32` instead
  reproduces a textbook float32 NCHW loop bit for bit (same init, same batches; see benchmarks/reference_cnn.py);
- `cnn_image_size: auto`: the course's 224 for a user's images, the stand-in's native 32 for the bundled set
  (224 would upsample its 32 x 32 images, 49x the arithmetic for no information); the surrogate backbone is
  pretrained at the size it is then used at;
- on CUDA, the training split sits on the device as uint8 and evaluation batches go through pinned memory.

`device`, `cnn_precision` and `cnn_image_size` enter the store keys as resolved on this machine and data (on the
client, for every task), and the result's `setup` records each resolved value with the reason.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ex4.errors import Ex4Error
from ex4.experiments import Context, Experiment
from ex4.fmt import format_lr
from ex4.memory import release_freed_memory
from ex4.store import Outcome, Store

# every parameter the results depend on
PARAMS = ("seed", "device", "cnn_baselines", "cnn_learning_rates", "cnn_batch_size", "cnn_epochs", "cnn_image_size",
          "cnn_xgb_crop", "cnn_weights", "cnn_allow_download", "cnn_train_subset", "cnn_precision")
CODE = ("ex4.models.resnet", "ex4.train.cnn", "ex4.train.features", "ex4.train.xgb", "ex4.train.surrogate",
        "ex4.train.device", "ex4.data.faces")
PRETRAINED = ("linear_probe", "sklearn_probe", "finetune")
TORCH_BASELINES = ("scratch", "linear_probe", "finetune")
FULL_NETWORK = ("scratch", "finetune")  # the expensive ones: every weight of ResNet18 trains
PROBES = ("linear_probe", "sklearn_probe")  # trained on the stored backbone features
# what each stored unit depends on besides its key parameters and data
RUN_CODE = (*CODE, __name__)
SURROGATE_CODE = ("ex4.train.surrogate", "ex4.models.resnet", "ex4.train.features", "ex4.train.cnn")
FEATURES_CODE = ("ex4.train.features", "ex4.models.resnet", "ex4.data.faces")
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

    `auto` is the course's 224 for a user's images and the bundled stand-in's native side (its manifest's
    `image_side`, 32) for the stand-in: its pictures are 8x8 digits drawn at 32x32, so 224 would multiply the
    arithmetic by 49 for no information.
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
    autocast, channels_last`, 32), so a store shared between a CPU with native bf16 and one without never hands
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


@dataclass(frozen=True)
class BackboneRef:
    """Where a pretrained backbone comes from, resolved on the client: enough for a worker to obtain it.

    `identity` is its content identity (the weights file's sha256, or the surrogate's store key): the features and
    the pretrained runs are keyed on it. A surrogate is obtained from the store (pretrained there once under
    `surrogate_key`); a file is read where the task runs and must still have the content named by `identity`."""

    kind: str  # "imagenet" | "file" | "surrogate"
    tag: str  # "imagenet" | "surrogate:<source>" | "file:<name>" (the chapters word it)
    identity: str
    path: str | None = None  # the weights file (imagenet, file)
    surrogate_key: str | None = None
    surrogate_params: dict[str, Any] | None = None  # the surrogate's store-key parameters
    surrogate_data: str | None = None
    excluded: tuple[int, ...] = ()  # digits the surrogate must not see


def backbone_ref(params: dict[str, Any], data_dir: Path, store: Store, device: torch.device, how) -> BackboneRef:
    """The backbone that `cnn_weights` names, with its identity; a weights file is read and checked here, at the
    edge, so a file that is not a ResNet18 fails with one line before any task starts."""
    from ex4.models import resnet
    from ex4.train import surrogate
    from ex4.train.features import resize_side

    kind, path = resolve_weights(params["cnn_weights"], params["cnn_allow_download"])
    if kind in ("imagenet", "file"):
        state = resnet.read_state_file(path)
        resnet.check_backbone_state(state, str(path))
        identity = f"{kind}:sha256:{resnet.file_sha256(path)}"
        return BackboneRef(kind, "imagenet" if kind == "imagenet" else f"file:{path.name}", identity, path=str(path))
    size = params["cnn_image_size"]
    excluded = excluded_digits(data_dir)
    exclusion = hashlib.sha256(json.dumps(excluded).encode()).hexdigest()
    key = {"seed": params["seed"], "resize": resize_side(size), "crop": size, "epochs": surrogate.EPOCHS,
           "excluded_digits": len(excluded), "exclusion_sha256": exclusion, "device_type": device.type,
           "numerics": how.name}
    data = f"sklearn-digits;exclude={exclusion}"
    store_key = store.key_for("cnn-surrogate", key, data, SURROGATE_CODE)
    return BackboneRef("surrogate", f"surrogate:{surrogate.SOURCE}", f"surrogate:{store_key}",
                       surrogate_key=store_key, surrogate_params=key, surrogate_data=data, excluded=tuple(excluded))


def obtain_backbone(ref: BackboneRef, store: Store, device: torch.device, how) -> tuple[Backbone, Outcome | None]:
    """The backbone's weights: the surrogate from the store (pretrained and stored first if missing), or the
    weights file; with the surrogate's store outcome (None for a file)."""
    from ex4.models import resnet

    if ref.kind != "surrogate":
        path = Path(ref.path)
        if not path.is_file():
            raise Ex4Error(f"cnn_weights: weights file {path} not found where this run is computed")
        state = resnet.read_state_file(path)
        if f"{ref.kind}:sha256:{resnet.file_sha256(path)}" != ref.identity:
            raise Ex4Error(f"cnn_weights: weights file {path} changed during the run; nothing was stored")
        return Backbone(ref.tag, state, ref.identity, {"file": ref.path}), None
    side, crop = ref.surrogate_params["resize"], ref.surrogate_params["crop"]
    outcome = store.get_or_compute(
        "cnn-surrogate", ref.surrogate_params, ref.surrogate_data, SURROGATE_CODE,
        lambda: _surrogate_entry(list(ref.excluded), side, crop, ref.surrogate_params["seed"], device, how,
                                 ref.surrogate_params["epochs"]))
    if outcome.key != ref.surrogate_key:  # the code or a library changed between planning and now
        raise Ex4Error(f"cnn-surrogate: stored under {outcome.key}, expected {ref.surrogate_key}; the code or a "
                       "library changed during the run; run again")
    info = {**outcome.result, "store_key": outcome.key, "from_store": outcome.hit}
    return Backbone(ref.tag, outcome.tensors["backbone"], ref.identity, info), outcome


def _surrogate_entry(excluded: list[int], side: int, crop: int, seed: int, device: torch.device, how, epochs: int):
    from ex4.train.surrogate import pretrain_surrogate

    state, info = pretrain_surrogate(excluded, side, crop, seed, device, how, epochs=epochs)
    return info, {"backbone": state}


# --- data ------------------------------------------------------------------------------------------------------


_DECODE_LOCK = threading.RLock()


class Images:
    """The faces splits at each size the baselines need, loaded (decoded once, cached) on first use.

    With `subset` the training split is a class-stratified subset drawn with `seed` (`train_subset_rows`). With
    `fingerprint`, every size loaded must hold the image content the store keys were made from. `shared` is a
    per-process cache of decoded sizes (a Dask worker keeps one across the tasks it runs)."""

    def __init__(self, directory: Path, subset: int | None = None, seed: int = 0, fingerprint: str | None = None,
                 shared: dict | None = None):
        self.directory = directory
        self.subset, self.seed, self.fingerprint = subset, seed, fingerprint
        self.train_rows: np.ndarray | None = None  # a training subset (smoke runs), else all rows
        self._rows_drawn = subset is None
        self._loaded: dict[int, Any] = {} if shared is None else shared

    def load(self, size: int):
        from ex4.data.faces import load_faces

        with _DECODE_LOCK:  # runs on several threads share `_loaded`: each size is decoded once
            if size not in self._loaded:
                self._loaded[size] = load_faces(self.directory, size)
            faces = self._loaded[size]
        if self.fingerprint is not None and faces.fingerprint != self.fingerprint:
            raise Ex4Error(f"{self.directory}: the images changed between being fingerprinted for the store key and "
                           "being read; run again once the data stops changing")
        if not self._rows_drawn:
            self.train_rows = train_subset_rows(faces.train.labels, self.subset, self.seed)
            self._rows_drawn = True
        return faces

    def release(self, size: int) -> None:
        """Drop one size's arrays (the 224 px XGBoost copy is ~0.3 GB on the stand-in)."""
        with _DECODE_LOCK:
            self._loaded.pop(size, None)

    def share(self, loaded: dict) -> None:
        """Use (and add to) `loaded`, a per-process cache of decoded sizes, from now on."""
        with _DECODE_LOCK:
            self._loaded = loaded

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
    """What the runs of one seed share in the process computing them; the backbone and the features are
    obtained from the store on first use."""

    params: dict[str, Any]
    device: torch.device
    how: Any  # ex4.train.features.Numerics
    images: Images
    backbone: Backbone | None = None
    timings: dict[str, float] = field(default_factory=dict)
    reused: dict[str, bool] = field(default_factory=dict)  # shared parts found in the store
    job: Job | None = None
    store: Store | None = None
    features: dict[str, torch.Tensor] | None = None

    def get_backbone(self) -> Backbone:
        if self.backbone is None:
            started = time.perf_counter()
            self.backbone, outcome = obtain_backbone(self.job.backbone, self.store, self.device, self.how)
            self.timings["backbone"] = outcome.wall_time if outcome is not None and not outcome.hit \
                else time.perf_counter() - started
            self.reused["surrogate"] = bool(outcome is not None and outcome.hit)
        return self.backbone

    def get_backbone_tag(self) -> str:
        """The backbone's tag, without loading its weights (the probes need only its features)."""
        return self.backbone.tag if self.backbone is not None else self.job.backbone.tag

    def get_features(self) -> dict[str, torch.Tensor]:
        """512-d features of every split through the frozen backbone: from the store, or computed once."""
        if self.features is None:
            started = time.perf_counter()
            outcome = self.store.get_or_compute("cnn-features", self.job.features_params(),
                                                self.job.images_fingerprint, FEATURES_CODE,
                                                lambda: _features_entry(self))
            self.timings["features"] = time.perf_counter() - started
            self.reused["features"] = outcome.hit
            self.features = outcome.tensors
        return self.features


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


def run_xgboost(setup: Setup) -> tuple[dict, dict]:
    from ex4.train.features import resize_side
    from ex4.train.xgb import fit_xgboost, pixel_features, xgboost_logits

    started = time.perf_counter()
    crop, seed = setup.params["cnn_xgb_crop"], setup.params["seed"]
    data = {split: setup.images.split(split, XGB_RESIZE) for split in ("train", "val", "test")}
    features = {split: pixel_features(images, crop) for split, (images, _) in data.items()}
    labels = {split: labels for split, (_, labels) in data.items()}
    del data
    size = setup.params["cnn_image_size"]
    if XGB_RESIZE not in (size, resize_side(size)):  # no network needs this size: free it before the trees grow
        setup.images.release(XGB_RESIZE)
    model = fit_xgboost(features["train"], labels["train"], seed)
    logits = {split: xgboost_logits(model, features[split]) for split in ("val", "test")}
    run_params = {"model": "XGBClassifier() defaults", "resize": XGB_RESIZE, "crop": crop,
                  "features": 3 * crop * crop, "seed": seed}
    return _finish_run("xgboost", None, "none", run_params, logits, labels, started)


def torch_run_params(setup: Setup, lr: float, image_size: int, normalize: bool) -> dict[str, Any]:
    params = setup.params
    return {"lr": lr, "optimizer": "adam", "loss": "BCEWithLogitsLoss", "batch_size": params["cnn_batch_size"],
            "epochs": params["cnn_epochs"], "image_size": image_size, "normalize": "imagenet" if normalize else None,
            "seed": params["seed"], "device": setup.device.type, "numerics": setup.how.name}


def run_full_network(setup: Setup, baseline: str, lr: float) -> tuple[dict, dict]:
    """scratch (random init, [0, 1] inputs) or finetune (pretrained, ImageNet-normalised) at one lr, from the
    initial weights the seed (and the backbone) alone decide."""
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
    backbone = setup.get_backbone() if pretrained else None
    started = time.perf_counter()
    model = resnet18_binary(params["seed"], backbone.state if backbone else None)
    batches = Batches(train_images, spec, setup.device, setup.how.channels_last)
    losses = fit_binary(model, batches, torch.from_numpy(train_labels), lr=lr, batch_size=params["cnn_batch_size"],
                        epochs=params["cnn_epochs"], seed=params["seed"], device=setup.device,
                        how=setup.how, desc=f"{baseline} lr={lr:g}")
    logits = {split: run_inference(model, data[split][0], spec, setup.device, setup.how,
                                   desc=f"{baseline} lr={lr:g} {split}").reshape(-1)
              for split in ("val", "test")}
    labels = {split: data[split][1] for split in ("val", "test")}
    run_params = {**torch_run_params(setup, lr, size, pretrained), "resize": load_side}
    return _finish_run(baseline, lr, backbone.tag if backbone else "none", run_params, logits, labels, started,
                       {"train_loss": losses})


def _features_entry(setup: Setup):
    from ex4.models.resnet import frozen_backbone, resnet18_binary
    from ex4.train.features import InputSpec, resize_side, run_inference

    size = setup.params["cnn_image_size"]
    model = frozen_backbone(resnet18_binary(setup.params["seed"], setup.get_backbone().state))
    tensors = {}
    for split in ("train", "val", "test"):
        images, _ = setup.images.split(split, resize_side(size), size)
        tensors[split] = run_inference(model, images, InputSpec(normalize=True), setup.device, setup.how,
                                       desc=f"backbone features ({split})")
    return {"shapes": {split: list(value.shape) for split, value in tensors.items()}}, tensors


def _probe_labels(setup: Setup) -> dict[str, np.ndarray]:
    from ex4.train.features import resize_side

    size = setup.params["cnn_image_size"]
    return {split: setup.images.split(split, resize_side(size), size)[1] for split in ("train", "val", "test")}


def run_linear_probe(setup: Setup, features: dict[str, torch.Tensor], lr: float) -> tuple[dict, dict]:
    """A new Linear(512, 1) on the cached features (same init and batches as through the net)."""
    from ex4.models.resnet import make_head
    from ex4.train.cnn import fit_binary
    from ex4.train.features import resize_side

    params = setup.params
    size = params["cnn_image_size"]
    labels = _probe_labels(setup)
    cpu = torch.device("cpu")  # a 512 -> 1 layer trains faster on the CPU than it launches on a GPU
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
    return _finish_run("linear_probe", lr, setup.get_backbone_tag(), run_params, logits, labels, started,
                       {"train_loss": losses})


def run_sklearn_probe(setup: Setup, features: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from ex4.train.features import resize_side

    params = setup.params
    size = params["cnn_image_size"]
    labels = _probe_labels(setup)
    started = time.perf_counter()
    # one BLAS thread, like every Section 7 computation (the thread count of a sum can change its rounding); the
    # convergence flag comes from the iteration count, since catching the warning is not thread-safe
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression().fit(features["train"].numpy(), labels["train"])
    converged = bool(np.all(np.asarray(model.n_iter_) < model.max_iter))
    logits = {split: model.decision_function(features[split].numpy()).astype(np.float32) for split in ("val", "test")}
    run_params = {"model": "LogisticRegression() defaults", "image_size": size, "resize": resize_side(size),
                  "normalize": "imagenet", "seed": params["seed"], "converged": converged}
    return _finish_run("sklearn_probe", None, setup.get_backbone_tag(), run_params, logits, labels, started)


# --- one seed's runs, planned on the client -----------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What every run of one seed shares, resolved once on the client and handed to each task (picklable)."""

    params: dict[str, Any]  # the declared parameters, with `cnn_image_size` resolved
    data_dir: str
    data: str  # data fingerprint of the runs' keys: every image and the manifest
    images_fingerprint: str  # the decoded image content (the features' data)
    device: torch.device
    how: Any  # ex4.train.features.Numerics, as resolved on the client
    backbone: BackboneRef | None

    def features_params(self) -> dict[str, Any]:
        """The store-key parameters of the backbone features this seed's probes train on."""
        from ex4.train.features import resize_side

        p, size = self.params, self.params["cnn_image_size"]
        return {"backbone": self.backbone.identity, "image_size": size, "resize": resize_side(size),
                "normalize": "imagenet", "train_subset": p["cnn_train_subset"], "seed": p["seed"],
                "device_type": self.device.type, "numerics": self.how.name}

    def features_key(self, store: Store) -> str:
        return store.key_for("cnn-features", self.features_params(), self.images_fingerprint, FEATURES_CODE)

    def setup(self, store: Store, images: Images | None = None, shared: dict | None = None) -> Setup:
        images = images or Images(Path(self.data_dir), self.params["cnn_train_subset"], self.params["seed"],
                                  self.images_fingerprint, shared)
        return Setup(dict(self.params), self.device, self.how, images, job=self, store=store)


@dataclass(frozen=True)
class RunPlan:
    """One stored run: a baseline at one learning rate (None for XGBoost and the scikit-learn probe)."""

    baseline: str
    lr: float | None
    identity: dict[str, Any]  # its store-key parameters
    key: str

    @property
    def label(self) -> str:
        return run_label(self.baseline, self.lr)


def run_identity(job: Job, baseline: str, lr: float | None) -> dict[str, Any]:
    """Everything that decides a run's numbers and nothing else (the data and code enter its key besides)."""
    p = job.params
    identity = {"baseline": baseline, "lr": lr, "seed": p["seed"], "train_subset": p["cnn_train_subset"]}
    if baseline == "xgboost":
        return {**identity, "crop": p["cnn_xgb_crop"], "resize": XGB_RESIZE}
    identity.update(image_size=p["cnn_image_size"], device=job.device.type, numerics=job.how.name)
    if baseline in TORCH_BASELINES:
        identity.update(batch_size=p["cnn_batch_size"], epochs=p["cnn_epochs"])
    if baseline in PRETRAINED:
        identity["backbone"] = job.backbone.identity
    return identity


@dataclass
class Plan:
    job: Job
    runs: list[RunPlan]
    images: Images  # the client's, holding the reference size
    reference: Any  # ex4.data.faces.FacesData: ids, labels and counts (the same at every size)
    train_labels: np.ndarray
    resolved: dict[str, Any]
    timings: dict[str, float]


def _data_fingerprint(data_dir: Path) -> str:
    """What `ex4.experiments.run` puts in the key: every image and the manifest."""
    from ex4.data.faces import faces_files
    from ex4.store import fingerprint_files

    manifest = data_dir / "manifest.json"
    return fingerprint_files(faces_files(data_dir) + ([manifest] if manifest.is_file() else []), root=data_dir)


def make_plan(ctx: Context) -> Plan:
    """Validate, resolve `auto`, decode the reference size, and name the stored run of every (baseline, lr)."""
    from ex4.train.device import pick_device
    from ex4.train.features import numerics, resize_side

    started = time.perf_counter()
    resolved = resolved_setup(ctx.params, ctx.data_dir)
    params = {**{name: ctx.params[name] for name in PARAMS}, "cnn_image_size": resolved["image_size"]}
    baselines = list(params["cnn_baselines"])
    size = params["cnn_image_size"]
    if params["cnn_xgb_crop"] > XGB_RESIZE and "xgboost" in baselines:
        raise Ex4Error(f"cnn_xgb_crop = {params['cnn_xgb_crop']}: must be <= {XGB_RESIZE} "
                       f"(the XGBoost pixels are cropped from images resized to {XGB_RESIZE})")
    device = pick_device(params["device"])
    how = numerics(device, params["cnn_precision"])
    images = Images(ctx.data_dir, params["cnn_train_subset"], params["seed"])
    first_size = size if "scratch" in baselines else resize_side(size) if set(baselines) & set(PRETRAINED) \
        else XGB_RESIZE
    reference = images.load(first_size)
    images.fingerprint = reference.fingerprint
    rows = images.train_rows
    train_labels = reference.train.labels if rows is None else reference.train.labels[rows]
    check_image_passes(params["cnn_epochs"], len(train_labels))
    timings = {"decode": time.perf_counter() - started}
    backbone = None
    if set(baselines) & set(PRETRAINED):
        started = time.perf_counter()
        backbone = backbone_ref(params, ctx.data_dir, ctx.store, device, how)
        timings["backbone"] = time.perf_counter() - started
    job = Job(params, str(ctx.data_dir), ctx.data_fingerprint or _data_fingerprint(ctx.data_dir),
              reference.fingerprint, device, how, backbone)
    runs = []
    for baseline in baselines:
        for lr in (params["cnn_learning_rates"] if baseline in TORCH_BASELINES else [None]):
            identity = run_identity(job, baseline, lr)
            runs.append(RunPlan(baseline, lr, identity, ctx.store.key_for("cnn-run", identity, job.data, RUN_CODE)))
    return Plan(job, runs, images, reference, train_labels, resolved, timings)


# --- computing runs: here, or as tasks on the cluster ------------------------------------------------------------


RUN_THREADS = 1  # torch intra-op threads of every Section 7 computation, on any machine (see the module docstring)


def one_thread() -> None:
    """Compute on `RUN_THREADS` torch threads in the calling thread (each task sets it in the thread it runs in:
    OpenMP keeps the count per thread)."""
    torch.set_num_threads(RUN_THREADS)


def local_workers(device: torch.device) -> int:
    """How many runs compute at once in this process: one per core on the CPU, one on a GPU (which the runs
    would only take turns on)."""
    return 1 if device.type != "cpu" else max(1, os.cpu_count() or 1)


def compute_run(setup: Setup, baseline: str, lr: float | None) -> tuple[dict, dict]:
    """(run record, {split: probabilities}) of one baseline at one lr."""
    if baseline == "xgboost":
        return run_xgboost(setup)
    if baseline in FULL_NETWORK:
        return run_full_network(setup, baseline, lr)
    if baseline == "linear_probe":
        return run_linear_probe(setup, setup.get_features(), lr)
    return run_sklearn_probe(setup, setup.get_features())


def store_run(setup: Setup, run: RunPlan) -> Outcome:
    """The stored run, computed (and stored as "cnn-run") when missing."""
    def compute() -> tuple[dict, dict]:
        record, probabilities = compute_run(setup, run.baseline, run.lr)
        return record, {"probabilities": probabilities}

    outcome = setup.store.get_or_compute("cnn-run", run.identity, setup.job.data, RUN_CODE, compute)
    if outcome.key != run.key:  # the code or a library changed between planning and now
        raise Ex4Error(f"cnn-run {run.label}: stored under {outcome.key}, expected {run.key}; the code or a library "
                       "changed during the run; run again")
    return outcome


# decoded images per process, shared by the tasks its threads run (a Dask worker keeps them across tasks; locally
# the client's decoded reference size is put here first): (folder, content) -> {size: decoded splits}
_PROCESS_IMAGES: dict[tuple[str, str], dict] = {}
_PROCESS_IMAGES_LOCK = threading.Lock()


def shared_images(job: Job, loaded: dict | None = None) -> dict:
    """This process's decoded sizes of `job`'s images (`loaded` becomes them when none are kept yet)."""
    memo = (job.data_dir, job.images_fingerprint)
    with _PROCESS_IMAGES_LOCK:
        if memo not in _PROCESS_IMAGES:
            _PROCESS_IMAGES.clear()
            _PROCESS_IMAGES[memo] = loaded if loaded is not None else {}
        return _PROCESS_IMAGES[memo]


def _task_setup(job: Job, store_root: str) -> Setup:
    one_thread()
    return job.setup(Store(store_root), shared=shared_images(job))


def releasing_memory(task: Callable[..., str]) -> Callable[..., str]:
    """A task that hands its freed heap back to the OS when it ends (`ex4.memory`): the runs beside and after it
    start from what is really in use, not from what the last run's thread arena kept."""
    @functools.wraps(task)
    def releasing(*args: Any) -> str:
        try:
            return task(*args)
        finally:
            release_freed_memory()

    return releasing


@releasing_memory
def run_task(job: Job, run: RunPlan, store_root: str) -> str:
    """A task: compute one run and store it as "cnn-run" (unless it is stored already); returns its key."""
    return store_run(_task_setup(job, store_root), run).key


@releasing_memory
def surrogate_task(job: Job, store_root: str) -> str:
    """A task: pretrain the surrogate backbone and store it as "cnn-surrogate"; returns its key."""
    _task_setup(job, store_root).get_backbone()
    return job.backbone.surrogate_key


@releasing_memory
def features_task(job: Job, store_root: str) -> str:
    """A task: the frozen backbone's features of every split, stored as "cnn-features"; returns the key."""
    setup = _task_setup(job, store_root)
    setup.get_features()
    return job.features_key(setup.store)


def run_tasks(job: Job, missing: list[RunPlan], store: Store, label: str = "") -> list:
    """The tasks that compute the `missing` runs: one per run, after the tasks that make what it reads (the
    surrogate backbone when it is not stored, the features when a probe needs them and they are not stored)."""
    from ex4.executor import Task

    root, tasks = str(store.root), []
    surrogate, features = (), ()
    ref = job.backbone
    if ref is not None and ref.kind == "surrogate" and store.load(ref.surrogate_key) is None:
        # the assembled result reports the surrogate's training, so it is made even if no run is missing that needs it
        tasks.append(Task(ref.surrogate_key, surrogate_task, (job, root), f"{label}surrogate pretraining"))
        surrogate = (ref.surrogate_key,)
    if any(run.baseline in PROBES for run in missing):
        key = job.features_key(store)
        if store.load(key) is None:
            tasks.append(Task(key, features_task, (job, root), f"{label}backbone features", deps=surrogate))
            features = (key,)
    for run in missing:
        deps = features if run.baseline in PROBES else surrogate if run.baseline in PRETRAINED else ()
        tasks.append(Task(run.key, run_task, (job, run, root), f"{label}{run.label}", deps=deps))
    return tasks


def compute_tasks(executor: Any, tasks: list, store: Store, progress: str, device: torch.device | None = None) -> None:
    """Run the tasks on the executor (locally on `local_workers(device)` threads); Ex4Error when one reported done is
    not in the store (on a cluster: a store that is not shared)."""
    if executor.distributed:
        executor.compute(tasks, progress=progress)
    else:
        previous = torch.get_num_threads()
        try:
            one_thread()
            executor.compute(tasks, progress=progress, workers=local_workers(device or torch.device("cpu")))
        finally:
            torch.set_num_threads(previous)
    for task in tasks:
        if store.load(task.key) is None:
            raise Ex4Error(f"{progress}: {task.label} was reported done by the cluster but is not in the store at "
                           f"{store.root}; is it on a filesystem every worker shares?")


def missing_tasks(ctx: Context, label: str = "") -> list:
    """The tasks of every run of `ctx`'s seed that is not stored (for a sweep over seeds); [] when none."""
    plan = make_plan(ctx)
    missing = [run for run in plan.runs if ctx.store.load(run.key) is None]
    return run_tasks(plan.job, missing, ctx.store, label) if missing else []


# --- the experiment ----------------------------------------------------------------------------------------------


def check_image_passes(epochs: int, n_train: int) -> None:
    """Ex4Error before any training when epochs x training images exceeds `params.MAX_CNN_IMAGE_PASSES` (only
    here, with the images counted, is the product known)."""
    from ex4.params import MAX_CNN_IMAGE_PASSES

    if epochs * n_train > MAX_CNN_IMAGE_PASSES:
        raise Ex4Error(f"cnn_epochs: {epochs:,} epochs x {n_train:,} training images = {epochs * n_train:,} image "
                       f"passes per run; the limit is {MAX_CNN_IMAGE_PASSES:,} (lower cnn_epochs or set "
                       "cnn_train_subset)")


def compute_cnn(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `cnn` result of one seed, assembled from its stored runs; the missing ones are computed first, here or
    as tasks on `ctx.executor`.

    `reused` says, for the surrogate and the features, whether they were found in the store rather than computed
    for this result; `timings` holds the decode of the reference size, the time spent on the backbone and the
    features for this result (their computing time when computed, else loading), and the total."""
    from ex4.train.device import cpu_description

    started = time.perf_counter()
    plan = make_plan(ctx)
    job, store = plan.job, ctx.store
    stored: dict[str, Outcome | None] = {run.key: store.load(run.key) for run in plan.runs}
    missing = [run for run in plan.runs if stored[run.key] is None]
    baselines = set(job.params["cnn_baselines"])
    timings = dict(plan.timings)
    reused = {"features": True} if baselines & set(PROBES) else {}
    if baselines & set(PROBES):
        timings["features"] = 0.0
    setup = job.setup(store, images=plan.images)
    computed_remotely: dict[str, str] = {}  # "surrogate" | "features" -> store key made by a task for this result
    if missing:
        from ex4.executor import executor_for

        executor = ctx.executor if ctx.executor is not None else executor_for("local", "local:1")
        if not executor.distributed:  # the tasks here start from the images decoded for the plan
            plan.images.share(shared_images(job, plan.images._loaded))
        tasks = run_tasks(job, missing, store)
        for task in tasks:
            if task.fn is surrogate_task:
                computed_remotely["surrogate"] = task.key
            elif task.fn is features_task:
                computed_remotely["features"] = task.key
        compute_tasks(executor, tasks, store, "cnn", job.device)
        stored.update({run.key: store.load(run.key) for run in missing})
    if "features" in setup.reused:  # obtained here
        reused["features"] = setup.reused["features"]
        timings["features"] = setup.timings["features"]
    elif "features" in computed_remotely:
        reused["features"] = False
        timings["features"] = store.load(computed_remotely["features"]).wall_time

    ref = job.backbone
    backbone_tag, backbone_info, surrogate_reused = "none", {}, False
    if ref is not None and ref.kind != "surrogate":
        backbone_tag, backbone_info = ref.tag, {"file": ref.path}
    elif ref is not None:
        if setup.backbone is None and "surrogate" in computed_remotely:
            outcome = store.load(ref.surrogate_key)
            backbone = Backbone(ref.tag, outcome.tensors["backbone"], ref.identity,
                                {**outcome.result, "store_key": outcome.key, "from_store": False})
            timings["backbone"] = outcome.wall_time
        else:
            backbone = setup.get_backbone()  # loaded (or, were it missing, pretrained) here
            timings["backbone"] = setup.timings["backbone"]
        backbone_tag, backbone_info = backbone.tag, backbone.info
        surrogate_reused = bool(backbone.info.get("from_store"))

    runs, probabilities = [], {"val": {}, "test": {}}
    for run in plan.runs:
        outcome = stored[run.key]
        if outcome is None:
            raise Ex4Error(f"cnn: run {run.label} was reported done but is not in the store at {store.root}; is it "
                           "on a filesystem every worker shares?")
        runs.append(outcome.result)
        for split in ("val", "test"):
            probabilities[split][outcome.result["label"]] = outcome.tensors["probabilities"][split]
    reference, device = plan.reference, job.device
    result = {
        "experiment": "cnn",
        "backbone": backbone_tag,
        "backbone_info": backbone_info,
        "data": {
            "is_standin": reference.is_standin,
            "description": reference.description,
            "counts": {"train": class_counts(plan.train_labels), "val": class_counts(reference.val.labels),
                       "test": class_counts(reference.test.labels)},
            "train_subset": job.params["cnn_train_subset"],
            "test_ids": list(reference.test.ids),
        },
        "device": device.type,
        "numerics": job.how.name,
        "setup": {**plan.resolved, "requested_image_size": ctx.params["cnn_image_size"],
                  "requested_device": ctx.params["device"], "requested_precision": ctx.params["cnn_precision"],
                  "hardware": (torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description())},
        "runs": runs,
        "timings": {**timings, "total": time.perf_counter() - started},
        "reused": {**reused, "surrogate": surrogate_reused},
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
        # every run is stored on its own, so the experiment sends its missing runs to the executor itself
        splits_runs=lambda values: True,
    )
]
