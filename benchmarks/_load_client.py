"""The load tester's client: one streamed request, timed, over the OpenAI wire format.

`send` posts one streaming request with httpx and reads the SSE stream
itself (no SDK in between, so the timestamps are the bytes' arrival):

- `data:` lines carry chunks; a chunk with generated text in any choice
  (`delta.content`, `delta.reasoning_content`/`delta.reasoning`, or a
  completion's `text`) is a token chunk. Role-only openings are not tokens.
- Named events (`event: ponder.progress`, `event: ponder.result`) are a
  strategy's side channel: skipped, only counted.
- `usage` (with `stream_options.include_usage`) gives the output token count;
  without it the count is the number of token chunks.
- An `{"error": ...}` object in the stream, a non-200 status, a stream that
  ends without `[DONE]`, a transport error or the per-request timeout make the
  request fail, with a short reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks._load_prompts import PROBE_LARGE, PROBE_SMALL, Calibration, Prompt, probe_prompt
from benchmarks._load_stats import RequestResult
from ponder.engine.replica import KEEPALIVE_EXPIRY


@dataclass(frozen=True)
class LoadConfig:
    base_url: str  # e.g. http://127.0.0.1:8000 (with or without /v1)
    model: str
    endpoint: str = "chat"  # chat | completions
    api_key: str | None = None
    max_tokens: int = 128
    ignore_eos: bool = False
    temperature: float | None = None
    strategy: str | dict[str, Any] | None = None
    include_usage: bool = True
    request_timeout: float = 300.0
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.endpoint not in ("chat", "completions"):
            raise ValueError("endpoint must be 'chat' or 'completions'")
        if self.max_tokens < 1 or self.request_timeout <= 0:
            raise ValueError("max_tokens must be >= 1 and request_timeout > 0")

    @property
    def root(self) -> str:
        url = self.base_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    @property
    def url(self) -> str:
        path = "/v1/chat/completions" if self.endpoint == "chat" else "/v1/completions"
        return self.root + path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def payload(cfg: LoadConfig, prompt: Prompt, *, stream: bool = True, max_tokens: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": cfg.model,
        "max_tokens": max_tokens or prompt.max_tokens or cfg.max_tokens,
        "stream": stream,
    }
    if cfg.endpoint == "chat":
        body["messages"] = prompt.chat_messages()
    else:
        body["prompt"] = prompt.completion_text()
    if stream and cfg.include_usage:
        body["stream_options"] = {"include_usage": True}
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    if cfg.temperature is not None:
        body["temperature"] = cfg.temperature
    if cfg.strategy is not None:
        body["strategy"] = cfg.strategy
    body.update(cfg.extra_body)
    return body


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_message(body: bytes | str) -> str:
    """The message of an OpenAI-shaped error body, else the body itself (shortened)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        obj = json.loads(text)
    except ValueError:
        return _short(text)
    err = obj.get("error", obj) if isinstance(obj, dict) else obj
    if isinstance(err, dict):
        return _short(str(err.get("message") or err))
    return _short(str(err))


