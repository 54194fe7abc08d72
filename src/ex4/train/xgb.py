"""The XGBoost baseline: default `XGBClassifier()` on flattened, centre-cropped pixels (the course protocol).

Pixels are scaled to [0, 1] and flattened channel-first, exactly what `ToTensor()(img).flatten()` gives, so the
trees see the same numbers as in a torchvision pipeline.

Memory, without changing a tree: with 64x64x3 = 12,288 features one node's histogram (256 bins, double gradient
pairs) is ~50 MB. The default depth-wise growth builds the histograms of a whole level of a tree at once (up to 32
nodes at depth 5), which took the fit to +1.5 GiB over its data on the stand-in, and XGBoost caches up to 65,536
node histograms besides. So the trees are grown node by node (`grow_policy="lossguide"`) with a cache of
`HIST_CACHE_NODES` histograms: every split of a depth-wise tree is decided by its own node's histogram alone, and
with no leaf limit (`max_leaves=0`, the default) and the default `max_depth=6` loss-guided growth makes exactly the
same splits, gains, covers and leaf values, only in another order (tested against `XGBClassifier()` on several data
sets in tests/test_xgb.py, and bit-identical margins on the stand-in: +0.6 GiB peak instead of +1.5, and no
slower). The freed memory of the quantile sketch is handed back before the trees grow (`ex4.memory`). These are
resource settings, not hyper-parameters: the model is `XGBClassifier()` with default hyper-parameters.
"""

from __future__ import annotations

import numpy as np

from ex4.memory import release_freed_memory
from ex4.train.features import centre_crop

HIST_CACHE_NODES = 4
GROW_POLICY = "lossguide"  # node by node; the same trees as the default "depthwise" (module docstring)
# One thread, like every Section 7 run: the runs share out the cores by whole runs (XGBoost beside the networks),
# and a result that does not depend on the machine's core count can be computed anywhere under the same key.
THREADS = 1


def pixel_features(images: np.ndarray, crop: int) -> np.ndarray:
    """uint8 [n, H, W, 3] -> float32 [n, 3 * crop * crop]: centre crop, [0, 1] scaling, CHW flattening."""
    cropped = centre_crop(images, crop)
    return (cropped.transpose(0, 3, 1, 2).reshape(len(images), -1).astype(np.float32) / np.float32(255))


def _release_before_training():
    """An XGBoost callback that hands the quantile sketch's freed memory back once the DMatrix is built."""
    from xgboost.callback import TrainingCallback

    class ReleaseFreedMemory(TrainingCallback):
        def before_training(self, model):
            release_freed_memory()
            return model

    return ReleaseFreedMemory()


def fit_xgboost(features: np.ndarray, labels: np.ndarray, seed: int):
    """`XGBClassifier()` with its default hyper-parameters; only the seed, the thread count (`THREADS`) and how the
    trees are grown in memory (`GROW_POLICY`, `HIST_CACHE_NODES`: the same trees, see the module docstring) are
    set."""
    from xgboost import XGBClassifier

    model = XGBClassifier(random_state=seed, n_jobs=THREADS, grow_policy=GROW_POLICY,
                          max_cached_hist_node=HIST_CACHE_NODES, callbacks=[_release_before_training()])
    model.fit(features, labels)
    return model


def xgboost_logits(model, features: np.ndarray) -> np.ndarray:
    """Raw margins (log-odds of fake), so probabilities and BCE come out as for the torch baselines."""
    return model.predict(features, output_margin=True).astype(np.float32)
