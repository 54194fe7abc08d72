"""ResNet18 with a one-logit head (real=0 / fake=1), and where its pretrained backbone weights come from.

A binary classifier here is torchvision's ResNet18 whose 1000-way `fc` is replaced by `Linear(512, 1)`, trained
with `BCEWithLogitsLoss` (logistic regression on the 512-d pooled features). The head is created from its own
seed, so a linear probe trained on cached features and one trained through the frozen network start equal.

Backbone weights are never fetched behind the user's back: ImageNet weights are read from torch's hub cache
(`$TORCH_HOME/hub/checkpoints/`) or a given file, and downloaded only when `cnn_allow_download` is true.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ex4.errors import Ex4Error, torch_load_detail

FEATURES = 512  # ResNet18's pooled feature width
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Initial weights are drawn from torch's global generator (PyTorch's default init has no generator argument), so
# two runs built at once in two threads (Section 7's runs share out the cores by whole runs) would draw from one
# stream; this lock makes each build draw its seed's numbers alone.
_GLOBAL_GENERATOR = threading.RLock()


@contextlib.contextmanager
def seeded(seed: int):
    """The global generator seeded with `seed` for the block, restored after it, one thread at a time."""
    with _GLOBAL_GENERATOR, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def make_head(seed: int, in_features: int = FEATURES) -> nn.Linear:
    """A fresh `Linear(in_features, 1)` whose initial weights depend only on `seed`."""
    with seeded(seed):
        return nn.Linear(in_features, 1)


def resnet18_binary(seed: int, backbone_state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """ResNet18 with a 1-unit head: random init from `seed`, then the backbone weights if given."""
    from torchvision.models import resnet18

    with seeded(seed):
        model = resnet18(weights=None)
    if backbone_state is not None:
        load_backbone(model, backbone_state)
    model.fc = make_head(seed)
    return model


def resnet18_classifier(seed: int, classes: int) -> nn.Module:
    """Plain ResNet18 with `classes` outputs (the surrogate's source task)."""
    from torchvision.models import resnet18

    with seeded(seed):
        return resnet18(weights=None, num_classes=classes)


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight and buffer except the classification head, on the CPU."""
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()
            if not name.startswith("fc.")}


def load_backbone(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "backbone weights") -> None:
    """Load everything but `fc.*` into `model`; Ex4Error when the file is not a torchvision ResNet18."""
    state = {name.removeprefix("module."): value for name, value in state.items()
             if not name.removeprefix("module.").startswith("fc.")}
    expected = {name for name in model.state_dict() if not name.startswith("fc.")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise Ex4Error(f"{source}: not a torchvision ResNet18 state dict ({detail}, "
                       f"{len(missing)} missing / {len(unexpected)} unexpected keys)")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise Ex4Error(f"{source}: weights do not fit ResNet18 ({first})") from None


def check_backbone_state(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Ex4Error naming `source` unless `state` loads into a ResNet18 backbone."""
    load_backbone(resnet18_binary(0), state, source)


def frozen_backbone(model: nn.Module) -> nn.Module:
    """The network up to the pooled features (fc replaced by identity), in eval mode, without gradients.

    Eval mode matters: BatchNorm then uses its stored statistics, so the features of an image do not depend
    on the batch it arrives in, which is what makes caching them exact.
    """
    model.fc = nn.Identity()
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


# --- where the weights come from -----------------------------------------------------------------------------


def imagenet_weights():
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights.IMAGENET1K_V1


def imagenet_weights_path() -> Path:
    """Where torchvision keeps the ImageNet ResNet18 file: `torch.hub.get_dir()/checkpoints/<file name>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(imagenet_weights().url)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_file(path: Path | str, parameter: str = "cnn_weights") -> dict[str, torch.Tensor]:
    """A state dict from a .pth/.pt file (plain, or under 'state_dict'/'model'); Ex4Error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise Ex4Error(f"{parameter}: weights file {path} not found")
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors for foreign or damaged files
        raise Ex4Error(f"{path}: cannot read weights ({torch_load_detail(error)})") from None
    if isinstance(loaded, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper), dict):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise Ex4Error(f"{path}: expected a ResNet18 state dict (a mapping of names to tensors)")
    return loaded


def missing_imagenet_message(path: Path) -> str:
    return (f"cnn_weights=imagenet: ImageNet ResNet18 weights not found at {path}; copy "
            f"{path.name} (from {imagenet_weights().url}) there or set TORCH_HOME to a folder whose "
            "hub/checkpoints holds it, or set cnn_weights=/path/to/resnet18.pth, or cnn_allow_download=true, "
            "or cnn_weights=surrogate")


def fetch_imagenet(allow_download: bool) -> Path | None:
    """The ImageNet weights file: found in the hub cache, or downloaded there when allowed; else None."""
    path = imagenet_weights_path()
    if path.is_file():
        return path
    if not allow_download:
        return None
    try:
        imagenet_weights().get_state_dict(progress=True, check_hash=True)
    except Exception as error:  # network, disk or hash failures all mean: no weights
        raise Ex4Error(f"cnn_allow_download: downloading {imagenet_weights().url} to {path} failed "
                       f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''})") from None
    return path if path.is_file() else None
