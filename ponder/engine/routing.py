"""Replica choice for the remote engine: least-loaded, with prompt-prefix affinity.

Pure logic (no I/O), so it is unit-tested on its own (`tests/test_routing.py`).

How a request is placed (`Router.choose(prompt, loads)`; `loads` maps each LIVE
replica to its in-flight request count):

1. Affinity. Prompts are cut into blocks of `block_tokens` tokens and each full
   block gets a chained hash (block i's hash covers tokens [0, (i+1)*B)), the
   way vLLM names its prefix-cache blocks. `record(replica, tokens)` remembers,
   for every block hash of a prompt (and of each generated continuation), the
   replica that computed it. A new prompt takes the replica holding its longest
   remembered prefix when that prefix covers at least `min_match_ratio` of the
   prompt: the samples of one Best-of-N, the nodes and rollouts of one MCTS
   tree (each prompt extends an earlier one) and the turns of one conversation
   land where their KV blocks are cached. A short common head (a chat template,
   a one-line system prompt) is below the ratio and does not pin traffic.
2. Saturation. Affinity yields to load: when the affine replica has `slack` or
   more requests in flight beyond the least-loaded live replica, the request
   goes by load instead (and later requests of the same prefix follow it there,
   since the table keeps the most recent placement).
3. Load. Otherwise the least-loaded replica; ties are broken by a rendezvous
   hash of the prompt's first `hash_tokens` tokens, so the same new prompt
   goes to the same replica from every front end, and different prompts spread
   evenly. With affinity off, ties are broken round-robin (a plain balancer).

The table is an LRU of at most `table_size` block hashes. `forget(replica)`
drops a replica's entries when it goes down: a restarted vLLM has a cold cache.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RoutingConfig:
    affinity: bool = True
    block_tokens: int = 16  # vLLM's default KV block on GPUs; a multiple of it works as well
    min_match_ratio: float = 0.5  # remembered prefix / prompt length needed for affinity
    slack: int = 4  # affinity yields when the affine replica has this many more in flight than the least loaded
    hash_tokens: int = 256  # tokens of the prompt head hashed to break load ties
    table_size: int = 1 << 17  # remembered block hashes (about 100 bytes each)

    def __post_init__(self) -> None:
        if self.block_tokens < 1:
            raise ValueError("block_tokens must be >= 1")
        if not 0 < self.min_match_ratio <= 1:
            raise ValueError("min_match_ratio must be in (0, 1]")
        if self.slack < 1:
            raise ValueError("slack must be >= 1")
        if self.hash_tokens < 1:
            raise ValueError("hash_tokens must be >= 1")
        if self.table_size < 1:
            raise ValueError("table_size must be >= 1")


@dataclass(frozen=True)
class Decision:
    replica: str
    reason: str  # affinity | least_loaded | saturated (affinity yielded to load)
    matched_tokens: int = 0


class NoReplica(LookupError):
    """No live replica to send a request to."""


def block_hashes(tokens: Sequence[int], block: int) -> list[int]:
    """Chained hashes of the full `block`-token blocks of `tokens` (hashes of int tuples are stable across runs)."""
    out: list[int] = []
    h = 0
    for start in range(0, len(tokens) - block + 1, block):
        h = hash((h, tuple(tokens[start : start + block])))
        out.append(h)
    return out


def _weight(key: int, replica: str) -> bytes:
    # blake2b, not hash(): str hashes are salted per process and tuple hashes are not uniform enough
    return hashlib.blake2b((key & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big") + replica.encode(), digest_size=8).digest()


def rendezvous(key: int, replicas: Iterable[str]) -> str:
    """The replica with the highest hash weight for `key` (highest-random-weight hashing).

    Adding or removing a replica moves only the keys that chose it.
    """
    return max(replicas, key=lambda r: (_weight(key, r), r))


class Router:
    def __init__(self, config: RoutingConfig | None = None) -> None:
        self.config = config or RoutingConfig()
        self._table: OrderedDict[int, str] = OrderedDict()
        self._rr = itertools.count()
        self.decisions: Counter[str] = Counter()  # reason -> count

    def __len__(self) -> int:
        return len(self._table)

    def match(self, prompt: Sequence[int], live: Iterable[str]) -> tuple[str | None, int]:
        """(replica, tokens) of the longest remembered prefix of `prompt` held by a live replica."""
        alive = set(live)
        block = self.config.block_tokens
        hashes = block_hashes(prompt, block)
        for i in range(len(hashes) - 1, -1, -1):
            replica = self._table.get(hashes[i])
            if replica is not None and replica in alive:
                return replica, (i + 1) * block
        return None, 0

    def choose(self, prompt: Sequence[int], loads: Mapping[str, int]) -> Decision:
        if not loads:
            raise NoReplica("no live replica")
        cfg = self.config
        least = min(loads.values())
        reason = "least_loaded"
        matched = 0
        if cfg.affinity:
            replica, matched = self.match(prompt, loads)
            if replica is not None and matched >= cfg.min_match_ratio * len(prompt):
                if loads[replica] - least < cfg.slack:
                    return self._decided(Decision(replica, "affinity", matched))
                reason = "saturated"
        candidates = sorted(r for r, load in loads.items() if load == least)
        if cfg.affinity:
            key = hash(tuple(prompt[: cfg.hash_tokens]))
            chosen = rendezvous(key, candidates)
        else:
            chosen = candidates[next(self._rr) % len(candidates)]
        return self._decided(Decision(chosen, reason, matched))

    def _decided(self, decision: Decision) -> Decision:
        self.decisions[decision.reason] += 1
        return decision

    def record(self, replica: str, tokens: Sequence[int]) -> None:
        """`replica` now holds the KV blocks of `tokens` (a prompt, or a prompt and its continuation)."""
        if not self.config.affinity:
            return
        table = self._table
        for h in block_hashes(tokens, self.config.block_tokens):
            table[h] = replica
            table.move_to_end(h)
        while len(table) > self.config.table_size:
            table.popitem(last=False)

    def forget(self, replica: str) -> None:
        """Drop what `replica` held (it went down; when it returns, its cache is cold)."""
        for h in [h for h, r in self._table.items() if r == replica]:
            del self._table[h]
