import functools
import math
import warnings

import numpy as np
import pytest
import torch

from helpers import gradcheck, layers

from .conftest import RTOL_FLOAT64


def _torch_mlp_loss(params, x, y, activation, l2, dropout_p=0.0, masks=None):
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    depth = len(params) // 2
    h = torch.tensor(x)
    act = torch.tanh if activation == "tanh" else torch.relu
    for k in range(1, depth + 1):
        h = h @ tparams[f"W{k}"].T + tparams[f"b{k}"]
        if k < depth:
            h = act(h)
            if dropout_p > 0:
                h = h * torch.tensor(masks[k - 1], dtype=torch.float64) / (1 - dropout_p)
    loss = torch.nn.functional.cross_entropy(h, torch.tensor(y))
    loss = loss + 0.5 * l2 * sum((tparams[f"W{k}"] ** 2).sum() for k in range(1, depth + 1))
    loss.backward()
    return loss.item(), {k: t.grad.numpy() for k, t in tparams.items()}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("l2, dropout_p", [(0.0, 0.0), (0.1, 0.0), (0.05, 0.3)])
def test_mlp_loss_and_gradients_match_torch_autograd(activation, l2, dropout_p, rng):
    params = layers.init_mlp([5, 8, 7, 3], rng)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    masks = layers.dropout_masks(params, 6, dropout_p, rng) if dropout_p else None
    loss, grads = layers.mlp_loss(params, x, y, activation=activation, l2=l2, dropout_p=dropout_p, masks=masks)
    expected_loss, expected = _torch_mlp_loss(params, x, y, activation, l2, dropout_p, masks)
    assert loss == pytest.approx(expected_loss, rel=RTOL_FLOAT64)
    assert grads.keys() == params.keys()
    for name in params:
        np.testing.assert_allclose(grads[name], expected[name], rtol=RTOL_FLOAT64, atol=1e-14, err_msg=name)


def test_softmax_cross_entropy_matches_torch(rng):
    logits, y = 30 * rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    t = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(t, torch.tensor(y))
    loss.backward()
    ours, dlogits = layers.softmax_cross_entropy(logits, y)
    assert ours == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(dlogits, t.grad.numpy(), rtol=1e-10, atol=1e-16)


def test_dropout_masks_keep_with_probability_one_minus_p(rng):
    params = layers.init_mlp([3, 400, 400, 2], rng)
    masks = layers.dropout_masks(params, 100, 0.25, rng)
    assert [m.shape for m in masks] == [(100, 400), (100, 400)] and masks[0].dtype == bool
    assert np.mean(masks) == pytest.approx(0.75, abs=0.01)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda p, r: layers.init_mlp([3], r), TypeError, "sizes"),
        (lambda p, r: layers.init_mlp([3, 0], r), ValueError, r"sizes\[1\]"),
        (lambda p, r: layers.init_mlp([3, 2], 0), TypeError, "rng"),
        (lambda p, r: layers.mlp_loss({}, np.ones((2, 3)), np.zeros(2, int)), TypeError, "params"),
        (lambda p, r: layers.mlp_loss({"W1": 1, "c1": 2}, np.ones((2, 3)), np.zeros(2, int)), ValueError, "W1 and b1"),
        (lambda p, r: layers.mlp_loss(p, np.ones(3), np.zeros(2, int)), ValueError, "x"),
        (lambda p, r: layers.mlp_loss(p, np.ones((2, 3)), np.zeros(2)), ValueError, "y"),
        (lambda p, r: layers.mlp_loss(p, np.ones((2, 3)), np.zeros(2, int), activation="elu"), ValueError, "activation"),
        (lambda p, r: layers.mlp_loss(p, np.ones((2, 3)), np.zeros(2, int), l2=-1.0), ValueError, "l2"),
        (lambda p, r: layers.mlp_loss(p, np.ones((2, 3)), np.zeros(2, int), dropout_p=1.0), ValueError, "dropout_p"),
        (lambda p, r: layers.mlp_loss(p, np.ones((2, 3)), np.zeros(2, int), dropout_p=0.5), ValueError, "masks"),
        (lambda p, r: layers.dropout_masks(p, 2, 1.0, r), ValueError, "p"),
    ],
)
def test_layers_reject_bad_input(call, error, name, rng):
    params = layers.init_mlp([3, 4, 2], rng)
    with pytest.raises(error, match=name):
        call(params, rng)


