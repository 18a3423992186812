"""`fault`: a strategy that fails on purpose, for fault-injection tests only.

Registered only when `PONDER_FAULTS=1` is set in the server's environment. It
starts a real engine request (n=2), streams a few tokens, then raises — so the
tests can check that an exception inside a strategy fails only its request,
aborts its engine requests, reaches a streaming client as an error event, and
leaves the server healthy.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from ponder.strategies.base import Event, Reasoning, StrategyContext
from ponder.strategies.registry import strategy


class InjectedFault(RuntimeError):
    pass


@dataclass(frozen=True)
class FaultParams:
    after_tokens: int = 5


@strategy("fault", FaultParams)
async def fault(ctx: StrategyContext, params: FaultParams) -> AsyncGenerator[Event, None]:
    """Stream a little, then raise (tests only)."""
    seen = 0
    async for update in ctx.stream(ctx.request.prompt_ids, ctx.request.config(n=2, max_tokens=1000, ignore_eos=True)):
        for d in update.samples:
            if d.index == 0 and d.text:
                yield Reasoning(d.text)
        seen += 1
        if seen >= params.after_tokens:
            raise InjectedFault("injected fault for testing")
