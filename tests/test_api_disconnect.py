"""A client that goes away has its engine requests aborted: the engine's running count returns to zero."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx
import pytest


def running(tiny_server: Any) -> int:
    health = httpx.get(f"{tiny_server.url}/health", timeout=10).json()
    return int(health["models"]["ponder-tiny"]["running"])


def wait_idle(tiny_server: Any, within: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if running(tiny_server) == 0:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"engine still has {running(tiny_server)} running requests after {within} s")


LONG = {
    "model": "ponder-tiny",
    "messages": [{"role": "user", "content": "12+34+56+78"}],
    "temperature": 1.0,
    "max_tokens": 1500,
    "stream": True,
    "ignore_eos": True,
}


def saw_running(tiny_server: Any, polls: int = 40) -> bool:
    """Between engine requests of one strategy there are instants with none running: poll."""
    return any(running(tiny_server) >= 1 for _ in range(polls))


def hang_up_mid_stream(tiny_server: Any, body: dict[str, Any]) -> tuple[bool, float]:
    """Stream `body`, read 40 lines and hang up. Returns whether the engine was still generating
    when the client went away, and the seconds from the request to the hang-up."""
    start = time.monotonic()
    with (
        httpx.Client(base_url=tiny_server.url, headers=tiny_server.headers, timeout=60) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()  # held: dropping the iterator would already close the stream
        for _ in range(40):
            next(lines)
        generating = saw_running(tiny_server)
        elapsed = time.monotonic() - start
    return generating, elapsed


@pytest.mark.parametrize(
    "strategy",
    [{"name": "direct"}, {"name": "mcts", "iterations": 50, "expand_k": 3, "rollouts": 4}],
    ids=["mid-reasoning", "mid-tree"],
)
def test_disconnect_mid_stream_aborts_the_engine_request(tiny_server: Any, strategy: dict[str, Any]) -> None:
    body = {**LONG, "strategy": strategy, "n": 16 if strategy["name"] == "direct" else 1}  # ~20 s of work
    # The engine does not wait for a slow reader: on a starved machine it can finish all the work
    # before this client has read 40 lines, and then there is nothing left to abort. Such a try
    # tests nothing, so try again (it was seen once in CI); every try must leave the engine idle.
    tries = []
    for _ in range(3):
        generating, elapsed = hang_up_mid_stream(tiny_server, body)
        assert wait_idle(tiny_server) < 2.0
        tries.append(f"{elapsed:.1f} s")
        if generating:
            return
    pytest.fail(f"the engine had already finished when the client hung up, in every try (after {', '.join(tries)})")


def test_disconnect_during_budget_forcing(tiny_server: Any) -> None:
    body = {**LONG, "strategy": "long_cot", "thinking": {"min_tokens": 1400, "max_waits": 64}}
    with (
        httpx.Client(base_url=tiny_server.url, headers=tiny_server.headers, timeout=60) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        for n, _ in enumerate(r.iter_lines()):
            if n > 30:
                break
    assert wait_idle(tiny_server) < 2.0


def test_disconnect_mid_vote_aborts_all_samples(tiny_server: Any) -> None:
    body = {**LONG, "strategy": {"name": "majority_vote", "n": 8}}
    with (
        httpx.Client(base_url=tiny_server.url, headers=tiny_server.headers, timeout=60) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        for n, _ in enumerate(r.iter_lines()):
            if n > 10:
                break
    assert wait_idle(tiny_server) < 2.0


def test_disconnect_before_a_whole_response(tiny_server: Any) -> None:
    body = {**LONG, "stream": False, "strategy": {"name": "majority_vote", "n": 8}}
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(f"{tiny_server.url}/v1/chat/completions", json=body, headers=tiny_server.headers, timeout=0.5)
    assert wait_idle(tiny_server) < 2.5
