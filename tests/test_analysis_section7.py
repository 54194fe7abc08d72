"""Section 7's facts and verdicts on small hand-made `cnn` results: each verdict the chapter words, no training.

The wording itself is tested on the chapter (test_section7_wording.py); here only numbers and verdicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ex4.analysis import section7 as facts
from ex4.experiments.section7 import run_label
from ex4.errors import Ex4Error

SURROGATE = {"backbone": "surrogate:digits (10-class)",
             "backbone_info": {"train_images": 1000, "epochs": 4, "held_out_accuracy": 0.9, "held_out_images": 100,
                               "digits_excluded": 50}}
IMAGENET = {"backbone": "imagenet", "backbone_info": {}}


def confusion_for(test_acc: float, n_per_class: int, constant: str | None = None) -> list[list[int]]:
    """A test confusion [[tn, fp], [fn, tp]] with the given accuracy, errors split evenly over the classes."""
    if constant == "fake":
        return [[0, n_per_class], [0, n_per_class]]
    if constant == "real":
        return [[n_per_class, 0], [n_per_class, 0]]
    right = round(test_acc * 2 * n_per_class)
    real_right = right // 2
    fake_right = right - real_right
    return [[real_right, n_per_class - real_right], [n_per_class - fake_right, fake_right]]


def fake_run(baseline: str, lr: float | None, test_acc: float, val_acc: float | None = None,
             n_per_class: int = 200, constant: str | None = None, diverged: bool = False,
             **params: Any) -> dict[str, Any]:
    val_acc = test_acc if val_acc is None else val_acc
    label = run_label(baseline, lr)
    run_params = {"seed": 0, **params}
    if lr is not None:
        run_params.update({"lr": lr, "batch_size": 32, "epochs": 1, "image_size": 224, "resize": 256})
    return {"baseline": baseline, "lr": lr, "label": label, "backbone": "none", "params": run_params,
            "final": {"val_acc": val_acc, "test_acc": test_acc, "val_loss": None if diverged else 0.7,
                      "test_loss": None if diverged else 0.69},
            "confusion": {"test": confusion_for(test_acc, n_per_class, constant),
                          "val": confusion_for(val_acc, n_per_class // 2, constant)},
            "diverged": diverged}


def fake_result(runs: list[dict[str, Any]], test: tuple[int, int] = (200, 200), train: tuple[int, int] = (700, 700),
                standin: bool = True, backbone: dict[str, Any] | None = None) -> dict[str, Any]:
    def counts(pair):
        return {"real": pair[0], "fake": pair[1]}

    return {
        "experiment": "cnn", **(backbone or SURROGATE),
        "data": {"is_standin": standin, "description": "Stand-in data, NOT faces: digits and splices.",
                 "counts": {"train": counts(train), "val": counts((100, 100)), "test": counts(test)},
                 "train_subset": None, "test_ids": []},
        "runs": runs,
    }


def course_like_runs() -> list[dict[str, Any]]:
    """The seed report's shape: fine-tuning wins at a small rate and breaks at large ones, scratch at chance."""
    return [
        fake_run("xgboost", None, 0.735, crop=64, resize=224, features=12288),
        fake_run("scratch", 0.1, 0.4925), fake_run("scratch", 1e-4, 0.525), fake_run("scratch", 1e-5, 0.5),
        fake_run("linear_probe", 0.1, 0.7325), fake_run("linear_probe", 0.01, 0.715),
        fake_run("linear_probe", 1e-5, 0.4975),
        fake_run("sklearn_probe", None, 0.715, converged=True),
        fake_run("finetune", 0.1, 0.52), fake_run("finetune", 0.01, 0.4775, constant="fake"),
        fake_run("finetune", 1e-4, 0.7475), fake_run("finetune", 1e-5, 0.7175),
    ]


# ---- chance ------------------------------------------------------------------------------------------------


