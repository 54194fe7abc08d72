"""Section 6's computed claims on small hand-made results: each branch of each sentence, no training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ex4.analysis import section6 as facts
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


def test_format_count_switches_to_powers_of_ten_for_huge_bounds():
    assert facts.format_count(137) == "137"
    assert facts.format_count(6_611_856_250_609) == "6.61 × 10¹²"


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
    assert "lr = 0.01" in rates.best_sentence() and "clearly below" in rates.best_sentence()


def test_failed_rates_are_split_into_too_large_and_too_small():
    rates = facts.learning_rate_facts(lr_result(), baseline_loss=2.2)
    assert [run.lr for run in rates.failed(above=True)] == [1.0, 0.2]
    assert [run.lr for run in rates.failed(above=False)] == [1e-5]
    sentence = rates.failure_sentence()
    assert "lr = 1 (diverged in epoch 2)" in sentence and "too large" in sentence and "too small" in sentence
    assert "lr = 0.2" in rates.dead_sentence() and "lr = 1 " not in rates.dead_sentence()
    assert "hardly moves" in rates.smallest_sentence()


def test_when_no_rate_beats_the_baseline_the_best_sentence_says_so():
    rates = facts.learning_rate_facts(lr_result(), baseline_loss=0.5)
    assert rates.best.lr == 0.01 and rates.best.verdict == "stalled"
    assert "not below" in rates.best_sentence()


def test_every_rate_diverging_leaves_no_best():
    result = fake_result("mlp-lr", [fake_run("lr=1", val_history([1.0, 2.0]), lr=1.0, diverged_epoch=1)])
    rates = facts.learning_rate_facts(result, 2.0)
    assert rates.best is None and "Every learning rate diverged" in rates.best_sentence()


# ---- the long run ------------------------------------------------------------------------------------------


def test_val_loss_rising_off_its_minimum_while_training_falls_is_over_fitting():
    run = fake_run("base", {"val_loss": [2.0, 1.0, 0.9, 1.0, 1.2], "train_loss": [2.0, 1.0, 0.8, 0.6, 0.4],
                            "train_acc": [0.5, 0.6, 0.7, 0.8, 0.9], "val_acc": [0.5, 0.6, 0.65, 0.6, 0.6]})
    long_run = facts.long_run_facts(run)
    assert long_run.verdict == "overfits" and long_run.best_val_epoch == 3
    assert "over-fits" in long_run.verdict_sentence()
    assert long_run.gap_acc == pytest.approx(0.3)


def test_a_spike_in_the_last_epoch_of_a_noisy_run_is_not_over_fitting():
    rng = np.random.default_rng(0)
    val = list(1.5 - 0.002 * np.arange(100) + rng.normal(0, 0.03, 100))
    val[-1] = min(val) + 0.06  # one bad epoch at the end, after the lowest one
    train = list(1.5 - 0.0021 * np.arange(100))
    long_run = facts.long_run_facts(fake_run("base", {"val_loss": val, "train_loss": train}, epochs=100))
    assert long_run.verdict != "overfits" and long_run.smoothing == 10
    assert "running mean over 10 epochs" in long_run.verdict_sentence()


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
    assert long_run.verdict == "still improving"
    assert "under-fits" in long_run.verdict_sentence()
    assert long_run.val_loss_drop_in_window > 0


def test_a_flat_val_loss_is_converged_or_stuck_if_above_the_baseline():
    run = fake_run("base", {"val_loss": [3.0, 1.0, 1.0, 1.0, 1.0], "train_loss": [3.0, 1.0, 1.0, 1.0, 1.0]})
    assert facts.long_run_facts(run).verdict == "converged"
    assert "levelled off" in facts.long_run_facts(run, baseline_loss=2.0).verdict_sentence()
    stuck = facts.long_run_facts(run, baseline_loss=0.9)
    assert stuck.stuck and "stuck rather than finished" in stuck.verdict_sentence()
    assert stuck.baseline_sentence() == ""


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
    assert batch_norm.verdict_sentence().startswith("Batch norm did not help")
    assert "-10.0\u00a0pp" in batch_norm.verdict_sentence()


def test_a_positive_batch_norm_gain_says_it_helped_and_by_how_much():
    batch_norm = facts.batch_norm_facts(bn_result(0.2, 0.8))
    assert batch_norm.helped
    assert "+60.0\u00a0pp" in batch_norm.verdict_sentence() and "4 times" in batch_norm.verdict_sentence()
    assert "above the training accuracy" in batch_norm.train_val_sentence()


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
    assert "batch size 16" in batches.best_sentence()
    assert batches.noise_falls_with_batch and "steadier" in batches.noise_sentence()
    assert list(batches.table()["total steps"]) == ["100", "14", "8"]


def test_tied_batch_sizes_are_reported_as_a_tie():
    result = batch_result()
    for run in result["runs"]:
        run["history"]["val_acc"][-1] = 0.5
    assert "none of them is ahead" in facts.batch_size_facts(result).best_sentence()


# ---- shapes, trends and the region bound -------------------------------------------------------------------


def test_parameter_count_matches_the_layers():
    # 2->16 linear (48) + batch norm (32) + 16->3 output (51)
    assert facts.parameter_count({"depth": 1, "width": 16, "n_classes": 3, "batch_norm": True, "residual": False,
                                  "implicit": False}) == 131


def test_shape_facts_read_best_worst_trends_and_the_bound_check():
    grid = facts.shape_facts(fake_shapes_result())
    assert (grid.best.label, grid.worst.label, grid.input_dimension) == ("6x32", "1x16", 2)
    assert grid.depth.rising and grid.depth.diminishing  # +20\u00a0pp for one layer, +10\u00a0pp over four
    assert "diminishing returns" in grid.depth.sentence()
    assert grid.width.rising and not grid.width.diminishing
    assert grid.all_within_bound
    assert "under-fits" in grid.capacity_sentence()
    assert grid.table()["region bound"].iloc[0] == "137"


def test_a_trend_that_goes_up_and_down_is_not_called_monotone():
    trend = facts.Trend("depth", (1, 2, 6), (0.4, 0.6, 0.5))
    assert not trend.rising and not trend.falling and not trend.diminishing
    assert "highest at depth 2" in trend.sentence()


def test_a_count_above_its_bound_is_caught():
    result = fake_shapes_result()
    result["runs"][0]["regions_counted"] = 200
    grid = facts.shape_facts(result)
    assert not grid.all_within_bound and len(grid.within_bound) == 3


def test_the_bound_of_one_hidden_layer_is_written_out_term_by_term():
    math_block = facts.region_bound_math(2, [16])
    assert math_block.startswith("$$") and math_block.endswith("$$")
    assert r"\binom{16}{0} + \binom{16}{1} + \binom{16}{2} = 1 + 16 + 120 = 137" in math_block
    assert "n_1 = 16" in facts.region_intro_sentence(2, [16])


def test_the_bound_of_a_deep_model_states_serra_and_its_value():
    math_block = facts.region_bound_math(2, [3, 3])
    # Serra et al.: j1 in 0..2 (<= n0), j2 <= min(2, 3 - j1, 3): sum C(3,j1) C(3,j2)
    expected = sum(math.comb(3, j1) * math.comb(3, j2) for j1 in range(3) for j2 in range(min(2, 3 - j1) + 1))
    assert r"\prod_{l=1}^{L}" in math_block and f"R_{{\\max}} \\le {expected}" in math_block
    assert "L = 2" in math_block


# ---- gradients ---------------------------------------------------------------------------------------------


def test_vanishing_gradients_and_their_fix_are_detected():
    result = fake_gradients_result(plain={"0": [0.0, 0.0], "5": [1e-12, 1e-13], "9": [1e-2, 1e-2]},
                                   residual={"0": [1e-1, 1e-2], "5": [1e-2, 1e-2], "9": [1e-2, 1e-3]})
    gradients = facts.gradient_facts(result)
    assert gradients.plain.vanished and gradients.plain.zero_layers == (0,)
    assert not gradients.residual.vanished and gradients.fixed
    assert gradients.floor == pytest.approx(1e-14)
    assert "vanish" in gradients.plain_sentence() and "exactly zero" in gradients.plain_sentence()
    assert gradients.residual_sentence().startswith("Residual connections fix this")
    assert "floor at 1e-14" in gradients.floor_sentence()


def test_a_tiny_ratio_without_zeros_still_counts_as_vanished():
    result = fake_gradients_result(plain={"0": [1e-20, 1e-20], "5": [1e-8, 1e-8], "9": [1.0, 1.0]},
                                   residual={"0": [1e-20, 1e-20], "5": [1e-8, 1e-8], "9": [1.0, 1.0]})
    gradients = facts.gradient_facts(result)
    assert gradients.plain.ratio == pytest.approx(1e-20) and gradients.plain.vanished
    assert not gradients.fixed and "do not fix" in gradients.residual_sentence()
    assert gradients.floor_sentence().startswith("No tracked gradient is exactly zero")


def test_a_dead_plain_network_is_described_as_such():
    result = fake_gradients_result(plain={"0": [0.0, 0.0], "5": [0.0, 0.0], "9": [0.0, 0.0]},
                                   residual={"0": [1.0, 1.0], "5": [1.0, 1.0], "9": [1.0, 1.0]})
    gradients = facts.gradient_facts(result)
    assert gradients.plain.dead and gradients.plain.vanished and gradients.fixed
    assert "no gradient reaches any tracked layer" in gradients.plain_sentence()


def test_gradients_that_flow_are_judged_by_what_they_bought():
    result = fake_gradients_result(plain={"0": [0.0, 0.0], "5": [0.0, 0.0], "9": [0.0, 0.0]},
                                   residual={"0": [1.0, 1.0], "5": [1.0, 1.0], "9": [1.0, 1.0]})  # val acc 0.3
    stalled = facts.gradient_facts(result, majority=0.3).residual_sentence()
    assert "not yet learning" in stalled and "after 2 epochs" in stalled and "30.0\u00a0%" in stalled
    learned = facts.gradient_facts(result, majority=0.1).residual_sentence()
    assert "And it learns" in learned and "20.0\u00a0pp above" in learned
    assert facts.gradient_facts(result).learning_clause() == ""


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
    assert sine.sentence().startswith("The sine features did not beat")


# ---- sentences added for the realistic cases ---------------------------------------------------------------


def test_other_rates_below_the_baseline_are_named_besides_the_best():
    rates = facts.learning_rate_facts(lr_result(), baseline_loss=2.2)
    assert rates.others_sentence() == "Below the baseline as well, though higher, ends lr = 0.001 (2.1)."


def test_a_long_run_stuck_at_the_baseline_says_it_learned_only_the_frequencies():
    run = fake_run("base", {"val_loss": [2.9, 2.8, 2.75], "val_acc": [0.16, 0.16, 0.16]})
    long_run = facts.long_run_facts(run, baseline_loss=2.74)
    assert "learned little beyond how common each country is" in long_run.baseline_sentence()
    assert long_run.wobble_sentence().startswith("The validation accuracy did not move")
    assert "well below" in facts.long_run_facts(run, baseline_loss=3.5).baseline_sentence()
    assert facts.long_run_facts(run).baseline_sentence() == ""


def test_a_shape_is_called_over_fitting_only_when_its_validation_loss_turns_up():
    result = fake_shapes_result()
    worst = result["runs"][0]
    worst["history"].update(train_acc=[0.40, 0.45], val_acc=[0.40, 0.42])  # a gap, but the loss keeps falling
    grid = facts.shape_facts(result)
    assert "does not over-fit" in grid.fit_sentence(grid.worst, "The worst")
    assert "3.0\u00a0pp more accurate on its training data" in grid.fit_sentence(grid.worst, "The worst")
    worst["history"].update(val_loss=[1.0, 0.8, 1.2], train_loss=[1.0, 0.8, 0.6],
                            train_acc=[0.4, 0.45, 0.5], val_acc=[0.4, 0.42, 0.41], test_acc=[0.4, 0.4, 0.4],
                            test_loss=[1.0, 1.0, 1.0])
    worst["params"]["epochs"] = 3
    grid = facts.shape_facts(result)
    assert "it over-fits: its validation loss was lowest in epoch 2" in grid.fit_sentence(grid.worst, "The worst")


def test_the_engine_sentence_names_the_engine_that_trained():
    assert "compiled CPU kernel" in facts.engine_sentence({"engine": "kernel"})
    assert "PyTorch engine" in facts.engine_sentence({"engine": "torch"})
    assert facts.engine_sentence({}) == ""


def test_the_headline_does_not_crown_a_winner_that_learned_nothing():
    from ex4.analysis.headline import headline_rows, majority_rate
    from ex4.store import Outcome

    assert majority_rate({"train": [5, 9, 1], "val": [2, 6, 2]}) == 0.6
    flat = fake_result("mlp-gradients", [fake_run("plain", {"val_acc": [0.3, 0.3]}),
                                         fake_run("residual", {"val_acc": [0.2, 0.2]})])
    learned = fake_result("mlp-implicit", [fake_run("sine", {"val_acc": [0.5, 0.9]})])
    outcomes = {name: Outcome(name, "0123456789abcdef", result, {}, hit=True, wall_time=0.0)
                for name, result in (("mlp-gradients", flat), ("mlp-implicit", learned))}
    rows = headline_rows(outcomes, majority=0.3).set_index("question")["best setting"]
    assert rows.iloc[0].startswith("none learned (best: plain")
    assert rows.iloc[1] == "sine"
    assert headline_rows(outcomes)["best setting"].tolist() == ["plain", "sine"]
