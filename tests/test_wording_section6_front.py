"""The wording of Section 6, the front page and the data chapter follows the verdicts.

Each chapter is executed in-process (`chapter_text`) against result sets with opposite verdicts, and each test
looks for the phrase or number that only the matching passage contains. The Section 6 results are real ones,
computed once on stand-in cities under tiny settings (a few seconds), then altered to force each verdict.
Executing a chapter takes about a second, so each chapter runs once per scenario (two or three) and the tests
read the texts of those runs; every scenario flips the verdicts of the one before it.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest

from chapter_text import chapter_text
from conftest import DATA_FAKE_COLOUR, DATA_REAL_COLOUR, data_write_image
from ex4 import params
from ex4.analysis import section6 as facts
from ex4.data.europe import load_europe
from ex4.experiments import run
from ex4.models.regions import region_upper_bound
from ex4.store import Store
from test_mlp_experiments import TINY, write_cities

ROOT = Path(__file__).resolve().parents[1]
SECTION6 = ["mlp-lr", "mlp-epochs", "mlp-batchnorm", "mlp-batch-size", "mlp-shapes", "mlp-gradients", "mlp-implicit"]
NBSP = "\u00a0"


# ---- the real results, and how to alter them ---------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """(chapter parameters, results, tensors, class-frequency baseline, majority rate) of a real tiny run."""
    folder = write_cities(tmp_path_factory.mktemp("cities") / "europe")
    # three depths at the base width and two widths at the base depth, so that both trends have steps
    given = {**TINY, "mlp_depth": 2, "mlp_width": 4, "mlp_shapes": [[1, 4], [2, 4], [3, 4], [2, 8]],
             "europe_dir": str(folder)}
    values = params.resolve(("test", given))
    store = Store(tmp_path_factory.mktemp("store"))
    outcomes = {name: run(name, values, store) for name in SECTION6}
    results = {name: outcome.result for name, outcome in outcomes.items()}
    tensors = {name: outcome.tensors for name, outcome in outcomes.items()}
    cities = load_europe(folder)
    baseline = facts.prior_loss(cities.train.y, cities.val.y, cities.n_classes)
    majority = facts.majority_accuracy(cities.train.y, cities.val.y)
    return given, results, tensors, baseline, majority


def text_of(chapter: str, given, results, tensors) -> str:
    """The chapter's Markdown with runs of spaces and newlines (not the no-break spaces of numbers) made one."""
    return re.sub(r"[ \t\n]+", " ", chapter_text(ROOT / chapter, results, params=given, tensors=tensors))


def set_history(run_entry: dict, epochs: int | None = None, diverged_epoch: int | None = None, **metrics) -> None:
    """Replace metrics of a run (lists per epoch); the others keep their values, padded or cut to `epochs`."""
    history = run_entry["history"]
    epochs = epochs or len(next(iter(metrics.values()), history["val_loss"]))
    for metric in facts.METRICS:
        values = list(metrics.get(metric, history[metric]))
        values = (values + [values[-1]] * epochs)[:epochs]
        if diverged_epoch is not None:
            values = [None if epoch >= diverged_epoch else value for epoch, value in enumerate(values, start=1)]
        history[metric] = values
    run_entry["final"] = {metric: values[-1] for metric, values in history.items()}
    run_entry["params"]["epochs"] = epochs
    run_entry["diverged"] = diverged_epoch is not None
    run_entry["diverged_epoch"] = diverged_epoch


def rates_largest_first(results):
    return sorted(results["mlp-lr"]["runs"], key=lambda run: -run["params"]["lr"])


def by_arch(results, name, field):
    return {run["arch"][field]: run for run in results[name]["runs"]}


def shapes_by_label(results):
    return {run["label"]: run for run in results["mlp-shapes"]["runs"]}


# ---- Section 6.1: three scenarios --------------------------------------------------------------------------