# --- gradcheck --------------------------------------------------------------------------------

def test_numerical_gradient_matches_analytic_and_torch(rng):
    x = rng.standard_normal((3, 4))
    a = rng.standard_normal((4, 4))

    def f(v):
        return float(np.sum(np.sin(v @ a)) + np.sum(v**3))

    analytic = np.cos(x @ a) @ a.T + 3 * x**2
    xt = torch.tensor(x, requires_grad=True)
    (torch.sin(xt @ torch.tensor(a)).sum() + (xt**3).sum()).backward()
    np.testing.assert_allclose(analytic, xt.grad.numpy(), rtol=1e-12)
    before = x.copy()
    numerical = gradcheck.numerical_gradient(f, x)
    np.testing.assert_array_equal(x, before)  # restored exactly
    np.testing.assert_allclose(numerical, analytic, rtol=1e-7, atol=1e-8)
    forward = gradcheck.numerical_gradient(f, x, eps=1e-7, method="forward")
    assert gradcheck.relative_error(forward, analytic) > 10 * gradcheck.relative_error(numerical, analytic)


def test_numerical_gradient_on_a_subset_and_centered_is_second_order():
    x = np.array([0.3, -1.2, 2.0])
    grad = gradcheck.numerical_gradient(lambda v: np.sum(np.exp(v)), x, indices=[(0,), (2,)])
    assert grad[1] == 0 and grad[0] == pytest.approx(math.exp(0.3), rel=1e-8)
    # truncation error of centered differences: e^x eps²/6, shrinking 100x when eps shrinks 10x
    errors = [abs(gradcheck.numerical_gradient(lambda v: np.exp(v).sum(), np.array([1.0]), eps)[0] - math.e)
              for eps in (1e-2, 1e-3)]
    assert errors[0] == pytest.approx(math.e * 1e-4 / 6, rel=0.01)
    assert errors[0] / errors[1] == pytest.approx(100, rel=0.05)


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0, 3.0])
    calls = []

    def f(v):
        calls.append(v.copy())
        if len(calls) == 3:
            raise RuntimeError("boom")
        return float(v.sum())

    with pytest.raises(RuntimeError, match="boom"):
        gradcheck.numerical_gradient(f, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def test_relative_error_and_bands():
    assert gradcheck.relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gradcheck.relative_error([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.sqrt(2) / 2)
    assert gradcheck.relative_error([2.0], [-2.0]) == 1.0
    assert [gradcheck.verdict(e) for e in (1e-9, 1e-5, 1e-3, 0.5, float("nan"))] == [
        "correct", "acceptable", "suspicious", "wrong", "wrong"]


def test_gradient_check_worked_example_and_worst_index():
    result = gradcheck.gradient_check(lambda t: float(t[0] ** 2), lambda t: 2 * t, np.array([3.0]))
    assert result.numerical[0] == pytest.approx(6.0, rel=1e-9) and result.verdict == "correct"
    wrong = gradcheck.gradient_check(lambda v: float(np.sum(v**2)), lambda v: 2 * v + np.array([0, 0, 1.0]),
                                     np.array([1.0, 2.0, 3.0]))
    assert wrong.worst_index == (2,) and wrong.verdict == "wrong" and "wrong" in str(wrong)


def test_gradient_check_warns_on_float32():
    x = np.array([1.0, 2.0], dtype=np.float32)
    with pytest.warns(UserWarning, match="float64"):
        gradcheck.gradient_check(lambda v: float(np.sum(v**2)), lambda v: 2 * v, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradcheck.gradient_check(lambda v: float(np.sum(v**2)), lambda v: 2 * v, x.astype(np.float64))


def test_check_parameters_and_directional_check_pass_for_the_mlp_and_catch_a_bug(rng):
    params = layers.init_mlp([4, 6, 3], rng)
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    loss = functools.partial(layers.mlp_loss, x=x, y=y, activation="tanh", l2=0.1)
    results = gradcheck.check_parameters(loss, params)
    assert all(r.relative_error < 1e-7 for r in results.values()), {k: r.relative_error for k, r in results.items()}
    flat_names = list(params)

    def f(v):
        return loss(dict(zip(flat_names, _unflatten(v, params))))[0]

    def grad_f(v):
        grads = loss(dict(zip(flat_names, _unflatten(v, params))))[1]
        return np.concatenate([grads[k].ravel() for k in flat_names])

    flat = np.concatenate([params[k].ravel() for k in flat_names])
    assert gradcheck.directional_check(f, grad_f, flat, rng) < 1e-7
    assert gradcheck.directional_check(f, lambda v: 1.1 * grad_f(v), flat, rng) > 1e-2


def _unflatten(flat, like):
    out, start = [], 0
    for value in like.values():
        out.append(flat[start:start + value.size].reshape(value.shape))
        start += value.size
    return out


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: gradcheck.numerical_gradient(3, np.ones(2)), TypeError, "f"),
        (lambda: gradcheck.numerical_gradient(np.sum, [1.0, 2.0]), TypeError, "x"),
        (lambda: gradcheck.numerical_gradient(np.sum, np.ones(2, dtype=int)), TypeError, "x"),
        (lambda: gradcheck.numerical_gradient(np.sum, np.ones(2), eps=0.0), ValueError, "eps"),
        (lambda: gradcheck.numerical_gradient(np.sum, np.ones(2), eps=-1e-6), ValueError, "eps"),
        (lambda: gradcheck.numerical_gradient(np.sum, np.ones(2), method="backward"), ValueError, "method"),
        (lambda: gradcheck.numerical_gradient(lambda v: v, np.ones(2)), ValueError, "scalar"),
        (lambda: gradcheck.relative_error(np.ones(2), np.ones(3)), ValueError, "shape"),
        (lambda: gradcheck.gradient_check(np.sum, None, np.ones(2)), TypeError, "grad_f"),
        (lambda: gradcheck.gradient_check(np.sum, lambda v: np.ones(3), np.ones(2)), ValueError, "grad_f"),
        (lambda: gradcheck.directional_check(np.sum, np.ones_like, np.ones(2), 0), TypeError, "rng"),
        (lambda: gradcheck.check_parameters(None, {"a": np.ones(2)}), TypeError, "loss_and_grads"),
        (lambda: gradcheck.check_parameters(lambda p: (0, p), {}), TypeError, "params"),
        (lambda: gradcheck.verdict(-1.0), ValueError, "error"),
    ],
)
def test_gradcheck_rejects_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_difference_errors_are_v_shaped_with_minimum_near_theory(dtype):
    # theory: the bottom of the V sits near eps = machine_eps**(1/2) with error machine_eps**(1/2)
    # (forward) and eps = machine_eps**(1/3) with error machine_eps**(2/3) (centered); one curve is
    # jagged (round-off), so read the median over many points, not one curve's lowest dip
    eps_values = np.logspace(-15, -1, 57)
    points = np.random.default_rng(7).uniform(-1, 1, 64).astype(np.float32).astype(np.float64)
    errors = gradcheck.difference_errors(np.exp, np.exp(points), points, eps_values, dtype=dtype)
    machine_eps = np.finfo(dtype).eps
    for method, eps_power, error_power in (("forward", 1 / 2, 1 / 2), ("centered", 1 / 3, 2 / 3)):
        median = np.median(errors[method], axis=0)
        best = np.argmin(median)
        assert 1 / 3 < eps_values[best] / machine_eps**eps_power < 3, (method, eps_values[best])
        # the prediction bounds the rounding; the median sits a few times below it
        assert machine_eps**error_power / 10 < median[best] < machine_eps**error_power, (method, median[best])
        assert median[0] > 100 * median[best] < median[-1]  # both arms of the V
    assert np.median(errors["centered"], axis=0).min() < np.median(errors["forward"], axis=0).min() / 10


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"f": 1}, TypeError, "f"),
        ({"derivative": 0.0}, ValueError, "derivative"),
        ({"dtype": np.float16}, TypeError, "dtype"),
        ({"eps_values": [1e-3, -1e-3]}, ValueError, "eps_values"),
        ({"x": "1"}, TypeError, "x"),
    ],
)
def test_difference_errors_rejects_bad_input(kwargs, error, name):
    args = {"f": np.exp, "derivative": math.e, "x": 1.0, "eps_values": [1e-3, 1e-4]} | kwargs
    with pytest.raises(error, match=name):
        gradcheck.difference_errors(**args)


