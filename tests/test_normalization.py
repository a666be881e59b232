"""BatchNorm/LayerNorm from scratch against torch, the noise module, the landscape probe and the deep-net helpers."""

import math

import numpy as np
import pytest
import torch

from helpers import gradcheck, normalization, residual

EXACT = 1e-12  # float64 agreement with torch: same formula, only the summation order differs


def _bn_torch(x, gamma, beta, momentum=0.1):
    layer = torch.nn.BatchNorm1d(x.shape[1], momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma))
        layer.bias.copy_(torch.tensor(beta))
    return layer


def test_batchnorm_matches_torch_in_training_and_eval_over_several_steps():
    rng = np.random.default_rng(0)
    gamma, beta = rng.normal(1, 0.3, 5), rng.normal(0, 0.3, 5)
    layer = _bn_torch(np.zeros((2, 5)), gamma, beta, momentum=0.3)
    running = normalization.initial_running_stats(5)
    for _ in range(3):
        x = rng.normal(2.0, 3.0, (7, 5))
        out, cache, running = normalization.batchnorm_forward(x, gamma, beta, running, momentum=0.3)
        xt = torch.tensor(x, requires_grad=True)
        out_t = layer(xt)
        np.testing.assert_allclose(out, out_t.detach().numpy(), atol=EXACT)
        np.testing.assert_allclose(running.mean, layer.running_mean.numpy(), atol=EXACT)
        np.testing.assert_allclose(running.var, layer.running_var.numpy(), atol=EXACT)
        dout = rng.standard_normal(out.shape)
        out_t.backward(torch.tensor(dout))
        dx, dgamma, dbeta = normalization.batchnorm_backward(dout, cache)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=EXACT)
        np.testing.assert_allclose(dgamma, layer.weight.grad.numpy(), atol=EXACT)
        np.testing.assert_allclose(dbeta, layer.bias.grad.numpy(), atol=EXACT)
        layer.zero_grad()
    layer.eval()
    x = rng.normal(1.0, 2.0, (4, 5))
    out, cache, after = normalization.batchnorm_forward(x, gamma, beta, running, training=False)
    xt = torch.tensor(x, requires_grad=True)
    out_t = layer(xt)
    np.testing.assert_allclose(out, out_t.detach().numpy(), atol=EXACT)
    assert after is running  # eval mode leaves the running statistics alone
    dout = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(normalization.batchnorm_backward(dout, cache)[0], xt.grad.numpy(), atol=EXACT)


