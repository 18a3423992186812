"""`direct`: pass the request straight to the engine — the baseline every strategy is measured against.

All `n` choices come from one engine request; each streams its own reasoning
and content deltas.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from ponder.strategies.base import Content, Event, Finish, Reasoning, Report, StrategyContext
from ponder.strategies.reasoning import ThinkSplitter
from ponder.strategies.registry import strategy


@dataclass(frozen=True)
class DirectParams:
    pass


@strategy("direct", DirectParams)
async def direct(ctx: StrategyContext, params: DirectParams) -> AsyncGenerator[Event, None]:
    """One engine request, streamed as it is generated."""
    config = ctx.request.config()
    splitters = [ThinkSplitter() for _ in range(config.n)]
    finish: dict[int, str] = {}
    async for update in ctx.stream(ctx.request.prompt_ids, config):
        for delta in update.samples:
            reasoning, content = splitters[delta.index].feed(delta.text)
            if reasoning:
                yield Reasoning(reasoning, delta.index)
            if content or delta.logprobs:
                yield Content(content, delta.index, delta.logprobs)
            if delta.finish_reason is not None:
                reasoning, content = splitters[delta.index].flush()
                if reasoning:
                    yield Reasoning(reasoning, delta.index)
                if content:
                    yield Content(content, delta.index)
                finish[delta.index] = delta.finish_reason
                yield Finish(delta.index, delta.finish_reason)
    for index in range(config.n):  # an engine that ended without a reason for a sample
        if index not in finish:
            yield Finish(index, "abort")
    yield Report({"strategy": "direct", "samples": config.n})
