"""The strategy registry and parameter parsing: names, types and values give errors naming the parameter."""

from __future__ import annotations

import pytest

from ponder.strategies.base import Budget, BudgetExhausted
from ponder.strategies.registry import STRATEGIES, ParamError, load_builtin, parse_strategy


@pytest.fixture(autouse=True, scope="module")
def _load() -> None:
    load_builtin()


def test_every_builtin_strategy_is_registered() -> None:
    assert set(STRATEGIES) == {"direct", "long_cot", "majority_vote", "best_of_n", "mcts"}


def test_bare_string_and_object() -> None:
    spec, params, budget = parse_strategy("majority_vote")
    assert spec.name == "majority_vote" and params.n == 8 and budget is None
    spec, params, budget = parse_strategy({"name": "mcts", "iterations": 4, "budget": 900})
    assert spec.name == "mcts" and params.iterations == 4 and budget == 900


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ("nope", "strategy.name"),
        ({"n": 3}, "strategy.name"),
        (3, "strategy"),
        ({"name": "majority_vote", "n": "8"}, "strategy.n"),
        ({"name": "majority_vote", "n": 0}, "strategy.n"),
        ({"name": "majority_vote", "n": 2.5}, "strategy.n"),
        ({"name": "majority_vote", "early_stop": 0.3}, "strategy.early_stop"),
        ({"name": "majority_vote", "weight": "magic"}, "strategy.weight"),
        ({"name": "majority_vote", "bogus": 1}, "strategy.bogus"),
        ({"name": "best_of_n", "weighted": "yes"}, "strategy.weighted"),
        ({"name": "mcts", "expand_k": 99}, "strategy.expand_k"),
        ({"name": "mcts", "c_uct": -1}, "strategy.c_uct"),
        ({"name": "long_cot", "wait": " "}, "strategy.wait"),
        ({"name": "direct", "budget": 0}, "strategy.budget"),
        ({"name": "direct", "budget": True}, "strategy.budget"),
    ],
)
def test_bad_strategy_names_the_parameter(raw: object, param: str) -> None:
    with pytest.raises(ParamError) as info:
        parse_strategy(raw)  # type: ignore[arg-type]
    assert info.value.param == param


def test_budget_reserves_and_never_overspends() -> None:
    b = Budget(100)
    assert b.reserve(4, 40) == 25  # cut to what remains
    b.settle(100, 60)
    assert b.remaining == 40
    assert b.reserve(2, 10) == 10
    b.settle(20, 20)
    with pytest.raises(BudgetExhausted):
        b.reserve(30, 5)
