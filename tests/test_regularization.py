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
    # p = 0.3, not 0.5: at 0.5, dividing by the keep or the drop probability is the same number
    x = rng.standard_normal((3, 4))
    upstream = rng.standard_normal((3, 4))
    _, mask = regularization.dropout(x, 0.3, rng)

    def f(v):
        return float(np.sum(v * mask / 0.7 * upstream))

    result = gradcheck.gradient_check(f, lambda v: regularization.dropout_backward(upstream, mask, 0.3), x)
    assert result.verdict == "correct"
    keep_drop_mixup = gradcheck.gradient_check(f, lambda v: upstream * mask / 0.3, x)
    assert keep_drop_mixup.verdict == "wrong"


def test_dropout_applies_a_given_mask_again_without_drawing(rng):
    x = rng.standard_normal((4, 5))
    out, mask = regularization.dropout(x, 0.3, rng)
    state = rng.bit_generator.state
    for given in (mask, mask.astype(bool)):
        again, same = regularization.dropout(x, 0.3, None, mask=given)
        np.testing.assert_array_equal(again, out)
        np.testing.assert_array_equal(same, mask)
    assert rng.bit_generator.state == state  # nothing drawn
    out_eval, ones = regularization.dropout(x, 0.3, None, training=False, mask=mask)
    np.testing.assert_array_equal(out_eval, x)
    np.testing.assert_array_equal(ones, np.ones_like(x))


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


def _adam_by_hand(grads, w0, lr, lam, decoupled, betas=(0.9, 0.999), eps=1e-8):
    """Adam (L2 in the gradient) or AdamW (decay outside the moments), written out from the papers."""
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            w = w * (1 - lr * lam)
        else:
            g = g + lam * w
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g**2
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


@pytest.mark.parametrize("optimizer, decoupled", [("adam", False), ("adamw", True)])
def test_retained_weight_fraction_is_adam_or_adamw_written_out(optimizer, decoupled):
    scales, steps, n, lr, lam = np.array([0.01, 3.0]), 30, 7, 0.05, 0.2
    ours = regularization.retained_weight_fraction(optimizer, lam, scales, lr=lr, steps=steps, n_weights=n,
                                                   generator=torch.Generator().manual_seed(4))
    noise = torch.Generator().manual_seed(4)  # the same draws, in the same order: one [groups, n] block per step
    draws = [scales[:, None] * torch.randn(len(scales), n, generator=noise, dtype=torch.float64).numpy()
             for _ in range(steps)]
    for k in range(len(scales)):
        by_hand = _adam_by_hand([d[k] for d in draws], np.ones(n), lr, lam, decoupled)
        assert ours[k] == pytest.approx(by_hand.mean(), rel=1e-10)


def test_retained_weight_fraction_shows_loshchilov_and_hutters_contrast():
    scales, lr, lam, steps = np.array([1e-3, 10.0]), 1e-2, 0.1, 300
    retained = {name: regularization.retained_weight_fraction(name, lam, scales, lr=lr, steps=steps, n_weights=500,
                                                              generator=torch.Generator().manual_seed(1))
                for name in ("adam", "adamw", "sgd")}
    # a mean of 500 weights random-walking by ~0.2 each: ~0.01 of noise
    np.testing.assert_allclose(retained["adamw"], (1 - lr * lam) ** steps, atol=0.04)
    assert retained["adam"][0] < 0.05 and retained["adam"][1] == pytest.approx((1 - lr * lam / 10) ** steps, abs=0.04)
    assert retained["sgd"][0] == pytest.approx((1 - lr * lam) ** steps, abs=1e-3)  # tiny noise: exact decay


def _spiral_nets(k, dropout=0.0, dtype=torch.float64):
    from helpers import models

    return [models.deep_mlp(2, 16, 2, 2, init="kaiming_normal", dropout=dropout, dtype=dtype,
                            generator=torch.Generator().manual_seed(i)) for i in range(k)]


