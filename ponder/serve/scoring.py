"""Per-model scorer lookup: builds each scorer once per model, on first use.

The default scorer of a model is the first available of `prm` (a process
reward model trained for it) and `confidence` (works for every model).
"""

from __future__ import annotations

from typing import Any

from ponder.rewards import SCORERS, load_builtin
from ponder.rewards.base import ScorerUnavailable
from ponder.strategies.registry import ParamError

DEFAULT_ORDER = ("prm", "confidence")


class ModelScorers:
    def __init__(self, folder: str) -> None:
        load_builtin()
        self.folder = folder
        self._built: dict[str, Any] = {}
        self._unavailable: dict[str, str] = {}

    def available(self, name: str) -> bool:
        try:
            self.get(name)
        except ParamError:
            return False
        return True

    @property
    def default(self) -> str:
        return next((n for n in DEFAULT_ORDER if self.available(n)), "confidence")

    def get(self, name: str) -> Any:
        if name in self._built:
            return self._built[name]
        if name in self._unavailable:
            raise ParamError("strategy.scorer", self._unavailable[name])
        if name not in SCORERS:
            known = ", ".join(SCORERS)
            raise ParamError("strategy.scorer", f"unknown scorer {name!r}; available: {known}")
        try:
            scorer = SCORERS.get(name)(self.folder)  # type: ignore[operator]
        except ScorerUnavailable as e:
            self._unavailable[name] = f"scorer {name!r} is not available for this model: {e}"
            raise ParamError("strategy.scorer", self._unavailable[name]) from None
        self._built[name] = scorer
        return scorer

    def __call__(self, name: str | None) -> Any:
        return self.get(name or self.default)
