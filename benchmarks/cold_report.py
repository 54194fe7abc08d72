"""A cold build, measured: `git clone` of this checkout into a temporary folder, then `nox -s report` there.

    python benchmarks/cold_report.py [--keep] [--without-bf16] [-- ARGS for nox -s report]

Run it with the Python that has nox (`pip install nox`), as a newcomer would. Nothing is shared with this
checkout: the clone gets its own `.nox/ex4` environment (PyTorch installed from scratch), its own bundled
data, result store and chapter cache, so the time is that of a fresh machine with the package files at hand.
`EX4_*` variables are removed from the environment for the same reason.

Every line nox prints is time-stamped; the phases are read off nox's own command lines (`nox > ...`):
the environment (venv + pip), the bundled data, the quick tests, the render (with each chapter's time as
`ex4 render` reports it), the book checks. Printed with the CPU model and flags and the load average before
and after, because machines are shared; the last line is

    cold report: <m> min (setup <a> s, data <b> s, tests <c> s, render <d> s, book checks <e> s)

The issue's goal (#9): <= 15 minutes on a 2-core CPU, set-up included. `--without-bf16` sets
`EX4_IGNORE_CPU_FLAGS` to the bf16 flags for the build, so a CPU with native bf16 takes the path of one without
(float32, channels_last; see `ex4.train.device`) and the time is close to that of a CPU of the same kind
without bf16.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = (  # (name, a pattern that starts it in nox's "nox > <command>" lines)
    ("setup", re.compile(r"venv|pip install")),
    ("data", re.compile(r"ex4\.cli data build")),
    ("tests", re.compile(r"pytest .*-m '?not book and not slow")),
    ("render", re.compile(r"ex4\.cli render")),
    ("book checks", re.compile(r"pytest .*-m '?book\b")),
)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    parser.add_argument("--without-bf16", action="store_true",
                        help="build as on a CPU without bf16 flags (EX4_IGNORE_CPU_FLAGS)")
    parser.add_argument("nox_args", nargs="*", help="arguments after -- go to nox -s report")
    args = parser.parse_args()
    if shutil.which("nox") is None and subprocess.run([sys.executable, "-m", "nox", "--version"],
                                                      capture_output=True).returncode != 0:
        sys.exit("cold_report: nox is not installed for this Python (pip install nox)")

    folder = Path(tempfile.mkdtemp(prefix="ex4-cold-"))
    clone = folder / "ex4"
    env = {name: value for name, value in os.environ.items() if not name.startswith("EX4_")}
    if args.without_bf16:
        env["EX4_IGNORE_CPU_FLAGS"] = "avx512_bf16,amx_bf16,bf16"  # x86 AVX512_BF16 and AMX-BF16, Arm BF16
        print(f"without bf16: EX4_IGNORE_CPU_FLAGS={env['EX4_IGNORE_CPU_FLAGS']}")
    print(f"before: {load()}", flush=True)
    began = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    command = [sys.executable, "-m", "nox", "-s", "report"] + (["--", *args.nox_args] if args.nox_args else [])
    starts: dict[str, float] = {"setup": time.perf_counter()}
    chapters: list[str] = []
    process = subprocess.Popen(command, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    assert process.stdout is not None
    for line in process.stdout:
        now = time.perf_counter()
        sys.stdout.write(f"[{now - began:7.1f} s] {line}")
        if line.startswith("nox > "):
            for name, pattern in PHASES:
                if pattern.search(line) and name not in starts:
                    starts[name] = now
        elif re.search(r"ex4 render: \[[0-9]+/[0-9]+\] \S+\.qmd", line):  # `ex4 render`: [k/n] chapter  seconds (how)
            chapters.append(line.strip())
    status = process.wait()
    ended = time.perf_counter()
    python = clone / ".nox" / "ex4" / "bin" / "python"
    cpu = subprocess.run([str(python), "-c", "from ex4.train.device import cpu_description; print(cpu_description())"],
                         capture_output=True, text=True, cwd=clone, env=env
                         ).stdout.strip() if python.exists() else "unknown"
    print(f"CPU: {cpu}; after: {load()}")
    if status != 0:
        sys.exit(f"cold_report: nox -s report failed ({status}) after {(ended - began) / 60:.1f} min; clone kept "
                 f"at {clone}")
    order = [name for name, _ in PHASES if name in starts]
    times = {}
    for index, name in enumerate(order):
        stop = starts[order[index + 1]] if index + 1 < len(order) else ended
        times[name] = stop - starts[name]
    times["setup"] += starts["setup"] - began  # the clone itself
    for line in chapters:
        print(f"  {line}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"clone kept at {clone}")
    parts = ", ".join(f"{name} {times.get(name, 0.0):.0f} s" for name, _ in PHASES)
    print(f"cold report: {(ended - began) / 60:.1f} min ({parts})")


if __name__ == "__main__":
    main()
