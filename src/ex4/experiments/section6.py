"""Section 6: every MLP experiment of the exercise, each a function from parameters to a stored result.

All of them train through `ex4.train.mlp_engine.train_runs` (on the engine `mlp_engine` resolves to, which
the store key records), so runs that share an architecture and batch
order (the learning rates of `mlp-lr`, raw vs sine input in `mlp-implicit`, plain vs residual in
`mlp-gradients`) train as one batched model. Every run of an experiment starts from
`initial_model(arch, seed)` and sees the same seeded batch order, so the runs differ only in what the
experiment varies.

Result (JSON) of every experiment:
  {"experiment", "n_train", "n_classes", "class_names", "seed",
   "runs": [{"label", "params": {lr, batch_size, epochs, optimizer, depth, width, n_classes, batch_norm,
             residual, implicit}, "arch": build_mlp kwargs, "final": {train_loss, train_acc, val_loss,
             val_acc, test_loss, test_acc}, "history": {same names: one value per epoch},
             "diverged", "diverged_epoch", "iterations_per_epoch", "last_batch", ...}], ...}
with None for every metric from the epoch a run diverged. Experiment-specific fields are listed on each
compute function. Tensors: `models` (label -> MLP state dict) and `class_grids` (label -> uint8 [grid, grid]
predicted class over `grid_extent`, rows = latitude) where figures need them, `step_losses` for
`mlp-batch-size`.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import torch

from ex4.errors import Ex4Error
from ex4.experiments import Context, Experiment
from ex4.store import json_safe
from ex4.models.mlp import RAW_FEATURES, Architecture, input_width, load_mlp
from ex4.train.mlp_engine import RunResult, RunSpec, Splits, train_runs

CODE = ("ex4.models.mlp", "ex4.train.mlp_engine", "ex4.train.mlp_kernel",
        "ex4.models.regions")  # data enter the key by content
BASE = ("seed", "mlp_lr", "mlp_optimizer", "mlp_batch_size", "mlp_depth", "mlp_width", "mlp_batch_norm",
        "mlp_train_subset", "mlp_engine", "mlp_compile", "device")


# ---- shared steps ----------------------------------------------------------------------------------------------


def load_splits(ctx: Context) -> tuple[Splits, dict[str, Any]]:
    """The Europe data as tensors on the chosen device (train subset applied) and the result header.

    Seven experiments, over N seeds, each ask for the splits; reading and checking the CSVs costs ~0.3 s a time.
    So the splits are kept for the data's content (`ctx.data_fingerprint`, checked against what was read) and
    the parameters that shape them: without a train subset they do not depend on the seed, and every seed and
    experiment of a process shares one copy (read-only: training copies what it updates)."""
    from ex4.train.device import pick_device

    device = pick_device(ctx.params["device"])
    subset = ctx.params.get("mlp_train_subset")
    memo = None
    if ctx.data_fingerprint is not None:
        memo = (str(ctx.data_dir), ctx.data_fingerprint, str(device), subset,
                None if subset is None else int(ctx.params["seed"]))
    with _SPLITS_LOCK:
        found = _SPLITS.get(memo) if memo is not None else None
    if found is None:
        found = _read_splits(ctx, device, subset)
        if memo is not None:
            with _SPLITS_LOCK:
                _SPLITS[memo] = found
                while len(_SPLITS) > _SPLITS_KEPT:
                    _SPLITS.pop(next(iter(_SPLITS)))
    splits, n_classes, class_names = found
    header = {"n_train": int(splits.y["train"].shape[0]), "n_classes": n_classes,
              "class_names": list(class_names), "seed": int(ctx.params["seed"]),
              "engine": training_engine(ctx.params)}
    return splits, header


# splits by (data folder, data fingerprint, device, train subset, seed when a subset applies): see load_splits
_SPLITS: dict[tuple, tuple[Splits, int, tuple[str, ...]]] = {}
_SPLITS_KEPT = 4
_SPLITS_LOCK = threading.Lock()


def _read_splits(ctx: Context, device: Any, subset: int | None) -> tuple[Splits, int, tuple[str, ...]]:
    from ex4.data.europe import load_europe

    data = load_europe(ctx.data_dir)
    if ctx.data_fingerprint is not None and data.fingerprint != ctx.data_fingerprint:
        raise Ex4Error(f"{ctx.data_dir}: the data files changed between being fingerprinted for the store key "
                       "and being read; run again once the data stops changing")
    arrays = {split: (part.x, part.y) for split, part in data.splits().items()}
    if subset is not None and subset < len(data.train.y):
        generator = torch.Generator().manual_seed(int(ctx.params["seed"]))
        rows = torch.randperm(len(data.train.y), generator=generator)[:subset].numpy()
        arrays["train"] = (data.train.x[rows], data.train.y[rows])
    return Splits.from_arrays(arrays, data.n_classes, device), data.n_classes, tuple(data.class_names)


def _with_base(p: dict[str, Any], changes: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """`changes`, completed from the base setting; a field that `changes` sets is not read (an experiment that
    varies it need not declare the base parameter)."""
    return {**{field: p[name] for field, name in names.items() if field not in changes}, **changes}


def base_arch(p: dict[str, Any], n_classes: int, **changes: Any) -> Architecture:
    fields = _with_base(p, changes, {"depth": "mlp_depth", "width": "mlp_width", "batch_norm": "mlp_batch_norm"})
    return Architecture(n_classes=n_classes, **fields)


def base_spec(p: dict[str, Any], label: str, arch: Architecture, epochs: int, **changes: Any) -> RunSpec:
    fields = _with_base(p, changes, {"lr": "mlp_lr", "batch_size": "mlp_batch_size", "optimizer": "mlp_optimizer"})
    return RunSpec(label=label, arch=arch, epochs=epochs, **fields)


def check_batch_norm_batch(batch_norm: bool, batch_size: int, parameter: str) -> None:
    if batch_norm and batch_size == 1:
        raise Ex4Error(f"parameter '{parameter}' = 1: this experiment uses batch norm, which needs batches of "
                       "at least 2 samples")


def run_entry(result: RunResult, **extra: Any) -> dict[str, Any]:
    entry = {
        "label": result.spec.label,
        "params": result.spec.params(),
        "arch": result.spec.arch.as_dict(),
        "final": result.final,
        "history": result.history,
        "diverged": result.diverged,
        "diverged_epoch": result.diverged_epoch,
        "iterations_per_epoch": result.iterations_per_epoch,
        "last_batch": result.last_batch,
        **extra,
    }
    return json_safe(entry)


def training_engine(p: dict[str, Any]) -> str:
    """The engine that will train ("torch" or "kernel"): `mlp_engine` resolved for the chosen device (and
    the device). The engines differ by float32 rounding, so the store key carries this."""
    from ex4.train.device import pick_device
    from ex4.train.mlp_engine import resolve_engine

    try:
        return resolve_engine(p["mlp_engine"], pick_device(p["device"]))
    except ValueError as error:
        raise Ex4Error(f"parameter 'mlp_engine' = {p['mlp_engine']!r}: {error}") from None


def _engine_identity(engine: str) -> dict[str, Any]:
    """The engine for store keys; for the kernel also numba's version, whose compiler decides its rounding."""
    if engine != "kernel":
        return {"mlp_engine": engine}
    from ex4.versions import package_versions

    return {"mlp_engine": engine, "numba": package_versions("numba")["numba"]}


