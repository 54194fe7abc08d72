"""The facts Section 7 states, computed from a stored `cnn` result: numbers, booleans and small verdicts.

Pure functions over the plain result dict of `ex4.experiments.section7` and its stored tensors (no training,
no sentences): which baselines ran and on what backbone, what guessing reaches on each split (the
majority-class rate and a one-sided binomial test), which run won and whether the lead is larger than the
test set resolves, which learning rate suited each torch baseline and whether large rates broke fine-tuning,
whether the two probes on the same features agree, whether XGBoost on raw pixels keeps up with the
pretrained features, the tables' rows and the images of the mistakes figure. The chapter
(`report/section7.qmd`) words every one of these.

A test set of n images measures an accuracy only to within a few percentage points, so every comparison
below is judged against that resolution rather than against zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binom

from ex4.analysis.tables import mistakes_summary, rank_runs, sort_key, summarize
from ex4.errors import Ex4Error

BASELINE_ORDER = ("xgboost", "scratch", "linear_probe", "sklearn_probe", "finetune")
TORCH_BASELINES = ("scratch", "linear_probe", "finetune")
PRETRAINED = ("linear_probe", "sklearn_probe", "finetune")
CLASS_NAMES = ("real", "fake")  # label 0, label 1
SIGNIFICANCE = 0.05  # one-sided level of the "beats chance" test
Z_95 = 1.959964  # two-sided 95 % normal quantile, for the resolution of an accuracy
TIE = 5e-4  # two test accuracies closer than this are tied (the ranking then falls back on validation)
LOPSIDED = 0.1  # a run whose recall of the two classes differs by more than this favours one class
PER_BASELINE = 2  # runs of each baseline in the summary table

Comparison = Literal["ahead", "level", "behind"]


# ---- small helpers -----------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def accuracy(run: Mapping[str, Any] | None, split: str = "test") -> float | None:
    if run is None:
        return None
    value = run["final"].get(f"{split}_acc")
    return float(value) if _finite(value) else None


def present_baselines(result: Mapping[str, Any]) -> list[str]:
    """Baselines that have runs, in the course's order (unknown names last, as they appear)."""
    seen = list(dict.fromkeys(run["baseline"] for run in result["runs"]))
    return [name for name in BASELINE_ORDER if name in seen] + [name for name in seen if name not in BASELINE_ORDER]


def all_baselines_ran(result: Mapping[str, Any]) -> bool:
    return set(BASELINE_ORDER) <= set(present_baselines(result))


def runs_of(result: Mapping[str, Any], baseline: str) -> list[dict[str, Any]]:
    """A baseline's runs, best first (the ranking's order)."""
    return sorted((run for run in result["runs"] if run["baseline"] == baseline), key=sort_key)


def best_run(result: Mapping[str, Any], baselines: Sequence[str] | None = None) -> dict[str, Any] | None:
    runs = [run for run in result["runs"] if baselines is None or run["baseline"] in baselines]
    return min(runs, key=sort_key) if runs else None


def split_size(result: Mapping[str, Any], split: str) -> int:
    return int(sum(result["data"]["counts"][split].values()))


def resolution(acc: float, n: int) -> float:
    """Half-width of the normal 95 % interval of an accuracy measured on n images (never below one image)."""
    if n <= 0:
        return math.nan
    p = min(max(acc, 0.0), 1.0)
    return max(Z_95 * math.sqrt(p * (1 - p) / n), 1.0 / n)


def seed_of(result: Mapping[str, Any]) -> int | None:
    """The seed every run used, or None when the runs disagree or do not say."""
    seeds = {run["params"].get("seed") for run in result["runs"] if "seed" in run.get("params", {})}
    return seeds.pop() if len(seeds) == 1 else None


