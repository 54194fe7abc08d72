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

# --- limits: every dimension that scales memory or time is bounded here, before any work starts -------------
# Chosen generous for real use (10-1000x the course's values) and far below what would exhaust a machine;
# README.md ("Limits") lists them.
MAX_INT = 2**31 - 1  # any count: beyond it no real setting lies (and int32 libraries overflow)
MAX_SEED = 2**31 - 1  # numpy (< 2**32), torch, scikit-learn and XGBoost all accept 0..2**31-1
MAX_SEED_REPEATS = 64  # seeds per run (the course: 1); each one trains every run once more
MAX_EPOCHS = 10_000  # per run (the course: 1-100)
MAX_DEPTH = 1_000  # hidden layers (the course: 1-100)
MAX_WIDTH = 1_024  # units per hidden layer (the course: 4-64)
MAX_HIDDEN_WEIGHTS = 10**8  # depth x width^2 of one network: 0.4 GB of float32 weights (the course: 25,600)
MAX_MLP_BATCH = 2**17  # 131,072 rows, a full batch of the course's 106,897 training rows
MAX_REGION_GRID = 2_000  # 4 M mesh points per count (the course: 400)
MAX_GRID_ITEMS = 64  # runs in one experiment grid (learning rates, batch sizes, shapes, layers)
MAX_ROW_PASSES = 10**9  # epochs x training rows of one run (the course's largest: 100 x 85,518 = 8.6 M)
MAX_ACTIVATIONS = 5 * 10**8  # rows per batch x depth x width of one step: 2 GB of float32 (the course: 655,360)
MAX_CNN_IMAGE = 1_024  # side fed to the ResNet (the course: 224)
# ResNet18 halves its input five times: below 32 px its last stage convolves a single pixel ringed by padding, which
# carries no image information and, on CPUs with AMX, is where oneDNN's bf16 backward pass reads uninitialised
# memory when it runs on a worker thread (16 px: NaN or other numbers than on the main thread; torch 2.14.1 on a
# Sapphire Rapids Xeon; 17..64 px measured exact). So the smallest side is CIFAR's 32.
MIN_CNN_IMAGE = 32
MAX_CNN_BATCH = 4_096
MAX_CNN_EPOCHS = 1_000
MAX_CNN_IMAGE_PASSES = 10**7  # epochs x training images of one Section 7 run (the course: 1 x 1,400)
XGB_RESIZE = 224  # the XGBoost pixels are cropped from images resized to this side
MAX_MISTAKES = 100
MAX_PROFILE_BYTES = 1_000_000  # a parameter profile is a short YAML file


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