def _key_params(names: tuple[str, ...]):
    """Store-key parameters of an experiment: its names, with `mlp_engine` as the engine actually used."""
    def key_params(values: dict[str, Any]) -> dict[str, Any]:
        from ex4.train.device import pick_device

        # the device actually used, not "auto": the torch engine computes other bits on CUDA than on the CPU
        return {**{name: values[name] for name in names}, "device": pick_device(values["device"]).type,
                **_engine_identity(training_engine(values))}

    return key_params


# what a stored run depends on besides its settings: the engine and model code, and this module (the splits)
RUN_CODE = ("ex4.models.mlp", "ex4.train.mlp_engine", "ex4.train.mlp_kernel", __name__)


def _train(specs: list[RunSpec], splits: Splits, p: dict[str, Any], name: str, ctx: Context) -> list[RunResult]:
    """Train `specs`, reusing identical runs that another experiment already stored.

    Experiments share runs: the long run without batch norm is `mlp-epochs`'s run and half of `mlp-batchnorm`,
    the raw-coordinates model of `mlp-implicit` is the base-shape model of `mlp-shapes`. On the kernel engine a
    run's numbers do not depend on the runs it trains beside, so each run is stored on its own ("mlp-run",
    keyed by everything that shapes it but its label) and trained once. The torch engine batches runs in ways
    that change their rounding, so there every experiment trains its own.

    Locally the missing runs train together (the kernel shares them out over the cores); on a Dask executor
    each missing run is one task that trains and stores it on a worker, and the results are read back from
    the store."""
    check_run_sizes(specs, int(splits.y["train"].shape[0]), name)
    engine = training_engine(p)
    seed = int(p["seed"])
    if engine != "kernel":
        return train_runs(specs, splits, seed=seed, progress=name, engine=engine, compile_mode=p["mlp_compile"])
    from ex4.data.europe import europe_files
    from ex4.store import fingerprint_files

    data = ctx.data_fingerprint or fingerprint_files(europe_files(ctx.data_dir), root=ctx.data_dir)
    engine_identity = _engine_identity(engine)
    identities = [_run_identity(spec, p, engine_identity) for spec in specs]
    keys = [ctx.store.key_for("mlp-run", identity, data, RUN_CODE) for identity in identities]
    stored = [ctx.store.load(key) for key in keys]
    missing = {keys[i]: (specs[i], identities[i]) for i, outcome in enumerate(stored) if outcome is None}
    results: list[RunResult] = [None] * len(specs)  # type: ignore[list-item]
    if missing and ctx.executor is not None and ctx.executor.distributed:
        compute_run_tasks(ctx.executor, run_tasks(missing, p, ctx.data_dir, data, ctx.store), ctx.store, name)
        stored = [outcome or ctx.store.load(key) for outcome, key in zip(stored, keys)]
    elif missing:
        trained = iter(train_and_store(missing, splits, seed, data, ctx.store, name))
        results = [None if outcome is not None else next(trained) for outcome in stored]  # type: ignore[misc]
    for index, outcome in enumerate(stored):
        if outcome is not None:
            results[index] = _run_from_record(specs[index], outcome.result, outcome.tensors)
    return results