def baseline_params(result: Mapping[str, Any], baseline: str) -> dict[str, Any]:
    """The settings a baseline's runs share (those of its first run): sizes, crop, convergence ..."""
    runs = [run for run in result["runs"] if run["baseline"] == baseline]
    return dict(runs[0]["params"]) if runs else {}


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one pass over n_train images (the last, partial batch counts)."""
    return math.ceil(n_train / batch_size) if batch_size > 0 else 0


# ---- what ran ----------------------------------------------------------------------------------------------

BackboneKind = Literal["imagenet", "surrogate", "file", "other", "none"]


def uses_pretrained(result: Mapping[str, Any]) -> bool:
    return bool(set(present_baselines(result)) & set(PRETRAINED))


def backbone_kind(result: Mapping[str, Any]) -> BackboneKind:
    """Where the pretrained baselines' weights came from; "none" when no pretrained baseline ran."""
    if not uses_pretrained(result):
        return "none"
    tag = str(result.get("backbone", ""))
    kind = tag.split(":", 1)[0]
    return kind if kind in ("imagenet", "surrogate", "file") else "other"  # type: ignore[return-value]


def backbone_source(result: Mapping[str, Any]) -> str:
    """What follows the kind in the backbone tag: the surrogate's source task, or the weights file's name."""
    tag = str(result.get("backbone", ""))
    return tag.split(":", 1)[1] if ":" in tag else tag


def uses_surrogate(result: Mapping[str, Any]) -> bool:
    return backbone_kind(result) == "surrogate"


@dataclass(frozen=True)
class SurrogateFacts:
    """How the surrogate backbone was pretrained (every field None when the result does not say)."""

    train_images: int | None
    epochs: int | None
    held_out_accuracy: float | None
    held_out_images: int | None
    digits_excluded: int | None


def surrogate_facts(result: Mapping[str, Any]) -> SurrogateFacts:
    info = result.get("backbone_info") or {}

    def integer(name: str) -> int | None:
        return int(info[name]) if _finite(info.get(name)) else None

    held_out = info.get("held_out_accuracy")
    return SurrogateFacts(integer("train_images"), integer("epochs"),
                          float(held_out) if _finite(held_out) else None, integer("held_out_images"),
                          integer("digits_excluded"))


# ---- chance --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chance:
    """What guessing reaches on one split: the majority-class rate and the one-sided binomial threshold."""

    n: int
    majority_class: str
    majority_rate: float
    threshold_correct: int  # a guesser at `majority_rate` gets more than this many right with probability <= 5 %

    @property
    def threshold(self) -> float:
        """Accuracy a run must exceed to beat chance."""
        return self.threshold_correct / self.n if self.n else math.nan

    @property
    def balanced(self) -> bool:
        return self.n > 0 and abs(self.majority_rate - 0.5) < 0.5 / self.n + 1e-12

    def correct(self, acc: float) -> int:
        return int(round(acc * self.n))

    def beats(self, acc: float | None) -> bool:
        return acc is not None and self.correct(acc) > self.threshold_correct

    def p_value(self, acc: float) -> float:
        """P(a guesser at the majority rate gets at least this many right)."""
        return float(binom.sf(self.correct(acc) - 1, self.n, self.majority_rate))


def chance(result: Mapping[str, Any], split: str = "test") -> Chance:
    counts = result["data"]["counts"][split]
    n = int(sum(counts.values()))
    if n == 0:
        return Chance(0, CLASS_NAMES[0], math.nan, 0)
    majority_class = max(CLASS_NAMES, key=lambda name: (counts.get(name, 0), name == CLASS_NAMES[0]))
    rate = counts.get(majority_class, 0) / n
    threshold = int(binom.isf(SIGNIFICANCE, n, rate))  # smallest k with P(X > k) <= SIGNIFICANCE
    return Chance(n, majority_class, rate, threshold)


def constant_prediction(run: Mapping[str, Any], split: str = "test") -> str | None:
    """'real' or 'fake' when the run gives every image of the split that answer, else None."""
    confusion = (run.get("confusion") or {}).get(split)
    if not confusion:
        return None
    predicted = [confusion[0][0] + confusion[1][0], confusion[0][1] + confusion[1][1]]
    if sum(predicted) == 0:
        return None
    if predicted[1] == 0:
        return CLASS_NAMES[0]
    if predicted[0] == 0:
        return CLASS_NAMES[1]
    return None


