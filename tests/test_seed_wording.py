"""Claims over seeds are worded by how many seeds they hold in.

The chapters are executed in-process against three seeds' results: real tiny results (see
test_wording_section6_front) copied per seed, then altered so that some claims flip in one seed. A claim that
holds in fewer than all seeds must say "in only k of N seeds"; a claim that holds in all of them says so; a
number over seeds is its mean with the min–max range; one seed reads as the single-run book.
"""

from __future__ import annotations

import copy

import pytest

from ex4.analysis.seeds import Holds, over_seeds, spread
from test_wording_section6_front import (NBSP, by_arch, cnn_result, faces_tree, real, set_history,  # noqa: F401
                                         shapes_by_label, text_of)

SEEDS = (0, 1, 2)


def per_seed(results):
    """Three copies of `results`, one per seed."""
    out = {name: [] for name in results}
    for seed in SEEDS:
        for name, result in results.items():
            copied = copy.deepcopy(result)
            copied["seed"] = seed
            out[name].append(copied)
    return out


@pytest.fixture(scope="module")
def flipped(real):
    """Three seeds in which batch norm helps in seeds 0 and 1 only, the sine features win in seed 0 only and the
    best shape of seeds 0 and 1 is another one in seed 2."""
    given, results, tensors, _, majority = real
    seeds = per_seed(results)
    for seed, (without, with_bn) in zip(SEEDS, ((0.2, 0.8), (0.2, 0.85), (0.2, 0.1))):
        bn = by_arch({"mlp-batchnorm": seeds["mlp-batchnorm"][seed]}, "mlp-batchnorm", "batch_norm")
        set_history(bn[False], val_acc=[0.1, without], train_acc=[0.1, without])
        set_history(bn[True], val_acc=[0.1, with_bn], train_acc=[0.1, with_bn])
    for seed, sine_acc in zip(SEEDS, (0.75, 0.25, 0.25)):
        sine = by_arch({"mlp-implicit": seeds["mlp-implicit"][seed]}, "mlp-implicit", "implicit")
        set_history(sine[False], val_acc=[0.3, 0.5])
        set_history(sine[True], val_acc=[0.3, sine_acc])
    labels = [run["label"] for run in results["mlp-shapes"]["runs"]]
    first, other = results["mlp-shapes"]["best"], next(label for label in labels if label != results["mlp-shapes"]["best"])
    seeds["mlp-shapes"][2]["best"] = other
    chosen = {**given, "seed_repeats": len(SEEDS)}
    tensors_per_seed = {name: [tensors[name]] * len(SEEDS) for name in tensors}
    texts = {chapter: text_of(chapter, chosen, seeds, tensors_per_seed)
             for chapter in ("report/section6-1.qmd", "report/section6-2.qmd")}
    return texts, seeds, shapes_by_label(results)[first]


def test_a_claim_that_flips_between_seeds_says_in_how_many_it_holds(flipped):
    texts, _, best = flipped
    s61, s62 = texts["report/section6-1.qmd"], texts["report/section6-2.qmd"]
    assert "Batch norm helped in only 2 of 3 seeds:" in s61
    assert "The sine features did not beat the raw coordinates in only 2 of 3 seeds" in s62
    name = f"{best['params']['depth']} × {best['params']['width']}"
    assert f"By validation accuracy the best model is {name} in only 2 of 3 seeds" in s62


def test_numbers_over_seeds_are_means_with_their_range(flipped):
    texts, _, _ = flipped
    s61, s62 = texts["report/section6-1.qmd"], texts["report/section6-2.qmd"]
    # batch norm's validation accuracy: 80, 85 and 10 % -> mean 58.3 %, range 10.0-85.0
    assert f"with it 58.3{NBSP}% (10.0–85.0) without" not in s61  # the order is "without ... and ... with it"
    assert f"validation accuracy 20.0{NBSP}% without it and 58.3{NBSP}% (10.0–85.0) with it" in s61
    # the sine features: 75, 25 and 25 % against 50 % -> a gain of -8.3 pp, from -25.0 to +25.0
    assert f"validation accuracy 41.7{NBSP}% (25.0–75.0) against 50.0{NBSP}%" in s62
    assert f"(-8.3{NBSP}pp (-25.0 to +25.0))" in s62


def test_a_claim_that_holds_in_every_seed_says_so(flipped):
    texts, _, _ = flipped
    assert "in all 3 seeds" in texts["report/section6-2.qmd"]  # e.g. the gradients, alike in every seed
    assert "Every experiment of this chapter was trained once for each of the 3 seeds 0, 1 and 2" in \
        texts["report/section6-1.qmd"]


