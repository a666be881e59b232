import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import models, stats

from .conftest import RTOL_FLOAT64


def test_deep_mlp_structure_and_dtype():
    model = models.deep_mlp(5, 8, 3, 2, activation="tanh")
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert [tuple(layer.weight.shape) for layer in models.linear_layers(model)] == [(8, 5), (8, 8), (8, 8), (2, 8)]
    assert model[0].weight.dtype == torch.float64
    assert model(torch.zeros(4, 5, dtype=torch.float64)).shape == (4, 2)


def test_default_init_draws_exactly_what_nn_linear_draws():
    # nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) on W, then U(±1/sqrt(fan_in)) on b
    ours = models.deep_mlp(30, 20, 1, 3, init="default", generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    for layer in models.linear_layers(ours):
        w = torch.empty_like(layer.weight)
        b = torch.empty_like(layer.bias)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
        nn.init.uniform_(b, -1 / math.sqrt(w.shape[1]), 1 / math.sqrt(w.shape[1]), generator=g)
        torch.testing.assert_close(layer.weight.detach(), w, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(layer.bias.detach(), b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "init, activation, gain, expected_std",
    [
        ("normal", "relu", 1.7, 1.7 / math.sqrt(400)),
        ("xavier_normal", "tanh", 1.0, math.sqrt(2 / 800)),
        ("xavier_uniform", "tanh", 5 / 3, 5 / 3 * math.sqrt(2 / 800)),
        ("kaiming_normal", "relu", 1.0, math.sqrt(2 / 400)),
        ("kaiming_uniform", "relu", 1.0, math.sqrt(2 / 400)),
        ("kaiming_normal", "tanh", 1.0, (5 / 3) / math.sqrt(400)),
        ("orthogonal", "linear", 0.5, 0.5 / math.sqrt(400)),
        ("default", "relu", 1.0, 1 / math.sqrt(3 * 400)),
    ],
)
def test_init_schemes_have_the_documented_std(init, activation, gain, expected_std):
    model = models.deep_mlp(400, 400, 2, 400, init=init, activation=activation, gain=gain,
                            generator=torch.Generator().manual_seed(0))
    w = model[2].weight.detach()
    assert w.std().item() == pytest.approx(expected_std, rel=0.01)


def test_orthogonal_and_constant_init():
    model = models.deep_mlp(16, 16, 2, 16, init="orthogonal", gain=2.0, generator=torch.Generator().manual_seed(0))
    w = model[2].weight.detach()
    torch.testing.assert_close(w @ w.T, 4.0 * torch.eye(16, dtype=torch.float64))
    const = models.deep_mlp(4, 6, 2, 3, init="constant")
    assert torch.unique(const[2].weight).numel() == 1 and torch.all(const[2].bias == 0)


def test_same_generator_seed_gives_same_model():
    a = models.deep_mlp(3, 5, 2, 2, init="kaiming_normal", generator=torch.Generator().manual_seed(1))
    b = models.deep_mlp(3, 5, 2, 2, init="kaiming_normal", generator=torch.Generator().manual_seed(1))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"depth": -1}, ValueError, "depth"),
        ({"width": 0}, ValueError, "width"),
        ({"width": 2.0}, TypeError, "width"),
        ({"activation": "gelu"}, ValueError, "activation"),
        ({"init": "he"}, ValueError, "init"),
        ({"gain": 0.0}, ValueError, "gain"),
        ({"gain": float("nan")}, ValueError, "gain"),
        ({"generator": np.random.default_rng(0)}, TypeError, "generator"),
        ({"dtype": torch.int64}, TypeError, "dtype"),
    ],
)
def test_deep_mlp_rejects_bad_input(kwargs, error, name):
    args = {"in_features": 3, "width": 4, "depth": 2, "out_features": 2} | kwargs
    with pytest.raises(error, match=name):
        models.deep_mlp(**args)


