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


def test_cliff_gradient_matches_torch_autograd():
    w, b = torch.tensor(4.8, dtype=torch.float64, requires_grad=True), torch.tensor(-2.5, dtype=torch.float64, requires_grad=True)
    x = torch.tensor(0.5, dtype=torch.float64)
    for _ in range(50):
        x = w * torch.sigmoid(x) + b
    ((x - 0.7) ** 2).backward()
    loss, grad = clipping.cliff_loss_and_grad(4.8, -2.5)
    assert loss == pytest.approx(((x - 0.7) ** 2).item(), rel=1e-12)
    np.testing.assert_allclose(grad, [w.grad.item(), b.grad.item()], rtol=1e-9)
    surface = clipping.cliff_loss_surface(np.array([4.8, 3.0]), np.array([-2.5]))
    assert surface[0, 0] == pytest.approx(loss, rel=1e-12)


def test_cliff_has_a_wall_and_clipped_steps_are_bounded():
    ws = np.linspace(4.80, 4.84, 401)
    norms = [np.linalg.norm(clipping.cliff_loss_and_grad(w, -2.5)[1]) for w in ws]
    assert max(norms) > 1e3  # the wall
    points, losses, grad_norms = clipping.cliff_trajectory((4.6, -2.5), 0.01, 100, clip="norm", threshold=1.0)
    assert points.shape == (101, 2) and losses.shape == (101,) and grad_norms.shape == (100,)
    assert np.linalg.norm(np.diff(points, axis=0), axis=1).max() <= 0.01 + 1e-9
    free, _, _ = clipping.cliff_trajectory((4.6, -2.5), 0.01, 100)
    assert np.linalg.norm(np.diff(free, axis=0), axis=1).max() > 1.0


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
        (lambda: clipping.cliff_loss_and_grad(1.0, 0.0, steps=0), ValueError, "steps"),
    ],
)
def test_clipping_rejects_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()
