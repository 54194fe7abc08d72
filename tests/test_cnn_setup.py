"""Section 7's set-up decisions: bf16 by the CPU's instruction set, `cnn_image_size: auto`, the batch-norm batch rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import small_surrogate
from ex4 import experiments, params
from ex4.errors import Ex4Error
from ex4.experiments import section7
from ex4.store import Store
from ex4.train import device as device_module
from ex4.train import surrogate
from ex4.train.cnn import batch_orders, fit_binary
from ex4.train.features import EXACT, choose_numerics

CPU = torch.device("cpu")
# abridged /proc/cpuinfo of two AVX-512 CPUs: one without bf16 instructions (the Xeon of issue 9), one with
XEON_NO_BF16 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU @ 2.00GHz
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni
processor\t: 1
flags\t\t: fpu sse avx512f avx512_bf16
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve bf16 i8mm
"""


def mock_cpu(monkeypatch, cpuinfo: str, machine: str = "x86_64") -> None:
    monkeypatch.setattr(device_module, "read_cpuinfo", lambda: cpuinfo)
    monkeypatch.setattr(device_module.platform, "machine", lambda: machine)
    device_module.cpu_flags.cache_clear()
    device_module.cpu_model.cache_clear()
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)


@pytest.fixture(autouse=True)
def fresh_cpu_caches():
    yield
    device_module.cpu_flags.cache_clear()
    device_module.cpu_model.cache_clear()


# --- bf16 by instruction set -----------------------------------------------------------------------------------


def test_flags_are_read_from_the_first_processor():
    flags = device_module.parse_cpu_flags(XEON_NO_BF16)
    assert "avx512f" in flags and "avx512_bf16" not in flags  # the second processor's line is not read
    assert device_module.parse_cpu_flags("") == frozenset()


@pytest.mark.parametrize("cpuinfo, machine, native", [
    (XEON_NO_BF16, "x86_64", False),
    (SAPPHIRE_RAPIDS, "x86_64", True),
    (GRAVITON3, "aarch64", True),
    (GRAVITON3, "x86_64", False),  # an Arm flag name means nothing on x86
    ("", "x86_64", False),  # no /proc/cpuinfo (macOS, Windows): float32
])
def test_native_bf16_follows_the_instruction_set(monkeypatch, cpuinfo, machine, native):
    mock_cpu(monkeypatch, cpuinfo, machine)
    assert device_module.cpu_has_native_bf16() is native
    how, why = choose_numerics(CPU, "auto")
    if native:
        assert how.autocast == torch.bfloat16 and how.channels_last and why == "cpu-native-bf16"
    else:
        assert how.autocast is None and how.channels_last and why == "cpu-no-bf16"


def test_bf16_is_not_chosen_without_onednn(monkeypatch):
    mock_cpu(monkeypatch, SAPPHIRE_RAPIDS)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert choose_numerics(CPU, "auto")[0].autocast is None


def test_explicit_precision_overrides_the_flags(monkeypatch):
    mock_cpu(monkeypatch, XEON_NO_BF16)
    assert choose_numerics(CPU, "bfloat16")[0].autocast == torch.bfloat16
    mock_cpu(monkeypatch, SAPPHIRE_RAPIDS)
    assert choose_numerics(CPU, "float32")[0] == EXACT


def test_cpu_description_names_the_model_and_flags(monkeypatch):
    mock_cpu(monkeypatch, SAPPHIRE_RAPIDS)
    text = device_module.cpu_description()
    assert "Platinum 8481C" in text and "AVX-512 yes" in text and "AMX yes" in text and "amx_bf16" in text
    mock_cpu(monkeypatch, XEON_NO_BF16)
    assert "bf16 would be emulated" in device_module.cpu_description()


def test_ignored_flags_take_the_path_of_a_cpu_without_them(monkeypatch):
    mock_cpu(monkeypatch, SAPPHIRE_RAPIDS)
    monkeypatch.setenv("EX4_IGNORE_CPU_FLAGS", "AVX512_BF16, amx_bf16")
    flags = device_module.cpu_flags()
    assert flags >= {"avx512f", "amx_tile"} and not {"avx512_bf16", "amx_bf16"} & flags
    assert not device_module.cpu_has_native_bf16()
    assert choose_numerics(CPU, "auto")[1] == "cpu-no-bf16"
    text = device_module.cpu_description()
    assert "bf16 would be emulated" in text and text.endswith("(EX4_IGNORE_CPU_FLAGS ignores amx_bf16, avx512_bf16)")
    monkeypatch.setenv("EX4_IGNORE_CPU_FLAGS", "avx512_bf16")  # one of the two is enough for bf16
    device_module.cpu_flags.cache_clear()
    assert device_module.cpu_has_native_bf16() and "ignores avx512_bf16)" in device_module.cpu_description()
    monkeypatch.setenv("EX4_IGNORE_CPU_FLAGS", "sve2")  # a flag this CPU does not have: nothing changes, nothing said
    device_module.cpu_flags.cache_clear()
    assert device_module.cpu_has_native_bf16() and "ignores" not in device_module.cpu_description()


