"""The adding problem and a small trainer for recurrent regressors. Notebook 07 (with ``helpers.recurrent``).

Hochreiter & Schmidhuber (1997) built the adding problem to need memory over the whole sequence: the
network must keep two marked values, seen far apart, until the last step. Training here is float32,
MSE, Adam or SGD on fresh generated batches, with optional global-norm clipping and truncated BPTT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers._validate import check_choice, check_int, check_real, check_rng
from helpers.recurrent import make_module


def adding_problem(n: int, length: int, rng: np.random.Generator):
    """Hochreiter & Schmidhuber's adding problem (the form of Le et al. 2015 / Arjovsky et al. 2016), generated.

    Input ``[length, n, 2]``: channel 0 holds ``U(0, 1)`` values, channel 1 marks two positions, one in each
    half of the sequence; the target ``[n]`` is the sum of the two marked values. Always predicting 1 gives a
    mean squared error of ``Var(U + U) = 1/6``. Returns float32 ``(x, y)`` numpy arrays.
    """
    n, length, rng = check_int("n", n, minimum=1), check_int("length", length, minimum=2), check_rng("rng", rng)
    values = rng.random((length, n))
    first = rng.integers(0, length // 2, n)
    second = rng.integers(length // 2, length, n)
    marks = np.zeros((length, n))
    marks[first, np.arange(n)] = marks[second, np.arange(n)] = 1.0
    x = np.stack([values, marks], axis=2).astype(np.float32)
    return x, (values[first, np.arange(n)] + values[second, np.arange(n)]).astype(np.float32)


class SequenceRegressor(nn.Module):
    """A one-layer ``nn.RNN``/``GRU``/``LSTM`` (time first) and a linear read-out of its last hidden state.

    Weights start at torch's defaults (drawn from torch's global RNG); re-draw them with ``recurrent.initialize``
    on ``model.recurrent`` and ``model.reset_readout(generator)`` for seeded runs.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh",
                 dtype=torch.float32):
        super().__init__()
        self.recurrent = make_module(cell, input_size, hidden_size, layer=True, nonlinearity=nonlinearity, dtype=dtype)
        self.readout = nn.Linear(hidden_size, 1, dtype=dtype)

    def reset_readout(self, generator: torch.Generator) -> None:
        """Re-draw the read-out as torch's ``nn.Linear`` reset does, ``U(±1/√H)``, from ``generator``."""
        bound = 1 / math.sqrt(self.readout.in_features)
        with torch.no_grad():
            for p in (self.readout.weight, self.readout.bias):
                nn.init.uniform_(p, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor, *, truncate: int | None = None) -> torch.Tensor:
        """``x [T, B, I]`` → ``[B]``. ``truncate=k``: the state is detached ``k`` steps before the end (truncated BPTT)."""
        if truncate is None or truncate >= len(x):
            out, _ = self.recurrent(x)
        else:
            _, state = self.recurrent(x[: len(x) - truncate])
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            out, _ = self.recurrent(x[len(x) - truncate:], state)
        return self.readout(out[-1]).squeeze(-1)


@dataclass
class SequenceRun:
    """``loss [steps]`` minibatch MSE before each step (NaN after divergence), ``grad_norm [steps]`` global
    gradient norm before clipping, ``test_loss`` MSE on a held-out batch at the end (NaN if diverged),
    ``diverged_at`` first step with a non-finite loss or gradient, or ``None``."""

    loss: np.ndarray
    grad_norm: np.ndarray
    test_loss: float
    diverged_at: int | None


