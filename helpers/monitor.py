"""Watch any torch model while it trains: per-layer gradients, updates and activations, and a diagnosis.

``watch`` is the one hook mechanism of the series: ``stats.record_layer_stats`` (one pass) and
``models.train`` read their per-layer statistics from it. Used from notebook 01 on; the
capstone (08) is built on ``diagnose``. Three lines in any training loop::

    with monitor.watch(model, optimizer) as log:
        ...                                   # the learner's loop, unchanged
    print(*monitor.diagnose(log), sep="\\n")

Definitions (per watched *layer*: every module with its own trainable parameter whose name contains
``"weight"``: ``nn.Linear``, ``nn.Conv*``, ``nn.RNN/LSTM/GRU`` (all their weight matrices together),
normalization layers with an affine weight, ``nn.Embedding``):

- ``W``: the layer's weights; ``grad_norm = ||dL/dW||`` as backward left it in ``.grad`` (before any
  clipping); ``weight_norm = ||W||`` before the step; ``update_ratio = ||W_after - W_before|| / ||W_before||``
  over one ``optimizer.step()`` (Karpathy's update:data ratio, with norms instead of stds).
- the layer's *activation* ``h``: the output of the activation module fed directly by the layer's output
  (``nn.ReLU``, ``nn.LeakyReLU``, ``nn.Sigmoid``, ``nn.Tanh``, ``nn.Identity``), else the layer's own output
  (first element of the tuple for RNN/LSTM/GRU). Functions such as ``F.relu`` are invisible to hooks;
  a module called several times in one forward pass is recorded at its last call; ``dL/dh`` needs the
  forward pass to go through ``model(...)`` itself.
- ``saturated_fraction``: share of entries of ``h`` where that activation's derivative is ~0;
  ``dead_fraction``: share of *units* (features; channels for conv/norm layers) for which that holds on every
  example (and position) of the batch: they pass no gradient at all. NaN where no activation module follows.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from helpers._validate import check_array, check_int

# Where an activation's derivative is (nearly) zero: sigmoid outside [0.03, 0.97] (σ' < 0.03),
# tanh beyond ±0.97 (tanh' < 0.06, Karpathy's makemore part 3 uses the same cut), ReLU at exactly 0.
SATURATED = {
    nn.Sigmoid: lambda h: (h < 0.03) | (h > 0.97),
    nn.Tanh: lambda h: h.abs() > 0.97,
    nn.ReLU: lambda h: h == 0,
    nn.LeakyReLU: lambda h: h < 0,
    nn.Identity: lambda h: torch.zeros_like(h, dtype=torch.bool),
}
_CHANNELS_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm)
PER_LAYER = ("grad_norm", "weight_norm", "update_ratio", "activation_mean", "activation_std",
             "activation_grad_norm", "activation_grad_std", "saturated_fraction", "dead_fraction",
             "nonfinite_fraction")


@dataclass
class TrainingLog:
    """What ``watch`` recorded, one row per recorded step, one column per layer (numpy, float64).

    ``grad_norm``, ``weight_norm``, ``update_ratio`` (NaN without an optimizer), ``activation_mean``,
    ``activation_std``, ``activation_grad_norm`` / ``activation_grad_std`` (of ``dL/dh``; NaN if no backward),
    ``saturated_fraction``, ``dead_fraction``, ``nonfinite_fraction`` (share of inf/NaN entries of ``h``; NaN
    where ``h`` was not recorded): ``[steps, layers]``. ``total_grad_norm [steps]``: global norm of
    all parameters' gradients (what ``clip_grad_norm_`` sees). ``steps [steps]``: step numbers (0-based).
    ``layer_names``, ``activation_names`` (type of the activation module that follows, ``""`` if none).
    ``activation_samples`` / ``activation_grad_samples``: step -> per-layer 1-D samples of ``h`` / ``dL/dh``
    (at most ``max_samples`` each), for the steps in ``sample_steps``. Non-finite values are kept as they are.
    Arrays are snapshots: read them again (or after the block) to see later steps.
    """

    layer_names: list[str]
    activation_names: list[str]
    steps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    total_grad_norm: np.ndarray = field(default_factory=lambda: np.empty(0))
    grad_norm: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    weight_norm: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    update_ratio: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    activation_mean: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    activation_std: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    activation_grad_norm: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    activation_grad_std: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    saturated_fraction: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    dead_fraction: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    nonfinite_fraction: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    activation_samples: dict = field(default_factory=dict)
    activation_grad_samples: dict = field(default_factory=dict)
    _buffers: dict = field(default_factory=dict, repr=False)

    def _append(self, step: int, total: float, row: dict) -> None:
        """Add one record; buffers double when full, so a long run costs O(1) per record."""
        n, values = self.steps.size, {"steps": step, "total_grad_norm": total, **row}
        if n == len(self._buffers.get("steps", ())):
            for name, value in values.items():
                grown = np.zeros((max(64, 2 * n),) + np.shape(value), dtype=np.int64 if name == "steps" else float)
                if n:
                    grown[:n] = self._buffers[name][:n]
                self._buffers[name] = grown
        for name, value in values.items():
            self._buffers[name][n] = value
            setattr(self, name, self._buffers[name][: n + 1])


def subsample(values: torch.Tensor, max_samples: int) -> np.ndarray:
    """At most ``max_samples`` evenly spaced entries of ``values``, flattened, as float64 (no RNG drawn)."""
    flat = values.detach().reshape(-1).double().numpy()
    if flat.size <= max_samples:
        return flat.copy()
    return flat[np.linspace(0, flat.size - 1, max_samples).astype(int)]


def layer_weights(module: nn.Module) -> list[nn.Parameter]:
    """The module's own trainable parameters whose name contains ``"weight"`` (empty: not a layer)."""
    return [p for name, p in module.named_parameters(recurse=False) if "weight" in name and p.requires_grad]


