"""`majority_vote` on a scripted engine: the vote, ties, early stop, weighting, usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.rewards.confidence import ConfidenceScorer
from tests.scripted import ScriptedEngine
from tests.strategy_helpers import AnswerScorer, generated_tokens, run_strategy, trace


def answers_by_index(*answers: int):  # type: ignore[no-untyped-def]
    """Script: sample i (over the whole request, counting waves by seed) answers answers[i]."""

    def script(prompt: str, config, i: int) -> str:  # type: ignore[no-untyped-def]
        k = (config.seed or 0) + i
        return trace(f"sample {k}", answer=answers[k % len(answers)])

    return script


async def test_majority_wins_and_usage_counts_every_sample(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, answers_by_index(139, 129, 129, 7, 129, 139, 1000, 129))
    run = await run_strategy(engine, {"name": "majority_vote", "n": 8})
    assert len(engine.calls) == 1 and engine.calls[0].config.n == 8  # one engine request
    assert run.report["answer"] == "129"
    assert run.report["votes"][0] == {"answer": "129", "votes": 4, "weight": 4.0}
    assert run.content == "The answer is \\boxed{129}."
    assert run.report["chosen"] == 1  # first sample with the winning answer
    assert run.finish[0].reasoning == "sample 1\n"  # whole responses carry the chosen sample's reasoning
    assert run.reasoning.startswith("sample 0")  # the stream showed sample 0 live
    assert run.ctx.usage.completion_tokens == generated_tokens(engine)
    assert run.ctx.usage.prompt_tokens == len(engine.calls[0].prompt)  # billed once for n samples
    assert any(p.get("phase") == "sampling" for p in run.progress)


async def test_numeric_equivalence_and_deterministic_ties(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, answers_by_index("1,000", 5, "1000.0", 5))  # type: ignore[arg-type]
    run = await run_strategy(engine, {"name": "majority_vote", "n": 4})
    votes = {v["answer"]: v["votes"] for v in run.report["votes"]}
    assert votes == {"1000": 2, "5": 2}
    assert run.report["answer"] == "1000"  # tie: the answer seen first wins


async def test_early_stop_spends_fewer_tokens_on_easy_problems(tiny_tokenizer_dir: Path) -> None:
    easy = answers_by_index(129)
    fixed_engine = ScriptedEngine(tiny_tokenizer_dir, easy)
    fixed = await run_strategy(fixed_engine, {"name": "majority_vote", "n": 16})
    early_engine = ScriptedEngine(tiny_tokenizer_dir, easy)
    early = await run_strategy(early_engine, {"name": "majority_vote", "n": 16, "early_stop": 0.9, "wave": 4})
    assert early.report["early_stop"] is True and early.report["answer"] == "129"
    assert early.ctx.usage.completion_tokens * 3 < fixed.ctx.usage.completion_tokens
    assert len(early.report["samples"]) == 4


async def test_early_stop_keeps_sampling_when_split(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, answers_by_index(1, 2))
    run = await run_strategy(engine, {"name": "majority_vote", "n": 8, "early_stop": 0.8, "wave": 2})
    assert run.report["early_stop"] is False
    assert len(run.report["samples"]) == 8 and len(engine.calls) == 4
    # waves reproduce a single request: sample k used seed 0 + k
    assert [c.config.seed for c in engine.calls] == [0, 2, 4, 6]


async def test_weighting_by_a_scorer_changes_the_winner(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, answers_by_index(7, 7, 7, 9))
    scorer = AnswerScorer({"9": 5.0, "7": 1.0})
    run = await run_strategy(engine, {"name": "majority_vote", "n": 4, "weight": "orm"}, scorers=lambda name: scorer)
    assert run.report["answer"] == "9"


async def test_confidence_weighting_asks_for_logprobs(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, answers_by_index(3, 4))
    scorer = ConfidenceScorer()
    run = await run_strategy(
        engine, {"name": "majority_vote", "n": 4, "weight": "confidence", "keep": 0.5}, scorers=lambda name: scorer
    )
    assert engine.calls[0].config.logprobs == scorer.logprobs
    kept = [s for s in run.report["samples"] if s["score"] > 0]
    assert len(kept) == 2


@pytest.mark.parametrize("budget", [30, 100])
async def test_budget_stops_cleanly(tiny_tokenizer_dir: Path, budget: int) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, answers_by_index(129))
    run = await run_strategy(engine, {"name": "majority_vote", "n": 16, "budget": budget, "early_stop": 1.0, "wave": 2})
    assert run.ctx.usage.completion_tokens <= budget
    assert run.finish
