import base64

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from helpers import chain, plotting, widgets


def test_norms_by_layer_draws_on_the_given_axes_with_log_scale():
    ax = Figure().add_subplot()
    assert plotting.norms_by_layer([1.0, 0.1, 0.01], predicted=[1.0, 0.1, 0.01], ax=ax) is ax
    assert ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.0, 0.1, 0.01])
    assert len(ax.lines) == 2


def test_layer_histograms_and_curves():
    rng = np.random.default_rng(0)
    ax = Figure().add_subplot()
    plotting.layer_histograms([rng.normal(size=100), rng.normal(size=100)], names=["a", "b"], ax=ax)
    assert [t.get_text().split(":")[0] for t in ax.get_legend().get_texts()] == ["a", "b"]
    ax2 = plotting.curves({"run": np.arange(5.0)}, log=False)
    assert ax2.get_xlabel() == "step"
    plt.close("all")


def test_log_magnitude_histograms_shift_by_one_per_factor_ten():
    rng = np.random.default_rng(0)
    small, large = 1e-5 * rng.normal(size=20000), 1e-4 * rng.normal(size=20000)
    ax = plotting.log_magnitude_histograms([small, np.append(large, 0.0)], names=["a", "b"], ax=Figure().add_subplot())
    peaks = []
    for patch in ax.patches:  # one step outline per layer: the x of its highest point
        xy = patch.get_xy()
        peaks.append(xy[np.argmax(xy[:, 1]), 0])
    assert peaks[1] - peaks[0] == pytest.approx(1.0, abs=0.15)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"a: rms {np.sqrt(np.mean(small**2)):.2g}" and labels[1].startswith("b: rms 0.0001")
    with pytest.raises(ValueError, match="non-zero"):
        plotting.log_magnitude_histograms([np.zeros(3)])
    with pytest.raises(ValueError, match="names"):
        plotting.log_magnitude_histograms([np.ones(3)], names=["a", "b"])
    with pytest.raises(TypeError, match="samples"):
        plotting.log_magnitude_histograms(np.ones(3))


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: plotting.norms_by_layer(np.ones((2, 2))), ValueError, "norms"),
        (lambda: plotting.norms_by_layer([1.0, 2.0], predicted=[1.0]), ValueError, "predicted"),
        (lambda: plotting.layer_histograms([]), TypeError, "samples"),
        (lambda: plotting.layer_histograms([np.ones(3)], names=["a", "b"]), ValueError, "names"),
        (lambda: plotting.curves([1, 2]), TypeError, "series"),
    ],
)
def test_plotting_rejects_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_gradient_norm_explorer_updates_when_controls_change():
    explorer = widgets.GradientNormExplorer(seed=0, width=32)
    assert explorer.stats.depth == 20 and explorer.image.value[:4] == b"\x89PNG"
    first_png, first_text = explorer.image.value, explorer.readout.value

    explorer.depth.value = 35
    assert explorer.stats.depth == 35 and len(explorer.stats.grad_norms) == 36
    explorer.activation.value = "sigmoid"
    np.testing.assert_array_less(explorer.stats.derivative_max, 0.25 + 1e-12)
    assert explorer.image.value != first_png and explorer.readout.value != first_text

    # linear net with weight scale a: the end-to-end ratio is about a^depth
    explorer.activation.value = "linear"
    explorer.depth.value = 10
    a = min((value for _, value in explorer.weight_scale.options), key=lambda value: abs(value - 0.5))
    explorer.weight_scale.value = a
    ratio = explorer.stats.grad_norms[0] / explorer.stats.grad_norms[-1]
    assert a**10 / 3 < ratio < a**10 * 3
    assert f"{ratio:.3g}" in explorer.readout.value


