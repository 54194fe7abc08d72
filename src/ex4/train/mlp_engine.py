"""Fast training of many small MLPs at once: the engine behind every Section 6 experiment.

Two engines share everything here but the training step (`train_runs(engine=...)`, see `resolve_engine`):
- "kernel" (default on the CPU): `ex4.train.mlp_kernel` trains a whole epoch of a group in one compiled
  call, because at these sizes PyTorch's per-op dispatch, not arithmetic, is the cost (~230 us per step of
  a 6x16 net at batch 1, where the kernel takes ~10 us). Groups train side by side on the free cores;
- "torch" (default on CUDA): the batched torch code below; a single run reproduces the textbook loop bit
  for bit.
Both draw the same initial weights and batch order and evaluate with the same torch forward pass; their
numbers differ by float32 rounding, which runs on the edge of stability (lr 0.2, batch 1) amplify.

Why the torch engine is fast (the textbook loop spends nearly all its time in Python, not arithmetic):
- no DataLoader: each split is a tensor on the device; an epoch gathers one seeded permutation of the
  training rows and slices it into batches (views, no per-sample collation);
- runs that share an architecture and a batch order (e.g. all learning rates of `mlp-lr`) train as ONE
  batched model: weights stacked as [runs, in, out] and multiplied with `torch.baddbmm`, one backward for
  all of them, one `foreach` update with a learning rate per run. Runs never mix: run r's gradients depend
  only on run r's weights, so a run that diverges leaves the others untouched;
- nothing is read back to the host inside an epoch: per-step losses and correct counts stay on the device
  and are read once per epoch, when validation and test are each evaluated with one forward pass;
- a single run makes exactly the calls of the textbook nn.Module loop (bit-identical results) without its
  DataLoader and per-step host syncs; one intra-op thread (see `training_threads`); `torch.compile` of
  the step is optional (see `should_compile`: it costs seconds and memory to compile).

Definitions the results rely on:
- train loss and accuracy of an epoch are running averages over that epoch's batches in training mode
  (the mean of the per-batch mean losses, as the course's trainer reports), not a separate eval pass;
- the last batch of an epoch holds the remainder (n mod batch size) rows; with batch norm a remainder of
  exactly one row is merged into the previous batch (a one-sample batch has no variance), so that epoch has
  one batch fewer. `iterations_per_epoch` is the number of batches actually taken;
- a run diverges at the first epoch whose training loss or validation/test loss is not finite; from that
  epoch on its metrics are None and it is reported as diverged, while the other runs continue.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import types
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from ex4.models.mlp import MLP, Architecture, input_width, residual_scale, sine_features

BN_MOMENTUM = 0.1  # nn.BatchNorm1d defaults, so stored state dicts behave identically in nn.Module form
BN_EPS = 1e-5
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
OPTIMIZERS = ("sgd", "adam")
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
EVAL_CHUNK = 1 << 16  # rows per evaluation forward; larger splits are evaluated in a few chunks
ELEMENTWISE_MAX = 512  # batch * width up to which a compiled step multiplies elementwise instead of via BLAS


# ---- what to train, and what comes back -------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One training run. Runs with equal `group_key()` share a batch order and train as one batched model."""

    label: str
    arch: Architecture
    lr: float
    batch_size: int
    epochs: int
    optimizer: str = "sgd"
    track_layers: tuple[int, ...] = ()  # hidden layers whose mean squared gradient norm is recorded
    record_step_losses: bool = False

    def group_key(self) -> tuple:
        a = self.arch
        return (a.depth, a.width, a.n_classes, a.batch_norm, self.batch_size, self.epochs, self.optimizer)

    def params(self) -> dict:
        """The resolved settings of this run, as stored in results."""
        return {"lr": self.lr, "batch_size": self.batch_size, "epochs": self.epochs, "optimizer": self.optimizer,
                **self.arch.as_dict()}


@dataclass
class RunResult:
    spec: RunSpec
    history: dict[str, list[float | None]]
    diverged: bool
    diverged_epoch: int | None  # 1-based epoch in which the loss first stopped being finite
    iterations_per_epoch: int
    last_batch: str  # "none" (n divisible), "partial" (a smaller last batch) or "merged" (see module doc)
    state_dict: dict[str, torch.Tensor]  # the trained model as an `ex4.models.mlp.MLP` state dict (CPU)
    step_losses: torch.Tensor | None = None  # float32 [epochs * iterations_per_epoch], when requested
    grad_norms: dict[int, list[float | None]] = field(default_factory=dict)
    epoch_seconds: list[float] = field(default_factory=list)  # wall time of each epoch of its group
    compile_seconds: float = 0.0  # of which spent compiling (first compiled call), 0 when eager

    @property
    def final(self) -> dict[str, float | None]:
        return {name: values[-1] if values else None for name, values in self.history.items()}


@dataclass
class Splits:
    """The three splits as tensors on the training device."""

    x: dict[str, torch.Tensor]  # "train"/"val"/"test" -> float32 [n, 2] (longitude, latitude)
    y: dict[str, torch.Tensor]  # int64 [n]
    n_classes: int

    @classmethod
    def from_arrays(cls, arrays: dict[str, tuple], n_classes: int, device: torch.device | str = "cpu") -> "Splits":
        x = {name: torch.as_tensor(xy[0], dtype=torch.float32).to(device) for name, xy in arrays.items()}
        y = {name: torch.as_tensor(xy[1], dtype=torch.int64).to(device) for name, xy in arrays.items()}
        return cls(x=x, y=y, n_classes=n_classes)

    @property
    def device(self) -> torch.device:
        return self.x["train"].device


