"""The ponder-tiny data generator, step labels, prompt parsing and held-out split."""

from __future__ import annotations

import random
import re

import pytest

from ponder.models.tiny_data import (
    DataConfig,
    heldout_problems,
    is_heldout,
    label_steps,
    make_examples,
    parse_problem,
    trace_for,
)
from ponder.models.tiny_prompts import problem_prompt, unreadable_prompt

BOXED = re.compile(r"\\boxed\{(\d+)\}")


@pytest.fixture(scope="module")
def examples():
    return make_examples(3000, seed=7)


def test_generator_is_deterministic():
    assert make_examples(200, seed=3) == make_examples(200, seed=3)
    assert make_examples(200, seed=3) != make_examples(200, seed=4)


def test_boxed_answer_is_true_sum(examples):
    for ex in examples:
        if ex.operands is None:
            assert ex.answer is None and "\\boxed" not in ex.completion
            continue
        assert ex.answer == sum(ex.operands)
        assert BOXED.findall(ex.completion) == [str(ex.answer)]
        assert ex.completion.startswith("<think>\n")
        assert "\n</think>\nThe answer is " in ex.completion


def test_step_spans_and_labels(examples):
    for ex in examples:
        for step in ex.steps:
            assert ex.completion[step.start : step.end] == step.text
            if step.kind not in ("answer", "reply"):
                assert ex.completion[step.end] == "\n"
            if step.kind == "slip":
                assert not step.correct
        for prev, step in zip(ex.steps, ex.steps[1:], strict=False):
            if step.kind == "correction":
                assert prev.kind == "slip"
        assert ex.steps[-1].correct  # the answer / reply of an LM trace is right


def test_generator_labels_match_label_steps(examples):
    for ex in make_examples(500, seed=11, cfg=DataConfig(negative=0.5)) + examples:
        ops = list(ex.operands) if ex.operands else None
        assert label_steps(ops, ex.completion) == ex.steps


def test_mix_rates(examples):
    sums = [ex for ex in examples if ex.kind == "sum"]
    unreadable = sum(ex.kind == "unreadable" for ex in examples) / len(examples)
    assert 0.02 < unreadable < 0.07
    verified = sum("Wait, let me check." in ex.completion for ex in sums) / len(sums)
    assert 0.15 < verified < 0.25
    fixed = sum(", not " in ex.completion and "So it is" in ex.completion for ex in sums)
    assert 0.07 < fixed / len(sums) < 0.13
    main = [s for ex in sums for s in _main_chain(ex.steps) if s.kind in ("sum", "slip")]
    corrected = sum(s.kind == "correction" for ex in sums for s in _main_chain(ex.steps))
    assert 0.1 < corrected / len(main) < 0.2


def _main_chain(steps):
    kinds = [s.kind for s in steps]
    return steps[: kinds.index("check_start")] if "check_start" in kinds else steps


def test_negative_traces_end_wrong():
    exs = make_examples(400, seed=5, cfg=DataConfig(negative=1.0, unreadable_rate=0.0))
    assert all(ex.kind == "negative" for ex in exs)
    wrong = [ex for ex in exs if not ex.steps[-1].correct]
    assert len(wrong) > 0.9 * len(exs)
    for ex in wrong:
        assert any(s.kind == "slip" for s in ex.steps)
    assert all(ex.kind != "negative" for ex in make_examples(500, seed=5))


def test_label_steps_correct_completion():
    text = "<think>\n58+27=85\n85+44=129\n</think>\nThe answer is \\boxed{129}.<|end|>"
    labels = label_steps([58, 27, 44], text)
    assert [(s.text, s.kind, s.correct) for s in labels] == [
        ("58+27=85", "sum", True),
        ("85+44=129", "sum", True),
        ("The answer is \\boxed{129}.", "answer", True),
    ]
    assert text[labels[0].end] == "\n"


def test_label_steps_uncorrected_slip():
    text = "<think>\n58+27=75\n75+44=119\n</think>\nThe answer is \\boxed{119}."
    labels = label_steps([58, 27, 44], text)
    assert [(s.kind, s.correct) for s in labels] == [
        ("slip", False), ("sum", False), ("answer", False)]