def test_explorer_is_deterministic_and_matches_the_chain_helpers():
    a, b = widgets.GradientNormExplorer(seed=3, width=16), widgets.GradientNormExplorer(seed=3, width=16)
    np.testing.assert_array_equal(a.stats.grad_norms, b.stats.grad_norms)
    rng = np.random.default_rng(3)
    x, top = rng.standard_normal((64, 16)), rng.standard_normal((64, 16))
    expected = chain.backward_pass(chain.make_weights(20, 16, 1.0, rng), x, top, "linear")
    np.testing.assert_array_equal(a.stats.grad_norms, expected.grad_norms)
    bundle = a._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # live widget where widgets run
    assert base64.b64decode(bundle["image/png"]) == bytes(a.image.value)  # static figure elsewhere
    static = bundle["text/html"]
    assert f'base64,{bundle["image/png"]}"' in static and a.readout.value in static and widgets.STATIC_NOTE in static


def test_gradient_norm_explorer_reaches_sqrt2_shows_its_label_and_a_fixed_log_range():
    explorer = widgets.GradientNormExplorer(seed=0, width=32, batch=16)
    explorer.activation.value, explorer.weight_scale.value = "relu", np.sqrt(2)  # He: the value notebook 01 asks for
    assert explorer.weight_scale.value == np.sqrt(2) and "√2" in explorer.weight_scale.label
    values = [value for _, value in explorer.weight_scale.options]
    assert values == sorted(values) and values[0] == 0.1 and values[-1] == 10.0 and 1.0 in values
    assert max(np.diff(np.log10(values))) < 0.022  # steps of about 5 %
    assert explorer.weight_scale.style.description_width == "initial"  # "weight scale a" is never cut off
    # ±20 % around 1 sits in a fixed window of 4 decades either side; data beyond it widen the window
    assert widgets.GradientNormExplorer.y_limits([1.0, 0.8, 1.2]) == (1e-4, 1e4)
    low, high = widgets.GradientNormExplorer.y_limits([1.0, 3e-41, np.nan, 0.0, 2e7])
    assert low <= 3e-41 / 2 and 2e7 * 2 <= high <= 1e9


def test_gradient_norm_explorer_default_view_is_typical_for_any_seed():
    # linear, a = 1: the norm should stay flat; at width 256 the end-to-end ratio of one draw is within ~±20 %
    explorer = widgets.GradientNormExplorer(seed=0)
    ratios = []
    for seed in range(12):
        explorer.seed = seed
        stats = explorer.compute()
        ratios.append(stats.grad_norms[0] / stats.grad_norms[-1])
    assert 0.93 < np.median(ratios) < 1.07 and 0.8 < min(ratios) and max(ratios) < 1.25, ratios


def test_explorer_figures_are_shown_at_the_size_they_are_rendered():
    # rendered at PIXEL_RATIO x the CSS size and shown at figsize * DISPLAY_DPI CSS pixels: never scaled up
    for explorer in (widgets.GradientNormExplorer(seed=0, width=16), widgets.GradCheckExplorer()):
        png = bytes(explorer.image.value)
        pixel_width = int.from_bytes(png[16:20], "big")
        assert pixel_width == 650 * widgets.PIXEL_RATIO  # figsize 6.5 in at DISPLAY_DPI = 100
        assert explorer.image.layout.width == "650px" and explorer.image.layout.max_width == "100%"
        assert 'width="650"' in explorer._repr_mimebundle_()["text/html"]
    explorer.dtype.value = "float32"  # a redraw keeps the size
    assert explorer.image.layout.width == "650px"


