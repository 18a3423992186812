"""The remote engine with real processes: two vLLM OpenAI servers (CPU build, ponder-tiny) behind one Ponder.

One module-wide pair of replicas (about 40 s to start, in parallel) and one
Ponder app over them (`benchmarks/_replicas.py`: the real app served by
uvicorn in this event loop, so the tests can read the engine's replica state).
The kill/restart test runs last and leaves a fresh replica in place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks._replicas import (
    ChatResult,
    InProcessPonder,
    chat,
    finished_requests,
    kill,
    ponder_over,
    scrape,
    start_replica,
    start_replicas,
)
from ponder.engine.base import Sample, SamplingConfig
from ponder.engine.remote import RemoteConfig, RemoteEngine
from ponder.engine.remote_tokenizer import RemoteTokenizer
from ponder.engine.tokenizer import ChatTokenizer
from ponder.models.catalog import TINY_FOLDER
from ponder.serve.launch import Server, start_ponder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (TINY_FOLDER / "model.safetensors").is_file(), reason="ponder-tiny is not trained yet"),
]
NAME = "ponder-tiny"


def ask(a: int, b: int, c: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{a}+{b}+{c}"}]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    servers = start_replicas(2, str(TINY_FOLDER), NAME, tmp_path_factory.mktemp("replicas"))
    yield servers  # the kill test swaps in the restarted server
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
async def ponder(replicas: list[Server]) -> AsyncIterator[InProcessPonder]:
    config = RemoteConfig(urls=tuple(s.url for s in replicas), folder=str(TINY_FOLDER), health_interval=1.0)
    async with ponder_over(config) as p:
        yield p


@pytest.fixture
async def http(ponder: InProcessPonder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ponder.url, timeout=180) as c:
        yield c


def attempts(engine: RemoteEngine) -> dict[str, int]:
    return {r.url: r.attempts for r in engine.pool.replicas()}


STRATEGIES: dict[str, dict[str, Any]] = {
    "direct": {"strategy": "direct"},
    "long_cot": {"strategy": "long_cot", "thinking": {"min_tokens": 8, "max_tokens": 96, "max_waits": 1}},
    "best_of_n": {"strategy": {"name": "best_of_n", "n": 4}},
    "majority_vote": {"strategy": {"name": "majority_vote", "n": 4, "weight": "confidence"}},
    "mcts": {"strategy": {"name": "mcts", "iterations": 4, "expand_k": 2, "max_depth": 6}},
}


async def test_every_strategy_works_and_requests_spread_across_both(
    ponder: InProcessPonder, http: httpx.AsyncClient, replicas: list[Server]
) -> None:
    before = [finished_requests(scrape(s.url)) for s in replicas]
    bodies = [
        {"model": NAME, "messages": ask(11 + i, 22, 33 + i), "max_tokens": 160, "seed": i, **extra}
        for i, extra in enumerate(STRATEGIES.values())
    ]
    bodies += [{"model": NAME, "messages": ask(40 + i, 17, 9), "max_tokens": 96, "seed": i} for i in range(6)]
    results = await asyncio.gather(*(chat(http, b) for b in bodies))
    for name, res in zip([*STRATEGIES, *["direct"] * 6], results, strict=True):
        assert res.ok, (name, res.status, res.error)
        assert res.content or res.reasoning, name
        assert res.usage["completion_tokens"] > 0, name
    assert results[2].report.get("strategy") == "best_of_n" and results[4].report.get("tree_size", 0) > 1
    after = [finished_requests(scrape(s.url)) for s in replicas]
    served = [a - b for a, b in zip(after, before, strict=True)]
    assert all(n > 0 for n in served), served
    assert ponder.engine.num_running() == 0


async def test_an_mcts_requests_sub_generations_all_land_on_one_replica(
    ponder: InProcessPonder, http: httpx.AsyncClient, replicas: list[Server]
) -> None:
    before = [scrape(s.url) for s in replicas]
    sent_before = attempts(ponder.engine)
    body = {
        "model": NAME,
        "messages": ask(58, 27, 44),
        "max_tokens": 160,
        "seed": 7,
        "strategy": {"name": "mcts", "iterations": 8, "expand_k": 3, "max_depth": 8, "value": "rollout"},
    }
    res = await chat(http, body)
    assert res.ok, res.error
    after = [scrape(s.url) for s in replicas]
    # vLLM counts each of a request's n samples as a finished request
    served = [finished_requests(a) - finished_requests(b) for a, b in zip(after, before, strict=True)]
    sent = {u: n - sent_before[u] for u, n in attempts(ponder.engine).items()}
    assert sorted(served)[0] == 0 and sorted(served)[1] >= 8, served  # every sub-generation on one replica
    assert sorted(sent.values())[0] == 0 and sorted(sent.values())[1] >= 8, sent
    home = max(range(2), key=lambda i: served[i])
    hits = after[home]["vllm:prefix_cache_hits_total"] - before[home]["vllm:prefix_cache_hits_total"]
    queries = after[home]["vllm:prefix_cache_queries_total"] - before[home]["vllm:prefix_cache_queries_total"]
    assert hits > 0 and queries > 0, (hits, queries)  # the tree's shared prefixes were cached there


async def test_sampling_semantics_over_the_wire(ponder: InProcessPonder) -> None:
    eng = ponder.engine
    prompt = eng.render_chat(ask(12, 34, 56))

    async def run(cfg: SamplingConfig, rid: str) -> list[Sample]:
        samples = [Sample(i) for i in range(cfg.n)]
        async for u in eng.stream(prompt, cfg, rid):
            for d in u.samples:
                samples[d.index].add(d)
        return samples

    seeded = SamplingConfig(n=3, max_tokens=48, seed=5)
    first, again = await run(seeded, "sem-1"), await run(seeded, "sem-2")
    assert [s.token_ids for s in first] == [s.token_ids for s in again]  # sample i uses seed + i on any replica
    assert len({tuple(s.token_ids) for s in first}) > 1
    for s in first:
        assert s.text == eng.tokenizer.decode(s.token_ids) and s.finish_reason in ("stop", "length")
    steps = await run(
        SamplingConfig(n=2, max_tokens=64, seed=1, stop=("\n",), include_stop_str_in_output=True), "sem-3"
    )
    for s in steps:
        if s.finish_reason == "stop" and s.stop_reason is not None:
            assert s.stop_reason == "\n" and s.text.endswith("\n")
    think_end = eng.tokenizer.think_end_id
    closed = await run(SamplingConfig(max_tokens=400, seed=2, stop_token_ids=(think_end,)), "sem-4")
    if closed[0].finish_reason == "stop":
        assert closed[0].token_ids[-1] == think_end and closed[0].stop_reason == think_end
    (lp,) = await run(SamplingConfig(max_tokens=16, seed=3, logprobs=3), "sem-5")
    assert lp.logprobs is not None and len(lp.logprobs) == len(lp.token_ids)
    for tid, entry in zip(lp.token_ids, lp.logprobs, strict=True):
        assert entry.token_id == tid and entry.logprob <= 0 and len(entry.top) >= 3
        assert entry.top[0].logprob >= entry.logprob


async def test_abort_closes_the_replica_stream(ponder: InProcessPonder, replicas: list[Server]) -> None:
    eng = ponder.engine
    prompt = eng.render_chat(ask(1, 2, 3))
    updates = []
    async for u in eng.stream(prompt, SamplingConfig(max_tokens=1500, ignore_eos=True), "abort-1"):
        updates.append(u)
        if len(updates) == 3:
            await eng.abort("abort-1")
    assert updates[-1].finished and updates[-1].samples[-1].finish_reason == "abort"
    generated = sum(len(d.token_ids) for u in updates for d in u.samples)
    assert generated < 1500
    deadline = time.monotonic() + 10
    while any(scrape(s.url).get("vllm:num_requests_running", 0) for s in replicas):
        assert time.monotonic() < deadline, "a replica kept generating after the stream was closed"
        await asyncio.sleep(0.2)


def test_tokenizer_from_the_replicas_matches_the_folder(replicas: list[Server]) -> None:
    local = ChatTokenizer(TINY_FOLDER)
    remote = RemoteTokenizer(lambda: [s.url for s in replicas], NAME)
    try:
        msgs = ask(58, 27, 44)
        assert remote.render_chat(msgs) == local.render_chat(msgs)
        text = "<think>\n58+27=85\n</think>\nThe answer is \\boxed{129}."
        assert remote.encode(text) == local.encode(text)
        assert remote.decode(local.encode(text)) == local.decode(local.encode(text))
        assert (remote.think_start_id, remote.think_end_id) == (local.think_start_id, local.think_end_id)
        assert len(remote.hf) >= len(local.hf)  # unknown: the replicas reject out-of-vocabulary ids
    finally:
        remote.close()


def test_ponder_serve_with_engine_urls(replicas: list[Server], tmp_path: Path) -> None:
    """The CLI path: `ponder serve --engine-url A --engine-url B --model ponder-tiny`, every strategy over it."""
    args = ["--model", "ponder-tiny"]
    for s in replicas:
        args += ["--engine-url", s.url]
    server = start_ponder(args, log_dir=tmp_path, api_key="k")
    try:
        models = httpx.get(f"{server.url}/v1/models", headers=server.headers, timeout=30).json()
        assert any(m["id"] == NAME for m in models["data"])
        for strategy in ("direct", {"name": "majority_vote", "n": 4}, {"name": "mcts", "iterations": 2}):
            r = httpx.post(f"{server.url}/v1/chat/completions", headers=server.headers, timeout=180,
                           json={"model": NAME, "messages": ask(12, 34, 5), "max_tokens": 200, "strategy": strategy})
            assert r.status_code == 200, r.text
            assert r.json()["usage"]["completion_tokens"] > 0
    finally:
        assert server.stop() == 0


async def test_killing_a_replica_under_load_then_restarting_it(
    ponder: InProcessPonder,
    http: httpx.AsyncClient,
    replicas: list[Server],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Six clients keep sending; a long request is mid-stream on the victim when it is SIGKILLed."""
    eng = ponder.engine
    results: list[ChatResult] = []
    stop = asyncio.Event()
    marks: dict[str, float] = {}

    async def worker(w: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            body = {"model": NAME, "messages": ask(10 + w, i, 7), "max_tokens": 150, "ignore_eos": True, "seed": i}
            results.append(await chat(http, body))

    async def watch() -> None:
        while rep.up:
            await asyncio.sleep(0.01)
        marks["down"], marks["attempts_at_down"] = time.monotonic(), rep.attempts

    caplog.set_level(logging.ERROR, logger="ponder.serve")
    long_msgs = ask(99, 98, 97)
    # 8 x 1900 tokens in one engine request: still generating on the replica when it is killed, however
    # fast the replica is (a single 1900-token answer can finish in the socket buffer before Ponder reads it)
    long_body = {"model": NAME, "max_tokens": 1900, "ignore_eos": True, "strategy": {"name": "majority_vote", "n": 8}}
    long = ChatResult(0)
    long_task = asyncio.create_task(
        chat(http, {**long_body, "messages": long_msgs}, long)
    )
    deadline = time.monotonic() + 60
    while long.ttft is None:
        assert time.monotonic() < deadline and not long_task.done(), "the long request never started streaming"
        await asyncio.sleep(0.01)
    # the victim is whichever replica the long request is streaming from
    busy = [r for r in eng.pool.replicas() if r.inflight]
    assert len(busy) == 1 and busy[0].inflight == 1, busy
    rep = busy[0]
    victim_index = next(i for i, s in enumerate(replicas) if s.url == rep.url)
    victim = replicas[victim_index]
    workers = [asyncio.create_task(worker(w)) for w in range(6)]
    await asyncio.sleep(2)
    inflight_on_victim = rep.inflight
    watcher = asyncio.create_task(watch())
    marks["kill"] = time.monotonic()
    kill(victim)
    reaped = asyncio.create_task(asyncio.to_thread(victim.proc.wait, 60))
    # a supervisor restarts it at once (same address); vLLM takes far longer to start than the load runs
    port = int(victim.url.rsplit(":", 1)[1])
    restarting = asyncio.create_task(
        asyncio.to_thread(start_replica, str(TINY_FOLDER), NAME, tmp_path, index=victim_index, port=port)
    )
    try:
        await asyncio.sleep(10)
        stop.set()
        await asyncio.gather(*workers)
        await long_task
        await asyncio.wait_for(watcher, 5)
        await reaped
        assert not rep.up, "the load phase outlasted the restart; lengthen the restart or shorten the load"

        failed = [r for r in [*results, long] if not r.ok]
        after_down = [r for r in results if r.started >= marks["down"]]
        counts = {
            "total": len(results) + 1,
            "ok": len(results) + 1 - len(failed),
            "failed": len(failed),
            "in_flight_on_victim_at_kill": inflight_on_victim,
            "sent_after_down": len(after_down),
            "down_after_s": round(marks["down"] - marks["kill"], 3),
            "long_request_error": long.error,
        }
        print("failover outcome:", counts)
        assert rep.attempts == marks["attempts_at_down"]  # nothing was sent to it once it was marked down
        assert after_down and all(r.ok for r in after_down)
        assert long in failed and long.finish_reason is None  # an error event, never a silently short answer
        assert len(failed) <= inflight_on_victim and all(r.started < marks["kill"] for r in failed)
        for r in failed:
            assert r.error and r.error.get("message"), r
        assert "mid-stream" in caplog.text

        restarted = await restarting
        deadline = time.monotonic() + 30
        while not rep.up:
            assert time.monotonic() < deadline, "the restarted replica was not marked up"
            await asyncio.sleep(0.2)
        before = finished_requests(scrape(restarted.url))
        bodies = [{"model": NAME, "messages": ask(60 + i, 5, 5), "max_tokens": 64, "seed": i} for i in range(8)]
        back = await asyncio.gather(*(chat(http, b) for b in bodies))
        assert all(r.ok for r in back)
        assert finished_requests(scrape(restarted.url)) > before  # back in rotation
    finally:  # the fixture stops the restarted replica, whatever happened here
        replicas[victim_index] = await restarting
