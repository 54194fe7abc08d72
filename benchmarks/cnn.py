"""Section 7 speed: ex4's `cnn` experiment (cold store, cold image cache) against the textbook loop.

    python benchmarks/cnn.py                       # bundled stand-in, parameters from params/default.yml
    python benchmarks/cnn.py --set cnn_image_size=64 --reference-lrs 0.1 0.0001

Both run in this process on the same data, parameters and backbone weights. ex4 runs first from an empty store
and an empty decoded-image cache, so its time includes decoding, surrogate pretraining (when no ImageNet weights
exist) and feature extraction. The reference (`reference_cnn.py`) starts from the same weights with the same
batches; it reuses the surrogate ex4 trained, and its time is charged the same pretraining time ex4 measured
(the textbook run needs that backbone too and would train it with the same code). With `--reference-lrs`, only
those learning rates run in the reference; each torch baseline's time is scaled by (all lrs / lrs run) and
accuracies are compared on the runs that exist in both.

Prints per-baseline times, peak RSS and, last, the line
`section7 speedup: <X>x (reference <a> s, ex4 <b> s), max |delta test acc| <d> pp`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TORCH_BASELINES = ("scratch", "linear_probe", "finetune")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", help="YAML parameter profile (default: params/default.yml if present)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    parser.add_argument("--reference-lrs", type=float, nargs="+", help="run only these lrs in the reference")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"),
                        help="ex4's numerics (default: the cnn_precision parameter, else auto); "
                             "float32 = bit-identical to the reference")
    args = parser.parse_args(argv)

    from ex4 import params
    from ex4.data import resolve_faces_dir

    profile = args.params or (str(Path("params/default.yml")) if Path("params/default.yml").is_file() else None)
    values = params.resolve_cli(profile, args.set)
    data_dir = resolve_faces_dir(values["faces_dir"])  # the bundled stand-in is built under the usual root
    values["faces_dir"] = str(data_dir)
    if values["cnn_train_subset"] is not None:
        parser.error("the reference trains on the whole training split; set cnn_train_subset=null")
    if args.precision:
        values["cnn_precision"] = args.precision  # the store is a fresh temp folder, so no stale key can hit
    scratch = Path(tempfile.mkdtemp(prefix="ex4-bench-cnn-"))
    os.environ["EX4_ROOT"] = str(scratch)  # cold decoded-image cache
    try:
        measure(values, scratch, args.reference_lrs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def measure(values: dict, scratch: Path, reference_lrs: list[float] | None) -> None:
    from ex4 import experiments
    from ex4.store import Store

    data_dir = Path(values["faces_dir"])

    print(f"data: {data_dir}", flush=True)
    print(f"settings: image size {values['cnn_image_size']}, lrs {values['cnn_learning_rates']}, batch "
          f"{values['cnn_batch_size']}, epochs {values['cnn_epochs']}, baselines {values['cnn_baselines']}, "
          f"{os.cpu_count()} cores, torch threads {__import__('torch').get_num_threads()}", flush=True)

    started = time.perf_counter()
    outcome = experiments.run("cnn", values, store=Store(scratch / "store"))
    ex4_time = time.perf_counter() - started
    ex4_rss = peak_rss_gib()
    result = outcome.result
    timings = result["timings"]
    surrogate_time = result.get("backbone_info", {}).get("wall_time", 0.0) if result["backbone"].startswith(
        "surrogate") else 0.0
    ex4_by_baseline: dict[str, float] = defaultdict(float)
    for run in result["runs"]:
        ex4_by_baseline[run["baseline"]] += run["wall_time"]
    print(f"ex4: {ex4_time:.1f} s total ({result['numerics']}, backbone {result['backbone']}); "
          f"decode {timings.get('decode', 0):.1f} s, backbone {timings.get('backbone', 0):.1f} s "
          f"(surrogate pretraining {surrogate_time:.1f} s), features {timings.get('features', 0):.1f} s; "
          f"peak RSS {ex4_rss:.2f} GiB", flush=True)

    from reference_cnn import run_reference

    backbone_state = None
    if result["backbone"] != "none":
        backbone_state = _backbone_state(result, scratch / "store")
    started = time.perf_counter()
    reference = run_reference(Path(values["faces_dir"]), values, backbone_state, reference_lrs)
    reference_measured = time.perf_counter() - started
    lr_scale = len(values["cnn_learning_rates"]) / len(reference_lrs) if reference_lrs else 1.0
    reference_by_baseline: dict[str, float] = defaultdict(float)
    for run in reference.values():
        scale = lr_scale if run["baseline"] in TORCH_BASELINES else 1.0
        reference_by_baseline[run["baseline"]] += run["wall_time"] * scale
    reference_time = sum(reference_by_baseline.values()) + surrogate_time
    reference_rss = peak_rss_gib()

    print(f"\n{'baseline':<14} {'reference s':>12} {'ex4 s':>8} {'speedup':>8}")
    shared = timings.get("features", 0.0)
    for baseline in values["cnn_baselines"]:
        ours = ex4_by_baseline[baseline]
        note = ""
        if baseline in ("linear_probe", "sklearn_probe"):
            note = f"  (+ shared feature extraction {shared:.1f} s)"
        ratio = reference_by_baseline[baseline] / max(ours, 1e-9)
        print(f"{baseline:<14} {reference_by_baseline[baseline]:12.1f} {ours:8.1f} {ratio:7.1f}x{note}")
    print(f"{'surrogate':<14} {surrogate_time:12.1f} {surrogate_time:8.1f}  (same pretraining charged to both)")
    if lr_scale != 1.0:
        print(f"reference ran lrs {reference_lrs} only ({reference_measured:.1f} s measured); torch "
              f"baselines scaled x{lr_scale:g}")
    print(f"peak RSS: ex4 phase {ex4_rss:.2f} GiB, whole process {reference_rss:.2f} GiB")

    deltas = []
    print(f"\n{'run':<26} {'reference':>9} {'ex4':>7} {'delta pp':>9}")
    ours_by_label = {run["label"]: run["final"]["test_acc"] for run in result["runs"]}
    for label, run in reference.items():
        if label in ours_by_label:
            delta = 100 * (ours_by_label[label] - run["test_acc"])
            deltas.append(abs(delta))
            print(f"{label:<26} {run['test_acc']:9.4f} {ours_by_label[label]:7.4f} {delta:+9.2f}")
    max_delta = max(deltas, default=float("nan"))
    print(f"section7 speedup: {reference_time / ex4_time:.1f}x (reference {reference_time:.0f} s, "
          f"ex4 {ex4_time:.0f} s), max |delta test acc| {max_delta:.2f} pp")


def _backbone_state(result: dict, store_dir: Path):
    """The backbone ex4 used: the surrogate from its store entry, or the ImageNet/.pth file."""
    from ex4.models.resnet import read_state_file
    from ex4.store import Store

    info = result["backbone_info"]
    if "store_key" in info:
        return Store(store_dir).load(info["store_key"]).tensors["backbone"]
    return read_state_file(info["file"])


if __name__ == "__main__":
    main()
