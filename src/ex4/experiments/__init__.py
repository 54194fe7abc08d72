"""Experiments: one function each, from validated parameters to a stored result.

`run(name, values)` is what the CLI and the chapters call. It resolves the data directory, fingerprints the
data files and asks the store, which returns the stored outcome or computes it once.

Where the computing happens is the executor's business (`ex4.executor`, parameters `executor` and
`dask_scheduler`). An experiment made of independent stored runs (Section 6 on the kernel engine, and Section 7,
whose runs depend on a stored surrogate backbone and stored features) hands its missing runs to
`Context.executor` itself and assembles its result from the store; any other experiment (Section 6 on the torch
engine) is, under `executor: dask`, one task on the cluster that computes and stores the whole result on a worker.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ex4.errors import Ex4Error
from ex4.hashing import file_digest, fingerprint_digests
from ex4.store import Outcome, Store


class UndeclaredParameter(Ex4Error):
    """An experiment read a parameter it does not declare: its store key would not change with that value."""


class DeclaredParams(Mapping[str, Any]):
    """The parameters an experiment declares, read-only; any other name raises `UndeclaredParameter`.

    `get`, `in` and `[]` all raise on an undeclared name (a silent default would hide the missing declaration),
    so a result can never depend on a parameter outside its store key.
    """

    def __init__(self, experiment: str, values: Mapping[str, Any], declared: tuple[str, ...]):
        self._experiment = experiment
        self._values = {name: values[name] for name in declared}

    def _check(self, name: str) -> None:
        if name not in self._values:
            raise UndeclaredParameter(
                f"experiment '{self._experiment}' read parameter '{name}', which it does not declare; add it to "
                f"the experiment's params so that it enters the store key (declared: {', '.join(self._values)})")

    def __getitem__(self, name: str) -> Any:
        self._check(name)
        return self._values[name]

    def get(self, name: str, default: Any = None) -> Any:
        self._check(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        self._check(str(name))
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"DeclaredParams({self._experiment!r}, {self._values!r})"


@dataclass
class Context:
    """Everything an experiment's compute function may use."""

    params: DeclaredParams  # the parameters the experiment declares, and no others
    data_dir: Path
    store: Store
    # the data fingerprint of the run's store key; pieces stored along the way use it, and loaders that
    # hashed what they read check against it (see `run`)
    data_fingerprint: str | None = None
    executor: Any = None  # ex4.executor.LocalExecutor or DaskExecutor: where independent runs are computed


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    data: str  # "europe" or "faces"
    params: tuple[str, ...]  # the parameter names its results depend on (and so its store key)
    code: tuple[str, ...]  # modules whose source defines its results
    compute: Callable[[Context], tuple[dict[str, Any], dict[str, Any]]]
    # the store-key parameters when a name alone is not enough (e.g. `cnn_weights: auto` -> which weights)
    key_params: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # True when, under these parameters, compute() sends its own runs to Context.executor (so the experiment
    # itself runs on the client); otherwise a distributed executor computes the whole experiment as one task
    splits_runs: Callable[[dict[str, Any]], bool] | None = None


def registry() -> dict[str, Experiment]:
    from ex4.experiments import section6, section7

    return {experiment.name: experiment for experiment in (*section6.EXPERIMENTS, *section7.EXPERIMENTS)}


def data_dir_and_files(kind: str, values: dict[str, Any]) -> tuple[Path, list[Path]]:
    from ex4.data import resolve_europe_dir, resolve_faces_dir
    from ex4.data.europe import europe_files
    from ex4.data.faces import faces_files

    if kind == "europe":
        folder = resolve_europe_dir(values["europe_dir"])
        return folder, europe_files(folder)
    folder = resolve_faces_dir(values["faces_dir"])
    files = faces_files(folder)
    manifest = folder / "manifest.json"  # its description and held-out digits enter the result
    return folder, files + ([manifest] if manifest.is_file() else [])


