"""Deep plain and residual MLPs with optional BatchNorm/LayerNorm, and their per-layer profiles at init. Notebook 06.

One block maps ``h [batch, width]`` to the next hidden state:

    plain:     h ← F(h)
    residual:  h ← h + α · F(h)

with ``F(h) = W · ReLU(N(h))`` (``order="pre"``: the branch ends with a Linear layer, as in He et
al. 2016's pre-activation ResNet) or ``F(h) = ReLU(N(W h))`` (``order="post"``: it ends with ReLU),
``N`` one of identity, BatchNorm, LayerNorm. A stem ``Linear(in, width)`` comes first and a head
``Linear(width, out)`` last. The Jacobian of a residual block is ``I + α ∂F/∂h``: the identity adds 1
to every eigenvalue of the block's own Jacobian. Without normalization each unscaled block adds its
own variance: ``Var(h_{l+1}) = Var(h_l) · (1 + α² · gain)`` with ``gain = Var(F(h)) / Var(h)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers._validate import check_array, check_choice, check_int, check_real

NORMS = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
INITS = ("default", "kaiming")


class Block(nn.Module):
    """``F(h)`` (plain) or ``h + α F(h)`` (residual); see the module docstring. ``extra`` is inserted after ``N``."""

    def __init__(self, width: int, *, norm: str, residual: bool, alpha: float, order: str, dtype, extra=None,
                 learnable_alpha: bool = False):
        super().__init__()
        self.linear = nn.Linear(width, width, dtype=dtype)
        self.norm = nn.Identity() if NORMS[norm] is None else NORMS[norm](width, dtype=dtype)
        self.extra = extra if extra is not None else nn.Identity()
        self.residual, self.order = residual, order
        # SkipInit/ReZero: α is a learnable scalar (a parameter); otherwise a fixed float
        self.alpha = nn.Parameter(torch.tensor(float(alpha), dtype=dtype)) if learnable_alpha else alpha

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        if self.order == "pre":
            return self.linear(torch.relu(self.extra(self.norm(h))))
        return torch.relu(self.extra(self.norm(self.linear(h))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.alpha * self.branch(h) if self.residual else self.branch(h)


class DeepNet(nn.Module):
    """``head(block_L(... block_1(stem(x))))``; ``blocks`` is an ``nn.ModuleList`` of ``Block``."""

    def __init__(self, stem: nn.Linear, blocks: list[Block], head: nn.Linear):
        super().__init__()
        self.stem, self.blocks, self.head = stem, nn.ModuleList(blocks), head

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[h_0, h_1, ..., h_L]``: the stem's output and every block's output."""
        states = [self.stem(x)]
        for block in self.blocks:
            states.append(block(states[-1]))
        return states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x)[-1])


def deep_net(in_features: int, width: int, depth: int, out_features: int, *, norm: str = "none",
             residual: bool = False, alpha: float = 1.0, order: str = "pre", init: str = "default",
             zero_init_last: bool = False, rezero: bool = False, generator: torch.Generator | None = None,
             dtype: torch.dtype = torch.float64, noise=None) -> DeepNet:
    """A ``DeepNet`` of ``depth`` blocks of ``width`` units.

    Args:
        norm: ``"none"``, ``"batch"`` or ``"layer"`` (``N`` inside every block; γ = 1, β = 0).
        residual, alpha: ``h + alpha · F(h)`` instead of ``F(h)``.
        order: ``"pre"`` (branch ends with its Linear layer) or ``"post"`` (ends with ReLU).
        init: ``"default"`` (``nn.Linear``'s ``U(±1/√fan_in)`` for W and b) or ``"kaiming"``
            (``N(0, 2/fan_in)``, zero bias, in every Linear layer incl. stem and head).
        zero_init_last: the block's Linear weights and bias start at zero (Fixup's zero-initialized last
            layer of the branch: ``F = 0`` at init in ``order="pre"``; the block is then the identity, and
            W still gets a gradient).
        rezero: SkipInit/ReZero: ``h + α F(h)`` with ``α`` a learnable scalar per block, initialised to 0
            (``alpha`` is ignored); the block is the identity at init and only ``α`` gets a gradient.
            Needs ``residual=True``.
        noise: optional callable ``() -> nn.Module`` inserted after ``N`` in every block (e.g. ``ShiftNoise``).
    """
    in_features, width = check_int("in_features", in_features, minimum=1), check_int("width", width, minimum=1)
    depth, out_features = check_int("depth", depth, minimum=1), check_int("out_features", out_features, minimum=1)
    check_choice("norm", norm, NORMS)
    check_choice("order", order, ("pre", "post"))
    check_choice("init", init, INITS)
    alpha = check_real("alpha", alpha, minimum=0.0)
    for name, flag in (("residual", residual), ("zero_init_last", zero_init_last), ("rezero", rezero)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if rezero and not residual:
        raise ValueError("rezero=True needs residual=True (α scales a residual branch)")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    stem = nn.Linear(in_features, width, dtype=dtype)
    blocks = [Block(width, norm=norm, residual=residual, alpha=0.0 if rezero else alpha, order=order, dtype=dtype,
                    extra=None if noise is None else noise(), learnable_alpha=rezero) for _ in range(depth)]
    head = nn.Linear(width, out_features, dtype=dtype)
    with torch.no_grad():
        for layer in [stem, *(b.linear for b in blocks), head]:
            if init == "default":
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
            else:
                layer.weight.normal_(0.0, math.sqrt(2 / layer.in_features), generator=generator)
                layer.bias.zero_()
        if zero_init_last:
            for block in blocks:
                block.linear.weight.zero_()
                block.linear.bias.zero_()
    return DeepNet(stem, blocks, head)


@dataclass(frozen=True)
class Profile:
    """One forward/backward pass through a ``DeepNet``, per hidden state ``h_0..h_L`` (``[L+1]`` each).

    ``forward_var``: variance over the batch of each unit of ``h_l``, averaged over units;
    ``second_moment``: ``mean(h_l²)``; ``grad_norm``: ``||dL/dh_l||``;
    ``weight_grad_norm [L]``: ``||dL/dW||`` of each block's Linear layer; ``loss``: the loss value.
    """

    forward_var: np.ndarray
    second_moment: np.ndarray
    grad_norm: np.ndarray
    weight_grad_norm: np.ndarray
    loss: float


def profile(model: DeepNet, x, y) -> Profile:
    """Run ``model`` on ``x [batch, in]`` with cross-entropy against int labels ``y [batch]`` and record a ``Profile``.

    Parameters' ``.grad`` are not touched (gradients come from ``torch.autograd.grad``).
    """
    if not isinstance(model, DeepNet):
        raise TypeError(f"model must be a DeepNet (from deep_net), got {type(model).__name__}")
    dtype = model.stem.weight.dtype
    x = torch.as_tensor(x if torch.is_tensor(x) else check_array("x", x, ndim=2), dtype=dtype)
    y = torch.as_tensor(y if torch.is_tensor(y) else np.asarray(y), dtype=torch.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [batch, in] and y [batch] labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    states = model.hidden(x)
    loss = nn.functional.cross_entropy(model.head(states[-1]), y)
    weights = [block.linear.weight for block in model.blocks]
    grads = torch.autograd.grad(loss, states + weights)
    states = [h.detach() for h in states]
    return Profile(
        forward_var=np.array([h.var(dim=0, unbiased=False).mean().item() for h in states]),
        second_moment=np.array([(h**2).mean().item() for h in states]),
        grad_norm=np.array([g.norm().item() for g in grads[: len(states)]]),
        weight_grad_norm=np.array([g.norm().item() for g in grads[len(states):]]),
        loss=loss.item(),
    )


def per_layer_factor(values, *, skip: int = 0) -> float:
    """Geometric-mean factor per layer of ``values [n]`` from index ``skip`` to the end, by a least-squares
    fit of ``log(values)`` against the layer index (robust to one noisy layer). Returns ``exp(slope)``."""
    values = check_array("values", values, ndim=1)
    skip = check_int("skip", skip, minimum=0)
    if len(values) - skip < 2 or np.any(values[skip:] <= 0):
        raise ValueError("values needs at least 2 positive entries after skip")
    slope = np.polyfit(np.arange(len(values) - skip), np.log(values[skip:]), 1)[0]
    return float(np.exp(slope))


def predicted_variance(depth: int, alpha: float, gain: float) -> np.ndarray:
    """Unnormalized residual stack: ``Var(h_l) / Var(h_0) = (1 + α² gain)^l`` for ``l = 0..depth``."""
    depth = check_int("depth", depth, minimum=0)
    alpha, gain = check_real("alpha", alpha, minimum=0.0), check_real("gain", gain, minimum=0.0)
    return (1 + alpha**2 * gain) ** np.arange(depth + 1)


def transformer_grad_norms(depth: int, *, norm_first: bool, init: str, generator: torch.Generator,
                           d_model: int = 64, nhead: int = 4, dim_feedforward: int = 128, seq_len: int = 16,
                           batch: int = 8) -> np.ndarray:
    """``||dL/dW||`` of each layer's second feed-forward matrix (``linear2``) at init, ``[depth]`` (0 = input side).

    A stack of ``depth`` ``nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0,
    norm_first=...)``; Pre-LN stacks get a final ``LayerNorm`` (as ``nn.Transformer`` and Xiong et al.
    do). ``init="default"``: the bare layers' own init; ``init="xavier"``: ``xavier_uniform_`` on every
    matrix, as ``nn.Transformer._reset_parameters`` does. Input ``N(0, 1)`` tokens; loss: mean squared
    error of a fixed random linear readout of every token against ``N(0, 1)`` targets.
    """
    depth = check_int("depth", depth, minimum=1)
    check_choice("init", init, ("default", "xavier"))
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    with torch.random.fork_rng(devices=[]):  # the layers' own init draws from torch's global RNG: seed a copy of it
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        layers = [nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0, batch_first=True,
                                             norm_first=norm_first, dtype=torch.float64) for _ in range(depth)]
    final = nn.LayerNorm(d_model, dtype=torch.float64) if norm_first else nn.Identity()
    if init == "xavier":
        with torch.no_grad():
            for p in (p for layer in layers for p in layer.parameters() if p.dim() > 1):
                nn.init.xavier_uniform_(p, generator=generator)
    x = torch.randn(batch, seq_len, d_model, generator=generator, dtype=torch.float64)
    readout = torch.randn(d_model, 1, generator=generator, dtype=torch.float64) / math.sqrt(d_model)
    target = torch.randn(batch, seq_len, 1, generator=generator, dtype=torch.float64)
    h = x
    for layer in layers:
        h = layer(h)
    loss = nn.functional.mse_loss(final(h) @ readout, target)
    grads = torch.autograd.grad(loss, [layer.linear2.weight for layer in layers])
    return np.array([g.norm().item() for g in grads])


def relu_backward_norms(width: int, depth: int, n_nets: int, generator: torch.Generator, *,
                        dtype: torch.dtype = torch.float64) -> np.ndarray:
    """``||dL/dh_l||`` for ``l = 0..depth`` in ``n_nets`` independent He-initialized ReLU MLPs, ``[n_nets, depth + 1]``.

    Net ``k`` maps a random unit input ``h_0`` through ``h_l = ReLU(W_l h_{l-1})``, ``W_l ~ N(0, 2/width)``
    (``width × width``); the loss is ``<v, h_L>`` with a random unit ``v``, so column ``depth`` is 1 and
    column 0 is ``||dL/dx||``. Each layer multiplies ``E||dL/dh||²`` by exactly 1 on average, whatever the
    width; the spread of ``log ||dL/dx||`` over nets grows with ``depth / width`` (Hanin 2018).
    ``dtype``: of the draws and the arithmetic (float32 is ample for these statistics, and draws 3x faster);
    the result is float64.
    """
    width, depth = check_int("width", width, minimum=1), check_int("depth", depth, minimum=1)
    n_nets = check_int("n_nets", n_nets, minimum=2)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    h = torch.randn(n_nets, width, 1, generator=generator, dtype=dtype)
    h = h / h.norm(dim=1, keepdim=True)
    weights, masks = [], []
    for _ in range(depth):
        weights.append(torch.randn(n_nets, width, width, generator=generator, dtype=dtype) * math.sqrt(2 / width))
        z = weights[-1] @ h
        masks.append(z > 0)
        h = torch.relu(z)
    g = torch.randn(n_nets, width, 1, generator=generator, dtype=dtype)
    norms = [torch.ones(n_nets, dtype=dtype)]
    g = g / g.norm(dim=1, keepdim=True)
    for weight, mask in zip(reversed(weights), reversed(masks)):
        g = weight.transpose(1, 2) @ (g * mask)
        norms.append(g.norm(dim=(1, 2)))
    return torch.stack(norms[::-1], dim=1).double().numpy()
