"""The served models, their strategy aliases, and the server-wide state routes share."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.engine.base import Engine
from ponder.serve.admission import Admission
from ponder.serve.config import ServerConfig
from ponder.serve.errors import APIError
from ponder.serve.metrics import Metrics
from ponder.serve.scoring import ModelScorers
from ponder.strategies.registry import STRATEGIES


@dataclass
class ServedModel:
    name: str
    engine: Engine
    folder: str
    created: int = field(default_factory=lambda: int(time.time()))
    defaults: dict[str, Any] = field(default_factory=dict)  # sampling defaults from generation_config.json

    @staticmethod
    def generation_defaults(folder: str) -> dict[str, Any]:
        """temperature/top_p/top_k the model's authors recommend, as vLLM applies them."""
        path = Path(folder, "generation_config.json")
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: raw[k] for k in ("temperature", "top_p", "top_k") if k in raw and raw[k] is not None}


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.models: dict[str, ServedModel] = {}
        self.draining = False
        self.engine_dead: str | None = None
        self.started = time.time()
        self.runs: set[Any] = set()  # StrategyRuns in flight (to drain or interrupt them)
        self.admission = Admission(config.admission)
        self._scorers: dict[str, ModelScorers] = {}
        self.metrics = Metrics()
        self.metrics.queued.set_function(lambda: self.admission.queued)

    def scorers_for(self, model: ServedModel) -> ModelScorers:
        """The `name -> Scorer` lookup for `model` (scorers are built on first use)."""
        scorers = self._scorers.get(model.name)
        if scorers is None:
            scorers = self._scorers[model.name] = ModelScorers(model.folder)
        return scorers

    def add(self, model: ServedModel) -> None:
        self.models[model.name] = model
        self.metrics.declare(model.name, list(STRATEGIES))

    def lookup(self, name: str) -> tuple[ServedModel, str | None]:
        """(model, strategy from the alias) for `name` or `name@strategy`; 404 if unknown."""
        base, _, alias = name.partition("@")
        model = self.models.get(base)
        if model is None or (alias and alias not in STRATEGIES):
            known = ", ".join(self.model_ids())
            raise APIError(
                404, f"The model '{name}' does not exist. Served: {known}", param="model", code="model_not_found"
            )
        return model, alias or None

    def model_ids(self) -> list[str]:
        ids = []
        for name in self.models:
            ids.append(name)
            ids.extend(f"{name}@{s}" for s in STRATEGIES if s != "direct")
        return ids
