"""Section 7's claims over seeds: each seed's facts (`ex4.analysis.section7`), in how many seeds each claim holds,
and every number as its mean with the min–max range over the seeds (`ex4.analysis.seeds`).

Baselines need not share their seeds: `cnn_full_network_repeats` trains the two that train all of ResNet18 (from
scratch, fine-tuned) for the first seeds only. So a number about one run is its spread over the seeds in which
that run was trained, a claim that compares two baselines is counted over the seeds in which both ran, and the
best run overall is counted over the seeds in which every baseline ran. A verdict is the one most of those seeds
give (the earliest seed's among equals, `OverSeeds.mode`) and its details are read in a seed that gives it.
Counts and numbers only; the chapter words them. With one seed every count is 1 of 1 and every spread a single
value, so the chapter reads as the single-run chapter did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import pandas as pd

from ex4.analysis.seeds import Holds, OverSeeds, Spread, over_seeds, spread
from ex4.analysis.section7 import (CLASS_NAMES, LOPSIDED, PER_BASELINE, Chance, ChanceFacts, Comparison,
                                   ConfusionFacts, FinetuneVerdict, LearningRateFacts, ProbeFacts, RateFacts,
                                   SurrogateFacts, WinnerFacts, XGBoostFacts, accuracy, chance, chance_facts,
                                   constant_prediction, lead, learning_rate_facts, present_baselines, probe_facts,
                                   recall, resolution, seed_of, split_size, surrogate_facts, winner_facts,
                                   xgboost_facts)
from ex4.analysis.tables import rank_runs, summarize

FULL_NETWORK = ("scratch", "finetune")  # the baselines `cnn_full_network_repeats` may train on fewer seeds


# ---- each seed -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedFacts:
    """Everything Section 7 states about the result of one seed."""

    seed: int
    result: Mapping[str, Any]
    runs: Mapping[str, dict[str, Any]]  # label -> run
    chances: ChanceFacts
    winner: WinnerFacts
    rates: LearningRateFacts
    probes: ProbeFacts
    pixels: XGBoostFacts
    pretrained: SurrogateFacts

    @property
    def baselines(self) -> tuple[str, ...]:
        return tuple(present_baselines(self.result))

    def ran(self, *baselines: str) -> bool:
        return set(baselines) <= set(self.baselines)


def seed_facts(result: Mapping[str, Any], seed: int) -> SeedFacts:
    return SeedFacts(seed, result, {run["label"]: run for run in result["runs"]}, chance_facts(result),
                     winner_facts(result), learning_rate_facts(result), probe_facts(result), xgboost_facts(result),
                     surrogate_facts(result))


def result_seeds(results: Sequence[Mapping[str, Any]], first_seed: int = 0) -> list[int]:
    """The seed of each `cnn` result: the one it records (its own or its runs'), else its place after
    `first_seed`."""
    seeds = []
    for index, result in enumerate(results):
        recorded = result.get("seed", seed_of(result))
        seeds.append(int(recorded) if recorded is not None else first_seed + index)
    return seeds


def cnn_over_seeds(results: Sequence[Mapping[str, Any]], first_seed: int = 0) -> OverSeeds[SeedFacts]:
    """The facts of each seed's `cnn` result, first seed first (seeds as `result_seeds` reads them)."""
    seeds = result_seeds(results, first_seed)
    return over_seeds(seeds, [seed_facts(result, seed) for result, seed in zip(results, seeds)])


# ---- which baselines ran in which seeds ---------------------------------------------------------------------------


def all_baselines(s: OverSeeds[SeedFacts]) -> list[str]:
    """Every baseline that ran in any seed, in the course's order."""
    return present_baselines({"runs": [run for facts in s.facts for run in facts.result["runs"]]})


def baseline_seeds(s: OverSeeds[SeedFacts]) -> dict[str, tuple[int, ...]]:
    """Baseline -> the seeds in which it ran."""
    return {baseline: tuple(facts.seed for facts in s.facts if facts.ran(baseline)) for baseline in all_baselines(s)}


def seeds_of_baselines(results: Sequence[Mapping[str, Any]], first_seed: int = 0) -> dict[str, tuple[int, ...]]:
    """`baseline_seeds` read from the results alone (their runs' baselines and seeds), without the facts."""
    seeds = result_seeds(results, first_seed)
    present = [set(present_baselines(result)) for result in results]
    union = present_baselines({"runs": [run for result in results for run in result.get("runs", [])]})
    return {baseline: tuple(seed for seed, ran in zip(seeds, present) if baseline in ran) for baseline in union}


def with_baselines(s: OverSeeds[SeedFacts], *baselines: str) -> OverSeeds[SeedFacts] | None:
    """The seeds in which all of `baselines` ran (None when there is none)."""
    return s.where(lambda facts: facts.ran(*baselines))


def complete(s: OverSeeds[SeedFacts]) -> OverSeeds[SeedFacts]:
    """The seeds in which every baseline ran: where "the best run overall" is defined (all seeds if none is)."""
    return with_baselines(s, *all_baselines(s)) or s


def labels_in_order(s: OverSeeds[SeedFacts]) -> list[str]:
    """Every run label of any seed, best first by the mean accuracies (`mean_runs`)."""
    return [row["label"] for row in rank_runs(mean_runs(s))]


def runs_of_label(s: OverSeeds[SeedFacts], label: str) -> list[dict[str, Any]]:
    """Run `label` of every seed in which it was trained, first seed first."""
    return [facts.runs[label] for facts in s.facts if label in facts.runs]


def accuracy_spread(s: OverSeeds[SeedFacts], label: str, split: str = "test") -> Spread | None:
    """A run's accuracy over the seeds in which it was trained."""
    return spread(accuracy(run, split) for run in runs_of_label(s, label))


def sklearn_converged(s: OverSeeds[SeedFacts]) -> tuple[bool | None, Holds] | None:
    """Whether scikit-learn's fit converged in most seeds in which it ran (None: it does not say), and in how many
    seeds that is so; None when the scikit-learn probe never ran."""
    fitted = with_baselines(s, "sklearn_probe")
    if fitted is None:
        return None
    return fitted.mode(lambda facts: (facts.runs.get("sklearn_probe", {}).get("params") or {}).get("converged"))


# ---- tables ---------------------------------------------------------------------------------------------------


def mean_runs(s: OverSeeds[SeedFacts]) -> list[dict[str, Any]]:
    """One run per label (as in the first seed that trained it), its final validation and test accuracy replaced
    by their means over the seeds that trained it: what the tables rank over seeds. One seed: its own runs."""
    out = []
    for label in dict.fromkeys(run["label"] for facts in s.facts for run in facts.result["runs"]):
        runs = runs_of_label(s, label)
        means = {}
        for split in ("val", "test"):
            over = spread(accuracy(run, split) for run in runs)
            means[f"{split}_acc"] = None if over is None else over.mean
        out.append({**runs[0], "final": {**runs[0]["final"], **means}})
    return out


def _test_loss(run: Mapping[str, Any]) -> float | None:
    loss = run["final"].get("test_loss")
    finite = isinstance(loss, (int, float)) and math.isfinite(loss)
    return None if run.get("diverged") or not finite else float(loss)


def ranking_rows(s: OverSeeds[SeedFacts]) -> pd.DataFrame:
    """Every run, best first by its mean accuracies. Columns: rank, label, baseline, lr, val_acc and test_acc
    (`Spread` over the seeds that trained the run, None when never measured), test_loss (`Spread`, NaN when the
    run diverged in every seed; its `missing` counts the seeds where it diverged), beats_chance (`Holds`: seeds in
    which it beats chance on the test split), seeds (how many seeds trained it)."""
    test = chance(s.first.result, "test")
    rows = []
    for row in rank_runs(mean_runs(s)):
        runs = runs_of_label(s, row["label"])
        loss = spread(_test_loss(run) for run in runs)
        rows.append({"rank": row["rank"], "label": row["label"], "baseline": row["baseline"], "lr": row["lr"],
                     "val_acc": spread(accuracy(run, "val") for run in runs),
                     "test_acc": spread(accuracy(run) for run in runs),
                     "test_loss": math.nan if loss is None else loss,
                     "beats_chance": Holds(sum(test.beats(accuracy(run)) for run in runs), len(runs)),
                     "seeds": len(runs)})
    return pd.DataFrame(rows, columns=["rank", "label", "baseline", "lr", "val_acc", "test_acc", "test_loss",
                                       "beats_chance", "seeds"])


def summary_rows(s: OverSeeds[SeedFacts], per_baseline: int = PER_BASELINE) -> pd.DataFrame:
    """The best `per_baseline` runs of each baseline by mean test accuracy (position 1, 2, ...), then the worst run
    overall (position 0). Columns: position, baseline, lr, val_acc, test_acc (`Spread`s), rank, seeds."""
    summary = summarize(mean_runs(s), per_baseline, all_baselines(s))
    groups = [(position, row) for group in summary["best_per_baseline"]
              for position, row in enumerate(group["runs"], start=1)]
    if summary["worst"] is not None:
        groups.append((0, summary["worst"]))
    rows = [{"position": position, "baseline": row["baseline"], "lr": row["lr"],
             "val_acc": accuracy_spread(s, row["label"], "val"), "test_acc": accuracy_spread(s, row["label"]),
             "rank": row["rank"], "seeds": len(runs_of_label(s, row["label"]))} for position, row in groups]
    return pd.DataFrame(rows, columns=["position", "baseline", "lr", "val_acc", "test_acc", "rank", "seeds"])


# ---- chance --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScratchOverSeeds:
    """The best run of ResNet18 from scratch in each seed that trained it."""

    usable: bool  # in most seeds its best run has an accuracy at all
    usable_holds: Holds
    lr: float | None  # the rate of the best run in most seeds
    lr_holds: Holds
    test_acc: Spread | None  # the best run's test accuracy per seed
    beats: bool  # it beats chance in most seeds
    beats_holds: Holds
    p_value: Spread | None
    below_majority: bool  # in most of the seeds where it does not beat chance, it is below the majority rate


@dataclass(frozen=True)
class ChanceOverSeeds:
    test: Chance  # the test split is the same in every seed
    n_runs: int  # distinct runs over all seeds
    beats: tuple[tuple[str, Holds], ...]  # every run, best first, and the seeds (that trained it) where it beats chance
    constant: tuple[tuple[str, str, Holds], ...]  # (run, answer, seeds it gives that answer to every test image)
    scratch: ScratchOverSeeds | None

    @property
    def beating(self) -> tuple[str, ...]:
        """Runs that beat chance in most of their seeds, best first."""
        return tuple(label for label, holds in self.beats if holds.majority)

    @property
    def sometimes(self) -> tuple[tuple[str, Holds], ...]:
        """Runs that beat chance in some of their seeds, but not in most."""
        return tuple((label, holds) for label, holds in self.beats if holds.k and not holds.majority)

    @property
    def overall(self) -> Literal["none", "some", "all"]:
        if not self.beating:
            return "none"
        return "all" if len(self.beating) == self.n_runs else "some"

    def holds_of(self, label: str) -> Holds:
        return dict(self.beats)[label]

    def constant_by_answer(self) -> dict[str, tuple[tuple[str, Holds], ...]]:
        """Answer ('real' | 'fake') -> (run, seeds) of the runs that give it to every test image in some seed."""
        by_answer: dict[str, list[tuple[str, Holds]]] = {}
        for label, answer, holds in self.constant:
            by_answer.setdefault(answer, []).append((label, holds))
        return {answer: tuple(runs) for answer, runs in by_answer.items()}


def _scratch(s: OverSeeds[SeedFacts]) -> ScratchOverSeeds | None:
    trained = with_baselines(s, "scratch")
    if trained is None:
        return None

    def best(facts: SeedFacts) -> dict[str, Any]:
        return facts.chances.scratch  # type: ignore[return-value]  (scratch ran in this seed)

    usable, usable_holds = trained.mode(lambda facts: accuracy(best(facts)) is not None)
    lr, lr_holds = trained.mode(lambda facts: best(facts).get("lr"))
    beats, beats_holds = trained.mode(lambda facts: facts.chances.scratch_beats)
    below = trained.where(lambda facts: not facts.chances.scratch_beats)
    return ScratchOverSeeds(usable, usable_holds, lr, lr_holds, trained.spread(lambda facts: accuracy(best(facts))),
                            beats, beats_holds, trained.spread(lambda facts: facts.chances.scratch_p_value),
                            bool(below and below.mode(lambda facts: facts.chances.scratch_below_majority)[0]))


def chance_over_seeds(s: OverSeeds[SeedFacts]) -> ChanceOverSeeds:
    test = chance(s.first.result, "test")
    labels = labels_in_order(s)
    beats = tuple((label, Holds(sum(test.beats(accuracy(run)) for run in runs_of_label(s, label)),
                                len(runs_of_label(s, label)))) for label in labels)
    constant = []
    for label in labels:
        answers = [answer for run in runs_of_label(s, label) if (answer := constant_prediction(run)) is not None]
        if answers:
            answer = max(dict.fromkeys(answers), key=answers.count)  # the commonest, the earliest seed's among equals
            constant.append((label, answer, Holds(answers.count(answer), len(runs_of_label(s, label)))))
    return ChanceOverSeeds(test, len(labels), beats, tuple(constant), _scratch(s))


# ---- the winner ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinnerOverSeeds:
    """The best run overall, counted over the seeds in which every baseline ran (`counted` of them)."""

    verdict: Literal["none", "alone", "tied", "clear", "unresolved"]  # its lead over the runner-up, in most seeds
    verdict_holds: Holds  # over the counted seeds in which both ran
    best: dict[str, Any] | None  # the run best in most counted seeds
    best_holds: Holds
    best_test: Spread | None  # its accuracies over every seed that trained it
    best_val: Spread | None
    runner_up: dict[str, Any] | None  # the best run of the runner-up baseline, in most seeds where `best` wins
    runner_test: Spread | None
    gap: Spread | None  # best minus runner-up, test accuracy, over the counted seeds in which both ran
    resolution: Spread | None  # of the best run's test accuracy, over the same seeds
    n_test: int
    counted: int
    validation_agrees: bool | None  # would validation accuracy pick the same run, in most seeds that can say
    validation_holds: Holds | None
    pick: dict[str, Any] | None = None  # the run validation would pick instead, in most seeds where it disagrees
    pick_test: Spread | None = None
    pick_val: Spread | None = None


def winner_over_seeds(s: OverSeeds[SeedFacts]) -> WinnerOverSeeds:
    counted = complete(s)
    n_test = split_size(s.first.result, "test")

    def best_label(facts: SeedFacts) -> str | None:
        return None if facts.winner.best is None else facts.winner.best["label"]

    label, best_holds = counted.mode(best_label)
    if label is None:
        return WinnerOverSeeds("none", best_holds, None, best_holds, None, None, None, None, None, None, n_test,
                               counted.n, None, None)
    best = counted.seed_of_mode(best_label).runs[label]
    wins = counted.where(lambda facts: best_label(facts) == label)
    assert wins is not None

    def runner_label_of(facts: SeedFacts) -> str | None:
        return None if facts.winner.runner_up is None else facts.winner.runner_up["label"]

    runner_label, _ = wins.mode(runner_label_of)
    validation = counted.where(lambda facts: facts.winner.validation_agrees is not None)
    agrees, validation_holds = validation.mode(lambda facts: facts.winner.validation_agrees) if validation else (None, None)
    pick = pick_test = pick_val = None
    if agrees is False:
        disagree = validation.where(lambda facts: facts.winner.validation_agrees is False)  # type: ignore[union-attr]
        pick_label, _ = disagree.mode(lambda facts: facts.winner.best_by_val["label"])  # type: ignore[union-attr]
        pick = disagree.seed_of_mode(lambda facts: facts.winner.best_by_val["label"]).runs[pick_label]  # type: ignore[union-attr]
        pick_test, pick_val = accuracy_spread(s, pick_label), accuracy_spread(s, pick_label, "val")
    common = dict(best=best, best_holds=best_holds, best_test=accuracy_spread(s, label),
                  best_val=accuracy_spread(s, label, "val"), n_test=n_test, counted=counted.n,
                  validation_agrees=agrees, validation_holds=validation_holds, pick=pick, pick_test=pick_test,
                  pick_val=pick_val)
    if runner_label is None:
        return WinnerOverSeeds("alone", Holds(wins.n, wins.n), runner_up=None, runner_test=None, gap=None,
                               resolution=None, **common)
    runner = wins.seed_of_mode(runner_label_of).runs[runner_label]
    both = counted.where(lambda facts: label in facts.runs and runner_label in facts.runs)
    assert both is not None

    def standing(facts: SeedFacts) -> str:
        return lead(facts.runs[label], facts.runs[runner_label], n_test)

    ahead = both.where(lambda facts: standing(facts) != "behind") or both
    verdict, _ = ahead.mode(standing)
    return WinnerOverSeeds(
        verdict, both.holds(lambda facts: standing(facts) == verdict), runner_up=runner,
        runner_test=accuracy_spread(s, runner_label),
        gap=both.spread(lambda facts: (accuracy(facts.runs[label]) or 0.0) - (accuracy(facts.runs[runner_label]) or 0.0)),
        resolution=both.spread(lambda facts: resolution(accuracy(facts.runs[label]) or 0.0, n_test)), **common)


# ---- learning rates ---------------------------------------------------------------------------------------------


def _rates(runs: Sequence[Mapping[str, Any]]) -> tuple[float, ...]:
    return tuple(run["lr"] for run in runs)


@dataclass(frozen=True)
class GridOverSeeds:
    """One torch baseline across its learning rates, over the seeds that trained it."""

    baseline: str
    grid: RateFacts  # as in a seed where `best_lr` is best: which rates stay at chance, where the best one lies
    best_lr: float
    best_holds: Holds
    best_test: Spread | None  # of the run at `best_lr`, over the seeds
    best_val: Spread | None
    learns_holds: Holds  # seeds in which the best run beats chance as it does in `grid` (or does not)
    broken_high_holds: Holds  # seeds with the same rates too large as in `grid`
    too_small_holds: Holds
    isolated_holds: Holds
    every_rate_holds: Holds  # seeds in which every rate beats chance
    diverged: tuple[tuple[float, Holds], ...]  # rates that diverged in some seed, largest first, and in how many


@dataclass(frozen=True)
class RatesOverSeeds:
    per_baseline: dict[str, GridOverSeeds]
    finetune_verdict: FinetuneVerdict  # in most seeds that fine-tuned
    finetune_holds: Holds | None
    finetune_seed: LearningRateFacts | None  # the learning-rate facts of a seed that gives that verdict
    survivors_holds: Holds | None  # seeds (training the linear probe) where it beats chance at each rate of
    #                                `finetune_seed.probe_survivors()`
    preference: Literal["larger", "smaller", "same"] | None  # the linear probe's best rate against fine-tuning's
    preference_holds: Holds | None  # over the seeds in which both learn
    probe_lr: float | None = None  # the two best rates, in a seed with that preference
    tune_lr: float | None = None


def _grid(s: OverSeeds[SeedFacts], baseline: str) -> GridOverSeeds:
    trained = s.where(lambda facts: baseline in facts.rates.per_baseline)
    assert trained is not None

    def grid_of(facts: SeedFacts) -> RateFacts:
        return facts.rates.per_baseline[baseline]

    best_lr, best_holds = trained.mode(lambda facts: grid_of(facts).best["lr"])
    grid = grid_of(trained.seed_of_mode(lambda facts: grid_of(facts).best["lr"]))
    label = grid.best["label"]
    rates = sorted({run["lr"] for facts in trained.facts for run in grid_of(facts).diverged}, reverse=True)
    diverged = tuple((rate, trained.where(lambda facts: rate in _rates(grid_of(facts).runs)).holds(  # type: ignore[union-attr]
        lambda facts: rate in _rates(grid_of(facts).diverged))) for rate in rates)
    return GridOverSeeds(
        baseline, grid, best_lr, best_holds, accuracy_spread(s, label), accuracy_spread(s, label, "val"),
        trained.holds(lambda facts: grid_of(facts).learns == grid.learns),
        trained.holds(lambda facts: _rates(grid_of(facts).broken_high) == _rates(grid.broken_high)),
        trained.holds(lambda facts: _rates(grid_of(facts).too_small) == _rates(grid.too_small)),
        trained.holds(lambda facts: _rates(grid_of(facts).isolated) == _rates(grid.isolated)),
        trained.holds(lambda facts: not grid_of(facts).at_chance), diverged)


def rates_over_seeds(s: OverSeeds[SeedFacts]) -> RatesOverSeeds:
    baselines = [baseline for baseline in all_baselines(s)
                 if any(baseline in facts.rates.per_baseline for facts in s.facts)]
    per_baseline = {baseline: _grid(s, baseline) for baseline in baselines}
    tuned = s.where(lambda facts: facts.rates.finetune is not None)
    verdict: FinetuneVerdict = "absent"
    holds = survivors_holds = None
    finetune = None
    if tuned is not None:
        verdict, holds = tuned.mode(lambda facts: facts.rates.finetune_verdict)
        finetune = tuned.seed_of_mode(lambda facts: facts.rates.finetune_verdict).rates
        survivors = [run["label"] for run in finetune.probe_survivors()]
        probing = with_baselines(s, "linear_probe")
        if survivors and probing is not None:
            survivors_holds = probing.holds(lambda facts: all(
                facts.chances.test.beats(accuracy(facts.runs.get(label))) for label in survivors))
    preferring = s.where(lambda facts: facts.rates.probe_rate_verdict is not None)
    if preferring is None:
        return RatesOverSeeds(per_baseline, verdict, holds, finetune, survivors_holds, None, None)
    preference, preference_holds = preferring.mode(lambda facts: facts.rates.probe_rate_verdict)
    chosen = preferring.seed_of_mode(lambda facts: facts.rates.probe_rate_verdict).rates
    return RatesOverSeeds(per_baseline, verdict, holds, finetune, survivors_holds, preference, preference_holds,
                          chosen.per_baseline["linear_probe"].best["lr"], chosen.finetune.best["lr"])  # type: ignore[union-attr]


# ---- the two probes --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbesOverSeeds:
    """The linear probe against the scikit-learn probe, over the seeds in which both ran."""

    present: int  # how many of the two probes ran in any seed
    verdict: Literal["missing", "agree", "linear_better", "sklearn_better"]
    holds: Holds | None
    probes: ProbeFacts | None  # a seed that gives the verdict (its fit converged or not, its grid of rates)
    linear_lr: float | None = None  # the best linear probe's rate in most seeds
    linear_lr_holds: Holds | None = None
    linear_test: Spread | None = None  # the best linear probe, per seed
    sklearn_test: Spread | None = None
    difference: Spread | None = None  # linear minus scikit-learn
    resolution: Spread | None = None
    close: Spread | None = None  # linear-probe rates within the resolution of scikit-learn's accuracy (or above)
    total: int = 0  # linear-probe rates
    closeness: Literal["all", "none", "some"] | None = None  # how many come that close, in most seeds
    closeness_holds: Holds | None = None


def probes_over_seeds(s: OverSeeds[SeedFacts]) -> ProbesOverSeeds:
    present = len({"linear_probe", "sklearn_probe"} & set(all_baselines(s)))
    both = s.where(lambda facts: facts.probes.present == 2)
    if both is None:
        return ProbesOverSeeds(present, "missing", None, None)

    def closeness(facts: SeedFacts) -> str:
        close, total = len(facts.probes.rates_matching), len(facts.probes.linear_runs)
        return "all" if close == total else "none" if close == 0 else "some"

    verdict, holds = both.mode(lambda facts: facts.probes.verdict)
    probes = both.seed_of_mode(lambda facts: facts.probes.verdict).probes
    linear_lr, linear_lr_holds = both.mode(lambda facts: facts.probes.linear["lr"])  # type: ignore[index]
    close_kind, close_holds = both.mode(closeness)
    return ProbesOverSeeds(
        present, verdict, holds, probes, linear_lr, linear_lr_holds,
        both.spread(lambda facts: accuracy(facts.probes.linear)), both.spread(lambda facts: accuracy(facts.probes.sklearn)),
        both.spread(lambda facts: facts.probes.difference), both.spread(lambda facts: facts.probes.resolution),
        both.spread(lambda facts: len(facts.probes.rates_matching)), len(probes.linear_runs), close_kind, close_holds)


# ---- XGBoost against the pretrained features ----------------------------------------------------------------------


@dataclass(frozen=True)
class Versus:
    """XGBoost against the best run of a group (the probes on frozen features, or fine-tuning), over the seeds in
    which both ran."""

    other: dict[str, Any]  # the group's best run in most of those seeds
    other_holds: Holds
    other_test: Spread | None  # the group's best test accuracy, per seed
    difference: Spread | None  # XGBoost minus it
    width: Spread | None  # the test set's resolution of it
    verdict: Comparison  # in most of those seeds
    holds: Holds
    not_behind: Holds  # seeds in which XGBoost is ahead or level


@dataclass(frozen=True)
class PixelsOverSeeds:
    xgboost_ran: bool
    xgboost_test: Spread | None
    frozen: Versus | None
    finetuned: Versus | None

    @property
    def comparable(self) -> bool:
        return self.frozen is not None or self.finetuned is not None

    @property
    def frozen_verdict(self) -> Comparison | None:
        return None if self.frozen is None else self.frozen.verdict

    @property
    def finetuned_verdict(self) -> Comparison | None:
        return None if self.finetuned is None else self.finetuned.verdict


def _versus(s: OverSeeds[SeedFacts], group: Callable[[XGBoostFacts], dict[str, Any] | None]) -> Versus | None:
    both = s.where(lambda facts: facts.pixels.xgboost is not None and group(facts.pixels) is not None)
    if both is None:
        return None

    def other_label(facts: SeedFacts) -> str:
        return group(facts.pixels)["label"]  # type: ignore[index]

    def against(facts: SeedFacts) -> tuple[float, float, Comparison]:
        return facts.pixels.against(group(facts.pixels))  # type: ignore[return-value]

    label, label_holds = both.mode(other_label)
    verdict, holds = both.mode(lambda facts: against(facts)[2])
    return Versus(both.seed_of_mode(other_label).runs[label], label_holds,
                  both.spread(lambda facts: accuracy(group(facts.pixels))), both.spread(lambda facts: against(facts)[0]),
                  both.spread(lambda facts: against(facts)[1]), verdict, holds,
                  both.holds(lambda facts: against(facts)[2] != "behind"))


def pixels_over_seeds(s: OverSeeds[SeedFacts]) -> PixelsOverSeeds:
    return PixelsOverSeeds("xgboost" in all_baselines(s), accuracy_spread(s, "xgboost"),
                           _versus(s, lambda pixels: pixels.frozen), _versus(s, lambda pixels: pixels.finetuned))


# ---- the best and the worst run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtremeRun:
    """The best or the worst run by mean test accuracy, over the seeds that trained it."""

    run: dict[str, Any]  # as in the first seed that trained it
    confusion: tuple[tuple[Spread, Spread], ...]  # [true class][predicted class]: test images, over the seeds
    recall: tuple[Spread | None, Spread | None]  # share of the real and of the fake test images it gets right
    constant: str | None  # the answer it gives every test image in most seeds (None: it does not)
    constant_holds: Holds


@dataclass(frozen=True)
class ExtremesOverSeeds:
    best: ExtremeRun | None
    worst: ExtremeRun | None  # None when there is a single run
    lopsided: bool  # the best run recognises one class more than LOPSIDED more often, in most of its seeds
    lopsided_holds: Holds | None
    easier_class: str | None  # the class it recognises more often, in most of the seeds where it is lopsided
    recall_gap: Spread | None  # its recall of real minus fake images, over those seeds

    def rows(self) -> pd.DataFrame:
        """Per run (best, worst) and true class: predicted real, predicted fake, recall (`Spread`s)."""
        rows = []
        for role, extreme in (("best", self.best), ("worst", self.worst)):
            if extreme is None:
                continue
            for label, name in enumerate(CLASS_NAMES):
                rows.append({"role": role, "label": extreme.run["label"], "true": name,
                             "predicted_real": extreme.confusion[label][0], "predicted_fake": extreme.confusion[label][1],
                             "recall": extreme.recall[label]})
        return pd.DataFrame(rows, columns=["role", "label", "true", "predicted_real", "predicted_fake", "recall"])


def _extreme(s: OverSeeds[SeedFacts], label: str) -> ExtremeRun:
    runs = runs_of_label(s, label)
    confusion = tuple(tuple(spread(run["confusion"]["test"][true][predicted] for run in runs) for predicted in (0, 1))
                      for true in (0, 1))
    answers = over_seeds(range(len(runs)), [constant_prediction(run) for run in runs])
    constant, constant_holds = answers.mode(lambda answer: answer)
    return ExtremeRun(runs[0], confusion, (spread(recall(run, 0) for run in runs), spread(recall(run, 1) for run in runs)),
                      constant, constant_holds)


def extremes_over_seeds(s: OverSeeds[SeedFacts]) -> ExtremesOverSeeds:
    labels = labels_in_order(s)
    if not labels:
        return ExtremesOverSeeds(None, None, False, None, None, None)
    best, worst = labels[0], labels[-1] if len(labels) > 1 else None
    gaps = over_seeds(range(len(runs_of_label(s, best))),
                      [ConfusionFacts(run, None).recall_gap for run in runs_of_label(s, best)])
    lopsided, lopsided_holds = gaps.mode(lambda gap: worst is not None and gap is not None and abs(gap) > LOPSIDED)
    easier = gap = None
    if lopsided:
        tilted = gaps.where(lambda gap: gap is not None and abs(gap) > LOPSIDED)
        easier, _ = tilted.mode(lambda gap: CLASS_NAMES[0] if gap > 0 else CLASS_NAMES[1])  # type: ignore[union-attr]
        gap = tilted.spread(lambda gap: gap)  # type: ignore[union-attr]
    return ExtremesOverSeeds(_extreme(s, best), None if worst is None else _extreme(s, worst), lopsided,
                             lopsided_holds, easier, gap)


# ---- everything the chapter states -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Section7OverSeeds:
    seeds: OverSeeds[SeedFacts]
    chances: ChanceOverSeeds
    winner: WinnerOverSeeds
    rates: RatesOverSeeds
    probes: ProbesOverSeeds
    pixels: PixelsOverSeeds
    extremes: ExtremesOverSeeds
    baseline_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.seeds.n

    @property
    def cut(self) -> dict[str, tuple[int, ...]]:
        """The baselines trained on fewer than all seeds, with their seeds."""
        return {baseline: seeds for baseline, seeds in self.baseline_seeds.items() if len(seeds) < self.n}


def section7_over_seeds(results: Sequence[Mapping[str, Any]], first_seed: int = 0) -> Section7OverSeeds:
    s = cnn_over_seeds(results, first_seed)
    return Section7OverSeeds(s, chance_over_seeds(s), winner_over_seeds(s), rates_over_seeds(s),
                             probes_over_seeds(s), pixels_over_seeds(s), extremes_over_seeds(s), baseline_seeds(s))