def batch_sizes(n: int, batch_size: int, batch_norm: bool) -> list[int]:
    """Sizes of an epoch's batches: full batches, then the remainder (merged into the last full batch when it
    would be a single row under batch norm)."""
    full, rest = divmod(n, batch_size)
    sizes = [batch_size] * full
    if rest == 1 and batch_norm and full:
        sizes[-1] += 1
    elif rest:
        sizes.append(rest)
    return sizes


def last_batch_kind(n: int, batch_size: int, batch_norm: bool) -> str:
    rest = n % batch_size
    if rest == 0:
        return "none"
    return "merged" if rest == 1 and batch_norm and n > batch_size else "partial"


# ---- the batched model -------------------------------------------------------------------------------------


class BatchedMLP:
    """R MLPs of one architecture (per-run residual and input features may differ) as stacked tensors.

    Parameters, all [R, a, b] so one [R, 1, 1] tensor broadcasts a per-run learning rate over every one:
    per hidden layer `weight` [R, in, out] (the transpose of nn.Linear's), `bias` [R, 1, out] and with batch
    norm `gamma`, `beta` [R, 1, out]; then the output layer. Running statistics are [R, out].
    A single run skips all of this: its `params` are copies of the module's own tensors in nn.Linear's
    layout and the step makes exactly the calls an nn.Module would (`linear`, `batch_norm`, `relu`), so it
    computes bit for bit what the textbook loop computes, without batching or view overhead.
    """

    def __init__(self, models: Sequence[MLP], device: torch.device, stacked: bool = False):
        archs = [model.arch for model in models]
        first = archs[0]
        self.depth, self.width, self.n_classes = first.depth, first.width, first.n_classes
        self.batch_norm = first.batch_norm
        self.runs = len(models)
        self.implicit = [a.implicit for a in archs]
        self.residual = [a.residual for a in archs]
        self.n_in = max(input_width(a.implicit) for a in archs)
        self.device = device
        self.steps_taken = 0
        self.single = self.runs == 1 and not stacked  # `stacked`: the [R, in, out] layout even for one run
        if self.single:  # the module's own layout: [out, in] weights, [out] vectors
            module = models[0]
            self.params = [t.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
                           for t in _module_parameters(module)]
            norms = [layer.norm for layer in module.hidden] if self.batch_norm else []
            self.running_mean = [n.running_mean.detach().to(device).clone() for n in norms]
            self.running_var = [n.running_var.detach().to(device).clone() for n in norms]
        else:
            self._stack(models)
        self.scale = residual_scale(self.depth)
        self.all_residual = all(self.residual)
        self.residual_gate = self.branch_weight = None
        if len(set(self.residual)) > 1:
            gate = torch.tensor(self.residual, dtype=torch.float32, device=device).view(-1, 1, 1)
            self.residual_gate = gate
            self.branch_weight = torch.where(gate > 0, self.scale, 1.0)

    def _stack(self, models: Sequence[MLP]) -> None:
        device = self.device

        def stack(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
            return torch.stack([t.detach().to(device=device, dtype=torch.float32) for t in tensors]).contiguous()

        params: list[torch.Tensor] = []
        self.running_mean, self.running_var = [], []
        for index in range(self.depth):
            layers = [model.hidden[index] for model in models]
            weights = [layer.linear.weight.t() for layer in layers]
            if index == 0:  # pad narrower inputs (raw coordinates beside sine features) with zero rows
                weights = [F.pad(w, (0, 0, 0, self.n_in - w.shape[0])) for w in weights]
            params += [stack(weights), stack(layer.linear.bias[None] for layer in layers)]
            if self.batch_norm:
                params += [stack(layer.norm.weight[None] for layer in layers),
                           stack(layer.norm.bias[None] for layer in layers)]
                self.running_mean.append(stack(layer.norm.running_mean for layer in layers))
                self.running_var.append(stack(layer.norm.running_var for layer in layers))
        params += [stack(model.output.weight.t() for model in models),
                   stack(model.output.bias[None] for model in models)]
        self.params = [t.requires_grad_(True) for t in params]

    # -- layout helpers
    def layer_params(self, params: Sequence[torch.Tensor], index: int) -> Sequence[torch.Tensor]:
        per_layer = 4 if self.batch_norm else 2
        return params[index * per_layer:(index + 1) * per_layer]

    def output_params(self, params: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        return params[-2:]

    def weight_index(self, layer: int) -> int:
        return layer * (4 if self.batch_norm else 2)

    # -- the forward pass, shared by training (eager and compiled) and evaluation
    def forward(self, params: Sequence[torch.Tensor], x: torch.Tensor, training: bool,
                running_mean: Sequence[torch.Tensor], running_var: Sequence[torch.Tensor],
                elementwise: bool = False) -> torch.Tensor:
        """x: [B, n_in] shared by all runs, or [R, B, n_in] per run -> logits [R, B, C].

        `elementwise` writes each product as broadcast-multiply-and-sum instead of a BLAS call: slower
        eagerly, but under torch.compile it fuses with its neighbours, which is what small batches need."""
        if self.single:
            return self._forward_single(params, x if x.dim() == 2 else x[0], training, running_mean,
                                        running_var, elementwise).unsqueeze(0)
        linear = _linear_elementwise if elementwise else torch.baddbmm
        h = x.expand(self.runs, *x.shape) if x.dim() == 2 else x
        for index in range(self.depth):
            layer = self.layer_params(params, index)
            z = linear(layer[1], h, layer[0])
            if self.batch_norm:
                z = _batch_norm(z, layer[2], layer[3], running_mean[index], running_var[index], training)
            out = torch.relu(z)
            if index > 0 and self.residual_gate is not None:  # per run: out (plain) or h + out * scale
                out = torch.addcmul(out * self.branch_weight, self.residual_gate, h)
            elif index > 0 and self.all_residual:
                out = h + out * self.scale
            h = out
        weight, bias = self.output_params(params)
        return linear(bias, h, weight)

    def _forward_single(self, params, x, training, running_mean, running_var, elementwise) -> torch.Tensor:
        """One run, as nn.Module computes it, on its [out, in] / [out] parameters."""
        linear = (lambda h, weight, bias: _linear_elementwise(bias, h, weight.t())) if elementwise else F.linear
        h = x
        for index in range(self.depth):
            layer = self.layer_params(params, index)
            z = linear(h, layer[0], layer[1])
            if self.batch_norm:
                z = F.batch_norm(z, running_mean[index], running_var[index], layer[2], layer[3], training,
                                 BN_MOMENTUM, BN_EPS)
            out = torch.relu(z)
            h = h + out * self.scale if index > 0 and self.all_residual else out
        weight, bias = self.output_params(params)
        return linear(h, weight, bias)

    def logits(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        return self.forward(self.params, x, training, self.running_mean, self.running_var)

    # -- back to plain modules
    def state_dict(self, run: int) -> dict[str, torch.Tensor]:
        """Run `run` as an `MLP` state dict on the CPU (what the store keeps and plots rebuild)."""
        if self.single:
            return self._single_state_dict()
        state: dict[str, torch.Tensor] = {}
        n_in = input_width(self.implicit[run])
        for index in range(self.depth):
            layer = [t.detach()[run].cpu().clone() for t in self.layer_params(self.params, index)]
            weight = layer[0].t()
            if index == 0:
                weight = weight[:, :n_in]
            prefix = f"hidden.{index}."
            state[prefix + "linear.weight"] = weight.contiguous()
            state[prefix + "linear.bias"] = layer[1][0].contiguous()
            if self.batch_norm:
                state[prefix + "norm.weight"] = layer[2][0].contiguous()
                state[prefix + "norm.bias"] = layer[3][0].contiguous()
                state[prefix + "norm.running_mean"] = self.running_mean[index][run].cpu().clone()
                state[prefix + "norm.running_var"] = self.running_var[index][run].cpu().clone()
                state[prefix + "norm.num_batches_tracked"] = torch.tensor(self.steps_taken, dtype=torch.int64)
        weight, bias = (t.detach()[run].cpu().clone() for t in self.output_params(self.params))
        state["output.weight"] = weight.t().contiguous()
        state["output.bias"] = bias[0].contiguous()
        return state

    def _single_state_dict(self) -> dict[str, torch.Tensor]:
        tensors = [t.detach().cpu().clone() for t in self.params]
        state: dict[str, torch.Tensor] = {}
        for index in range(self.depth):
            layer = self.layer_params(tensors, index)
            prefix = f"hidden.{index}."
            state[prefix + "linear.weight"], state[prefix + "linear.bias"] = layer[0], layer[1]
            if self.batch_norm:
                state[prefix + "norm.weight"], state[prefix + "norm.bias"] = layer[2], layer[3]
                state[prefix + "norm.running_mean"] = self.running_mean[index].cpu().clone()
                state[prefix + "norm.running_var"] = self.running_var[index].cpu().clone()
                state[prefix + "norm.num_batches_tracked"] = torch.tensor(self.steps_taken, dtype=torch.int64)
        state["output.weight"], state["output.bias"] = tensors[-2], tensors[-1]
        return state


def _module_parameters(module: MLP) -> list[torch.Tensor]:
    """An MLP's tensors in the engine's order: per hidden layer weight, bias (, gamma, beta); then output."""
    tensors: list[torch.Tensor] = []
    for layer in module.hidden:
        tensors += [layer.linear.weight, layer.linear.bias]
        if layer.norm is not None:
            tensors += [layer.norm.weight, layer.norm.bias]
    return tensors + [module.output.weight, module.output.bias]


def _linear_elementwise(bias: torch.Tensor, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """bias + h @ weight for [..., B, in] @ [..., in, out], as a broadcast product summed over `in`."""
    return (h.unsqueeze(-1) * weight.unsqueeze(-3)).sum(dim=-2) + bias


def _batch_norm(z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, running_mean: torch.Tensor,
                running_var: torch.Tensor, training: bool) -> torch.Tensor:
    """BatchNorm1d of each run's [B, width] slice; PyTorch's fused kernel on a [B, R*width] view."""
    runs, batch, width = z.shape
    if runs == 1:
        out = F.batch_norm(z[0], running_mean[0], running_var[0], gamma[0, 0], beta[0, 0], training,
                           BN_MOMENTUM, BN_EPS)
        return out.unsqueeze(0)
    flat = z.transpose(0, 1).reshape(batch, runs * width)
    out = F.batch_norm(flat, running_mean.view(-1), running_var.view(-1), gamma.reshape(-1), beta.reshape(-1),
                       training, BN_MOMENTUM, BN_EPS)
    return out.view(batch, runs, width).transpose(0, 1)


def _squared_norm(weight_grad: torch.Tensor) -> torch.Tensor:
    """[R] squared Frobenius norms of [R, in, out] (or one [in, out]) weight gradients."""
    return weight_grad.square().sum(dim=(-2, -1)).reshape(-1)


def per_run_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each run: logits [R, B, C], labels [B] -> [R]."""
    runs, batch, classes = logits.shape
    if runs == 1:  # as nn.CrossEntropyLoss computes it
        return F.cross_entropy(logits[0], y).view(1)
    losses = F.cross_entropy(logits.reshape(runs * batch, classes), y.repeat(runs), reduction="none")
    return losses.view(runs, batch).mean(dim=1)


# ---- optimizers (batched, per-run learning rate) --------------------------------------------------------


class BatchedOptimizer:
    """SGD without momentum, or Adam (PyTorch's defaults), applied to stacked parameters with lr per run."""

    def __init__(self, kind: str, params: list[torch.Tensor], lrs: Sequence[float]):
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        device = params[0].device
        self.single_lr = float(lrs[0]) if len(set(lrs)) == 1 else None
        lr = torch.tensor(list(lrs), dtype=torch.float32, device=device)
        lr = lr.view(-1, 1, 1) if len(lrs) > 1 else lr.view(())  # per run, or one scalar for 2-D parameters
        self.neg_lr = [-lr] * len(params)
        self.lr = lr
        self.t = 0
        if kind == "adam":
            self.m = [torch.zeros_like(p) for p in params]
            self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        if self.kind == "sgd":
            if self.single_lr is not None:
                torch._foreach_add_(params, grads, alpha=-self.single_lr)
            else:
                torch._foreach_addcmul_(params, grads, self.neg_lr)
            return
        self.t += 1
        beta1, beta2 = ADAM_BETAS
        torch._foreach_lerp_(self.m, grads, 1 - beta1)
        torch._foreach_mul_(self.v, beta2)
        torch._foreach_addcmul_(self.v, grads, grads, 1 - beta2)
        correction1 = 1 - beta1 ** self.t
        correction2_sqrt = math.sqrt(1 - beta2 ** self.t)
        denominators = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denominators, correction2_sqrt)
        torch._foreach_add_(denominators, ADAM_EPS)
        updates = torch._foreach_div(self.m, denominators)
        if self.single_lr is not None:
            torch._foreach_add_(params, updates, alpha=-self.single_lr / correction1)
        else:
            torch._foreach_addcmul_(params, updates, [t / correction1 for t in self.neg_lr])


# ---- one group of runs ------------------------------------------------------------------------------------


class _Group:
    """Runs that share architecture shape, batch size, epochs and optimizer: trained together."""

    def __init__(self, specs: list[RunSpec], models: list[MLP], splits: Splits, seed: int, compile_steps: bool):
        self.specs = specs
        self.splits = splits
        self.device = splits.device
        self.model = BatchedMLP(models, self.device)
        self.optimizer = BatchedOptimizer(specs[0].optimizer, self.model.params, [s.lr for s in specs])
        self.batch_size = specs[0].batch_size
        self.epochs = specs[0].epochs
        self.generator = torch.Generator().manual_seed(seed)
        self.inputs = {name: self._features(x) for name, x in splits.x.items()}
        self.track_layers = sorted({layer for spec in specs for layer in spec.track_layers})
        self.track_index = [self.model.weight_index(layer) for layer in self.track_layers]
        self.compiled = self._compile() if compile_steps else None
        self.compile_seconds = 0.0
        self.compiled_once = False

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """[n, n_in] when every run sees the same features, else [R, n, n_in] (raw runs zero-padded)."""
        implicit = self.model.implicit
        if all(implicit):
            return sine_features(x)
        if not any(implicit):
            return x
        sines = sine_features(x)
        raw = F.pad(x, (0, sines.shape[1] - x.shape[1]))
        return torch.stack([sines if flag else raw for flag in implicit])

    # -- one optimisation step: eager autograd, or a compiled functional version of the same computation
    def _loss(self, params, x, y, running_mean, running_var, elementwise=False):
        logits = self.model.forward(params, x, True, running_mean, running_var, elementwise)
        losses = per_run_cross_entropy(logits, y)
        correct = (logits.detach().argmax(dim=2) == y).sum(dim=1)
        return losses.sum(), (losses.detach(), correct)

    def _gradient_norms(self, grads: Sequence[torch.Tensor]) -> torch.Tensor | None:
        if not self.track_index:
            return None
        return torch.stack([_squared_norm(grads[i].detach()) for i in self.track_index])

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor):
        model = self.model
        total, (losses, correct) = self._loss(model.params, x, y, model.running_mean, model.running_var)
        grads = torch.autograd.grad(total, model.params)
        self.optimizer.step(model.params, grads)
        return losses, correct, self._gradient_norms(grads)

    def _compile(self) -> Callable | None:
        """One compiled graph per full-batch step (forward, backward, SGD update). Learning rates enter as a
        tensor, so a new rate reuses the compiled code; the last, smaller batch of an epoch runs eagerly."""
        if self.optimizer.kind != "sgd":
            return None
        grad_fn = torch.func.grad_and_value(self._loss, has_aux=True)
        track_index = self.track_index

        elementwise = self.batch_size * self.model.width <= ELEMENTWISE_MAX

        def step(params, x, y, running_mean, running_var, neg_lr):
            grads, (_, (losses, correct)) = grad_fn(params, x, y, running_mean, running_var, elementwise)
            with torch.no_grad():
                torch._foreach_addcmul_(params, grads, [neg_lr] * len(params))
                norms = (torch.stack([_squared_norm(grads[i]) for i in track_index])
                         if track_index else None)
            return losses, correct, norms

        # dynamo keeps compiled variants per code object and gives up after a few: a fresh code object per
        # group keeps each group's cache to itself (and lets it go with the group)
        step = types.FunctionType(step.__code__.replace(), step.__globals__, step.__name__, step.__defaults__,
                                  step.__closure__)
        return torch.compile(step, fullgraph=True, dynamic=False)

    def _step(self, x: torch.Tensor, y: torch.Tensor):
        if self.compiled is not None and x.shape[-2] == self.batch_size:
            model = self.model
            arguments = (model.params, x, y, model.running_mean, model.running_var, self.optimizer.neg_lr[0])
            if self.compiled_once:
                return self.compiled(*arguments)
            try:  # the first call compiles
                started = time.perf_counter()
                with _quiet_compiler():
                    out = self.compiled(*arguments)
                self.compile_seconds = time.perf_counter() - started
                self.compiled_once = True
                return out
            except Exception as error:  # no C++ compiler, unsupported backend...: fall back to eager
                warnings.warn(f"torch.compile unavailable, training eagerly ({type(error).__name__}: {error})")
                self.compiled = None
        return self._eager_step(x, y)

    # -- evaluation
    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss and accuracy of every run on a split: eval mode, one forward (chunked if huge)."""
        x, y = self.inputs[split], self.splits.y[split]
        n = y.shape[0]
        loss_sum = torch.zeros(self.model.runs, device=self.device)
        correct = torch.zeros(self.model.runs, device=self.device)
        for start in range(0, n, EVAL_CHUNK):
            part = slice(start, start + EVAL_CHUNK)
            xs = x[part] if x.dim() == 2 else x[:, part]
            logits = self.model.logits(xs, training=False)
            runs, batch, classes = logits.shape
            loss_sum += F.cross_entropy(logits.reshape(runs * batch, classes), y[part].repeat(runs),
                                        reduction="none").view(runs, batch).sum(dim=1)
            correct += (logits.argmax(dim=2) == y[part]).sum(dim=1)
        return loss_sum / n, correct / n

    # -- the loop
    def _train_epoch(self, order: torch.Tensor, sizes: list[int], progress: Callable[[int], None] | None):
        """One epoch over the rows in `order`, batches of `sizes` -> (losses [steps, R], correct [R], mean
        squared gradient norm of each tracked layer [layers, R] or None), all still on the device."""
        x_train, y_train = self.inputs["train"], self.splits.y["train"]
        order = order.to(self.device)
        xs = x_train.index_select(x_train.dim() - 2, order).split(sizes, dim=x_train.dim() - 2)
        ys = y_train.index_select(0, order).split(sizes)
        losses, corrects, norms = [], [], []
        for x_batch, y_batch in zip(xs, ys):
            loss, correct, norm = self._step(x_batch, y_batch)
            losses.append(loss)
            corrects.append(correct)
            if norm is not None:
                norms.append(norm)
            if progress is not None:
                progress(1)
        return (torch.stack(losses), torch.stack(corrects).sum(dim=0),
                torch.stack(norms).mean(dim=0) if norms else None)

    def train(self, progress: Callable[[int], None] | None = None) -> list[RunResult]:
        n = self.splits.y["train"].shape[0]
        runs = self.model.runs
        sizes = batch_sizes(n, self.batch_size, self.model.batch_norm)
        history = {name: [[] for _ in range(runs)] for name in METRICS}
        step_losses: list[torch.Tensor] = []
        grad_norms = {layer: [[] for _ in range(runs)] for layer in self.track_layers}
        diverged_at: list[int | None] = [None] * runs
        record_steps = any(spec.record_step_losses for spec in self.specs)
        epoch_seconds: list[float] = []
        for epoch in range(1, self.epochs + 1):
            started = time.perf_counter()
            order = torch.randperm(n, generator=self.generator)
            epoch_losses, correct, norms = self._train_epoch(order, sizes, progress)
            self.model.steps_taken += len(sizes)
            metrics = {
                # one contiguous reduction per run: a column mean of [steps, runs] rounds differently with
                # the number of runs beside it, and a run's numbers must not depend on its neighbours
                "train_loss": torch.stack([epoch_losses[:, run].contiguous().mean() for run in range(runs)]),
                "train_acc": correct.float() / n,
            }
            for split in ("val", "test"):
                metrics[f"{split}_loss"], metrics[f"{split}_acc"] = self.evaluate(split)
            host = {name: value.cpu().tolist() for name, value in metrics.items()}  # the one sync of the epoch
            epoch_seconds.append(time.perf_counter() - started)
            if record_steps:
                step_losses.append(epoch_losses.cpu())
            if norms is not None:
                mean_norms = norms.cpu().tolist()  # [layers][R]
            for run in range(runs):
                if diverged_at[run] is None:
                    finite = all(math.isfinite(host[name][run]) for name in ("train_loss", "val_loss", "test_loss"))
                    if not finite:
                        diverged_at[run] = epoch
                alive = diverged_at[run] is None
                for name in METRICS:
                    history[name][run].append(host[name][run] if alive else None)
                for k, layer in enumerate(self.track_layers):
                    value = mean_norms[k][run] if norms is not None else None
                    grad_norms[layer][run].append(value if alive and value is not None and math.isfinite(value)
                                                  else None)
            if all(at is not None for at in diverged_at):  # nothing left to learn: pad and stop
                for run in range(runs):
                    for name in METRICS:
                        history[name][run] += [None] * (self.epochs - epoch)
                    for layer in self.track_layers:
                        grad_norms[layer][run] += [None] * (self.epochs - epoch)
                if progress is not None:
                    progress(len(sizes) * (self.epochs - epoch))
                break
        per_step = torch.cat(step_losses) if step_losses else None
        results = []
        for run, spec in enumerate(self.specs):
            results.append(RunResult(
                spec=spec,
                history={name: history[name][run] for name in METRICS},
                diverged=diverged_at[run] is not None,
                diverged_epoch=diverged_at[run],
                iterations_per_epoch=len(sizes),
                last_batch=last_batch_kind(n, self.batch_size, self.model.batch_norm),
                state_dict=self.model.state_dict(run),
                step_losses=per_step[:, run].contiguous() if per_step is not None and spec.record_step_losses else None,
                grad_norms={layer: grad_norms[layer][run] for layer in spec.track_layers},
                epoch_seconds=list(epoch_seconds),
                compile_seconds=self.compile_seconds,
            ))
        return results


class _KernelGroup(_Group):
    """The same group trained by `ex4.train.mlp_kernel`: one compiled call per epoch (CPU only).

    The parameters live in one flat float32 numpy buffer that the kernel updates in place; the model's torch
    tensors are zero-copy views of it in the stacked [R, in, out] layout, so validation, test and the
    exported state dicts use `BatchedMLP`'s torch code unchanged. Same initial weights, same generator and
    batch order as the torch group; the numbers differ from it only by float32 rounding."""

    def __init__(self, specs: list[RunSpec], models: list[MLP], splits: Splits, seed: int, threads: int = 1):
        import numpy as np

        from ex4.train import mlp_kernel

        if splits.device.type != "cpu":
            raise ValueError("the kernel engine trains on the CPU; use engine='torch' on CUDA")
        self.kernel = mlp_kernel
        self.threads = threads
        self.specs = specs
        self.splits = splits
        self.device = splits.device
        model = self.model = BatchedMLP(models, self.device, stacked=True)
        self.batch_size = specs[0].batch_size
        self.epochs = specs[0].epochs
        self.generator = torch.Generator().manual_seed(seed)
        self.inputs = {name: self._features(x) for name, x in splits.x.items()}
        self.track_layers = sorted({layer for spec in specs for layer in spec.track_layers})
        self.compile_seconds = 0.0

        tensors = [p.detach() for p in model.params]
        self.run_sizes = np.array([t[0].numel() for t in tensors], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum([t.numel() for t in tensors])[:-1]]).astype(np.int64)
        self.flat = np.empty(sum(t.numel() for t in tensors), np.float32)
        views = []
        for tensor, offset in zip(tensors, self.offsets):
            view = self.flat[offset:offset + tensor.numel()].reshape(tuple(tensor.shape))
            view[...] = tensor.numpy()
            views.append(torch.from_numpy(view))
        model.params = views
        depth, runs, width = model.depth, model.runs, model.width
        self.running_mean = np.zeros((depth, runs, width), np.float32)
        self.running_var = np.ones((depth, runs, width), np.float32)
        for index in range(len(model.running_mean)):
            self.running_mean[index] = model.running_mean[index].numpy()
            self.running_var[index] = model.running_var[index].numpy()
        model.running_mean = [torch.from_numpy(self.running_mean[i]) for i in range(len(model.running_mean))]
        model.running_var = [torch.from_numpy(self.running_var[i]) for i in range(len(model.running_var))]
        self.adam = specs[0].optimizer == "adam"
        self.moment1 = np.zeros_like(self.flat) if self.adam else np.zeros(1, np.float32)
        self.moment2 = np.zeros_like(self.flat) if self.adam else np.zeros(1, np.float32)
        self.lr = np.array([spec.lr for spec in specs], np.float32)
        self.residual = np.array(model.residual, np.bool_)
        self.track = np.array(self.track_layers, np.int64)
        x_train = self.inputs["train"].numpy()
        self.x_train = np.ascontiguousarray(x_train[None] if x_train.ndim == 2 else x_train)
        self.y_train = self.splits.y["train"].numpy()

    def _train_epoch(self, order: torch.Tensor, sizes: list[int], progress: Callable[[int], None] | None):
        import numpy as np

        model = self.model
        losses, correct, norms = self.kernel.train_epoch(
            self.flat, self.offsets, self.run_sizes, depth=model.depth, width=model.width,
            n_classes=model.n_classes, batch_norm=model.batch_norm, adam=self.adam, moment1=self.moment1,
            moment2=self.moment2, steps_before=model.steps_taken, running_mean=self.running_mean,
            running_var=self.running_var, x=self.x_train, y=self.y_train, order=order.numpy(),
            batch_sizes=np.array(sizes, np.int64), lr=self.lr, residual=self.residual, scale=model.scale,
            track=self.track, threads=self.threads)
        if progress is not None:
            progress(len(sizes))
        mean_norms = torch.from_numpy(norms / len(sizes)) if self.track_layers else None
        return torch.from_numpy(losses), torch.from_numpy(correct), mean_norms


# ---- entry point -------------------------------------------------------------------------------------------


def initial_model(arch: Architecture, seed: int) -> MLP:
    """The starting weights of a run: PyTorch's default init drawn right after `torch.manual_seed(seed)`, so
    runs of one architecture start from the same point and any textbook loop can reproduce it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(arch)


def training_threads() -> int:
    """Intra-op threads while training: always 1 (there is no setting: the count changes the numbers).

    Every tensor here is tiny, so splitting an op across threads saves nothing, and when other processes share
    the cores each split op waits for a descheduled thread: on the 2-core build machine, 2 threads made an
    epoch of `mlp-lr` 50-250x slower than 1 thread (0.23 s vs 12-58 s, with other jobs running). Two threads
    also round differently (about 2e-7 in the step losses of a 4x16 net), so a thread count taken from the
    environment would change results that the store key does not describe."""
    return 1


def kernel_threads() -> int:
    """Threads for the kernel engine's runs (one whole run per thread): EX4_KERNEL_THREADS, else every core."""
    return max(1, int(os.environ.get("EX4_KERNEL_THREADS", "0")) or os.cpu_count() or 1)


ENGINES = ("auto", "torch", "kernel")


def resolve_engine(engine: str | None, device: torch.device | str) -> str:
    """Which engine trains: "torch" or "kernel". `engine` None or "auto" picks the kernel on the CPU and torch
    on CUDA. Only the `mlp_engine` parameter chooses (no environment variable: the engines differ by rounding,
    and the store key records the engine resolved here)."""
    choice = engine or "auto"
    if choice not in ENGINES:
        raise ValueError(f"unknown MLP engine {choice!r}; expected one of {', '.join(ENGINES)}")
    if choice == "auto":
        choice = "kernel" if torch.device(device).type == "cpu" else "torch"
    if choice == "kernel" and torch.device(device).type != "cpu":
        raise ValueError("the kernel engine trains on the CPU only; use the torch engine on CUDA")
    return choice


def train_runs(specs: Sequence[RunSpec], splits: Splits | Sequence[Splits], seed: int | Sequence[int], *,
               compile_steps: bool | None = None, progress: bool | str = True, threads: int | None = None,
               engine: str | None = None, compile_mode: str = "eager",
               done: Callable[[int, RunResult], None] | None = None) -> list[RunResult]:
    """Train every run; results come back in the order of `specs`.

    Runs are grouped by `RunSpec.group_key()` and seed; every group starts from `initial_model(arch, seed)` and
    draws its batch order from its own generator seeded with `seed`, so equal seeds give equal numbers.
    `seed` and `splits` are one for every run, or one per run (in the order of `specs`): runs of several seeds
    (each with the splits of its seed) then train in one call, exactly as each seed's runs would train alone,
    and on the kernel engine the groups of every seed share out the cores together.
    `compile_steps`: None decides per group (`should_compile` under `compile_mode`, the `mlp_compile`
    parameter), True/False forces it. `threads`: intra-op
    threads while training (default `training_threads()`); the caller's setting is restored afterwards.
    `progress`: a tqdm bar on stderr (shown after 2 s), labelled with the string if one is given.
    `engine`: "torch", "kernel" or None/"auto" (see `resolve_engine`); `compile_steps` concerns torch only.
    `done(index, result)`: called in the calling thread for each run as soon as its group has finished (e.g. to
    store it), in the order the groups finish.
    """
    seeds = [int(seed)] * len(specs) if isinstance(seed, int) else [int(value) for value in seed]
    split_of = [splits] * len(specs) if isinstance(splits, Splits) else list(splits)
    if len(seeds) != len(specs) or len(split_of) != len(specs):
        raise ValueError("give one seed and one Splits for every run, or one for all of them")
    devices = {s.device for s in split_of}
    if len(devices) > 1:
        raise ValueError("all runs of one call train on one device")
    engine = resolve_engine(engine, split_of[0].device if split_of else torch.device("cpu"))
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        raise ValueError("run labels must be distinct")
    for spec in specs:
        if spec.optimizer not in OPTIMIZERS:
            raise ValueError(f"run {spec.label}: unknown optimizer {spec.optimizer!r}")
        if spec.arch.batch_norm and spec.batch_size == 1:
            raise ValueError(f"run {spec.label}: batch norm needs batch_size > 1")
        bad = [layer for layer in spec.track_layers if not 0 <= layer < spec.arch.depth]
        if bad:
            raise ValueError(f"run {spec.label}: tracked layer {bad[0]} outside 0..{spec.arch.depth - 1}")
    groups: dict[tuple, list[int]] = {}
    for index, spec in enumerate(specs):
        # the kernel keeps raw and sine inputs apart (no zero-padded inputs), so every run computes bit for bit
        # what it computes alone and a stored run can stand in for the same run in another experiment
        key = spec.group_key() + ((spec.arch.implicit,) if engine == "kernel" else ()) + (seeds[index],
                                                                                          id(split_of[index]))
        groups.setdefault(key, []).append(index)
    total_steps = sum(len(batch_sizes(int(split_of[members[0]].y["train"].shape[0]), specs[members[0]].batch_size,
                                      specs[members[0]].arch.batch_norm)) * specs[members[0]].epochs
                      for members in groups.values())
    bar = _progress_bar(total_steps, progress)
    results: list[RunResult | None] = [None] * len(specs)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or training_threads())
    try:
        if engine == "kernel":
            _train_kernel_groups(list(groups.values()), specs, split_of, seeds, bar, results, done)
        else:
            for members in groups.values():
                group_specs = [specs[i] for i in members]
                group_splits, group_seed = split_of[members[0]], seeds[members[0]]
                models = [initial_model(spec.arch, group_seed) for spec in group_specs]
                n_train = int(group_splits.y["train"].shape[0])
                compile_now = (should_compile(group_specs[0], n_train, compile_mode) if compile_steps is None
                               else compile_steps)
                group = _Group(group_specs, models, group_splits, group_seed, compile_now)
                if bar is not None:
                    bar.set_description(_describe(group_specs), refresh=False)
                for index, result in zip(members, group.train(bar.update if bar is not None else None)):
                    results[index] = result
                    if done is not None:
                        done(index, result)
    finally:
        torch.set_num_threads(previous_threads)
        if bar is not None:
            bar.close()
    return results  # type: ignore[return-value]


def _train_kernel_groups(groups: list[list[int]], specs: Sequence[RunSpec], splits: Sequence[Splits],
                         seeds: Sequence[int], bar, results: list,
                         done: Callable[[int, RunResult], None] | None = None) -> None:
    """Kernel groups, several at a time when there are cores for it (`kernel_threads`): groups are independent
    and the kernel releases the GIL, so e.g. the seven shapes of `mlp-shapes`, or the groups of several seeds,
    share out the cores by whole groups, largest first. Each group computes exactly what it computes alone (its
    own generator, compiled code that does not depend on the threads), so the numbers do not depend on the
    thread count nor on the groups beside it. A group is built (its buffers allocated) only when a core takes
    it up, so many seeds' groups do not all hold their inputs at once; `done` runs in this thread as each group
    finishes."""
    import threading
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    workers = min(kernel_threads(), len(groups))
    threads_each = max(1, kernel_threads() // workers)
    lock = threading.Lock()

    def progress(steps: int) -> None:
        with lock:
            bar.update(steps)

    pending = []
    for members in groups:  # initial weights come from torch's global generator: draw them in order, here
        group_specs = [specs[i] for i in members]
        seed = seeds[members[0]]
        models = [initial_model(spec.arch, seed) for spec in group_specs]
        pending.append((members, group_specs, models, splits[members[0]], seed))

    def train(item) -> list[RunResult]:
        members, group_specs, models, group_splits, seed = item
        group = _KernelGroup(group_specs, models, group_splits, seed, threads_each)
        if bar is not None:
            with lock:
                bar.set_description(_describe(group.specs), refresh=False)
        return group.train(progress if bar is not None else None)

    def finish(members: list[int], trained: list[RunResult]) -> None:
        for index, result in zip(members, trained):
            results[index] = result
            if done is not None:
                done(index, result)

    if workers == 1:
        for item in pending:
            finish(item[0], train(item))
        return
    pending.sort(key=lambda item: -_kernel_cost(item[1], item[3]))
    with ThreadPoolExecutor(workers) as pool:
        jobs = {pool.submit(train, item): item[0] for item in pending}
        try:
            while jobs:
                finished, _ = wait(jobs, return_when=FIRST_COMPLETED)
                for job in finished:
                    finish(jobs.pop(job), job.result())
        finally:
            for job in jobs:
                job.cancel()


def _kernel_cost(specs: Sequence[RunSpec], splits: Splits) -> float:
    """Rough multiply-adds of training a group (to start the largest first): per row and run, the forward pass
    through every layer, times runs, epochs and training rows."""
    arch = specs[0].arch
    n_in = input_width(arch.implicit)
    per_row = n_in * arch.width + (arch.depth - 1) * arch.width ** 2 + arch.width * arch.n_classes
    return float(per_row) * len(specs) * specs[0].epochs * int(splits.y["train"].shape[0])


COMPILE_SMALL_BATCH = 32  # at most this many rows a step: Python overhead dominates the arithmetic
COMPILE_MIN_STEPS = 20_000  # enough steps to pay for compiling
COMPILE_MAX_DEPTH = 16  # compile time grows with depth


COMPILE_MODES = ("eager", "small", "all")


def should_compile(spec: RunSpec, n_train: int, mode: str = "eager") -> bool:
    """Whether a group's full-batch step is compiled, by `mode` (the `mlp_compile` parameter, part of the
    store key because compiled numbers differ from eager ones by rounding): "eager" (default) never; "small" only for
    plain SGD on small batches (<= COMPILE_SMALL_BATCH rows) for >= COMPILE_MIN_STEPS steps; "all" for
    every SGD group of >= 10,000 steps and depth <= COMPILE_MAX_DEPTH.

    Measured on the 2-core build machine (per step, eager -> compiled): batch 1 240 -> 70-85 us, batch 16
    260 -> 105-125 us, batch 128 with batch norm 520 -> 165-200 us, batch 256 320 -> 180 us. But compiling
    costs 1-2 s per architecture and batch size with a warm inductor cache and 5-10 s cold, and loading the
    compiler adds ~270 MB to the process (import torch alone is ~610 MB here), which breaks the 1 GiB
    budget of Section 6. Compiled numbers also drift from the textbook loop's by rounding, while an eager
    single run reproduces it bit for bit. Hence eager by default; "small" makes the batch-1 epoch ~5x faster
    (2.2 s instead of 12 s on the bundled data, plus 1-4 s compiling), "all" saves ~1/3 of Section 6
    with a warm cache and costs more than it saves with a cold one."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; expected one of {', '.join(COMPILE_MODES)}")
    if mode == "eager" or spec.optimizer != "sgd" or spec.arch.depth > COMPILE_MAX_DEPTH:
        return False
    steps = math.ceil(n_train / spec.batch_size) * spec.epochs
    if mode == "all":
        return steps >= 10_000
    return spec.batch_size <= COMPILE_SMALL_BATCH and steps >= COMPILE_MIN_STEPS


@contextlib.contextmanager
def _quiet_compiler():
    """Hide the C++ toolchain's note that no CUDA runtime exists (irrelevant for CPU code)."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _describe(specs: list[RunSpec]) -> str:
    return specs[0].label if len(specs) == 1 else f"{specs[0].label} +{len(specs) - 1}"


def _progress_bar(total: int, progress: bool | str):
    if not progress:
        return None
    from tqdm import tqdm  # plain text: tqdm.auto would want ipywidgets inside the book's kernels

    return tqdm(total=total, unit="step", unit_scale=True, delay=2.0, mininterval=1.0, leave=False,
                desc=progress if isinstance(progress, str) else None)
