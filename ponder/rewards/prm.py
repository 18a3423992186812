"""Scorers `prm` (process reward) and `orm` (outcome reward) from one trained reward model.

A served model folder `X` has a reward model when the sibling folder `X-prm`
holds one (`config.json` + `model.safetensors`, see `prm_model`) trained for
the same vocabulary: `ponder/models/ponder-tiny` -> `ponder/models/ponder-tiny-prm`.
Other models (e.g. smollm2) raise `ScorerUnavailable`, which the server turns
into a 400 when a request asks for them.

- `prm`: the head at every step end; the steps reduce with `min` (default),
  `prod`, `last` or `mean` in `ponder.kernels.step_scores`.
- `orm`: the same head at the completion's last token only (aggregate `last`).

All candidates of a call go through ONE packed forward (no padding) in a worker
thread (`asyncio.to_thread`), so the event loop keeps streaming meanwhile; a
lock keeps concurrent requests from oversubscribing the cores. GPU when there
is one, CPU otherwise. A candidate with no step scores 0.0.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

from ponder.rewards.base import PRM_AGGREGATES, SCORERS, Candidate, CandidateScore, ScorerUnavailable
from ponder.rewards.prm_model import ProcessRewardModel
from ponder.rewards.steps import pack_candidates

PRM_SUFFIX = "-prm"
DEFAULT_AGGREGATE = "min"


def prm_folder_for(model_folder: str | Path) -> Path:
    """Where the reward model of `model_folder` lives (it may not exist)."""
    folder = Path(model_folder).expanduser().resolve()
    return folder.with_name(folder.name + PRM_SUFFIX)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@lru_cache(maxsize=4)
def load_reward_model(prm_folder: str, device: str) -> ProcessRewardModel:
    """Load once per process; the `prm` and `orm` scorers of a model share it."""
    return ProcessRewardModel.load(prm_folder, device)


def find_reward_model(model_folder: str | Path) -> ProcessRewardModel:
    """The reward model trained for `model_folder`, or `ScorerUnavailable`."""
    prm = prm_folder_for(model_folder)
    if not (prm / "model.safetensors").is_file() or not (prm / "config.json").is_file():
        raise ScorerUnavailable(f"no process reward model for {Path(model_folder).name} (looked in {prm})")
    served_config = Path(model_folder) / "config.json"
    prm_vocab = json.loads((prm / "config.json").read_text())["backbone"]["vocab_size"]
    if served_config.is_file():
        vocab = json.loads(served_config.read_text()).get("vocab_size")
        if vocab is not None and vocab != prm_vocab:
            raise ScorerUnavailable(f"{prm} was trained for a vocabulary of {prm_vocab}, the model has {vocab}")
    return load_reward_model(str(prm), str(default_device()))


class RewardModelScorer:
    """`prm` (step scores, reduced) or `orm` (last-token score) over one reward model."""

    logprobs = 0

    def __init__(self, model: ProcessRewardModel, mode: str = "prm") -> None:
        if mode not in ("prm", "orm"):
            raise ValueError("mode must be 'prm' or 'orm'")
        self.model = model
        self.name = mode
        self.aggregates: tuple[str, ...] = PRM_AGGREGATES if mode == "prm" else ("last",)
        self._lock = _lock_for(model)

    async def score(self, candidates: Sequence[Candidate], aggregate: str | None = None) -> list[CandidateScore]:
        reduce = aggregate or (DEFAULT_AGGREGATE if self.name == "prm" else "last")
        if reduce not in self.aggregates:
            raise ValueError(f"scorer {self.name!r} takes aggregate in: {', '.join(self.aggregates)}")
        if not candidates:
            return []
        return await asyncio.to_thread(self.score_sync, candidates, reduce)

    def score_sync(self, candidates: Sequence[Candidate], reduce: str) -> list[CandidateScore]:
        """Blocking: one packed forward over all candidates."""
        packed = pack_candidates([(c.prompt_ids, c.token_ids) for c in candidates],
                                 orm=self.name == "orm", device=self.model.device)
        with self._lock:
            out = self.model.score(packed, reduce)
        probs = out.step_probs.tolist()
        bounds = packed.step_offsets.tolist()
        result = []
        for b, score in enumerate(out.scores.tolist()):
            steps = tuple(round(p, 6) for p in probs[bounds[b] : bounds[b + 1]])
            result.append(CandidateScore(score if math.isfinite(score) else 0.0, steps))
        return result


_LOCKS: dict[int, threading.Lock] = {}


def _lock_for(model: ProcessRewardModel) -> threading.Lock:
    return _LOCKS.setdefault(id(model), threading.Lock())


@SCORERS.register("prm")
def _prm(folder: str) -> RewardModelScorer:
    return RewardModelScorer(find_reward_model(folder), "prm")


@SCORERS.register("orm")
def _orm(folder: str) -> RewardModelScorer:
    return RewardModelScorer(find_reward_model(folder), "orm")
