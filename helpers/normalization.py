"""BatchNorm and LayerNorm from scratch in numpy, and the loss-landscape probes of Santurkar et al. Notebook 06.

BatchNorm normalizes each feature over the batch, LayerNorm each sample over its features:

    x̂ = (x - μ) / √(σ² + eps),   out = γ · x̂ + β

with ``μ, σ²`` the mean and the *biased* variance over axis 0 (BN) or axis 1 (LN). The backward pass
of either, for ``g = dout · γ`` and ``N`` the size of the normalized axis, is

    dx = (g - mean(g) - x̂ · mean(g · x̂)) / √(σ² + eps)

(means over that axis): the normalization removes the components of ``g`` along the constant and
along ``x̂``. In training mode BN also updates running statistics with torch's convention
``running ← (1 - momentum) · running + momentum · batch statistic``, using the *unbiased* variance
(``σ² · N / (N - 1)``); in eval mode it normalizes with the running statistics instead.
Everything is float64, ``x`` is ``[batch, features]``.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from helpers._validate import check_array, check_int, check_real


class RunningStats(NamedTuple):
    """BatchNorm's running estimates, ``mean [features]`` and ``var [features]`` (torch starts at 0 and 1)."""

    mean: np.ndarray
    var: np.ndarray


def _check_affine(x: np.ndarray, gamma, beta) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta = check_array("gamma", gamma, ndim=1), check_array("beta", beta, ndim=1)
    for name, value in (("gamma", gamma), ("beta", beta)):
        if value.shape != (x.shape[1],):
            raise ValueError(f"{name} must have shape ({x.shape[1]},) like x's features, got {value.shape}")
    return gamma, beta


def initial_running_stats(features: int) -> RunningStats:
    """``RunningStats(zeros, ones)``: what a fresh ``torch.nn.BatchNorm1d(features)`` holds."""
    features = check_int("features", features, minimum=1)
    return RunningStats(np.zeros(features), np.ones(features))


def batchnorm_forward(x, gamma, beta, running: RunningStats, *, training: bool = True, momentum: float = 0.1,
                      eps: float = 1e-5):
    """BatchNorm over the batch axis, as ``torch.nn.BatchNorm1d`` (``affine=True``, running stats tracked).

    Args:
        x: ``[batch, features]``; gamma, beta: ``[features]``; running: ``RunningStats`` before this call.
        training: batch statistics and a running-stats update (needs ``batch ≥ 2``); else running statistics.
    Returns:
        ``(out [batch, features], cache, running)`` with the updated ``RunningStats`` (unchanged in eval mode).
    """
    x = check_array("x", x, ndim=2)
    gamma, beta = _check_affine(x, gamma, beta)
    if not isinstance(running, RunningStats):
        raise TypeError(f"running must be a RunningStats (see initial_running_stats), got {type(running).__name__}")
    if not isinstance(training, bool):
        raise TypeError(f"training must be True or False, got {training!r}")
    momentum = check_real("momentum", momentum, minimum=0.0, maximum=1.0)
    eps = check_real("eps", eps, positive=True)
    if training:
        batch = x.shape[0]
        if batch < 2:
            raise ValueError(f"x must have at least 2 rows in training mode (a variance over the batch), got {batch}")
        mean, var = x.mean(axis=0), x.var(axis=0)
        running = RunningStats((1 - momentum) * running.mean + momentum * mean,
                               (1 - momentum) * running.var + momentum * var * batch / (batch - 1))
    else:
        mean, var = running.mean, running.var
    std = np.sqrt(var + eps)
    x_hat = (x - mean) / std
    return gamma * x_hat + beta, (x_hat, std, gamma, training), running


