"""Figures of Section 6, drawn from stored results only (result dicts and tensors; nothing here trains).

Every function returns a matplotlib Figure with labelled axes; given the outcomes it was drawn from, it adds
the provenance note under the figure. Given the results of several seeds (`seeds`: one result per seed, the
first seed first), a curve is the median over the seeds with a band from their minimum to their maximum, and a
final accuracy a point at the mean with an error bar over the min–max range; with one seed the figures are
drawn exactly as for a single run. Splits keep one colour each (train, validation, test) and countries
keep the colours of the data chapter's map.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from ex4.analysis.section6 import finite_history, last_metrics, smooth
from ex4.plots.style import add_provenance, apply_style, country_colors, series_colors

SPLITS = (("train", "training"), ("val", "validation"), ("test", "test"))
SPLIT_STYLES = {"train": "-", "val": "--", "test": ":"}
LOSS_LABEL = "loss (cross-entropy)"
ACC_LABEL = "accuracy (%)"


def _finish(fig: plt.Figure, outcomes: Iterable[Any], extra: str, right: float = 1.0) -> plt.Figure:
    """Lay out (leaving room for the provenance note and, if `right` < 1, a figure legend) and add the note."""
    outcomes = list(outcomes)
    fig.tight_layout(rect=(0, 0.05 if outcomes or extra else 0, right, 1))
    if outcomes:
        add_provenance(fig, outcomes, extra)
    elif extra:
        fig.text(0.01, 0.002, extra, fontsize=6.5, color="0.45", ha="left", va="bottom")
    return fig


def _epochs(values: Sequence[float]) -> np.ndarray:
    return np.arange(1, len(values) + 1)


def _split_colors() -> dict[str, tuple]:
    colors = series_colors(3)
    return {split: colors[i] for i, (split, _) in enumerate(SPLITS)}


def _integer_epochs(ax: plt.Axes) -> None:
    ax.xaxis.get_major_locator().set_params(integer=True)


BAND_ALPHA = 0.18


def _stack(series: Sequence[Sequence[float]]) -> np.ndarray:
    """Per-seed series of unequal length (a diverged run stops early) as one [seeds, epochs] array, NaN-padded."""
    length = max((len(values) for values in series), default=0)
    out = np.full((len(series), length), np.nan)
    for row, values in enumerate(series):
        out[row, :len(values)] = values
    return out


def _median_band(series: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, minimum and maximum per epoch over the seeds that still have a value there."""
    stacked = _stack(series)
    if stacked.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an epoch no seed reached stays NaN
        return np.nanmedian(stacked, axis=0), np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)


def _curve(ax: plt.Axes, series: Sequence[Sequence[float]], **kwargs: Any) -> np.ndarray:
    """One seed: the series as a line. Several: their median as a line and their min–max as a band."""
    if len(series) == 1:
        values = np.asarray(series[0], dtype=np.float64)
        ax.plot(_epochs(values), values, **kwargs)
        return values
    median, low, high = _median_band(series)
    lines = ax.plot(_epochs(median), median, **kwargs)
    ax.fill_between(_epochs(median), low, high, color=lines[0].get_color(), alpha=BAND_ALPHA, linewidth=0)
    return median


def _runs_over_seeds(results: Sequence[Mapping[str, Any]], label: str) -> list[Mapping[str, Any]]:
    return [run for result in results for run in result["runs"] if run["label"] == label]


def seeds_note(results: Sequence[Mapping[str, Any]]) -> str:
    """The caption line of a figure over several seeds (empty for one)."""
    if len(results) < 2:
        return ""
    return f"median over the {len(results)} seeds, band: min–max"


# ---- 6.1 -------------------------------------------------------------------------------------------------


