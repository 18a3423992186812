"""Replica choice (`ponder/engine/routing.py`): least-loaded, prefix affinity, saturation, rendezvous ties."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from ponder.engine.routing import Decision, NoReplica, Router, RoutingConfig, block_hashes, rendezvous

A, B, C = "http://a:8000", "http://b:8000", "http://c:8000"
TEMPLATE = list(range(900, 906))  # a chat template's head, shared by every request


def prompt(seed: int, length: int = 48) -> list[int]:
    rng = random.Random(seed)
    return TEMPLATE + [rng.randrange(500) for _ in range(length - len(TEMPLATE))]


def test_block_hashes_are_chained_over_full_blocks_only() -> None:
    p = list(range(40))
    hashes = block_hashes(p, 16)
    assert len(hashes) == 2  # the 8-token tail is not a full block
    assert block_hashes(p[:32] + [7] * 16, 16)[:2] == hashes  # same prefix, same hashes
    assert block_hashes([1] * 16 + p[16:32], 16)[1] != hashes[1]  # block 2 covers block 1 too
    assert block_hashes(p[:15], 16) == []


def test_rendezvous_is_stable_and_moves_only_the_removed_replicas_keys() -> None:
    keys = range(2000)
    before = {k: rendezvous(k, [A, B, C]) for k in keys}
    assert before == {k: rendezvous(k, [C, A, B]) for k in keys}  # order does not matter
    share = Counter(before.values())
    assert all(500 < share[r] < 830 for r in (A, B, C)), share
    after = {k: rendezvous(k, [A, C]) for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != B)


def test_no_live_replica_raises() -> None:
    with pytest.raises(NoReplica):
        Router().choose([1, 2, 3], {})


def test_least_loaded_wins_for_a_new_prompt() -> None:
    router = Router()
    assert router.choose(prompt(1), {A: 3, B: 1, C: 2}) == Decision(B, "least_loaded", 0)


def test_new_prompts_spread_evenly_and_repeat_prompts_stick() -> None:
    router = Router()
    picks = Counter(router.choose(prompt(i), {A: 0, B: 0}).replica for i in range(400))
    assert 140 < picks[A] < 260, picks
    first = router.choose(prompt(7), {A: 0, B: 0}).replica
    assert all(router.choose(prompt(7), {A: 0, B: 0}).replica == first for _ in range(5))


def test_affinity_keeps_extensions_of_a_prompt_on_its_replica() -> None:
    router = Router()
    root = prompt(3, 40)
    router.record(A, root)
    step = root + [11] * 12
    d = router.choose(step, {A: 2, B: 0})  # A is busier, but within the slack
    assert d.replica == A and d.reason == "affinity" and d.matched_tokens == 32


def test_an_mcts_tree_stays_on_one_replica_while_other_traffic_spreads() -> None:
    """Every node of a tree extends an earlier prompt; unrelated requests interleave and keep loads moving."""
    router = Router()
    rng = random.Random(0)
    loads = {A: 0, B: 0, C: 0}
    root = prompt(99, 40)
    paths = [root]
    tree_replicas: set[str] = set()
    others: Counter[str] = Counter()
    for i in range(60):
        parent = rng.choice(paths)
        child = parent + [rng.randrange(500) for _ in range(rng.randrange(5, 20))]
        d = router.choose(child, loads)
        router.record(d.replica, child)
        tree_replicas.add(d.replica)
        paths.append(child)
        other = router.choose(prompt(1000 + i), loads)
        router.record(other.replica, prompt(1000 + i))
        others[other.replica] += 1
        loads = {r: rng.randrange(0, 3) for r in loads}  # slack 4: never saturated
    assert len(tree_replicas) == 1
    assert len(others) == 3


def test_affinity_yields_to_load_when_the_replica_is_saturated_and_the_prefix_moves_along() -> None:
    router = Router(RoutingConfig(slack=4))
    root = prompt(5, 64)
    router.record(A, root)
    assert router.choose(root + [1] * 16, {A: 4, B: 1}).replica == A  # 3 more in flight: still affine
    d = router.choose(root + [2] * 16, {A: 5, B: 1})
    assert d == Decision(B, "saturated", 64)
    router.record(B, root + [2] * 16)
    assert router.choose(root + [2] * 16 + [3] * 16, {A: 0, B: 1}).replica == B  # follows its latest home
    assert router.decisions == Counter({"affinity": 2, "saturated": 1})


def test_a_short_shared_head_does_not_pin_traffic() -> None:
    router = Router(RoutingConfig(block_tokens=4))
    router.record(A, prompt(1))  # TEMPLATE (6 tokens) + a question: one shared 4-token block
    picks = Counter(router.choose(prompt(i), {A: 0, B: 0}).replica for i in range(2, 200))
    assert picks[B] > 60, picks


def test_a_long_shared_system_prompt_does_pin_traffic_until_saturation() -> None:
    router = Router()
    system = list(range(200))
    router.record(A, system + [1, 2, 3])
    assert router.choose(system + [9, 9, 9, 9], {A: 1, B: 0}).reason == "affinity"
    assert router.choose(system + [9, 9, 9, 9], {A: 4, B: 0}).reason == "saturated"


def test_a_replica_that_is_not_live_or_was_forgotten_gets_no_affinity() -> None:
    router = Router()
    root = prompt(8, 64)
    router.record(A, root)
    assert router.choose(root + [1] * 16, {B: 0, C: 0}).reason == "least_loaded"  # A is down
    router.forget(A)
    assert len(router) == 0
    assert router.choose(root + [1] * 16, {A: 1, B: 0}).replica == B


def test_affinity_off_balances_round_robin_and_remembers_nothing() -> None:
    router = Router(RoutingConfig(affinity=False))
    root = prompt(4, 64)
    router.record(A, root)
    assert len(router) == 0
    picks = [router.choose(root + [i] * 16, {A: 0, B: 0}).replica for i in range(6)]
    assert picks == [A, B, A, B, A, B]
    assert router.choose(root, {A: 1, B: 0}).replica == B


def test_the_table_is_a_bounded_lru() -> None:
    router = Router(RoutingConfig(block_tokens=4, table_size=10))
    old = list(range(100, 140))  # 10 blocks
    router.record(A, old)
    router.record(B, list(range(200, 220)))  # 5 more: the 5 oldest entries go
    assert len(router) == 10
    assert router.match(old, [A, B]) == (A, 40)  # block 10's chained hash still vouches for all 40 tokens
    assert router.match(old[:20], [A, B]) == (None, 0)
    router.record(B, list(range(300, 320)))
    assert router.match(old, [A, B]) == (None, 0)
    assert router.match(list(range(200, 220)), [A, B]) == (B, 20)


@pytest.mark.parametrize(
    "bad",
    [
        dict(block_tokens=0),
        dict(min_match_ratio=0),
        dict(min_match_ratio=1.5),
        dict(slack=0),
        dict(hash_tokens=0),
        dict(table_size=0),
    ],
)
def test_config_is_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RoutingConfig(**bad)  # type: ignore[arg-type]
