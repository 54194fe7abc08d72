"""Section 7 tables: ranking order and ties, best-two-per-baseline summary, and the mistakes selection."""

from __future__ import annotations

import random

import numpy as np

from ex4.analysis.tables import mistakes_summary, rank_runs, select_mistakes, summarize
from ex4.experiments.section7 import run_label
from ex4.fmt import format_lr


def make_run(baseline: str, lr: float | None, test_acc: float, val_acc: float = 0.5) -> dict:
    return {"baseline": baseline, "lr": lr, "label": run_label(baseline, lr),
            "final": {"test_acc": test_acc, "val_acc": val_acc, "test_loss": 0.7, "val_loss": 0.7}}


RUNS = [
    make_run("xgboost", None, 0.735),
    make_run("scratch", 1e-4, 0.525), make_run("scratch", 1e-5, 0.50), make_run("scratch", 0.1, 0.4925),
    make_run("linear_probe", 0.1, 0.7325), make_run("linear_probe", 0.01, 0.715),
    make_run("linear_probe", 1e-5, 0.4975),
    make_run("sklearn_probe", None, 0.715),
    make_run("finetune", 1e-4, 0.7475), make_run("finetune", 1e-5, 0.7175), make_run("finetune", 0.01, 0.4775),
]


def test_labels_and_learning_rate_text():
    assert [format_lr(lr) for lr in (0.1, 0.01, 0.001, 1e-4, 1e-5, 5e-4, 2.5e-4, 1.0)] == \
        ["0.1", "0.01", "0.001", "1e-4", "1e-5", "5e-4", "2.5e-4", "1"]
    assert run_label("finetune", 1e-4) == "finetune lr=1e-4" and run_label("xgboost", None) == "xgboost"


def test_ranking_orders_by_test_accuracy_and_numbers_ranks():
    ranking = rank_runs(RUNS)
    assert [row["rank"] for row in ranking] == list(range(1, len(RUNS) + 1))
    assert ranking[0]["label"] == "finetune lr=1e-4" and ranking[-1]["label"] == "finetune lr=0.01"
    accuracies = [row["test_acc"] for row in ranking]
    assert accuracies == sorted(accuracies, reverse=True)


def test_ties_break_on_validation_accuracy_then_label():
    runs = [make_run("linear_probe", 0.01, 0.7, val_acc=0.6), make_run("sklearn_probe", None, 0.7, val_acc=0.8),
            make_run("finetune", 0.1, 0.7, val_acc=0.6), make_run("scratch", 0.1, 0.7, val_acc=0.6)]
    labels = [row["label"] for row in rank_runs(runs)]
    assert labels == ["sklearn_probe", "finetune lr=0.1", "linear_probe lr=0.01", "scratch lr=0.1"]


def test_ranking_is_independent_of_input_order():
    expected = rank_runs(RUNS)
    for seed in range(5):
        shuffled = RUNS[:]
        random.Random(seed).shuffle(shuffled)
        assert rank_runs(shuffled) == expected


def test_missing_accuracy_ranks_last():
    runs = [make_run("scratch", 0.1, None), make_run("scratch", 0.01, 0.5)]
    runs[0]["final"]["test_acc"] = float("nan")
    assert [row["label"] for row in rank_runs(runs)] == ["scratch lr=0.01", "scratch lr=0.1"]


def test_summary_has_best_two_per_baseline_in_given_order_and_worst_overall():
    order = ["xgboost", "scratch", "linear_probe", "finetune", "sklearn_probe"]
    summary = summarize(RUNS, 2, order)
    groups = {group["baseline"]: [row["label"] for row in group["runs"]] for group in summary["best_per_baseline"]}
    assert [group["baseline"] for group in summary["best_per_baseline"]] == order
    assert groups == {"xgboost": ["xgboost"], "scratch": ["scratch lr=1e-4", "scratch lr=1e-5"],
                      "linear_probe": ["linear_probe lr=0.1", "linear_probe lr=0.01"],
                      "finetune": ["finetune lr=1e-4", "finetune lr=1e-5"], "sklearn_probe": ["sklearn_probe"]}
    assert summary["worst"]["label"] == "finetune lr=0.01" and summary["best"]["label"] == "finetune lr=1e-4"


def test_summary_of_no_runs_is_empty():
    assert summarize([], 2)["worst"] is None


IDS = [f"test/{'real' if label == 0 else 'fake'}/{index:04d}.png" for index, label in enumerate([0, 0, 0, 1, 1, 1])]
LABELS = [0, 0, 0, 1, 1, 1]


def test_mistakes_are_right_for_best_and_wrong_for_worst_most_confident_first():
    best = [0.1, 0.2, 0.4, 0.9, 0.8, 0.6]
    worst = [0.7, 0.99, 0.3, 0.2, 0.45, 0.05]
    items = select_mistakes(IDS, LABELS, best, worst, 3)
    assert [item["id"] for item in items] == [IDS[1], IDS[5], IDS[3]]
    assert items[0] == {"id": IDS[1], "true": 0, "p_best": 0.2, "p_worst": 0.99}
    assert select_mistakes(IDS, LABELS, best, worst, 3) == items  # deterministic


def test_mistakes_ties_break_on_best_confidence_then_id():
    best = [0.1, 0.3, 0.1, 0.9, 0.9, 0.9]
    worst = [0.9, 0.9, 0.9, 0.5, 0.5, 0.5]  # 0.5 is not > 0.5: predicted real, wrong for the fakes
    items = select_mistakes(IDS, LABELS, best, worst, 10)
    assert [item["id"] for item in items] == [IDS[0], IDS[2], IDS[1], IDS[3], IDS[4], IDS[5]]


def test_fewer_mistakes_than_asked_are_reported():
    probabilities = {"a": np.array([0.1, 0.1, 0.1, 0.9, 0.9, 0.9]), "b": np.array([0.1, 0.1, 0.9, 0.9, 0.9, 0.9])}
    ranking = [{"label": "a"}, {"label": "b"}]
    block = mistakes_summary(ranking, IDS, LABELS, probabilities, 5)
    assert block["best"] == "a" and block["worst"] == "b" and len(block["items"]) == 1
    assert block["items"][0]["id"] == IDS[2] and block["requested"] == 5
    assert mistakes_summary(ranking[:1], IDS, LABELS, probabilities, 5)["items"] == []


def test_nan_probability_counts_as_real():
    items = select_mistakes(IDS[3:], LABELS[3:], [0.9, 0.9, 0.9], [float("nan"), 0.9, 0.9], 5)
    assert [item["id"] for item in items] == [IDS[3]] and items[0]["p_worst"] is None
