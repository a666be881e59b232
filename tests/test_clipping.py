import numpy as np
import pytest
import torch

from helpers import clipping


def _torch_grads(arrays):
    params = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in arrays]
    for p, a in zip(params, arrays):
        p.grad = torch.tensor(a)
    return params


@pytest.mark.parametrize("scale", [1e-3, 1.0, 50.0])
def test_clip_by_global_norm_is_torchs_clip_grad_norm(scale, rng):
    grads = [scale * rng.standard_normal((5, 4)), scale * rng.standard_normal(4), scale * rng.standard_normal((3, 5))]
    before = [g.copy() for g in grads]
    clipped, total = clipping.clip_by_global_norm(grads, 1.5)
    params = _torch_grads(grads)
    torch_total = torch.nn.utils.clip_grad_norm_(params, 1.5)
    assert total == pytest.approx(torch_total.item(), rel=1e-14)
    for ours, p in zip(clipped, params):
        np.testing.assert_allclose(ours, p.grad.numpy(), rtol=1e-14, atol=0)
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(g, b)  # inputs untouched
    assert clipping.global_norm(clipped) <= 1.5 + 1e-9
    if total < 1.5:  # never enlarges
        for ours, g in zip(clipped, grads):
            np.testing.assert_allclose(ours, g, rtol=1e-15)


def test_clip_by_value_is_torchs_clip_grad_value(rng):
    grads = [3 * rng.standard_normal((6, 3)), 3 * rng.standard_normal(3)]
    clipped = clipping.clip_by_value(grads, 1.0)
    params = _torch_grads(grads)
    torch.nn.utils.clip_grad_value_(params, 1.0)
    for ours, p in zip(clipped, params):
        np.testing.assert_array_equal(ours, p.grad.numpy())


def test_dicts_come_back_as_dicts_and_direction_is_kept_only_by_norm_clipping(rng):
    grads = {"W": 5 * rng.standard_normal((4, 4)), "b": 5 * rng.standard_normal(4)}
    by_norm, _ = clipping.clip_by_global_norm(grads, 1.0)
    by_value = clipping.clip_by_value(grads, 1.0)
    assert list(by_norm) == ["W", "b"] and list(by_value) == ["W", "b"]
    assert clipping.cosine_similarity(grads, by_norm) == pytest.approx(1.0, abs=1e-12)
    assert clipping.cosine_similarity(grads, by_value) < 0.99


def _torch_cliff(w, b):
    """Pascanu et al.'s error, written out in torch: x_t = w σ(x_{t-1}) + b, x_0 = 0.5, E = (σ(x_50) - 0.7)²."""
    w, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (w, b))
    x = torch.tensor(0.5, dtype=torch.float64)
    for _ in range(50):
        x = w * torch.sigmoid(x) + b
    loss = (torch.sigmoid(x) - 0.7) ** 2
    loss.backward()
    return loss.item(), np.array([w.grad.item(), b.grad.item()])


@pytest.mark.parametrize("w, b", [(4.8, -2.5), (4.6, -2.6), (4.6579, -2.4), (2.0, 1.0), (6.0, 0.1)])
def test_cliff_is_pascanus_error_and_its_gradient_matches_torch_autograd(w, b):
    loss, grad = clipping.cliff_loss_and_grad(w, b)
    torch_loss, torch_grad = _torch_cliff(w, b)
    assert loss == pytest.approx(torch_loss, rel=1e-12)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-9)  # forward mode vs backprop: same sums, other order
    assert clipping.cliff_loss_surface(np.array([w, 3.0]), np.array([b]))[0, 0] == pytest.approx(loss, rel=1e-12)
    norm = clipping.cliff_grad_norm_surface(np.array([w]), np.array([b]))[0, 0]
    assert norm == pytest.approx(np.linalg.norm(grad), rel=1e-12)


def test_cliff_has_a_wall_between_a_plateau_and_a_valley():
    ws = np.linspace(4.3, 4.9, 6001)
    norms = clipping.cliff_grad_norm_surface(ws, np.array([-2.4]))[0]
    losses = clipping.cliff_loss_surface(ws, np.array([-2.4]))[0]
    wall = norms.argmax()
    assert norms[wall] > 100 * np.median(norms)  # the wall
    assert losses[wall - 100] > 0.25 and losses[wall + 100] < 0.02  # plateau (σ(x_50) ≈ 0) | valley, 0.01 apart


