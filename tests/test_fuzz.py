"""Property-based fuzzing of every endpoint in Ponder's OpenAPI schema: no 5xx, every error in OpenAI's shape.

Bodies come from hypothesis: mostly-valid chat/completion requests whose every
field (the `strategy` object included) is sometimes replaced by arbitrary JSON,
plus raw garbage. Valid requests really run on the engine; the `limited_server`
caps each at 512 generated tokens. Streamed responses are read to the end and
may only carry 4xx-type errors. The server must be healthy afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponder.strategies.registry import BUILTIN

CASES = {"count": 0, "statuses": {}}  # type: ignore[var-annotated]

# JSON has no NaN or infinity, so a client cannot send them as numbers (test_api_errors sends them raw)
finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers(-(10**15), 10**15) | finite | st.text(max_size=12)
anything = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6
)


def sometimes(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(good, good, good, anything)


names = st.sampled_from([*BUILTIN, "bogus"])
strategy_obj = st.one_of(
    st.none(),
    names,
    st.fixed_dictionaries(
        {"name": sometimes(names)},
        optional={
            "n": sometimes(st.integers(-1, 5)),
            "budget": sometimes(st.integers(-5, 600)),
            "iterations": sometimes(st.integers(0, 3)),
            "expand_k": sometimes(st.integers(0, 3)),
            "max_depth": sometimes(st.integers(0, 4)),
            "early_stop": sometimes(st.floats(0, 1.2)),
            "wave": sometimes(st.integers(-1, 4)),
            "weight": sometimes(st.sampled_from(["none", "confidence", "prm", "orm", "x"])),
            "scorer": sometimes(st.sampled_from(["confidence", "prm", "orm", "x"])),
            "aggregate": sometimes(st.sampled_from(["min", "prod", "last", "mean", "lowest", "tail", "x"])),
            "weighted": sometimes(st.booleans()),
            "reflections": sometimes(st.integers(-1, 2)),
            "step_max_tokens": sometimes(st.integers(0, 16)),
            "value": sometimes(st.sampled_from(["auto", "scorer", "rollout", "both", "x"])),
        },
    ),
)
message = st.fixed_dictionaries(
    {
        "role": sometimes(st.sampled_from(["user", "system", "assistant", "developer", "tool", "x"])),
        "content": sometimes(st.text(max_size=30) | st.just("12+34")),
    }
)
common = {
    "max_tokens": sometimes(st.integers(-1, 12)),
    "n": sometimes(st.integers(-1, 3)),
    "temperature": sometimes(st.floats(-0.5, 2.5)),
    "top_p": sometimes(st.floats(-0.1, 1.1)),
    "seed": sometimes(st.integers(-5, 2**70)),
    "stop": sometimes(st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=10))),
    "stream": sometimes(st.booleans()),
    "stream_options": sometimes(st.fixed_dictionaries({"include_usage": st.booleans()})),
    "strategy": sometimes(strategy_obj),
    "timeout": sometimes(st.floats(-1, 30)),
}
model = sometimes(st.sampled_from(["ponder-tiny", "ponder-tiny@majority_vote", "ponder-tiny@mcts", "gpt-4"]))
chat_body = st.fixed_dictionaries(
    {"model": model, "messages": sometimes(st.lists(message, max_size=3))},
    optional={
        **common,
        "logprobs": sometimes(st.booleans()),
        "top_logprobs": sometimes(st.integers(-1, 25)),
        "max_completion_tokens": sometimes(st.integers(-1, 12)),
        "reasoning_effort": sometimes(st.sampled_from(["minimal", "low", "medium", "high", "max"])),
        "thinking": sometimes(
            st.fixed_dictionaries(
                {},
                optional={
                    "min_tokens": st.integers(-1, 40),
                    "max_tokens": st.integers(-1, 40),
                    "max_waits": st.integers(-1, 3),
                },
            )
        ),
    },
)
completion_body = st.fixed_dictionaries(
    {"model": model, "prompt": sometimes(st.one_of(st.text(max_size=20), st.lists(st.integers(-3, 300), max_size=5)))},
    optional={**common, "logprobs": sometimes(st.integers(-1, 25)), "echo": sometimes(st.booleans())},
)


def check(r: httpx.Response, stream: bool) -> None:
    CASES["count"] += 1
    CASES["statuses"][r.status_code] = CASES["statuses"].get(r.status_code, 0) + 1
    assert r.status_code < 500 or r.status_code == 503, r.text[:500]
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err["message"], str) and err["message"] and set(err) == {"message", "type", "param", "code"}
        return
    if stream and r.headers.get("content-type", "").startswith("text/event-stream"):
        lines = [ln[5:].strip() for ln in r.text.splitlines() if ln.startswith("data:")]
        assert lines and lines[-1] == "[DONE]"
        for data in lines[:-1]:
            obj = json.loads(data)
            if "error" in obj:
                assert obj["error"]["type"] not in ("server_error",), obj


def post(server: Any, path: str, body: Any) -> None:
    stream = isinstance(body, dict) and body.get("stream") is True
    r = httpx.post(f"{server.url}{path}", json=body, headers=server.headers, timeout=120)
    check(r, stream)


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@SETTINGS
@given(body=chat_body)
def test_fuzz_chat(limited_server: Any, body: dict[str, Any]) -> None:
    post(limited_server, "/v1/chat/completions", body)


@SETTINGS
@given(body=completion_body)
def test_fuzz_completions(limited_server: Any, body: dict[str, Any]) -> None:
    post(limited_server, "/v1/completions", body)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(raw=st.binary(max_size=200) | anything.map(lambda v: json.dumps(v).encode()))
def test_fuzz_raw_bodies(limited_server: Any, raw: bytes) -> None:
    for path in ("/v1/chat/completions", "/v1/completions"):
        r = httpx.post(f"{limited_server.url}{path}", content=raw, headers=limited_server.headers, timeout=60)
        check(r, False)


def test_every_endpoint_in_the_schema_is_covered(limited_server: Any) -> None:
    schema = httpx.get(f"{limited_server.url}/openapi.json", timeout=10).json()
    paths = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert ("POST", "/v1/chat/completions") in paths and ("POST", "/v1/completions") in paths
    for method, path in sorted(paths):
        for headers in (limited_server.headers, {}, {"Authorization": "Bearer nope"}):
            r = httpx.request(
                method,
                f"{limited_server.url}{path}",
                headers=headers,
                params={"x": "1"},
                timeout=30,
                **({"json": {"model": "ponder-tiny"}} if method == "POST" else {}),
            )
            check(r, False)
    health = httpx.get(f"{limited_server.url}/health", timeout=10).json()
    assert health["status"] == "ok"
    print(f"\nfuzz cases so far: {CASES['count']} by status {dict(sorted(CASES['statuses'].items()))}")
