"""Draw N samples in one engine request, streaming the first one's reasoning live.

Shared by the multi-sample strategies. All N samples go to the engine as ONE
request with `n=N`, so vLLM computes the prompt's KV cache once. While they
run, sample 0's text streams as `Reasoning` events (time to first token as
`direct`), and `Progress` events report every sample's token count every
few engine steps and each answer as its sample finishes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace

from ponder.engine.base import Sample
from ponder.strategies.answers import answer_key
from ponder.strategies.base import Event, Progress, Reasoning, StrategyContext
from ponder.strategies.reasoning import ThinkSplitter, split_reasoning

PROGRESS_INTERVAL_S = 0.25


@dataclass
class Drawn:
    index: int  # index among all samples of the request (across waves)
    sample: Sample
    answer: str | None  # normalised answer key, None when none was found

    @property
    def reasoning(self) -> str:
        return split_reasoning(self.sample.text)[0]

    @property
    def content(self) -> str:
        return split_reasoning(self.sample.text)[1]


async def draw(
    ctx: StrategyContext,
    n: int,
    out: list[Drawn],
    *,
    first_index: int = 0,
    logprobs: int | None = None,
    live: bool = True,
) -> AsyncGenerator[Event, None]:
    """Sample `n` completions of the request's prompt; appends them to `out`.

    Seeds: sample i of the request uses seed + i whether it is drawn in one
    request or in waves, so waves reproduce a single n=N request exactly.
    """
    base = ctx.request.sampling
    seed = None if base.seed is None else base.seed + first_index
    config = replace(base, n=n, seed=seed, logprobs=logprobs)
    samples = [Sample(i) for i in range(n)]
    splitter = ThinkSplitter()
    last = time.monotonic()
    try:
        async for update in ctx.stream(ctx.request.prompt_ids, config):
            finished = []
            for d in update.samples:
                samples[d.index].add(d)
                if live and d.index == 0 and first_index == 0:
                    # sample 0 streams live as reasoning, its answer included: the
                    # request's answer is only decided when every sample is in
                    reasoning, content = splitter.feed(d.text)
                    if reasoning or content:
                        yield Reasoning(reasoning + content)
                if d.finish_reason is not None:
                    finished.append(d.index)
            now = time.monotonic()
            if finished or now - last >= PROGRESS_INTERVAL_S:
                last = now
                yield Progress(
                    {
                        "phase": "sampling",
                        "samples": [
                            {
                                "index": first_index + s.index,
                                "tokens": len(s.token_ids),
                                "done": s.finish_reason is not None,
                                **({"answer": answer_key(s.text)} if s.index in finished else {}),
                            }
                            for s in samples
                        ],
                    }
                )
    finally:
        out.extend(Drawn(first_index + s.index, s, answer_key(s.text)) for s in samples)


def sample_report(drawn: list[Drawn], weights: dict[int, float] | None = None) -> list[dict[str, object]]:
    return [
        {
            "index": d.index,
            "answer": d.answer,
            "tokens": len(d.sample.token_ids),
            "finish_reason": d.sample.finish_reason,
            **({"score": round(weights[d.index], 6)} if weights and d.index in weights else {}),
        }
        for d in drawn
    ]
