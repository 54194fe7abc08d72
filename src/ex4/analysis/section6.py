"""The claims Section 6 makes, computed from its stored results so the sentences stay true on any data.

Pure functions over the plain result dicts of `ex4.experiments.section6` (no training): which learning rate
won and which ones stalled or diverged, whether the long run over- or under-fits, what batch norm changed,
how many steps each batch size took, the shape grid with its region bounds, depth and width trends, whether
the gradients of the deep plain network vanished and whether residual connections fixed that, and sine
features against raw coordinates. Each fact is a small frozen dataclass; the sentences that depend on the
data are methods of it, so they are unit-tested and the chapters stay thin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import comb
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ex4 import fmt
from ex4.models.mlp import IMPLICIT_SCALES

SINE_SCALES = IMPLICIT_SCALES  # the a's of the sine features sin(a·x), for the chapter's prose

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
LEARNED_MARGIN = 0.01  # a run "learned" when its val loss ends this fraction below the class-frequency baseline
VANISHED_RATIO = 1e-6  # first-layer gradient this far below the last layer's: the signal did not come back
FLAT_TOLERANCE = 0.002  # relative change of a loss treated as no change


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


def data_note(result: Mapping[str, Any], folder: str) -> str:
    """Provenance text for figures: the data folder and the training rows the runs saw."""
    return f"data: {folder} · {fmt.num(int(result['n_train']))} training rows · seed {result['seed']}"


def engine_sentence(result: Mapping[str, Any]) -> str:
    """Which engine trained the runs (the engines agree up to float32 rounding, which unstable runs amplify)."""
    engine = result.get("engine")
    if engine == "kernel":
        return ("Every run was trained by ex4's compiled CPU kernel (`mlp_engine` resolved to `kernel`), which "
                "computes what PyTorch computes up to float32 rounding; `mlp_engine: torch` reproduces a textbook "
                "PyTorch loop bit for bit, more slowly.")
    if engine == "torch":
        return "Every run was trained by ex4's PyTorch engine (`mlp_engine` resolved to `torch`)."
    return ""


def format_count(value: int | None) -> str:
    """Counts for tables: thousands separators up to ten million, then mantissa × 10^exponent."""
    if value is None:
        return "n/a"
    if abs(value) < 10_000_000:
        return f"{int(value):,}"
    exponent = int(math.floor(math.log10(abs(value))))
    mantissa = value / 10 ** exponent
    superscript = str(exponent).translate(str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻"))
    return f"{mantissa:.2f} × 10{superscript}"


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
    verdict: str  # "diverged" | "stalled" (no better than the class frequencies) | "learned"


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

    def failed(self, above: bool) -> list[RateRun]:
        """Runs that diverged or stalled, above (or below) the best rate."""
        if self.best is None:  # nothing to compare with: list them once, as too large
            return [run for run in self.runs if run.verdict != "learned"] if above else []
        return [run for run in self.runs if run.verdict != "learned" and (run.lr > self.best.lr) == above
                and run is not self.best]

    def best_sentence(self) -> str:
        if self.best is None:
            return "Every learning rate diverged, so none can be called best."
        best = self.best
        text = (f"The lowest validation loss after {fmt.num(self.epochs)} epochs, "
                f"{fmt.num(best.final_val_loss)}, belongs to lr = {fmt.lr(best.lr)} "
                f"({fmt.pct(best.final_val_acc)} validation accuracy)")
        if best.verdict == "learned":
            return text + (f", clearly below the {fmt.num(self.baseline_loss)} that knowing only how common each "
                           "country is would give.")
        return text + (f"; yet even that is not below the {fmt.num(self.baseline_loss)} of a model that knows only "
                       "how common each country is, so no rate learned much in this many epochs.")

    def others_sentence(self) -> str:
        """The rates besides the best one that also ended below the baseline."""
        others = [run for run in self.runs if run.verdict == "learned" and run is not self.best]
        if not others:
            return ""
        described = fmt.listing(f"lr = {fmt.lr(run.lr)} ({fmt.num(run.final_val_loss)})" for run in others)
        verb = "ends" if len(others) == 1 else "end"
        return f"Below the baseline as well, though higher, {verb} {described}."

    def failure_sentence(self) -> str:
        parts = []
        for above, word in ((True, "too large"), (False, "too small")):
            runs = self.failed(above)
            if not runs:
                continue
            described = [f"lr = {fmt.lr(run.lr)} ({_rate_state(run)})" for run in runs]
            parts.append(f"{fmt.listing(described)} {'is' if len(runs) == 1 else 'are'} {word}")
        if not parts:
            return "No rate failed: every one ended below the class-frequency baseline."
        return "Judged against that baseline, " + "; ".join(parts) + "."

    def at_baseline(self, run: RateRun) -> bool:
        """A run that ended within a few percent of the class-frequency baseline (what a dead network reaches)."""
        return run.final_val_loss is not None and abs(run.final_val_loss - self.baseline_loss) <= (
            0.03 * self.baseline_loss)

    def dead_sentence(self) -> str:
        """The too-large rates that stalled at the baseline: every ReLU dead, only the output bias learning."""
        runs = [run for run in self.failed(above=True) if run.verdict == "stalled" and self.at_baseline(run)]
        if not runs:
            return ""
        rates = fmt.listing(f"lr = {fmt.lr(run.lr)}" for run in runs)
        verb = "ends" if len(runs) == 1 else "end"
        return (f"With {rates} the loss {verb} within a few percent of that baseline: the signature of a network "
                "whose ReLUs have all died after a few oversized steps, so that its output no longer depends on the "
                "input and only the output bias, which learns the class frequencies, still trains.")

    def smallest_sentence(self) -> str:
        run = self.smallest
        if run.verdict == "diverged" or run.first_val_loss is None or run.final_val_loss is None:
            return ""
        change = (run.first_val_loss - run.final_val_loss) / run.first_val_loss
        moved = "hardly moves" if abs(change) < 0.01 else "moves"
        return (f"At the smallest rate, lr = {fmt.lr(run.lr)}, the loss {moved}: from {fmt.num(run.first_val_loss)} "
                f"after the first epoch to {fmt.num(run.final_val_loss)} after the last "
                f"({fmt.pct(change)} lower), close to where every run starts, since all of them begin from the "
                "same initial weights.")


def _rate_state(run: RateRun) -> str:
    if run.verdict == "diverged":
        return f"diverged in epoch {run.diverged_epoch}"
    return f"stalled at {fmt.num(run.final_val_loss)}"


def learning_rate_facts(result: Mapping[str, Any], baseline_loss: float) -> LearningRateFacts:
    runs = []
    for run in result["runs"]:
        metrics = last_metrics(run)
        first = finite_history(run, "val_loss")
        final_loss = metrics["val_loss"]
        if run["diverged"]:
            verdict = "diverged"
        elif final_loss is not None and final_loss < baseline_loss * (1 - LEARNED_MARGIN):
            verdict = "learned"
        else:
            verdict = "stalled"
        runs.append(RateRun(run["label"], float(run["params"]["lr"]), bool(run.get("extra", False)),
                            bool(run["diverged"]), run.get("diverged_epoch"), first[0] if first else None,
                            final_loss, metrics["val_acc"], verdict))
    runs.sort(key=lambda run: -run.lr)
    candidates = [run for run in runs if run.verdict != "diverged" and run.final_val_loss is not None]
    best = min(candidates, key=lambda run: (run.final_val_loss, run.lr)) if candidates else None
    epochs = max(int(run["params"]["epochs"]) for run in result["runs"])
    return LearningRateFacts(tuple(runs), best, float(baseline_loss), epochs)


# ---- 6.1: the long run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LongRunFacts:
    epochs: int
    final: dict[str, float | None]
    diverged: bool
    best_val_epoch: int  # 1-based epoch of the lowest validation loss
    window: int  # epochs at the end over which "still improving" and the accuracy wobble are judged
    val_loss_drop_in_window: float  # positive: the loss still fell over the last `window` epochs
    val_loss_rise_from_best: float
    val_acc_spread_in_window: float  # max - min validation accuracy over the window
    verdict: str  # "overfits" | "still improving" | "converged" | "diverged"
    baseline_loss: float | None = None  # `prior_loss`, when the chapter gives it
    smoothing: int = 1  # epochs per running mean of the validation loss behind the verdict

    @property
    def loss_phrase(self) -> str:
        """What the verdict was judged on, for the sentences."""
        if self.smoothing == 1:
            return "the validation loss"
        return f"the validation loss (as a running mean over {fmt.num(self.smoothing)} epochs)"

    def baseline_sentence(self) -> str:
        loss = self.final["val_loss"]
        if self.baseline_loss is None or loss is None or self.stuck:
            return ""
        if abs(loss - self.baseline_loss) <= 0.03 * self.baseline_loss:
            return (f"Its validation loss, {fmt.num(loss)}, is still within a few percent of the "
                    f"{fmt.num(self.baseline_loss)} of predicting the class frequencies alone: so far the network has "
                    "learned little beyond how common each country is.")
        if loss < self.baseline_loss:
            return (f"Its validation loss, {fmt.num(loss)}, is well below the {fmt.num(self.baseline_loss)} of "
                    "predicting the class frequencies alone, so it has learned where countries lie.")
        return (f"Its validation loss, {fmt.num(loss)}, is still above the {fmt.num(self.baseline_loss)} of "
                "predicting the class frequencies alone.")

    @property
    def gap_acc(self) -> float:
        return (self.final["train_acc"] or 0.0) - (self.final["val_acc"] or 0.0)

    @property
    def gap_loss(self) -> float:
        return (self.final["val_loss"] or 0.0) - (self.final["train_loss"] or 0.0)

    def verdict_sentence(self) -> str:
        gap = (f"training accuracy minus validation accuracy is {fmt.pp(self.gap_acc)}, and the validation loss "
               f"ends {fmt.num(abs(self.gap_loss))} {'above' if self.gap_loss >= 0 else 'below'} the training loss")
        if self.verdict == "diverged":
            return f"The run diverged; its last finite values say {gap}."
        if self.verdict == "overfits":
            return (f"The run over-fits: {self.loss_phrase} was lowest in epoch {self.best_val_epoch} and has "
                    f"since risen by {fmt.num(self.val_loss_rise_from_best)} while the training loss kept falling; "
                    f"{gap}.")
        if self.verdict == "still improving":
            return (f"There is no sign of over-fitting — {gap} — and {self.loss_phrase} still fell by "
                    f"{fmt.num(self.val_loss_drop_in_window)} over the last {fmt.num(self.window)} epochs: "
                    "the model under-fits, and more epochs or a larger step would still pay.")
        if self.stuck:
            return (f"The validation loss barely moved over the last {fmt.num(self.window)} epochs, yet at "
                    f"{fmt.num(self.final['val_loss'])} it is no lower than the {fmt.num(self.baseline_loss)} of "
                    f"predicting the class frequencies alone: the run is stuck rather than finished ({gap}).")
        subject = self.loss_phrase[0].upper() + self.loss_phrase[1:]
        if self.best_val_epoch == self.epochs and self.val_loss_drop_in_window > 0:
            return (f"{subject} is lowest at the end, but over the last {fmt.num(self.window)} epochs it fell by only "
                    f"{fmt.num(self.val_loss_drop_in_window)}, no more than its epoch-to-epoch wobble: the run has "
                    f"nearly levelled off, and {gap}; neither over- nor under-fitting shows clearly.")
        return (f"{subject} has levelled off (lowest in epoch {self.best_val_epoch}) and {gap}: neither over- nor "
                "under-fitting shows.")

    @property
    def stuck(self) -> bool:
        """Levelled off without getting below the class-frequency baseline."""
        loss = self.final["val_loss"]
        return (self.verdict == "converged" and self.baseline_loss is not None and loss is not None
                and loss >= self.baseline_loss * (1 - LEARNED_MARGIN))


    def wobble_sentence(self) -> str:
        if not self.window:
            return ""
        if self.val_acc_spread_in_window < 5e-4:
            return f"The validation accuracy did not move over the last {fmt.num(self.window)} epochs."
        return (f"Over the last {fmt.num(self.window)} epochs the validation accuracy moved within a band of "
                f"{fmt.pp(self.val_acc_spread_in_window).lstrip('+')} while the validation loss changed by "
                f"{fmt.num(abs(self.val_loss_drop_in_window))}: accuracy counts only which side of a decision boundary "
                "a city falls on, so cities close to a border can flip between epochs while the loss barely moves.")


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
        verdict = "diverged"
    elif rise > max(FLAT_TOLERANCE * 5 * scale, noise) and train_fell:
        verdict = "overfits"
    elif drop > max(FLAT_TOLERANCE * scale, noise):
        verdict = "still improving"
    else:
        verdict = "converged"
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

    def verdict_sentence(self) -> str:
        change = (f"validation accuracy {fmt.pct(self.without['val_acc'])} without it and "
                  f"{fmt.pct(self.with_bn['val_acc'])} with it ({fmt.pp(self.acc_gain)}), validation loss "
                  f"{fmt.num(self.without['val_loss'])} and {fmt.num(self.with_bn['val_loss'])}")
        if self.with_diverged or self.without_diverged:
            which = "with" if self.with_diverged else "without"
            return f"The run {which} batch norm diverged; the last finite values were {change}."
        if not self.helped:
            return f"Batch norm did not help here: {change}."
        ratio = self.acc_ratio
        scale = f", {fmt.num(ratio, 2)} times the accuracy" if ratio and ratio >= 1.5 else ""
        return f"Batch norm helped: {change}{scale}."

    def train_val_sentence(self) -> str:
        train, val = self.with_bn["train_acc"], self.with_bn["val_acc"]
        if train is None or val is None:
            return ""
        if val > train:
            return (f"With batch norm the validation accuracy ({fmt.pct(val)}) ends above the training accuracy "
                    f"({fmt.pct(train)}). The training figure is averaged over the epoch's batches in training "
                    "mode, where each batch is normalised by its own statistics while the weights still move; "
                    "evaluation uses the running averages of the whole training set, a steadier normalisation.")
        return (f"With batch norm the training accuracy ({fmt.pct(train)}) stays above the validation accuracy "
                f"({fmt.pct(val)}), by {fmt.pp(train - val)}.")


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

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({
            "batch size": [row.batch_size for row in self.rows],
            "iterations per epoch": [fmt.num(row.iterations_per_epoch) for row in self.rows],
            "epochs": [row.epochs for row in self.rows],
            "total steps": [fmt.num(row.total_steps) for row in self.rows],
            "final val acc": [fmt.pct(row.final_val_acc) for row in self.rows],
        })

    def steps_sentence(self) -> str:
        most, fewest = self.most_steps, self.fewest_steps
        return (f"Batch size {most.batch_size} took {fmt.num(most.total_steps)} optimisation steps in "
                f"{_epochs(most.epochs)}; batch size {fewest.batch_size} took {fmt.num(fewest.total_steps)} in "
                f"{_epochs(fewest.epochs)} — {fmt.num(self.step_ratio, 2)} times fewer, at the same learning rate.")

    @property
    def tied_best(self) -> list[BatchSizeRow]:
        """Every batch size whose final validation accuracy is within 0.05 pp of the best one."""
        top = self.best.final_val_acc
        return [row for row in self.rows if top is not None and row.final_val_acc is not None
                and top - row.final_val_acc < 5e-4]

    def best_sentence(self) -> str:
        best, tied = self.best, self.tied_best
        if len(tied) > 1:
            sizes = fmt.listing(str(row.batch_size) for row in tied)
            return (f"Batch sizes {sizes} end at the same validation accuracy, {fmt.pct(best.final_val_acc)}: "
                    "none of them is ahead at this setting.")
        text = (f"The best final validation accuracy, {fmt.pct(best.final_val_acc)}, came from batch size "
                f"{best.batch_size}")
        if best.steps_to_best is not None:
            text += (f", whose accuracy peaked ({fmt.pct(best.best_val_acc)}) in epoch {best.best_epoch}, after "
                     f"{fmt.num(best.steps_to_best)} steps")
        return text + "."

    def noise_sentence(self) -> str:
        if self.noise_falls_with_batch:
            return ("The per-step loss gets steadier as the batch grows: averaging over more samples gives a "
                    "gradient estimate with less variance.")
        return ("The per-step loss is not uniformly steadier for larger batches here, though averaging over more "
                "samples does lower the variance of each gradient estimate.")


def _epochs(count: int) -> str:
    return "a single epoch" if count == 1 else f"{fmt.num(count)} epochs"


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

    def sentence(self) -> str:
        if len(self.values) < 2:
            return f"The grid has a single {self.axis} at this setting, so there is no trend to read."
        unit = "added layer" if self.axis == "depth" else "doubling of the width"
        points = fmt.listing(f"{fmt.pct(acc)} at {self.axis} {value}"
                             for value, acc in zip(self.values, self.accuracies))
        if self.rising:
            shape = ("rises at every step but by less per " + unit + " each time: diminishing returns"
                     if self.diminishing else "rises at every step")
        elif self.falling:
            shape = "falls at every step"
        else:
            shape = f"does not move in one direction; it is highest at {self.axis} {self.best_value}"
        per_unit = fmt.listing(fmt.pp(gain) for gain in self.gains_per_unit)
        return (f"Validation accuracy {shape} ({points}; per {unit}: {per_unit}).")


@dataclass(frozen=True)
class ShapeFacts:
    rows: tuple[ShapeRow, ...]
    best: ShapeRow
    worst: ShapeRow
    depth: Trend
    width: Trend
    input_dimension: int

    @property
    def within_bound(self) -> list[ShapeRow]:
        return [row for row in self.rows if row.regions_counted <= row.region_bound]

    @property
    def all_within_bound(self) -> bool:
        return len(self.within_bound) == len(self.rows)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({
            "depth": [row.depth for row in self.rows],
            "width": [row.width for row in self.rows],
            "parameters": [fmt.num(row.parameters) for row in self.rows],
            "train acc": [fmt.pct(row.train_acc) for row in self.rows],
            "val acc": [fmt.pct(row.val_acc) for row in self.rows],
            "test acc": [fmt.pct(row.test_acc) for row in self.rows],
            "region bound": [format_count(row.region_bound) for row in self.rows],
            "regions counted": [fmt.num(row.regions_counted) for row in self.rows],
        })

    def fit_sentence(self, row: ShapeRow, subject: str) -> str:
        """Over-fitting of one model, read from its curves (validation loss off its minimum while the training
        loss falls), with its train–validation accuracy gap: '<subject> …'."""
        if row.train_acc is None or row.val_acc is None or (row.fit and row.fit.verdict == "diverged"):
            return f"{subject} diverged."
        gap = row.train_acc - row.val_acc
        if gap >= 5e-4:
            spread = f"is {fmt.pp(gap).lstrip('+')} more accurate on its training data than on the validation split"
        elif gap <= -5e-4:
            spread = (f"is {fmt.pp(-gap).lstrip('+')} more accurate on the validation split than on its training "
                      "data (whose accuracy is averaged over each epoch in training mode)")
        else:
            spread = "is as accurate on the validation split as on its training data"
        if row.fit is not None and row.fit.verdict == "overfits":
            return (f"{subject} {spread}, and it over-fits: its validation loss was lowest in epoch "
                    f"{row.fit.best_val_epoch} and then rose by {fmt.num(row.fit.val_loss_rise_from_best)} while the "
                    "training loss kept falling.")
        state = ("its validation loss was still falling at the end" if row.fit is not None
                 and row.fit.verdict == "still improving" else "its validation loss did not turn upwards")
        return f"{subject} {spread}; {state}, so it does not over-fit."

    def capacity_sentence(self) -> str:
        """Whether the worst model is held back by capacity: it fits even its training data worse than the best."""
        worst, best = self.worst, self.best
        if worst.train_acc is None or best.train_acc is None or worst is best:
            return ""
        if worst.train_acc < best.train_acc:
            return (f"The worst model reaches only {fmt.pct(worst.train_acc)} on its own training data against "
                    f"{fmt.pct(best.train_acc)} for the best: it under-fits, held back by what it can represent "
                    "rather than by over-fitting.")
        return (f"The worst model fits its training data as well as the best ({fmt.pct(worst.train_acc)} against "
                f"{fmt.pct(best.train_acc)}) but generalises worse: its problem is over-fitting, not capacity.")

    def pieces_sentence(self) -> str:
        """Compare the regions the best and the worst model actually cut the data's box into."""
        worst, best = self.worst, self.best
        if best.regions_counted > worst.regions_counted:
            return (f"The worst model's map is cut into few, straight-edged pieces ({fmt.num(worst.regions_counted)} "
                    f"linear regions on the mesh of @sec-mlp-regions); the best model's borders bend and break into "
                    f"{fmt.num(best.regions_counted)}.")
        return (f"Here the worst model even cuts the map into as many linear pieces as the best "
                f"({fmt.num(worst.regions_counted)} against {fmt.num(best.regions_counted)} on the mesh of "
                "@sec-mlp-regions): what separates them is where the borders lie, not how many there are.")

    def usage_sentence(self, row: ShapeRow) -> str:
        share = row.regions_counted / row.region_bound
        used = "a tiny share" if share < 0.01 else "a fair share" if share < 0.5 else "most"
        return (f"{row.depth} × {row.width} has a bound of {format_count(row.region_bound)} and "
                f"{fmt.num(row.regions_counted)} regions counted ({fmt.pct(share, 2) if share >= 1e-4 else f'{share:.1e}'} "
                f"of the bound): inside the data's box the trained network uses {used} of what its shape allows.")


