"""Scheduling a load run: fixed concurrency or Poisson arrivals, bounded in count and time.

- Concurrency c: c workers each send one request at a time until
  `num_requests` were sent or `duration` seconds passed.
- Rate r: request i is sent at the i-th arrival of a Poisson process of rate
  r (exponential gaps from a seeded RNG), optionally capped at
  `max_concurrency` in flight, until `num_requests` or `duration`.

New requests stop at the deadline; requests in flight finish (each is bounded
by the per-request timeout), so a run takes at most duration + timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from tqdm import tqdm

from benchmarks._load_client import LoadConfig, send
from benchmarks._load_prompts import Prompt
from benchmarks._load_stats import RequestResult, RunSummary, summarize


@dataclass(frozen=True)
class Level:
    concurrency: int | None = None
    rate: float | None = None  # requests/s (Poisson)
    max_concurrency: int | None = None  # with rate: cap on requests in flight

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("a level has either a concurrency or a rate")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")

    @property
    def connections(self) -> int:
        return self.concurrency or self.max_concurrency or 256


@dataclass(frozen=True)
class Bounds:
    num_requests: int = 100
    duration: float = 300.0  # s: no new request after this

    def __post_init__(self) -> None:
        if self.num_requests < 1 or self.duration <= 0:
            raise ValueError("num_requests must be >= 1 and duration > 0")


def arrival_times(rate: float, count: int, duration: float, rng: random.Random) -> list[float]:
    """Send times (s from the start) of a Poisson process: at most `count`, all < `duration`."""
    times: list[float] = []
    t = 0.0
    while len(times) < count:
        t += rng.expovariate(rate)
        if t >= duration:
            break
        times.append(t)
    return times


class _Progress:
    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="req", leave=False, disable=not enabled, dynamic_ncols=True)
        self.failed = 0

    def done(self, r: RequestResult) -> None:
        self.failed += 0 if r.ok else 1
        self.bar.update(1)
        if self.failed:
            self.bar.set_postfix(failed=self.failed, refresh=False)

    def close(self) -> None:
        self.bar.close()


async def _by_concurrency(client: httpx.AsyncClient, cfg: LoadConfig, prompts: Sequence[Prompt], c: int,
                          bounds: Bounds, start: float, progress: _Progress) -> list[RequestResult]:
    results: list[RequestResult] = []
    deadline = time.monotonic() + bounds.duration
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < bounds.num_requests and time.monotonic() < deadline:
            prompt = prompts[issued % len(prompts)]
            issued += 1
            r = await send(client, cfg, prompt, start)
            results.append(r)
            progress.done(r)

    await asyncio.gather(*(worker() for _ in range(c)))
    return results


async def _by_rate(client: httpx.AsyncClient, cfg: LoadConfig, prompts: Sequence[Prompt], level: Level,
                   bounds: Bounds, seed: int, progress: _Progress) -> list[RequestResult]:
    assert level.rate is not None
    times = arrival_times(level.rate, bounds.num_requests, bounds.duration, random.Random(seed))
    cap = asyncio.Semaphore(level.max_concurrency or len(times) or 1)
    t0 = time.perf_counter()
    results: list[RequestResult] = []

    async def one(prompt: Prompt) -> None:
        try:
            r = await send(client, cfg, prompt, t0)
        finally:
            cap.release()
        results.append(r)
        progress.done(r)

    tasks = []
    for i, at in enumerate(times):
        await asyncio.sleep(max(0.0, at - (time.perf_counter() - t0)))
        await cap.acquire()
        if time.perf_counter() - t0 >= bounds.duration:  # the cap held this arrival past the deadline
            cap.release()
            break
        tasks.append(asyncio.create_task(one(prompts[i % len(prompts)])))
    await asyncio.gather(*tasks)
    return results


async def run_level(
    client: httpx.AsyncClient,
    cfg: LoadConfig,
    prompts: Sequence[Prompt],
    level: Level,
    bounds: Bounds,
    *,
    label: str = "",
    seed: int = 0,
    progress: bool = True,
) -> RunSummary:
    """One run at one level; the summary's wall time is first send -> last completion."""
    if not prompts:
        raise ValueError("no prompts")
    desc = f"{label} {'c=' + str(level.concurrency) if level.concurrency else f'{level.rate:g} req/s'}".strip()
    bar = _Progress(bounds.num_requests, desc, progress)
    start = time.perf_counter()
    try:
        if level.concurrency is not None:
            results = await _by_concurrency(client, cfg, prompts, level.concurrency, bounds, start, bar)
        else:
            results = await _by_rate(client, cfg, prompts, level, bounds, seed, bar)
    finally:
        bar.close()
    end = max((r.start + r.latency for r in results), default=0.0)
    first = min((r.start for r in results), default=0.0)
    return summarize(results, max(end - first, 0.0), label=label, concurrency=level.concurrency, rate=level.rate)


async def warm_up(client: httpx.AsyncClient, cfg: LoadConfig, prompts: Sequence[Prompt]) -> list[RequestResult]:
    """Send `prompts` concurrently and wait; not measured (first-request costs, connection set-up)."""
    return list(await asyncio.gather(*(send(client, cfg, p) for p in prompts)))
