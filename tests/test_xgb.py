"""The XGBoost baseline grows exactly `XGBClassifier()`'s trees with less memory, and freed memory goes back."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn import datasets

from ex4.train.xgb import HIST_CACHE_NODES, fit_xgboost, pixel_features, xgboost_logits

xgboost = pytest.importorskip("xgboost")


def canonical(node: dict) -> tuple:
    """A tree without its node numbering: split feature, threshold, missing direction, gain and cover at every
    split, value and cover at every leaf (the order nodes were expanded in is what numbers them)."""
    if "leaf" in node:
        return ("leaf", node["leaf"], node["cover"])
    children = {child["nodeid"]: child for child in node["children"]}
    return (node["split"], node["split_condition"], node["missing"] == node["yes"], node["gain"], node["cover"],
            canonical(children[node["yes"]]), canonical(children[node["no"]]))


def trees(model) -> list[tuple]:
    return [canonical(json.loads(tree)) for tree in model.get_booster().get_dump(dump_format="json", with_stats=True)]


def pixel_like(n: int = 300, side: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class shifts a few pixels' brightness: 256 levels per feature, like the stand-in's."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 256, size=(n, side, side, 3)).astype(np.int64)
    images[labels == 1, side // 2 - 2:side // 2 + 2, side // 2 - 2:side // 2 + 2, 0] += 40
    return pixel_features(np.clip(images, 0, 255).astype(np.uint8), side), labels


def data_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    digits = datasets.load_digits()
    X, y = datasets.make_classification(600, 80, n_informative=20, random_state=1)
    rng = np.random.default_rng(0)
    with_nan = rng.normal(size=(800, 30))
    with_nan[rng.random(with_nan.shape) < 0.1] = np.nan
    return {"pixels": pixel_like(),
            "digits": (digits.data.astype(np.float32), (digits.target >= 5).astype(int)),
            "make_classification": (X, y),
            "missing values": (with_nan, (np.nansum(with_nan[:, :5], 1) + rng.normal(size=800) > 0).astype(int))}


@pytest.mark.parametrize("name", list(data_sets()))
def test_fit_xgboost_grows_the_trees_of_the_default_classifier(name):
    features, labels = data_sets()[name]
    ours = fit_xgboost(features, labels, seed=3)
    default = xgboost.XGBClassifier(random_state=3, n_jobs=1).fit(features, labels)  # depth-wise, full cache
    assert len(trees(ours)) == 100 and trees(ours) == trees(default)
    assert np.array_equal(xgboost_logits(ours, features), default.predict(features, output_margin=True))
    params = ours.get_params()
    assert (params["grow_policy"], params["max_cached_hist_node"]) == ("lossguide", HIST_CACHE_NODES)
    # no hyper-parameter of the model is set besides the seed
    assert all(params[name] is None for name in ("max_depth", "learning_rate", "n_estimators", "max_leaves",
                                                 "min_child_weight", "subsample", "reg_lambda", "max_bin"))


def test_the_comparison_would_see_another_tree():
    features, labels = data_sets()["make_classification"]
    shallower = xgboost.XGBClassifier(random_state=3, n_jobs=1, max_depth=5).fit(features, labels)
    assert trees(shallower) != trees(fit_xgboost(features, labels, seed=3))


def test_freed_heap_memory_goes_back_to_the_os():
    script = r"""
import sys
from ex4.memory import release_freed_memory
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
chunks = [bytearray(64 * 1024) for _ in range(8000)]  # ~500 MB of heap blocks (below mmap's threshold)
pin = bytearray(64 * 1024)  # keeps the heap's top in use, so free() alone cannot shrink it
del chunks[:]
before = rss()
done = release_freed_memory()
print(before, rss(), done)
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    before, after, done = int(out[0]), int(out[1]), out[2] == "True"
    assert done and before - after > 300, (before, after)
