"""The `<think>` splitter, whole and streamed in every chunking."""

from __future__ import annotations

import pytest

from ponder.strategies.reasoning import ThinkSplitter, split_reasoning

CASES = [
    ("<think>\n1+2=3\n</think>\nThe answer is \\boxed{3}.", "1+2=3\n", "The answer is \\boxed{3}."),
    ("  <think>a</think>b", "a", "b"),
    ("no thinking here", "", "no thinking here"),
    ("<think>never closed", "never closed", ""),
    ("<thin", "", "<thin"),
    ("<think></think>", "", ""),
    ("answer with </think> inside", "", "answer with </think> inside"),
    ("<think>a</thi", "a</thi", ""),
    ("", "", ""),
]


@pytest.mark.parametrize(("text", "reasoning", "content"), CASES)
def test_whole(text: str, reasoning: str, content: str) -> None:
    assert split_reasoning(text) == (reasoning, content)


@pytest.mark.parametrize(("text", "reasoning", "content"), CASES)
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_streamed_in_chunks(text: str, reasoning: str, content: str, size: int) -> None:
    s = ThinkSplitter()
    r_all, c_all = "", ""
    for i in range(0, len(text), size):
        r, c = s.feed(text[i : i + size])
        r_all += r
        c_all += c
    r, c = s.flush()
    assert (r_all + r, c_all + c) == (reasoning, content)


def test_reasoning_flows_before_close() -> None:
    s = ThinkSplitter()
    assert s.feed("<think>") == ("", "")
    assert s.feed("12+") == ("12+", "")
    assert s.feed("3</") == ("3", "")  # "</" held back: could be "</think>"
    assert s.feed("think>ok") == ("", "ok")


def test_continuation_starts_in_reasoning() -> None:
    s = ThinkSplitter(in_reasoning=True)
    assert s.feed("Wait, check.</think>done") == ("Wait, check.", "done")
