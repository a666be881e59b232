"""Reproducible randomness: ``seed_everything`` for a notebook, ``section_rng`` / ``section_generator`` per section."""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch

from helpers._validate import check_int


def _check_seed(seed) -> int:
    seed = check_int("seed", seed, minimum=0)
    if seed >= 2**32:
        raise ValueError(f"seed must be < 2**32 (numpy's legacy RNG limit), got {seed}")
    return seed


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's ``random``, numpy's legacy global RNG and torch; return a fresh Generator.

    Helpers never read the global RNGs: pass the returned ``rng`` (or a ``torch.Generator``)
    to them explicitly. Seeding the globals only protects code that does read them.

    Args:
        seed: a non-negative integer below 2**32.
    Returns:
        ``np.random.default_rng(seed)``.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def section_seed(seed: int, section: int | str) -> int:
    """A seed in ``[0, 2**32)`` derived from a notebook's ``seed`` and a section key.

    ``numpy.random.SeedSequence([seed, key])`` with a string key turned into an int by CRC-32
    (Python's ``hash`` of a string changes between runs). Different sections get independent
    streams, so re-running one section's cells never changes another section's numbers.
    """
    seed = _check_seed(seed)
    if isinstance(section, str):
        key = zlib.crc32(section.encode())
    else:
        key = check_int("section", section, minimum=0)
    return int(np.random.SeedSequence([seed, key]).generate_state(1)[0])


def section_rng(seed: int, section: int | str) -> np.random.Generator:
    """``np.random.default_rng(section_seed(seed, section))``: a numpy Generator for one section."""
    return np.random.default_rng(section_seed(seed, section))


def section_generator(seed: int, section: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``section_seed(seed, section)``, for one section."""
    return torch.Generator().manual_seed(section_seed(seed, section))
