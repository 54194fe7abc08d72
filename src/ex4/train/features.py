"""From decoded uint8 images to network inputs, and fast batched inference (features, logits).

Images arrive decoded once (uint8 NHWC, see `ex4.data.faces`); each batch is turned into a float tensor only
when it is used, so a split never sits in memory four times larger as float32. The arithmetic matches
torchvision's `ToTensor()` (+ `Normalize(mean, std)` for pretrained backbones) bit for bit.

Inference runs under `torch.inference_mode()` with large batches. How the arithmetic is done is a `Numerics`:
plain float32 in torch's default (NCHW) layout reproduces a textbook loop bit for bit; channels_last layout, with
mixed precision where it is native (bf16 on CPUs with bf16 instructions, bf16/fp16 on CUDA), is faster but
rounds differently, which moves the accuracy of unstable runs (see `choose_numerics`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ex4.cancel import check_cancelled
from ex4.models.resnet import IMAGENET_MEAN, IMAGENET_STD

# inference batch: about this many pixels (x3 channels) per batch, capped, so 224 px stays near 1 GiB of
# activations while small images go through in few large batches
EVAL_PIXELS = 128 * 224 * 224
EVAL_BATCH_MAX = 1024


@dataclass(frozen=True)
class InputSpec:
    """How uint8 images become network input: ImageNet normalisation (pretrained) or plain [0, 1] (scratch)."""

    normalize: bool


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    """Centre crop of uint8 [n, H, W, C] images to size x size, rounding like torchvision's CenterCrop."""
    height, width = images.shape[1:3]
    if size > min(height, width):
        raise ValueError(f"cannot crop {height}x{width} images to {size}x{size}")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return images[:, top:top + size, left:left + size]


def resize_side(image_size: int) -> int:
    """The course's resize-then-crop ratio (256 -> 224) applied to another input side."""
    return int(round(image_size * 256 / 224))


def to_input(images: np.ndarray | torch.Tensor, spec: InputSpec, device: torch.device,
             channels_last: bool = False) -> torch.Tensor:
    """uint8 [b, H, W, 3] -> float32 [b, 3, H, W] on `device`, scaled as ToTensor (and Normalize) would.

    `images` is a numpy array (host memory; copied through pinned memory to a GPU) or a uint8 tensor already on
    `device`. The NHWC -> NCHW permute is a view whose strides are channels_last's, so with `channels_last`
    no copy is made for the layout.
    """
    if isinstance(images, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(images))
        if device.type == "cuda":
            batch = batch.pin_memory().to(device, non_blocking=True)
    else:
        batch = images.to(device)
    batch = batch.permute(0, 3, 1, 2).float().div(255)
    if spec.normalize:
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        batch = batch.sub(mean).div(std)
    return batch.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class Batches:
    """`rows -> input batch` for a training loop: the uint8 split is indexed where the model runs.

    On a GPU the whole split is copied to the device once (uint8: 0.2 GB for 1,400 images at 224 px), so a step
    moves no data from the host; on the CPU the numpy array is indexed directly.
    """

    def __init__(self, images: np.ndarray, spec: InputSpec, device: torch.device, channels_last: bool = False):
        self.spec, self.device, self.channels_last = spec, device, channels_last
        self.images: np.ndarray | torch.Tensor = images
        if device.type == "cuda":
            self.images = torch.from_numpy(np.ascontiguousarray(images)).pin_memory().to(device, non_blocking=True)

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        if isinstance(self.images, np.ndarray):
            picked = self.images[rows.numpy()]
        else:
            picked = self.images[rows.to(self.device, non_blocking=True)]
        return to_input(picked, self.spec, self.device, self.channels_last)


@dataclass(frozen=True)
class Numerics:
    """Autocast dtype (None = float32) and memory layout used for every forward and backward pass."""

    autocast: torch.dtype | None = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        dtype = "float32" if self.autocast is None else f"{str(self.autocast).removeprefix('torch.')} autocast"
        return dtype + (", channels_last" if self.channels_last else "")

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def context(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None)


EXACT = Numerics()  # what a textbook loop does: float32, NCHW


