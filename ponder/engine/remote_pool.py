"""The remote engine's set of replicas: discovery, start-up wait, periodic health checks.

A URL is either one server root (`http://10.0.0.5:8000`) or
`dns+http://name:port`, which stands for every address `name` resolves to —
a Kubernetes headless Service lists one address per ready vLLM pod — and is
re-resolved every `discovery_interval`; replicas that vanish are retired once
their in-flight requests end. Each replica's `/health` is polled every
`health_interval`: 200 marks it up, `down_after` failures in a row mark it
down. A request that cannot connect marks its replica down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from ponder.engine.base import EngineError
from ponder.engine.replica import ClientSettings, Replica, normalize_url

log = logging.getLogger("ponder.engine.remote")
DNS_PREFIX = "dns+"


def resolve(spec: str) -> list[str]:
    """Server roots for one URL spec (`dns+` specs: one per resolved address, sorted)."""
    if not spec.startswith(DNS_PREFIX):
        return [normalize_url(spec)]
    parts = urlsplit(spec[len(DNS_PREFIX) :])
    if not parts.hostname:
        raise ValueError(f"{spec}: no host name")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        log.warning("cannot resolve %s: %s", parts.hostname, e)
        return []
    hosts = sorted({str(info[4][0]) for info in infos})
    return [f"{parts.scheme}://{f'[{h}]' if ':' in h else h}:{port}" for h in hosts]


class ReplicaPool:
    def __init__(
        self, specs: Sequence[str], settings: ClientSettings, *, health_timeout: float = 2.0, down_after: int = 2
    ) -> None:
        self.specs = tuple(specs)
        self.settings = settings
        self.health_timeout = health_timeout
        self.down_after = down_after  # failed probes in a row before a live replica is marked down
        self.on_down: Callable[[str], None] | None = None  # called with the URL when a replica goes down
        self._replicas: dict[str, Replica] = {}
        self._retired: list[Replica] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._since = time.monotonic()
        self._update(self._resolve_all())

    # -- membership ----------------------------------------------------------------
    def _resolve_all(self) -> list[str]:
        return list(dict.fromkeys(url for spec in self.specs for url in resolve(spec)))

    def _update(self, urls: list[str]) -> None:
        for url in urls:
            if url not in self._replicas:
                self._replicas[url] = Replica(url, self.settings)
                log.info("replica %s added", url)
        for url in [u for u in self._replicas if u not in urls]:
            replica = self._replicas.pop(url)
            replica.mark_down("no longer listed by DNS")
            self._retired.append(replica)
            log.warning("replica %s removed (no longer resolved)", url)

    def replicas(self) -> list[Replica]:
        return list(self._replicas.values())

    def get(self, url: str) -> Replica:
        return self._replicas[url]

    def live_urls(self) -> list[str]:
        """Replica roots, live ones first."""
        return [r.url for r in sorted(self._replicas.values(), key=lambda r: not r.up)]

    # -- state ----------------------------------------------------------------------
    def mark_down(self, replica: Replica, reason: str) -> bool:
        changed = replica.mark_down(reason)
        if changed and self.on_down is not None:
            self.on_down(replica.url)
        return changed

    def mark_up(self, replica: Replica) -> bool:
        return replica.mark_up()

    def all_down_for(self) -> float | None:
        """Seconds since the last replica went down (or since start), or None while one is up."""
        if any(r.up for r in self._replicas.values()):
            return None
        last = max((r.changed_at for r in self._replicas.values()), default=self._since)
        return time.monotonic() - max(last, self._since)

    def errors(self) -> str:
        return "; ".join(f"{r.url}: {r.last_error}" for r in self._replicas.values() if not r.up) or "no replicas"

    # -- start-up (blocking) ----------------------------------------------------------
    def wait_for_first(self, timeout: float) -> dict[str, Any]:
        """Block until some replica lists its model; mark every replica that answers up. Returns the model entry."""
        deadline = time.monotonic() + timeout
        found: dict[str, Any] | None = None
        with httpx.Client(timeout=self.health_timeout, headers=self.settings.headers()) as client:
            while True:
                for replica in self.replicas():
                    try:
                        r = client.get(f"{replica.url}/v1/models")
                        r.raise_for_status()
                        found = found or r.json()["data"][0]
                        replica.mark_up()
                    except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                        replica.last_error = f"{type(e).__name__}: {e}"
                if found is not None:
                    return found
                if time.monotonic() > deadline:
                    raise EngineError(f"no replica answered within {timeout:.0f} s: {self.errors()}")
                time.sleep(1.0)
                self._update(self._resolve_all())

    # -- background tasks -------------------------------------------------------------
    def start(self, health_interval: float, discovery_interval: float) -> None:
        """Start health checks (and DNS re-resolution) on the running loop; no-op once started."""
        if self._tasks and not all(t.done() for t in self._tasks):
            return
        loop = asyncio.get_running_loop()  # RuntimeError without one: the engine starts them on first use
        self._tasks = [loop.create_task(self._health_loop(health_interval))]
        if any(s.startswith(DNS_PREFIX) for s in self.specs):
            self._tasks.append(loop.create_task(self._discovery_loop(discovery_interval)))

    async def check_all(self) -> None:
        replicas = self.replicas()
        results = await asyncio.gather(*(r.probe(self.health_timeout) for r in replicas))
        for replica, problem in zip(replicas, results, strict=True):
            if problem is None:
                replica.failed_probes = 0
                replica.mark_up()
                continue
            replica.failed_probes += 1
            replica.last_error = problem
            if replica.failed_probes >= self.down_after:  # one slow answer from a busy server is not an outage
                self.mark_down(replica, problem)

    async def _health_loop(self, interval: float) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # noqa: BLE001 - health checks must keep running
                log.exception("replica health check failed")
            await asyncio.sleep(interval)

    async def _discovery_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                urls = await asyncio.to_thread(self._resolve_all)
                if urls:  # a failed lookup keeps the replicas we know
                    self._update(urls)
                for replica in [r for r in self._retired if r.inflight == 0]:
                    self._retired.remove(replica)
                    await replica.aclose()
            except Exception:  # noqa: BLE001
                log.exception("replica discovery failed")

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for replica in [*self._replicas.values(), *self._retired]:
            await replica.aclose()
