"""Compile a kernel for a CUDA GPU on a machine that has none, and report its resources.

Triton's wheel bundles ``ptxas`` and ``cuobjdump``, and ``triton.compile`` takes an
explicit ``GPUTarget``, so the whole compiled path (Python AST -> TTIR -> TTGIR ->
LLVM -> PTX -> cubin) runs on a CPU-only machine. This catches what the
interpreter cannot: constructs the real code generator rejects, and register
pressure (spills show up as a non-zero stack). It does not run the kernel: timing
and numerics on a GPU still need a GPU.

    usage = cuda_resource_usage(_step_scores_kernel, {"hidden_ptr": hidden, ...,
                                "d": 4096}, {"BLOCK_S": 16, ...}, num_warps=8)
    usage.registers, usage.stack_bytes
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

_TYPES = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.int32: "i32",
    torch.int64: "i64",
}
_USAGE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


@dataclass(frozen=True)
class ResourceUsage:
    registers: int  # per thread
    stack_bytes: int  # per thread; > 0 means register spills
    shared_bytes: int  # per program (CTA)
    local_bytes: int


def cuda_resource_usage(
    kernel: object,
    args: dict[str, torch.Tensor | int],
    constexprs: dict[str, object],
    num_warps: int,
    arch: int = 90,
) -> ResourceUsage:
    """Compile ``kernel`` for ``sm_<arch>`` (90 = H100) with argument types taken
    from ``args`` (tensors become pointers of their dtype; ints i32, or i64 if
    they do not fit) and return the cubin's resource usage."""
    signature: dict[str, str] = {}
    for name in getattr(kernel, "arg_names", []):  # in the kernel's argument order
        value = args.get(name, constexprs.get(name))
        if name in constexprs:
            signature[name] = "constexpr"
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + _TYPES[value.dtype]
        elif isinstance(value, int):
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
        else:
            raise ValueError(f"no tensor, int or constexpr given for argument {name!r}")
    source = ASTSource(kernel, signature, constexprs=constexprs)
    # enable_fp_fusion=True is what a launch gets by default in triton 3.9; saying so
    # keeps the result the same when 3.10 flips the default, and skips its warning.
    options = {"num_warps": num_warps, "enable_fp_fusion": True}
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    return _parse_usage(compiled.asm["cubin"])


def _parse_usage(cubin: bytes) -> ResourceUsage:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run(
            [tool, "--dump-resource-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    match = _USAGE.search(out)
    if match is None:
        raise RuntimeError(f"cannot read resource usage from cuobjdump output:\n{out}")
    return ResourceUsage(*(int(g) for g in match.groups()))
