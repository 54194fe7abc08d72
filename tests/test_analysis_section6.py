"""Section 6's facts and verdicts on small hand-made results: each branch of each verdict, no training.

The wording the chapters choose from these verdicts is tested in test_chapters_section6.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ex4 import fmt
from ex4.analysis import section6 as facts
from ex4.analysis.section6 import Baseline, FitVerdict, RateVerdict, Usage
from section6_fakes import fake_gradients_result, fake_result, fake_run, fake_shapes_result


def val_history(values: list) -> dict[str, list]:
    return {"val_loss": list(values)}


# ---- baseline and helpers ----------------------------------------------------------------------------------


def test_prior_loss_is_the_cross_entropy_of_the_smoothed_training_frequencies():
    train = np.array([0, 0, 0, 1])  # smoothed counts 4, 2, 1 over 7
    assert facts.prior_loss(train, np.array([0, 1]), 3) == pytest.approx(-(math.log(4 / 7) + math.log(2 / 7)) / 2)
    assert facts.prior_loss(np.array([0, 1]), np.array([0, 1]), 2) == pytest.approx(math.log(2))


def test_last_metrics_of_a_diverged_run_are_its_last_finite_values():
    run = fake_run("x", {"val_loss": [2.0, 1.5, 1.2]}, diverged_epoch=3)
    assert facts.last_metrics(run)["val_loss"] == 1.5
    assert facts.finite_history(run, "val_loss") == [2.0, 1.5]


def test_fmt_count_switches_to_powers_of_ten_for_huge_bounds():
    assert fmt.count(137) == "137"
    assert fmt.count(6_611_856_250_609) == "6.61 × 10¹²"
    assert fmt.sci(2.5e-13) == "2.5e-13" and fmt.sci(1e-5, 0) == "1e-5"
    assert fmt.latex_int(6_611_856) == r"6\,611\,856"


# ---- learning rates ----------------------------------------------------------------------------------------


def lr_result():
    return fake_result("mlp-lr", [
        fake_run("lr=1", val_history([0.5, 9.0, 9.0]), lr=1.0, diverged_epoch=2),  # lowest finite loss, diverged
        fake_run("lr=0.2", val_history([2.3, 2.21, 2.2]), lr=0.2, extra=True),  # dead: sits at the baseline
        fake_run("lr=0.01", val_history([2.0, 1.0, 0.8]), lr=0.01),
        fake_run("lr=0.001", val_history([2.3, 2.2, 2.1]), lr=1e-3),
        fake_run("lr=1e-05", val_history([2.5, 2.5, 2.5]), lr=1e-5),
    ])


def test_best_rate_ignores_a_diverged_run_with_a_lower_last_loss():
    rates = facts.learning_rate_facts(lr_result(), baseline_loss=2.2)
    assert rates.best.lr == 0.01
    assert [run.verdict for run in rates.runs] == ["diverged", "stalled", "learned", "learned", "stalled"]
    assert rates.runs[2].verdict is RateVerdict.LEARNED and rates.best_learned


def test_failed_rates_are_split_into_too_large_and_too_small():
    rates = facts.learning_rate_facts(lr_result(), baseline_loss=2.2)
    assert [run.lr for run in rates.failed(above=True)] == [1.0, 0.2]
    assert [run.lr for run in rates.too_small] == [1e-5] and rates.too_large == rates.failed(above=True)
    assert rates.runs[0].diverged and rates.runs[0].diverged_epoch == 2
    assert [run.lr for run in rates.dead] == [0.2]  # stalled within NEAR_BASELINE of it; lr = 1 diverged instead
    assert rates.runs[1].baseline is Baseline.NEAR
    assert rates.smallest.lr == 1e-5 and rates.smallest.hardly_moved and rates.smallest.relative_drop == 0.0


def test_a_small_rate_that_moves_is_not_called_stuck():
    result = lr_result()
    result["runs"][-1]["history"]["val_loss"] = [2.5, 2.3, 2.25]
    smallest = facts.learning_rate_facts(result, baseline_loss=2.2).smallest
    assert not smallest.hardly_moved and smallest.relative_drop == pytest.approx(0.1)


def test_when_no_rate_beats_the_baseline_the_best_one_did_not_learn():
    rates = facts.learning_rate_facts(lr_result(), baseline_loss=0.5)
    assert rates.best.lr == 0.01 and rates.best.verdict == "stalled" and not rates.best_learned
    assert rates.others_learned == [] and rates.too_small[-1].lr == 1e-5


def test_every_rate_diverging_leaves_no_best():
    result = fake_result("mlp-lr", [fake_run("lr=1", val_history([1.0, 2.0]), lr=1.0, diverged_epoch=1)])
    rates = facts.learning_rate_facts(result, 2.0)
    assert rates.best is None and not rates.best_learned
    assert [run.lr for run in rates.too_large] == [1.0] and rates.too_small == []  # listed once, as too large
    assert rates.smallest.relative_drop is None


# ---- the long run ------------------------------------------------------------------------------------------


def test_val_loss_rising_off_its_minimum_while_training_falls_is_over_fitting():
    run = fake_run("base", {"val_loss": [2.0, 1.0, 0.9, 1.0, 1.2], "train_loss": [2.0, 1.0, 0.8, 0.6, 0.4],
                            "train_acc": [0.5, 0.6, 0.7, 0.8, 0.9], "val_acc": [0.5, 0.6, 0.65, 0.6, 0.6]})
    long_run = facts.long_run_facts(run)
    assert long_run.verdict is FitVerdict.OVERFITS and long_run.best_val_epoch == 3
    assert long_run.val_loss_rise_from_best == pytest.approx(0.3)
    assert long_run.gap_acc == pytest.approx(0.3) and long_run.gap_loss == pytest.approx(0.8)


def test_a_spike_in_the_last_epoch_of_a_noisy_run_is_not_over_fitting():
    rng = np.random.default_rng(0)
    val = list(1.5 - 0.002 * np.arange(100) + rng.normal(0, 0.03, 100))
    val[-1] = min(val) + 0.06  # one bad epoch at the end, after the lowest one
    train = list(1.5 - 0.0021 * np.arange(100))
    long_run = facts.long_run_facts(fake_run("base", {"val_loss": val, "train_loss": train}, epochs=100))
    assert long_run.verdict != "overfits" and long_run.smoothing == 10


def test_a_sustained_rise_of_a_noisy_run_is_over_fitting():
    rng = np.random.default_rng(1)
    trend = np.concatenate([np.linspace(1.5, 1.0, 50), np.linspace(1.0, 1.4, 50)])
    val = list(trend + rng.normal(0, 0.03, 100))
    train = list(np.linspace(1.5, 0.5, 100))
    long_run = facts.long_run_facts(fake_run("base", {"val_loss": val, "train_loss": train}, epochs=100))
    assert long_run.verdict == "overfits" and 45 <= long_run.best_val_epoch <= 65


def test_val_loss_still_falling_at_the_end_is_under_fitting():
    run = fake_run("base", {"val_loss": [3.0, 2.5, 2.0, 1.6, 1.3], "train_loss": [3.1, 2.6, 2.1, 1.7, 1.4]})
    long_run = facts.long_run_facts(run)
    assert long_run.verdict is FitVerdict.IMPROVING and not long_run.nearly_levelled
    assert long_run.val_loss_drop_in_window > 0


def test_a_flat_val_loss_is_converged_or_stuck_if_above_the_baseline():
    run = fake_run("base", {"val_loss": [3.0, 1.0, 1.0, 1.0, 1.0], "train_loss": [3.0, 1.0, 1.0, 1.0, 1.0]})
    assert facts.long_run_facts(run).verdict is FitVerdict.CONVERGED
    levelled = facts.long_run_facts(run, baseline_loss=2.0)
    assert not levelled.stuck and levelled.baseline is Baseline.BELOW and not levelled.nearly_levelled
    stuck = facts.long_run_facts(run, baseline_loss=0.9)
    assert stuck.stuck and stuck.baseline is Baseline.ABOVE


def test_a_diverged_long_run_is_judged_diverged():
    run = fake_run("base", {"val_loss": [2.0, 1.5, 1.2, 1.1]}, diverged_epoch=3)
    long_run = facts.long_run_facts(run)
    assert long_run.verdict is FitVerdict.DIVERGED and long_run.final["val_loss"] == 1.5


# ---- batch norm --------------------------------------------------------------------------------------------


def bn_result(without_acc: float, with_acc: float):
    return fake_result("mlp-batchnorm", [
        fake_run("without batch norm", {"val_acc": [0.2, without_acc], "train_acc": [0.2, without_acc]}),
        fake_run("with batch norm", {"val_acc": [0.2, with_acc], "train_acc": [0.2, with_acc - 0.05]},
                 batch_norm=True),
    ])


def test_a_negative_batch_norm_gain_says_it_did_not_help():
    batch_norm = facts.batch_norm_facts(bn_result(0.5, 0.4))
    assert batch_norm.acc_gain == pytest.approx(-0.1) and not batch_norm.helped
    assert not batch_norm.many_times and not batch_norm.diverged
    assert batch_norm.val_above_train  # bn_result's training accuracy with batch norm is 5 points below
    result = bn_result(0.5, 0.4)
    result["runs"][1]["history"]["train_acc"] = [0.2, 0.6]
    assert facts.batch_norm_facts(result).val_above_train is False


def test_a_positive_batch_norm_gain_says_it_helped_and_by_how_much():
    batch_norm = facts.batch_norm_facts(bn_result(0.2, 0.8))
    assert batch_norm.helped and batch_norm.acc_gain == pytest.approx(0.6)
    assert batch_norm.many_times and batch_norm.acc_ratio == pytest.approx(4.0)
    assert batch_norm.val_above_train


def test_a_diverged_batch_norm_run_counts_as_zero_accuracy():
    result = bn_result(0.5, 0.8)
    result["runs"][1] = fake_run("with batch norm", {"val_acc": [0.2, 0.8]}, batch_norm=True, diverged_epoch=2)
    batch_norm = facts.batch_norm_facts(result)
    assert batch_norm.diverged and batch_norm.with_diverged and not batch_norm.helped
    assert batch_norm.acc_gain == pytest.approx(-0.5)


# ---- batch sizes -------------------------------------------------------------------------------------------


def batch_result():
    runs = []
    for size, epochs, accs in ((1, 1, [0.3]), (16, 2, [0.3, 0.5]), (32, 2, [0.2, 0.4])):
        per_epoch = -(-100 // size)
        runs.append(fake_run(f"batch {size}", {"val_acc": accs}, epochs=epochs, batch_size=size,
                             iterations_per_epoch=per_epoch,
                             steps=per_epoch * epochs))
    return fake_result("mlp-batch-size", runs, n_train=100)


def test_iterations_are_the_ceiling_of_rows_over_batch_and_steps_multiply_by_epochs():
    rng = np.random.default_rng(0)
    losses = {"batch 1": 2 + rng.normal(0, 1.0, 100), "batch 16": 2 + rng.normal(0, 0.3, 14),
              "batch 32": 2 + rng.normal(0, 0.05, 8)}
    batches = facts.batch_size_facts(batch_result(), losses)
    assert [row.ceil_iterations for row in batches.rows] == [100, 7, 4]
    assert [row.total_steps for row in batches.rows] == [100, 14, 8]
    assert batches.ceil_matches and batches.most_steps.batch_size == 1 and batches.step_ratio == 12.5
    assert batches.best.batch_size == 16 and batches.best.steps_to_best == 14
    assert not batches.tie and batches.best.best_epoch == 2
    assert batches.noise_falls_with_batch


def test_tied_batch_sizes_are_reported_as_a_tie():
    result = batch_result()
    for run in result["runs"]:
        run["history"]["val_acc"][-1] = 0.5
    batches = facts.batch_size_facts(result)
    assert batches.tie and [row.batch_size for row in batches.tied_best] == [1, 16, 32]
    assert not batches.noise_falls_with_batch  # no step losses given: nothing to compare


# ---- shapes, trends and the region bound -------------------------------------------------------------------


def test_parameter_count_matches_the_layers():
    # 2->16 linear (48) + batch norm (32) + 16->3 output (51)
    assert facts.parameter_count({"depth": 1, "width": 16, "n_classes": 3, "batch_norm": True, "residual": False,
                                  "implicit": False}) == 131


def test_shape_facts_read_best_worst_trends_and_the_bound_check():
    grid = facts.shape_facts(fake_shapes_result())
    assert (grid.best.label, grid.worst.label, grid.input_dimension) == ("6x32", "1x16", 2)
    assert grid.depth.rising and grid.depth.diminishing  # +20 pp for one layer, +10 pp over four
    assert grid.depth.gains_per_unit == pytest.approx([0.2, 0.025])
    assert grid.width.rising and not grid.width.diminishing
    assert grid.all_within_bound and grid.outside_bound == []
    assert grid.worst_underfits and grid.best_has_more_regions
    assert grid.worst.hidden_widths == [16] and grid.worst.usage is Usage.FAIR  # 30 of 137
    assert grid.best.usage is Usage.TINY


def test_a_worst_model_that_fits_its_training_data_does_not_underfit():
    result = fake_shapes_result()
    result["runs"][0]["history"]["train_acc"] = [0.6, 0.9]
    result["runs"][0]["regions_counted"] = 5000
    result["runs"][0]["region_bound"] = 6000
    grid = facts.shape_facts(result)
    assert grid.worst_underfits is False and not grid.best_has_more_regions
    assert grid.worst.usage is Usage.MOST


def test_a_trend_that_goes_up_and_down_is_not_called_monotone():
    trend = facts.Trend("depth", (1, 2, 6), (0.4, 0.6, 0.5))
    assert not trend.rising and not trend.falling and not trend.diminishing
    assert trend.best_value == 2
    assert facts.Trend("width", (8, 16, 32), (0.6, 0.5, 0.4)).falling


def test_a_count_above_its_bound_is_caught():
    result = fake_shapes_result()
    result["runs"][0]["regions_counted"] = 200
    grid = facts.shape_facts(result)
    assert not grid.all_within_bound and len(grid.within_bound) == 3
    assert [row.label for row in grid.outside_bound] == ["1x16"]


# ---- gradients ---------------------------------------------------------------------------------------------


def test_vanishing_gradients_and_their_fix_are_detected():
    result = fake_gradients_result(plain={"0": [0.0, 0.0], "5": [1e-12, 1e-13], "9": [1e-2, 1e-2]},
                                   residual={"0": [1e-1, 1e-2], "5": [1e-2, 1e-2], "9": [1e-2, 1e-3]})
    gradients = facts.gradient_facts(result)
    assert gradients.plain.vanished and gradients.plain.zero_layers == (0,)
    assert not gradients.residual.vanished and gradients.fixed
    assert gradients.floor == pytest.approx(1e-14) and gradients.any_zero
    assert not gradients.plain.dead and gradients.plain.ratio == 0.0
    assert gradients.residual.ratio == pytest.approx(0.055 / 0.0055)


def test_a_tiny_ratio_without_zeros_still_counts_as_vanished():
    result = fake_gradients_result(plain={"0": [1e-20, 1e-20], "5": [1e-8, 1e-8], "9": [1.0, 1.0]},
                                   residual={"0": [1e-20, 1e-20], "5": [1e-8, 1e-8], "9": [1.0, 1.0]})
    gradients = facts.gradient_facts(result)
    assert gradients.plain.ratio == pytest.approx(1e-20) and gradients.plain.vanished
    assert gradients.residual.vanished and not gradients.fixed
    assert not gradients.any_zero and gradients.residual_learns is None  # vanished: nothing to judge


def test_gradients_that_do_not_vanish_in_the_plain_network_are_not_called_vanished():
    result = fake_gradients_result(plain={"0": [1e-3, 1e-3], "5": [1e-3, 1e-3], "9": [1e-2, 1e-2]},
                                   residual={"0": [1e-2, 1e-2], "5": [1e-2, 1e-2], "9": [1e-2, 1e-2]})
    gradients = facts.gradient_facts(result)
    assert not gradients.plain.vanished and not gradients.fixed and gradients.plain.ratio == pytest.approx(0.1)


def test_a_dead_plain_network_is_described_as_such():
    result = fake_gradients_result(plain={"0": [0.0, 0.0], "5": [0.0, 0.0], "9": [0.0, 0.0]},
                                   residual={"0": [1.0, 1.0], "5": [1.0, 1.0], "9": [1.0, 1.0]})
    gradients = facts.gradient_facts(result)
    assert gradients.plain.dead and gradients.plain.vanished and gradients.fixed
    assert gradients.plain.ratio is None and gradients.plain.zero_layers == (0, 5, 9)


def test_gradients_that_flow_are_judged_by_what_they_bought():
    result = fake_gradients_result(plain={"0": [0.0, 0.0], "5": [0.0, 0.0], "9": [0.0, 0.0]},
                                   residual={"0": [1.0, 1.0], "5": [1.0, 1.0], "9": [1.0, 1.0]})  # val acc 0.3
    stalled = facts.gradient_facts(result, majority=0.3)
    assert stalled.residual_learns is False and stalled.epochs == 2 and stalled.depth == 10
    assert facts.gradient_facts(result, majority=0.296).residual_learns is False  # within MAJORITY_MARGIN
    assert facts.gradient_facts(result, majority=0.1).residual_learns is True
    assert facts.gradient_facts(result).residual_learns is None


def test_majority_accuracy_answers_the_most_common_training_class():
    assert facts.majority_accuracy(np.array([2, 2, 1]), np.array([2, 1, 1, 2])) == 0.5


def test_log_floor_without_positive_values():
    assert facts.log_floor([0.0, None]) == 1e-30


# ---- implicit representation -------------------------------------------------------------------------------


def test_sine_features_that_lose_do_not_beat_raw_coordinates():
    result = fake_result("mlp-implicit", [
        fake_run("raw coordinates", {"val_acc": [0.5, 0.6]}, region_bound=10, regions_counted=5),
        fake_run("sine features", {"val_acc": [0.5, 0.55]}, implicit=True, region_bound=10, regions_counted=7,
                 input_features=20),
    ])
    sine = facts.implicit_facts(result)
    assert sine.gain == pytest.approx(-0.05) and not sine.sine_wins
    assert (sine.raw_regions, sine.sine_regions, sine.sine_features) == (5, 7, 20)
    result["runs"][1]["history"]["val_acc"] = [0.5, 0.7]
    assert facts.implicit_facts(result).sine_wins


# ---- the realistic cases -------------------------------------------------------------------------------------


def test_other_rates_below_the_baseline_are_listed_besides_the_best():
    rates = facts.learning_rate_facts(lr_result(), baseline_loss=2.2)
    assert [run.lr for run in rates.others_learned] == [1e-3]


def test_a_long_run_at_the_baseline_is_placed_near_it():
    run = fake_run("base", {"val_loss": [2.9, 2.8, 2.75], "val_acc": [0.16, 0.16, 0.16]})
    long_run = facts.long_run_facts(run, baseline_loss=2.74)
    assert long_run.baseline is Baseline.NEAR and long_run.accuracy_still
    assert facts.long_run_facts(run, baseline_loss=3.5).baseline is Baseline.BELOW
    assert facts.long_run_facts(run).baseline is None


def test_a_shape_is_called_over_fitting_only_when_its_validation_loss_turns_up():
    result = fake_shapes_result()
    worst = result["runs"][0]
    worst["history"].update(train_acc=[0.40, 0.45], val_acc=[0.40, 0.42])  # a gap, but the loss keeps falling
    grid = facts.shape_facts(result)
    assert not grid.worst.overfits and grid.worst.train_ahead and not grid.worst.val_ahead
    assert grid.worst.gap == pytest.approx(0.03)
    worst["history"].update(val_loss=[1.0, 0.8, 1.2], train_loss=[1.0, 0.8, 0.6],
                            train_acc=[0.4, 0.45, 0.5], val_acc=[0.4, 0.42, 0.41], test_acc=[0.4, 0.4, 0.4],
                            test_loss=[1.0, 1.0, 1.0])
    worst["params"]["epochs"] = 3
    grid = facts.shape_facts(result)
    assert grid.worst.overfits and grid.worst.fit.best_val_epoch == 2


def test_beats_majority_needs_more_than_the_margin():
    assert facts.beats_majority(0.5, 0.3) is True
    assert facts.beats_majority(0.3 + facts.MAJORITY_MARGIN, 0.3) is False
    assert facts.beats_majority(None, 0.3) is None and facts.beats_majority(0.5, None) is None


def test_the_headline_says_whether_each_best_run_learned():
    from ex4.analysis.headline import answers, majority_rate
    from ex4.store import Outcome

    assert majority_rate({"train": [5, 9, 1], "val": [2, 6, 2]}) == 0.6
    flat = fake_result("mlp-gradients", [fake_run("plain", {"val_acc": [0.3, 0.3]}),
                                         fake_run("residual", {"val_acc": [0.2, 0.2]})])
    learned = fake_result("mlp-implicit", [fake_run("sine", {"val_acc": [0.5, 0.9]})])
    cnn = fake_result("cnn", [fake_run("xgboost", {"val_acc": [0.5, 0.5], "test_acc": [0.5, 0.6]}),
                              fake_run("scratch", {"val_acc": [0.5, 0.7], "test_acc": [0.5, 0.55]})])
    outcomes = {name: Outcome(name, "0123456789abcdef", result, {}, hit=True, wall_time=0.0)
                for name, result in (("mlp-gradients", flat), ("mlp-implicit", learned), ("cnn", cnn))}
    found = answers(outcomes, majority=0.3)
    assert list(found) == ["mlp-gradients", "mlp-implicit", "cnn"]
    assert (found["mlp-gradients"].best, found["mlp-gradients"].learned) == ("plain", False)
    assert (found["mlp-implicit"].best, found["mlp-implicit"].learned) == ("sine", True)
    assert (found["cnn"].best, found["cnn"].learned, found["cnn"].test_acc) == ("xgboost", None, 0.6)  # on test
    assert {answer.learned for answer in answers(outcomes).values()} == {None}
