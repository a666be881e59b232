"""Interactive explorers. Each is a thin wrapper: read the controls, compute, draw.

The figure is drawn off-screen (``matplotlib.figure.Figure``, no pyplot state) and shown as a
PNG in an ``ipywidgets.Image``, so it updates the same way in JupyterLab, Colab and headless tests.
"""

from __future__ import annotations

import base64
import io

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers import chain, clipping, gradcheck, models, plotting
from helpers import stats as stats_module
from helpers._validate import check_int


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


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
        self.image, self.readout = widgets.Image(format="png"), widgets.HTML()
        for control in (control for row in rows for control in row):
            control.observe(lambda change: self.update(), names="value")
        self.widget = widgets.VBox([*(widgets.HBox(row) for row in rows), self.readout, self.image])

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        png = base64.b64encode(bytes(self.image.value)).decode("ascii")
        bundle["image/png"] = png
        bundle["text/html"] = f'<p>{self.readout.value}</p><img src="data:image/png;base64,{png}"/><p><em>{STATIC_NOTE}</em></p>'
        bundle["text/plain"] = f"{type(self).__name__} (interactive where widgets are available)"
        return bundle


class GradientNormExplorer(_Explorer):
    """Depth, weight scale and activation → gradient norm per layer (notebook 01).

    ``explorer.widget`` is the ipywidgets box (the object also displays itself in a notebook).
    After every change ``explorer.stats`` holds the ``chain.ChainStats`` that is drawn, and
    ``explorer.readout.value`` states the end-to-end gradient ratio. The same settings always
    give the same weights (drawn from ``seed``).
    """

    def __init__(self, *, seed: int = 0, width: int = 64, batch: int = 32):
        self.seed = check_int("seed", seed, minimum=0)
        self.width = check_int("width", width, minimum=2)
        self.batch = check_int("batch", batch, minimum=1)
        self.depth = widgets.IntSlider(value=20, min=1, max=60, description="depth")
        self.weight_scale = widgets.FloatLogSlider(
            value=1.0, base=10, min=-1, max=1, step=0.02, description="weight scale a"
        )
        self.activation = widgets.Dropdown(options=list(chain.ACTIVATIONS), value="linear", description="activation")
        self._assemble([[self.depth, self.weight_scale, self.activation]])
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
        figure = Figure(figsize=(6.5, 3.2), layout="constrained")
        plotting.norms_by_layer(
            self.stats.grad_norms,
            predicted=chain.predicted_norms(self.stats, self.weight_scale.value),
            ax=figure.add_subplot(),
        )
        self.image.value = _png(figure)
        ratio = self.stats.grad_norms[0] / self.stats.grad_norms[-1]
        self.readout.value = (
            f"<b>||dL/dh<sub>0</sub>|| / ||dL/dh<sub>L</sub>|| = {ratio:.3g}</b> "
            f"(geometric mean factor per layer {ratio ** (1 / self.stats.depth):.3f})"
        )


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
    centered difference at the current settings; the figure shows the error of both formulas over eps,
    with the current eps marked.
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
    ``dataset`` from the same initial weights and the same dropout masks each time (both drawn from
    ``seed``; the masks inside ``torch.random.fork_rng``, so torch's global RNG is left as it was):
    same settings, same result. ``explorer.history`` and ``explorer.accuracy``
    (``{"train": ..., "validation": ...}``) describe the last run.
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
        self.history: models.TrainHistory | None = None
        self.accuracy: dict | None = None
        self.update()

    def compute(self):
        """Train with the current λ and p; return ``(model, history)`` (same settings, same result)."""
        d = self.dataset
        # nn.Linear's constructor and nn.Dropout's masks draw from the global RNG: seed a forked copy of it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = models.deep_mlp(2, 64, 2, d.n_classes, activation="relu", init="kaiming_normal",
                                    dropout=self.p.value, dtype=torch.float32,
                                    generator=torch.Generator().manual_seed(self.seed))
            history = models.train(model, d.x_train, d.y_train, steps=self.steps, lr=1e-2, optimizer="adam",
                                   weight_decay=self.lam.value, x_val=d.x_test, y_val=d.y_test,
                                   generator=torch.Generator().manual_seed(self.seed))
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
        boundary_ax.set(xlabel="x₁", ylabel="x₂")
        plotting.curves({"train (dropout on)" if self.p.value else "train": self.history.loss,
                         "validation": self.history.val_loss}, ax=curve_ax, log=True)
        curve_ax.set_title("loss during training")
        self.image.value = _png(figure)
        self.readout.value = (f"accuracy: train {self.accuracy['train']:.0%}, validation {self.accuracy['validation']:.0%}; "
                              f"final validation loss {self.history.val_loss[-1]:.3f}")


class ClippingExplorer(_Explorer):
    """Threshold, clipping method and learning rate → SGD trajectory on Pascanu's cliff (notebook 05).

    ``explorer.trajectory`` holds ``(points, losses, grad_norms)`` from ``clipping.cliff_trajectory``
    for the current settings, from a fixed start just before the wall.
    """

    def __init__(self, *, start=(4.6, -2.5), n_steps: int = 100):
        self.start = np.array(start, dtype=np.float64)
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.method = widgets.Dropdown(options=["none", "norm", "value"], value="none", description="clip")
        self.threshold = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=2, step=0.1, description="threshold")
        self.lr = widgets.FloatLogSlider(value=0.01, base=10, min=-3, max=-1, step=0.1, description="lr")
        self.w_grid, self.b_grid = np.linspace(2.5, 6.0, 141), np.linspace(-3.5, 1.0, 151)
        self.surface = clipping.cliff_loss_surface(self.w_grid, self.b_grid)
        self._assemble([[self.method, self.threshold, self.lr]])
        self.trajectory = None
        self.update()

    def compute(self):
        clip = None if self.method.value == "none" else self.method.value
        return clipping.cliff_trajectory(self.start, self.lr.value, self.n_steps, clip=clip, threshold=self.threshold.value)

    def update(self) -> None:
        self.trajectory = points, losses, norms = self.compute()
        figure = Figure(figsize=(10, 3.6), layout="constrained")
        surface_ax, loss_ax = figure.subplots(1, 2)
        surface_ax.contourf(self.w_grid, self.b_grid, np.log10(self.surface + 1e-6), levels=30, cmap="viridis")
        surface_ax.plot(points[:, 0], points[:, 1], ".-", color="w", ms=3, lw=0.8)
        surface_ax.plot(*points[0], "o", color="orange")
        surface_ax.set(xlim=(self.w_grid[0], self.w_grid[-1]), ylim=(self.b_grid[0], self.b_grid[-1]),
                       xlabel="w", ylabel="b", title="log10 loss and the SGD path")
        plotting.curves({"loss": losses}, ax=loss_ax, log=True)
        self.image.value = _png(figure)
        largest_step = np.linalg.norm(np.diff(points, axis=0), axis=1).max()
        self.readout.value = (f"largest gradient norm {norms.max():.3g}, largest step {largest_step:.3g}, "
                              f"final loss {losses[-1]:.3g}")