def test_layernorm_matches_torch():
    rng = np.random.default_rng(1)
    x, gamma, beta = rng.normal(-1, 2, (6, 9)), rng.normal(1, 0.3, 9), rng.normal(0, 0.3, 9)
    layer = torch.nn.LayerNorm(9, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma))
        layer.bias.copy_(torch.tensor(beta))
    xt = torch.tensor(x, requires_grad=True)
    out_t = layer(xt)
    out, cache = normalization.layernorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out, out_t.detach().numpy(), atol=EXACT)
    dout = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    dx, dgamma, dbeta = normalization.layernorm_backward(dout, cache)
    for mine, theirs in ((dx, xt.grad), (dgamma, layer.weight.grad), (dbeta, layer.bias.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=EXACT)


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_backward_passes_the_gradient_check(kind):
    rng = np.random.default_rng(2)
    x, gamma, beta = rng.normal(0.5, 2, (5, 4)), rng.normal(1, 0.3, 4), rng.normal(0, 0.3, 4)
    weights = rng.standard_normal((5, 4))
    running = normalization.initial_running_stats(4)

    def forward(v):
        if kind == "batch":
            return normalization.batchnorm_forward(v, gamma, beta, running)[:2]
        return normalization.layernorm_forward(v, gamma, beta)

    def grad(v):
        _, cache = forward(v)
        backward = normalization.batchnorm_backward if kind == "batch" else normalization.layernorm_backward
        return backward(weights, cache)[0]

    result = gradcheck.gradient_check(lambda v: np.sum(weights * forward(v)[0]), grad, x)
    assert result.verdict == "correct", result


def test_bad_input_is_rejected_with_the_argument_named():
    running = normalization.initial_running_stats(3)
    x, ones = np.ones((4, 3)), np.ones(3)
    with pytest.raises(ValueError, match="gamma"):
        normalization.batchnorm_forward(x, np.ones(2), ones, running)
    with pytest.raises(ValueError, match="x must be 2-dimensional"):
        normalization.layernorm_forward(np.ones(3), ones, ones)
    with pytest.raises(ValueError, match="at least 2 rows"):
        normalization.batchnorm_forward(np.ones((1, 3)), ones, ones, running)
    with pytest.raises(TypeError, match="running"):
        normalization.batchnorm_forward(x, ones, ones, (np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match="momentum"):
        normalization.batchnorm_forward(x, ones, ones, running, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        normalization.layernorm_forward(x, ones, ones, eps=0.0)
    _, cache = normalization.layernorm_forward(x, ones, ones)
    with pytest.raises(ValueError, match="dout"):
        normalization.layernorm_backward(np.ones((2, 3)), cache)
    with pytest.raises(TypeError, match="generator"):
        normalization.ShiftNoise(max_shift=1.0, scale_spread=0.5, generator=0)
    with pytest.raises(ValueError, match="scale_spread"):
        normalization.ShiftNoise(max_shift=1.0, scale_spread=1.0, generator=torch.Generator())
    with pytest.raises(ValueError, match="max_shift"):
        normalization.ShiftNoise(max_shift=-1.0, scale_spread=0.5, generator=torch.Generator())


def test_shift_noise_changes_every_step_has_mean_one_scale_and_is_off_in_eval():
    noise = normalization.ShiftNoise(max_shift=0.5, scale_spread=0.5, generator=torch.Generator().manual_seed(0))
    x = torch.randn(50, 8, dtype=torch.float64)
    a, b = noise(x), noise(x)
    assert not torch.allclose(a, b)
    scale = (a[1] - a[0]) / (x[1] - x[0])  # one scale per feature, shared by the rows
    shift = (a - x * scale)[0]
    torch.testing.assert_close((a - x * scale)[-1], shift)
    assert torch.all((scale >= 0.5) & (scale <= 1.5)) and torch.all(shift.abs() <= 0.5)
    draws = []
    for _ in range(2000):  # the scale's mean is 1 (no systematic change of scale), the shift's 0
        out = noise(x)
        drawn_scale = (out[1] - out[0]) / (x[1] - x[0])
        draws.append(torch.stack([drawn_scale, out[0] - x[0] * drawn_scale]))
    draws = torch.stack(draws)
    # 16000 uniform draws of std 0.5/√3 ≈ 0.29: the mean is within ±0.01 (≈ 4 standard errors)
    assert abs(draws[:, 0].mean().item() - 1) < 0.01 and abs(draws[:, 1].mean().item()) < 0.01
    noise.eval()
    assert torch.equal(noise(x), x)


def _small_bn_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 5, dtype=torch.float64), torch.nn.BatchNorm1d(5, dtype=torch.float64),
                               torch.nn.ReLU(), torch.nn.Linear(5, 4, dtype=torch.float64), torch.nn.ReLU(),
                               torch.nn.Linear(4, 2, dtype=torch.float64))


def test_internal_covariate_shift_matches_a_by_hand_computation_and_restores_the_model():
    torch.manual_seed(1)
    model = _small_bn_net()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    layers = [torch.nn.Sequential(model[0], model[1]), model[3], model[5]]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr = 0.3
    shift = normalization.internal_covariate_shift(model, layers, x, y, lr=lr)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    # by hand, on a copy: layer 2 (the last Linear) after layers 0 and 1 took their SGD step
    import copy

    reference = copy.deepcopy(model)
    loss = torch.nn.functional.cross_entropy(reference(x), y)
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    g_last = torch.cat([g.reshape(-1) for g in grads[-2:]])
    with torch.no_grad():
        for p, g in list(zip(reference.parameters(), grads))[:-2]:
            p -= lr * g
    loss = torch.nn.functional.cross_entropy(reference(x), y)
    g_after = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, [reference[5].weight, reference[5].bias])])
    assert shift["change"][-1] == pytest.approx((g_last - g_after).norm().item(), rel=1e-10)
    assert shift["relative"][-1] == pytest.approx(shift["change"][-1] / g_last.norm().item(), rel=1e-10)
    assert shift["cosine"].shape == (2,) and np.all(np.abs(shift["cosine"]) <= 1 + 1e-12)
    assert np.all(shift["change"] > 0)  # earlier layers moved, so every later gradient changed
    with pytest.raises(ValueError, match="lr"):
        normalization.internal_covariate_shift(model, layers, x, y, lr=0.0)
    with pytest.raises(ValueError, match="layers"):
        normalization.internal_covariate_shift(model, layers[:1], x, y, lr=0.1)