def test_a_malformed_ignored_flag_is_named(monkeypatch):
    mock_cpu(monkeypatch, SAPPHIRE_RAPIDS)
    monkeypatch.setenv("EX4_IGNORE_CPU_FLAGS", "avx512_bf16;amx")
    with pytest.raises(Ex4Error, match=r"^EX4_IGNORE_CPU_FLAGS: 'avx512_bf16;amx' is not a CPU flag name"):
        device_module.cpu_flags()


# --- the store key and the result follow the decision ------------------------------------------------------------


@pytest.fixture
def tiny_cnn(monkeypatch, data_isolated_root, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(experiments, "registry", lambda: {e.name: e for e in section7.EXPERIMENTS})
    small_surrogate(monkeypatch, digits=37)
    store = Store(tmp_path / "store")

    def run(faces_dir: Path, **overrides):
        values = params.resolve(("test", {"cnn_learning_rates": [0.01], "cnn_batch_size": 4, "cnn_xgb_crop": 8,
                                          "cnn_mistakes": 2, "cnn_baselines": ["scratch"], "device": "cpu",
                                          "faces_dir": str(faces_dir), **overrides}))
        return experiments.run("cnn", values, store=store)

    run.store = store
    return run


def test_store_key_and_numerics_record_follow_the_cpu(monkeypatch, tiny_cnn, data_faces_tree):
    faces = data_faces_tree(per_class=2)
    mock_cpu(monkeypatch, XEON_NO_BF16)
    emulated = tiny_cnn(faces, cnn_image_size=32)
    assert emulated.result["numerics"] == "float32, channels_last" == emulated.result["setup"]["numerics"]
    assert emulated.result["runs"][0]["params"]["numerics"] == "float32, channels_last"
    mock_cpu(monkeypatch, SAPPHIRE_RAPIDS)
    native = tiny_cnn(faces, cnn_image_size=32)
    assert not native.hit and native.key != emulated.key  # a shared store never mixes the two
    assert native.result["numerics"] == "bfloat16 autocast, channels_last"
    assert native.result["setup"]["numerics_reason"] == "cpu-native-bf16"
    assert "amx_bf16" in native.result["setup"]["bf16_flags"]
    assert "Platinum 8481C" in native.result["setup"]["hardware"]
    mock_cpu(monkeypatch, XEON_NO_BF16)
    assert tiny_cnn(faces, cnn_image_size=32).hit
    mock_cpu(monkeypatch, SAPPHIRE_RAPIDS)  # its bf16 flags ignored: the same key and numbers as a CPU without them
    monkeypatch.setenv("EX4_IGNORE_CPU_FLAGS", "avx512_bf16,amx_bf16")
    ignored = tiny_cnn(faces, cnn_image_size=32)
    assert ignored.hit and ignored.key == emulated.key


# --- cnn_image_size: auto ---------------------------------------------------------------------------------------


def test_image_size_parameter_takes_auto_or_a_side():
    assert params.defaults()["cnn_image_size"] == "auto"
    assert params.resolve(("t", {"cnn_image_size": 64}))["cnn_image_size"] == 64
    with pytest.raises(Ex4Error, match="cnn_image_size.*expected auto or an integer"):
        params.resolve(("t", {"cnn_image_size": "large"}))
    with pytest.raises(Ex4Error, match="cnn_image_size.*>= 32"):
        params.resolve(("t", {"cnn_image_size": 31}))


def test_auto_is_the_course_size_for_user_images_and_the_native_size_for_the_stand_in(tmp_path):
    assert section7.resolve_image_size("auto", tmp_path)[0] == 224
    assert section7.resolve_image_size(96, tmp_path) == (96, "parameter")
    (tmp_path / "manifest.json").write_text(json.dumps({"standin": True, "recipe": {"image_side": 64}}))
    size, why = section7.resolve_image_size("auto", tmp_path)
    assert size == 64 and why == "standin-native"
    (tmp_path / "manifest.json").write_text(json.dumps({"standin": False, "recipe": {"image_side": 64}}))
    assert section7.resolve_image_size("auto", tmp_path) == (224, "course")  # a user's folder gets the course protocol


def test_bundled_stand_in_resolves_to_its_native_32(data_isolated_root):
    from ex4.data import resolve_faces_dir
    from PIL import Image

    folder = resolve_faces_dir(None)
    assert section7.resolve_image_size("auto", folder) == (32, "standin-native")
    with Image.open(next((folder / "test" / "fake").glob("*.png"))) as image:  # the files themselves are 32 x 32
        assert image.size == (32, 32)


def test_resolved_size_enters_the_key_and_the_result(tiny_cnn, data_faces_tree):
    faces = data_faces_tree(per_class=2)
    (faces / "manifest.json").write_text(json.dumps({"standin": True, "recipe": {"image_side": 16}}))
    auto = tiny_cnn(faces, cnn_baselines=["scratch", "finetune"], cnn_weights="surrogate")
    setup = auto.result["setup"]
    assert setup["image_size"] == 16 and setup["requested_image_size"] == "auto" and setup["image_size_reason"] == "standin-native"
    assert {run["params"]["image_size"] for run in auto.result["runs"]} == {16}
    assert auto.result["backbone_info"]["input"] == {"resize": 18, "crop": 16, "normalize": "imagenet"}
    (faces / "manifest.json").write_text(json.dumps({"standin": True, "recipe": {"image_side": 20}}))
    other = tiny_cnn(faces, cnn_baselines=["scratch", "finetune"], cnn_weights="surrogate")
    assert other.key != auto.key and other.result["setup"]["image_size"] == 20


# --- one-sample last batch --------------------------------------------------------------------------------------


def test_one_sample_last_batch_is_merged_only_when_asked():
    merged = batch_orders(33, 32, epochs=2, seed=0, merge_single=True)
    assert [[len(batch) for batch in epoch] for epoch in merged] == [[33], [33]]
    plain = batch_orders(33, 32, epochs=2, seed=0)
    assert [[len(batch) for batch in epoch] for epoch in plain] == [[32, 1], [32, 1]]
    for merged_epoch, plain_epoch in zip(merged, plain):  # same order, same samples
        assert torch.equal(merged_epoch[0], torch.cat(plain_epoch))
    assert [len(b) for b in batch_orders(34, 32, 1, 0, merge_single=True)[0]] == [32, 2]
    assert [len(b) for b in batch_orders(1, 32, 1, 0, merge_single=True)[0]] == [1]


def small_bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # BatchNorm1d on pooled features: one value per channel for a one-image batch, as ResNet18's last block
    # at small inputs (1 x 1 maps), so a one-image batch fails here as it does there
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4),
                         nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))


