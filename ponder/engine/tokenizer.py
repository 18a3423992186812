"""Chat rendering and token counting from a model folder's Hugging Face tokenizer.

Both engine backends use this: the in-process vLLM engine and the remote one
load the same folder, so prompts are rendered and counted identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

THINK_START = "<think>"
THINK_END = "</think>"


class ChatTokenizer:
    def __init__(self, folder: str | Path) -> None:
        from transformers import AutoTokenizer

        self.hf: Any = AutoTokenizer.from_pretrained(str(folder))
        if not getattr(self.hf, "chat_template", None):
            raise ValueError(f"{folder}: the tokenizer has no chat template")
        self.think_start_id = self._single_token(THINK_START)
        self.think_end_id = self._single_token(THINK_END)
        eos = self.hf.eos_token_id
        self.eos_token_id: int | None = eos if isinstance(eos, int) else None

    def _single_token(self, text: str) -> int | None:
        ids = self.hf.encode(text, add_special_tokens=False)
        return ids[0] if len(ids) == 1 else None

    def render_chat(self, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True) -> list[int]:
        text = self.hf.apply_chat_template(list(messages), add_generation_prompt=add_generation_prompt, tokenize=False)
        return self.encode(text)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def encode_prompt(self, text: str) -> list[int]:
        """A raw completion prompt, with the BOS token where the model expects one."""
        return list(self.hf.encode(text, add_special_tokens=True))

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self.hf.decode(list(token_ids), skip_special_tokens=True))

    def reasoning_token_count(self, token_ids: Sequence[int], text: str) -> int:
        """Tokens of a completion that belong to its thinking block.

        With a single-token `</think>`, everything up to and including it is
        reasoning (everything, when the block never closes). Models that
        do not think (no `<think>` at the start) have none.
        """
        if not text.lstrip().startswith(THINK_START):
            return 0
        if self.think_end_id is not None:
            try:
                return list(token_ids).index(self.think_end_id) + 1
            except ValueError:
                return len(token_ids)
        end = text.find(THINK_END)
        if end == -1:
            return len(token_ids)
        return min(len(token_ids), len(self.encode(text[: end + len(THINK_END)])))
