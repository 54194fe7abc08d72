"""The claims Section 7 makes, computed from a stored `cnn` result so the sentences stay true on any data.

Pure functions over the plain result dict of `ex4.experiments.section7` (no training): what each baseline
is and how it was trained, which baseline won and by how much, whether a run beats chance (against the
majority-class rate of the split and a one-sided binomial test), which learning rate suited each torch
baseline and whether large rates broke fine-tuning, whether the two probes on the same features agree,
whether XGBoost on raw pixels keeps up with the pretrained features, and the tables and images the chapter
shows. Rankings come from `ex4.analysis.tables`, the same code the experiment ranks with.

A test set of n images measures an accuracy only to within a few percentage points, so every comparison
below is judged against that resolution rather than against zero.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binom

from ex4 import fmt
from ex4.analysis.tables import BASELINE_NAMES, format_lr, rank_runs, sort_key, summarize
from ex4.errors import Ex4Error

BASELINE_ORDER = ("xgboost", "scratch", "linear_probe", "sklearn_probe", "finetune")
TORCH_BASELINES = ("scratch", "linear_probe", "finetune")
PRETRAINED = ("linear_probe", "sklearn_probe", "finetune")
CLASS_NAMES = ("real", "fake")  # label 0, label 1
SIGNIFICANCE = 0.05  # one-sided level of the "beats chance" test
Z_95 = 1.959964  # two-sided 95 % normal quantile, for the resolution of an accuracy


# ---- small helpers -----------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def unsigned_pp(value: float) -> str:
    return fmt.pp(abs(value)).lstrip("+")


def baseline_name(baseline: str) -> str:
    return BASELINE_NAMES.get(baseline, baseline)


def short_name(run: Mapping[str, Any]) -> str:
    """'fine-tuned ResNet18 at lr = 0.0001' or 'XGBoost on pixels'."""
    name = baseline_name(run["baseline"])
    return name if run.get("lr") is None else f"{name} at lr = {format_lr(run['lr'])}"


def named(run: Mapping[str, Any]) -> str:
    """short_name with an article where English wants one: 'the linear probe …', but 'XGBoost on pixels'."""
    name = short_name(run)
    return name if name[:1].isupper() else f"the {name}"


def accuracy(run: Mapping[str, Any], split: str = "test") -> float | None:
    value = run["final"].get(f"{split}_acc")
    return float(value) if _finite(value) else None


def present_baselines(result: Mapping[str, Any]) -> list[str]:
    """Baselines that have runs, in the course's order (unknown names last, as they appear)."""
    seen = list(dict.fromkeys(run["baseline"] for run in result["runs"]))
    return [name for name in BASELINE_ORDER if name in seen] + [name for name in seen if name not in BASELINE_ORDER]


def runs_of(result: Mapping[str, Any], baseline: str) -> list[dict[str, Any]]:
    """A baseline's runs, best first (the ranking's order)."""
    return sorted((run for run in result["runs"] if run["baseline"] == baseline), key=sort_key)


def best_run(result: Mapping[str, Any], baselines: Sequence[str] | None = None) -> dict[str, Any] | None:
    runs = [run for run in result["runs"] if baselines is None or run["baseline"] in baselines]
    return min(runs, key=sort_key) if runs else None


def split_size(result: Mapping[str, Any], split: str) -> int:
    return int(sum(result["data"]["counts"][split].values()))


def train_size(result: Mapping[str, Any]) -> int:
    return split_size(result, "train")


def resolution(acc: float, n: int) -> float:
    """Half-width of the normal 95 % interval of an accuracy measured on n images (never below one image)."""
    if n <= 0:
        return math.nan
    p = min(max(acc, 0.0), 1.0)
    return max(Z_95 * math.sqrt(p * (1 - p) / n), 1.0 / n)


def data_note(result: Mapping[str, Any]) -> str:
    """Provenance text for every Section 7 figure and table: data, backbone, training images, seed."""
    data = result["data"]
    parts = ["stand-in data, NOT faces" if data.get("is_standin") else "data: user's real/fake images"]
    if set(present_baselines(result)) & set(PRETRAINED):
        parts.append(result.get("backbone_label") or result.get("backbone", ""))
    parts.append(f"{fmt.num(train_size(result))} training images")
    seeds = {run["params"].get("seed") for run in result["runs"] if "seed" in run.get("params", {})}
    if len(seeds) == 1:
        parts.append(f"seed {seeds.pop()}")
    return " · ".join(part for part in parts if part)


# ---- what ran ----------------------------------------------------------------------------------------------


def uses_surrogate(result: Mapping[str, Any]) -> bool:
    return str(result.get("backbone", "")).startswith("surrogate") and bool(
        set(present_baselines(result)) & set(PRETRAINED))


