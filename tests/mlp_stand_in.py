"""Tiny stand-in cities shared by the MLP engine and kernel tests: uniform points in a Europe-sized box,
labelled by the nearest of N_CLASSES random centres (Voronoi cells), not the Europe set. 97 training rows:
batches of 16 leave one row, which batch norm merges into the previous batch."""

import torch

from ex4.train.mlp_engine import Splits

N_CLASSES = 5


def voronoi(n, generator):
    scale, offset = torch.tensor([40.0, 30.0]), torch.tensor([-10.0, 35.0])
    centres = torch.rand(N_CLASSES, 2, generator=torch.Generator().manual_seed(99)) * scale + offset
    x = torch.rand(n, 2, generator=generator) * scale + offset
    return x, torch.cdist(x, centres).argmin(dim=1)


def stand_in_splits() -> Splits:
    generator = torch.Generator().manual_seed(0)
    parts = {name: voronoi(n, generator) for name, n in (("train", 97), ("val", 40), ("test", 40))}
    return Splits.from_arrays(parts, N_CLASSES)
