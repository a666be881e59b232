"""Per-layer activation and gradient statistics of one forward/backward pass, as data.

``record_layer_stats`` is a context manager: hooks are attached on entry and removed on exit,
and the returned ``LayerStats`` is filled in when the block ends. Used from notebook 01 on.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from helpers._validate import check_array, check_int
from helpers.models import linear_layers

# A unit counts as saturated where its derivative is (nearly) zero:
# sigmoid outside [0.03, 0.97] (σ' < 0.03), tanh beyond |0.97| (tanh' < 0.06), ReLU at exactly 0.
_SATURATED = {
    nn.Sigmoid: lambda h: (h < 0.03) | (h > 0.97),
    nn.Tanh: lambda h: h.abs() > 0.97,
    nn.ReLU: lambda h: h == 0,
    nn.LeakyReLU: lambda h: h < 0,
    nn.Identity: lambda h: torch.zeros_like(h, dtype=torch.bool),
}


@dataclass
class LayerStats:
    """Statistics per hidden layer ``l = 1..L`` (the Linear layers that feed an activation).

    Activations ``h_l = act(z_l)``, all ``[n_layers]`` unless said:
    ``activation_mean``, ``activation_std``, ``saturated_fraction`` (share of entries where the
    activation's derivative is ~0), ``activation_samples`` (list of 1-D arrays, at most
    ``max_samples`` values each, for histograms).
    Gradients: ``activation_grad_norm`` (``||dL/dh_l||``, the back-propagated signal),
    ``activation_grad_std``, ``weight_grad_norm`` (``||dL/dW_l||``), ``weight_norm``
    (``||W_l||``), ``grad_samples`` (list of 1-D arrays of ``dL/dh_l`` entries).
    ``names``: e.g. ``"layer 1 (Tanh)"``.
    """

    names: list[str] = field(default_factory=list)
    activation_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    activation_std: np.ndarray = field(default_factory=lambda: np.empty(0))
    saturated_fraction: np.ndarray = field(default_factory=lambda: np.empty(0))
    activation_samples: list[np.ndarray] = field(default_factory=list)
    activation_grad_norm: np.ndarray = field(default_factory=lambda: np.empty(0))
    activation_grad_std: np.ndarray = field(default_factory=lambda: np.empty(0))
    weight_grad_norm: np.ndarray = field(default_factory=lambda: np.empty(0))
    weight_norm: np.ndarray = field(default_factory=lambda: np.empty(0))
    grad_samples: list[np.ndarray] = field(default_factory=list)


def _hidden_layers(model: nn.Module) -> list[tuple[nn.Linear, nn.Module]]:
    """Pairs ``(Linear, activation)`` where an activation module directly follows a Linear one."""
    modules = list(model.modules())
    return [
        (module, after)
        for module, after in zip(modules[:-1], modules[1:])
        if isinstance(module, nn.Linear) and type(after) in _SATURATED
    ]


def _subsample(values: torch.Tensor, max_samples: int) -> np.ndarray:
    flat = values.detach().reshape(-1).double().numpy()
    if flat.size <= max_samples:
        return flat.copy()
    return flat[np.linspace(0, flat.size - 1, max_samples).astype(int)]


@contextlib.contextmanager
def record_layer_stats(model: nn.Module, *, max_samples: int = 5000):
    """Record per-layer statistics of the forward/backward pass run inside the ``with`` block.

    Example::

        with record_layer_stats(model) as stats:
            nn.functional.cross_entropy(model(x), y).backward()
        stats.activation_grad_norm   # [n_layers], filled in on exit

    Only the last forward pass inside the block is kept; gradients are read from the
    parameters' ``.grad`` on exit (zero them before the block if they may hold old values).
    Hooks are always removed, also if the block raises.
    """
    linear_layers(model)  # type check
    max_samples = check_int("max_samples", max_samples, minimum=1)
    pairs = _hidden_layers(model)
    feeding = [linear for linear, _ in pairs]
    activations = [activation for _, activation in pairs]
    if not activations:
        raise ValueError("model has no activation module right after a Linear layer to record")
    outputs: dict[int, torch.Tensor] = {}
    grads: dict[int, torch.Tensor] = {}

    def forward_hook(index):
        def hook(module, inputs, output):
            outputs[index] = output.detach()
            if output.requires_grad:
                output.register_hook(lambda grad: grads.__setitem__(index, grad.detach()))

        return hook

    handles = [m.register_forward_hook(forward_hook(i)) for i, m in enumerate(activations)]
    stats = LayerStats()
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()
    if len(outputs) != len(activations):
        raise RuntimeError("record_layer_stats: no forward pass through the model ran inside the block")
    stats.names = [f"layer {i + 1} ({type(m).__name__})" for i, m in enumerate(activations)]
    h = [outputs[i] for i in range(len(activations))]
    stats.activation_mean = np.array([t.mean().item() for t in h])
    stats.activation_std = np.array([t.std().item() for t in h])
    stats.saturated_fraction = np.array(
        [_SATURATED[type(m)](t).double().mean().item() for m, t in zip(activations, h)]
    )
    stats.activation_samples = [_subsample(t, max_samples) for t in h]
    g = [grads.get(i) for i in range(len(activations))]
    nan = float("nan")
    stats.activation_grad_norm = np.array([t.norm().item() if t is not None else nan for t in g])
    stats.activation_grad_std = np.array([t.std().item() if t is not None else nan for t in g])
    stats.grad_samples = [_subsample(t, max_samples) if t is not None else np.empty(0) for t in g]
    stats.weight_grad_norm = np.array(
        [layer.weight.grad.norm().item() if layer.weight.grad is not None else nan for layer in feeding]
    )
    stats.weight_norm = np.array([layer.weight.detach().norm().item() for layer in feeding])


def dead_unit_fraction(model: nn.Module, x) -> np.ndarray:
    """Per hidden layer, the share of units whose activation is 0 for every row of ``x``.

    A ReLU unit that is 0 on every input gets no gradient through any of them: it is dead and
    stays so under gradient descent. ``x``: ``[n, in_features]``. Returns ``[n_layers]``.
    """
    pairs = _hidden_layers(model)
    if not pairs:
        raise ValueError("model has no activation module right after a Linear layer")
    dtype = pairs[0][0].weight.dtype
    x = torch.as_tensor(x if torch.is_tensor(x) else check_array("x", x, ndim=2), dtype=dtype)
    outputs = {}
    handles = [
        activation.register_forward_hook(lambda m, i, out, k=k: outputs.__setitem__(k, out.detach()))
        for k, (_, activation) in enumerate(pairs)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return np.array([(outputs[k] == 0).all(dim=0).double().mean().item() for k in range(len(pairs))])