@dataclass(frozen=True)
class Budget:
    """How much training every torch run got."""

    n_train: int
    batch_size: int
    epochs: int
    weights: int | None  # trainable weights of ResNet18 with its one-unit head, when given

    @property
    def steps(self) -> int:
        return steps_per_epoch(self.n_train, self.batch_size) * self.epochs


def budget(result: Mapping[str, Any], weights: int | None = None) -> Budget | None:
    """The training budget of the torch baselines, or None when none ran."""
    params = next((run["params"] for run in result["runs"] if run["baseline"] in TORCH_BASELINES), {})
    if not params.get("batch_size") or not params.get("epochs"):
        return None
    return Budget(split_size(result, "train"), int(params["batch_size"]), int(params["epochs"]), weights)


@dataclass(frozen=True)
class ChanceFacts:
    test: Chance
    scratch: dict[str, Any] | None  # the best scratch run
    constant: tuple[tuple[str, str], ...]  # (label, answer) of runs that give one answer to every test image
    beating: tuple[str, ...]  # labels of the runs that beat chance on the test split, best first
    n_runs: int

    @property
    def overall(self) -> Literal["none", "some", "all"]:
        """How many runs beat chance on the test set."""
        if not self.beating:
            return "none"
        return "all" if len(self.beating) == self.n_runs else "some"

    @property
    def scratch_beats(self) -> bool:
        return self.test.beats(accuracy(self.scratch))

    @property
    def scratch_p_value(self) -> float | None:
        acc = accuracy(self.scratch)
        return None if acc is None else self.test.p_value(acc)

    @property
    def scratch_below_majority(self) -> bool:
        acc = accuracy(self.scratch)
        return acc is not None and acc < self.test.majority_rate

    def constant_by_answer(self) -> dict[str, tuple[str, ...]]:
        """Answer ('real' | 'fake') -> labels of the runs that give it to every test image."""
        by_answer: dict[str, list[str]] = {}
        for label, answer in self.constant:
            by_answer.setdefault(answer, []).append(label)
        return {answer: tuple(labels) for answer, labels in by_answer.items()}


def chance_facts(result: Mapping[str, Any]) -> ChanceFacts:
    test = chance(result, "test")
    scratch_runs = runs_of(result, "scratch")
    ordered = sorted(result["runs"], key=sort_key)
    constant = tuple((run["label"], answer) for run in ordered if (answer := constant_prediction(run)) is not None)
    beating = tuple(run["label"] for run in ordered if test.beats(accuracy(run)))
    return ChanceFacts(test, scratch_runs[0] if scratch_runs else None, constant, beating, len(result["runs"]))


# ---- the winner --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinnerFacts:
    best: dict[str, Any] | None  # best run overall
    runner_up: dict[str, Any] | None  # best run of the second-best baseline
    n_test: int
    best_by_val: dict[str, Any] | None = None  # the run validation accuracy would have picked

    @property
    def gap(self) -> float:
        if self.best is None or self.runner_up is None:
            return math.nan
        return (accuracy(self.best) or 0.0) - (accuracy(self.runner_up) or 0.0)

    @property
    def resolution(self) -> float:
        return resolution(accuracy(self.best) or 0.0, self.n_test) if self.best else math.nan

    @property
    def verdict(self) -> Literal["none", "alone", "tied", "clear", "unresolved"]:
        """No run; a single baseline; tied with the runner-up; a lead beyond the resolution; one within it."""
        if self.best is None:
            return "none"
        if self.runner_up is None:
            return "alone"
        return lead(self.best, self.runner_up, self.n_test)  # type: ignore[return-value]  (never behind)

    @property
    def validation_agrees(self) -> bool | None:
        """Would ranking by validation accuracy have picked the same run? None when it cannot say."""
        if self.best is None or self.best_by_val is None:
            return None
        return self.best_by_val["label"] == self.best["label"]


def lead(first: Mapping[str, Any], second: Mapping[str, Any], n_test: int
         ) -> Literal["tied", "clear", "unresolved", "behind"]:
    """How `first` stands against `second` on the test set: tied (closer than TIE), ahead by more than the
    resolution of its accuracy ("clear"), ahead within it ("unresolved"), or behind."""
    gap = (accuracy(first) or 0.0) - (accuracy(second) or 0.0)
    if abs(gap) < TIE:
        return "tied"
    if gap < 0:
        return "behind"
    return "clear" if gap > resolution(accuracy(first) or 0.0, n_test) else "unresolved"


