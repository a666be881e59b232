"""Interactive explorers. Each is a thin wrapper: read the controls, compute, draw.

The figure is drawn off-screen (``matplotlib.figure.Figure``, no pyplot state) and shown as a
PNG in an ``ipywidgets.Image``, so it updates the same way in JupyterLab, Colab and headless tests.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from helpers import chain, plotting
from helpers._validate import check_int


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


class GradientNormExplorer:
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
        self.image = widgets.Image(format="png")
        self.readout = widgets.HTML()
        for control in (self.depth, self.weight_scale, self.activation):
            control.observe(lambda change: self.update(), names="value")
        controls = widgets.HBox([self.depth, self.weight_scale, self.activation])
        self.widget = widgets.VBox([controls, self.readout, self.image])
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

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
