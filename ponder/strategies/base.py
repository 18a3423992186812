"""What every strategy shares: its events, the per-request context, budget and usage.

A strategy is one async generator function `run(ctx, params)` registered by name
with a frozen parameters dataclass (see `registry.py`). It sees only the
`StrategyContext`: the `Engine` protocol (through `ctx.stream`/`ctx.generate`,
which count usage, enforce the compute budget and remember every engine
request so they can all be aborted), the client's sampling settings and the
scorers. It yields events; the server turns them into OpenAI chunks.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ponder.engine.base import Engine, EngineUpdate, Sample, SamplingConfig, TokenLogprob


# -- events ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Reasoning:
    text: str
    index: int = 0


@dataclass(frozen=True)
class Content:
    text: str
    index: int = 0
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True)
class Progress:
    """What the strategy is doing; sent as an `event: ponder.progress` SSE event."""

    data: dict[str, Any]


@dataclass(frozen=True)
class Finish:
    """A choice ended. `reasoning`, when set, is the choice's final reasoning: a
    multi-sample strategy streams one sample's reasoning live, then names the
    chosen sample's reasoning here for whole (non-streamed) responses."""

    index: int
    finish_reason: str
    reasoning: str | None = None


@dataclass(frozen=True)
class Report:
    """The strategy's final account, the response's `ponder` object."""

    data: dict[str, Any]


Event = Reasoning | Content | Progress | Finish | Report


# -- budget and usage -----------------------------------------------------------------
class BudgetExhausted(Exception):
    """The request's compute budget cannot pay for another generation."""


class Budget:
    """Total generated tokens a request may spend, across all its engine requests.

    Each engine request reserves `n * max_tokens` up front (its `max_tokens` is
    cut to what remains), so the limit can never be exceeded; what a request
    did not use is returned when it finishes.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("budget must be >= 1 token")
        self.limit = limit
        self.used = 0
        self._reserved = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.used - self._reserved

    def reserve(self, n: int, max_tokens: int) -> int:
        """Per-sample max_tokens this request may use (<= max_tokens)."""
        per_sample = min(max_tokens, self.remaining // n)
        if per_sample < 1:
            raise BudgetExhausted(f"{self.remaining} of {self.limit} budget tokens left")
        self._reserved += per_sample * n
        return per_sample

    def settle(self, reserved: int, used: int) -> None:
        self._reserved -= reserved
        self.used += used


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    engine_requests: int = 0
    samples: int = 0

    def openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


# -- the client's request, as strategies see it ----------------------------------------
@dataclass(frozen=True)
class Thinking:
    """Thinking budget (tokens of the `<think>` block) for budget-forcing strategies."""

    min_tokens: int = 0
    max_tokens: int | None = None
    max_waits: int = 2

    def __post_init__(self) -> None:
        if self.min_tokens < 0:
            raise ValueError("thinking.min_tokens must be >= 0")
        if self.max_tokens is not None and self.max_tokens < max(1, self.min_tokens):
            raise ValueError("thinking.max_tokens must be >= max(1, thinking.min_tokens)")
        if not 0 <= self.max_waits <= 64:
            raise ValueError("thinking.max_waits must be in [0, 64]")


# `reasoning_effort` -> thinking budget (tokens of the <think> block); README documents these.
EFFORT_THINKING: dict[str, Thinking] = {
    "minimal": Thinking(min_tokens=0, max_tokens=32, max_waits=0),
    "low": Thinking(min_tokens=0, max_tokens=128, max_waits=0),
    "medium": Thinking(min_tokens=0, max_tokens=512, max_waits=1),
    "high": Thinking(min_tokens=256, max_tokens=2048, max_waits=4),
}


@dataclass(frozen=True)
class RequestSpec:
    prompt_ids: tuple[int, ...]
    sampling: SamplingConfig
    thinking: Thinking = field(default_factory=Thinking)
    scorer: str | None = None
    messages: tuple[dict[str, str], ...] | None = None  # chat requests: the conversation

    def config(self, **overrides: Any) -> SamplingConfig:
        return replace(self.sampling, **overrides) if overrides else self.sampling


# -- the context ----------------------------------------------------------------------
class StrategyContext:
    def __init__(
        self,
        engine: Engine,
        request: RequestSpec,
        *,
        request_id: str,
        budget: Budget,
        scorers: Callable[[str | None], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.request = request
        self.request_id = request_id
        self.budget = budget
        self.usage = Usage()
        self._scorers = scorers
        self._ids = itertools.count()
        self._open: set[str] = set()

    def scorer(self, name: str | None = None) -> Any:
        """The scorer named by the strategy (or the request's / the model's default)."""
        if self._scorers is None:
            raise LookupError("no scorers are configured on this server")
        return self._scorers(name or self.request.scorer)

    @property
    def open_requests(self) -> int:
        return len(self._open)

    async def stream(
        self, prompt: Sequence[int], config: SamplingConfig, *, reasoning: bool | None = None
    ) -> AsyncIterator[EngineUpdate]:
        """Stream one engine request, under the budget, counting its usage.

        `reasoning`: True counts every generated token as reasoning (a
        continuation inside `<think>`), False none, None lets the tokenizer decide.
        """
        per_sample = self.budget.reserve(config.n, config.max_tokens)
        if per_sample < config.max_tokens:
            config = replace(config, max_tokens=per_sample, min_tokens=min(config.min_tokens, per_sample))
        rid = f"{self.request_id}-{next(self._ids)}"
        self._open.add(rid)
        self.usage.engine_requests += 1
        samples = [Sample(i) for i in range(config.n)]
        billed = False
        cached = 0  # some backends report cached prompt tokens only on the last update: keep the largest
        try:
            async for update in self.engine.stream(prompt, config, rid):
                if not billed:
                    self.usage.prompt_tokens += update.prompt_tokens
                    billed = True
                cached = max(cached, update.cached_tokens)
                for delta in update.samples:
                    samples[delta.index].add(delta)
                yield update
        finally:
            self._open.discard(rid)
            self.usage.cached_tokens += cached
            used = sum(len(s.token_ids) for s in samples)
            self.budget.settle(per_sample * config.n, used)
            self.usage.completion_tokens += used
            self.usage.samples += config.n
            self.usage.reasoning_tokens += sum(self._reasoning_tokens(s, reasoning) for s in samples)

    def _reasoning_tokens(self, sample: Sample, reasoning: bool | None) -> int:
        if reasoning is not None:
            return len(sample.token_ids) if reasoning else 0
        count: int = self.engine.tokenizer.reasoning_token_count(sample.token_ids, sample.text)
        return count

    async def generate(
        self,
        prompt: Sequence[int],
        config: SamplingConfig,
        *,
        reasoning: bool | None = None,
        on_update: Callable[[EngineUpdate], None] | None = None,
    ) -> list[Sample]:
        """Run one engine request to the end and return its samples."""
        samples = [Sample(i) for i in range(config.n)]
        async for update in self.stream(prompt, config, reasoning=reasoning):
            for delta in update.samples:
                samples[delta.index].add(delta)
            if on_update is not None:
                on_update(update)
        return samples

    async def close(self) -> int:
        """Abort every engine request this strategy still has open; returns how many."""
        open_ids, self._open = list(self._open), set()
        for rid in open_ids:
            await self.engine.abort(rid)
        return len(open_ids)
