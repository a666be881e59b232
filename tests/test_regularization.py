import numpy as np
import pytest
import torch

from helpers import gradcheck, regularization


def test_dropout_keeps_the_expectation_and_adds_the_predicted_variance(rng):
    x = np.full(200_000, 3.0)
    out, mask = regularization.dropout(x, 0.3, rng)
    assert set(np.unique(mask)) == {0.0, 1.0} and set(np.unique(out)) == {0.0, 3.0 / 0.7}
    assert out.mean() == pytest.approx(3.0, rel=0.01)
    assert out.var() == pytest.approx(9.0 * 0.3 / 0.7, rel=0.02)
    assert mask.mean() == pytest.approx(0.7, abs=0.005)


def test_dropout_is_identity_in_eval_and_at_p_zero(rng):
    x = rng.standard_normal((4, 5))
    for kwargs in ({"p": 0.5, "training": False}, {"p": 0.0}):
        state = rng.bit_generator.state
        out, mask = regularization.dropout(x, rng=rng, **kwargs)
        np.testing.assert_array_equal(out, x)
        np.testing.assert_array_equal(mask, np.ones_like(x))
        assert rng.bit_generator.state == state  # nothing drawn


def test_dropout_matches_torch_semantics(rng):
    # torch.nn.Dropout: p is the drop probability, survivors scaled by 1/(1-p), identity in eval mode
    x = torch.ones(100_000, dtype=torch.float64)
    layer = torch.nn.Dropout(0.25)
    torch_out = layer(x)
    ours, _ = regularization.dropout(x.numpy(), 0.25, rng)
    assert set(torch.unique(torch_out).tolist()) == set(np.unique(ours)) == {0.0, 1 / 0.75}
    assert abs((torch_out == 0).double().mean().item() - np.mean(ours == 0)) < 0.01
    layer.eval()
    assert torch.equal(layer(x), x)


def test_dropout_backward_passes_a_gradient_check_with_a_fixed_mask(rng):
    x = rng.standard_normal((3, 4))
    upstream = rng.standard_normal((3, 4))
    _, mask = regularization.dropout(x, 0.5, rng)

    def f(v):
        return float(np.sum(v * mask / 0.5 * upstream))

    result = gradcheck.gradient_check(f, lambda v: regularization.dropout_backward(upstream, mask, 0.5), x)
    assert result.verdict == "correct"


def test_l2_penalty_and_gradient_match_torch(rng):
    weights = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    tensors = [torch.tensor(w, requires_grad=True) for w in weights]
    penalty = 0.5 * 0.1 * sum((t**2).sum() for t in tensors)
    penalty.backward()
    assert regularization.l2_penalty(weights, 0.1) == pytest.approx(penalty.item(), rel=1e-12)
    for ours, t in zip(regularization.l2_penalty_grad(weights, 0.1), tensors):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-12)


def test_sgd_weight_decay_step_is_torch_sgd_weight_decay(rng):
    weights = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    before = [w.copy() for w in weights]
    ours = regularization.sgd_weight_decay_step(weights, grads, lr=0.1, lam=0.01)
    tensors = [torch.tensor(w, requires_grad=True) for w in weights]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g)
    torch.optim.SGD(tensors, lr=0.1, weight_decay=0.01).step()
    for mine, t in zip(ours, tensors):
        np.testing.assert_allclose(mine, t.detach().numpy(), rtol=1e-15, atol=1e-15)
    for w, b in zip(weights, before):
        np.testing.assert_array_equal(w, b)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda r: regularization.dropout(np.ones(3), 1.0, r), ValueError, "p"),
        (lambda r: regularization.dropout(np.ones(3), -0.1, r), ValueError, "p"),
        (lambda r: regularization.dropout(np.ones(3), 0.5, 0), TypeError, "rng"),
        (lambda r: regularization.dropout(np.ones(3), 0.5, r, training="no"), TypeError, "training"),
        (lambda r: regularization.dropout("x", 0.5, r), TypeError, "x"),
        (lambda r: regularization.dropout_backward(np.ones(3), np.ones(2), 0.5), ValueError, "mask"),
        (lambda r: regularization.l2_penalty(np.ones(3), 0.1), TypeError, "weights"),
        (lambda r: regularization.l2_penalty([], 0.1), TypeError, "weights"),
        (lambda r: regularization.l2_penalty([np.ones(3)], -0.1), ValueError, "lam"),
        (lambda r: regularization.l2_penalty_grad([np.ones(3)], float("nan")), ValueError, "lam"),
        (lambda r: regularization.sgd_weight_decay_step([np.ones(3)], [np.ones(2)], 0.1, 0.1), ValueError, "grads"),
        (lambda r: regularization.sgd_weight_decay_step([np.ones(3)], [np.ones(3)], 0.0, 0.1), ValueError, "lr"),
    ],
)
def test_regularization_rejects_bad_input(call, error, name, rng):
    with pytest.raises(error, match=name):
        call(rng)
