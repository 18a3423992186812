"""Training and evaluation records for the process reward model.

A `Record` is one (prompt, completion) pair in ponder-tiny token ids with the
step-end positions of the completion (`prm_model.step_ends`) and one 0/1 label
per step from `tiny_labels.label_steps` (the i-th label goes to the i-th step
end: both split lines the same way). Sources:

- generator traces (`tiny_data`): clean traces with corrected slips and check
  passes, and negative traces whose slips stay uncorrected (`negative` share);
- on-policy traces: ponder-tiny's own samples (`policy.sample`), labelled by
  `label_steps`, so the PRM sees the mistakes the model really makes;
- held-out versions of both on `heldout_problems` (never in training).

Each record also carries dense digit targets for an auxiliary training loss:
for every result digit of a sum line `a+b=c` (and of `c` in a correction
`wait, a+b is c, not d`), whether `c` so far agrees with the digits of a+b. A
wrong step is then visible at the very digit that slips, which teaches the
backbone to check arithmetic far faster than the step labels alone.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2

from ponder.models import tiny_data
from ponder.models.tiny_data import DataConfig, Example, heldout_problems, make_example
from ponder.models.tiny_labels import label_steps
from ponder.models.tiny_tokenizer import CHAT_TEMPLATE, build_tokenizer
from ponder.rewards.steps import SEPARATORS, completion_ids, step_ends

_TEMPLATE = jinja2.Environment().from_string(CHAT_TEMPLATE)
_SUM = re.compile(r"\s*(\d+)\s*\+\s*(\d+)\s*=\s*(\d+)\s*")
_CORRECTION = re.compile(r"\s*wait,\s*(\d+)\s*\+\s*(\d+) is (\d+), not \d+\.?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Record:
    prompt: tuple[int, ...]
    completion: tuple[int, ...]  # cut at <|end|>
    steps: tuple[int, ...]  # step-end positions, relative to the completion
    labels: tuple[float, ...]  # 1.0: step correct
    operands: tuple[int, ...] | None
    source: str  # "gen", "neg" (generator negative) or "policy"
    lm: bool = False  # also an LM target (clean generator traces only)
    text: str = ""
    digits: tuple[int, ...] = ()  # result-digit positions, relative to the completion
    digit_labels: tuple[float, ...] = ()  # 1.0: the result agrees with a+b up to this digit


def digit_targets(completion: Sequence[int]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Result-digit positions of sum and correction lines, and whether each digit prefix is right."""
    positions: list[int] = []
    labels: list[float] = []
    start = 0
    for i in range(len(completion) + 1):
        if i < len(completion) and completion[i] not in SEPARATORS:
            continue
        line = completion[start:i]
        if line and max(line) < 128:  # ASCII bytes: char offset == token offset
            text = bytes(line).decode("ascii")
            m = _SUM.fullmatch(text) or _CORRECTION.fullmatch(text)
            if m:
                want, got = str(int(m.group(1)) + int(m.group(2))), m.group(3)
                for j in range(len(got)):
                    positions.append(start + m.start(3) + j)
                    labels.append(float(want[: j + 1] == got[: j + 1]))
        start = i + 1
    return tuple(positions), tuple(labels)


@dataclass(frozen=True)
class Prompt:
    """A problem to sample the policy on: chat messages and its operands."""

    messages: list[dict[str, str]]
    operands: tuple[int, ...] | None


class Encoder:
    def __init__(self) -> None:
        self.tok = build_tokenizer()

    def prompt(self, messages: list[dict[str, str]]) -> list[int]:
        text = _TEMPLATE.render(messages=messages, add_generation_prompt=True)
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def text(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tok.decode(list(ids), skip_special_tokens=True))


def make_record(prompt: Sequence[int], completion: Sequence[int], text: str, operands: Sequence[int] | None,
                source: str, lm: bool = False) -> Record | None:
    """Label a completion; None when labels and step ends disagree (e.g. odd bytes)."""
    comp = completion_ids(completion)
    ends = step_ends(comp)
    labels = label_steps(list(operands) if operands else None, text)
    if len(labels) != len(ends) or not ends:
        return None
    ops = tuple(operands) if operands else None
    digits, digit_labels = digit_targets(comp)
    return Record(tuple(prompt), tuple(comp), tuple(ends), tuple(float(s.correct) for s in labels), ops,
                  source, lm, text, digits, digit_labels)


def _from_example(enc: Encoder, ex: Example) -> Record | None:
    source = "neg" if ex.kind == "negative" else "gen"
    return make_record(enc.prompt(ex.messages), enc.text(ex.completion), ex.completion, ex.operands,
                       source, lm=source == "gen")


def generator_records(n: int, seed: int, negative: float) -> list[Record]:
    """`n` generator traces (training problems only), a `negative` share of them negative."""
    enc, rng = Encoder(), random.Random(f"prm-gen-{seed}")
    cfg = DataConfig(negative=negative)
    out = [_from_example(enc, make_example(rng, cfg)) for _ in range(n)]
    return [r for r in out if r is not None]


def heldout_generator_records(n: int, seed: int, negative: float = 0.5) -> list[Record]:
    """Generator traces for `n` held-out problems (problems no training record has)."""
    enc, rng, cfg = Encoder(), random.Random(f"prm-heldout-{seed}"), DataConfig()
    out: list[Record] = []
    for p in heldout_problems(n, seed=seed):
        neg = rng.random() < negative
        # tiny_data builds traces for given operands only in this private helper
        trace, _ = tiny_data._problem_trace(rng, p.operands, cfg, neg)
        rec = make_record(enc.prompt(p.messages), enc.text(trace.text), trace.text, p.operands,
                          "neg" if neg else "gen")
        if rec is not None:
            out.append(rec)
    return out


def training_prompts(n: int, seed: int) -> list[Prompt]:
    """`n` readable training problems (varied phrasing, system prompts) to sample the policy on."""
    rng = random.Random(f"prm-prompts-{seed}")
    cfg = DataConfig(unreadable_rate=0.0)
    return [Prompt(ex.messages, ex.operands) for ex in (make_example(rng, cfg) for _ in range(n))]


def heldout_prompts(n: int, seed: int) -> list[Prompt]:
    return [Prompt(p.messages, p.operands) for p in heldout_problems(n, seed=seed)]


def summary(records: Sequence[Record]) -> str:
    steps = sum(len(r.labels) for r in records)
    good = sum(sum(r.labels) for r in records)
    by = {s: sum(r.source == s for r in records) for s in ("gen", "neg", "policy")}
    parts = ", ".join(f"{k} {v}" for k, v in by.items() if v)
    return f"{len(records)} traces ({parts}), {steps} steps, {good / max(1, steps):.1%} correct"
