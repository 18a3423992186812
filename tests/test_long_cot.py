"""`long_cot` budget forcing and reflection on a scripted engine."""

from __future__ import annotations

from pathlib import Path

from ponder.strategies.base import Thinking
from tests.scripted import ScriptedEngine
from tests.strategy_helpers import generated_tokens, run_strategy

THINK = "<think>\n58+27=85\n85+44=129\n</think>"
CHECK = ", let me check.\n58+27=85\n85+44=129\nYes, 129.\n</think>"
ANSWER = "\nThe answer is \\boxed{129}.<|end|>"


def script(prompt: str, config, i: int) -> str:  # type: ignore[no-untyped-def]
    if prompt.endswith("</think>"):
        return ANSWER
    if prompt.endswith("Wait"):
        return CHECK
    if prompt.endswith("<|assistant|>"):
        return THINK + ANSWER
    return "\n".join(["1+1=2"] * 400)  # a continuation that never closes


async def test_no_budget_is_the_model_alone(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, script)
    run = await run_strategy(engine, "long_cot")
    assert run.report["waits"] == 0 and run.report["forced_end"] is False
    assert run.reasoning == "58+27=85\n85+44=129\n"
    assert run.content == "The answer is \\boxed{129}."
    assert engine.calls[0].config.stop_token_ids == (engine.tokenizer.think_end_id,)


async def test_min_tokens_appends_wait_and_thinks_longer(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, script)
    own = len(engine.encode("<think>\n58+27=85\n85+44=129\n"))
    run = await run_strategy(engine, "long_cot", thinking=Thinking(min_tokens=own + 5, max_waits=2))
    assert run.report["waits"] == 1  # one check was long enough
    assert "Wait, let me check." in run.reasoning
    assert run.report["thinking_tokens"] > own
    assert run.content == "The answer is \\boxed{129}."
    assert any(p.get("event") == "wait" for p in run.progress)
    # usage: every generated token, the close of each thinking round included
    assert run.ctx.usage.completion_tokens == generated_tokens(engine)
    answer_tokens = len(engine.encode(ANSWER))
    assert run.ctx.usage.reasoning_tokens == generated_tokens(engine) - answer_tokens


async def test_max_waits_bounds_the_forcing(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, script)
    run = await run_strategy(
        engine, "long_cot", thinking=Thinking(min_tokens=10_000, max_tokens=20_000, max_waits=3), max_tokens=2000
    )
    assert run.report["waits"] == 3
    assert run.reasoning.count("Wait") == 3


async def test_max_tokens_forces_the_end_of_thinking(tiny_tokenizer_dir: Path) -> None:
    def rambling(prompt: str, config, i: int) -> str:  # type: ignore[no-untyped-def]
        if prompt.endswith("</think>"):
            return ANSWER
        return "<think>\n" + "".join(f"{k}+1={k + 1}\n" for k in range(100))

    engine = ScriptedEngine(tiny_tokenizer_dir, rambling)
    run = await run_strategy(engine, "long_cot", thinking=Thinking(max_tokens=40))
    assert run.report["forced_end"] is True
    assert run.report["thinking_tokens"] <= 40
    assert run.ctx.usage.reasoning_tokens <= 40
    assert engine.decode(engine.calls[-1].prompt).endswith("</think>")  # the answer was forced
    assert run.content == "The answer is \\boxed{129}."


async def test_reflection_for_a_model_without_thinking(tmp_path: Path) -> None:
    # a tokenizer without think tokens: SmolLM2-like; use a copy of ponder-tiny's with plain text tags
    from transformers import AutoTokenizer

    from ponder.models.tiny_tokenizer import write_tokenizer

    write_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok is not None
    drafts = iter(["The answer is 12.<|end|>", "Checked: the answer is 13.<|end|>"])
    engine = ScriptedEngine(tmp_path, lambda p, c, i: next(drafts))
    engine.tokenizer.think_end_id = None  # behave like a model that never thinks
    run = await run_strategy(engine, {"name": "long_cot", "reflections": 1})
    assert run.report["mode"] == "reflection"
    assert run.reasoning.strip() == "The answer is 12."
    assert run.content == "Checked: the answer is 13."
    assert len(engine.calls) == 2
    second = engine.decode(engine.calls[1].prompt)
    assert "The answer is 12." in second and "Check your answer" in second
