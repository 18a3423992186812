"""A `ChatTokenizer` stand-in that asks the vLLM servers (`/tokenize`, `/detokenize`) instead of loading files.

Used by the remote engine when Ponder has no copy of the model folder. It
renders chats with the server's own chat template (`/tokenize` with
`messages`), so prompts match what the servers would build. The calls are
synchronous (the `Engine` protocol's `encode`/`decode` are) and cached; over a
network each costs a round trip, so give Ponder the model folder when you can
(`--model NAME=FOLDER`): it is also what the reward models need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import httpx

from ponder.engine.base import EngineError
from ponder.engine.replica import KEEPALIVE_EXPIRY
from ponder.engine.tokenizer import THINK_END, THINK_START, ChatTokenizer

# The vocabulary size is not exposed by vLLM's endpoints (`/detokenize` accepts any id); the
# replicas reject out-of-vocabulary prompt ids themselves (HTTP 400), so Ponder's own check passes all.
UNKNOWN_VOCAB = (1 << 31) - 1


class _Vocab:
    """The bits of a Hugging Face tokenizer the server reads: `len()` and single-token decoding."""

    def __init__(self, size: int, decode: Callable[[Sequence[int], bool], str]) -> None:
        self._size = size
        self._decode = decode

    def __len__(self) -> int:
        return self._size

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._decode(ids, skip_special_tokens)


class RemoteTokenizer:
    reasoning_token_count = ChatTokenizer.reasoning_token_count

    def __init__(
        self,
        urls: Callable[[], list[str]],
        model: str,
        *,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        self._urls = urls  # live replica roots, asked in order
        self.model = model
        limits = httpx.Limits(keepalive_expiry=keepalive_expiry)
        self._client = httpx.Client(timeout=timeout, headers=headers or {}, limits=limits)
        self._token_text = lru_cache(maxsize=1 << 16)(self._decode_one)
        self.think_start_id = self._single_token(THINK_START)
        self.think_end_id = self._single_token(THINK_END)
        self.eos_token_id: int | None = None  # vLLM stops at EOS itself; only test doubles read this
        self.hf = _Vocab(UNKNOWN_VOCAB, self._decode)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for url in self._urls():
            try:
                r = self._client.post(f"{url}{path}", json={"model": self.model, **body})
            except httpx.HTTPError as e:
                errors.append(f"{url}: {type(e).__name__}")
                continue
            if r.status_code == 200:
                data: dict[str, Any] = r.json()
                return data
            if r.status_code < 500:
                raise ValueError(f"{path} rejected: {r.text[:300]}")
            errors.append(f"{url}: HTTP {r.status_code}")
        raise EngineError(f"no replica answered {path}: {'; '.join(errors) or 'none is up'}")

    def _single_token(self, text: str) -> int | None:
        ids = self.encode(text)
        return ids[0] if len(ids) == 1 else None

    def render_chat(self, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True) -> list[int]:
        data = self._post(
            "/tokenize",
            {"messages": list(messages), "add_generation_prompt": add_generation_prompt, "add_special_tokens": False},
        )
        return [int(t) for t in data["tokens"]]

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self._post("/tokenize", {"prompt": text, "add_special_tokens": False})["tokens"]]

    def encode_prompt(self, text: str) -> list[int]:
        return [int(t) for t in self._post("/tokenize", {"prompt": text, "add_special_tokens": True})["tokens"]]

    def _decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        if len(ids) == 1 and not skip_special_tokens:
            return str(self._token_text(int(ids[0])))
        return str(self._post("/detokenize", {"tokens": list(ids)})["prompt"]) if ids else ""

    def _decode_one(self, token_id: int) -> str:
        return str(self._post("/detokenize", {"tokens": [token_id]})["prompt"])

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._decode(list(token_ids), True)

    def close(self) -> None:
        self._client.close()
