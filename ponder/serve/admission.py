"""Admission control and per-key limits: bounded work, bounded waiting, never a hang.

- At most `max_inflight` requests run at once. Beyond that, requests wait in a
  FIFO queue bounded both in count (`max_queue`) and in expected compute
  (`max_queue_tokens`: the sum of the waiting requests' expected generated
  tokens), for at most `queue_timeout` seconds. A request that does not fit
  is refused at once with 503 and `Retry-After`.
- Per API key: at most `key_concurrency` requests at once, and a token-rate
  budget (`key_tpm` tokens per minute, every prompt and generated token a
  strategy spends, refilled continuously); over either, 429 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from ponder.serve.errors import APIError


@dataclass(frozen=True)
class AdmissionConfig:
    max_inflight: int = 64
    max_queue: int = 256
    max_queue_tokens: int = 4_000_000
    queue_timeout: float = 30.0
    key_concurrency: int | None = None
    key_tpm: int | None = None

    def __post_init__(self) -> None:
        if self.max_inflight < 1 or self.max_queue < 0 or self.max_queue_tokens < 0:
            raise ValueError("max_inflight must be >= 1; max_queue and max_queue_tokens >= 0")
        if self.queue_timeout < 0:
            raise ValueError("queue_timeout must be >= 0")
        if (self.key_concurrency is not None and self.key_concurrency < 1) or (
            self.key_tpm is not None and self.key_tpm < 1
        ):
            raise ValueError("per-key limits must be >= 1")


def expected_tokens(params: Any, max_tokens: int, n: int, budget: int) -> int:
    """A request's expected generated tokens, for weighing it in the queue."""
    samples = max(n, int(getattr(params, "n", 1) or 1))
    if hasattr(params, "iterations"):
        samples = int(params.iterations) * int(getattr(params, "expand_k", 1)) + int(
            getattr(params, "rollouts", 0) or 0
        )
    return max(1, min(budget, samples * max_tokens))


def key_id(key: str | None) -> str:
    """The label a key is tracked under: a hash, so keys never sit in memory dumps or logs."""
    return "anonymous" if not key else hashlib.sha256(key.encode()).hexdigest()[:16]


class _Bucket:
    def __init__(self, tpm: int) -> None:
        self.capacity = float(tpm)
        self.level = float(tpm)
        self.rate = tpm / 60.0
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_seconds(self) -> float:
        self.refill()
        return 0.0 if self.level > 0 else (-self.level + 1) / self.rate


class Ticket:
    """An admitted request; `release` (idempotent) frees its place and charges its tokens."""

    def __init__(self, owner: Admission, key: str, cost: int, waited: float) -> None:
        self.owner, self.key, self.cost, self.waited = owner, key, cost, waited
        self._released = False

    def release(self, spent_tokens: int = 0) -> None:
        if self._released:
            return
        self._released = True
        self.owner._release(self, spent_tokens)


class Admission:
    def __init__(self, config: AdmissionConfig) -> None:
        self.config = config
        self.inflight = 0
        self.queue: collections.deque[tuple[asyncio.Future[None], int]] = collections.deque()
        self.queued_tokens = 0
        self.per_key: dict[str, int] = collections.defaultdict(int)
        self.buckets: dict[str, _Bucket] = {}
        self.peak_inflight = 0

    def _check_key(self, key: str) -> None:
        c = self.config
        if c.key_concurrency is not None and self.per_key[key] >= c.key_concurrency:
            raise APIError(
                429,
                f"too many concurrent requests for this API key (limit {c.key_concurrency})",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        if c.key_tpm is not None:
            bucket = self.buckets.setdefault(key, _Bucket(c.key_tpm))
            wait = bucket.wait_seconds()
            if wait > 0:
                raise APIError(
                    429,
                    f"token rate limit reached for this API key ({c.key_tpm} tokens/min)",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )

    async def admit(self, key: str, cost: int) -> Ticket:
        """Wait (bounded) for a place; raises 429/503 APIErrors instead of waiting forever."""
        self._check_key(key)
        c = self.config
        start = time.monotonic()
        if self.inflight < c.max_inflight and not self.queue:
            self.inflight += 1
        else:
            if len(self.queue) >= c.max_queue or self.queued_tokens + cost > c.max_queue_tokens:
                raise APIError(
                    503,
                    "the server is at capacity; retry later",
                    code="overloaded",
                    headers={"Retry-After": str(max(1, math.ceil(c.queue_timeout / 4)))},
                )
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (fut, cost)
            self.queue.append(entry)
            self.queued_tokens += cost
            try:
                async with asyncio.timeout(c.queue_timeout):
                    await fut  # `_wake` takes the place for us before resolving it
            except BaseException as e:
                if entry in self.queue:
                    self.queue.remove(entry)
                    self.queued_tokens -= cost
                elif fut.done() and not fut.cancelled():
                    self._free_place()  # granted, but we are leaving: pass the place on
                if isinstance(e, TimeoutError):
                    raise APIError(
                        503,
                        f"no capacity within {c.queue_timeout:.0f} s; retry later",
                        code="overloaded",
                        headers={"Retry-After": str(max(1, math.ceil(c.queue_timeout / 4)))},
                    ) from None
                raise
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        self.per_key[key] += 1
        return Ticket(self, key, cost, time.monotonic() - start)

    def _wake(self) -> None:
        while self.queue and self.inflight < self.config.max_inflight:
            fut, cost = self.queue.popleft()
            self.queued_tokens -= cost
            if not fut.done():
                self.inflight += 1
                fut.set_result(None)

    def _free_place(self) -> None:
        self.inflight -= 1
        self._wake()

    def _release(self, ticket: Ticket, spent: int) -> None:
        self.per_key[ticket.key] -= 1
        if self.per_key[ticket.key] <= 0:
            del self.per_key[ticket.key]
        if self.config.key_tpm is not None and spent:
            bucket = self.buckets.setdefault(ticket.key, _Bucket(self.config.key_tpm))
            bucket.refill()
            bucket.level -= spent
        self._free_place()

    @property
    def queued(self) -> int:
        return len(self.queue)
