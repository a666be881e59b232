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


def through_time(series: dict, *, ax=None, ylabel: str = "||dL/dh_t|| / ||dL/dh_T||", normalize: bool = True):
    """Gradient norms over time steps on a log axis, one curve per entry of ``series`` (name → ``[T+1]`` norms
    for ``t = 0..T``, loss on step ``T``). ``normalize``: divide each curve by its last value. Zeros (e.g. before
    the cut of truncated BPTT) are left out of the log plot. Notebook 07.
    """
    if not isinstance(series, dict) or not series:
        raise TypeError("series must be a non-empty dict of name -> 1-D array")
    ax = _axes(ax)
    for name, values in series.items():
        values = check_array(f"series[{name!r}]", values, ndim=1)
        if normalize and values[-1] > 0:
            values = values / values[-1]
        ax.semilogy(np.arange(len(values)), np.where(values > 0, values, np.nan), label=name)
    ax.set_xlabel("time step t (loss on the last step)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    return ax


def factor_against(x, measured, *, labels=None, predicted=None, predicted_label: str = "predicted", ax=None,
                   xlabel: str = "x", ylabel: str = "factor per time step", diagonal: bool = False):
    """Measured per-step factors (dots, optionally labelled) against ``x``, with an optional predicted curve
    (dashed, ``predicted_label``), the line ``factor = 1`` (growth above, decay below) and, with ``diagonal``,
    the line ``factor = x``. Notebook 07.
    """
    x, measured = check_array("x", x, ndim=1), check_array("measured", measured, ndim=1)
    if x.shape != measured.shape:
        raise ValueError(f"measured must have shape {x.shape}, got {measured.shape}")
    ax = _axes(ax)
    if predicted is not None:
        predicted = check_array("predicted", predicted, ndim=1)
        if predicted.shape != x.shape:
            raise ValueError(f"predicted must have shape {x.shape}, got {predicted.shape}")
        ax.plot(x, predicted, "--", color="0.3", label=predicted_label)
    ax.plot(x, measured, "o", ms=5, label="measured")
    for xi, yi, label in zip(x, measured, labels or []):
        ax.annotate(str(label), (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize="small")
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    if diagonal:
        ax.plot([x.min(), 1.0], [x.min(), 1.0], color="0.6", lw=0.8, label="factor = x")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    return ax


def per_block(measured: dict, *, predicted: dict | None = None, ax=None, xlabel: str = "block l",
              ylabel: str = "value", log: bool = True):
    """One curve per entry of ``measured`` (name → ``[L+1]`` values by block, 0 = first) as solid lines with dots,
    and the matching entry of ``predicted`` (same names, same shapes) as a dashed line of the same colour."""
    if not isinstance(measured, dict) or not measured:
        raise TypeError("measured must be a non-empty dict of name -> 1-D array")
    predicted = {} if predicted is None else predicted
    if not isinstance(predicted, dict) or not set(predicted) <= set(measured):
        raise TypeError("predicted must be a dict whose names are among measured's")
    ax = _axes(ax)
    for name, values in measured.items():
        values = check_array(f"measured[{name!r}]", values, ndim=1, finite=False)
        (line,) = ax.plot(np.arange(len(values)), values, ".-", ms=3, label=name)
        if name in predicted:
            guide = check_array(f"predicted[{name!r}]", predicted[name], ndim=1, finite=False)
            if guide.shape != values.shape:
                raise ValueError(f"predicted[{name!r}] must have shape {values.shape}, got {guide.shape}")
            ax.plot(np.arange(len(guide)), guide, "--", color=line.get_color(), lw=1)
    ax.set_yscale("log" if log else "linear")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    return ax


def _check_log(log):
    from helpers.monitor import TrainingLog

    if not isinstance(log, TrainingLog):
        raise TypeError(f"log must be a TrainingLog from monitor.watch, got {type(log).__name__}")
    if log.steps.size == 0:
        raise ValueError("log holds no recorded step: run a training step inside monitor.watch first")
    return log


def _per_layer_over_steps(log, values, ax, ylabel, title):
    ax = _axes(ax, figsize=(7, 3.5))
    n_layers = len(log.layer_names)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, n_layers))
    labelled = set(np.linspace(0, n_layers - 1, min(n_layers, 6)).astype(int))  # a readable legend for deep nets
    for k, (name, column, color) in enumerate(zip(log.layer_names, values.T, colors)):
        ax.plot(log.steps, column, color=color, lw=1, label=name if k in labelled else None)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False, fontsize="small", loc="best")
    return ax