def winner_facts(result: Mapping[str, Any]) -> WinnerFacts:
    bests = [run for baseline in present_baselines(result) if (run := best_run(result, [baseline])) is not None]
    bests.sort(key=sort_key)
    by_val = [run for run in result["runs"] if accuracy(run, "val") is not None]
    best_by_val = min(by_val, key=lambda run: (-accuracy(run, "val"), -(accuracy(run) or 0.0), run["label"]),
                      default=None)
    return WinnerFacts(bests[0] if bests else None, bests[1] if len(bests) > 1 else None,
                       split_size(result, "test"), best_by_val)


# ---- learning rates --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateFacts:
    """One torch baseline across its learning rates."""

    baseline: str
    runs: tuple[dict[str, Any], ...]  # by learning rate, largest first
    best: dict[str, Any]
    at_chance: tuple[dict[str, Any], ...]  # runs (largest lr first) that do not beat chance on the test set
    diverged: tuple[dict[str, Any], ...]
    learns: bool  # its best run beats chance

    def _beyond(self, above: bool) -> tuple[dict[str, Any], ...]:
        """At-chance runs past the last rate that learns on one side of the best: the grid's failing end."""
        at_chance = {run["label"] for run in self.at_chance}
        side = [run for run in self.runs if (run["lr"] > self.best["lr"]) == above and run is not self.best]
        outward = sorted(side, key=lambda run: run["lr"], reverse=not above)
        learned = [index for index, run in enumerate(outward) if run["label"] not in at_chance]
        return tuple(sorted(outward[learned[-1] + 1 if learned else 0:], key=lambda run: -run["lr"]))

    @property
    def broken_high(self) -> tuple[dict[str, Any], ...]:
        """Rates above the best one at which this baseline, and every larger rate, stays at chance level."""
        return self._beyond(above=True)

    @property
    def too_small(self) -> tuple[dict[str, Any], ...]:
        return self._beyond(above=False)

    @property
    def isolated(self) -> tuple[dict[str, Any], ...]:
        """At-chance rates with a learning rate on either side of them: no trend in the rate explains them."""
        edges = {run["label"] for run in self.broken_high + self.too_small}
        return tuple(run for run in self.at_chance if run["label"] not in edges and run is not self.best)

    @property
    def position(self) -> Literal["only", "largest", "smallest", "middle"]:
        """Where the best rate lies in the grid."""
        rates = [run["lr"] for run in self.runs]
        if len(rates) == 1:
            return "only"
        if self.best["lr"] == max(rates):
            return "largest"
        if self.best["lr"] == min(rates):
            return "smallest"
        return "middle"

    def above_best(self) -> tuple[dict[str, Any], ...]:
        """Runs at rates larger than the best one, largest first."""
        return tuple(run for run in self.runs if run["lr"] > self.best["lr"])


FinetuneVerdict = Literal["absent", "never_learns", "largest_best", "survives", "dips", "breaks"]