def _toy_problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def test_train_sgd_matches_a_hand_written_loop_and_reduces_loss():
    x, y = _toy_problem()
    model = models.deep_mlp(4, 16, 2, 2, activation="tanh", init="xavier_normal", generator=torch.Generator().manual_seed(0))
    reference = models.deep_mlp(4, 16, 2, 2, activation="tanh", init="xavier_normal", generator=torch.Generator().manual_seed(0))
    history = models.train(model, x, y, steps=30, lr=0.2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = torch.optim.SGD(reference.parameters(), lr=0.2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(reference(xt), yt)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    np.testing.assert_allclose(history.loss, losses, rtol=RTOL_FLOAT64)
    assert history.loss[-1] < 0.7 * history.loss[0]
    assert history.grad_norms.shape == (30, 3) and np.all(history.grad_norms > 0)
    assert history.diverged_at is None and np.all(history.relative_weight_change > 0)


def test_train_minibatches_are_reproducible_and_adam_runs():
    x, y = _toy_problem()
    runs = []
    for _ in range(2):
        model = models.deep_mlp(4, 8, 1, 2, generator=torch.Generator().manual_seed(0))
        runs.append(models.train(model, x, y, steps=10, lr=0.01, batch_size=16, optimizer="adam",
                                 generator=torch.Generator().manual_seed(3)).loss)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_train_stops_at_the_first_non_finite_loss():
    x, y = _toy_problem()
    model = models.deep_mlp(4, 32, 8, 2, activation="relu", init="normal", gain=4.0,
                            generator=torch.Generator().manual_seed(0))
    history = models.train(model, x * 100, y, steps=20, lr=10.0)
    assert history.diverged_at is not None and history.diverged_at < 20
    assert not np.isfinite(history.loss[history.diverged_at])
    assert np.all(np.isfinite(history.loss[: history.diverged_at]))
    assert np.all(np.isnan(history.loss[history.diverged_at + 1 :]))


def test_train_whose_first_loss_is_not_finite_reports_step_0_and_takes_no_step():
    x, y = _toy_problem()
    model = models.deep_mlp(4, 8, 2, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    history = models.train(model, x, y, steps=5, lr=0.1)
    assert history.diverged_at == 0 and np.all(np.isnan(history.loss))
    assert np.all(np.isfinite(history.weight_norms[0, 1:])) and np.all(np.isnan(history.weight_norms[1:]))
    assert np.all(np.isnan(history.grad_norms)) and np.all(np.isnan(history.total_grad_norm))


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"x": np.ones((64, 3))}, ValueError, "x"),
        ({"x": "data"}, TypeError, "x"),
        ({"y": np.zeros(10)}, ValueError, "y"),
        ({"loss": "hinge"}, ValueError, "loss"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"model": "mlp"}, TypeError, "model"),
        ({"model": nn.ReLU()}, ValueError, "Linear"),
    ],
)
def test_train_rejects_bad_input(kwargs, error, name):
    x, y = _toy_problem()
    args = {"model": models.deep_mlp(4, 8, 1, 2), "x": x, "y": y, "steps": 2, "lr": 0.1} | kwargs
    with pytest.raises(error, match=name):
        models.train(**args)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "linear"])
def test_record_layer_stats_matches_retain_grad(activation):
    model = models.deep_mlp(6, 10, 3, 4, activation=activation, init="xavier_normal",
                            generator=torch.Generator().manual_seed(0))
    x = torch.randn(32, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.arange(32) % 4
    with stats.record_layer_stats(model, max_samples=50) as recorded:
        nn.functional.cross_entropy(model(x), y).backward()

    # reference: the same pass by hand, keeping every hidden activation's gradient
    model.zero_grad()
    h, hidden = x, []
    for module in model:
        h = module(h)
        if not isinstance(module, nn.Linear):
            h.retain_grad()
            hidden.append(h)
    nn.functional.cross_entropy(h, y).backward()
    assert len(recorded.names) == 3 and recorded.names[0].startswith("layer 1")
    np.testing.assert_allclose(recorded.activation_std, [t.std().item() for t in hidden], rtol=RTOL_FLOAT64)
    np.testing.assert_allclose(recorded.activation_mean, [t.mean().item() for t in hidden], rtol=RTOL_FLOAT64, atol=1e-15)
    np.testing.assert_allclose(recorded.activation_grad_norm, [t.grad.norm().item() for t in hidden], rtol=RTOL_FLOAT64)
    layers = models.linear_layers(model)[:3]
    np.testing.assert_allclose(recorded.weight_grad_norm, [w.weight.grad.norm().item() for w in layers], rtol=RTOL_FLOAT64)
    assert all(s.size == 50 for s in recorded.activation_samples + recorded.grad_samples)


def test_saturation_is_measured_per_activation():
    model = models.deep_mlp(10, 50, 2, 2, activation="tanh", init="normal", gain=20.0,
                            generator=torch.Generator().manual_seed(0))
    x = torch.randn(100, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with stats.record_layer_stats(model) as saturated:
        model(x).sum().backward()
    assert saturated.saturated_fraction.min() > 0.8  # weights 20x too large: tanh is pinned at ±1
    relu = models.deep_mlp(10, 50, 2, 2, activation="relu", init="kaiming_normal", generator=torch.Generator().manual_seed(0))
    with stats.record_layer_stats(relu) as half:
        relu(x).sum().backward()
    np.testing.assert_allclose(half.saturated_fraction, 0.5, atol=0.1)  # half the ReLUs are off


def test_record_layer_stats_removes_hooks_even_on_error():
    model = models.deep_mlp(3, 4, 2, 2)
    with pytest.raises(ZeroDivisionError):
        with stats.record_layer_stats(model):
            raise ZeroDivisionError
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(RuntimeError, match="no forward pass"):
        with stats.record_layer_stats(model):
            pass
    with pytest.raises(ValueError, match="activation"):
        with stats.record_layer_stats(nn.Sequential(nn.Linear(2, 2))):
            pass
    with pytest.raises(TypeError, match="model"):
        with stats.record_layer_stats("model"):
            pass
    with pytest.raises(ValueError, match="max_samples"):
        with stats.record_layer_stats(model, max_samples=0):
            pass


def test_dead_unit_fraction_counts_units_off_for_every_input():
    model = models.deep_mlp(3, 4, 1, 2, activation="relu", init="constant")
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0, 0, 0], [0, 1.0, 0]]))
        model[0].bias.copy_(torch.tensor([0.0, 0.0, -1.0, 0.0]))
    x = np.array([[1.0, 2.0, 0.0], [2.0, -1.0, 0.0]])
    # unit 0 on for both rows, unit 1 never (x0 > 0), unit 2 never (bias -1), unit 3 on for row 0
    np.testing.assert_array_equal(stats.dead_unit_fraction(model, x), [0.5])
    with pytest.raises(ValueError, match="activation"):
        stats.dead_unit_fraction(nn.Sequential(nn.Linear(2, 2)), x)
    with pytest.raises(ValueError, match="x"):
        stats.dead_unit_fraction(model, np.ones(3))