def batchnorm_backward(dout, cache):
    """Gradients of ``batchnorm_forward``: ``(dx, dgamma, dbeta)``, shapes ``[batch, features]``, ``[features]`` ×2.

    Training mode: ``dx = (g - mean_batch(g) - x̂ · mean_batch(g · x̂)) / std`` with ``g = dout · γ``.
    Eval mode: the statistics are constants, ``dx = g / std``.
    """
    dout = check_array("dout", dout, ndim=2)
    x_hat, std, gamma, training = cache
    if dout.shape != x_hat.shape:
        raise ValueError(f"dout must have shape {x_hat.shape} like the forward output, got {dout.shape}")
    g = dout * gamma
    if training:
        dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std
    else:
        dx = g / std
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def layernorm_forward(x, gamma, beta, *, eps: float = 1e-5):
    """LayerNorm over the feature axis, as ``torch.nn.LayerNorm(features)``; same in training and eval.

    x: ``[batch, features]``; gamma, beta: ``[features]``. Returns ``(out, cache)``.
    """
    x = check_array("x", x, ndim=2)
    gamma, beta = _check_affine(x, gamma, beta)
    eps = check_real("eps", eps, positive=True)
    std = np.sqrt(x.var(axis=1, keepdims=True) + eps)
    x_hat = (x - x.mean(axis=1, keepdims=True)) / std
    return gamma * x_hat + beta, (x_hat, std, gamma)


def layernorm_backward(dout, cache):
    """Gradients of ``layernorm_forward``: ``(dx, dgamma, dbeta)``; the BN formula with means over features."""
    dout = check_array("dout", dout, ndim=2)
    x_hat, std, gamma = cache
    if dout.shape != x_hat.shape:
        raise ValueError(f"dout must have shape {x_hat.shape} like the forward output, got {dout.shape}")
    g = dout * gamma
    dx = (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1, keepdims=True)) / std
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


class ShiftNoise(nn.Module):
    """Santurkar et al.'s "noisy BatchNorm": a random distribution shift, redrawn at every step, injected after BN.

    In training mode every forward pass draws, per feature, a scale ``s ~ U(1 - scale_spread, 1 + scale_spread)``
    (mean 1) and a shift ``m ~ U(-max_shift, max_shift)`` and returns ``x · s + m``: the same for every row
    of the batch, so the next layer sees an input distribution of non-zero mean and non-unit variance that
    changes at every step (the paper's noise was drawn per sample as well). Identity in eval mode.
    Draws come from ``generator`` (a ``torch.Generator``), so runs are reproducible.
    """

    def __init__(self, *, max_shift: float, scale_spread: float, generator: torch.Generator):
        super().__init__()
        self.max_shift = check_real("max_shift", max_shift, minimum=0.0)
        self.scale_spread = check_real("scale_spread", scale_spread, minimum=0.0)
        if self.scale_spread >= 1:
            raise ValueError(f"scale_spread must be below 1 (a positive scale), got {scale_spread}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        features = x.shape[1:]
        uniform = torch.rand((2, *features), generator=self.generator, dtype=x.dtype)
        scale = 1 + self.scale_spread * (2 * uniform[0] - 1)
        return x * scale + self.max_shift * (2 * uniform[1] - 1)


@contextlib.contextmanager
def _restored(model: nn.Module, params: list[torch.Tensor]):
    """Yield copies of ``params``; on exit (also after an error) put ``params`` and ``model``'s buffers back."""
    start = [p.detach().clone() for p in params]
    buffers = [b.detach().clone() for b in model.buffers()]
    try:
        yield start
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, start):
                p.copy_(p0)
            for b, b0 in zip(model.buffers(), buffers):
                b.copy_(b0)


