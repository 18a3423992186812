"""Admission control and per-key limits (pure asyncio logic; the real server is tested in the soak test)."""

from __future__ import annotations

import asyncio

import pytest

from ponder.serve.admission import Admission, AdmissionConfig, expected_tokens, key_id
from ponder.serve.errors import APIError


async def test_runs_up_to_the_limit_then_queues_in_order() -> None:
    adm = Admission(AdmissionConfig(max_inflight=2, max_queue=4, queue_timeout=5))
    a = await adm.admit("k", 10)
    b = await adm.admit("k", 10)
    order: list[int] = []

    async def waiter(i: int) -> None:
        t = await adm.admit("k", 10)
        order.append(i)
        t.release()

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert adm.queued == 3 and adm.inflight == 2 and not order
    a.release()
    b.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert adm.inflight == 0 and adm.queued == 0 and adm.peak_inflight == 2


async def test_full_queue_is_refused_at_once() -> None:
    adm = Admission(AdmissionConfig(max_inflight=1, max_queue=1, queue_timeout=5))
    await adm.admit("k", 1)
    waiting = asyncio.create_task(adm.admit("k", 1))
    await asyncio.sleep(0.01)
    with pytest.raises(APIError) as info:
        await adm.admit("k", 1)
    assert info.value.status == 503 and info.value.headers and "Retry-After" in info.value.headers
    waiting.cancel()


async def test_queue_is_weighted_by_expected_compute() -> None:
    adm = Admission(AdmissionConfig(max_inflight=1, max_queue=10, max_queue_tokens=1000, queue_timeout=5))
    await adm.admit("k", 1)
    small = asyncio.create_task(adm.admit("k", 600))
    await asyncio.sleep(0.01)
    with pytest.raises(APIError) as info:
        await adm.admit("k", 600)  # 1200 tokens would wait: too much
    assert info.value.status == 503
    small.cancel()


async def test_queue_timeout_is_a_503_not_a_hang() -> None:
    adm = Admission(AdmissionConfig(max_inflight=1, max_queue=4, queue_timeout=0.05))
    await adm.admit("k", 1)
    with pytest.raises(APIError) as info:
        await adm.admit("k", 1)
    assert info.value.status == 503 and adm.queued == 0


async def test_cancelled_waiter_after_grant_passes_the_place_on() -> None:
    adm = Admission(AdmissionConfig(max_inflight=1, max_queue=4, queue_timeout=5))
    first = await adm.admit("k", 1)
    w1 = asyncio.create_task(adm.admit("k", 1))
    w2 = asyncio.create_task(adm.admit("k", 1))
    await asyncio.sleep(0.01)
    first.release()  # grants w1
    w1.cancel()  # ... which leaves before running
    t2 = await asyncio.wait_for(w2, 1)
    assert adm.inflight == 1
    t2.release()
    assert adm.inflight == 0


async def test_per_key_concurrency_is_429() -> None:
    adm = Admission(AdmissionConfig(max_inflight=10, key_concurrency=1))
    t = await adm.admit("alice", 1)
    with pytest.raises(APIError) as info:
        await adm.admit("alice", 1)
    assert info.value.status == 429
    await adm.admit("bob", 1)  # other keys are not affected
    t.release()
    await adm.admit("alice", 1)


async def test_token_rate_budget_counts_spent_tokens() -> None:
    adm = Admission(AdmissionConfig(max_inflight=10, key_tpm=600))
    t = await adm.admit("k", 1)
    t.release(spent_tokens=5000)  # far over a minute's budget
    with pytest.raises(APIError) as info:
        await adm.admit("k", 1)
    assert info.value.status == 429 and int(info.value.headers["Retry-After"]) >= 400  # ~ (5000-600)/10 s


def test_expected_tokens_and_key_ids() -> None:
    class MV:
        n = 8

    class MCTS:
        iterations, expand_k, rollouts = 16, 3, 0

    assert expected_tokens(object(), 100, 1, 10**6) == 100
    assert expected_tokens(MV(), 100, 1, 10**6) == 800
    assert expected_tokens(MCTS(), 64, 1, 10**6) == 16 * 3 * 64
    assert expected_tokens(MV(), 100, 1, 500) == 500  # capped by the budget
    assert key_id("secret") != "secret" and len(key_id("secret")) == 16 and key_id(None) == "anonymous"
