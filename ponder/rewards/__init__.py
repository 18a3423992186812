"""Reward scoring: the `Scorer` protocol and its implementations (PRM, ORM, confidence)."""

from __future__ import annotations

import importlib

from ponder.rewards.base import SCORERS

BUILTIN = ("confidence", "prm")


def load_builtin() -> None:
    """Import the built-in scorers; each registers its factory in `SCORERS`."""
    for name in BUILTIN:
        try:
            importlib.import_module(f"ponder.rewards.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"ponder.rewards.{name}":
                raise


__all__ = ["SCORERS", "load_builtin"]
