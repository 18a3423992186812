"""Split a completion's `<think>…</think>` block from its answer, whole or as a stream.

A completion that starts (after whitespace) with `<think>` has reasoning up to
`</think>` and content after it; anything else is all content. Leading
whitespace of each part is dropped. The streaming splitter holds back only the
characters that could still become a tag, so deltas flow at token speed.
"""

from __future__ import annotations

from ponder.engine.tokenizer import THINK_END, THINK_START


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, content) of a whole completion."""
    splitter = ThinkSplitter()
    r1, c1 = splitter.feed(text)
    r2, c2 = splitter.flush()
    return r1 + r2, c1 + c2


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class ThinkSplitter:
    """Incremental splitter: feed text deltas, get (reasoning, content) deltas back."""

    def __init__(self, *, in_reasoning: bool = False) -> None:
        # state: "start" (no text seen), "think", "content"
        self._state = "think" if in_reasoning else "start"
        self._buf = ""
        self._lead_r = True
        self._lead_c = True

    @property
    def in_reasoning(self) -> bool:
        return self._state == "think"

    def _emit(self, reasoning: str, content: str) -> tuple[str, str]:
        if self._lead_r and reasoning:
            reasoning = reasoning.lstrip()
            self._lead_r = not reasoning
        if self._lead_c and content:
            content = content.lstrip()
            self._lead_c = not content
        return reasoning, content

    def feed(self, delta: str) -> tuple[str, str]:
        self._buf += delta
        reasoning, content = "", ""
        while self._buf:
            if self._state == "start":
                stripped = self._buf.lstrip()
                if not stripped:
                    return self._emit(reasoning, content)
                if stripped.startswith(THINK_START):
                    self._buf = stripped[len(THINK_START) :]
                    self._state = "think"
                elif THINK_START.startswith(stripped):
                    return self._emit(reasoning, content)  # could still be "<think>"
                else:
                    self._state = "content"
            elif self._state == "think":
                end = self._buf.find(THINK_END)
                if end != -1:
                    reasoning += self._buf[:end]
                    self._buf = self._buf[end + len(THINK_END) :]
                    self._state = "content"
                else:
                    keep = _partial_suffix(self._buf, THINK_END)
                    cut = len(self._buf) - keep
                    reasoning += self._buf[:cut]
                    self._buf = self._buf[cut:]
                    return self._emit(reasoning, content)
            else:
                content += self._buf
                self._buf = ""
        return self._emit(reasoning, content)

    def flush(self) -> tuple[str, str]:
        """Whatever is held back, at the end of the completion."""
        buf, self._buf = self._buf, ""
        if self._state == "think":
            return self._emit(buf, "")
        return self._emit("", buf)
