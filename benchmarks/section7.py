"""Section 7 as a user gets it: `ex4 run cnn` on a cold store, timed, with its peak memory.

    python benchmarks/section7.py                                # default parameters, bundled stand-in
    python benchmarks/section7.py --set cnn_precision=float32    # float32, NCHW: the textbook arithmetic
    python benchmarks/section7.py --without-bf16                 # what `auto` picks on a CPU without bf16 flags
    python benchmarks/section7.py --params params/smoke.yml

The command runs in a child process with a store of its own in a temp folder (nothing is read from or left in the
project's store), so every run, the surrogate and the features are computed. Printed: the CPU model and flags
(AVX-512, AVX512_BF16, AMX) and the load before and after, the wall time of each stored unit (XGBoost, each
network run, the surrogate, the features), each run's test accuracy (so a fast but broken run shows) and when
each unit started and ended (seconds after the first unit started; units computed side by side overlap), and,
last, the line

    section7 cold: <m> min computed (<s> s; command <w> s), peak RSS <g> GiB, <numerics>

Peak RSS is the child's (`getrusage(RUSAGE_CHILDREN)`): the whole of Section 7, every thread of it. The goals of
issue 9: <= 4 minutes with native bf16 and <= 6 without, on 2 cores; peak RSS <= 3 GiB.

`--without-bf16` runs the child with `EX4_IGNORE_CPU_FLAGS` naming the bf16 flags (AVX512_BF16, AMX-BF16, Arm
BF16), so `auto` takes the path of a CPU without them (float32, channels_last) on any CPU; float32 arithmetic does
not use the bf16 units, so the time is close to that of a CPU of the same kind without them. The flags as seen
enter the store keys, so such results never mix with those of the real flags (and the store here is a temp one).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", help="a parameter profile (default: ex4's defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a parameter override")
    parser.add_argument("--without-bf16", action="store_true",
                        help="pretend the CPU has no bf16 flags (the path `auto` takes on a CPU without them)")
    args = parser.parse_args(argv)

    from ex4.store import Store
    from ex4.train.device import ARM_BF16_FLAGS, IGNORE_FLAGS_VARIABLE, X86_BF16_FLAGS, cpu_description

    BF16_FLAGS = X86_BF16_FLAGS + ARM_BF16_FLAGS

    print(f"CPU: {cpu_description()}; load average {load()}", flush=True)
    env = dict(os.environ)
    if args.without_bf16:
        env[IGNORE_FLAGS_VARIABLE] = ",".join(BF16_FLAGS)
        print(f"without bf16: the child runs with {IGNORE_FLAGS_VARIABLE}={env[IGNORE_FLAGS_VARIABLE]}")
    command = [sys.executable, "-c", "import sys; from ex4.cli import main; sys.exit(main())", "run", "cnn"]
    if args.params:
        command += ["--params", args.params]
    for item in args.set:
        command += ["--set", item]
    folder = Path(tempfile.mkdtemp(prefix="ex4-section7-"))
    try:
        env["EX4_STORE"] = str(folder / "store")
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # Linux reports KiB
        if done.returncode != 0:
            sys.stdout.write(done.stdout[-4000:])
            sys.exit(f"section7: `ex4 run cnn` failed with exit status {done.returncode}")
        found = re.search(r"cnn: result \S+ \(computed in ([0-9.]+) s\)", done.stdout)
        if found is None:
            sys.exit("section7: `ex4 run cnn` did not say it computed the result (was the store not cold?)")
        computed = float(found.group(1))
        store = Store(folder / "store")
        numerics, units = set(), []
        for entry in store.entries():
            if entry.get("experiment") == "cnn":  # the assembled result, not a computed unit
                continue
            outcome = store.load(entry["key"])
            result = outcome.result if outcome is not None else {}
            if isinstance(result.get("params"), dict) and result["params"].get("numerics"):
                numerics.add(result["params"]["numerics"])
            took = float(entry.get("wall_time") or 0)
            ended = datetime.datetime.fromisoformat(entry["created"]).timestamp() if entry.get("created") else None
            accuracy = (result.get("final") or {}).get("test_acc")
            units.append((result.get("label") or entry.get("experiment"), took, accuracy, ended))
        first = min((ended - took for _, took, _, ended in units if ended is not None), default=None)
        print(f"units computed (wall s, test accuracy of a run, from - to: s after the first unit started), load "
              f"average after {load()}:")
        for name, took, accuracy, ended in sorted(units, key=lambda unit: -unit[1]):
            span = f"{ended - took - first:6.0f} - {ended - first:4.0f}" if ended is not None else "     ? -    ?"
            shown = f"{accuracy:6.3f}" if isinstance(accuracy, (int, float)) else "     -"
            print(f"  {name:<22} {took:7.1f} {shown} {span}")
        print(f"section7 cold: {computed / 60:.1f} min computed ({computed:.1f} s; command {wall:.1f} s), "
              f"peak RSS {peak:.2f} GiB, {', '.join(sorted(numerics)) or 'no network run'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