def grad_norms_over_steps(log, *, ax=None):
    """``||dL/dW||`` of every layer of a ``monitor.TrainingLog`` over the recorded steps (log scale).

    Colour runs from the first layer (dark) to the last (light); vanishing shows as a wide vertical
    gap between them, exploding as curves that rise by orders of magnitude.
    """
    log = _check_log(log)
    return _per_layer_over_steps(log, log.grad_norm, ax, "gradient norm ||dL/dW||", "gradient norm per layer")


def update_ratios(log, *, ax=None):
    """Update:data ratio ``||ΔW|| / ||W||`` per layer over steps, with Karpathy's ~1e-3 reference line."""
    from helpers.monitor import UPDATE_RATIO_REFERENCE

    log = _check_log(log)
    if np.all(np.isnan(log.update_ratio)):
        raise ValueError("log has no update ratios: pass the optimizer to monitor.watch(model, optimizer)")
    ax = _per_layer_over_steps(log, log.update_ratio, ax, "update:data ratio ||ΔW|| / ||W||",
                               "update:data ratio per layer")
    ax.axhline(UPDATE_RATIO_REFERENCE, color="0.3", ls="--", lw=1, label="~1e-3 (Karpathy)")
    ax.legend(frameon=False, fontsize="small", loc="best")
    return ax


def activation_histograms(log, steps=None, *, layers=None, gradients: bool = False, axes=None, bins: int = 60):
    """Histograms of each layer's activation ``h`` (or ``dL/dh`` with ``gradients=True``), one panel per step.

    ``steps``: recorded steps that kept samples (``monitor.watch(..., sample_steps=...)``); default all of them.
    ``layers``: indices of the layers to overlay (default: up to 5, evenly spread from first to last).
    ``axes``: one ``Axes`` per step (default: a new row of panels). Returns the list of axes.
    """
    log = _check_log(log)
    samples = log.activation_grad_samples if gradients else log.activation_samples
    if not samples:
        raise ValueError("log kept no samples: pass sample_steps=[...] to monitor.watch")
    steps = sorted(samples) if steps is None else list(steps)
    missing = [step for step in steps if step not in samples]
    if not steps or missing:
        raise ValueError(f"steps must be among the sampled steps {sorted(samples)}, got {steps}")
    n_layers = len(log.layer_names)
    layers = list(np.unique(np.linspace(0, n_layers - 1, min(5, n_layers)).astype(int))) if layers is None else layers
    if not layers or any(not 0 <= int(k) < n_layers for k in layers):
        raise ValueError(f"layers must be indices in [0, {n_layers}), got {layers}")
    if axes is None:
        _, axes = plt.subplots(1, len(steps), figsize=(4.5 * len(steps), 3.2), layout="constrained", squeeze=False)
        axes = list(axes[0])
    if len(axes) != len(steps):
        raise ValueError(f"axes must hold one Axes per step ({len(steps)}), got {len(axes)}")
    what = "dL/dh" if gradients else "activation h"
    for ax, step in zip(axes, steps):
        finite = [samples[step][k][np.isfinite(samples[step][k])] for k in layers]  # a blown-up run has NaN
        shown = [i for i, values in enumerate(finite) if values.size]
        if not shown:
            raise ValueError(f"no finite samples of the chosen layers at step {step}")
        names = [log.layer_names[layers[i]] + (f" → {log.activation_names[layers[i]]}" if log.activation_names[layers[i]]
                                                else "") for i in shown]
        layer_histograms([finite[i] for i in shown], names=names, ax=ax,
                         xlabel=what, bins=bins)
        ax.set_title(f"{what} per layer at step {step}")
    return axes


