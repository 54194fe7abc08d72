"""The Section 7 benchmark still runs: started as the README says, on the smoke profile with one repetition.

Benchmarks print figures to be read, never asserted (machines are shared and noisy); this test only keeps
`benchmarks/cnn.py` from falling behind the code it measures (it builds ex4's own `Setup` and `Backbone`, which
changed under it once unnoticed). It checks the exit status and the shape of the last line, the one the issue asks
for, not its numbers. The course-size part (2,000 generated 1024-px JPEGs) is left out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAST_LINE = re.compile(r"section7 overhead: [0-9.]+x over the tight loop \(pipeline [0-9.]+ s, tight loop [0-9.]+ s\), "
                       r"course-size estimate nan min")


@pytest.mark.slow
def test_the_section7_benchmark_runs_and_ends_with_its_ratio_line(tmp_path):
    env = {**os.environ, "EX4_STORE": str(tmp_path / "store")}
    done = subprocess.run([sys.executable, "benchmarks/cnn.py", "--params", "params/smoke.yml", "--reps", "1",
                           "--no-course"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("CPU: ") and all(flag in lines[0] for flag in ("AVX-512", "AMX", "bf16 flags"))
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]


SECTION7_LINE = re.compile(r"section7 cold: [0-9.]+ min computed \([0-9.]+ s; command [0-9.]+ s\), peak RSS ([0-9.]+) GiB, "
                           r"(bfloat16 autocast, channels_last|float32, channels_last|float32)")


@pytest.mark.slow
def test_the_cold_section7_benchmark_runs_in_a_store_of_its_own(tmp_path):
    project_store = tmp_path / "project-store"
    env = {**os.environ, "EX4_STORE": str(project_store)}
    done = subprocess.run([sys.executable, "benchmarks/section7.py", "--params", "params/smoke.yml",
                           "--set", "cnn_baselines=[xgboost, scratch, sklearn_probe]", "--set", "cnn_xgb_crop=8",
                           "--without-bf16"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("CPU: ") and "AVX-512" in lines[0]
    assert lines[1].startswith("without bf16: ")
    units = {line.split()[0]: line.split() for line in lines if line.startswith("  ")}
    assert {"xgboost", "scratch", "sklearn_probe", "cnn-surrogate", "cnn-features"} <= set(units), units
    # each unit's wall time, a run's test accuracy ("-" for the surrogate and the features), when it started and
    # when it ended (s after the first unit started)
    spans = [(float(row[-5]), float(row[-3]), float(row[-1])) for row in units.values()]
    assert min(start for _, start, _ in spans) == 0 and all(start <= end for _, start, end in spans), spans
    assert all(0 <= float(units[name][-4]) <= 1 for name in ("xgboost", "scratch", "sklearn_probe")), units
    assert units["cnn-surrogate"][-4] == units["cnn-features"][-4] == "-"
    found = SECTION7_LINE.fullmatch(lines[-1])
    # the path `auto` takes on a CPU without bf16 flags, whatever this CPU has
    assert found and found.group(2) == "float32, channels_last" and 0.2 < float(found.group(1)) < 24, lines[-1]
    assert not project_store.exists()  # computed in a temp store, which is gone