def chunk_text(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        # Ponder sends the same reasoning text as `reasoning_content` and `reasoning`: count it once
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        return (delta.get("content") or "") + reasoning
    return choice.get("text") or ""


class _Stream:
    """Folds one SSE stream's events into a RequestResult."""

    def __init__(self, result: RequestResult, sent: float) -> None:
        self.r, self.sent = result, sent
        self.previous: float | None = None
        self.done = False
        self.error: str | None = None

    def dispatch(self, event: str | None, data: str, now: float) -> None:
        if event not in (None, "message"):
            self.r.side_events += 1
            return
        if data == "[DONE]":
            self.done = True
            return
        obj = json.loads(data)
        if not isinstance(obj, dict):
            return
        if "error" in obj and not obj.get("choices"):
            self.error = f"stream error: {error_message(json.dumps(obj))}"
            return
        chunks = [chunk_text(c) for c in obj.get("choices") or () if isinstance(c, dict)]
        texts = sum(1 for t in chunks if t)
        # TTFT is the first VISIBLE text (reasoning or content): a server that strips the whitespace
        # after `<think>` and one that streams it are timed at the same token
        if self.previous is None and any(t.strip() for t in chunks):
            self.r.ttft = now - self.sent
            self.previous = now
        elif texts and self.previous is not None:
            self.r.itl.append(now - self.previous)
            self.previous = now
        if texts:
            self.r.last_token = now - self.sent
            self.r.token_chunks += texts
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.r.usage_tokens = usage.get("completion_tokens")
            self.r.prompt_tokens = usage.get("prompt_tokens")
            details = usage.get("prompt_tokens_details") or {}
            self.r.cached_tokens = details.get("cached_tokens") if isinstance(details, dict) else None


async def _read_sse(response: httpx.Response, stream: _Stream) -> None:
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        now = time.perf_counter()
        if not line:
            if data:
                stream.dispatch(event, "\n".join(data), now)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue  # comment / ping
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:  # a last event without its blank line
        stream.dispatch(event, "\n".join(data), time.perf_counter())


async def send(client: httpx.AsyncClient, cfg: LoadConfig, prompt: Prompt, run_start: float = 0.0) -> RequestResult:
    """One streamed request; never raises (except cancellation): failures are in the result."""
    result = RequestResult()
    sent = time.perf_counter()
    result.start = sent - run_start if run_start else 0.0
    stream = _Stream(result, sent)
    try:
        async with asyncio.timeout(cfg.request_timeout):
            async with client.stream("POST", cfg.url, json=payload(cfg, prompt), headers=cfg.headers) as response:
                if response.status_code != 200:
                    body = await response.aread()
                    result.error = f"HTTP {response.status_code}: {error_message(body)}"
                else:
                    await _read_sse(response, stream)
    except TimeoutError:
        result.error = f"timeout after {cfg.request_timeout:g} s"
    except httpx.HTTPError as e:
        result.error = f"{type(e).__name__}: {_short(str(e)) or 'transport error'}"
    except json.JSONDecodeError as e:
        result.error = f"bad JSON in stream: {e.msg}"
    result.latency = time.perf_counter() - sent
    if result.error is None:
        if stream.error:
            result.error = stream.error
        elif not stream.done:
            result.error = "stream ended without [DONE]"
        elif result.token_chunks == 0 and not result.usage_tokens:
            result.error = "no tokens in the stream"
    result.ok = result.error is None
    return result


def make_client(cfg: LoadConfig, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=max(1, connections),
        max_keepalive_connections=max(1, connections),
        keepalive_expiry=KEEPALIVE_EXPIRY,  # below vLLM's server keep-alive
    )
    timeout = httpx.Timeout(cfg.request_timeout, connect=min(30.0, cfg.request_timeout))
    return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)


async def _prompt_tokens(client: httpx.AsyncClient, cfg: LoadConfig, prompt: Prompt) -> int | None:
    body = payload(cfg, prompt, stream=False, max_tokens=1)
    body.pop("strategy", None)  # a probe is one plain generation whatever the run asks
    try:
        r = await client.post(cfg.url, json=body, headers=cfg.headers)
        tokens = r.json().get("usage", {}).get("prompt_tokens") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return tokens if isinstance(tokens, int) else None


async def calibrate(client: httpx.AsyncClient, cfg: LoadConfig, seed: int = 0) -> Calibration:
    """Fit prompt tokens against words from one-token probes (non-streamed): a short one, then the
    longest of PROBE_LARGE that the server accepts. Unmeasured (assumed) when the server reports no usage."""
    small = await _prompt_tokens(client, cfg, probe_prompt(PROBE_SMALL, seed))
    if small is None:
        return Calibration()
    for n_words in PROBE_LARGE:
        large = await _prompt_tokens(client, cfg, probe_prompt(n_words, seed))
        if large is not None:
            return Calibration.fit([(PROBE_SMALL, small), (n_words, large)])
    return Calibration()


async def fetch_model(base_url: str, api_key: str | None) -> str:
    """The first model the server lists (when --model is not given)."""
    root = LoadConfig(base_url, "-").root
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        r = await client.get(f"{root}/v1/models", headers=headers)
        r.raise_for_status()
        return str(r.json()["data"][0]["id"])
