"""`direct` on a scripted engine: events, reasoning split, usage equal to what the engine generated."""

from __future__ import annotations

from pathlib import Path

from ponder.strategies.base import Content, Finish, Reasoning
from tests.scripted import ScriptedEngine
from tests.strategy_helpers import generated_tokens, run_strategy, trace


async def test_direct_streams_reasoning_then_content(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, lambda p, c, i: trace("58+27=85", "85+44=129", answer=129))
    run = await run_strategy(engine, "direct")
    assert run.reasoning == "58+27=85\n85+44=129\n"
    assert run.content == "The answer is \\boxed{129}."
    kinds = [type(e) for e in run.events if isinstance(e, Reasoning | Content)]
    assert kinds.index(Content) > kinds.index(Reasoning)  # reasoning first
    assert run.finish == [Finish(0, "stop")]
    usage = run.ctx.usage
    assert (
        usage.completion_tokens
        == generated_tokens(engine)
        == len(engine.encode(trace("58+27=85", "85+44=129", answer=129)))
    )
    assert usage.prompt_tokens == len(engine.calls[0].prompt)
    # everything up to and including </think> is reasoning
    assert usage.reasoning_tokens == len(engine.encode("<think>\n58+27=85\n85+44=129\n</think>"))


async def test_direct_n_choices_in_one_request(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, lambda p, c, i: trace(f"step {i}", answer=i))
    run = await run_strategy(engine, "direct", n=3)
    assert len(engine.calls) == 1 and engine.calls[0].config.n == 3
    assert sorted(f.index for f in run.finish) == [0, 1, 2]
    content = {i: "".join(e.text for e in run.events if isinstance(e, Content) and e.index == i) for i in range(3)}
    assert content == {i: f"The answer is \\boxed{{{i}}}." for i in range(3)}


async def test_direct_max_tokens_is_length(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, lambda p, c, i: trace("1+2=3", answer=3))
    run = await run_strategy(engine, "direct", max_tokens=5)
    assert run.finish == [Finish(0, "length")]
    assert run.ctx.usage.completion_tokens == 5


async def test_budget_caps_direct(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, lambda p, c, i: trace("1+2=3", answer=3))
    run = await run_strategy(engine, {"name": "direct", "budget": 8}, n=2, max_tokens=100)
    assert engine.calls[0].config.max_tokens == 4  # 8 tokens over 2 samples
    assert run.ctx.usage.completion_tokens <= 8
