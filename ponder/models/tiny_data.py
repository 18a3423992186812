"""Synthetic training data for `ponder-tiny`: multi-digit addition with reflection.

Every record is deterministic given its `random.Random`. A record holds the chat
`messages`, the assistant `completion` (text without the final `<|end|>`), the
true `answer` (None for unreadable prompts), the problem `operands` and the
per-step labels (see `tiny_labels`), e.g.

    <think>
    58+27=75
    wait, 58+27 is 85, not 75
    85+44=129
    </think>
    The answer is \\boxed{129}.

Mix (defaults): ~15% of sum steps are a slip followed by a correction line; ~20%
of traces end thinking with a `Wait, let me check.` pass that recomputes the sum,
and in ~50% of those the main chain holds one UNcorrected slip that the check
catches (`So it is 129, not 139.`); check passes themselves do not slip; ~4% of prompts are unreadable and get a short
refusal. `negative` > 0 adds traces whose slips are never fixed and whose answer
is wrong -- for process-reward-model training only, never for the LM.

Held-out problems (`heldout_problems`) are those whose sorted operand tuple
hashes into a 1-in-10 bucket; the training generator never emits them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace

from ponder.models.tiny_labels import (
    CHECK_AGAIN_LINE,
    CHECK_LINE,
    REFUSAL_REPLY,
    REFUSAL_THOUGHT,
    THINK,
    THINK_END,
    StepLabel,
    answer_line,
    correction_line,
    label_steps,
    parse_problem,
    sum_line,
    verdict_line,
)
from ponder.models.tiny_prompts import problem_prompt, system_prompt, unreadable_prompt

__all__ = [
    "DataConfig", "Example", "Problem", "StepLabel", "heldout_problems", "is_heldout",
    "label_steps", "make_example", "make_examples", "parse_problem", "sample_operands", "trace_for",
]


@dataclass(frozen=True)
class DataConfig:
    min_operands: int = 2
    max_operands: int = 5
    slip_rate: float = 0.15  # per sum step: a wrong sum followed by a correction
    check_slip_rate: float = 0.0  # the same inside a check pass: checks are careful
    verify_rate: float = 0.20  # traces that end thinking with a check pass
    fix_rate: float = 0.50  # of verified traces: an uncorrected slip the check fixes
    again_rate: float = 0.25  # of verified traces: a second check pass
    unreadable_rate: float = 0.04
    system_rate: float = 0.20
    history_rate: float = 0.05  # an earlier user/assistant exchange before the question
    negative: float = 0.0  # PRM only: traces with unfixed slips and a wrong answer

    def __post_init__(self) -> None:
        if not 2 <= self.min_operands <= self.max_operands:
            raise ValueError("need 2 <= min_operands <= max_operands")
        rates = (self.slip_rate, self.check_slip_rate, self.verify_rate, self.fix_rate, self.again_rate,
                 self.unreadable_rate, self.system_rate, self.history_rate, self.negative)
        if not all(0.0 <= r <= 1.0 for r in rates):
            raise ValueError("rates must lie in [0, 1]")


@dataclass(frozen=True)
class Problem:
    operands: tuple[int, ...]
    messages: list[dict[str, str]]
    answer: int


@dataclass(frozen=True)
class Example:
    messages: list[dict[str, str]]
    completion: str
    answer: int | None
    operands: tuple[int, ...] | None
    steps: list[StepLabel] = field(default_factory=list)
    kind: str = "sum"  # "sum", "unreadable" or "negative"


def is_heldout(operands: tuple[int, ...] | list[int]) -> bool:
    key = ",".join(str(x) for x in sorted(operands)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % 10 == 0


def sample_operands(rng: random.Random, cfg: DataConfig) -> tuple[int, ...]:
    n = rng.randint(cfg.min_operands, cfg.max_operands)
    return tuple(rng.randint(10, 99) for _ in range(n))


def _slip(rng: random.Random, right: int) -> int:
    """A plausible wrong sum: a carry or digit mistake."""
    while True:
        wrong = right + rng.choice((-20, -11, -10, -9, -2, -1, 1, 2, 9, 10, 11, 20))
        if wrong > 0:
            return wrong


class _Trace:
    """Builds a completion line by line, recording each step's span and label."""

    def __init__(self) -> None:
        self.text = THINK + "\n"
        self.steps: list[StepLabel] = []

    def line(self, text: str, kind: str, correct: bool, newline: bool = True) -> None:
        start = len(self.text)
        self.text += text + ("\n" if newline else "")
        self.steps.append(StepLabel(text, start, start + len(text), kind, correct))

    def raw(self, text: str) -> None:
        self.text += text


def _chain(tr: _Trace, rng: random.Random, ops: tuple[int, ...], cfg: DataConfig,
           unfixed: set[int], in_check: bool) -> int:
    """Write the running sums; steps in `unfixed` slip without correction. Returns the result."""
    value = ops[0]
    for j in range(1, len(ops)):
        right = value + ops[j]
        on_track = value == sum(ops[:j])  # two unfixed slips may cancel out
        if j in unfixed:
            wrong = _slip(rng, right)
            tr.line(sum_line(value, ops[j], wrong), "slip", False)
            value = wrong
            continue
        if rng.random() < cfg.slip_rate:
            wrong = _slip(rng, right)
            tr.line(sum_line(value, ops[j], wrong), "slip", False)
            tr.line(correction_line(value, ops[j], right, wrong), "correction", on_track)
        else:
            tr.line(sum_line(value, ops[j], right), "check" if in_check else "sum", on_track)
        value = right
    return value