def test_train_together_takes_the_adam_steps_of_models_train():
    import copy

    from helpers import data, models

    d = data.make_spirals(200, np.random.default_rng(0), noise=0.3)
    nets = _spiral_nets(3)
    alone = copy.deepcopy(nets)
    curves = regularization.train_together(nets, d.x_train, d.y_train, steps=25, lr=1e-2, weight_decay=1e-2,
                                           x_val=d.x_test, y_val=d.y_test, rng=np.random.default_rng(1))
    assert len(curves) == 3
    for net, reference, run in zip(nets, alone, curves):
        history = models.train(reference, d.x_train, d.y_train, steps=25, lr=1e-2, optimizer="adam",
                               weight_decay=1e-2, x_val=d.x_test, y_val=d.y_test)
        assert history.loss[-1] < history.loss[0] - 0.02  # the weights really moved
        # float64: the same arithmetic up to the order of a few sums (~1e-16 per step)
        np.testing.assert_allclose(run.loss, history.loss, rtol=1e-12)
        np.testing.assert_allclose(run.val_loss, history.val_loss, rtol=1e-12)
        for ours, theirs in zip(net.parameters(), reference.parameters()):  # written back into the networks
            np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_train_together_draws_inverted_dropout_masks_from_rng():
    from helpers import data, models

    d = data.make_spirals(100, np.random.default_rng(0), noise=0.3)
    nets = [models.deep_mlp(2, 16, 1, 2, dropout=0.3, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with torch.no_grad():  # the first step's training loss by hand: keep where U >= p, scale 1/(1 - p)
        keep = np.random.default_rng(5).random((2, len(d.x_train), 16), dtype=np.float32) >= 0.3
        by_hand = []
        for net, mask in zip(nets, keep):
            first, second = models.linear_layers(net)
            hidden = torch.relu(first(torch.tensor(d.x_train))) * torch.tensor(mask) / 0.7
            by_hand.append(torch.nn.functional.cross_entropy(second(hidden), torch.tensor(d.y_train)).item())
        eval_loss = [torch.nn.functional.cross_entropy(net.eval()(torch.tensor(d.x_train)),
                                                       torch.tensor(d.y_train)).item() for net in nets]
    curves = regularization.train_together(nets, d.x_train, d.y_train, steps=3, lr=1e-2, x_val=d.x_test,
                                           y_val=d.y_test, rng=np.random.default_rng(5))
    np.testing.assert_allclose([c.loss[0] for c in curves], by_hand, rtol=1e-12)
    assert not np.allclose(by_hand, eval_loss)  # the masks changed the loss: dropout was on
    again = regularization.train_together(_spiral_nets(2, dropout=0.3), d.x_train, d.y_train, steps=3, lr=1e-2,
                                          x_val=d.x_test, y_val=d.y_test, rng=np.random.default_rng(5))
    other = regularization.train_together(_spiral_nets(2, dropout=0.3), d.x_train, d.y_train, steps=3, lr=1e-2,
                                          x_val=d.x_test, y_val=d.y_test, rng=np.random.default_rng(6))
    same = regularization.train_together(_spiral_nets(2, dropout=0.3), d.x_train, d.y_train, steps=3, lr=1e-2,
                                         x_val=d.x_test, y_val=d.y_test, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(again[1].loss, same[1].loss)  # same rng, same masks, same run
    assert not np.array_equal(again[1].loss, other[1].loss)
    np.testing.assert_array_equal(again[1].val_loss[0], other[1].val_loss[0])  # validation: dropout off


def test_train_together_with_dropout_and_weight_decay_equals_one_adam_loop_per_network():
    """Several steps, dropout and L2 at once, against an independent reference: each network trained alone by a
    torch.optim.Adam loop that applies its own slice of the same numpy masks (one [K, n, width] draw per step)."""
    import copy

    from helpers import data, models

    d = data.make_spirals(100, np.random.default_rng(0), noise=0.3)
    nets = [models.deep_mlp(2, 16, 1, 2, dropout=0.3, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(i)) for i in range(2)]
    alone = copy.deepcopy(nets)
    steps, lr, decay = 4, 1e-2, 1e-2
    curves = regularization.train_together(nets, d.x_train, d.y_train, steps=steps, lr=lr, weight_decay=decay,
                                           x_val=d.x_test, y_val=d.y_test, rng=np.random.default_rng(5))
    draws = np.random.default_rng(5)
    keep = [draws.random((2, len(d.x_train), 16), dtype=np.float32) >= 0.3 for _ in range(steps)]
    x, y, x_val, y_val = (torch.tensor(a) for a in (d.x_train, d.y_train, d.x_test, d.y_test))
    for k, (net, reference, run) in enumerate(zip(nets, alone, curves)):
        first, second = models.linear_layers(reference)
        optimizer = torch.optim.Adam(reference.parameters(), lr=lr, weight_decay=decay)
        losses, val_losses = [], []
        for step in range(steps):
            with torch.no_grad():
                val_losses.append(torch.nn.functional.cross_entropy(second(torch.relu(first(x_val))), y_val).item())
            optimizer.zero_grad()
            hidden = torch.relu(first(x)) * torch.tensor(keep[step][k], dtype=torch.float64) / 0.7
            loss = torch.nn.functional.cross_entropy(second(hidden), y)
            losses.append(loss.item())
            loss.backward()
            optimizer.step()
        np.testing.assert_allclose(run.loss, losses, rtol=1e-12)  # float64: sums in another order only
        np.testing.assert_allclose(run.val_loss, val_losses, rtol=1e-12)
        for ours, theirs in zip(net.parameters(), reference.parameters()):
            np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert not np.allclose(curves[0].loss, curves[1].loss)  # two networks, two runs


def test_predict_probabilities_deterministic_and_monte_carlo():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8, dtype=torch.float64), torch.nn.ReLU(), torch.nn.Dropout(0.4),
                                torch.nn.Linear(8, 2, dtype=torch.float64))
    x = np.random.default_rng(0).standard_normal((5, 3))
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(torch.tensor(x)), dim=1).numpy()
    model.train()
    np.testing.assert_allclose(regularization.predict_probabilities(model, x), expected, rtol=1e-12)
    assert model.training  # the mode is restored
    state = torch.random.get_rng_state()
    one = regularization.predict_probabilities(model, x, mc_samples=3, generator=torch.Generator().manual_seed(2))
    again = regularization.predict_probabilities(model, x, mc_samples=3, generator=torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(one, again)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's global RNG is untouched
    assert not np.allclose(one, expected)  # thinned networks differ from the full one
    with torch.no_grad():  # the same masks by hand: k passes in train mode from the seed the generator gives
        seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(2)))
        torch.manual_seed(seed)
        by_hand = sum(torch.softmax(model(torch.tensor(x)), dim=1) for _ in range(3)).numpy() / 3
    np.testing.assert_allclose(one, by_hand, rtol=1e-12)
    np.testing.assert_allclose(one.sum(axis=1), 1.0)


