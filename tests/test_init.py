import math

import numpy as np
import pytest
import torch

from helpers import init, models


@pytest.mark.parametrize("nonlinearity", init.NONLINEARITIES)
def test_calculate_gain_matches_torch_for_every_nonlinearity(nonlinearity):
    assert init.calculate_gain(nonlinearity) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity), rel=1e-15)


@pytest.mark.parametrize("slope", [None, 0, 0.01, 0.2, 1, -0.5, 3])
def test_leaky_relu_gain_matches_torch(slope):
    expected = torch.nn.init.calculate_gain("leaky_relu", slope)
    assert init.calculate_gain("leaky_relu", slope) == pytest.approx(expected, rel=1e-15)
    assert init.calculate_gain("leaky_relu", 0) == pytest.approx(math.sqrt(2), rel=1e-15)  # slope 0 is ReLU


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: init.calculate_gain("gelu"), ValueError, "nonlinearity"),
        (lambda: init.calculate_gain(3), TypeError, "nonlinearity"),
        (lambda: init.calculate_gain("leaky_relu", "0.1"), ValueError, "param"),
        (lambda: init.calculate_gain("leaky_relu", True), ValueError, "param"),
        (lambda: init.calculate_gain("leaky_relu", float("inf")), ValueError, "param"),
        (lambda: init.xavier_std(0, 10), ValueError, "fan_in"),
        (lambda: init.xavier_std(10, 2.5), TypeError, "fan_out"),
        (lambda: init.xavier_bound(10, 10, gain=-1.0), ValueError, "gain"),
        (lambda: init.xavier_std(10, 10, gain=float("nan")), ValueError, "gain"),
        (lambda: init.kaiming_std(0), ValueError, "fan"),
        (lambda: init.kaiming_bound(10, "swish"), ValueError, "nonlinearity"),
        (lambda: init.kaiming_std(10, "leaky_relu", a="x"), TypeError, "a"),
        (lambda: init.weight_std("he", 3, 3), ValueError, "scheme"),
        (lambda: init.sample_weights([3], "fan_in", np.random.default_rng(0)), TypeError, "widths"),
        (lambda: init.sample_weights("34", "fan_in", np.random.default_rng(0)), TypeError, "widths"),
        (lambda: init.sample_weights([3, 0], "fan_in", np.random.default_rng(0)), ValueError, r"widths\[1\]"),
        (lambda: init.sample_weights([3, 4], "fan_in", 0), TypeError, "rng"),
    ],
)
def test_init_rejects_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()


def _same_draws(torch_init, ours_sampler, shape=(300, 200)):
    """Draw with torch's initializer and with ``ours_sampler`` from the same generator state."""
    a, b = torch.empty(shape, dtype=torch.float64), torch.empty(shape, dtype=torch.float64)
    torch_init(a, torch.Generator().manual_seed(0))
    ours_sampler(b, torch.Generator().manual_seed(0))
    return a, b


@pytest.mark.parametrize("gain", [1.0, 5 / 3, math.sqrt(2)])
def test_xavier_numbers_are_torchs(gain):
    fan_out, fan_in = 300, 200
    bound = init.xavier_bound(fan_in, fan_out, gain)
    a, b = _same_draws(lambda t, g: torch.nn.init.xavier_uniform_(t, gain=gain, generator=g),
                       lambda t, g: t.uniform_(-bound, bound, generator=g))
    torch.testing.assert_close(a, b, rtol=1e-14, atol=0)
    a, b = _same_draws(lambda t, g: torch.nn.init.xavier_normal_(t, gain=gain, generator=g),
                       lambda t, g: t.normal_(0.0, init.xavier_std(fan_in, fan_out, gain), generator=g))
    torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


@pytest.mark.parametrize("nonlinearity, a", [("relu", 0.0), ("leaky_relu", 0.2), ("tanh", 0.0), ("linear", 0.0), ("selu", 0.0)])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_numbers_are_torchs(nonlinearity, a, mode):
    fan = 200 if mode == "fan_in" else 300
    kwargs = dict(a=a, mode=mode, nonlinearity=nonlinearity)
    bound = init.kaiming_bound(fan, nonlinearity, a)
    x, y = _same_draws(lambda t, g: torch.nn.init.kaiming_uniform_(t, generator=g, **kwargs),
                       lambda t, g: t.uniform_(-bound, bound, generator=g))
    torch.testing.assert_close(x, y, rtol=1e-14, atol=0)
    x, y = _same_draws(lambda t, g: torch.nn.init.kaiming_normal_(t, generator=g, **kwargs),
                       lambda t, g: t.normal_(0.0, init.kaiming_std(fan, nonlinearity, a), generator=g))
    torch.testing.assert_close(x, y, rtol=1e-14, atol=0)


