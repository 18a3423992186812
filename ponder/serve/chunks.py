"""Strategy events -> OpenAI response bodies: streamed chunks or one whole response.

`ChatFormat` and `CompletionFormat` know the two endpoints' shapes; the
`Collector` folds events into a whole response for `stream: false`.
Progress goes out as chunk-shaped objects with `choices: []` so every client
can parse them; streaming clients that read SSE event names get them as
`event: ponder.progress` (and the final account as `event: ponder.result`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.engine.base import TokenLogprob
from ponder.engine.tokenizer import THINK_END, THINK_START
from ponder.strategies.base import Content, Event, Finish, Progress, Reasoning, Report, Usage


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _chat_logprobs(items: Sequence[TokenLogprob], top: int) -> dict[str, Any]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": max(logprob, -9999.0), "bytes": list(token.encode("utf-8"))}

    return {
        "content": [
            {**entry(lp.token, lp.logprob), "top_logprobs": [entry(t.token, t.logprob) for t in lp.top[:top]]}
            for lp in items
        ]
    }


def _completion_logprobs(items: Sequence[TokenLogprob], top: int, offset: int) -> dict[str, Any]:
    offsets, pos = [], offset
    for lp in items:
        offsets.append(pos)
        pos += len(lp.token)
    return {
        "tokens": [lp.token for lp in items],
        "token_logprobs": [max(lp.logprob, -9999.0) for lp in items],
        "top_logprobs": [{t.token: max(t.logprob, -9999.0) for t in lp.top[:top]} for lp in items] if top else None,
        "text_offset": offsets,
    }


@dataclass
class ChoiceState:
    reasoning: str = ""
    content: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    in_think: bool = False  # completions: a `<think>` was opened in the text


class ChatFormat:
    object_chunk = "chat.completion.chunk"
    object_full = "chat.completion"

    def __init__(self, rid: str, model: str, created: int, n: int, logprobs: int | None) -> None:
        self.rid, self.model, self.created, self.n, self.top = rid, model, created, n, logprobs
        self.choices = [ChoiceState() for _ in range(n)]

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.rid,
            "object": self.object_chunk,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def opening(self) -> list[dict[str, Any]]:
        return [
            self._chunk(
                [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]
            )
            for i in range(self.n)
        ]

    def delta(self, ev: Reasoning | Content | Finish) -> dict[str, Any]:
        logprobs = None
        if isinstance(ev, Reasoning):
            delta: dict[str, Any] = {"reasoning_content": ev.text, "reasoning": ev.text}
            finish = None
        elif isinstance(ev, Content):
            delta, finish = {"content": ev.text}, None
            if self.top is not None and ev.logprobs:
                logprobs = _chat_logprobs(ev.logprobs, self.top)
        else:
            delta, finish = {}, ev.finish_reason
        return self._chunk([{"index": ev.index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}])

    def side(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._chunk([], ponder=data)

    def usage(self, usage: Usage) -> dict[str, Any]:
        return self._chunk([], usage=usage.openai())

    def fold(self, ev: Reasoning | Content | Finish) -> None:
        c = self.choices[ev.index]
        if isinstance(ev, Reasoning):
            c.reasoning += ev.text
        elif isinstance(ev, Content):
            c.content += ev.text
            if ev.logprobs:
                c.logprobs.extend(ev.logprobs)
        else:
            c.finish_reason = ev.finish_reason
            if ev.reasoning is not None:
                c.reasoning = ev.reasoning

    def whole(self, usage: Usage, report: dict[str, Any]) -> dict[str, Any]:
        choices = []
        for i, c in enumerate(self.choices):
            message: dict[str, Any] = {"role": "assistant", "content": c.content}
            if c.reasoning:
                message["reasoning_content"] = c.reasoning
                message["reasoning"] = c.reasoning
            logprobs = _chat_logprobs(c.logprobs, self.top) if self.top is not None else None
            choices.append(
                {"index": i, "message": message, "logprobs": logprobs, "finish_reason": c.finish_reason or "abort"}
            )
        return {
            "id": self.rid,
            "object": self.object_full,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage.openai(),
            "ponder": report,
        }


class CompletionFormat(ChatFormat):
    """`/v1/completions`: text as generated; a strategy's reasoning goes back inside `<think>`."""

    object_chunk = "text_completion"
    object_full = "text_completion"

    def opening(self) -> list[dict[str, Any]]:
        return []

    def _text(self, ev: Reasoning | Content) -> str:
        c = self.choices[ev.index]
        if isinstance(ev, Reasoning):
            text = ev.text if c.in_think else f"{THINK_START}\n{ev.text}"
            c.in_think = True
        else:
            text = f"\n{THINK_END}\n{ev.text}" if c.in_think and ev.text else ev.text
            c.in_think = c.in_think and not ev.text
        return text

    def delta(self, ev: Reasoning | Content | Finish) -> dict[str, Any]:
        if isinstance(ev, Finish):
            choice = {"index": ev.index, "text": "", "logprobs": None, "finish_reason": ev.finish_reason}
        else:
            text = self._text(ev)
            c = self.choices[ev.index]
            logprobs = None
            if isinstance(ev, Content) and self.top is not None and ev.logprobs:
                logprobs = _completion_logprobs(ev.logprobs, self.top, len(c.content))
            c.content += text
            choice = {"index": ev.index, "text": text, "logprobs": logprobs, "finish_reason": None}
        return self._chunk([choice])

    def fold(self, ev: Reasoning | Content | Finish) -> None:
        if isinstance(ev, Finish):
            self.choices[ev.index].finish_reason = ev.finish_reason
            return
        c = self.choices[ev.index]
        c.content += self._text(ev)
        if isinstance(ev, Content) and ev.logprobs:
            c.logprobs.extend(ev.logprobs)

    def whole(self, usage: Usage, report: dict[str, Any]) -> dict[str, Any]:
        choices = [
            {
                "index": i,
                "text": c.content,
                "logprobs": _completion_logprobs(c.logprobs, self.top, 0) if self.top is not None else None,
                "finish_reason": c.finish_reason or "abort",
            }
            for i, c in enumerate(self.choices)
        ]
        return {
            "id": self.rid,
            "object": self.object_full,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage.openai(),
            "ponder": report,
        }


def is_choice_event(ev: Event) -> bool:
    return isinstance(ev, Reasoning | Content | Finish)


__all__ = ["ChatFormat", "CompletionFormat", "dumps", "is_choice_event", "Progress", "Report"]
