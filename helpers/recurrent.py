"""Gradients through time in recurrent networks. Notebook 07.

A vanilla RNN computes ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (torch's ``nn.RNN``, weight
layout ``[fan_out, fan_in]``). Backprop through time (BPTT) is the chain rule over the steps:
``dL/dh_{t-1} = (dL/dh_t ⊙ (1 - h_t²)) W_hh`` (+ the loss's own gradient at ``t-1``), a product of the
recurrent Jacobians ``diag(1 - h_t²) W_hh``. An LSTM adds a cell state ``c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t``
whose direct path multiplies the gradient by the forget gate ``f_t`` per step (the constant error carousel).
Shapes: sequences ``[T, B, features]`` (time first, as torch's default), states ``[B, H]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers._validate import check_array, check_choice, check_int, check_real

CELLS = ("rnn", "gru", "lstm")
INITS = ("default", "orthogonal", "scaled", "identity", "chrono")
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _weights(weights: dict) -> dict:
    if not isinstance(weights, dict) or set(weights) != set(WEIGHT_NAMES):
        raise TypeError(f"weights must be a dict with keys {WEIGHT_NAMES}")
    w = {k: check_array(k, weights[k], ndim=1 if k.startswith("bias") else 2) for k in WEIGHT_NAMES}
    hidden = w["weight_hh"].shape[0]
    if w["weight_hh"].shape != (hidden, hidden) or w["weight_ih"].shape[0] != hidden:
        raise ValueError(f"weight_hh must be [H, H] and weight_ih [H, I], got {w['weight_hh'].shape}, {w['weight_ih'].shape}")
    if w["bias_ih"].shape != (hidden,) or w["bias_hh"].shape != (hidden,):
        raise ValueError(f"bias_ih and bias_hh must have shape ({hidden},)")
    return w


def rnn_forward(x, h0, weights: dict, *, nonlinearity: str = "tanh"):
    """Vanilla RNN over a sequence, as ``torch.nn.RNN`` (one layer, time first).

    ``x [T, B, I]``, ``h0 [B, H]``, ``weights``: ``weight_ih [H, I]``, ``weight_hh [H, H]``, ``bias_ih [H]``,
    ``bias_hh [H]``; ``nonlinearity``: ``"tanh"`` or ``"linear"`` (no squashing, for comparison).
    Returns ``(hs [T, B, H], cache)``; ``cache`` is what ``rnn_backward`` needs.
    """
    w = _weights(weights)
    check_choice("nonlinearity", nonlinearity, ("tanh", "linear"))
    x, h = check_array("x", x, ndim=3), check_array("h0", h0, ndim=2)
    if x.shape[2] != w["weight_ih"].shape[1] or h.shape != (x.shape[1], w["weight_hh"].shape[0]):
        raise ValueError(f"x must be [T, B, {w['weight_ih'].shape[1]}] and h0 [B, {w['weight_hh'].shape[0]}], "
                         f"got {x.shape} and {h.shape}")
    hs = []
    for x_t in x:
        pre = x_t @ w["weight_ih"].T + w["bias_ih"] + h @ w["weight_hh"].T + w["bias_hh"]
        h = np.tanh(pre) if nonlinearity == "tanh" else pre
        hs.append(h)
    hs = np.stack(hs)
    return hs, {"x": x, "h0": check_array("h0", h0, ndim=2), "hs": hs, "weights": w, "nonlinearity": nonlinearity}


def rnn_backward(grad_hs, cache: dict) -> dict:
    """BPTT for ``rnn_forward``: gradients of a loss whose gradient w.r.t. the outputs ``hs`` is ``grad_hs [T, B, H]``.

    Walks back from ``t = T-1``: ``g_t = grad_hs[t] + dL/dh_t`` (from step ``t+1``), ``da_t = g_t ⊙ (1 - h_t²)``,
    ``dL/dh_{t-1} = da_t W_hh``, ``dW_hh += da_t^T h_{t-1}``, ``dW_ih += da_t^T x_t``, ``db += Σ_batch da_t``.
    Returns a dict with the four weight gradients, ``x [T, B, I]``, ``h0 [B, H]`` and ``grad_h [T, B, H]``
    (the total ``dL/dh_t`` at every step).
    """
    hs, x, h0, w = cache["hs"], cache["x"], cache["h0"], cache["weights"]
    grad_hs = check_array("grad_hs", grad_hs, ndim=3)
    if grad_hs.shape != hs.shape:
        raise ValueError(f"grad_hs must have shape {hs.shape}, got {grad_hs.shape}")
    grads = {k: np.zeros_like(v) for k, v in w.items()}
    grad_x, grad_h = np.zeros_like(x), np.zeros_like(hs)
    carry = np.zeros_like(h0)
    for t in range(len(hs) - 1, -1, -1):
        grad_h[t] = grad_hs[t] + carry
        da = grad_h[t] * (1 - hs[t] ** 2) if cache["nonlinearity"] == "tanh" else grad_h[t]
        h_prev = hs[t - 1] if t > 0 else h0
        grads["weight_hh"] += da.T @ h_prev
        grads["weight_ih"] += da.T @ x[t]
        grads["bias_ih"] += da.sum(axis=0)
        grad_x[t] = da @ w["weight_ih"]
        carry = da @ w["weight_hh"]
    grads["bias_hh"] = grads["bias_ih"].copy()
    return {**grads, "x": grad_x, "h0": carry, "grad_h": grad_h}


def torch_weights_params(module: nn.Module) -> list[torch.Tensor]:
    """The parameters ``weight_ih, weight_hh, bias_ih, bias_hh`` of a one-layer recurrent module (tensors)."""
    if not isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        raise TypeError(f"module must be a torch recurrent module (nn.RNN, nn.LSTMCell, ...), got {type(module).__name__}")
    if isinstance(module, nn.RNNBase) and (module.num_layers != 1 or module.bidirectional or not module.bias):
        raise ValueError("module must have one layer, one direction and biases")
    suffix = "_l0" if isinstance(module, nn.RNNBase) else ""
    return [getattr(module, k + suffix) for k in WEIGHT_NAMES]


def torch_weights(module: nn.Module) -> dict:
    """The four weights of a one-layer ``nn.RNN``/``nn.RNNCell`` (or GRU/LSTM) as float64 numpy arrays."""
    return {k: p.detach().double().numpy().copy() for k, p in zip(WEIGHT_NAMES, torch_weights_params(module))}


def _gate(module, index: int) -> slice:
    hidden = module.hidden_size
    return slice(index * hidden, (index + 1) * hidden)


def initialize(module: nn.Module, init: str = "default", *, generator: torch.Generator, scale: float = 1.0,
               forget_bias: float | None = None, t_max: float = 100.0) -> nn.Module:
    """Re-initialize a one-layer recurrent ``module`` (``nn.RNN/GRU/LSTM`` or their ``Cell``) in place; return it.

    ``init``: ``"default"`` torch's reset, every weight and bias ``U(±1/√H)``; ``"orthogonal"``: each gate's
    ``W_hh`` block orthogonal times ``scale``; ``"scaled"``: ``W_hh ~ N(0, scale²/H)`` (spectral radius ≈ ``scale``
    by the circular law); ``"identity"`` (Le et al. 2015): ``W_hh = scale · I`` per gate, zero biases;
    ``"chrono"`` (LSTM only, Tallec & Ollivier 2018): ``b_f = log(U(1, t_max - 1))``,
    ``b_i = -b_f``. ``forget_bias`` (LSTM forget gate; GRU update gate ``z``, the share of ``h_{t-1}`` kept):
    sets that gate's total bias (``bias_ih`` to the value, ``bias_hh`` to 0; Jozefowicz et al. 2015 use 1).
    ``scale`` does not change ``"default"`` or ``"chrono"``. Every draw comes from ``generator``.
    """
    params = dict(zip(WEIGHT_NAMES, torch_weights_params(module)))
    check_choice("init", init, INITS)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    scale = check_real("scale", scale, positive=True)
    kind = {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm"}[type(module).__name__.replace("Cell", "")]
    if (init == "chrono" or forget_bias is not None) and kind == "rnn":
        raise ValueError("init='chrono' and forget_bias need a gated cell (GRU or LSTM), got a vanilla RNN")
    if init == "chrono" and kind != "lstm":
        raise ValueError("init='chrono' is defined for the LSTM")
    if forget_bias is not None:
        forget_bias = check_real("forget_bias", forget_bias)
    t_max = check_real("t_max", t_max, minimum=2.0 + 1e-9)
    hidden = module.hidden_size
    bound = 1.0 / math.sqrt(hidden)
    with torch.no_grad():
        for p in params.values():
            nn.init.uniform_(p, -bound, bound, generator=generator)
        w_hh = params["weight_hh"]
        if init == "orthogonal":
            for block in w_hh.split(hidden):
                nn.init.orthogonal_(block, gain=scale, generator=generator)
        elif init == "scaled":
            nn.init.normal_(w_hh, 0.0, scale / math.sqrt(hidden), generator=generator)
        elif init == "identity":  # Le, Jaitly & Hinton (2015), with ReLU: the "IRNN"
            for block in w_hh.split(hidden):
                block.copy_(scale * torch.eye(hidden, dtype=block.dtype))
            params["bias_ih"].zero_()
            params["bias_hh"].zero_()
        keep = _gate(module, 1)  # LSTM gates i, f, g, o; GRU gates r, z, n: index 1 is f / z
        if init == "chrono":
            uniform = torch.rand(hidden, generator=generator, dtype=w_hh.dtype) * (t_max - 2) + 1
            params["bias_ih"][keep] = torch.log(uniform)
            params["bias_ih"][_gate(module, 0)] = -torch.log(uniform)
            params["bias_hh"][keep] = 0.0
            params["bias_hh"][_gate(module, 0)] = 0.0
        if forget_bias is not None:
            params["bias_ih"][keep] = forget_bias
            params["bias_hh"][keep] = 0.0
    return module



@dataclass
class Profile:
    """``dL/dh_t`` through time for a loss on the last step of one sequence batch.

    ``grad_h [T+1]``: ``||dL/dh_t||`` for ``t = 0..T`` (``t = 0`` is the initial state); ``grad_c [T+1]``: the
    same for the LSTM cell state (else ``None``); ``carousel [T+1]`` (LSTM): the cell-state path alone,
    ``||dL/dc_T ⊙ f_T ⊙ ... ⊙ f_{t+1}||``, what the forget gates predict for ``grad_c``; ``gate_mean``: mean
    forget gate (LSTM) or update gate ``z`` (GRU), ``None`` for a vanilla RNN; ``derivative_rms``: RMS of
    ``1 - h_t²`` (tanh RNN; 1 for linear; else ``None``); ``spectral_radius`` and ``weight_gain = ||W||_F / √H``
    of the (first gate's) ``W_hh`` block ``W``. Per-step factors of the Jacobians ``diag(1 - h²) W_hh`` of a
    vanilla cell: ``predicted_factor = spectral_radius × derivative_rms`` (a gradient aligned with ``W``'s
    slowest-decaying direction, as a repeated matrix makes it), ``random_direction_factor = weight_gain ×
    derivative_rms`` (``E||W^T v||² = ||W||_F² / H ||v||²`` for a random direction ``v``);
    ``measured_factor = (grad_h[0] / grad_h[T]) ** (1/T)``, the geometric mean per step.
    """

    grad_h: np.ndarray
    grad_c: np.ndarray | None
    carousel: np.ndarray | None
    gate_mean: float | None
    derivative_rms: float | None
    spectral_radius: float
    weight_gain: float

    @property
    def predicted_factor(self) -> float | None:
        return None if self.derivative_rms is None else self.spectral_radius * self.derivative_rms

    @property
    def random_direction_factor(self) -> float | None:
        return None if self.derivative_rms is None else self.weight_gain * self.derivative_rms

    @property
    def measured_factor(self) -> float:
        return float((self.grad_h[0] / self.grad_h[-1]) ** (1 / (len(self.grad_h) - 1)))


def make_module(cell: str, input_size: int, hidden_size: int, *, layer: bool = False, nonlinearity: str = "tanh",
                dtype=torch.float64):
    """An ``nn.RNNCell``/``GRUCell``/``LSTMCell`` (or, with ``layer=True``, a one-layer ``nn.RNN``/``GRU``/``LSTM``).

    ``nonlinearity``: ``"tanh"`` or ``"relu"``, for the vanilla cell only (torch's ``nn.RNN`` option).
    """
    check_choice("cell", cell, CELLS)
    check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
    if nonlinearity != "tanh" and cell != "rnn":
        raise ValueError("nonlinearity='relu' is for the vanilla cell (cell='rnn')")
    name = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}[cell] + ("" if layer else "Cell")
    extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    return getattr(nn, name)(check_int("input_size", input_size, minimum=1),
                             check_int("hidden_size", hidden_size, minimum=1), dtype=dtype, **extra)


def gradient_profile(cell: str = "rnn", *, generator: torch.Generator, steps: int = 100, hidden_size: int = 64,
                     batch: int = 16, input_size: int = 8, init: str = "default", scale: float = 1.0,
                     forget_bias: float | None = None, t_max: float = 100.0, nonlinearity: str = "tanh",
                     truncate: int | None = None, input_scale: float = 1.0) -> Profile:
    """Run a torch cell (float64) over ``steps`` steps of ``N(0, input_scale²)`` inputs from ``h_0 = 0`` and backpropagate
    ``L = Σ u ⊙ h_T / batch`` (``u ~ N(0, 1)``) to every state; weights from ``initialize(init, ...)``.

    ``nonlinearity="linear"`` (vanilla cell only) drops the tanh. ``truncate=k``: truncated BPTT, the state is
    detached ``k`` steps before the end, so ``dL/dh_t = 0`` for ``t < T - k``. Returns a ``Profile``.
    """
    steps = check_int("steps", steps, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    check_choice("nonlinearity", nonlinearity, ("tanh", "linear"))
    if nonlinearity == "linear" and cell != "rnn":
        raise ValueError("nonlinearity='linear' is for the vanilla cell (cell='rnn')")
    if truncate is not None:
        truncate = check_int("truncate", truncate, minimum=1)
    input_scale = check_real("input_scale", input_scale, positive=True)
    module = initialize(make_module(cell, input_size, hidden_size), init, generator=generator, scale=scale,
                        forget_bias=forget_bias, t_max=t_max).requires_grad_(False)  # only states need gradients
    x = input_scale * torch.randn(steps, batch, input_size, generator=generator, dtype=torch.float64)
    u = torch.randn(batch, hidden_size, generator=generator, dtype=torch.float64)
    h = torch.zeros(batch, hidden_size, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(batch, hidden_size, dtype=torch.float64, requires_grad=True)
    hs, cs, gates, derivatives = [h], [c], [], []
    w_ih, w_hh, b_ih, b_hh = torch_weights_params(module)
    for t in range(steps):
        if truncate is not None and t == steps - truncate:
            h, c = h.detach().requires_grad_(), c.detach().requires_grad_()
            hs[-1], cs[-1] = h, c
        if cell == "rnn":
            pre = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            h = torch.tanh(pre) if nonlinearity == "tanh" else pre
            derivatives.append((1 - h.detach() ** 2) if nonlinearity == "tanh" else torch.ones_like(h))
        else:
            with torch.no_grad():  # the forget (LSTM) / update (GRU) gate, read off for the record
                pre = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
                gates.append(torch.sigmoid(pre[:, _gate(module, 1)]))
            if cell == "gru":
                h = module(x[t], h)
            else:
                h, c = module(x[t], (h, c))
        h.retain_grad()
        c.retain_grad()
        hs.append(h)
        cs.append(c)
    ((u * h).sum() / batch).backward()

    def norms(states):
        return np.array([0.0 if s.grad is None else s.grad.norm().item() for s in states])

    carousel = None
    if cell == "lstm":
        path = cs[-1].grad
        carousel = [path.norm().item()]
        for f in gates[::-1]:  # gates[t] is f_{t+1}, the factor from c_t to c_{t+1}
            path = path * f
            carousel.append(path.norm().item())
        carousel = np.array(carousel[::-1])
    w_first = w_hh.detach()[: hidden_size].numpy()
    return Profile(
        grad_h=norms(hs),
        grad_c=norms(cs) if cell == "lstm" else None,
        carousel=carousel,
        gate_mean=float(torch.stack(gates).mean()) if gates else None,
        derivative_rms=float(torch.stack(derivatives).pow(2).mean().sqrt()) if derivatives else None,
        spectral_radius=float(np.max(np.abs(np.linalg.eigvals(w_first)))),
        weight_gain=float(np.linalg.norm(w_first) / math.sqrt(hidden_size)),
    )

