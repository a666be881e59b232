"""Interactive explorers. Each is a thin wrapper: read the controls, compute, draw.

The figure is drawn off-screen (``matplotlib.figure.Figure``, no pyplot state) and shown as a
PNG in an ``ipywidgets.Image``, so it updates the same way in JupyterLab, Colab and headless tests.
"""

from __future__ import annotations

import base64
import io
import struct

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers import chain, clipping, gradcheck, models, plotting, recurrent
from helpers import stats as stats_module
from helpers._validate import check_int

DISPLAY_DPI = 100  # CSS pixels per inch of figure: an explorer's figure is shown at its figsize times this
PIXEL_RATIO = 2  # and rendered with this many image pixels per CSS pixel (sharp on high-density screens)


def _png(figure: Figure) -> bytes:
    """``figure`` as PNG bytes at ``DISPLAY_DPI * PIXEL_RATIO`` dots per inch.

    ``_Explorer`` shows the image at ``1 / PIXEL_RATIO`` of its pixel size, i.e. at ``figsize * DISPLAY_DPI``
    CSS pixels, and never wider than the cell: the front end never scales it up (scaling up blurs it).
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DISPLAY_DPI * PIXEL_RATIO)
    return buffer.getvalue()


def _display_width(png: bytes) -> int:
    """CSS width of a PNG from ``_png``: its pixel width (PNG header, bytes 16-20) over ``PIXEL_RATIO``."""
    return struct.unpack(">I", bytes(png[16:20]))[0] // PIXEL_RATIO


STATIC_NOTE = ("Static figure for the current settings: the controls need a front end that runs Jupyter widgets "
               "(JupyterLab, Jupyter Notebook 7, VS Code, Colab).")


class _Explorer:
    """Display for every explorer: the live widget where the front end runs widgets; elsewhere (a static
    HTML export, a viewer without a widget manager) the readout and figure of the current settings with
    ``STATIC_NOTE`` (``text/html``), or the bare figure (``image/png``)."""

    widget: widgets.Widget
    image: widgets.Image
    readout: widgets.HTML

    def _assemble(self, rows: list[list[widgets.Widget]]) -> None:
        """Lay out ``rows`` of controls above the readout and the figure; redraw whenever a control changes."""
        # fixed CSS width (set from each new PNG), never wider than the cell: not stretched to the cell's width
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto",
                                                                       align_self="flex-start"))
        self.image.observe(lambda change: setattr(self.image.layout, "width", f"{_display_width(change.new)}px"),
                           names="value")
        self.readout = widgets.HTML()
        for control in (control for row in rows for control in row):
            control.observe(lambda change: self.update(), names="value")
        self.widget = widgets.VBox([*(widgets.HBox(row) for row in rows), self.readout, self.image])

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        png = base64.b64encode(bytes(self.image.value)).decode("ascii")
        bundle["image/png"] = png
        width = _display_width(self.image.value)
        bundle["text/html"] = (f'<p>{self.readout.value}</p><img src="data:image/png;base64,{png}" width="{width}" '
                               f'style="max-width: 100%; height: auto"/><p><em>{STATIC_NOTE}</em></p>')
        bundle["text/plain"] = f"{type(self).__name__} (interactive where widgets are available)"
        return bundle


def _weight_scale_options() -> list[tuple[str, float]]:
    """Slider stops for ``a``: 0.1 to 10 in steps of 10^0.02 (about 5 %) to 3 digits, plus exactly √2 (He)."""
    grid = {float(f"{v:.3g}") for v in 10 ** np.linspace(-1, 1, 101)}
    return [(f"{v:g}", v) for v in sorted(grid)] + [("√2 = 1.414", float(np.sqrt(2)))]


class GradientNormExplorer(_Explorer):
    """Depth, weight scale and activation → gradient norm per layer (notebook 01).

    ``explorer.widget`` is the ipywidgets box (the object also displays itself in a notebook).
    After every change ``explorer.stats`` holds the ``chain.ChainStats`` that is drawn, and
    ``explorer.readout.value`` states the end-to-end gradient ratio. The same settings always
    give the same weights (drawn from ``seed``). The figure shows ``||dL/dh_l|| / ||dL/dh_L||``
    on a fixed log range (``RANGE`` decades either side of 1, widened only for data beyond it), so
    the ±10 % fluctuation of a width-256 layer reads as flat.
    """

    RANGE = 4  # decades above and below 1 on the y axis

    def __init__(self, *, seed: int = 0, width: int = 256, batch: int = 64):
        self.seed = check_int("seed", seed, minimum=0)
        self.width = check_int("width", width, minimum=2)
        self.batch = check_int("batch", batch, minimum=1)
        style = {"description_width": "initial"}  # the full label, never cut to "weight sc…"
        self.depth = widgets.IntSlider(value=20, min=1, max=60, description="depth", style=style)
        options = sorted(_weight_scale_options(), key=lambda option: option[1])
        self.weight_scale = widgets.SelectionSlider(options=options, value=1.0, description="weight scale a",
                                                    style=style, layout=widgets.Layout(width="420px"))
        self.activation = widgets.Dropdown(options=list(chain.ACTIVATIONS), value="linear", description="activation",
                                           style=style)
        self._assemble([[self.depth, self.weight_scale], [self.activation]])
        self.stats: chain.ChainStats | None = None
        self.update()

    def compute(self) -> chain.ChainStats:
        """The ``ChainStats`` for the current control values (pure: same values, same result)."""
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.batch, self.width))
        top = rng.standard_normal((self.batch, self.width))
        weights = chain.make_weights(self.depth.value, self.width, self.weight_scale.value, rng)
        return chain.backward_pass(weights, x, top, self.activation.value)

    def update(self) -> None:
        self.stats = self.compute()
        a, top = self.weight_scale.value, self.stats.grad_norms[-1]
        figure = Figure(figsize=(6.5, 3.4), layout="constrained")
        ax = plotting.norms_by_layer(self.stats.grad_norms / top, predicted=chain.predicted_norms(self.stats, a) / top,
                                     ax=figure.add_subplot(), ylabel="||dL/dh_l|| / ||dL/dh_L||")
        ax.set_ylim(*self.y_limits(self.stats.grad_norms / top))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{self.activation.value}, a = {a:.3g}, depth {self.stats.depth}, width {self.width}")
        self.image.value = _png(figure)
        ratio = self.stats.grad_norms[0] / top
        self.readout.value = (
            f"<b>||dL/dh<sub>0</sub>|| / ||dL/dh<sub>L</sub>|| = {ratio:.3g}</b> "
            f"(geometric mean factor per layer {ratio ** (1 / self.stats.depth):.3f})"
        )

    @classmethod
    def y_limits(cls, relative_norms) -> tuple[float, float]:
        """``10^±RANGE``, widened to whole decades that hold every finite positive value with a margin."""
        values = np.asarray(relative_norms, dtype=np.float64)
        logs = np.log10(values[np.isfinite(values) & (values > 0)])
        low = min(-cls.RANGE, np.floor(logs.min() - 0.3)) if logs.size else -cls.RANGE
        high = max(cls.RANGE, np.ceil(logs.max() + 0.3)) if logs.size else cls.RANGE
        return 10.0**low, 10.0**high


class InitExplorer(_Explorer):
    """Init scheme, activation, depth and width → per-layer activation histograms and std (notebook 02).

    A torch MLP (``models.deep_mlp``) gets a batch of standard-normal inputs; ``explorer.stats`` holds the
    ``stats.LayerStats`` of one forward/backward pass with the current settings (deterministic: seeded).
    """

    def __init__(self, *, seed: int = 0, batch: int = 256):
        self.seed = check_int("seed", seed, minimum=0)
        self.batch = check_int("batch", batch, minimum=2)
        self.scheme = widgets.Dropdown(options=list(models.INITS), value="xavier_normal", description="init")
        self.activation = widgets.Dropdown(options=["tanh", "relu", "sigmoid", "linear"], value="tanh",
                                           description="activation")
        self.depth = widgets.IntSlider(value=10, min=2, max=30, description="depth")
        self.width = widgets.IntSlider(value=128, min=16, max=512, step=16, description="width")
        self._assemble([[self.scheme, self.activation], [self.depth, self.width]])
        self.stats: stats_module.LayerStats | None = None
        self.update()

    def compute(self) -> stats_module.LayerStats:
        """Per-layer statistics for the current control values (same values, same result)."""
        generator = torch.Generator().manual_seed(self.seed)
        model = models.deep_mlp(self.width.value, self.width.value, self.depth.value, 10, activation=self.activation.value,
                                init=self.scheme.value, generator=generator)
        x = torch.randn(self.batch, self.width.value, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 10, (self.batch,), generator=generator)
        with stats_module.record_layer_stats(model, max_samples=3000) as recorded:
            torch.nn.functional.cross_entropy(model(x), y).backward()
        return recorded

    def update(self) -> None:
        self.stats = self.compute()
        figure = Figure(figsize=(10, 3.2), layout="constrained")
        hist_ax, std_ax = figure.subplots(1, 2, width_ratios=[3, 2])
        shown = np.unique(np.linspace(0, len(self.stats.names) - 1, 5).astype(int))
        plotting.layer_histograms([self.stats.activation_samples[i] for i in shown],
                                  names=[self.stats.names[i] for i in shown], ax=hist_ax, xlabel="activation")
        plotting.norms_by_layer(self.stats.activation_std, ax=std_ax, label="activation std", ylabel="std")
        plotting.norms_by_layer(self.stats.activation_grad_std, ax=std_ax, label="gradient std", ylabel="std")
        std_ax.set_xlabel("hidden layer (0 = first)")
        setting = f"{self.scheme.value} init, {self.activation.value}, width {self.width.value}"
        hist_ax.set_title(f"Activations of {len(shown)} of {len(self.stats.names)} layers ({setting})",
                          fontsize="medium")
        std_ax.set_title("Std of activations and of dL/dh, per layer", fontsize="medium")
        self.image.value = _png(figure)
        first, last = self.stats.activation_std[0], self.stats.activation_std[-1]
        self.readout.value = (
            f"activation std: layer 1 {first:.3g}, layer {len(self.stats.names)} {last:.3g}; "
            f"saturated/inactive at the last layer {self.stats.saturated_fraction[-1]:.0%}"
        )


GRADCHECK_FUNCTIONS = {
    "exp(x)": (np.exp, np.exp),
    "sin(x)": (np.sin, np.cos),
    "x² (quadratic)": (np.square, lambda x: 2 * x),
    "|x − 0.5| (kink at 0.5)": (lambda x: np.abs(x - x.dtype.type(0.5)), lambda x: np.sign(x - 0.5)),
}


class GradCheckExplorer(_Explorer):
    """Function, point, eps and dtype → finite-difference estimate vs the exact derivative (notebook 03).

    ``explorer.result`` holds ``{"numerical", "analytic", "relative_error", "verdict"}`` for the
    centered difference at the current settings; the figure shows the error of both formulas over eps on
    fixed axes, with the current eps dashed and the predicted optimum (``machine_eps^(1/2)`` forward,
    ``machine_eps^(1/3)`` centered, floors ``^(1/2)`` and ``^(2/3)``) dotted.
    """

    def __init__(self):
        self.function = widgets.Dropdown(options=list(GRADCHECK_FUNCTIONS), value="exp(x)", description="f")
        self.x = widgets.FloatSlider(value=1.0, min=-2.0, max=2.0, step=0.01, description="x")
        self.eps = widgets.FloatLogSlider(value=1e-6, base=10, min=-14, max=-1, step=0.25, description="eps",
                                          readout_format=".0e")
        self.dtype = widgets.Dropdown(options=["float64", "float32"], value="float64", description="dtype")
        self._assemble([[self.function, self.dtype], [self.x, self.eps]])
        self.result: dict | None = None
        self.update()

    def compute(self) -> dict:
        f, derivative = GRADCHECK_FUNCTIONS[self.function.value]
        dtype = np.float64 if self.dtype.value == "float64" else np.float32
        x, h = dtype(self.x.value), dtype(self.eps.value)
        numerical = float((f(x + h) - f(x - h)) / (dtype(2) * h))
        analytic = float(derivative(np.float64(self.x.value)))
        error = gradcheck.relative_error(np.array(numerical), np.array(analytic))
        return {"numerical": numerical, "analytic": analytic, "relative_error": error, "verdict": gradcheck.verdict(error)}

    def update(self) -> None:
        self.result = self.compute()
        f, derivative = GRADCHECK_FUNCTIONS[self.function.value]
        dtype = np.float64 if self.dtype.value == "float64" else np.float32
        figure = Figure(figsize=(6.5, 3.2), layout="constrained")
        ax = figure.add_subplot()
        slope = float(derivative(np.float64(self.x.value)))
        machine_eps = np.finfo(dtype).eps
        if slope != 0:
            eps_values = np.logspace(-14, -1, 53)
            errors = gradcheck.difference_errors(f, slope, self.x.value, eps_values, dtype=dtype)
            guides = {"forward": (machine_eps ** (1 / 2), machine_eps ** (1 / 2)),
                      "centered": (machine_eps ** (1 / 3), machine_eps ** (2 / 3))}
            # fixed axes: moving a slider changes the curves, not the scale they are read on
            plotting.eps_sweep(eps_values, errors, guides=guides, ax=ax, ylim=(1e-17, 10))
        ax.axvline(self.eps.value, color="0.2", ls="--", lw=1)
        ax.set_title(f"{self.function.value} at x = {self.x.value:g} in {self.dtype.value}; dashed: your eps")
        self.image.value = _png(figure)
        r = self.result
        self.readout.value = (f"centered difference {r['numerical']:.10g}, exact {r['analytic']:.10g}: relative error "
                              f"<b>{r['relative_error']:.2e}</b> ({r['verdict']})")


class RegularizationExplorer(_Explorer):
    """L2 strength λ and dropout p → decision boundary and train/validation curves (notebook 04).

    Trains a small MLP (2 hidden layers of 64 ReLU units, Adam, 200 full-batch steps, float32) on
    ``dataset`` with ``regularization.train_together`` from the same initial weights and the same dropout
    masks each time (both drawn from ``seed``; the network is built inside ``torch.random.fork_rng``, so
    torch's global RNG is left as it was): same settings, same result. ``explorer.history`` (a
    ``regularization.LossCurves``) and ``explorer.accuracy`` (``{"train": ..., "validation": ...}``) describe
    the last run.
    """

    def __init__(self, dataset, *, seed: int = 0, steps: int = 200):
        from helpers.data import Dataset

        if not isinstance(dataset, Dataset) or dataset.x_train.shape[1] != 2:
            raise TypeError("dataset must be a 2-D helpers.data.Dataset, e.g. data.make_spirals(...)")
        self.dataset = dataset
        self.seed = check_int("seed", seed, minimum=0)
        self.steps = check_int("steps", steps, minimum=1)
        self.lam = widgets.SelectionSlider(options=[0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], value=0.0,
                                           description="L2 λ")
        self.p = widgets.FloatSlider(value=0.0, min=0.0, max=0.7, step=0.1, description="dropout p")
        self._assemble([[self.lam, self.p]])
        self.history = None  # regularization.LossCurves of the last run
        self.accuracy: dict | None = None
        self.update()

    def compute(self):
        """Train with the current λ and p; return ``(model, history)`` (same settings, same result)."""
        from helpers import regularization

        d = self.dataset
        with torch.random.fork_rng(devices=[]):  # nn.Linear's constructor draws from the global RNG
            model = models.deep_mlp(2, 64, 2, d.n_classes, activation="relu", init="kaiming_normal",
                                    dropout=self.p.value, dtype=torch.float32,
                                    generator=torch.Generator().manual_seed(self.seed))
        (history,) = regularization.train_together(
            [model], d.x_train, d.y_train, steps=self.steps, lr=1e-2, weight_decay=self.lam.value,
            x_val=d.x_test, y_val=d.y_test, rng=np.random.default_rng(self.seed))  # masks from the seed too
        return model, history

    def update(self) -> None:
        model, self.history = self.compute()
        d = self.dataset
        self.accuracy = {"train": models.accuracy(model, d.x_train, d.y_train),
                         "validation": models.accuracy(model, d.x_test, d.y_test)}
        figure = Figure(figsize=(9, 3.6), layout="constrained")
        boundary_ax, curve_ax = figure.subplots(1, 2)
        extent = 1.05 * np.abs(np.concatenate([d.x_train, d.x_test])).max()  # the grid covers every point
        limits = np.array([-extent, extent])
        plotting.decision_boundary(*models.predict_grid(model, limits, limits, 80), d.x_train, d.y_train, ax=boundary_ax,
                                   title=f"training points and boundary (λ = {self.lam.value:g}, p = {self.p.value:.1f})")
        boundary_ax.set(xlabel="x₁", ylabel="x₂", xticks=[], yticks=[])  # the coordinates carry no meaning
        plotting.curves({"train (dropout on)" if self.p.value else "train": self.history.loss,
                         "validation": self.history.val_loss}, ax=curve_ax, log=True)
        curve_ax.set_title("loss during training")
        self.image.value = _png(figure)
        self.readout.value = (f"accuracy: train {self.accuracy['train']:.0%}, validation {self.accuracy['validation']:.0%}; "
                              f"final validation loss {self.history.val_loss[-1]:.3f}")


class ClippingExplorer(_Explorer):
    """Clipping method, threshold and learning rate → SGD path on Pascanu's cliff (notebook 05).

    ``explorer.trajectory`` holds ``(points, losses, grad_norms)`` from ``clipping.cliff_trajectory``
    for the current settings, from ``start`` on the plateau beside the wall (default: notebook 05's
    setup, ``clipping.CLIFF_START`` at ``clipping.CLIFF_LR``). The threshold slider is disabled while
    clip = none (it has no effect then).
    """

    def __init__(self, *, start=clipping.CLIFF_START, n_steps: int = 200):
        self.start = np.array(start, dtype=np.float64)
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.method = widgets.Dropdown(options=["none", "norm", "value"], value="none", description="clip")
        self.threshold = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=2, step=0.1, description="threshold")
        self.lr = widgets.FloatLogSlider(value=clipping.CLIFF_LR, base=10, min=-3, max=0, step=0.1, description="lr")
        self.w_grid, self.b_grid = np.linspace(3.0, 8.0, 201), np.linspace(-3.5, 3.0, 201)
        self.surface = clipping.cliff_loss_surface(self.w_grid, self.b_grid)
        self._assemble([[self.method, self.threshold, self.lr]])
        self.trajectory = None
        self.update()

    def compute(self):
        clip = None if self.method.value == "none" else self.method.value
        return clipping.cliff_trajectory(self.start, self.lr.value, self.n_steps, clip=clip, threshold=self.threshold.value)

    def update(self) -> None:
        self.threshold.disabled = self.method.value == "none"
        self.trajectory = points, losses, norms = self.compute()
        figure = Figure(figsize=(11, 3.8), layout="constrained")
        surface_ax, loss_ax = figure.subplots(1, 2)
        plotting.loss_surface(self.w_grid, self.b_grid, self.surface, paths={"SGD path": points}, ax=surface_ax,
                              title="Pascanu's cliff: log10 loss and the path")
        plotting.curves({"loss": losses}, ax=loss_ax, log=True)
        loss_ax.set_title("loss at each step")
        self.image.value = _png(figure)
        steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
        clipped = "threshold unused (clip = none)" if self.threshold.disabled else f"threshold {self.threshold.value:.3g}"
        self.readout.value = (f"{clipped}; largest gradient norm {norms.max():.3g}, largest step {steps.max():.3g} "
                              f"(step {steps.argmax()}), farthest from start "
                              f"{np.linalg.norm(points - points[0], axis=1).max():.3g}, final loss {losses[-1]:.3g}")


class RecurrentExplorer(_Explorer):
    """Cell, sequence length, init, ``W_hh`` scale and forget bias → ``||dL/dh_t||`` over t (notebook 07).

    ``explorer.profile`` holds the ``recurrent.Profile`` drawn (torch cell, float64, loss on the last step,
    weights and inputs drawn from ``seed``). Settings a cell does not have are ignored and the readout says so:
    the forget bias for the vanilla cell (on a GRU it sets the update gate), chrono for anything but the LSTM.
    """

    def __init__(self, *, seed: int = 0, hidden_size: int = 32, batch: int = 8):
        self.seed = check_int("seed", seed, minimum=0)
        self.hidden_size = check_int("hidden_size", hidden_size, minimum=2)
        self.batch = check_int("batch", batch, minimum=1)
        self.cell = widgets.Dropdown(options=list(recurrent.CELLS), value="lstm", description="cell")
        self.init = widgets.Dropdown(options=list(recurrent.INITS), value="default", description="init")
        self.length = widgets.IntSlider(value=100, min=10, max=200, step=10, description="length")
        self.scale = widgets.FloatSlider(value=1.0, min=0.25, max=3.0, step=0.05, description="W_hh scale")
        self.forget_bias = widgets.Dropdown(options=["torch default", -1.0, 0.0, 1.0, 2.0, 3.0, 5.0],
                                            value="torch default", description="forget bias")
        self._assemble([[self.cell, self.init, self.forget_bias], [self.length, self.scale]])
        self.profile = None
        self.update()

    def settings(self) -> tuple[dict, list[str]]:
        """The ``gradient_profile`` keyword arguments for the current controls and notes on ignored settings."""
        cell, init, bias, notes = self.cell.value, self.init.value, self.forget_bias.value, []
        if init == "chrono" and cell != "lstm":
            init, notes = "default", notes + ["chrono init is for the LSTM: torch's default used"]
        if bias != "torch default" and cell == "rnn":
            bias, notes = "torch default", notes + ["a vanilla RNN has no forget gate: bias ignored"]
        if init == "chrono" and bias != "torch default":
            bias, notes = "torch default", notes + ["chrono sets the forget bias itself: bias ignored"]
        return dict(cell=cell, init=init, steps=self.length.value, scale=self.scale.value,
                    forget_bias=None if bias == "torch default" else float(bias), t_max=float(self.length.value),
                    hidden_size=self.hidden_size, batch=self.batch), notes

    def compute(self):
        kwargs, _ = self.settings()
        return recurrent.gradient_profile(generator=torch.Generator().manual_seed(self.seed), **kwargs)

    def update(self) -> None:
        self.profile = p = self.compute()
        _, notes = self.settings()
        series = {"||dL/dh_t||": p.grad_h}
        if p.grad_c is not None:
            series.update({"||dL/dc_t|| (cell state)": p.grad_c, "forget gates alone (carousel)": p.carousel})
        figure = Figure(figsize=(6.5, 3.4), layout="constrained")
        plotting.through_time(series, ax=figure.add_subplot(), ylabel="norm / norm at the last step")
        self.image.value = _png(figure)
        gate_name = "forget" if self.cell.value == "lstm" else "update"
        gate = "" if p.gate_mean is None else f", mean {gate_name} gate {p.gate_mean:.2f}"
        self.readout.value = (f"<b>||dL/dh<sub>0</sub>|| / ||dL/dh<sub>T</sub>|| = {p.grad_h[0] / p.grad_h[-1]:.2g}</b> "
                              f"(factor per step {p.measured_factor:.3f}{gate})" + "".join(f"; {n}" for n in notes))


class NormalizationExplorer(_Explorer):
    """Depth, normalization, residual on/off and branch scale α → per-block gradient norms and forward
    second moment of a ``residual.deep_net`` at init (notebook 06).

    He-initialized blocks ``F(h) = W · ReLU(N(h))``; plain ``h ← F(h)`` or residual ``h ← h + α F(h)``.
    ``explorer.profile`` holds the ``residual.Profile`` drawn (same settings, same weights: seeded).
    """

    def __init__(self, *, seed: int = 0, width: int = 64, batch: int = 128):
        from helpers.residual import NORMS

        self.seed = check_int("seed", seed, minimum=0)
        self.width = check_int("width", width, minimum=2)
        self.batch = check_int("batch", batch, minimum=2)
        self.depth = widgets.IntSlider(value=30, min=1, max=100, description="depth")
        self.norm = widgets.Dropdown(options=list(NORMS), value="none", description="normalization")
        self.residual = widgets.Checkbox(value=False, description="residual")
        self.alpha = widgets.FloatLogSlider(value=1.0, base=10, min=-2, max=0, step=0.05, description="branch scale α")
        self._assemble([[self.depth, self.norm], [self.residual, self.alpha]])
        self.profile = None
        self.update()

    def compute(self):
        """The ``residual.Profile`` for the current control values (pure: same values, same result)."""
        from helpers import residual

        generator = torch.Generator().manual_seed(self.seed)
        model = residual.deep_net(self.width, self.width, self.depth.value, 10, norm=self.norm.value,
                                  residual=self.residual.value, alpha=self.alpha.value, init="kaiming",
                                  generator=generator)
        x = torch.randn(self.batch, self.width, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 10, (self.batch,), generator=generator)
        return residual.profile(model, x, y)

    def update(self) -> None:
        self.profile = p = self.compute()
        figure = Figure(figsize=(10, 3.2), layout="constrained")
        grad_ax, var_ax = figure.subplots(1, 2)
        blocks = np.arange(len(p.grad_norm))
        plotting.curves({"||dL/dh_l||": p.grad_norm}, x=blocks, ax=grad_ax, xlabel="block l (0 = stem output)",
                        ylabel="gradient norm", log=True)
        plotting.curves({"mean(h_l²) / mean(h_0²)": p.second_moment / p.second_moment[0]}, x=blocks, ax=var_ax,
                        xlabel="block l (0 = stem output)", ylabel="forward second moment", log=True)
        grad_ax.set_title("backward: gradient per block")
        var_ax.set_title("forward: signal size per block")
        self.image.value = _png(figure)
        self.readout.value = (
            f"gradient ratio ||dL/dh<sub>0</sub>|| / ||dL/dh<sub>L</sub>|| = <b>{p.grad_norm[0] / p.grad_norm[-1]:.3g}</b>; "
            f"forward growth mean(h<sub>L</sub>²) / mean(h<sub>0</sub>²) = <b>{p.second_moment[-1] / p.second_moment[0]:.3g}</b>"
        )
