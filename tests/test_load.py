"""The load tester (`benchmarks/load.py`): statistics, scheduling bounds, SSE parsing and failures
against a fake OpenAI SSE server on loopback, JSON/PNG output, and one run against the real
Ponder server (`tiny_server`).

The fake server's behaviour is chosen by the request's `model`:
`ok` streams `max_tokens` one-character content chunks with a `ponder.progress` event and a
ping in between; `think` streams reasoning (as both `reasoning_content` and `reasoning`, as
Ponder does) then content; `error` answers 400; `midstream` sends an error object after two
tokens; `nodone` ends without `[DONE]`; `slow` waits `SLOW_S` before each token. A `strategy`
field makes usage count `n` samples while only one streams (like `majority_vote`). Prompt
tokens are 5 + 2 per word, so calibration is exact; `ctx300` rejects prompts over 300 tokens.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from benchmarks import load
from benchmarks._load_client import LoadConfig, calibrate, make_client, send
from benchmarks._load_prompts import Calibration, Prompt, load_jsonl, synthetic_prompts
from benchmarks._load_run import Bounds, Level, arrival_times, run_level
from benchmarks._load_stats import RequestResult, percentile, summarize

SLOW_S = 0.2


class Fake:
    def __init__(self) -> None:
        self.inflight = 0
        self.peak = 0
        self.requests = 0


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
    return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "choices": choices, **extra}) + "\n\n"


def _delta(key: str, text: str, chat: bool) -> dict[str, Any]:
    if not chat:
        return {"index": 0, "text": text, "finish_reason": None}
    delta = {key: text, "reasoning": text} if key == "reasoning_content" else {key: text}
    return {"index": 0, "delta": delta, "finish_reason": None}


def make_app(fake: Fake) -> Starlette:
    async def generate(request: Request) -> Response:
        body = await request.json()
        chat = request.url.path.endswith("/chat/completions")
        model, k = body["model"], body.get("max_tokens", 4)
        text = body["messages"][-1]["content"] if chat else body["prompt"]
        prompt_tokens = 5 + 2 * len(text.split())
        if model == "error" or (model == "ctx300" and prompt_tokens > 300):
            return JSONResponse({"error": {"message": "bad things", "type": "invalid_request_error"}}, 400)
        if not body.get("stream"):
            return JSONResponse({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1}})
        samples = int((body.get("strategy") or {}).get("n", 1)) if isinstance(body.get("strategy"), dict) else 1

        async def events() -> AsyncIterator[str]:
            fake.requests += 1
            fake.inflight += 1
            fake.peak = max(fake.peak, fake.inflight)
            try:
                if chat:
                    yield _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
                for i in range(k):
                    if model == "slow":
                        await asyncio.sleep(SLOW_S)
                    if model == "midstream" and i == 2:
                        yield "data: " + json.dumps({"error": {"message": "engine died", "code": 503}}) + "\n\n"
                        break
                    key = "reasoning_content" if model == "think" and i < k // 2 else "content"
                    yield _chunk([_delta(key, "x", chat)])
                    if i == 0:
                        yield ": ping\n\n"
                        yield "event: ponder.progress\n" + _chunk([], ponder={"type": "progress"})
                    await asyncio.sleep(0)
                if model == "nodone":
                    return
                if body.get("stream_options", {}).get("include_usage"):
                    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": k * samples,
                             "prompt_tokens_details": {"cached_tokens": 3}}
                    yield _chunk([], usage=usage)
                yield "data: [DONE]\n\n"
            finally:
                fake.inflight -= 1

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "ok", "object": "model"}]})

    return Starlette(routes=[Route("/v1/chat/completions", generate, methods=["POST"]),
                             Route("/v1/completions", generate, methods=["POST"]),
                             Route("/v1/models", models)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, Fake]]:
    fake = Fake()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(fake), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):  # bounded wait for start-up
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", fake
    server.should_exit = True
    thread.join(10)


def cfg(url: str, model: str = "ok", **kw: Any) -> LoadConfig:
    return LoadConfig(url, model, **kw)


async def one(config: LoadConfig, prompt: Prompt | None = None) -> RequestResult:
    async with make_client(config, 1) as client:
        return await send(client, config, prompt or Prompt(text="hello there"))


# -- statistics ---------------------------------------------------------------------------------
def test_percentile_matches_numpy() -> None:
    rng = random.Random(1)
    for n in (1, 2, 7, 100):
        xs = [rng.random() for _ in range(n)]
        for p in (0, 50, 90, 99, 100):
            assert math.isclose(percentile(xs, p), float(np.percentile(xs, p)), rel_tol=1e-12)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_counts_failures_and_tpot() -> None:
    good = RequestResult(ok=True, start=0.0, ttft=0.1, itl=[0.1, 0.1], last_token=0.3, latency=0.35,
                         token_chunks=3, usage_tokens=5)
    bad = [RequestResult(error="HTTP 400: no"), RequestResult(error="HTTP 400: no"), RequestResult(error="timeout")]
    s = summarize([good, *bad], 2.0, label="x", concurrency=2)
    assert (s.requests, s.ok, s.failed) == (4, 1, 3)
    assert s.errors == {"HTTP 400: no": 2, "timeout": 1}
    assert s.output_tokens == 5 and s.output_throughput == 2.5 and s.request_throughput == 0.5
    assert math.isclose(s.tpot_ms["p50"], 1000 * 0.2 / 4)
    assert math.isclose(s.ttft_ms["p99"], 100.0) and math.isclose(s.itl_ms["mean"], 100.0)


def test_poisson_arrivals_bounded_and_seeded() -> None:
    a = arrival_times(5.0, 10_000, 1e9, random.Random(3))
    assert len(a) == 10_000 and a == sorted(a)
    assert math.isclose(a[-1] / len(a), 1 / 5.0, rel_tol=0.05)  # mean gap 1/rate
    assert a == arrival_times(5.0, 10_000, 1e9, random.Random(3))
    short = arrival_times(5.0, 10_000, 2.0, random.Random(3))
    assert short and all(t < 2.0 for t in short) and len(short) < 100
    assert len(arrival_times(1000.0, 7, 1e9, random.Random(0))) == 7


# -- prompts -----------------------------------------------------------------------------------
def test_synthetic_prompts_deterministic_and_distinct() -> None:
    cal = Calibration(base=5, per_word=2, measured=True)
    a = synthetic_prompts(4, 105, cal, seed=7)
    assert a == synthetic_prompts(4, 105, cal, seed=7)
    assert len({p.text for p in a}) == 4 and all(len((p.text or "").split()) == 50 for p in a)
    assert a != synthetic_prompts(4, 105, cal, seed=8)


def test_jsonl(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a b", "max_tokens": 3}\n\n{"messages": [{"role": "user", "content": "hi"}]}\n')
    prompts = load_jsonl(f)
    assert prompts[0] == Prompt(text="a b", max_tokens=3)
    assert prompts[1].chat_messages() == [{"role": "user", "content": "hi"}]
    f.write_text('{"nothing": 1}\n')
    with pytest.raises(ValueError, match="p.jsonl:1"):
        load_jsonl(f)


async def test_calibration_hits_the_input_length(fake_server: tuple[str, Fake]) -> None:
    url, _ = fake_server
    config = cfg(url, max_tokens=2)
    async with make_client(config, 2) as client:
        cal = await calibrate(client, config)
    assert cal.measured and math.isclose(cal.per_word, 2.0) and math.isclose(cal.base, 5.0)
    r = await one(config, synthetic_prompts(1, 305, cal)[0])
    assert r.prompt_tokens == 305
    short = cfg(url, "ctx300", max_tokens=2)  # the longest probe does not fit: a shorter one does
    async with make_client(short, 2) as client:
        assert (await calibrate(client, short)) == cal
        assert not (await calibrate(client, cfg(url, "error"))).measured


# -- one request -------------------------------------------------------------------------------
async def test_stream_counts_tokens_and_skips_progress_events(fake_server: tuple[str, Fake]) -> None:
    url, _ = fake_server
    r = await one(cfg(url, max_tokens=6))
    assert r.ok and r.token_chunks == 6 and r.usage_tokens == 6 and r.output_tokens == 6
    assert r.side_events == 1 and len(r.itl) == 5 and r.cached_tokens == 3
    assert r.ttft is not None and r.last_token is not None and r.ttft <= r.last_token <= r.latency
    think = await one(cfg(url, "think", max_tokens=6))
    assert think.ok and think.token_chunks == 6  # reasoning_content + reasoning counted once
    strategy = await one(cfg(url, max_tokens=6, strategy={"name": "majority_vote", "n": 8}))
    assert strategy.token_chunks == 6 and strategy.output_tokens == 48  # usage counts every sample
    text = await one(cfg(url, endpoint="completions", max_tokens=4))
    assert text.ok and text.token_chunks == 4


async def test_without_usage_tokens_come_from_deltas(fake_server: tuple[str, Fake]) -> None:
    r = await one(cfg(fake_server[0], max_tokens=5, include_usage=False))
    assert r.ok and r.usage_tokens is None and r.output_tokens == 5


@pytest.mark.parametrize(
    ("model", "timeout", "reason"),
    [("error", 60.0, "HTTP 400: bad things"), ("midstream", 60.0, "stream error: engine died"),
     ("nodone", 60.0, "stream ended without [DONE]"), ("slow", SLOW_S / 2, "timeout after")],
)
async def test_failures_have_reasons(fake_server: tuple[str, Fake], model: str, timeout: float, reason: str) -> None:
    r = await one(cfg(fake_server[0], model, max_tokens=4, request_timeout=timeout))
    assert not r.ok and r.error is not None and r.error.startswith(reason)


async def test_connection_refused_is_a_failure() -> None:
    r = await one(cfg(f"http://127.0.0.1:{_free_port()}"))
    assert not r.ok and r.error and r.error.startswith("ConnectError")


# -- runs --------------------------------------------------------------------------------------
async def test_concurrency_run_is_bounded_by_count(fake_server: tuple[str, Fake]) -> None:
    url, fake = fake_server
    config = cfg(url, "slow", max_tokens=2)
    fake.peak = 0
    async with make_client(config, 3) as client:
        s = await run_level(client, config, [Prompt(text="a")], Level(concurrency=3), Bounds(7, 600), progress=False)
    assert (s.requests, s.ok, s.output_tokens) == (7, 7, 14)
    assert fake.peak == 3


async def test_runs_are_bounded_by_duration(fake_server: tuple[str, Fake]) -> None:
    config = cfg(fake_server[0], "slow", max_tokens=2)
    async with make_client(config, 2) as client:
        s = await run_level(client, config, [Prompt(text="a")], Level(concurrency=1), Bounds(10_000, 0.5),
                            progress=False)
        r = await run_level(client, config, [Prompt(text="a")], Level(rate=50.0, max_concurrency=2),
                            Bounds(10_000, 0.5), progress=False)
    assert 1 <= s.requests < 10_000 and s.failed == 0
    assert 1 <= r.requests < 10_000 and r.failed == 0


async def test_rate_run_respects_count_and_cap(fake_server: tuple[str, Fake]) -> None:
    url, fake = fake_server
    config = cfg(url, "slow", max_tokens=2)
    fake.peak = 0
    async with make_client(config, 2) as client:
        s = await run_level(client, config, [Prompt(text="a")], Level(rate=1000.0, max_concurrency=2),
                            Bounds(6, 600), progress=False)
    assert s.requests == 6 and s.ok == 6 and fake.peak <= 2


def test_main_writes_json_and_png(fake_server: tuple[str, Fake], tmp_path: Path) -> None:
    url, _ = fake_server
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    code = load.main(["--base-url", f"{url}/v1", "--concurrency", "1,2", "--num-requests", "3", "--max-tokens", "4",
                      "--input-len", "64", "--out", str(out), "--plot", str(png), "--no-progress"])
    assert code == 0
    data = json.loads(out.read_text())
    assert [r["concurrency"] for r in data["runs"]] == [1, 2]
    assert all(r["ok"] == 3 and r["output_tokens"] == 12 for r in data["runs"])
    assert data["config"]["model"] == "ok" and "api_key" not in data["config"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    failing = load.main(["--base-url", url, "--model", "error", "--num-requests", "2", "--no-progress"])
    assert failing == 1


# -- the real server ---------------------------------------------------------------------------
async def test_against_the_real_ponder_server(tiny_server: Any) -> None:
    from tests.server import API_KEY

    config = LoadConfig(tiny_server.url, "ponder-tiny", api_key=API_KEY, max_tokens=24, ignore_eos=True)
    async with make_client(config, 2) as client:
        prompts, cal = await load.build_prompts(client, config, 4, 64)
        s = await run_level(client, config, prompts, Level(concurrency=2), Bounds(4, 600), progress=False)
        each = [await send(client, config, p) for p in prompts[:2]]
    assert cal.measured
    assert (s.ok, s.failed) == (4, 0) and s.tokens_from_usage == 4 and s.output_tokens == 4 * 24
    for r in each:
        assert r.ok and r.usage_tokens == r.output_tokens == 24 and r.side_events >= 1  # ponder.result skipped
        # without usage the count is one per text chunk: Ponder's think-tag splitter can hold a token
        # back (a possible "</think>") and merge it into the next chunk, so never more than usage
        assert 0.75 * 24 <= r.token_chunks <= 24
        assert r.prompt_tokens is not None and abs(r.prompt_tokens - 64) <= 16  # calibrated, +- word lengths
    assert s.ttft_ms["p50"] > 0 and s.itl_ms["p50"] > 0
    async with httpx.AsyncClient() as c:
        assert (await c.get(f"{tiny_server.url}/health")).status_code == 200


def test_ttft_is_the_first_visible_text() -> None:
    """A role chunk and a whitespace-only reasoning delta do not start the clock; ITL counts after it."""
    from benchmarks._load_client import _Stream

    r = RequestResult()
    s = _Stream(r, sent=0.0)

    def chunk(delta: dict[str, Any]) -> str:
        return json.dumps({"choices": [{"index": 0, "delta": delta}]})

    s.dispatch(None, chunk({"role": "assistant", "content": ""}), 0.010)
    s.dispatch(None, chunk({"reasoning_content": "\n"}), 0.020)
    assert r.ttft is None
    s.dispatch(None, chunk({"reasoning_content": "I"}), 0.030)
    s.dispatch(None, chunk({"content": " 5"}), 0.045)
    s.dispatch("ponder.progress", "{}", 0.050)
    assert r.ttft == pytest.approx(0.030) and r.itl == [pytest.approx(0.015)]
    assert r.token_chunks == 3 and r.side_events == 1

