"""The search tree under `mcts`: nodes are reasoning steps, UCT selection, back-propagation.

A node holds one step's token ids (a line of reasoning ending with the
delimiter); the path from the root is the prefix the engine continues.
Values are in [0, 1] (reward-model probabilities or vote shares), so UCT's
exploration constant means the same for every value source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ponder.engine.base import TokenLogprob


@dataclass(eq=False)
class Node:
    id: int
    parent: Node | None
    ids: list[int]
    text: str
    depth: int
    logprobs: list[TokenLogprob] | None = None
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    terminal: bool = False
    answer: str | None = None

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    def path(self) -> list[Node]:
        nodes: list[Node] = []
        node: Node | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def path_ids(self) -> list[int]:
        return [t for n in self.path() for t in n.ids]

    def path_text(self) -> str:
        return "".join(n.text for n in self.path())

    def path_logprobs(self) -> list[TokenLogprob]:
        return [lp for n in self.path() for lp in (n.logprobs or [])]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent.id if self.parent else None,
            "depth": self.depth,
            "step": self.text[:80],
            "visits": self.visits,
            "value": round(self.q, 4),
            "terminal": self.terminal,
            "answer": self.answer,
        }


class Tree:
    def __init__(self, root_ids: list[int], root_text: str) -> None:
        self.root = Node(0, None, root_ids, root_text, 0)
        self.nodes = [self.root]

    def add(self, parent: Node, ids: list[int], text: str, logprobs: list[TokenLogprob] | None) -> Node:
        for child in parent.children:  # the same step sampled twice is one node
            if child.ids == ids:
                return child
        node = Node(len(self.nodes), parent, ids, text, parent.depth + 1, logprobs)
        parent.children.append(node)
        self.nodes.append(node)
        return node

    def select(self, c_uct: float) -> Node:
        """Descend by UCT to a node to expand (a leaf) or re-value (a terminal)."""
        node = self.root
        while node.children and not node.terminal:
            fresh = [c for c in node.children if c.visits == 0]
            if fresh:
                return fresh[0]
            log_n = math.log(max(1, node.visits))
            node = max(node.children, key=lambda c: c.q + c_uct * math.sqrt(log_n / c.visits))
        return node

    @staticmethod
    def backprop(node: Node, value: float) -> list[Node]:
        touched = []
        cur: Node | None = node
        while cur is not None:
            cur.visits += 1
            cur.value_sum += value
            touched.append(cur)
            cur = cur.parent
        return touched

    def terminals(self) -> list[Node]:
        return [n for n in self.nodes if n.terminal]

    def best_terminal(self) -> Node | None:
        ends = self.terminals()
        return max(ends, key=lambda n: (n.q, n.visits, -n.id)) if ends else None

    def most_visited_leaf(self) -> Node:
        node = self.root
        while node.children:
            node = max(node.children, key=lambda c: (c.visits, c.q, -c.id))
        return node