def test_label_steps_slip_corrected_and_check():
    text = (
        "<think>\n58+27=75\nwait, 58+27 is 85, not 75\n85+44=139\nWait, let me check.\n"
        "58+27=85\n85+44=129\nSo it is 129, not 139.\n</think>\nThe answer is \\boxed{129}."
    )
    kinds = [(s.kind, s.correct) for s in label_steps([58, 27, 44], text)]
    assert kinds == [
        ("slip", False), ("correction", True), ("slip", False), ("check_start", True),
        ("check", True), ("check", True), ("verdict", True), ("answer", True)]


def test_label_steps_garbage_and_truncated():
    labels = label_steps([58, 27], "<think>\nblah 7\n58+27=85</think>nonsense")
    assert [(s.kind, s.correct) for s in labels] == [
        ("other", False), ("sum", True), ("other", False)]
    cut = label_steps([58, 27, 44], "<think>\n58+27=85\n85+4")
    assert [(s.kind, s.correct) for s in cut] == [("sum", True), ("other", False)]
    assert label_steps([1, 2], "") == []
    skip = label_steps([10, 20, 30], "<think>\n10+20=30\n30+40=70\n</think>\n\\boxed{70}")
    assert [s.correct for s in skip] == [True, False, False]


def test_label_steps_unreadable():
    text = (
        "<think>\nI see no sum to work out.\n</think>\n"
        "I can only add whole numbers, for example: 58+27+44."
    )
    assert all(s.correct for s in label_steps(None, text))
    assert not any(s.correct for s in label_steps([1, 2], text))
    assert not label_steps(None, "<think>\n1+2=3\n</think>\n\\boxed{3}")[0].correct


@pytest.mark.parametrize(
    "text, expected",
    [
        ("58+27+44", [58, 27, 44]),
        ("What is 58 + 27 + 44?", [58, 27, 44]),
        ("Compute 58 plus 27 plus 44.", [58, 27, 44]),
        ("add 58, 27 and 44", [58, 27, 44]),
        ("  What is the sum of 12, 30, and 7?\n", [12, 30, 7]),
        ("ADD 10 AND 20", [10, 20]),
        ("58+27=", [58, 27]),
        ("hello", None),
        ("What is 12 times 7?", None),
        ("12*7", None),
        ("12 x 7", None),
        ("58-27", None),
        ("1.5 + 2", None),
        ("add 58", None),
        ("", None),
        ("add " + "word " * 60 + "1 and 2", None),
    ],
)
def test_parse_problem(text, expected):
    assert parse_problem(text) == expected


def test_every_phrasing_parses_back():
    rng = random.Random(0)
    for _ in range(3000):
        ops = tuple(rng.randint(10, 99) for _ in range(rng.randint(2, 5)))
        assert parse_problem(problem_prompt(rng, ops)) == list(ops)
    for _ in range(3000):
        assert parse_problem(unreadable_prompt(rng)) is None


def test_heldout_is_disjoint_from_training():
    held = heldout_problems(300, seed=0)
    assert len({p.operands for p in held}) == 300
    assert held == heldout_problems(300, seed=0)
    assert all(is_heldout(p.operands) and p.answer == sum(p.operands) for p in held)
    keys = {tuple(sorted(p.operands)) for p in held}
    for ex in make_examples(5000, seed=1):
        if ex.operands is not None:
            assert not is_heldout(ex.operands)
            assert tuple(sorted(ex.operands)) not in keys
    for p in held:
        assert parse_problem(p.messages[-1]["content"]) == list(p.operands)
        assert is_heldout(tuple(reversed(p.operands)))  # order does not matter


def test_trace_for_given_operands():
    rng = random.Random(0)
    for p in heldout_problems(50):
        text, steps = trace_for(rng, p.operands)
        assert BOXED.findall(text) == [str(p.answer)]
        assert label_steps(list(p.operands), text) == steps
        bad, _ = trace_for(rng, p.operands, negative=True)
        assert "\\boxed" in bad
