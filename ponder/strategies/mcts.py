"""`mcts`: step-level Monte Carlo tree search over reasoning steps.

Steps end at a delimiter (a newline by default). Each iteration selects a leaf
by UCT, expands it with `expand_k` next steps sampled in ONE engine request
(`n=expand_k`, the path as a shared prefix that vLLM's prefix cache reuses),
values each new step with the scorer (a PRM scores the partial trace) and/or
with short rollouts to an answer, and backs the value up the path. The answer
is the best-valued terminal path, or a value-weighted vote over terminals.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from ponder.engine.base import Sample
from ponder.rewards.base import Candidate
from ponder.strategies.answers import answer_key
from ponder.strategies.base import (
    BudgetExhausted,
    Content,
    Event,
    Finish,
    Progress,
    Reasoning,
    Report,
    StrategyContext,
)
from ponder.strategies.mcts_tree import Node, Tree
from ponder.strategies.reasoning import split_reasoning
from ponder.strategies.registry import strategy
from ponder.strategies.voting import agreement, tally


@dataclass(frozen=True)
class MctsParams:
    iterations: int = 16
    max_depth: int = 8
    expand_k: int = 3
    c_uct: float = 1.0
    delimiter: str = "\n"
    step_max_tokens: int = 64
    rollouts: int = 0  # rollouts per new node; 0 with value=auto means: 1 when there is no PRM
    value: Literal["auto", "scorer", "rollout", "both"] = "auto"
    scorer: str | None = None
    answer: Literal["best_path", "vote"] = "best_path"

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")
        if self.max_depth < 1:
            raise ValueError("max_depth must be >= 1")
        if not 1 <= self.expand_k <= 16:
            raise ValueError("expand_k must be in [1, 16]")
        if self.c_uct < 0:
            raise ValueError("c_uct must be >= 0")
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")
        if self.step_max_tokens < 1:
            raise ValueError("step_max_tokens must be >= 1")
        if not 0 <= self.rollouts <= 16:
            raise ValueError("rollouts must be in [0, 16]")


class _Search:
    def __init__(self, ctx: StrategyContext, params: MctsParams) -> None:
        self.ctx, self.p = ctx, params
        self.prompt = list(ctx.request.prompt_ids)
        tok = ctx.engine.tokenizer
        root_ids = [tok.think_start_id] + ctx.engine.encode("\n") if tok.think_start_id is not None else []
        self.tree = Tree(root_ids, ctx.engine.decode(root_ids) if root_ids else "")
        self.use_scorer, self.rollouts = self._value_mode()
        self.scorer = ctx.scorer(params.scorer) if self.use_scorer else None
        self.rollout_answers: list[str | None] = []

    def _value_mode(self) -> tuple[bool, int]:
        p = self.p
        if p.value == "scorer":
            return True, 0
        if p.value == "rollout":
            return False, max(1, p.rollouts)
        if p.value == "both":
            return True, max(1, p.rollouts)
        has_prm = self.ctx.scorer(p.scorer).name in ("prm", "orm")
        return (True, p.rollouts) if has_prm else (False, max(1, p.rollouts))

    async def expand(self, leaf: Node) -> AsyncGenerator[Event | list[Node], None]:
        """Sample `expand_k` next steps of `leaf` in one engine request; streams sample 0 live."""
        final = leaf.depth + 1 >= self.p.max_depth
        base = self.ctx.request.sampling
        config = self.ctx.request.config(
            n=self.p.expand_k,
            max_tokens=base.max_tokens if final else self.p.step_max_tokens,
            min_tokens=0,
            stop=() if final else (self.p.delimiter,),
            include_stop_str_in_output=True,
            logprobs=self.scorer.logprobs if self.scorer is not None and self.scorer.logprobs else None,
            seed=None if base.seed is None else base.seed + len(self.tree.nodes),
        )
        path = leaf.path_ids()
        think_end = self.ctx.engine.tokenizer.think_end_id
        in_think = bool(self.tree.root.ids) and think_end not in path
        samples = [Sample(i) for i in range(config.n)]
        async for update in self.ctx.stream(self.prompt + path, config, reasoning=in_think):
            for d in update.samples:
                samples[d.index].add(d)
                if d.index == 0 and in_think and d.text:
                    yield Reasoning(d.text.replace("</think>", ""))
        children: list[Node] = []
        for s in samples:
            node = self.tree.add(leaf, list(s.token_ids), s.text, s.logprobs)
            stopped_at_delimiter = s.finish_reason == "stop" and s.stop_reason == self.p.delimiter
            node.terminal = final or not s.token_ids or (s.finish_reason == "stop" and not stopped_at_delimiter)
            if node.terminal:
                node.answer = answer_key(split_reasoning(node.path_text())[1] or node.path_text())
            if node not in children:
                children.append(node)
        yield children

    async def value(self, nodes: list[Node]) -> list[float]:
        values = [0.0] * len(nodes)
        parts = 0
        if self.scorer is not None:
            cands = [Candidate(self.prompt, n.path_ids(), n.path_text(), n.path_logprobs()) for n in nodes]
            agg = "min" if "min" in self.scorer.aggregates else None
            scores = await self.scorer.score(cands, agg)
            values = [_unit(s.score) for s in scores]
            parts = 1
        if self.rollouts:
            rolled = []
            for n in nodes:
                rolled.append(await self._rollout_value(n))
            values = [(v * parts + r) / (parts + 1) for v, r in zip(values, rolled, strict=True)]
        return values

    async def _rollout_value(self, node: Node) -> float:
        if node.terminal:
            answers = [node.answer]
        else:
            base = self.ctx.request.sampling
            config = self.ctx.request.config(
                n=self.rollouts,
                min_tokens=0,
                logprobs=None,
                seed=None if base.seed is None else base.seed + 7919 * len(self.tree.nodes),
            )
            samples = await self.ctx.generate(self.prompt + node.path_ids(), config, reasoning=True)
            answers = [answer_key(node.path_text() + s.text) for s in samples]
        self.rollout_answers.extend(answers)
        ranked = tally((i, a, 1.0) for i, a in enumerate(self.rollout_answers))
        leader = ranked[0].answer if ranked else None
        return sum(1.0 for a in answers if a is not None and a == leader) / len(answers)


def _unit(score: float) -> float:
    """Clamp a scorer value into [0, 1] (confidence scores are squashed)."""
    if score != score or score == float("-inf"):
        return 0.0
    if 0.0 <= score <= 1.0:
        return score
    return score / (1.0 + abs(score))


@strategy("mcts", MctsParams)
async def mcts(ctx: StrategyContext, params: MctsParams) -> AsyncGenerator[Event, None]:
    """Step-level MCTS: UCT selection, k-step expansion in one request, scorer/rollout values."""
    search = _Search(ctx, params)
    tree = search.tree
    reserve = min(ctx.request.sampling.max_tokens, ctx.budget.remaining // 4)
    done_iterations, budget_out = 0, False
    for it in range(params.iterations):
        if ctx.budget.remaining - reserve < params.expand_k:
            budget_out = True
            break
        leaf = tree.select(params.c_uct)
        new: list[Node] = []
        try:
            if leaf.terminal:
                new = [leaf]
            else:
                async for item in search.expand(leaf):
                    if isinstance(item, list):
                        new = item
                    else:
                        yield item
            values = await search.value(new)
        except BudgetExhausted:
            budget_out = True
            break
        updated: dict[int, Node] = {}
        for node, v in zip(new, values, strict=True):
            for n in Tree.backprop(node, v):
                updated[n.id] = n
        done_iterations = it + 1
        yield Progress(
            {
                "phase": "search",
                "iteration": it + 1,
                "iterations": params.iterations,
                "nodes": len(tree.nodes),
                "new": [n.summary() for n in new if n is not leaf],
                "updated": [n.summary() for n in updated.values()],
            }
        )
    chosen = _choose(tree, params)
    if chosen is None or not chosen.terminal:
        chosen = await _complete(ctx, search, chosen or tree.most_visited_leaf())
    reasoning, content = split_reasoning(chosen.path_text())
    yield Content(content)
    yield Finish(0, "stop", reasoning)
    ends = tree.terminals()
    ranked = tally((n.id, n.answer, n.q) for n in ends)
    yield Report(
        {
            "strategy": "mcts",
            "answer": chosen.answer,
            "chosen_path": [n.id for n in chosen.path()],
            "iterations": done_iterations,
            "tree_size": len(tree.nodes),
            "terminals": len(ends),
            "max_depth": max(n.depth for n in tree.nodes),
            "value": "scorer+rollout"
            if search.scorer and search.rollouts
            else "scorer"
            if search.scorer
            else "rollout",
            "votes": [{"answer": t.answer, "votes": t.votes, "weight": round(t.weight, 6)} for t in ranked],
            "agreement": round(agreement(ranked), 4),
            "budget_exhausted": budget_out,
            "tokens": ctx.usage.completion_tokens,
        }
    )


def _choose(tree: Tree, params: MctsParams) -> Node | None:
    ends = [n for n in tree.terminals() if n.answer is not None] or tree.terminals()
    if not ends:
        return None
    if params.answer == "vote":
        ranked = tally((n.id, n.answer, n.q) for n in ends)
        if ranked:
            return max((n for n in ends if n.answer == ranked[0].answer), key=lambda n: (n.q, n.visits, -n.id))
    return tree.best_terminal()


async def _complete(ctx: StrategyContext, search: _Search, node: Node) -> Node:
    """Finish a partial path with one generation so there is an answer to return."""
    prompt = search.prompt + node.path_ids()
    room = min(ctx.request.sampling.max_tokens, ctx.engine.max_model_len - len(prompt), ctx.budget.remaining)
    if room < 1:
        return node
    config = ctx.request.config(n=1, max_tokens=room, min_tokens=0, logprobs=None)
    try:
        (sample,) = await ctx.generate(prompt, config, reasoning=True)
    except BudgetExhausted:
        return node
    end = search.tree.add(node, list(sample.token_ids), sample.text, None)
    end.terminal = True
    end.answer = answer_key(split_reasoning(end.path_text())[1] or end.path_text())
    return end
