"""L2 / weight decay and inverted dropout (numpy), and two torch experiments on them. Notebook 04.

L2: ``penalty = λ/2 · Σ_l ||W_l||²``, ``∂penalty/∂W_l = λ W_l``, so one SGD step on loss + penalty is
``W ← (1 − ηλ) W − η ∇L``: "weight decay". (Adam divides the whole gradient, penalty included, by its
running RMS, so Adam + L2 is not AdamW's decoupled ``W ← W − ηλW − η·adam(∇L)``.)

Inverted dropout with DROP probability ``p`` (as ``torch.nn.Dropout``; some courses use the keep
probability): ``out = x · m / (1 − p)`` with ``m ~ Bernoulli(1 − p)``, so ``E[out] = x`` and
``Var(out) = x² p / (1 − p)``; at test time the layer is the identity.

Experiments: ``retained_weight_fraction`` (Adam + L2 against AdamW on weight groups whose gradients differ
in scale), ``train_together`` (several small networks trained side by side as one tensor program),
``predict_probabilities`` (one deterministic pass, or the dropout ensemble averaged by sampling) and
``prediction_quality`` (loss, error and confidence on errors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers._validate import check_array, check_choice, check_int, check_real, check_rng


def _check_p(p) -> float:
    p = check_real("p", p, minimum=0.0)
    if p >= 1:
        raise ValueError(f"p (drop probability) must be in [0, 1), got {p}")
    return p


def dropout(x, p: float, rng: np.random.Generator | None, training: bool = True, *, mask=None):
    """Inverted dropout: ``(out, mask)`` with ``mask`` in {0, 1} (float, shaped like ``x``), ``out = x·mask/(1−p)``.

    Identity with a mask of ones when ``training=False`` or ``p == 0`` (no random numbers are drawn then).
    ``mask``: a keep mask to apply again instead of drawing one (0/1 or bool, shaped like ``x``; ``rng`` may
    then be ``None``), e.g. in a gradient check, where every evaluation must see the same mask (notebook 03).
    """
    x = check_array("x", x)
    p = _check_p(p)
    if mask is None:
        rng = check_rng("rng", rng)
    else:
        mask = check_array("mask", mask)
        if mask.shape != x.shape or not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"mask must hold 0s and 1s shaped like x {x.shape}, got shape {mask.shape}")
    if not isinstance(training, bool):
        raise TypeError(f"training must be True or False, got {training!r}")
    if not training or p == 0:
        return x.copy(), np.ones_like(x)
    if mask is None:
        mask = (rng.random(x.shape) >= p).astype(np.float64)
    return x * mask / (1.0 - p), mask


def dropout_backward(dout, mask, p: float):
    """Backward of inverted dropout: the same mask and the same scale, ``dout · mask / (1 − p)``."""
    dout, mask = check_array("dout", dout), check_array("mask", mask)
    if dout.shape != mask.shape:
        raise ValueError(f"mask must be shaped like dout {dout.shape}, got {mask.shape}")
    return dout * mask / (1.0 - _check_p(p))


def _weights(weights) -> list[np.ndarray]:
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError("weights must be a non-empty list of arrays (one per layer)")
    return [check_array(f"weights[{i}]", w) for i, w in enumerate(weights)]


def l2_penalty(weights, lam: float) -> float:
    """``lam / 2 · Σ ||W||²`` over a list of weight arrays (biases are usually left out)."""
    weights = _weights(weights)
    lam = check_real("lam", lam, minimum=0.0)
    return 0.5 * lam * float(sum(np.sum(w**2) for w in weights))


def l2_penalty_grad(weights, lam: float) -> list[np.ndarray]:
    """``[lam · W for W in weights]``: the gradient of ``l2_penalty``."""
    weights = _weights(weights)
    lam = check_real("lam", lam, minimum=0.0)
    return [lam * w for w in weights]


def sgd_weight_decay_step(weights, grads, lr: float, lam: float) -> list[np.ndarray]:
    """One SGD step on loss + L2 penalty: ``W ← (1 − lr·lam)·W − lr·∇L`` (new arrays; inputs untouched).

    The same update as ``torch.optim.SGD(params, lr=lr, weight_decay=lam)``.
    """
    weights, grads = _weights(weights), _weights(grads)
    if [w.shape for w in weights] != [g.shape for g in grads]:
        raise ValueError("grads must have one array per weight, with the same shapes")
    lr = check_real("lr", lr, positive=True)
    lam = check_real("lam", lam, minimum=0.0)
    return [(1.0 - lr * lam) * w - lr * g for w, g in zip(weights, grads)]


_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def retained_weight_fraction(optimizer: str, lam: float, grad_scales, *, lr: float = 1e-2, steps: int = 400,
                             n_weights: int = 1000, generator: torch.Generator) -> np.ndarray:
    """How much of each weight group survives ``steps`` steps of ``optimizer`` with penalty ``lam``.

    Loshchilov & Hutter's setting, reduced to its mechanism: group ``k`` holds ``n_weights`` weights, all
    starting at 1, whose data gradient is pure noise ``s_k · N(0, 1)`` (RMS ``s_k = grad_scales[k]``): the
    data pull the weights nowhere on average, so any shrinkage comes from ``lam``. ``optimizer``:
    ``"adam"`` (``torch.optim.Adam(weight_decay=lam)``, i.e. L2: ``lam·W`` is added to the gradient and goes
    through Adam's division by ``√v̂``), ``"adamw"`` (decoupled: ``W ← (1 − lr·lam) W`` each step) or
    ``"sgd"``. The same ``generator`` state gives every optimizer the same noise: each step draws
    ``[len(grad_scales), n_weights]`` normals at once.

    Returns ``[len(grad_scales)]``: the mean of ``W_end / W_0`` per group (1 = untouched, 0 = gone).
    """
    check_choice("optimizer", optimizer, _OPTIMIZERS)
    lam = check_real("lam", lam, minimum=0.0)
    scales = check_array("grad_scales", grad_scales, ndim=1)
    if scales.size == 0 or np.any(scales <= 0):
        raise ValueError("grad_scales must be a non-empty list of positive gradient RMS values")
    lr = check_real("lr", lr, positive=True)
    steps = check_int("steps", steps, minimum=1)
    n_weights = check_int("n_weights", n_weights, minimum=1)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    # one tensor, a row per group: the optimizers act elementwise, so each row is its own group (one call per step)
    weights = torch.ones(len(scales), n_weights, dtype=torch.float64, requires_grad=True)
    row_scales = torch.as_tensor(scales, dtype=torch.float64)[:, None]
    step = _OPTIMIZERS[optimizer]([weights], lr=lr, weight_decay=lam)
    for _ in range(steps):
        weights.grad = row_scales * torch.randn(weights.shape, generator=generator, dtype=torch.float64)
        step.step()
    return weights.detach().mean(dim=1).numpy()


@dataclass(frozen=True)
class LossCurves:
    """One network's run in ``train_together``: ``loss [steps]``, the full-batch training loss before each step
    (dropout on), and ``val_loss [steps]``, the validation loss in eval mode (dropout off) before each step."""

    loss: np.ndarray
    val_loss: np.ndarray


def _architecture(net) -> list:
    return [(type(m).__name__, [tuple(t.shape) for t in m.parameters(recurse=False)], getattr(m, "p", None))
            for m in net]


def train_together(nets, x, y, *, steps: int, lr: float, weight_decay: float = 0.0, x_val, y_val,
                   rng: np.random.Generator) -> list[LossCurves]:
    """Train K networks of one architecture side by side, as one tensor program: full-batch Adam.

    Each network goes through what ``models.train(net, x, y, steps=steps, lr=lr, optimizer="adam",
    weight_decay=weight_decay, x_val=x_val, y_val=y_val)`` does to it (L2 as Adam's ``weight_decay``; tested
    equal), with two differences: dropout masks come from ``rng`` (keep where ``U ≥ p``, scale ``1/(1 − p)``,
    as ``dropout``), not from torch's global RNG; and no per-layer statistics are recorded. How: layer ``l``'s
    weights of all K networks are stacked into one tensor ``[K, fan_in, fan_out]`` and applied with one batched
    matmul (``torch.baddbmm``); Adam acts elementwise, so one Adam over the stacked tensors is K independent
    Adams, and the summed loss gives each network its own gradient. Per step that is one set of Python calls
    instead of K. The trained parameters are written back into ``nets``.

    ``nets``: ``nn.Sequential`` networks built alike (e.g. by ``models.deep_mlp``: same sizes, activation,
    dropout ``p`` and dtype). ``x [n, in]``, ``y [n]`` int labels, ``x_val [m, in]``, ``y_val [m]``.
    Returns one ``LossCurves`` per network, in order.
    """
    if not isinstance(nets, (list, tuple)) or not nets or not all(isinstance(n, nn.Sequential) for n in nets):
        raise TypeError("nets must be a non-empty list of torch.nn.Sequential networks")
    if any(_architecture(net) != _architecture(nets[0]) for net in nets):
        raise ValueError("nets must share one architecture (module types, layer sizes, dropout p)")
    steps = check_int("steps", steps, minimum=1)
    lr = check_real("lr", lr, positive=True)
    weight_decay = check_real("weight_decay", weight_decay, minimum=0.0)
    rng = check_rng("rng", rng)
    linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
    if not linears[0]:
        raise ValueError("nets must contain nn.Linear layers")
    dtype = linears[0][0].weight.dtype
    data = {}
    for name, inputs, label_name, labels in (("x", x, "y", y), ("x_val", x_val, "y_val", y_val)):
        inputs = torch.as_tensor(check_array(name, inputs, ndim=2), dtype=dtype)
        if inputs.shape[1] != linears[0][0].in_features:
            raise ValueError(f"{name} must have shape [n, {linears[0][0].in_features}], got {tuple(inputs.shape)}")
        labels = np.asarray(labels)
        if labels.shape != (len(inputs),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{label_name} must be {len(inputs)} integer labels, got {labels.dtype} {labels.shape}")
        data[name] = inputs.expand(len(nets), -1, -1), torch.as_tensor(labels).repeat(len(nets))  # [K, n, in], [K·n]
    with torch.no_grad():  # [K, fan_in, fan_out] and [K, 1, fan_out]: y = x @ W.T + b for each network
        weights = [torch.stack([ls[i].weight.T for ls in linears]).requires_grad_() for i in range(len(linears[0]))]
        biases = [torch.stack([ls[i].bias[None] for ls in linears]).requires_grad_() for i in range(len(linears[0]))]

    def losses(inputs, labels, training):  # [K]: each network's mean cross-entropy
        h, layer = inputs, 0
        for module in nets[0]:
            if isinstance(module, nn.Linear):
                h, layer = torch.baddbmm(biases[layer], h, weights[layer]), layer + 1
            elif isinstance(module, nn.Dropout):
                if training and module.p > 0:  # keep where U ≥ p, survivors scaled by 1/(1 − p)
                    keep = rng.random(tuple(h.shape), dtype=np.float32) >= module.p
                    h = h * (torch.from_numpy(keep).to(dtype) / (1.0 - module.p))  # mask·scale: no gradient
            else:  # activations act elementwise, on all K networks at once
                h = module(h)
        per_point = nn.functional.cross_entropy(h.flatten(0, 1), labels, reduction="none")
        return per_point.view(len(nets), -1).mean(dim=1)

    optimizer = torch.optim.Adam(weights + biases, lr=lr, weight_decay=weight_decay)
    loss, val_loss = np.full((len(nets), steps), np.nan), np.full((len(nets), steps), np.nan)
    for step in range(steps):
        with torch.no_grad():
            val_loss[:, step] = losses(*data["x_val"], training=False).numpy()
        optimizer.zero_grad()
        value = losses(*data["x"], training=True)
        loss[:, step] = value.detach().numpy()
        if not np.all(np.isfinite(loss[:, step])):
            raise FloatingPointError(f"a network's loss is not finite at step {step}: use models.train for such runs")
        value.sum().backward()
        optimizer.step()
    with torch.no_grad():
        for k, layers_k in enumerate(linears):
            for layer, w, b in zip(layers_k, weights, biases):
                layer.weight.copy_(w[k].T)
                layer.bias.copy_(b[k, 0])
    return [LossCurves(loss[k], val_loss[k]) for k in range(len(nets))]


def predict_probabilities(model: torch.nn.Module, x, *, mc_samples: int = 0, generator=None) -> np.ndarray:
    """Class probabilities of a (dropout) network: one deterministic pass, or a Monte Carlo ensemble average.

    ``mc_samples = 0``: eval mode, dropout off, i.e. the weight-scaled network (for inverted dropout the
    scaling happened in training). ``mc_samples = k ≥ 1``: Monte Carlo model averaging (Srivastava et al.
    2014, §7.5): the mean softmax of ``k`` passes in train mode, each with fresh masks, i.e. ``k`` thinned
    networks. Masks come from torch's global RNG inside ``torch.random.fork_rng``, seeded from
    ``generator`` (a ``torch.Generator``, required then), so the caller's global RNG is left as it was.
    ``x``: ``[n, in_features]``. Returns ``[n, n_classes]`` float64.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    mc_samples = check_int("mc_samples", mc_samples, minimum=0)
    if mc_samples and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator when mc_samples > 0, got {type(generator).__name__}")
    dtype = next(model.parameters()).dtype
    x = torch.as_tensor(x if torch.is_tensor(x) else check_array("x", x, ndim=2), dtype=dtype)
    was_training = model.training
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        if mc_samples == 0:
            model.eval()
            probabilities = torch.softmax(model(x), dim=1)
        else:
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            model.train()
            probabilities = sum(torch.softmax(model(x), dim=1) for _ in range(mc_samples)) / mc_samples
    model.train(was_training)
    return probabilities.double().numpy()


def prediction_quality(probabilities, y) -> dict:
    """``{"loss", "error", "confidence_on_errors"}`` of predicted class probabilities against labels.

    ``loss``: mean cross-entropy ``−mean log p[y]``; ``error``: share of rows whose arg-max is not ``y``;
    ``confidence_on_errors``: mean top probability on those rows (NaN if none): how sure the model is when
    it is wrong, a simple view of calibration. ``probabilities [n, n_classes]``, ``y [n]`` int labels.
    """
    probabilities = check_array("probabilities", probabilities, ndim=2)
    y = np.asarray(y)
    if y.shape != (probabilities.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be {probabilities.shape[0]} integer labels, got {y.dtype} of shape {y.shape}")
    if y.min() < 0 or y.max() >= probabilities.shape[1]:
        raise ValueError(f"y must hold labels in [0, {probabilities.shape[1]}), got {y.min()}..{y.max()}")
    chosen = probabilities[np.arange(len(y)), y]
    wrong = probabilities.argmax(axis=1) != y
    confidence = float(probabilities.max(axis=1)[wrong].mean()) if wrong.any() else float("nan")
    return {"loss": float(-np.mean(np.log(np.maximum(chosen, 1e-300)))), "error": float(wrong.mean()),
            "confidence_on_errors": confidence}