def test_standard_init_is_nn_linear_default():
    layer = torch.nn.Linear(400, 300, dtype=torch.float64)
    bound = 1 / math.sqrt(400)
    assert layer.weight.abs().max().item() <= bound
    assert layer.weight.std().item() == pytest.approx(init.weight_std("standard", 400, 300), rel=0.02)
    assert init.weight_std("standard", 400, 300) == pytest.approx(bound / math.sqrt(3), rel=1e-15)


@pytest.mark.parametrize("scheme", [s for s in init.SCHEMES if s not in ("constant", "orthogonal")])
def test_sample_weights_have_the_scheme_std(scheme):
    weights = init.sample_weights([500, 300, 700], scheme, np.random.default_rng(0), gain=1.3, nonlinearity="tanh")
    assert [w.shape for w in weights] == [(300, 500), (700, 300)]
    for w, (fan_in, fan_out) in zip(weights, [(500, 300), (300, 700)]):
        expected = init.weight_std(scheme, fan_in, fan_out, gain=1.3, nonlinearity="tanh")
        assert w.std() == pytest.approx(expected, rel=0.01)
        assert abs(w.mean()) < 0.01 * expected
        if scheme.endswith("uniform") or scheme == "standard":
            assert np.abs(w).max() <= math.sqrt(3) * expected


def test_orthogonal_and_constant_weights():
    rng = np.random.default_rng(0)
    wide, tall = init.sample_weights([30, 10, 40], "orthogonal", rng, gain=2.0)
    np.testing.assert_allclose(wide @ wide.T, 4 * np.eye(10), atol=1e-12)   # orthonormal rows
    np.testing.assert_allclose(tall.T @ tall, 4 * np.eye(10), atol=1e-12)   # orthonormal columns
    assert init.weight_std("orthogonal", 30, 10, gain=2.0) == pytest.approx(np.sqrt(np.mean(wide**2)), rel=1e-12)
    (const,) = init.sample_weights([4, 3], "constant", rng, gain=2.0)
    np.testing.assert_array_equal(const, np.full((3, 4), 0.5))


def _orthogonal(n, rng):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def test_log_singular_values_match_svd_where_svd_is_exact():
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(shape) for shape in [(8, 6), (9, 8), (5, 9)]]  # P is 5 x 6
    direct = np.linalg.svd(weights[2] @ weights[1] @ weights[0], compute_uv=False)
    ours = init.log_singular_values(weights, max_sweeps=2000, tol=1e-13)
    np.testing.assert_allclose(ours, np.log(direct), atol=1e-8)


def test_log_singular_values_keep_what_the_direct_product_loses():
    # W_l = U_l D U_{l-1}^T, so P = U_L D^L U_0^T has singular values d_i^L exactly: 1e-40 ... 1e40
    rng, depth, d = np.random.default_rng(2), 40, np.logspace(-1, 1, 6)
    frames = [_orthogonal(6, rng) for _ in range(depth + 1)]
    weights = [frames[i + 1] @ np.diag(d) @ frames[i].T for i in range(depth)]
    exact = np.sort(depth * np.log(d))[::-1]
    np.testing.assert_allclose(init.log_singular_values(weights), exact, atol=1e-6)
    direct = np.linalg.svd(np.linalg.multi_dot(weights[::-1]), compute_uv=False)
    assert direct.min() > 1e20 * np.exp(exact[-1])  # the direct SVD is lost in round-off


def test_log_singular_values_sum_to_log_det_and_vanish_for_orthogonal_weights():
    rng = np.random.default_rng(3)
    gaussian = init.sample_weights([32] * 51, "fan_in", rng)
    log_det = sum(np.linalg.slogdet(w)[1] for w in gaussian)
    assert init.log_singular_values(gaussian).sum() == pytest.approx(log_det, rel=1e-10)
    orthogonal = init.sample_weights([32] * 51, "orthogonal", rng)
    np.testing.assert_allclose(init.log_singular_values(orthogonal), 0.0, atol=1e-10)


def _regression(rng, n=200, d_in=5, d_out=3):
    x = rng.standard_normal((n, d_in))
    return x, x @ rng.standard_normal((d_in, d_out)) + 0.5 * rng.standard_normal((n, d_out))


def test_linear_task_loss_is_the_data_loss_and_best_loss_is_least_squares():
    rng = np.random.default_rng(4)
    x, y = _regression(rng)
    task = init.LinearTask.from_data(x, y)
    product = rng.standard_normal((3, 5))
    assert task.loss(product) == pytest.approx(0.5 * np.mean(np.sum((y - x @ product.T) ** 2, axis=1)), rel=1e-12)
    solution = np.linalg.lstsq(x, y, rcond=None)[0]
    assert task.best_loss() == pytest.approx(0.5 * np.mean(np.sum((y - x @ solution) ** 2, axis=1)), rel=1e-10)