def learning_rate_curves(result: Mapping[str, Any], baseline_loss: float | None = None,
                         outcomes: Iterable[Any] = (), extra: str = "",
                         seeds: Sequence[Mapping[str, Any]] = ()) -> plt.Figure:
    """Validation loss per epoch at each learning rate; extra rates dashed; diverged runs end in a cross (of the
    first seed; over several seeds the label counts the seeds in which the rate diverged)."""
    apply_style()
    results = list(seeds) or [result]
    runs = sorted(result["runs"], key=lambda run: -float(run["params"]["lr"]))
    colors = series_colors(len(runs))
    fig, ax = plt.subplots(figsize=(8.4, 4.2))
    steady = [v for each in results for run in each["runs"] if not run["diverged"]
              for v in finite_history(run, "val_loss")]
    top = max(steady) * 1.08 if steady else None
    for color, run in zip(colors, runs):
        over_seeds = _runs_over_seeds(results, run["label"])
        label = f"lr = {float(run['params']['lr']):g}" + (" (extra)" if run.get("extra") else "")
        diverged = sum(bool(each["diverged"]) for each in over_seeds)
        if len(results) > 1 and diverged:
            label += f", diverged in {diverged} of {len(results)} seeds"
        elif run["diverged"]:
            label += f", diverged in epoch {run['diverged_epoch']}"
        series = [finite_history(each, "val_loss") for each in over_seeds]
        series = [np.clip(values, None, top) if top is not None and values else values for values in series]
        shown = _curve(ax, series, color=color, linestyle="--" if run.get("extra") else "-",
                       marker="o" if len(series[0]) <= 12 else None, markersize=3, label=label)
        values = finite_history(run, "val_loss")
        shown = np.clip(values, None, top) if top is not None and values else values
        if run["diverged"]:
            epoch = int(run["diverged_epoch"] or len(values) + 1)
            if values:
                ax.plot([epoch - 1], [shown[-1]], marker="X", markersize=9, color=color, linestyle="none")
            else:
                ax.plot([epoch], [0.97], marker="X", markersize=9, color=color, linestyle="none",
                        transform=blended_transform_factory(ax.transData, ax.transAxes))
    if baseline_loss is not None:
        ax.axhline(baseline_loss, color="0.35", linewidth=1, linestyle=":",
                   label="class frequencies only (no location)")
    if top is not None:
        ax.set_ylim(top=top)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (cross-entropy)")
    _integer_epochs(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _finish(fig, outcomes, _joined(extra, seeds_note(results)))


def _joined(*notes: str) -> str:
    return " · ".join(note for note in notes if note)


def split_curves(run: Mapping[str, Any], title: str = "", outcomes: Iterable[Any] = (),
                 extra: str = "", seeds: Sequence[Mapping[str, Any]] = ()) -> plt.Figure:
    """Training, validation and test loss (left) and accuracy (right) per epoch of one run (`seeds`: the same
    run of every seed, for median and band)."""
    apply_style()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(8.6, 3.8))
    _draw_splits(run, loss_ax, acc_ax, over_seeds=seeds)
    loss_ax.legend(loc="best")
    if title:
        fig.suptitle(title)
    band = f"median over {len(seeds)} seeds, band: min–max" if len(seeds) > 1 else ""
    return _finish(fig, outcomes, _joined(extra, band))


def _draw_splits(run: Mapping[str, Any], loss_ax: plt.Axes, acc_ax: plt.Axes, color=None, style_by_split=False,
                 prefix: str = "", over_seeds: Sequence[Mapping[str, Any]] = ()) -> None:
    colors = _split_colors()
    runs = list(over_seeds) or [run]
    for split, name in SPLITS:
        loss = [finite_history(each, f"{split}_loss") for each in runs]
        acc = [[100 * v for v in finite_history(each, f"{split}_acc")] for each in runs]
        kwargs = {"color": color if color is not None else colors[split],
                  "linestyle": SPLIT_STYLES[split] if style_by_split else "-",
                  "label": f"{prefix}{name}"}
        _curve(loss_ax, loss, **kwargs)
        _curve(acc_ax, acc, **kwargs)
    for ax, label in ((loss_ax, LOSS_LABEL), (acc_ax, ACC_LABEL)):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        _integer_epochs(ax)


def batch_norm_curves(result: Mapping[str, Any], outcomes: Iterable[Any] = (), extra: str = "",
                      seeds: Sequence[Mapping[str, Any]] = ()) -> plt.Figure:
    """Loss and accuracy per epoch without and with batch norm: colour per variant, line style per split."""
    apply_style()
    results = list(seeds) or [result]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(8.6, 4.0))
    runs = sorted(result["runs"], key=lambda run: bool(run["arch"]["batch_norm"]))
    colors = series_colors(len(runs))
    for color, run in zip(colors, runs):
        _draw_splits(run, loss_ax, acc_ax, color=color, style_by_split=True,
                     over_seeds=_runs_over_seeds(results, run["label"]) if len(results) > 1 else ())
    variant_handles = [Line2D([], [], color=color, label=run["label"]) for color, run in zip(colors, runs)]
    split_handles = [Line2D([], [], color="0.3", linestyle=SPLIT_STYLES[split], label=name)
                     for split, name in SPLITS]
    loss_ax.legend(handles=variant_handles + split_handles, loc="best")
    return _finish(fig, outcomes, _joined(extra, seeds_note(results)))


