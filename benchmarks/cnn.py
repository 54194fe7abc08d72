"""Section 7 speed: ex4's training runs against a tight loop of the same steps, and the course-size case.

    python benchmarks/cnn.py                          # stand-in overhead + course-size estimate (~5-10 min, 2 cores)
    python benchmarks/cnn.py --precision float32      # float32 in the default layout (the textbook arithmetic)
    EX4_IGNORE_CPU_FLAGS=avx512_bf16,amx_bf16 python benchmarks/cnn.py   # what `auto` runs on a CPU without bf16
    python benchmarks/cnn.py --floor                  # also: what lowers the floor (layout, threads, Adam, ...)
    python benchmarks/cnn.py --textbook               # also: the textbook ImageFolder/DataLoader reference

1. Overhead. For the full-network runs (scratch, finetune) and the surrogate pretraining, ex4's own code
   (`section7.run_full_network`, `surrogate.pretrain_surrogate`) runs on the bundled stand-in at the size
   `cnn_image_size: auto` resolves to, interleaved with a *tight loop*: the same training steps (same batch
   sizes, numerics, layout and thread count) and the same evaluation forward passes on random tensors, with
   no data, no bookkeeping and the model built outside the timer. Medians over `--reps` repetitions, wall and
   process CPU time (CPU time is what to compare on a machine shared with other jobs).
2. Course-size case. A synthetic tree the size of the course's (1,400 / 200 / 400 JPEGs of 1024 x 1024) is
   generated in a temp folder; decode-once (224 and 256 px), XGBoost, feature extraction and per-step times
   at 224 px are measured, and each baseline's time is estimated from them (training steps x the overhead
   ratio just measured) instead of training everything.

Prints the CPU model and flags, the load, per-part times and, last, the line
`section7 overhead: <r>x over the tight loop (pipeline <a> s, tight loop <b> s), course-size estimate <m> min`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

COURSE_COUNTS = {"train": 1400, "val": 200, "test": 400}
COURSE_SIDE = 1024
COURSE_SIZE = 224


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


class Clock:
    """Wall and process CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


# --- the tight loop ---------------------------------------------------------------------------------------------