def scenario_61(real, which: str):
    given, results, tensors, baseline, _ = real
    results = copy.deepcopy(results)
    rates = rates_largest_first(results)  # three rates in TINY: 1e30, 0.05, 0.01
    long_run = results["mlp-epochs"]["runs"][0]
    bn = by_arch(results, "mlp-batchnorm", "batch_norm")
    sizes = sorted(results["mlp-batch-size"]["runs"], key=lambda run: run["params"]["batch_size"])
    if which == "learned":
        set_history(rates[0], val_loss=[baseline * 2] * 2, diverged_epoch=2)
        set_history(rates[1], val_loss=[baseline * 0.9, baseline * 0.5], val_acc=[0.5, 0.8])
        set_history(rates[2], val_loss=[baseline * 1.3, baseline * 1.2])
        set_history(long_run, val_loss=[2.0, 1.0, 0.9, 1.0, 1.2], train_loss=[2.0, 1.0, 0.8, 0.6, 0.4],
                    train_acc=[0.5, 0.6, 0.7, 0.8, 0.9], val_acc=[0.5, 0.6, 0.65, 0.6, 0.6])
        set_history(bn[False], val_acc=[0.1, 0.2], train_acc=[0.1, 0.2])
        set_history(bn[True], val_acc=[0.3, 0.8], train_acc=[0.3, 0.75])
        for run_entry, accuracy in zip(sizes, (0.5, 0.9)):
            set_history(run_entry, epochs=run_entry["params"]["epochs"], val_acc=[accuracy])
    elif which == "stalled":
        set_history(rates[0], val_loss=[baseline * 1.1, baseline * 1.02])  # too large, and at the baseline
        set_history(rates[1], val_loss=[baseline * 1.1, baseline * 1.005])  # the best, yet not below the baseline
        set_history(rates[2], val_loss=[baseline * 1.3, baseline * 1.2])
        set_history(long_run, val_loss=[baseline * 1.005] * 5, train_loss=[baseline] * 5, val_acc=[0.3] * 5)
        set_history(bn[False], val_acc=[0.1, 0.2], train_acc=[0.1, 0.2])
        set_history(bn[True], val_acc=[0.3, 0.1], train_acc=[0.3, 0.15])
        for run_entry in sizes:
            set_history(run_entry, epochs=run_entry["params"]["epochs"], val_acc=[0.4])
    else:  # "diverged"
        for run_entry in rates:
            set_history(run_entry, val_loss=[1.0, 1.0], diverged_epoch=1)
        falling = [baseline * x for x in (1.0, 0.8, 0.6, 0.45, 0.3)]
        set_history(long_run, val_loss=falling, train_loss=falling, val_acc=[0.5, 0.6, 0.7, 0.75, 0.8])
        set_history(bn[True], val_acc=[0.3, 0.1], diverged_epoch=2)
    return text_of("report/section6-1.qmd", given, results, tensors), rates


@pytest.fixture(scope="module")
def s61(real):
    return {which: scenario_61(real, which) for which in ("learned", "stalled", "diverged")}


def test_the_rate_that_learned_is_named_against_the_baseline(s61):
    text, rates = s61["learned"]
    assert f"belongs to lr = {rates[1]['params']['lr']:g} (80.0{NBSP}% validation accuracy), clearly below" in text
    assert f"lr = {rates[0]['params']['lr']:g} (diverged in epoch 2) is too large" in text
    assert f"lr = {rates[2]['params']['lr']:g} (stalled at" in text and "is too small" in text
    assert "no rate learned much" not in text and "ReLUs have all died" not in text


def test_when_no_rate_learned_the_chapter_says_so_and_names_a_dead_rate(s61):
    text, rates = s61["stalled"]
    assert "no rate learned much in this many epochs" in text and "clearly below" not in text
    assert f"With lr = {rates[0]['params']['lr']:g} the loss ends within a few percent of that baseline" in text


def test_when_every_rate_diverged_none_is_called_best(s61):
    text, _ = s61["diverged"]
    assert "Every learning rate diverged, so none can be called best." in text
    assert "At the smallest rate" not in text and "ReLUs have all died" not in text


def test_the_long_run_over_fits_under_fits_or_is_stuck_as_its_curves_say(s61):
    overfits, stuck, improving = s61["learned"][0], s61["stalled"][0], s61["diverged"][0]
    assert "The run over-fits: the validation loss was lowest in epoch 3" in overfits
    assert "under-fits" not in overfits
    assert "the model under-fits" in improving and "The run over-fits" not in improving
    assert "is well below the" in improving and "so it has learned where countries lie" in improving
    assert "the run is stuck rather than finished" in stuck and "The validation accuracy did not move" in stuck
    assert "stuck rather than finished" not in improving


def test_batch_norm_is_said_to_help_only_when_it_did(s61):
    helped, hurt, diverged = s61["learned"][0], s61["stalled"][0], s61["diverged"][0]
    assert "Batch norm helped:" in helped and f"(+60.0{NBSP}pp)" in helped and "4 times the accuracy" in helped
    assert "ends above the training accuracy" in helped
    assert "Batch norm did not help here:" in hurt and f"(-10.0{NBSP}pp)" in hurt and "Batch norm helped" not in hurt
    assert "stays above the validation accuracy" in hurt
    assert "The run with batch norm diverged" in diverged and "Batch norm helped" not in diverged


def test_batch_sizes_name_the_best_or_call_a_tie(s61):
    best, tie = s61["learned"][0], s61["stalled"][0]
    assert f"The best final validation accuracy, 90.0{NBSP}%, came from batch size 64" in best
    assert "none of them is ahead" not in best
    assert f"end at the same validation accuracy, 40.0{NBSP}%: none of them is ahead" in tie