@dataclass(frozen=True)
class LearningRateFacts:
    per_baseline: dict[str, RateFacts]
    test: Chance

    @property
    def finetune(self) -> RateFacts | None:
        return self.per_baseline.get("finetune")

    @property
    def finetune_verdict(self) -> FinetuneVerdict:
        """Did large rates break fine-tuning?

        absent: no fine-tuning runs; never_learns: no rate beats chance; largest_best: the largest rate was best;
        survives: every larger rate still beats chance; dips: some larger rates fall to chance between rates that
        learn (no trend); breaks: the largest rates, from some rate up, fall to chance."""
        tune = self.finetune
        if tune is None:
            return "absent"
        if not tune.learns:
            return "never_learns"
        if tune.position == "largest":
            return "largest_best"
        if tune.broken_high:
            return "breaks"
        return "dips" if any(not self.test.beats(accuracy(run)) for run in tune.above_best()) else "survives"

    def finetune_above(self, learned: bool) -> tuple[dict[str, Any], ...]:
        """Fine-tuning runs at rates above the best that do (learned=True) or do not beat chance."""
        tune = self.finetune
        if tune is None:
            return ()
        return tuple(run for run in tune.above_best() if self.test.beats(accuracy(run)) == learned)

    def probe_survivors(self) -> tuple[dict[str, Any], ...]:
        """Linear-probe runs that beat chance at the rates that broke fine-tuning."""
        probe, tune = self.per_baseline.get("linear_probe"), self.finetune
        if probe is None or tune is None:
            return ()
        broken = {run["lr"] for run in tune.broken_high}
        return tuple(run for run in probe.runs if run["lr"] in broken and self.test.beats(accuracy(run)))

    @property
    def probe_rate_verdict(self) -> Literal["larger", "smaller", "same"] | None:
        """Does the linear probe do best at a larger rate than fine-tuning? None unless both learn."""
        probe, tune = self.per_baseline.get("linear_probe"), self.finetune
        if probe is None or tune is None or not (probe.learns and tune.learns):
            return None
        p, t = probe.best["lr"], tune.best["lr"]
        return "larger" if p > t else "smaller" if p < t else "same"


def learning_rate_facts(result: Mapping[str, Any]) -> LearningRateFacts:
    test = chance(result, "test")
    per_baseline = {}
    for baseline in present_baselines(result):
        if baseline not in TORCH_BASELINES:
            continue
        runs = [run for run in result["runs"] if run["baseline"] == baseline and run.get("lr") is not None]
        if not runs:
            continue
        by_rate = tuple(sorted(runs, key=lambda run: -run["lr"]))
        best = min(runs, key=sort_key)
        per_baseline[baseline] = RateFacts(
            baseline, by_rate, best, tuple(run for run in by_rate if not test.beats(accuracy(run))),
            tuple(run for run in by_rate if run.get("diverged")), test.beats(accuracy(best)))
    return LearningRateFacts(per_baseline, test)


# ---- the two probes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeFacts:
    linear: dict[str, Any] | None  # best linear-probe run
    sklearn: dict[str, Any] | None
    linear_runs: tuple[dict[str, Any], ...]
    n_test: int

    @property
    def present(self) -> int:
        """How many of the two probes ran (0, 1 or 2)."""
        return (self.linear is not None) + (self.sklearn is not None)

    @property
    def difference(self) -> float:
        """Best linear probe minus scikit-learn probe, test accuracy."""
        return (accuracy(self.linear) or 0.0) - (accuracy(self.sklearn) or 0.0)

    @property
    def resolution(self) -> float:
        return resolution(accuracy(self.sklearn) or 0.0, self.n_test)

    @property
    def verdict(self) -> Literal["missing", "agree", "linear_better", "sklearn_better"]:
        if self.present < 2:
            return "missing"
        if abs(self.difference) <= self.resolution:
            return "agree"
        return "linear_better" if self.difference > 0 else "sklearn_better"

    @property
    def sklearn_converged(self) -> bool | None:
        return None if self.sklearn is None else (self.sklearn.get("params") or {}).get("converged")

    @property
    def rates_matching(self) -> tuple[dict[str, Any], ...]:
        """Linear-probe runs within the test set's resolution of the scikit-learn probe, or above it."""
        target = (accuracy(self.sklearn) or 0.0) - self.resolution
        return tuple(run for run in self.linear_runs if (accuracy(run) or 0.0) >= target)


def probe_facts(result: Mapping[str, Any]) -> ProbeFacts:
    linear_runs = tuple(runs_of(result, "linear_probe"))
    sklearn_runs = runs_of(result, "sklearn_probe")
    return ProbeFacts(linear_runs[0] if linear_runs else None, sklearn_runs[0] if sklearn_runs else None,
                      linear_runs, split_size(result, "test"))


# ---- XGBoost against the pretrained features -------------------------------------------------------------------


