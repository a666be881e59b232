"""Broken training runs for notebook 08: a small classifier with exactly one defect, and the fixes.

A *run* is everything a training script fixes before the loop: data (``x [n, 40]`` float32, ``y [n]``), a
model recipe (depth, width, activation, weight scale, bias), the loss function, the optimizer (SGD with
momentum 0.9, batch 64) and a batch order; all drawn from ``seed``. ``build(defect, seed)`` makes the
healthy run (``defect=None``) or the same run with one change (``DEFECTS``); ``mystery(case, seed)`` hides
which change behind a case letter: the defect is drawn from a permutation seeded by ``seed``, so the same
letter hides different defects under different seeds. ``train(run, fix=...)`` trains it for ``STEPS`` steps
under ``monitor.watch`` with one of ``FIXES`` applied, and returns the losses and the monitor's log.

The data (``make_task``): 10 classes in 40 dimensions, each class a Gaussian blob around its own random
centre (``x = mu_y + noise``), standardized; generated in milliseconds (MNIST-1D, used in 02 and 05, takes
about 4 s of CPU to generate, a third of this notebook's time budget).

The healthy run: 8 ReLU layers of 32, He init (N(0, 2/fan_in)), zero biases, lr 0.03, 40 steps, ``F.cross_entropy``.
Defects (each one change to it): sigmoid instead of ReLU (gradients vanish); a learning rate 10,000x too
small; hidden biases at -3 (ReLUs dead from the start); training labels shuffled; weights
3.5/sqrt(fan_in) in the ReLU net (gradients explode); a hand-written cross-entropy,
``-sum(onehot * log(softmax(z)))`` in float16 (see ``handwritten_loss``); three NaN entries in the inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers import monitor
from helpers._validate import check_choice, check_int
from helpers.seeding import section_generator, section_rng

DEFECTS = ("vanishing", "small_lr", "dead", "labels", "exploding", "unsafe_loss", "bad_input")
FIXES = ("init", "normalization", "residual", "clip", "lower_lr", "raise_lr", "warmup", "stable_loss", "clean_data")
CASES = ("A", "B", "C", "D", "E", "F", "G")
STEPS, BATCH, DEPTH, WIDTH, N_CLASSES, N_TRAIN, N_FEATURES = 40, 64, 8, 32, 10, 2000, 40
LAST = 10  # the final loss is the mean over the last LAST steps
TRAINS_BELOW = 1.9  # final loss; ln(10) = 2.30 is chance
HEALTHY_LR, CLIP_NORM, WARMUP_STEPS = 0.03, 1.0, 20
SMALL_LR = 1e-4  # the small_lr defect: HEALTHY_LR x 1e-4; the raise_lr fix multiplies by 1e4
CENTRE_STD = 1.2  # class centres ~N(0, 1.2^2) per feature, noise N(0, 1)


@dataclass(frozen=True, repr=False)
class Run:
    """One training run's recipe and data. ``x``/``y``: training data; ``order [STEPS, BATCH]``: example
    indices per step; ``loss_fn(logits, y)``; ``lr``; the model's recipe stays private (build it with
    ``make_model``)."""

    x: torch.Tensor
    y: torch.Tensor
    order: torch.Tensor
    loss_fn: object
    lr: float
    seed: int
    _recipe: dict = field(default_factory=dict)
    _clean: tuple = ()

    def __repr__(self) -> str:
        return f"Run(seed={self.seed}, n={len(self.y)}, steps={STEPS}, batch={BATCH})"

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [BATCH, 40], y [BATCH])`` used at ``step``."""
        step = check_int("step", step, minimum=0)
        if step >= STEPS:
            raise ValueError(f"step must be < {STEPS}, got {step}")
        index = self.order[step]
        return self.x[index], self.y[index]


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The safe loss: ``F.cross_entropy`` (log-sum-exp inside)."""
    return F.cross_entropy(logits, y)


def handwritten_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy written out as ``-sum(onehot * log(softmax(z)))`` in float16 (to save memory).

    A class whose logit is ~17 below the largest gets probability exp(-17) < 6e-8, float16's smallest
    number: it rounds to 0, log(0) = -inf and onehot * log = 0 * -inf = NaN (float32 needs a gap of ~104).
    """
    p = torch.softmax(logits.half(), dim=1)
    onehot = F.one_hot(y, logits.shape[1]).half()
    return -(onehot * torch.log(p)).sum(dim=1).float().mean()


class _Residual(nn.Module):
    """``h + act(linear(h))``."""

    def __init__(self, linear: nn.Linear, act: nn.Module):
        super().__init__()
        self.linear, self.act = linear, act

    def forward(self, h):
        return h + self.act(self.linear(h))


_ACTS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}
_HEALTHY = dict(activation="relu", gain=math.sqrt(2.0), bias=0.0)


