"""Vote tallies shared by `majority_vote` (counts or weights) and `best_of_n` (weighted mode).

Ties are broken deterministically: larger total weight, then more votes,
then the answer that appeared first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Tally:
    answer: str
    votes: int = 0
    weight: float = 0.0
    first: int = 0  # index of the first sample giving this answer


def tally(items: Iterable[tuple[int, str | None, float]]) -> list[Tally]:
    """Rank answers from (sample index, answer key, weight); None answers do not vote."""
    table: dict[str, Tally] = {}
    for index, answer, weight in items:
        if answer is None:
            continue
        t = table.get(answer)
        if t is None:
            t = table[answer] = Tally(answer, first=index)
        t.votes += 1
        t.weight += weight
        t.first = min(t.first, index)
    return sorted(table.values(), key=lambda t: (-t.weight, -t.votes, t.first))


def agreement(ranked: list[Tally]) -> float:
    """Share of the voting weight the leading answer holds (0 when nobody voted)."""
    total = sum(t.weight for t in ranked)
    return ranked[0].weight / total if ranked and total > 0 else 0.0