def test_norm_clipped_run_stays_below_the_wall_while_the_unclipped_run_is_thrown_to_the_plateau():
    start, lr = clipping.CLIFF_START, clipping.CLIFF_LR
    free, free_losses, free_norms = clipping.cliff_trajectory(start, lr, 200)
    clipped, clipped_losses, _ = clipping.cliff_trajectory(start, lr, 200, clip="norm", threshold=1.0)
    assert free.shape == (201, 2) and free_losses.shape == (201,) and free_norms.shape == (200,)
    free_steps = np.linalg.norm(np.diff(free, axis=0), axis=1)
    thrown = free_steps.argmax()
    assert free_steps[thrown] > 1.0 and free_norms[thrown] > 10  # one step at the wall throws it...
    assert np.all(np.linalg.norm(free[thrown + 1:] - start, axis=1) > 1.0)  # ...far away, for good,
    assert np.all(free_losses[thrown + 1:] > 0.08) and np.all(free_norms[thrown + 1:] < 0.05)  # onto a flat plateau
    # the clipped run: every step bounded, the whole path near the wall, never above its start, settled in the valley
    assert np.linalg.norm(np.diff(clipped, axis=0), axis=1).max() <= lr * 1.0 + 1e-12
    assert np.linalg.norm(clipped - start, axis=1).max() < 0.6
    assert clipped_losses.max() <= clipped_losses[0] and np.all(clipped_losses[-50:] < 0.01)
    by_value, _, _ = clipping.cliff_trajectory(start, lr, 50, clip="value", threshold=0.5)
    assert np.abs(np.diff(by_value, axis=0)).max() <= lr * 0.5 + 1e-12


def _sgd_loop(start, lr, n_steps, clip, threshold):
    """The cliff's SGD written as a plain loop over steps, clipping with the list helpers."""
    point, points, losses, norms = np.array(start, dtype=float), [], [], []
    for _ in range(n_steps):
        points.append(point)
        loss, grad = clipping.cliff_loss_and_grad(*point)
        losses.append(loss)
        norms.append(np.linalg.norm(grad))
        if clip == "norm":
            (grad,), _ = clipping.clip_by_global_norm([grad], threshold)
        elif clip == "value":
            (grad,) = clipping.clip_by_value([grad], threshold)
        point = point - lr * grad
    return np.array(points + [point]), np.array(losses + [clipping.cliff_loss_and_grad(*point)[0]]), np.array(norms)


