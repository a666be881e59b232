import numpy as np
import pytest
import torch

from helpers import chain

from .conftest import RTOL_FLOAT64


@pytest.mark.parametrize("activation", list(chain.ACTIVATIONS))
def test_backward_pass_matches_torch_autograd(activation, rng):
    depth, width, batch = 6, 16, 5
    weights = chain.make_weights(depth, width, 1.3, rng)
    x, top = rng.standard_normal((batch, width)), rng.standard_normal((batch, width))
    stats = chain.backward_pass(weights, x, top, activation)

    torch_act = {"linear": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation]
    ws = [torch.tensor(w, requires_grad=True) for w in weights]
    h = [torch.tensor(x, requires_grad=True)]
    for w in ws:
        h.append(torch_act(h[-1] @ w.T))
        h[-1].retain_grad()
    (h[-1] * torch.tensor(top)).sum().backward()
    expected = [t.grad.norm().item() for t in h]
    np.testing.assert_allclose(stats.grad_norms, expected, rtol=RTOL_FLOAT64)
    np.testing.assert_allclose(stats.weight_grad_norms, [w.grad.norm().item() for w in ws], rtol=RTOL_FLOAT64)
    np.testing.assert_allclose(stats.factors, np.array(expected[:-1]) / np.array(expected[1:]), rtol=RTOL_FLOAT64)
    np.testing.assert_allclose(stats.activation_std, [t.detach().std(unbiased=False).item() for t in h[1:]], rtol=1e-12)
    np.testing.assert_allclose(stats.grad_std, [t.grad.std(unbiased=False).item() for t in h], rtol=1e-12)


def test_backward_pass_handles_rectangular_layers(rng):
    widths = [7, 12, 3, 5]
    weights = [rng.standard_normal((n_out, n_in)) for n_in, n_out in zip(widths[:-1], widths[1:])]
    x, top = rng.standard_normal((4, 7)), rng.standard_normal((4, 5))
    stats = chain.backward_pass(weights, x, top, "tanh")
    h = [torch.tensor(x, requires_grad=True)]
    for w in weights:
        h.append(torch.tanh(h[-1] @ torch.tensor(w).T))
        h[-1].retain_grad()
    (h[-1] * torch.tensor(top)).sum().backward()
    np.testing.assert_allclose(stats.grad_norms, [t.grad.norm().item() for t in h], rtol=RTOL_FLOAT64)


def test_sigmoid_and_its_derivative_match_torch_and_bound(rng):
    x = np.concatenate([rng.normal(0, 5, 1000), [0.0, 800.0, -800.0]])
    t = torch.tensor(x, requires_grad=True)
    torch.sigmoid(t).sum().backward()
    np.testing.assert_allclose(chain.sigmoid(x), torch.sigmoid(t).detach().numpy(), rtol=1e-12, atol=0)
    # torch computes s * (1 - s), which loses relative precision in the tail: compare absolutely
    np.testing.assert_allclose(chain.sigmoid_grad(x), t.grad.numpy(), rtol=1e-12, atol=1e-15)
    exact = np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))) ** 2  # symmetric closed form
    np.testing.assert_allclose(chain.sigmoid_grad(x), exact, rtol=1e-13)
    assert chain.sigmoid_grad(x).max() == pytest.approx(0.25, abs=1e-15)
    assert np.all(np.isfinite(chain.sigmoid(x)))


def test_orthogonal_linear_chain_is_exactly_the_product(rng):
    weights = chain.make_weights(20, 32, 0.9, rng, kind="orthogonal")
    for w in weights:
        np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), 0.9, rtol=1e-12)
    stats = chain.backward_pass(weights, rng.standard_normal((8, 32)), rng.standard_normal((8, 32)), "linear")
    np.testing.assert_allclose(stats.factors, 0.9, rtol=1e-12)
    np.testing.assert_allclose(stats.grad_norms, chain.predicted_norms(stats, 0.9), rtol=1e-12)


def test_gaussian_weights_have_the_requested_scale(rng):
    weights = chain.make_weights(4, 400, 2.0, rng)
    assert np.std(np.concatenate([w.ravel() for w in weights])) == pytest.approx(2.0 / np.sqrt(400), rel=0.01)


def test_predicted_norms_follow_the_mean_field_factor_for_wide_layers(rng):
    # width 512: each factor fluctuates by ~1/sqrt(512); over 10 layers the product stays within 15%
    weights = chain.make_weights(10, 512, np.sqrt(2), rng)
    stats = chain.backward_pass(weights, rng.standard_normal((16, 512)), rng.standard_normal((16, 512)), "relu")
    np.testing.assert_allclose(stats.grad_norms, chain.predicted_norms(stats, np.sqrt(2)), rtol=0.15)
    np.testing.assert_allclose(stats.derivative_rms, np.sqrt(0.5), atol=0.05)  # half the ReLUs are on


