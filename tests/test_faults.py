"""An exception inside a strategy fails only its request: error event then [DONE] (or a 500 in
OpenAI's shape), its engine requests aborted, logged with the request id, the server healthy."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

FAULT = {"model": "ponder-tiny", "messages": [{"role": "user", "content": "12+34"}], "strategy": "fault"}
GOOD = {
    "model": "ponder-tiny",
    "messages": [{"role": "user", "content": "12+34+56"}],
    "max_tokens": 200,
    "temperature": 0,
}


def running(server: Any) -> int:
    return int(httpx.get(f"{server.url}/health", timeout=10).json()["models"]["ponder-tiny"]["running"])


def test_fault_in_a_stream_is_an_error_event_then_done(limited_server: Any) -> None:
    good: dict[str, Any] = {}

    def other() -> None:  # a request in flight at the same time must not be harmed
        r = httpx.post(
            f"{limited_server.url}/v1/chat/completions", json=GOOD, headers=limited_server.headers, timeout=120
        )
        good["status"], good["body"] = r.status_code, r.json()

    t = threading.Thread(target=other)
    t.start()
    with httpx.stream(
        "POST",
        f"{limited_server.url}/v1/chat/completions",
        json={**FAULT, "stream": True},
        headers=limited_server.headers,
        timeout=60,
    ) as r:
        assert r.status_code == 200
        data = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    t.join(120)
    assert data[-1] == "[DONE]"
    err = json.loads(data[-2])["error"]
    assert err["type"] == "server_error" and err["code"] == "internal_error"
    rid = err["message"].split("request id ")[1].rstrip(")")
    assert any(json.loads(d).get("choices") for d in data[:-2])  # it had streamed before failing
    assert good["status"] == 200 and good["body"]["choices"][0]["finish_reason"] == "stop"
    deadline = time.monotonic() + 3
    while running(limited_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(limited_server) == 0  # the failed strategy's engine requests were aborted
    time.sleep(0.3)
    log = limited_server.log.read_text(errors="replace")
    assert rid in log and "InjectedFault" in log


def test_fault_in_a_whole_response_is_a_500_in_openai_shape(limited_server: Any) -> None:
    r = httpx.post(f"{limited_server.url}/v1/chat/completions", json=FAULT, headers=limited_server.headers, timeout=60)
    assert r.status_code == 500
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == "internal_error"
    assert httpx.get(f"{limited_server.url}/health", timeout=10).json()["status"] == "ok"
    ok = httpx.post(f"{limited_server.url}/v1/chat/completions", json=GOOD, headers=limited_server.headers, timeout=120)
    assert ok.status_code == 200


def test_deadline_aborts_the_strategy(limited_server: Any) -> None:
    body = {
        **FAULT,
        # 2 x 256 tokens (the server's 512-token budget): 1.3-2 s on this CPU, cut at 0.2 s; 8 x 64 took
        # only 0.55 s, too close to the deadline for a faster machine
        "strategy": {"name": "majority_vote", "n": 2},
        "max_tokens": 256,
        "ignore_eos": True,
        "timeout": 0.2,
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{limited_server.url}/v1/chat/completions", json=body, headers=limited_server.headers, timeout=60
    ) as r:
        data = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]" and json.loads(data[-2])["error"]["code"] == "timeout"
    deadline = time.monotonic() + 3
    while running(limited_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(limited_server) == 0