def tight_loop(model, batch_sizes: list[int], size: int, classes: int, eval_sizes: list[int], device, how,
               seed: int = 0) -> None:
    """`len(batch_sizes)` Adam steps of `model` on random tensors, then forward passes of `eval_sizes` images."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    biggest = max(batch_sizes + eval_sizes)
    x = torch.rand(biggest, 3, size, size, generator=generator).to(device).contiguous(memory_format=how.memory_format)
    if classes == 1:
        y, loss_fn = torch.randint(0, 2, (biggest,), generator=generator).float().to(device), nn.BCEWithLogitsLoss()
    else:
        y, loss_fn = torch.randint(0, classes, (biggest,), generator=generator).to(device), nn.CrossEntropyLoss()
    model.to(device, memory_format=how.memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for b in batch_sizes:
        optimizer.zero_grad(set_to_none=True)
        with how.context(device):
            out = model(x[:b])
        loss_fn(out.float().reshape(-1) if classes == 1 else out.float(), y[:b]).backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode(), how.context(device):
        for n in eval_sizes:
            model(x[:n]).float().cpu()
    sync(device)


def eval_chunks(n: int, size: int) -> list[int]:
    from ex4.train.features import chunks, eval_batch_size

    return [part.stop - part.start for part in chunks(n, eval_batch_size(size))]


# --- 1. overhead on the stand-in ----------------------------------------------------------------------------------


def overhead(values: dict, device, how, reps: int, lr: float) -> dict[str, dict[str, list[float]]]:
    """name -> {"pipeline": [(wall, cpu)...], "tight": [...]} for scratch, finetune and the surrogate."""
    import torch

    from ex4.data import resolve_faces_dir
    from ex4.experiments import section7
    from ex4.models.resnet import resnet18_binary, resnet18_classifier
    from ex4.train import surrogate
    from ex4.train.cnn import batch_orders
    from ex4.train.features import resize_side

    data_dir = resolve_faces_dir(values["faces_dir"])
    size, why = section7.resolve_image_size(values["cnn_image_size"], data_dir)
    params = {**values, "cnn_image_size": size, "cnn_learning_rates": [lr]}
    images = section7.Images(data_dir)
    for side in (size, resize_side(size)):
        images.load(side)
    reference = images.load(size)
    n_train, n_eval = len(reference.train.labels), len(reference.val.labels) + len(reference.test.labels)
    batch, epochs, seed = params["cnn_batch_size"], params["cnn_epochs"], params["seed"]
    print(f"stand-in: {n_train} train / {n_eval} val+test images at {size} px ({why}); batch {batch}, "
          f"epochs {epochs}, lr {lr:g}; {how.name}", flush=True)

    excluded = section7.excluded_digits(data_dir)
    sur_images = surrogate.source_digits(excluded)[0]
    n_sur = len(sur_images) - int(round(surrogate.HELD_OUT_SHARE * len(sur_images)))
    n_held = len(sur_images) - n_sur
    backbone_state = {}

    def pipeline_surrogate():
        state, _ = surrogate.pretrain_surrogate(excluded, resize_side(size), size, seed, device, how, epochs=1)
        backbone_state.update(state)

    def pipeline_run(baseline):
        def run():
            backbone = section7.Backbone("surrogate:bench", backbone_state, "bench")
            setup = section7.Setup(params, device, how, images, backbone)
            threads = torch.get_num_threads()
            section7.run_full_network(setup, baseline, lr)
            torch.set_num_threads(threads)
            sync(device)
        return run

    full_batches = [len(b) for epoch in batch_orders(n_train, batch, epochs, seed, merge_single=True) for b in epoch]
    sur_batches = [len(b) for b in batch_orders(n_sur, surrogate.BATCH_SIZE, 1, seed, merge_single=True)[0]]
    evals = eval_chunks(len(reference.val.labels), size) + eval_chunks(len(reference.test.labels), size)

    def tight(make, batches, classes, eval_sizes):
        model = make()  # built outside the timer: the tight loop is the steps alone

        def run():
            tight_loop(model, batches, size, classes, eval_sizes, device, how)
        return run

    parts = {
        "surrogate (1 epoch)": (pipeline_surrogate, lambda: tight(lambda: resnet18_classifier(seed, 10), sur_batches,
                                                                  10, eval_chunks(n_held, size))),
        "scratch (1 lr)": (pipeline_run("scratch"), lambda: tight(lambda: resnet18_binary(seed), full_batches, 1,
                                                                  evals)),
        "finetune (1 lr)": (pipeline_run("finetune"), lambda: tight(lambda: resnet18_binary(seed), full_batches, 1,
                                                                    evals)),
    }
    times = {name: {"pipeline": [], "tight": []} for name in parts}
    pipeline_surrogate()  # warm-up: first-call costs (oneDNN primitive creation, page faults) charged to neither
    for rep in range(reps):
        for name, (pipeline, make_tight) in parts.items():
            run_tight = make_tight()
            for kind, fn in (("pipeline", pipeline), ("tight", run_tight)) if rep % 2 == 0 else \
                    (("tight", run_tight), ("pipeline", pipeline)):
                with Clock() as clock:
                    fn()
                times[name][kind].append((clock.wall, clock.cpu))
        print(f"  rep {rep + 1}/{reps} done, load {os.getloadavg()[0]:.1f}", flush=True)
    return times


def report_overhead(times: dict) -> tuple[float, float, float]:
    print(f"\n{'part':<22} {'pipeline s':>11} {'tight s':>8} {'ratio':>6}   {'CPU s: pipeline':>15} {'tight':>6} "
          f"{'ratio':>6}")
    total_pipe = total_tight = cpu_pipe = cpu_tight = 0.0
    for name, kinds in times.items():
        pipe_wall = statistics.median(wall for wall, _ in kinds["pipeline"])
        tight_wall = statistics.median(wall for wall, _ in kinds["tight"])
        pipe_cpu = statistics.median(cpu for _, cpu in kinds["pipeline"])
        tight_cpu = statistics.median(cpu for _, cpu in kinds["tight"])
        total_pipe, total_tight = total_pipe + pipe_wall, total_tight + tight_wall
        cpu_pipe, cpu_tight = cpu_pipe + pipe_cpu, cpu_tight + tight_cpu
        print(f"{name:<22} {pipe_wall:11.2f} {tight_wall:8.2f} {pipe_wall / tight_wall:5.2f}x   {pipe_cpu:15.2f} "
              f"{tight_cpu:6.2f} {pipe_cpu / tight_cpu:5.2f}x")
    print(f"{'all':<22} {total_pipe:11.2f} {total_tight:8.2f} {total_pipe / total_tight:5.2f}x   {cpu_pipe:15.2f} "
          f"{cpu_tight:6.2f} {cpu_pipe / cpu_tight:5.2f}x   (medians of {len(next(iter(times.values()))['tight'])})")
    return total_pipe, total_tight, cpu_pipe / cpu_tight


# --- 2. the course-size case ------------------------------------------------------------------------------------


def write_course_tree(root: Path, seed: int = 0) -> float:
    """1,400 / 200 / 400 JPEGs of 1024 x 1024 (smooth random colour fields, half 'real', half 'fake')."""
    from PIL import Image

    def write(job):
        split, label, index = job
        rng = np.random.default_rng([seed, index, label == "fake", list(COURSE_COUNTS).index(split)])
        small = Image.fromarray(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8))
        image = small.resize((COURSE_SIDE, COURSE_SIDE), Image.Resampling.BICUBIC)
        path = root / split / label / f"{index:04d}.jpg"
        image.save(path, quality=90)

    jobs = []
    for split, count in COURSE_COUNTS.items():
        for label in ("real", "fake"):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            jobs += [(split, label, index) for index in range(count // 2)]
    started = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(write, jobs))
    return time.perf_counter() - started


def step_time(make, size: int, classes: int, device, how, steps: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one training step (batch 32) after one warm-up step."""
    model = make()
    tight_loop(model, [32], size, classes, [], device, how)
    samples = []
    for _ in range(steps):
        with Clock() as clock:
            tight_loop(model, [32], size, classes, [], device, how)
        samples.append((clock.wall, clock.cpu))
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def course_size(values: dict, device, how, ratio: float, steps: int, feature_sample: int) -> float:
    """Estimated minutes of Section 7 at 224 px on a course-size tree; prints every part."""
    import torch

    from ex4.data.faces import load_faces
    from ex4.models.resnet import frozen_backbone, resnet18_binary
    from ex4.train import surrogate
    from ex4.train.features import InputSpec, resize_side, run_inference
    from ex4.train.xgb import fit_xgboost, pixel_features

    n_lrs, epochs, batch = len(values["cnn_learning_rates"]), values["cnn_epochs"], values["cnn_batch_size"]
    root = Path(tempfile.mkdtemp(prefix="ex4-course-"))
    try:
        print(f"\ncourse-size synthetic tree: {COURSE_COUNTS} JPEGs of {COURSE_SIDE}^2 in {root}", flush=True)
        written = write_course_tree(root / "faces")
        print(f"  generated in {written:.1f} s", flush=True)
        parts: dict[str, tuple[float, float]] = {}  # name -> (wall s, CPU s)
        for side in (COURSE_SIZE, resize_side(COURSE_SIZE)):
            with Clock() as clock:
                data = load_faces(root / "faces", side)
            parts[f"decode at {side} px"] = (clock.wall, clock.cpu)
            print(f"  decode once at {side} px: {clock.wall:.1f} s (CPU {clock.cpu:.1f} s)", flush=True)
        n_train, n_eval = len(data.train.labels), len(data.val.labels) + len(data.test.labels)
        n_all = n_train + n_eval

        xgb_data = load_faces(root / "faces", COURSE_SIZE)
        with Clock() as clock:
            fit_xgboost(pixel_features(xgb_data.train.images, values["cnn_xgb_crop"]), xgb_data.train.labels,
                        values["seed"])
        parts["xgboost"] = (clock.wall, clock.cpu)
        print(f"  XGBoost fit (crop {values['cnn_xgb_crop']}): {clock.wall:.1f} s (CPU {clock.cpu:.1f} s)", flush=True)
        del xgb_data

        from ex4.train.features import centre_crop

        images = centre_crop(data.train.images[:feature_sample], COURSE_SIZE)
        backbone = frozen_backbone(resnet18_binary(0))
        run_inference(backbone, images[:8], InputSpec(normalize=True), device, how)  # warm-up
        with Clock() as clock:
            run_inference(backbone, images, InputSpec(normalize=True), device, how)
            sync(device)
        per_image = (clock.wall / len(images), clock.cpu / len(images))
        parts["features (linear + sklearn probe)"] = (per_image[0] * n_all, per_image[1] * n_all)
        print(f"  features: {per_image[0] * 1000:.1f} ms per image (CPU {per_image[1] * 1000:.1f} ms; "
              f"{len(images)} measured) -> {per_image[0] * n_all:.1f} s for {n_all} images", flush=True)
        del data, images

        step = step_time(lambda: resnet18_binary(0), COURSE_SIZE, 1, device, how, steps)
        steps_per_run = epochs * -(-n_train // batch)
        run = tuple(ratio * (steps_per_run * step[k] + n_eval * per_image[k]) for k in (0, 1))
        print(f"  training step at {COURSE_SIZE} px: {step[0]:.2f} s (CPU {step[1]:.2f} s, median of {steps}); one "
              f"run ({steps_per_run} steps + {n_eval} eval images) x overhead {ratio:.2f} -> {run[0]:.1f} s",
              flush=True)
        digits = len(surrogate.source_digits()[0])
        sur_train = digits - int(round(surrogate.HELD_OUT_SHARE * digits))
        sur_steps = surrogate.EPOCHS * -(-sur_train // surrogate.BATCH_SIZE)
        sur = tuple(ratio * (sur_steps * step[k] + (digits - sur_train) * per_image[k]) for k in (0, 1))
        print(f"  surrogate at {COURSE_SIZE} px (no ImageNet file): {sur_steps} steps -> {sur[0]:.1f} s", flush=True)
        parts["scratch"] = (n_lrs * run[0], n_lrs * run[1])
        parts["surrogate pretraining"] = sur
        parts["finetune"] = (n_lrs * run[0], n_lrs * run[1])
        total = sum(wall for wall, _ in parts.values())
        total_cpu = sum(cpu for _, cpu in parts.values())
        print(f"\ncourse-size estimate ({how.name}, {torch.get_num_threads()} torch thread(s) per run; CPU min = "
              f"process CPU time, with one thread what a quiet core takes):")
        for name, (wall, cpu_s) in parts.items():
            print(f"  {name:<36} {wall / 60:6.1f} min   CPU {cpu_s / 60:6.1f} min")
        print(f"  {'total, one run after another':<36} {total / 60:6.1f} min   CPU {total_cpu / 60:6.1f} min", flush=True)
        # the runs share out the cores by whole runs (one thread each); what cannot: decoding comes first, and a
        # fine-tune run waits for the surrogate and its features
        cores = 1 if device.type != "cpu" or torch.get_num_threads() > 1 else max(1, os.cpu_count() or 1)
        decode = sum(wall for name, (wall, _) in parts.items() if name.startswith("decode"))
        chain = decode + sur[0] + parts["features (linear + sklearn probe)"][0] + run[0]
        shared = max(chain, decode + (total - decode) / cores)
        print(f"  {f'total, runs side by side on {cores} core(s)':<36} {shared / 60:6.1f} min   (longest chain: "
              f"decode, surrogate, features, one fine-tune run = {chain / 60:.1f} min)", flush=True)
        return shared / 60
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- what lowers the floor ----------------------------------------------------------------------------------------


def floor(size: int, reps: int, steps: int) -> None:
    """Per-step CPU/wall seconds of the tight loop under several settings, interleaved (medians)."""
    import torch

    from ex4.models.resnet import resnet18_binary
    from ex4.train.features import Numerics

    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    configs = {
        "float32 NCHW (textbook)": (Numerics(None, False), threads, None),
        "float32 channels_last": (Numerics(None, True), threads, None),
        "float32 channels_last, fused Adam": (Numerics(None, True), threads, "fused"),
        "bf16 autocast channels_last": (Numerics(torch.bfloat16, True), threads, None),
        "float32 channels_last, 1 thread": (Numerics(None, True), 1, None),
    }
    models = {name: resnet18_binary(0) for name in configs}
    samples = {name: [] for name in configs}
    for rep in range(reps + 1):
        for name, (how, n_threads, adam) in configs.items():
            torch.set_num_threads(n_threads)
            model = models[name]
            if adam == "fused":
                from torch import nn

                model.to(memory_format=how.memory_format).train()
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
                x = torch.rand(32, 3, size, size).contiguous(memory_format=how.memory_format)
                y = torch.randint(0, 2, (32,)).float()
                with Clock() as clock:
                    for _ in range(steps):
                        optimizer.zero_grad(set_to_none=True)
                        nn.BCEWithLogitsLoss()(model(x).reshape(-1), y).backward()
                        optimizer.step()
            else:
                with Clock() as clock:
                    tight_loop(model, [32] * steps, size, 1, [], cpu, how)
            if rep:  # the first round is warm-up
                samples[name].append((clock.wall / steps, clock.cpu / steps))
    torch.set_num_threads(threads)
    print(f"\nfloor at {size} px, batch 32, {steps} steps x {reps} reps (load {os.getloadavg()[0]:.1f}):")
    for name, values in samples.items():
        wall = statistics.median(v[0] for v in values)
        cpu_s = statistics.median(v[1] for v in values)
        print(f"  {name:<36} wall {wall:.3f} s/step   CPU {cpu_s:.3f} s/step")


# --- main ------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", help="YAML parameter profile (default: params/default.yml if present)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"),
                        help="numerics (default: the cnn_precision parameter); float32 is NCHW, the textbook "
                             "arithmetic (a CPU without bf16 runs float32 channels_last: EX4_IGNORE_CPU_FLAGS)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the device parameter")
    parser.add_argument("--threads", type=int, help="torch threads per run (default: 1, what every Section 7 run "
                        "uses, section7.RUN_THREADS; the runs share out the cores by whole runs)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each overhead measurement")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate of the measured runs")
    parser.add_argument("--steps", type=int, default=3, help="steps per course-size step measurement")
    parser.add_argument("--feature-sample", type=int, default=256, help="images timed for the feature rate")
    parser.add_argument("--no-course", action="store_true", help="skip the course-size estimate")
    parser.add_argument("--floor", action="store_true", help="also measure what lowers the floor")
    parser.add_argument("--textbook", action="store_true", help="also run the textbook reference (slow)")
    args = parser.parse_args(argv)

    import torch

    from ex4 import params
    from ex4.data import resolve_faces_dir
    from ex4.train.device import cpu_description, pick_device
    from ex4.train.features import choose_numerics

    profile = args.params or (str(Path("params/default.yml")) if Path("params/default.yml").is_file() else None)
    values = params.resolve_cli(profile, args.set)
    values["faces_dir"] = str(resolve_faces_dir(values["faces_dir"]))
    if args.precision:
        values["cnn_precision"] = args.precision
    if args.device:
        values["device"] = args.device
    device = pick_device(values["device"])
    how, why = choose_numerics(device, values["cnn_precision"])
    from ex4.experiments.section7 import RUN_THREADS

    torch.set_num_threads(args.threads or RUN_THREADS)  # what every Section 7 run uses
    print(f"CPU: {cpu_description()}", flush=True)
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device.type}, numerics {how.name} "
          f"({why}); load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="ex4-bench-cnn-"))
    os.environ["EX4_ROOT"] = str(scratch)  # decoded-image caches (course-size tree included) go, and go away, here
    try:
        times = overhead(values, device, how, args.reps, args.lr)
        pipeline, tight, cpu_ratio = report_overhead(times)
        ratio = pipeline / tight
        minutes = float("nan") if args.no_course else course_size(values, device, how, ratio, args.steps,
                                                                   args.feature_sample)
        if args.floor:
            from ex4.experiments.section7 import resolve_image_size

            floor(resolve_image_size(values["cnn_image_size"], Path(values["faces_dir"]))[0], args.reps, 4)
        if args.textbook:
            from reference_cnn import compare_with_textbook

            compare_with_textbook(values, scratch)
        print(f"peak RSS {peak_rss_gib():.2f} GiB; overhead by CPU time {cpu_ratio:.2f}x; load average now "
              f"{os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"section7 overhead: {ratio:.2f}x over the tight loop (pipeline {pipeline:.1f} s, tight loop {tight:.1f} s), "
          f"course-size estimate {minutes:.0f} min")


if __name__ == "__main__":
    main()
