"""Section 7's computed claims on small hand-made `cnn` results: each branch of each sentence, no training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ex4.analysis import section7 as facts
from ex4.analysis.tables import run_label
from ex4.errors import Ex4Error

SURROGATE = {"backbone": "surrogate:digits (10-class)",
             "backbone_label": "backbone pretrained on digits (10-class), not ImageNet",
             "backbone_info": {"train_images": 1000, "epochs": 4, "held_out_accuracy": 0.9, "held_out_images": 100,
                               "digits_excluded": 50}}
IMAGENET = {"backbone": "imagenet", "backbone_label": "backbone pretrained on ImageNet", "backbone_info": {}}


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
                standin: bool = True, backbone: dict[str, Any] | None = None,
                mistakes: dict[str, Any] | None = None) -> dict[str, Any]:
    def counts(pair):
        return {"real": pair[0], "fake": pair[1]}

    return {
        "experiment": "cnn", **(backbone or SURROGATE),
        "data": {"is_standin": standin, "description": "Stand-in data, NOT faces: digits and splices.",
                 "counts": {"train": counts(train), "val": counts((100, 100)), "test": counts(test)},
                 "train_subset": None, "test_ids": []},
        "runs": runs,
        "mistakes": mistakes or {"best": None, "worst": None, "items": [], "requested": 5},
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
    assert "balanced" in guess.describe()


def test_chance_on_an_unbalanced_split_names_the_larger_class():
    guess = facts.chance(fake_result([], test=(100, 300)), "test")
    assert guess.majority_class == "fake" and guess.majority_rate == 0.75 and not guess.balanced
    assert not guess.beats(0.76)  # above the majority rate, but not by more than guessing reaches
    assert "“fake”" in guess.describe()


def test_constant_predictions_are_read_from_the_confusion_counts():
    assert facts.constant_prediction(fake_run("finetune", 0.01, 0.5, constant="fake")) == "fake"
    assert facts.constant_prediction(fake_run("finetune", 0.01, 0.5, constant="real")) == "real"
    assert facts.constant_prediction(fake_run("finetune", 0.01, 0.5)) is None


def test_scratch_at_chance_is_reported_as_such_with_the_training_budget():
    chances = facts.chance_facts(fake_result(course_like_runs()), weights=11_177_025)
    assert chances.scratch["lr"] == 1e-4
    sentence = chances.scratch_sentence()
    assert "does not beat chance" in sentence and "lr = 1e-4" in sentence and "52.5\u00a0%" in sentence
    assert chances.steps == 44  # ⌈1400 / 32⌉ steps of one epoch
    assert "44 optimiser steps" in chances.budget_sentence() and "11.2 million" in chances.budget_sentence()
    assert "1 gives the same answer for every test image: “fake” (`finetune lr=0.01`)." in chances.constant_sentence()
    assert "Such a run scores exactly" in chances.constant_sentence()
    assert chances.overall_sentence().startswith("Of the 12 runs, 6 beat chance")


def test_scratch_that_learns_is_credited():
    chances = facts.chance_facts(fake_result([fake_run("scratch", 1e-3, 0.62)]))
    assert "does beat chance" in chances.scratch_sentence()
    assert chances.overall_sentence() == "Every one of the 1 runs beats chance on the test set."
    assert facts.chance_facts(fake_result([fake_run("xgboost", None, 0.6)])).scratch_sentence() == ""


# ---- the winner --------------------------------------------------------------------------------------------


def test_winner_within_the_test_sets_resolution_is_not_called_a_clear_win():
    winner = facts.winner_facts(fake_result(course_like_runs()))
    assert winner.best["label"] == "finetune lr=1e-4" and winner.runner_up["baseline"] == "xgboost"
    assert winner.gap == pytest.approx(0.0125)
    assert not winner.clear and "cannot be told apart" in winner.sentence()
    assert "only 1.3\u00a0pp ahead of the best of the runner-up baseline, XGBoost on pixels (73.5\u00a0%)" in winner.sentence()


def test_a_clear_winner_a_tie_and_a_lone_baseline():
    clear = facts.winner_facts(fake_result([fake_run("finetune", 1e-4, 0.9), fake_run("xgboost", None, 0.6)]))
    assert clear.clear and "the lead is real" in clear.sentence()
    tie = facts.winner_facts(fake_result([fake_run("finetune", 1e-4, 0.7), fake_run("xgboost", None, 0.7)]))
    assert "tied with" in tie.sentence()
    alone = facts.winner_facts(fake_result([fake_run("xgboost", None, 0.7)]))
    assert "only baseline" in alone.sentence()
    assert "picks the same run" in clear.selection_sentence()


def test_validation_choosing_a_different_winner_is_reported():
    winner = facts.winner_facts(fake_result([fake_run("finetune", 1e-4, 0.8, val_acc=0.7),
                                             fake_run("xgboost", None, 0.75, val_acc=0.72)]))
    assert winner.best["baseline"] == "finetune" and winner.best_by_val["baseline"] == "xgboost"
    assert "would have picked XGBoost on pixels instead (72.0\u00a0% validation, 75.0\u00a0% test)" in (
        winner.selection_sentence())


# ---- learning rates ---------------------------------------------------------------------------------------


def test_large_rates_breaking_fine_tuning_are_named_and_contrasted_with_the_probe():
    rates = facts.learning_rate_facts(fake_result(course_like_runs()))
    tune = rates.per_baseline["finetune"]
    assert tune.best["lr"] == 1e-4 and [run["lr"] for run in tune.broken_high] == [0.1, 0.01]
    sentence = rates.finetune_sentence()
    assert sentence.startswith("Large rates break fine-tuning: at lr = 0.1 (52.0\u00a0%) and lr = 0.01 (47.8\u00a0%)")
    assert "linear probe" in sentence and "lr = 0.1 (73.2\u00a0%)" in sentence
    assert "lr = 1e-5 is too small" in rates.per_baseline["linear_probe"].sentence(rates.test)
    assert rates.per_baseline["linear_probe"].position == "largest"
    assert "larger rate than fine-tuning" in rates.probe_rate_sentence()
    probe_fails = facts.learning_rate_facts(fake_result([fake_run("linear_probe", 0.1, 0.5),
                                                         fake_run("finetune", 1e-3, 0.8)]))
    assert probe_fails.probe_rate_sentence() == ""  # the best rate of a probe at chance means nothing


def test_a_failing_rate_between_two_that_learn_is_not_called_too_large():
    rates = facts.learning_rate_facts(fake_result([
        fake_run("scratch", 0.1, 0.63), fake_run("scratch", 0.01, 0.5), fake_run("scratch", 1e-3, 0.65),
        fake_run("scratch", 1e-4, 0.62), fake_run("scratch", 1e-5, 0.51)]))
    scratch = rates.per_baseline["scratch"]
    assert scratch.broken_high == () and [run["lr"] for run in scratch.isolated] == [0.01]
    assert [run["lr"] for run in scratch.too_small] == [1e-5]
    sentence = scratch.sentence(rates.test)
    assert "lr = 1e-5 is too small, while lr = 0.01 stays at chance although rates on both sides" in sentence
    assert "too large" not in sentence


def test_fine_tuning_that_survives_large_rates_or_never_learns():
    survives = facts.learning_rate_facts(fake_result([fake_run("finetune", 0.1, 0.65),
                                                      fake_run("finetune", 1e-3, 0.8)]))
    assert "did not break it" in survives.finetune_sentence()
    gap = facts.learning_rate_facts(fake_result([fake_run("finetune", 0.1, 0.65), fake_run("finetune", 0.01, 0.5),
                                                 fake_run("finetune", 1e-3, 0.8)]))
    sentence = gap.finetune_sentence()
    assert "did not break fine-tuning for good: lr = 0.1 (65.0\u00a0%) still beats chance" in sentence
    assert "while lr = 0.01 (50.0\u00a0%) fell to chance level" in sentence
    largest = facts.learning_rate_facts(fake_result([fake_run("finetune", 0.1, 0.8),
                                                     fake_run("finetune", 1e-3, 0.7)]))
    assert "largest rate was the best" in largest.finetune_sentence()
    never = facts.learning_rate_facts(fake_result([fake_run("finetune", 0.1, 0.5), fake_run("finetune", 1e-3, 0.51)]))
    assert "beats chance at no rate" in never.finetune_sentence()
    assert "not even that beats chance" in never.sentences()
    assert facts.learning_rate_facts(fake_result([fake_run("xgboost", None, 0.7)])).finetune_sentence() == ""


# ---- probes and pixels ----------------------------------------------------------------------------------------


def test_probes_that_agree_and_that_differ():
    agree = facts.probe_facts(fake_result(course_like_runs()))
    assert agree.difference == pytest.approx(0.0175) and agree.agree
    assert "+1.8\u00a0pp" in agree.sentence() and "they agree" in agree.sentence()
    assert "Only 2 of the probe's 3 learning rates come that close" in agree.sentence()
    linear_ahead = facts.probe_facts(fake_result([fake_run("linear_probe", 0.1, 0.8),
                                                  fake_run("sklearn_probe", None, 0.6)]))
    assert not linear_ahead.agree and "hand-tuned rate beats the defaults" in linear_ahead.sentence()
    sklearn_ahead = facts.probe_facts(fake_result([fake_run("linear_probe", 0.1, 0.6),
                                                   fake_run("sklearn_probe", None, 0.8)]))
    assert "None of the probe's learning rates" in sklearn_ahead.sentence()
    assert "only one" in facts.probe_facts(fake_result([fake_run("sklearn_probe", None, 0.8)])).sentence()


def test_xgboost_against_frozen_and_fine_tuned_features():
    course = facts.xgboost_facts(fake_result(course_like_runs()))
    assert course.frozen["baseline"] == "linear_probe" and course.finetuned["lr"] == 1e-4
    assert course.verdict(course.frozen) == "level" and course.verdict(course.finetuned) == "level"
    sentence = course.sentence()
    assert "level with (within the ±" in sentence and "the best probe on frozen features" in sentence
    assert "no better than the raw values" in sentence and "ImageNet weights" in sentence
    tuned_wins = facts.xgboost_facts(fake_result([fake_run("xgboost", None, 0.75), fake_run("sklearn_probe", None, 0.72),
                                                  fake_run("finetune", 1e-3, 0.85)], backbone=IMAGENET))
    assert tuned_wins.verdict(tuned_wins.finetuned) == "behind"
    assert "only once the backbone itself adapts" in tuned_wins.sentence()
    assert "ImageNet weights" not in tuned_wins.sentence()
    frozen_wins = facts.xgboost_facts(fake_result([fake_run("xgboost", None, 0.6), fake_run("sklearn_probe", None, 0.9)]))
    assert "Even frozen, the surrogate's features carry more" in frozen_wins.sentence()
    assert "left out" in facts.xgboost_facts(fake_result([fake_run("xgboost", None, 0.9)])).sentence()


# ---- tables and notes -----------------------------------------------------------------------------------------


def test_summary_keeps_two_per_baseline_in_course_order_and_the_worst_run():
    table = facts.summary_table(fake_result(course_like_runs()))
    assert list(table["which"]) == ["best", "best", "second best", "best", "second best", "best", "best",
                                    "second best", "**worst overall**"]
    assert list(table["baseline"])[:2] == ["XGBoost on pixels", "ResNet18 from scratch"]
    assert list(table["learning rate"])[1:3] == ["1e-4", "1e-5"]
    assert table.iloc[-1]["test accuracy"] == "47.8\u00a0%" and table.iloc[-1]["rank"] == 12


def test_ranking_lists_every_run_best_first_with_a_chance_verdict():
    result = fake_result(course_like_runs() + [fake_run("scratch", 0.01, 0.4, diverged=True)])
    table = facts.ranking_table(result)
    assert list(table["rank"]) == list(range(1, 14))
    assert table.iloc[0]["baseline"] == "fine-tuned ResNet18" and table.iloc[0]["beats chance"] == "yes"
    assert table.iloc[-1]["test loss"] == "n/a (diverged)" and table.iloc[-1]["beats chance"] == "no"


def test_confusion_of_the_best_and_worst_run():
    extremes = facts.confusion_facts(fake_result(course_like_runs()))
    table = extremes.table()
    assert list(table["true class"]) == ["real", "fake", "real", "fake"]
    assert table.iloc[2]["predicted fake"] == 200 and table.iloc[3]["recognised"] == "100.0\u00a0%"
    assert "`finetune lr=0.01`, answers “fake” for every test image" in extremes.sentence()


def test_caveat_and_provenance_say_stand_in_and_surrogate_plainly():
    result = fake_result(course_like_runs())
    box = facts.caveat_markdown(result)
    assert box.startswith("::: {.callout-warning}") and "stand-in, not faces" in box
    assert "not ImageNet" in box and "1,000 images" in box and "90.0\u00a0%" in box
    assert "Stand-in data, NOT faces" not in box  # the description's own prefix is not repeated
    assert "NOT faces" in facts.data_note(result) and "not ImageNet" in facts.data_note(result)
    assert "1,400 training images" in facts.data_note(result)
    real = fake_result(course_like_runs(), standin=False, backbone=IMAGENET)
    assert facts.caveat_markdown(real) == "" and facts.caveat_intro(real) == ""
    assert "ImageNet weights for ResNet18" in facts.backbone_sentences(real)
    assert "50 digits" in facts.backbone_sentences(result, "/hub/resnet18.pth")
    pixels_only = fake_result([fake_run("xgboost", None, 0.7)])
    assert "not ImageNet" not in facts.data_note(pixels_only) and "not ImageNet" not in facts.caveat_markdown(
        pixels_only)


def test_a_subset_of_baselines_is_named():
    assert facts.subset_sentence(fake_result(course_like_runs())) == ""
    text = facts.subset_sentence(fake_result([fake_run("xgboost", None, 0.7), fake_run("finetune", 0.1, 0.7)]))
    assert text.startswith("This run has only XGBoost on pixels and fine-tuned ResNet18")


def test_baseline_bullets_take_their_numbers_from_the_runs():
    text = facts.baseline_markdown(fake_result(course_like_runs()), [0.1, 1e-5])
    assert text.count("\n- ") == 4 and text.startswith("- **XGBoost on pixels**")
    assert "central 64 × 64 patch" in text and "12,288 numbers" in text
    assert "resized to 256 px and centre-cropped to 224 × 224" in text and "0.1 and 1e-5" in text
    assert "It converged." in text


# ---- mistakes ----------------------------------------------------------------------------------------------


def test_mistake_sentences_for_full_short_and_empty_selections():
    items = [{"id": "test/fake/1.png", "true": 1, "p_best": 0.9, "p_worst": 0.1}]
    short = facts.mistake_facts(fake_result([], mistakes={"best": "a", "worst": "b", "items": items,
                                                          "requested": 5}))
    assert "Only 1 test image is one" in short.sentence() and "5 asked for" in short.sentence()
    assert "All of them are fake" in short.composition_sentence()
    full = facts.mistake_facts(fake_result([], mistakes={"best": "a", "worst": "b", "items": items * 2,
                                                         "requested": 2}))
    assert full.sentence().startswith("It shows 2 test images")
    none = facts.mistake_facts(fake_result([], mistakes={"best": "a", "worst": "b", "items": [], "requested": 3}))
    assert "No test image" in none.sentence() and none.composition_sentence() == ""


def test_images_are_picked_by_id_in_the_stored_order():
    images = np.arange(4)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    ids = ["test/real/a.png", "test/real/b.png", "test/fake/c.png", "test/fake/d.png"]
    picked = facts.images_by_id(images, ids, ["test/fake/d.png", "test/real/a.png"])
    assert picked[:, 0, 0, 0].tolist() == [3, 0]
    assert facts.images_by_id(images, ids, []).shape == (0, 2, 2, 3)
    with pytest.raises(Ex4Error, match="test/fake/zzz.png"):
        facts.images_by_id(images, ids, ["test/fake/zzz.png"])
