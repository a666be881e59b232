"""Gradient Stability Lab: the package behind the notebooks.

Shared modules: ``seeding`` (``seed_everything``), ``data``, ``models``, ``stats``, ``plotting``,
``widgets``. Topic modules, in notebook order: ``chain`` (01).
"""

from helpers.seeding import seed_everything

__all__ = ["seed_everything"]
__version__ = "0.1.0"
