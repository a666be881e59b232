"""A from-scratch numpy MLP: forward/backward pairs with caches, torch's weight layout. Notebooks 03-04.

Each ``*_forward`` returns ``(out, cache)``; each ``*_backward`` takes ``dout`` (the gradient of the loss
with respect to ``out``) and the cache. ``W`` has shape ``[fan_out, fan_in]``; a layer is ``x @ W.T + b``.
Everything is float64. The unit tests compare every gradient with torch autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from helpers import regularization
from helpers._validate import check_array, check_choice, check_int, check_real, check_rng


def linear_forward(x, w, b):
    """``out = x @ w.T + b``: x ``[batch, in]``, w ``[out, in]``, b ``[out]`` -> out ``[batch, out]``."""
    return x @ w.T + b, (x, w)


def linear_backward(dout, cache):
    """Gradients of ``x @ w.T + b``: ``dx = dout @ w``, ``dw = dout.T @ x``, ``db = dout.sum(0)``."""
    x, w = cache
    return dout @ w, dout.T @ x, dout.sum(axis=0)


def relu_forward(z):
    """``max(z, 0)``; cache ``z``."""
    return np.maximum(z, 0.0), z


def relu_backward(dout, z):
    """``dout · 1[z > 0]`` (derivative 0 at the kink z = 0, as torch)."""
    return dout * (z > 0)


def tanh_forward(z):
    """``tanh(z)``; cache the output ``h``."""
    h = np.tanh(z)
    return h, h


def tanh_backward(dout, h):
    """``dout · (1 - h²)`` with ``h = tanh(z)``."""
    return dout * (1.0 - h**2)


def softmax_cross_entropy(logits, y):
    """Mean cross-entropy of ``logits [batch, classes]`` against int labels ``y [batch]``.

    Returns ``(loss, dlogits)`` with ``dlogits = (softmax(logits) - onehot(y)) / batch``.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    batch = logits.shape[0]
    loss = -log_probs[np.arange(batch), y].mean()
    dlogits = np.exp(log_probs)
    dlogits[np.arange(batch), y] -= 1.0
    return float(loss), dlogits / batch


ACTIVATIONS = {"relu": (relu_forward, relu_backward), "tanh": (tanh_forward, tanh_backward)}


@dataclass(frozen=True)
class Backward:
    """The backward pieces ``mlp_loss`` uses; notebook 03 swaps one for a buggy version to plant a bug."""

    linear: Callable = linear_backward
    activation: Callable | None = None  # None: the correct one for the activation
    loss: Callable = softmax_cross_entropy


def init_mlp(sizes, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters ``W1, b1, ..., WL, bL`` for layer sizes ``[n0, n1, ..., nL]``.

    ``W_l ~ N(0, 2/n_{l-1})`` (He) of shape ``[n_l, n_{l-1}]``; ``b_l ~ N(0, 0.1²)`` (non-zero, so
    that bias gradients are exercised by checks).
    """
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
        raise TypeError("sizes must be a sequence of at least two layer sizes, e.g. [4, 8, 3]")
    sizes = [check_int(f"sizes[{i}]", n, minimum=1) for i, n in enumerate(sizes)]
    rng = check_rng("rng", rng)
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_out, fan_in))
        params[f"b{layer}"] = rng.normal(0.0, 0.1, fan_out)
    return params


def dropout_masks(params, batch: int, p: float, rng: np.random.Generator) -> list[np.ndarray]:
    """One boolean keep-mask ``[batch, n_l]`` per hidden layer, each entry kept with probability ``1 - p``.

    Drawn by ``regularization.dropout`` (the series' one dropout), to be passed to ``mlp_loss`` again and again.
    """
    rng = check_rng("rng", rng)
    batch = check_int("batch", batch, minimum=1)
    p = check_real("p", p, minimum=0.0)
    if p >= 1:
        raise ValueError(f"p (drop probability) must be in [0, 1), got {p}")
    depth = len(params) // 2
    return [regularization.dropout(np.ones((batch, params[f"W{k}"].shape[0])), p, rng)[1].astype(bool)
            for k in range(1, depth)]


def mlp_loss(params, x, y, *, activation: str = "tanh", l2: float = 0.0, dropout_p: float = 0.0, masks=None,
             backward: Backward | None = None):
    """Loss and gradients of an MLP ``[Linear, act, (dropout)] * (L-1) + [Linear]`` with softmax cross-entropy.

    Loss = mean cross-entropy + ``l2/2 · Σ_l ||W_l||²`` (biases are not penalised).
    Args:
        params: ``{"W1": [n1, n0], "b1": [n1], ...}`` (from ``init_mlp``); x ``[batch, n0]``; y int ``[batch]``.
        dropout_p: drop probability after each hidden activation; then ``masks`` (from ``dropout_masks``)
            must be given, so that repeated calls see the same mask.
        backward: the backward pieces (default: the correct ones).
    Returns:
        ``(loss, grads)`` with ``grads`` a dict shaped like ``params``.
    """
    if not isinstance(params, dict) or not params or len(params) % 2:
        raise TypeError("params must be a dict {'W1': ..., 'b1': ..., ...} as returned by init_mlp")
    depth = len(params) // 2
    for k in range(1, depth + 1):
        if f"W{k}" not in params or f"b{k}" not in params:
            raise ValueError(f"params must contain W{k} and b{k}")
    x = check_array("x", x, ndim=2)
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be {x.shape[0]} integer class labels, got {y.dtype} of shape {y.shape}")
    check_choice("activation", activation, ACTIVATIONS)
    l2 = check_real("l2", l2, minimum=0.0)
    dropout_p = check_real("dropout_p", dropout_p, minimum=0.0)
    if dropout_p >= 1:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0 and (masks is None or len(masks) != depth - 1):
        raise ValueError(f"dropout_p > 0 needs masks: {depth - 1} boolean arrays from dropout_masks()")
    backward = backward or Backward()
    act_forward, act_backward = ACTIVATIONS[activation]
    act_backward = backward.activation or act_backward

    caches, h = [], x
    for k in range(1, depth + 1):
        h, linear_cache = linear_forward(h, params[f"W{k}"], params[f"b{k}"])
        if k < depth:
            h, act_cache = act_forward(h)
            drop_mask = None
            if dropout_p > 0:  # the given mask, not a fresh one: repeated calls see the same network
                h, drop_mask = regularization.dropout(h, dropout_p, None, mask=masks[k - 1])
            caches.append((linear_cache, act_cache, drop_mask))
        else:
            caches.append((linear_cache, None, None))
    loss, dout = backward.loss(h, y)
    loss += 0.5 * l2 * sum(np.sum(params[f"W{k}"] ** 2) for k in range(1, depth + 1))

    grads = {}
    for k in range(depth, 0, -1):
        linear_cache, act_cache, drop_mask = caches[k - 1]
        if k < depth:
            if drop_mask is not None:
                dout = regularization.dropout_backward(dout, drop_mask, dropout_p)
            dout = act_backward(dout, act_cache)
        dout, dw, db = backward.linear(dout, linear_cache)
        grads[f"W{k}"] = dw + l2 * params[f"W{k}"]
        grads[f"b{k}"] = db
    return float(loss), grads