def _recipe(defect: str | None) -> tuple[dict, float]:
    recipe, lr = dict(_HEALTHY), HEALTHY_LR
    if defect == "vanishing":
        recipe.update(activation="sigmoid")
    elif defect == "small_lr":
        lr = HEALTHY_LR * SMALL_LR
    elif defect == "dead":
        recipe.update(bias=-3.0)
    elif defect == "exploding":
        recipe.update(gain=3.5)
    return recipe, lr


def _check_seed(seed) -> int:
    return check_int("seed", seed, minimum=0)


def make_task(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x [N_TRAIN, 40] float32, y [N_TRAIN] int64)``: 10 Gaussian blobs, ``x = mu_y + N(0, I)`` with centres
    ``mu_c ~ N(0, CENTRE_STD^2 I)``, then each feature standardized; balanced classes in random order."""
    rng = section_rng(_check_seed(seed), "capstone-data")
    centres = rng.normal(0.0, CENTRE_STD, size=(N_CLASSES, N_FEATURES))
    y = rng.permutation(np.arange(N_TRAIN) % N_CLASSES)
    x = centres[y] + rng.standard_normal((N_TRAIN, N_FEATURES))
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)


def build(defect: str | None, seed: int) -> Run:
    """The healthy run (``defect=None``) or the same run with one defect from ``DEFECTS``, drawn from ``seed``.

    Same data, batch order and weights' draw for every defect of one seed, so runs differ in the defect only.
    """
    if defect is not None:
        check_choice("defect", defect, DEFECTS)
    seed = _check_seed(seed)
    x, y = make_task(seed)
    gen = section_generator(seed, "capstone-order")
    order = torch.stack([torch.randperm(len(y), generator=gen)[:BATCH] for _ in range(STEPS)])
    clean = (x.clone(), y.clone())
    rng = section_rng(seed, "capstone-defect")
    if defect == "labels":
        y = y[torch.as_tensor(rng.permutation(len(y)))]
    if defect == "bad_input":  # 3 corrupted examples, first met between steps 10 and 30 (none in steps 0-9)
        early = set(order[:10].flatten().tolist())
        steps = rng.choice(np.arange(10, 30), size=3, replace=False)
        rows = [int(rng.choice([i for i in order[s].tolist() if i not in early])) for s in steps]
        x = x.clone()
        x[rows, rng.integers(x.shape[1], size=3)] = float("nan")
    recipe, lr = _recipe(defect)
    loss_fn = handwritten_loss if defect == "unsafe_loss" else cross_entropy
    return Run(x, y, order, loss_fn, lr, seed, dict(recipe, init_seed=seed), clean)


def mystery(case: str, seed: int) -> Run:
    """A run with one hidden defect: ``case`` is one of ``CASES``; find out which defect with the monitor.
    Different cases of one seed hide different defects; one case hides different defects under different seeds."""
    check_choice("case", case, CASES)
    order = section_rng(_check_seed(seed), "capstone-mystery").permutation(len(DEFECTS))
    return build(DEFECTS[order[CASES.index(case)]], seed)


def make_model(run: Run, *, fix: str | None = None) -> nn.Module:
    """The run's model (float32), weights drawn from the run's seed; ``fix`` in ("init", "normalization",
    "residual") changes the model: He/Glorot init with zero biases, BatchNorm before each activation, or
    identity shortcuts around the hidden layers. The init for sigmoid is 4/sqrt(fan_in) (Glorot & Bengio's x4
    for sigmoid, which offsets sigma'(0) = 1/4)."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a capstone.Run, got {type(run).__name__}")
    r = dict(run._recipe)
    if fix == "init":
        r.update(gain=math.sqrt(2.0) if r["activation"] == "relu" else 4.0, bias=0.0)
    gen = section_generator(r["init_seed"], "capstone-weights")
    sizes = [run.x.shape[1]] + [WIDTH] * DEPTH
    modules: list[nn.Module] = []
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(fan_out, fan_in, generator=gen) * r["gain"] / math.sqrt(fan_in))
            linear.bias.fill_(r["bias"])
        act = _ACTS[r["activation"]]()
        if fix == "residual" and k > 0:
            modules.append(_Residual(linear, act))
        elif fix == "normalization":
            modules += [linear, nn.BatchNorm1d(fan_out), act]
        else:
            modules += [linear, act]
    head = nn.Linear(WIDTH, N_CLASSES)
    with torch.no_grad():
        head.weight.copy_(torch.randn(N_CLASSES, WIDTH, generator=gen) / math.sqrt(WIDTH))
        head.bias.zero_()
    modules.append(head)
    return nn.Sequential(*modules)