def test_input_signal_share_is_the_across_input_share_of_each_activation_layers_energy():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2), nn.Sigmoid())
    x = torch.randn(50, 2, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    hidden = torch.relu(model[0](x)).detach().double()
    top = torch.sigmoid(model[2](hidden.float())).detach().double()
    expected = [float(torch.var(h, dim=0, unbiased=False).sum() / (h**2).sum(1).mean()) for h in (hidden, top)]
    np.testing.assert_allclose(stats.input_signal_share(model, x), expected, rtol=1e-6)
    constant = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
    with torch.no_grad():
        constant[0].weight.zero_()
        constant[0].bias.fill_(0.5)  # every input gives the same vector: no input signal
    assert stats.input_signal_share(constant, x)[0] == 0.0
    with pytest.raises(ValueError, match="x must have at least 2 rows"):
        stats.input_signal_share(model, x[:1])
    with pytest.raises(ValueError, match="x"):
        stats.input_signal_share(model, np.ones(3))
    with pytest.raises(ValueError, match=r"x must have shape \[n, 2\]"):
        stats.input_signal_share(model, np.ones((4, 3)))  # 3 features for a net that takes 2
    with pytest.raises(ValueError, match="activation"):
        stats.input_signal_share(nn.Sequential(nn.Linear(2, 2)), x)


def test_dropout_weight_decay_validation_and_accuracy():
    x, y = _toy_problem()
    model = models.deep_mlp(4, 16, 2, 2, dropout=0.5, generator=torch.Generator().manual_seed(0))
    assert sum(isinstance(m, nn.Dropout) for m in model) == 2
    history = models.train(model, x, y, steps=5, lr=0.1, weight_decay=0.01, x_val=x[:10], y_val=y[:10],
                           generator=torch.Generator().manual_seed(0))
    assert np.all(np.isfinite(history.val_loss)) and history.weight_norms.shape == (5, 3)
    fresh = models.deep_mlp(4, 16, 2, 2, dropout=0.5, generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():  # the validation loss before step 0 is the untrained model's, dropout off
        expected = nn.functional.cross_entropy(fresh(torch.tensor(x[:10])), torch.tensor(y[:10])).item()
    assert history.val_loss[0] == pytest.approx(expected, rel=1e-12)
    model.eval()
    assert models.accuracy(model, x, y) == pytest.approx(
        (model(torch.tensor(x)).argmax(1).numpy() == y).mean())
    # SGD weight_decay: the same trajectory as SGD on loss + lam/2 ||W||^2 for weights and biases
    a = models.deep_mlp(4, 8, 1, 2, init="xavier_normal", generator=torch.Generator().manual_seed(0))
    b = models.deep_mlp(4, 8, 1, 2, init="xavier_normal", generator=torch.Generator().manual_seed(0))
    models.train(a, x, y, steps=10, lr=0.1, weight_decay=0.05)
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    for _ in range(10):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(b(torch.tensor(x)), torch.tensor(y))
        (loss + 0.025 * sum((p**2).sum() for p in b.parameters())).backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-12, atol=1e-14)


def test_gradient_samples_and_predict_grid():
    x, y = _toy_problem()
    model = models.deep_mlp(4, 8, 1, 2, generator=torch.Generator().manual_seed(0))
    samples = models.gradient_samples(model, x, y, batch_size=64, n=3, generator=torch.Generator().manual_seed(0))
    n_params = sum(p.numel() for p in model.parameters())
    assert samples.shape == (3, n_params)
    np.testing.assert_allclose(samples[0], samples[1])  # batch = whole data set: no noise without dropout
    planar = models.deep_mlp(2, 8, 1, 3, generator=torch.Generator().manual_seed(0))
    xx, yy, probabilities = models.predict_grid(planar, [-1, 1], [-2, 2], 5)
    assert xx.shape == yy.shape == (5, 5) and probabilities.shape == (5, 5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=2), 1.0)
    with pytest.raises(ValueError, match="2 inputs"):
        models.predict_grid(model, [-1, 1], [-1, 1])
    with pytest.raises(TypeError, match="generator"):
        models.gradient_samples(model, x, y, batch_size=4, n=3, generator=None)
    with pytest.raises(ValueError, match="dropout"):
        models.deep_mlp(2, 3, 1, 2, dropout=1.0)
    with pytest.raises(ValueError, match="x_val"):
        models.train(model, x, y, steps=1, lr=0.1, x_val=x)
