"""Experiment `cnn` end to end on tiny generated image trees: result layout, store reuse, weights, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import small_surrogate
from ex4 import experiments, params
from ex4.errors import Ex4Error
from ex4.experiments import section7
from ex4.store import Store
from ex4.train import surrogate

TINY = {"cnn_image_size": 32, "cnn_learning_rates": [0.01], "cnn_batch_size": 4, "cnn_xgb_crop": 8}


@pytest.fixture
def cnn(monkeypatch, data_isolated_root, tmp_path):
    """Run `cnn` through `experiments.run` with tiny settings, an empty torch hub and a two-digit-class surrogate."""
    torch_home = tmp_path / "torch-home"
    torch_home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(experiments, "registry", lambda: {e.name: e for e in section7.EXPERIMENTS})
    small_surrogate(monkeypatch)
    store = Store(tmp_path / "store")

    def run(faces_dir: Path, **overrides):
        values = params.resolve(("test", {**TINY, "faces_dir": str(faces_dir), **overrides}))
        return experiments.run("cnn", values, store=store)

    run.store = store
    run.torch_home = torch_home
    return run


def test_all_baselines_give_the_documented_result_and_rerun_from_the_store(cnn, data_faces_tree):
    faces = data_faces_tree(per_class=4)
    outcome = cnn(faces)
    result = outcome.result
    assert not outcome.hit
    assert result["experiment"] == "cnn" and result["backbone"].startswith("surrogate:sklearn-digits")
    assert result["backbone"].startswith("surrogate:") and "backbone_label" not in result
    assert result["data"]["counts"] == {split: {"real": 4, "fake": 4} for split in ("train", "val", "test")}
    assert result["data"]["is_standin"] is False and len(result["data"]["test_ids"]) == 8
    labels = [run["label"] for run in result["runs"]]
    assert labels == ["xgboost", "scratch lr=0.01", "linear_probe lr=0.01", "sklearn_probe", "finetune lr=0.01"]
    for run in result["runs"]:
        assert set(run) >= {"baseline", "lr", "backbone", "label", "params", "final", "confusion", "wall_time"}
        assert set(run["final"]) == {"val_acc", "test_acc", "val_loss", "test_loss"}
        assert np.array(run["confusion"]["test"]).sum() == 8
        assert (run["lr"] is None) == (run["baseline"] in ("xgboost", "sklearn_probe"))
        expected_backbone = "none" if run["baseline"] in ("xgboost", "scratch") else result["backbone"]
        assert run["backbone"] == expected_backbone
    assert not {"ranking", "summary", "mistakes"} & set(result)  # computed by analysis when a chapter asks
    probabilities = outcome.tensors["probabilities"]["test"]
    assert set(probabilities) == set(labels) and all(value.shape == (8,) for value in probabilities.values())
    json.dumps(result, allow_nan=False)  # standard JSON: no NaN anywhere

    again = cnn(faces)
    assert again.hit and again.result == json.loads(json.dumps(result))
    experiments_seen = [row["experiment"] for row in cnn.store.entries()]
    # one stored run per (baseline, lr), the surrogate and the features each once, and the assembled result
    assert sorted(experiments_seen) == ["cnn", "cnn-features", *["cnn-run"] * 5, "cnn-surrogate"]


def test_same_seed_gives_the_same_numbers(cnn, data_faces_tree, tmp_path):
    faces = data_faces_tree(per_class=3)
    first = cnn(faces, cnn_baselines=["scratch", "linear_probe"], cnn_weights="surrogate").result
    values = params.resolve(("test", {**TINY, "faces_dir": str(faces), "cnn_baselines": ["scratch", "linear_probe"],
                                      "cnn_weights": "surrogate"}))
    second = experiments.run("cnn", values, store=Store(tmp_path / "other-store")).result
    assert [run["final"] for run in first["runs"]] == [run["final"] for run in second["runs"]]


def test_imagenet_requested_but_missing_is_one_line_naming_the_file(cnn, data_faces_tree):
    with pytest.raises(Ex4Error) as caught:
        cnn(data_faces_tree(), cnn_baselines=["linear_probe"], cnn_weights="imagenet")
    message = str(caught.value)
    expected = cnn.torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in message and "cnn_allow_download" in message and "\n" not in message


def write_fake_imagenet(path: Path) -> None:
    from torchvision.models import resnet18

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(resnet18(weights=None).state_dict(), path)


def test_auto_uses_imagenet_weights_when_the_file_is_present(cnn, data_faces_tree):
    faces = data_faces_tree()
    values = params.resolve(("test", {**TINY, "faces_dir": str(faces), "cnn_baselines": ["sklearn_probe"]}))
    key_without = section7.key_params(values)
    write_fake_imagenet(cnn.torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    assert section7.key_params(values) != key_without  # the stored result must not be reused
    result = cnn(faces, cnn_baselines=["sklearn_probe"]).result
    assert result["backbone"] == "imagenet" and "backbone_label" not in result
    assert result["runs"][0]["backbone"] == "imagenet"


def test_weights_file_that_is_not_a_resnet18_is_named(cnn, data_faces_tree, tmp_path):
    bad = tmp_path / "weights.pth"
    torch.save({"layer.weight": torch.zeros(2)}, bad)
    with pytest.raises(Ex4Error, match="weights.pth: not a torchvision ResNet18"):
        cnn(data_faces_tree(), cnn_baselines=["sklearn_probe"], cnn_weights=str(bad))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(Ex4Error, match="garbage.pth: cannot read weights"):
        cnn(data_faces_tree(name="faces2"), cnn_baselines=["sklearn_probe"], cnn_weights=str(garbage))


def test_a_weights_file_labels_the_backbone(cnn, data_faces_tree, tmp_path):
    weights = tmp_path / "mine.pth"
    write_fake_imagenet(weights)
    result = cnn(data_faces_tree(), cnn_baselines=["sklearn_probe"], cnn_weights=str(weights)).result
    assert result["backbone"] == "file:mine.pth" and result["runs"][0]["backbone"] == "file:mine.pth"


@pytest.mark.parametrize("damage", ["corrupt", "unknown_class", "empty_class", "one_class"])
def test_bad_image_trees_fail_with_one_line(cnn, data_faces_tree, damage):
    faces = data_faces_tree()
    if damage == "corrupt":
        (faces / "train" / "real" / "000.png").write_bytes(b"\x89PNG broken")
        fragment = "000.png: cannot decode image"
    elif damage == "unknown_class":
        (faces / "val" / "fake").rename(faces / "val" / "other")
        fragment = "other: class folder name must contain"
    elif damage == "empty_class":
        for path in (faces / "test" / "fake").iterdir():
            path.unlink()
        fragment = "class folder has no images"
    else:
        import shutil

        shutil.rmtree(faces / "train" / "fake")
        fragment = "needs both real and fake"
    with pytest.raises(Ex4Error, match=fragment):
        cnn(faces, cnn_baselines=["xgboost"])


def test_grayscale_rgba_and_tiny_images_are_converted(cnn, tmp_path):
    from conftest import data_write_image

    root = tmp_path / "modes"
    for split in ("train", "val", "test"):
        for folder, colour, mode in (("real", (200, 40, 40), "L"), ("fake", (40, 40, 200), "RGBA")):
            for number in range(3):
                data_write_image(root / split / folder / f"{number}.png", colour, size=(5, 3), mode=mode)
    result = cnn(root, cnn_baselines=["scratch"]).result
    assert [run["label"] for run in result["runs"]] == ["scratch lr=0.01"]
    assert result["data"]["counts"]["test"] == {"real": 3, "fake": 3}


def test_xgboost_crop_larger_than_its_resize_is_rejected(cnn, data_faces_tree):
    with pytest.raises(Ex4Error, match="'cnn_xgb_crop' = 300: must be <= 224"):
        cnn(data_faces_tree(), cnn_baselines=["xgboost"], cnn_xgb_crop=300)


def test_train_subset_is_stratified_and_deterministic():
    labels = np.array([0] * 30 + [1] * 10)
    rows = section7.train_subset_rows(labels, 8, seed=1)
    assert len(rows) == 8 and labels[rows].sum() == 2 and np.array_equal(rows, np.sort(rows))
    assert np.array_equal(rows, section7.train_subset_rows(labels, 8, seed=1))
    assert section7.train_subset_rows(labels, 40, seed=1) is None


def test_surrogate_never_sees_the_stand_ins_val_and_test_digits(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"standin": True, "source_indices": {"train": [0, 1], "val": [5, 7], "test": [7, 11]}}))
    assert section7.excluded_digits(tmp_path) == [5, 7, 11]
    images, classes, kept = surrogate.source_digits([5, 7, 11])
    assert len(kept) == 1797 - 3 and not {5, 7, 11} & set(kept.tolist()) and len(images) == len(classes)
    assert section7.excluded_digits(tmp_path / "elsewhere") == []


def counting(monkeypatch, module, name) -> list:
    """Record the calls of `module.name` (its first two arguments) while still making them."""
    calls: list = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args[1:3])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def stored_runs(store: Store) -> dict[str, dict]:
    """store key -> meta params of every stored `cnn-run`."""
    return {row["key"]: row["params"] for row in store.entries() if row["experiment"] == "cnn-run"}


def test_a_new_learning_rate_trains_one_run_per_torch_baseline_and_runs_do_not_depend_on_each_other(
        cnn, data_faces_tree, monkeypatch, tmp_path):
    faces = data_faces_tree(per_class=3)
    pretrain = counting(monkeypatch, surrogate, "pretrain_surrogate")
    first = cnn(faces)
    assert len(pretrain) == 1  # three pretrained runs, one surrogate
    before = stored_runs(cnn.store)
    computed = counting(monkeypatch, section7, "compute_run")
    wider = cnn(faces, cnn_learning_rates=[0.01, 0.1])
    assert sorted(computed) == [("finetune", 0.1), ("linear_probe", 0.1), ("scratch", 0.1)]
    assert len(stored_runs(cnn.store)) == len(before) + 3 and len(pretrain) == 1
    assert wider.result["runs"][:2] == first.result["runs"][:2]  # xgboost and scratch lr=0.01, read back
    # fewer baselines or rates: a new result, assembled from stored runs without computing any
    computed.clear()
    fewer = cnn(faces, cnn_baselines=["finetune", "xgboost"], cnn_learning_rates=[0.1])
    assert computed == [] and not fewer.hit
    assert [run["label"] for run in fewer.result["runs"]] == ["finetune lr=0.1", "xgboost"]
    # a run computed alone, in another store, is the same run: same key, same numbers, same probabilities
    alone_store = Store(tmp_path / "alone")
    values = params.resolve(("test", {**TINY, "faces_dir": str(faces), "cnn_learning_rates": [0.1]}))
    alone = experiments.run("cnn", values, store=alone_store)
    assert set(stored_runs(alone_store)) <= set(stored_runs(cnn.store))
    together = {run["label"]: run for run in wider.result["runs"]}
    for run in alone.result["runs"]:
        assert {k: v for k, v in run.items() if k != "wall_time"} == \
            {k: v for k, v in together[run["label"]].items() if k != "wall_time"}
        for split in ("val", "test"):
            assert torch.equal(alone.tensors["probabilities"][split][run["label"]],
                               wider.tensors["probabilities"][split][run["label"]])


def test_a_run_key_names_what_decides_its_numbers_and_nothing_else(cnn, data_faces_tree):
    faces = data_faces_tree(per_class=2)
    cnn(faces, cnn_baselines=["xgboost", "scratch"])
    runs = {params_["baseline"]: params_ for params_ in stored_runs(cnn.store).values()}
    assert runs["xgboost"] == {"baseline": "xgboost", "lr": None, "seed": 0, "train_subset": None, "crop": 8,
                               "resize": 224}
    assert runs["scratch"] == {"baseline": "scratch", "lr": 0.01, "seed": 0, "train_subset": None, "image_size": 32,
                               "device": "cpu", "numerics": runs["scratch"]["numerics"], "batch_size": 4,
                               "epochs": 1}
    before = set(stored_runs(cnn.store))
    cnn(faces, cnn_baselines=["xgboost"], cnn_image_size=40, cnn_batch_size=2)  # neither decides XGBoost's numbers
    assert set(stored_runs(cnn.store)) == before