@pytest.mark.parametrize("kwargs, error", [({"seed": -1}, ValueError), ({"width": 1}, ValueError), ({"batch": 2.5}, TypeError)])
def test_explorer_rejects_bad_input(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        widgets.GradientNormExplorer(**kwargs)


def test_init_explorer_follows_its_controls():
    explorer = widgets.InitExplorer(seed=0, batch=64)
    assert explorer.scheme.value == "xavier_normal" and len(explorer.stats.names) == 10
    first_png = explorer.image.value
    explorer.depth.value = 4
    explorer.width.value = 32
    assert len(explorer.stats.names) == 4 and explorer.image.value != first_png
    # torch's default init in a deep ReLU stack: activations shrink; He keeps them
    explorer.activation.value, explorer.depth.value, explorer.width.value = "relu", 20, 256
    explorer.scheme.value = "default"
    shrinking = explorer.stats.activation_std[-1] / explorer.stats.activation_std[0]
    explorer.scheme.value = "kaiming_normal"
    kept = explorer.stats.activation_std[-1] / explorer.stats.activation_std[0]
    assert shrinking < 0.2 < 0.5 < kept
    assert f"{explorer.stats.activation_std[-1]:.3g}" in explorer.readout.value
    explorer.scheme.value = "constant"
    assert explorer.stats.activation_std[-1] >= 0  # symmetric units: runs, nothing to break


def test_init_explorer_is_deterministic_and_rejects_bad_input():
    a, b = widgets.InitExplorer(seed=2, batch=32), widgets.InitExplorer(seed=2, batch=32)
    np.testing.assert_array_equal(a.stats.activation_std, b.stats.activation_std)
    with pytest.raises(ValueError, match="batch"):
        widgets.InitExplorer(batch=1)


def test_gradcheck_explorer_follows_eps_dtype_and_kinks():
    explorer = widgets.GradCheckExplorer()
    assert explorer.result["verdict"] == "correct" and explorer.result["analytic"] == pytest.approx(np.e)
    first_png = explorer.image.value
    explorer.dtype.value = "float32"  # eps = 1e-6 in float32: round-off dominates
    assert explorer.result["relative_error"] > 1e-4 and explorer.image.value != first_png
    explorer.eps.value = 10 ** -2.5
    assert explorer.result["relative_error"] < 1e-4
    explorer.dtype.value = "float64"
    explorer.function.value = "|x − 0.5| (kink at 0.5)"
    explorer.x.value, explorer.eps.value = 0.45, 0.1  # the centered difference straddles the kink
    assert explorer.result["verdict"] == "wrong"
    assert f"{explorer.result['relative_error']:.2e}" in explorer.readout.value
    explorer.eps.value = 1e-6
    assert explorer.result["verdict"] == "correct"


def test_gradcheck_explorer_keeps_its_axes_fixed_and_draws_the_predicted_optimum(monkeypatch):
    drawn, render = [], widgets._png
    monkeypatch.setattr(widgets, "_png", lambda figure: drawn.append(figure) or render(figure))
    explorer = widgets.GradCheckExplorer()
    explorer.x.value = -1.5
    explorer.dtype.value = "float32"
    limits = [figure.axes[0].get_ylim() for figure in drawn]
    assert len(drawn) == 3 and limits[0] == limits[1] == limits[2] == (1e-17, 10)
    guides = [line for line in drawn[-1].axes[0].lines if line.get_linestyle() == ":"]
    machine_eps = np.finfo(np.float32).eps
    assert {line.get_xdata()[0] for line in guides if line.get_xdata()[0] == line.get_xdata()[1]} == {
        machine_eps ** (1 / 2), machine_eps ** (1 / 3)}


def test_eps_sweep_draws_median_band_and_guides():
    ax = Figure().add_subplot()
    eps_values = np.logspace(-8, -1, 8)
    errors = np.vstack([np.linspace(1, 2, 8) * k for k in (1.0, 2.0, 3.0)])  # 3 points
    assert plotting.eps_sweep(eps_values, {"centered": errors, "forward": errors[0]},
                              guides={"centered": (1e-5, 1e-10)}, ax=ax, ylim=(1e-12, 10), title="V") is ax
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_ylim() == (1e-12, 10)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), errors[1])  # the median of the 3 points
    assert len(ax.collections) == 1  # one band: the one-point curve has none
    assert {line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":"} >= {1e-5}
    zeros = plotting.eps_sweep(eps_values, {"exact": np.zeros(8)}, ax=Figure().add_subplot(), ylim=(1e-12, 1))
    np.testing.assert_array_equal(zeros.lines[0].get_ydata(), 1e-12)  # exact zeros drawn at the bottom
    with pytest.raises(ValueError, match="columns"):
        plotting.eps_sweep(eps_values, {"centered": np.ones((2, 3))})
    with pytest.raises(TypeError, match="errors"):
        plotting.eps_sweep(eps_values, [])


