"""The front page's facts: for each experiment, its best run, that run's accuracy, and whether it learned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ex4.analysis.seeds import Holds, Spread, over_seeds, spread
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


@dataclass(frozen=True)
class SeedAnswer:
    """The best run of one experiment over seeds: the setting most seeds rank best, in how many seeds it is best,
    and its accuracies over the seeds (mean, min–max)."""

    experiment: str
    best: str  # the run's label: the best one in most seeds (the earliest seed's among equals)
    holds: Holds  # seeds in which `best` is the best run, of those in which every run of the experiment was trained
    val_acc: Spread | None  # of the run `best`, over every seed
    test_acc: Spread | None
    key: str  # the store key of the first seed's result
    learned: bool | None  # Section 6: `best` beats the most common country in most seeds; None when not judged
    learned_holds: Holds  # seeds in which it does (or, when `learned` is False, does not)
    seeds: tuple[int, ...]


def answers_over_seeds(outcomes: Mapping[str, Sequence[Outcome]], majority: float | None = None
                       ) -> dict[str, SeedAnswer]:
    """`answers` for each seed's outcome of every experiment (first seed first), summed up over the seeds. An
    experiment computed for one seed only gives counts of 1 of 1. The best run is counted over the seeds in which
    every run of the experiment was trained (Section 7 may train its full-network baselines on fewer seeds,
    `cnn_full_network_repeats`); its accuracies are taken over every seed that trained it."""
    out = {}
    for name, per_seed in outcomes.items():
        seeds = [int(outcome.result.get("seed", index)) for index, outcome in enumerate(per_seed)]
        found = [answers({name: outcome}, majority).get(name) for outcome in per_seed]
        if any(answer is None for answer in found):
            continue
        runs = over_seeds(seeds, [{run["label"]: run for run in outcome.result["runs"]} for outcome in per_seed])
        every_run = set().union(*runs.facts)
        complete = ([index for index, runs_of in enumerate(runs.facts) if set(runs_of) == every_run]
                    or list(range(len(per_seed))))
        by_seed = over_seeds([seeds[index] for index in complete], [found[index] for index in complete])
        best, holds = by_seed.mode(lambda answer: answer.best)

        def final(metric_name: str) -> Spread | None:
            return spread(runs_of.get(best, {}).get("final", {}).get(metric_name) for runs_of in runs.facts)

        learned_each = [None if name in RANKED_ON_TEST else beats_majority(
            runs_of.get(best, {}).get("final", {}).get("val_acc"), majority) for runs_of in runs.facts]
        learned, learned_holds = over_seeds(seeds, learned_each).mode(lambda value: value)
        out[name] = SeedAnswer(name, best, holds, final("val_acc"), final("test_acc"), per_seed[0].key, learned,
                               learned_holds, tuple(seeds))
    return out