def test_eval_loss_uses_running_statistics_and_restores_the_mode():
    torch.manual_seed(2)
    model = _small_bn_net()
    x, y = torch.randn(16, 3, dtype=torch.float64) * 3 + 2, torch.randint(0, 2, (16,))
    model.train()
    value = normalization.eval_loss(model, x, y)
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(x), y).item()
    assert value == pytest.approx(expected, rel=1e-12)
    model.train()
    with torch.no_grad():
        assert torch.nn.functional.cross_entropy(model(x), y).item() != pytest.approx(value, rel=1e-3)


def test_landscape_probe_restores_the_model_and_matches_a_quadratic():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4, dtype=torch.float64), torch.nn.BatchNorm1d(4, dtype=torch.float64),
                                torch.nn.ReLU(), torch.nn.Linear(4, 2, dtype=torch.float64))
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = normalization.landscape_along_gradient(model, x, y, np.array([1e-6, 0.1, 1.0]))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    loss0 = torch.nn.functional.cross_entropy(model(x), y).item()
    assert probe["loss"][0] == pytest.approx(loss0, abs=1e-5)  # a tiny step barely changes the loss
    assert probe["loss"][1] < loss0  # a small step down the gradient lowers it
    np.testing.assert_allclose(probe["smoothness"], probe["grad_change"] / (np.array([1e-6, 0.1, 1.0]) *
                               (probe["grad_change"][0] / (1e-6 * probe["smoothness"][0]))), rtol=1e-9)
    with pytest.raises(ValueError, match="step_sizes"):
        normalization.landscape_along_gradient(model, x, y, np.array([0.0, 1.0]))


