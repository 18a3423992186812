"""Every error a client can cause is a 4xx in OpenAI's error shape, and the server stays healthy."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

GOOD = {"model": "ponder-tiny", "messages": [{"role": "user", "content": "1+2"}], "max_tokens": 8}


def assert_error(r: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "ponder-tiny"}, "messages"),
        ({**GOOD, "messages": []}, "messages"),
        ({**GOOD, "messages": "hi"}, "messages"),
        ({**GOOD, "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({**GOOD, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages.0.content.0.type"),
        ({**GOOD, "n": "3"}, "n"),
        ({**GOOD, "n": 0}, "n"),
        ({**GOOD, "n": 1000}, "n"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "max_tokens": 10**6}, "max_tokens"),
        ({**GOOD, "temperature": -1}, "temperature"),
        ({**GOOD, "temperature": "hot"}, "temperature"),
        ({**GOOD, "top_p": 0}, "top_p"),
        ({**GOOD, "stop": [""]}, "stop"),
        ({**GOOD, "stop": ["a"] * 50}, "stop"),
        ({**GOOD, "top_logprobs": 50, "logprobs": True}, "top_logprobs"),
        ({**GOOD, "stream": "yes"}, "stream"),
        ({**GOOD, "strategy": "telepathy"}, "strategy.name"),
        ({**GOOD, "strategy": {"name": "majority_vote", "n": -2}}, "strategy.n"),
        ({**GOOD, "strategy": {"name": "majority_vote", "n": 10**6}}, "strategy.n"),
        ({**GOOD, "strategy": {"name": "mcts", "iterations": 10**6}}, "strategy.iterations"),
        ({**GOOD, "strategy": {"name": "best_of_n", "scorer": "oracle"}}, "strategy.scorer"),
        ({**GOOD, "strategy": {"name": "direct", "budget": 10**9}}, "strategy.budget"),
        ({**GOOD, "strategy": "majority_vote", "n": 2}, "n"),
        ({**GOOD, "thinking": {"min_tokens": -1}}, "thinking.min_tokens"),
        ({**GOOD, "reasoning_effort": "extreme"}, "reasoning_effort"),
        ({**GOOD, "tools": [{"type": "function"}]}, "tools"),
        ({**GOOD, "messages": [{"role": "user", "content": "x" * 5000}]}, "messages"),
    ],
)
def test_bad_requests_are_400_naming_the_parameter(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    assert_error(http.post("/v1/chat/completions", json=body), 400, param)


def test_malformed_json_and_empty_body(http: httpx.Client) -> None:
    err = assert_error(
        http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}), 400
    )
    assert "JSON" in err["message"]
    assert_error(http.post("/v1/chat/completions", content=b""), 400)
    assert_error(http.post("/v1/chat/completions", content=b"[1, 2]"), 400)


@pytest.mark.parametrize("field", ["max_tokens", "temperature", "top_p", "timeout"])
@pytest.mark.parametrize("number", [b"Infinity", b"-Infinity", b"NaN", b"1e999"])
def test_non_finite_numbers_are_400(http: httpx.Client, field: str, number: bytes) -> None:
    """JSON has no infinities or NaN; a body that carries them anyway (Python's json does) is refused."""
    body = json.dumps(GOOD)[:-1].encode() + b', "' + field.encode() + b'": ' + number + b"}"
    assert_error(http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"}), 400)


def test_unknown_model_is_404(http: httpx.Client) -> None:
    err = assert_error(http.post("/v1/chat/completions", json={**GOOD, "model": "gpt-9"}), 404, "model")
    assert err["code"] == "model_not_found"
    assert_error(http.post("/v1/chat/completions", json={**GOOD, "model": "ponder-tiny@nonsense"}), 404, "model")


def test_api_key_is_required(tiny_server: Any) -> None:
    url = f"{tiny_server.url}/v1/chat/completions"
    assert_error(httpx.post(url, json=GOOD), 401)
    assert_error(httpx.post(url, json=GOOD, headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(httpx.get(f"{tiny_server.url}/v1/models"), 401)
    assert httpx.get(f"{tiny_server.url}/health").status_code == 200


def test_unknown_route_and_method(http: httpx.Client) -> None:
    assert_error(http.get("/v1/nothing"), 404)
    assert_error(http.get("/v1/chat/completions"), 405)


def test_completions_errors(http: httpx.Client) -> None:
    base = {"model": "ponder-tiny", "prompt": "1+2", "max_tokens": 4}
    assert_error(http.post("/v1/completions", json={**base, "prompt": []}), 400, "prompt")
    assert_error(http.post("/v1/completions", json={**base, "prompt": [10**7]}), 400, "prompt")
    assert_error(http.post("/v1/completions", json={**base, "echo": True}), 400, "echo")


def test_server_still_healthy_and_serving(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json=GOOD)
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in {"stop", "length"}
