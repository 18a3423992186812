"""`majority_vote`: self-consistency over extracted, normalised answers.

N samples in one engine request (shared prompt KV cache). Optional confidence
weighting (DeepConf: each vote weighs its trace's confidence, and only the most
confident `keep` share of traces votes). Optional early stop (adaptive
consistency): sample in waves and stop once the leading answer holds
`early_stop` of the votes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from ponder.rewards.base import Candidate
from ponder.strategies.base import (
    BudgetExhausted,
    Content,
    Event,
    Finish,
    Progress,
    Report,
    StrategyContext,
)
from ponder.strategies.registry import strategy
from ponder.strategies.sampling import Drawn, draw, sample_report
from ponder.strategies.voting import agreement, tally


@dataclass(frozen=True)
class MajorityVoteParams:
    n: int = 8
    early_stop: float | None = None  # stop when the leader holds this share of the votes
    wave: int = 0  # samples per wave with early_stop (0: n // 4, at least 2)
    weight: Literal["none", "confidence", "prm", "orm"] = "none"
    keep: float = 1.0  # with weights: only the most confident share of traces votes

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be >= 1")
        if self.early_stop is not None and not 0.5 < self.early_stop <= 1.0:
            raise ValueError("early_stop must be in (0.5, 1.0]")
        if self.wave < 0 or self.wave > self.n:
            raise ValueError("wave must be in [0, n]")
        if not 0 < self.keep <= 1:
            raise ValueError("keep must be in (0, 1]")

    @property
    def wave_size(self) -> int:
        if self.early_stop is None:
            return self.n
        return self.wave or max(2, self.n // 4)


async def _weights(ctx: StrategyContext, params: MajorityVoteParams, drawn: list[Drawn]) -> dict[int, float]:
    if params.weight == "none":
        return {d.index: 1.0 for d in drawn}
    scorer = ctx.scorer(params.weight)
    cands = [Candidate(ctx.request.prompt_ids, d.sample.token_ids, d.sample.text, d.sample.logprobs) for d in drawn]
    scores = await scorer.score(cands)
    weights = {d.index: s.score for d, s in zip(drawn, scores, strict=True)}
    if params.keep < 1:
        kept = sorted(weights, key=lambda i: (-weights[i], i))[: max(1, round(params.keep * len(weights)))]
        weights = {i: (w if i in kept else 0.0) for i, w in weights.items()}
    return weights


@strategy("majority_vote", MajorityVoteParams)
async def majority_vote(ctx: StrategyContext, params: MajorityVoteParams) -> AsyncGenerator[Event, None]:
    """Sample N answers and return the most common (optionally confidence-weighted, early-stopped)."""
    logprobs = None
    if params.weight != "none":
        logprobs = ctx.scorer(params.weight).logprobs or None
    drawn: list[Drawn] = []
    weights: dict[int, float] = {}
    stopped_early = False
    budget_out = False
    while len(drawn) < params.n:
        size = min(params.wave_size, params.n - len(drawn))
        wave: list[Drawn] = []
        try:
            async for ev in draw(ctx, size, wave, first_index=len(drawn), logprobs=logprobs):
                yield ev
        except BudgetExhausted:
            budget_out = True
        drawn.extend(wave)
        if budget_out or not wave:
            break
        weights.update(await _weights(ctx, params, wave) if params.weight != "none" else {d.index: 1.0 for d in wave})
        ranked = tally((d.index, d.answer, weights[d.index]) for d in drawn)
        share = agreement(ranked)
        yield Progress(
            {
                "phase": "vote",
                "votes": [{"answer": t.answer, "votes": t.votes, "weight": round(t.weight, 6)} for t in ranked],
                "samples_done": len(drawn),
                "agreement": round(share, 4),
            }
        )
        if (
            params.early_stop is not None
            and len(drawn) < params.n
            and ranked
            and share >= params.early_stop
            and len(drawn) >= 2
        ):
            stopped_early = True
            break
    if params.weight != "none" and params.keep < 1 and drawn:
        weights = await _weights(ctx, params, drawn)  # `keep` ranks all traces together
    ranked = tally((d.index, d.answer, weights.get(d.index, 1.0)) for d in drawn)
    winner = ranked[0].answer if ranked else None
    chosen = next((d for d in drawn if winner is not None and d.answer == winner), drawn[0] if drawn else None)
    if chosen is not None:
        yield Content(chosen.content or chosen.sample.text)
    yield Finish(
        0, (chosen.sample.finish_reason or "stop") if chosen else "length", chosen.reasoning if chosen else None
    )
    yield Report(
        {
            "strategy": "majority_vote",
            "answer": winner,
            "chosen": chosen.index if chosen else None,
            "scorer": None if params.weight == "none" else params.weight,
            "votes": [{"answer": t.answer, "votes": t.votes, "weight": round(t.weight, 6)} for t in ranked],
            "agreement": round(agreement(ranked), 4),
            "samples": sample_report(drawn, weights if params.weight != "none" else None),
            "early_stop": stopped_early,
            "budget_exhausted": budget_out,
            "tokens": ctx.usage.completion_tokens,
        }
    )
