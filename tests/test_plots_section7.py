"""Section 7's figures drawn from small hand-made results: labelled axes, chance marked, provenance. No training."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ex4.plots import section7 as plots  # noqa: E402
from test_analysis_section7 import course_like_runs, fake_result, fake_run  # noqa: E402

OUTCOME = SimpleNamespace(experiment="cnn", key="0123456789abcdef", hit=False)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(fig: plt.Figure) -> str:
    return " ".join(text.get_text() for text in fig.texts)


def horizontal_levels(ax: plt.Axes) -> set[float]:
    return {round(float(line.get_ydata()[0]), 4) for line in ax.get_lines()
            if len(set(np.asarray(line.get_ydata(), dtype=float))) == 1}


def test_accuracy_figure_has_rates_on_a_log_axis_lines_for_rate_free_baselines_and_chance():
    result = fake_result(course_like_runs() + [fake_run("scratch", 0.01, 0.5, diverged=True)])
    fig = plots.accuracy_by_learning_rate(result, outcomes=[OUTCOME], extra="stand-in data, NOT faces")
    val_ax, test_ax = fig.axes[:2]
    for ax in (val_ax, test_ax):
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate (Adam; log scale)"
    assert val_ax.get_ylabel() == "accuracy (%)"
    assert sorted(test_ax.get_xticks()) == pytest.approx([1e-5, 1e-4, 0.01, 0.1])
    levels = horizontal_levels(test_ax)
    assert {73.5, 71.5, 50.0} <= levels  # XGBoost, scikit-learn probe, majority-class rate
    band = [patch for patch in test_ax.patches]
    assert band and band[0].get_path().get_extents().transformed(band[0].get_transform()).height > 0
    legend = [text.get_text().replace("\n", " ") for text in fig.legends[0].get_texts()]
    assert "fine-tuned ResNet18" in legend and "XGBoost on pixels (no learning rate)" in legend
    assert "diverged (non-finite outputs)" in legend
    assert "cnn 0123456789ab (computed now)" in texts(fig) and "NOT faces" in texts(fig)


def test_accuracy_figure_without_any_learning_rate_still_draws():
    result = fake_result([fake_run("xgboost", None, 0.7), fake_run("sklearn_probe", None, 0.6)])
    fig = plots.accuracy_by_learning_rate(result)
    assert {70.0, 60.0} <= horizontal_levels(fig.axes[1])
    assert not any("diverged" in text.get_text() for text in fig.legends[0].get_texts())


def test_mistakes_grid_titles_each_image_with_truth_and_both_probabilities():
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    items = [{"id": "test/fake/a.png", "true": 1, "p_best": 0.91, "p_worst": 0.12},
             {"id": "test/real/b.png", "true": 0, "p_best": 0.2, "p_worst": None}]
    fig = plots.mistakes_grid(images, items, "finetune lr=1e-4", "finetune lr=0.01", outcomes=[OUTCOME],
                              extra="stand-in data, NOT faces")
    assert [ax.get_title() for ax in fig.axes] == ["true: fake", "true: real"]
    assert fig.axes[0].get_xlabel() == "P(fake): best 0.91\nworst 0.12"
    assert fig.axes[1].get_xlabel().endswith("worst n/a")
    assert all(ax.images for ax in fig.axes)
    assert "finetune lr=1e-4" in fig._suptitle.get_text() and "NOT faces" in texts(fig)


def test_mistakes_grid_with_no_images_says_so():
    fig = plots.mistakes_grid(np.zeros((0, 8, 8, 3), dtype=np.uint8), [], "a", "b")
    assert len(fig.axes) == 1 and not fig.axes[0].images
    assert "no test image" in " ".join(text.get_text() for text in fig.axes[0].texts)


def test_baselines_keep_their_colour_whatever_ran():
    assert plots.baseline_colors(["finetune"])["finetune"] == plots.baseline_colors(
        ["xgboost", "finetune"])["finetune"]