@pytest.mark.parametrize("clip, threshold", [(None, 1.0), ("norm", 1.0), ("norm", 10.0), ("value", 0.5)])
def test_cliff_trajectories_run_one_sgd_loop_per_start(clip, threshold):
    starts = np.array([clipping.CLIFF_START, (4.75, -2.65), (6.0, 0.1)])  # the first two cross the wall
    points, losses, norms = clipping.cliff_trajectories(starts, 0.1, 60, clip=clip, threshold=threshold)
    assert points.shape == (3, 61, 2) and losses.shape == (3, 61) and norms.shape == (3, 60)
    for k, start in enumerate(starts):
        loop_points, loop_losses, loop_norms = _sgd_loop(start, 0.1, 60, clip, threshold)
        # the same operations on arrays instead of scalars; 1e-9 leaves room for a vectorised tanh's last bit,
        # amplified where a path crosses the wall
        np.testing.assert_allclose(points[k], loop_points, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(losses[k], loop_losses, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(norms[k], loop_norms, rtol=1e-9, atol=1e-15)
    if clip == "norm":  # the threshold is crossed: the clipped branch ran
        assert np.any(norms > threshold)
    one = clipping.cliff_trajectory(starts[1], 0.1, 60, clip=clip, threshold=threshold)
    np.testing.assert_allclose(one[0], points[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rows, resolution", [(5, 1e-4), (21, 1e-3)])  # 1e-3: coarse steps 10x the wall's width
def test_cliff_wall_is_the_full_fine_scan(rows, resolution):
    b_values = np.linspace(-3.2, -2.2, rows)
    wall_w, slope = clipping.cliff_wall(b_values, 3.9, 6.5, resolution=resolution)
    fine_w = np.linspace(3.9, 6.5, round(2.6 / resolution) + 1)
    jumps = np.abs(np.diff(clipping.cliff_loss_surface(fine_w, b_values), axis=1))
    np.testing.assert_array_equal(wall_w, fine_w[jumps.argmax(axis=1)])
    np.testing.assert_allclose(slope, jumps.max(axis=1) / resolution, rtol=1e-9)  # the grid's spacing to round-off
    assert np.all(np.diff(wall_w) < 0) and np.all(slope > 25)  # one wall, falling to the right, steep in every row


@pytest.mark.parametrize("scale", [1e-3, 1.0, 50.0])
def test_clip_with_torch_runs_torchs_own_functions(scale, rng):
    grads = [scale * rng.standard_normal((4, 3)), scale * rng.standard_normal(3)]
    by_norm = clipping.clip_with_torch(grads, max_norm=1.0)
    by_value = clipping.clip_with_torch(grads, clip_value=0.5)
    assert clipping.global_norm(by_norm) == pytest.approx(min(1.0, clipping.global_norm(grads)), rel=1e-5)
    for ours, g in zip(by_value, grads):
        np.testing.assert_array_equal(ours, np.clip(g, -0.5, 0.5))


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: clipping.clip_by_global_norm([], 1.0), ValueError, "grads"),
        (lambda: clipping.clip_by_global_norm({}, 1.0), ValueError, "grads"),
        (lambda: clipping.clip_by_global_norm(np.ones(3), 1.0), TypeError, "grads"),
        (lambda: clipping.clip_by_global_norm([np.ones(3)], 0.0), ValueError, "max_norm"),
        (lambda: clipping.clip_by_global_norm([np.ones(3)], float("inf")), ValueError, "max_norm"),
        (lambda: clipping.clip_by_value([np.ones(3)], -1.0), ValueError, "clip_value"),
        (lambda: clipping.clip_by_value([np.ones(3)], float("nan")), ValueError, "clip_value"),
        (lambda: clipping.clip_by_global_norm([np.array([1.0, np.nan])], 1.0), ValueError, r"grads\[0\].*NaN"),
        (lambda: clipping.clip_by_value({"W": np.array([np.inf])}, 1.0), ValueError, r"grads\['W'\]"),
        (lambda: clipping.clip_by_value(["a"], 1.0), TypeError, r"grads\[0\]"),
        (lambda: clipping.cosine_similarity([np.zeros(2)], [np.ones(2)]), ValueError, "zero"),
        (lambda: clipping.cliff_trajectory((1.0, 2.0, 3.0), 0.1, 5), ValueError, "start"),
        (lambda: clipping.cliff_trajectory((1.0, 2.0), 0.1, 5, clip="sign"), ValueError, "clip"),
        (lambda: clipping.cliff_trajectories(np.ones(2), 0.1, 5), ValueError, "starts"),
        (lambda: clipping.cliff_trajectories(np.ones((3, 3)), 0.1, 5), ValueError, "starts"),
        (lambda: clipping.cliff_trajectories(np.ones((3, 2)), 0.0, 5), ValueError, "lr"),
        (lambda: clipping.cliff_trajectories(np.ones((3, 2)), 0.1, 5, clip="norm", threshold=0.0), ValueError,
         "threshold"),
        (lambda: clipping.cliff_wall(np.ones((2, 2)), 3.9, 6.5), ValueError, "b_values"),
        (lambda: clipping.cliff_wall([-2.4], 3.9, 3.901), ValueError, "w_max - w_min"),
        (lambda: clipping.cliff_wall([-2.4], 3.9, 6.5, resolution=0.0), ValueError, "resolution"),
        (lambda: clipping.cliff_wall([-2.4], "3.9", 6.5), TypeError, "w_min"),
        (lambda: clipping.cliff_loss_and_grad(1.0, 0.0, steps=0), ValueError, "steps"),
        (lambda: clipping.cliff_loss_and_grad("4", 0.0), TypeError, "w"),
        (lambda: clipping.cliff_loss_surface(np.ones((2, 2)), np.ones(2)), ValueError, "w_values"),
        (lambda: clipping.cliff_grad_norm_surface(np.ones(2), [np.nan]), ValueError, "b_values"),
        (lambda: clipping.clip_with_torch([np.ones(2)]), ValueError, "max_norm and clip_value"),
        (lambda: clipping.clip_with_torch([np.ones(2)], max_norm=1.0, clip_value=1.0), ValueError, "exactly one"),
        (lambda: clipping.clip_with_torch([np.ones(2)], clip_value=-1.0), ValueError, "clip_value"),
    ],
)
def test_clipping_rejects_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()
