"""One call that makes a notebook reproducible: ``seed_everything``."""

from __future__ import annotations

import random

import numpy as np
import torch

from helpers._validate import check_int


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's ``random``, numpy's legacy global RNG and torch; return a fresh Generator.

    Helpers never read the global RNGs: pass the returned ``rng`` (or a ``torch.Generator``)
    to them explicitly. Seeding the globals only protects code that does read them.

    Args:
        seed: a non-negative integer below 2**32.
    Returns:
        ``np.random.default_rng(seed)``.
    """
    seed = check_int("seed", seed, minimum=0)
    if seed >= 2**32:
        raise ValueError(f"seed must be < 2**32 (numpy's legacy RNG limit), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