# ---- Section 6.2: two scenarios ----------------------------------------------------------------------------


def scenario_62(real, which: str):
    given, results, tensors, _, majority = real
    results = copy.deepcopy(results)
    shapes = results["mlp-shapes"]
    by_label = shapes_by_label(results)
    by_depth = {run["params"]["depth"]: run for run in shapes["runs"] if run["params"]["width"] == 4}
    layers = [str(layer) for layer in results["mlp-gradients"]["layers"]]
    gradients = by_arch(results, "mlp-gradients", "residual")
    sine = by_arch(results, "mlp-implicit", "implicit")
    for accuracy, label in zip((0.4, 0.6, 0.7), shapes["depth_series"]):
        set_history(by_label[label], val_acc=[0.1, accuracy], train_acc=[0.1, accuracy])
    set_history(by_label[shapes["width_series"][1]], val_acc=[0.1, 0.8], train_acc=[0.1, 0.8])
    set_history(sine[False], val_acc=[0.3, 0.5])
    if which == "a":
        shapes["best"], shapes["worst"] = shapes["width_series"][1], by_depth[1]["label"]
        set_history(by_depth[1], train_acc=[0.3, 0.5], val_acc=[0.3, 0.4])
        by_depth[1]["regions_counted"], by_label[shapes["best"]]["regions_counted"] = 2, 3
        gradients[False]["grad_norms"] = {layer: [0.0, 0.0] if i == 0 else [1e-3, 1e-3]
                                          for i, layer in enumerate(layers)}
        gradients[True]["grad_norms"] = {layer: [1e-2, 1e-2] for layer in layers}
        set_history(gradients[True], val_acc=[0.5, min(1.0, majority + 0.2)])
        set_history(sine[True], val_acc=[0.3, 0.75])
    else:
        shapes["best"], shapes["worst"] = shapes["width_series"][1], by_depth[3]["label"]
        set_history(by_depth[2], val_acc=[0.1, 0.9], train_acc=[0.1, 0.9])  # depth: up, then down
        set_history(by_depth[3], train_acc=[0.3, 0.95], val_acc=[0.3, 0.35])
        by_depth[3]["regions_counted"] = by_depth[3]["region_bound"] + 1
        by_label[shapes["best"]]["regions_counted"] = 2
        gradients[False]["grad_norms"] = {layer: [1e-2, 1e-2] for layer in layers}
        set_history(gradients[True], val_acc=[0.5, majority])
        set_history(sine[True], val_acc=[0.3, 0.25])
    return text_of("report/section6-2.qmd", given, results, tensors), results, majority


@pytest.fixture(scope="module")
def s62(real):
    return {which: scenario_62(real, which) for which in ("a", "b")}


def test_the_worst_shape_is_said_to_under_fit_only_when_it_fits_its_training_data_worse(s62):
    underfits, overfits = s62["a"][0], s62["b"][0]
    assert "it under-fits, held back by what it can represent" in underfits and "not capacity" not in underfits
    assert f"is 10.0{NBSP}pp more accurate on its training data than on the validation split" in underfits
    assert "its problem is over-fitting, not capacity" in overfits and "held back by" not in overfits


def test_region_counts_are_compared_and_checked_against_the_bound(s62):
    more, fewer = s62["a"][0], s62["b"][0]
    assert "the best model's borders bend and break into 3" in more
    assert "It does for every model of the grid" in more and "error in the count" not in more
    assert "what separates them is where the borders lie" in fewer
    assert "3 × 4, which points to an error in the count" in fewer and "It does for every model" not in fewer


def test_the_bound_is_derived_for_a_shallow_or_a_deep_worst_model(s62):
    shallow, deep = s62["a"][0], s62["b"][0]
    terms = " + ".join(str(math.comb(4, k)) for k in range(3))
    assert f"{terms} = {region_upper_bound(2, [4])}" in shallow and "Serra et al.'s, evaluated" not in shallow
    assert "Serra et al.'s, evaluated at $n_0 = 2$ inputs and $L = 3$ hidden layers" in deep
    bound = f"{region_upper_bound(2, [4, 4, 4]):,}".replace(",", "\\,")  # thin spaces between thousands
    assert f"R_{{\\max}} \\le {bound}" in deep and r"\binom{4}{0} +" not in deep


def test_gradients_vanish_or_not_and_residual_learning_is_judged_against_the_majority(s62):
    vanished, flowing = s62["a"][0], s62["b"][0]
    assert "In the plain network the gradients vanish" in vanished and "layer 0 receives exactly zero" in vanished
    assert "Residual connections fix this" in vanished and "And it learns: after 2 epochs" in vanished
    assert f"20.0{NBSP}pp above always answering" in vanished
    assert "exact zeros are drawn on a floor at 1e-4" in vanished
    assert "The gradients of the plain network do not vanish here" in flowing
    assert "Residual connections fix" not in flowing and "And it learns" not in flowing
    assert "No tracked gradient is exactly zero" in flowing
    assert "Gradients that reach the input are not yet learning" in flowing


