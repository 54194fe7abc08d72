"""Figures of Section 7, drawn from a stored `cnn` result and images read from the data folder (nothing trains).

Each baseline keeps one colour in every figure; chance level (the majority-class rate and the range a
guesser reaches 95 % of the time) is drawn wherever accuracies are. Given the results of several seeds
(`seeds`: one result per seed, the first seed first), an accuracy is the mean over the seeds that trained the run,
with an error bar (a band, for a baseline without a learning rate) from the lowest to the highest.
"""

from __future__ import annotations

import textwrap
from typing import Any, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ex4.analysis.section7 import (BASELINE_ORDER, CLASS_NAMES, SIGNIFICANCE, TORCH_BASELINES, accuracy, chance,
                                   present_baselines)
from ex4.fmt import format_lr
from ex4.plots.style import add_provenance, apply_style, series_colors

BAND_ALPHA = 0.15  # the min–max band over seeds of a baseline without a learning rate

# how figures (and the chapter, for the same words) name each baseline
BASELINE_NAMES = {
    "xgboost": "XGBoost on pixels",
    "scratch": "ResNet18 from scratch",
    "linear_probe": "linear probe (frozen backbone)",
    "sklearn_probe": "scikit-learn logistic regression on backbone features",
    "finetune": "fine-tuned ResNet18",
}

SPLITS = (("val", "validation"), ("test", "test"))
LEGEND_HEIGHT = 0.3  # figure fraction below the accuracy figure's panels, for its legend and provenance


def baseline_name(baseline: str) -> str:
    return BASELINE_NAMES.get(baseline, baseline)


