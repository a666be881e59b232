"""Gradient checking with finite differences, the way a careful engineer does it. Notebook 03.

Centered differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` have truncation error
``O(eps²)`` (``f''' eps² / 6``), one-sided ones ``O(eps)`` (``f'' eps / 2``); both suffer round-off of
about ``machine_eps · |f| / eps``. Compare with ``relative_error = ||a - b|| / (||a|| + ||b||)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from helpers._validate import check_array, check_choice, check_int, check_real, check_rng

BANDS = ((1e-7, "correct"), (1e-4, "acceptable"), (1e-2, "suspicious"))


def _check_x(x) -> np.ndarray:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating-point numpy array (it is changed in place and restored), got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else ""))
    return x


def _scalar(value, name="f(x)") -> float:
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"f must return a scalar, {name} has shape {value.shape}")
    return float(value.reshape(()))


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6, *, method: str = "centered", indices=None) -> np.ndarray:
    """Finite-difference gradient of a scalar function ``f(x)``, one coordinate at a time.

    ``method="centered"``: ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` (2 calls per entry);
    ``method="forward"``: ``(f(x + eps e_i) - f(x)) / eps`` (1 call per entry, plus one).
    ``x`` (float array, any shape) is changed in place during the calls and restored afterwards,
    also if ``f`` raises. ``indices``: an iterable of index tuples to check (others are left 0),
    e.g. a random subset of a large parameter. Returns an array shaped like ``x``.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    x = _check_x(x)
    eps = check_real("eps", eps, positive=True)
    check_choice("method", method, ("centered", "forward"))
    grad = np.zeros_like(x)
    targets = np.ndindex(x.shape) if indices is None else [tuple(np.atleast_1d(i)) for i in indices]
    base = _scalar(f(x)) if method == "forward" else None
    for index in targets:
        original = x[index]
        try:
            x[index] = original + eps
            plus = _scalar(f(x))
            if method == "centered":
                x[index] = original - eps
                minus = _scalar(f(x))
                grad[index] = (plus - minus) / (2 * eps)
            else:
                grad[index] = (plus - base) / eps
        finally:
            x[index] = original
    return grad


def relative_error(a, b) -> float:
    """``||a - b|| / (||a|| + ||b||)`` (Frobenius norms); 0.0 when both are zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denominator == 0 else float(np.linalg.norm(a - b) / denominator)


def verdict(error: float) -> str:
    """The band of a relative error: < 1e-7 correct, < 1e-4 acceptable, < 1e-2 suspicious, else wrong."""
    error = check_real("error", error, minimum=0.0, finite=False)
    return next((name for limit, name in BANDS if error < limit), "wrong")


@dataclass(frozen=True)
class GradCheckResult:
    """Outcome of ``gradient_check``.

    ``relative_error`` (float), ``numerical`` and ``analytic`` (arrays shaped like ``x``),
    ``worst_index`` (index tuple of the largest ``|analytic - numerical|``), ``verdict`` (band name).
    """

    relative_error: float
    numerical: np.ndarray
    analytic: np.ndarray
    worst_index: tuple
    verdict: str

    def __str__(self) -> str:
        return f"relative error {self.relative_error:.2e} ({self.verdict}), worst at index {self.worst_index}"


def gradient_check(f, grad_f, x: np.ndarray, eps: float = 1e-6) -> GradCheckResult:
    """Compare ``grad_f(x)`` with the centered-difference gradient of ``f`` at ``x``.

    Warns (``UserWarning``) for float32 ``x``: round-off then swamps the bands, check in float64.
    """
    if not callable(grad_f):
        raise TypeError(f"grad_f must be callable, got {type(grad_f).__name__}")
    x = _check_x(x)
    if x.dtype != np.float64:
        warnings.warn(f"x is {x.dtype}: finite differences need float64 for the bands to mean anything",
                      UserWarning, stacklevel=2)
    analytic = np.asarray(grad_f(x.copy()), dtype=np.float64)
    if analytic.shape != x.shape:
        raise ValueError(f"grad_f must return an array shaped like x {x.shape}, got {analytic.shape}")
    numerical = numerical_gradient(f, x, eps).astype(np.float64)
    error = relative_error(analytic, numerical)
    worst = np.unravel_index(np.argmax(np.abs(analytic - numerical)), x.shape) if x.size else ()
    return GradCheckResult(error, numerical, analytic, tuple(int(i) for i in worst), verdict(error))


def directional_errors(f, grad_f, x: np.ndarray, rng: np.random.Generator, n_directions: int,
                       eps: float = 1e-6) -> np.ndarray:
    """``directional_check`` along ``n_directions`` random unit directions: ``[n_directions]`` errors.

    ``grad_f`` is called once, ``f`` twice per direction. A single direction can be nearly orthogonal
    to the gradient; then both directional derivatives are tiny and round-off dominates their relative
    error, so read the median over a few directions rather than one value.
    """
    if not callable(f) or not callable(grad_f):
        raise TypeError("f and grad_f must be callable")
    x = _check_x(x)
    rng = check_rng("rng", rng)
    n_directions = check_int("n_directions", n_directions, minimum=1)
    eps = check_real("eps", eps, positive=True)
    gradient = np.asarray(grad_f(x.copy()))
    if gradient.shape != x.shape:
        raise ValueError(f"grad_f must return an array shaped like x {x.shape}, got {gradient.shape}")
    errors = np.empty(n_directions)
    for i in range(n_directions):
        direction = rng.standard_normal(x.shape)
        direction /= np.linalg.norm(direction)
        analytic = float(np.sum(gradient * direction))
        numerical = (_scalar(f(x + eps * direction)) - _scalar(f(x - eps * direction))) / (2 * eps)
        errors[i] = relative_error(np.array(analytic), np.array(numerical))
    return errors


def directional_check(f, grad_f, x: np.ndarray, rng: np.random.Generator, eps: float = 1e-6) -> float:
    """Check one random direction ``u`` (unit norm) for 2 evaluations of ``f`` instead of 2·x.size.

    Compares ``(f(x + eps u) - f(x - eps u)) / (2 eps)`` with ``grad_f(x) · u``; returns their
    relative error ``|d_num - d_an| / (|d_num| + |d_an|)``. ``x`` is left unchanged.
    """
    return float(directional_errors(f, grad_f, x, rng, 1, eps)[0])


def check_parameters(loss_and_grads, params: dict, eps: float = 1e-6) -> dict[str, GradCheckResult]:
    """``gradient_check`` each parameter array of a model separately.

    ``loss_and_grads(params) -> (loss, grads)`` with ``grads`` a dict shaped like ``params`` (e.g. a
    ``functools.partial`` of ``layers.mlp_loss``). Returns name -> ``GradCheckResult``.
    """
    if not callable(loss_and_grads):
        raise TypeError(f"loss_and_grads must be callable, got {type(loss_and_grads).__name__}")
    if not isinstance(params, dict) or not params:
        raise TypeError("params must be a non-empty dict of name -> float array")
    results = {}
    for name, value in params.items():
        def f(v, name=name):
            return loss_and_grads({**params, name: v})[0]

        def grad_f(v, name=name):
            return loss_and_grads({**params, name: v})[1][name]

        results[name] = gradient_check(f, grad_f, _check_x(value).copy(), eps)
    return results


def difference_errors(f, derivative, x, eps_values, *, dtype=np.float64) -> dict[str, np.ndarray]:
    """Relative error of forward and centered differences of a scalar ``f`` at ``x``, per ``eps``, in ``dtype``.

    ``f`` maps numpy values to numpy values elementwise (e.g. ``np.exp``) and is evaluated in ``dtype``;
    ``derivative`` is the exact ``f'(x)``. ``x`` is one point (a real number) or ``k`` points (a 1-D
    array, ``derivative`` then an array of the same shape). Returns ``{"forward": e, "centered": e}``
    with errors ``|estimate - f'(x)| / |f'(x)|`` of shape ``[n]`` for one point, ``[k, n]`` for ``k``
    points (``n = len(eps_values)``).
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    if dtype not in (np.float64, np.float32):
        raise TypeError(f"dtype must be np.float64 or np.float32, got {dtype!r}")
    eps_values = np.asarray(eps_values, dtype=np.float64)
    if eps_values.ndim != 1 or np.any(~(eps_values > 0)):
        raise ValueError("eps_values must be a 1-D array of positive numbers")
    one_point = np.ndim(x) == 0
    if one_point:
        points, derivatives = np.array([check_real("x", x)]), np.array([check_real("derivative", derivative)])
    else:
        points = check_array("x", x, ndim=1)
        derivatives = check_array("derivative", derivative, ndim=1)
        if derivatives.shape != points.shape:
            raise ValueError(f"derivative must have the shape of x {points.shape}, got {derivatives.shape}")
    if np.any(derivatives == 0):
        raise ValueError("derivative must be non-zero (errors are relative to it)")
    point = points.astype(dtype)[:, None]
    h = eps_values.astype(dtype)[None, :]
    forward = (f(point + h) - f(point)) / h
    centered = (f(point + h) - f(point - h)) / (dtype(2) * h)
    errors = {method: np.abs(estimate.astype(np.float64) - derivatives[:, None]) / np.abs(derivatives[:, None])
              for method, estimate in (("forward", forward), ("centered", centered))}
    return {method: e[0] if one_point else e for method, e in errors.items()}
