"""Linear regions: the combinatorial bound (checked against brute force and by hand) and the grid count."""

from itertools import product
from math import comb

import pytest
import torch

from ex4.models.regions import class_grid, count_activation_regions, data_extent, grid_points, region_upper_bound
from ex4.models.mlp import build_mlp


def brute_force_bound(n0, widths):
    """Serra et al. (2018) Theorem 1 by enumerating every (j1..jL) in J."""
    total = 0
    for js in product(*(range(width + 1) for width in widths)):
        budget, valid, term = n0, True, 1
        for j, width in zip(js, widths):
            if j > min(budget, width):
                valid = False
                break
            term *= comb(width, j)
            budget = min(budget, width - j)
        total += term if valid else 0
    return total


def test_one_hidden_layer_of_16_on_the_plane_has_at_most_137_regions():
    assert region_upper_bound(2, [16]) == 1 + 16 + 120 == 137


@pytest.mark.parametrize("n1", [1, 2, 5, 16])
def test_one_input_gives_n_plus_one_pieces(n1):
    assert region_upper_bound(1, [n1]) == n1 + 1


@pytest.mark.parametrize("n1", [1, 3, 6])
def test_enough_input_dimensions_reach_every_pattern(n1):
    assert region_upper_bound(n1, [n1]) == region_upper_bound(n1 + 4, [n1]) == 2 ** n1


def test_one_input_deep_network_multiplies_the_pieces():
    # on a line every layer of width n can at most cut each piece n + 1 ways
    assert region_upper_bound(1, [2, 2]) == 9
    assert region_upper_bound(1, [3, 4, 5]) == 4 * 5 * 6


@pytest.mark.parametrize("n0, widths", [(2, [3, 3]), (2, [4, 2, 3]), (3, [2, 5]), (2, [1, 4]), (4, [3, 3, 3])])
def test_dynamic_programme_equals_the_theorem_enumerated(n0, widths):
    assert region_upper_bound(n0, widths) == brute_force_bound(n0, widths)


def test_bound_rejects_empty_layers():
    with pytest.raises(ValueError):
        region_upper_bound(2, [4, 0])


def hand_built(lines):
    """One hidden layer whose units are the half-planes a*long + b*lat + c > 0 of `lines`."""
    model = build_mlp(depth=1, width=len(lines), n_classes=2)
    with torch.no_grad():
        model.hidden[0].linear.weight.copy_(torch.tensor([[a, b] for a, b, _ in lines], dtype=torch.float32))
        model.hidden[0].linear.bias.copy_(torch.tensor([c for _, _, c in lines], dtype=torch.float32))
    return model


def test_two_crossing_lines_make_four_regions():
    model = hand_built([(1, 0, 0), (0, 1, 0)])
    assert count_activation_regions(model, (-1, 1, -1, 1), grid=64) == 4


def test_three_lines_in_general_position_make_seven_regions():
    # x = 0, y = 0 and x + y = 0.5 bound a small triangle inside the box: the bound (1 + 3 + 3) is reached
    model = hand_built([(1, 0, 0), (0, 1, 0), (1, 1, -0.5)])
    assert count_activation_regions(model, (-1, 1, -1, 1), grid=101) == 7 == region_upper_bound(2, [3])


def test_a_line_outside_the_box_adds_nothing():
    model = hand_built([(1, 0, 0), (0, 1, -5)])
    assert count_activation_regions(model, (-1, 1, -1, 1), grid=32) == 2


def test_chunked_counting_equals_one_pass():
    torch.manual_seed(0)
    model = build_mlp(depth=3, width=6, n_classes=3)
    assert (count_activation_regions(model, (-3, 3, -3, 3), grid=60, chunk=97)
            == count_activation_regions(model, (-3, 3, -3, 3), grid=60))


@pytest.mark.parametrize("depth, width, batch_norm", [(1, 16, False), (2, 5, False), (3, 4, True), (6, 3, True)])
def test_counted_patterns_never_exceed_the_bound(depth, width, batch_norm):
    torch.manual_seed(depth * 10 + width)
    model = build_mlp(depth=depth, width=width, batch_norm=batch_norm, n_classes=3)
    if batch_norm:  # give eval-mode batch norm non-trivial statistics
        for layer in model.hidden:
            layer.norm.running_mean.uniform_(-0.5, 0.5)
            layer.norm.running_var.uniform_(0.5, 2.0)
    counted = count_activation_regions(model, (-4, 4, -4, 4), grid=80)
    assert 1 <= counted <= region_upper_bound(2, [width] * depth)


def test_counting_leaves_the_training_mode_as_it_was():
    model = build_mlp(depth=2, width=4, batch_norm=True, n_classes=2).train()
    count_activation_regions(model, (0, 1, 0, 1), grid=8)
    assert model.training


def test_class_grid_predicts_every_mesh_point():
    model = hand_built([(1, 0, 0), (0, 1, 0)])
    with torch.no_grad():
        model.output.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model.output.bias.zero_()
    grid = class_grid(model, (-1, 1, -2, 2), grid=10)
    assert grid.shape == (10, 10) and grid.dtype == torch.uint8
    points = grid_points((-1, 1, -2, 2), 10).view(10, 10, 2)
    expected = (torch.relu(points[..., 1]) > torch.relu(points[..., 0])).to(torch.uint8)
    assert torch.equal(grid, expected)


def test_grid_rows_run_over_latitude_and_extent_covers_all_points():
    points = grid_points((0, 2, 10, 12), 3).view(3, 3, 2)
    assert points[0, :, 0].tolist() == [0, 1, 2] and points[:, 0, 1].tolist() == [10, 11, 12]
    assert data_extent(torch.tensor([[0.0, 5.0]]), torch.tensor([[3.0, -1.0], [1.0, 2.0]])) == [0.0, 3.0, -1.0, 5.0]