def run(name: str, values: dict[str, Any], store: Store | None = None) -> Outcome:
    """Results of experiment `name` under resolved parameters `values` (from the store when present)."""
    from ex4.executor import executor_for

    experiments = registry()
    if name not in experiments:
        import difflib

        close = difflib.get_close_matches(name, experiments, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise Ex4Error(f"unknown experiment '{name}'{hint}; known: {', '.join(experiments)}")
    experiment = experiments[name]
    store = store or Store()
    folder, files = data_dir_and_files(experiment.data, values)
    key_params = (experiment.key_params(values) if experiment.key_params  # data enter the key by content
                  else {param: values[param] for param in experiment.params})
    before = {path: file_digest(path) for path in files}
    data_fingerprint = fingerprint_digests(before.items(), root=folder)  # = fingerprint_files(files, root=folder)
    code = (*experiment.code, experiment.compute.__module__)
    executor = executor_for(values.get("executor", "local"), values.get("dask_scheduler", "local:1"))
    if executor.distributed:
        executor.check_store(store.root)
        if not (experiment.splits_runs and experiment.splits_runs(values)):
            key = store.key_for(experiment.name, key_params, data_fingerprint, code)
            found = store.load(key)
            if found is None:
                from ex4.executor import Task

                local_values = {**values, "executor": "local"}
                executor.compute([Task(key, compute_on_worker, (name, local_values, str(store.root)), name)],
                                 progress=name)
                found = store.load(key)
                if found is None:
                    raise Ex4Error(f"{name}: the cluster reported result {key} done, but the store at {store.root} "
                                   "does not hold it; is the store on a filesystem every worker shares?")
                found.hit = False
            log_outcome(found)
            return found
    context = Context(params=DeclaredParams(experiment.name, values, experiment.params), data_dir=folder,
                      store=store, data_fingerprint=data_fingerprint, executor=executor)
    outcome = store.get_or_compute(
        experiment.name,
        key_params,
        data_fingerprint,
        code,
        lambda: unchanged_data(experiment.compute(context), before),
        extra_meta={"data_dir": str(folder)},
    )
    log_outcome(outcome)
    return outcome


def run_seeds(names: str | Sequence[str], values: dict[str, Any], store: Store | None = None
              ) -> dict[str, list[Outcome]]:
    """Results of each experiment in `names` for every seed of `values` (`seed`, …, `seed` + `seed_repeats` − 1),
    in seed order: one `run` per seed, each under the key that experiment has for that seed alone. An experiment
    that is not repeated over seeds (`ex4.experiments.seeds.repeated`) gives one result, for the first seed.
    Section 7's `cnn` gives one result per seed too, but a seed past the first `cnn_full_network_repeats` runs
    without the full-network baselines (scratch, finetune), and a seed left with no baseline gives none
    (`ex4.experiments.seeds.seed_values`).

    With `seed_repeats` 1 this is `run` itself. With more, the missing Section 6 runs of every seed are trained
    first, together (`ex4.experiments.seeds.prefetch`), and so are the missing Section 7 runs of every
    seed (`prefetch_cnn`); each seed's result is then assembled from them."""
    from ex4.experiments.seeds import prefetch, prefetch_cnn, repeated, seed_values, seeds_of

    names = [names] if isinstance(names, str) else list(names)
    seeds = seeds_of(values)
    if len(seeds) == 1:
        return {name: [run(name, values, store)] for name in names}
    store = store or Store()
    prefetch(names, values, store)
    prefetch_cnn(names, values, store)
    return {name: [run(name, p, store) for p in (seed_values(name, values, seed) for seed in seeds) if p is not None]
            if repeated(name) else [run(name, values, store)] for name in names}


def unchanged_data(computed: Any, before: dict[Path, str]) -> Any:
    """`computed`, once every data file is checked to still hold the content it had when the run began (the
    content its store key names); Ex4Error naming the first changed file otherwise, so that nothing computed
    from other data is stored under that key."""
    for path, digest in before.items():
        try:
            same = file_digest(path) == digest
        except OSError as error:
            raise Ex4Error(f"{path}: data file vanished or became unreadable during the run "
                           f"({error.strerror or error}); nothing was stored") from None
        if not same:
            raise Ex4Error(f"{path}: data file changed during the run; nothing was stored; run again once the "
                           "data stops changing")
    return computed


def compute_on_worker(name: str, values: dict[str, Any], store_root: str) -> str:
    """A Dask task: compute (or find) a whole experiment's result in the shared store; returns its key."""
    return run(name, values, Store(store_root)).key


def log_outcome(outcome: Outcome) -> None:
    """Append a line to $EX4_BUILD_LOG (set by the renderer) so the appendix can report cache hits."""
    log_path = os.environ.get("EX4_BUILD_LOG")
    if not log_path:
        return
    record = {"experiment": outcome.experiment, "key": outcome.key, "hit": outcome.hit,
              "wall_time": round(outcome.wall_time, 3), "time": time.time()}
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