def numerics(device: torch.device, requested: str = "auto") -> Numerics:
    """The `Numerics` for `requested` ("auto" | "float32" | "bfloat16") on `device` (see `choose_numerics`)."""
    return choose_numerics(device, requested)[0]


# why the arithmetic was chosen (the chapters word these)
NUMERICS_REQUESTED = "requested"          # cnn_precision named it
NUMERICS_CUDA_BF16 = "cuda-bf16"          # auto on a CUDA device with bf16
NUMERICS_CUDA_FP16 = "cuda-fp16"          # auto on a CUDA device without bf16 (fp16 with loss scaling)
NUMERICS_CPU_BF16 = "cpu-native-bf16"     # auto on a CPU with bf16 instructions
NUMERICS_CPU_NO_BF16 = "cpu-no-bf16"      # auto on a CPU without them: bf16 would be emulated, slower than float32


def choose_numerics(device: torch.device, requested: str = "auto") -> tuple[Numerics, str]:
    """(`Numerics`, why: one of the NUMERICS_* codes) for `requested` ("auto" | "float32" | "bfloat16") on `device`.

    float32 keeps torch's default layout, so results equal a textbook float32 loop bit for bit. auto picks mixed
    precision where it is native (CUDA: bf16, else fp16; CPU: bf16 only when the CPU has bf16 instructions,
    AVX512_BF16/AMX-BF16 or Arm BF16, by its /proc/cpuinfo flags, since emulated bf16 is 1.7x slower than
    float32), and float32 elsewhere, always in channels_last layout (oneDNN's and cuDNN's native one: 6-20%
    faster than NCHW for ResNet18 steps on the CPUs measured, see benchmarks/cnn.py). Its different rounding moves the test accuracy of
    unstable runs (one epoch of ResNet18 from scratch) by several points, as float32 channels_last alone does.
    """
    from ex4.train.device import cpu_has_native_bf16

    if requested == "float32":
        return EXACT, NUMERICS_REQUESTED
    if requested == "bfloat16":
        return Numerics(torch.bfloat16, channels_last=True), NUMERICS_REQUESTED
    if requested != "auto":
        raise ValueError(f"unknown precision {requested!r}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Numerics(torch.bfloat16, channels_last=True), NUMERICS_CUDA_BF16
        return Numerics(torch.float16, channels_last=True), NUMERICS_CUDA_FP16
    if device.type == "cpu" and cpu_has_native_bf16():
        return Numerics(torch.bfloat16, channels_last=True), NUMERICS_CPU_BF16
    return Numerics(None, channels_last=True), NUMERICS_CPU_NO_BF16


def eval_batch_size(image_size: int) -> int:
    return int(max(32, min(EVAL_BATCH_MAX, EVAL_PIXELS // (image_size * image_size))))


def chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def progress(iterable, total: int, desc: str):
    """A tqdm bar on stderr for loops that last more than two seconds, like Section 6's: during a book build
    papermill forwards it to the terminal (a minutes-long Section 7 would otherwise look hung), and the
    renderer keeps stderr out of the pages."""
    bar = tqdm(iterable, total=total, desc=desc, unit="batch", file=sys.stderr, leave=False, delay=2.0,
               mininterval=1.0)
    try:
        for item in bar:
            check_cancelled()  # a stopped sweep ends this run within a step (see ex4.cancel)
            yield item
    finally:
        bar.close()


def run_inference(model: nn.Module, images: np.ndarray, spec: InputSpec, device: torch.device,
                  how: Numerics = EXACT, batch_size: int | None = None, desc: str = "inference") -> torch.Tensor:
    """`model` applied to every image in eval mode; float32 output rows on the CPU, in input order."""
    model.eval()
    model.to(device, memory_format=how.memory_format)
    batch_size = batch_size or eval_batch_size(images.shape[1])
    outputs = []
    with torch.inference_mode(), how.context(device):
        for part in progress(chunks(len(images), batch_size), -(-len(images) // batch_size), desc):
            outputs.append(model(to_input(images[part], spec, device, how.channels_last)).float().cpu())
    if not outputs:
        return torch.empty(0)
    return torch.cat(outputs)
