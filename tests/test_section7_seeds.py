"""Section 7 over seeds: each claim says in how many seeds it holds, each number is a mean with its range.

The chapter is executed in-process against per-seed copies of the real smoke result (tests/data/cnn_smoke.json),
altered so that claims flip between seeds, and against seeds whose later results lack the full-network
baselines (as `cnn_full_network_repeats` leaves them). The facts are also checked on their own, and the accuracy
figure for its error bars. One seed reads as the single-run chapter (test_section7_wording.py holds its wording).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from ex4.analysis import section7_seeds as over  # noqa: E402
from ex4.analysis.seeds import Holds  # noqa: E402
from ex4.plots import section7 as plots  # noqa: E402
from test_section7_wording import CHAPTER, SMOKE, load_fixture, paragraph, set_accuracy  # noqa: E402

NBSP = "\u00a0"
FULL_NETWORK = ("scratch", "finetune")


@pytest.fixture(scope="module")
def smoke():
    return load_fixture()


def for_seed(result, seed, cheap_only=False):
    """A copy of `result` as seed `seed` computed it; `cheap_only`: without the full-network baselines."""
    copied = copy.deepcopy(result)
    for run in copied["runs"]:
        run["params"]["seed"] = seed
    if cheap_only:
        copied["runs"] = [run for run in copied["runs"] if run["baseline"] not in FULL_NETWORK]
    return copied


def text_of(results, tensors) -> str:
    from chapter_text import chapter_text

    return chapter_text(CHAPTER, {"cnn": results}, params={**SMOKE, "seed_repeats": len(results)},
                        tensors={"cnn": [tensors] * len(results)})


@pytest.fixture(scope="module")
def flipped(smoke):
    """Two seeds: fine-tuning wins in seed 0 (95 %), XGBoost in seed 1 (95 %)."""
    result, tensors = smoke
    first, second = for_seed(result, 0), for_seed(result, 1)
    set_accuracy(first, "finetune lr=1e-4", 0.95)
    set_accuracy(second, "xgboost", 0.95)
    return [first, second], text_of([first, second], tensors)


@pytest.fixture(scope="module")
def cut(smoke):
    """Three seeds; the third trained only the cheap baselines. Fine-tuning wins in both seeds that trained it."""
    result, tensors = smoke
    seeds = [for_seed(result, 0), for_seed(result, 1), for_seed(result, 2, cheap_only=True)]
    set_accuracy(seeds[0], "finetune lr=1e-4", 0.95)
    set_accuracy(seeds[1], "finetune lr=1e-4", 0.9)
    set_accuracy(seeds[2], "xgboost", 0.6)
    return seeds, text_of(seeds, tensors)


# ---- the facts -------------------------------------------------------------------------------------------------


def test_a_winner_that_flips_holds_in_one_of_two_seeds_and_its_numbers_span_both(flipped):
    results, _ = flipped
    claims = over.section7_over_seeds(results)
    assert claims.seeds.seeds == (0, 1)
    assert claims.winner.best["label"] == "finetune lr=1e-4" and claims.winner.best_holds == Holds(1, 2)
    assert (claims.winner.best_test.low, claims.winner.best_test.high) == pytest.approx((0.5225, 0.95))
    assert claims.winner.runner_up["label"] == "xgboost"
    assert claims.winner.gap.low < 0 < claims.winner.gap.high  # XGBoost is ahead in seed 1
    assert claims.winner.verdict == "clear" and claims.winner.verdict_holds == Holds(1, 2)
    assert claims.probes.verdict == "agree" and claims.probes.holds == Holds(2, 2)  # the probes did not change
    assert claims.pixels.finetuned.verdict == "behind" and claims.pixels.finetuned.holds == Holds(1, 2)


def test_baselines_on_fewer_seeds_are_counted_over_the_seeds_that_trained_them(cut):
    results, _ = cut
    claims = over.section7_over_seeds(results)
    assert claims.cut == {"scratch": (0, 1), "finetune": (0, 1)}
    assert claims.baseline_seeds["xgboost"] == (0, 1, 2)
    assert claims.winner.counted == 2 and claims.winner.best_holds == Holds(2, 2)  # where every baseline ran
    assert claims.winner.best_test.n == 2 and claims.pixels.xgboost_test.n == 3
    assert claims.rates.finetune_holds.n == 2 and claims.rates.per_baseline["linear_probe"].best_holds.n == 3
    assert claims.probes.holds == Holds(3, 3)
    assert claims.pixels.frozen.holds.n == 3 and claims.pixels.finetuned.holds.n == 2  # both ran in 3, resp. 2
    ranking = over.ranking_rows(claims.seeds).set_index("label")
    assert ranking.loc["finetune lr=1e-4", "seeds"] == 2 and ranking.loc["xgboost", "seeds"] == 3
    assert ranking.loc["finetune lr=1e-4", "beats_chance"] == Holds(2, 2)
    assert ranking.index[0] == "finetune lr=1e-4"  # ranked by its mean over its own two seeds
    assert over.seeds_of_baselines(results) == claims.baseline_seeds


def test_one_seed_gives_counts_of_one_and_the_single_seed_facts(smoke):
    from ex4.analysis import section7 as facts

    result, _ = smoke
    claims = over.section7_over_seeds([result])
    single = facts.winner_facts(result)
    assert claims.winner.best["label"] == single.best["label"] and claims.winner.verdict == single.verdict
    assert claims.winner.best_holds == Holds(1, 1) and claims.winner.gap.single
    assert claims.winner.gap.mean == single.gap and claims.winner.resolution.mean == single.resolution
    before = facts.ranking_rows(result)
    after = over.ranking_rows(claims.seeds)
    assert list(after["label"]) == list(before["label"])
    assert [value.mean for value in after["test_acc"]] == list(before["test_acc"])
    assert list(after["beats_chance"].map(lambda holds: holds.always)) == list(before["beats_chance"])


# ---- the chapter -----------------------------------------------------------------------------------------------


def test_a_claim_that_flips_between_seeds_is_worded_as_holding_in_one_of_two(flipped):
    _, text = flipped
    winner = paragraph(text, "The best run overall is")
    assert "The best run overall is the fine-tuned ResNet18 at lr = 1e-4 in only 1 of 2 seeds" in winner
    assert f"with 73.6{NBSP}% (52.2–95.0) test accuracy" in winner  # the mean and range of 95.0 and 52.2
    assert "against the best of the runner-up baseline, XGBoost on pixels" in winner  # the seeds disagree on who leads
    assert "so the lead is real in only 1 of 2 seeds" in winner
    assert "Large rates break fine-tuning in only 1 of 2 seeds" in text
    assert "behind the best fine-tuning run in only 1 of 2 seeds" in text


def test_a_claim_that_holds_in_every_seed_says_so_and_the_seeds_are_named(flipped):
    _, text = flipped
    assert "Every baseline was trained once for each of the 2 seeds 0 and 1" in text
    assert "they agree in both seeds" in paragraph(text, "The best linear probe")
    assert "except" not in paragraph(text, "Every baseline was trained once")  # no baseline ran on fewer seeds
    assert "| 2 of 2 seeds " in text and "| 1 of 2 seeds " in text  # the ranking's "beats chance" column
    assert "those of the first seed, 0, alone" in text  # the mistakes figure stays the first seed's


def test_per_baseline_seed_counts_when_full_network_runs_are_on_fewer_seeds(cut):
    _, text = cut
    assert ("except ResNet18 from scratch and fine-tuned ResNet18, trained only for seeds 0 and 1" in text)
    assert "counted over the seeds in which every baseline ran" in text
    assert "The best run overall is the fine-tuned ResNet18 at lr = 1e-4 in both seeds" in text
    assert f"XGBoost on raw pixels reaches 58.5{NBSP}% (57.7–60.0)" in text  # over its 3 seeds
    assert "| 2 of 2 seeds " in text and "| 3 of 3 seeds " in text
    header = next(line for line in text.splitlines() if line.startswith("|   rank |"))
    assert header.rstrip().endswith("|   seeds |")  # runs differ in their seeds: the tables say how many


def test_one_seed_says_nothing_about_seeds(smoke):
    result, tensors = smoke
    text = text_of([for_seed(result, 0)], tensors)
    assert " seeds" not in text and "in both" not in text and "Every baseline was trained once" not in text
    assert "(min–max" not in text and "seed 0" in text  # the provenance notes name the one seed
    assert f"with 57.7{NBSP}% test accuracy (54.5{NBSP}% on validation)" in text  # one value, no range


# ---- the figures ---------------------------------------------------------------------------------------------


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def test_the_accuracy_figure_draws_min_max_bars_over_seeds_and_none_for_one(flipped, close_figures):
    results, _ = flipped
    outcome = SimpleNamespace(experiment="cnn", key="0123456789abcdef", hit=True)
    fig = plots.accuracy_by_learning_rate(results[0], outcomes=[outcome], seeds=results)
    test_ax = fig.axes[1]
    bars = [container for container in test_ax.containers if isinstance(container, ErrorbarContainer)]
    assert len(bars) == 3  # one per baseline with a learning rate
    finetune = next(container for container in bars
                    if container.lines[0].get_color() == plots.baseline_colors(["finetune"])["finetune"])
    segments = finetune.lines[2][0].get_segments()
    spans = sorted((min(y for _, y in segment), max(y for _, y in segment)) for segment in segments)
    assert spans[-1] == pytest.approx((52.25, 95.0))  # lr = 1e-4 over the two seeds
    assert len(test_ax.patches) > 1  # the guessing band, and XGBoost's min–max band
    assert "mean over 2 seeds, bars and bands: min–max" in " ".join(text.get_text() for text in fig.texts)
    one = plots.accuracy_by_learning_rate(results[0], seeds=results[:1])
    assert not one.axes[1].containers and len(one.axes[1].patches) == 1


def test_the_mistakes_figure_names_its_seed_when_asked(close_figures):
    import numpy as np

    items = [{"id": "a", "true": 1, "p_best": 0.9, "p_worst": 0.1}]
    fig = plots.mistakes_grid(np.zeros((1, 8, 8, 3), dtype=np.uint8), items, "b", "w", seed=3)
    assert fig._suptitle.get_text().startswith("seed 3")
    assert not plots.mistakes_grid(np.zeros((1, 8, 8, 3), dtype=np.uint8), items, "b", "w")._suptitle.get_text(
    ).startswith("seed")


# ---- the appendix and the formatting ---------------------------------------------------------------------------


def test_the_appendix_lists_the_seeds_of_each_baseline_when_some_ran_on_fewer(cut, tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from chapter_text import chapter_text
    from ex4.store import Store

    results, _ = cut
    store = Store(tmp_path / "store")
    stored = [store.get_or_compute("cnn", {"seed": seed}, "data-b", [], lambda result=result: (result, {}),
                                   extra_meta={"data_dir": str(tmp_path / "faces")})
              for seed, result in enumerate(results)]
    log = tmp_path / "build.jsonl"
    log.write_text("".join(json.dumps({"experiment": "cnn", "key": outcome.key, "hit": True}) + "\n"
                           for outcome in stored))
    monkeypatch.setenv("EX4_STORE", str(store.root))
    monkeypatch.setenv("EX4_BUILD_LOG", str(log))
    appendix = Path(__file__).resolve().parents[1] / "report" / "appendix.qmd"
    text = chapter_text(appendix, {})
    assert "Seeds: `cnn` 0, 1 and 2" in text
    assert ("Not every baseline of Section 7 was trained for every seed (`cnn_full_network_repeats` sets how many "
            "seeds train the full network): `xgboost`, `linear_probe` and `sklearn_probe` for seeds 0, 1 and 2; "
            "`scratch` and `finetune` for seeds 0 and 1.") in text
    log.write_text(json.dumps({"experiment": "cnn", "key": stored[0].key, "hit": True}) + "\n")  # one seed
    assert "Not every baseline" not in chapter_text(appendix, {})


def test_points_are_unsigned_unless_the_seeds_disagree_on_the_sign():
    from ex4 import fmt
    from ex4.analysis.seeds import spread

    assert fmt.points(-0.031) == f"3.1{NBSP}pp" and fmt.points(0.0) == f"0.0{NBSP}pp"
    assert fmt.points(spread([0.01, 0.05])) == f"3.0{NBSP}pp (1.0–5.0)"
    assert fmt.points(spread([-0.01, -0.05])) == f"3.0{NBSP}pp (1.0–5.0)"
    assert fmt.points(spread([-0.01, 0.05])) == f"+2.0{NBSP}pp (-1.0 to +5.0)"
    assert fmt.points(spread([0.02])) == f"2.0{NBSP}pp"
