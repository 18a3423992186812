"""A bounded soak test on loopback: mixed strategies, streaming and not, disconnects, bad requests,
concurrency above the admission limit. Afterwards: nothing left running in the engine, no leaked
tasks or admission places, no 5xx but deliberate 503s, RSS flat within a stated margin, and every
accepted, completed request with consistent usage.

Duration: $PONDER_SOAK_SECONDS (default 90 s in CI; run longer on demand).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from typing import Any

import httpx
import psutil
import pytest

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("PONDER_SOAK_SECONDS", "90"))
WORKERS = 12  # above the limited server's 4 running + 6 queued, so some are always turned away
RSS_MARGIN_MB, RSS_MARGIN_FRAC = 64, 0.15
STRATEGIES = [
    None,
    "direct",
    {"name": "majority_vote", "n": 3},
    {"name": "best_of_n", "n": 3},
    {"name": "long_cot"},
    {"name": "mcts", "iterations": 2, "expand_k": 2, "step_max_tokens": 12},
    {"name": "majority_vote", "n": 4, "early_stop": 0.7, "wave": 2},
]
BAD = [
    {"model": "ponder-tiny"},
    {"model": "nope", "messages": [{"role": "user", "content": "1+1"}]},
    {"model": "ponder-tiny", "messages": [{"role": "user", "content": "1+1"}], "n": "x"},
    {"model": "ponder-tiny", "messages": [{"role": "user", "content": "1+1"}], "strategy": "nope"},
]


def body(rng: random.Random, stream: bool) -> dict[str, Any]:
    a, b, c = (rng.randint(10, 99) for _ in range(3))
    out: dict[str, Any] = {
        "model": "ponder-tiny",
        "messages": [{"role": "user", "content": f"{a}+{b}+{c}"}],
        "max_tokens": rng.choice([16, 48, 160]),
        "temperature": 1.0,
        "seed": rng.randint(0, 999),
        "stream": stream,
    }
    strategy = rng.choice(STRATEGIES)
    if strategy is not None:
        out["strategy"] = strategy
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out


def usage_ok(u: dict[str, Any]) -> bool:
    return (
        u["completion_tokens"] > 0
        and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
        and 0 <= u["completion_tokens_details"]["reasoning_tokens"] <= u["completion_tokens"]
    )


async def worker(i: int, client: httpx.AsyncClient, deadline: float, tally: Counter[str], problems: list[str]) -> None:
    rng = random.Random(i)
    while time.monotonic() < deadline:
        kind = rng.random()
        what = "bad request" if kind < 0.15 else "stream" if kind < 0.6 else "whole"
        started = time.monotonic()
        try:
            if what == "bad request":
                r = await client.post("/v1/chat/completions", json=rng.choice(BAD))
                tally["bad_request_4xx" if 400 <= r.status_code < 500 else f"bad_request_{r.status_code}"] += 1
                continue
            stream = what == "stream"
            disconnect_after = rng.randint(2, 30) if rng.random() < 0.2 else None
            if not stream and disconnect_after is not None:
                try:
                    await client.post("/v1/chat/completions", json=body(rng, False), timeout=0.3)
                except httpx.TimeoutException:
                    tally["disconnected"] += 1
                    continue
            if not stream:
                r = await client.post("/v1/chat/completions", json=body(rng, False))
                tally[outcome(r.status_code)] += 1
                if r.status_code == 200 and not usage_ok(r.json()["usage"]):
                    problems.append(f"bad usage {r.json()['usage']}")
                check_status(r.status_code, r.text, problems)
                continue
            async with client.stream("POST", "/v1/chat/completions", json=body(rng, True)) as r:
                if r.status_code != 200:
                    await r.aread()
                    tally[outcome(r.status_code)] += 1
                    check_status(r.status_code, r.text, problems)
                    continue
                lines, usage, error = 0, None, None
                async for line in r.aiter_lines():
                    if not line.startswith("data:") or line.endswith("[DONE]"):
                        continue
                    lines += 1
                    obj = json.loads(line[5:])
                    usage = obj.get("usage") or usage
                    error = obj.get("error") or error
                    if disconnect_after is not None and lines >= disconnect_after:
                        break
                if disconnect_after is not None and lines >= disconnect_after:
                    tally["disconnected"] += 1
                elif error is not None:
                    tally["stream_error"] += 1
                    problems.append(f"stream error {error}")
                elif usage is None or not usage_ok(usage):
                    problems.append(f"stream finished without good usage: {usage}")
                else:
                    tally["ok"] += 1
        except httpx.HTTPError as e:
            problems.append(f"transport error {e!r} on a {what} request after {time.monotonic() - started:.3f} s")


def outcome(status: int) -> str:
    return "ok" if status == 200 else "rejected" if status in (429, 503) else f"status_{status}"


def check_status(status: int, text: str, problems: list[str]) -> None:
    if status >= 500 and status != 503:
        problems.append(f"{status}: {text[:200]}")


async def soak(server: Any) -> tuple[Counter[str], list[str]]:
    tally: Counter[str] = Counter()
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=120) as client:
        deadline = time.monotonic() + SECONDS
        await asyncio.gather(*(worker(i, client, deadline, tally, problems) for i in range(WORKERS)))
    return tally, problems


def health(server: Any) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/health", timeout=10).json())


def test_soak(limited_server: Any) -> None:
    proc = psutil.Process(limited_server.proc.pid)
    asyncio.run(soak_warmup(limited_server))
    idle = health(limited_server)
    rss_start = proc.memory_info().rss / 2**20
    tally, problems = asyncio.run(soak(limited_server))
    settle = time.monotonic()
    h = health(limited_server)
    while (h["inflight"] or h["queued"] or h["models"]["ponder-tiny"]["running"]) and time.monotonic() - settle < 10:
        time.sleep(0.2)
        h = health(limited_server)
    rss_end = proc.memory_info().rss / 2**20
    print(
        f"\nsoak {SECONDS:.0f} s, {WORKERS} workers: outcomes {dict(tally)}; peak in flight {h['peak_inflight']}; "
        f"RSS {rss_start:.0f} -> {rss_end:.0f} MiB; engine running after: {h['models']['ponder-tiny']['running']}; "
        f"tasks idle {idle['tasks']} -> {h['tasks']}; problems: {len(problems)}"
    )
    assert not problems, problems[:10]
    assert tally["ok"] > 0 and tally["rejected"] > 0  # the admission limit was really exceeded
    assert h["models"]["ponder-tiny"]["running"] == 0 and h["inflight"] == 0 and h["queued"] == 0
    assert h["peak_inflight"] <= 4
    assert h["tasks"] <= idle["tasks"] + 2  # no leaked asyncio tasks
    assert rss_end <= rss_start + max(RSS_MARGIN_MB, RSS_MARGIN_FRAC * rss_start)


async def soak_warmup(server: Any) -> None:
    """A few requests of each kind first, so one-off allocations do not count as growth."""
    rng = random.Random(99)
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=120) as client:
        for strategy in STRATEGIES:
            b = body(rng, rng.random() < 0.5)
            if strategy is not None:
                b["strategy"] = strategy
            await client.post("/v1/chat/completions", json=b)
