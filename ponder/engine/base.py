"""The narrow `Engine` protocol strategies and the server see, and its value types.

An engine turns a prompt (token ids) into one or more streamed samples. Every
backend (vLLM in-process, remote vLLM servers) implements the same protocol, so
strategies never import vLLM or HTTP code.

Contract of `Engine.stream`:
- yields `EngineUpdate`s whose `samples` carry only what is new since the last
  update (text and token-id deltas, per sample index);
- the last update has `finished=True` and every sample has had a `finish_reason`
  (`stop`, `length` or `abort`);
- closing or cancelling the iterator aborts the request in the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class EngineError(RuntimeError):
    """The engine failed a request (not the client's fault)."""


class EngineDead(EngineError):
    """The engine is gone; the server must report unhealthy and stop."""


class EngineRejected(EngineError):
    """The engine refused the request's settings (the client's fault: a 400)."""


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings for one engine request (all `n` samples share them)."""

    n: int = 1
    max_tokens: int = 256
    min_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    logprobs: int | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    ignore_eos: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be >= 1")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ValueError("min_tokens must be in [0, max_tokens]")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError("logprobs must be >= 0")


@dataclass(frozen=True)
class TopLogprob:
    token_id: int
    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """The sampled token's log-probability and the top-k alternatives at that step."""

    token_id: int
    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass
class SampleDelta:
    index: int
    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None


@dataclass
class EngineUpdate:
    request_id: str
    prompt_tokens: int
    cached_tokens: int
    samples: list[SampleDelta]
    finished: bool


@dataclass
class Sample:
    """One sample, accumulated from its deltas (text pieces joined on first read: O(n), not O(n^2))."""

    index: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None
    _parts: list[str] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def add(self, delta: SampleDelta) -> None:
        if delta.text:
            self._parts.append(delta.text)
        self.token_ids.extend(delta.token_ids)
        if delta.logprobs is not None:
            if self.logprobs is None:
                self.logprobs = []
            self.logprobs.extend(delta.logprobs)
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
            self.stop_reason = delta.stop_reason


@runtime_checkable
class Engine(Protocol):
    """What a strategy may ask of a model backend."""

    @property
    def model(self) -> str: ...

    @property
    def max_model_len(self) -> int: ...

    @property
    def tokenizer(self) -> Any: ...

    def render_chat(self, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True) -> list[int]: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...

    def stream(self, prompt: Sequence[int], config: SamplingConfig, request_id: str) -> AsyncIterator[EngineUpdate]: ...

    async def abort(self, request_id: str) -> None: ...

    def num_running(self) -> int: ...

    async def check_health(self) -> None: ...

    async def shutdown(self) -> None: ...
