"""Run kernel calls in a child process that has Triton's interpreter on.

Triton decides "interpreted or compiled" when ``@triton.jit`` decorates, and
``triton.language``'s own helpers are decorated at ``import triton`` (see
:mod:`ponder.kernels.backend`). So interpreter mode is, in practice, a property
of a whole process, fixed before triton's first import. A pytest session that
also runs a real vLLM engine must not have it, so Triton-vs-torch tests send
their calls here instead:

    with InterpreterProcess() as proc:
        out = proc.call("ponder.kernels.step_scores:step_scores", hidden, ..., backend="triton")

The child is ``python -m ponder.kernels.interpret`` started with
``TRITON_INTERPRET=1`` in its environment (the parent's environment is left
untouched). Requests and replies are pickles over the child's stdin and a
private copy of its stdout; the child's own prints go to stderr. An exception
raised in the child is re-raised in the parent (same type when it pickles),
with the child's traceback attached as a note. Only CPU tensors should cross.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import traceback
from types import TracebackType
from typing import IO, Any


class InterpreterError(RuntimeError):
    """The interpreter child died or replied with something unreadable."""


class InterpreterProcess:
    """A long-lived child process with ``TRITON_INTERPRET=1`` serving ``call``s."""

    def __init__(self) -> None:
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ponder.kernels.interpret"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def call(self, target: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``module:function(*args, **kwargs)`` in the child and return its result."""
        proc = self._proc
        if proc.poll() is not None or proc.stdin is None or proc.stdout is None:
            raise InterpreterError(f"interpreter process exited with code {proc.returncode}")
        try:
            pickle.dump((target, args, kwargs), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.flush()
            status, payload, remote_tb = pickle.load(proc.stdout)
        except (EOFError, BrokenPipeError, pickle.UnpicklingError) as exc:
            raise InterpreterError(
                f"interpreter process failed (exit code {proc.poll()}); see its stderr"
            ) from exc
        if status == "ok":
            return payload
        if hasattr(payload, "add_note"):
            payload.add_note(f"raised in the Triton interpreter process:\n{remote_tb}")
        raise payload

    def close(self) -> None:
        """Ask the child to stop (EOF on its stdin) and reap it."""
        proc = self._proc
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> InterpreterProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _reply(out: IO[bytes], status: str, payload: Any, remote_tb: str) -> None:
    try:
        data = pickle.dumps((status, payload, remote_tb), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an unpicklable result or exception: send its text instead
        data = pickle.dumps(("err", InterpreterError(repr(payload)), remote_tb))
    out.write(data)
    out.flush()


def _serve() -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("ponder.kernels.interpret must run with TRITON_INTERPRET=1")
    # Keep the protocol channel private: anything printed goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    inp = sys.stdin.buffer
    while True:
        try:
            target, args, kwargs = pickle.load(inp)
        except EOFError:
            return
        try:
            result = _resolve(target)(*args, **kwargs)
        except Exception as exc:
            _reply(out, "err", exc, traceback.format_exc())
        else:
            _reply(out, "ok", result, "")


if __name__ == "__main__":
    _serve()