def region_intro_sentence(n0: int, widths: Sequence[int]) -> str:
    """'The worst model has … so $n_0 = 2$ and $n_1 = 16$:' — the shape the derivation below substitutes."""
    if len(widths) == 1:
        return (f"The worst model has a single hidden layer of {widths[0]} units on {n0} inputs, so "
                f"$n_0 = {n0}$ and $n_1 = {widths[0]}$:")
    uniform = len(set(widths)) == 1
    layers = (f"$L = {len(widths)}$ hidden layers of $n_l = {widths[0]}$ units" if uniform
              else f"$L = {len(widths)}$ hidden layers of widths {', '.join(str(w) for w in widths)}")
    return (f"The worst model is deeper than one layer, so the bound is Serra et al.'s, evaluated at "
            f"$n_0 = {n0}$ inputs and {layers}:")


def shape_facts(result: Mapping[str, Any]) -> ShapeFacts:
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

    from ex4.models.mlp import input_width

    n0 = input_width(bool(result["runs"][0]["arch"].get("implicit", False)))
    return ShapeFacts(tuple(rows), by_label[result["best"]], by_label[result["worst"]],
                      trend("depth", result["depth_series"]), trend("width", result["width_series"]), n0)


# ---- 6.2: the linear-region bound, in math -----------------------------------------------------------------


