"""Claims over seeds: in how many seeds a verdict holds, and the spread of a number over the seeds.

A chapter computes its facts once per seed (the same `ex4.analysis` functions as for one run) and wraps them
in `OverSeeds`. A claim the chapter makes is then checked on every seed: `holds` counts the seeds whose facts
agree with it, `mode` picks the value most seeds agree on (the first seed's on a tie) with its count, and
`spread` gives a number's mean, minimum and maximum over the seeds. Counts and numbers only: the chapter words
them. The book's one convention for a number over seeds is its mean with the min–max range (`Spread`).
With one seed every count is 1 of 1 and every spread a single value, so a chapter reads as it did.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Holds:
    """A claim that holds in `k` of `n` seeds."""

    k: int
    n: int

    @property
    def always(self) -> bool:
        return self.k == self.n

    @property
    def never(self) -> bool:
        return self.k == 0

    @property
    def single(self) -> bool:
        """Only one seed was run: nothing to count."""
        return self.n == 1

    @property
    def majority(self) -> bool:
        return 2 * self.k > self.n


@dataclass(frozen=True)
class Spread:
    """A number over seeds: its mean, minimum and maximum over the seeds where it is defined (`n` of them)."""

    mean: float
    low: float
    high: float
    n: int
    missing: int = 0  # seeds where it is undefined (a diverged run, a missing metric)

    @property
    def single(self) -> bool:
        return self.n == 1

    @property
    def width(self) -> float:
        return self.high - self.low

    def __float__(self) -> float:
        return float(self.mean)


def spread(values: Iterable[float | None]) -> Spread | None:
    """The `Spread` of the finite values (None when there are none)."""
    values = list(values)
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    return Spread(sum(finite) / len(finite), min(finite), max(finite), len(finite), len(values) - len(finite))


@dataclass(frozen=True)
class OverSeeds(Generic[T]):
    """The facts of one experiment for each seed, first seed first."""

    seeds: tuple[int, ...]
    facts: tuple[T, ...]

    def __post_init__(self) -> None:
        if len(self.seeds) != len(self.facts) or not self.seeds:
            raise ValueError("one facts object per seed, at least one seed")

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def first(self) -> T:
        """The first seed's facts: what the figures of a single seed (decision maps) show."""
        return self.facts[0]

    def holds(self, claim: Callable[[T], Any]) -> Holds:
        """In how many seeds `claim(facts)` is true."""
        return Holds(sum(1 for facts in self.facts if claim(facts)), self.n)

    def values(self, number: Callable[[T], Any]) -> list[Any]:
        return [number(facts) for facts in self.facts]

    def spread(self, number: Callable[[T], float | None]) -> Spread | None:
        """The mean and min–max over seeds of `number(facts)`."""
        return spread(self.values(number))

    def mode(self, value: Callable[[T], Any]) -> tuple[Any, Holds]:
        """The value of `value(facts)` that most seeds give (the earliest seed's among equals), and in how many
        seeds it is given."""
        values = self.values(value)
        counts = Counter(values)
        top = max(counts.values())
        chosen = next(v for v in values if counts[v] == top)
        return chosen, Holds(top, self.n)

    def where(self, defined: Callable[[T], Any]) -> "OverSeeds[T] | None":
        """The seeds in which `defined(facts)` is true (those where a claim is defined: say, where both baselines
        it compares ran), first seed first; None when there is none."""
        kept = [(seed, facts) for seed, facts in zip(self.seeds, self.facts) if defined(facts)]
        return OverSeeds(tuple(seed for seed, _ in kept), tuple(facts for _, facts in kept)) if kept else None

    def seed_of_mode(self, value: Callable[[T], Any]) -> T:
        """The facts of the first seed that gives the modal value (to quote that seed's own details)."""
        chosen, _ = self.mode(value)
        return next(facts for facts in self.facts if value(facts) == chosen)


def over_seeds(seeds: Sequence[int], facts: Iterable[T]) -> OverSeeds[T]:
    return OverSeeds(tuple(int(seed) for seed in seeds), tuple(facts))


def seeds_of_results(results: Sequence[dict[str, Any]]) -> list[int]:
    """The seeds of per-seed results (each result records its seed)."""
    return [int(result["seed"]) for result in results]
