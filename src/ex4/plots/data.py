"""Figures of the data themselves: the cities as a map, a grid of real and fake samples."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ex4.plots.style import apply_style, country_colors


def city_map(x: np.ndarray, y: np.ndarray, class_names: Sequence[str], max_points: int = 40_000,
             seed: int = 0, note: str = "") -> plt.Figure:
    """Cities as points at (longitude, latitude), one colour per country, aspect corrected for latitude."""
    apply_style()
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(x))[:max_points] if len(x) > max_points else np.arange(len(x))
    colors = country_colors(len(class_names))
    fig, ax = plt.subplots(figsize=(8.2, 6.4))
    ax.scatter(x[keep, 0], x[keep, 1], c=colors[y[keep]], s=1.2, linewidths=0, rasterized=True)
    mid_lat = float(np.median(x[:, 1]))
    ax.set_aspect(1 / max(math.cos(math.radians(mid_lat)), 0.2))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    for label, name in enumerate(class_names):
        members = x[y == label]
        if len(members):
            lon, lat = np.median(members, axis=0)
            ax.annotate(name, (lon, lat), fontsize=6, ha="center", va="center", color="0.1",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6})
    ax.grid(alpha=0.3)
    if note:
        fig.text(0.01, 0.005, note, fontsize=6.5, color="0.45", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


def image_grid(images: np.ndarray, labels: np.ndarray, per_class: int = 8, title_real: str = "real",
               title_fake: str = "fake", seed: int = 0, note: str = "") -> plt.Figure:
    """Two rows per class of evenly chosen samples: real on top, fake below."""
    apply_style()
    rng = np.random.default_rng(seed)
    rows = []
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        rows.append(np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False)))
    columns = max(len(row) for row in rows)
    fig, axes = plt.subplots(2, columns, figsize=(1.1 * columns, 2.6), squeeze=False)
    for row_index, (row, title) in enumerate(zip(rows, (title_real, title_fake))):
        for column in range(columns):
            ax = axes[row_index, column]
            ax.axis("off")
            if column < len(row):
                ax.imshow(images[row[column]], interpolation="nearest")
        axes[row_index, 0].set_title(title, loc="left", fontsize=9)
    if note:
        fig.text(0.01, 0.005, note, fontsize=6.5, color="0.45", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
