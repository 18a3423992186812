"""`best_of_n` on a scripted engine: plain and weighted selection, scorer batching, usage."""

from __future__ import annotations

from pathlib import Path

from ponder.rewards.confidence import ConfidenceScorer
from tests.scripted import ScriptedEngine
from tests.strategy_helpers import AnswerScorer, generated_tokens, run_strategy, trace

ANSWERS = [5, 7, 7, 7, 9, 5]


def script(prompt: str, config, i: int) -> str:  # type: ignore[no-untyped-def]
    return trace(f"try {i}", answer=ANSWERS[i % len(ANSWERS)])


async def test_plain_picks_the_top_score(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, script)
    scorer = AnswerScorer({"9": 0.9, "7": 0.5, "5": 0.6})
    run = await run_strategy(engine, {"name": "best_of_n", "n": 6}, scorers=lambda name: scorer)
    assert run.report["answer"] == "9" and run.report["chosen"] == 4
    assert scorer.calls == [6]  # all candidates scored in one batch
    assert len(engine.calls) == 1 and engine.calls[0].config.n == 6
    assert run.content == "The answer is \\boxed{9}."
    assert run.ctx.usage.completion_tokens == generated_tokens(engine)
    assert any(p.get("phase") == "scored" for p in run.progress)


async def test_weighted_sums_scores_per_answer(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, script)
    scorer = AnswerScorer({"9": 0.9, "7": 0.5, "5": 0.6})
    run = await run_strategy(engine, {"name": "best_of_n", "n": 6, "weighted": True}, scorers=lambda name: scorer)
    assert run.report["answer"] == "7"  # 3 x 0.5 = 1.5 beats 0.9 and 1.2
    assert run.report["answers"][0]["answer"] == "7"


async def test_confidence_scorer_end_to_end(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, script)
    scorer = ConfidenceScorer()
    run = await run_strategy(
        engine, {"name": "best_of_n", "n": 6, "scorer": "confidence", "aggregate": "mean"}, scorers=lambda name: scorer
    )
    assert engine.calls[0].config.logprobs == scorer.logprobs
    scores = [s["score"] for s in run.report["samples"]]
    # DeepConf confidence is -mean(top-k logprobs): the scripted engine's top-k get
    # more negative (a more peaked distribution) as i grows, so the last sample wins
    assert scores == sorted(scores)
    assert run.report["chosen"] == 5
