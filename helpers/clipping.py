"""Gradient clipping by value and by global norm (as torch does it), and Pascanu's cliff. Notebook 05.

By value: every entry is clamped to ``[-c, c]`` (the direction changes). By global norm:
``total = sqrt(Σ_i ||g_i||²)`` over all parameters, every gradient is multiplied by
``min(1, max_norm / (total + 1e-6))`` (the direction is kept), exactly as
``torch.nn.utils.clip_grad_norm_``. Clipping never enlarges a gradient.

Pascanu, Mikolov & Bengio (2013, §3.3 and Fig. 6): the one-unit recurrent network
``x_t = w σ(x_{t-1}) + b``, ``x_0 = 0.5``, error ``E = (σ(x_50) - 0.7)²``. Where the dynamics jump
from one fixed point to the other (a fold), ``E`` has a wall in ``(w, b)``: the loss drops from a
plateau (σ(x_50) ≈ 0) into a narrow valley (σ(x_50) = 0.7) within a sliver of ``w``, and there the
gradient explodes. ``CLIFF_START``/``CLIFF_LR`` are the setup notebook 05 and its explorer use: a
start on the plateau beside the wall and a learning rate at which plain SGD meets the wall.
"""

from __future__ import annotations

import numpy as np

from helpers._validate import check_array, check_int, check_real

EPS = 1e-6  # torch's clip_grad_norm_ adds it to the total norm


def _grads(grads):
    """Validate ``grads`` (non-empty list of arrays, or dict name -> array); return (keys or None, arrays)."""
    if isinstance(grads, dict):
        if not grads:
            raise ValueError("grads must not be empty")
        keys, values = list(grads), list(grads.values())
    elif isinstance(grads, (list, tuple)) and not isinstance(grads, np.ndarray):
        if not grads:
            raise ValueError("grads must not be empty")
        keys, values = None, list(grads)
    else:
        raise TypeError(f"grads must be a list of arrays or a dict name -> array, got {type(grads).__name__}")
    arrays = []
    for i, g in enumerate(values):
        name = f"grads[{keys[i]!r}]" if keys else f"grads[{i}]"
        array = check_array(name, g, finite=False)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or inf: skip this step (or lower the learning rate); "
                             "clipping would spread the non-finite values to every parameter")
        arrays.append(array)
    return keys, arrays


def _pack(keys, arrays):
    return dict(zip(keys, arrays)) if keys is not None else arrays


def global_norm(grads) -> float:
    """``sqrt(Σ_i ||g_i||²)`` over all gradient arrays (list or dict)."""
    _, arrays = _grads(grads)
    return float(np.sqrt(sum(np.sum(a**2) for a in arrays)))


def clip_by_value(grads, clip_value: float):
    """Clamp every entry to ``[-clip_value, clip_value]`` (``torch.nn.utils.clip_grad_value_``); new arrays."""
    keys, arrays = _grads(grads)
    clip_value = check_real("clip_value", clip_value, positive=True)
    return _pack(keys, [np.clip(a, -clip_value, clip_value) for a in arrays])


def clip_by_global_norm(grads, max_norm: float):
    """Scale all gradients by ``min(1, max_norm / (total + 1e-6))``; return ``(clipped, total)``.

    ``total`` is the norm before clipping, as ``torch.nn.utils.clip_grad_norm_`` returns it. New arrays;
    the inputs are untouched; a dict comes back as a dict.
    """
    keys, arrays = _grads(grads)
    max_norm = check_real("max_norm", max_norm, positive=True)
    total = float(np.sqrt(sum(np.sum(a**2) for a in arrays)))
    scale = min(1.0, max_norm / (total + EPS))
    return _pack(keys, [a * scale for a in arrays]), total


def cosine_similarity(a, b) -> float:
    """Cosine of the angle between two gradients given as lists/dicts of arrays (flattened together)."""
    _, first = _grads(a)
    _, second = _grads(b)
    u = np.concatenate([x.ravel() for x in first])
    v = np.concatenate([x.ravel() for x in second])
    if u.shape != v.shape:
        raise ValueError("a and b must hold the same shapes")
    denominator = np.linalg.norm(u) * np.linalg.norm(v)
    if denominator == 0:
        raise ValueError("cosine similarity of a zero gradient is undefined")
    return float(u @ v / denominator)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


CLIFF_START = (4.6, -2.6)  # (w, b) on the plateau, about 0.2 below the wall in b
CLIFF_LR = 0.1