def batch_size_curves(result: Mapping[str, Any], step_losses: Mapping[str, Any], outcomes: Iterable[Any] = (),
                      extra: str = "", max_raw_points: int = 4000,
                      seeds: Sequence[Mapping[str, Any]] = ()) -> plt.Figure:
    """Validation accuracy per epoch (left: over `seeds`, median and band, when given) and training loss per
    step, raw and smoothed (right: the first seed's steps, `step_losses`)."""
    apply_style()
    results = list(seeds) or [result]
    runs = sorted(result["runs"], key=lambda run: int(run["params"]["batch_size"]))
    colors = series_colors(len(runs))
    fig, (acc_ax, step_ax) = plt.subplots(1, 2, figsize=(9.2, 4.0))
    for color, run in zip(colors, runs):
        label = f"batch {run['params']['batch_size']}"
        acc = [[100 * v for v in finite_history(each, "val_acc")] for each in _runs_over_seeds(results, run["label"])]
        _curve(acc_ax, acc, color=color, marker="o" if len(acc[0]) <= 12 else None, markersize=4, label=label)
        losses = step_losses.get(run["label"])
        if losses is None:
            continue
        losses = np.asarray(losses, dtype=np.float64)
        steps = np.arange(1, len(losses) + 1)
        thin = max(1, len(losses) // max_raw_points)
        step_ax.plot(steps[::thin], losses[::thin], color=color, alpha=0.18, linewidth=0.6, rasterized=True)
        step_ax.plot(steps, smooth(losses), color=color, linewidth=1.6, label=label)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy (%)")
    _integer_epochs(acc_ax)
    acc_ax.legend(loc="best")
    step_ax.set_xlabel("optimisation step")
    step_ax.set_ylabel("training loss (cross-entropy)")
    step_ax.legend(loc="best", title="running mean")
    if len(results) > 1:
        step_ax.set_title(f"seed {results[0]['seed']}", loc="left")
    return _finish(fig, outcomes, _joined(extra, seeds_note(results)))


# ---- 6.2 -------------------------------------------------------------------------------------------------


def model_curves(result: Mapping[str, Any], labels: Sequence[str], titles: Sequence[str] | None = None,
                 outcomes: Iterable[Any] = (), extra: str = "", seeds: Sequence[Mapping[str, Any]] = ()) -> plt.Figure:
    """Loss and accuracy per epoch of the chosen runs: one row per run, all three splits in each panel."""
    apply_style()
    results = list(seeds) or [result]
    runs = {run["label"]: run for run in result["runs"]}
    fig, axes = plt.subplots(len(labels), 2, figsize=(8.6, 3.2 * len(labels)), squeeze=False)
    for row, label in enumerate(labels):
        _draw_splits(runs[label], axes[row, 0], axes[row, 1],
                     over_seeds=_runs_over_seeds(results, label) if len(results) > 1 else ())
        title = titles[row] if titles else label
        axes[row, 0].set_title(f"{title}: loss", loc="left")
        axes[row, 1].set_title(f"{title}: accuracy", loc="left")
    axes[0, 0].legend(loc="best")
    return _finish(fig, outcomes, _joined(extra, seeds_note(results)))


def decision_boundaries(grids: Mapping[str, Any], extent: Sequence[float], points: np.ndarray,
                        point_labels: np.ndarray, n_classes: int, titles: Mapping[str, str] | None = None,
                        max_points: int = 3000, seed: int = 0, outcomes: Iterable[Any] = (),
                        extra: str = "") -> plt.Figure:
    """Predicted country over the data's box, one panel per model, with test cities on top in their true colour."""
    apply_style()
    colors = country_colors(n_classes)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(points))[:max_points]) if len(points) > max_points else np.arange(len(points))
    labels = list(grids)
    fig, axes = plt.subplots(1, len(labels), figsize=(4.6 * len(labels), 4.4), squeeze=False)
    long_min, long_max, lat_min, lat_max = (float(v) for v in extent)
    aspect = 1 / max(math.cos(math.radians((lat_min + lat_max) / 2)), 0.2)
    for ax, label in zip(axes[0], labels):
        grid = np.asarray(grids[label], dtype=np.int64)
        ax.imshow(colors[grid], origin="lower", extent=(long_min, long_max, lat_min, lat_max), aspect=aspect,
                  interpolation="nearest", alpha=0.55)
        ax.scatter(points[keep, 0], points[keep, 1], c=colors[point_labels[keep]], s=4, linewidths=0.25,
                   edgecolors="0.1", rasterized=True)
        ax.set_xlim(long_min, long_max)
        ax.set_ylim(lat_min, lat_max)
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
        ax.set_title(titles[label] if titles else label, loc="left")
        ax.grid(False)
    return _finish(fig, outcomes, extra)


