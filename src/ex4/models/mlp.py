"""The Section 6 network: a plain ReLU MLP on (longitude, latitude), as the course defines it.

`depth` counts hidden layers the way the course counts "layers including the input": depth 6 means six
hidden `Linear -> [BatchNorm1d] -> ReLU` blocks of `width` units plus one output `Linear` (7 in total).
Batch norm sits before each ReLU. Two variants serve single experiments: residual connections on every
hidden-to-hidden block, for the vanishing-gradient study, and the implicit input representation
(sin(a*x) for a = 0.1 ... 1.0 on longitude, then on latitude: 20 features).

The residual block is `h + relu(block(h)) / sqrt(depth)`. Unscaled (`h + relu(block(h))`), PyTorch's
default init and raw coordinates make activations grow about 1.2x per block: at depth 100 (width 4) the
first loss is ~1e10 and training is NaN within the first epoch. The 1/sqrt(depth) branch scale (as in Hayou et al. 2021,
"Stable ResNet") keeps the forward pass bounded while leaving the identity path, and so the gradient
highway that residual connections are about, untouched.

This module is the readable definition and the format of stored weights; the training engine in
`ex4.train.mlp_engine` runs many of these at once but loads from and saves to these state dicts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

RAW_FEATURES = 2  # longitude, latitude
IMPLICIT_SCALES = tuple(round(0.1 * k, 1) for k in range(1, 11))
IMPLICIT_FEATURES = 2 * len(IMPLICIT_SCALES)


def sine_features(x: torch.Tensor) -> torch.Tensor:
    """[n, 2] coordinates -> [n, 20]: sin(a*long) for each a, then sin(a*lat) for each a."""
    scales = torch.tensor(IMPLICIT_SCALES, dtype=x.dtype, device=x.device)
    return torch.cat([torch.sin(x[:, :1] * scales), torch.sin(x[:, 1:2] * scales)], dim=1)


def input_width(implicit: bool) -> int:
    return IMPLICIT_FEATURES if implicit else RAW_FEATURES


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild a model from a state dict (stored beside the weights)."""

    depth: int
    width: int
    n_classes: int
    batch_norm: bool = False
    residual: bool = False
    implicit: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def hidden_widths(self) -> list[int]:
        return [self.width] * self.depth


class SineFeatures(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sine_features(x)


def residual_scale(depth: int) -> float:
    """Weight of the branch in a residual block (see the module docstring)."""
    return 1.0 / math.sqrt(depth)


class HiddenLayer(nn.Module):
    """Linear -> optional BatchNorm1d -> ReLU, with an optional identity shortcut around all of it."""

    def __init__(self, n_in: int, width: int, batch_norm: bool, residual: bool, scale: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(n_in, width)
        self.norm = nn.BatchNorm1d(width) if batch_norm else None
        self.residual = residual
        self.scale = scale

    def preactivation(self, h: torch.Tensor) -> torch.Tensor:
        z = self.linear(h)
        return self.norm(z) if self.norm is not None else z

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.preactivation(h))
        return h + out * self.scale if self.residual else out


class MLP(nn.Module):
    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        self.features = SineFeatures() if arch.implicit else nn.Identity()
        widths = [input_width(arch.implicit)] + arch.hidden_widths()
        self.hidden = nn.ModuleList(
            HiddenLayer(widths[i], widths[i + 1], arch.batch_norm, arch.residual and i > 0, residual_scale(arch.depth))
            for i in range(arch.depth)
        )
        self.output = nn.Linear(arch.width, arch.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        for layer in self.hidden:
            h = layer(h)
        return self.output(h)

    def preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input of every ReLU (after batch norm), layer by layer: what decides the activation pattern."""
        h = self.features(x)
        values = []
        for layer in self.hidden:
            z = layer.preactivation(h)
            values.append(z)
            out = torch.relu(z)
            h = h + out * layer.scale if layer.residual else out
        return values


def build_mlp(depth: int, width: int, batch_norm: bool = False, residual: bool = False, implicit: bool = False,
              n_classes: int = 2) -> MLP:
    """A freshly initialised MLP (PyTorch's default init, drawn from torch's global generator)."""
    return MLP(Architecture(depth=depth, width=width, n_classes=n_classes, batch_norm=batch_norm,
                            residual=residual, implicit=implicit))


def load_mlp(arch: dict, state_dict: dict) -> MLP:
    """Rebuild a stored model (arch as saved by `Architecture.as_dict`) in eval mode."""
    model = build_mlp(**arch)
    model.load_state_dict(state_dict)
    return model.eval()