def backbone_phrase(result: Mapping[str, Any]) -> str:
    """The pretrained network in a few words, saying plainly when it is not ImageNet's."""
    tag = str(result.get("backbone", ""))
    if tag == "imagenet":
        return "ResNet18 with torchvision's ImageNet weights"
    if tag.startswith("surrogate:"):
        return f"ResNet18 that ex4 pretrained on {tag.split(':', 1)[1]} (a surrogate, not ImageNet)"
    if tag.startswith("file:"):
        return f"ResNet18 with the weights of {tag.split(':', 1)[1]}"
    return "a pretrained ResNet18"


def subset_sentence(result: Mapping[str, Any]) -> str:
    """Nothing when every course baseline ran; else which ones this run has."""
    present = present_baselines(result)
    if set(BASELINE_ORDER) <= set(present):
        return ""
    return (f"This run has only {fmt.listing(baseline_name(name) for name in present)} "
            "(set by `cnn_baselines`).")


def caveat_intro(result: Mapping[str, Any]) -> str:
    """One sentence pointing at the warning box, or nothing when the run used faces and real weights."""
    standin, surrogate = bool(result["data"].get("is_standin")), uses_surrogate(result)
    if standin and surrogate:
        return ("The images of this run are the bundled stand-in, not faces, and its pretrained backbone is a "
                "surrogate, not ImageNet's; the box below says what each is.")
    if standin:
        return "The images of this run are the bundled stand-in, not faces; the box below says what they are."
    if surrogate:
        return "The pretrained backbone of this run is a surrogate, not ImageNet's; the box below says what it is."
    return ""


def caveat_markdown(result: Mapping[str, Any]) -> str:
    """A warning box when the images are the stand-in or the backbone is not ImageNet's; else nothing."""
    lines = []
    data = result["data"]
    if data.get("is_standin"):
        description = re.sub(r"^\s*stand-in data,? not faces[:.]?\s*", "", str(data.get("description", "")),
                             flags=re.IGNORECASE)
        lines.append("**These images are a stand-in, not faces.** " + description.strip())
    if uses_surrogate(result):
        info = result.get("backbone_info") or {}
        held_out = info.get("held_out_accuracy")
        trained = (f" (trained on {fmt.num(int(info['train_images']))} images of that task for "
                   f"{fmt.num(int(info['epochs']))} epochs, {fmt.pct(held_out)} accuracy on held-out ones)"
                   if _finite(held_out) and "train_images" in info and "epochs" in info else "")
        lines.append(f"**The pretrained baselines use a {result.get('backbone_label', 'surrogate backbone')}.** "
                     "No ImageNet weights were available offline, so ex4 pretrained ResNet18 itself on that task"
                     f"{trained}; what the probes and fine-tuning show here is transfer from that task, "
                     "not from ImageNet.")
    if not lines:
        return ""
    return "::: {.callout-warning}\n" + "\n\n".join(lines) + "\n:::\n"


def backbone_sentences(result: Mapping[str, Any], imagenet_file: str = "") -> str:
    """Which weights the pretrained baselines started from, and how to use ImageNet's instead."""
    if not set(present_baselines(result)) & set(PRETRAINED):
        return "No baseline of this run uses a pretrained backbone."
    tag = str(result.get("backbone", ""))
    info = result.get("backbone_info") or {}
    if tag == "imagenet":
        where = f" (read from {info['file']})" if info.get("file") else ""
        return (f"The linear probe, the scikit-learn probe and fine-tuning all start from torchvision's ImageNet "
                f"weights for ResNet18{where}, as in the course.")
    if tag.startswith("file:"):
        return (f"The pretrained baselines start from the weights in {tag.split(':', 1)[1]}, given through "
                "`cnn_weights`; whether they are ImageNet's, ex4 cannot tell.")
    if not tag.startswith("surrogate:"):
        return f"The pretrained baselines use: {result.get('backbone_label', tag)}."
    source = tag.split(":", 1)[1]
    text = (f"The course's pretrained baselines start from ImageNet weights, but none were available on the "
            f"machine that built this report and ex4 downloads nothing unless asked. Instead it pretrained "
            f"ResNet18 itself on a surrogate source task, {source}")
    if "train_images" in info and "epochs" in info:
        text += (f": {fmt.num(int(info['train_images']))} images for {fmt.num(int(info['epochs']))} epochs")
        if _finite(info.get("held_out_accuracy")) and info.get("held_out_images"):
            text += (f", reaching {fmt.pct(info['held_out_accuracy'])} on {fmt.num(int(info['held_out_images']))} "
                     "held-out ones")
    text += "."
    if info.get("digits_excluded"):
        text += (f" The {fmt.num(int(info['digits_excluded']))} digits behind the stand-in's validation and test "
                 "images were kept out of that pretraining, so no evaluation image was seen before.")
    where = f"at `{imagenet_file}`" if imagenet_file else "in torch's hub cache"
    text += (" Every table and figure of this chapter names this backbone. To run with ImageNet weights, place "
             f"torchvision's ResNet18 ImageNet file {where}, set `cnn_weights` to the path of a copy, or allow the "
             "download with `cnn_allow_download: true`.")
    return text


