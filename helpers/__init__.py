"""Gradient Stability Lab: the package behind the notebooks.

Shared modules: ``seeding`` (``seed_everything``), ``threads`` (``limit_threads``), ``data``, ``models``,
``stats``, ``monitor``, ``layers`` (a from-scratch numpy MLP), ``plotting``, ``widgets``. Topic modules, in
notebook order: ``chain`` (01), ``init`` (02), ``gradcheck`` (03), ``regularization`` (04), ``clipping`` (05),
``normalization`` and ``residual`` (06), ``recurrent`` and ``adding`` (07), ``capstone`` (08).
"""

from helpers.seeding import section_generator, section_rng, section_seed, seed_everything

__all__ = ["seed_everything", "section_generator", "section_rng", "section_seed"]
__version__ = "0.1.0"