def loss_surface(x_values, y_values, values, *, paths=None, ax=None, log: bool = True, xlabel: str = "w",
                 ylabel: str = "b", label: str = "loss", title: str | None = None):
    """A 2-D map (e.g. Pascanu's cliff, notebook 05) with optional optimizer paths on top.

    ``values``: ``[len(y_values), len(x_values)]`` (as ``clipping.cliff_loss_surface`` returns it), drawn as
    filled contours of ``log10(values)`` (``log=True``) with a colour bar named ``label``.
    ``paths``: dict name → ``[n, 2]`` points, drawn as lines with dots; a path that leaves the map is cut
    at its edge (the axes keep the map's limits).
    """
    x_values = check_array("x_values", x_values, ndim=1)
    y_values = check_array("y_values", y_values, ndim=1)
    values = check_array("values", values, ndim=2)
    if values.shape != (len(y_values), len(x_values)):
        raise ValueError(f"values must have shape {(len(y_values), len(x_values))}, got {values.shape}")
    ax = _axes(ax, figsize=(6, 4))
    shown = np.log10(values + 1e-12) if log else values
    filled = ax.contourf(x_values, y_values, shown, levels=30, cmap="viridis")
    ax.figure.colorbar(filled, ax=ax, label=f"log10 {label}" if log else label)
    for (name, points), color in zip((paths or {}).items(), ("w", "tab:orange", "tab:red", "tab:pink")):
        points = check_array(f"paths[{name!r}]", points, ndim=2)
        ax.plot(points[:, 0], points[:, 1], ".-", color=color, ms=3, lw=0.8, label=name)
        ax.plot(*points[0], "o", color=color, ms=6)
    ax.set(xlim=(x_values[0], x_values[-1]), ylim=(y_values[0], y_values[-1]), xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    if paths:
        ax.legend(frameon=True, fontsize="small", loc="upper left")
    return ax


def log_magnitude_histograms(samples, *, names=None, ax=None, xlabel: str = "log10 |value|", bins: int = 60):
    """Per-layer histograms of ``log10 |value|`` on one shared range (notebook 02).

    For values whose scale differs by decades between layers (back-propagated gradients): on a linear
    axis the smallest layer is a spike; on a log axis every layer keeps its shape and a factor of 10
    is a shift by 1. ``samples``: list of 1-D arrays, one per layer (zeros are left out); the legend
    gives each layer's rms.
    """
    if not isinstance(samples, (list, tuple)) or not samples:
        raise TypeError("samples must be a non-empty list of 1-D arrays, one per layer")
    samples = [check_array(f"samples[{i}]", s, ndim=1) for i, s in enumerate(samples)]
    if names is not None and len(names) != len(samples):
        raise ValueError(f"names must have {len(samples)} entries, got {len(names)}")
    logs = [np.log10(np.abs(s[s != 0])) for s in samples]
    if any(values.size == 0 for values in logs):
        raise ValueError("every layer needs at least one non-zero value")
    lo = min(np.percentile(values, 0.5) for values in logs)
    hi = max(np.percentile(values, 99.5) for values in logs)
    ax = _axes(ax)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(samples)))
    for i, (values, raw, color) in enumerate(zip(logs, samples, colors)):
        label = (names[i] if names is not None else f"layer {i + 1}") + f": rms {np.sqrt(np.mean(raw**2)):.2g}"
        ax.hist(values, bins=bins, range=(lo, hi), density=True, histtype="step", color=color, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize="small")
    return ax


def fix_matrix(final_losses, defects, fixes, *, threshold: float, ax=None, tried=None):
    """Final loss of each broken run (rows) under each fix (columns), as a colour grid with the value printed;
    NaN cells read "NaN", cells below ``threshold`` (the run trains) are outlined. ``tried``: optional bool
    mask of the same shape; cells not tried are left blank."""
    values = check_array("final_losses", final_losses, ndim=2, finite=False)
    if values.shape != (len(defects), len(fixes)):
        raise ValueError(f"final_losses must have shape ({len(defects)}, {len(fixes)}), got {values.shape}")
    tried = np.ones(values.shape, dtype=bool) if tried is None else np.asarray(tried, dtype=bool)
    if tried.shape != values.shape:
        raise ValueError(f"tried must have shape {values.shape}, got {tried.shape}")
    ax = _axes(ax, figsize=(10, 4))
    shown = np.log10(np.clip(np.where(np.isfinite(values), values, np.nan), 1e-3, 1e3))
    image = ax.imshow(shown, cmap="viridis_r", aspect="auto", vmin=np.log10(0.5), vmax=np.log10(20))
    for (i, j), v in np.ndenumerate(values):
        if not tried[i, j]:
            continue
        ax.text(j, i, f"{v:.2f}" if np.isfinite(v) else "NaN", ha="center", va="center", fontsize=8,
                color="white" if np.isfinite(v) and v < threshold else "black")
        if np.isfinite(v) and v < threshold:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(len(fixes)), fixes, rotation=30, ha="right")
    ax.set_yticks(range(len(defects)), defects)
    ax.set_xlabel("fix applied")
    ax.set_ylabel("broken run")
    ax.set_title(f"Final loss per broken run and fix (red: trains, loss < {threshold})")
    ax.figure.colorbar(image, ax=ax, label="log10 final loss")
    return ax
