"""`best_of_n`: N samples in one engine request, ranked by a reward model.

Scorers: a process reward model (step scores aggregated with `min`, `prod`,
`last` or `mean`), an outcome reward model, or logprob confidence (DeepConf's
`lowest`, `bottom10`, `tail` or `mean` group confidence). Plain mode returns the
top-scored sample; weighted mode sums scores per normalised answer and returns
the answer with the largest sum (search-and-learn's weighted Best-of-N).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

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
from ponder.strategies.registry import ParamError, strategy
from ponder.strategies.sampling import Drawn, draw, sample_report
from ponder.strategies.voting import tally


@dataclass(frozen=True)
class BestOfNParams:
    n: int = 8
    scorer: str | None = None  # None: the model's default scorer
    aggregate: str | None = None  # None: the scorer's default
    weighted: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be >= 1")


@strategy("best_of_n", BestOfNParams)
async def best_of_n(ctx: StrategyContext, params: BestOfNParams) -> AsyncGenerator[Event, None]:
    """Sample N, score each with a reward model, return the best (or the best-weighted answer)."""
    scorer = ctx.scorer(params.scorer)
    if params.aggregate is not None and params.aggregate not in scorer.aggregates:
        allowed = ", ".join(scorer.aggregates) or "none"
        raise ParamError("strategy.aggregate", f"scorer {scorer.name!r} takes aggregate in: {allowed}")
    drawn: list[Drawn] = []
    budget_out = False
    try:
        async for ev in draw(ctx, params.n, drawn, logprobs=scorer.logprobs or None):
            yield ev
    except BudgetExhausted:
        budget_out = True
    scores = await scorer.score(
        [Candidate(ctx.request.prompt_ids, d.sample.token_ids, d.sample.text, d.sample.logprobs) for d in drawn],
        params.aggregate,
    )
    by_index = {d.index: s.score for d, s in zip(drawn, scores, strict=True)}
    yield Progress(
        {
            "phase": "scored",
            "scorer": scorer.name,
            "scores": [{"index": d.index, "answer": d.answer, "score": round(by_index[d.index], 6)} for d in drawn],
        }
    )
    best = sorted(drawn, key=lambda d: (-by_index[d.index], d.index))
    ranked = tally((d.index, d.answer, by_index[d.index]) for d in drawn) if params.weighted else []
    chosen: Drawn | None
    if params.weighted and ranked:
        chosen = next(d for d in best if d.answer == ranked[0].answer)
    else:
        chosen = best[0] if best else None
    if chosen is not None:
        yield Content(chosen.content or chosen.sample.text)
    yield Finish(
        0, (chosen.sample.finish_reason or "stop") if chosen else "length", chosen.reasoning if chosen else None
    )
    yield Report(
        {
            "strategy": "best_of_n",
            "scorer": scorer.name,
            "aggregate": params.aggregate,
            "weighted": params.weighted,
            "answer": chosen.answer if chosen else None,
            "chosen": chosen.index if chosen else None,
            "samples": sample_report(drawn, by_index),
            "answers": [{"answer": t.answer, "votes": t.votes, "weight": round(t.weight, 6)} for t in ranked]
            if params.weighted
            else None,
            "scores": [
                {"index": d.index, "steps": list(s.steps)} for d, s in zip(drawn, scores, strict=True) if s.steps
            ]
            or None,
            "budget_exhausted": budget_out,
            "tokens": ctx.usage.completion_tokens,
        }
    )
