"""Shutdown and engine death with real processes: drain on SIGTERM, exit codes, no orphans."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.server import start_server

pytestmark = pytest.mark.slow

LONG = {  # 8 x 1800 tokens: far longer than the grace period on any CPU
    "model": "ponder-tiny",
    "messages": [{"role": "user", "content": "12+34+56+78"}],
    "max_tokens": 1800,
    "ignore_eos": True,
    "stream": True,
    "strategy": {"name": "majority_vote", "n": 8},
}
SHORT = {"model": "ponder-tiny", "messages": [{"role": "user", "content": "1+2"}], "max_tokens": 60, "temperature": 0}


def family(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


def read_stream(url: str, headers: dict[str, str], body: dict[str, Any], out: dict[str, Any]) -> None:
    events: list[str] = []
    out["live"] = events
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as r:
            out["status"] = r.status_code
            for line in r.iter_lines():
                if line.startswith("data:"):
                    events.append(line[5:].strip())
    except httpx.HTTPError as e:
        out["error"] = repr(e)
    out["events"] = events


def test_sigterm_drains_then_exits_cleanly(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--model", "ponder-tiny", "--shutdown-grace", "4")
    procs = family(server.proc.pid)
    assert len(procs) >= 2  # the API process and vLLM's engine process(es)
    url = f"{server.url}/v1/chat/completions"
    long_out: dict[str, Any] = {}
    t = threading.Thread(target=read_stream, args=(url, server.headers, LONG, long_out))
    t.start()
    deadline = time.monotonic() + 60
    while len(long_out.get("live", ())) < 2 and time.monotonic() < deadline:  # the long request is generating
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    health = httpx.get(f"{server.url}/health", timeout=5)
    assert health.status_code == 503 and health.json()["status"] == "draining"
    refused = httpx.post(url, json=SHORT, headers=server.headers, timeout=5)
    assert refused.status_code == 503 and "Retry-After" in refused.headers
    assert refused.json()["error"]["code"] == "draining"
    t.join(60)
    # longer than the grace period: interrupted with an error event, then [DONE]
    events = long_out["events"]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "shutdown"
    assert server.proc.wait(60) == 0
    assert not wait_gone(procs, 20), "orphan processes after shutdown"


def test_sigterm_lets_short_requests_finish(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--model", "ponder-tiny", "--shutdown-grace", "30")
    procs = family(server.proc.pid)
    out: dict[str, Any] = {}
    body = {**SHORT, "stream": True, "max_tokens": 300}
    t = threading.Thread(target=read_stream, args=(f"{server.url}/v1/chat/completions", server.headers, body, out))
    t.start()
    deadline = time.monotonic() + 60
    while not out.get("live") and time.monotonic() < deadline:  # accepted and streaming (a fixed sleep raced it)
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    t.join(60)
    assert out["events"][-1] == "[DONE]"
    assert not any("error" in e for e in out["events"][:-1])  # finished normally within the grace period
    assert server.proc.wait(60) == 0
    assert not wait_gone(procs, 20)


def test_engine_death_is_reported_and_exits_nonzero(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--model", "ponder-tiny")
    procs = family(server.proc.pid)
    engines = [p for p in procs[1:] if "EngineCore" in " ".join(p.cmdline()) + p.name()]
    assert engines, [p.name() for p in procs]
    for p in engines:
        os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    seen_dead = False
    while time.monotonic() < deadline and server.proc.poll() is None:
        try:
            h = httpx.get(f"{server.url}/health", timeout=2)
            if h.status_code == 503 and h.json()["status"] == "dead":
                seen_dead = True
                r = httpx.post(f"{server.url}/v1/chat/completions", json=SHORT, headers=server.headers, timeout=5)
                assert r.status_code == 503 and r.json()["error"]["code"] == "engine_dead"
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    assert seen_dead, server.log_tail()
    assert server.proc.wait(30) != 0
    assert not wait_gone(procs, 20), "orphan processes after engine death"
