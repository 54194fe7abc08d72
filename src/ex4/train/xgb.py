"""The XGBoost baseline: default `XGBClassifier()` on flattened, centre-cropped pixels (the course protocol).

Pixels are scaled to [0, 1] and flattened channel-first, exactly what `ToTensor()(img).flatten()` gives, so the
trees see the same numbers as in a torchvision pipeline.

Memory: with 64x64x3 = 12,288 features, one node's histogram (256 bins, double gradient pairs) is ~50 MB, and
XGBoost caches up to 65,536 of them by default, which took 3.6 GiB peak RSS on the stand-in. The cache only
saves recomputation: `max_cached_hist_node=16` gave bit-identical predictions there at 2.4 GiB. It is a resource
setting, not a hyper-parameter; the model is still `XGBClassifier()` with default hyper-parameters.
"""

from __future__ import annotations

import numpy as np

from ex4.train.features import centre_crop

HIST_CACHE_NODES = 16
# One thread, like every Section 7 run: the runs share out the cores by whole runs (XGBoost beside the networks),
# and a result that does not depend on the machine's core count can be computed anywhere under the same key.
THREADS = 1


def pixel_features(images: np.ndarray, crop: int) -> np.ndarray:
    """uint8 [n, H, W, 3] -> float32 [n, 3 * crop * crop]: centre crop, [0, 1] scaling, CHW flattening."""
    cropped = centre_crop(images, crop)
    return (cropped.transpose(0, 3, 1, 2).reshape(len(images), -1).astype(np.float32) / np.float32(255))


def fit_xgboost(features: np.ndarray, labels: np.ndarray, seed: int):
    """`XGBClassifier()` with its default hyper-parameters; only the seed, the thread count (`THREADS`) and the
    histogram cache (a memory setting) are set."""
    from xgboost import XGBClassifier

    model = XGBClassifier(random_state=seed, n_jobs=THREADS, max_cached_hist_node=HIST_CACHE_NODES)
    model.fit(features, labels)
    return model


def xgboost_logits(model, features: np.ndarray) -> np.ndarray:
    """Raw margins (log-odds of fake), so probabilities and BCE come out as for the torch baselines."""
    return model.predict(features, output_margin=True).astype(np.float32)
