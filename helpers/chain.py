"""Backprop as a product of per-layer factors, in numpy. Serves notebook 01.

A deep net ``h_l = f(z_l)``, ``z_l = h_{l-1} @ W_l.T`` (``W_l`` of shape ``[width, width]``, torch
layout) sends the gradient back one layer at a time:

    dL/dh_{l-1} = (f'(z_l) * dL/dh_l) @ W_l

so ``||dL/dh_0||`` is ``||dL/dh_L||`` times the product of the per-layer factors
``||dL/dh_{l-1}|| / ||dL/dh_l||``. With ``W_l`` drawn ``N(0, a²/width)`` each factor is about
``a * rms(f'(z_l))``; with ``W_l = a Q_l`` (``Q_l`` orthogonal) and ``f`` linear it is exactly ``a``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from helpers._validate import check_array, check_choice, check_int, check_real, check_rng


def sigmoid(x):
    """σ(x) = 1 / (1 + e^{-x}), elementwise, computed without overflow."""
    x = check_array("x", x, finite=False)
    return np.exp(-np.logaddexp(0.0, -x))


def sigmoid_grad(x):
    """σ'(x) = σ(x)(1 - σ(x)) = σ(x)σ(-x) ≤ 1/4, elementwise (maximum 1/4 at x = 0).

    The form σ(x)σ(-x) keeps full relative precision in both tails (1 - σ(x) cancels for large x).
    """
    x = check_array("x", x, finite=False)
    return sigmoid(x) * sigmoid(-x)


# name -> (f, f') on float64 arrays; ReLU's derivative at exactly 0 is taken as 0, like torch.
ACTIVATIONS = {
    "linear": (lambda z: z, np.ones_like),
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(np.float64)),
}


def make_weights(
    depth: int, width: int, weight_scale: float, rng: np.random.Generator, *, kind: str = "gaussian"
) -> list[np.ndarray]:
    """``depth`` square weight matrices ``[width, width]``.

    ``kind="gaussian"``: entries ``N(0, weight_scale² / width)``;
    ``kind="orthogonal"``: ``weight_scale * Q`` with ``Q`` Haar-random orthogonal, so every
    singular value equals ``weight_scale``.
    """
    depth = check_int("depth", depth, minimum=1)
    width = check_int("width", width, minimum=1)
    weight_scale = check_real("weight_scale", weight_scale, positive=True)
    rng = check_rng("rng", rng)
    check_choice("kind", kind, ("gaussian", "orthogonal"))
    weights = []
    for _ in range(depth):
        g = rng.standard_normal((width, width))
        if kind == "gaussian":
            weights.append(weight_scale / np.sqrt(width) * g)
        else:
            q, r = np.linalg.qr(g)
            weights.append(weight_scale * q * np.sign(np.diag(r)))  # sign fix makes Q Haar-distributed
    return weights


@dataclass(frozen=True)
class ChainStats:
    """One forward/backward pass through ``L`` layers.

    ``grad_norms [L+1]``: ``||dL/dh_l||`` for ``l = 0..L`` (index 0 = input, L = top).
    ``factors [L]``: ``grad_norms[l-1] / grad_norms[l]`` for ``l = 1..L`` (index ``l-1``).
    ``derivative_rms [L]``: ``sqrt(mean(f'(z_l)²))``; ``derivative_max [L]``: ``max f'(z_l)``.
    ``weight_grad_norms [L]``: ``||dL/dW_l||``; ``activation_std [L]``: ``std(h_l)``, ``l = 1..L``.
    ``grad_std [L+1]``: ``std`` of the entries of ``dL/dh_l``, ``l = 0..L``.
    ``spectral_norms [L]``: largest singular value of each ``W_l`` (computed on first use: an SVD per layer).
    """

    grad_norms: np.ndarray
    factors: np.ndarray
    derivative_rms: np.ndarray
    derivative_max: np.ndarray
    weight_grad_norms: np.ndarray
    activation_std: np.ndarray
    grad_std: np.ndarray
    weights: tuple = field(repr=False, compare=False)

    @property
    def depth(self) -> int:
        return len(self.factors)

    @cached_property
    def spectral_norms(self) -> np.ndarray:
        return np.array([np.linalg.norm(w, 2) for w in self.weights])


def backward_pass(weights, x, top_grad, activation: str) -> ChainStats:
    """Run ``x`` through ``h_l = f(h_{l-1} @ W_l.T)`` and send ``top_grad = dL/dh_L`` back.

    Args:
        weights: list of ``L`` arrays, ``W_l`` of shape ``[n_l, n_{l-1}]`` (square in notebook 01).
        x: inputs ``[batch, n_0]``; top_grad: ``dL/dh_L``, ``[batch, n_L]``.
        activation: a key of ``ACTIVATIONS``.
    Returns:
        ``ChainStats`` (equal to what torch autograd gives for ``L = sum(h_L * top_grad)``).
    """
    if not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError("weights must be a non-empty list of [n_out, n_in] arrays")
    weights = [check_array(f"weights[{i}]", w, ndim=2) for i, w in enumerate(weights)]
    for i in range(1, len(weights)):
        if weights[i].shape[1] != weights[i - 1].shape[0]:
            raise ValueError(
                f"weights[{i}] must have {weights[i - 1].shape[0]} columns to follow weights[{i - 1}], "
                f"got shape {weights[i].shape}"
            )
    x = check_array("x", x, ndim=2)
    top_grad = check_array("top_grad", top_grad, ndim=2)
    if x.shape[1] != weights[0].shape[1]:
        raise ValueError(f"x must have shape [batch, {weights[0].shape[1]}], got {x.shape}")
    if top_grad.shape != (x.shape[0], weights[-1].shape[0]):
        raise ValueError(f"top_grad must have shape {(x.shape[0], weights[-1].shape[0])}, got {top_grad.shape}")
    f, f_prime = ACTIVATIONS[check_choice("activation", activation, ACTIVATIONS)]

    h, pre = [x], []
    for w in weights:
        pre.append(h[-1] @ w.T)
        h.append(f(pre[-1]))
    grad = top_grad
    grad_norms, grad_std, weight_grad_norms = [np.linalg.norm(grad)], [grad.std()], []
    for w, z, h_below in zip(reversed(weights), reversed(pre), reversed(h[:-1])):
        grad_z = f_prime(z) * grad
        weight_grad_norms.append(np.linalg.norm(grad_z.T @ h_below))
        grad = grad_z @ w
        grad_norms.append(np.linalg.norm(grad))
        grad_std.append(grad.std())
    grad_norms = np.array(grad_norms[::-1])
    derivatives = [f_prime(z) for z in pre]
    return ChainStats(
        grad_norms=grad_norms,
        factors=grad_norms[:-1] / grad_norms[1:],
        derivative_rms=np.array([np.sqrt(np.mean(d**2)) for d in derivatives]),
        derivative_max=np.array([d.max() for d in derivatives]),
        weight_grad_norms=np.array(weight_grad_norms[::-1]),
        activation_std=np.array([hl.std() for hl in h[1:]]),
        grad_std=np.array(grad_std[::-1]),
        weights=tuple(weights),
    )


def predicted_factors(stats: ChainStats, weight_scale: float) -> np.ndarray:
    """The per-layer factors of the product model, ``a * rms(f'(z_l))`` for ``l = 1..L``: ``[L]``,
    aligned with ``stats.factors``.

    Why: ``W_l ~ N(0, a²/n_in)`` multiplies the squared norm of the backward signal by ``a²`` on
    average (any shape), and the activation multiplies each entry by ``f'(z)``.
    """
    if not isinstance(stats, ChainStats):
        raise TypeError(f"stats must be a ChainStats from backward_pass, got {type(stats).__name__}")
    weight_scale = check_real("weight_scale", weight_scale, positive=True)
    return weight_scale * stats.derivative_rms


def predicted_norms(stats: ChainStats, weight_scale: float) -> np.ndarray:
    """``||dL/dh_l||`` predicted by the product model: ``||dL/dh_L|| * Π_{k>l} a * rms(f'(z_k))``.

    Exact for a linear net with orthogonal weights; for Gaussian weights it holds in
    expectation for wide layers (each factor fluctuates by about ``1/sqrt(width)``).
    Returns ``[L+1]``, aligned with ``stats.grad_norms``.
    """
    per_layer = predicted_factors(stats, weight_scale)
    # product over the layers above l, from the top down
    above = np.append(np.cumprod(per_layer[::-1])[::-1], 1.0)
    return stats.grad_norms[-1] * above


def matrix_with_spectral_radius(n: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A random Gaussian ``[n, n]`` matrix rescaled so that ``max |eigenvalue| == radius``."""
    n = check_int("n", n, minimum=1)
    radius = check_real("radius", radius, positive=True)
    rng = check_rng("rng", rng)
    w = rng.standard_normal((n, n))
    return w * (radius / spectral_radius(w))


def spectral_radius(matrix) -> float:
    """``max |λ_i|`` over the eigenvalues of a square matrix."""
    matrix = check_array("matrix", matrix, ndim=2)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square, got shape {matrix.shape}")
    return float(np.max(np.abs(np.linalg.eigvals(matrix))))


def repeated_matrix_norms(matrix, vector, steps: int) -> np.ndarray:
    """``||W^t v||`` for ``t = 0..steps``: the signal of a linear RNN (or its gradient) over time."""
    matrix = check_array("matrix", matrix, ndim=2)
    vector = check_array("vector", vector, ndim=1)
    steps = check_int("steps", steps, minimum=0)
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[1] != vector.shape[0]:
        raise ValueError(f"matrix must be square and match vector, got {matrix.shape} and {vector.shape}")
    norms = [np.linalg.norm(vector)]
    for _ in range(steps):
        vector = matrix @ vector
        norms.append(np.linalg.norm(vector))
    return np.array(norms)


def growth_rate(norms, *, last: int | None = None) -> float:
    """Average factor per step, ``(norms[-1] / norms[-1-k]) ** (1/k)`` over the last ``k`` steps."""
    norms = check_array("norms", norms, ndim=1)
    k = len(norms) - 1 if last is None else check_int("last", last, minimum=1)
    if not 1 <= k < len(norms):
        raise ValueError(f"last must be between 1 and {len(norms) - 1}, got {k}")
    if np.any(norms <= 0):
        raise ValueError("norms must be positive")
    return float((norms[-1] / norms[-1 - k]) ** (1.0 / k))
