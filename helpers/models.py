"""Deep MLPs in torch and a minimal, explicit training loop. Shared by every notebook.

Weight layout is torch's: ``W`` has shape ``[fan_out, fan_in]`` and a layer computes ``x @ W.T + b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers._validate import check_array, check_choice, check_int, check_real
from helpers.monitor import _Recorder

ACTIVATIONS = {
    "linear": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # negative slope 0.01, torch's default
}
INITS = ("default", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal", "constant")


def _init_linear(layer: nn.Linear, init: str, gain: float, activation: str, generator) -> None:
    weight = layer.weight
    if init == "default":  # nn.Linear's own reset: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b
        bound = 1.0 / math.sqrt(weight.shape[1])
        nn.init.uniform_(weight, -bound, bound, generator=generator)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        return
    if init == "normal":
        nn.init.normal_(weight, 0.0, gain / math.sqrt(weight.shape[1]), generator=generator)
    elif init in ("xavier_uniform", "xavier_normal"):
        getattr(nn.init, init + "_")(weight, gain=gain, generator=generator)
    elif init in ("kaiming_uniform", "kaiming_normal"):
        nonlinearity = activation if activation in ("relu", "leaky_relu", "tanh", "sigmoid") else "linear"
        a = 0.01 if activation == "leaky_relu" else 0.0
        getattr(nn.init, init + "_")(weight, a=a, nonlinearity=nonlinearity, generator=generator)
        weight.data.mul_(gain)
    elif init == "orthogonal":
        nn.init.orthogonal_(weight, gain=gain, generator=generator)
    else:  # constant: every weight equal, so every hidden unit computes the same thing
        nn.init.constant_(weight, gain / weight.shape[1])
    nn.init.zeros_(layer.bias)


def deep_mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    *,
    activation: str = "relu",
    init: str = "default",
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    dropout: float = 0.0,
) -> nn.Sequential:
    """An MLP with ``depth`` hidden layers of ``width`` units: ``[Linear, act] * depth + [Linear]``.

    With ``dropout > 0`` an ``nn.Dropout(dropout)`` (drop probability) follows every activation.

    Args:
        activation: one of ``ACTIVATIONS`` (``"linear"`` means no nonlinearity).
        init: how weights are drawn (biases are zero except for ``"default"``):
            ``"default"``: torch's ``nn.Linear`` default, ``U(±1/sqrt(fan_in))`` for W and b;
            ``"normal"``: ``N(0, (gain/sqrt(fan_in))²)`` (the weight scale ``a`` of notebook 01);
            ``"xavier_*"``: Glorot with ``gain``; ``"kaiming_*"``: He for ``activation``, times ``gain``;
            ``"orthogonal"``: ``gain`` times a random orthogonal matrix; ``"constant"``: ``gain/fan_in``.
        generator: a ``torch.Generator`` for reproducible weights (``None``: torch's global RNG).
        dtype: parameter dtype (float64 by default, for exact comparisons).
    Returns:
        ``nn.Sequential`` with ``2 * depth + 1`` modules (``3 * depth + 1`` with dropout); input ``[batch, in_features]``,
        output ``[batch, out_features]``.
    """
    in_features = check_int("in_features", in_features, minimum=1)
    width = check_int("width", width, minimum=1)
    depth = check_int("depth", depth, minimum=0)
    out_features = check_int("out_features", out_features, minimum=1)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("init", init, INITS)
    gain = check_real("gain", gain, positive=True)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    dropout = check_real("dropout", dropout, minimum=0.0)
    if dropout >= 1:
        raise ValueError(f"dropout (drop probability) must be in [0, 1), got {dropout}")

    sizes = [in_features] + [width] * depth + [out_features]
    modules: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = nn.Linear(fan_in, fan_out, dtype=dtype)
        with torch.no_grad():
            _init_linear(layer, init, gain, activation, generator)
        modules.append(layer)
        if i < depth:
            modules.append(ACTIVATIONS[activation]())
            if dropout > 0:
                modules.append(nn.Dropout(dropout))
    return nn.Sequential(*modules)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` modules of ``model`` in forward order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


@dataclass(frozen=True)
class TrainHistory:
    """What one training run did.

    ``loss [steps]`` (full-batch training loss before each step; NaN/inf once diverged),
    ``grad_norms [steps, n_layers]`` (``||dL/dW_l||`` per Linear layer and step, data loss plus any
    penalty the optimizer adds), ``weight_norms [steps, n_layers]`` (``||W_l||`` before each step),
    ``relative_weight_change [n_layers]`` (``||W_end - W_0|| / ||W_0||``),
    ``diverged_at`` (first step whose loss was not finite, or ``None``),
    ``val_loss [steps]`` (loss on ``(x_val, y_val)`` in eval mode before each step; NaN without them),
    ``total_grad_norm [steps]`` (global norm of all parameters' gradients before any clipping).
    """

    loss: np.ndarray
    grad_norms: np.ndarray
    relative_weight_change: np.ndarray
    diverged_at: int | None
    weight_norms: np.ndarray
    val_loss: np.ndarray
    total_grad_norm: np.ndarray


def train(
    model: nn.Module,
    x,
    y,
    *,
    steps: int,
    lr: float,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    loss: str = "cross_entropy",
    optimizer: str = "sgd",
    weight_decay: float = 0.0,
    x_val=None,
    y_val=None,
    clip_norm: float | None = None,
) -> TrainHistory:
    """Train ``model`` on ``(x, y)`` with SGD or Adam; stops early at the first non-finite loss.

    Args:
        x: ``[n, in_features]`` array or tensor (converted to the model's dtype).
        y: ``[n]`` int class labels for ``"cross_entropy"``, or ``[n, out]`` targets for ``"mse"``.
        steps: number of optimizer steps; lr: learning rate; optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        weight_decay: passed to the torch optimizer (L2 added to the gradient for SGD and Adam,
            decoupled decay for AdamW).
        x_val, y_val: optional validation data, evaluated in eval mode (dropout off) before each step.
        clip_norm: if given, ``torch.nn.utils.clip_grad_norm_(params, clip_norm)`` before each step.
        batch_size: minibatch size drawn with replacement of batches (``None``: full batch).
        generator: ``torch.Generator`` that draws the minibatches (``None``: torch's global RNG).
    Returns:
        A ``TrainHistory`` whose ``loss`` is each step's minibatch loss; after divergence the
        remaining entries are NaN.
    """
    layers = linear_layers(model)
    if not layers:
        raise ValueError("model must contain at least one nn.Linear layer")
    steps = check_int("steps", steps, minimum=1)
    lr = check_real("lr", lr, positive=True)
    check_choice("loss", loss, ("cross_entropy", "mse"))
    check_choice("optimizer", optimizer, ("sgd", "adam", "adamw"))
    weight_decay = check_real("weight_decay", weight_decay, minimum=0.0)
    if clip_norm is not None:
        clip_norm = check_real("clip_norm", clip_norm, positive=True)
    dtype = layers[0].weight.dtype
    x = torch.as_tensor(x if torch.is_tensor(x) else check_array("x", x, ndim=2), dtype=dtype)
    if x.ndim != 2 or x.shape[1] != layers[0].in_features:
        raise ValueError(f"x must have shape [n, {layers[0].in_features}], got {tuple(x.shape)}")
    if loss == "cross_entropy":
        y = torch.as_tensor(y if torch.is_tensor(y) else check_array("y", y, ndim=1), dtype=torch.int64)
        loss_fn = nn.functional.cross_entropy
    else:
        y = torch.as_tensor(y if torch.is_tensor(y) else check_array("y", y), dtype=dtype)
        loss_fn = nn.functional.mse_loss
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have {x.shape[0]} rows like x, got {y.shape[0]}")
    if batch_size is not None:
        batch_size = min(check_int("batch_size", batch_size, minimum=1), x.shape[0])
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")

    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    if x_val is not None:
        x_val = torch.as_tensor(x_val if torch.is_tensor(x_val) else check_array("x_val", x_val, ndim=2), dtype=dtype)
        y_val = torch.as_tensor(y_val if torch.is_tensor(y_val) else check_array("y_val", y_val),
                                dtype=torch.int64 if loss == "cross_entropy" else dtype)
        if x_val.shape[1:] != x.shape[1:] or y_val.shape[0] != x_val.shape[0]:
            raise ValueError(f"x_val must have shape [m, {x.shape[1]}] and y_val m rows")

    params = list(model.parameters())
    optimizers = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    opt = optimizers[optimizer](params, lr=lr, weight_decay=weight_decay)
    penalty = weight_decay if optimizer != "adamw" else 0.0  # SGD and Adam add penalty * W to the gradient
    initial = [layer.weight.detach().clone() for layer in layers]
    losses, val_losses = np.full(steps, np.nan), np.full(steps, np.nan)
    grad_norms, weight_norms = np.full((steps, len(layers)), np.nan), np.full((steps, len(layers)), np.nan)
    total_norms = np.full(steps, np.nan)
    diverged_at = None
    # the monitor's hooks record ||dL/dW||, ||W|| before each step and the total gradient norm (before clipping)
    recorder = _Recorder(model, opt, layers, 1, (), 1, activations=False, updates=False)
    try:
        for step in range(steps):
            if x_val is not None:
                model.eval()
                with torch.no_grad():
                    val_losses[step] = loss_fn(model(x_val), y_val).item()
                model.train()
            opt.zero_grad()
            if batch_size is None:
                xb, yb = x, y
            else:
                index = torch.randperm(x.shape[0], generator=generator)[:batch_size]
                xb, yb = x[index], y[index]
            value = loss_fn(model(xb), yb)
            losses[step] = value.item()
            if not math.isfinite(losses[step]):
                diverged_at = step
                break
            value.backward()
            if penalty:
                grad_norms[step] = [(layer.weight.grad + penalty * layer.weight.detach()).norm().item() for layer in layers]
            if clip_norm is not None:
                total_norms[step] = nn.utils.clip_grad_norm_(params, clip_norm).item()
            opt.step()
    finally:
        recorder.close()
    log = recorder.log
    taken = log.steps.size
    if taken:  # nothing is recorded when the first loss is already non-finite
        weight_norms[:taken] = log.weight_norm
        if not penalty:
            grad_norms[:taken] = log.grad_norm
        if clip_norm is None:  # with clipping, clip_grad_norm_ already returned the same total norm
            total_norms[:taken] = log.total_grad_norm
    if diverged_at is not None:  # no step was taken: the weights are still those before it
        weight_norms[diverged_at] = [layer.weight.detach().norm().item() for layer in layers]
    change = [((layer.weight.detach() - w0).norm() / w0.norm()).item() for layer, w0 in zip(layers, initial)]
    return TrainHistory(losses, grad_norms, np.array(change), diverged_at, weight_norms, val_losses, total_norms)


def accuracy(model: nn.Module, x, y) -> float:
    """Share of rows of ``x`` whose arg-max output equals the label in ``y`` (model in eval mode)."""
    layers = linear_layers(model)
    x = torch.as_tensor(x if torch.is_tensor(x) else check_array("x", x, ndim=2), dtype=layers[0].weight.dtype)
    y = torch.as_tensor(y if torch.is_tensor(y) else np.asarray(y), dtype=torch.int64)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    model.train(was_training)
    return float((predicted == y).double().mean().item())


def gradient_samples(model: nn.Module, x, y, *, batch_size: int, n: int, generator: torch.Generator) -> np.ndarray:
    """Flattened gradients of the cross-entropy on ``n`` random minibatches, at fixed parameters.

    The model stays in its current mode (train mode: a fresh dropout mask per minibatch). Returns
    ``[n, n_params]``; the spread across rows is the gradient noise an SGD step sees.
    """
    layers = linear_layers(model)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    n = check_int("n", n, minimum=2)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    x = torch.as_tensor(x if torch.is_tensor(x) else check_array("x", x, ndim=2), dtype=layers[0].weight.dtype)
    y = torch.as_tensor(y if torch.is_tensor(y) else np.asarray(y), dtype=torch.int64)
    params = list(model.parameters())
    rows = []
    for _ in range(n):
        index = torch.randperm(x.shape[0], generator=generator)[:batch_size]
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x[index]), y[index]), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]).detach().double().numpy())
    return np.stack(rows)


def predict_grid(model: nn.Module, xlim, ylim, resolution: int = 120):
    """Class probabilities of a 2-input classifier on a grid (eval mode), for decision-boundary plots.

    Returns ``(xx, yy, probabilities)`` with ``xx, yy`` of shape ``[resolution, resolution]`` and
    ``probabilities [resolution, resolution, n_classes]``.
    """
    layers = linear_layers(model)
    if layers[0].in_features != 2:
        raise ValueError(f"model must take 2 inputs, it takes {layers[0].in_features}")
    resolution = check_int("resolution", resolution, minimum=2)
    (x0, x1), (y0, y1) = (check_array("xlim", xlim, ndim=1), check_array("ylim", ylim, ndim=1))
    xx, yy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], axis=1), dtype=layers[0].weight.dtype)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(grid), dim=1).double().numpy()
    model.train(was_training)
    return xx, yy, probabilities.reshape(resolution, resolution, -1)
