"""Broken runs of notebook 08: each defect shows its symptom for every seed tried, each intended fix trains."""

import math

import numpy as np
import pytest
import torch

from helpers import capstone, monitor

SEEDS = (0, 1, 2)
STALLS = ("vanishing", "small_lr", "dead", "labels")
NANS = ("exploding", "unsafe_loss", "bad_input")
INTENDED = {"vanishing": "normalization", "small_lr": "raise_lr", "dead": "init", "labels": "clean_data",
            "exploding": "init", "unsafe_loss": "stable_loss", "bad_input": "clean_data"}


@pytest.fixture(scope="module")
def runs():
    return {(d, s): capstone.train(capstone.build(d, s), every=10) for s in SEEDS for d in (None,) + capstone.DEFECTS}


def _first_bad(result):
    return int(np.argmax(~np.isfinite(result.losses)))


@pytest.mark.parametrize("seed", SEEDS)
def test_healthy_run_trains_and_diagnose_finds_nothing(runs, seed):
    result = runs[None, seed]
    assert result.trains and result.final_loss < capstone.TRAINS_BELOW - 0.2  # a margin for other seeds
    assert monitor.diagnose(result.log) == []


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("defect", STALLS)
def test_stalls_stay_near_chance_with_their_own_monitor_signature(runs, defect, seed):
    result = runs[defect, seed]
    assert np.all(np.isfinite(result.losses))
    assert abs(result.final_loss - math.log(10)) < 0.2, result.final_loss
    kinds = {f.kind for f in monitor.diagnose(result.log)}
    expected = {"vanishing": "vanishing", "small_lr": "update_ratio", "dead": "dead", "labels": None}[defect]
    if expected is None:
        assert kinds == set()  # the label bug leaves gradients and updates healthy
    else:
        assert expected in kinds
        assert not ({"vanishing", "dead"} - {expected}) & kinds, kinds


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("defect", NANS)
def test_nan_runs_are_told_apart_by_where_the_first_nonfinite_value_appears(runs, defect, seed):
    result, healthy = runs[defect, seed], runs[None, seed]
    assert not np.all(np.isfinite(result.losses))
    assert "exploding" in {f.kind for f in monitor.diagnose(result.log)}  # the monitor alone: all look the same
    run, step = capstone.build(defect, seed), _first_bad(result)
    model = capstone.train(run, steps=step).model
    x, y = run.batch(step)
    where = capstone.trace_nonfinite(model, x, y, run.loss_fn)
    before_nan = result.log.total_grad_norm[result.log.steps < max(step, 1)]
    growth = np.nanmax(before_nan) / np.median(healthy.log.total_grad_norm)
    if defect == "exploding":
        assert growth > 100
        assert where == "parameters" or where.startswith("module")
    else:
        assert where == {"unsafe_loss": "loss", "bad_input": "input"}[defect]
        assert step >= 10 and growth < 10  # ordinary gradients for a while, then NaN out of the blue


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("defect", capstone.DEFECTS)
def test_the_intended_fix_trains(defect, seed):
    result = capstone.train(capstone.build(defect, seed), fix=INTENDED[defect], every=50)
    assert result.trains, (defect, seed, result.final_loss)


def test_clipping_does_not_cure_a_nan_from_the_loss_or_the_data():
    for defect in ("unsafe_loss", "bad_input"):
        assert not np.all(np.isfinite(capstone.train(capstone.build(defect, 0), fix="clip", every=50).losses))


def test_mystery_cases_hide_one_distinct_defect_each():
    found = set()
    for case in capstone.CASES:
        run = capstone.mystery(case, 3)
        assert not any(d in repr(run) for d in capstone.DEFECTS)
        matches = [d for d in capstone.DEFECTS
                   if (b := capstone.build(d, 3)).lr == run.lr and b.loss_fn is run.loss_fn
                   and b._recipe == run._recipe and torch.equal(b.y, run.y) and torch.equal(b.x.isnan(), run.x.isnan())]
        assert len(matches) == 1, (case, matches)
        found.add(matches[0])
    assert found == set(capstone.DEFECTS)


def test_same_seed_same_run_and_weights():
    a, b = capstone.build("dead", 4), capstone.build("dead", 4)
    assert torch.equal(a.order, b.order)
    for p, q in zip(capstone.make_model(a).parameters(), capstone.make_model(b).parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a.order, capstone.build("dead", 5).order)


def test_trace_nonfinite_on_hand_made_cases():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    x, y = torch.ones(4, 3), torch.zeros(4, dtype=torch.int64)
    assert capstone.trace_nonfinite(model, x, y, capstone.cross_entropy) == ""
    assert capstone.trace_nonfinite(model, x * math.inf, y, capstone.cross_entropy) == "input"
    big = torch.tensor([[0.0, 500.0]] * 4)
    assert capstone.trace_nonfinite(torch.nn.Identity(), big, y, capstone.handwritten_loss) == "loss"
    assert capstone.trace_nonfinite(torch.nn.Identity(), big, y, capstone.cross_entropy) == ""
    torch.testing.assert_close(capstone.cross_entropy(big, y), torch.tensor(500.0))
    with torch.no_grad():
        model[0].weight[0, 0] = math.nan
    assert capstone.trace_nonfinite(model, x, y, capstone.cross_entropy) == "parameters"


def test_bad_input_is_rejected():
    run = capstone.build(None, 0)
    with pytest.raises(ValueError, match="defect"):
        capstone.build("nan_loss", 0)
    with pytest.raises(ValueError, match="seed"):
        capstone.build(None, -1)
    with pytest.raises(TypeError, match="seed"):
        capstone.build(None, 1.5)
    with pytest.raises(ValueError, match="case"):
        capstone.mystery("Z", 0)
    with pytest.raises(ValueError, match="fix"):
        capstone.train(run, fix="magic")
    with pytest.raises(TypeError, match="run"):
        capstone.train("run")
    with pytest.raises(ValueError, match="steps"):
        capstone.train(run, steps=capstone.STEPS + 1)
    with pytest.raises(ValueError, match="step"):
        run.batch(capstone.STEPS)
    with pytest.raises(TypeError, match="loss_fn"):
        capstone.trace_nonfinite(torch.nn.Identity(), torch.ones(2, 2), torch.zeros(2, dtype=torch.int64), None)
