"""Process lifecycle: graceful SIGTERM drain, engine-death watchdog, exit codes.

SIGTERM (or SIGINT): the server starts draining — new requests get 503 with
`Retry-After` and `/health` says "draining" — in-flight requests may finish
for up to `grace` seconds, the rest are interrupted (a streaming client gets
an error event, then `[DONE]`), then uvicorn stops, the engines shut down and
the process exits 0. A second SIGINT exits at once.

If an engine dies, `/health` reports it, requests fail fast with 503, and
after `dead_exit_delay` seconds the process exits non-zero so a supervisor
restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType
from typing import Any

import uvicorn

from ponder.serve.errors import APIError
from ponder.serve.state import ServerState

log = logging.getLogger("ponder.serve")


class PonderServer(uvicorn.Server):
    """uvicorn, with signals routed to a graceful drain instead of an immediate stop."""

    def __init__(self, config: uvicorn.Config, state: ServerState, grace: float, dead_exit_delay: float = 2.0) -> None:
        super().__init__(config)
        self.state = state
        self.grace = grace
        self.dead_exit_delay = dead_exit_delay
        self.exit_code = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.state.draining and sig == signal.SIGINT:
            self.force_exit = True
            self.should_exit = True
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._begin_drain, signal.Signals(sig).name)
        else:
            self.should_exit = True

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        self._spawn(self._watchdog())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _begin_drain(self, reason: str) -> None:
        if self.state.draining:
            return
        self.state.draining = True
        log.warning("%s: draining (%d in flight, grace %.0f s)", reason, len(self.state.runs), self.grace)
        self._spawn(self._drain())

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.grace
        while self.state.runs and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self.state.runs:
            log.warning("grace period over: interrupting %d requests", len(self.state.runs))
            err = APIError(503, "the server is shutting down", code="shutdown")
            for run in list(self.state.runs):
                run.interrupt(err)
            wait_until = time.monotonic() + 5
            while self.state.runs and time.monotonic() < wait_until:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # let the last bytes (error events, [DONE]) go out
        self.should_exit = True

    async def _watchdog(self) -> None:
        while not self.should_exit:
            await asyncio.sleep(1.0)
            for name, model in self.state.models.items():
                try:
                    await model.engine.check_health()
                except Exception as e:  # noqa: BLE001 - any failure is a dead engine
                    self.state.engine_dead = self.state.engine_dead or f"{name}: {e}"
            if self.state.engine_dead:
                log.error(
                    "engine dead (%s): failing requests with 503, exiting in %.0f s",
                    self.state.engine_dead,
                    self.dead_exit_delay,
                )
                await asyncio.sleep(self.dead_exit_delay)
                err = APIError(503, "the inference engine is unavailable", code="engine_dead")
                for run in list(self.state.runs):
                    run.interrupt(err)
                self.exit_code = 1
                self.should_exit = True
                return
