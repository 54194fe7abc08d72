"""Facts and verdicts of Section 6, computed from its stored results so that the chapters stay true on any data.

Pure functions over the plain result dicts of `ex4.experiments.section6` (no training, no sentences): which
learning rate won and which ones stalled or diverged, whether the long run over- or under-fits, what batch norm
changed, how many steps each batch size took, the shape grid with its region bounds, depth and width trends,
whether the gradients of the deep plain network vanished and whether residual connections fixed that, and sine
features against raw coordinates. Each group of facts is a small frozen dataclass of numbers, booleans and
small enums; the thresholds behind every verdict are named once below. The chapters (`report/section6-*.qmd`)
word what these facts mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ex4.models.mlp import IMPLICIT_SCALES

SINE_SCALES = IMPLICIT_SCALES  # the a's of the sine features sin(a·x)

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")

# ---- thresholds, each defined once ---------------------------------------------------------------------------
LEARNED_MARGIN = 0.01  # a run "learned" when its val loss ends this fraction below the class-frequency baseline
NEAR_BASELINE = 0.03  # a loss within this fraction of the baseline is "at the baseline" (what a dead net reaches)
HARDLY_MOVED = 0.01  # a loss that changed by less than this fraction over a run "hardly moved"
FLAT_TOLERANCE = 0.002  # relative change of a loss treated as no change
VANISHED_RATIO = 1e-6  # first-layer gradient this far below the last layer's: the signal did not come back
MAJORITY_MARGIN = 0.005  # within half a point of the majority-class rate counts as not having learned
SAME_ACCURACY = 5e-4  # accuracies closer than 0.05 pp are the same (ties, gaps, a band that did not move)
MANY_TIMES = 1.5  # an accuracy ratio worth stating as "n times"
TINY_SHARE, FAIR_SHARE = 0.01, 0.5  # share of its region bound a trained network uses: tiny / fair / most


class RateVerdict(StrEnum):
    DIVERGED = "diverged"
    STALLED = "stalled"  # ended no better than the class frequencies
    LEARNED = "learned"


class FitVerdict(StrEnum):
    DIVERGED = "diverged"
    OVERFITS = "overfits"
    IMPROVING = "still improving"
    CONVERGED = "converged"


class Baseline(StrEnum):
    """Where a final validation loss lies against the class-frequency baseline."""

    BELOW = "below"
    NEAR = "near"  # within NEAR_BASELINE of it
    ABOVE = "above"


class Usage(StrEnum):
    """How much of its region bound a trained network uses inside the data's box."""

    TINY = "tiny"
    FAIR = "fair"
    MOST = "most"


# ---- small helpers -----------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def runs_by_label(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {run["label"]: run for run in result["runs"]}


def finite_history(run: Mapping[str, Any], metric: str) -> list[float]:
    """The metric per epoch up to the first missing value (a diverged run's metrics are None from then on)."""
    values = []
    for value in run["history"][metric]:
        if not _finite(value):
            break
        values.append(float(value))
    return values


def last_metrics(run: Mapping[str, Any]) -> dict[str, float | None]:
    """Each metric's last finite value: the final one, or for a diverged run the one before it diverged."""
    out: dict[str, float | None] = {}
    for metric in METRICS:
        values = finite_history(run, metric)
        out[metric] = values[-1] if values else None
    return out


def prior_loss(train_labels: np.ndarray, eval_labels: np.ndarray, n_classes: int) -> float:
    """Cross-entropy on `eval_labels` of a model that ignores the input and predicts the training class
    frequencies (add-one smoothed so that a class missing from training costs a finite amount).

    This is what a network whose ReLUs all died can still reach through its output bias, so a run that does
    not end below it has learned nothing about where a city lies.
    """
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes).astype(np.float64) + 1.0
    log_prior = np.log(counts / counts.sum())
    return float(-log_prior[np.asarray(eval_labels, dtype=np.int64)].mean())


def majority_accuracy(train_labels: np.ndarray, eval_labels: np.ndarray) -> float:
    """Accuracy on `eval_labels` of always answering the most common training class: the floor a network
    that ignores its input reaches."""
    most_common = int(np.bincount(np.asarray(train_labels, dtype=np.int64)).argmax())
    return float(np.mean(np.asarray(eval_labels) == most_common))