def _first_params(result: Mapping[str, Any], baseline: str) -> dict[str, Any]:
    runs = [run for run in result["runs"] if run["baseline"] == baseline]
    return dict(runs[0]["params"]) if runs else {}


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one pass over n_train images (the last, partial batch counts)."""
    return math.ceil(n_train / batch_size) if batch_size > 0 else 0


def baseline_markdown(result: Mapping[str, Any], learning_rates: Sequence[float]) -> str:
    """A bullet per baseline that ran: what it is and the input it sees, every number from the result."""
    rates = fmt.listing((format_lr(lr) for lr in learning_rates), "and")
    backbone = backbone_phrase(result)
    items = []
    for baseline in present_baselines(result):
        params = _first_params(result, baseline)
        size, resize = params.get("image_size"), params.get("resize")
        crop_text = (f"resized to {fmt.num(resize)} px and centre-cropped to {fmt.num(size)} × {fmt.num(size)}"
                     if resize and size and resize != size else f"resized to {fmt.num(size)} × {fmt.num(size)} px")
        if baseline == "xgboost":
            items.append(
                f"**{baseline_name(baseline)}** (`xgboost`): gradient-boosted trees with XGBoost's default settings "
                f"on raw pixel values. Each image is resized to {fmt.num(params.get('resize'))} px and only its "
                f"central {fmt.num(params.get('crop'))} × {fmt.num(params.get('crop'))} patch is kept, "
                f"{fmt.num(params.get('features'))} numbers per image (three colour channels).")
        elif baseline == "scratch":
            items.append(
                f"**{baseline_name(baseline)}** (`scratch`): torchvision's ResNet18 with random weights and a "
                f"single output unit (a logistic regression on its last features), every weight trained; images "
                f"{crop_text}, pixel values in [0, 1], no normalisation. Learning rates {rates}.")
        elif baseline == "linear_probe":
            items.append(
                f"**{baseline_name(baseline)}** (`linear_probe`): {backbone}, frozen in evaluation mode, with "
                f"a new linear output unit; only that unit trains, with Adam on mini-batches. Images {crop_text} "
                f"and normalised with the ImageNet statistics. Learning rates {rates}.")
        elif baseline == "sklearn_probe":
            converged = params.get("converged")
            note = "" if converged is None else (
                " It converged." if converged else " It stopped at its iteration limit before converging.")
            items.append(
                f"**{baseline_name(baseline)}** (`sklearn_probe`): the same frozen features as the linear probe, "
                "fitted by scikit-learn's `LogisticRegression` with its defaults (L-BFGS run to convergence, "
                f"an L2 penalty of strength C = 1, no learning rate to choose).{note}")
        elif baseline == "finetune":
            items.append(
                f"**{baseline_name(baseline)}** (`finetune`): {backbone} with a new output unit, every weight "
                f"trained. Images as for the linear probe. Learning rates {rates}.")
        else:
            items.append(f"**{baseline_name(baseline)}** (`{baseline}`).")
    return "\n".join(f"- {item}" for item in items) + "\n"


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

    def describe(self, split: str = "test") -> str:
        """What guessing reaches on this split, as a sentence without its final full stop."""
        floor = (f"the {split} split is balanced, so always answering the same class is right "
                 f"{fmt.pct(self.majority_rate)} of the time" if self.balanced else
                 f"always answering “{self.majority_class}”, the larger class of the {split} split, is right "
                 f"{fmt.pct(self.majority_rate)} of the time")
        return (f"{floor}, and over its {fmt.num(self.n)} images a guesser exceeds {fmt.pct(self.threshold)} "
                f"only {fmt.pct(SIGNIFICANCE, 0)} of the time")


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
class ChanceFacts:
    test: Chance
    scratch: dict[str, Any] | None  # the best scratch run
    constant: tuple[tuple[str, str], ...]  # (label, answer) of runs that give one answer to every test image
    beating: tuple[str, ...]  # labels of the runs that beat chance on the test split
    n_runs: int
    n_train: int
    batch_size: int | None
    epochs: int | None
    weights: int | None  # trainable weights of ResNet18 with its one-unit head, when the chapter gives it

    @property
    def steps(self) -> int | None:
        if not self.batch_size or not self.epochs:
            return None
        return steps_per_epoch(self.n_train, self.batch_size) * self.epochs

    def budget_sentence(self) -> str:
        """How much training every torch run got: images, batch size, epochs, steps (and ResNet18's size)."""
        if self.steps is None:
            return ""
        epochs = f"{fmt.num(self.epochs)} epoch" + ("s" if self.epochs != 1 else "")
        size = (f", to adjust {fmt.num(self.weights / 1e6, 3)} million weights when the whole ResNet18 trains"
                if self.weights else "")
        return (f"With {fmt.num(self.n_train)} training images in batches of {fmt.num(self.batch_size)}, "
                f"{epochs} of training amount{'s' if self.epochs == 1 else ''} to "
                f"{fmt.num(self.steps)} optimiser steps per run{size}.")

    def scratch_sentence(self) -> str:
        if self.scratch is None:
            return ""
        run = self.scratch
        acc = accuracy(run)
        if acc is None:
            return "ResNet18 from scratch produced no usable predictions at any learning rate."
        where = f" (lr = {format_lr(run['lr'])})" if run.get("lr") is not None else ""
        p_value = f"one-sided binomial p = {fmt.num(self.test.p_value(acc), 2)}"
        if self.test.beats(acc):
            return (f"Training ResNet18 from scratch does beat chance: its best run{where} reaches {fmt.pct(acc)} "
                    f"test accuracy, above the {fmt.pct(self.test.threshold)} that guessing exceeds only "
                    f"{fmt.pct(SIGNIFICANCE, 0)} of the time ({p_value}). Even from random weights, these few "
                    "steps find some signal.")
        relation = "below" if acc < self.test.majority_rate else "no better than"
        text = (f"Training ResNet18 from scratch does not beat chance: its best run{where} reaches {fmt.pct(acc)} "
                f"test accuracy, {relation} guessing ({p_value}).")
        if self.steps is not None:
            text += (f" That is no surprise after {fmt.num(self.steps)} steps from random weights: the network "
                     "would first have to learn its visual features from nothing.")
        return text

    def constant_sentence(self) -> str:
        if not self.constant:
            return ""
        by_answer: dict[str, list[str]] = {}
        for label, answer in self.constant:
            by_answer.setdefault(answer, []).append(label)
        parts = [f"“{answer}” ({fmt.listing(f'`{label}`' for label in labels)})"
                 for answer, labels in by_answer.items()]
        count = len(self.constant)
        subject = (f"Of the {fmt.num(self.n_runs)} runs, {fmt.num(count)} give{'s' if count == 1 else ''} the "
                   f"same answer for every test image: {fmt.listing(parts, 'and')}.")
        share = (f"the share of its class, {fmt.pct(self.test.majority_rate)} on this balanced test set"
                 if self.test.balanced else "its class's share of the test set")
        return (f"{subject} {'Such a run' if count == 1 else 'Each such run'} scores exactly {share}: it has "
                "collapsed to a constant, whatever its loss.")

    def overall_sentence(self) -> str:
        beating = len(self.beating)
        if beating == 0:
            return "No run beats chance on the test set."
        if beating == self.n_runs:
            return f"Every one of the {fmt.num(self.n_runs)} runs beats chance on the test set."
        verb = "beats" if beating == 1 else "beat"
        return (f"Of the {fmt.num(self.n_runs)} runs, {fmt.num(beating)} {verb} chance on the test set: "
                f"{fmt.listing(f'`{label}`' for label in self.beating)}.")


def chance_facts(result: Mapping[str, Any], weights: int | None = None) -> ChanceFacts:
    test = chance(result, "test")
    scratch_runs = runs_of(result, "scratch")
    torch_params = next((run["params"] for run in result["runs"] if run["baseline"] in TORCH_BASELINES), {})
    constant = tuple((run["label"], answer) for run in sorted(result["runs"], key=sort_key)
                     if (answer := constant_prediction(run)) is not None)
    beating = tuple(run["label"] for run in sorted(result["runs"], key=sort_key) if test.beats(accuracy(run)))
    return ChanceFacts(test, scratch_runs[0] if scratch_runs else None, constant, beating, len(result["runs"]),
                       train_size(result), torch_params.get("batch_size"), torch_params.get("epochs"), weights)


# ---- the winner --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinnerFacts:
    best: dict[str, Any] | None  # best run overall
    runner_up: dict[str, Any] | None  # best run of the second-best baseline
    n_test: int
    best_by_val: dict[str, Any] | None = None  # the run validation accuracy would have picked

    def selection_sentence(self) -> str:
        """The course ranks by test accuracy; would the validation split have chosen the same run?"""
        if self.best is None or self.best_by_val is None:
            return ""
        if self.best_by_val["label"] == self.best["label"]:
            return ("Validation accuracy picks the same run, so ranking on the test split, as the course does, "
                    "does not flatter the winner.")
        pick = self.best_by_val
        return (f"Ranking on the test split, as the course does, uses the test images to choose; the validation "
                f"split would have picked {named(pick)} instead ({fmt.pct(accuracy(pick, 'val'))} validation, "
                f"{fmt.pct(accuracy(pick))} test), so the winner's test accuracy is an optimistic "
                "estimate.")

    @property
    def gap(self) -> float:
        if self.best is None or self.runner_up is None:
            return math.nan
        return (accuracy(self.best) or 0.0) - (accuracy(self.runner_up) or 0.0)

    @property
    def resolution(self) -> float:
        return resolution(accuracy(self.best) or 0.0, self.n_test) if self.best else math.nan

    @property
    def clear(self) -> bool:
        return self.runner_up is not None and self.gap > self.resolution

    def sentence(self) -> str:
        if self.best is None:
            return "No run finished."
        best = self.best
        head = (f"The best run overall is {named(best)}, with {fmt.pct(accuracy(best))} test accuracy "
                f"({fmt.pct(accuracy(best, 'val'))} on validation)")
        if self.runner_up is None:
            return head + "; it is the only baseline that ran."
        runner = self.runner_up
        versus = (f"the best of the runner-up baseline, {named(runner)} "
                  f"({fmt.pct(accuracy(runner))})")
        if self.gap < 5e-4:
            return (f"{head}, tied with {versus}; the ranking separates them by validation accuracy, "
                    "so the order of the two says nothing.")
        if self.clear:
            return (f"{head}, {unsigned_pp(self.gap)} ahead of {versus}: more than the "
                    f"±{unsigned_pp(self.resolution)} to which {fmt.num(self.n_test)} test images pin down an "
                    "accuracy, so the lead is real.")
        return (f"{head}, only {unsigned_pp(self.gap)} ahead of {versus}. A test set of "
                f"{fmt.num(self.n_test)} images pins an accuracy down only to about "
                f"±{unsigned_pp(self.resolution)}, so the two cannot be told apart here.")


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
    def position(self) -> str:
        """Where the best rate lies in the grid: 'largest', 'smallest' or 'middle' (or 'only')."""
        rates = [run["lr"] for run in self.runs]
        if len(rates) == 1:
            return "only"
        if self.best["lr"] == max(rates):
            return "largest"
        if self.best["lr"] == min(rates):
            return "smallest"
        return "middle"

    def sentence(self, test: Chance) -> str:
        name = baseline_name(self.baseline)
        name = name[0].upper() + name[1:]
        best = self.best
        where = {"largest": ", the largest rate tried", "smallest": ", the smallest rate tried"}.get(self.position, "")
        text = (f"{name}: lr = {format_lr(best['lr'])} is best{where} "
                f"({fmt.pct(accuracy(best))} test, {fmt.pct(accuracy(best, 'val'))} validation)")
        if test.beats(accuracy(best)):
            parts = []
            for runs, word in ((self.broken_high, "too large"), (self.too_small, "too small")):
                if runs:
                    parts.append(f"{_rates(runs)} {'is' if len(runs) == 1 else 'are'} {word}")
            if parts:
                text += "; at chance level, " + " and ".join(parts)
            else:
                text += "; every rate beats chance" if not self.isolated else ""
            if self.isolated:
                verb = "stays" if len(self.isolated) == 1 else "stay"
                text += (f"{'; ' if not parts else ', while '}{_rates(self.isolated)} {verb} at chance although "
                         "rates on both sides of it learn, a reminder that each rate is a single run")
        else:
            text += "; not even that beats chance"
        if self.diverged:
            text += f" ({fmt.listing('lr = ' + format_lr(run['lr']) for run in self.diverged)} diverged)"
        return text + "."


def _rates(runs: Sequence[Mapping[str, Any]]) -> str:
    return fmt.listing(f"lr = {format_lr(run['lr'])}" for run in runs)


def _rate_and_accuracy(run: Mapping[str, Any]) -> str:
    return f"lr = {format_lr(run['lr'])} ({fmt.pct(accuracy(run))})"


@dataclass(frozen=True)
class LearningRateFacts:
    per_baseline: dict[str, RateFacts]
    test: Chance

    def sentences(self) -> str:
        if not self.per_baseline:
            return "No baseline with a learning rate ran (see `cnn_baselines`)."
        return " ".join(facts.sentence(self.test) for facts in self.per_baseline.values())

    def finetune_sentence(self) -> str:
        """Did large rates break fine-tuning?"""
        tune = self.per_baseline.get("finetune")
        if tune is None:
            return ""
        if not self.test.beats(accuracy(tune.best)):
            return ("Fine-tuning beats chance at no rate here, so no single rate is to blame: in this many steps, "
                    "starting from these weights, it found nothing that separates the classes.")
        broken = tune.broken_high
        if tune.position == "largest":
            return "The largest rate was the best one for fine-tuning, so no rate tried was too large for it."
        if not broken:
            higher = [run for run in tune.runs if run["lr"] > tune.best["lr"]]
            learned = [run for run in higher if self.test.beats(accuracy(run))]
            stalled = [run for run in higher if not self.test.beats(accuracy(run))]
            verb = "beats" if len(learned) == 1 else "beat"
            if not stalled:
                return (f"Larger rates cost fine-tuning accuracy but did not break it: "
                        f"{fmt.listing(_rate_and_accuracy(run) for run in learned)} still {verb} chance.")
            return (f"Larger rates did not break fine-tuning for good: "
                    f"{fmt.listing(_rate_and_accuracy(run) for run in learned)} still {verb} chance, while "
                    f"{fmt.listing(_rate_and_accuracy(run) for run in stalled)} fell to chance level between rates "
                    "that learn, a single run's bad luck rather than a trend in the rate.")
        probe = self.per_baseline.get("linear_probe")
        contrast = ""
        if probe is not None:
            same = [run for run in probe.runs if any(run["lr"] == other["lr"] for other in broken)
                    and self.test.beats(accuracy(run))]
            if same:
                contrast = (f" The linear probe, which trains only the head at the same "
                            f"rate{'s' if len(same) > 1 else ''}, still beats chance "
                            f"({fmt.listing(_rate_and_accuracy(run) for run in same)}), "
                            "so it is the backbone that the large steps damage.")
        rates = fmt.listing(_rate_and_accuracy(run) for run in broken)
        return (f"Large rates break fine-tuning: at {rates} it falls to chance level. Adam's first steps move every "
                "weight by roughly the learning rate, which at these sizes overwrites the pretrained filters before "
                f"the new head has learned anything, and the few steps left cannot rebuild them.{contrast}")

    def probe_rate_sentence(self) -> str:
        """The head alone against the whole network: which prefers the larger rate."""
        probe, tune = self.per_baseline.get("linear_probe"), self.per_baseline.get("finetune")
        if probe is None or tune is None or not (self.test.beats(accuracy(probe.best))
                                                 and self.test.beats(accuracy(tune.best))):
            return ""
        p, t = probe.best["lr"], tune.best["lr"]
        if p > t:
            return (f"The linear probe prefers a larger rate than fine-tuning (lr = {format_lr(p)} against "
                    f"{format_lr(t)}): a single linear layer on fixed features has no pretrained weights to lose, "
                    "and in so few steps a large rate is what moves it far enough.")
        if p < t:
            return (f"Here the linear probe prefers a smaller rate than fine-tuning (lr = {format_lr(p)} against "
                    f"{format_lr(t)}).")
        return f"The linear probe and fine-tuning do best at the same rate, lr = {format_lr(p)}."


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
        per_baseline[baseline] = RateFacts(
            baseline, by_rate, min(runs, key=sort_key),
            tuple(run for run in by_rate if not test.beats(accuracy(run))),
            tuple(run for run in by_rate if run.get("diverged")))
    return LearningRateFacts(per_baseline, test)


# ---- the two probes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeFacts:
    linear: dict[str, Any] | None  # best linear-probe run
    sklearn: dict[str, Any] | None
    linear_runs: tuple[dict[str, Any], ...]
    n_test: int

    @property
    def difference(self) -> float:
        """Best linear probe minus scikit-learn probe, test accuracy."""
        return (accuracy(self.linear) or 0.0) - (accuracy(self.sklearn) or 0.0)

    @property
    def resolution(self) -> float:
        return resolution(accuracy(self.sklearn) or 0.0, self.n_test)

    @property
    def agree(self) -> bool:
        return abs(self.difference) <= self.resolution

    @property
    def rates_matching(self) -> tuple[dict[str, Any], ...]:
        """Linear-probe runs within the test set's resolution of the scikit-learn probe, or above it."""
        target = (accuracy(self.sklearn) or 0.0) - self.resolution
        return tuple(run for run in self.linear_runs if (accuracy(run) or 0.0) >= target)

    def sentence(self) -> str:
        if self.linear is None or self.sklearn is None:
            return ("This comparison needs both probes, and this run has "
                    f"{'neither' if self.linear is None and self.sklearn is None else 'only one'} of them "
                    "(see `cnn_baselines`).")
        lin, sk = accuracy(self.linear), accuracy(self.sklearn)
        head = (f"The best linear probe (lr = "
                f"{format_lr(self.linear['lr'])}) reaches {fmt.pct(lin)} test accuracy and scikit-learn's logistic "
                f"regression {fmt.pct(sk)}, a difference of {fmt.pp(self.difference)}")
        if self.agree:
            verdict = (f", within the ±{unsigned_pp(self.resolution)} the test set resolves: they agree, as two fits "
                       "of the same linear model should.")
        elif self.difference > 0:
            verdict = (f", more than the ±{unsigned_pp(self.resolution)} the test set resolves. The hand-tuned rate "
                       "beats the defaults here; scikit-learn's L2 penalty pulls its weights toward zero, which can "
                       "cost accuracy when the features are weak.")
        else:
            fit = ("run until its iteration limit" if (self.sklearn.get("params") or {}).get("converged") is False
                   else "run to convergence")
            verdict = (f", more than the ±{unsigned_pp(self.resolution)} the test set resolves. The scikit-learn "
                       f"fit, {fit} with a penalty that keeps the weights small, beats what the linear probe gets "
                       "from its mini-batch steps.")
        count = len(self.rates_matching)
        total = len(self.linear_runs)
        rates = (f" Only {fmt.num(count)} of the probe's {fmt.num(total)} learning rates "
                 f"come{'s' if count == 1 else ''} that close"
                 if 0 < count < total else
                 " None of the probe's learning rates comes that close" if count == 0 else
                 f" All {fmt.num(total)} of the probe's learning rates come that close")
        return head + verdict + rates + (": the same model, but one fit needs a rate chosen for it and the other "
                                         "does not." if count < total else ".")


def probe_facts(result: Mapping[str, Any]) -> ProbeFacts:
    linear_runs = tuple(runs_of(result, "linear_probe"))
    sklearn_runs = runs_of(result, "sklearn_probe")
    return ProbeFacts(linear_runs[0] if linear_runs else None, sklearn_runs[0] if sklearn_runs else None,
                      linear_runs, split_size(result, "test"))


# ---- XGBoost against the pretrained features -------------------------------------------------------------------


def compare(first: Mapping[str, Any], second: Mapping[str, Any], n_test: int) -> tuple[float, float, str]:
    """(test accuracy difference, the test set's resolution, 'ahead' | 'level' | 'behind') of first vs second."""
    difference = (accuracy(first) or 0.0) - (accuracy(second) or 0.0)
    width = resolution(accuracy(second) or 0.0, n_test)
    verdict = "level" if abs(difference) <= width else ("ahead" if difference > 0 else "behind")
    return difference, width, verdict


@dataclass(frozen=True)
class XGBoostFacts:
    """XGBoost on pixels against the pretrained backbone, used frozen (the probes) and fine-tuned."""

    xgboost: dict[str, Any] | None
    frozen: dict[str, Any] | None  # best probe on the frozen features
    finetuned: dict[str, Any] | None  # best fine-tuning run
    surrogate: bool
    n_test: int

    def verdict(self, other: Mapping[str, Any] | None) -> str | None:
        if self.xgboost is None or other is None:
            return None
        return compare(self.xgboost, other, self.n_test)[2]

    def _against(self, other: Mapping[str, Any], what: str) -> str:
        difference, width, verdict = compare(self.xgboost, other, self.n_test)
        relation = {"ahead": "ahead of", "behind": "behind",
                    "level": f"level with (within the ±{unsigned_pp(width)} the test set resolves)"}[verdict]
        return f"{relation} {what}, {named(other)} ({fmt.pct(accuracy(other))}, {fmt.pp(difference)} for XGBoost)"

    def sentence(self) -> str:
        if self.xgboost is None or (self.frozen is None and self.finetuned is None):
            missing = "XGBoost" if self.xgboost is None else "a baseline on the pretrained backbone"
            return f"This comparison needs {missing}, which this run left out (see `cnn_baselines`)."
        parts = [self._against(other, what) for other, what in ((self.frozen, "the best probe on frozen features"),
                                                                (self.finetuned, "the best fine-tuning run"))
                 if other is not None]
        text = f"XGBoost on raw pixels reaches {fmt.pct(accuracy(self.xgboost))}: " + "; ".join(parts) + "."
        source = "the surrogate's features" if self.surrogate else "the pretrained features"
        frozen, tuned = self.verdict(self.frozen), self.verdict(self.finetuned)
        if frozen in ("ahead", "level"):
            text += (f" Used as they are, {source} tell real from fake no better than the raw values of a small "
                     "centre crop")
            text += (", and only once the backbone itself adapts does the network pull ahead." if tuned == "behind"
                     else ".")
        elif frozen == "behind":
            text += (f" Even frozen, {source} carry more about real versus fake than the raw pixels of a crop.")
        elif tuned == "behind":
            text += " The fine-tuned network finds more than the trees do in the raw pixels."
        elif tuned is not None:
            text += " The trees on raw pixels hold their own against the fine-tuned network."
        if self.surrogate:
            text += " With ImageNet weights the pretrained side of this comparison could look quite different."
        return text


def xgboost_facts(result: Mapping[str, Any]) -> XGBoostFacts:
    return XGBoostFacts(best_run(result, ["xgboost"]), best_run(result, ["linear_probe", "sklearn_probe"]),
                        best_run(result, ["finetune"]), uses_surrogate(result), split_size(result, "test"))


# ---- tables ----------------------------------------------------------------------------------------------------


def _lr_text(lr: float | None) -> str:
    return "–" if lr is None else format_lr(lr)


def _loss_text(value: Any) -> str:
    return fmt.num(float(value)) if _finite(value) else "n/a (diverged)"


def summary_table(result: Mapping[str, Any], per_baseline: int = 2) -> pd.DataFrame:
    """The best `per_baseline` runs of each baseline by test accuracy, then the worst run overall."""
    summary = summarize(result["runs"], per_baseline, present_baselines(result))
    rows = []
    for group in summary["best_per_baseline"]:
        for position, row in enumerate(group["runs"], start=1):
            rows.append({"which": {1: "best", 2: "second best"}.get(position, f"number {position}"),
                         "baseline": baseline_name(group["baseline"]), "learning rate": _lr_text(row["lr"]),
                         "validation accuracy": fmt.pct(row["val_acc"]), "test accuracy": fmt.pct(row["test_acc"]),
                         "rank": row["rank"]})
    worst = summary["worst"]
    if worst is not None:
        rows.append({"which": "**worst overall**", "baseline": baseline_name(worst["baseline"]),
                     "learning rate": _lr_text(worst["lr"]), "validation accuracy": fmt.pct(worst["val_acc"]),
                     "test accuracy": fmt.pct(worst["test_acc"]), "rank": worst["rank"]})
    return pd.DataFrame(rows, columns=["which", "baseline", "learning rate", "validation accuracy", "test accuracy",
                                       "rank"])


def ranking_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """Every run, best first: rank, baseline, learning rate, accuracies, test loss."""
    diverged = {run["label"] for run in result["runs"] if run.get("diverged")}
    test = chance(result, "test")
    rows = []
    for row in rank_runs(result["runs"]):
        rows.append({"rank": row["rank"], "baseline": baseline_name(row["baseline"]),
                     "learning rate": _lr_text(row["lr"]), "validation accuracy": fmt.pct(row["val_acc"]),
                     "test accuracy": fmt.pct(row["test_acc"]),
                     "test loss": _loss_text(row["test_loss"]) if row["label"] not in diverged
                     else "n/a (diverged)",
                     "beats chance": "yes" if test.beats(row["test_acc"]) else "no"})
    return pd.DataFrame(rows, columns=["rank", "baseline", "learning rate", "validation accuracy", "test accuracy",
                                       "test loss", "beats chance"])


# ---- confusion of the best and the worst run ------------------------------------------------------------------


@dataclass(frozen=True)
class ConfusionFacts:
    best: dict[str, Any] | None
    worst: dict[str, Any] | None

    @staticmethod
    def recall(run: Mapping[str, Any], label: int) -> float | None:
        confusion = run["confusion"]["test"]
        total = sum(confusion[label])
        return confusion[label][label] / total if total else None

    def table(self) -> pd.DataFrame:
        rows = []
        for role, run in (("best", self.best), ("worst", self.worst)):
            if run is None:
                continue
            confusion = run["confusion"]["test"]
            for label, name in enumerate(CLASS_NAMES):
                rows.append({"run": f"{role}: {run['label']}" if label == 0 else "", "true class": name,
                             "predicted real": confusion[label][0], "predicted fake": confusion[label][1],
                             "recognised": fmt.pct(self.recall(run, label))})
        return pd.DataFrame(rows, columns=["run", "true class", "predicted real", "predicted fake", "recognised"])

    def _describe(self, run: Mapping[str, Any]) -> str:
        answer = constant_prediction(run)
        if answer is not None:
            return f"answers “{answer}” for every test image"
        real, fake = self.recall(run, 0), self.recall(run, 1)
        return f"recognises {fmt.pct(real)} of the real and {fmt.pct(fake)} of the fake test images"

    def sentence(self) -> str:
        if self.best is None:
            return ""
        text = f"The best run, `{self.best['label']}`, {self._describe(self.best)}"
        if self.worst is None or self.worst is self.best:
            return text + "."
        text += f"; the worst, `{self.worst['label']}`, {self._describe(self.worst)}."
        real, fake = self.recall(self.best, 0), self.recall(self.best, 1)
        if real is not None and fake is not None and constant_prediction(self.best) is None:
            if abs(real - fake) > 0.1:
                easier = "real" if real > fake else "fake"
                text += (f" Even the best run is lopsided: it finds the {easier} images "
                         f"{unsigned_pp(real - fake)} more often than the others.")
        return text


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
    items: tuple[dict[str, Any], ...]
    requested: int

    def sentence(self) -> str:
        if self.best is None or self.worst is None:
            return "With a single run there is no best and worst to compare."
        pair = f"the best run (`{self.best}`) classifies correctly and the worst (`{self.worst}`) gets wrong"
        shown = len(self.items)
        if shown == 0:
            return (f"No test image is one that {pair}, so there is nothing to show for the "
                    f"{fmt.num(self.requested)} images asked for.")
        if shown < self.requested:
            return (f"Only {fmt.num(shown)} test image{'s' if shown != 1 else ''} "
                    f"{'are ones' if shown != 1 else 'is one'} that {pair}, fewer than the "
                    f"{fmt.num(self.requested)} asked for; the figure shows all of them.")
        return (f"It shows {fmt.num(shown)} test images that {pair}: of all such images, those on which the "
                "worst run was most confidently wrong.")

    def true_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in CLASS_NAMES}
        for item in self.items:
            counts[CLASS_NAMES[int(item["true"])]] += 1
        return counts

    def composition_sentence(self) -> str:
        if not self.items:
            return ""
        counts = self.true_counts()
        if counts["real"] == 0 or counts["fake"] == 0:
            only = "fake" if counts["real"] == 0 else "real"
            wrong = "real" if only == "fake" else "fake"
            return (f"All of them are {only}: the worst run's most confident errors are {only} images it calls "
                    f"{wrong}.")
        return (f"{fmt.num(counts['real'])} of them are real and {fmt.num(counts['fake'])} fake.")


def mistake_facts(result: Mapping[str, Any]) -> MistakeFacts:
    mistakes = result.get("mistakes") or {}
    return MistakeFacts(mistakes.get("best"), mistakes.get("worst"), tuple(mistakes.get("items") or ()),
                        int(mistakes.get("requested") or len(mistakes.get("items") or ())))


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