def test_prediction_quality_matches_torch_cross_entropy(rng):
    logits = rng.standard_normal((50, 3)) * 2
    y = rng.integers(0, 3, 50)
    probabilities = torch.softmax(torch.tensor(logits), dim=1).numpy()
    quality = regularization.prediction_quality(probabilities, y)
    expected_loss = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(y)).item()
    assert quality["loss"] == pytest.approx(expected_loss, rel=1e-12)
    wrong = probabilities.argmax(axis=1) != y
    assert quality["error"] == wrong.mean()
    assert quality["confidence_on_errors"] == pytest.approx(probabilities.max(axis=1)[wrong].mean())


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda r: regularization.dropout(np.ones(3), 1.0, r), ValueError, "p"),
        (lambda r: regularization.dropout(np.ones(3), -0.1, r), ValueError, "p"),
        (lambda r: regularization.dropout(np.ones(3), 0.5, 0), TypeError, "rng"),
        (lambda r: regularization.dropout(np.ones(3), 0.5, r, training="no"), TypeError, "training"),
        (lambda r: regularization.dropout("x", 0.5, r), TypeError, "x"),
        (lambda r: regularization.dropout_backward(np.ones(3), np.ones(2), 0.5), ValueError, "mask"),
        (lambda r: regularization.dropout(np.ones(3), 0.5, None), TypeError, "rng"),
        (lambda r: regularization.dropout(np.ones(3), 0.5, None, mask=np.ones(2)), ValueError, "mask"),
        (lambda r: regularization.dropout(np.ones(3), 0.5, None, mask=np.full(3, 0.5)), ValueError, "mask"),
        (lambda r: regularization.l2_penalty(np.ones(3), 0.1), TypeError, "weights"),
        (lambda r: regularization.l2_penalty([], 0.1), TypeError, "weights"),
        (lambda r: regularization.l2_penalty([np.ones(3)], -0.1), ValueError, "lam"),
        (lambda r: regularization.l2_penalty_grad([np.ones(3)], float("nan")), ValueError, "lam"),
        (lambda r: regularization.sgd_weight_decay_step([np.ones(3)], [np.ones(2)], 0.1, 0.1), ValueError, "grads"),
        (lambda r: regularization.sgd_weight_decay_step([np.ones(3)], [np.ones(3)], 0.0, 0.1), ValueError, "lr"),
        (lambda r: regularization.retained_weight_fraction("rmsprop", 0.1, [1.0], generator=_g()), ValueError,
         "optimizer"),
        (lambda r: regularization.retained_weight_fraction("adam", 0.1, [1.0, 0.0], generator=_g()), ValueError,
         "grad_scales"),
        (lambda r: regularization.retained_weight_fraction("adam", -1.0, [1.0], generator=_g()), ValueError, "lam"),
        (lambda r: regularization.retained_weight_fraction("adam", 0.1, [1.0], generator=0), TypeError, "generator"),
        (lambda r: _together(nets="net"), TypeError, "nets"),
        (lambda r: _together(nets=_spiral_nets(1) + _spiral_nets(1, dropout=0.5)), ValueError, "nets"),
        (lambda r: _together(steps=0), ValueError, "steps"),
        (lambda r: _together(weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda r: _together(rng=0), TypeError, "rng"),
        (lambda r: _together(x=np.ones((4, 3))), ValueError, "x"),
        (lambda r: _together(y=np.ones(4)), ValueError, "y"),
        (lambda r: _together(y_val=np.zeros(3, dtype=int)), ValueError, "y_val"),
        (lambda r: regularization.predict_probabilities("net", np.ones((2, 3))), TypeError, "model"),
        (lambda r: regularization.predict_probabilities(torch.nn.Linear(3, 2), np.ones((2, 3)), mc_samples=2),
         TypeError, "generator"),
        (lambda r: regularization.predict_probabilities(torch.nn.Linear(3, 2), np.ones((2, 3)), mc_samples=-1),
         ValueError, "mc_samples"),
        (lambda r: regularization.prediction_quality(np.full((2, 2), 0.5), np.array([0.0, 1.0])), ValueError, "y"),
        (lambda r: regularization.prediction_quality(np.full((2, 2), 0.5), np.array([0, 2])), ValueError, "y"),
        (lambda r: regularization.prediction_quality(np.full(2, 0.5), np.array([0, 1])), ValueError, "probabilities"),
    ],
)
def test_regularization_rejects_bad_input(call, error, name, rng):
    with pytest.raises(error, match=rf"^{name}\b"):  # the message starts with the argument's name
        call(rng)


def _g():
    return torch.Generator().manual_seed(0)


def _together(**changes):
    arguments = dict(nets=_spiral_nets(2), x=np.ones((4, 2)), y=np.array([0, 1, 0, 1]), steps=2, lr=0.1,
                     x_val=np.ones((2, 2)), y_val=np.array([0, 1]), rng=np.random.default_rng(0))
    arguments.update(changes)
    nets = arguments.pop("nets")
    return regularization.train_together(nets, arguments.pop("x"), arguments.pop("y"), **arguments)
