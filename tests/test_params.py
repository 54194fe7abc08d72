"""Parameter validation: every bad name or value is caught before any work, with a message that names it."""

from pathlib import Path

import pytest
import yaml

from ex4 import params
from ex4.errors import Ex4Error

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_match_the_course():
    values = params.resolve()
    assert values["mlp_lr"] == 1e-3 and values["mlp_batch_size"] == 256 and values["mlp_epochs"] == 50
    assert values["mlp_optimizer"] == "sgd"
    assert values["cnn_learning_rates"] == [0.1, 0.01, 0.001, 0.0001, 0.00001]
    assert values["cnn_batch_size"] == 32 and values["cnn_epochs"] == 1


def test_unknown_name_suggests_the_closest_and_names_the_source():
    with pytest.raises(Ex4Error, match=r"my\.yml: unknown parameter 'mlp_lrr' \(did you mean 'mlp_lr'\?\)"):
        params.resolve(("my.yml", {"mlp_lrr": 0.1}))


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("mlp_lr", 0, "must be > 0"),
        ("mlp_lr", -1e-3, "must be > 0"),
        ("mlp_lr", "fast", "expected a number"),
        ("mlp_batch_size", 0, "must be >= 1"),
        ("mlp_batch_size", 2.5, "expected an integer"),
        ("mlp_epochs", 0, "must be >= 1"),
        ("mlp_depth", 0, "must be >= 1"),
        ("mlp_batch_norm", "yes", "expected true or false"),
        ("mlp_optimizer", "rmsprop", "expected one of sgd, adam"),
        ("mlp_learning_rates", [0.1, -1], "item 1"),
        ("mlp_shapes", [[6, 16], [0, 4]], "item 1"),
        ("cnn_weights", "resnet50", "expected one of auto, imagenet, surrogate"),
        ("seed", True, "expected an integer"),
    ],
)
def test_bad_values_name_parameter_and_value(name, value, fragment):
    with pytest.raises(Ex4Error) as caught:
        params.resolve(("--set", {name: value}))
    message = str(caught.value)
    assert f"'{name}'" in message and repr(value) in message and fragment in message
    assert "\n" not in message


def test_batch_norm_with_batch_size_one_is_rejected():
    with pytest.raises(Ex4Error, match="mlp_batch_norm.*mlp_batch_size"):
        params.resolve(("--set", {"mlp_batch_norm": True, "mlp_batch_size": 1}))
    with pytest.raises(Ex4Error, match="mlp_shapes_batch_norm"):
        params.resolve(("--set", {"mlp_shapes_batch_size": 1}))


def test_mismatched_epoch_list_is_rejected():
    with pytest.raises(Ex4Error, match="mlp_epochs_per_batch_size"):
        params.resolve(("--set", {"mlp_batch_sizes": [16, 128]}))


def test_yaml_numbers_without_a_dot_are_read_as_numbers(tmp_path):
    profile = tmp_path / "p.yml"
    profile.write_text("mlp_lr: 1e-4\nmlp_learning_rates: [1e-2, 5e-4]\n")
    values = params.resolve_cli(str(profile))
    assert values["mlp_lr"] == 1e-4 and values["mlp_learning_rates"] == [0.01, 0.0005]


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    profile = tmp_path / "broken.yml"
    profile.write_text("seed: 1\nmlp_lr: [0.1, 0.2\nmlp_epochs: 3\n")
    with pytest.raises(Ex4Error, match=r"broken\.yml line \d+: YAML syntax error"):
        params.resolve_cli(str(profile))


def test_profile_that_is_not_a_mapping(tmp_path):
    profile = tmp_path / "list.yml"
    profile.write_text("- 1\n- 2\n")
    with pytest.raises(Ex4Error, match="expected a mapping"):
        params.read_profile(profile)


def test_missing_profile():
    with pytest.raises(Ex4Error, match="not found"):
        params.read_profile("no/such/file.yml")


def test_set_values_are_parsed_as_yaml():
    values = params.resolve_cli(None, ["mlp_shapes=[[1, 8], [2, 8]]", "mlp_batch_norm=true", "mlp_lr=0.5"])
    assert values["mlp_shapes"] == [[1, 8], [2, 8]] and values["mlp_batch_norm"] is True
    with pytest.raises(Ex4Error, match="expected NAME=VALUE"):
        params.resolve_cli(None, ["mlp_lr"])


@pytest.mark.parametrize("profile", sorted((ROOT / "params").glob("*.yml")), ids=lambda path: path.name)
def test_shipped_profiles_are_valid(profile):
    params.resolve_cli(str(profile))


def test_default_profile_spells_out_every_parameter():
    profile = yaml.safe_load((ROOT / "params" / "default.yml").read_text())
    assert set(profile) == set(params.SCHEMA)