def baseline_colors(baselines: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per baseline: the course's five keep their place in the palette whatever ran."""
    extra = [name for name in baselines if name not in BASELINE_ORDER]
    colors = series_colors(len(BASELINE_ORDER) + len(extra))
    return {name: colors[index] for index, name in enumerate([*BASELINE_ORDER, *extra])}


def _finish(fig: plt.Figure, outcomes: Iterable[Any], extra: str, bottom: float = 0.06, right: float = 1.0,
            top: float = 1.0) -> plt.Figure:
    """Lay out inside (0, bottom, right, top), leaving room for the provenance note and a legend, and add the note."""
    outcomes = list(outcomes)
    fig.tight_layout(rect=(0, bottom if outcomes or extra else 0, right, top))
    if outcomes:
        add_provenance(fig, outcomes, extra)
    elif extra:
        fig.text(0.01, 0.002, extra, fontsize=6.5, color="0.45", ha="left", va="bottom", wrap=True)
    return fig


def _dodge(baseline: str) -> float:
    """A small horizontal offset (a fraction of a decade) so that runs of different baselines at the same rate
    and the same accuracy do not hide each other."""
    if baseline not in TORCH_BASELINES:
        return 1.0
    return 10 ** (0.03 * (TORCH_BASELINES.index(baseline) - (len(TORCH_BASELINES) - 1) / 2))


def _over_seeds(results: Sequence[Mapping[str, Any]], split: str) -> dict[str, tuple[float, float, float, bool]]:
    """Run label -> (mean, lowest, highest) accuracy in % over the seeds that trained it (NaN when never measured),
    and whether it diverged in any of them."""
    out = {}
    for label in dict.fromkeys(run["label"] for result in results for run in result["runs"]):
        runs = [run for result in results for run in result["runs"] if run["label"] == label]
        values = [100 * value for run in runs if (value := accuracy(run, split)) is not None]
        mean, low, high = ((float(np.mean(values)), min(values), max(values)) if values else (np.nan,) * 3)
        out[label] = (mean, low, high, any(run.get("diverged") for run in runs))
    return out


def accuracy_by_learning_rate(result: Mapping[str, Any], outcomes: Iterable[Any] = (),
                              extra: str = "", seeds: Sequence[Mapping[str, Any]] = ()) -> plt.Figure:
    """Validation and test accuracy of every run: torch baselines against the learning rate (log axis),
    the baselines without one as horizontal lines, chance level and the guessing range shaded. Over several
    `seeds`: means, with min–max error bars (bands for the horizontal lines)."""
    apply_style()
    results = list(seeds) or [result]
    several = len(results) > 1
    runs_of_all = [run for each in results for run in each["runs"]]
    union = {"runs": runs_of_all}
    baselines = present_baselines(union)
    colors = baseline_colors(baselines)
    rates = sorted({float(run["lr"]) for run in runs_of_all if run.get("lr") is not None})
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(8.8, 5.0), sharey=True, squeeze=False)
    handles: dict[str, Any] = {}
    for ax, (split, split_name) in zip(axes[0], SPLITS):
        guess = chance(result, split)
        if guess.n:
            ax.axhspan(100 * guess.majority_rate, 100 * guess.threshold, color="0.85", alpha=0.6, linewidth=0)
            ax.axhline(100 * guess.majority_rate, color="0.35", linestyle=":", linewidth=1.2)
        spreads = _over_seeds(results, split)
        for baseline in baselines:
            runs = list({run["label"]: run for run in runs_of_all if run["baseline"] == baseline}.values())
            color = colors[baseline]
            if baseline in TORCH_BASELINES and all(run.get("lr") is not None for run in runs):
                runs.sort(key=lambda run: float(run["lr"]))
                xs = np.array([float(run["lr"]) for run in runs]) * _dodge(baseline)
                ys, lows, highs, diverged = (np.array(column) for column in zip(*(spreads[run["label"]] for run in runs)))
                if several:
                    bars = ax.errorbar(xs, ys, yerr=[ys - lows, highs - ys], color=color, marker="o", markersize=5,
                                       linewidth=1.6, capsize=3)
                    line = bars.lines[0]
                else:
                    line, = ax.plot(xs, ys, color=color, marker="o", markersize=5, linewidth=1.6)
                diverged = diverged.astype(bool)
                if diverged.any():
                    ax.plot(xs[diverged], ys[diverged], linestyle="none", marker="X", markersize=10, color=color,
                            markeredgecolor="0.1")
                handles.setdefault(baseline, line)
            else:
                for run in runs:
                    mean, low, high, _ = spreads[run["label"]]
                    if not np.isnan(mean):
                        line = ax.axhline(mean, color=color, linestyle="--", linewidth=1.6)
                        if several and high > low:
                            ax.axhspan(low, high, color=color, alpha=BAND_ALPHA, linewidth=0)
                        handles.setdefault(baseline, line)
        ax.set_xscale("log")
        if rates:
            ax.set_xticks(rates)
            ax.set_xticklabels([format_lr(rate) for rate in rates])
            ax.set_xlim(min(rates) / 2.5, max(rates) * 2.5)
        else:
            ax.set_xlim(1e-6, 1.0)
        ax.minorticks_off()
        ax.set_xlabel("learning rate (Adam; log scale)")
        ax.set_title(f"{split_name} split", loc="left")
    axes[0, 0].set_ylabel("accuracy (%)")
    labels = [baseline_name(name) + ("" if name in TORCH_BASELINES else " (no learning rate)") for name in handles]
    legend_handles = list(handles.values())
    legend_handles += [Line2D([], [], color="0.35", linestyle=":", linewidth=1.2),
                       Patch(color="0.85", alpha=0.6)]
    labels += ["chance: majority-class rate",
               f"range of guessing (a guesser lands above it {100 * SIGNIFICANCE:g} % of the time)"]
    if any(run.get("diverged") for run in runs_of_all):
        legend_handles.append(Line2D([], [], linestyle="none", marker="X", color="0.3", markersize=8))
        labels.append("diverged (non-finite outputs)" + (" in at least one seed" if several else ""))
    fig.legend(legend_handles, [textwrap.fill(label, 34) for label in labels], loc="lower center",
               bbox_to_anchor=(0.5, 0.04), ncol=3, frameon=False, fontsize="small")
    bars = f"mean over {len(results)} seeds, bars and bands: min–max" if several else ""
    return _finish(fig, outcomes, " · ".join(part for part in (extra, bars) if part), bottom=LEGEND_HEIGHT)


def _probability(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def mistakes_grid(images: np.ndarray, items: Sequence[Mapping[str, Any]], best_label: str, worst_label: str,
                  outcomes: Iterable[Any] = (), extra: str = "", seed: int | None = None) -> plt.Figure:
    """Test images the best run gets right and the worst gets wrong, each with its true label and both runs'
    probability that it is fake (above 0.5 means the run calls it fake). `seed`: the seed whose runs these are,
    named in the title (when the chapter has several)."""
    apply_style()
    count = len(items)
    columns = max(count, 1)
    fig, axes = plt.subplots(1, columns, figsize=(max(1.9 * columns, 4.6), 2.9), squeeze=False)
    if count == 0:
        ax = axes[0, 0]
        ax.axis("off")
        ax.text(0.5, 0.5, f"no test image is classified correctly by\n{best_label}\nand wrongly by\n{worst_label}",
                ha="center", va="center", fontsize=9, transform=ax.transAxes)
    for ax, image, item in zip(axes[0], images, items):
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        ax.set_title(f"true: {CLASS_NAMES[int(item['true'])]}", fontsize=9)
        ax.set_xlabel(f"P(fake): best {_probability(item.get('p_best'))}\n"
                      f"worst {_probability(item.get('p_worst'))}", fontsize=8)
    fig.suptitle(("" if seed is None else f"seed {seed}   ·   ") + f"best: {best_label}   ·   worst: {worst_label}",
                 fontsize=9)
    return _finish(fig, outcomes, extra, top=0.95)