def train_and_store(missing: dict[str, tuple[RunSpec, dict[str, Any]]], splits: Splits, seed: int, data: str,
                    store: Any, progress: str) -> list[RunResult]:
    """Train the `missing` runs (store key -> (spec, identity)) in this process, in one kernel call, and store
    each as "mlp-run"; returns their results in order."""
    return train_and_store_seeds([(missing, splits, seed)], data, store, progress)[0]


def train_and_store_seeds(work: list[tuple[dict[str, tuple[RunSpec, dict[str, Any]]], Splits, int]], data: str,
                          store: Any, progress: str) -> list[list[RunResult]]:
    """`train_and_store` for several seeds in ONE kernel call: `work` holds (missing runs, splits, seed) per
    seed. The groups of every seed share out the cores together, so the cores stay busy until the last group
    of the last seed, and each run is stored as soon as its group has finished. Every run trains in the group it
    has when its seed trains alone (same runs, same order, its seed's weights, batch order and splits), so its
    numbers are those of its seed alone. Returns each seed's results in the order of its `missing`."""
    specs: list[RunSpec] = []
    seeds: list[int] = []
    split_of: list[Splits] = []
    entries: list[tuple[int, RunSpec, dict[str, Any]]] = []  # (seed's index in `work`, spec, identity)
    for position, (missing, splits, seed) in enumerate(work):
        for spec, identity in missing.values():
            specs.append(spec)
            seeds.append(int(seed))
            split_of.append(splits)
            entries.append((position, spec, identity))
    keys = [key for missing, _, _ in work for key in missing]
    trained = specs
    if len({spec.label for spec in specs}) != len(specs):  # runs of several experiments or seeds: labels repeat
        trained = [dataclasses.replace(spec, label=key) for key, spec in zip(keys, specs)]

    def store_run(index: int, result: RunResult) -> None:
        identity = entries[index][2]
        store.get_or_compute("mlp-run", identity, data, RUN_CODE, lambda: _run_record(result))

    results = train_runs(trained, split_of, seeds, progress=progress, engine="kernel", done=store_run)
    out: list[list[RunResult]] = [[] for _ in work]
    for result, (position, spec, _) in zip(results, entries):
        out[position].append(dataclasses.replace(result, spec=spec))
    return out


