"""Section 6 speed: the ex4 engine against the textbook training loop, same data and settings, one process.

    python benchmarks/mlp.py [--europe-dir DIR] [--reference-epochs K | --full-reference] [--repeats N]
    python benchmarks/mlp.py --seeds N [--params FILE] [--rounds R] [--cold-kernel]
                                            # Section 6 over N seeds against one seed, cold store, fresh processes

1. ex4: every Section 6 experiment at the course settings (`params.resolve()` defaults, so the default
   engine: the compiled kernel on the CPU, override with EX4_MLP_ENGINE=torch) through
   `ex4.experiments.run` into a throw-away store, so each is computed, not read back. Times include
   everything the experiment does (loading the data, training, region counts, decision grids). Peak RSS
   is read after this phase, before the reference runs.
2. reference (`benchmarks/reference_mlp.py`): every run of those experiments, one at a time. By default
   each run is timed for its first K epochs (K = 3) and its time scaled linearly to its full length; its
   validation accuracy after epoch K is compared with ex4's after the same epoch (both start from the same
   weights and see the same batches). `--full-reference` trains every run to the end and compares final
   accuracies (expect ~10 minutes).

Both sides run torch with one intra-op thread (the engine always does, see `training_threads`); with two,
the textbook loop slows down by up to two orders of magnitude when other processes share the cores, which
would flatter the ratio. The kernel engine may use every core by whole runs and groups (`kernel_threads`);
on a 2-core machine another job keeps busy, that gains nothing. The load average is printed before and
after.

Chaotic runs. Some runs sit at the edge of stability (lr 0.2; batch size 1): there, float32 rounding grows
until two correct implementations part ways. To tell these apart, every run is trained again by ex4 for the
compared epochs, ten times, each time with ONE initial weight moved by one unit in the last place
(`NUDGES`); a run whose validation accuracy spreads over more than the 1 pp tolerance under those nudges
alone is listed as chaotic, with its ex4-vs-reference difference, and left out of the headline maximum
(no engine that rounds differently from the textbook loop can agree with it within 1 pp;
`EX4_MLP_ENGINE=torch`, bit-identical, does). The last line printed is

    section6 speedup: <X>x (reference <a> s, ex4 <b> s), max |delta val acc| <d> pp
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_mlp import train_reference  # noqa: E402

from ex4 import params  # noqa: E402
from ex4.data import resolve_europe_dir  # noqa: E402
from ex4.data.europe import load_europe  # noqa: E402
from ex4.experiments import run  # noqa: E402
from ex4.experiments.section6 import RUN_SPECS, training_engine  # noqa: E402
from ex4.store import Store  # noqa: E402
from ex4.train.device import cpu_description  # noqa: E402
from ex4.train.mlp_engine import Splits, train_runs  # noqa: E402


def numba_version() -> str:
    import numba

    return numba.__version__


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_ex4(values: dict, repeats: int) -> tuple[dict[str, float], dict[str, dict]]:
    """Median wall time of each experiment over `repeats` fresh computations, and the results of the last."""
    seconds: dict[str, list[float]] = {name: [] for name in RUN_SPECS}
    results: dict[str, dict] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="ex4-bench-") as folder:
            store = Store(folder)
            for name in RUN_SPECS:
                started = time.perf_counter()
                outcome = run(name, values, store=store)
                seconds[name].append(time.perf_counter() - started)
                assert not outcome.hit
                results[name] = outcome.result
                print(f"  ex4 {name:15s} {seconds[name][-1]:7.2f} s", file=sys.stderr, flush=True)
    return {name: statistics.median(times) for name, times in seconds.items()}, results


TOLERANCE_PP = 1.0


# one-ulp nudges of single initial weights: (hidden layer or -1 for the output layer, index, direction);
# layers and indices beyond a small net's shape wrap around
NUDGES = ((0, (0, 0), 1), (0, (0, 0), -1), (-1, (1, 0), 1), (-1, (0, 1), -1), (0, (1, 1), 1),
          (1, (2, 3), 1), (2, (5, 1), -1), (3, (0, 7), 1), (4, (9, 9), -1), (-1, (20, 5), 1))


def nudged_accuracies(specs, arrays, n_classes: int, seed: int, engine: str, epochs_of) -> dict[str, list[float]]:
    """Val accuracies after the compared epoch of every run, trained by ex4 from initial weights in which one
    weight moved one ulp (once per entry of NUDGES): how far rounding alone can move each run."""
    from ex4.train import mlp_engine

    original = mlp_engine.initial_model
    short = [type(spec)(**{**spec.__dict__, "epochs": epochs_of(spec), "record_step_losses": False})
             for spec in specs]
    accuracies: dict[str, list[float]] = {spec.label: [] for spec in specs}
    for layer, index, direction in NUDGES:
        def nudged(arch, seed, layer=layer, index=index, direction=direction):
            model = original(arch, seed)
            with torch.no_grad():
                chosen = model.hidden[min(layer, len(model.hidden) - 1)].linear if layer >= 0 else model.output
                weight = chosen.weight
                at = (index[0] % weight.shape[0], index[1] % weight.shape[1])  # small nets: wrap around
                weight[at] = torch.nextafter(weight[at], torch.tensor(direction * math.inf))
            return model

        mlp_engine.initial_model = nudged
        try:
            results = train_runs(short, Splits.from_arrays(arrays, n_classes), seed, progress=False, engine=engine)
        finally:
            mlp_engine.initial_model = original
        for spec, result in zip(specs, results):
            accuracies[spec.label].append(accuracy_at(result.history["val_acc"], result.spec.epochs))
    return accuracies


def accuracy_at(history: list, epoch: int) -> float:
    value = history[epoch - 1] if epoch <= len(history) else None
    return math.nan if value is None else float(value)


def seeds_values(europe_dir: str | None, profile: str | None) -> dict:
    given = params.read_profile(profile) if profile else {}
    folder = resolve_europe_dir(europe_dir if europe_dir is not None else given.get("europe_dir"))
    return params.resolve(("benchmark", {**given, "europe_dir": str(folder)}))


def seeds_child(n: int, europe_dir: str | None, profile: str | None) -> int:
    """One measurement, in a fresh process: all of Section 6 with `seed_repeats` n into a fresh store; prints one
    JSON line (wall and CPU seconds of `run_seeds`, load averages before and after)."""
    import json

    from ex4.experiments import run_seeds

    values = seeds_values(europe_dir, profile)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ex4-bench-seeds-") as folder:
        cpu, started = time.process_time(), time.perf_counter()
        outcomes = run_seeds(list(RUN_SPECS), {**values, "seed_repeats": n}, Store(folder))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert all(len(per_seed) == n and not any(o.hit for o in per_seed) for per_seed in outcomes.values())
    print(json.dumps({"n": n, "wall": wall, "cpu": cpu, "load_before": load_before, "load_after": os.getloadavg()}))
    return 0


def time_seeds(repeats: int, europe_dir: str | None, profile: str | None, rounds: int, cold_kernel: bool) -> int:
    """Section 6 (every experiment, as the chapters ask for them: `run_seeds`) with `seed_repeats` 1 and then
    `repeats`, each in a fresh process into a fresh store (so nothing read or trained for one is found by the
    other), `rounds` times alternately; prints the medians and their ratio as the last line.

    The compiled kernel (numba's on-disk cache, keyed by the kernel's source) is warmed before the first
    measurement and not timed: compiling is a one-off per kernel source and machine, and timing it in one N
    only would flatter the ratio. `--cold-kernel` instead gives every measurement an empty cache of its own,
    so both sides compile."""
    import json
    import subprocess

    from ex4.train.device import cpu_flags
    from ex4.train.mlp_engine import RunSpec
    from ex4.models.mlp import Architecture

    values = seeds_values(europe_dir, profile)
    engine = training_engine(values)
    flags = cpu_flags()
    print(f"cpu: {cpu_description()}; AVX2 {'yes' if 'avx2' in flags else 'no'}, FMA {'yes' if 'fma' in flags else 'no'}; "
          f"EX4_KERNEL_THREADS={os.environ.get('EX4_KERNEL_THREADS', 'unset (every core)')}; torch {torch.__version__}, "
          f"ex4 engine {engine}" + (f" (numba {numba_version()})" if engine == "kernel" else "")
          + f"; settings: {profile or 'the course defaults'}", flush=True)
    if engine == "kernel" and not cold_kernel:
        started = time.perf_counter()
        tiny = Splits.from_arrays({name: (torch.zeros(8, 2), torch.zeros(8, dtype=torch.int64))
                                   for name in ("train", "val", "test")}, 2)
        train_runs([RunSpec("warm", Architecture(1, 2, 2), 0.1, 4, 1)], tiny, 0, progress=False, engine="kernel")
        print(f"compiled kernel: loaded or compiled in {time.perf_counter() - started:.1f} s before timing "
              "(not timed; --cold-kernel times both sides with an empty cache)", flush=True)
    script = str(Path(__file__).resolve())
    times: dict[int, list[dict]] = {1: [], repeats: []}
    for round_ in range(rounds):
        for n in (1, repeats):
            command = [sys.executable, script, "--seeds-child", str(n)]
            command += ["--europe-dir", europe_dir] if europe_dir is not None else []
            command += ["--params", profile] if profile else []
            env = dict(os.environ)
            with tempfile.TemporaryDirectory(prefix="ex4-bench-numba-") as numba_cache:
                if cold_kernel:
                    env["NUMBA_CACHE_DIR"] = numba_cache
                done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                return done.returncode
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            times[n].append(measured)
            print(f"round {round_ + 1}: section6 with {n} seed(s): {measured['wall']:.1f} s wall, {measured['cpu']:.1f} s "
                  f"CPU (load {' '.join(f'{v:.2f}' for v in measured['load_before'])} before, "
                  f"{' '.join(f'{v:.2f}' for v in measured['load_after'])} after)", flush=True)
    wall = {n: statistics.median(m["wall"] for m in runs) for n, runs in times.items()}
    cpu = {n: statistics.median(m["cpu"] for m in runs) for n, runs in times.items()}
    print(f"CPU time (all threads): N = {repeats} {cpu[repeats]:.1f} s vs N = 1 {cpu[1]:.1f} s "
          f"({cpu[repeats] / cpu[1]:.2f}x; {cpu[1] / wall[1]:.2f} vs {cpu[repeats] / wall[repeats]:.2f} cores busy "
          f"on average)")
    print(f"section6 seeds: N = {repeats} takes {wall[repeats] / wall[1]:.2f}x N = 1 "
          f"({wall[repeats]:.1f} s vs {wall[1]:.1f} s, median of {rounds}, "
          f"{'empty kernel cache each' if cold_kernel else 'kernel compiled beforehand'}; goal <= 3x)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--europe-dir", default=None, help="course-format data folder (default: bundled)")
    parser.add_argument("--reference-epochs", type=int, default=3, help="epochs timed per reference run")
    parser.add_argument("--full-reference", action="store_true", help="train every reference run to the end")
    parser.add_argument("--repeats", type=int, default=1, help="ex4 repeats (median)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="instead: time all of Section 6 with seed_repeats N against N = 1, each into a cold "
                             "store, and print the ratio (no reference runs)")
    parser.add_argument("--params", default=None, metavar="FILE",
                        help="--seeds only: a profile instead of the course settings (e.g. params/smoke.yml)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="--seeds only: measure N = 1 and N alternately this many times (medians)")
    parser.add_argument("--cold-kernel", action="store_true",
                        help="--seeds only: every measurement compiles the kernel into an empty cache")
    parser.add_argument("--seeds-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.seeds_child is not None:
        return seeds_child(args.seeds_child, args.europe_dir, args.params)
    if args.seeds is not None:
        return time_seeds(args.seeds, args.europe_dir, args.params, args.rounds, args.cold_kernel)

    folder = resolve_europe_dir(args.europe_dir)
    values = params.resolve(("benchmark", {"europe_dir": str(folder)}))
    data = load_europe(folder)
    arrays = {split: (part.x, part.y) for split, part in data.splits().items()}
    seed = values["seed"]
    engine = training_engine(values)
    print(f"data: {folder} ({len(data.train.y)} train, {len(data.val.y)} val, {len(data.test.y)} test rows, "
          f"{data.n_classes} classes); torch {torch.__version__}, {os.cpu_count()} cores, ex4 engine {engine}"
          + (f" (numba {numba_version()})" if engine == "kernel" else
             f", EX4_COMPILE={os.environ.get('EX4_COMPILE', '0')}"))
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)

    # ---- ex4 ------------------------------------------------------------------------------------------------
    ex4_seconds, results = time_ex4(values, args.repeats)
    ex4_rss = peak_rss_mib()

    batch1 = [spec for spec in RUN_SPECS["mlp-batch-size"](values, data.n_classes) if spec.batch_size == 1]
    ex4_batch1 = None
    if batch1:
        spec = batch1[0]
        one_epoch = type(spec)(**{**spec.__dict__, "epochs": 1, "record_step_losses": False})
        result = train_runs([one_epoch], Splits.from_arrays(arrays, data.n_classes), seed, progress=False,
                            engine=engine)[0]
        ex4_batch1 = (result.epoch_seconds[0], result.compile_seconds)

    # ---- reference ----------------------------------------------------------------------------------------------
    rows = []
    chaotic: list[tuple[str, str, float, float]] = []
    reference_batch1 = None
    worst_delta = 0.0
    for name in RUN_SPECS:
        specs = RUN_SPECS[name](values, data.n_classes)
        ex4_runs = {entry["label"]: entry for entry in results[name]["runs"]}
        compared = (lambda spec: spec.epochs) if args.full_reference else \
            (lambda spec: min(spec.epochs, args.reference_epochs))
        nudged = nudged_accuracies(specs, arrays, data.n_classes, seed, engine, compared)
        reference_total, deltas, timed = 0.0, [], []
        for spec in specs:
            epochs = spec.epochs if args.full_reference else min(spec.epochs, args.reference_epochs)
            reference = train_reference(spec, arrays, seed, epochs=epochs)
            reference_total += reference.seconds * spec.epochs / epochs
            timed.append(f"{epochs}/{spec.epochs}")
            ours = accuracy_at(ex4_runs[spec.label]["history"]["val_acc"], epochs)
            theirs = reference.history["val_acc"][-1]
            theirs = math.nan if not math.isfinite(reference.history["val_loss"][-1]) else theirs
            if math.isnan(ours) and math.isnan(theirs):
                delta = 0.0  # both diverged
            elif math.isnan(ours) or math.isnan(theirs):
                delta = math.inf
            else:
                delta = abs(ours - theirs) * 100
            outcomes = [ours, *nudged[spec.label]]
            finite = [value for value in outcomes if not math.isnan(value)]
            if len(finite) not in (0, len(outcomes)):
                sensitivity = math.inf  # a nudge alone made it diverge (or stop diverging)
            else:
                sensitivity = (max(finite) - min(finite)) * 100 if finite else 0.0
            if sensitivity > TOLERANCE_PP:
                chaotic.append((name, spec.label, delta, sensitivity))
            else:
                deltas.append(delta)
            if spec.batch_size == 1:
                reference_batch1 = reference.epoch_seconds[0]
            print(f"  reference {name:15s} {spec.label:20s} {reference.seconds:7.2f} s for {epochs} epoch(s), "
                  f"val acc ex4 {ours:.4f} reference {theirs:.4f}", file=sys.stderr, flush=True)
        worst_delta = max([worst_delta, *deltas])
        rows.append((name, len(specs), ex4_seconds[name], reference_total, max(deltas, default=math.nan),
                     ", ".join(sorted(set(timed)))))

    # ---- report ----------------------------------------------------------------------------------------------
    print(f"\n{'experiment':15s} {'runs':>4s} {'ex4 s':>8s} {'reference s':>12s} {'ratio':>7s} "
          f"{'max|dAcc| pp':>13s}  reference epochs timed   (max|dAcc| over the runs that are not chaotic)")
    for name, count, ours, theirs, delta, timed in rows:
        print(f"{name:15s} {count:4d} {ours:8.2f} {theirs:12.2f} {theirs / ours:6.1f}x {delta:13.2f}  {timed}")
    ex4_total = sum(ex4_seconds.values())
    reference_total = sum(row[3] for row in rows)
    print(f"{'total':15s} {sum(row[1] for row in rows):4d} {ex4_total:8.2f} {reference_total:12.2f} "
          f"{reference_total / ex4_total:6.1f}x")
    if ex4_batch1 and reference_batch1:
        epoch, compiling = ex4_batch1
        print(f"batch-1 epoch: reference {reference_batch1:.2f} s, ex4 {epoch:.2f} s incl. {compiling:.2f} s "
              f"compiling ({reference_batch1 / epoch:.1f}x; {reference_batch1 / max(epoch - compiling, 1e-9):.1f}x "
              f"without compiling)")
    print(f"peak RSS of the ex4 phase (whole process, after all of Section 6): {ex4_rss:.0f} MiB")
    for name, label, delta, sensitivity in chaotic:
        print(f"chaotic, left out of the max: {name} {label}: |delta val acc| {delta:.2f} pp, while one-ulp "
              f"nudges of single initial weights alone spread ex4's over {sensitivity:.2f} pp")
    if not chaotic:
        print(f"chaotic runs: none (no run spreads over more than 1 pp under {len(NUDGES)} one-ulp nudges)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    comparison = "final" if args.full_reference else f"after epoch min(E, {args.reference_epochs})"
    print(f"accuracy compared {comparison}; reference time "
          f"{'measured in full' if args.full_reference else 'scaled linearly from the epochs timed'}")
    print(f"section6 speedup: {reference_total / ex4_total:.1f}x (reference {reference_total:.1f} s, "
          f"ex4 {ex4_total:.1f} s), max |delta val acc| {worst_delta:.2f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