def _cliff_forward(w, b, steps, x0, target):
    """Loss and gradient of the cliff for arrays ``w``, ``b`` (broadcast together).

    The derivatives of ``x_t`` are carried forward with the state (forward mode, equal to
    backprop through time): ``dx_t/dw = σ(x_{t-1}) + w σ'(x_{t-1}) dx_{t-1}/dw``,
    ``dx_t/db = 1 + w σ'(x_{t-1}) dx_{t-1}/db``; then ``dE/dθ = 2 (σ(x_T) - target) σ'(x_T) dx_T/dθ``.
    """
    steps = check_int("steps", steps, minimum=1)
    target = check_real("target", target)
    x = np.full(np.broadcast(w, b).shape, check_real("x0", x0))
    dx_dw, dx_db = np.zeros_like(x), np.zeros_like(x)
    for _ in range(steps):
        s = _sigmoid(x)
        slope = w * s * (1.0 - s)
        x, dx_dw, dx_db = w * s + b, s + slope * dx_dw, 1.0 + slope * dx_db
    s = _sigmoid(x)
    error = s - target
    outer = 2.0 * error * s * (1.0 - s)
    return error**2, outer * dx_dw, outer * dx_db


def cliff_loss_and_grad(w: float, b: float, *, steps: int = 50, x0: float = 0.5, target: float = 0.7):
    """Pascanu's error ``E = (σ(x_T) - target)²`` of ``x_t = w σ(x_{t-1}) + b`` and its gradient.

    Defaults are the paper's: ``T = 50`` steps from ``x_0 = 0.5``, target 0.7.
    Returns ``(loss, np.array([dE/dw, dE/db]))``.
    """
    w, b = check_real("w", w), check_real("b", b)
    loss, grad_w, grad_b = _cliff_forward(np.float64(w), np.float64(b), steps, x0, target)
    return float(loss), np.array([float(grad_w), float(grad_b)])