def run_tasks(missing: dict[str, tuple[RunSpec, dict[str, Any]]], p: Any, data_dir: Path, data: str,
              store: Any, label: str = "") -> list:
    """One Dask task per missing run (store key -> (spec, identity)): `train_run_task` on a worker."""
    from ex4.executor import Task

    split_params = {name: p[name] for name in SPLIT_PARAMS}
    return [Task(key, train_run_task, (spec, split_params, str(data_dir), data, str(store.root), identity, "kernel"),
                 f"{label}{spec.label}") for key, (spec, identity) in missing.items()]


def compute_run_tasks(executor: Any, tasks: list, store: Any, progress: str) -> None:
    """Run the tasks on the cluster; Ex4Error when one reported done is not in the store (not shared)."""
    executor.compute(tasks, progress=progress)
    for task in tasks:
        if store.load(task.key) is None:
            raise Ex4Error(f"{progress}: run {task.label} was reported done by the cluster but is not in the store "
                           f"at {store.root}; is it on a filesystem every worker shares?")


def check_run_sizes(specs: list[RunSpec], n_train: int, name: str) -> None:
    """Ex4Error before training when a run would take too long or too much memory: epochs x training rows over
    `params.MAX_ROW_PASSES`, or activations of one step (rows per batch x depth x width) over
    `params.MAX_ACTIVATIONS`. Only here are the rows known (the parameters alone cannot say)."""
    from ex4.params import MAX_ACTIVATIONS, MAX_ROW_PASSES

    for spec in specs:
        if spec.epochs * n_train > MAX_ROW_PASSES:
            raise Ex4Error(f"{name}: run '{spec.label}' would train {spec.epochs:,} epochs x {n_train:,} training rows "
                           f"= {spec.epochs * n_train:,} row passes; the limit is {MAX_ROW_PASSES:,} per run (lower "
                           "its epochs parameter or set mlp_train_subset)")
        rows = min(spec.batch_size, n_train)
        activations = rows * spec.arch.depth * max(spec.arch.width, spec.arch.n_classes)
        if activations > MAX_ACTIVATIONS:
            raise Ex4Error(f"{name}: run '{spec.label}' would hold {rows:,} rows x {spec.arch.depth:,} layers x "
                           f"{max(spec.arch.width, spec.arch.n_classes):,} units = {activations:,} activations per "
                           f"step; the limit is {MAX_ACTIVATIONS:,} (lower its batch size, depth or width)")


# the parameters that decide the splits a run trains on (see load_splits)
SPLIT_PARAMS = ("seed", "device", "mlp_train_subset", "mlp_engine")
_WORKER_SPLITS: dict[tuple, Splits] = {}


# one training at a time per worker process: `initial_model` seeds torch's global generator and then draws the
# initial weights from it, so two runs trained at once in a worker's threads could interleave their draws and give
# a run other weights than its seed's
_TRAINING = threading.Lock()