def compare(first: Mapping[str, Any], second: Mapping[str, Any], n_test: int) -> tuple[float, float, Comparison]:
    """(test accuracy difference, the test set's resolution, 'ahead' | 'level' | 'behind') of first vs second."""
    difference = (accuracy(first) or 0.0) - (accuracy(second) or 0.0)
    width = resolution(accuracy(second) or 0.0, n_test)
    verdict: Comparison = "level" if abs(difference) <= width else ("ahead" if difference > 0 else "behind")
    return difference, width, verdict


@dataclass(frozen=True)
class XGBoostFacts:
    """XGBoost on pixels against the pretrained backbone, used frozen (the probes) and fine-tuned."""

    xgboost: dict[str, Any] | None
    frozen: dict[str, Any] | None  # best probe on the frozen features
    finetuned: dict[str, Any] | None  # best fine-tuning run
    n_test: int

    @property
    def comparable(self) -> bool:
        return self.xgboost is not None and (self.frozen is not None or self.finetuned is not None)

    def against(self, other: Mapping[str, Any] | None) -> tuple[float, float, Comparison] | None:
        """XGBoost compared with `other` (see `compare`), or None when either is missing."""
        if self.xgboost is None or other is None:
            return None
        return compare(self.xgboost, other, self.n_test)

    @property
    def frozen_verdict(self) -> Comparison | None:
        compared = self.against(self.frozen)
        return None if compared is None else compared[2]

    @property
    def finetuned_verdict(self) -> Comparison | None:
        compared = self.against(self.finetuned)
        return None if compared is None else compared[2]


def xgboost_facts(result: Mapping[str, Any]) -> XGBoostFacts:
    return XGBoostFacts(best_run(result, ["xgboost"]), best_run(result, ["linear_probe", "sklearn_probe"]),
                        best_run(result, ["finetune"]), split_size(result, "test"))


# ---- tables (facts per row; the chapter names the columns and formats the numbers) ----------------------------


def summary_rows(result: Mapping[str, Any], per_baseline: int = PER_BASELINE) -> pd.DataFrame:
    """The best `per_baseline` runs of each baseline by test accuracy (position 1, 2, ...), then the worst run
    overall (position 0). Columns: position, baseline, lr, val_acc, test_acc, rank."""
    summary = summarize(result["runs"], per_baseline, present_baselines(result))
    columns = ["position", "baseline", "lr", "val_acc", "test_acc", "rank"]
    rows = [{"position": position, **{name: row[name] for name in columns[1:]}}
            for group in summary["best_per_baseline"] for position, row in enumerate(group["runs"], start=1)]
    if summary["worst"] is not None:
        rows.append({"position": 0, **{name: summary["worst"][name] for name in columns[1:]}})
    return pd.DataFrame(rows, columns=columns)


def ranking_rows(result: Mapping[str, Any]) -> pd.DataFrame:
    """Every run, best first. Columns: rank, label, baseline, lr, val_acc, test_acc, test_loss (NaN when the run
    diverged), beats_chance."""
    diverged = {run["label"] for run in result["runs"] if run.get("diverged")}
    test = chance(result, "test")
    rows = [{"rank": row["rank"], "label": row["label"], "baseline": row["baseline"], "lr": row["lr"],
             "val_acc": row["val_acc"], "test_acc": row["test_acc"],
             "test_loss": math.nan if row["label"] in diverged or not _finite(row["test_loss"]) else row["test_loss"],
             "beats_chance": test.beats(row["test_acc"])}
            for row in rank_runs(result["runs"])]
    return pd.DataFrame(rows, columns=["rank", "label", "baseline", "lr", "val_acc", "test_acc", "test_loss",
                                       "beats_chance"])


# ---- confusion of the best and the worst run ------------------------------------------------------------------


def recall(run: Mapping[str, Any], label: int, split: str = "test") -> float | None:
    """Share of the images of class `label` that the run classifies correctly."""
    confusion = run["confusion"][split]
    total = sum(confusion[label])
    return confusion[label][label] / total if total else None


