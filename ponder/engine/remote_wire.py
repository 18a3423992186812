"""The remote engine's wire format: `SamplingConfig` -> vLLM `/v1/completions` body, stream chunks -> deltas.

The prompt goes as token ids and every sampling field is sent explicitly, so a
vLLM server's `generation_config.json` defaults never change what a strategy
asked for (the in-process engine builds `SamplingParams` the same way). vLLM
extensions used: `return_token_ids` (token-id deltas per chunk),
`return_tokens_as_token_ids` (logprob entries keyed `token_id:N`, so the
sampled token and its top-k are exact ids), `include_stop_str_in_output`,
`stop_token_ids`, `min_tokens`, `top_k`, `ignore_eos`, `skip_special_tokens`;
`stop_reason` comes back per choice. Cached prompt tokens come only in the
final usage chunk, and only from servers started with
`--enable-prompt-tokens-details`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ponder.engine.base import EngineError, SampleDelta, SamplingConfig, TokenLogprob, TopLogprob

TOKEN_ID_PREFIX = "token_id:"


def completion_body(model: str, prompt: Sequence[int], cfg: SamplingConfig, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "prompt": list(prompt),
        "stream": True,
        "stream_options": {"include_usage": True},
        "request_id": request_id,
        "n": cfg.n,
        "max_tokens": cfg.max_tokens,
        "min_tokens": cfg.min_tokens,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "top_k": cfg.top_k if cfg.top_k > 0 else 0,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "presence_penalty": cfg.presence_penalty,
        "frequency_penalty": cfg.frequency_penalty,
        "stop": list(cfg.stop),
        "stop_token_ids": list(cfg.stop_token_ids),
        "include_stop_str_in_output": cfg.include_stop_str_in_output,
        "skip_special_tokens": cfg.skip_special_tokens,
        "ignore_eos": cfg.ignore_eos,
        "return_token_ids": True,
    }
    if cfg.seed is not None:
        body["seed"] = cfg.seed
    if cfg.logprobs is not None:
        body["logprobs"] = cfg.logprobs
        body["return_tokens_as_token_ids"] = True
    return body


class StreamError(EngineError):
    """The replica reported an error inside the stream (vLLM sends every such error as code 400)."""


def _token_id(key: str) -> int:
    if not key.startswith(TOKEN_ID_PREFIX):
        raise EngineError(f"replica sent a logprob token {key!r} without its id (is it a vLLM server?)")
    return int(key[len(TOKEN_ID_PREFIX) :])


def _logprob(value: float | None) -> float:
    # vLLM clamps -inf to -9999.0 for JSON; undo it so scores match the in-process engine
    if value is None or value <= -9999.0:
        return -math.inf
    return float(value)


def decode_logprobs(
    token_ids: Sequence[int], raw: dict[str, Any], token_text: Callable[[int], str]
) -> list[TokenLogprob]:
    """OpenAI completion logprobs (ids as `token_id:N`) -> the sampled token and its top-k, ranked."""
    out: list[TokenLogprob] = []
    chosen_lps = raw.get("token_logprobs") or []
    tops = raw.get("top_logprobs") or []
    for i, tid in enumerate(token_ids):
        entry = tops[i] if i < len(tops) and tops[i] else {}
        ranked = sorted(((_token_id(k), _logprob(v)) for k, v in entry.items()), key=lambda kv: -kv[1])
        top = tuple(TopLogprob(t, token_text(t), lp) for t, lp in ranked)
        lp = _logprob(chosen_lps[i]) if i < len(chosen_lps) else -math.inf
        out.append(TokenLogprob(tid, token_text(tid), lp, top))
    return out


class ChunkDecoder:
    """Turns one request's stream chunks into `SampleDelta`s and tracks which samples finished."""

    def __init__(self, n: int, token_text: Callable[[int], str]) -> None:
        self.n = n
        self.token_text = token_text
        self.finished: set[int] = set()
        self.tokens = 0  # generated tokens received so far, all samples
        self.cached_tokens = 0
        self.outputs: list[list[int]] = [[] for _ in range(n)]

    @property
    def done(self) -> bool:
        return len(self.finished) == self.n

    def decode(self, chunk: dict[str, Any]) -> list[SampleDelta]:
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise StreamError(f"the replica failed the request: {message}")
        usage = chunk.get("usage")
        if usage:
            details = usage.get("prompt_tokens_details") or {}
            self.cached_tokens = int(details.get("cached_tokens") or 0)
        deltas = []
        for choice in chunk.get("choices") or []:
            index = int(choice["index"])
            if not 0 <= index < self.n:
                raise EngineError(f"replica sent choice {index} for a request with n={self.n}")
            ids = [int(t) for t in choice.get("token_ids") or []]
            raw_lps = choice.get("logprobs")
            lps = decode_logprobs(ids, raw_lps, self.token_text) if raw_lps else None
            finish = choice.get("finish_reason")
            if finish is not None:
                self.finished.add(index)
            self.tokens += len(ids)
            self.outputs[index].extend(ids)
            deltas.append(SampleDelta(index, choice.get("text") or "", ids, lps, finish, choice.get("stop_reason")))
        return deltas


def error_message(body: bytes, status: int) -> str:
    """The message of an OpenAI-shaped error body (or the raw text)."""
    import json

    try:
        data = json.loads(body)
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err)
    except ValueError:
        return body.decode(errors="replace")[:300] or f"HTTP {status}"
