"""Kernel benchmark: step_scores and window_confidence, providers side by side.

Providers: ``torch`` (the eager reference), ``torch.compile`` (the reference under
``torch.compile(dynamic=True)``) and ``triton`` (the kernel launcher; only when a
CUDA device exists: on a CPU the Triton path can only run in the interpreter,
whose timings mean nothing). Sizes follow Ponder's use: 16-64 candidates of
2k-16k tokens; step scoring at hidden 1k-4k with a step every ~40 tokens;
window confidence at top-k 5-20 with DeepConf's window 2048 and a short one.

GB/s counts the bytes each kernel must read (step_scores: the S step-end rows of
hidden, the head and the index arrays; window_confidence: all T×k logprobs and
the offsets), divided by the median time.

    python benchmarks/kernels.py [--quick] [--plot kernels.png] [--device cuda]
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ponder.kernels.step_scores import step_scores_reference, step_scores_triton
from ponder.kernels.window_confidence import (
    window_confidence_reference,
    window_confidence_triton,
)


@dataclass
class Row:
    kernel: str
    label: str
    bytes_read: int
    ms: dict[str, float] = field(default_factory=dict)  # provider -> median ms


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_ms(fn: Callable[[], Any], device: torch.device, budget_s: float = 0.4) -> float:
    """Median wall time of ``fn`` after one warm-up call (the warm-up compiles)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, return_mode="median"))
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget_s and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# --------------------------------------------------------------------------- inputs
def step_inputs(
    seqs: int, tokens: int, d: int, device: torch.device
) -> tuple[tuple[Any, ...], int]:
    """Packed hidden states [seqs*tokens, d] bf16 with a step end every ~40 tokens,
    and a 2-class head. Only the step-end rows are written: the rest of ``hidden``
    is never read by any provider, so on a CPU those pages are never touched."""
    gen = torch.Generator().manual_seed(0)
    n_steps = max(1, tokens // 40)
    pos = torch.randint(0, tokens, (seqs, n_steps), generator=gen).sort(dim=1).values
    seq_offsets = torch.arange(seqs + 1) * tokens
    rows = (seq_offsets[:-1, None] + pos).flatten()
    hidden = torch.empty(seqs * tokens, d, dtype=torch.bfloat16, device=device)
    hidden[rows.to(device)] = torch.randn(rows.numel(), d, generator=gen).to(device, torch.bfloat16)
    weight = (torch.randn(2, d, generator=gen) / math.sqrt(d)).to(device, torch.bfloat16)
    bias = torch.zeros(2, device=device)
    step_offsets = torch.arange(seqs + 1) * n_steps
    args = (hidden, seq_offsets.to(device), pos.flatten().to(device), step_offsets.to(device))
    bytes_read = rows.numel() * (d * 2 + 8) + 2 * d * 2 + 2 * 4 + 2 * (seqs + 1) * 8
    return (*args, weight, bias, "min"), bytes_read


def window_inputs(
    seqs: int, tokens: int, k: int, window: int, device: torch.device
) -> tuple[tuple[Any, ...], int]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(seqs * tokens, k, generator=gen) * 2.0
    topk = (logits.sort(dim=1, descending=True).values - 3.0).to(device, torch.bfloat16)
    seq_offsets = (torch.arange(seqs + 1) * tokens).to(device)
    return (topk, seq_offsets, window, 2048), topk.numel() * 2 + (seqs + 1) * 8


# --------------------------------------------------------------------------- runs
def providers(
    reference: Callable[..., Any], triton_fn: Callable[..., Any], cuda: bool
) -> dict[str, Callable[..., Any]]:
    out: dict[str, Callable[..., Any]] = {
        "torch": reference,
        "torch.compile": torch.compile(reference, dynamic=True),
    }
    if cuda:
        out["triton"] = triton_fn
    return out


def run_cases(
    kernel: str,
    cases: Sequence[tuple[str, Callable[[], tuple[tuple[Any, ...], int]]]],
    fns: dict[str, Callable[..., Any]],
    device: torch.device,
) -> list[Row]:
    rows = []
    for i, (label, make) in enumerate(cases, 1):
        progress(f"[{kernel} {i}/{len(cases)}] {label}: building inputs")
        args, bytes_read = make()
        row = Row(kernel, label, bytes_read)
        for name, fn in fns.items():
            t0 = time.perf_counter()
            try:
                row.ms[name] = median_ms(functools.partial(fn, *args), device)
            except Exception as exc:  # e.g. no C++ compiler for torch.compile
                progress(f"    {name}: failed ({type(exc).__name__}: {exc})")
                continue
            spent = time.perf_counter() - t0
            progress(f"    {name}: {row.ms[name]:.2f} ms ({spent:.1f} s incl. warm-up)")
        rows.append(row)
    return rows


def print_table(rows: list[Row], names: list[str]) -> None:
    header = f"{'kernel':<18} {'shape':<34} {'read MB':>8}"
    for name in names:
        header += f" | {name + ' ms':>16} {'GB/s':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        line = f"{row.kernel:<18} {row.label:<34} {row.bytes_read / 1e6:>8.1f}"
        for name in names:
            ms = row.ms.get(name)
            line += (
                f" | {'n/a':>16} {'':>7}"
                if ms is None
                else f" | {ms:>16.3f} {row.bytes_read / ms / 1e6:>7.1f}"
            )
        print(line)


def save_plot(rows: list[Row], names: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kernels = sorted({r.kernel for r in rows}, key=[r.kernel for r in rows].index)
    fig, axes = plt.subplots(1, len(kernels), figsize=(7 * len(kernels), 5), squeeze=False)
    for ax, kernel in zip(axes[0], kernels, strict=True):
        subset = [r for r in rows if r.kernel == kernel]
        for name in names:
            xs = [i for i, r in enumerate(subset) if name in r.ms]
            ax.plot(xs, [subset[i].ms[name] for i in xs], marker="o", label=name)
        ax.set_xticks(
            range(len(subset)), [r.label for r in subset], rotation=60, ha="right", fontsize=7
        )
        ax.set_yscale("log")
        ax.set_ylabel("median ms (log)")
        ax.set_title(kernel)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    progress(f"plot saved to {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few small cases only")
    parser.add_argument("--plot", metavar="PNG", help="save a plot of the timings here")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    opts = parser.parse_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    cuda = device.type == "cuda"
    if cuda:
        where = torch.cuda.get_device_name(device)
    else:
        where = (
            f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
        )
    print(f"device: {device} ({where}); torch {torch.__version__}")
    if not cuda:
        print(
            "No CUDA device: the Triton timings need a GPU, so only the torch paths are timed. "
            "(On this machine the kernels are checked in Triton's interpreter and compiled for "
            "sm_90, never run on a GPU.)"
        )

    seqs_tokens = (
        [(16, 2048), (64, 2048)]
        if opts.quick
        else [(16, 2048), (16, 16384), (64, 2048), (64, 16384)]
    )
    dims = [1024] if opts.quick else [1024, 4096]
    step_cases = [
        (
            f"B={b} T/seq={t} d={d} S={b * max(1, t // 40)}",
            lambda b=b, t=t, d=d: step_inputs(b, t, d, device),
        )
        for b, t in seqs_tokens
        for d in dims
    ]
    window_params = (
        [(5, 256), (20, 2048)] if opts.quick else [(5, 256), (5, 2048), (20, 256), (20, 2048)]
    )
    window_cases = [
        (
            f"B={b} T/seq={t} k={k} window={w}",
            lambda b=b, t=t, k=k, w=w: window_inputs(b, t, k, w, device),
        )
        for b, t in seqs_tokens
        for k, w in window_params
    ]
    step_fns = providers(step_scores_reference, step_scores_triton, cuda)
    window_fns = providers(window_confidence_reference, window_confidence_triton, cuda)
    names = list(step_fns)
    rows = run_cases("step_scores", step_cases, step_fns, device)
    rows += run_cases("window_confidence", window_cases, window_fns, device)
    print(
        "\nstep_scores: bf16 hidden, C=2, reduce=min; window_confidence: bf16 logprobs, tail=2048"
    )
    print_table(rows, names)
    if opts.plot:
        save_plot(rows, names, opts.plot)


if __name__ == "__main__":
    main()