@dataclass
class Result:
    """``losses [STEPS]`` (NaN/inf kept), the monitor's ``log``, the trained ``model``; ``trains``: finite and
    the mean of the last ``LAST`` losses below ``TRAINS_BELOW``."""

    losses: np.ndarray
    log: monitor.TrainingLog
    model: nn.Module

    @property
    def final_loss(self) -> float:
        return float(np.mean(self.losses[-LAST:]))

    @property
    def trains(self) -> bool:
        return bool(np.all(np.isfinite(self.losses[-LAST:])) and self.final_loss < TRAINS_BELOW)


def train(run: Run, *, fix: str | None = None, steps: int | None = None, every: int = 10, sample_steps=(),
          clip_norm: float = CLIP_NORM) -> Result:
    """Train ``run`` with one fix (``None`` or one of ``FIXES``) under ``monitor.watch(every=every)``.

    Fixes: "init", "normalization", "residual" (the model, see ``make_model``); "clip" (global norm at
    ``clip_norm``, default ``CLIP_NORM``); "lower_lr" / "raise_lr" (lr / 10, lr / ``SMALL_LR``); "warmup" (lr ramps
    up linearly over ``WARMUP_STEPS``); "stable_loss" (``F.cross_entropy``); "clean_data" (non-finite rows dropped, labels
    as in the source data).
    """
    if not isinstance(run, Run):
        raise TypeError(f"run must be a capstone.Run, got {type(run).__name__}")
    if fix is not None:
        check_choice("fix", fix, FIXES)
    steps = STEPS if steps is None else check_int("steps", steps, minimum=0)
    if not isinstance(clip_norm, (int, float)) or not clip_norm > 0:
        raise ValueError(f"clip_norm must be a positive number, got {clip_norm!r}")
    if steps > STEPS:
        raise ValueError(f"steps must be <= {STEPS}, got {steps}")
    model = make_model(run, fix=fix)
    lr = run.lr * {"lower_lr": 0.1, "raise_lr": 1 / SMALL_LR}.get(fix, 1.0)
    loss_fn = cross_entropy if fix == "stable_loss" else run.loss_fn
    x, y = run._clean if fix == "clean_data" else (run.x, run.y)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, foreach=True)
    losses, broken_at = np.full(steps, np.nan), None
    with monitor.watch(model, optimizer, every=every, sample_steps=sample_steps) as log:
        for step in range(steps):
            index = run.order[step]
            xb, yb = x[index], y[index]
            if fix == "clean_data":
                keep = torch.isfinite(run.x[index]).all(dim=1)
                xb, yb = xb[keep], yb[keep]
            if fix == "warmup":
                optimizer.param_groups[0]["lr"] = lr * min(1.0, (step + 1) / WARMUP_STEPS)
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            if fix == "clip":
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
            losses[step] = loss.item()
            if broken_at is None and not math.isfinite(losses[step]):
                broken_at = step  # a non-finite loss gives non-finite gradients, and weights that never recover
            if broken_at is not None and step > broken_at and step % every == 0:
                break  # the monitor has recorded the broken state: the other losses stay NaN
    return Result(losses, log, model)


def trace_nonfinite(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> str:
    """Where one forward pass first holds a non-finite value: ``"parameters"``, ``"input"``, the name of the
    first module (in call order) whose output is non-finite, ``"loss"``, or ``""`` if everything is finite."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch tensors")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        return "parameters"
    if not torch.isfinite(x).all():
        return "input"
    names = {id(m): name for name, m in model.named_modules()}
    first: list[str] = []
    hooks = [m.register_forward_hook(lambda m, i, out: first.append(names[id(m)])
                                     if not first and not torch.isfinite(out).all() else None)
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            loss = loss_fn(model(x), y)
    finally:
        for hook in hooks:
            hook.remove()
    if first:
        return f"module {first[0]} ({type(model.get_submodule(first[0])).__name__})"
    return "" if torch.isfinite(loss) else "loss"


def overfit_tiny(run: Run, *, n: int = 16, steps: int = 100) -> float:
    """Loss after ``steps`` full-batch steps on the first ``n`` examples of step 0's batch, with the run's own
    model, loss and learning rate, plain SGD (Karpathy's check: a working model and optimizer memorize a tiny set,
    whatever its labels). Returns the last loss (NaN/inf kept)."""
    if not isinstance(run, Run):
        raise TypeError(f"run must be a capstone.Run, got {type(run).__name__}")
    n = check_int("n", n, minimum=1)
    if n > BATCH:
        raise ValueError(f"n must be <= {BATCH}, got {n}")
    steps = check_int("steps", steps, minimum=1)
    model = make_model(run)
    x, y = run.batch(0)
    x, y = x[:n], y[:n]
    optimizer = torch.optim.SGD(model.parameters(), lr=run.lr)  # no momentum: full-batch steps with it oscillate
    for _ in range(steps):
        loss = run.loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(run.loss_fn(model(x), y))