def internal_covariate_shift(model: nn.Module, layers: list[nn.Module], x, y, *, lr: float) -> dict[str, np.ndarray]:
    """Santurkar et al.'s internal covariate shift (their Definition 2.1), per layer, on one fixed batch.

    ``G_i = ∇_{θ_i} L(θ)`` is layer ``i``'s gradient; ``G'_i`` the same gradient after the layers before it
    (``layers[:i]``) took their SGD step ``θ_j ← θ_j - lr ∇_{θ_j} L(θ)`` while layer ``i`` and later ones
    did not: how much a layer's gradient changes because its inputs' distribution moved. Cross-entropy on
    ``(x, y)`` in the model's current mode. Returns, for ``i = 1..len(layers) - 1``, ``change`` ``||G - G'||``,
    ``relative`` ``||G - G'|| / ||G||`` and ``cosine`` ``cos(G, G')``, each ``[len(layers) - 1]``.
    The model's parameters and buffers are restored.
    """
    lr = check_real("lr", lr, positive=True)
    if len(layers) < 2 or not all(isinstance(m, nn.Module) for m in layers):
        raise ValueError("layers must be a list of at least 2 nn.Modules in forward order")
    groups = [list(m.parameters()) for m in layers]
    params = [p for group in groups for p in group]
    x, y = torch.as_tensor(x), torch.as_tensor(y)

    def grads():
        return torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)

    def flat(values, i):
        offset = sum(len(group) for group in groups[:i])
        return torch.cat([v.reshape(-1) for v in values[offset: offset + len(groups[i])]])

    change, relative, cosine = [], [], []
    with _restored(model, params) as start:
        before = grads()
        for i in range(1, len(layers)):
            updated = sum(len(group) for group in groups[:i])  # the parameters of layers[:i] come first
            with torch.no_grad():
                for k, (p, p0, g) in enumerate(zip(params, start, before)):
                    p.copy_(p0 - lr * g if k < updated else p0)
            g_old, g_new = flat(before, i), flat(grads(), i)
            change.append((g_old - g_new).norm().item())
            relative.append(change[-1] / g_old.norm().item())
            cosine.append(nn.functional.cosine_similarity(g_old, g_new, dim=0).item())
    return {"change": np.array(change), "relative": np.array(relative), "cosine": np.array(cosine)}


def landscape_along_gradient(model: nn.Module, x, y, step_sizes) -> dict[str, np.ndarray]:
    """Santurkar et al.'s probes of the loss landscape at the current parameters, along ``-∇L``.

    For each step size ``η`` the parameters are moved to ``θ - η g`` (``g = ∇L(θ)`` on ``(x, y)``,
    cross-entropy, model in its current mode) and measured, then restored:
    ``loss [k]`` = ``L(θ - η g)``; ``grad_change [k]`` = ``||∇L(θ - η g) - g||`` ("gradient
    predictiveness": small means the gradient stays a good guide along the step);
    ``smoothness [k]`` = ``grad_change / ||η g||`` (an effective β-smoothness along the step);
    ``grad_norm`` = ``||g||`` (a float).
    Batch statistics of BN layers see the same batch throughout; running statistics are restored.
    """
    step_sizes = check_array("step_sizes", step_sizes, ndim=1)
    if np.any(step_sizes <= 0):
        raise ValueError("step_sizes must be positive")
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = torch.as_tensor(x), torch.as_tensor(y)

    def loss_and_grad():
        value = nn.functional.cross_entropy(model(x), y)
        return value.item(), torch.autograd.grad(value, params)

    losses, changes = [], []
    with _restored(model, params) as start:
        _, g = loss_and_grad()
        g_norm = torch.sqrt(sum((gi**2).sum() for gi in g)).item()
        for eta in step_sizes:
            with torch.no_grad():
                for p, p0, gi in zip(params, start, g):
                    p.copy_(p0 - eta * gi)
            loss, g_new = loss_and_grad()
            losses.append(loss)
            changes.append(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(g_new, g))).item())
    changes = np.array(changes)
    return {"loss": np.array(losses), "grad_change": changes, "smoothness": changes / (step_sizes * g_norm),
            "grad_norm": g_norm}