def test_regularization_explorer_retrains_on_change():
    import torch

    from helpers import data

    spirals = data.make_spirals(300, np.random.default_rng(0), noise=0.3)
    explorer = widgets.RegularizationExplorer(spirals, steps=60)
    baseline_val = explorer.history.val_loss[-1]
    assert set(explorer.accuracy) == {"train", "validation"}
    explorer.lam.value = 3e-2  # strong L2: the network is held back, training loss ends higher
    strong = explorer.history.loss[-1]
    explorer.lam.value = 0.0
    assert explorer.history.val_loss[-1] == pytest.approx(baseline_val, rel=1e-6)  # same settings, same result
    assert strong > explorer.history.loss[-1]
    explorer.p.value = 0.3
    assert any(type(m).__name__ == "Dropout" for m in explorer.compute()[0].modules())
    assert f"{explorer.history.val_loss[-1]:.3f}" in explorer.readout.value
    # dropout's masks are seeded too, without touching torch's global RNG: same settings, same result
    global_state = torch.random.get_rng_state()
    with_dropout = explorer.history.val_loss
    explorer.p.value = 0.0
    explorer.p.value = 0.3
    np.testing.assert_array_equal(explorer.history.val_loss, with_dropout)
    assert torch.equal(torch.random.get_rng_state(), global_state)
    flat = data.Dataset(np.zeros((4, 3)), np.arange(4) % 2, np.zeros((4, 3)), np.arange(4) % 2)
    with pytest.raises(TypeError, match="dataset"):
        widgets.RegularizationExplorer(flat)


def test_loss_surface_draws_a_map_with_paths_and_checks_shapes():
    xs, ys = np.linspace(0, 1, 5), np.linspace(0, 2, 4)
    values = np.add.outer(ys, xs) + 0.1
    fig, ax = plt.subplots()
    out = plotting.loss_surface(xs, ys, values, paths={"run": np.array([[0.1, 0.2], [0.5, 1.5]])}, ax=ax, title="t")
    assert out is ax and ax.get_title() == "t" and ax.get_xlim() == (0.0, 1.0)
    assert [line.get_label() for line in ax.get_legend().get_lines()] == ["run"]
    with pytest.raises(ValueError, match="values must have shape"):
        plotting.loss_surface(xs, ys, values.T, ax=ax)
    plt.close(fig)


def test_clipping_explorer_default_is_the_catapult_and_norm_clipping_settles_below_the_wall():
    explorer = widgets.ClippingExplorer()
    assert explorer.method.value == "none" and explorer.threshold.disabled  # the threshold does nothing here
    assert "threshold unused" in explorer.readout.value
    points, losses, _ = explorer.trajectory
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    thrown = steps.argmax()
    assert steps[thrown] > 20 * explorer.lr.value  # one step at the wall throws the path
    assert np.all(losses[thrown + 1:] > 0.05)  # ...onto the plateau, and it never comes back
    explorer.method.value = "norm"
    assert not explorer.threshold.disabled
    points, losses, _ = explorer.trajectory
    assert np.linalg.norm(np.diff(points, axis=0), axis=1).max() <= explorer.lr.value * explorer.threshold.value + 1e-9
    assert np.linalg.norm(points - points[0], axis=1).max() < 1.0 and np.all(losses[-50:] < 0.01)
    explorer.threshold.value = 100.0  # above every gradient on the path: clipping never acts
    np.testing.assert_array_equal(explorer.trajectory[0], widgets.ClippingExplorer().trajectory[0])
    explorer.method.value = "value"
    explorer.threshold.value = 0.1
    points, _, _ = explorer.trajectory
    assert np.abs(np.diff(points, axis=0)).max() <= explorer.lr.value * 0.1 + 1e-9
    assert "largest step" in explorer.readout.value


