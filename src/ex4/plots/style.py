"""One look for every figure: palette, country colours and the provenance note under each figure."""

from __future__ import annotations

from typing import Any, Iterable

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

PALETTE = "colorblind"


def apply_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.autolayout": False,
                         "axes.titlesize": "medium", "legend.fontsize": "small"})


def series_colors(n: int) -> list[tuple[float, float, float]]:
    """Colours for n curves (learning rates, batch sizes, shapes), always in the same order."""
    return sns.color_palette(PALETTE, n_colors=max(n, 1))


def country_colors(n_classes: int) -> np.ndarray:
    """An RGB row per class label, the same in every figure (map, decision boundaries)."""
    base = sns.color_palette("tab20", 20) + sns.color_palette("Set2", 8) + sns.color_palette("Dark2", 8)
    if n_classes > len(base):
        base = sns.color_palette("husl", n_classes)
    return np.asarray(base[:n_classes])


def provenance_text(outcomes: Iterable[Any], extra: str = "") -> str:
    """'result <key> · stored|computed now · <extra>' for the outcomes a figure or table was made from."""
    parts = []
    for outcome in outcomes:
        state = "stored" if outcome.hit else "computed now"
        parts.append(f"{outcome.experiment} {outcome.key[:12]} ({state})")
    text = "source: " + "; ".join(parts)
    return f"{text} · {extra}" if extra else text


def add_provenance(fig: plt.Figure, outcomes: Iterable[Any], extra: str = "") -> None:
    """A small grey note at the bottom of the figure naming the results it shows."""
    fig.text(0.01, 0.002, provenance_text(outcomes, extra), fontsize=6.5, color="0.45", ha="left", va="bottom",
             wrap=True)