def test_chance_on_a_balanced_split_uses_a_one_sided_binomial_threshold():
    guess = facts.chance(fake_result([]), "test")
    assert guess.n == 400 and guess.majority_rate == 0.5 and guess.balanced
    assert 0.53 < guess.threshold < 0.55  # 0.5 + 1.645 * sqrt(0.25 / 400) ≈ 0.541
    assert guess.beats(0.56) and not guess.beats(0.52) and not guess.beats(None)
    assert guess.p_value(0.5) > 0.4 and guess.p_value(0.6) < 1e-4


def test_chance_on_an_unbalanced_split_names_the_larger_class():
    guess = facts.chance(fake_result([], test=(100, 300)), "test")
    assert guess.majority_class == "fake" and guess.majority_rate == 0.75 and not guess.balanced
    assert not guess.beats(0.76)  # above the majority rate, but not by more than guessing reaches


def test_constant_predictions_are_read_from_the_confusion_counts():
    assert facts.constant_prediction(fake_run("finetune", 0.01, 0.5, constant="fake")) == "fake"
    assert facts.constant_prediction(fake_run("finetune", 0.01, 0.5, constant="real")) == "real"
    assert facts.constant_prediction(fake_run("finetune", 0.01, 0.5)) is None


def test_scratch_at_chance_constant_runs_and_the_training_budget():
    result = fake_result(course_like_runs())
    chances = facts.chance_facts(result)
    assert chances.scratch["lr"] == 1e-4 and not chances.scratch_beats and not chances.scratch_below_majority
    assert chances.scratch_p_value > facts.SIGNIFICANCE
    budget = facts.budget(result, weights=11_177_025)
    assert budget.steps == 44  # ⌈1400 / 32⌉ steps of one epoch
    assert chances.constant == (("finetune lr=0.01", "fake"),)
    assert chances.constant_by_answer() == {"fake": ("finetune lr=0.01",)}
    assert chances.overall == "some" and len(chances.beating) == 6 and chances.beating[0] == "finetune lr=1e-4"


def test_scratch_that_learns_and_runs_that_all_or_never_beat_chance():
    learns = facts.chance_facts(fake_result([fake_run("scratch", 1e-3, 0.62)]))
    assert learns.scratch_beats and learns.overall == "all"
    below = facts.chance_facts(fake_result([fake_run("scratch", 1e-3, 0.45)]))
    assert not below.scratch_beats and below.scratch_below_majority and below.overall == "none"
    pixels = facts.chance_facts(fake_result([fake_run("xgboost", None, 0.6)]))
    assert pixels.scratch is None and facts.budget(fake_result([fake_run("xgboost", None, 0.6)])) is None


# ---- the winner --------------------------------------------------------------------------------------------


def test_winner_within_the_test_sets_resolution_is_not_a_clear_win():
    winner = facts.winner_facts(fake_result(course_like_runs()))
    assert winner.best["label"] == "finetune lr=1e-4" and winner.runner_up["baseline"] == "xgboost"
    assert winner.gap == pytest.approx(0.0125) and winner.gap < winner.resolution
    assert winner.verdict == "unresolved"


def test_a_clear_winner_a_tie_a_lone_baseline_and_no_run():
    clear = facts.winner_facts(fake_result([fake_run("finetune", 1e-4, 0.9), fake_run("xgboost", None, 0.6)]))
    assert clear.verdict == "clear" and clear.validation_agrees is True
    tie = facts.winner_facts(fake_result([fake_run("finetune", 1e-4, 0.7), fake_run("xgboost", None, 0.7)]))
    assert tie.verdict == "tied"
    assert facts.winner_facts(fake_result([fake_run("xgboost", None, 0.7)])).verdict == "alone"
    nothing = facts.winner_facts(fake_result([]))
    assert nothing.verdict == "none" and nothing.validation_agrees is None


def test_validation_choosing_a_different_winner():
    winner = facts.winner_facts(fake_result([fake_run("finetune", 1e-4, 0.8, val_acc=0.7),
                                             fake_run("xgboost", None, 0.75, val_acc=0.72)]))
    assert winner.best["baseline"] == "finetune" and winner.best_by_val["baseline"] == "xgboost"
    assert winner.validation_agrees is False


# ---- learning rates ---------------------------------------------------------------------------------------


