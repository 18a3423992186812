"""Prompt sets for the load tester: deterministic synthetic prompts or a JSONL file.

Synthetic prompts are random English words drawn from a fixed list with a
seeded RNG, so the same seed gives the same prompts on every machine and every
server; prompt i starts differently from prompt j, so requests do not share a
prefix by accident. Their length is set in tokens: the server's own tokenizer
is measured once (`calibrate`: a short and a long probe request asking for one
token, read `usage.prompt_tokens`, fit tokens = a + b * words), so no
tokenizer is needed on the client and the chat template's overhead is
included. Word lengths vary, so a prompt is within a few percent of its target.

A JSONL file has one object a line: `{"prompt": "..."}` or
`{"messages": [...]}`, optionally with `"max_tokens"`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_WORD_LIST = (
    "time year people way day man thing woman life child world school state family student group country problem "
    "hand part place case week company system program question work government number night point home water room "
    "mother area money story fact month lot right study book eye job word business issue side kind head house "
    "service friend father power hour game line end member law car city community name president team minute idea "
    "kid body information back parent face others level office door health person art war history party result "
    "change morning reason research girl guy moment air teacher force education river stone garden window bridge "
    "market letter music picture paper energy island forest winter summer answer number table light voice field "
    "simple quiet early bright heavy green small large strong quick careful gentle ancient modern silver golden "
    "walk carry build follow explain measure gather wonder travel improve remember consider describe discover"
)
_WORDS = _WORD_LIST.split()

# tokens per word when the server cannot be asked (BPE tokenizers on English text)
FALLBACK_TOKENS_PER_WORD = 1.3


@dataclass(frozen=True)
class Prompt:
    messages: tuple[dict[str, str], ...] | None = None
    text: str | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.text is None):
            raise ValueError("a prompt has either messages or text")

    def chat_messages(self) -> list[dict[str, str]]:
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.text or ""}]

    def completion_text(self) -> str:
        if self.text is not None:
            return self.text
        return "\n".join(m.get("content", "") for m in self.messages or ())


def words(count: int, rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(max(0, count)))


def synthetic_text(index: int, n_words: int, seed: int, suffix: str = "") -> str:
    """Prompt `index` of the set `seed`: `n_words` words (+ `suffix`), the same everywhere."""
    rng = random.Random(f"ponder-load:{seed}:{index}")
    body = words(n_words, rng)
    return f"{body}{suffix}"


@dataclass(frozen=True)
class Calibration:
    """prompt tokens ~= base + per_word * words (measured on the server, or assumed)."""

    base: float = 0.0
    per_word: float = FALLBACK_TOKENS_PER_WORD
    measured: bool = False

    def __post_init__(self) -> None:
        if self.per_word <= 0:
            raise ValueError("per_word must be > 0")

    def words_for(self, tokens: int) -> int:
        return max(1, round((tokens - self.base) / self.per_word))

    @classmethod
    def fit(cls, points: list[tuple[int, int]]) -> Calibration:
        """From (words, prompt tokens) probes; needs two different word counts."""
        (w1, t1), (w2, t2) = points[0], points[-1]
        if w1 == w2 or t2 <= t1:
            return cls()
        per_word = (t2 - t1) / (w2 - w1)
        return cls(base=t1 - per_word * w1, per_word=per_word, measured=True)


PROBE_SMALL = 16  # words
PROBE_LARGE = (256, 128, 64)  # words, tried in turn until one fits the model's context


def probe_prompt(n_words: int, seed: int) -> Prompt:
    """A calibration probe (from a set no real prompt uses)."""
    return Prompt(text=synthetic_text(n_words, n_words, seed=-1 - seed))


def synthetic_prompts(
    count: int,
    input_len: int,
    calibration: Calibration,
    *,
    seed: int = 0,
    suffix: str = "",
    max_tokens: int | None = None,
    start: int = 0,
) -> list[Prompt]:
    """`count` prompts of about `input_len` tokens each (prompts `start` .. `start+count-1` of set `seed`)."""
    if count < 1 or input_len < 1:
        raise ValueError("count and input_len must be >= 1")
    n_words = calibration.words_for(input_len)
    indices = range(start, start + count)
    return [Prompt(text=synthetic_text(i, n_words, seed, suffix), max_tokens=max_tokens) for i in indices]


def warmup_prompts(count: int) -> list[Prompt]:
    """Short prompts of their own set (seed -1000), so warm-up leaves nothing a measured prompt could hit."""
    return [Prompt(text=synthetic_text(i, 32, seed=-1000)) for i in range(count)]


def _prompt_from(obj: Any, where: str) -> Prompt:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object")
    max_tokens = obj.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"{where}: max_tokens must be a positive integer")
    if isinstance(obj.get("messages"), list):
        msgs = obj["messages"]
        if not msgs or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
            raise ValueError(f"{where}: messages must be objects with string content")
        return Prompt(messages=tuple({"role": str(m.get("role", "user")), "content": m["content"]} for m in msgs),
                      max_tokens=max_tokens)
    if isinstance(obj.get("prompt"), str):
        return Prompt(text=obj["prompt"], max_tokens=max_tokens)
    raise ValueError(f"{where}: needs a string 'prompt' or a list 'messages'")


def load_jsonl(path: str | Path) -> list[Prompt]:
    prompts = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
        prompts.append(_prompt_from(obj, f"{path}:{n}"))
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts
