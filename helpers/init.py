"""Variance-preserving initialization: the numbers torch's initializers use, and samplers. Notebook 02.

For ``z = W x`` with ``W`` of shape ``[fan_out, fan_in]`` (torch layout), independent zero-mean
weights and inputs independent of them:

    Var(z_i) = fan_in · Var(w) · E[x²]          (= fan_in Var(w) Var(x) for zero-mean x)

Keeping activations' variance asks for ``Var(w) = 1/fan_in``; keeping back-propagated gradients'
variance asks for ``Var(w) = 1/fan_out``. Glorot & Bengio (2010) compromise on
``Var(w) = 2/(fan_in + fan_out)``; He et al. (2015) use ``2/fan_in`` for ReLU, which halves ``E[x²]``.
A gain multiplies the standard deviation to make up for the activation (``calculate_gain``).
A uniform ``U(-b, b)`` has variance ``b²/3``, so ``bound = sqrt(3) · std``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from helpers._validate import check_array, check_choice, check_int, check_real, check_rng

LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
NONLINEARITIES = (*LINEAR_FNS, "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain torch recommends for ``nonlinearity`` (same values as ``torch.nn.init.calculate_gain``).

    linear and conv variants, sigmoid: 1; tanh: 5/3; relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + slope²)) with ``param`` the negative slope (default 0.01);
    selu: 3/4 (chosen empirically in torch, for self-normalizing networks).
    """
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4
    if param is None:
        slope = 0.01
    elif isinstance(param, bool) or not isinstance(param, numbers.Real):
        raise ValueError(f"param (the negative slope of leaky_relu) must be a number, got {param!r}")
    else:
        slope = check_real("param", param)
    return math.sqrt(2.0 / (1 + slope**2))


def _fans(fan_in, fan_out):
    return check_int("fan_in", fan_in, minimum=1), check_int("fan_out", fan_out, minimum=1)


def xavier_std(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Glorot's normal std: ``gain · sqrt(2 / (fan_in + fan_out))`` (``torch.nn.init.xavier_normal_``)."""
    fan_in, fan_out = _fans(fan_in, fan_out)
    return check_real("gain", gain, positive=True) * math.sqrt(2.0 / (fan_in + fan_out))


def xavier_bound(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Glorot's uniform limit ``b``, ``U(-b, b)``: ``gain · sqrt(6 / (fan_in + fan_out))`` (``xavier_uniform_``)."""
    return math.sqrt(3.0) * xavier_std(fan_in, fan_out, gain)


def kaiming_std(fan: int, nonlinearity: str = "relu", a: float = 0.0) -> float:
    """He's normal std: ``calculate_gain(nonlinearity, a) / sqrt(fan)`` (``torch.nn.init.kaiming_normal_``).

    ``fan`` is fan_in (keeps the forward variance, torch's default mode) or fan_out (the backward one);
    ``a`` is the negative slope, used only for ``"leaky_relu"``.
    """
    fan = check_int("fan", fan, minimum=1)
    check_real("a", a)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_bound(fan: int, nonlinearity: str = "relu", a: float = 0.0) -> float:
    """He's uniform limit: ``sqrt(3) · kaiming_std`` = ``gain · sqrt(3 / fan)`` (``kaiming_uniform_``)."""
    return math.sqrt(3.0) * kaiming_std(fan, nonlinearity, a)


SCHEMES = ("standard", "fan_in", "fan_out", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
           "orthogonal", "constant")


def weight_std(scheme: str, fan_in: int, fan_out: int, *, gain: float = 1.0, nonlinearity: str = "relu") -> float:
    """The standard deviation of one weight under ``scheme`` (orthogonal: ``gain/sqrt(max(fan_in, fan_out))``).

    standard: ``U(±1/sqrt(fan_in))`` (Glorot & Bengio's "standard" init, torch's ``nn.Linear`` default),
    std ``1/sqrt(3 fan_in)``; fan_in / fan_out: ``N(0, gain²/fan)``; xavier_*: Glorot with ``gain``;
    kaiming_*: He for ``nonlinearity`` (fan_in mode); constant: 0 (every weight the same).
    """
    check_choice("scheme", scheme, SCHEMES)
    fan_in, fan_out = _fans(fan_in, fan_out)
    gain = check_real("gain", gain, positive=True)
    if scheme == "standard":
        return 1.0 / math.sqrt(3 * fan_in)
    if scheme == "fan_in":
        return gain / math.sqrt(fan_in)
    if scheme == "orthogonal":
        return gain / math.sqrt(max(fan_in, fan_out))
    if scheme == "fan_out":
        return gain / math.sqrt(fan_out)
    if scheme.startswith("xavier"):
        return xavier_std(fan_in, fan_out, gain)
    if scheme.startswith("kaiming"):
        return kaiming_std(fan_in, nonlinearity)
    return 0.0


def sample_weights(
    widths, scheme: str, rng: np.random.Generator, *, gain: float = 1.0, nonlinearity: str = "relu"
) -> list[np.ndarray]:
    """Weights ``W_l`` of shape ``[widths[l+1], widths[l]]`` for a chain of layers, drawn by ``scheme``.

    Uniform schemes draw ``U(-b, b)`` with ``b = sqrt(3) · weight_std``; normal ones ``N(0, weight_std²)``;
    ``"orthogonal"``: ``gain`` times a Haar-random matrix with orthonormal rows or columns (whichever
    are fewer), as ``torch.nn.init.orthogonal_``;
    ``"constant"``: every entry ``gain / fan_in``.
    """
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__") or len(widths) < 2:
        raise TypeError("widths must be a sequence of at least two layer widths, e.g. [784, 256, 10]")
    widths = [check_int(f"widths[{i}]", w, minimum=1) for i, w in enumerate(widths)]
    rng = check_rng("rng", rng)
    weights = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        std = weight_std(scheme, fan_in, fan_out, gain=gain, nonlinearity=nonlinearity)
        if scheme in ("standard", "xavier_uniform", "kaiming_uniform"):
            bound = math.sqrt(3.0) * std
            weights.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)))
        elif scheme == "orthogonal":
            g = rng.standard_normal((max(fan_out, fan_in), min(fan_out, fan_in)))
            q, r = np.linalg.qr(g)
            q *= np.sign(np.diag(r))  # makes the distribution Haar
            weights.append(gain * (q if fan_out >= fan_in else q.T))
        elif scheme == "constant":
            weights.append(np.full((fan_out, fan_in), gain / fan_in))
        else:
            weights.append(rng.normal(0.0, std, size=(fan_out, fan_in)))
    return weights


def _check_chain(weights) -> list[np.ndarray]:
    """``weights`` as a list of 2-D float arrays whose shapes chain: ``W_{l+1}.shape[1] == W_l.shape[0]``."""
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError("weights must be a non-empty list of 2-D arrays [fan_out, fan_in], first layer first")
    weights = [check_array(f"weights[{i}]", w, ndim=2) for i, w in enumerate(weights)]
    for i in range(1, len(weights)):
        if weights[i].shape[1] != weights[i - 1].shape[0]:
            raise ValueError(f"weights[{i}] has fan_in {weights[i].shape[1]}, but weights[{i - 1}] "
                             f"has fan_out {weights[i - 1].shape[0]}")
    return weights


def log_singular_values(weights, *, max_sweeps: int = 300, tol: float = 1e-7) -> np.ndarray:
    """Natural logs of the singular values of ``P = W_L ⋯ W_1``, without ever forming ``P``.

    Forming ``P`` and calling ``svd`` loses every singular value below about ``1e-16 · σ_max``
    (float64 round-off). Here the product is carried as ``Q · R`` (orthonormal ``Q``, triangular
    ``R``), re-factorized after each layer, so that ``log σ`` is a *sum* of ``log |diag R_l|``:
    orthogonal (subspace) iteration on ``PᵀP`` run through the layers, forward/backward sweeps until
    no log changes by more than ``tol`` (at most ``max_sweeps``). Well-separated singular values
    (a deep product) converge in tens of sweeps; close ones more slowly: a pair 2 % apart in a
    depth-50 product of 64 × 64 Gaussians needed over 100 (60 left it off by 5e-3).
    Returns the ``min`` over all layer sizes (the most there can be that are nonzero) logs, largest first.
    """
    weights = _check_chain(weights)
    max_sweeps = check_int("max_sweeps", max_sweeps, minimum=1)
    tol = check_real("tol", tol, positive=True)
    backward = [w.T for w in weights[::-1]]
    rank = min(min(w.shape) for w in weights)  # P has at most this many nonzero singular values
    q = np.eye(weights[0].shape[1])[:, :rank]
    logs = np.full(rank, np.inf)
    for _ in range(max_sweeps):
        previous, logs = logs, np.zeros(rank)
        for w in weights:  # P q = Q_L R_L ⋯ R_1
            q, r = np.linalg.qr(w @ q)
            logs += np.log(np.abs(np.diag(r)))
        for w in backward:  # Pᵀ Q_L: the next sweep starts from the right singular directions so far
            q, _ = np.linalg.qr(w @ q)
        if np.max(np.abs(logs - previous)) < tol:
            break
    return np.sort(logs)[::-1]


@dataclass(frozen=True)
class LinearTask:
    """A regression task ``y ≈ P x`` by its moments (all that a linear model's squared loss needs).

    ``input_cov = E[x xᵀ]`` ``[d_in, d_in]``, ``cross_cov = E[y xᵀ]`` ``[d_out, d_in]``,
    ``output_moment = E[||y||²]``; the loss of ``P`` is ``½ E||y − P x||²``.
    """

    input_cov: np.ndarray
    cross_cov: np.ndarray
    output_moment: float

    @classmethod
    def from_data(cls, x, y) -> LinearTask:
        """Moments of the rows of ``x [n, d_in]`` and ``y [n, d_out]``."""
        x, y = check_array("x", x, ndim=2), check_array("y", y, ndim=2)
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same number of rows, got {len(x)} and {len(y)}")
        return cls(x.T @ x / len(x), y.T @ x / len(x), float(np.mean(np.sum(y**2, axis=1))))

    def loss(self, product) -> float:
        """``½ E||y − P x||² = ½ tr(P Σxx Pᵀ) − tr(Σyx Pᵀ) + ½ E||y||²``."""
        return float(0.5 * np.sum((product @ self.input_cov) * product) - np.sum(self.cross_cov * product)
                     + 0.5 * self.output_moment)

    def best_loss(self) -> float:
        """The least-squares optimum over all linear maps (what a deep linear net can reach at best)."""
        return self.loss(np.linalg.lstsq(self.input_cov, self.cross_cov.T, rcond=None)[0].T)


def train_deep_linear(weights, task: LinearTask, *, lr: float, max_steps: int, target: float | None = None):
    """Full-batch gradient descent on ``task.loss(W_L ⋯ W_1)`` (a deep linear network, no biases).

    ``dL/dW_l = (W_L ⋯ W_{l+1})ᵀ (P Σxx − Σyx) (W_{l−1} ⋯ W_1)ᵀ`` (Saxe et al. 2014, eq. 13).
    Stops after ``max_steps`` steps, at the first loss ``<= target``, or when the loss stops being
    finite or exceeds 1e6 (diverged). ``weights`` are not modified. Returns the loss before each
    step taken plus the last one, ``[steps_taken + 1]``.
    """
    weights = [w.copy() for w in _check_chain(weights)]
    if not isinstance(task, LinearTask):
        raise TypeError(f"task must be a LinearTask, got {type(task).__name__}")
    lr = check_real("lr", lr, positive=True)
    max_steps = check_int("max_steps", max_steps, minimum=0)
    target = -math.inf if target is None else check_real("target", target)
    losses = []
    for _ in range(max_steps + 1):
        below = [np.eye(weights[0].shape[1])]  # below[l] = W_{l-1} ⋯ W_1
        for w in weights[:-1]:
            below.append(w @ below[-1])
        product = weights[-1] @ below[-1]
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run may overflow: stop below
            losses.append(task.loss(product))
        if len(losses) > max_steps or losses[-1] <= target or not losses[-1] < 1e6:
            break
        upstream = product @ task.input_cov - task.cross_cov  # (W_L ⋯ W_{l+1})ᵀ G, built downwards
        for layer in range(len(weights) - 1, -1, -1):
            grad = upstream @ below[layer].T
            upstream = weights[layer].T @ upstream
            weights[layer] -= lr * grad
    return np.array(losses)


def steps_to_loss(weights, task: LinearTask, *, lrs, target: float, max_steps: int):
    """Fewest full-batch steps of ``train_deep_linear`` to reach ``loss <= target``, over learning rates ``lrs``.

    Saxe et al. (2014) tuned the rate separately for each depth and init and reported the fastest;
    so does this. Each run is cut off at the best count found so far (it can only lose).
    Returns ``(steps, lr)``, or ``(None, None)`` if no rate gets there within ``max_steps``.
    """
    lrs = check_array("lrs", lrs, ndim=1)
    if lrs.size == 0 or np.any(lrs <= 0):
        raise ValueError("lrs must be a non-empty list of positive learning rates")
    best_steps, best_lr = None, None
    for lr in sorted(lrs, reverse=True):
        cap = max_steps if best_steps is None else best_steps - 1
        if cap < 0:
            break
        losses = train_deep_linear(weights, task, lr=float(lr), max_steps=cap, target=target)
        if losses[-1] <= target:
            best_steps, best_lr = len(losses) - 1, float(lr)
    return best_steps, best_lr


def train_side_by_side(nets, x, y, *, lrs, steps: int, batch_size: int | None = None, generator=None,
                       x_val=None, y_val=None) -> list:
    """Train K MLPs of the same shape with plain SGD on the same minibatches, as one batched program.

    The same steps as ``models.train(net, x, y, lr=lrs[k], ...)`` for each net (cross-entropy, no momentum,
    one ``torch.randperm`` draw of ``generator`` per step, shared by all nets), but the K nets' layers are
    stacked (``W_l`` ``[K, fan_out, fan_in]``, ``torch.baddbmm``) and no hooks run: one step costs about as
    many operations as one net's, which is what a small net's time is made of. The unit tests check it
    against ``models.train``: equal in float64; in float32 the same steps up to rounding (the stacked sums
    run in another order), which compounds: at lr 0.05 rounding alone changes a 30-layer net's trajectory
    after a few dozen steps. ``nets``: ``models.deep_mlp`` nets (Linear and elementwise activation modules
    only); their weights are set to the trained ones. Returns one ``models.TrainHistory`` per net.
    """
    import torch

    from helpers import models

    if not isinstance(nets, (list, tuple)) or not nets:
        raise TypeError("nets must be a non-empty list of models.deep_mlp networks")
    shapes = [[(type(m), tuple(m.weight.shape) if isinstance(m, torch.nn.Linear) else None) for m in net]
              for net in nets]
    if any(s != shapes[0] for s in shapes) or not all(t in (torch.nn.Linear, *models.ACTIVATIONS.values())
                                                      for t, _ in shapes[0]):
        raise ValueError("nets must be deep_mlp networks of one shape, without dropout")
    lrs = check_array("lrs", lrs, ndim=1)
    if lrs.size != len(nets) or np.any(lrs <= 0):
        raise ValueError(f"lrs must hold one positive learning rate per net ({len(nets)}), got {lrs}")
    steps = check_int("steps", steps, minimum=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    layers = [models.linear_layers(net) for net in nets]
    dtype = layers[0][0].weight.dtype
    stacked = list(zip(*layers))  # per layer, the K nets' nn.Linear
    weights = [torch.stack([m.weight.detach() for m in same]).requires_grad_() for same in stacked]
    biases = [torch.stack([m.bias.detach() for m in same])[:, None].requires_grad_() for same in stacked]
    activations = [m for m in nets[0] if not isinstance(m, torch.nn.Linear)]
    x, y = torch.as_tensor(check_array("x", x, ndim=2), dtype=dtype), torch.as_tensor(check_array("y", y, ndim=1)).long()
    if len(y) != len(x):
        raise ValueError(f"y must have {len(x)} labels like x's rows, got {len(y)}")
    if x_val is not None:
        x_val, y_val = torch.as_tensor(check_array("x_val", x_val, ndim=2), dtype=dtype), torch.as_tensor(y_val).long()
    k, lr = len(nets), torch.as_tensor(lrs, dtype=dtype)[:, None, None]

    def losses(inputs, labels):  # [K] mean cross-entropy of each net
        h = inputs.expand(k, -1, -1)
        for w, b, act in zip(weights, biases, [*activations, None]):
            h = torch.baddbmm(b, h, w.transpose(1, 2))
            h = act(h) if act is not None else h
        return torch.nn.functional.cross_entropy(h.flatten(0, 1), labels.repeat(k), reduction="none").view(k, -1).mean(1)

    initial = [w.detach().clone() for w in weights]
    record = {name: [] for name in ("loss", "val_loss", "grad_norms", "weight_norms", "total_grad_norm")}
    for _ in range(steps):
        with torch.no_grad():
            record["val_loss"].append(losses(x_val, y_val) if x_val is not None
                                      else torch.full((k,), math.nan, dtype=dtype))
        index = slice(None) if batch_size is None else torch.randperm(len(x), generator=generator)[:batch_size]
        loss = losses(x[index], y[index])
        if not torch.isfinite(loss).all():
            raise ValueError("a loss became non-finite: train diverging runs with models.train")
        loss.sum().backward()  # the nets share no parameter: each gets its own gradient
        with torch.no_grad():
            norms = lambda tensors: torch.stack([torch.linalg.vector_norm(t, dim=(1, 2)) for t in tensors], 1)  # noqa: E731
            grad_norms, bias_norms = norms([w.grad for w in weights]), norms([b.grad for b in biases])
            record["total_grad_norm"].append(torch.sqrt((grad_norms**2).sum(1) + (bias_norms**2).sum(1)))
            record["grad_norms"].append(grad_norms)
            record["weight_norms"].append(norms(weights))
            record["loss"].append(loss.detach())
            for p in weights + biases:
                p -= lr * p.grad
                p.grad = None
    with torch.no_grad():
        for same, w, b in zip(stacked, weights, biases):
            for linear, w_k, b_k in zip(same, w, b):
                linear.weight.copy_(w_k)
                linear.bias.copy_(b_k[0])
    arrays = {name: torch.stack(rows, 1).double().numpy() for name, rows in record.items()}  # [K, steps, ...]
    change = [[((w[j] - w0[j]).norm() / w0[j].norm()).item() for w, w0 in zip(weights, initial)] for j in range(k)]
    return [models.TrainHistory(arrays["loss"][j], arrays["grad_norms"][j], np.array(change[j]), None,
                                arrays["weight_norms"][j], arrays["val_loss"][j], arrays["total_grad_norm"][j])
            for j in range(k)]
