"""The front page's facts: for each experiment, its best run, that run's accuracy, and whether it learned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ex4.analysis.section6 import beats_majority
from ex4.store import Outcome

RANKED_ON_TEST = ("cnn",)  # Section 7 ranks its baselines on the test set, as the exercise does; the rest on val


@dataclass(frozen=True)
class Answer:
    """The best run of one experiment."""

    experiment: str
    best: str  # the run's label
    val_acc: float | None
    test_acc: float | None
    key: str  # the store key of the experiment's result
    learned: bool | None  # Section 6: beats always answering the most common country; None when not judged


def majority_rate(per_class: Mapping[str, list[int]]) -> float:
    """Validation accuracy of always answering the most common training class, from counts per split."""
    train, val = per_class["train"], per_class["val"]
    most_common = max(range(len(train)), key=lambda label: train[label])
    return val[most_common] / max(1, sum(val))


def _best(runs: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    scored = [run for run in runs if run["final"].get(metric) is not None]
    return max(scored, key=lambda run: run["final"][metric]) if scored else None


def answers(outcomes: Mapping[str, Outcome], majority: float | None = None) -> dict[str, Answer]:
    """The best run of every experiment that was run and has a scored run, in the order of `outcomes`.

    `majority` (`majority_rate` of the cities): a Section 6 answer whose best run does not beat always answering
    the most common country has `learned` False."""
    out = {}
    for name, outcome in outcomes.items():
        metric = "test_acc" if name in RANKED_ON_TEST else "val_acc"
        best = _best(outcome.result.get("runs", []), metric)
        if best is None:
            continue
        final = best["final"]
        learned = None if name in RANKED_ON_TEST else beats_majority(final.get("val_acc"), majority)
        out[name] = Answer(name, best["label"], final.get("val_acc"), final.get("test_acc"), outcome.key, learned)
    return out
