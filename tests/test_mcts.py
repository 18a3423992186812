"""`mcts` on a scripted engine: tree growth, terminal answers, values, usage, budget."""

from __future__ import annotations

from pathlib import Path

from ponder.strategies.mcts_tree import Tree
from tests.scripted import ScriptedEngine
from tests.strategy_helpers import AnswerScorer, generated_tokens, run_strategy

# each step, sample i continues a ponder-tiny trace; sample 1 slips at the second step
GOOD = ["58+27=85\n", "85+44=129\n", "</think>\n", "The answer is \\boxed{129}.<|end|>"]
BAD = ["58+27=85\n", "85+44=139\n", "</think>\n", "The answer is \\boxed{139}.<|end|>"]


def step_script(prompt: str, config, i: int) -> str:  # type: ignore[no-untyped-def]
    done = prompt.split("<think>\n", 1)[1] if "<think>\n" in prompt else ""
    wrong = "139" in done or ("85+44=" not in done and "58+27" in done and i == 1)
    steps = BAD if wrong else GOOD
    k = sum(1 for s in steps if done.find(s.removesuffix("<|end|>")) != -1)
    rest = steps[k:] or [steps[-1]]
    return "".join(rest) if not config.stop else rest[0]


async def test_mcts_finds_the_answer_with_a_scorer(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, step_script)
    scorer = AnswerScorer({"129": 0.9, "139": 0.1}, default=0.5)
    run = await run_strategy(
        engine, {"name": "mcts", "iterations": 8, "expand_k": 2, "value": "scorer"}, scorers=lambda name: scorer
    )
    assert run.report["answer"] == "129"
    assert run.content == "The answer is \\boxed{129}."
    assert run.finish[0].reasoning == "58+27=85\n85+44=129\n"
    assert run.report["tree_size"] > 4 and run.report["terminals"] >= 1
    # every expansion is one engine request with n = expand_k, continuing the path
    assert all(c.config.n == 2 for c in engine.calls[:-1] if c.config.stop)
    assert run.ctx.usage.completion_tokens == generated_tokens(engine)
    searches = [p for p in run.progress if p.get("phase") == "search"]
    assert searches and searches[-1]["nodes"] == run.report["tree_size"]


async def test_mcts_rollout_values_without_a_scorer(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, step_script)
    scorer = AnswerScorer({}, default=0.5)
    scorer.name = "confidence"  # not a reward model: auto mode values nodes by rollouts
    run = await run_strategy(engine, {"name": "mcts", "iterations": 6, "expand_k": 2}, scorers=lambda name: scorer)
    assert run.report["value"] == "rollout"
    assert run.report["answer"] in {"129", "139"}
    assert any(c.config.n == 1 and not c.config.stop for c in engine.calls)  # rollouts ran to the end


async def test_mcts_budget_stops_the_search(tiny_tokenizer_dir: Path) -> None:
    engine = ScriptedEngine(tiny_tokenizer_dir, step_script)
    scorer = AnswerScorer({"129": 0.9}, default=0.5)
    run = await run_strategy(
        engine,
        {"name": "mcts", "iterations": 50, "expand_k": 3, "value": "scorer", "budget": 120},
        scorers=lambda name: scorer,
    )
    assert run.report["budget_exhausted"] is True
    assert run.ctx.usage.completion_tokens <= 120
    assert run.finish


def test_uct_prefers_unvisited_then_value() -> None:
    tree = Tree([1], "r")
    a = tree.add(tree.root, [2], "a", None)
    b = tree.add(tree.root, [3], "b", None)
    assert tree.add(tree.root, [2], "a", None) is a  # duplicates merge
    Tree.backprop(a, 1.0)
    assert tree.select(1.0) is b  # unvisited first
    Tree.backprop(b, 0.0)
    assert tree.select(0.0) is a  # then the better value