def train_adding(model: SequenceRegressor, *, length: int, steps: int, lr: float, rng: np.random.Generator,
                 batch: int = 64, clip: float | None = None, optimizer: str = "adam",
                 truncate: int | None = None, n_test: int = 512) -> SequenceRun:
    """Train ``model`` on fresh adding-problem batches (MSE, float32); clip the global norm at ``clip`` if given.

    Data come from ``rng`` (the test batch first, then one batch per step); stops at the first non-finite
    loss or gradient norm.
    """
    if not isinstance(model, SequenceRegressor):
        raise TypeError(f"model must be a SequenceRegressor, got {type(model).__name__}")
    steps, lr = check_int("steps", steps, minimum=1), check_real("lr", lr, positive=True)
    check_choice("optimizer", optimizer, ("adam", "sgd"))
    if clip is not None:
        clip = check_real("clip", clip, positive=True)
    if truncate is not None:
        truncate = check_int("truncate", truncate, minimum=1)
    batch, n_test = check_int("batch", batch, minimum=1), check_int("n_test", n_test, minimum=1)
    x_test, y_test = (torch.from_numpy(a) for a in adding_problem(n_test, length, rng))
    params = list(model.parameters())
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(params, lr=lr)
    losses, norms = np.full(steps, np.nan), np.full(steps, np.nan)
    diverged_at = None
    for step in range(steps):
        x, y = (torch.from_numpy(a) for a in adding_problem(batch, length, rng))
        loss = nn.functional.mse_loss(model(x, truncate=truncate), y)
        opt.zero_grad()
        loss.backward()
        norm = nn.utils.clip_grad_norm_(params, math.inf if clip is None else clip)
        losses[step], norms[step] = loss.item(), norm.item()
        if not (math.isfinite(losses[step]) and math.isfinite(norms[step])):
            diverged_at = step
            break
        opt.step()
    with torch.no_grad():
        test_loss = nn.functional.mse_loss(model(x_test), y_test).item() if diverged_at is None else math.nan
    return SequenceRun(losses, norms, test_loss, diverged_at)


@dataclass
class StateGradients:
    """``||dL/dh_t||`` (``grad_h [T]``) and, for an LSTM, ``||dL/dc_t||`` (``grad_c [T]``, else ``None``) for
    ``t = 1..T`` of a trained ``SequenceRegressor``'s MSE on one batch; the loss reads the last state only.
    ``factor``: geometric mean per step of ``grad_h`` from ``t = T`` back to ``t = 1``; ``cell_ratio``:
    ``grad_c[0] / grad_c[-1]`` (LSTM), how much of the last step's cell-state gradient reaches the first step."""

    grad_h: np.ndarray
    grad_c: np.ndarray | None

    @property
    def factor(self) -> float:
        return float((self.grad_h[0] / self.grad_h[-1]) ** (1 / (len(self.grad_h) - 1)))

    @property
    def cell_ratio(self) -> float | None:
        return None if self.grad_c is None else float(self.grad_c[0] / self.grad_c[-1])


def state_gradients(model: SequenceRegressor, x, y) -> StateGradients:
    """Unroll ``model``'s recurrent layer one step at a time on ``x [T, B, I]`` (numpy or tensor) and
    backpropagate the MSE against ``y [B]`` to every state. The model is unchanged (its gradients are cleared)."""
    if not isinstance(model, SequenceRegressor):
        raise TypeError(f"model must be a SequenceRegressor, got {type(model).__name__}")
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.ndim != 3 or y.shape != (x.shape[1],):
        raise ValueError(f"x must be [T, B, I] and y [B], got {tuple(x.shape)} and {tuple(y.shape)}")
    layer, hs, cs = model.recurrent, [], []
    lstm = isinstance(layer, nn.LSTM)
    h = c = torch.zeros(x.shape[1], layer.hidden_size, dtype=x.dtype)
    for x_t in x:
        if lstm:  # written out (torch's fused step hides c_t's path into h_t): gates i, f, g, o
            pre = x_t @ layer.weight_ih_l0.T + layer.bias_ih_l0 + h @ layer.weight_hh_l0.T + layer.bias_hh_l0
            i, f, g, o = pre.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            c.retain_grad()
            cs.append(c)
        else:
            h = layer(x_t[None], h[None])[1][0]
        h.retain_grad()
        hs.append(h)
    nn.functional.mse_loss(model.readout(h).squeeze(-1), y).backward()
    model.zero_grad(set_to_none=True)
    grad_h = np.array([s.grad.norm().item() for s in hs])
    return StateGradients(grad_h, np.array([s.grad.norm().item() for s in cs]) if lstm else None)
