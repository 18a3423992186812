"""Helpers for strategy unit tests: run a strategy on a scripted engine and collect its events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.engine.base import SamplingConfig
from ponder.rewards.base import Candidate, CandidateScore
from ponder.strategies.answers import answer_key
from ponder.strategies.base import (
    Budget,
    Content,
    Event,
    Finish,
    Progress,
    Reasoning,
    Report,
    RequestSpec,
    StrategyContext,
    Thinking,
)
from ponder.strategies.registry import load_builtin, parse_strategy
from tests.scripted import ScriptedEngine

PROMPT = [{"role": "user", "content": "58+27+44"}]


def trace(*lines: str, answer: int | str) -> str:
    body = "".join(f"{line}\n" for line in lines)
    return f"<think>\n{body}</think>\nThe answer is \\boxed{{{answer}}}.<|end|>"


@dataclass
class Run:
    events: list[Event]
    ctx: StrategyContext
    reasoning: str = ""
    content: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    finish: list[Finish] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)


async def run_strategy(
    engine: ScriptedEngine,
    strategy: str | dict[str, Any],
    *,
    n: int = 1,
    max_tokens: int = 256,
    seed: int | None = 0,
    budget: int = 100_000,
    thinking: Thinking | None = None,
    scorers: Any = None,
    messages: Sequence[dict[str, str]] = PROMPT,
    logprobs: int | None = None,
) -> Run:
    load_builtin()
    spec, params, asked_budget = parse_strategy(strategy)
    prompt = engine.render_chat(list(messages))
    request = RequestSpec(
        tuple(prompt),
        SamplingConfig(n=n, max_tokens=max_tokens, seed=seed, logprobs=logprobs),
        thinking or Thinking(),
        messages=tuple(messages),
    )
    ctx = StrategyContext(engine, request, request_id="test", budget=Budget(asked_budget or budget), scorers=scorers)
    events = [ev async for ev in spec.run(ctx, params)]
    run = Run(events, ctx)
    for ev in events:
        if isinstance(ev, Reasoning) and ev.index == 0:
            run.reasoning += ev.text
        elif isinstance(ev, Content) and ev.index == 0:
            run.content += ev.text
        elif isinstance(ev, Report):
            run.report = ev.data
        elif isinstance(ev, Finish):
            run.finish.append(ev)
        elif isinstance(ev, Progress):
            run.progress.append(ev.data)
    return run


class AnswerScorer:
    """A scorer double: scores a candidate by its answer from a fixed table."""

    name = "orm"
    logprobs = 0
    aggregates = ("min", "prod", "last", "mean")

    def __init__(self, table: dict[str, float], default: float = 0.1) -> None:
        self.table, self.default = table, default
        self.calls: list[int] = []

    async def score(self, candidates: Sequence[Candidate], aggregate: str | None = None) -> list[CandidateScore]:
        self.calls.append(len(candidates))
        return [CandidateScore(self.table.get(answer_key(c.text) or "", self.default)) for c in candidates]


def generated_tokens(engine: ScriptedEngine) -> int:
    return sum(len(c.generated) for c in engine.calls)