@pytest.mark.parametrize("activation, a", [("sigmoid", 1.0), ("sigmoid", 8.0), ("tanh", 1.5), ("relu", 1.0)])
def test_predicted_factors_are_a_times_rms_slope_and_match_each_measured_factor(activation, a, rng):
    weights = chain.make_weights(8, 512, a, rng)
    stats = chain.backward_pass(weights, rng.standard_normal((32, 512)), rng.standard_normal((32, 512)), activation)
    predicted = chain.predicted_factors(stats, a)
    assert predicted.shape == stats.factors.shape == (8,)
    np.testing.assert_allclose(predicted, a * stats.derivative_rms, rtol=1e-15)
    # each factor fluctuates by ~1/sqrt(512) = 4.4 % around a * rms(f'); 15 % is > 3 sigma
    np.testing.assert_allclose(stats.factors, predicted, rtol=0.15)
    np.testing.assert_allclose(chain.predicted_norms(stats, a)[:-1] / chain.predicted_norms(stats, a)[1:], predicted,
                               rtol=1e-12)


def test_spectral_norms_are_the_largest_singular_values_computed_on_first_use(rng):
    weights = [rng.standard_normal((6, 4)), rng.standard_normal((3, 6))]
    stats = chain.backward_pass(weights, rng.standard_normal((2, 4)), rng.standard_normal((2, 3)), "relu")
    assert "spectral_norms" not in vars(stats)  # not computed by the pass itself (an SVD per layer)
    expected = [torch.linalg.matrix_norm(torch.tensor(w), ord=2).item() for w in weights]
    np.testing.assert_allclose(stats.spectral_norms, expected, rtol=1e-12)
    assert stats.spectral_norms is stats.spectral_norms  # cached


@pytest.mark.parametrize("radius", [0.95, 1.05])
def test_repeated_matrix_grows_at_the_spectral_radius(radius, rng):
    matrix = chain.matrix_with_spectral_radius(40, radius, rng)
    assert chain.spectral_radius(matrix) == pytest.approx(radius, rel=1e-12)
    assert np.max(np.abs(np.linalg.eigvals(matrix))) == pytest.approx(radius, rel=1e-12)
    norms = chain.repeated_matrix_norms(matrix, rng.standard_normal(40), 300)
    assert norms.shape == (301,)
    assert chain.growth_rate(norms, last=100) == pytest.approx(radius, rel=0.01)


def test_growth_rate_of_exact_geometric_sequence():
    assert chain.growth_rate(3.0 * 0.5 ** np.arange(11)) == pytest.approx(0.5, rel=1e-14)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda r: chain.make_weights(0, 4, 1.0, r), ValueError, "depth"),
        (lambda r: chain.make_weights(2, 4, 0.0, r), ValueError, "weight_scale"),
        (lambda r: chain.make_weights(2, 4, 1.0, 0), TypeError, "rng"),
        (lambda r: chain.make_weights(2, 4, 1.0, r, kind="xavier"), ValueError, "kind"),
        (lambda r: chain.backward_pass([], np.ones((2, 4)), np.ones((2, 4)), "relu"), TypeError, "weights"),
        (lambda r: chain.backward_pass([np.eye(4), np.eye(3)], np.ones((2, 4)), np.ones((2, 4)), "relu"),
         ValueError, r"weights\[1\]"),
        (lambda r: chain.backward_pass([np.ones((3, 4))], np.ones((2, 4)), np.ones((2, 4)), "relu"), ValueError, "top_grad"),
        (lambda r: chain.backward_pass([np.eye(4)], np.ones((2, 3)), np.ones((2, 3)), "relu"), ValueError, "x"),
        (lambda r: chain.backward_pass([np.eye(4)], np.ones((2, 4)), np.ones((3, 4)), "relu"), ValueError, "top_grad"),
        (lambda r: chain.backward_pass([np.eye(4)], np.ones((2, 4)), np.ones((2, 4)), "gelu"), ValueError, "activation"),
        (lambda r: chain.backward_pass([np.eye(4)], np.full((2, 4), np.nan), np.ones((2, 4)), "relu"), ValueError, "x"),
        (lambda r: chain.backward_pass([np.eye(4)], "abc", np.ones((2, 4)), "relu"), TypeError, "x"),
        (lambda r: chain.predicted_norms(np.ones(3), 1.0), TypeError, "stats"),
        (lambda r: chain.predicted_factors(np.ones(3), 1.0), TypeError, "stats"),
        (lambda r: chain.predicted_factors(chain.backward_pass([np.eye(2)], np.ones((1, 2)), np.ones((1, 2)), "relu"), 0.0),
         ValueError, "weight_scale"),
        (lambda r: chain.matrix_with_spectral_radius(3, -1.0, r), ValueError, "radius"),
        (lambda r: chain.spectral_radius(np.ones((2, 3))), ValueError, "square"),
        (lambda r: chain.repeated_matrix_norms(np.eye(3), np.ones(4), 5), ValueError, "match"),
        (lambda r: chain.repeated_matrix_norms(np.eye(3), np.ones(3), -1), ValueError, "steps"),
        (lambda r: chain.growth_rate(np.ones(5), last=5), ValueError, "last"),
        (lambda r: chain.growth_rate(np.array([1.0, 0.0]), last=1), ValueError, "positive"),
    ],
)
def test_chain_rejects_bad_input(call, error, name, rng):
    with pytest.raises(error, match=name):
        call(rng)