def _combine(norms: list[torch.Tensor]) -> torch.Tensor:
    """The norm of several tensors together, from their norms."""
    return norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms))


def _norm(tensors) -> torch.Tensor:
    return _combine([torch.linalg.vector_norm(t) for t in tensors])


def _dead_and_saturated(layer: nn.Module, activation: nn.Module, h: torch.Tensor) -> tuple[float, float]:
    """``(dead_fraction, saturated_fraction)`` of activation output ``h`` (units along dim 1 or the last dim)."""
    zero_slope = SATURATED[type(activation)](h)
    unit_dim = 1 if isinstance(layer, _CHANNELS_FIRST) and h.ndim >= 3 else h.ndim - 1
    per_unit = zero_slope.movedim(unit_dim, -1).reshape(-1, h.shape[unit_dim]).all(dim=0)
    # counting is exact, so these equal ``.double().mean()`` bit for bit, at a fraction of the cost
    return per_unit.count_nonzero().item() / per_unit.numel(), zero_slope.count_nonzero().item() / zero_slope.numel()


class _Recorder:
    """The hooks behind ``watch``: they keep what one step needs; ``_finish`` turns it into one row of the log."""

    def __init__(self, model, optimizer, layers, every, sample_steps, max_samples, *, activations=True, updates=True,
                 training_only=True):
        self.model, self.optimizer, self.layers, self.every, self.updates = model, optimizer, layers, every, updates
        self.sample_steps, self.max_samples, self.training_only = sample_steps, max_samples, training_only
        self.weights = [layer_weights(m) for m in layers]
        self.params = [p for p in model.parameters() if p.requires_grad]
        names = {id(m): name for name, m in model.named_modules()}
        self.log = TrainingLog([f"{names[id(m)] or 'model'} ({type(m).__name__})" for m in layers], [""] * len(layers))
        self.step, self.handles = 0, []
        self._reset()
        self.index = {id(p): i for i, p in enumerate(self.params)}
        self.watched = {self.index[id(w)] for ws in self.weights for w in ws}
        for i, p in enumerate(self.params):
            self.handles.append(p.register_post_accumulate_grad_hook(lambda p, i=i: self._on_grad(i, p)))
        if activations:
            for k, layer in enumerate(layers):
                self.handles.append(layer.register_forward_hook(lambda m, i, out, k=k: self._on_layer(k, out)))
            for module in model.modules():
                if type(module) in SATURATED:
                    self.handles.append(module.register_forward_hook(self._on_activation))
            self.handles.append(model.register_forward_hook(lambda m, i, out: self._on_model_output()))
        if optimizer is None:
            self.handles.append(model.register_forward_pre_hook(lambda m, args: self._on_forward()))
        else:
            self.handles.append(optimizer.register_step_pre_hook(lambda *args: self._before_step()))
            self.handles.append(optimizer.register_step_post_hook(lambda *args: self._after_step()))

    @property
    def recording(self) -> bool:
        return self.step % self.every == 0

    def _reset(self):
        self.squares: dict[int, torch.Tensor] = {}  # parameter index -> sum of squared gradient entries
        self.grad_norms: dict[int, torch.Tensor] = {}  # parameter index -> ||grad||
        self.outputs: dict[int, tuple] = {}  # layer -> (tensor h, activation module or None, layer output)
        self.by_output: dict[int, int] = {}  # id of a layer's output (kept alive in outputs) -> layer
        self.out_grads: dict[int, torch.Tensor] = {}  # layer -> dL/dh
        self.row: dict | None = None
        self.before: list | None = None
        self.backward_seen = False

    def _on_grad(self, i, p):
        self.backward_seen = True
        if self.recording:
            grad = p.grad.detach()
            grad = grad.coalesce().values() if grad.is_sparse else grad  # nn.Embedding(sparse=True)
            self.squares[i] = (grad**2).sum()
            if i in self.watched:
                self.grad_norms[i] = torch.linalg.vector_norm(grad)

    def _on_model_output(self):  # the forward pass is complete (in-place activations included): catch dL/dh
        if self._active():
            for k, (h, _, _) in self.outputs.items():
                if h.requires_grad:
                    h.register_hook(lambda grad, k=k: self.out_grads.__setitem__(k, grad.detach()))

    def _active(self) -> bool:  # evaluation passes under torch.no_grad() are not part of a training step
        return self.recording and (torch.is_grad_enabled() or not self.training_only)

    def _on_layer(self, k, out):
        if self._active():
            out = out[0] if isinstance(out, tuple) else out
            self.outputs[k] = (out, None, out)
            self.by_output[id(out)] = k

    def _on_activation(self, module, inputs, out):
        if not (self._active() and inputs):
            return
        k = self.by_output.get(id(inputs[0]))
        if k is not None and self.outputs[k][2] is inputs[0]:  # fed directly by layer k's output
            self.outputs[k] = (out, module, inputs[0])
            self.log.activation_names[k] = type(module).__name__

    def _on_forward(self):  # without an optimizer: a new training forward pass closes the previous step
        if torch.is_grad_enabled() and self.backward_seen:
            self._finish()

    def _before_step(self):
        if self.recording:
            self.row = self._statistics()
            if self.updates:
                self.before = [[w.detach().clone() for w in ws] for ws in self.weights]

    def _after_step(self):
        if self.recording and self.updates:
            with np.errstate(divide="ignore", invalid="ignore"):  # a zero weight (e.g. a zero-init head): inf or NaN
                self.row["update_ratio"] = [
                    float(np.float64(_norm([w.detach() - b for w, b in zip(ws, bs)]).item()) / np.float64(norm))
                    for ws, bs, norm in zip(self.weights, self.before, self.row["weight_norm"])
                ]
        self._finish()

    def _finish(self):
        if self.recording:
            row = self.row if self.row is not None else self._statistics()
            total = torch.sqrt(sum(self.squares[i] for i in sorted(self.squares))).item() if self.squares else 0.0
            self.log._append(self.step, total, row)
        self.step += 1
        self._reset()

    def _statistics(self) -> dict:
        nan = [math.nan] * len(self.layers)
        row = {name: list(nan) for name in PER_LAYER}
        for k, (layer, ws) in enumerate(zip(self.layers, self.weights)):
            grads = [self.grad_norms.get(self.index[id(w)]) for w in ws]
            got = [g for g in grads if g is not None]
            row["grad_norm"][k] = _combine(got).item() if got else 0.0  # no gradient reached it: 0
            row["weight_norm"][k] = _norm([w.detach() for w in ws]).item()
            if k not in self.outputs:
                continue
            h, activation, _ = self.outputs[k]
            h = h.detach()
            row["activation_mean"][k], row["activation_std"][k] = h.mean().item(), h.std().item()
            row["nonfinite_fraction"][k] = 1.0 - torch.isfinite(h).count_nonzero().item() / max(h.numel(), 1)
            if activation is not None:
                row["dead_fraction"][k], row["saturated_fraction"][k] = _dead_and_saturated(layer, activation, h)
            grad = self.out_grads.get(k)
            if grad is not None:
                row["activation_grad_norm"][k] = torch.linalg.vector_norm(grad).item()
                row["activation_grad_std"][k] = grad.std().item()
            if self.step in self.sample_steps:
                empty = [np.empty(0)] * len(self.layers)
                self.log.activation_samples.setdefault(self.step, list(empty))[k] = subsample(h, self.max_samples)
                self.log.activation_grad_samples.setdefault(self.step, list(empty))[k] = (
                    subsample(grad, self.max_samples) if grad is not None else np.empty(0))
        return row

    def close(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []
        if self.optimizer is None and (self.backward_seen or self.outputs):
            self._finish()  # the last backward pass (or forward-only pass) of the block


@contextlib.contextmanager
def watch(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *, every: int = 1,
          sample_steps=(), max_samples: int = 2000):
    """Record per-layer statistics while the ``with`` block trains ``model``; yields a ``TrainingLog``.

    With ``optimizer``: one record per ``optimizer.step()`` (its step pre/post hooks), made of the last
    training forward pass (run with gradients enabled) and backward pass before that step. Without one:
    one record per backward pass, written when the next training forward pass starts or the block ends;
    ``update_ratio`` is then NaN. ``every=k`` records steps ``0, k, 2k, ...`` and skips the work on the others.
    ``sample_steps``: steps at which to keep up to ``max_samples`` values of each layer's ``h`` and ``dL/dh``
    (for ``plotting.activation_histograms``). Forward passes under ``torch.no_grad()`` (evaluation) are ignored.
    Hooks are removed on exit, also if the block raises; nothing changes the training itself.
    Cost (``python scripts/benchmark.py --monitor-overhead``, 10 ReLU layers of 128, batch 64, CPU): about
    2.4x an unmonitored step with ``every=1``, 1.2x with ``every=10``; it is per layer, not per example.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    every = check_int("every", every, minimum=1)
    max_samples = check_int("max_samples", max_samples, minimum=1)
    if isinstance(sample_steps, (str, bytes)) or not hasattr(sample_steps, "__iter__"):
        raise TypeError(f"sample_steps must be an iterable of step numbers, got {type(sample_steps).__name__}")
    sample_steps = [check_int("sample_steps", step, minimum=0) for step in sample_steps]
    layers = [m for m in model.modules() if layer_weights(m)]
    if not layers:
        raise ValueError("model has no layer with a trainable weight to watch")
    recorder = _Recorder(model, optimizer, layers, every, set(sample_steps), max_samples)
    try:
        yield recorder.log
    finally:
        recorder.close()


# --- diagnose: thresholds. Each is a judgement call; the comment gives its source and the figures measured
# on the runs in tests/test_monitor.py (seeds 0-7, 50-300 steps), so a reader can see the margin on both sides.
# Gradient of a layer vs the last layer: healthy nets at He/Glorot init keep every layer within 0.02-4x the last
# (lowest: a 2-layer sigmoid net); the vanishing runs reach 1e-5 (20 tanh layers) to 1e-10 (15 sigmoid layers).
VANISHING_RATIO = 1e-3
EXPLODING_RATIO = 1e3  # the mirror image: a layer's gradient 1000x the last layer's
EXPLODING_GROWTH = 1e3  # a layer's gradient norm 1000x its norm at the first records (healthy runs: up to ~60x)
# Karpathy (makemore part 3) plots log10 of (lr * grad).std() / W.std() per weight with a line at -3: "these
# ratios should be ~1e-3". Ours uses norms (the same ratio for zero-mean weights). Flagged: 100x off either way.
UPDATE_RATIO_REFERENCE = 1e-3
UPDATE_RATIO_LOW, UPDATE_RATIO_HIGH = 1e-5, 1e-1
# Dead units: a ReLU net's inputs grow more alike with depth, so even a healthy net at He init has whole units
# silent on a batch: measured here (batch 64) up to ~0.45 of a layer at 8-20 layers of 64, and 0.4-0.6 at
# 30 layers of 32 (deep narrow nets are born partly dead, Lu et al. 2019), while a dying run (Adam at lr 0.1
# on a ReLU MLP) sits at 0.98-1.0. We flag more than 3/4 of a layer's units, persistently.
DEAD_SHARE = 0.75
# Saturated sigmoid/tanh entries (|tanh| > 0.97, Karpathy's "saturated" in makemore part 3, who tunes init until
# ~5 % are): measured ~0.1 at Glorot init x 5/3; weights 5x too large saturate ~0.7. We flag more than half.
SATURATED_SHARE = 0.5
# A layer whose weights move by less than float32 can represent (eps ~ 1.2e-7) does not learn.
NOT_LEARNING_RATIO = 1e-8
# A condition must hold on this many consecutive records (fewer if the log is shorter): one noisy minibatch
# is not a diagnosis. Non-finite values count at once.
PERSIST = 5
KINDS = ("exploding", "vanishing", "dead", "not_learning", "update_ratio")


@dataclass(frozen=True)
class Finding:
    """One problem ``diagnose`` found: ``kind``, the ``layer`` name, the first ``step`` it held, ``value``
    (the figure that triggered it, e.g. a gradient ratio), ``threshold`` it crossed and a one-line ``message``."""

    kind: str
    layer: str
    step: int
    value: float
    threshold: float
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


def _persistent(condition: np.ndarray) -> np.ndarray:
    """``[steps, layers]`` bool -> True where the condition holds on ``PERSIST`` consecutive records from there."""
    n = condition.shape[0]
    m = min(PERSIST, n)
    held = np.ones((n - m + 1,) + condition.shape[1:], dtype=bool)
    for offset in range(m):
        held &= condition[offset : n - m + 1 + offset]
    return held


def _first(condition, values, log, kind, threshold, message, *, persist=True) -> list[Finding]:
    """One finding at the first record (and, on ties, the most extreme layer) where ``condition`` holds."""
    held = _persistent(condition) if persist else condition
    hits = np.argwhere(held)
    if hits.size == 0:
        return []
    row = hits[0, 0]
    layers = hits[hits[:, 0] == row, 1]
    layer = layers[np.argmax(np.abs(np.log10(np.abs(values[row, layers]) + 1e-300)))]
    n_layers = len(np.unique(hits[:, 1]))
    value = float(values[row, layer])
    name = log.layer_names[layer]
    others = f" (and {n_layers - 1} more layer{'s' if n_layers > 2 else ''})" if n_layers > 1 else ""
    text = message.format(layer=name, value=value, threshold=threshold, step=int(log.steps[row]), others=others)
    return [Finding(kind, name, int(log.steps[row]), value, threshold, text)]


def _nonfinite(log: TrainingLog, losses) -> list[Finding]:
    """The first record whose gradient norm, weight norm or activations hold inf/NaN, and the first non-finite
    loss (``losses[step]``, if given): ``exploding`` findings with the quantity named in the message."""
    found = []
    quantities = (("gradient", ~np.isfinite(log.grad_norm)), ("weights", ~np.isfinite(log.weight_norm)),
                  ("activations", np.nan_to_num(log.nonfinite_fraction, nan=0.0) > 0))
    bad = np.zeros(log.grad_norm.shape, dtype=bool)
    for _, where in quantities:
        bad |= where
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size:
        row = rows[0]
        layers = np.flatnonzero(bad[row])
        layer = layers[0]  # the first in forward order: where the non-finite values begin
        what = [name for name, where in quantities if where[row, layer]]
        value = float(log.grad_norm[row, layer] if what[0] == "gradient" else
                      log.weight_norm[row, layer] if what[0] == "weights" else log.nonfinite_fraction[row, layer])
        others = f" (and {len(layers) - 1} more layer{'s' if len(layers) > 2 else ''})" if len(layers) > 1 else ""
        found.append(Finding("exploding", log.layer_names[layer], int(log.steps[row]), value, math.inf,
                             f"{log.layer_names[layer]}: non-finite {' and '.join(what)} at step {log.steps[row]}"
                             f"{others}: the run produced inf/NaN (exploding gradients, or a NaN/inf from the loss "
                             "or the data)"))
    if losses is not None:
        bad_steps = np.flatnonzero(~np.isfinite(losses))
        if bad_steps.size:
            step = int(bad_steps[0])
            found.append(Finding("exploding", "loss", step, float(losses[step]), math.inf,
                                 f"loss: {losses[step]} at step {step}: the run produced inf/NaN (exploding "
                                 "gradients, or a NaN/inf from the loss or the data)"))
    return found


def diagnose(log: TrainingLog, losses=None) -> list[Finding]:
    """Findings about a recorded run, earliest first; an empty list when nothing crossed a threshold.

    exploding: a non-finite gradient norm, weight norm or activation (reported at once, at the first step where
    one appears; ``losses``, an optional ``[steps]`` array of the run's loss per step, adds its first non-finite
    loss, which can come before anything the hooks see), a layer's gradient ``EXPLODING_RATIO`` x the last
    layer's, or ``EXPLODING_GROWTH`` x its own at the start; vanishing: a layer's gradient below
    ``VANISHING_RATIO`` x the last layer's (exactly 0 counts as not learning, not vanishing); dead:
    ``dead_fraction > DEAD_SHARE`` (after ReLU, sigmoid or tanh) or, for sigmoid/tanh,
    ``saturated_fraction > SATURATED_SHARE``; update_ratio: outside ``[UPDATE_RATIO_LOW, UPDATE_RATIO_HIGH]``;
    not_learning: gradient exactly 0 or update ratio below ``NOT_LEARNING_RATIO``. All but non-finite values
    must hold on ``PERSIST`` consecutive records.
    "The last layer" is the last watched module in ``model.modules()`` order (the output layer of an
    ``nn.Sequential``). One finding per kind, layer and first step; earliest first.
    """
    if not isinstance(log, TrainingLog):
        raise TypeError(f"log must be a TrainingLog from monitor.watch, got {type(log).__name__}")
    if losses is not None:
        losses = check_array("losses", losses, ndim=1, finite=False)
    if log.steps.size == 0:
        return _nonfinite(log, losses) if losses is not None else []
    grad, ratio = log.grad_norm, log.update_ratio
    finite = np.isfinite(grad)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no usable start, no growth
        to_last = grad / grad[:, -1:]
        growth = grad / np.nanmedian(np.where(finite & (grad > 0), grad, np.nan)[:PERSIST], axis=0)
    # growth that ends in inf/NaN is still growth: non-finite records continue an explosion's streak
    found = _nonfinite(log, losses)
    found += _first(to_last > EXPLODING_RATIO, to_last, log, "exploding", EXPLODING_RATIO,
                    "{layer}: gradient {value:.2g}x the last layer's at step {step}{others}: gradients explode "
                    "towards the input")
    found += _first((growth > EXPLODING_GROWTH) | ~finite, growth, log, "exploding", EXPLODING_GROWTH,
                    "{layer}: gradient norm grew {value:.2g}x since the start by step {step}{others}: "
                    "gradients are exploding")
    found += _first((to_last < VANISHING_RATIO) & (grad > 0), to_last, log, "vanishing", VANISHING_RATIO,
                    "{layer}: gradient only {value:.2g}x the last layer's at step {step}{others}: gradients vanish "
                    "before they reach the first layers")
    zero_slope = np.array([name in ("ReLU", "Sigmoid", "Tanh") for name in log.activation_names])  # not leaky
    found += _first((log.dead_fraction > DEAD_SHARE) & zero_slope, log.dead_fraction, log, "dead", DEAD_SHARE,
                    "{layer}: {value:.0%} of its units pass no gradient for any example at step {step}{others}: "
                    "dead units")
    saturating = np.array([name in ("Sigmoid", "Tanh") for name in log.activation_names])
    found += _first((log.saturated_fraction > SATURATED_SHARE) & saturating, log.saturated_fraction, log, "dead",
                    SATURATED_SHARE, "{layer}: {value:.0%} of its activations are saturated (derivative ~0) at step "
                    "{step}{others}: the units are stuck at their flat ends")
    found += _first(grad == 0, grad, log, "not_learning", 0.0,
                    "{layer}: its gradient is exactly 0 from step {step} on{others}: the layer does not learn")
    found += _first(ratio < NOT_LEARNING_RATIO, ratio, log, "not_learning", NOT_LEARNING_RATIO,
                    "{layer}: its weights change by {value:.2g} of their norm per step from step {step}{others}: "
                    "the layer does not learn (is it in the optimizer?)")
    found += _first(ratio > UPDATE_RATIO_HIGH, ratio, log, "update_ratio", UPDATE_RATIO_HIGH,
                    "{layer}: each step changes the weights by {value:.2g} of their norm at step {step}{others}, "
                    "far above ~1e-3: the learning rate is too large")
    found += _first((ratio < UPDATE_RATIO_LOW) & (ratio >= NOT_LEARNING_RATIO), ratio, log, "update_ratio",
                    UPDATE_RATIO_LOW, "{layer}: each step changes the weights by only {value:.2g} of their norm at "
                    "step {step}{others}, far below ~1e-3: the learning rate is too small (or the gradient vanished, "
                    "or training has converged)")
    unique = {(f.kind, f.layer, f.step): f for f in reversed(found)}  # two rules, one event: keep the first
    return sorted(unique.values(), key=lambda f: (f.step, KINDS.index(f.kind)))
