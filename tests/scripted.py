"""A scripted `Engine` for unit tests of strategy logic (a test double, not a model).

It uses the real ponder-tiny tokenizer; what each sample "generates" comes from
a script function `(prompt_text, config, sample_index) -> completion text`.
Tokens stream one per update, honouring max_tokens, stop strings, stop token
ids and EOS the way vLLM does, so usage and budget accounting can be checked
exactly. Every request is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.engine.base import EngineUpdate, SampleDelta, SamplingConfig, TokenLogprob, TopLogprob
from ponder.engine.tokenizer import ChatTokenizer

Script = Callable[[str, SamplingConfig, int], str]


@dataclass
class Call:
    request_id: str
    prompt: list[int]
    config: SamplingConfig
    generated: list[int] = field(default_factory=list)  # tokens per sample, summed
    aborted: bool = False


class ScriptedEngine:
    def __init__(self, folder: Path, script: Script, *, max_model_len: int = 2048, delay: float = 0.0) -> None:
        self._tok = ChatTokenizer(folder)
        self.script = script
        self._max_len = max_model_len
        self.delay = delay
        self.calls: list[Call] = []
        self.running: set[str] = set()

    model = "scripted"

    @property
    def max_model_len(self) -> int:
        return self._max_len

    @property
    def tokenizer(self) -> ChatTokenizer:
        return self._tok

    def render_chat(self, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True) -> list[int]:
        return self._tok.render_chat(messages, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tok.hf.decode(list(token_ids), skip_special_tokens=False)

    def _plan(self, prompt_text: str, config: SamplingConfig, index: int) -> tuple[list[int], str, str | int | None]:
        ids = self._tok.encode(self.script(prompt_text, config, index))
        eos = self._tok.eos_token_id
        out: list[int] = []
        for t in ids:
            out.append(t)
            if t == eos:
                return out, "stop", None
            if t in config.stop_token_ids:
                return out, "stop", t
            if config.stop:
                text = self.decode(out)
                for s in config.stop:
                    if text.endswith(s):
                        return out, "stop", s
            if len(out) >= config.max_tokens:
                return out, "length", None
        return out, "stop", None

    async def stream(
        self, prompt: Sequence[int], config: SamplingConfig, request_id: str
    ) -> AsyncIterator[EngineUpdate]:
        call = Call(request_id, list(prompt), config)
        self.calls.append(call)
        self.running.add(request_id)
        prompt_text = self.decode(prompt)
        plans = [self._plan(prompt_text, config, i) for i in range(config.n)]
        try:
            step = 0
            while True:
                deltas = []
                for i, (ids, reason, stop_reason) in enumerate(plans):
                    if step < len(ids):
                        t = ids[step]
                        last = step == len(ids) - 1
                        text = self.decode([t]) if t != self._tok.eos_token_id else ""
                        lps = None
                        if config.logprobs is not None:
                            top = tuple(
                                TopLogprob(t + j, "x", -0.1 * (j + 1) - 0.05 * i)
                                for j in range(max(1, config.logprobs))
                            )
                            lps = [TokenLogprob(t, text, top[0].logprob, top)]
                        deltas.append(
                            SampleDelta(i, text, [t], lps, reason if last else None, stop_reason if last else None)
                        )
                        call.generated.append(t)
                if not deltas:
                    break
                step += 1
                finished = all(step >= len(p[0]) for p in plans)
                yield EngineUpdate(request_id, len(prompt), 0, deltas, finished)
                if self.delay:
                    await asyncio.sleep(self.delay)
                else:
                    await asyncio.sleep(0)
                if finished:
                    break
        except (asyncio.CancelledError, GeneratorExit):
            call.aborted = True
            raise
        finally:
            self.running.discard(request_id)

    async def abort(self, request_id: str) -> None:
        for call in self.calls:
            if call.request_id == request_id and request_id in self.running:
                call.aborted = True
        self.running.discard(request_id)

    def num_running(self) -> int:
        return len(self.running)

    async def check_health(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
