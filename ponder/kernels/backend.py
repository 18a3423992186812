"""Backend selection for Ponder's kernels (Triton or the torch reference), and shared checks.

Every public kernel function takes ``backend: str | None``; ``None`` means the
environment variable ``PONDER_KERNELS`` (``triton`` | ``torch`` | ``auto``,
default ``auto``), read at call time so tests and operators can flip it live.

- ``auto``   Triton when the tensors live on a CUDA device, torch otherwise.
- ``torch``  always the reference (any device).
- ``triton`` always the kernel. On CPU tensors this is only possible in Triton's
  interpreter, and the interpreter must be on *before triton is first imported*.

Why "before import": in triton 3.9, ``triton.jit`` chooses between a compiled
``JITFunction`` and an ``InterpretedFunction`` when it *decorates*
(``runtime/jit.py``: ``if knobs.runtime.interpret: return InterpretedFunction``),
and ``triton.language``'s own helpers (``tl.sum``, ``tl.max``, ``tl.cumsum``,
``tl.sigmoid``, ...) are themselves ``@jit`` functions decorated when
``triton.language`` is imported. Re-decorating only our kernels under a scoped
``triton.knobs.runtime.interpret`` is therefore not enough: the interpreter
would then call a compiled ``tl.sum`` and fail with "Cannot call @triton.jit'd
outside of the scope of a kernel". The whole process has to start with
``TRITON_INTERPRET=1``. :mod:`ponder.kernels.interpret` runs such a process for
tests, so a test session that also hosts a real vLLM engine never sets it.
"""

from __future__ import annotations

import os
from typing import Literal

import torch

ENV_VAR = "PONDER_KERNELS"
CHOICES = ("triton", "torch", "auto")
Resolved = Literal["triton", "torch"]


def requested_backend(backend: str | None = None) -> str:
    """The backend asked for: the explicit argument, else ``$PONDER_KERNELS``, else ``auto``."""
    choice = backend if backend is not None else os.environ.get(ENV_VAR, "auto")
    choice = choice.strip().lower()
    if choice not in CHOICES:
        source = "backend" if backend is not None else ENV_VAR
        raise ValueError(f"{source} must be one of {', '.join(CHOICES)}; got {choice!r}")
    return choice


def is_interpreted(kernel: object) -> bool:
    """True when ``kernel`` was decorated in interpreter mode (runs on CPU tensors)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(kernel, InterpretedFunction)


def common_device(*tensors: torch.Tensor) -> torch.device:
    """The one device all ``tensors`` share; a clear ValueError if they disagree."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        found = ", ".join(sorted(str(d) for d in devices))
        raise ValueError(f"all tensors must be on one device; got {found}")
    return devices.pop()


def resolve_backend(backend: str | None, device: torch.device, kernel: object) -> Resolved:
    """Pick ``triton`` or ``torch`` for tensors on ``device``; ``kernel`` is the
    ``@triton.jit`` object that would run (to tell compiled from interpreted)."""
    choice = requested_backend(backend)
    on_cuda = device.type == "cuda"
    if choice == "torch" or (choice == "auto" and not on_cuda):
        return "torch"
    if on_cuda and is_interpreted(kernel):
        # Interpreter + CUDA tensors works (triton copies through the host) but is
        # thousands of times slower than the reference; only honour it if asked.
        return "triton" if choice == "triton" else "torch"
    if not on_cuda and not is_interpreted(kernel):
        raise RuntimeError(
            f"backend 'triton' on {device.type} tensors needs Triton's interpreter: start the "
            "process with TRITON_INTERPRET=1 set before triton is first imported (see "
            "ponder.kernels.interpret), or use backend='torch' / 'auto'."
        )
    return "triton"


def check_offsets(name: str, offsets: torch.Tensor, total: int) -> None:
    """``offsets`` must be CSR row pointers over ``total`` rows: 1-D integer,
    ``offsets[0] == 0``, ``offsets[-1] == total``, non-decreasing."""
    if offsets.ndim != 1 or offsets.numel() < 1:
        raise ValueError(f"{name} must be 1-D with B+1 >= 1 entries; got {list(offsets.shape)}")
    if offsets.dtype.is_floating_point or offsets.dtype.is_complex or offsets.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor; got {offsets.dtype}")
    first, last, bad = torch.stack(
        [offsets[0].long(), offsets[-1].long(), (offsets[1:] < offsets[:-1]).sum()]
    ).tolist()  # one host sync for all three checks
    if first != 0 or last != total:
        raise ValueError(f"{name} must start at 0 and end at {total}; got {first} .. {last}")
    if bad:
        raise ValueError(f"{name} must be non-decreasing ({bad} decreasing entries)")
