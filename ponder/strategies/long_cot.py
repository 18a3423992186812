"""`long_cot`: s1-style budget forcing on the engine, plus reflection rounds.

Thinking models (single-token `<think>`/`</think>` in the vocabulary):
- generate with `</think>` as a stop token, so the engine stops right there;
- if the think block is shorter than `thinking.min_tokens` and fewer than
  `max_waits` waits were spent, drop the `</think>`, append "Wait" and continue
  from the same prefix (vLLM's prefix cache makes the continuation cheap);
- at `thinking.max_tokens` the think block is closed by appending `</think>`;
- the answer is then generated after `</think>` and streamed as content.
Models without think tokens get `reflections` rounds instead: the draft goes
back as an assistant turn followed by "check your answer"; drafts stream as
reasoning and the last round's answer as content.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from ponder.strategies.base import (
    Content,
    Event,
    Finish,
    Progress,
    Reasoning,
    Report,
    StrategyContext,
)
from ponder.strategies.reasoning import ThinkSplitter
from ponder.strategies.registry import strategy

REFLECT_PROMPT = "Check your answer step by step. If it is wrong, correct it. Then state the final answer."


@dataclass(frozen=True)
class LongCotParams:
    wait: str = "Wait"
    reflections: int = 1  # rounds for models that do not think
    answer_max_tokens: int = 256

    def __post_init__(self) -> None:
        if not self.wait.strip():
            raise ValueError("wait must not be empty")
        if not 0 <= self.reflections <= 8:
            raise ValueError("reflections must be in [0, 8]")
        if self.answer_max_tokens < 1:
            raise ValueError("answer_max_tokens must be >= 1")


@dataclass
class ThinkState:
    ids: list[int] = field(default_factory=list)  # the think block as fed back to the engine
    waits: int = 0
    forced: bool = False
    answered: bool = False  # the model skipped thinking and answered directly
    finish: str = "stop"


async def _think(
    ctx: StrategyContext, params: LongCotParams, state: ThinkState, think_end: int
) -> AsyncGenerator[Event, None]:
    """The thinking phase: stream reasoning, insert waits, force the end; fills `state`."""
    thinking = ctx.request.thinking
    prompt = list(ctx.request.prompt_ids)
    limit = thinking.max_tokens or ctx.request.sampling.max_tokens
    splitter = ThinkSplitter()
    while True:
        room = min(limit - len(state.ids), ctx.engine.max_model_len - len(prompt) - len(state.ids) - 2)
        if room < 1:
            state.forced = True
            break
        config = ctx.request.config(n=1, max_tokens=room, min_tokens=0, stop_token_ids=(think_end,), logprobs=None)
        ids: list[int] = []
        async for update in ctx.stream(prompt + state.ids, config, reasoning=True):
            for d in update.samples:
                ids.extend(d.token_ids)
                state.finish = d.finish_reason or state.finish
                reasoning, content = splitter.feed(d.text.replace("</think>", ""))
                if reasoning:
                    yield Reasoning(reasoning)
                if content:  # no <think>: the model answered straight away
                    state.answered = True
                    yield Content(content)
        closed = bool(ids) and ids[-1] == think_end
        state.ids.extend(ids[:-1] if closed else ids)
        if state.answered:
            return
        if closed and len(state.ids) < thinking.min_tokens and state.waits < thinking.max_waits:
            state.waits += 1
            state.ids.extend(ctx.engine.encode(params.wait))
            yield Reasoning(params.wait)
            yield Progress(
                {
                    "phase": "thinking",
                    "event": "wait",
                    "waits": state.waits,
                    "thinking_tokens": len(state.ids),
                    "min_tokens": thinking.min_tokens,
                    "max_tokens": limit,
                }
            )
            continue
        state.forced = not closed
        break
    if state.forced:
        yield Progress(
            {"phase": "thinking", "event": "forced_end", "thinking_tokens": len(state.ids), "max_tokens": limit}
        )


async def _generate(
    ctx: StrategyContext, prompt: list[int], max_tokens: int, *, as_reasoning: bool, out: list[str]
) -> AsyncGenerator[Event, None]:
    """One answer generation, streamed as reasoning or content; `out` gets [text, finish_reason]."""
    room = min(max_tokens, ctx.engine.max_model_len - len(prompt))
    if room < 1:
        out[:] = ["", "length"]
        return
    config = ctx.request.config(n=1, max_tokens=room, min_tokens=0)
    text, finish = "", "stop"
    async for update in ctx.stream(prompt, config, reasoning=as_reasoning):
        for d in update.samples:
            piece = d.text if text else d.text.lstrip()
            text += piece
            finish = d.finish_reason or finish
            if piece or d.logprobs:
                yield Reasoning(piece) if as_reasoning else Content(piece, logprobs=d.logprobs)
    out[:] = [text, finish]


async def _reflect(ctx: StrategyContext, params: LongCotParams) -> AsyncGenerator[Event, None]:
    messages = list(ctx.request.messages or ())
    rounds = params.reflections if messages else 0
    prompt = list(ctx.request.prompt_ids)
    out = ["", "stop"]
    for r in range(rounds + 1):
        last = r == rounds
        if r:
            yield Progress({"phase": "reflection", "round": r, "of": rounds})
            yield Reasoning("\n\n")
        async for ev in _generate(ctx, prompt, ctx.request.sampling.max_tokens, as_reasoning=not last, out=out):
            yield ev
        if not last:
            messages += [{"role": "assistant", "content": out[0]}, {"role": "user", "content": REFLECT_PROMPT}]
            prompt = ctx.engine.render_chat(messages)
    yield Finish(0, out[1])
    yield Report(
        {"strategy": "long_cot", "mode": "reflection", "reflections": rounds, "tokens": ctx.usage.completion_tokens}
    )


@strategy("long_cot", LongCotParams)
async def long_cot(ctx: StrategyContext, params: LongCotParams) -> AsyncGenerator[Event, None]:
    """Budget forcing: extend thinking with 'Wait', cap it, then answer; reflection for non-thinkers."""
    think_end = ctx.engine.tokenizer.think_end_id
    if think_end is None:
        async for ev in _reflect(ctx, params):
            yield ev
        return
    thinking = ctx.request.thinking
    yield Progress(
        {
            "phase": "thinking",
            "event": "start",
            "min_tokens": thinking.min_tokens,
            "max_tokens": thinking.max_tokens,
            "max_waits": thinking.max_waits,
        }
    )
    state = ThinkState()
    async for ev in _think(ctx, params, state, think_end):
        yield ev
    finish = state.finish
    if not state.answered:
        yield Progress(
            {"phase": "answer", "thinking_tokens": len(state.ids), "waits": state.waits, "forced": state.forced}
        )
        out = ["", "stop"]
        prompt = list(ctx.request.prompt_ids) + state.ids + [think_end]
        async for ev in _generate(ctx, prompt, params.answer_max_tokens, as_reasoning=False, out=out):
            yield ev
        finish = out[1]
    yield Finish(0, finish)
    yield Report(
        {
            "strategy": "long_cot",
            "mode": "budget_forcing",
            "thinking_tokens": len(state.ids),
            "waits": state.waits,
            "forced_end": state.forced,
            "tokens": ctx.usage.completion_tokens,
        }
    )