def test_large_rates_breaking_fine_tuning_and_the_probe_that_survives_them():
    rates = facts.learning_rate_facts(fake_result(course_like_runs()))
    tune = rates.per_baseline["finetune"]
    assert tune.best["lr"] == 1e-4 and [run["lr"] for run in tune.broken_high] == [0.1, 0.01]
    assert rates.finetune_verdict == "breaks"
    assert [run["lr"] for run in rates.probe_survivors()] == [0.1, 0.01]
    probe = rates.per_baseline["linear_probe"]
    assert [run["lr"] for run in probe.too_small] == [1e-5] and probe.position == "largest"
    assert rates.probe_rate_verdict == "larger"
    probe_fails = facts.learning_rate_facts(fake_result([fake_run("linear_probe", 0.1, 0.5),
                                                         fake_run("finetune", 1e-3, 0.8)]))
    assert probe_fails.probe_rate_verdict is None  # the best rate of a probe at chance means nothing
    same = facts.learning_rate_facts(fake_result([fake_run("linear_probe", 1e-3, 0.7),
                                                  fake_run("finetune", 1e-3, 0.8)]))
    assert same.probe_rate_verdict == "same"


def test_a_failing_rate_between_two_that_learn_is_not_called_too_large():
    rates = facts.learning_rate_facts(fake_result([
        fake_run("scratch", 0.1, 0.63), fake_run("scratch", 0.01, 0.5), fake_run("scratch", 1e-3, 0.65),
        fake_run("scratch", 1e-4, 0.62), fake_run("scratch", 1e-5, 0.51)]))
    scratch = rates.per_baseline["scratch"]
    assert scratch.learns and scratch.position == "middle"
    assert scratch.broken_high == () and [run["lr"] for run in scratch.isolated] == [0.01]
    assert [run["lr"] for run in scratch.too_small] == [1e-5]


def test_fine_tuning_that_survives_dips_is_best_at_the_largest_rate_or_never_learns():
    survives = facts.learning_rate_facts(fake_result([fake_run("finetune", 0.1, 0.65),
                                                      fake_run("finetune", 1e-3, 0.8)]))
    assert survives.finetune_verdict == "survives"
    assert [run["lr"] for run in survives.finetune_above(learned=True)] == [0.1]
    dips = facts.learning_rate_facts(fake_result([fake_run("finetune", 0.1, 0.65), fake_run("finetune", 0.01, 0.5),
                                                  fake_run("finetune", 1e-3, 0.8)]))
    assert dips.finetune_verdict == "dips"
    assert [run["lr"] for run in dips.finetune_above(learned=False)] == [0.01]
    largest = facts.learning_rate_facts(fake_result([fake_run("finetune", 0.1, 0.8),
                                                     fake_run("finetune", 1e-3, 0.7)]))
    assert largest.finetune_verdict == "largest_best"
    never = facts.learning_rate_facts(fake_result([fake_run("finetune", 0.1, 0.5), fake_run("finetune", 1e-3, 0.51)]))
    assert never.finetune_verdict == "never_learns" and not never.per_baseline["finetune"].learns
    assert facts.learning_rate_facts(fake_result([fake_run("xgboost", None, 0.7)])).finetune_verdict == "absent"


def test_diverged_runs_are_listed():
    rates = facts.learning_rate_facts(fake_result([fake_run("scratch", 0.1, 0.5, diverged=True),
                                                   fake_run("scratch", 1e-3, 0.7)]))
    assert [run["lr"] for run in rates.per_baseline["scratch"].diverged] == [0.1]


# ---- probes and pixels ----------------------------------------------------------------------------------------


def test_probes_that_agree_and_that_differ():
    agree = facts.probe_facts(fake_result(course_like_runs()))
    assert agree.difference == pytest.approx(0.0175) and agree.verdict == "agree"
    assert len(agree.rates_matching) == 2 and len(agree.linear_runs) == 3 and agree.sklearn_converged is True
    linear_ahead = facts.probe_facts(fake_result([fake_run("linear_probe", 0.1, 0.8),
                                                  fake_run("sklearn_probe", None, 0.6)]))
    assert linear_ahead.verdict == "linear_better"
    sklearn_ahead = facts.probe_facts(fake_result([fake_run("linear_probe", 0.1, 0.6),
                                                   fake_run("sklearn_probe", None, 0.8, converged=False)]))
    assert sklearn_ahead.verdict == "sklearn_better" and sklearn_ahead.rates_matching == ()
    assert sklearn_ahead.sklearn_converged is False
    one = facts.probe_facts(fake_result([fake_run("sklearn_probe", None, 0.8)]))
    assert one.verdict == "missing" and one.present == 1


