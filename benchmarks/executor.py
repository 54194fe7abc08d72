"""Executor benchmark: `executor: local` vs `dask` on a LocalCluster of 2 worker processes, cold stores.

Prints wall times of Section 6 (every MLP experiment under params/smoke.yml, 4,000 training cities) and of
Section 7 under params/smoke.yml on each executor (on Dask, Section 7 goes out as one task per run, plus one for
the surrogate pretraining and one for the backbone features; the count is printed), the cluster's start-up time
(paid once per process), and the
per-task overhead: N tasks that each do a store round trip and nothing else, on warm workers, so the time per
task is Dask's scheduling plus the store's write and read. Last line:
`executor overhead: <ms> ms/task, speedup dask:2 vs local: <x>x` (the speedup over Section 6 + Section 7).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def round_trip(store_root: str, index: int, token: str) -> str:
    """One task of the overhead measurement: store a tiny result and read it back."""
    from ex4.store import Store

    store = Store(store_root)
    outcome = store.get_or_compute("bench-overhead", {"index": index, "token": token}, "none", ("ex4.store",),
                                   lambda: ({"index": index}, {}))
    assert store.load(outcome.key) is not None
    return outcome.key


def timed_sweep(names: list[str], values: dict, store_root: Path) -> float:
    from ex4.experiments import run
    from ex4.store import Store

    started = time.perf_counter()
    for name in names:
        run(name, values, Store(store_root))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks of the overhead measurement")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    from ex4 import params
    from ex4.executor import Task, close_all, executor_for
    from ex4.experiments.section6 import EXPERIMENTS

    from ex4.train.device import cpu_description

    print(f"{cpu_description()}; load {os.getloadavg()[0]:.2f}")
    smoke = yaml.safe_load((ROOT / "params" / "smoke.yml").read_text())
    local_values = params.resolve(("smoke", smoke))
    scheduler = f"local:{args.workers}"
    dask_values = params.resolve(("smoke", {**smoke, "executor": "dask", "dask_scheduler": scheduler}))
    section6 = [experiment.name for experiment in EXPERIMENTS]
    with tempfile.TemporaryDirectory(prefix="ex4-bench-executor-") as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        executor = executor_for("dask", scheduler)
        startup = time.perf_counter() - started
        print(f"LocalCluster of {args.workers} worker processes started in {startup:.1f} s")
        # warm the workers (imports) so the overhead figure is the per-task cost, not start-up
        executor.compute([Task(f"warm-{i}", round_trip, (str(scratch / "warm"), i, "warm")) for i in range(4)])
        started = time.perf_counter()
        executor.compute([Task(f"overhead-{i}", round_trip, (str(scratch / "overhead"), i, "t"))
                          for i in range(args.tasks)])
        overhead_ms = 1000 * (time.perf_counter() - started) / args.tasks
        local_one = []
        for i in range(20):
            started = time.perf_counter()
            round_trip(str(scratch / "local-overhead"), i, "t")
            local_one.append(time.perf_counter() - started)
        print(f"per task: {overhead_ms:.1f} ms on dask (scheduling + store round trip, {args.tasks} tasks); "
              f"the store round trip alone in this process: {1000 * statistics.median(local_one):.1f} ms")
        times = {}
        for label, values in (("local", local_values), (f"dask:{args.workers}", dask_values)):
            store = scratch / f"store-{label.replace(':', '-')}"
            section6_time = timed_sweep(section6, values, store)
            before = executor.submitted
            times[label] = (section6_time, timed_sweep(["cnn"], values, store))
            tasks = f", {executor.submitted - before} tasks" if label != "local" else ""
            print(f"{label:8s} Section 6 (smoke, {len(section6)} experiments) {times[label][0]:6.1f} s, "
                  f"Section 7 (smoke{tasks}) {times[label][1]:6.1f} s")
        close_all()
    local_total = sum(times["local"])
    dask_total = sum(times[f"dask:{args.workers}"])
    print(f"executor overhead: {overhead_ms:.1f} ms/task, speedup dask:{args.workers} vs local: "
          f"{local_total / dask_total:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
