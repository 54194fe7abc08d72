"""Linear regions of ReLU networks, a property of the model: the combinatorial upper bound and an empirical count
over a grid.

A ReLU network is affine on each set of inputs that share an activation pattern (which ReLUs are on), so
the number of distinct patterns met over a dense grid is a lower bound on the number of linear regions
inside the grid's box. Batch norm in eval mode is affine, so it does not change this. The same module
also predicts the class of every grid point in one forward pass, for the decision-boundary figures.
Experiments store both with each trained model (this module is part of their store key); analysis reads the
bound from here.
"""

from __future__ import annotations

from math import comb
from typing import Sequence

import numpy as np
import torch

from ex4.models.mlp import MLP


def region_upper_bound(n0: int, widths: Sequence[int]) -> int:
    """Serra, Tjandraatmadja & Ramalingam (2018, Theorem 1) bound on the linear regions of a ReLU MLP.

    For input dimension n0 and hidden widths n1..nL the number of regions is at most

        sum over (j1, ..., jL) in J of  prod_{l=1..L} C(n_l, j_l),
        J = {(j1, ..., jL): 0 <= j_l <= min(n0, n1 - j1, ..., n_{l-1} - j_{l-1}, n_l) for every l}.

    With one hidden layer this is Zaslavsky's count for n1 hyperplanes in general position,
    sum_{k=0}^{min(n0, n1)} C(n1, k) (137 for n0 = 2, n1 = 16), the bound quoted by Montufar et al. (2014).
    Computed exactly (Python integers) by dynamic programming over the running minimum
    m_l = min(n0, n1 - j1, ..., n_l - j_l), which is all that constrains the later j's.
    """
    if n0 < 1 or any(width < 1 for width in widths):
        raise ValueError("input dimension and widths must be positive")
    ways = {n0: 1}  # running minimum -> sum of products of binomials over the prefixes that reach it
    for width in widths:
        following: dict[int, int] = {}
        for budget, count in ways.items():
            for j in range(min(budget, width) + 1):
                key = min(budget, width - j)
                following[key] = following.get(key, 0) + count * comb(width, j)
        ways = following
    return sum(ways.values())


def grid_points(extent: Sequence[float], grid: int) -> torch.Tensor:
    """[grid*grid, 2] points of a regular mesh over (long_min, long_max, lat_min, lat_max), row = latitude."""
    long_min, long_max, lat_min, lat_max = (float(value) for value in extent)
    longs = torch.linspace(long_min, long_max, grid)
    lats = torch.linspace(lat_min, lat_max, grid)
    lat_mesh, long_mesh = torch.meshgrid(lats, longs, indexing="ij")
    return torch.stack([long_mesh.reshape(-1), lat_mesh.reshape(-1)], dim=1)


def _packed_patterns(preactivations: list[torch.Tensor]) -> torch.Tensor:
    """[n, units] signs -> [n, ceil(units/63)] int64 words (63 bits a word keeps every word non-negative)."""
    bits = torch.cat([(z > 0) for z in preactivations], dim=1)
    n, units = bits.shape
    shifts = torch.arange(63, dtype=torch.int64, device=bits.device)
    words = [(bits[:, start:start + 63].to(torch.int64) << shifts[:min(63, units - start)]).sum(dim=1)
             for start in range(0, units, 63)]
    return torch.stack(words, dim=1)


@torch.no_grad()
def count_activation_regions(model: MLP, extent: Sequence[float], grid: int, chunk: int = 1 << 12) -> int:
    """Distinct ReLU activation patterns over a grid x grid mesh of `extent` (eval mode, streamed in chunks)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        points = grid_points(extent, grid)
        patterns = [_packed_patterns(model.preactivations(points[start:start + chunk].to(device))).cpu()
                    for start in range(0, points.shape[0], chunk)]
        if not patterns:
            return 0
        # one sort of every packed pattern (a few MB even at 400 x 400 points): rows in lexicographic order,
        # then count where a row differs from the one before
        rows = torch.cat(patterns).numpy()
        ordered = rows[np.lexsort(rows.T[::-1])]
        return int(1 + np.count_nonzero(np.any(ordered[1:] != ordered[:-1], axis=1)))
    finally:
        model.train(was_training)


@torch.no_grad()
def class_grid(model: MLP, extent: Sequence[float], grid: int, chunk: int = 1 << 15) -> torch.Tensor:
    """Predicted class of every mesh point, [grid (lat), grid (long)], eval mode, a few large forward passes."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        points = grid_points(extent, grid)
        labels = torch.cat([model(points[start:start + chunk].to(device)).argmax(dim=1).cpu()
                            for start in range(0, points.shape[0], chunk)])
    finally:
        model.train(was_training)
    dtype = torch.uint8 if model.arch.n_classes <= 256 else torch.int16
    return labels.reshape(grid, grid).to(dtype)


def data_extent(*coordinates: torch.Tensor) -> list[float]:
    """Bounding box (long_min, long_max, lat_min, lat_max) of one or more [n, 2] coordinate arrays."""
    stacked = torch.cat([torch.as_tensor(c, dtype=torch.float32).reshape(-1, 2) for c in coordinates])
    low, high = stacked.min(dim=0).values, stacked.max(dim=0).values
    return [float(low[0]), float(high[0]), float(low[1]), float(high[1])]
