"""Plots of per-layer statistics and training curves. One look for the whole series.

Every function takes an optional ``ax``, draws on it, returns it, and never calls ``plt.show()``
or changes global matplotlib state. With ``ax=None`` a new figure is made with ``plt.subplots``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from helpers._validate import check_array


def _axes(ax, figsize=(6, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def norms_by_layer(norms, *, predicted=None, ax=None, label: str = "measured", ylabel: str = "gradient norm"):
    """Norm per layer on a log axis: measured as dots, an optional prediction as a line.

    ``norms``: ``[L+1]`` or ``[L]`` positive values indexed by layer (0 = closest to the input).
    ``predicted``: same shape, drawn as a dashed line.
    """
    norms = check_array("norms", norms, ndim=1, finite=False)
    ax = _axes(ax)
    layers = np.arange(len(norms))
    ax.semilogy(layers, norms, "o", ms=4, label=label)
    if predicted is not None:
        predicted = check_array("predicted", predicted, ndim=1, finite=False)
        if predicted.shape != norms.shape:
            raise ValueError(f"predicted must have shape {norms.shape}, got {predicted.shape}")
        ax.semilogy(layers, predicted, "--", color="0.3", label="predicted product")
    ax.set_xlabel("layer (0 = input)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False)
    return ax


def layer_histograms(samples, *, names=None, ax=None, xlabel: str = "value", bins: int = 60, xlim=None):
    """Overlaid step histograms, one per layer (Karpathy's per-layer view), density on the y axis.

    ``samples``: list of 1-D arrays, one per layer; ``names``: a legend label per layer.
    """
    if not isinstance(samples, (list, tuple)) or not samples:
        raise TypeError("samples must be a non-empty list of 1-D arrays, one per layer")
    samples = [check_array(f"samples[{i}]", s, ndim=1) for i, s in enumerate(samples)]
    if names is not None and len(names) != len(samples):
        raise ValueError(f"names must have {len(samples)} entries, got {len(names)}")
    ax = _axes(ax)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(samples)))
    for i, (values, color) in enumerate(zip(samples, colors)):
        label = names[i] if names is not None else f"layer {i + 1}"
        label += f": std {values.std():.2g}"
        ax.hist(values, bins=bins, range=xlim, density=True, histtype="step", color=color, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize="small")
    return ax


def curves(series: dict, *, x=None, ax=None, xlabel: str = "step", ylabel: str = "loss", log: bool = False,
           logx: bool = False):
    """One line per entry of ``series`` (name → 1-D array), e.g. loss curves of several runs.

    ``x``: shared x values (default ``0, 1, ...``); ``log`` / ``logx``: logarithmic y / x axis.
    """
    if not isinstance(series, dict) or not series:
        raise TypeError("series must be a non-empty dict of name -> 1-D array")
    ax = _axes(ax)
    for name, values in series.items():
        values = check_array(f"series[{name!r}]", values, ndim=1, finite=False)
        xs = np.arange(len(values)) if x is None else check_array("x", x, ndim=1)
        if xs.shape != values.shape:
            raise ValueError(f"x must have {len(values)} values like series[{name!r}], got {xs.shape[0]}")
        ax.plot(xs, values, label=name)
    ax.set_yscale("log" if log else "linear")
    ax.set_xscale("log" if logx else "linear")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False)
    return ax


def decision_boundary(xx, yy, probabilities, x, y, *, ax=None, title: str | None = None):
    """Predicted class regions (from ``models.predict_grid``) with the data points on top.

    ``xx, yy``: ``[r, r]`` grid; ``probabilities``: ``[r, r, n_classes]``; ``x [n, 2]``, ``y [n]`` labels.
    """
    probabilities = check_array("probabilities", probabilities, ndim=3)
    x = check_array("x", x, ndim=2)
    ax = _axes(ax, figsize=(4, 4))
    ax.contourf(xx, yy, probabilities.argmax(axis=2), alpha=0.25, cmap="coolwarm", levels=probabilities.shape[2] - 1)
    ax.contour(xx, yy, probabilities[..., 1] if probabilities.shape[2] == 2 else probabilities.argmax(axis=2),
               levels=[0.5], colors="0.3", linewidths=0.8)
    ax.scatter(x[:, 0], x[:, 1], c=np.asarray(y), cmap="coolwarm", s=8, edgecolors="none")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def eps_sweep(eps_values, errors: dict, *, guides=None, ax=None, title: str | None = None, ylim=None):
    """Finite-difference error against the step ``eps`` on log-log axes: the V shape (notebook 03).

    ``errors``: method name → ``[n]`` errors (one point) or ``[k, n]`` (``k`` points: the median over the
    points is the line, their 10–90 % range a band), ``n = len(eps_values)``. ``guides``: method name →
    ``(eps_opt, floor)``, a predicted optimum drawn as dotted lines (vertical at ``eps_opt``, horizontal
    at ``floor``) in the method's colour. ``ylim``: fixed ``(bottom, top)``; errors below ``bottom``
    (exact zeros) are drawn at ``bottom``.
    """
    eps_values = check_array("eps_values", eps_values, ndim=1)
    if not isinstance(errors, dict) or not errors:
        raise TypeError("errors must be a non-empty dict of method -> [n] or [k, n] array")
    arrays = {name: np.atleast_2d(check_array(f"errors[{name!r}]", e, finite=False)) for name, e in errors.items()}
    for name, e in arrays.items():
        if e.ndim != 2 or e.shape[1] != len(eps_values):
            raise ValueError(f"errors[{name!r}] must have {len(eps_values)} columns (one per eps), got {e.shape}")
    positive = np.concatenate([e[e > 0] for e in arrays.values()])
    bottom, top = ylim if ylim is not None else ((positive.min() if positive.size else 1e-16) / 3, None)
    ax = _axes(ax)
    for name, e in arrays.items():
        e = np.maximum(e, bottom)
        label = name if e.shape[0] == 1 else f"{name}: median of {e.shape[0]} points, 10–90 %"
        (line,) = ax.loglog(eps_values, np.median(e, axis=0), label=label)
        if e.shape[0] > 1:
            low, high = np.quantile(e, [0.1, 0.9], axis=0)
            ax.fill_between(eps_values, low, high, color=line.get_color(), alpha=0.2, lw=0)
        if guides is not None and name in guides:
            eps_opt, floor = guides[name]
            ax.axvline(eps_opt, color=line.get_color(), ls=":", lw=1)
            ax.axhline(floor, color=line.get_color(), ls=":", lw=1,
                       label=f"{name}: predicted optimum ({eps_opt:.0e}, {floor:.0e})")
    ax.set_ylim(bottom, top)
    ax.set_xlabel("step eps")
    ax.set_ylabel("relative error of the derivative")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    return ax