def region_bound_math(n0: int, widths: Sequence[int]) -> str:
    """A display-math block deriving the region bound of a ReLU MLP with input dimension n0 and these widths.

    One hidden layer: the sum of binomials written out term by term. Deeper: Serra et al.'s formula with
    this network's n0, L and n_l substituted, and its value (computed by `region_upper_bound`).
    """
    from ex4.models.regions import region_upper_bound

    total = region_upper_bound(n0, widths)
    if len(widths) == 1:
        n1 = int(widths[0])
        top = min(n0, n1)
        binomials = " + ".join(rf"\binom{{{n1}}}{{{k}}}" for k in range(top + 1))
        values = " + ".join(str(comb(n1, k)) for k in range(top + 1))
        return ("$$\n"
                rf"R_{{\max}} \le \sum_{{k=0}}^{{\min(n_0,\,n_1)}} \binom{{n_1}}{{k}}"
                rf" = \sum_{{k=0}}^{{{top}}} \binom{{{n1}}}{{k}} = {binomials} = {values} = {total}"
                "\n$$")
    depth = len(widths)
    uniform = len(set(widths)) == 1
    layer_widths = (rf"n_1 = \dots = n_{{{depth}}} = {widths[0]}" if uniform
                    else ", ".join(rf"n_{{{i + 1}}} = {w}" for i, w in enumerate(widths)))
    return ("$$\n"
            r"R_{\max} \le \sum_{(j_1,\dots,j_L)\in J}\ \prod_{l=1}^{L} \binom{n_l}{j_l},\qquad "
            r"J = \left\{ (j_1,\dots,j_L) \in \mathbb{Z}^L : 0 \le j_l \le "
            r"\min(n_0,\ n_1 - j_1,\ \dots,\ n_{l-1} - j_{l-1},\ n_l) \right\}"
            "\n$$\n\n"
            "$$\n"
            rf"n_0 = {n0},\quad L = {depth},\quad {layer_widths} \quad\Longrightarrow\quad R_{{\max}} \le "
            rf"{_latex_int(total)}"
            "\n$$")