def test_train_recording_inputs_records_every_step_and_lowers_the_loss():
    generator = torch.Generator().manual_seed(0)
    model = residual.deep_net(4, 16, 3, 3, norm="batch", order="post", init="kaiming", generator=generator)
    x = torch.randn(200, 4, generator=generator, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    losses, stats = normalization.train_recording_inputs(model, x, y, steps=60, lr=0.2, batch_size=32,
                                                         generator=generator, watch=[b.norm for b in model.blocks])
    assert stats.shape == (60, 2, 3, 16) and np.all(np.isfinite(losses))
    means, stds = stats[:, 0], stats[:, 1]
    np.testing.assert_allclose(means[0], 0.0, atol=1e-12)  # BN's output has batch mean β, 0 before any update
    # γ = 1 at the first step: BN's output has biased batch variance 1 - ε/(σ² + ε); torch's std is unbiased
    np.testing.assert_allclose(stds[0], np.sqrt(32 / 31), rtol=1e-3)
    assert np.abs(means[-1]).max() > 1e-3  # β has been trained since
    assert losses[-10:].mean() < 0.7 * losses[:10].mean()


def test_train_recording_inputs_takes_torch_sgds_steps_exactly():
    """The written-out update θ ← θ - lr·∇L is torch.optim.SGD's, bit for bit, on the same minibatches."""
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    models = [residual.deep_net(4, 16, 3, 3, norm="batch", residual=True, generator=torch.Generator().manual_seed(2))
              for _ in range(2)]
    losses, _ = normalization.train_recording_inputs(models[0], x, y, steps=8, lr=0.3, batch_size=16,
                                                     generator=torch.Generator().manual_seed(3))
    optimizer, batches, reference = torch.optim.SGD(models[1].parameters(), lr=0.3), torch.Generator().manual_seed(3), []
    for _ in range(8):
        index = torch.randperm(100, generator=batches)[:16]
        loss = torch.nn.functional.cross_entropy(models[1](x[index]), y[index])
        reference.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    np.testing.assert_array_equal(losses, reference)
    for mine, theirs in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(mine, theirs)  # weights and BN's running statistics
    assert losses[-1] < losses[0]


def test_input_drift_measures_the_step_to_step_change_of_each_units_distribution():
    mean = np.array([[[0.0, 1.0]], [[0.5, 1.0]], [[0.5, 3.0]]])  # [steps 3, layers 1, width 2]
    std = np.array([[[1.0, 2.0]], [[2.0, 2.0]], [[2.0, 0.0]]])  # the second unit dies at step 2
    drift = normalization.input_drift(np.stack([mean, std], axis=1))
    assert drift["mean_shift"].shape == drift["log_std_change"].shape == (2, 1)
    # step 0 -> 1: unit shifts 0.5/1 and 0/2, median 0.25; log std changes log 2 and 0, median log(2)/2
    np.testing.assert_allclose(drift["mean_shift"][0, 0], 0.25)
    np.testing.assert_allclose(drift["log_std_change"][0, 0], np.log(2) / 2)
    # step 1 -> 2: the dead unit is left out
    np.testing.assert_allclose(drift["mean_shift"][1, 0], 0.0)
    np.testing.assert_allclose(drift["log_std_change"][1, 0], 0.0)
    with pytest.raises(ValueError, match="unit_stats"):
        normalization.input_drift(np.zeros((3, 1, 2)))
    with pytest.raises(ValueError, match="unit_stats"):
        normalization.input_drift(np.zeros((1, 2, 1, 2)))


def test_deep_net_residual_block_jacobian_is_identity_plus_branch():
    generator = torch.Generator().manual_seed(1)
    net = residual.deep_net(5, 6, 2, 3, residual=True, alpha=0.3, init="kaiming", generator=generator)
    block, h = net.blocks[0], torch.randn(6, dtype=torch.float64)
    full = torch.autograd.functional.jacobian(lambda v: block(v[None])[0], h)
    branch = torch.autograd.functional.jacobian(lambda v: block.branch(v[None])[0], h)
    torch.testing.assert_close(full, torch.eye(6, dtype=torch.float64) + 0.3 * branch, rtol=0, atol=1e-15)


def test_deep_net_matches_the_variance_growth_law_and_zero_init_is_identity():
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(512, 64, generator=generator, dtype=torch.float64), torch.randint(0, 10, (512,), generator=generator)
    unscaled = residual.profile(residual.deep_net(64, 256, 12, 10, residual=True, init="kaiming", generator=generator), x, y)
    # He branch W·ReLU(h): E[F²] = E[h²], so E[h²] doubles per block; ±25 % for 12 blocks of width 256
    factor = residual.per_layer_factor(unscaled.second_moment)
    assert 1.8 < factor < 2.2
    zero = residual.profile(residual.deep_net(64, 32, 5, 10, residual=True, zero_init_last=True, generator=generator), x, y)
    np.testing.assert_allclose(zero.second_moment, zero.second_moment[0], rtol=1e-12)
    assert np.all(zero.weight_grad_norm > 0)  # Fixup-style zero W: identity blocks whose W still learns


def test_rezero_blocks_are_the_identity_and_only_alpha_gets_a_gradient():
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(64, 8, generator=generator, dtype=torch.float64), torch.randint(0, 3, (64,), generator=generator)
    net = residual.deep_net(8, 16, 4, 3, residual=True, rezero=True, alpha=5.0, init="kaiming", generator=generator)
    alphas = [block.alpha for block in net.blocks]
    assert all(isinstance(a, torch.nn.Parameter) and a.item() == 0 for a in alphas)
    states = net.hidden(x)
    for before, after in zip(states[:-1], states[1:]):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, alphas + [b.linear.weight for b in net.blocks])
    assert all(g.abs().item() > 0 for g in grads[:4])
    assert all(torch.count_nonzero(g) == 0 for g in grads[4:])
    with pytest.raises(ValueError, match="residual"):
        residual.deep_net(8, 16, 4, 3, rezero=True)
    with pytest.raises(TypeError, match="rezero"):
        residual.deep_net(8, 16, 4, 3, residual=True, rezero=1)
    np.testing.assert_allclose(residual.predicted_variance(3, 0.5, 1.0), [1, 1.25, 1.25**2, 1.25**3])