def train_run_task(spec: RunSpec, split_params: dict[str, Any], data_dir: str, data: str, store_root: str,
                   identity: dict[str, Any], engine: str) -> str:
    """A Dask task: train one run and store it as "mlp-run" (unless it is stored already); returns its key.

    The store's lock is taken before training, so two clients sweeping over one store never train a run twice.
    The splits are loaded once per worker process and data fingerprint."""
    from ex4.store import Store

    store = Store(store_root)
    memo = (data_dir, data, *(repr(split_params[name]) for name in SPLIT_PARAMS))
    if memo not in _WORKER_SPLITS:
        _WORKER_SPLITS.clear()
        _WORKER_SPLITS[memo] = load_splits(Context(params=dict(split_params), data_dir=Path(data_dir),
                                                   store=store))[0]
    splits = _WORKER_SPLITS[memo]

    def compute() -> tuple[dict[str, Any], dict[str, Any]]:
        with _TRAINING:
            [result] = train_runs([spec], splits, seed=int(split_params["seed"]), progress=False, engine=engine)
        return _run_record(result)

    return store.get_or_compute("mlp-run", identity, data, RUN_CODE, compute).key


def _run_identity(spec: RunSpec, p: dict[str, Any], engine_identity: dict[str, Any]) -> dict[str, Any]:
    """Everything that decides a run's numbers: its settings (not its label), the seed, the split, the engine."""
    return {**spec.params(), "track_layers": list(spec.track_layers), "record_step_losses": spec.record_step_losses,
            "seed": int(p["seed"]), "mlp_train_subset": p["mlp_train_subset"], **engine_identity}


def _run_record(result: RunResult) -> tuple[dict[str, Any], dict[str, Any]]:
    record = json_safe({
        "history": result.history, "diverged": result.diverged, "diverged_epoch": result.diverged_epoch,
        "iterations_per_epoch": result.iterations_per_epoch, "last_batch": result.last_batch,
        "grad_norms": {str(layer): values for layer, values in result.grad_norms.items()},
        "epoch_seconds": result.epoch_seconds, "compile_seconds": result.compile_seconds,
    })
    tensors = {"state_dict": result.state_dict}
    if result.step_losses is not None:
        tensors["step_losses"] = result.step_losses
    return record, tensors


def _run_from_record(spec: RunSpec, record: dict[str, Any], tensors: dict[str, Any]) -> RunResult:
    return RunResult(spec=spec, history=record["history"], diverged=record["diverged"],
                     diverged_epoch=record["diverged_epoch"], iterations_per_epoch=record["iterations_per_epoch"],
                     last_batch=record["last_batch"], state_dict=tensors["state_dict"],
                     step_losses=tensors.get("step_losses"),
                     grad_norms={int(layer): values for layer, values in record["grad_norms"].items()},
                     epoch_seconds=record["epoch_seconds"], compile_seconds=record["compile_seconds"])


def _extent(splits: Splits) -> list[float]:
    from ex4.models.regions import data_extent

    return data_extent(*(x.cpu() for x in splits.x.values()))


def _regions_and_grid(result: RunResult, extent: list[float], grid: int, with_class_grid: bool):
    """(region bound, regions counted, class grid or None) of a trained run."""
    from ex4.models.regions import class_grid, count_activation_regions, region_upper_bound

    arch = result.spec.arch
    model = load_mlp(arch.as_dict(), result.state_dict)
    bound = region_upper_bound(input_width(arch.implicit), arch.hidden_widths())
    counted = count_activation_regions(model, extent, grid)
    return bound, counted, class_grid(model, extent, grid) if with_class_grid else None


# ---- the experiments -------------------------------------------------------------------------------------------


def _extra_rates(p: dict[str, Any]) -> list[float]:
    main = {float(lr) for lr in p["mlp_learning_rates"]}
    return [float(lr) for lr in p["mlp_extra_learning_rates"] if float(lr) not in main]


def lr_specs(p: dict[str, Any], n_classes: int) -> list[RunSpec]:
    arch = base_arch(p, n_classes)
    rates = [float(lr) for lr in p["mlp_learning_rates"]] + _extra_rates(p)
    return [base_spec(p, f"lr={lr:g}", arch, p["mlp_epochs"], lr=lr) for lr in rates]