def test_sine_features_are_said_to_beat_raw_coordinates_only_when_they_do(s62):
    wins, loses = s62["a"][0], s62["b"][0]
    assert "The sine features beat the raw coordinates" in wins and f"(+25.0{NBSP}pp)" in wins
    assert "The sine features did not beat the raw coordinates" in loses and f"(-25.0{NBSP}pp)" in loses


def test_trends_say_diminishing_returns_or_no_single_direction(s62):
    rising, mixed = s62["a"][0], s62["b"][0]
    assert ("Validation accuracy rises at every step but by less per added layer each time: diminishing returns "
            f"(40.0{NBSP}% at depth 1, 60.0{NBSP}% at depth 2 and 70.0{NBSP}% at depth 3") in rising
    assert f"Validation accuracy rises at every step (60.0{NBSP}% at width 4 and 80.0{NBSP}% at width 8" in rising
    assert "does not move in one direction; it is highest at depth 2" in mixed and "diminishing" not in mixed


# ---- front page and data chapter ---------------------------------------------------------------------------


def cnn_result():
    runs = [{"label": "xgboost", "baseline": "xgboost", "final": {"val_acc": 0.6, "test_acc": 0.625}},
            {"label": "scratch", "baseline": "scratch", "final": {"val_acc": 0.7, "test_acc": 0.5}}]
    return {"experiment": "cnn", "runs": runs, "backbone": "none"}


def faces_tree(root: Path, standin: bool) -> Path:
    for split in ("train", "val", "test"):
        for label, colour in (("real", DATA_REAL_COLOUR), ("fake", DATA_FAKE_COLOUR)):
            data_write_image(root / split / label / "000.png", colour)
    if standin:
        (root / "manifest.json").write_text(json.dumps({"standin": True, "description": "digits, not faces."}))
    return root


@pytest.fixture(scope="module")
def front(real, tmp_path_factory):
    """index.qmd and data.qmd under two scenarios: "a" (the sine model learned; user images; the given cities)
    and "b" (it did not; stand-in images; the bundled cities, here the same tiny folder)."""
    import ex4.data

    given, results, tensors, _, majority = real
    texts = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EX4_ROOT", str(tmp_path_factory.mktemp("ex4-root")))  # image caches go here
        original = ex4.data.resolve_europe_dir
        patch.setattr(ex4.data, "resolve_europe_dir", lambda value: original(value or given["europe_dir"]))
        for which in ("a", "b"):
            altered = {**copy.deepcopy(results), "cnn": cnn_result()}
            sine = by_arch(altered, "mlp-implicit", "implicit")
            set_history(sine[False], val_acc=[0.1, 0.0])
            set_history(sine[True], val_acc=[0.1, min(1.0, majority + 0.1) if which == "a" else majority])
            faces = faces_tree(tmp_path_factory.mktemp(f"faces-{which}"), standin=which == "b")
            chosen = {**given, "faces_dir": str(faces), "europe_dir": given["europe_dir"] if which == "a" else None}
            texts[which] = (text_of("index.qmd", chosen, altered, tensors),
                            text_of("report/data.qmd", chosen, altered, tensors), faces)
    return texts


def test_the_front_page_crowns_a_section6_winner_only_if_it_beats_the_majority_class(front):
    learned, not_learned = front["a"][0], front["b"][0]
    assert "| 6.2 Sine features or raw coordinates? | sine features |" in learned
    assert "none learned (best: sine features" not in learned
    assert "| none learned (best: sine features, no better than the most common country) |" in not_learned
    assert f"| 7 Which baseline tells real from fake? | xgboost | 60.0{NBSP}% | 62.5{NBSP}% |" in learned


def test_the_front_page_flags_stand_in_images_only_when_they_are(front):
    user, standin = front["a"][0], front["b"][0]
    assert "**Section 7 runs on a stand-in, not on faces" in standin
    assert "Section 7 runs on a stand-in" not in user


def test_the_data_chapter_says_where_its_cities_and_images_come_from(front):
    (_, given_data, user_faces), (_, bundled_data, _) = front["a"], front["b"]
    assert "The set used here holds" in given_data and "The bundled set" not in given_data
    assert f"The images come from {user_faces}." in given_data and "stand-in" not in given_data
    assert "The bundled set used here holds" in bundled_data
    assert "**This run uses a stand-in, not faces.**" in bundled_data and "ships: digits, not faces." in bundled_data