def eval_loss(model: nn.Module, x, y) -> float:
    """Cross-entropy of ``model`` on ``(x, y)`` in eval mode (running BN statistics, no injected noise).

    The model's training/eval mode is restored afterwards; nothing is updated.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return nn.functional.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y)).item()
    finally:
        model.train(was_training)


def train_recording_inputs(model: nn.Module, x, y, *, steps: int, lr: float, batch_size: int,
                           generator: torch.Generator, watch: list[nn.Module] = ()):
    """Plain SGD on cross-entropy, recording the distribution of what the layers in ``watch`` output.

    Minibatches of ``batch_size`` rows are drawn (without replacement within a batch) from
    ``generator``; each step is ``θ ← θ - lr · ∇L(θ)``, the same update as ``torch.optim.SGD(lr=lr)``
    (written out: building a torch optimizer imports ``torch._dynamo``, about 2 s). Returns
    ``(losses [steps], unit_stats [steps, 2, len(watch), width])``: each step's minibatch loss, and the
    batch mean (``[:, 0]``) and batch standard deviation (``[:, 1]``) of every unit of every watched
    module's output (e.g. the input of each ReLU): the distribution whose drift "internal covariate
    shift" is about (see ``input_drift``). Stops recording at NaN.
    """
    steps, batch_size = check_int("steps", steps, minimum=1), check_int("batch_size", batch_size, minimum=2)
    lr = check_real("lr", lr, positive=True)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    dtype = params[0].dtype
    x = torch.as_tensor(x if torch.is_tensor(x) else check_array("x", x, ndim=2), dtype=dtype)
    y = torch.as_tensor(y if torch.is_tensor(y) else np.asarray(y), dtype=torch.int64)
    outputs: dict[int, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _i, out, k=k: outputs.__setitem__(k, out.detach()))
               for k, m in enumerate(watch)]
    losses, means = np.full(steps, np.nan), []
    try:
        for step in range(steps):
            index = torch.randperm(x.shape[0], generator=generator)[:batch_size]
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            losses[step] = loss.item()
            if watch:  # [2, len(watch), width]: every unit's batch mean and standard deviation
                std, mean = torch.std_mean(torch.stack([outputs[k] for k in range(len(watch))]), dim=1)
                means.append(torch.stack([mean, std]))
            if not np.isfinite(losses[step]):
                break
            for p in params:
                p.grad = None
            loss.backward()  # into .grad, where hooks such as monitor.watch's read it
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:  # as torch.optim.SGD: a parameter the loss does not reach stays
                        p.add_(p.grad, alpha=-lr)
    finally:
        for handle in handles:
            handle.remove()
    return losses, torch.stack(means).double().numpy() if means else np.empty((len(losses), 2, 0, 0))


def input_drift(unit_stats) -> dict[str, np.ndarray]:
    """How far each watched layer's input distribution moves from one step to the next.

    ``unit_stats [steps, 2, layers, width]`` as returned by ``train_recording_inputs``. Per step ``t`` and
    layer: ``mean_shift [steps - 1, layers]`` = median over units of ``|m_{t+1} - m_t| / s_t`` (the unit's
    batch mean moves by this many of its batch standard deviations) and ``log_std_change`` = median over
    units of ``|log s_{t+1} - log s_t|``. Units with ``s_t = 0`` (dead) are left out.
    """
    stats = check_array("unit_stats", unit_stats, ndim=4)
    if stats.shape[1] != 2 or stats.shape[0] < 2:
        raise ValueError(f"unit_stats must have shape [steps >= 2, 2, layers, width], got {stats.shape}")
    mean, std = stats[:, 0], stats[:, 1]
    alive = (std[:-1] > 0) & (std[1:] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(alive, np.abs(mean[1:] - mean[:-1]) / std[:-1], np.nan)
        log_change = np.where(alive, np.abs(np.log(std[1:]) - np.log(std[:-1])), np.nan)
    return {"mean_shift": np.nanmedian(shift, axis=-1), "log_std_change": np.nanmedian(log_change, axis=-1)}