def compute_lr(ctx: Context) -> tuple[dict, dict]:
    """Base setting at each learning rate. Runs carry `"extra": true` for the extra rates (drawn dashed)."""
    p = ctx.params
    splits, header = load_splits(ctx)
    specs = lr_specs(p, splits.n_classes)
    results = _train(specs, splits, p, "mlp-lr", ctx)
    extra = set(_extra_rates(p))
    runs = [run_entry(result, extra=result.spec.lr in extra) for result in results]
    return {"experiment": "mlp-lr", **header, "runs": runs}, {}


def epochs_specs(p: dict[str, Any], n_classes: int) -> list[RunSpec]:
    return [base_spec(p, "base", base_arch(p, n_classes), p["mlp_long_epochs"])]


def compute_epochs(ctx: Context) -> tuple[dict, dict]:
    """The base setting for `mlp_long_epochs` epochs: train/val/test loss and accuracy per epoch."""
    p = ctx.params
    splits, header = load_splits(ctx)
    (result,) = _train(epochs_specs(p, splits.n_classes), splits, p, "mlp-epochs", ctx)
    return {"experiment": "mlp-epochs", **header, "runs": [run_entry(result)]}, {}


def batchnorm_specs(p: dict[str, Any], n_classes: int) -> list[RunSpec]:
    return [base_spec(p, label, base_arch(p, n_classes, batch_norm=flag), p["mlp_long_epochs"])
            for label, flag in (("without batch norm", False), ("with batch norm", True))]


def compute_batchnorm(ctx: Context) -> tuple[dict, dict]:
    """The base setting for `mlp_long_epochs` epochs without and with batch norm (before each ReLU)."""
    p = ctx.params
    check_batch_norm_batch(True, p["mlp_batch_size"], "mlp_batch_size")
    splits, header = load_splits(ctx)
    results = _train(batchnorm_specs(p, splits.n_classes), splits, p, "mlp-batchnorm", ctx)
    return {"experiment": "mlp-batchnorm", **header, "runs": [run_entry(r) for r in results]}, {}


def batch_size_specs(p: dict[str, Any], n_classes: int) -> list[RunSpec]:
    arch = base_arch(p, n_classes)
    return [base_spec(p, f"batch {size}", arch, epochs, batch_size=size, record_step_losses=True)
            for size, epochs in zip(p["mlp_batch_sizes"], p["mlp_epochs_per_batch_size"])]


def compute_batch_size(ctx: Context) -> tuple[dict, dict]:
    """Base setting at each batch size for its number of epochs.

    Runs add `steps` (optimisation steps taken); tensors `step_losses[label]` hold the training loss of every
    step (float32), `iterations_per_epoch` the number of batches an epoch takes."""
    p = ctx.params
    for size in p["mlp_batch_sizes"]:
        check_batch_norm_batch(p["mlp_batch_norm"], size, "mlp_batch_sizes")
    splits, header = load_splits(ctx)
    results = _train(batch_size_specs(p, splits.n_classes), splits, p, "mlp-batch-size", ctx)
    runs = [run_entry(r, steps=r.iterations_per_epoch * r.spec.epochs) for r in results]
    tensors = {"step_losses": {r.spec.label: r.step_losses.to(torch.float32) for r in results}}
    return {"experiment": "mlp-batch-size", **header, "runs": runs}, tensors


def _accuracy_key(run: dict[str, Any]) -> float:
    value = run["final"]["val_acc"]
    return -1.0 if value is None else value


def shapes_specs(p: dict[str, Any], n_classes: int) -> list[RunSpec]:
    return [base_spec(p, f"{depth}x{width}", Architecture(depth, width, n_classes,
                                                          batch_norm=p["mlp_shapes_batch_norm"]),
                      p["mlp_shapes_epochs"], batch_size=p["mlp_shapes_batch_size"])
            for depth, width in p["mlp_shapes"]]


