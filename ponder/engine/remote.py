"""`RemoteEngine`: the `Engine` protocol over one or more OpenAI-compatible vLLM servers.

This is how Ponder scales past one machine: each replica is a plain
`vllm serve` (with its own tensor/pipeline parallelism), and Ponder is a
stateless front end. Requests go as token ids to `/v1/completions` (streamed);
`remote_wire.py` maps sampling settings and chunks, `replica.py` holds each
server's pooled client and health, `routing.py` picks the replica.

Contract, beyond `Engine`'s:
- a request fails over to another live replica (up to `retries` times) while
  nothing has been yielded yet; the replica that failed is marked down;
- once anything was yielded, a replica failure ends the request with an
  `EngineError` naming the replica and how much had arrived; a stream that
  ends early is an error too, never a silent truncation;
- every replica's `/health` is polled each `health_interval`: down replicas
  come back when it answers 200; a `dns+http://host:port` URL stands for every
  address `host` resolves to (a Kubernetes headless Service), re-resolved each
  `discovery_interval`;
- `abort(id)` (or closing the iterator) closes the HTTP stream, which makes
  vLLM abort the request; the iterator then ends with `finish_reason="abort"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.engine.base import EngineDead, EngineError, EngineUpdate, SampleDelta, SamplingConfig
from ponder.engine.remote_pool import ReplicaPool
from ponder.engine.remote_wire import ChunkDecoder, StreamError, completion_body
from ponder.engine.replica import ClientSettings, Replica, ReplicaFailure
from ponder.engine.routing import NoReplica, Router, RoutingConfig

log = logging.getLogger("ponder.engine.remote")
_END = object()


@dataclass(frozen=True)
class RemoteConfig:
    urls: tuple[str, ...]  # server roots (`http://host:8000`), or `dns+http://host:port` for every address of host
    name: str | None = None  # the model's name in Ponder (default: the name the replicas serve)
    folder: str | None = None  # model folder for the tokenizer and chat template (default: ask the replicas)
    served_model: str | None = None  # the `model` field sent to the replicas (default: what /v1/models lists)
    max_model_len: int | None = None  # default: what the replicas report
    client: ClientSettings = field(default_factory=ClientSettings)
    retries: int = 2  # other replicas tried when one fails before the first token
    health_interval: float = 2.0
    health_timeout: float = 2.0
    health_failures: int = 2  # failed health checks in a row that mark a replica down
    discovery_interval: float = 10.0
    startup_timeout: float = 600.0  # wait this long for a first replica at start
    dead_after: float | None = None  # with every replica down this long, report the engine dead (None: never)
    routing: RoutingConfig = field(default_factory=RoutingConfig)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("at least one replica URL is needed")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.health_failures < 1:
            raise ValueError("health_failures must be >= 1")
        if self.health_interval <= 0 or self.health_timeout <= 0 or self.discovery_interval <= 0:
            raise ValueError("health and discovery intervals must be > 0")


class _Stream:
    """One attempt's chunk pump: a task reads the replica's stream into a queue, so abort can cancel it."""

    def __init__(self, replica: Replica, body: dict[str, Any]) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.aborted = False
        self.task = asyncio.get_running_loop().create_task(self._pump(replica, body))

    async def _pump(self, replica: Replica, body: dict[str, Any]) -> None:
        try:
            async for chunk in replica.events(body):
                self.queue.put_nowait(chunk)
            self.queue.put_nowait(_END)
        except asyncio.CancelledError:
            self.queue.put_nowait(_END)
            raise
        except Exception as e:  # noqa: BLE001 - handed to the consumer
            self.queue.put_nowait(e)

    def abort(self) -> None:
        self.aborted = True
        self.task.cancel()
        self.queue.put_nowait(_END)  # the task may be cancelled before it ever ran


class RemoteEngine:
    def __init__(
        self, config: RemoteConfig, pool: ReplicaPool, tokenizer: Any, served_model: str, max_model_len: int
    ) -> None:
        self.config = config
        self.pool = pool
        self.router = Router(config.routing)
        pool.on_down = self.router.forget  # a replica that went down comes back with a cold cache
        self._tok = tokenizer
        self._served = served_model
        self._name = config.name or served_model
        self._max_len = max_model_len
        self._streams: dict[str, _Stream] = {}
        self._closed = False

    @classmethod
    def start(cls, config: RemoteConfig) -> RemoteEngine:
        """Find the replicas, wait for a first one (up to `startup_timeout`), load the tokenizer.

        Blocking, like the in-process engine's start; call it from the server's
        lifespan (health checks then run on its event loop).
        """
        pool = ReplicaPool(
            config.urls, config.client, health_timeout=config.health_timeout, down_after=config.health_failures
        )
        info = pool.wait_for_first(config.startup_timeout)
        served = config.served_model or info["id"]
        max_len = config.max_model_len or int(info.get("max_model_len") or 2048)
        if config.folder is not None:
            from ponder.engine.tokenizer import ChatTokenizer

            tok: Any = ChatTokenizer(config.folder)
        else:
            from ponder.engine.remote_tokenizer import RemoteTokenizer

            tok = RemoteTokenizer(
                pool.live_urls,
                served,
                headers=config.client.headers(),
                keepalive_expiry=config.client.keepalive_expiry,
            )
        engine = cls(config, pool, tok, served, max_len)
        with contextlib.suppress(RuntimeError):  # no running loop: started on first use
            engine._ensure_running()
        return engine

    # -- model facts -------------------------------------------------------------
    @property
    def model(self) -> str:
        return self._name

    @property
    def max_model_len(self) -> int:
        return self._max_len

    @property
    def tokenizer(self) -> Any:
        return self._tok

    def render_chat(self, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True) -> list[int]:
        return list(self._tok.render_chat(messages, add_generation_prompt=add_generation_prompt))

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text))

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._tok.decode(token_ids))

    def _token_text(self, token_id: int) -> str:
        return str(self._tok.hf.decode([token_id]))

    # -- generation --------------------------------------------------------------
    def _ensure_running(self) -> None:
        self.pool.start(self.config.health_interval, self.config.discovery_interval)

    def _pick(self, prompt: list[int], tried: set[str]) -> Replica | None:
        loads = {r.url: r.inflight for r in self.pool.replicas() if r.up and r.url not in tried}
        if not loads:  # nothing is up: a down replica is worth one try (the attempt is a probe)
            loads = {r.url: r.inflight for r in self.pool.replicas() if r.url not in tried}
        try:
            decision = self.router.choose(prompt, loads)
        except NoReplica:
            return None
        self.router.record(decision.replica, prompt)
        return self.pool.get(decision.replica)

    async def stream(
        self, prompt: Sequence[int], config: SamplingConfig, request_id: str
    ) -> AsyncIterator[EngineUpdate]:
        if self._closed:
            raise EngineDead("the remote engine is shut down")
        self._ensure_running()
        ids = list(prompt)
        tried: set[str] = set()
        errors: list[str] = []
        for _ in range(self.config.retries + 1):
            replica = self._pick(ids, tried)
            if replica is None:
                break
            tried.add(replica.url)
            decoder = ChunkDecoder(config.n, self._token_text)
            yielded = False
            try:
                async with contextlib.aclosing(self._attempt(replica, ids, config, request_id, decoder)) as updates:
                    async for update in updates:
                        yielded = True
                        yield update
                return
            except ReplicaFailure as e:
                replica.failures += 1
                if e.marks_down:
                    self.pool.mark_down(replica, str(e))
                if yielded or decoder.tokens:
                    raise EngineError(
                        f"{e} (the request failed mid-stream after {decoder.tokens} generated tokens had arrived)"
                    ) from e
                if not e.retryable:
                    raise
                errors.append(str(e))
                log.warning("request %s: %s; trying another replica", request_id, e)
        detail = "; ".join(errors) or "no replica is up"
        raise EngineError(f"no replica could serve the request ({detail})")

    async def _attempt(
        self, replica: Replica, prompt: list[int], config: SamplingConfig, request_id: str, decoder: ChunkDecoder
    ) -> AsyncGenerator[EngineUpdate, None]:
        body = completion_body(self._served, prompt, config, request_id)
        pump = _Stream(replica, body)
        self._streams[request_id] = pump
        replica.inflight += 1
        replica.attempts += 1
        held: EngineUpdate | None = None  # the last update waits for the usage chunk (cached tokens)
        try:
            while True:
                item = await pump.queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                try:
                    deltas = decoder.decode(item)
                except StreamError as e:  # a request's fault, or its replica's engine died: ask /health
                    problem = await replica.probe(self.config.health_timeout)
                    if problem is not None:
                        raise ReplicaFailure(replica.url, f"{e} ({problem})", retryable=True) from e
                    raise
                if not deltas:
                    continue
                if held is not None:  # not expected after every sample finished; keep it, in order
                    held.samples.extend(deltas)
                elif decoder.done:
                    held = EngineUpdate(request_id, len(prompt), 0, deltas, True)
                else:
                    yield EngineUpdate(request_id, len(prompt), 0, deltas, False)
            if pump.aborted and not decoder.done:
                yield self._aborted(request_id, prompt, decoder)
                return
            if held is None or not decoder.done:
                raise ReplicaFailure(
                    replica.url,
                    f"the stream ended before every sample finished ({len(decoder.finished)} of {config.n})",
                    retryable=True,
                )
            held.cached_tokens = decoder.cached_tokens
            replica.completed += 1
            self.pool.mark_up(replica)
            for out in decoder.outputs:
                self.router.record(replica.url, prompt + out)
            yield held
        finally:
            pump.task.cancel()
            replica.inflight -= 1
            if self._streams.get(request_id) is pump:
                del self._streams[request_id]

    @staticmethod
    def _aborted(request_id: str, prompt: list[int], decoder: ChunkDecoder) -> EngineUpdate:
        open_ = [i for i in range(decoder.n) if i not in decoder.finished]
        return EngineUpdate(
            request_id,
            len(prompt),
            decoder.cached_tokens,
            [SampleDelta(i, "", [], None, "abort", None) for i in open_],
            True,
        )

    async def abort(self, request_id: str) -> None:
        pump = self._streams.get(request_id)
        if pump is not None:
            pump.abort()

    def num_running(self) -> int:
        return sum(r.inflight for r in self.pool.replicas())

    async def check_health(self) -> None:
        if self._closed:
            raise EngineDead("the remote engine is shut down")
        self._ensure_running()
        down_for = self.pool.all_down_for()
        if self.config.dead_after is not None and down_for is not None and down_for >= self.config.dead_after:
            raise EngineDead(f"every replica has been down for {down_for:.0f} s: {self.pool.errors()}")

    def status(self) -> dict[str, Any]:
        """Per-replica state and routing counts (for /health, logs and tests)."""
        return {
            "replicas": [r.snapshot() for r in self.pool.replicas()],
            "routing": dict(self.router.decisions),
            "affinity_entries": len(self.router),
            "time": time.time(),
        }

    async def shutdown(self) -> None:
        self._closed = True
        for pump in list(self._streams.values()):
            pump.abort()
        await self.pool.aclose()
        close = getattr(self._tok, "close", None)
        if close is not None:
            close()