def int_in(low: int, high: int) -> Callable[[Any], int]:
    """An integer in [low, high]; the upper bound keeps what a user can type from exhausting memory or time."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            number = value
        else:
            try:
                as_float = float(value)
            except (ValueError, OverflowError):
                raise ValueError("expected an integer") from None
            if not math.isfinite(as_float) or not as_float.is_integer():
                raise ValueError("expected an integer")
            number = int(as_float)
        if number < low:
            raise ValueError(f"must be >= {low}")
        if number > high:
            raise ValueError(f"must be <= {high:,} (the limit)")
        return number

    return check


def int_at_least(low: int) -> Callable[[Any], int]:
    """An integer >= low, at most `MAX_INT` (a size nobody means)."""
    return int_in(low, MAX_INT)


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


def list_of(check: Callable[[Any], Any], *, min_len: int = 1, max_len: int = 64,
            unique: bool = False) -> Callable[[Any], list]:
    def check_list(value: Any) -> list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ValueError("expected a list")
        if len(value) < min_len:
            raise ValueError(f"needs at least {min_len} item(s)")
        if len(value) > max_len:
            raise ValueError(f"has {len(value)} items; the limit is {max_len}")
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
        try:
            depth = int_in(1, MAX_DEPTH)(value[0])
        except ValueError as error:
            raise ValueError(f"depth: {error}") from None
        try:
            width = int_in(1, MAX_WIDTH)(value[1])
        except ValueError as error:
            raise ValueError(f"width: {error}") from None
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


_EPOCHS = int_in(1, MAX_EPOCHS)
_MLP_BATCH = int_in(1, MAX_MLP_BATCH)


def _check_scheduler(value: Any) -> str:
    from ex4.executor import check_scheduler

    return check_scheduler(value)


SCHEMA: dict[str, Spec] = {
    # shared
    "seed": Spec(0, int_in(0, MAX_SEED), f"seed for numpy and torch (0..{MAX_SEED:,})"),
    "seed_repeats": Spec(1, int_in(1, MAX_SEED_REPEATS),
                         "train every run of Sections 6 and 7 for the seeds seed, seed+1, ..., seed+N-1 and say in how "
                         f"many of them each claim holds (1..{MAX_SEED_REPEATS}; 1 = the course's single run)"),
    "europe_dir": Spec(None, directory_or_default, "course-format city CSVs; null = bundled GeoNames set"),
    "faces_dir": Spec(None, directory_or_default, "ImageFolder tree of real/fake images; null = bundled stand-in"),
    "device": Spec("auto", choice("auto", "cpu", "cuda"), "torch device; auto = cuda when available"),
    # where runs are computed (never part of a result's key: the numbers do not depend on it)
    "executor": Spec("local", choice("local", "dask"),
                     "where independent runs are computed: local = this process; dask = tasks on the Dask "
                     "cluster named by dask_scheduler (pip install 'ex4[dask]')"),
    "dask_scheduler": Spec("local:2", _check_scheduler,
                           "executor: dask only: local:N = a LocalCluster of N worker processes on this machine; "
                           "tcp://host:port = an existing scheduler whose workers share the store's filesystem"),
    # Section 6: base MLP setting (the course defaults)
    "mlp_lr": Spec(1e-3, positive_float, "learning rate of the base setting"),
    "mlp_optimizer": Spec("sgd", choice("sgd", "adam"), "optimizer; sgd has no momentum"),
    "mlp_batch_size": Spec(256, _MLP_BATCH, f"batch size of the base setting (1..{MAX_MLP_BATCH:,})"),
    "mlp_epochs": Spec(50, _EPOCHS, f"epochs of the learning-rate experiment (1..{MAX_EPOCHS:,}; epochs x training "
                                    f"rows <= {MAX_ROW_PASSES:,} per run)"),
    "mlp_depth": Spec(6, int_in(1, MAX_DEPTH), f"hidden layers, counting the input layer as the course does "
                                               f"(1..{MAX_DEPTH:,})"),
    "mlp_width": Spec(16, int_in(1, MAX_WIDTH), f"units per hidden layer (1..{MAX_WIDTH:,})"),
    "mlp_batch_norm": Spec(False, boolean, "BatchNorm1d before each ReLU in the base setting"),
    "mlp_train_subset": Spec(None, optional(int_at_least(16)), "use only this many training rows (smoke runs)"),
    # Section 6 experiments
    "mlp_learning_rates": Spec([1.0, 0.01, 0.001, 0.00001], list_of(positive_float, unique=True),
                               f"mlp-lr grid (at most {MAX_GRID_ITEMS} rates)"),
    "mlp_extra_learning_rates": Spec([0.2, 0.0005], list_of(positive_float, min_len=0, unique=True),
                                     "extra rates that locate where training dies (drawn dashed)"),
    "mlp_long_epochs": Spec(100, _EPOCHS, f"epochs of mlp-epochs and mlp-batchnorm (1..{MAX_EPOCHS:,})"),
    "mlp_batch_sizes": Spec([1, 16, 128, 1024], list_of(_MLP_BATCH, unique=True),
                            f"mlp-batch-size grid (each 1..{MAX_MLP_BATCH:,})"),
    "mlp_epochs_per_batch_size": Spec([1, 10, 50, 50], list_of(_EPOCHS), "epochs for each batch size"),
    "mlp_shapes": Spec([[1, 16], [2, 16], [6, 16], [10, 16], [6, 8], [6, 32], [6, 64]],
                       list_of(shape, unique=True), f"mlp-shapes grid of [depth, width] (depth x width^2 <= "
                                                    f"{MAX_HIDDEN_WEIGHTS:,})"),
    "mlp_shapes_batch_size": Spec(128, _MLP_BATCH, "batch size of mlp-shapes and mlp-implicit"),
    "mlp_shapes_epochs": Spec(50, _EPOCHS, "epochs of mlp-shapes and mlp-implicit"),
    "mlp_shapes_batch_norm": Spec(True, boolean, "batch norm in mlp-shapes and mlp-implicit"),
    "mlp_gradient_depth": Spec(100, int_in(2, MAX_DEPTH), f"depth of the mlp-gradients network (2..{MAX_DEPTH:,})"),
    "mlp_gradient_width": Spec(4, int_in(1, MAX_WIDTH), f"width of the mlp-gradients network (1..{MAX_WIDTH:,})"),
    "mlp_gradient_epochs": Spec(10, _EPOCHS, "epochs of mlp-gradients"),
    "mlp_gradient_layers": Spec([0, 30, 60, 90, 95, 99], list_of(int_in(0, MAX_DEPTH - 1), unique=True),
                                "layers whose gradient norm is tracked"),
    "mlp_region_grid": Spec(400, int_in(8, MAX_REGION_GRID),
                            f"grid points per side for region counts and decision-boundary maps (8..{MAX_REGION_GRID:,})"),
    "mlp_engine": Spec("auto", choice("auto", "torch", "kernel"),
                       "MLP training engine: auto = compiled CPU kernel on the CPU, torch on CUDA; torch = "
                       "bit-identical to a textbook loop for single runs"),
    "mlp_compile": Spec("eager", choice("eager", "small", "all"),
                        "torch.compile the torch engine's SGD step: eager = never; small = long runs of small batches; "
                        "all = every long run (faster, but rounds differently from eager; see should_compile)"),
    # Section 7
    "cnn_baselines": Spec(list(BASELINES), list_of(choice(*BASELINES), unique=True), "baselines to run"),
    "cnn_learning_rates": Spec([0.1, 0.01, 0.001, 0.0001, 0.00001], list_of(positive_float, unique=True),
                               "Adam learning rates of the torch baselines"),
    "cnn_batch_size": Spec(32, int_in(1, MAX_CNN_BATCH), f"batch size of the torch baselines (1..{MAX_CNN_BATCH:,})"),
    "cnn_epochs": Spec(1, int_in(1, MAX_CNN_EPOCHS), f"epochs of the torch baselines (1..{MAX_CNN_EPOCHS:,}; "
                                                     f"epochs x training images <= {MAX_CNN_IMAGE_PASSES:,})"),
    "cnn_image_size": Spec("auto", auto_or(int_in(MIN_CNN_IMAGE, MAX_CNN_IMAGE)),
                           "side fed to ResNet18; auto = 224 (course: resize 256, crop 224) for your own images, "
                           f"the native size (32) for the bundled stand-in ({MIN_CNN_IMAGE}..{MAX_CNN_IMAGE:,})"),
    "cnn_xgb_crop": Spec(64, int_in(4, XGB_RESIZE),
                         f"centre crop of the XGBoost pixels (after resizing to {XGB_RESIZE}; 4..{XGB_RESIZE})"),
    "cnn_weights": Spec("auto", choice("auto", "imagenet", "surrogate", allow_path=True),
                        "pretrained backbone: auto, imagenet, surrogate or a .pth file"),
    "cnn_allow_download": Spec(False, boolean, "may torchvision download ImageNet weights"),
    "cnn_train_subset": Spec(None, optional(int_at_least(2)), "use only this many training images (smoke runs)"),
    "cnn_mistakes": Spec(5, int_in(1, MAX_MISTAKES), f"test images shown in the mistakes figure (1..{MAX_MISTAKES})"),
    "cnn_precision": Spec("auto", choice("auto", "float32", "bfloat16"),
                          "torch arithmetic: auto = bf16 autocast + channels_last where native, else float32; "
                          "float32 = bit-identical to a textbook loop"),
    "cnn_full_network_repeats": Spec(None, optional(int_in(1, MAX_SEED_REPEATS)),
                                     "of the seed_repeats seeds, only the first N also train the full-network "
                                     "baselines (scratch, finetune); the later ones train XGBoost and the probes "
                                     f"alone (1..{MAX_SEED_REPEATS}; null = every seed)"),
}


SECTIONS = (("", "Shared"), ("mlp_", "Section 6: MLPs on European cities"), ("cnn_", "Section 7: real vs fake images"))
PROFILE_HEADER = """\
# The course defaults: every parameter ex4 knows, with the value the exercise and the seed report use.
# Copy this file and change what you like: `ex4 run NAME --params FILE`, `nox -s report -- --params FILE`.
# Generated from ex4.params.SCHEMA (`python -m ex4.params > params/default.yml`); do not edit by hand.
"""


def _section(name: str) -> str:
    return next(title for prefix, title in reversed(SECTIONS) if name.startswith(prefix))


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def default_profile() -> str:
    """The text of params/default.yml: every parameter of SCHEMA, in order, under its help text."""
    lines = [PROFILE_HEADER.rstrip("\n")]
    section = None
    for name, spec in SCHEMA.items():
        if _section(name) != section:
            section = _section(name)
            lines += ["", f"# --- {section} ---"]
        lines += [f"# {spec.doc}", f"{name}: {_yaml_value(spec.default)}"]
    return "\n".join(lines) + "\n"


def defaults() -> dict[str, Any]:
    return {name: _copy(spec.default) for name, spec in SCHEMA.items()}


def _copy(value: Any) -> Any:
    return [_copy(item) for item in value] if isinstance(value, list) else value


def _unknown(name: str, source: str) -> Ex4Error:
    close = difflib.get_close_matches(name, SCHEMA, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return Ex4Error(f"{source}: unknown parameter '{name}'{hint}")


def show(value: Any, limit: int = 60) -> str:
    """A value for an error line: its repr, cut to `limit` characters (a 10**5000 has no printable repr)."""
    try:
        text = repr(value)
    except ValueError:  # int too large to print (Python's 4300-digit limit)
        text = f"<an integer of about {value.bit_length() * 0.30103:.0f} digits>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_value(name: str, value: Any, source: str) -> Any:
    if name not in SCHEMA:
        raise _unknown(name, source)
    try:
        return SCHEMA[name].check(value)
    except ValueError as error:
        raise Ex4Error(f"{source}: parameter '{name}' = {show(value)}: {error}") from None


def _check_together(values: Mapping[str, Any], source: str) -> None:
    if values["seed"] + values["seed_repeats"] - 1 > MAX_SEED:
        raise Ex4Error(f"{source}: parameters 'seed' = {values['seed']} and 'seed_repeats' = "
                       f"{values['seed_repeats']}: the last seed, seed + seed_repeats - 1, would exceed {MAX_SEED:,}")
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
    networks = [("mlp_depth/mlp_width", values["mlp_depth"], values["mlp_width"]),
                ("mlp_gradient_depth/mlp_gradient_width", values["mlp_gradient_depth"], values["mlp_gradient_width"]),
                *((f"mlp_shapes item {depth, width}", depth, width) for depth, width in values["mlp_shapes"])]
    for names, depth, width in networks:
        if depth * width * width > MAX_HIDDEN_WEIGHTS:
            raise Ex4Error(f"{source}: parameter {names} = {depth} x {width}: depth x width^2 = "
                           f"{depth * width * width:,} hidden weights; the limit is {MAX_HIDDEN_WEIGHTS:,}")
    too_deep = [layer for layer in values["mlp_gradient_layers"] if layer >= values["mlp_gradient_depth"]]
    if too_deep:
        raise Ex4Error(f"{source}: parameter 'mlp_gradient_layers' = {values['mlp_gradient_layers']}: "
                       f"layer {too_deep[0]} >= mlp_gradient_depth {values['mlp_gradient_depth']}")


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags, no code), minus two silent surprises of YAML 1.1.

    - A key given twice in one mapping is an error (PyYAML keeps the last one without a word).
    - An integer with a leading zero (`seed: 010`) is an error: YAML 1.1 reads it as octal (8), YAML 1.2
      and every human as ten. Sexagesimal integers (`1:30` read as 90) are refused for the same reason.
    Errors carry the line, so a profile's line is named.
    """


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hashable = hash(key) is not None
        except TypeError:
            hashable = False
        if hashable and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {show(key)} appears twice (first on line {seen[key] + 1}); keep one",
                key_node.start_mark)
        if hashable:
            seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