def test_xgboost_against_frozen_and_fine_tuned_features():
    course = facts.xgboost_facts(fake_result(course_like_runs()))
    assert course.frozen["baseline"] == "linear_probe" and course.finetuned["lr"] == 1e-4
    assert course.frozen_verdict == "level" and course.finetuned_verdict == "level"
    difference, width, verdict = course.against(course.frozen)
    assert difference == pytest.approx(0.0025) and width > abs(difference) and verdict == "level"
    tuned_wins = facts.xgboost_facts(fake_result([fake_run("xgboost", None, 0.75), fake_run("sklearn_probe", None, 0.72),
                                                  fake_run("finetune", 1e-3, 0.85)], backbone=IMAGENET))
    assert tuned_wins.frozen_verdict == "level" and tuned_wins.finetuned_verdict == "behind"
    frozen_wins = facts.xgboost_facts(fake_result([fake_run("xgboost", None, 0.6), fake_run("sklearn_probe", None, 0.9)]))
    assert frozen_wins.frozen_verdict == "behind" and frozen_wins.finetuned_verdict is None
    pixels_win = facts.xgboost_facts(fake_result([fake_run("xgboost", None, 0.9), fake_run("finetune", 1e-3, 0.6)]))
    assert pixels_win.finetuned_verdict == "ahead"
    alone = facts.xgboost_facts(fake_result([fake_run("xgboost", None, 0.9)]))
    assert not alone.comparable and alone.against(alone.frozen) is None


# ---- what ran -------------------------------------------------------------------------------------------------


def test_backbone_kind_and_surrogate_facts():
    result = fake_result(course_like_runs())
    assert facts.backbone_kind(result) == "surrogate" and facts.uses_surrogate(result)
    assert facts.backbone_source(result) == "digits (10-class)"
    assert facts.surrogate_facts(result) == facts.SurrogateFacts(1000, 4, 0.9, 100, 50)
    assert facts.backbone_kind(fake_result(course_like_runs(), backbone=IMAGENET)) == "imagenet"
    pixels_only = fake_result([fake_run("xgboost", None, 0.7)])
    assert facts.backbone_kind(pixels_only) == "none" and not facts.uses_surrogate(pixels_only)
    weights_file = fake_result(course_like_runs(), backbone={"backbone": "file:mine.pth", "backbone_info": {}})
    assert facts.backbone_kind(weights_file) == "file" and facts.backbone_source(weights_file) == "mine.pth"
    assert facts.surrogate_facts(weights_file) == facts.SurrogateFacts(None, None, None, None, None)


def test_which_baselines_ran_and_their_settings():
    assert facts.all_baselines_ran(fake_result(course_like_runs()))
    two = fake_result([fake_run("finetune", 0.1, 0.7), fake_run("xgboost", None, 0.7)])
    assert not facts.all_baselines_ran(two) and facts.present_baselines(two) == ["xgboost", "finetune"]
    assert facts.baseline_params(fake_result(course_like_runs()), "xgboost")["features"] == 12288
    assert facts.seed_of(two) == 0


# ---- tables ---------------------------------------------------------------------------------------------------


def test_summary_keeps_two_per_baseline_in_course_order_and_the_worst_run():
    rows = facts.summary_rows(fake_result(course_like_runs()))
    assert list(rows["position"]) == [1, 1, 2, 1, 2, 1, 1, 2, 0]
    assert list(rows["baseline"])[:2] == ["xgboost", "scratch"]
    assert list(rows["lr"])[1:3] == [1e-4, 1e-5]
    assert rows.iloc[-1]["test_acc"] == 0.4775 and rows.iloc[-1]["rank"] == 12


