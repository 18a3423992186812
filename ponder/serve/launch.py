"""Start a Ponder (or vLLM) OpenAI server as a subprocess on a free loopback port.

Used by the tests and the benchmarks: the server runs in its own process group
with its output in a log file; `stop()` sends SIGTERM, waits, and kills the
whole group if needed, so no engine process outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


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


def start(
    cmd: Sequence[str],
    port: int,
    log: Path,
    *,
    api_key: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
    progress: bool = False,
) -> Server:
    """Run `cmd` (which must listen on `port`) and wait until its /health answers 200."""
    proc = subprocess.Popen(
        list(cmd),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log, api_key)
    start_time = time.monotonic()
    last_note = start_time
    while time.monotonic() - start_time < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if progress and time.monotonic() - last_note > 10:
            last_note = time.monotonic()
            print(
                f"  ... waiting for {cmd[2] if len(cmd) > 2 else cmd[0]} on :{port} ({last_note - start_time:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"server did not become healthy in {timeout:.0f} s:\n{server.log_tail()}")


def start_ponder(
    args: Sequence[str],
    *,
    log_dir: Path | None = None,
    api_key: str | None = None,
    env: dict[str, str] | None = None,
    progress: bool = False,
) -> Server:
    port = free_port()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="ponder-"))
    cmd = [sys.executable, "-m", "ponder.serve.cli", "serve", "--port", str(port), "--log-level", "warning", *args]
    if api_key:
        cmd += ["--api-key", api_key]
    return start(cmd, port, log_dir / f"ponder-{port}.log", api_key=api_key, env=env, progress=progress)


@contextlib.contextmanager
def ponder_server(args: Sequence[str], **kw: object) -> Iterator[Server]:
    server = start_ponder(args, **kw)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
