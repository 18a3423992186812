"""Turn a validated request into what a strategy run needs, enforcing every limit.

Errors a client can cause are raised here, where the input is first
understood, as 400s naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ponder.engine.base import SamplingConfig
from ponder.serve.config import Limits
from ponder.serve.errors import APIError, bad_request
from ponder.serve.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    _SamplingFields,
)
from ponder.serve.state import ServedModel, ServerState
from ponder.strategies.base import EFFORT_THINKING, RequestSpec, Thinking
from ponder.strategies.registry import STRATEGIES, ParamError, StrategySpec, parse_strategy

# strategy parameters capped by server limits: attribute -> (limit field, what)
_PARAM_CAPS = {"n": "max_samples", "iterations": "max_iterations", "max_depth": "max_depth"}


@dataclass
class Prepared:
    model: ServedModel
    spec: StrategySpec
    params: Any
    request: RequestSpec
    budget: int
    stream: bool
    include_usage: bool
    logprobs: int | None
    timeout: float


def flatten_messages(messages: list[ChatMessage], limits: Limits) -> list[dict[str, str]]:
    if len(messages) > limits.max_messages:
        raise bad_request(f"at most {limits.max_messages} messages are allowed", param="messages")
    out = []
    for i, m in enumerate(messages):
        if m.role == "tool":
            raise bad_request("tool messages are not supported", param=f"messages.{i}.role")
        content = m.content
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise bad_request(
                        f"content parts of type {part.type!r} are not supported (text only)",
                        param=f"messages.{i}.content.{j}.type",
                    )
                texts.append(part.text)
            content = "".join(texts)
        out.append({"role": "system" if m.role == "developer" else m.role, "content": content or ""})
    return out


def _stop(stop: str | list[str] | None, limits: Limits) -> tuple[str, ...]:
    items = [stop] if isinstance(stop, str) else list(stop or [])
    if len(items) > limits.max_stop:
        raise bad_request(f"at most {limits.max_stop} stop sequences are allowed", param="stop")
    if any(not s for s in items):
        raise bad_request("stop sequences must not be empty", param="stop")
    return tuple(items)


def _max_tokens(asked: int | None, prompt_len: int, model: ServedModel, limits: Limits) -> int:
    context = model.engine.max_model_len
    if prompt_len >= context:
        raise bad_request(
            f"This model's maximum context length is {context} tokens; the prompt has {prompt_len}.",
            param="messages",
            code="context_length_exceeded",
        )
    cap = limits.max_tokens or context
    if asked is None:
        return max(1, min(limits.default_max_tokens, cap, context - prompt_len))
    if asked > cap:
        raise bad_request(f"max_tokens must be <= {cap}", param="max_tokens")
    if prompt_len + asked > context:
        raise bad_request(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_len + asked} tokens ({prompt_len} in the messages, {asked} in the completion).",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return asked


def _strategy(
    req: _SamplingFields, alias: str | None, wants_thinking: bool, limits: Limits
) -> tuple[StrategySpec, Any, int]:
    raw = req.strategy if req.strategy is not None else alias
    if raw is None and wants_thinking and "long_cot" in STRATEGIES:
        raw = "long_cot"
    try:
        spec, params, budget = parse_strategy(raw)
    except ParamError as e:
        raise bad_request(str(e), param=e.param) from None
    for attr, cap_name in _PARAM_CAPS.items():
        value = getattr(params, attr, None)
        cap = getattr(limits, cap_name)
        if isinstance(value, int) and value > cap:
            raise bad_request(f"strategy.{attr} must be <= {cap} on this server", param=f"strategy.{attr}")
    if budget is not None and budget > limits.max_request_tokens:
        raise bad_request(
            f"strategy.budget must be <= {limits.max_request_tokens} tokens on this server", param="strategy.budget"
        )
    if spec.name != "direct" and req.n != 1:
        raise bad_request(
            f"n must be 1 with strategy {spec.name!r} (it returns one answer; set its own sample count instead)",
            param="n",
        )
    return spec, params, budget or limits.max_request_tokens


def _check_greedy(sampling: SamplingConfig, params: Any) -> None:
    """Greedy decoding makes every sample of one engine request the same: refuse it where a strategy samples."""
    if sampling.temperature > 0:
        return
    many = [("n", sampling.n)] + [(f"strategy.{a}", getattr(params, a, 1)) for a in ("n", "expand_k", "rollouts")]
    for param, value in many:
        if isinstance(value, int) and value > 1:
            raise bad_request(
                f"temperature 0 (greedy) makes all {param}={value} samples identical; use a temperature > 0",
                param="temperature",
            )


def _check_scorers(state: ServerState, model: ServedModel, params: Any) -> None:
    """A scorer the strategy names must exist for this model, and take the aggregate asked."""
    scorers = state.scorers_for(model)
    for attr in ("scorer", "weight"):
        if not hasattr(params, attr):
            continue
        name = getattr(params, attr)
        if name == "none":
            continue
        try:
            scorer = scorers(name)
        except ParamError as e:
            raise bad_request(str(e), param=f"strategy.{attr}") from None
        aggregate = getattr(params, "aggregate", None)
        if attr == "scorer" and aggregate is not None and aggregate not in scorer.aggregates:
            allowed = ", ".join(scorer.aggregates) or "none"
            raise bad_request(
                f"scorer {scorer.name!r} takes strategy.aggregate in: {allowed}", param="strategy.aggregate"
            )


def _thinking(req: ChatCompletionRequest) -> Thinking:
    base = EFFORT_THINKING[req.reasoning_effort] if req.reasoning_effort else Thinking()
    if req.thinking is None:
        return base
    values = {f.name: getattr(base, f.name) for f in fields(Thinking)}
    values.update({k: getattr(req.thinking, k) for k in req.thinking.model_fields_set})
    try:
        return Thinking(**values)
    except ValueError as e:
        raise bad_request(str(e), param="thinking") from None


def _timeout(req: _SamplingFields, limits: Limits) -> float:
    if req.timeout is None:
        return limits.default_timeout
    if req.timeout > limits.max_timeout:
        raise bad_request(f"timeout must be <= {limits.max_timeout} s on this server", param="timeout")
    return req.timeout


def _sampling(
    req: _SamplingFields, model: ServedModel, n: int, max_tokens: int, logprobs: int | None, stop: tuple[str, ...]
) -> SamplingConfig:
    d = model.defaults
    try:
        return SamplingConfig(
            n=n,
            max_tokens=max_tokens,
            min_tokens=min(req.min_tokens or 0, max_tokens),
            temperature=req.temperature if req.temperature is not None else float(d.get("temperature", 1.0)),
            top_p=req.top_p if req.top_p is not None else float(d.get("top_p", 1.0)),
            top_k=req.top_k if req.top_k is not None else int(d.get("top_k", 0)),
            seed=req.seed,
            stop=stop,
            logprobs=logprobs,
            ignore_eos=req.ignore_eos,
            presence_penalty=req.presence_penalty or 0.0,
            frequency_penalty=req.frequency_penalty or 0.0,
        )
    except ValueError as e:
        raise bad_request(str(e)) from None


def prepare(
    state: ServerState,
    req: ChatCompletionRequest | CompletionRequest,
    prompt_ids: list[int],
    model: ServedModel,
    alias: str | None,
    messages: list[dict[str, str]] | None = None,
) -> Prepared:
    limits = state.config.limits
    if req.n > limits.max_n:
        raise bad_request(f"n must be <= {limits.max_n}", param="n")
    stop = _stop(req.stop, limits)
    if isinstance(req, ChatCompletionRequest):
        if req.tools or req.tool_choice not in (None, "none"):
            raise bad_request("tools are not supported", param="tools")
        if req.response_format not in (None, {"type": "text"}):
            raise bad_request("response_format is not supported", param="response_format")
        asked = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        if req.top_logprobs and not req.logprobs:
            raise bad_request("top_logprobs requires logprobs to be true", param="top_logprobs")
        thinking = _thinking(req)
        wants_thinking = req.thinking is not None or req.reasoning_effort is not None
    else:
        if req.echo or req.suffix is not None or (req.best_of not in (None, 1)):
            param = "echo" if req.echo else "suffix" if req.suffix is not None else "best_of"
            raise bad_request(f"{param} is not supported (use strategy best_of_n for best-of)", param=param)
        asked, logprobs, thinking, wants_thinking = req.max_tokens, req.logprobs, Thinking(), False
    max_tokens = _max_tokens(asked, len(prompt_ids), model, limits)
    spec, params, budget = _strategy(req, alias, wants_thinking, limits)
    _check_scorers(state, model, params)
    sampling = _sampling(req, model, req.n, max_tokens, logprobs, stop)
    _check_greedy(sampling, params)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    if req.stream_options is not None and not req.stream:
        raise bad_request("stream_options is only allowed when stream is true", param="stream_options")
    return Prepared(
        model=model,
        spec=spec,
        params=params,
        request=RequestSpec(tuple(prompt_ids), sampling, thinking, messages=tuple(messages) if messages else None),
        budget=budget,
        stream=req.stream,
        include_usage=include_usage,
        logprobs=logprobs,
        timeout=_timeout(req, limits),
    )


def check_token_ids(ids: list[int], vocab: int, param: str) -> None:
    for t in ids:
        if not 0 <= t < vocab:
            raise APIError(400, f"token id {t} is out of range [0, {vocab})", param=param)