def compute_shapes(ctx: Context) -> tuple[dict, dict]:
    """The depth x width grid with batch norm, `mlp_shapes_batch_size`, `mlp_shapes_epochs`.

    Runs add `region_bound` and `regions_counted` (distinct activation patterns over a
    `mlp_region_grid`-square mesh of the data's bounding box). Adds `best` and `worst` (labels, by final
    validation accuracy; a diverged run counts as worst), `depth_series` (labels at the base width, by depth)
    and `width_series` (labels at the base depth, by width), `grid_extent` and `grid`. Tensors: every model's
    state dict and the class grids of the best and the worst model."""
    p = ctx.params
    check_batch_norm_batch(p["mlp_shapes_batch_norm"], p["mlp_shapes_batch_size"], "mlp_shapes_batch_size")
    splits, header = load_splits(ctx)
    results = _train(shapes_specs(p, splits.n_classes), splits, p, "mlp-shapes", ctx)
    extent, grid = _extent(splits), int(p["mlp_region_grid"])
    runs = [run_entry(r) for r in results]
    ranked = sorted(range(len(runs)), key=lambda i: _accuracy_key(runs[i]))
    best, worst = runs[ranked[-1]]["label"], runs[ranked[0]]["label"]
    grids = {}
    for run, result in zip(runs, results):
        bound, counted, classes = _regions_and_grid(result, extent, grid, run["label"] in (best, worst))
        run["region_bound"], run["regions_counted"] = bound, counted
        if classes is not None:
            grids[run["label"]] = classes
    depth_series = sorted((r for r in runs if r["params"]["width"] == p["mlp_width"]),
                          key=lambda r: r["params"]["depth"])
    width_series = sorted((r for r in runs if r["params"]["depth"] == p["mlp_depth"]),
                          key=lambda r: r["params"]["width"])
    out = {"experiment": "mlp-shapes", **header, "runs": runs, "best": best, "worst": worst,
           "depth_series": [r["label"] for r in depth_series], "width_series": [r["label"] for r in width_series],
           "grid_extent": extent, "grid": grid}
    tensors = {"models": {r.spec.label: r.state_dict for r in results}, "class_grids": grids}
    return out, tensors


def gradients_specs(p: dict[str, Any], n_classes: int) -> list[RunSpec]:
    layers = tuple(int(layer) for layer in p["mlp_gradient_layers"])
    return [base_spec(p, label, Architecture(p["mlp_gradient_depth"], p["mlp_gradient_width"], n_classes,
                                             batch_norm=False, residual=residual),
                      p["mlp_gradient_epochs"], track_layers=layers)
            for label, residual in (("plain", False), ("residual", True))]


def compute_gradients(ctx: Context) -> tuple[dict, dict]:
    """A `mlp_gradient_depth` x `mlp_gradient_width` network without batch norm, plain and with residual
    connections, at the base learning rate, optimizer and batch size.

    Runs add `grad_norms`: {layer (str): [per epoch: mean over the epoch's batches of the squared L2 norm of
    that hidden layer's weight gradient]} for the layers in `mlp_gradient_layers` (0 = the input layer)."""
    p = ctx.params
    splits, header = load_splits(ctx)
    layers = tuple(int(layer) for layer in p["mlp_gradient_layers"])
    results = _train(gradients_specs(p, splits.n_classes), splits, p, "mlp-gradients", ctx)
    runs = [run_entry(r, grad_norms={str(layer): r.grad_norms[layer] for layer in layers}) for r in results]
    return {"experiment": "mlp-gradients", **header, "runs": runs, "layers": list(layers)}, {}


def implicit_specs(p: dict[str, Any], n_classes: int) -> list[RunSpec]:
    return [base_spec(p, label, base_arch(p, n_classes, batch_norm=p["mlp_shapes_batch_norm"], implicit=implicit),
                      p["mlp_shapes_epochs"], batch_size=p["mlp_shapes_batch_size"])
            for label, implicit in (("raw coordinates", False), ("sine features", True))]


