"""One remote vLLM OpenAI server: its pooled HTTP client, health state and load counters.

`Replica.events(body)` streams one `/v1/completions` request and yields its
parsed SSE chunks. Every way the replica can fail is raised as a
`ReplicaFailure` that says whether the request may be retried elsewhere
(connection refused or reset, timeouts, 5xx, a stream cut before `[DONE]`) or
not (4xx: the request itself is wrong, another replica would say the same).
Leaving the iteration early closes the response, and vLLM aborts a request
whose client went away.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from ponder.engine.base import EngineError
from ponder.engine.remote_wire import error_message

log = logging.getLogger("ponder.engine.remote")


class ReplicaFailure(EngineError):
    def __init__(self, url: str, message: str, *, retryable: bool, marks_down: bool = True) -> None:
        super().__init__(f"replica {url}: {message}")
        self.url = url
        self.retryable = retryable
        self.marks_down = marks_down and retryable


# Idle pooled connections to a vLLM server are dropped after this long, s. It must stay below the
# server's own keep-alive (vLLM: VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5 s): when both sides use the same
# value, a request sent on a connection the server is closing at that instant gets a reset (ReadError).
KEEPALIVE_EXPIRY = 4.0


@dataclass(frozen=True)
class ClientSettings:
    pool_size: int = 256  # connections per replica (each streamed request holds one)
    connect_timeout: float = 5.0
    read_timeout: float = 300.0  # longest silence inside a stream (queueing + prefill + one token)
    keepalive_expiry: float = KEEPALIVE_EXPIRY
    api_key: str | None = None  # sent as a bearer token to replicas started with --api-key

    def __post_init__(self) -> None:
        if self.pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        if self.keepalive_expiry < 0:
            raise ValueError("keepalive_expiry must be >= 0")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, base_url: str) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=self.pool_size,
            max_keepalive_connections=min(32, self.pool_size),
            keepalive_expiry=self.keepalive_expiry,
        )
        timeout = httpx.Timeout(self.read_timeout, connect=self.connect_timeout, pool=self.read_timeout)
        return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout, headers=self.headers())


def normalize_url(url: str) -> str:
    """`http://host:8000/v1/` -> `http://host:8000` (the server root; paths are added per call)."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[:-3]
    if "://" not in url:
        url = f"http://{url}"
    return url


class Replica:
    def __init__(self, url: str, settings: ClientSettings) -> None:
        self.url = normalize_url(url)
        self.client = settings.client(self.url)
        self.up = False  # until a health probe or a request succeeds
        self.inflight = 0
        self.attempts = 0  # requests sent to it
        self.completed = 0
        self.failures = 0  # requests that failed on it
        self.failed_probes = 0  # health checks failed in a row
        self.last_error: str | None = None
        self.changed_at = time.monotonic()  # last up/down transition

    def __repr__(self) -> str:
        return f"Replica({self.url}, {'up' if self.up else 'down'}, inflight={self.inflight})"

    def mark_up(self) -> bool:
        if self.up:
            return False
        self.up, self.changed_at = True, time.monotonic()
        log.log(logging.WARNING if self.last_error else logging.INFO, "replica %s is up", self.url)
        self.last_error = None
        return True

    def mark_down(self, reason: str) -> bool:
        self.last_error = reason
        if not self.up:
            return False
        self.up, self.changed_at = False, time.monotonic()
        log.warning("replica %s is down: %s", self.url, reason)
        return True

    async def probe(self, timeout: float) -> str | None:
        """None when `/health` answers 200, else why not."""
        try:
            r = await self.client.get("/health", timeout=timeout)
        except httpx.HTTPError as e:
            return f"health check failed: {type(e).__name__}: {e}"
        return None if r.status_code == 200 else f"health check answered HTTP {r.status_code}"

    def snapshot(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "up": self.up,
            "inflight": self.inflight,
            "attempts": self.attempts,
            "completed": self.completed,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    async def events(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST a streamed completion and yield each `data:` chunk until `[DONE]`."""
        try:
            async with self.client.stream("POST", "/v1/completions", json=body) as resp:
                if resp.status_code != 200:
                    message = error_message(await resp.aread(), resp.status_code)
                    status = resp.status_code
                    raise ReplicaFailure(
                        self.url,
                        f"HTTP {status}: {message}",
                        retryable=status >= 500 or status == 429,
                        marks_down=status >= 500,
                    )
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        yield json.loads(data)
                    except ValueError as e:
                        raise ReplicaFailure(self.url, f"sent a malformed chunk: {data[:200]!r}", retryable=True) from e
            raise ReplicaFailure(self.url, "the stream ended without [DONE]", retryable=True)
        except httpx.TimeoutException as e:
            raise ReplicaFailure(self.url, f"timed out ({type(e).__name__})", retryable=True) from e
        except httpx.TransportError as e:
            raise ReplicaFailure(self.url, f"connection failed ({type(e).__name__}: {e})", retryable=True) from e

    async def aclose(self) -> None:
        await self.client.aclose()
