"""How busy the rest of the machine was during a measurement (Linux /proc).

On a shared 2-core machine another job can halve a server's speed, which
would read as a regression. `CpuMeter` counts the CPU time spent by every
process outside the benchmark (this process and the servers' process groups)
over an interval, as "foreign cores" (1.0 = one core busy all along), so each
run carries its own noise figure; `wait_quiet` waits (bounded) until the other
jobs settle before a measurement starts.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _total_busy() -> float:
    """CPU seconds spent busy on all cores since boot (user+nice+system+irq+softirq+steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _group_cpu(pgids: set[int], pids: set[int]) -> float:
    """CPU seconds of the processes in `pgids` or `pids` (live ones: their own and reaped children's)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()  # fields after "pid (comm)"
        pgrp = int(rest[2])
        if pgrp in pgids or int(entry.name) in pids:
            total += sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
    return total / _TICK


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of one process so far; None when it is gone or /proc is missing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / _TICK


@dataclass(frozen=True)
class Sample:
    at: float
    busy: float
    mine: float


class CpuMeter:
    """Foreign CPU load: all busy CPU time minus that of this process and the given process groups."""

    def __init__(self, pgids: Iterable[int] = ()) -> None:
        self.pgids = set(pgids)
        self.available = Path("/proc/stat").is_file()

    def sample(self) -> Sample | None:
        if not self.available:
            return None
        return Sample(time.monotonic(), _total_busy(), _group_cpu(self.pgids, {os.getpid()}))

    @staticmethod
    def foreign_cores(before: Sample | None, after: Sample | None) -> float | None:
        if before is None or after is None or after.at <= before.at:
            return None
        other = (after.busy - before.busy) - (after.mine - before.mine)
        return max(0.0, other) / (after.at - before.at)

    async def wait_quiet(self, threshold: float = 0.25, window: float = 1.0, timeout: float = 120.0) -> float | None:
        """Wait until other jobs use < `threshold` cores over `window` s, at most `timeout` s; the last reading."""
        deadline = time.monotonic() + timeout
        while True:
            before = self.sample()
            await asyncio.sleep(window)
            reading = self.foreign_cores(before, self.sample())
            if reading is None or reading < threshold or time.monotonic() >= deadline:
                return reading

    async def measure(self, work: Awaitable[T], *, settle: float = 120.0) -> tuple[T, float | None]:
        """Wait for quiet (at most `settle` s), run `work`, return its result and the foreign cores during it."""
        if settle > 0:
            await self.wait_quiet(timeout=settle)
        before = self.sample()
        result = await work
        return result, self.foreign_cores(before, self.sample())