def _latex_int(value: int) -> str:
    text = f"{value:,}".replace(",", r"\,")
    return text


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
        return self.plain.vanished and not self.residual.vanished

    def floor_sentence(self) -> str:
        if not self.any_zero:
            return "No tracked gradient is exactly zero, so every value is drawn where it lies."
        return (f"A logarithmic axis has no place for zero, so exact zeros are drawn on a floor at "
                f"{self.floor:.0e}, below the smallest positive value of either run.").replace("e-0", "e-")

    def plain_sentence(self) -> str:
        run = self.plain
        layers = fmt.listing(str(layer) for layer in run.zero_layers)
        if run.dead:
            return ("In the plain network no gradient reaches any tracked layer — every one is exactly zero, the "
                    "first layer's as well as the last's. That happens when a whole layer's ReLUs are off for every "
                    "input: nothing passes that layer in either direction, so the layers below it never learn and "
                    "the layers above it see a constant.")
        if run.vanished:
            text = (f"In the plain network the gradients vanish: layer {run.layers[0]}'s mean squared gradient norm "
                    f"is {_ratio_text(run.ratio)} layer {run.layers[-1]}'s")
            if run.zero_layers:
                text += (f", and layer{'s' if len(run.zero_layers) > 1 else ''} {layers} "
                         f"receive{'s' if len(run.zero_layers) == 1 else ''} exactly zero (below what float32 "
                         "can represent)")
            return text + "."
        return (f"The gradients of the plain network do not vanish here: layer {run.layers[0]} gets "
                f"{_ratio_text(run.ratio)} layer {run.layers[-1]}'s mean squared norm.")

    def residual_sentence(self) -> str:
        plain, res = self.plain, self.residual
        accuracy = (f" Validation accuracy: {fmt.pct(plain.final_val_acc)} plain, "
                    f"{fmt.pct(res.final_val_acc)} residual.") + self.learning_clause()
        if self.fixed:
            return (f"Residual connections fix this: with them layer {res.layers[0]} gets "
                    f"{_ratio_text(res.ratio)} layer {res.layers[-1]}'s, and no tracked layer is left at zero — the "
                    "identity path carries the gradient past every block, whatever the blocks do." + accuracy)
        if res.vanished:
            return ("Residual connections do not fix it in this run: layer "
                    f"{res.layers[0]} still gets {_ratio_text(res.ratio)} layer {res.layers[-1]}'s." + accuracy)
        return (f"With residual connections layer {res.layers[0]} gets {_ratio_text(res.ratio)} layer "
                f"{res.layers[-1]}'s." + accuracy)


    def learning_clause(self) -> str:
        """Whether gradients that reach the input also bought accuracy, judged against the majority class."""
        res, majority = self.residual.final_val_acc, self.majority
        if res is None or majority is None or self.residual.vanished:
            return ""
        after = f"after {fmt.num(self.epochs)} epoch{'s' if self.epochs != 1 else ''}"
        if res <= majority + MAJORITY_MARGIN:
            return (f" Gradients that reach the input are not yet learning, though: {after} the residual network "
                    f"is no more accurate than always answering the most common country "
                    f"({fmt.pct(majority)}) — at this learning rate {fmt.num(self.depth)} layers train slowly even "
                    "when the signal gets through.")
        return (f" And it learns: {after} the residual network is {fmt.pp(res - majority).lstrip('+')} above always "
                f"answering the most common country ({fmt.pct(majority)}).")


