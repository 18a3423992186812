"""Step lines of `ponder-tiny` completions, and labels for any completion.

A completion looks like

    <think>
    58+27=75
    wait, 58+27 is 85, not 75
    85+44=129
    Wait, let me check.
    58+27=85
    85+44=129
    Yes, 129.
    </think>
    The answer is \\boxed{129}.

Each non-empty line is a step. `StepLabel.start/end` is its character span in
the completion (`completion[start:end] == text`); inside the think block the
character at `end` is the newline that ends the step (the "step-end token" a
process reward model scores). Kinds:

    sum         running-sum line `a+b=c` with right arithmetic
    slip        a sum line with wrong arithmetic (always incorrect)
    correction  `wait, a+b is c, not d`, fixing the line before it
    check_start `Wait, let me check.` (or `... check again.`), restarts the chain
    check       a sum line after a check_start, right arithmetic
    verdict     `Yes, N.` or `So it is N, not M.` closing a check
    refusal     `I see no sum to work out.` (think) for unreadable prompts
    answer      the line with `\\boxed{N}` after `</think>`
    reply       the refusal reply after `</think>`
    other       anything else (always incorrect)

`correct` means the line is true *about the problem*: a sum line is correct
only if it adds the next operand to the true running sum and gets it right,
so lines that carry an earlier uncorrected slip forward are incorrect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK = "<think>"
THINK_END = "</think>"
END = "<|end|>"

CHECK_LINE = "Wait, let me check."
CHECK_AGAIN_LINE = "Wait, let me check again."
REFUSAL_THOUGHT = "I see no sum to work out."
REFUSAL_REPLY = "I can only add whole numbers, for example: 58+27+44."


def sum_line(a: int, b: int, c: int) -> str:
    return f"{a}+{b}={c}"


def correction_line(a: int, b: int, right: int, wrong: int) -> str:
    return f"wait, {a}+{b} is {right}, not {wrong}"


def verdict_line(total: int, previous: int) -> str:
    return f"Yes, {total}." if total == previous else f"So it is {total}, not {previous}."


def answer_line(total: int) -> str:
    return f"The answer is \\boxed{{{total}}}."


@dataclass(frozen=True)
class StepLabel:
    text: str
    start: int
    end: int
    kind: str
    correct: bool


_SUM = re.compile(r"(\d+)\s*\+\s*(\d+)\s*=\s*(\d+)")
_CORRECTION = re.compile(r"wait,\s*(\d+)\s*\+\s*(\d+) is (\d+), not (\d+)\.?", re.IGNORECASE)
_CHECK = re.compile(r"wait, let me check( again)?\.", re.IGNORECASE)
_YES = re.compile(r"yes, (\d+)\.", re.IGNORECASE)
_FIX = re.compile(r"so it is (\d+), not (\d+)\.", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{\s*(\d+)\s*\}")
_SPLIT = re.compile(r"<think>|</think>|\n")

# Whole-number addition requests: what `parse_problem` accepts.
_ADD_CUE = re.compile(r"\+|\b(plus|add|added|adding|sum|total)\b")
_OTHER_OP = re.compile(
    r"[*×÷/^%\-]|\d\s*x\s*\d|\d\.\d"
    r"|\b(times|multiply|multiplied|product|minus|subtract|subtracted|divide|divided|squared"
    r"|power|root|mod)\b"
)
_NUMBER = re.compile(r"\d+")
MAX_PROMPT_CHARS = 200


def parse_problem(user_text: str) -> list[int] | None:
    """The whole numbers a user message asks to add, or None if it asks no such thing.

    It needs an addition cue (`+`, plus, add, sum, total), at least two numbers,
    no other operation, no decimals, and at most 200 characters.
    """
    text = user_text.strip().lower()
    if not text or len(text) > MAX_PROMPT_CHARS:
        return None
    if not _ADD_CUE.search(text) or _OTHER_OP.search(text):
        return None
    numbers = [int(n) for n in _NUMBER.findall(text)]
    return numbers if len(numbers) >= 2 else None


def _segments(text: str) -> list[tuple[str, int, int]]:
    """(stripped piece, start, end) between newlines and think tags, plus the tags."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    for m in [*_SPLIT.finditer(text), None]:
        stop = m.start() if m else len(text)
        piece = text[pos:stop]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append((piece.strip(), pos + lead, pos + lead + len(piece.strip())))
        if m and m.group() != "\n":
            out.append((m.group(), m.start(), m.end()))
        pos = m.end() if m else len(text)
    return out


