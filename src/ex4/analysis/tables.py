"""Rankings and summaries of Section 7's runs, and the choice of images for the mistakes figure.

Pure functions over the plain run dicts stored in a `cnn` result (no torch, no training), so the chapter,
the figures and the tests all rank runs the same way. The experiment does not rank: a ranking is computed when
a chapter asks, so changing it never changes a store key. Order is total and deterministic: test accuracy
(high first), then validation accuracy (high first), then the run's label (alphabetical).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np


def _number(value: Any, missing: float) -> float:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def sort_key(run: dict[str, Any]) -> tuple:
    """Test accuracy desc, then validation accuracy desc, then label; a missing accuracy ranks last."""
    final = run["final"]
    return (-_number(final.get("test_acc"), -math.inf), -_number(final.get("val_acc"), -math.inf), run["label"])


def brief(run: dict[str, Any]) -> dict[str, Any]:
    """The fields a table row needs."""
    final = run["final"]
    return {"label": run["label"], "baseline": run["baseline"], "lr": run.get("lr"),
            "test_acc": final.get("test_acc"), "val_acc": final.get("val_acc"),
            "test_loss": final.get("test_loss"), "val_loss": final.get("val_loss")}


def rank_runs(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every run, best first, as table rows with a 1-based `rank`."""
    ordered = sorted(runs, key=sort_key)
    return [{"rank": position, **brief(run)} for position, run in enumerate(ordered, start=1)]


def summarize(runs: Sequence[dict[str, Any]], per_baseline: int = 2,
              baselines: Sequence[str] | None = None) -> dict[str, Any]:
    """The best `per_baseline` runs of each baseline (in `baselines` order) and the worst run overall."""
    if not runs:
        return {"best_per_baseline": [], "worst": None, "best": None, "per_baseline": per_baseline}
    order = list(baselines) if baselines is not None else list(dict.fromkeys(run["baseline"] for run in runs))
    ranking = rank_runs(runs)
    groups = []
    for baseline in order:
        rows = [row for row in ranking if row["baseline"] == baseline]
        if rows:
            groups.append({"baseline": baseline, "runs": rows[:per_baseline]})
    return {"best_per_baseline": groups, "best": ranking[0], "worst": ranking[-1], "per_baseline": per_baseline}


def select_mistakes(ids: Sequence[str], labels: Sequence[int], p_best: Sequence[float], p_worst: Sequence[float],
                    count: int) -> list[dict[str, Any]]:
    """Up to `count` test images the best run gets right and the worst gets wrong.

    Chosen deterministically: the worst run's most confident errors first (largest distance of its
    probability from the true label), then the best run's most confident answers, then the image id.
    A probability > 0.5 means fake; a NaN probability (diverged run) counts as predicting real.
    """
    labels = np.asarray(labels, dtype=np.int64)
    best = np.asarray(p_best, dtype=np.float64)
    worst = np.asarray(p_worst, dtype=np.float64)
    best_right = (best > 0.5).astype(np.int64) == labels
    worst_wrong = (worst > 0.5).astype(np.int64) != labels
    candidates = np.flatnonzero(best_right & worst_wrong)
    worst_error = np.nan_to_num(np.abs(worst - labels), nan=0.5)
    best_error = np.abs(best - labels)
    chosen = sorted(candidates, key=lambda i: (-worst_error[i], best_error[i], ids[i]))[:count]
    return [{"id": ids[i], "true": int(labels[i]), "p_best": float(best[i]),
             "p_worst": None if math.isnan(worst[i]) else float(worst[i])} for i in chosen]


def mistakes_summary(ranking: Sequence[dict[str, Any]], ids: Sequence[str], labels: Sequence[int],
                     test_probabilities: dict[str, Sequence[float]], count: int) -> dict[str, Any]:
    """Which runs are best and worst, and the images of the mistakes figure (fewer than `count` when fewer exist)."""
    if len(ranking) < 2:
        return {"best": ranking[0]["label"] if ranking else None, "worst": None, "items": [], "requested": count}
    best, worst = ranking[0]["label"], ranking[-1]["label"]
    items = select_mistakes(ids, labels, test_probabilities[best], test_probabilities[worst], count)
    return {"best": best, "worst": worst, "items": items, "requested": count}
