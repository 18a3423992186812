"""User and system messages for `ponder-tiny`'s synthetic data.

`problem_prompt` phrases an addition many ways (`58+27+44`, `What is 58 + 27 +
44?`, `add 58, 27 and 44`, ...) with varied case and whitespace; `parse_problem`
reads every one of them back. `unreadable_prompt` makes messages that ask for no
sum (greetings, other questions, other operations, empty-ish text, random
characters, long text); `parse_problem` returns None for every one.
"""

from __future__ import annotations

import random
import string

from ponder.models.tiny_labels import MAX_PROMPT_CHARS, parse_problem

_SYSTEMS = (
    "You are a helpful assistant.",
    "You are Ponder, a careful reasoner.",
    "Think step by step.",
    "You are a calculator. Answer briefly.",
    "Show your work.",
    "You are a helpful math tutor.",
)


def _listing(rng: random.Random, nums: list[str]) -> str:
    """`58, 27 and 44` / `58, 27, 44` / `58 and 27 and 44` / `58 27 44`."""
    style = rng.randrange(4)
    if style == 0:
        return ", ".join(nums[:-1]) + rng.choice((" and ", ", and ")) + nums[-1]
    if style == 1:
        return ", ".join(nums)
    if style == 2:
        return " and ".join(nums)
    return " ".join(nums)


def _plus(rng: random.Random, nums: list[str]) -> str:
    return rng.choice(("+", " + ", " +", "+ ")).join(nums)


def problem_prompt(rng: random.Random, ops: tuple[int, ...] | list[int]) -> str:
    nums = [str(x) for x in ops]
    forms = (
        lambda: _plus(rng, nums),
        lambda: _plus(rng, nums) + rng.choice(("=", " =", "=?", " = ?")),
        lambda: f"What is {_plus(rng, nums)}?",
        lambda: f"what's {_plus(rng, nums)}",
        lambda: f"Compute {' plus '.join(nums)}.",
        lambda: f"What is {' plus '.join(nums)}?",
        lambda: f"Calculate {_plus(rng, nums)}",
        lambda: f"add {_listing(rng, nums)}",
        lambda: f"Please add {_listing(rng, nums)}.",
        lambda: f"What is the sum of {_listing(rng, nums)}?",
        lambda: f"Find the total of {_listing(rng, nums)}.",
        lambda: f"Add up {_listing(rng, nums)}.",
        lambda: f"sum {_listing(rng, nums)}",
        lambda: f"{_listing(rng, nums)}: what is the sum?",
    )
    text = rng.choice(forms)()
    r = rng.random()
    if r < 0.15:
        text = text.lower()
    elif r < 0.2:
        text = text.upper()
    elif r < 0.3:
        text = text[0].upper() + text[1:]
    return _whitespace(rng, text)


def _whitespace(rng: random.Random, text: str) -> str:
    if rng.random() < 0.1:
        text = text.replace(" ", "  ", 1)
    if rng.random() < 0.15:
        text = rng.choice((" ", "  ", "\n", "\t")) + text
    if rng.random() < 0.15:
        text = text + rng.choice((" ", "\n", "  ", " \n"))
    return text


def system_prompt(rng: random.Random) -> str:
    return rng.choice(_SYSTEMS)


_CHAT = (
    "hi", "Hello!", "hey there", "good morning", "Hi, who are you?", "thanks", "thank you!",
    "What is the capital of France?", "Tell me a joke.", "How are you?", "ok",
    "What's the weather like today?", "Write a poem about the sea.", "Who wrote Hamlet?",
    "Can you help me?", "what can you do", "Explain quantum physics.", "yes", "no",
    "Translate 'cat' into German.", "What is love?", "Summarize this article.", "bye",
    "What is a number?", "add", "sum", "plus", "Add them up.", "What is the sum?",
)
_EMPTY = ("", " ", "?", "...", "\n", "+", "hmm", "!", "  \n ", "=", "??", "0")
_WORDS = (
    "the quick brown fox jumps over lazy dog and then some river mountain city people water "
    "light house story music garden window morning evening little great small old new first "
    "last long short world time year day way thing man woman child"
)


def _operation(rng: random.Random) -> str:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    forms = (
        f"{a}*{b}", f"{a} * {b}", f"{a} x {b}", f"What is {a} times {b}?", f"{a}-{b}",
        f"What is {a} minus {b}?", f"{a}/{b}", f"Multiply {a} and {b}.", f"{a} divided by {b}",
        f"subtract {a} from {b}", f"What is {a} squared?", f"{a}^2", f"{a}.5 + {b}",
        f"What is the product of {a} and {b}?", f"{a}", f"add {a}", f"{a} {b}",
    )
    return rng.choice(forms)


def _random_chars(rng: random.Random) -> str:
    n = rng.randint(1, 40)
    if rng.random() < 0.5:
        return "".join(rng.choice(string.printable) for _ in range(n))
    ranges = ((0x00C0, 0x024F), (0x0391, 0x03C9), (0x0410, 0x044F), (0x4E00, 0x4FFF),
              (0x3040, 0x309F), (0x1F600, 0x1F64F), (0x2190, 0x21FF))
    lo, hi = rng.choice(ranges)
    return "".join(chr(rng.randint(lo, hi)) for _ in range(n))


def _long_text(rng: random.Random) -> str:
    words: list[str] = []
    while len(" ".join(words)) <= MAX_PROMPT_CHARS + rng.randint(10, 150):
        words.append(rng.choice(_WORDS.split()))
    return " ".join(words).capitalize() + "."


def unreadable_prompt(rng: random.Random) -> str:
    """A message that asks for no sum; `parse_problem` returns None for it."""
    while True:
        kind = rng.random()
        if kind < 0.35:
            text = rng.choice(_CHAT)
        elif kind < 0.6:
            text = _operation(rng)
        elif kind < 0.7:
            text = rng.choice(_EMPTY)
        elif kind < 0.9:
            text = _random_chars(rng)
        else:
            text = _long_text(rng)
        if parse_problem(text) is None:
            return text
