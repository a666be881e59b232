"""Per-layer activation and gradient statistics of one forward/backward pass, as data.

``record_layer_stats`` is a context manager: hooks are attached on entry and removed on exit,
and the returned ``LayerStats`` is filled in when the block ends. Used from notebook 01 on.
The hooks are ``monitor``'s (one mechanism for one pass and for whole training runs).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from helpers._validate import check_array, check_int
from helpers.models import linear_layers
from helpers.monitor import SATURATED as _SATURATED  # where each activation's derivative is ~0
from helpers.monitor import _Recorder


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
    # every forward pass counts (also under no_grad); every backward pass is a record, the last one is kept
    recorder = _Recorder(model, None, feeding, 1, range(sys.maxsize), max_samples, training_only=False)
    stats = LayerStats()
    try:
        yield stats
    finally:
        recorder.close()
    log = recorder.log
    if log.steps.size == 0 or not all(log.activation_names):
        raise RuntimeError("record_layer_stats: no forward pass through the model ran inside the block")
    step = int(log.steps[-1])
    stats.names = [f"layer {i + 1} ({type(m).__name__})" for i, m in enumerate(activations)]
    stats.activation_mean, stats.activation_std = log.activation_mean[-1].copy(), log.activation_std[-1].copy()
    stats.saturated_fraction = log.saturated_fraction[-1].copy()
    stats.activation_samples = log.activation_samples[step]
    stats.activation_grad_norm = log.activation_grad_norm[-1].copy()
    stats.activation_grad_std = log.activation_grad_std[-1].copy()
    stats.grad_samples = log.activation_grad_samples[step]
    nan = float("nan")  # .grad on exit, as documented (NaN where no backward pass ever reached the weight)
    stats.weight_grad_norm = np.array(
        [layer.weight.grad.norm().item() if layer.weight.grad is not None else nan for layer in feeding]
    )
    stats.weight_norm = log.weight_norm[-1].copy()


def _activation_outputs(model: nn.Module, x) -> list[torch.Tensor]:
    """The output ``[n, width]`` of every activation module (``Sigmoid``, ``ReLU``, ...; in module order) when
    ``x [n, in_features]`` goes through ``model`` without gradients."""
    activations = [module for module in model.modules() if type(module) in _SATURATED]
    if not activations:
        raise ValueError("model has no activation module (ReLU, Sigmoid, Tanh, ...)")
    dtype = next(model.parameters()).dtype
    x = torch.as_tensor(x if torch.is_tensor(x) else check_array("x", x, ndim=2), dtype=dtype)
    layers = linear_layers(model)
    if not layers:
        raise ValueError("model has no nn.Linear layer")
    in_features = layers[0].in_features
    if x.ndim != 2 or x.shape[1] != in_features:
        raise ValueError(f"x must have shape [n, {in_features}], got {tuple(x.shape)}")
    outputs = {}
    handles = [module.register_forward_hook(lambda m, i, out, k=k: outputs.__setitem__(k, out.detach()))
               for k, module in enumerate(activations)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [outputs[k] for k in range(len(activations))]


def dead_unit_fraction(model: nn.Module, x) -> np.ndarray:
    """Per hidden layer, the share of units whose activation is 0 for every row of ``x``.

    A ReLU unit that is 0 on every input passes no gradient to its own weights and bias for any of them; it
    can come back only if the layers below change its input (notebook 01 measures how often that happens).
    ``x``: ``[n, in_features]``. Returns ``[n_layers]``.
    """
    if not _hidden_layers(model):
        raise ValueError("model has no activation module right after a Linear layer")
    return np.array([(h == 0).all(dim=0).double().mean().item() for h in _activation_outputs(model, x)])


def input_signal_share(model: nn.Module, x) -> np.ndarray:
    """Per activation layer, the share of the activations' energy that differs between inputs.

    ``E||h - h̄||² / E||h||²`` over the rows of ``x [n, in_features]`` (``h̄``: the mean activation vector).
    Near 0: every input gives almost the same vector, so the layers above cannot tell the inputs apart, whatever
    the gradients do. Needs ``n >= 2``. Returns ``[n_layers]``.
    """
    outputs = _activation_outputs(model, x)
    if outputs[0].shape[0] < 2:
        raise ValueError(f"x must have at least 2 rows (inputs) to compare, got {outputs[0].shape[0]}")
    shares = []
    for h in outputs:
        h = h.double()
        shares.append(((h - h.mean(0)) ** 2).sum(1).mean().item() / max((h**2).sum(1).mean().item(), 1e-300))
    return np.array(shares)
