"""Runs over several seeds (`seed_repeats`): the same experiment for the seeds seed, seed+1, ..., seed+N-1.

A result over N seeds is N results of the experiment as it always was, one per seed, each stored under the key
it has with that seed alone (`seed` is in every key; `seed_repeats` is in none). So N = 1 is exactly the
book as it was, raising N computes only the new seeds, and lowering it reads what is stored.

On the kernel engine the runs of every seed are trained before any experiment asks for them (`prefetch`):
every missing run of the named Section 6 experiments, each stored as one "mlp-run" exactly as the experiment
itself would store it (`ex4.experiments.section6._train`), so the experiments then assemble their results from
the store. Locally, the missing runs of every seed train in one call of the engine, which shares the groups of
all seeds out over the cores (`ex4.experiments.section6.train_and_store_seeds`; each run still trains in the
group it has when its seed trains alone, so its numbers are that seed's alone); on a Dask executor every
missing run of every seed is one task of one sweep.

Section 7's `cnn` is repeated too, and its full-network baselines (scratch, finetune: every weight of ResNet18
trains) are the expensive part: `cnn_full_network_repeats` = K keeps them to the first K seeds, and the later
seeds' results hold only XGBoost and the probes (`seed_values`: the experiment run with `cnn_baselines`
filtered, an honest result under its own key). On a Dask executor every missing Section 7 run of every seed,
with the surrogate pretraining and feature extraction they need, goes out in one sweep first (`prefetch_cnn`);
locally the same sweep runs on one thread per core.

This module changes no stored result: Section 6's own module (whose source is part of every run's key) is
untouched by the seeds, so the keys of results stored before seeds existed still hold.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ex4.store import Store


def seeds_of(values: Mapping[str, Any]) -> list[int]:
    """The seeds a result is computed for: `seed`, `seed`+1, …, `seed` + `seed_repeats` − 1."""
    first, repeats = int(values["seed"]), int(values.get("seed_repeats", 1))
    return [first + offset for offset in range(repeats)]


def with_seed(values: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """`values` for one seed: that seed, and one repeat (what an experiment computes for one seed alone)."""
    return {**values, "seed": int(seed), "seed_repeats": 1}


def repeated(name: str) -> bool:
    """Whether experiment `name` is computed once per seed: Section 6's and Section 7's (both stored run by run)."""
    from ex4.experiments.section6 import RUN_SPECS

    return name in RUN_SPECS or name == "cnn"


def seed_values(name: str, values: Mapping[str, Any], seed: int) -> dict[str, Any] | None:
    """`values` for experiment `name` at one of the seeds of `values` (`with_seed`); for `cnn` at a seed past the
    first `cnn_full_network_repeats`, without the full-network baselines, and None when no baseline is left."""
    p = with_seed(values, seed)
    full = values.get("cnn_full_network_repeats")
    if name != "cnn" or full is None or seed - int(values["seed"]) < full:
        return p
    from ex4.experiments.section7 import FULL_NETWORK

    cheap = [baseline for baseline in p["cnn_baselines"] if baseline not in FULL_NETWORK]
    return {**p, "cnn_baselines": cheap} if cheap else None


def prefetch(names: Sequence[str], values: Mapping[str, Any], store: Store) -> int:
    """Train (and store, run by run) every missing run of the Section 6 experiments among `names` for every
    seed of `values`; returns how many runs were trained. Other experiments, and Section 6 on the torch
    engine (whose runs are not stored one by one), are left to `ex4.experiments.run`."""
    from ex4.experiments import data_dir_and_files
    from ex4.experiments import section6 as s6
    from ex4.executor import executor_for
    from ex4.hashing import file_digest, fingerprint_digests

    names = [name for name in names if name in s6.RUN_SPECS]
    if not names or s6.training_engine(values) != "kernel":
        return 0
    folder, files = data_dir_and_files("europe", dict(values))
    data = fingerprint_digests(((path, file_digest(path)) for path in files), root=folder)
    engine_identity = s6._engine_identity("kernel")
    executor = executor_for(values.get("executor", "local"), values.get("dask_scheduler", "local:1"))
    if executor.distributed:
        executor.check_store(store.root)
    tasks, work = [], []
    for seed in seeds_of(values):
        p = with_seed(values, seed)
        splits = None
        missing: dict[str, tuple[Any, dict[str, Any]]] = {}  # store key -> (spec, identity)
        for name in names:
            if _refused(name, p):
                continue  # the experiment stops with its own message when it is asked for
            if splits is None:
                from ex4.experiments import Context

                # loaded once for every seed when they do not depend on it (no train subset): see load_splits
                splits, _ = s6.load_splits(Context(params=dict(p), data_dir=folder, store=store,
                                                   data_fingerprint=data))
            specs = s6.RUN_SPECS[name](p, splits.n_classes)
            s6.check_run_sizes(specs, int(splits.y["train"].shape[0]), name)
            for spec in specs:
                identity = s6._run_identity(spec, p, engine_identity)
                key = store.key_for("mlp-run", identity, data, s6.RUN_CODE)
                if key not in missing and store.load(key) is None:
                    missing[key] = (spec, identity)
        if not missing:
            continue
        if executor.distributed:
            tasks += s6.run_tasks(missing, p, folder, data, store, label=f"seed {seed} ")
        else:
            work.append((missing, splits, seed))
    if tasks:
        s6.compute_run_tasks(executor, tasks, store, f"{len(seeds_of(values))} seeds")
    if work:  # every seed's missing runs in one kernel call: their groups share out the cores together
        s6.train_and_store_seeds(work, data, store, f"{len(work)} seed{'s' if len(work) > 1 else ''}")
    return len(tasks) + sum(len(missing) for missing, _, _ in work)


def _refused(name: str, p: Mapping[str, Any]) -> bool:
    """Whether the experiment refuses these parameters before training (batch norm over batches of one)."""
    if name == "mlp-batchnorm":
        return p["mlp_batch_size"] == 1
    if name == "mlp-batch-size":
        return bool(p["mlp_batch_norm"]) and 1 in p["mlp_batch_sizes"]
    if name in ("mlp-shapes", "mlp-implicit"):
        return bool(p["mlp_shapes_batch_norm"]) and p["mlp_shapes_batch_size"] == 1
    return False


def prefetch_cnn(names: Sequence[str], values: Mapping[str, Any], store: Store) -> int:
    """Compute every missing Section 7 run of every seed of `values` (with the surrogate pretraining and the
    feature extraction they need) as tasks of one sweep, on the Dask cluster or locally on one thread per core;
    returns how many tasks ran. Seeds whose `cnn` result is stored are skipped unplanned."""
    from ex4.executor import executor_for
    from ex4.experiments import Context, DeclaredParams, data_dir_and_files, registry
    from ex4.experiments import section7 as s7
    from ex4.hashing import file_digest, fingerprint_digests

    seeds = seeds_of(values)
    if "cnn" not in names or len(seeds) == 1:
        return 0
    executor = executor_for(values.get("executor", "local"), values.get("dask_scheduler", "local:1"))
    if executor.distributed:
        executor.check_store(store.root)
    experiment = registry()["cnn"]
    folder, files = data_dir_and_files("faces", dict(values))
    data = fingerprint_digests(((path, file_digest(path)) for path in files), root=folder)
    code = (*experiment.code, experiment.compute.__module__)
    tasks: list = []
    for seed in seeds:
        p = seed_values("cnn", values, seed)
        if p is None or store.load(store.key_for("cnn", experiment.key_params(p), data, code)) is not None:
            continue
        ctx = Context(params=DeclaredParams("cnn", p, experiment.params), data_dir=folder, store=store,
                      data_fingerprint=data, executor=executor)
        tasks += s7.missing_tasks(ctx, label=f"seed {seed} ")
    if tasks:
        from ex4.train.device import pick_device

        s7.compute_tasks(executor, tasks, store, f"cnn, {len(seeds)} seeds", pick_device(values["device"]))
    return len(tasks)
