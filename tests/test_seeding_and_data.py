import random

import numpy as np
import pytest
import torch

from helpers import data, seed_everything


def test_seed_everything_seeds_all_three_and_returns_fresh_generator():
    rng = seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item(), rng.random())
    rng = seed_everything(7)
    second = (random.random(), np.random.rand(), torch.rand(1).item(), rng.random())
    assert first == second
    assert first[3] == np.random.default_rng(7).random()
    assert isinstance(rng, np.random.Generator)


@pytest.mark.parametrize(
    "seed, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError), ("3", TypeError), (True, TypeError)]
)
def test_seed_everything_rejects_bad_seed(seed, error):
    with pytest.raises(error, match="seed"):
        seed_everything(seed)


def test_spirals_shapes_labels_and_reproducibility():
    a = data.make_spirals(400, np.random.default_rng(0), n_classes=3, test_fraction=0.25)
    b = data.make_spirals(400, np.random.default_rng(0), n_classes=3, test_fraction=0.25)
    assert a.x_train.shape == (300, 2) and a.x_test.shape == (100, 2)
    assert a.x_train.dtype == np.float64 and a.y_train.dtype == np.int64
    assert set(np.unique(a.y_train)) == {0, 1, 2} and a.n_classes == 3
    np.testing.assert_array_equal(a.x_train, b.x_train)
    # points lie on arms of radius <= 1 (+ noise), so the data are bounded
    assert np.abs(a.x_train).max() < 2.0


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"n_samples": 2}, ValueError, "n_samples"),
        ({"n_samples": 10.0}, TypeError, "n_samples"),
        ({"rng": 0}, TypeError, "rng"),
        ({"noise": -0.1}, ValueError, "noise"),
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"n_classes": 1}, ValueError, "n_classes"),
    ],
)
def test_spirals_rejects_bad_input(kwargs, error, name):
    args = {"n_samples": 100, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(error, match=name):
        data.make_spirals(**args)


def test_mnist1d_generation_leaves_global_rng_alone():
    random.seed(3)
    np.random.seed(3)
    before = (random.random(), np.random.rand())
    random.seed(3)
    np.random.seed(3)
    generated = data._generate_mnist1d()  # mnist1d seeds the global RNGs itself
    after = (random.random(), np.random.rand())
    assert before == after
    assert [a.shape for a in generated] == [(4000, 40), (4000,), (1000, 40), (1000,)]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty MNIST-1D cache folder, and no in-process copy."""
    monkeypatch.setenv("GSL_CACHE_DIR", str(tmp_path / "cache"))
    data._mnist1d_arrays.cache_clear()
    yield tmp_path / "cache"
    data._mnist1d_arrays.cache_clear()


def test_mnist1d_is_generated_once_then_read_from_the_cache_file(fresh_cache, monkeypatch):
    ds = data.load_mnist1d()
    assert data.mnist1d_cache_file().parent == fresh_cache and data.mnist1d_cache_file().is_file()
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.n_classes == 10 and ds.y_train.dtype == np.int64 and ds.x_train.dtype == np.float64
    assert abs(ds.x_train.std() - 1.0) < 0.05
    ds.x_train[0, 0] = 1e9  # callers get copies: the cache is not changed
    assert data.load_mnist1d().x_train[0, 0] != 1e9
    # a new process reads the file: same arrays as generating afresh, without generating
    data._mnist1d_arrays.cache_clear()
    monkeypatch.setattr(data, "_generate_mnist1d", lambda: pytest.fail("generated although the cache file is there"))
    cached = data.load_mnist1d()
    monkeypatch.undo()
    for a, b in zip(vars(cached).values(), data._generate_mnist1d(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("content", [b"not a zip file", b""])
def test_a_broken_mnist1d_cache_file_is_regenerated(fresh_cache, content):
    fresh_cache.mkdir()
    data.mnist1d_cache_file().write_bytes(content)
    assert data.load_mnist1d().x_train.shape == (4000, 40)
    data._mnist1d_arrays.cache_clear()
    assert data.load_mnist1d().x_train.shape == (4000, 40)  # the file was rewritten and now reads back
    assert data.mnist1d_cache_file().stat().st_size > 1_000_000


def test_mnist1d_without_a_writable_cache_folder_is_generated(fresh_cache):
    fresh_cache.parent.joinpath("cache").write_text("a file where the folder should be")
    assert data.load_mnist1d().x_train.shape == (4000, 40)


def test_section_seeds_are_deterministic_independent_and_in_range():
    from helpers import section_generator, section_rng, section_seed

    assert section_seed(0, "init") == section_seed(0, "init")  # stable across runs (CRC-32, not hash())
    seeds = {section_seed(s, k) for s in (0, 1, 2) for k in ("a", "b", 3, 4)}
    assert len(seeds) == 12 and all(0 <= s < 2**32 for s in seeds)
    assert section_rng(5, "x").random() == np.random.default_rng(section_seed(5, "x")).random()
    expected = torch.rand(3, generator=torch.Generator().manual_seed(section_seed(5, "x")))
    assert torch.equal(torch.rand(3, generator=section_generator(5, "x")), expected)
    before = np.random.get_state()[1].copy()
    section_rng(1, "y").random()
    assert np.array_equal(before, np.random.get_state()[1]), "section_rng must not touch numpy's global RNG"


@pytest.mark.parametrize(
    "seed, section, error", [(-1, "a", ValueError), (0, 1.5, TypeError), (0, -2, ValueError), ("0", "a", TypeError)]
)
def test_section_seed_rejects_bad_input(seed, section, error):
    from helpers import section_seed

    with pytest.raises(error, match="seed|section"):
        section_seed(seed, section)
