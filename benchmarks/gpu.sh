#!/usr/bin/env bash
# Section 6 and Section 7 on a CUDA GPU: timings and a check of the results against the CPU path.
#
#   bash benchmarks/gpu.sh            # about 3-5 minutes on one modern GPU
#
# 1. Section 6, smoke profile: every mlp-* experiment on the GPU (torch engine) and on the CPU (compiled
#    kernel), timed; final test accuracies compared run by run (median |delta| <= 2 pp per experiment: the
#    engines differ by float32 rounding, which chaotic runs such as lr 1.0 amplify, hence the median).
# 2. Section 7 numerics: a ResNet18 trained 4 float32 steps from the same weights on the same batches on both
#    devices (logits within 2e-2 relative), and frozen-backbone features in the GPU's auto numerics (bf16
#    autocast, channels_last) against CPU float32 (cosine similarity >= 0.99 for every image).
# 3. Section 7 timings: the smoke profile and the default profile on the bundled stand-in (cold store), then
#    `benchmarks/cnn.py --device cuda` (overhead over the tight loop and the course-size synthetic estimate).
#
# Without a CUDA device it says so and exits 0. Exits 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH="${PWD}/src${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu.sh: no CUDA device here (torch.cuda.is_available() is false): nothing to measure, skipped."
    exit 0
fi

STORE=$(mktemp -d -t ex4-gpu-store-XXXX)
trap 'rm -rf "$STORE"' EXIT
export EX4_STORE="$STORE"
started=$(date +%s)

"$PYTHON" - <<'EOF'
import os, statistics, sys, time

import torch

from ex4 import experiments, params
from ex4.store import Store
from ex4.train.device import cpu_description

failures = []
print(f"GPU: {torch.cuda.get_device_name(0)}; CPU: {cpu_description()}; torch {torch.__version__}", flush=True)
store = Store(os.environ["EX4_STORE"])

# --- 1. Section 6, smoke profile, GPU against CPU -----------------------------------------------------------------
names = [name for name in experiments.registry() if name.startswith("mlp-")]
print("\nSection 6 (smoke profile)            GPU s    CPU s   median |d test acc| pp   max pp", flush=True)
gpu_total = cpu_total = 0.0
for name in names:
    outcomes = {}
    for device in ("cuda", "cpu"):
        values = params.resolve_cli("params/smoke.yml", [f"device={device}"])
        started = time.perf_counter()
        outcomes[device] = experiments.run(name, values, store=store).result
        outcomes[device + "_s"] = time.perf_counter() - started
    gpu_total += outcomes["cuda_s"]
    cpu_total += outcomes["cpu_s"]
    cpu_acc = {run["label"]: run["final"]["test_acc"] for run in outcomes["cpu"]["runs"]}
    deltas = [abs(run["final"]["test_acc"] - cpu_acc[run["label"]]) * 100 for run in outcomes["cuda"]["runs"]
              if run["label"] in cpu_acc and run["final"]["test_acc"] is not None and cpu_acc[run["label"]] is not None]
    median = statistics.median(deltas) if deltas else float("nan")
    print(f"  {name:<32} {outcomes['cuda_s']:7.1f}  {outcomes['cpu_s']:7.1f}   {median:20.2f}   {max(deltas, default=0):6.2f}",
          flush=True)
    if not deltas or median > 2.0:
        failures.append(f"Section 6 {name}: median |delta test acc| {median:.2f} pp > 2 pp")
print(f"  {'all':<32} {gpu_total:7.1f}  {cpu_total:7.1f}")

# --- 2. Section 7 numerics, GPU against CPU -------------------------------------------------------------------------
from torch import nn

from ex4.models.resnet import frozen_backbone, resnet18_binary
from ex4.train.cnn import batch_orders
from ex4.train.features import EXACT, InputSpec, choose_numerics, run_inference

generator = torch.Generator().manual_seed(0)
images = (torch.rand(64, 64, 64, 3, generator=generator) * 255).to(torch.uint8).numpy()
labels = torch.randint(0, 2, (64,), generator=generator)
logits = {}
for name in ("cpu", "cuda"):
    device = torch.device(name)
    torch.backends.cudnn.benchmark = False
    model = resnet18_binary(0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)
    for batch in batch_orders(64, 16, 1, 0)[0]:
        optimizer.zero_grad()
        nn.BCEWithLogitsLoss()(model(x[batch.to(device)]).reshape(-1), labels[batch].float().to(device)).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits[name] = model(x).reshape(-1).cpu()
relative = float((logits["cuda"] - logits["cpu"]).norm() / logits["cpu"].norm())
print(f"\nSection 7: 4 float32 Adam steps, logits GPU vs CPU: relative difference {relative:.2e} (limit 2e-2)")
if not relative <= 2e-2:
    failures.append(f"Section 7 float32 training: GPU logits differ from the CPU's by {relative:.2e}")
gpu_how, why = choose_numerics(torch.device("cuda"), "auto")
backbone = frozen_backbone(resnet18_binary(0))
cpu_features = run_inference(backbone, images, InputSpec(normalize=True), torch.device("cpu"), EXACT)
gpu_features = run_inference(backbone, images, InputSpec(normalize=True), torch.device("cuda"), gpu_how)
cosine = torch.nn.functional.cosine_similarity(cpu_features, gpu_features, dim=1).min().item()
print(f"Section 7: backbone features, GPU {gpu_how.name} vs CPU float32: min cosine similarity {cosine:.4f} "
      f"(limit 0.99)")
if not cosine >= 0.99:
    failures.append(f"Section 7 features: min cosine similarity {cosine:.4f} < 0.99")

# --- 3. Section 7 timings on the stand-in --------------------------------------------------------------------------
for profile in ("params/smoke.yml", "params/default.yml"):
    values = params.resolve_cli(profile, ["device=cuda"])
    started = time.perf_counter()
    result = experiments.run("cnn", values, store=store).result
    seconds = time.perf_counter() - started
    by_baseline = {}
    for run in result["runs"]:
        by_baseline[run["baseline"]] = by_baseline.get(run["baseline"], 0.0) + run["wall_time"]
    parts = ", ".join(f"{name} {value:.1f} s" for name, value in by_baseline.items())
    print(f"\nSection 7 ({profile}, cold store, GPU, {result['numerics']}, {result['setup']['image_size']} px): "
          f"{seconds:.1f} s; {parts}; surrogate {result['backbone_info'].get('wall_time', 0):.1f} s", flush=True)

if failures:
    print("\nFAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("\nchecks passed: GPU results agree with the CPU path within tolerance")
EOF

"$PYTHON" benchmarks/cnn.py --device cuda --reps 2
echo "gpu.sh: done in $(( $(date +%s) - started )) s"