def beats_majority(accuracy: float | None, majority: float | None) -> bool | None:
    """Whether `accuracy` clears the majority-class rate by more than MAJORITY_MARGIN (None: cannot be judged)."""
    if accuracy is None or majority is None:
        return None
    return accuracy > majority + MAJORITY_MARGIN


def versus_baseline(loss: float | None, baseline_loss: float | None) -> Baseline | None:
    if loss is None or baseline_loss is None:
        return None
    if abs(loss - baseline_loss) <= NEAR_BASELINE * baseline_loss:
        return Baseline.NEAR
    return Baseline.BELOW if loss < baseline_loss else Baseline.ABOVE


# ---- 6.1: learning rates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateRun:
    label: str
    lr: float
    extra: bool
    diverged: bool
    diverged_epoch: int | None
    first_val_loss: float | None
    final_val_loss: float | None  # last finite value
    final_val_acc: float | None
    verdict: RateVerdict
    baseline: Baseline | None  # where the final loss lies against the class-frequency baseline

    @property
    def relative_drop(self) -> float | None:
        """(first − final) / first validation loss; None for a diverged run or a missing value."""
        if self.verdict == RateVerdict.DIVERGED or not self.first_val_loss or self.final_val_loss is None:
            return None
        return (self.first_val_loss - self.final_val_loss) / self.first_val_loss

    @property
    def hardly_moved(self) -> bool:
        drop = self.relative_drop
        return drop is not None and abs(drop) < HARDLY_MOVED


@dataclass(frozen=True)
class LearningRateFacts:
    runs: tuple[RateRun, ...]  # largest rate first
    best: RateRun | None  # lowest final validation loss among the runs that did not diverge
    baseline_loss: float  # `prior_loss`: knowing only the class frequencies
    epochs: int

    @property
    def main(self) -> list[RateRun]:
        return [run for run in self.runs if not run.extra]

    @property
    def extra(self) -> list[RateRun]:
        return [run for run in self.runs if run.extra]

    @property
    def smallest(self) -> RateRun:
        return min(self.runs, key=lambda run: run.lr)

    def at(self, lr: float) -> RateRun:
        """The run at learning rate `lr` (to follow one rate over seeds)."""
        return next(run for run in self.runs if run.lr == lr)

    @property
    def best_learned(self) -> bool:
        return self.best is not None and self.best.verdict == RateVerdict.LEARNED

    @property
    def others_learned(self) -> list[RateRun]:
        """The rates besides the best one that also ended below the baseline."""
        return [run for run in self.runs if run.verdict == RateVerdict.LEARNED and run is not self.best]

    def failed(self, above: bool) -> list[RateRun]:
        """Runs that diverged or stalled, above (or below) the best rate."""
        if self.best is None:  # nothing to compare with: list them once, as too large
            return [run for run in self.runs if run.verdict != RateVerdict.LEARNED] if above else []
        return [run for run in self.runs if run.verdict != RateVerdict.LEARNED and (run.lr > self.best.lr) == above
                and run is not self.best]

    @property
    def too_large(self) -> list[RateRun]:
        return self.failed(above=True)

    @property
    def too_small(self) -> list[RateRun]:
        return self.failed(above=False)

    @property
    def dead(self) -> list[RateRun]:
        """Too-large rates that stalled at the baseline: every ReLU dead, only the output bias still learning."""
        return [run for run in self.too_large if run.verdict == RateVerdict.STALLED and run.baseline == Baseline.NEAR]


