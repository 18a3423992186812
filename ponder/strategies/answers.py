"""Answer extraction and normalisation, shared by every strategy.

`extract_answer` finds the final answer in a completion: the last `\\boxed{...}`,
else the text after the last "the answer is", else the last number. The
reasoning block (`<think>...</think>`) is ignored when a content part exists.
`normalize_answer` maps equivalent answers to one key so votes count together:
`1,000`, `1000.0` and ` $1000 ` all become `1000`.
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation, localcontext

_THINK_END = "</think>"
_ANSWER_IS = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_STRIP = " \t\n\r$,;:!*`'\""


def _boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, with nested braces."""
    start = text.rfind("\\boxed")
    while start != -1:
        i = text.find("{", start)
        if i != -1 and text[start + len("\\boxed") : i].strip() == "":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j]
                j += 1
        start = text.rfind("\\boxed", 0, start)
    return None


def answer_region(text: str) -> str:
    """The part of a completion that holds the answer: after `</think>` if present."""
    end = text.rfind(_THINK_END)
    if end != -1:
        tail = text[end + len(_THINK_END) :]
        if tail.strip():
            return tail
    return text


def extract_answer(text: str) -> str | None:
    """The final answer in a completion, or None when there is none."""
    region = answer_region(text).replace("<think>", " ").replace(_THINK_END, " ")
    boxed = _boxed(region)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    matches = list(_ANSWER_IS.finditer(region))
    if matches:
        line = matches[-1].group(1).splitlines()[0].strip(_STRIP).rstrip(".").strip(_STRIP)
        if line:
            return line
    numbers = _NUMBER.findall(region)
    if numbers:
        return numbers[-1]
    return None


_MAX_DIGITS = 100  # numbers beyond this many digits compare in scientific notation
_EXACT = Context(prec=4 * _MAX_DIGITS, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])


def normalize_answer(answer: str) -> str:
    """A canonical key for voting: numbers compare by value, text case-insensitively."""
    s = answer.strip(_STRIP).rstrip(".").strip(_STRIP)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\\(?:text|mathrm|textbf)\{([^}]*)\}", r"\1", s).strip()
    compact = s.replace(",", "").replace(" ", "")
    try:
        value = Decimal(compact)
    except InvalidOperation:
        return re.sub(r"\s+", " ", s).lower()
    if not value.is_finite():
        return compact.lower()
    with localcontext(_EXACT):
        if abs(value.adjusted()) > _MAX_DIGITS:  # 1e400, 1e-999999999: no expansion to a huge string
            return str(value.normalize())
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")


def answer_key(text: str) -> str | None:
    """Extract and normalise in one step; None when the completion has no answer."""
    found = extract_answer(text)
    return None if found is None else normalize_answer(found)
