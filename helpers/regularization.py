"""L2 / weight decay and inverted dropout, in numpy. Notebook 04.

L2: ``penalty = λ/2 · Σ_l ||W_l||²``, ``∂penalty/∂W_l = λ W_l``, so one SGD step on loss + penalty is
``W ← (1 − ηλ) W − η ∇L``: "weight decay". (Adam divides the whole gradient, penalty included, by its
running RMS, so Adam + L2 is not AdamW's decoupled ``W ← W − ηλW − η·adam(∇L)``.)

Inverted dropout with DROP probability ``p`` (as ``torch.nn.Dropout``; some courses use the keep
probability): ``out = x · m / (1 − p)`` with ``m ~ Bernoulli(1 − p)``, so ``E[out] = x`` and
``Var(out) = x² p / (1 − p)``; at test time the layer is the identity.
"""

from __future__ import annotations

import numpy as np

from helpers._validate import check_array, check_real, check_rng


def _check_p(p) -> float:
    p = check_real("p", p, minimum=0.0)
    if p >= 1:
        raise ValueError(f"p (drop probability) must be in [0, 1), got {p}")
    return p


def dropout(x, p: float, rng: np.random.Generator, training: bool = True):
    """Inverted dropout: ``(out, mask)`` with ``mask`` in {0, 1} (float, shaped like ``x``), ``out = x·mask/(1−p)``.

    Identity with a mask of ones when ``training=False`` or ``p == 0`` (no random numbers are drawn then).
    """
    x = check_array("x", x)
    p = _check_p(p)
    rng = check_rng("rng", rng)
    if not isinstance(training, bool):
        raise TypeError(f"training must be True or False, got {training!r}")
    if not training or p == 0:
        return x.copy(), np.ones_like(x)
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