def test_one_seed_says_nothing_about_seeds(real):
    given, results, tensors, _, _ = real
    for chapter in ("report/section6-1.qmd", "report/section6-2.qmd"):
        text = text_of(chapter, given, results, tensors)
        assert " seeds" not in text and "(min–max" not in text


def front_page(real, seeds, cnn, tmp_path_factory) -> str:
    """index.qmd over the three seeds, with Section 7's result (one, or a list of one per seed) as given."""
    import ex4.data

    given, _, tensors, _, _ = real
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EX4_ROOT", str(tmp_path_factory.mktemp("ex4-root")))
        original = ex4.data.resolve_europe_dir
        patch.setattr(ex4.data, "resolve_europe_dir", lambda value: original(value or given["europe_dir"]))
        faces = faces_tree(tmp_path_factory.mktemp("faces"), standin=False)
        chosen = {**given, "faces_dir": str(faces), "seed_repeats": len(SEEDS)}
        return text_of("index.qmd", chosen, {**seeds, "cnn": cnn},
                       {name: [tensors[name]] * len(SEEDS) for name in tensors})


def test_the_headline_table_counts_the_seeds_of_each_best_setting(real, flipped, tmp_path_factory):
    _, seeds, _ = flipped
    text = front_page(real, seeds, [cnn_result()] * len(SEEDS), tmp_path_factory)  # Section 7 alike in every seed
    assert "| 6.1 Does batch norm help? | with batch norm | 2 of 3 seeds |" in text
    assert "| 7 Which baseline tells real from fake? | xgboost | 3 of 3 seeds |" in text
    assert "mean followed by its range over the seeds" in text and "Every claim of Sections 6 and 7" in text


def cnn_of_seed(seed: int, scratch_test_acc: float | None) -> dict:
    """Section 7's result of one seed: XGBoost at 62.5 % test accuracy and, unless None, scratch at the given one."""
    runs = [{"label": "xgboost", "baseline": "xgboost", "params": {"seed": seed},
             "final": {"val_acc": 0.6, "test_acc": 0.625}}]
    if scratch_test_acc is not None:
        runs.append({"label": "scratch", "baseline": "scratch", "params": {"seed": seed},
                     "final": {"val_acc": 0.7, "test_acc": scratch_test_acc}})
    return {"experiment": "cnn", "runs": runs, "backbone": "none"}


def test_the_front_page_counts_section7_over_the_seeds_in_which_every_baseline_ran(real, flipped, tmp_path_factory):
    _, seeds, _ = flipped
    # XGBoost wins seed 0, scratch wins seed 1, and seed 2 trained XGBoost only (no full-network baseline)
    cnn = [cnn_of_seed(0, 0.5), cnn_of_seed(1, 0.7), cnn_of_seed(2, None)]
    text = front_page(real, seeds, cnn, tmp_path_factory)
    assert f"| 7 Which baseline tells real from fake? | xgboost | 1 of 2 seeds | 60.0{NBSP}% | 62.5{NBSP}% |" in text
    assert "**Every claim of Sections 6 and 7 is checked over 3 seeds**" in text
    assert "In Section 7, `scratch` was trained for seeds 0 and 1 only" in text
    assert "Section 7 is trained for the first seed only" not in text


def test_counts_and_spreads():
    facts = over_seeds([3, 4, 5], [{"best": "a", "acc": 0.5}, {"best": "b", "acc": None}, {"best": "b", "acc": 0.7}])
    assert facts.mode(lambda f: f["best"]) == ("b", Holds(2, 3))
    assert facts.holds(lambda f: f["best"] == "a") == Holds(1, 3)
    assert facts.seed_of_mode(lambda f: f["best"]) is facts.facts[1]
    acc = facts.spread(lambda f: f["acc"])
    assert (acc.mean, acc.low, acc.high, acc.n, acc.missing) == (pytest.approx(0.6), 0.5, 0.7, 2, 1)
    assert spread([None]) is None
    tie = over_seeds([0, 1], ["x", "y"])
    assert tie.mode(lambda f: f) == ("x", Holds(1, 2))  # the earliest seed's value among equals
    where = facts.where(lambda f: f["acc"] is not None)
    assert where.seeds == (3, 5) and where.holds(lambda f: f["best"] == "b") == Holds(1, 2)
    assert facts.where(lambda f: False) is None
