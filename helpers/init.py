"""Variance-preserving initialization: the numbers torch's initializers use, and samplers. Notebook 02.

For ``z = W x`` with ``W`` of shape ``[fan_out, fan_in]`` (torch layout), independent zero-mean
weights and inputs independent of them:

    Var(z_i) = fan_in · Var(w) · E[x²]          (= fan_in Var(w) Var(x) for zero-mean x)

Keeping activations' variance asks for ``Var(w) = 1/fan_in``; keeping back-propagated gradients'
variance asks for ``Var(w) = 1/fan_out``. Glorot & Bengio (2010) compromise on
``Var(w) = 2/(fan_in + fan_out)``; He et al. (2015) use ``2/fan_in`` for ReLU, which halves ``E[x²]``.
A gain multiplies the standard deviation to make up for the activation (``calculate_gain``).
A uniform ``U(-b, b)`` has variance ``b²/3``, so ``bound = sqrt(3) · std``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from helpers._validate import check_choice, check_int, check_real, check_rng

LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
NONLINEARITIES = (*LINEAR_FNS, "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain torch recommends for ``nonlinearity`` (same values as ``torch.nn.init.calculate_gain``).

    linear and conv variants, sigmoid: 1; tanh: 5/3; relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + slope²)) with ``param`` the negative slope (default 0.01);
    selu: 3/4 (chosen empirically in torch, for self-normalizing networks).
    """
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4
    if param is None:
        slope = 0.01
    elif isinstance(param, bool) or not isinstance(param, numbers.Real):
        raise ValueError(f"param (the negative slope of leaky_relu) must be a number, got {param!r}")
    else:
        slope = check_real("param", param)
    return math.sqrt(2.0 / (1 + slope**2))


def _fans(fan_in, fan_out):
    return check_int("fan_in", fan_in, minimum=1), check_int("fan_out", fan_out, minimum=1)


def xavier_std(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Glorot's normal std: ``gain · sqrt(2 / (fan_in + fan_out))`` (``torch.nn.init.xavier_normal_``)."""
    fan_in, fan_out = _fans(fan_in, fan_out)
    return check_real("gain", gain, positive=True) * math.sqrt(2.0 / (fan_in + fan_out))


def xavier_bound(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Glorot's uniform limit ``b``, ``U(-b, b)``: ``gain · sqrt(6 / (fan_in + fan_out))`` (``xavier_uniform_``)."""
    return math.sqrt(3.0) * xavier_std(fan_in, fan_out, gain)


def kaiming_std(fan: int, nonlinearity: str = "relu", a: float = 0.0) -> float:
    """He's normal std: ``calculate_gain(nonlinearity, a) / sqrt(fan)`` (``torch.nn.init.kaiming_normal_``).

    ``fan`` is fan_in (keeps the forward variance, torch's default mode) or fan_out (the backward one);
    ``a`` is the negative slope, used only for ``"leaky_relu"``.
    """
    fan = check_int("fan", fan, minimum=1)
    check_real("a", a)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_bound(fan: int, nonlinearity: str = "relu", a: float = 0.0) -> float:
    """He's uniform limit: ``sqrt(3) · kaiming_std`` = ``gain · sqrt(3 / fan)`` (``kaiming_uniform_``)."""
    return math.sqrt(3.0) * kaiming_std(fan, nonlinearity, a)


SCHEMES = ("standard", "fan_in", "fan_out", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
           "orthogonal", "constant")


def weight_std(scheme: str, fan_in: int, fan_out: int, *, gain: float = 1.0, nonlinearity: str = "relu") -> float:
    """The standard deviation of one weight under ``scheme`` (orthogonal: ``gain/sqrt(max(fan_in, fan_out))``).

    standard: ``U(±1/sqrt(fan_in))`` (Glorot & Bengio's "standard" init, torch's ``nn.Linear`` default),
    std ``1/sqrt(3 fan_in)``; fan_in / fan_out: ``N(0, gain²/fan)``; xavier_*: Glorot with ``gain``;
    kaiming_*: He for ``nonlinearity`` (fan_in mode); constant: 0 (every weight the same).
    """
    check_choice("scheme", scheme, SCHEMES)
    fan_in, fan_out = _fans(fan_in, fan_out)
    gain = check_real("gain", gain, positive=True)
    if scheme == "standard":
        return 1.0 / math.sqrt(3 * fan_in)
    if scheme == "fan_in":
        return gain / math.sqrt(fan_in)
    if scheme == "orthogonal":
        return gain / math.sqrt(max(fan_in, fan_out))
    if scheme == "fan_out":
        return gain / math.sqrt(fan_out)
    if scheme.startswith("xavier"):
        return xavier_std(fan_in, fan_out, gain)
    if scheme.startswith("kaiming"):
        return kaiming_std(fan_in, nonlinearity)
    return 0.0


def sample_weights(
    widths, scheme: str, rng: np.random.Generator, *, gain: float = 1.0, nonlinearity: str = "relu"
) -> list[np.ndarray]:
    """Weights ``W_l`` of shape ``[widths[l+1], widths[l]]`` for a chain of layers, drawn by ``scheme``.

    Uniform schemes draw ``U(-b, b)`` with ``b = sqrt(3) · weight_std``; normal ones ``N(0, weight_std²)``;
    ``"orthogonal"``: ``gain`` times a Haar-random matrix with orthonormal rows or columns (whichever
    are fewer), as ``torch.nn.init.orthogonal_``;
    ``"constant"``: every entry ``gain / fan_in``.
    """
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__") or len(widths) < 2:
        raise TypeError("widths must be a sequence of at least two layer widths, e.g. [784, 256, 10]")
    widths = [check_int(f"widths[{i}]", w, minimum=1) for i, w in enumerate(widths)]
    rng = check_rng("rng", rng)
    weights = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        std = weight_std(scheme, fan_in, fan_out, gain=gain, nonlinearity=nonlinearity)
        if scheme in ("standard", "xavier_uniform", "kaiming_uniform"):
            bound = math.sqrt(3.0) * std
            weights.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)))
        elif scheme == "orthogonal":
            g = rng.standard_normal((max(fan_out, fan_in), min(fan_out, fan_in)))
            q, r = np.linalg.qr(g)
            q *= np.sign(np.diag(r))  # makes the distribution Haar
            weights.append(gain * (q if fan_out >= fan_in else q.T))
        elif scheme == "constant":
            weights.append(np.full((fan_out, fan_in), gain / fan_in))
        else:
            weights.append(rng.normal(0.0, std, size=(fan_out, fan_in)))
    return weights
