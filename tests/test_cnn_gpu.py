"""Section 7 on CUDA (skipped without a GPU), and the GPU benchmark script's behaviour without one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ex4.train.device import pick_device
from ex4.train.features import Batches, InputSpec, choose_numerics, to_input

ROOT = Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="runs the whole script on a GPU machine")
def test_gpu_script_exits_cleanly_without_a_gpu():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout and "skipped" in done.stdout


def test_auto_device_is_cuda_exactly_when_present():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@needs_cuda
def test_cuda_numerics_are_mixed_precision_channels_last():
    how, why = choose_numerics(torch.device("cuda"), "auto")
    assert how.autocast in (torch.bfloat16, torch.float16) and how.channels_last and why in ("cuda-bf16", "cuda-fp16")


@needs_cuda
def test_batches_live_on_the_gpu_and_equal_the_cpu_inputs():
    images = np.random.default_rng(0).integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    batches = Batches(images, InputSpec(normalize=True), torch.device("cuda"), channels_last=True)
    assert isinstance(batches.images, torch.Tensor) and batches.images.is_cuda
    rows = torch.tensor([3, 1, 7])
    on_gpu = batches(rows)
    on_cpu = to_input(images[rows.numpy()], InputSpec(normalize=True), torch.device("cpu"))
    assert on_gpu.is_cuda and on_gpu.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(on_gpu.cpu(), on_cpu)


@needs_cuda
def test_cnn_experiment_runs_on_cuda(monkeypatch, data_isolated_root, data_faces_tree, tmp_path):
    from ex4 import experiments, params
    from ex4.experiments import section7
    from ex4.store import Store

    monkeypatch.setattr(experiments, "registry", lambda: {e.name: e for e in section7.EXPERIMENTS})
    values = params.resolve(("test", {"cnn_image_size": 32, "cnn_learning_rates": [0.01], "cnn_batch_size": 4,
                                      "cnn_baselines": ["scratch"], "faces_dir": str(data_faces_tree(per_class=3)),
                                      "device": "auto"}))
    result = experiments.run("cnn", values, store=Store(tmp_path / "store")).result
    assert result["device"] == "cuda" and result["setup"]["device"] == "cuda"
    assert result["runs"][0]["train_loss"][0] is not None
