"""Run a strategy for one request: deadline, cancellation, errors, metrics, response shapes.

The strategy runs in its own task and hands events over a queue, so a client
disconnect, a deadline or an error always stops it the same way: cancel the
task, then abort every engine request it opened (`ctx.close()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from ponder.engine.base import EngineDead, EngineError, EngineRejected
from ponder.serve.admission import Ticket, expected_tokens
from ponder.serve.chunks import ChatFormat, dumps
from ponder.serve.errors import APIError
from ponder.serve.metrics import RequestObserver
from ponder.serve.prepare import Prepared
from ponder.serve.state import ServerState
from ponder.strategies.base import Budget, BudgetExhausted, Content, Event, Progress, Reasoning, Report, StrategyContext
from ponder.strategies.registry import ParamError

log = logging.getLogger("ponder.serve")
_END = object()


def new_request_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def to_api_error(e: BaseException, state: ServerState, rid: str) -> APIError:
    if isinstance(e, APIError):
        return e
    if isinstance(e, ParamError):
        return APIError(400, str(e), param=e.param)
    if isinstance(e, BudgetExhausted):
        return APIError(400, f"the compute budget is too small for this request: {e}", param="strategy.budget")
    if isinstance(e, TimeoutError):
        return APIError(408, "the request exceeded its timeout and was aborted", param="timeout", code="timeout")
    if isinstance(e, EngineRejected):
        return APIError(400, f"the engine rejected the request: {e}", code="invalid_value")
    if isinstance(e, EngineError) and not isinstance(e, EngineDead):
        log.error("request %s: the inference engine failed: %s", rid, e)
        return APIError(502, f"the inference engine failed: {e}", code="engine_error")
    if isinstance(e, EngineDead):
        log.error("request %s: the inference engine is dead: %s", rid, e)
        state.engine_dead = str(e) or "engine died"
        return APIError(503, "the inference engine is unavailable", code="engine_dead")
    log.error("request %s failed", rid, exc_info=(type(e), e, e.__traceback__))
    return APIError(500, f"internal error while running the strategy (request id {rid})", code="internal_error")


def outcome_of(err: APIError) -> str:
    if err.status == 408:
        return "timeout"
    if err.status in (429, 503) and err.code != "engine_dead":
        return "rejected"
    return "client_error" if err.status < 500 else "server_error"


class StrategyRun:
    """Iterate a strategy's events with a deadline; closing it stops everything."""

    def __init__(self, state: ServerState, prep: Prepared, rid: str, ticket: Ticket | None = None) -> None:
        self.state, self.prep, self.rid, self.ticket = state, prep, rid, ticket
        self.ctx = StrategyContext(
            prep.model.engine,
            prep.request,
            request_id=rid,
            budget=Budget(prep.budget),
            scorers=state.scorers_for(prep.model),
        )
        self.observer = RequestObserver(state.metrics, prep.model.name, prep.spec.name)
        self.report: dict[str, Any] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._finished = False
        state.runs.add(self)

    async def _produce(self) -> None:
        try:
            async with contextlib.aclosing(self.prep.spec.run(self.ctx, self.prep.params)) as events:
                async for ev in events:
                    self._queue.put_nowait(ev)
            self._queue.put_nowait(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # handed to the consumer, which maps it to an API error
            self._queue.put_nowait(e)

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        """The strategy's events, in batches of whatever is ready: under load one write
        carries many events instead of one syscall each."""
        self._task = asyncio.get_running_loop().create_task(self._produce())
        deadline = time.monotonic() + self.prep.timeout
        queue = self._queue
        try:
            while True:
                if queue.empty():
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        pending = [await queue.get()]
                else:
                    pending = []
                while not queue.empty():
                    pending.append(queue.get_nowait())
                batch: list[Event] = []
                for item in pending:
                    if item is _END or isinstance(item, BaseException):
                        if batch:
                            yield batch
                        if isinstance(item, BaseException):
                            raise item
                        return
                    if isinstance(item, Report):
                        self.report = item.data
                    elif isinstance(item, Reasoning | Content) and item.text:
                        self.observer.token()
                    batch.append(item)
                yield batch
        finally:
            await self.close()

    async def events(self) -> AsyncGenerator[Event, None]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for ev in batch:
                    yield ev

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Count before the first await: a disconnected client's cancel scope interrupts every later
        # await here, and cancelling the task (or ctx.close) aborts exactly these engine requests.
        aborted = self.ctx.open_requests
        if aborted:
            self.state.metrics.aborts.labels(self.prep.model.name).inc(aborted)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        # a task of its own, so a cancelled caller (a gone client) cannot cut the aborts short
        await asyncio.shield(asyncio.ensure_future(self._close_rest()))

    async def _close_rest(self) -> None:
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task
        await self.ctx.close()

    def interrupt(self, err: APIError) -> None:
        """Stop the strategy from outside (shutdown, dead engine); the client gets `err`."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._queue.put_nowait(err)

    def finish(self, outcome: str) -> None:
        """Record the request's outcome and free its admission place (once)."""
        if self._finished:
            return
        self._finished = True
        self.state.runs.discard(self)
        self.observer.finish(outcome, self.ctx.usage, self.report)
        if self.ticket is not None:
            usage = self.ctx.usage
            self.ticket.release(usage.prompt_tokens + usage.completion_tokens)


class RunResponse(EventSourceResponse):
    """An SSE response that always closes its run, even if the stream never started."""

    def __init__(self, run: StrategyRun, content: Any) -> None:
        super().__init__(content, ping=15, sep="\n")
        self.run = run

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self.run.close()
            finally:
                self.run.finish("cancelled")  # no-op when the stream already recorded its outcome


async def _listen_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def respond(request: Request, state: ServerState, prep: Prepared, fmt: ChatFormat, rid: str) -> Any:
    sampling = prep.request.sampling
    cost = expected_tokens(prep.params, sampling.max_tokens, sampling.n, prep.budget)
    ticket = await state.admission.admit(getattr(request.state, "key_id", "anonymous"), cost)
    run = StrategyRun(state, prep, rid, ticket)
    state.metrics.queue_wait.labels(prep.model.name, prep.spec.name).observe(ticket.waited)
    if prep.stream:
        return RunResponse(run, _sse(run, fmt, prep, state))

    async def whole() -> dict[str, Any]:
        async with contextlib.aclosing(run.events()) as events:
            async for ev in events:
                if not isinstance(ev, Progress | Report):
                    fmt.fold(ev)
        return fmt.whole(run.ctx.usage, run.report)

    work = asyncio.ensure_future(whole())
    listener = asyncio.ensure_future(_listen_for_disconnect(request))
    outcome = "cancelled"
    try:
        await asyncio.wait({work, listener}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():  # the client went away: stop the strategy and its engine requests
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            return JSONResponse(
                {
                    "error": {
                        "message": "client disconnected",
                        "type": "cancelled",
                        "param": None,
                        "code": "client_disconnected",
                    }
                },
                status_code=499,
            )
        exc = work.exception()
        if exc is not None:
            err = to_api_error(exc, state, rid)
            outcome = outcome_of(err)
            return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
        outcome = "ok"
        return JSONResponse(work.result())
    finally:
        listener.cancel()
        if not work.done():
            work.cancel()
        try:
            await run.close()
        finally:
            run.finish(outcome)


def _sse_bytes(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


async def _sse(run: StrategyRun, fmt: ChatFormat, prep: Prepared, state: ServerState) -> AsyncIterator[bytes]:
    """The SSE body, encoded here (bytes pass through sse-starlette untouched), one write per batch."""
    outcome = "cancelled"
    name = prep.spec.name
    try:
        yield b"".join(_sse_bytes(dumps(chunk)) for chunk in fmt.opening())
        try:
            async with contextlib.aclosing(run.batches()) as batches:
                async for batch in batches:
                    out = []
                    for ev in batch:
                        if isinstance(ev, Progress):
                            side = fmt.side({"type": "progress", "strategy": name, **ev.data})
                            out.append(_sse_bytes(dumps(side), "ponder.progress"))
                        elif isinstance(ev, Report):
                            side = fmt.side({"type": "result", "strategy": name, **ev.data})
                            out.append(_sse_bytes(dumps(side), "ponder.result"))
                        else:
                            out.append(_sse_bytes(dumps(fmt.delta(ev))))
                    yield b"".join(out)
            if prep.include_usage:
                yield _sse_bytes(dumps(fmt.usage(run.ctx.usage)))
            outcome = "ok"
        except asyncio.CancelledError:
            raise
        except Exception as e:
            err = to_api_error(e, state, run.rid)
            outcome = outcome_of(err)
            yield _sse_bytes(dumps(err.body()))
        yield b"data: [DONE]\n\n"
    finally:
        try:
            await run.close()
        finally:
            run.finish(outcome)