class _Chain:
    """Where a reasoning chain is in the problem: `pos` operands consumed so far."""

    def __init__(self, operands: list[int] | None) -> None:
        self.ops = operands or []
        self.prefix = [sum(self.ops[:k]) for k in range(len(self.ops) + 1)]
        self.pos = 1
        self.in_check = False

    def add(self, a: int, b: int, c: int) -> tuple[str, bool]:
        if len(self.ops) >= 2 and (a, b) == (self.ops[0], self.ops[1]) and self.pos != 1:
            self.pos = 1  # a fresh chain (e.g. a check that forgot its header)
        ok = self._right_at(self.pos, a, b, c)
        self.pos += 1
        kind = "slip" if a + b != c else ("check" if self.in_check else "sum")
        return kind, ok

    def correct(self, a: int, b: int, c: int) -> bool:
        """Whether `a+b is c` rightly redoes the line before."""
        return self._right_at(self.pos - 1, a, b, c)

    def _right_at(self, j: int, a: int, b: int, c: int) -> bool:
        """Whether `a+b=c` adds operand j to the true running sum, rightly."""
        if not 1 <= j < len(self.ops):
            return False
        return (a, b, c) == (self.prefix[j], self.ops[j], self.prefix[j + 1])

    def restart(self) -> None:
        self.pos, self.in_check = 1, True


def _think_step(line: str, chain: _Chain, total: int | None) -> tuple[str, bool]:
    if m := _CORRECTION.fullmatch(line):
        a, b, c, _ = map(int, m.groups())
        return "correction", chain.correct(a, b, c)
    if _CHECK.fullmatch(line):
        chain.restart()
        return "check_start", total is not None
    if m := _SUM.fullmatch(line):
        a, b, c = map(int, m.groups())
        return chain.add(a, b, c)
    if m := _YES.fullmatch(line):
        return "verdict", int(m.group(1)) == total
    if m := _FIX.fullmatch(line):
        return "verdict", int(m.group(1)) == total
    if line == REFUSAL_THOUGHT:
        return "refusal", total is None
    return "other", False


def _answer_step(line: str, total: int | None) -> tuple[str, bool]:
    if m := _BOXED.search(line):
        return "answer", int(m.group(1)) == total
    if line == REFUSAL_REPLY:
        return "reply", total is None
    return "other", False


def label_steps(problem_operands: list[int] | None, completion_text: str) -> list[StepLabel]:
    """Label every step line of any completion against the problem.

    `problem_operands` is None (or has fewer than two numbers) for an unreadable
    prompt, where only the refusal is correct. Text after `<|end|>` is ignored.
    A completion without `<think>` is read as all answer; one with `<think>` but
    no `</think>` (cut off) as all thinking.
    """
    text = completion_text.split(END, 1)[0]
    ops = list(problem_operands) if problem_operands and len(problem_operands) >= 2 else None
    total = sum(ops) if ops else None
    chain = _Chain(ops)
    phase = "think" if THINK in text else "answer"
    labels: list[StepLabel] = []
    for piece, start, end in _segments(text):
        if piece == THINK:
            phase = "think"
            continue
        if piece == THINK_END:
            phase = "answer"
            continue
        if phase == "think":
            kind, ok = _think_step(piece, chain, total)
        else:
            kind, ok = _answer_step(piece, total)
        labels.append(StepLabel(piece, start, end, kind, ok))
    return labels