def test_difference_errors_at_many_points_match_one_point_at_a_time(rng):
    eps_values = np.logspace(-12, -2, 11)
    points = rng.uniform(-1, 1, 4)
    for dtype in (np.float64, np.float32):
        many = gradcheck.difference_errors(np.sin, np.cos(points), points, eps_values, dtype=dtype)
        assert many["centered"].shape == many["forward"].shape == (4, 11)
        for i, point in enumerate(points):
            one = gradcheck.difference_errors(np.sin, math.cos(point), point, eps_values, dtype=dtype)
            for method in ("forward", "centered"):
                np.testing.assert_array_equal(many[method][i], one[method])
    # truncation alone at a large eps (float64): centered error = |f'''| eps²/6 / |f'| for sin
    point, eps = 0.3, 1e-3
    centered = gradcheck.difference_errors(np.sin, math.cos(point), point, [eps])["centered"][0]
    assert centered == pytest.approx(eps**2 / 6, rel=1e-3)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"x": np.ones((2, 2)), "derivative": np.ones((2, 2))}, ValueError, "x"),
        ({"x": np.ones(3), "derivative": np.ones(2)}, ValueError, "derivative"),
        ({"x": np.ones(2), "derivative": np.array([1.0, 0.0])}, ValueError, "derivative"),
    ],
)
def test_difference_errors_at_many_points_rejects_bad_input(kwargs, error, name):
    with pytest.raises(error, match=name):
        gradcheck.difference_errors(np.exp, eps_values=[1e-3], **kwargs)