def _construct_int(loader: StrictLoader, node: yaml.ScalarNode) -> int:
    text = str(node.value).replace("_", "").lstrip("+-")
    if len(text) > 1 and text[0] == "0" and text[1:2] not in ("x", "b"):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r}: a leading zero makes YAML 1.1 read an octal number "
            f"({int(text, 8) if set(text) <= set('01234567') else '?'}); write it without the leading zero "
            "(or quote it)", node.start_mark)
    if ":" in text:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r}: YAML 1.1 reads this as a base-60 number; quote it or write a plain "
            "number", node.start_mark)
    if len(text) > 100:
        raise yaml.constructor.ConstructorError(None, None, f"an integer of {len(text)} digits", node.start_mark)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(text: str, source: str) -> Any:
    """YAML text through `StrictLoader`; Ex4Error naming `source` (and the line) for anything wrong."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        kind = "YAML error" if isinstance(error, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise Ex4Error(f"{source}{line}: {kind}: {error.problem or error.context}") from None
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        raise Ex4Error(f"{source}: not a readable YAML text ({type(error).__name__})") from None


def read_profile(path: Path | str) -> dict[str, Any]:
    """Read a YAML profile (a flat mapping of parameter names) without applying it."""
    from ex4.data.checks import decode_text, read_bytes

    path = Path(path)
    if not path.is_file():
        raise Ex4Error(f"{path}: parameter file not found" if not path.exists() else
                       f"{path}: parameter file must be a file, not a directory")
    text = decode_text(path, read_bytes(path, limit=MAX_PROFILE_BYTES)) if path.stat().st_size else ""
    loaded = load_yaml(text, str(path))
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
    value = load_yaml(raw, f"--set {name.strip()}") if raw.strip() else None
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


if __name__ == "__main__":
    print(default_profile(), end="")