def learning_rate_facts(result: Mapping[str, Any], baseline_loss: float) -> LearningRateFacts:
    runs = []
    for run in result["runs"]:
        metrics = last_metrics(run)
        first = finite_history(run, "val_loss")
        final_loss = metrics["val_loss"]
        if run["diverged"]:
            verdict = RateVerdict.DIVERGED
        elif final_loss is not None and final_loss < baseline_loss * (1 - LEARNED_MARGIN):
            verdict = RateVerdict.LEARNED
        else:
            verdict = RateVerdict.STALLED
        runs.append(RateRun(run["label"], float(run["params"]["lr"]), bool(run.get("extra", False)),
                            bool(run["diverged"]), run.get("diverged_epoch"), first[0] if first else None,
                            final_loss, metrics["val_acc"], verdict, versus_baseline(final_loss, baseline_loss)))
    runs.sort(key=lambda run: -run.lr)
    candidates = [run for run in runs if run.verdict != RateVerdict.DIVERGED and run.final_val_loss is not None]
    best = min(candidates, key=lambda run: (run.final_val_loss, run.lr)) if candidates else None
    epochs = max(int(run["params"]["epochs"]) for run in result["runs"])
    return LearningRateFacts(tuple(runs), best, float(baseline_loss), epochs)


# ---- 6.1: the long run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LongRunFacts:
    epochs: int
    final: dict[str, float | None]
    diverged: bool
    best_val_epoch: int  # 1-based epoch of the lowest validation loss (running mean)
    window: int  # epochs at the end over which "still improving" and the accuracy wobble are judged
    val_loss_drop_in_window: float  # positive: the loss still fell over the last `window` epochs
    val_loss_rise_from_best: float
    val_acc_spread_in_window: float  # max - min validation accuracy over the window
    verdict: FitVerdict
    baseline_loss: float | None = None  # `prior_loss`, when the chapter gives it
    smoothing: int = 1  # epochs per running mean of the validation loss behind the verdict

    @property
    def gap_acc(self) -> float:
        """Training minus validation accuracy at the end."""
        return (self.final["train_acc"] or 0.0) - (self.final["val_acc"] or 0.0)

    @property
    def gap_loss(self) -> float:
        """Validation minus training loss at the end (positive: validation above)."""
        return (self.final["val_loss"] or 0.0) - (self.final["train_loss"] or 0.0)

    @property
    def stuck(self) -> bool:
        """Levelled off without getting below the class-frequency baseline."""
        loss = self.final["val_loss"]
        return (self.verdict == FitVerdict.CONVERGED and self.baseline_loss is not None and loss is not None
                and loss >= self.baseline_loss * (1 - LEARNED_MARGIN))

    @property
    def nearly_levelled(self) -> bool:
        """Converged, though the lowest loss is at the very end: it still fell, by no more than its wobble."""
        return (self.verdict == FitVerdict.CONVERGED and self.best_val_epoch == self.epochs
                and self.val_loss_drop_in_window > 0)

    @property
    def baseline(self) -> Baseline | None:
        return versus_baseline(self.final["val_loss"], self.baseline_loss)

    @property
    def accuracy_still(self) -> bool:
        """The validation accuracy did not move over the window."""
        return self.val_acc_spread_in_window < SAME_ACCURACY