def test_deep_net_default_init_matches_nn_linear_bounds_and_bad_input():
    net = residual.deep_net(10, 20, 3, 4, generator=torch.Generator().manual_seed(0))
    for layer in [net.stem, *(b.linear for b in net.blocks), net.head]:
        assert layer.weight.abs().max() <= 1 / math.sqrt(layer.in_features)
        assert layer.weight.std().item() == pytest.approx(1 / math.sqrt(3 * layer.in_features), rel=0.35)
    with pytest.raises(ValueError, match="norm"):
        residual.deep_net(2, 4, 2, 2, norm="group")
    with pytest.raises(TypeError, match="residual"):
        residual.deep_net(2, 4, 2, 2, residual=1)
    with pytest.raises(ValueError, match="depth"):
        residual.deep_net(2, 4, 0, 2)
    with pytest.raises(TypeError, match="model"):
        residual.profile(torch.nn.Linear(2, 2), np.ones((2, 2)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="values"):
        residual.per_layer_factor(np.array([1.0, -1.0]))


def test_transformer_grad_norms_are_reproducible_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = residual.transformer_grad_norms(2, norm_first=True, init="xavier", generator=torch.Generator().manual_seed(0))
    b = residual.transformer_grad_norms(2, norm_first=True, init="xavier", generator=torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2,) and np.all(a > 0)
    with pytest.raises(ValueError, match="init"):
        residual.transformer_grad_norms(2, norm_first=True, init="kaiming", generator=torch.Generator())


def test_relu_backward_norms_match_autograd_and_keep_the_mean_square():
    norms = residual.relu_backward_norms(32, 3, 2000, torch.Generator().manual_seed(0))
    assert norms.shape == (2000, 4) and np.all(norms[:, -1] == 1)
    # one He ReLU layer: E[||g_{l-1}||² / ||g_l||²] = 1 exactly in expectation; 2000 nets × 3 layers: ±5 %
    assert np.mean(norms[:, :-1] ** 2 / norms[:, 1:] ** 2) == pytest.approx(1.0, rel=0.05)
    # against autograd: rebuild net 0 from the same draws, in both precisions (float32: ~1e-7 per operation)
    for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        norms = residual.relu_backward_norms(8, 2, 2, torch.Generator().manual_seed(1), dtype=dtype)
        assert norms.dtype == np.float64
        generator = torch.Generator().manual_seed(1)
        x = torch.randn(2, 8, 1, generator=generator, dtype=dtype)
        x = (x / x.norm(dim=1, keepdim=True)).requires_grad_(True)
        w1 = torch.randn(2, 8, 8, generator=generator, dtype=dtype) * 0.5
        w2 = torch.randn(2, 8, 8, generator=generator, dtype=dtype) * 0.5
        v = torch.randn(2, 8, 1, generator=generator, dtype=dtype)
        out = torch.relu(w2 @ torch.relu(w1 @ x))
        (grad,) = torch.autograd.grad((v / v.norm(dim=1, keepdim=True) * out).sum(), x)
        np.testing.assert_allclose(norms[:, 0], grad.norm(dim=(1, 2)).double().numpy(), rtol=rtol)
    with pytest.raises(TypeError, match="generator"):
        residual.relu_backward_norms(8, 2, 3, None)
    with pytest.raises(TypeError, match="dtype"):
        residual.relu_backward_norms(8, 2, 3, torch.Generator(), dtype=torch.int64)


def test_more_bad_input_is_rejected_with_the_argument_named():
    model = residual.deep_net(2, 4, 1, 2)
    x, y = np.ones((8, 2)), np.zeros(8, dtype=int)
    with pytest.raises(ValueError, match="lr"):
        normalization.train_recording_inputs(model, x, y, steps=1, lr=0.0, batch_size=4, generator=torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        normalization.train_recording_inputs(model, x, y, steps=1, lr=0.1, batch_size=4, generator=None)
    with pytest.raises(ValueError, match="features"):
        normalization.initial_running_stats(0)
    with pytest.raises(ValueError, match="alpha"):
        residual.predicted_variance(3, -1.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        residual.deep_net(2, 4, 1, 2, residual=True, alpha=-0.5)
    with pytest.raises(ValueError, match="order"):
        residual.deep_net(2, 4, 1, 2, order="middle")
    with pytest.raises(ValueError, match="x must be"):
        residual.profile(model, np.ones((3, 2)), np.zeros(2, dtype=int))
