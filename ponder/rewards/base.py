"""The `Scorer` protocol every reward source implements, and its value types.

`best_of_n` ranks candidates with it, `majority_vote` weights votes with it and
`mcts` values tree nodes with it. A scorer receives whole candidates (prompt
ids, completion ids and text, and top-k logprobs when it asked for them) and
returns one score per candidate, higher is better, plus per-step scores when
it has them. Scorers are registered by name in `SCORERS` and built per model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ponder.engine.base import TokenLogprob
from ponder.registry import Registry

# step aggregations (PRM) and confidence measures (DeepConf) a scorer may accept
PRM_AGGREGATES = ("min", "prod", "last", "mean")
CONFIDENCE_MEASURES = ("lowest", "bottom10", "tail", "mean")


@dataclass(frozen=True)
class Candidate:
    prompt_ids: Sequence[int]
    token_ids: Sequence[int]
    text: str
    logprobs: Sequence[TokenLogprob] | None = None


@dataclass(frozen=True)
class CandidateScore:
    score: float
    steps: tuple[float, ...] = field(default_factory=tuple)


@runtime_checkable
class Scorer(Protocol):
    """Scores candidates; `logprobs` is the top-k the engine must return for it (0: none)."""

    name: str
    logprobs: int
    aggregates: tuple[str, ...]

    async def score(self, candidates: Sequence[Candidate], aggregate: str | None = None) -> list[CandidateScore]: ...


class ScorerUnavailable(LookupError):
    """The scorer exists but cannot serve this model (e.g. no PRM trained for it)."""


# name -> factory(model_folder, engine) -> Scorer
SCORERS: Registry[object] = Registry("scorer")