def accuracy_trend(result: Mapping[str, Any], labels: Sequence[str], axis: str, fixed: str = "",
                   outcomes: Iterable[Any] = (), extra: str = "", seeds: Sequence[Mapping[str, Any]] = ()) -> plt.Figure:
    """Final training, validation and test accuracy against depth or width (the other held fixed); over
    several `seeds` the mean with an error bar over the min–max range."""
    apply_style()
    results = list(seeds) or [result]
    runs = {run["label"]: run for run in result["runs"]}
    chosen = [runs[label] for label in labels]
    xs = [int(run["params"][axis]) for run in chosen]
    colors = _split_colors()
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    for split, name in SPLITS:
        if len(results) == 1:
            values = [last_metrics(run)[f"{split}_acc"] for run in chosen]
            ys = [np.nan if v is None else 100 * v for v in values]
            ax.plot(xs, ys, color=colors[split], marker="o", linestyle=SPLIT_STYLES[split], label=name)
            continue
        per_seed = _stack([[np.nan if v is None else 100 * v
                            for v in (last_metrics(run)[f"{split}_acc"] for run in _runs_over_seeds(results, label))]
                           for label in labels]).T  # [seeds, labels]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = (np.nanmean(per_seed, axis=0), np.nanmin(per_seed, axis=0),
                               np.nanmax(per_seed, axis=0))
        ax.errorbar(xs, mean, yerr=[mean - low, high - mean], color=colors[split], marker="o", capsize=3,
                    linestyle=SPLIT_STYLES[split], label=name)
    if axis == "width" and len(set(xs)) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.set_xlabel(f"{axis} ({'hidden layers' if axis == 'depth' else 'units per layer'})")
    ax.set_ylabel(ACC_LABEL)
    if fixed:
        ax.set_title(fixed, loc="left")
    ax.legend(loc="best")
    bars = f"mean over {len(results)} seeds, bars: min–max" if len(results) > 1 else ""
    return _finish(fig, outcomes, _joined(extra, bars))


def gradient_norms(result: Mapping[str, Any], floor: float, outcomes: Iterable[Any] = (),
                   extra: str = "", seeds: Sequence[Mapping[str, Any]] = ()) -> plt.Figure:
    """Mean squared gradient norm per epoch of each tracked layer, plain and residual, on a log axis.

    A log axis cannot show zero: exact zeros are drawn at `floor` (dotted line) with open markers.
    """
    apply_style()
    results = list(seeds) or [result]
    runs = sorted(result["runs"], key=lambda run: bool(run["arch"]["residual"]))
    layers = [int(layer) for layer in result["layers"]]
    colors = series_colors(len(layers))
    fig, axes = plt.subplots(1, len(runs), figsize=(4.4 * len(runs) + 2.0, 4.2), sharey=True, squeeze=False)
    top = max([floor, *(float(v) for each in results for run in each["runs"] for layer in layers
                        for v in run["grad_norms"][str(layer)] if v is not None and np.isfinite(v))])
    for ax, run in zip(axes[0], runs):
        for color, layer in zip(colors, layers):
            values = np.array([np.nan if v is None else float(v) for v in run["grad_norms"][str(layer)]])
            epochs = _epochs(values)
            zero = values == 0
            shown = np.where(zero, floor, values)
            ax.plot(epochs, shown, color=color, marker="o", markersize=3.5, label=f"layer {layer}")
            if len(results) > 1:  # the band of every seed's values (zeros at the floor) around the first seed's
                series = [np.where(np.asarray(values_, dtype=np.float64) == 0, floor, values_) for values_ in
                          ([np.nan if v is None else float(v) for v in each["grad_norms"][str(layer)]]
                           for each in _runs_over_seeds(results, run["label"]))]
                _, low, high = _median_band(series)
                ax.fill_between(_epochs(low), low, high, color=color, alpha=BAND_ALPHA, linewidth=0)
            if zero.any():
                ax.plot(epochs[zero], shown[zero], linestyle="none", marker="o", markersize=6,
                        markerfacecolor="white", markeredgecolor=color)
        ax.axhline(floor, color="0.4", linestyle=":", linewidth=1)
        ax.set_ylim(floor / 3, top * 3)  # explicit: a panel of exact zeros alone would have no height
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(run["label"], loc="left")
        _integer_epochs(ax)
    axes[0, 0].set_ylabel("mean squared gradient norm ‖∇W‖²")
    handles, names = axes[0, 0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.4", linestyle=":", marker="o", markerfacecolor="white",
                          markeredgecolor="0.4"))
    names.append("exactly zero\n(drawn at the floor)")
    fig.legend(handles, names, loc="center right", frameon=False)
    band = (f"lines: seed {results[0]['seed']}; band: min–max over {len(results)} seeds" if len(results) > 1
            else "")
    return _finish(fig, outcomes, _joined(extra, band), right=0.8)
