"""Every Section 6 figure draws from a small fake result: a Figure comes back with labelled axes. No training."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ex4.plots import section6 as plots  # noqa: E402
from section6_fakes import (fake_class_grids, fake_gradients_result, fake_result, fake_run,  # noqa: E402
                            fake_shapes_result, fake_test_points)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labelled(fig: plt.Figure) -> bool:
    """Every axes that draws data has both axis labels (shared y axes: the first one in a row)."""
    drawn = [ax for ax in fig.axes if ax.has_data()]
    return bool(drawn) and all(ax.get_xlabel() for ax in drawn) and any(ax.get_ylabel() for ax in drawn)


def texts(fig: plt.Figure) -> str:
    return " ".join(text.get_text() for text in fig.texts)


OUTCOME = SimpleNamespace(experiment="mlp-x", key="0123456789abcdef", hit=True)


def test_learning_rates_mark_extra_and_diverged_runs_and_carry_provenance():
    result = fake_result("mlp-lr", [
        fake_run("lr=1", {"val_loss": [2.0, 50.0, 3.0]}, lr=1.0, diverged_epoch=3),
        fake_run("lr=0.2", {"val_loss": [2.0, 1.5, 1.4]}, lr=0.2, extra=True),
        fake_run("lr=0.001", {"val_loss": [2.0, 1.9, 1.8]}, lr=1e-3),
    ])
    fig = plots.learning_rate_curves(result, baseline_loss=1.95, outcomes=[OUTCOME], extra="data: fake")
    assert isinstance(fig, plt.Figure) and labelled(fig)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "validation loss (cross-entropy)"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "lr = 1, diverged in epoch 3" in legend and "lr = 0.2 (extra)" in legend
    assert "--" in {line.get_linestyle() for line in ax.get_lines()}
    assert ax.get_ylim()[1] < 50  # the diverging spike does not squash the other curves
    assert "mlp-x 0123456789ab (stored)" in texts(fig) and "data: fake" in texts(fig)


def test_split_and_batch_norm_curves_have_loss_and_accuracy_panels():
    run = fake_run("base", {"val_loss": [2.0, 1.5, 1.2]})
    fig = plots.split_curves(run)
    assert labelled(fig) and [ax.get_ylabel() for ax in fig.axes] == ["loss (cross-entropy)", "accuracy (%)"]
    result = fake_result("mlp-batchnorm", [fake_run("without batch norm"),
                                           fake_run("with batch norm", batch_norm=True)])
    fig = plots.batch_norm_curves(result)
    assert labelled(fig) and len(fig.axes[0].get_lines()) == 6


def test_batch_sizes_draw_accuracy_per_epoch_and_smoothed_loss_per_step():
    result = fake_result("mlp-batch-size", [fake_run("batch 16", batch_size=16), fake_run("batch 64", batch_size=64)])
    losses = {"batch 16": np.linspace(3, 1, 40), "batch 64": np.linspace(3, 1.5, 10)}
    fig = plots.batch_size_curves(result, losses)
    assert labelled(fig)
    assert fig.axes[1].get_xlabel() == "optimisation step" and len(fig.axes[1].get_lines()) == 4


def test_shape_figures_best_worst_boundaries_and_trends():
    result = fake_shapes_result()
    assert labelled(plots.model_curves(result, ["6x32", "1x16"], ["best", "worst"]))
    x, y = fake_test_points()
    fig = plots.decision_boundaries(fake_class_grids(["6x32", "1x16"]), result["grid_extent"], x, y, 3,
                                    titles={"6x32": "best", "1x16": "worst"})
    assert labelled(fig) and [ax.get_xlabel() for ax in fig.axes] == ["longitude (°)"] * 2
    assert fig.axes[0].get_images()  # the class grid is drawn as an image under the points
    depth = plots.accuracy_trend(result, result["depth_series"], "depth")
    assert labelled(depth) and depth.axes[0].get_xlabel().startswith("depth")
    width = plots.accuracy_trend(result, result["width_series"], "width")
    assert width.axes[0].get_xscale() == "log"


def test_gradient_norms_draw_zeros_at_the_floor_on_a_log_axis():
    result = fake_gradients_result(plain={"0": [0.0, 0.0], "5": [1e-9, 1e-10], "9": [1e-2, 1e-3]},
                                   residual={"0": [1e-1, 1e-2], "5": [1e-2, 1e-2], "9": [1e-2, 1e-3]})
    fig = plots.gradient_norms(result, floor=1e-11)
    assert labelled(fig) and all(ax.get_yscale() == "log" for ax in fig.axes)
    plain_layer0 = fig.axes[0].get_lines()[0]
    assert list(plain_layer0.get_ydata()) == [1e-11, 1e-11]


def test_curves_over_seeds_are_a_median_in_a_min_max_band_and_trends_carry_error_bars():
    from matplotlib.collections import PolyCollection

    def lr_result(seed, loss):
        result = fake_result("mlp-lr", [fake_run("lr=0.01", {"val_loss": loss}, lr=0.01),
                                        fake_run("lr=1", {"val_loss": [2.0, 1.0, 1.0]}, lr=1.0,
                                                 diverged_epoch=3 if seed == 1 else None)])
        return {**result, "seed": seed}

    seeds = [lr_result(0, [2.0, 1.5, 1.0]), lr_result(1, [2.0, 1.7, 1.4]), lr_result(2, [2.0, 1.6, 1.2])]
    fig = plots.learning_rate_curves(seeds[0], outcomes=[OUTCOME], seeds=seeds)
    ax = fig.axes[0]
    band = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(band) == 2  # one band per rate
    median = next(line for line in ax.get_lines() if line.get_label() == "lr = 0.01")
    assert list(median.get_ydata()) == [2.0, 1.6, 1.2]
    assert any("diverged in 1 of 3 seeds" in text.get_text() for text in ax.get_legend().get_texts())
    assert "median over the 3 seeds, band: min–max" in texts(fig)
    one = plots.learning_rate_curves(seeds[0], outcomes=[OUTCOME], seeds=seeds[:1])
    assert not [c for c in one.axes[0].collections if isinstance(c, PolyCollection)] and "median" not in texts(one)

    shapes = [fake_shapes_result() for _ in range(2)]
    shapes[1]["runs"][0]["history"]["val_acc"][-1] = 0.2  # 1x16: 40 % in one seed, 20 % in the other
    fig = plots.accuracy_trend(shapes[0], shapes[0]["depth_series"], "depth", seeds=shapes)
    assert fig.axes[0].containers and "bars: min–max" in texts(fig)  # errorbar containers
