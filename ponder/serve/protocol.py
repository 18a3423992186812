"""Request models for the OpenAI-compatible API (pydantic lives only here).

Standard OpenAI fields keep their meaning; Ponder adds `strategy`,
`reasoning_effort`, `thinking` and `timeout`. Validation is strict (no
string-to-number coercion) so a wrong type is a 400 naming the field. Unknown
fields are ignored, as vLLM does, so SDK extras never break a request.
Responses are built as plain dicts in `chunks.py` (cheaper on the hot path).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class ContentPart(_Model):
    type: str
    text: str | None = None


class ChatMessage(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Model):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class ThinkingRequest(_Model):
    min_tokens: int = Field(0, ge=0, description="Suppress `</think>` (append 'Wait') until this many thinking tokens.")
    max_tokens: int | None = Field(None, ge=1, description="Close thinking and force the answer at this many tokens.")
    max_waits: int = Field(2, ge=0, le=64, description="At most this many 'Wait' insertions.")


class _SamplingFields(_Model):
    model: str = Field(
        min_length=1, description="A served model or a strategy alias such as `ponder-tiny@majority_vote`."
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, description="Choices to return (`direct` only; other strategies return one).")
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1)
    min_tokens: int | None = Field(None, ge=0)
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    ignore_eos: bool = Field(False, description="vLLM extension: keep generating past EOS (load tests).")
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = None
    strategy: str | dict[str, Any] | None = Field(
        None, description='Test-time strategy: a name or {"name": ..., params}. See GET /v1/strategies.'
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds before the request is aborted (capped by the server)."
    )


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    thinking: ThinkingRequest | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    response_format: Any = None


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)