def test_recurrent_explorer_follows_cell_init_and_forget_bias():
    explorer = widgets.RecurrentExplorer(seed=0, hidden_size=16, batch=4)
    explorer.length.value = 60
    assert explorer.profile.grad_h.shape == (61,) and explorer.profile.grad_c.shape == (61,)
    default_profile = explorer.profile.grad_h.copy()
    default_ratio = default_profile[0] / default_profile[-1]
    first_png = explorer.image.value
    explorer.forget_bias.value = 5.0  # forget gate ~0.99: the cell state carries the gradient
    assert explorer.profile.gate_mean > 0.98 and explorer.image.value != first_png
    assert explorer.profile.grad_h[0] / explorer.profile.grad_h[-1] > 1e6 * default_ratio
    explorer.cell.value = "rnn"  # no forget gate: the bias is ignored and the readout says so
    assert explorer.profile.grad_c is None and "ignored" in explorer.readout.value
    explorer.init.value, explorer.scale.value = "orthogonal", 1.0
    assert explorer.profile.spectral_radius == pytest.approx(1.0)
    assert f"{explorer.profile.measured_factor:.3f}" in explorer.readout.value
    explorer.init.value = "chrono"
    assert explorer.settings()[0]["init"] == "default" and "chrono" in explorer.readout.value
    again = widgets.RecurrentExplorer(seed=0, hidden_size=16, batch=4)
    again.length.value = 60
    np.testing.assert_array_equal(again.profile.grad_h, default_profile)  # same settings, same weights and inputs
    with pytest.raises(ValueError, match="hidden_size"):
        widgets.RecurrentExplorer(hidden_size=1)


def test_normalization_explorer_follows_the_growth_laws():
    explorer = widgets.NormalizationExplorer(seed=0, width=32, batch=64)
    plain = explorer.profile
    assert plain.grad_norm.shape == (31,) and "gradient ratio" in explorer.readout.value
    explorer.residual.value = True  # unscaled He branches: the second moment doubles per block
    growth = explorer.profile.second_moment[-1] / explorer.profile.second_moment[0]
    assert growth > 1e6 and f"{growth:.3g}" in explorer.readout.value
    explorer.alpha.value = 0.1  # (1 + 0.01)^30 ≈ 1.35
    assert explorer.profile.second_moment[-1] / explorer.profile.second_moment[0] < 2
    explorer.alpha.value, explorer.norm.value = 1.0, "batch"  # BN in the branch: linear growth, 1 + l/E[h_0²]
    assert explorer.profile.second_moment[-1] / explorer.profile.second_moment[0] < 40
    explorer.depth.value = 5
    assert explorer.profile.grad_norm.shape == (6,)
    again = widgets.NormalizationExplorer(seed=0, width=32, batch=64)
    np.testing.assert_array_equal(again.profile.grad_norm, plain.grad_norm)  # same settings, same weights
    with pytest.raises(ValueError, match="width"):
        widgets.NormalizationExplorer(width=1)


def test_per_block_draws_measured_and_dashed_predictions():
    ax = plotting.per_block({"a": np.array([1.0, 2.0, 4.0]), "b": np.array([1.0, 1.0, 1.0])},
                            predicted={"a": np.array([1.0, 2.0, 4.0])}, ylabel="ratio")
    assert len(ax.lines) == 3 and ax.lines[1].get_linestyle() == "--"
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "ratio"
    plt.close(ax.figure)
    with pytest.raises(TypeError, match="predicted"):
        plotting.per_block({"a": np.ones(3)}, predicted={"c": np.ones(3)})
    with pytest.raises(ValueError, match="shape"):
        plotting.per_block({"a": np.ones(3)}, predicted={"a": np.ones(2)})