def test_ranking_lists_every_run_best_first_with_a_chance_verdict():
    result = fake_result(course_like_runs() + [fake_run("scratch", 0.01, 0.4, diverged=True)])
    rows = facts.ranking_rows(result)
    assert list(rows["rank"]) == list(range(1, 14))
    assert rows.iloc[0]["label"] == "finetune lr=1e-4" and bool(rows.iloc[0]["beats_chance"])
    assert np.isnan(rows.iloc[-1]["test_loss"]) and not rows.iloc[-1]["beats_chance"]


def test_confusion_of_the_best_and_worst_run():
    extremes = facts.confusion_facts(fake_result(course_like_runs()))
    rows = extremes.rows()
    assert list(rows["true"]) == ["real", "fake", "real", "fake"] and list(rows["role"]) == ["best"] * 2 + ["worst"] * 2
    assert rows.iloc[2]["predicted_fake"] == 200 and rows.iloc[3]["recall"] == 1.0
    assert facts.constant_prediction(extremes.worst) == "fake" and not extremes.lopsided
    lopsided_best = fake_run("finetune", 1e-3, 0.7)
    lopsided_best["confusion"]["test"] = [[190, 10], [110, 90]]
    lopsided = facts.confusion_facts(fake_result([lopsided_best, fake_run("xgboost", None, 0.5)]))
    assert lopsided.lopsided and lopsided.easier_class == "real" and lopsided.recall_gap == pytest.approx(0.5)


# ---- mistakes ----------------------------------------------------------------------------------------------


def mistakes_of(runs, probabilities, labels, count):
    result = fake_result(runs)
    result["data"]["test_ids"] = [f"test/{i}.png" for i in range(len(labels))]
    tensors = {"labels": {"test": np.array(labels)}, "probabilities": {"test": probabilities}}
    return facts.mistake_facts(result, tensors, count)


def test_mistakes_are_chosen_from_the_stored_probabilities_of_the_best_and_worst_run():
    runs = [fake_run("finetune", 1e-3, 0.9), fake_run("xgboost", None, 0.5)]
    labels = [0, 1, 1, 0]
    probabilities = {"finetune lr=0.001": [0.1, 0.9, 0.8, 0.4], "xgboost": [0.2, 0.05, 0.3, 0.9]}
    full = mistakes_of(runs, probabilities, labels, 2)
    assert (full.best, full.worst) == ("finetune lr=0.001", "xgboost")
    assert [item["id"] for item in full.items] == ["test/1.png", "test/3.png"]  # most confident errors first
    assert full.shown == full.requested == 2 and full.only_class is None
    short = mistakes_of(runs, probabilities, labels, 5)
    assert short.shown == 3 < short.requested and short.true_counts() == {"real": 1, "fake": 2}
    fakes_only = mistakes_of(runs, probabilities, labels, 1)
    assert fakes_only.only_class == "fake"
    none = mistakes_of(runs, {"finetune lr=0.001": [0.1] * 4, "xgboost": [0.1] * 4}, [0, 0, 0, 0], 3)
    assert none.shown == 0 and none.only_class is None
    single = mistakes_of(runs[:1], {"finetune lr=0.001": [0.1] * 4}, labels, 3)
    assert single.worst is None and single.shown == 0


def test_images_are_picked_by_id_in_the_stored_order():
    images = np.arange(4)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    ids = ["test/real/a.png", "test/real/b.png", "test/fake/c.png", "test/fake/d.png"]
    picked = facts.images_by_id(images, ids, ["test/fake/d.png", "test/real/a.png"])
    assert picked[:, 0, 0, 0].tolist() == [3, 0]
    assert facts.images_by_id(images, ids, []).shape == (0, 2, 2, 3)
    with pytest.raises(Ex4Error, match="test/fake/zzz.png"):
        facts.images_by_id(images, ids, ["test/fake/zzz.png"])


def test_analysis_returns_no_prose():
    """No sentence-building function is left: none named *_sentence(s), *_markdown, *_math, describe or caveat."""
    import re

    names = [name for name in dir(facts) if re.search(r"(sentences?|markdown|_math|describe|caveat|_intro)$", name)]
    assert names == []
