"""The front page's table: one line per question of the exercise, answered from the stored results."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from ex4 import fmt
from ex4.store import Outcome


def _best(runs: list[dict[str, Any]], metric: str = "val_acc") -> dict[str, Any] | None:
    scored = [run for run in runs if run["final"].get(metric) is not None]
    return max(scored, key=lambda run: run["final"][metric]) if scored else None


MAJORITY_MARGIN = 0.005  # a Section 6 run within half a point of the majority-class rate has not learned


def majority_rate(per_class: Mapping[str, list[int]]) -> float:
    """Validation accuracy of always answering the most common training class, from counts per split."""
    train, val = per_class["train"], per_class["val"]
    most_common = max(range(len(train)), key=lambda label: train[label])
    return val[most_common] / max(1, sum(val))


def headline_rows(outcomes: Mapping[str, Outcome], majority: float | None = None) -> pd.DataFrame:
    """Question, best setting and its accuracy, for every experiment that was run.

    `majority` (`majority_rate` of the cities): a Section 6 question whose best run does not beat always
    answering the most common country says so instead of naming a winner."""
    rows = []

    def add(question: str, name: str, runs: list[dict[str, Any]], metric: str = "val_acc") -> None:
        best = _best(runs, metric)
        if best is not None:
            setting = best["label"]
            if name != "cnn" and majority is not None and best["final"]["val_acc"] <= majority + MAJORITY_MARGIN:
                setting = f"none learned (best: {setting}, no better than the most common country)"
            rows.append({"question": question, "best setting": setting,
                         "validation accuracy": fmt.pct(best["final"].get("val_acc")),
                         "test accuracy": fmt.pct(best["final"].get("test_acc")),
                         "result": f"`{outcomes[name].key[:12]}`"})

    questions = {
        "mlp-lr": "6.1 Which learning rate trains the MLP?",
        "mlp-epochs": "6.1 What do long runs give?",
        "mlp-batchnorm": "6.1 Does batch norm help?",
        "mlp-batch-size": "6.1 Which batch size, at a fixed learning rate?",
        "mlp-shapes": "6.2 Which depth × width?",
        "mlp-gradients": "6.2 Does a very deep net train, plain or residual?",
        "mlp-implicit": "6.2 Sine features or raw coordinates?",
        "cnn": "7 Which baseline tells real from fake?",
    }
    for name, question in questions.items():
        if name in outcomes:
            add(question, name, outcomes[name].result.get("runs", []), "test_acc" if name == "cnn" else "val_acc")
    return pd.DataFrame(rows)