def cliff_trajectories(starts, lr: float, n_steps: int, *, clip: str | None = None, threshold: float = 1.0,
                       steps: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SGD on the cliff loss from ``K`` starts at once (one vectorised run: the Python cost of one).

    ``starts``: ``[K, 2]`` rows ``(w, b)``. ``clip``: ``None``, ``"norm"`` (each path's gradient to norm
    ``threshold``, ``clip_by_global_norm``'s factor ``min(1, threshold / (norm + 1e-6))``) or ``"value"``
    (entries to ±threshold, ``clip_by_value``). Returns ``(points [K, n_steps+1, 2], losses [K, n_steps+1],
    grad_norms [K, n_steps])`` (norms before clipping).
    """
    point = check_array("starts", starts, ndim=2).copy()
    if point.shape[1:] != (2,):
        raise ValueError(f"starts must be rows (w, b) of shape [K, 2], got shape {point.shape}")
    lr = check_real("lr", lr, positive=True)
    n_steps = check_int("n_steps", n_steps, minimum=1)
    if clip not in (None, "norm", "value"):
        raise ValueError(f"clip must be None, 'norm' or 'value', got {clip!r}")
    threshold = check_real("threshold", threshold, positive=True)
    points, losses, norms = [point], [], []
    for _ in range(n_steps):
        loss, grad_w, grad_b = _cliff_forward(point[:, 0], point[:, 1], steps, 0.5, 0.7)
        grad = np.stack([grad_w, grad_b], axis=1)
        norm = np.sqrt(np.sum(grad**2, axis=1))
        losses.append(loss)
        norms.append(norm)
        if clip == "norm":
            grad = grad * np.minimum(1.0, threshold / (norm + EPS))[:, None]
        elif clip == "value":
            grad = np.clip(grad, -threshold, threshold)
        point = point - lr * grad
        points.append(point)
    losses.append(_cliff_forward(point[:, 0], point[:, 1], steps, 0.5, 0.7)[0])
    return np.stack(points, axis=1), np.stack(losses, axis=1), np.stack(norms, axis=1)


def cliff_trajectory(start, lr: float, n_steps: int, *, clip: str | None = None, threshold: float = 1.0,
                     steps: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SGD on the cliff loss from ``start = (w, b)``, optionally clipping each gradient.

    ``clip``: ``None``, ``"norm"`` (global norm to ``threshold``) or ``"value"`` (entries to ±threshold).
    Returns ``(points [n_steps+1, 2], losses [n_steps+1], grad_norms [n_steps])`` (norms before clipping).
    One row of ``cliff_trajectories``.
    """
    point = check_array("start", start, ndim=1)
    if point.shape != (2,):
        raise ValueError(f"start must be (w, b), got shape {point.shape}")
    points, losses, norms = cliff_trajectories(point[None, :], lr, n_steps, clip=clip, threshold=threshold,
                                               steps=steps)
    return points[0], losses[0], norms[0]


def _grid(w_values, b_values):
    w = check_array("w_values", w_values, ndim=1)[None, :]
    b = check_array("b_values", b_values, ndim=1)[:, None]
    return w, b


def cliff_loss_surface(w_values, b_values, *, steps: int = 50, x0: float = 0.5, target: float = 0.7) -> np.ndarray:
    """The cliff loss on a grid: ``[len(b_values), len(w_values)]`` (vectorised ``cliff_loss_and_grad``)."""
    return _cliff_forward(*_grid(w_values, b_values), steps, x0, target)[0]


def cliff_grad_norm_surface(w_values, b_values, *, steps: int = 50, x0: float = 0.5,
                            target: float = 0.7) -> np.ndarray:
    """``||(dE/dw, dE/db)||`` on a grid ``[len(b_values), len(w_values)]``: the wall is where it peaks.

    The wall is narrower than most grids (about 0.002 in ``w`` at ``b = -2.4``), so a grid's peak is
    a lower bound on the gradient there.
    """
    _, grad_w, grad_b = _cliff_forward(*_grid(w_values, b_values), steps, x0, target)
    return np.hypot(grad_w, grad_b)


def cliff_wall(b_values, w_min: float, w_max: float, *, resolution: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Where the cliff loss jumps most along ``w``, row by row: ``(wall_w, slope)``, each ``[len(b_values)]``.

    On the grid ``np.linspace(w_min, w_max, n)`` with spacing ``resolution`` (``n`` rounded), ``wall_w`` is
    the left end of the interval with the largest ``|ΔE|`` in each row and ``slope`` that ``|ΔE|`` over the
    spacing. The full scan is costly (the wall is narrower than 0.01), so each row is scanned on every 10th
    grid point first and then on every grid point within two coarse steps of its largest coarse jump: the
    full scan's answer wherever the wall's jump is also the largest one at 10× the spacing.
    """
    b = check_array("b_values", b_values, ndim=1)
    w_min, w_max = check_real("w_min", w_min), check_real("w_max", w_max)
    resolution = check_real("resolution", resolution, positive=True)
    n = int(round((w_max - w_min) / resolution)) + 1
    if n < 41:
        raise ValueError(f"w_max - w_min must span at least 40 steps of resolution, got {n - 1}")
    w = np.linspace(w_min, w_max, n)
    coarse = np.arange(0, n, 10)
    coarse_jump = np.abs(np.diff(cliff_loss_surface(w[coarse], b), axis=1)).argmax(axis=1)
    first = np.clip(coarse[coarse_jump] - 20, 0, n - 51)  # a window of 51 points around the coarse jump
    window = first[:, None] + np.arange(51)
    jumps = np.abs(np.diff(_cliff_forward(w[window], b[:, None], 50, 0.5, 0.7)[0], axis=1))
    best = jumps.argmax(axis=1)
    return w[first + best], jumps.max(axis=1) / (w[1] - w[0])


def clip_with_torch(grads, *, max_norm: float | None = None, clip_value: float | None = None) -> list:
    """The same clipping done by torch (``clip_grad_norm_`` or ``clip_grad_value_``), numpy in and out.

    For comparing with ``clip_by_global_norm`` / ``clip_by_value``: give exactly one of ``max_norm``,
    ``clip_value``. ``grads``: a list of arrays; returns a list of new float64 arrays.
    """
    import torch  # only this comparison needs torch

    _, arrays = _grads(grads)
    if (max_norm is None) == (clip_value is None):
        raise ValueError("give exactly one of max_norm and clip_value")
    params = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in arrays]
    for param, array in zip(params, arrays):
        param.grad = torch.tensor(array)
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, check_real("max_norm", max_norm, positive=True))
    else:
        torch.nn.utils.clip_grad_value_(params, check_real("clip_value", clip_value, positive=True))
    return [param.grad.numpy().copy() for param in params]