def test_batch_norm_training_survives_33_images_at_batch_32():
    images = torch.rand(33, 3, 8, 8)
    labels = torch.arange(33) % 2
    losses = fit_binary(small_bn_net(), lambda rows: images[rows], labels, lr=0.01, batch_size=32, epochs=2,
                        seed=0, device=CPU)
    assert len(losses) == 2 and all(loss is not None for loss in losses)
    with pytest.raises(ValueError, match="more than 1 value per channel"):  # what the rule prevents
        model = small_bn_net().train()
        model(images[:1])


def test_a_single_training_image_with_batch_norm_is_one_line():
    with pytest.raises(Ex4Error, match="1 training image.*batch norm needs at least 2"):
        fit_binary(small_bn_net(), lambda rows: torch.rand(len(rows), 3, 8, 8), torch.tensor([1]), lr=0.01,
                   batch_size=32, epochs=1, seed=0, device=CPU)


def test_scratch_and_finetune_train_with_a_one_image_last_batch(tiny_cnn, data_faces_tree):
    faces = data_faces_tree(per_class=6)
    outcome = tiny_cnn(faces, cnn_image_size=32, cnn_batch_size=4, cnn_train_subset=9,
                       cnn_baselines=["scratch", "finetune"], cnn_weights="surrogate")
    assert [run["label"] for run in outcome.result["runs"]] == ["scratch lr=0.01", "finetune lr=0.01"]
    assert all(run["train_loss"][0] is not None for run in outcome.result["runs"])


def test_surrogate_pretraining_survives_a_one_image_last_batch(monkeypatch):
    full_source = surrogate.source_digits
    # 37 digits: 4 held out, 33 train = one batch of 32 + one image
    monkeypatch.setattr(surrogate, "source_digits", lambda exclude=(): tuple(part[:37] for part in full_source(exclude)))
    state, info = surrogate.pretrain_surrogate([], side=18, crop=16, seed=0, device=CPU, epochs=1)
    assert info["train_images"] == 33 and info["train_images"] % surrogate.BATCH_SIZE == 1
    assert np.isfinite(state["conv1.weight"].numpy()).all()