MAJORITY_MARGIN = 0.005  # within half a point of the majority-class rate counts as not having learned


def _ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return "(undefined: the last layer's is zero)"
    if ratio == 0:
        return "nothing (exactly zero) compared with"
    if ratio >= 1:
        return f"{fmt.num(ratio)} times"
    return f"{ratio:.1e} times".replace("e-0", "e-").replace("e+0", "e+")


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
        return (self.sine["val_acc"] or 0.0) - (self.raw["val_acc"] or 0.0)

    @property
    def sine_wins(self) -> bool:
        return self.gain > 0

    def sentence(self) -> str:
        verb = "beat" if self.sine_wins else "did not beat"
        return (f"The sine features {verb} the raw coordinates: validation accuracy {fmt.pct(self.sine['val_acc'])} "
                f"against {fmt.pct(self.raw['val_acc'])} ({fmt.pp(self.gain)}), test accuracy "
                f"{fmt.pct(self.sine['test_acc'])} against {fmt.pct(self.raw['test_acc'])}.")


def implicit_facts(result: Mapping[str, Any]) -> ImplicitFacts:
    runs = {bool(run["arch"]["implicit"]): run for run in result["runs"]}
    return ImplicitFacts(last_metrics(runs[False]), last_metrics(runs[True]), int(runs[False]["regions_counted"]),
                         int(runs[True]["regions_counted"]), int(runs[True].get("input_features", 20)))
