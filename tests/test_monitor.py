import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from helpers import models, monitor, plotting

from .conftest import RTOL_FLOAT64

RTOL = {torch.float64: RTOL_FLOAT64, torch.float32: 1e-5}  # float32: eps 1.2e-7 times a few dozen operations


# ---------------------------------------------------------------- hand-computed statistics on a tiny model
def _tiny(dtype):
    """Linear(3, 4) -> ReLU -> Linear(4, 2) with chosen weights: unit 1 is off for every positive input."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(dtype)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1, 0.5], [-1, -1, -1], [0.5, 2, -1], [0, 1, 1]]))
        model[0].bias.copy_(torch.tensor([0.1, -0.5, 0.05, -0.9]))  # no z within 0.05 of the kink
        model[2].weight.copy_(torch.tensor([[1.0, -2, 0.5, 1], [-1, 0.5, 1, 2]]))
        model[2].bias.copy_(torch.tensor([0.2, -0.1]))
    x = np.array([[1.0, 0.5, 0.2], [0.3, 1.2, 0.1], [0.2, 0.1, 0.3], [2.0, 0.4, 1.5], [0.5, 0.5, 0.5]])
    target = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 1.0], [0.0, 0.0]])
    return model, x, target


def _by_hand(model, x, target, lr, steps):
    """Forward, backward and SGD in numpy for L = 1/2 sum (out - target)^2; the statistics of every step."""
    w1, b1, w2, b2 = (p.detach().double().numpy().copy() for p in model.parameters())
    rows = []
    for _ in range(steps):
        z = x @ w1.T + b1
        h = np.maximum(z, 0)
        out = h @ w2.T + b2
        d_out = out - target
        d_w2, d_b2 = d_out.T @ h, d_out.sum(0)
        d_h = d_out @ w2
        d_z = d_h * (z > 0)
        d_w1, d_b1 = d_z.T @ x, d_z.sum(0)
        norm = np.linalg.norm
        rows.append({
            "grad_norm": [norm(d_w1), norm(d_w2)], "weight_norm": [norm(w1), norm(w2)],
            "update_ratio": [lr * norm(d_w1) / norm(w1), lr * norm(d_w2) / norm(w2)],
            "activation_mean": [h.mean(), out.mean()], "activation_std": [h.std(ddof=1), out.std(ddof=1)],
            "activation_grad_norm": [norm(d_h), norm(d_out)],
            "saturated_fraction": [(h == 0).mean(), np.nan],
            "dead_fraction": [(h == 0).all(axis=0).mean(), np.nan],
            "total": math.sqrt(sum(norm(g) ** 2 for g in (d_w1, d_b1, d_w2, d_b2))),
        })
        w1, b1, w2, b2 = w1 - lr * d_w1, b1 - lr * d_b1, w2 - lr * d_w2, b2 - lr * d_b2
    return rows


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_statistics_match_a_hand_computed_two_layer_net(dtype):
    model, x, target = _tiny(dtype)
    expected = _by_hand(model, x, target, lr=0.05, steps=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    xt, tt = torch.tensor(x, dtype=dtype), torch.tensor(target, dtype=dtype)
    with monitor.watch(model, opt) as log:
        for _ in range(3):
            opt.zero_grad()
            (0.5 * ((model(xt) - tt) ** 2).sum()).backward()
            opt.step()
    assert log.layer_names == ["0 (Linear)", "2 (Linear)"] and log.activation_names == ["ReLU", ""]
    np.testing.assert_array_equal(log.steps, [0, 1, 2])
    assert log.grad_norm.shape == (3, 2) and log.grad_norm.dtype == np.float64
    for name in expected[0]:
        recorded = log.total_grad_norm if name == "total" else getattr(log, name)
        # the update ratio is a difference of two weights: float32 loses ~eps/ratio of it
        rtol = 1e-4 if name == "update_ratio" and dtype == torch.float32 else RTOL[dtype]
        np.testing.assert_allclose(recorded, [row[name] for row in expected], rtol=rtol, atol=1e-12, err_msg=name)
    assert log.dead_fraction[0, 0] == 0.25  # unit 1 is off on all five inputs (and stays so: no gradient)


def test_monitoring_does_not_change_training_and_every_k_records_one_step_in_k():
    def trained(watch, every=1):
        model = models.deep_mlp(5, 16, 3, 3, dropout=0.2, generator=torch.Generator().manual_seed(0))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x = torch.randn(40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        y = torch.arange(40) % 3
        torch.manual_seed(2)  # dropout draws from the global RNG: the same masks in every run
        with monitor.watch(model, opt, every=every) if watch else torch.no_grad() as log:
            with torch.enable_grad():
                for _ in range(7):
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(x), y).backward()
                    opt.step()
        return list(model.parameters()), log

    plain, _ = trained(False)
    watched, log = trained(True)
    for a, b in zip(plain, watched):
        assert torch.equal(a, b)
    _, sparse = trained(True, every=3)
    np.testing.assert_array_equal(sparse.steps, [0, 3, 6])
    for name in monitor.PER_LAYER:  # skipped steps cost nothing and change nothing
        np.testing.assert_array_equal(getattr(sparse, name), getattr(log, name)[[0, 3, 6]], err_msg=name)


def test_without_optimizer_one_record_per_backward_pass_and_evaluation_passes_are_ignored():
    model, x, target = _tiny(torch.float64)
    expected = _by_hand(model, x, target, lr=0.0, steps=1)[0]
    xt, tt = torch.tensor(x), torch.tensor(target)
    with monitor.watch(model) as log:
        for _ in range(4):
            model.zero_grad()
            (0.5 * ((model(xt) - tt) ** 2).sum()).backward()
            with torch.no_grad():
                model(xt * 100)  # an evaluation pass: not part of the step
    np.testing.assert_array_equal(log.steps, [0, 1, 2, 3])
    assert np.all(np.isnan(log.update_ratio))
    with monitor.watch(model, every=2) as sparse:
        for _ in range(5):
            model.zero_grad()
            (0.5 * ((model(xt) - tt) ** 2).sum()).backward()
    np.testing.assert_array_equal(sparse.steps, [0, 2, 4])
    np.testing.assert_array_equal(sparse.grad_norm, log.grad_norm[[0, 0, 0]])  # same weights every pass
    np.testing.assert_allclose(log.grad_norm[-1], expected["grad_norm"], rtol=RTOL_FLOAT64)
    np.testing.assert_allclose(log.activation_mean[-1], expected["activation_mean"], rtol=RTOL_FLOAT64)


def test_gradient_accumulation_records_the_accumulated_gradient_before_clipping():
    model, x, target = _tiny(torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    xt, tt = torch.tensor(x), torch.tensor(target)
    with monitor.watch(model, opt) as log:
        opt.zero_grad()
        for half in (slice(0, 2), slice(2, 5)):  # two micro-batches, one step
            (0.5 * ((model(xt[half]) - tt[half]) ** 2).sum()).backward()
        full = [model[0].weight.grad.norm().item(), model[2].weight.grad.norm().item()]
        total = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())).item()
        nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
        opt.step()
    assert log.steps.tolist() == [0]
    np.testing.assert_allclose(log.grad_norm[0], full, rtol=RTOL_FLOAT64)  # both micro-batches, before clipping
    np.testing.assert_allclose(log.total_grad_norm[0], total, rtol=RTOL_FLOAT64)
    assert total > 1.0  # so clipping to 1e-3 really shrank the step
    # the update is the clipped step's: ||ΔW|| <= lr * max_norm (plus round-off)
    np.testing.assert_array_less(log.update_ratio[0] * log.weight_norm[0], 0.01 * 1e-3 * (1 + 1e-9))


# ---------------------------------------------------------------- every layer type
class _FirstOutput(nn.Module):
    """``rnn(x)`` returns ``(output, state)``: keep the last time step of ``output``."""

    def forward(self, pair):
        return pair[0][:, -1]


LAYER_CASES = {  # model, input shape, the dims over which a unit must be dead, per layer index
    "linear": (lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)), (10, 6)),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 3)), (10, 2, 8)),
    "conv2d+batchnorm2d": (lambda: nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                                                 nn.Linear(3 * 16, 3)), (10, 1, 6, 6)),
    "conv2d+groupnorm": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.Sigmoid(), nn.Flatten(),
                                               nn.Linear(4 * 9, 3)), (10, 2, 5, 5)),
    "batchnorm1d": (lambda: nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)), (10, 6)),
    "layernorm": (lambda: nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.LeakyReLU(), nn.Linear(8, 3)), (10, 6)),
    "rnn": (lambda: nn.Sequential(nn.RNN(4, 5, num_layers=2, batch_first=True), _FirstOutput(), nn.Linear(5, 3)),
            (10, 7, 4)),
    "lstm": (lambda: nn.Sequential(nn.LSTM(4, 5, batch_first=True), _FirstOutput(), nn.Linear(5, 3)), (10, 7, 4)),
    "gru": (lambda: nn.Sequential(nn.GRU(4, 5, batch_first=True), _FirstOutput(), nn.Linear(5, 3)), (10, 7, 4)),
}
_UNIT_DIMS = {nn.Conv1d: (0, 2), nn.Conv2d: (0, 2, 3), nn.BatchNorm2d: (0, 2, 3), nn.GroupNorm: (0, 2, 3)}


@pytest.mark.parametrize("case", list(LAYER_CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_layer_type_against_a_module_by_module_pass(case, dtype):
    build, shape = LAYER_CASES[case]
    torch.manual_seed(0)  # layers draw their init from the global RNG
    model = build().to(dtype)
    reference = copy.deepcopy(model)
    x = torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    y = torch.arange(shape[0]) % 3
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with monitor.watch(model, opt) as log:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    # the same pass module by module: keep every output and its gradient
    outputs, h = [], x
    for module in reference:
        h = module(h)
        kept = h[0] if isinstance(h, tuple) else h
        kept.retain_grad()
        outputs.append(kept)
    nn.functional.cross_entropy(h, y).backward()
    layers = [i for i, m in enumerate(reference) if any("weight" in n for n, _ in m.named_parameters(recurse=False))]
    assert log.layer_names == [f"{i} ({type(reference[i]).__name__})" for i in layers]
    rtol = RTOL[dtype]
    for column, i in enumerate(layers):
        module, following = reference[i], reference[i + 1] if i + 1 < len(reference) else None
        weights = [p for n, p in module.named_parameters(recurse=False) if "weight" in n]
        grad = torch.sqrt(sum((w.grad.double() ** 2).sum() for w in weights)).item()
        assert log.grad_norm[0, column] == pytest.approx(grad, rel=rtol)
        after = [p for n, p in model[i].named_parameters(recurse=False) if "weight" in n]
        change = torch.sqrt(sum(((a - w).double() ** 2).sum() for a, w in zip(after, weights))).item()
        norm = torch.sqrt(sum((w.double() ** 2).sum() for w in weights)).item()
        assert log.update_ratio[0, column] == pytest.approx(change / norm, rel=1e-10 if dtype == torch.float64 else 1e-4)
        # activation: the output of the activation module right after the layer, else the layer's own output
        activated = type(following) in monitor.SATURATED
        h = outputs[i + 1] if activated else outputs[i]
        assert log.activation_names[column] == (type(following).__name__ if activated else "")
        assert log.activation_mean[0, column] == pytest.approx(h.mean().item(), rel=rtol, abs=1e-6)
        assert log.activation_std[0, column] == pytest.approx(h.std().item(), rel=rtol)
        assert log.activation_grad_norm[0, column] == pytest.approx(h.grad.norm().item(), rel=rtol)
        if activated:
            flat = monitor.SATURATED[type(following)](h.detach())
            dims = _UNIT_DIMS.get(type(module), tuple(range(h.ndim - 1)))
            assert log.dead_fraction[0, column] == flat.all(dim=dims).double().mean().item()
            assert log.saturated_fraction[0, column] == flat.double().mean().item()
        else:
            assert np.isnan(log.dead_fraction[0, column]) and np.isnan(log.saturated_fraction[0, column])


def test_activation_samples_at_chosen_steps():
    model = models.deep_mlp(4, 8, 2, 2, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(300, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), torch.arange(300) % 2
    with monitor.watch(model, opt, sample_steps=[1, 3], max_samples=500) as log:
        for _ in range(4):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    assert sorted(log.activation_samples) == [1, 3] and sorted(log.activation_grad_samples) == [1, 3]
    assert [s.size for s in log.activation_samples[3]] == [500, 500, 500]  # 300 x 8 and 300 x 2 entries, capped
    for k in range(3):
        assert log.activation_samples[3][k].mean() == pytest.approx(log.activation_mean[3, k], abs=0.1)


# ---------------------------------------------------------------- hooks, non-finite values, bad input
def _hook_count(model, opt):
    modules = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    params = sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters())
    return modules + params + len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks)


def test_hooks_are_removed_on_exit_also_when_the_block_raises():
    model = models.deep_mlp(3, 4, 2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with monitor.watch(model, opt):
        assert _hook_count(model, opt) > 0
    assert _hook_count(model, opt) == 0
    with pytest.raises(ZeroDivisionError):
        with monitor.watch(model, opt) as log:
            opt.zero_grad()
            model(torch.ones(2, 3, dtype=torch.float64)).sum().backward()
            opt.step()
            raise ZeroDivisionError
    assert _hook_count(model, opt) == 0 and log.steps.tolist() == [0]
    with pytest.raises(ValueError):
        with monitor.watch(model):
            model(torch.ones(2, 3, dtype=torch.float64)).sum().backward()
            raise ValueError
    assert _hook_count(model, opt) == 0


def test_non_finite_values_are_recorded_not_raised():
    model, x, target = _tiny(torch.float32)
    with torch.no_grad():
        model[2].weight[0, 0] = float("inf")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with monitor.watch(model, opt) as log:
        for _ in range(2):
            opt.zero_grad()
            (0.5 * ((model(torch.tensor(x, dtype=torch.float32)) - torch.tensor(target, dtype=torch.float32)) ** 2)
             .sum()).backward()
            opt.step()
    assert not np.all(np.isfinite(log.grad_norm)) and not np.isfinite(log.activation_mean[0, 1])
    findings = monitor.diagnose(log)
    assert findings[0].kind == "exploding" and findings[0].step == 0 and "non-finite" in findings[0].message


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"model": "mlp"}, TypeError, "model"),
        ({"model": nn.ReLU()}, ValueError, "weight"),
        ({"optimizer": "sgd"}, TypeError, "optimizer"),
        ({"optimizer": [torch.zeros(1)]}, TypeError, "optimizer"),
        ({"every": 0}, ValueError, "every"),
        ({"every": 1.5}, TypeError, "every"),
        ({"every": True}, TypeError, "every"),
        ({"sample_steps": 3}, TypeError, "sample_steps"),
        ({"sample_steps": [-1]}, ValueError, "sample_steps"),
        ({"sample_steps": [0.5]}, TypeError, "sample_steps"),
        ({"max_samples": 0}, ValueError, "max_samples"),
    ],
)
def test_watch_rejects_bad_input(kwargs, error, name):
    args = {"model": models.deep_mlp(3, 4, 1, 2)} | kwargs
    with pytest.raises(error, match=name):
        with monitor.watch(**args):
            pass


def test_diagnose_and_plots_reject_bad_input():
    with pytest.raises(TypeError, match="log"):
        monitor.diagnose({"grad_norm": np.ones((3, 2))})
    model = models.deep_mlp(3, 4, 1, 2)
    with monitor.watch(model) as empty:
        pass
    assert monitor.diagnose(empty) == []
    with pytest.raises(ValueError, match="no recorded step"):
        plotting.grad_norms_over_steps(empty)
    with pytest.raises(TypeError, match="log"):
        plotting.update_ratios(np.ones((3, 2)))
    with monitor.watch(model, sample_steps=[0]) as log:
        model(torch.ones(2, 3, dtype=torch.float64)).sum().backward()
    with pytest.raises(ValueError, match="optimizer"):
        plotting.update_ratios(log)
    with pytest.raises(ValueError, match="steps"):
        plotting.activation_histograms(log, steps=[5])
    with pytest.raises(ValueError, match="layers"):
        plotting.activation_histograms(log, layers=[7])
    with pytest.raises(ValueError, match="sample_steps"):
        plotting.activation_histograms(_synthetic(grad=np.ones((2, 2))))
    plt.close("all")


# ---------------------------------------------------------------- diagnose: each rule on a log built by hand
def _synthetic(grad, ratio=None, dead=None, saturated=None, activations=None):
    n, n_layers = grad.shape
    log = monitor.TrainingLog([f"{k} (Linear)" for k in range(n_layers)], activations or [""] * n_layers)
    nan = np.full((n, n_layers), np.nan)
    for i in range(n):
        row = {name: nan[i] for name in monitor.PER_LAYER} | {"grad_norm": grad[i], "weight_norm": np.ones(n_layers)}
        for name, values in (("update_ratio", ratio), ("dead_fraction", dead), ("saturated_fraction", saturated)):
            if values is not None:
                row[name] = values[i]
        log._append(10 * i, float(np.sqrt(np.nansum(grad[i] ** 2))), row)
    return log


def test_a_long_log_keeps_every_record():
    grad = np.arange(1.0, 601.0).reshape(200, 3)  # 200 records: the buffers grow past their first 64 rows
    log = _synthetic(grad)
    np.testing.assert_array_equal(log.grad_norm, grad)
    np.testing.assert_array_equal(log.steps, 10 * np.arange(200))
    np.testing.assert_allclose(log.total_grad_norm, np.linalg.norm(grad, axis=1))


def test_each_rule_fires_at_its_threshold_only_when_it_persists():
    healthy = np.ones((12, 3))
    assert monitor.diagnose(_synthetic(healthy, ratio=np.full((12, 3), 1e-3), dead=np.zeros((12, 3)))) == []
    # vanishing: layer 0 at 0.9 x the threshold from record 4 on; at 1.1 x it does not fire
    grad = healthy.copy()
    grad[4:, 0] = 0.9 * monitor.VANISHING_RATIO
    (finding,) = monitor.diagnose(_synthetic(grad))
    assert (finding.kind, finding.layer, finding.step) == ("vanishing", "0 (Linear)", 40)
    assert finding.value == pytest.approx(0.9 * monitor.VANISHING_RATIO) and "vanish" in finding.message
    grad[4:, 0] = 1.1 * monitor.VANISHING_RATIO
    assert monitor.diagnose(_synthetic(grad)) == []
    # one bad record out of twelve is noise, PERSIST in a row is a finding
    grad = healthy.copy()
    grad[6, 0] = 1e-6
    assert monitor.diagnose(_synthetic(grad)) == []
    grad[6 : 6 + monitor.PERSIST, 0] = 1e-6
    assert [f.kind for f in monitor.diagnose(_synthetic(grad))] == ["vanishing"]
    # exploding: growth then NaN counts as one streak, the NaN itself is reported at once
    grad = healthy.copy()
    grad[6:, 1] = [2e3, 1e4, 1e6, 1e8, np.inf, np.nan]
    kinds = [(f.kind, f.step, f.layer) for f in monitor.diagnose(_synthetic(grad))]
    assert kinds == [("exploding", 60, "1 (Linear)"), ("exploding", 100, "1 (Linear)")]
    # each exploding rule alone: all layers growing together (no spread), or a spread with no growth
    grad = healthy.copy()
    grad[3:] = 10.0 ** np.arange(1, 10)[:, None] * np.ones(3)
    ((kind, step, message),) = [(f.kind, f.step, f.message) for f in monitor.diagnose(_synthetic(grad))]
    assert kind == "exploding" and step == 60 and "grew" in message  # 10^4 from record 6 on, PERSIST records
    grad = healthy.copy()
    grad[:, 0] = 2 * monitor.EXPLODING_RATIO
    ((kind, step, message),) = [(f.kind, f.step, f.message) for f in monitor.diagnose(_synthetic(grad))]
    assert kind == "exploding" and step == 0 and "towards the input" in message
    # dead (ReLU) and saturated (tanh only)
    dead = np.zeros((12, 3))
    dead[:, 1] = monitor.DEAD_SHARE + 0.01
    (finding,) = monitor.diagnose(_synthetic(healthy, dead=dead, activations=["ReLU"] * 3))
    assert (finding.kind, finding.layer, finding.step) == ("dead", "1 (Linear)", 0)
    assert monitor.diagnose(_synthetic(healthy, dead=dead, activations=["LeakyReLU"] * 3)) == []  # slope 0.01
    saturated = np.full((12, 3), monitor.SATURATED_SHARE + 0.1)
    assert monitor.diagnose(_synthetic(healthy, saturated=saturated, activations=["ReLU"] * 3)) == []
    (finding,) = monitor.diagnose(_synthetic(healthy, saturated=saturated, activations=["ReLU", "Tanh", ""]))
    assert finding.kind == "dead" and finding.layer == "1 (Linear)" and "saturated" in finding.message
    # update ratio too large / too small, and zero: not learning
    ratio = np.full((12, 3), 1e-3)
    ratio[:, 0], ratio[:, 1], ratio[:, 2] = 0.5, 1e-6, 0.0
    found = {(f.kind, f.layer) for f in monitor.diagnose(_synthetic(healthy, ratio=ratio))}
    assert found == {("update_ratio", "0 (Linear)"), ("update_ratio", "1 (Linear)"), ("not_learning", "2 (Linear)")}
    grad = healthy.copy()
    grad[:, 0] = 0.0
    assert [(f.kind, f.layer) for f in monitor.diagnose(_synthetic(grad))] == [("not_learning", "0 (Linear)")]


# ---------------------------------------------------------------- diagnose on real runs built to fail
def _run(model, opt, seed, steps=50, batch=64):
    """Minibatch SGD/Adam on a generated 4-class problem (a random linear teacher), watched."""
    g = torch.Generator().manual_seed(1000 + seed)
    dtype = next(model.parameters()).dtype
    x = torch.randn(512, 20, generator=g, dtype=torch.float64)
    y = (x @ torch.randn(20, 4, generator=g, dtype=torch.float64)).argmax(1)
    x = x.to(dtype)
    with monitor.watch(model, opt) as log:
        for _ in range(steps):
            index = torch.randperm(512, generator=g)[:batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            opt.step()
    return log


def _mlp(seed, depth, activation, init, gain=1.0, width=64, dtype=torch.float64):
    return models.deep_mlp(20, width, depth, 4, activation=activation, init=init, gain=gain, dtype=dtype,
                           generator=torch.Generator().manual_seed(seed))


def _sgd(lr):
    return lambda model: torch.optim.SGD(model.parameters(), lr=lr)


def _adam(lr):
    return lambda model: torch.optim.Adam(model.parameters(), lr=lr)


HEALTHY = {
    "ReLU, He init, SGD": (lambda s: _mlp(s, 8, "relu", "kaiming_normal"), _sgd(0.05)),
    "tanh, Glorot init x 5/3, SGD": (lambda s: _mlp(s, 8, "tanh", "xavier_normal", 5 / 3), _sgd(0.05)),
    "ReLU, He init, Adam, float32": (lambda s: _mlp(s, 8, "relu", "kaiming_normal", dtype=torch.float32), _adam(1e-3)),
    "sigmoid, 2 layers, Glorot, SGD": (lambda s: _mlp(s, 2, "sigmoid", "xavier_normal"), _sgd(0.1)),
    # deeper and narrower (30 x 32) ReLU nets are born partly dead (Lu et al. 2019): up to ~0.6 of a layer
    "ReLU, 20 layers, He, SGD": (lambda s: _mlp(s, 20, "relu", "kaiming_normal"), _sgd(0.02)),
}
BROKEN = {  # name: (model, optimizer, the kind diagnose must name, kinds it must not name, words in the message)
    "vanishing: 15 sigmoid layers": (lambda s: _mlp(s, 15, "sigmoid", "normal"), _sgd(0.1), "vanishing",
                                     {"exploding", "dead"}, "vanish"),
    "vanishing: 20 tanh layers, weights x 0.5": (lambda s: _mlp(s, 20, "tanh", "normal", 0.5), _sgd(0.1), "vanishing",
                                                 {"exploding", "dead"}, "vanish"),
    "exploding: 20 ReLU layers, weights x 2": (lambda s: _mlp(s, 20, "relu", "normal", 2.0), _sgd(0.01), "exploding",
                                               {"vanishing"}, "non-finite"),
    "dead: ReLU, Adam at lr 0.1": (lambda s: _mlp(s, 8, "relu", "kaiming_normal"), _adam(0.1), "dead",
                                   {"exploding", "vanishing"}, "no gradient"),
    "saturated: tanh, weights x 5": (lambda s: _mlp(s, 6, "tanh", "normal", 5.0), _sgd(0.05), "dead",
                                     {"exploding", "vanishing", "update_ratio"}, "saturated"),
    "saturated: sigmoid, weights x 10, float32": (lambda s: _mlp(s, 6, "sigmoid", "normal", 10.0, dtype=torch.float32),
                                                  _sgd(0.05), "dead", {"exploding", "vanishing"}, "saturated"),
    "update ratio: SGD at lr 1e-6": (lambda s: _mlp(s, 4, "relu", "kaiming_normal"), _sgd(1e-6), "update_ratio",
                                     {"exploding", "vanishing", "dead", "not_learning"}, "too small"),
    "update ratio: Adam at lr 0.3": (lambda s: _mlp(s, 4, "tanh", "xavier_normal"), _adam(0.3), "update_ratio",
                                     {"exploding", "vanishing"}, "too large"),
    "not learning: first layer left out of the optimizer": (
        lambda s: _mlp(s, 4, "relu", "kaiming_normal"),
        lambda model: torch.optim.SGD(list(model.parameters())[2:], lr=0.05), "not_learning",
        {"exploding", "vanishing", "dead", "update_ratio"}, "does not learn"),
}
SEEDS = [0, 1, 2]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(HEALTHY))
def test_diagnose_finds_nothing_in_a_healthy_run(name, seed):
    build, optimizer = HEALTHY[name]
    model = build(seed)
    log = _run(model, optimizer(model), seed)
    assert monitor.diagnose(log) == [], [str(f) for f in monitor.diagnose(log)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(BROKEN))
def test_diagnose_names_the_problem_a_run_was_built_to_have(name, seed):
    build, optimizer, kind, wrong, words = BROKEN[name]
    model = build(seed)
    findings = monitor.diagnose(_run(model, optimizer(model), seed))
    kinds = {f.kind for f in findings}
    assert kind in kinds and not kinds & wrong, [str(f) for f in findings]
    assert any(words in f.message for f in findings if f.kind == kind)


# ---------------------------------------------------------------- plots
def test_plots_draw_one_curve_per_layer_and_the_reference_line():
    model = _mlp(0, 3, "tanh", "xavier_normal")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 20, dtype=torch.float64, generator=g), torch.arange(64) % 4
    with monitor.watch(model, opt, sample_steps=[0, 4]) as log:
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    ax = plotting.grad_norms_over_steps(log)
    assert len(ax.lines) == 4 and ax.get_yscale() == "log" and ax.get_title()
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), log.grad_norm[:, 0])
    ax = plotting.update_ratios(log)
    assert len(ax.lines) == 5 and list(ax.lines[-1].get_ydata()) == [monitor.UPDATE_RATIO_REFERENCE] * 2
    axes = plotting.activation_histograms(log, layers=[0, 3])
    assert len(axes) == 2 and "step 4" in axes[1].get_title() and len(axes[0].patches) == 2
    axes = plotting.activation_histograms(log, steps=[4], gradients=True)
    assert len(axes) == 1 and "dL/dh" in axes[0].get_xlabel()
    plt.close("all")


def test_in_place_activations_and_a_shared_activation_module():
    class Shared(nn.Module):  # one ReLU module used after both layers, as in many hand-written models
        def __init__(self, inplace):
            super().__init__()
            self.first, self.second, self.out, self.act = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 2), nn.ReLU(inplace)

        def forward(self, x):
            return self.out(self.act(self.second(self.act(self.first(x)))))

    logs = []
    for inplace in (False, True):
        torch.manual_seed(0)
        model = Shared(inplace).double()
        with monitor.watch(model) as log:
            x = torch.randn(20, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            model(x).pow(2).sum().backward()
        logs.append(log)
    assert logs[0].activation_names == ["ReLU", "ReLU", ""] and logs[0].layer_names[0] == "first (Linear)"
    for name in monitor.PER_LAYER:
        np.testing.assert_array_equal(getattr(logs[1], name), getattr(logs[0], name), err_msg=name)
    assert np.all(np.isfinite(logs[0].activation_grad_norm)) and np.all(logs[0].saturated_fraction[0, :2] > 0)


def test_update_ratio_of_a_zero_initialized_weight_is_inf_not_an_error():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    nn.init.zeros_(model[2].weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(16, dtype=torch.long)
    with monitor.watch(model, optimizer) as log:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert log.weight_norm[0, 1] == 0 and np.isinf(log.update_ratio[0, 1]) and np.isfinite(log.update_ratio[0, 0])


# ---------------------------------------------------------------- diagnose: non-finite values other than gradients
def test_diagnose_flags_nonfinite_activations_weights_and_losses_before_any_nonfinite_gradient():
    """A run stopped at its first NaN loss, before backward (as models.train does): its gradients and weights stay
    finite, only the last record's activations are not; notebook 05's lr-1.0 runs end this way (inf activations)."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(16, dtype=torch.long)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    with monitor.watch(model) as log:  # no optimizer: one record per backward pass, the last forward recorded at exit
        for step in range(3):
            if step == 2:
                x[3, 1] = math.inf  # a bad example: layer 0's output is inf/NaN, the loss NaN
            loss = nn.functional.cross_entropy(model(x), y)
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert np.all(np.isfinite(log.grad_norm)) and np.all(np.isfinite(log.weight_norm))  # no gradient rule can fire
    assert log.nonfinite_fraction[-1, 0] > 0 and np.all(log.nonfinite_fraction[:-1] == 0)
    assert monitor.diagnose(_synthetic(log.grad_norm)) == []  # the gradients alone show nothing
    (finding,) = [f for f in monitor.diagnose(log) if "non-finite" in f.message]
    assert (finding.kind, finding.step, finding.layer) == ("exploding", 2, log.layer_names[0])
    assert "activations" in finding.message
    with_loss = monitor.diagnose(log, losses=losses)
    assert ("exploding", "loss", 2) in {(f.kind, f.layer, f.step) for f in with_loss}
    # weights: a NaN weight is named even if the gradient norm happens to be finite
    grad = np.ones((3, 2))
    weights = np.ones((3, 2))
    weights[1, 1] = np.nan
    hand = monitor.TrainingLog(["0 (Linear)", "1 (Linear)"], ["", ""])
    for i in range(3):
        row = {name: np.full(2, np.nan) for name in monitor.PER_LAYER} | {"grad_norm": grad[i], "weight_norm": weights[i]}
        hand._append(i, 1.0, row)
    (finding,) = monitor.diagnose(hand)
    assert (finding.kind, finding.step, finding.layer) == ("exploding", 1, "1 (Linear)") and "weights" in finding.message
    assert [str(f) for f in monitor.diagnose(hand, losses=[1.0, 1.0, 1.0])] == [str(finding)]  # value is NaN: compare text
    with pytest.raises(ValueError, match="losses"):
        monitor.diagnose(hand, losses=np.ones((3, 2)))
    with pytest.raises(TypeError, match="losses"):
        monitor.diagnose(hand, losses="nan")