def long_run_facts(run: Mapping[str, Any], baseline_loss: float | None = None) -> LongRunFacts:
    """Over- or under-fitting judged on the trend of the validation loss, not on single epochs.

    The loss of one epoch wobbles (SGD noise, cities near borders), so the verdict compares running means over
    `smoothing` epochs (a tenth of the run), and a change counts only when it exceeds three standard errors of
    such a mean as well as a relative tolerance: a spike in the last epoch is not over-fitting."""
    val_loss = finite_history(run, "val_loss")
    train_loss = finite_history(run, "train_loss")
    val_acc = finite_history(run, "val_acc")
    epochs = int(run["params"]["epochs"])
    window = max(1, min(len(val_loss) - 1, max(2, epochs // 10))) if len(val_loss) > 1 else 0
    smoothing = max(1, len(val_loss) // 10)
    means = np.convolve(val_loss, np.ones(smoothing) / smoothing, mode="valid") if val_loss else np.zeros(0)
    residuals = np.asarray(val_loss[smoothing - 1:]) - means if len(means) else np.zeros(0)
    noise = 3 * float(np.std(residuals)) / math.sqrt(smoothing) if smoothing > 1 else 0.0
    best_mean = int(np.argmin(means)) if len(means) else 0
    best_index = best_mean + smoothing - 1  # the epoch that closes the lowest running mean
    lag = min(window, len(means) - 1) if len(means) > 1 else 0
    drop = float(means[-1 - lag] - means[-1]) if lag else 0.0
    rise = float(means[-1] - means[best_mean]) if len(means) else 0.0
    spread = (max(val_acc[-window - 1:]) - min(val_acc[-window - 1:])) if window and val_acc else 0.0
    scale = abs(float(means[best_mean])) if len(means) else 1.0
    train_fell = len(train_loss) > best_index + 1 and train_loss[-1] < train_loss[best_index]
    if run["diverged"]:
        verdict = FitVerdict.DIVERGED
    elif rise > max(FLAT_TOLERANCE * 5 * scale, noise) and train_fell:
        verdict = FitVerdict.OVERFITS
    elif drop > max(FLAT_TOLERANCE * scale, noise):
        verdict = FitVerdict.IMPROVING
    else:
        verdict = FitVerdict.CONVERGED
    return LongRunFacts(epochs, last_metrics(run), bool(run["diverged"]), best_index + 1, window, drop, rise, spread,
                        verdict, baseline_loss, smoothing)


# ---- 6.1: batch norm ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchNormFacts:
    without: dict[str, float | None]
    with_bn: dict[str, float | None]
    without_diverged: bool
    with_diverged: bool

    @property
    def diverged(self) -> bool:
        return self.with_diverged or self.without_diverged

    @property
    def acc_gain(self) -> float:
        """Validation accuracy with batch norm minus without (a diverged run counts as zero accuracy)."""
        return (0.0 if self.with_diverged else self.with_bn["val_acc"] or 0.0) - (
            0.0 if self.without_diverged else self.without["val_acc"] or 0.0)

    @property
    def helped(self) -> bool:
        return self.acc_gain > 0

    @property
    def acc_ratio(self) -> float | None:
        base = self.without["val_acc"]
        return None if not base or self.without_diverged else (self.with_bn["val_acc"] or 0.0) / base

    @property
    def many_times(self) -> bool:
        """Batch norm multiplied the accuracy by at least MANY_TIMES."""
        return self.acc_ratio is not None and self.acc_ratio >= MANY_TIMES

    @property
    def val_above_train(self) -> bool | None:
        """With batch norm, the validation accuracy ends above the (epoch-averaged) training accuracy."""
        train, val = self.with_bn["train_acc"], self.with_bn["val_acc"]
        return None if train is None or val is None else val > train


def batch_norm_facts(result: Mapping[str, Any]) -> BatchNormFacts:
    runs = {bool(run["arch"]["batch_norm"]): run for run in result["runs"]}
    return BatchNormFacts(last_metrics(runs[False]), last_metrics(runs[True]), bool(runs[False]["diverged"]),
                          bool(runs[True]["diverged"]))


# ---- 6.1: batch sizes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSizeRow:
    label: str
    batch_size: int
    epochs: int
    iterations_per_epoch: int
    ceil_iterations: int  # ⌈n_train / batch size⌉, from the data
    last_batch: str
    total_steps: int
    final_val_acc: float | None
    best_val_acc: float | None
    best_epoch: int | None
    steps_to_best: int | None
    step_noise: float | None  # spread of the per-step training loss around its running mean (last epoch)


@dataclass(frozen=True)
class BatchSizeFacts:
    rows: tuple[BatchSizeRow, ...]  # by batch size
    n_train: int

    @property
    def best(self) -> BatchSizeRow:
        return max(self.rows, key=lambda row: -1.0 if row.final_val_acc is None else row.final_val_acc)

    def at(self, batch_size: int) -> BatchSizeRow:
        """The row of one batch size (to follow it over seeds)."""
        return next(row for row in self.rows if row.batch_size == batch_size)

    @property
    def most_steps(self) -> BatchSizeRow:
        return max(self.rows, key=lambda row: row.total_steps)

    @property
    def fewest_steps(self) -> BatchSizeRow:
        return min(self.rows, key=lambda row: row.total_steps)

    @property
    def step_ratio(self) -> float:
        return self.most_steps.total_steps / max(self.fewest_steps.total_steps, 1)

    @property
    def noise_falls_with_batch(self) -> bool:
        noise = [row.step_noise for row in self.rows if row.step_noise is not None]
        return len(noise) > 1 and all(a > b for a, b in zip(noise, noise[1:]))

    @property
    def ceil_matches(self) -> bool:
        """Every iteration count is ⌈n/b⌉, except a merged one-sample last batch (one fewer)."""
        return all(row.iterations_per_epoch == row.ceil_iterations - (row.last_batch == "merged")
                   for row in self.rows)

    @property
    def tied_best(self) -> list[BatchSizeRow]:
        """Every batch size whose final validation accuracy is within SAME_ACCURACY of the best one."""
        top = self.best.final_val_acc
        return [row for row in self.rows if top is not None and row.final_val_acc is not None
                and top - row.final_val_acc < SAME_ACCURACY]

    @property
    def tie(self) -> bool:
        return len(self.tied_best) > 1


def step_noise(losses: np.ndarray, iterations_per_epoch: int) -> float | None:
    """Step-to-step noise of the last epoch's training losses: std of consecutive differences / √2.

    Differences cancel the slow trend, so this measures the scatter of single steps even over a few steps."""
    losses = np.asarray(losses, dtype=np.float64)
    losses = losses[np.isfinite(losses)]
    last = losses[-iterations_per_epoch:] if iterations_per_epoch else losses
    if len(last) < 3:
        return None
    return float(np.std(np.diff(last)) / math.sqrt(2))


def smooth(values: np.ndarray, window: int | None = None) -> np.ndarray:
    """Centred running mean (window ≈ 2 % of the series, at least 1), same length as the input."""
    values = np.asarray(values, dtype=np.float64)
    window = window or max(1, len(values) // 50)
    return pd.Series(values).rolling(window, center=True, min_periods=1).mean().to_numpy()


def batch_size_facts(result: Mapping[str, Any], step_losses: Mapping[str, Any] | None = None) -> BatchSizeFacts:
    n_train = int(result["n_train"])
    rows = []
    for run in result["runs"]:
        size, epochs, per_epoch = int(run["params"]["batch_size"]), int(run["params"]["epochs"]), int(
            run["iterations_per_epoch"])
        acc = finite_history(run, "val_acc")
        best_index = int(np.argmax(acc)) if acc else None
        losses = step_losses.get(run["label"]) if step_losses else None
        noise = step_noise(np.asarray(losses), per_epoch) if losses is not None else None
        rows.append(BatchSizeRow(run["label"], size, epochs, per_epoch, -(-n_train // size),
                                 run.get("last_batch", "partial"), int(run.get("steps", per_epoch * epochs)),
                                 acc[-1] if acc and not run["diverged"] else None,
                                 acc[best_index] if best_index is not None else None,
                                 None if best_index is None else best_index + 1,
                                 None if best_index is None else (best_index + 1) * per_epoch, noise))
    rows.sort(key=lambda row: row.batch_size)
    return BatchSizeFacts(tuple(rows), n_train)


# ---- 6.2: the shape grid -----------------------------------------------------------------------------------


def parameter_count(arch: Mapping[str, Any]) -> int:
    """Trainable parameters of an MLP of this architecture (batch norm's running statistics not counted)."""
    from ex4.models.mlp import build_mlp

    return sum(parameter.numel() for parameter in build_mlp(**arch).parameters())


@dataclass(frozen=True)
class ShapeRow:
    label: str
    depth: int
    width: int
    parameters: int
    train_acc: float | None
    val_acc: float | None
    test_acc: float | None
    region_bound: int
    regions_counted: int
    fit: LongRunFacts | None = None  # its curves read as in the long run: over-fitting, still improving, …

    @property
    def diverged(self) -> bool:
        return self.train_acc is None or self.val_acc is None or (
            self.fit is not None and self.fit.verdict == FitVerdict.DIVERGED)

    @property
    def gap(self) -> float:
        """Training minus validation accuracy at the end (0 when either is missing)."""
        return (self.train_acc or 0.0) - (self.val_acc or 0.0)

    @property
    def train_ahead(self) -> bool:
        return self.gap >= SAME_ACCURACY

    @property
    def val_ahead(self) -> bool:
        return self.gap <= -SAME_ACCURACY

    @property
    def overfits(self) -> bool:
        return self.fit is not None and self.fit.verdict == FitVerdict.OVERFITS

    @property
    def still_improving(self) -> bool:
        return self.fit is not None and self.fit.verdict == FitVerdict.IMPROVING

    @property
    def region_share(self) -> float:
        """Regions counted on the mesh over the region bound."""
        return self.regions_counted / self.region_bound

    @property
    def usage(self) -> Usage:
        share = self.region_share
        return Usage.TINY if share < TINY_SHARE else Usage.FAIR if share < FAIR_SHARE else Usage.MOST

    @property
    def hidden_widths(self) -> list[int]:
        return [self.width] * self.depth


@dataclass(frozen=True)
class Trend:
    """Validation accuracy along one axis of the grid (depth at the base width, or width at the base depth)."""

    axis: str  # "depth" | "width"
    values: tuple[int, ...]
    accuracies: tuple[float, ...]

    @property
    def gains(self) -> list[float]:
        return [b - a for a, b in zip(self.accuracies, self.accuracies[1:])]

    @property
    def rising(self) -> bool:
        return len(self.gains) > 0 and all(gain > 0 for gain in self.gains)

    @property
    def falling(self) -> bool:
        return len(self.gains) > 0 and all(gain < 0 for gain in self.gains)

    @property
    def gains_per_unit(self) -> list[float]:
        """Gain per added layer (depth) or per doubling of the width (width)."""
        out = []
        for (a, b), gain in zip(zip(self.values, self.values[1:]), self.gains):
            step = (b - a) if self.axis == "depth" else math.log2(b / a)
            out.append(gain / step if step else 0.0)
        return out

    @property
    def diminishing(self) -> bool:
        per_unit = self.gains_per_unit
        return self.rising and len(per_unit) > 1 and all(b < a for a, b in zip(per_unit, per_unit[1:]))

    @property
    def best_value(self) -> int:
        return self.values[int(np.argmax(self.accuracies))]


@dataclass(frozen=True)
class ShapeFacts:
    rows: tuple[ShapeRow, ...]
    best: ShapeRow
    worst: ShapeRow
    depth: Trend
    width: Trend
    input_dimension: int

    def row(self, label: str) -> ShapeRow:
        """The row of one shape (to follow it over seeds)."""
        return next(row for row in self.rows if row.label == label)

    @property
    def within_bound(self) -> list[ShapeRow]:
        return [row for row in self.rows if row.regions_counted <= row.region_bound]

    @property
    def outside_bound(self) -> list[ShapeRow]:
        return [row for row in self.rows if row.regions_counted > row.region_bound]

    @property
    def all_within_bound(self) -> bool:
        return not self.outside_bound

    @property
    def worst_underfits(self) -> bool | None:
        """The worst model fits even its training data worse than the best (None: not comparable)."""
        worst, best = self.worst, self.best
        if worst.train_acc is None or best.train_acc is None or worst is best:
            return None
        return worst.train_acc < best.train_acc

    @property
    def best_has_more_regions(self) -> bool:
        return self.best.regions_counted > self.worst.regions_counted


def shape_facts(result: Mapping[str, Any]) -> ShapeFacts:
    from ex4.models.mlp import input_width

    rows = []
    for run in result["runs"]:
        metrics = last_metrics(run)
        rows.append(ShapeRow(run["label"], int(run["params"]["depth"]), int(run["params"]["width"]),
                             parameter_count(run["arch"]), metrics["train_acc"], metrics["val_acc"],
                             metrics["test_acc"], int(run["region_bound"]), int(run["regions_counted"]),
                             long_run_facts(run)))
    by_label = {row.label: row for row in rows}

    def trend(axis: str, labels: Sequence[str]) -> Trend:
        chosen = [by_label[label] for label in labels]
        return Trend(axis, tuple(getattr(row, axis) for row in chosen),
                     tuple(row.val_acc if row.val_acc is not None else 0.0 for row in chosen))

    n0 = input_width(bool(result["runs"][0]["arch"].get("implicit", False)))
    return ShapeFacts(tuple(rows), by_label[result["best"]], by_label[result["worst"]],
                      trend("depth", result["depth_series"]), trend("width", result["width_series"]), n0)


# ---- 6.2: gradients of the deep network --------------------------------------------------------------------


@dataclass(frozen=True)
class GradientRun:
    label: str
    layers: tuple[int, ...]
    mean_norms: dict[int, float]  # mean over the epochs (finite values) of the mean squared gradient norm
    zero_layers: tuple[int, ...]  # layers whose gradient was exactly zero in every epoch
    final_val_acc: float | None

    @property
    def first(self) -> float:
        return self.mean_norms[self.layers[0]]

    @property
    def last(self) -> float:
        return self.mean_norms[self.layers[-1]]

    @property
    def ratio(self) -> float | None:
        """First tracked layer's mean squared gradient norm over the last tracked layer's (None if the last is 0)."""
        return None if self.last == 0 else self.first / self.last

    @property
    def dead(self) -> bool:
        """Every tracked layer's gradient is exactly zero."""
        return len(self.zero_layers) == len(self.layers)

    @property
    def vanished(self) -> bool:
        return self.first == 0 or (self.ratio is not None and self.ratio < VANISHED_RATIO)


@dataclass(frozen=True)
class GradientFacts:
    plain: GradientRun
    residual: GradientRun
    floor: float  # zeros are drawn here on the log axis
    depth: int
    any_zero: bool  # some tracked value of either run is exactly zero
    epochs: int = 0
    majority: float | None = None  # val accuracy of always answering the most common training class

    @property
    def fixed(self) -> bool:
        """The plain network's gradients vanished and the residual network's did not."""
        return self.plain.vanished and not self.residual.vanished

    @property
    def residual_learns(self) -> bool | None:
        """Whether gradients that reach the input also bought accuracy: the residual network beats the majority
        class. None when that cannot be judged (no majority rate given, or its gradients vanished too)."""
        if self.residual.vanished:
            return None
        return beats_majority(self.residual.final_val_acc, self.majority)


def log_floor(values: Sequence[float]) -> float:
    """A value a decade below the smallest positive one (1e-30 when none is positive): where zeros are drawn."""
    positive = [v for v in values if _finite(v) and v > 0]
    if not positive:
        return 1e-30
    return 10.0 ** (math.floor(math.log10(min(positive))) - 1)


def gradient_facts(result: Mapping[str, Any], majority: float | None = None) -> GradientFacts:
    """`majority`: validation accuracy of always answering the most common training class (`majority_accuracy`),
    when the chapter has it, to say whether the gradients that flow also bought accuracy."""
    runs = {}
    everything: list[float] = []
    for run in result["runs"]:
        layers = tuple(int(layer) for layer in result["layers"])
        means, zeros = {}, []
        for layer in layers:
            values = [float(v) for v in run["grad_norms"][str(layer)] if _finite(v)]
            everything += values
            means[layer] = float(np.mean(values)) if values else 0.0
            if values and all(v == 0 for v in values):
                zeros.append(layer)
        runs[bool(run["arch"]["residual"])] = GradientRun(run["label"], layers, means, tuple(zeros),
                                                         last_metrics(run)["val_acc"])
    depth = int(result["runs"][0]["arch"]["depth"])
    epochs = int(result["runs"][0]["params"]["epochs"])
    return GradientFacts(runs[False], runs[True], log_floor(everything), depth, any(v == 0 for v in everything),
                         epochs, majority)


# ---- 6.2: implicit representation --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImplicitFacts:
    raw: dict[str, float | None]
    sine: dict[str, float | None]
    raw_regions: int
    sine_regions: int
    sine_features: int

    @property
    def gain(self) -> float:
        """Validation accuracy of the sine features minus that of the raw coordinates."""
        return (self.sine["val_acc"] or 0.0) - (self.raw["val_acc"] or 0.0)

    @property
    def sine_wins(self) -> bool:
        return self.gain > 0


def implicit_facts(result: Mapping[str, Any]) -> ImplicitFacts:
    runs = {bool(run["arch"]["implicit"]): run for run in result["runs"]}
    return ImplicitFacts(last_metrics(runs[False]), last_metrics(runs[True]), int(runs[False]["regions_counted"]),
                         int(runs[True]["regions_counted"]), int(runs[True].get("input_features", 20)))
