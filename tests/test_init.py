import math

import numpy as np
import pytest
import torch

from helpers import init


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
