"""One compiled call trains one epoch of R stacked small MLPs: the CPU engine behind Section 6.

Why hand-written: at these sizes (2-64 units, batches of 1-1024 rows) an optimisation step is a few thousand
to a few hundred thousand flops, so PyTorch's per-op dispatch (~5-10 us per op, ~40 ops per step) costs far
more than the arithmetic, and no library fuses a whole small-MLP epoch (forward, backward, update, for
every batch) into one call. Here numba compiles the epoch as plain loops: ~9 us per step of a 6x16 network
at batch 1 instead of ~230 us, and 0.012 s instead of 0.06 s for an epoch of 51k rows at batch 256.

What it computes is what `ex4.train.mlp_engine` computes with torch, in float32: Linear -> optional
BatchNorm1d (training-mode batch statistics, biased variance for normalising, the unbiased one into the
running variance, momentum 0.1, eps 1e-5) -> ReLU, the scaled residual branch `h + relu(z) * scale` on hidden
layers > 0 of residual runs, mean cross-entropy, then SGD without momentum or Adam (PyTorch's defaults, bias
corrected) with each run's own learning rate. Results differ from torch's only by rounding (summation
order). NaN and inf propagate like in torch, so a diverging run shows up in its losses, never as a crash.

Layout (shared zero-copy with the torch tensors that evaluate and export the model):
- `params`: one flat float32 buffer holding the engine's tensors in its order (per hidden layer weight
  [R, in, out], bias [R, 1, out], with batch norm gamma and beta [R, 1, out]; then the output weight and
  bias), each C-contiguous; `offsets[j]` is where tensor j starts, `run_sizes[j]` its size per run;
- `running_mean`, `running_var`: [depth, R, width];
- `moment1`, `moment2`: Adam's state in `params`' layout (ignored by SGD);
- `x`: [1, n, n_in] shared by every run or [R, n, n_in] per run; `order` the epoch's row permutation,
  `batch_sizes` the sizes of its batches (the engine's `batch_sizes` rule).
Outputs: `losses[step, run]` (mean loss of each batch), `correct[run]` (training rows classified right),
`norms[k, run]` (sum over the epoch's batches of the squared Frobenius norm of hidden layer `track[k]`'s
weight gradient).

Runs are independent, so R >= 2 runs are shared out over threads, whole runs per thread (see
`train_epoch`): no synchronisation inside the epoch, unlike torch's per-op threading, which stalls when
another process holds a core. Activations are stored features x rows, so every inner loop runs over the
rows of the batch (contiguous, vectorised by LLVM), and four weights are applied per pass over a row to
cut its loads and stores (measured 1.3-1.5x).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ex4.paths import cache_dir


def _use_project_cache() -> None:
    """Keep numba's compiled-code cache beside ex4's other caches, in a folder named for this file's content.

    numba itself only checks a source file's size and mtime before reusing compiled code, so an in-place
    edit with the mtime restored would otherwise run the old machine code under the new code fingerprint
    of the store key. Naming the folder by sha256 of the source (and numba's version) keys the cache on
    content, like every other ex4 cache. NUMBA_CACHE_DIR, when set, is the parent of that folder.
    The package folder may be read-only; numba falls back to its own locations when this one is not writable."""
    import os

    import numba

    with open(__file__, "rb") as handle:
        source = handle.read()
    numba.config.CACHE_DIR = numba_cache_folder(source, os.environ.get("NUMBA_CACHE_DIR") or str(cache_dir() / "numba"))


def numba_cache_folder(source: bytes, base: str) -> str:
    """`<base>/mlp_kernel-<numba version>-<sha256 of the source>`: compiled code is reused only for this content."""
    import hashlib
    import os

    import numba

    return os.path.join(base, f"mlp_kernel-{numba.__version__}-{hashlib.sha256(source).hexdigest()[:16]}")


_use_project_cache()

from numba import njit  # noqa: E402

BN_MOMENTUM = np.float32(0.1)
BN_EPS = np.float32(1e-5)
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = np.float32(1e-8)

# Floating-point flags: reassociation and FMA contraction only ("nnan"/"ninf" would let LLVM assume NaN
# never occurs, which breaks divergence detection). Reassociation lets the sums over a batch vectorise:
# 2.5-3x faster than strict order (6x16 at batch 256: 0.022 vs 0.058 s per epoch; 6x64 with batch norm at
# batch 128: 0.16 vs 0.52 s). Results stay deterministic: the compiled summation order is fixed.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _train_run(r, params, offsets, run_sizes, depth, width, n_classes, batch_norm, adam, moment1, moment2,
               step0, running_mean, running_var, x, y, order, batch_sizes, lr, residual, scale, track,
               losses, correct, norms):
    """One epoch of run `r` (see the module docstring for the arguments).

    Activations are stored features x batch ([width, rows]), so every inner loop runs over the rows of the
    batch: long, contiguous, vectorised."""
    n_in = x.shape[1]
    per_layer = 4 if batch_norm else 2
    n_tensors = offsets.shape[0]
    largest = 1
    for size in batch_sizes:
        largest = max(largest, size)
    widest = max(max(n_in, width), n_classes)

    act = np.zeros((depth + 1, max(n_in, width), largest), np.float32)  # input of each layer (act[0]: batch)
    pre = np.zeros((depth, width, largest), np.float32)  # input of each ReLU (after batch norm)
    xhat = np.zeros((depth if batch_norm else 0, width, largest), np.float32)  # normalised z
    inv_std = np.zeros((depth, width), np.float32)
    logits = np.zeros((n_classes, largest), np.float32)
    grad_out = np.zeros((widest, largest), np.float32)  # dL/d(output of the current layer)
    grad_in = np.zeros((widest, largest), np.float32)  # dL/d(its input)
    top = np.zeros(largest, np.float32)
    summed = np.zeros(largest, np.float32)
    best = np.zeros(largest, np.int64)
    labels = np.zeros(largest, np.int64)
    grad_at = np.zeros(n_tensors + 1, np.int64)
    for j in range(n_tensors):
        grad_at[j + 1] = grad_at[j] + run_sizes[j]
    grad = np.zeros(grad_at[n_tensors], np.float32)
    at = np.empty(n_tensors, np.int64)  # where run r's slice of each tensor starts in `params`
    for j in range(n_tensors):
        at[j] = offsets[j] + r * run_sizes[j]
    rate = lr[r]
    gated = residual[r]
    out_w, out_b = n_tensors - 2, n_tensors - 1

    start = 0
    for step in range(batch_sizes.shape[0]):
        m = batch_sizes[step]
        inv_m = _ONE / np.float32(m)
        for i in range(m):
            row = order[start + i]
            labels[i] = y[row]
            for k in range(n_in):
                act[0, k, i] = x[row, k]

        # ---- forward
        for layer in range(depth):
            fan_in = n_in if layer == 0 else width
            _linear(params, at[layer * per_layer], at[layer * per_layer + 1], fan_in, width, m, act[layer],
                    pre[layer])
            if batch_norm:
                gamma = at[layer * per_layer + 2]
                beta = at[layer * per_layer + 3]
                for o in range(width):
                    z = pre[layer, o]
                    mean = _ZERO
                    for i in range(m):
                        mean += z[i]
                    mean *= inv_m
                    squares = _ZERO
                    for i in range(m):
                        d = z[i] - mean
                        squares += d * d
                    inv_std[layer, o] = _ONE / np.sqrt(squares * inv_m + BN_EPS)
                    running_mean[layer, r, o] = (_ONE - BN_MOMENTUM) * running_mean[layer, r, o] + BN_MOMENTUM * mean
                    running_var[layer, r, o] = ((_ONE - BN_MOMENTUM) * running_var[layer, r, o]
                                                + BN_MOMENTUM * (squares / np.float32(m - 1)))
                    s = inv_std[layer, o]
                    g = params[gamma + o]
                    bb = params[beta + o]
                    normed = xhat[layer, o]
                    for i in range(m):
                        v = (z[i] - mean) * s
                        normed[i] = v
                        z[i] = v * g + bb
            branch = gated and layer > 0
            for o in range(width):
                z = pre[layer, o]
                h = act[layer + 1, o]
                if branch:
                    h_in = act[layer, o]
                    for i in range(m):
                        v = z[i]
                        if v < _ZERO:  # written so that NaN passes through, as torch.relu lets it
                            v = _ZERO
                        h[i] = h_in[i] + v * scale
                else:
                    for i in range(m):
                        v = z[i]
                        if v < _ZERO:
                            v = _ZERO
                        h[i] = v
        _linear(params, at[out_w], at[out_b], width, n_classes, m, act[depth], logits)

        # ---- loss, accuracy and dL/dlogits = (softmax - onehot) / m
        for i in range(m):
            top[i] = logits[0, i]
            best[i] = 0
        for c in range(1, n_classes):  # first index of the maximum (torch.argmax); NaN never wins
            row_c = logits[c]
            for i in range(m):
                if row_c[i] > top[i]:
                    top[i] = row_c[i]
                    best[i] = c
        hits = 0
        for i in range(m):
            if best[i] == labels[i]:
                hits += 1
            summed[i] = _ZERO
        for c in range(n_classes):
            row_c = logits[c]
            g_c = grad_out[c]
            for i in range(m):
                e = np.exp(row_c[i] - top[i])
                g_c[i] = e
                summed[i] += e
        total = 0.0
        for i in range(m):
            label = labels[i]
            value = logits[label, i]
            for c in range(n_classes):  # a NaN logit makes the loss NaN, as in torch
                if logits[c, i] != logits[c, i]:
                    value = logits[c, i]
            total += np.float64(np.log(summed[i]) + top[i] - value)
            summed[i] = inv_m / summed[i]
        for c in range(n_classes):
            g_c = grad_out[c]
            for i in range(m):
                g_c[i] *= summed[i]
        for i in range(m):
            grad_out[labels[i], i] -= inv_m
        losses[step, r] = np.float32(total / m)
        correct[r] += hits

        # ---- backward
        _linear_backward(params, at[out_w], grad_at[out_w], grad_at[out_b], width, n_classes, m, act[depth],
                         grad_out, grad, grad_in, True, False)
        for layer in range(depth - 1, -1, -1):  # grad_in holds dL/d(act[layer + 1])
            fan_in = n_in if layer == 0 else width
            branch = gated and layer > 0
            for o in range(width):
                z = pre[layer, o]
                g_in = grad_in[o]
                g = grad_out[o]
                for i in range(m):
                    v = g_in[i] * scale if branch else g_in[i]
                    g[i] = v if z[i] > _ZERO else _ZERO
            if batch_norm:
                gamma = at[layer * per_layer + 2]
                g_gamma = grad_at[layer * per_layer + 2]
                g_beta = grad_at[layer * per_layer + 3]
                for o in range(width):
                    g = grad_out[o]
                    normed = xhat[layer, o]
                    d_beta = _ZERO
                    d_gamma = _ZERO
                    for i in range(m):
                        d_beta += g[i]
                        d_gamma += g[i] * normed[i]
                    grad[g_beta + o] = d_beta
                    grad[g_gamma + o] = d_gamma
                    mean_beta = d_beta * inv_m
                    mean_gamma = d_gamma * inv_m
                    factor = inv_std[layer, o] * params[gamma + o]
                    for i in range(m):
                        g[i] = (g[i] - mean_beta - normed[i] * mean_gamma) * factor
            # a residual layer's identity path adds dL/d(act[layer + 1]) unchanged
            _linear_backward(params, at[layer * per_layer], grad_at[layer * per_layer],
                             grad_at[layer * per_layer + 1], fan_in, width, m, act[layer], grad_out, grad, grad_in,
                             layer > 0, branch)

        for k in range(track.shape[0]):
            gw = grad_at[track[k] * per_layer]
            squared = 0.0
            for e in range(run_sizes[track[k] * per_layer]):
                squared += np.float64(grad[gw + e]) * np.float64(grad[gw + e])
            norms[k, r] += squared

        # ---- update
        if adam:
            t = step0 + step + 1
            correction1 = 1.0 - ADAM_BETA1 ** t
            correction2_sqrt = np.float32(np.sqrt(1.0 - ADAM_BETA2 ** t))
            step_size = np.float32(-np.float64(rate) / correction1)
            keep1 = np.float32(1.0 - ADAM_BETA1)
            beta2 = np.float32(ADAM_BETA2)
            keep2 = np.float32(1.0 - ADAM_BETA2)
            for j in range(n_tensors):
                p = at[j]
                g0 = grad_at[j]
                for e in range(run_sizes[j]):
                    g = grad[g0 + e]
                    m1 = moment1[p + e]
                    m1 = m1 + keep1 * (g - m1)
                    moment1[p + e] = m1
                    m2 = moment2[p + e] * beta2 + keep2 * (g * g)
                    moment2[p + e] = m2
                    params[p + e] += step_size * (m1 / (np.sqrt(m2) / correction2_sqrt + ADAM_EPS))
        else:
            negative = -rate
            for j in range(n_tensors):
                p = at[j]
                g0 = grad_at[j]
                for e in range(run_sizes[j]):
                    params[p + e] += negative * grad[g0 + e]
        start += m


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _linear(params, w, b, fan_in, fan_out, m, inp, out):
    """out[o, :m] = b[o] + sum_k W[k, o] * inp[k, :m], W = params[w:] as [fan_in, fan_out], b = params[b:]."""
    blocked = fan_in - fan_in % 4
    for o in range(fan_out):
        row = out[o]
        bias = params[b + o]
        for i in range(m):
            row[i] = bias
        for k in range(0, blocked, 4):  # four inputs per pass: a quarter of the loads and stores of `row`
            w0 = params[w + k * fan_out + o]
            w1 = params[w + (k + 1) * fan_out + o]
            w2 = params[w + (k + 2) * fan_out + o]
            w3 = params[w + (k + 3) * fan_out + o]
            s0, s1, s2, s3 = inp[k], inp[k + 1], inp[k + 2], inp[k + 3]
            for i in range(m):
                row[i] += (w0 * s0[i] + w1 * s1[i]) + (w2 * s2[i] + w3 * s3[i])
        for k in range(blocked, fan_in):
            weight = params[w + k * fan_out + o]
            source = inp[k]
            for i in range(m):
                row[i] += weight * source[i]


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _linear_backward(params, w, gw, gb, fan_in, fan_out, m, inp, grad_z, grad, grad_in, need_input, accumulate):
    """Weight and bias gradients of `_linear` from grad_z [fan_out, :m] into grad[gw:], grad[gb:]; with
    `need_input` also grad_in[:fan_in, :m] = W @ grad_z (added to what is there when `accumulate`)."""
    blocked = fan_out - fan_out % 4
    for k in range(fan_in):
        source = inp[k]
        at_k = gw + k * fan_out
        for o in range(0, blocked, 4):  # four dot products per pass share the loads of `source`
            g0, g1, g2, g3 = grad_z[o], grad_z[o + 1], grad_z[o + 2], grad_z[o + 3]
            s0 = s1 = s2 = s3 = _ZERO
            for i in range(m):
                v = source[i]
                s0 += v * g0[i]
                s1 += v * g1[i]
                s2 += v * g2[i]
                s3 += v * g3[i]
            grad[at_k + o] = s0
            grad[at_k + o + 1] = s1
            grad[at_k + o + 2] = s2
            grad[at_k + o + 3] = s3
        for o in range(blocked, fan_out):
            g = grad_z[o]
            s = _ZERO
            for i in range(m):
                s += source[i] * g[i]
            grad[at_k + o] = s
    for o in range(fan_out):
        g = grad_z[o]
        s = _ZERO
        for i in range(m):
            s += g[i]
        grad[gb + o] = s
    if need_input:
        blocked = fan_out - fan_out % 4
        for k in range(fan_in):
            target = grad_in[k]
            if not accumulate:
                for i in range(m):
                    target[i] = _ZERO
            at_k = w + k * fan_out
            for o in range(0, blocked, 4):  # four outputs per pass, as in `_linear`
                w0, w1, w2, w3 = params[at_k + o], params[at_k + o + 1], params[at_k + o + 2], params[at_k + o + 3]
                g0, g1, g2, g3 = grad_z[o], grad_z[o + 1], grad_z[o + 2], grad_z[o + 3]
                for i in range(m):
                    target[i] += (w0 * g0[i] + w1 * g1[i]) + (w2 * g2[i] + w3 * g3[i])
            for o in range(blocked, fan_out):
                weight = params[at_k + o]
                g = grad_z[o]
                for i in range(m):
                    target[i] += weight * g[i]


@njit(cache=True, nogil=True)
def _train_runs(first, last, params, offsets, run_sizes, depth, width, n_classes, batch_norm, adam, moment1,
                moment2, step0, running_mean, running_var, x, y, order, batch_sizes, lr, residual, scale, track,
                losses, correct, norms):
    """Runs first..last-1 one after the other; the GIL is released, so threads can share out the runs."""
    shared = x.shape[0] == 1
    for r in range(first, last):
        _train_run(r, params, offsets, run_sizes, depth, width, n_classes, batch_norm, adam, moment1, moment2,
                   step0, running_mean, running_var, x[0] if shared else x[r], y, order, batch_sizes, lr, residual,
                   scale, track, losses, correct, norms)


def train_epoch(params: np.ndarray, offsets: np.ndarray, run_sizes: np.ndarray, *, depth: int, width: int,
                n_classes: int, batch_norm: bool, adam: bool, moment1: np.ndarray, moment2: np.ndarray,
                steps_before: int, running_mean: np.ndarray, running_var: np.ndarray, x: np.ndarray, y: np.ndarray,
                order: np.ndarray, batch_sizes: np.ndarray, lr: np.ndarray, residual: np.ndarray, scale: float,
                track: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train every run for one epoch in place; returns (losses [steps, R] float32, correct [R] int64, summed
    squared weight-gradient norms [len(track), R] float64).

    With `threads` > 1 the runs are shared out in contiguous blocks, one Python thread per block, each calling
    the same compiled function (not `numba.prange`: inlined into a parallel loop, LLVM vectorises the run
    differently, and with reassociation allowed that changed the numbers with the thread count)."""
    runs = lr.shape[0]
    losses = np.zeros((batch_sizes.shape[0], runs), np.float32)
    correct = np.zeros(runs, np.int64)
    norms = np.zeros((track.shape[0], runs), np.float64)
    arguments = (params, offsets, run_sizes, depth, width, n_classes, batch_norm, adam, moment1, moment2,
                 steps_before, running_mean, running_var, x, y, order, batch_sizes, lr, residual, np.float32(scale),
                 track, losses, correct, norms)
    threads = max(1, min(threads, runs))
    if threads == 1:
        _train_runs(0, runs, *arguments)
        return losses, correct, norms
    bounds = [runs * k // threads for k in range(threads + 1)]
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(_train_runs, bounds[k], bounds[k + 1], *arguments) for k in range(threads)]
        for job in jobs:
            job.result()
    return losses, correct, norms