def compute_implicit(ctx: Context) -> tuple[dict, dict]:
    """Base depth and width on raw coordinates vs on the 20 sine features, with the `mlp-shapes` training
    setting (batch norm, batch size, epochs).

    Runs add `region_bound` (input dimension 2 or 20) and `regions_counted` over the 2-D mesh; for the sine
    model a pattern can cover several separate pieces of the map, and the bound counts patterns in the
    20-dimensional feature space. Tensors: both models and both class grids; adds `grid_extent`, `grid`."""
    p = ctx.params
    check_batch_norm_batch(p["mlp_shapes_batch_norm"], p["mlp_shapes_batch_size"], "mlp_shapes_batch_size")
    splits, header = load_splits(ctx)
    results = _train(implicit_specs(p, splits.n_classes), splits, p, "mlp-implicit", ctx)
    extent, grid = _extent(splits), int(p["mlp_region_grid"])
    runs, grids = [], {}
    for result in results:
        bound, counted, classes = _regions_and_grid(result, extent, grid, True)
        runs.append(run_entry(result, region_bound=bound, regions_counted=counted,
                              input_features=input_width(result.spec.arch.implicit)))
        grids[result.spec.label] = classes
    out = {"experiment": "mlp-implicit", **header, "runs": runs, "grid_extent": extent, "grid": grid,
           "raw_features": RAW_FEATURES}
    return out, {"models": {r.spec.label: r.state_dict for r in results}, "class_grids": grids}


SHAPES = ("seed", "mlp_lr", "mlp_optimizer", "mlp_shapes_batch_size", "mlp_shapes_epochs", "mlp_shapes_batch_norm",
          "mlp_train_subset", "mlp_region_grid", "mlp_engine", "mlp_compile", "device")


def _splits_runs(values: dict[str, Any]) -> bool:
    """On the kernel engine every run is stored on its own, so the experiment sends its runs to the executor."""
    return training_engine(values) == "kernel"


def _experiment(name: str, summary: str, names: tuple[str, ...], compute) -> Experiment:
    return Experiment(name, summary, "europe", names, CODE, compute, key_params=_key_params(names),
                      splits_runs=_splits_runs)


EXPERIMENTS = [
    _experiment("mlp-lr", "validation loss per epoch at each learning rate",
                (*BASE, "mlp_epochs", "mlp_learning_rates", "mlp_extra_learning_rates"), compute_lr),
    _experiment("mlp-epochs", "train/val/test loss and accuracy per epoch over a long run",
                (*BASE, "mlp_long_epochs"), compute_epochs),
    _experiment("mlp-batchnorm", "the long run without and with batch norm",
                tuple(name for name in (*BASE, "mlp_long_epochs") if name != "mlp_batch_norm"), compute_batchnorm),
    _experiment("mlp-batch-size", "accuracy per epoch, iterations per epoch and loss per step at each batch size",
                tuple(name for name in (*BASE, "mlp_batch_sizes", "mlp_epochs_per_batch_size")
                      if name != "mlp_batch_size"), compute_batch_size),
    _experiment("mlp-shapes", "the depth x width grid: accuracy, best and worst, linear regions",
                (*SHAPES, "mlp_shapes", "mlp_depth", "mlp_width"), compute_shapes),
    _experiment("mlp-gradients", "gradient norms per layer of a very deep network, plain and residual",
                ("seed", "mlp_lr", "mlp_optimizer", "mlp_batch_size", "mlp_train_subset", "mlp_gradient_depth",
                 "mlp_gradient_width", "mlp_gradient_epochs", "mlp_gradient_layers", "mlp_engine", "mlp_compile",
                 "device"),
                compute_gradients),
    _experiment("mlp-implicit", "sine features vs raw coordinates", (*SHAPES, "mlp_depth", "mlp_width"),
                compute_implicit),
]

# the runs each experiment trains, for the benchmark (same builders the compute functions use)
RUN_SPECS = {"mlp-lr": lr_specs, "mlp-epochs": epochs_specs, "mlp-batchnorm": batchnorm_specs,
             "mlp-batch-size": batch_size_specs, "mlp-shapes": shapes_specs, "mlp-gradients": gradients_specs,
             "mlp-implicit": implicit_specs}