def _problem_trace(rng: random.Random, ops: tuple[int, ...], cfg: DataConfig,
                   negative: bool) -> tuple[_Trace, int]:
    """The thinking and answer for one problem; returns the trace and its boxed answer."""
    total = sum(ops)
    tr = _Trace()
    n_steps = len(ops) - 1
    verify = rng.random() < cfg.verify_rate
    unfixed: set[int] = set()
    if negative:
        unfixed = set(rng.sample(range(1, len(ops)), k=min(n_steps, rng.choice((1, 1, 2)))))
    elif verify and rng.random() < cfg.fix_rate:
        unfixed = {rng.randint(1, n_steps)}
    value = _chain(tr, rng, ops, cfg, unfixed, in_check=False)
    if negative:
        if rng.random() < 0.3:  # a check that slips where the chain did, so it fails too
            tr.line(CHECK_LINE, "check_start", True)
            again = _chain(tr, rng, ops, DataConfig(slip_rate=0.0), unfixed, in_check=True)
            tr.line(verdict_line(again, value), "verdict", again == total)
    elif verify:
        careful = replace(cfg, slip_rate=cfg.check_slip_rate)
        tr.line(CHECK_LINE, "check_start", True)
        checked = _chain(tr, rng, ops, careful, set(), in_check=True)
        tr.line(verdict_line(checked, value), "verdict", True)
        value = checked
        if rng.random() < cfg.again_rate:
            tr.line(CHECK_AGAIN_LINE, "check_start", True)
            _chain(tr, rng, ops, careful, set(), in_check=True)
            tr.line(verdict_line(total, total), "verdict", True)
    tr.raw(THINK_END + "\n")
    tr.line(answer_line(value), "answer", value == total, newline=False)
    return tr, value


def _refusal() -> _Trace:
    tr = _Trace()
    tr.line(REFUSAL_THOUGHT, "refusal", True)
    tr.raw(THINK_END + "\n")
    tr.line(REFUSAL_REPLY, "reply", True, newline=False)
    return tr


def _messages(rng: random.Random, user: str, cfg: DataConfig) -> list[dict[str, str]]:
    msgs: list[dict[str, str]] = []
    if rng.random() < cfg.system_rate:
        msgs.append({"role": rng.choice(("system", "system", "developer")),
                     "content": system_prompt(rng)})
    if rng.random() < cfg.history_rate:
        ops = _training_operands(rng, cfg)
        msgs.append({"role": "user", "content": problem_prompt(rng, ops)})
        msgs.append({"role": "assistant", "content": answer_line(sum(ops))})
    msgs.append({"role": "user", "content": user})
    return msgs


def _training_operands(rng: random.Random, cfg: DataConfig) -> tuple[int, ...]:
    while True:
        ops = sample_operands(rng, cfg)
        if not is_heldout(ops):
            return ops


def make_example(rng: random.Random, cfg: DataConfig | None = None) -> Example:
    """One training record (never a held-out problem)."""
    cfg = cfg or DataConfig()
    if rng.random() < cfg.unreadable_rate:
        user = unreadable_prompt(rng)
        tr = _refusal()
        return Example(_messages(rng, user, cfg), tr.text, None, None, tr.steps, "unreadable")
    ops = _training_operands(rng, cfg)
    negative = rng.random() < cfg.negative
    user = problem_prompt(rng, ops)
    tr, _ = _problem_trace(rng, ops, cfg, negative)
    kind = "negative" if negative else "sum"
    return Example(_messages(rng, user, cfg), tr.text, sum(ops), ops, tr.steps, kind)


def trace_for(
    rng: random.Random, operands: tuple[int, ...], cfg: DataConfig | None = None, negative: bool = False
) -> tuple[str, list[StepLabel]]:
    """A completion and its step labels for given operands (e.g. a held-out problem)."""
    tr, _ = _problem_trace(rng, tuple(operands), cfg or DataConfig(), negative)
    return tr.text, tr.steps


def make_examples(n: int, seed: int = 0, cfg: DataConfig | None = None) -> list[Example]:
    rng = random.Random(seed)
    return [make_example(rng, cfg) for _ in range(n)]


def heldout_problems(n: int, seed: int = 0, cfg: DataConfig | None = None) -> list[Problem]:
    """`n` distinct problems no training record can contain, with varied phrasing."""
    cfg = cfg or DataConfig()
    rng = random.Random(f"heldout-{seed}")
    seen: set[tuple[int, ...]] = set()
    out: list[Problem] = []
    while len(out) < n:
        ops = sample_operands(rng, cfg)
        if is_heldout(ops) and ops not in seen:
            seen.add(ops)
            msgs = [{"role": "user", "content": problem_prompt(rng, ops)}]
            out.append(Problem(ops, msgs, sum(ops)))
    return out