@dataclass(frozen=True)
class ConfusionFacts:
    best: dict[str, Any] | None
    worst: dict[str, Any] | None  # None when there is a single run

    def rows(self) -> pd.DataFrame:
        """Per run (best, worst) and true class: predicted real, predicted fake, recall."""
        rows = []
        for role, run in (("best", self.best), ("worst", self.worst)):
            if run is None:
                continue
            confusion = run["confusion"]["test"]
            for label, name in enumerate(CLASS_NAMES):
                rows.append({"role": role, "label": run["label"], "true": name, "predicted_real": confusion[label][0],
                             "predicted_fake": confusion[label][1], "recall": recall(run, label)})
        return pd.DataFrame(rows, columns=["role", "label", "true", "predicted_real", "predicted_fake", "recall"])

    @property
    def recall_gap(self) -> float | None:
        """The best run's recall of real images minus that of fake ones (None for a constant answer)."""
        if self.best is None or constant_prediction(self.best) is not None:
            return None
        real, fake = recall(self.best, 0), recall(self.best, 1)
        return None if real is None or fake is None else real - fake

    @property
    def lopsided(self) -> bool:
        """The best run recognises one class more than LOPSIDED more often than the other."""
        return self.worst is not None and self.recall_gap is not None and abs(self.recall_gap) > LOPSIDED

    @property
    def easier_class(self) -> str | None:
        gap = self.recall_gap
        return None if gap is None else CLASS_NAMES[0] if gap > 0 else CLASS_NAMES[1]


def confusion_facts(result: Mapping[str, Any]) -> ConfusionFacts:
    ranked = sorted(result["runs"], key=sort_key)
    if not ranked:
        return ConfusionFacts(None, None)
    return ConfusionFacts(ranked[0], ranked[-1] if len(ranked) > 1 else None)


# ---- the mistakes figure ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MistakeFacts:
    best: str | None
    worst: str | None
    items: tuple[dict[str, Any], ...]  # {id, true, p_best, p_worst}, the worst run's most confident errors first
    requested: int

    @property
    def shown(self) -> int:
        return len(self.items)

    def true_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in CLASS_NAMES}
        for item in self.items:
            counts[CLASS_NAMES[int(item["true"])]] += 1
        return counts

    @property
    def only_class(self) -> str | None:
        """'real' or 'fake' when every image shown is of that class, else None."""
        counts = self.true_counts()
        present = [name for name in CLASS_NAMES if counts[name]]
        return present[0] if len(present) == 1 else None


def mistake_facts(result: Mapping[str, Any], tensors: Mapping[str, Any], count: int) -> MistakeFacts:
    """Up to `count` test images that the best run gets right and the worst gets wrong, from the stored test
    probabilities (see `ex4.analysis.tables.select_mistakes`); nothing retrains."""
    ranking = rank_runs(result["runs"])
    probabilities = (tensors.get("probabilities") or {}).get("test") or {}
    labels = (tensors.get("labels") or {}).get("test")
    as_numpy = {label: np.asarray(value, dtype=np.float64) for label, value in probabilities.items()}
    block = mistakes_summary(ranking, list(result["data"]["test_ids"]),
                             np.asarray(labels if labels is not None else [], dtype=np.int64), as_numpy, count)
    return MistakeFacts(block["best"], block["worst"], tuple(block["items"]), count)


def images_by_id(images: np.ndarray, ids: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """The rows of `images` whose id (path relative to the data folder) is in `wanted`, in that order."""
    position = {image_id: row for row, image_id in enumerate(ids)}
    missing = [image_id for image_id in wanted if image_id not in position]
    if missing:
        raise Ex4Error(f"mistakes figure: test image {missing[0]} of the stored result is not in the data folder "
                       "(the data changed since the result was computed; rerun `ex4 run cnn`)")
    rows = [position[image_id] for image_id in wanted]
    return images[rows] if rows else images[:0]


def imagenet_file() -> str:
    """Where ex4 looks for torchvision's ImageNet ResNet18 weights on this machine."""
    from ex4.models.resnet import imagenet_weights_path

    return str(imagenet_weights_path())


def resnet18_weight_count() -> int:
    """Trainable weights of ResNet18 with its one-unit head (what `scratch` and `finetune` train)."""
    from ex4.models.resnet import resnet18_binary

    return int(sum(parameter.numel() for parameter in resnet18_binary(0).parameters()))