def test_train_deep_linear_takes_torchs_gradient_steps():
    rng = np.random.default_rng(5)
    x, y = _regression(rng)
    weights = init.sample_weights([5, 7, 6, 3], "fan_in", rng)
    before = [w.copy() for w in weights]
    losses = init.train_deep_linear(weights, init.LinearTask.from_data(x, y), lr=0.05, max_steps=3)
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    optimizer = torch.optim.SGD(params, lr=0.05)
    expected = []
    for _ in range(4):
        out = torch.tensor(x) @ params[0].T @ params[1].T @ params[2].T
        loss = 0.5 * ((torch.tensor(y) - out) ** 2).sum(dim=1).mean()
        expected.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    for w, w0 in zip(weights, before):
        np.testing.assert_array_equal(w, w0)  # the caller's weights are not modified


def test_train_deep_linear_stops_at_the_target_or_when_it_diverges():
    rng = np.random.default_rng(6)
    x, y = _regression(rng)
    task = init.LinearTask.from_data(x, y)
    weights = init.sample_weights([5, 8, 3], "orthogonal", rng)
    full = init.train_deep_linear(weights, task, lr=0.05, max_steps=300)
    target = full[0] - 0.5 * (full[0] - full[-1])
    stopped = init.train_deep_linear(weights, task, lr=0.05, max_steps=300, target=target)
    first = int(np.argmax(full <= target))
    np.testing.assert_array_equal(stopped, full[: first + 1])
    diverged = init.train_deep_linear(weights, task, lr=50.0, max_steps=300)
    assert len(diverged) < 300 and not diverged[-1] < 1e6


def test_steps_to_loss_is_the_fastest_rate_of_the_grid():
    rng = np.random.default_rng(7)
    x, y = _regression(rng)
    task = init.LinearTask.from_data(x, y)
    weights = init.sample_weights([5, 8, 8, 3], "fan_in", rng)
    target = task.best_loss() + 0.1 * (task.output_moment / 2 - task.best_loss())
    lrs = [0.4, 0.2, 0.1, 0.05, 0.02]
    counts = {}
    for lr in lrs:
        losses = init.train_deep_linear(weights, task, lr=lr, max_steps=2000, target=target)
        if losses[-1] <= target:
            counts[lr] = len(losses) - 1
    fastest = min(counts, key=counts.get)
    assert init.steps_to_loss(weights, task, lrs=lrs, target=target, max_steps=2000) == (counts[fastest], fastest)
    assert init.steps_to_loss(weights, task, lrs=[1e-6], target=target, max_steps=5) == (None, None)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: init.log_singular_values(np.eye(3)), TypeError, "weights"),
        (lambda: init.log_singular_values([np.eye(3), np.eye(4)]), ValueError, r"weights\[1\]"),
        (lambda: init.log_singular_values([np.ones(3)]), ValueError, r"weights\[0\]"),
        (lambda: init.log_singular_values([np.eye(3)], max_sweeps=0), ValueError, "max_sweeps"),
        (lambda: init.LinearTask.from_data(np.ones((3, 2)), np.ones((4, 1))), ValueError, "rows"),
        (lambda: init.train_deep_linear([np.eye(2)], "task", lr=0.1, max_steps=1), TypeError, "task"),
        (lambda: init.train_deep_linear([np.eye(2)], init.LinearTask(np.eye(2), np.eye(2), 2.0), lr=0.0, max_steps=1),
         ValueError, "lr"),
        (lambda: init.steps_to_loss([np.eye(2)], init.LinearTask(np.eye(2), np.eye(2), 2.0), lrs=[], target=0.1,
                                    max_steps=1), ValueError, "lrs"),
    ],
)
def test_deep_linear_helpers_reject_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()


