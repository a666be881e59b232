"""Generated data sets (never downloaded): spirals for toy classification, MNIST-1D for a real task.

Used from notebook 01 on. Every generator takes an explicit ``rng``.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np

from helpers._validate import check_int, check_real, check_rng


@dataclass(frozen=True)
class Dataset:
    """A train/test split. ``x_*``: float64 ``[n, features]``; ``y_*``: int64 ``[n]`` class labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def make_spirals(
    n_samples: int, rng: np.random.Generator, *, n_classes: int = 2, noise: float = 0.2, test_fraction: float = 0.5
) -> Dataset:
    """Interleaved 2-D spirals, one arm per class, with Gaussian noise of std ``noise``.

    Arm ``k`` is ``r (cos(t + 2πk/K), sin(t + 2πk/K))`` with ``r = t / (3π)``, ``t ~ U[0.25π, 3π]``.
    Returns a ``Dataset`` with ``x`` of shape ``[n, 2]``; ``n_samples`` in total, split by ``test_fraction``.
    """
    n_samples = check_int("n_samples", n_samples, minimum=4)
    rng = check_rng("rng", rng)
    n_classes = check_int("n_classes", n_classes, minimum=2)
    noise = check_real("noise", noise, minimum=0.0)
    test_fraction = check_real("test_fraction", test_fraction, minimum=0.0, maximum=1.0)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")

    labels = rng.integers(0, n_classes, size=n_samples)
    t = rng.uniform(0.25 * np.pi, 3 * np.pi, size=n_samples)
    angle = t + 2 * np.pi * labels / n_classes
    radius = t / (3 * np.pi)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += noise * radius[:, None] * rng.standard_normal(x.shape)
    n_test = max(1, min(n_samples - 1, round(test_fraction * n_samples)))
    n_train = n_samples - n_test
    return Dataset(x[:n_train], labels[:n_train].astype(np.int64), x[n_train:], labels[n_train:].astype(np.int64))


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    # mnist1d seeds Python's and numpy's global RNGs; restore them so the caller's state is untouched.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    arrays = (data["x"], data["y"], data["x_test"], data["y_test"])
    arrays = tuple(np.array(a, dtype=np.float64 if i % 2 == 0 else np.int64) for i, a in enumerate(arrays))
    for array in arrays:
        array.setflags(write=False)
    return arrays


def load_mnist1d() -> Dataset:
    """MNIST-1D (Greydanus 2020), generated procedurally by the ``mnist1d`` package, never downloaded.

    10 classes; ``x_train [4000, 40]``, ``x_test [1000, 40]``, standardized by the package.
    Generated once per process (about 3 s) and cached; each call returns fresh writable copies.
    """
    return Dataset(*(a.copy() for a in _mnist1d_arrays()))
