"""The remote engine's protocol semantics, fast: vLLM's stream format played by httpx's MockTransport.

What is checked here (the real two-replica tests are in test_remote_engine.py):
the request body, deltas / token ids / stop reasons / logprobs / cached tokens,
fail-over before the first token, a clear error mid-stream, truncated
streams, abort, health transitions and DNS discovery.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.engine.base import EngineError, EngineUpdate, Sample, SamplingConfig
from ponder.engine.remote import RemoteConfig, RemoteEngine
from ponder.engine.remote_pool import ReplicaPool, resolve
from ponder.engine.remote_wire import completion_body
from ponder.engine.replica import normalize_url
from ponder.engine.tokenizer import ChatTokenizer

A, B = "http://a:8000", "http://b:8000"
Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def chunk(
    index: int,
    text: str,
    ids: list[int],
    finish: str | None = None,
    stop: Any = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = {
        "index": index,
        "text": text,
        "token_ids": ids,
        "finish_reason": finish,
        "stop_reason": stop,
        "logprobs": logprobs,
    }
    return {"id": "cmpl-x", "object": "text_completion", "model": "tiny", "choices": [choice]}


def usage(cached: int) -> dict[str, Any]:
    return {
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": cached}},
    }


async def sse(
    chunks: list[dict[str, Any]],
    *,
    done: bool = True,
    fail_after: int | None = None,
    delay: float = 0.0,
    closed: list[bool] | None = None,
) -> AsyncIterator[bytes]:
    try:
        for i, c in enumerate(chunks):
            if fail_after is not None and i == fail_after:
                raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
            await asyncio.sleep(delay)
            yield f"data: {json.dumps(c)}\n\n".encode()
        if done:
            yield b"data: [DONE]\n\n"
    finally:
        if closed is not None:
            closed.append(True)


def replica(
    stream: Callable[[dict[str, Any]], AsyncIterator[bytes]] | None = None,
    *,
    status: int = 200,
    refuse: bool = False,
    health: list[int] | None = None,
    seen: list[dict[str, Any]] | None = None,
) -> Handler:
    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(health.pop(0) if health else 200)
        if refuse:
            raise httpx.ConnectError("connection refused")
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        if status != 200:
            error = {"message": "nope", "type": "BadRequestError", "code": status}
            return httpx.Response(status, json={"error": error})
        assert stream is not None
        return httpx.Response(200, content=stream(body), headers={"content-type": "text/event-stream"})

    return handle


def engine(tok: Path, handlers: dict[str, Handler], **kw: Any) -> RemoteEngine:
    config = RemoteConfig(
        urls=tuple(handlers),
        name="tiny",
        folder=str(tok),
        served_model="tiny",
        max_model_len=2048,
        health_interval=3600,
        **kw,
    )
    pool = ReplicaPool(config.urls, config.client, down_after=config.health_failures)
    for r in pool.replicas():
        r.client = httpx.AsyncClient(base_url=r.url, transport=httpx.MockTransport(handlers[r.url]))
        r.mark_up()
    return RemoteEngine(config, pool, ChatTokenizer(tok), "tiny", 2048)


async def collect(
    eng: RemoteEngine, cfg: SamplingConfig, rid: str = "r1", prompt: list[int] | None = None
) -> tuple[list[EngineUpdate], list[Sample]]:
    updates = [u async for u in eng.stream(prompt or [1, 2, 3, 4, 5], cfg, rid)]
    samples = [Sample(i) for i in range(cfg.n)]
    for u in updates:
        for d in u.samples:
            samples[d.index].add(d)
    return updates, samples


TWO_SAMPLES = [
    chunk(0, "4", [52]),
    chunk(1, "7", [55]),
    chunk(0, "\n", [10], "stop", "\n"),
    chunk(1, "2", [50], "length"),
    usage(4),
]


def test_the_body_sends_every_sampling_field_and_token_ids() -> None:
    cfg = SamplingConfig(
        n=3,
        max_tokens=9,
        min_tokens=2,
        temperature=0.7,
        top_p=0.9,
        top_k=5,
        seed=11,
        stop=("\n",),
        stop_token_ids=(7,),
        logprobs=2,
        include_stop_str_in_output=True,
    )
    body = completion_body("tiny", [1, 2], cfg, "r1")
    assert body["prompt"] == [1, 2] and body["stream"] and body["return_token_ids"]
    assert body["return_tokens_as_token_ids"] and body["logprobs"] == 2
    assert (body["n"], body["max_tokens"], body["min_tokens"], body["seed"], body["top_k"]) == (3, 9, 2, 11, 5)
    assert body["stop"] == ["\n"] and body["stop_token_ids"] == [7] and body["include_stop_str_in_output"]
    assert (body["repetition_penalty"], body["min_p"]) == (1.0, 0.0)  # server defaults cannot leak in
    assert "seed" not in completion_body("tiny", [1], SamplingConfig(), "r2")


async def test_deltas_finish_and_stop_reasons_and_cached_tokens(tiny_tokenizer_dir: Path) -> None:
    seen: list[dict[str, Any]] = []
    eng = engine(tiny_tokenizer_dir, {A: replica(lambda b: sse(TWO_SAMPLES), seen=seen)})
    updates, samples = await collect(eng, SamplingConfig(n=2, seed=3, stop=("\n",)))
    assert seen[0]["prompt"] == [1, 2, 3, 4, 5] and seen[0]["request_id"] == "r1"
    assert [u.finished for u in updates] == [False, False, False, True]
    assert updates[-1].cached_tokens == 4 and updates[0].prompt_tokens == 5
    assert (samples[0].text, samples[0].token_ids, samples[0].finish_reason, samples[0].stop_reason) == (
        "4\n",
        [52, 10],
        "stop",
        "\n",
    )
    assert (samples[1].token_ids, samples[1].finish_reason) == ([55, 50], "length")
    assert eng.num_running() == 0 and eng.pool.get(A).completed == 1


async def test_logprobs_carry_the_sampled_token_and_its_ranked_top_k(tiny_tokenizer_dir: Path) -> None:
    lps = {
        "tokens": ["token_id:52"],
        "token_logprobs": [-0.5],
        "top_logprobs": [{"token_id:52": -0.5, "token_id:53": -0.25, "token_id:9": -9999.0}],
    }
    eng = engine(tiny_tokenizer_dir, {A: replica(lambda b: sse([chunk(0, "4", [52], "length", logprobs=lps)]))})
    _, samples = await collect(eng, SamplingConfig(logprobs=2))
    (tl,) = samples[0].logprobs or []
    assert (tl.token_id, tl.logprob) == (52, -0.5)
    assert [(t.token_id, t.logprob) for t in tl.top] == [(53, -0.25), (52, -0.5), (9, -math.inf)]
    assert tl.token == eng.tokenizer.hf.decode([52])


async def test_a_refused_replica_fails_over_before_the_first_token_and_is_marked_down(tiny_tokenizer_dir: Path) -> None:
    seen: list[dict[str, Any]] = []
    eng = engine(tiny_tokenizer_dir, {A: replica(refuse=True), B: replica(lambda b: sse(TWO_SAMPLES), seen=seen)})
    for i in range(4):  # the first lands on A or B; none on A once A is down
        _, samples = await collect(eng, SamplingConfig(n=2), rid=f"r{i}", prompt=[i, 1, 2])
        assert samples[1].finish_reason == "length"
    a = eng.pool.get(A)
    assert not a.up and a.attempts <= 1 and "connection failed" in (a.last_error or "")
    assert len(seen) == 4


async def test_5xx_fails_over_but_4xx_is_the_requests_fault(tiny_tokenizer_dir: Path) -> None:
    eng = engine(tiny_tokenizer_dir, {A: replica(status=500), B: replica(status=500)})
    with pytest.raises(EngineError, match="no replica could serve the request.*HTTP 500"):
        await collect(eng, SamplingConfig())
    eng = engine(tiny_tokenizer_dir, {A: replica(status=400)})
    with pytest.raises(EngineError, match="HTTP 400: nope"):
        await collect(eng, SamplingConfig())
    assert eng.pool.get(A).up and eng.pool.get(A).attempts == 1


async def test_a_replica_dying_mid_stream_is_a_clear_error_not_a_truncation(tiny_tokenizer_dir: Path) -> None:
    other: list[dict[str, Any]] = []
    eng = engine(
        tiny_tokenizer_dir,
        {A: replica(lambda b: sse(TWO_SAMPLES, fail_after=2)), B: replica(lambda b: sse(TWO_SAMPLES), seen=other)},
    )
    eng.pool.get(B).inflight = 1  # A takes the request
    got: list[EngineUpdate] = []
    with pytest.raises(EngineError, match=r"replica http://a:8000: connection failed .*mid-stream after 2 generated"):
        async for u in eng.stream([1, 2, 3], SamplingConfig(n=2), "r1"):
            got.append(u)
    assert len(got) == 2 and other == [] and not eng.pool.get(A).up


async def test_an_error_chunk_fails_over_only_when_the_replicas_engine_died(tiny_tokenizer_dir: Path) -> None:
    died = {"error": {"message": "EngineCore encountered an issue.", "type": "BadRequestError", "code": 400}}
    other: list[dict[str, Any]] = []
    eng = engine(
        tiny_tokenizer_dir,
        {A: replica(lambda b: sse([died]), health=[503] * 5), B: replica(lambda b: sse(TWO_SAMPLES), seen=other)},
    )
    eng.pool.get(B).inflight = 1  # A takes the request first
    _, samples = await collect(eng, SamplingConfig(n=2))
    assert samples[1].finish_reason == "length" and len(other) == 1 and not eng.pool.get(A).up
    eng = engine(tiny_tokenizer_dir, {A: replica(lambda b: sse([died]))})  # healthy: the request's own fault
    with pytest.raises(EngineError, match="EngineCore encountered an issue") as info:
        await collect(eng, SamplingConfig())
    assert eng.pool.get(A).up and "no replica could serve" not in str(info.value)


@pytest.mark.parametrize("chunks", [TWO_SAMPLES[:3], []])
async def test_a_stream_ending_without_every_sample_finished_is_an_error(
    tiny_tokenizer_dir: Path, chunks: list[dict[str, Any]]
) -> None:
    eng = engine(tiny_tokenizer_dir, {A: replica(lambda b: sse(chunks))})
    with pytest.raises(EngineError, match="ended before every sample finished"):
        await collect(eng, SamplingConfig(n=2))


async def test_abort_closes_the_stream_and_ends_with_abort(tiny_tokenizer_dir: Path) -> None:
    closed: list[bool] = []
    endless = [chunk(0, "x", [120]) for _ in range(1000)]
    eng = engine(tiny_tokenizer_dir, {A: replica(lambda b: sse(endless, delay=0.01, closed=closed))})
    updates = []
    async for u in eng.stream([1, 2], SamplingConfig(max_tokens=1000), "r9"):
        updates.append(u)
        if len(updates) == 3:
            await eng.abort("r9")
    assert updates[-1].finished and updates[-1].samples[0].finish_reason == "abort"
    assert len(updates) <= 5 and eng.num_running() == 0
    await asyncio.sleep(0.05)
    assert closed == [True]


async def test_closing_the_iterator_closes_the_stream(tiny_tokenizer_dir: Path) -> None:
    closed: list[bool] = []
    endless = [chunk(0, "x", [120]) for _ in range(1000)]
    eng = engine(tiny_tokenizer_dir, {A: replica(lambda b: sse(endless, delay=0.01, closed=closed))})
    stream = eng.stream([1, 2], SamplingConfig(max_tokens=1000), "r9")
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    assert closed == [True] and eng.num_running() == 0


async def test_health_checks_mark_replicas_down_after_repeated_failures_and_back_up(tiny_tokenizer_dir: Path) -> None:
    eng = engine(tiny_tokenizer_dir, {A: replica(health=[503, 503, 200]), B: replica()})
    eng.router.record(A, list(range(64)))
    a = eng.pool.get(A)
    await eng.pool.check_all()
    assert a.up  # one failed probe is not an outage
    await eng.pool.check_all()
    assert not a.up and "503" in (a.last_error or "") and len(eng.router) == 0
    await eng.pool.check_all()
    assert a.up
    await eng.check_health()  # never raises while a replica is up


async def test_every_replica_down_is_reported_dead_only_with_dead_after(tiny_tokenizer_dir: Path) -> None:
    eng = engine(tiny_tokenizer_dir, {A: replica(health=[503] * 4)}, dead_after=0.0, health_failures=1)
    await eng.pool.check_all()
    with pytest.raises(EngineError, match="every replica has been down"):
        await eng.check_health()
    with pytest.raises(EngineError, match="no replica could serve"):  # a down replica still gets a try: refused
        eng.pool.get(A).client = httpx.AsyncClient(base_url=A, transport=httpx.MockTransport(replica(refuse=True)))
        await collect(eng, SamplingConfig())


def test_urls_are_normalized_and_dns_names_expand_to_addresses() -> None:
    assert normalize_url("http://h:8000/v1/") == "http://h:8000"
    assert normalize_url("h:8000") == "http://h:8000"
    assert resolve("http://h:8000/v1") == ["http://h:8000"]
    assert "http://127.0.0.1:8123" in resolve("dns+http://localhost:8123")
    assert resolve("dns+http://no-such-host.invalid:80") == []