def _side_by_side_nets(activation):
    return [models.deep_mlp(5, 8, 3, 3, activation=activation, init=scheme, generator=torch.Generator().manual_seed(k))
            for k, scheme in enumerate(("kaiming_normal", "constant", "default"))]  # default: non-zero biases


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("batch_size", [None, 20])
def test_train_side_by_side_takes_the_steps_of_models_train(activation, batch_size):
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((50, 5)), rng.integers(0, 3, 50)
    lrs, nets, references = [0.1, 0.5, 0.05], _side_by_side_nets(activation), _side_by_side_nets(activation)
    histories = init.train_side_by_side(nets, x, y, lrs=lrs, steps=7, batch_size=batch_size, x_val=x[:10],
                                        y_val=y[:10], generator=torch.Generator().manual_seed(3))
    for net, reference, lr, history in zip(nets, references, lrs, histories):
        expected = models.train(reference, x, y, steps=7, lr=lr, batch_size=batch_size, x_val=x[:10], y_val=y[:10],
                                generator=torch.Generator().manual_seed(3))
        for field in ("loss", "val_loss", "grad_norms", "weight_norms", "total_grad_norm", "relative_weight_change"):
            np.testing.assert_allclose(getattr(history, field), getattr(expected, field), rtol=1e-10, atol=1e-14,
                                       err_msg=field)
        assert history.diverged_at is None and np.all(history.loss[1:] != history.loss[0])  # it did train
        for trained, reference_parameter in zip(net.parameters(), reference.parameters()):
            np.testing.assert_allclose(trained.detach().numpy(), reference_parameter.detach().numpy(), rtol=1e-10,
                                       atol=1e-14)
    assert np.all(np.isnan(init.train_side_by_side(_side_by_side_nets("relu"), x, y, lrs=lrs, steps=2)[0].val_loss))


def test_train_side_by_side_takes_the_steps_of_models_train_in_float32_up_to_rounding():
    # float32 sums in a different order when the nets are stacked: the first steps agree to rounding
    # (~1e-7 relative), which later compounds (notebook 02's lr-0.05 runs part after a few dozen steps)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((200, 40)), rng.integers(0, 10, 200)

    def nets():
        return [models.deep_mlp(40, 64, 10, 10, init="kaiming_normal", dtype=torch.float32,
                                generator=torch.Generator().manual_seed(k)) for k in range(2)]

    lrs, stacked, references = [0.05, 0.02], nets(), nets()
    histories = init.train_side_by_side(stacked, x, y, lrs=lrs, steps=5, batch_size=64, x_val=x[:64], y_val=y[:64],
                                        generator=torch.Generator().manual_seed(1))
    for reference, lr, history in zip(references, lrs, histories):
        expected = models.train(reference, x, y, steps=5, lr=lr, batch_size=64, x_val=x[:64], y_val=y[:64],
                                generator=torch.Generator().manual_seed(1))
        for field in ("loss", "val_loss", "grad_norms", "weight_norms", "total_grad_norm"):
            np.testing.assert_allclose(getattr(history, field), getattr(expected, field), rtol=1e-5, err_msg=field)
        assert np.all(history.loss[1:] != history.loss[0])  # it did train


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda nets, x, y: init.train_side_by_side(nets[0], x, y, lrs=[0.1], steps=1), TypeError, "nets"),
        (lambda nets, x, y: init.train_side_by_side([nets[0], models.deep_mlp(5, 8, 2, 3)], x, y, lrs=[0.1, 0.1],
                                                    steps=1), ValueError, "nets"),
        (lambda nets, x, y: init.train_side_by_side([models.deep_mlp(5, 8, 3, 3, dropout=0.5)], x, y, lrs=[0.1],
                                                    steps=1), ValueError, "nets"),
        (lambda nets, x, y: init.train_side_by_side(nets, x, y, lrs=[0.1], steps=1), ValueError, "lrs"),
        (lambda nets, x, y: init.train_side_by_side(nets, x, y, lrs=[0.1, 0.0, 0.1], steps=1), ValueError, "lrs"),
        (lambda nets, x, y: init.train_side_by_side(nets, x, y, lrs=[0.1] * 3, steps=0), ValueError, "steps"),
        (lambda nets, x, y: init.train_side_by_side(nets, x, y, lrs=[0.1] * 3, steps=1, batch_size=0), ValueError,
         "batch_size"),
        (lambda nets, x, y: init.train_side_by_side(nets, x, y[:5], lrs=[0.1] * 3, steps=1), ValueError, "y"),
        (lambda nets, x, y: init.train_side_by_side(nets, x[0], y, lrs=[0.1] * 3, steps=1), ValueError, "x"),
        (lambda nets, x, y: init.train_side_by_side(nets, x, y, lrs=[0.1] * 3, steps=1, x_val=x), ValueError,
         "y_val"),
        (lambda nets, x, y: init.train_side_by_side(nets, x * np.inf, y, lrs=[0.1] * 3, steps=1), ValueError, "x"),
    ],
)
def test_train_side_by_side_rejects_bad_input(call, error, name):
    rng = np.random.default_rng(0)
    with pytest.raises(error, match=name):
        call(_side_by_side_nets("relu"), rng.standard_normal((10, 5)), rng.integers(0, 3, 10))


def test_train_side_by_side_stops_on_a_diverging_net():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="non-finite"):
        init.train_side_by_side([models.deep_mlp(5, 8, 3, 3, activation="linear", init="kaiming_normal")],
                                rng.standard_normal((10, 5)), rng.integers(0, 3, 10), lrs=[100.0], steps=50)