def test_directional_errors_calls_grad_once_f_twice_per_direction_and_extends_directional_check(rng):
    a = rng.standard_normal((3, 4))
    x = rng.standard_normal((3, 4))
    counts = {"f": 0, "grad_f": 0}

    def f(v):
        counts["f"] += 1
        return float(np.sum(np.sin(a * v)))

    def grad_f(v):
        counts["grad_f"] += 1
        return a * np.cos(a * v)

    errors = gradcheck.directional_errors(f, grad_f, x, np.random.default_rng(5), 7)
    assert errors.shape == (7,) and counts == {"f": 14, "grad_f": 1}
    assert np.median(errors) < 1e-8
    # the first direction is the one directional_check draws from the same generator
    assert errors[0] == gradcheck.directional_check(f, grad_f, x, np.random.default_rng(5))
    wrong = gradcheck.directional_errors(f, lambda v: 1.1 * grad_f(v), x, np.random.default_rng(5), 7)
    np.testing.assert_allclose(wrong, 0.1 / 2.1, rtol=1e-6)  # |1.1 d - d| / (1.1 |d| + |d|) for any u


def test_directional_errors_of_a_correct_gradient_are_large_in_directions_orthogonal_to_it():
    # the documented caveat: with u nearly orthogonal to the gradient, both derivatives are round-off
    x = np.array([1.0, 2.0])

    def f(v):
        return float(v[0] + 1e-12 * v[1])

    def grad_f(v):
        return np.array([1.0, 1e-12])

    class Orthogonal(np.random.Generator):  # a "random" direction along the tiny component
        def standard_normal(self, size=None, dtype=np.float64, out=None):
            return np.array([0.0, 1.0])

    error = gradcheck.directional_errors(f, grad_f, x, Orthogonal(np.random.PCG64(0)), 1)[0]
    assert error > 1e-3  # a correct gradient, a bad verdict: read the median of several directions


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"n_directions": 0}, ValueError, "n_directions"),
        ({"n_directions": 2.0}, TypeError, "n_directions"),
        ({"rng": 3}, TypeError, "rng"),
        ({"grad_f": lambda v: np.ones(3)}, ValueError, "grad_f"),
        ({"eps": 0.0}, ValueError, "eps"),
    ],
)
def test_directional_errors_rejects_bad_input(kwargs, error, name):
    args = {"f": np.sum, "grad_f": np.ones_like, "x": np.ones(2), "rng": np.random.default_rng(0),
            "n_directions": 3} | kwargs
    with pytest.raises(error, match=name):
        gradcheck.directional_errors(**args)
