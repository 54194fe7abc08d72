"""Every parameter ex4 knows, with its type, range and default; profiles and overrides validated up front.

One flat namespace serves the CLI (`--params`, `--set`), the YAML profiles in `params/` and the chapters'
Papermill parameter cells, so a name means the same thing everywhere. Section-specific names carry a
`mlp_` or `cnn_` prefix; `seed`, `europe_dir`, `faces_dir` and `device` are shared.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from ex4.errors import Ex4Error

BASELINES = ("xgboost", "scratch", "linear_probe", "sklearn_probe", "finetune")


@dataclass(frozen=True)
class Spec:
    """One parameter: default, a checker that returns the normalised value or raises ValueError, and a doc line."""

    default: Any
    check: Callable[[Any], Any]
    doc: str


# --- value checkers: each returns the normalised value or raises ValueError("what is wrong") ---------------


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, str):  # PyYAML reads `1e-3` (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise ValueError("expected a number") from None
    if not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("must be finite")
    return value


def positive_float(value: Any) -> float:
    value = _number(value)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def int_at_least(low: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("expected an integer")
        try:
            number = float(value)
        except ValueError:
            raise ValueError("expected an integer") from None
        if not number.is_integer():
            raise ValueError("expected an integer")
        if number < low:
            raise ValueError(f"must be >= {low}")
        return int(number)

    return check


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def choice(*options: str, allow_path: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and value in options:
            return value
        if allow_path and isinstance(value, str) and value.endswith((".pth", ".pt")):
            return value
        extra = " or a .pth file" if allow_path else ""
        raise ValueError(f"expected one of {', '.join(options)}{extra}")

    return check


def list_of(check: Callable[[Any], Any], *, min_len: int = 1, unique: bool = False) -> Callable[[Any], list]:
    def check_list(value: Any) -> list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ValueError("expected a list")
        if len(value) < min_len:
            raise ValueError(f"needs at least {min_len} item(s)")
        out = []
        for index, item in enumerate(value):
            try:
                out.append(check(item))
            except ValueError as error:
                raise ValueError(f"item {index} ({item!r}): {error}") from None
        if unique and len(set(map(repr, out))) != len(out):
            raise ValueError("items must be distinct")
        return out

    return check_list


def shape(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        depth = int_at_least(1)(value[0])
        width = int_at_least(1)(value[1])
        return [depth, width]
    raise ValueError("expected [depth, width]")


def auto_or(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """"auto" (resolved later from the data) or a value `check` accepts."""
    def check_auto(value: Any) -> Any:
        if value == "auto":
            return "auto"
        try:
            return check(value)
        except ValueError as error:
            raise ValueError(f"expected auto or an integer ({error})") from None

    return check_auto


def directory_or_default(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, Path)):
        raise ValueError("expected a directory path or null (bundled data)")
    return str(value)


SCHEMA: dict[str, Spec] = {
    # shared
    "seed": Spec(0, int_at_least(0), "seed for numpy and torch"),
    "europe_dir": Spec(None, directory_or_default, "course-format city CSVs; null = bundled GeoNames set"),
    "faces_dir": Spec(None, directory_or_default, "ImageFolder tree of real/fake images; null = bundled stand-in"),
    "device": Spec("auto", choice("auto", "cpu", "cuda"), "torch device; auto = cuda when available"),
    # Section 6: base MLP setting (the course defaults)
    "mlp_lr": Spec(1e-3, positive_float, "learning rate of the base setting"),
    "mlp_optimizer": Spec("sgd", choice("sgd", "adam"), "optimizer; sgd has no momentum"),
    "mlp_batch_size": Spec(256, int_at_least(1), "batch size of the base setting"),
    "mlp_epochs": Spec(50, int_at_least(1), "epochs of the learning-rate experiment"),
    "mlp_depth": Spec(6, int_at_least(1), "hidden layers, counting the input layer as the course does"),
    "mlp_width": Spec(16, int_at_least(1), "units per hidden layer"),
    "mlp_batch_norm": Spec(False, boolean, "BatchNorm1d before each ReLU in the base setting"),
    "mlp_train_subset": Spec(None, optional(int_at_least(16)), "use only this many training rows (smoke runs)"),
    # Section 6 experiments
    "mlp_learning_rates": Spec([1.0, 0.01, 0.001, 0.00001], list_of(positive_float, unique=True), "mlp-lr grid"),
    "mlp_extra_learning_rates": Spec([0.2, 0.0005], list_of(positive_float, min_len=0, unique=True),
                                     "extra rates that locate where training dies (drawn dashed)"),
    "mlp_long_epochs": Spec(100, int_at_least(1), "epochs of mlp-epochs and mlp-batchnorm"),
    "mlp_batch_sizes": Spec([1, 16, 128, 1024], list_of(int_at_least(1), unique=True), "mlp-batch-size grid"),
    "mlp_epochs_per_batch_size": Spec([1, 10, 50, 50], list_of(int_at_least(1)), "epochs for each batch size"),
    "mlp_shapes": Spec([[1, 16], [2, 16], [6, 16], [10, 16], [6, 8], [6, 32], [6, 64]],
                       list_of(shape, unique=True), "mlp-shapes grid of [depth, width]"),
    "mlp_shapes_batch_size": Spec(128, int_at_least(1), "batch size of mlp-shapes and mlp-implicit"),
    "mlp_shapes_epochs": Spec(50, int_at_least(1), "epochs of mlp-shapes and mlp-implicit"),
    "mlp_shapes_batch_norm": Spec(True, boolean, "batch norm in mlp-shapes and mlp-implicit"),
    "mlp_gradient_depth": Spec(100, int_at_least(2), "depth of the mlp-gradients network"),
    "mlp_gradient_width": Spec(4, int_at_least(1), "width of the mlp-gradients network"),
    "mlp_gradient_epochs": Spec(10, int_at_least(1), "epochs of mlp-gradients"),
    "mlp_gradient_layers": Spec([0, 30, 60, 90, 95, 99], list_of(int_at_least(0), unique=True),
                                "layers whose gradient norm is tracked"),
    "mlp_region_grid": Spec(400, int_at_least(8), "grid points per side for region counts and decision-boundary maps"),
    "mlp_engine": Spec("auto", choice("auto", "torch", "kernel"),
                       "MLP training engine: auto = compiled CPU kernel on the CPU, torch on CUDA; torch = "
                       "bit-identical to a textbook loop for single runs"),
    # Section 7
    "cnn_baselines": Spec(list(BASELINES), list_of(choice(*BASELINES), unique=True), "baselines to run"),
    "cnn_learning_rates": Spec([0.1, 0.01, 0.001, 0.0001, 0.00001], list_of(positive_float, unique=True),
                               "Adam learning rates of the torch baselines"),
    "cnn_batch_size": Spec(32, int_at_least(1), "batch size of the torch baselines"),
    "cnn_epochs": Spec(1, int_at_least(1), "epochs of the torch baselines"),
    "cnn_image_size": Spec("auto", auto_or(int_at_least(16)),
                           "side fed to ResNet18; auto = 224 (course: resize 256, crop 224) for your own images, "
                           "the native size (64) for the bundled stand-in"),
    "cnn_xgb_crop": Spec(64, int_at_least(4), "centre crop of the XGBoost pixels (after resizing to 224)"),
    "cnn_weights": Spec("auto", choice("auto", "imagenet", "surrogate", allow_path=True),
                        "pretrained backbone: auto, imagenet, surrogate or a .pth file"),
    "cnn_allow_download": Spec(False, boolean, "may torchvision download ImageNet weights"),
    "cnn_train_subset": Spec(None, optional(int_at_least(2)), "use only this many training images (smoke runs)"),
    "cnn_mistakes": Spec(5, int_at_least(1), "test images shown in the mistakes figure"),
    "cnn_precision": Spec("auto", choice("auto", "float32", "bfloat16"),
                          "torch arithmetic: auto = bf16 autocast + channels_last where native, else float32; "
                          "float32 = bit-identical to a textbook loop"),
}


def defaults() -> dict[str, Any]:
    return {name: _copy(spec.default) for name, spec in SCHEMA.items()}


def _copy(value: Any) -> Any:
    return [_copy(item) for item in value] if isinstance(value, list) else value


def _unknown(name: str, source: str) -> Ex4Error:
    close = difflib.get_close_matches(name, SCHEMA, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return Ex4Error(f"{source}: unknown parameter '{name}'{hint}")


def check_value(name: str, value: Any, source: str) -> Any:
    if name not in SCHEMA:
        raise _unknown(name, source)
    try:
        return SCHEMA[name].check(value)
    except ValueError as error:
        raise Ex4Error(f"{source}: parameter '{name}' = {value!r}: {error}") from None


def _check_together(values: Mapping[str, Any], source: str) -> None:
    if values["mlp_batch_norm"] and values["mlp_batch_size"] == 1:
        raise Ex4Error(f"{source}: parameter 'mlp_batch_norm' = true needs 'mlp_batch_size' > 1 "
                       "(batch norm of a single sample is undefined)")
    if values["mlp_shapes_batch_norm"] and values["mlp_shapes_batch_size"] == 1:
        raise Ex4Error(f"{source}: parameter 'mlp_shapes_batch_norm' = true needs 'mlp_shapes_batch_size' > 1 "
                       "(batch norm of a single sample is undefined)")
    if len(values["mlp_epochs_per_batch_size"]) != len(values["mlp_batch_sizes"]):
        raise Ex4Error(f"{source}: parameter 'mlp_epochs_per_batch_size' has "
                       f"{len(values['mlp_epochs_per_batch_size'])} items but 'mlp_batch_sizes' has "
                       f"{len(values['mlp_batch_sizes'])}")
    too_deep = [layer for layer in values["mlp_gradient_layers"] if layer >= values["mlp_gradient_depth"]]
    if too_deep:
        raise Ex4Error(f"{source}: parameter 'mlp_gradient_layers' = {values['mlp_gradient_layers']}: "
                       f"layer {too_deep[0]} >= mlp_gradient_depth {values['mlp_gradient_depth']}")


def read_profile(path: Path | str) -> dict[str, Any]:
    """Read a YAML profile (a flat mapping of parameter names) without applying it."""
    path = Path(path)
    if not path.is_file():
        raise Ex4Error(f"{path}: parameter file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise Ex4Error(f"{path}{line}: YAML syntax error: {error.problem or error.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise Ex4Error(f"{path}: not a readable YAML file ({type(error).__name__})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise Ex4Error(f"{path}: expected a mapping of parameter names to values, got {type(loaded).__name__}")
    return loaded


def parse_assignment(text: str) -> tuple[str, Any]:
    """`NAME=VALUE` from the command line; VALUE is parsed as YAML (so `[1, 2]` is a list)."""
    if "=" not in text:
        raise Ex4Error(f"--set {text!r}: expected NAME=VALUE")
    name, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise Ex4Error(f"--set {name}: value {raw!r} is not valid YAML") from None
    return name.strip(), value


def resolve(*layers: tuple[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Defaults, then each (source label, mapping) layer in order; every name and value validated.

    Raises Ex4Error naming the source, the parameter and the value before any work starts.
    """
    values = defaults()
    source = "defaults"
    for source, mapping in layers:
        for name, value in mapping.items():
            values[name] = check_value(str(name), value, source)
    _check_together(values, source)
    return values


def resolve_cli(params_file: str | None = None, assignments: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if params_file:
        layers.append((str(params_file), read_profile(params_file)))
    if assignments:
        layers.append(("--set", dict(parse_assignment(text) for text in assignments)))
    return resolve(*layers)


def subset(values: Mapping[str, Any], names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The parameters one experiment depends on (its store key uses only these)."""
    return {name: values[name] for name in names}
