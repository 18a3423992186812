"""Window-confidence kernel: Triton (interpreter, in a child process) vs the torch
reference, the reference and ``bottom_percent`` vs naive Python loops, validation.

See tests/test_step_scores.py and ponder/kernels/backend.py for why the Triton side
runs in a child process with TRITON_INTERPRET=1 rather than in this session.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from ponder.kernels.aot import cuda_resource_usage
from ponder.kernels.interpret import InterpreterProcess
from ponder.kernels.window_confidence import (
    WindowConfidence,
    _window_confidence_kernel,
    bottom_percent,
    launch_config,
    window_confidence,
    window_confidence_reference,
)

TARGET = "ponder.kernels.window_confidence:window_confidence"
# Empty sequences, length 1, shorter and longer than the windows below, and one
# sequence spanning several token blocks (BLOCK_T: 1024 for k = 1, 512 for k = 5,
# 128 for k = 20).
LENGTHS = [0, 1, 9, 40, 0, 130, 3, 1100]
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-4, torch.float16: 1e-4}


@pytest.fixture(scope="module")
def interp() -> Iterator[InterpreterProcess]:
    with InterpreterProcess() as proc:
        yield proc


def make_batch(
    lengths: list[int], k: int, dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Realistic top-k logprobs: the k largest of a log-softmax over 64 tokens."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(sum(lengths), 64, generator=gen) * 3.0
    topk = torch.log_softmax(logits, dim=-1).topk(k, dim=-1).values.to(dtype)
    offsets = torch.tensor([0, *torch.tensor(lengths, dtype=torch.long).cumsum(0).tolist()])
    return topk, offsets


def naive_window_confidence(
    topk: torch.Tensor, offsets: torch.Tensor, window: int, tail: int
) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """Independent plain-Python version: every window summed directly, fp64."""
    rows, offs = topk.double().tolist(), offsets.tolist()
    token, group, lowest, tails, means = [], [], [], [], []
    for b in range(len(offs) - 1):
        conf = [-sum(r) / len(r) for r in rows[offs[b] : offs[b + 1]]]
        g = [
            sum(conf[max(0, i - window + 1) : i + 1]) / min(i + 1, window) for i in range(len(conf))
        ]
        token += conf
        group += g
        n = len(conf)
        means.append(sum(conf) / n if n else math.nan)
        lowest.append(min(g[window - 1 :]) if n >= window else means[-1])
        tails.append(sum(conf[-tail:]) / min(tail, n) if n else math.nan)
    return token, group, lowest, tails, means


def naive_bottom_percent(
    window_conf: torch.Tensor, offsets: torch.Tensor, pct: float, window: int | None
) -> list[float]:
    values, offs, out = window_conf.tolist(), offsets.tolist(), []
    for b in range(len(offs) - 1):
        seq = values[offs[b] : offs[b + 1]]
        if window is not None:
            seq = seq[window - 1 :] if len(seq) >= window else seq[-1:]
        take = max(1, math.floor(len(seq) * pct / 100))
        out.append(sum(sorted(seq)[:take]) / take if seq else math.nan)
    return out


def assert_same(actual: WindowConfidence, expected: WindowConfidence, tol: float) -> None:
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == torch.float32 and got.shape == want.shape
        torch.testing.assert_close(got, want, atol=tol, rtol=tol, equal_nan=True)


# --------------------------------------------------------------------------- Triton vs torch
@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize(
    "window, tail",
    [(1, 1), (4, 3), (16, 1000), (300, 50), (5000, 5000)],
    ids=["w1", "w4", "w16-tail-long", "w300-spans-blocks", "w-larger-than-all"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_triton_matches_reference(
    interp: InterpreterProcess, k: int, window: int, tail: int, dtype: torch.dtype
) -> None:
    topk, offsets = make_batch(LENGTHS, k, dtype, seed=k)
    got = interp.call(TARGET, topk, offsets, window, tail, backend="triton")
    assert_same(
        got, window_confidence(topk, offsets, window, tail, backend="torch"), TOLERANCE[dtype]
    )
    empty = [n == 0 for n in LENGTHS]
    assert [math.isnan(x) for x in got.lowest.tolist()] == empty


@pytest.mark.parametrize("lengths", [[], [0], [0, 0, 0], [1], [2, 1]], ids=str)
def test_triton_edge_batches(interp: InterpreterProcess, lengths: list[int]) -> None:
    topk, offsets = make_batch(lengths, 3)
    got = interp.call(TARGET, topk, offsets.int(), 2, 1, backend="triton")
    assert_same(got, window_confidence(topk, offsets, 2, 1, backend="torch"), 1e-5)


def test_triton_strided_input(interp: InterpreterProcess) -> None:
    topk, offsets = make_batch(LENGTHS, 20)
    strided = topk[:, :5]  # the top-5 of a top-20 tensor, row stride 20
    got = interp.call(TARGET, strided, offsets, 8, 8, backend="triton")
    assert_same(got, window_confidence(strided.contiguous(), offsets, 8, 8, backend="torch"), 1e-5)


# --------------------------------------------------------------------------- compiled for sm_90
@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_compiles_for_h100_without_spills(k: int, dtype: torch.dtype) -> None:
    """The real code generator + bundled ptxas accept the kernel at the launcher's
    tile sizes (no GPU needed; see ponder/kernels/aot.py). Stack > 0 = spills."""
    out = torch.empty(1, dtype=torch.float32)
    args = {
        "logprobs_ptr": torch.empty(1, dtype=dtype),
        "seq_offsets_ptr": torch.empty(1, dtype=torch.int64),
        "token_conf_ptr": out,
        "window_conf_ptr": out,
        "lowest_ptr": out,
        "tail_ptr": out,
        "mean_ptr": out,
        "k": k,
        "stride_t": k,
        "window": 2048,
        "tail": 2048,
    }
    config = launch_config(k)
    num_warps = config.pop("num_warps")
    usage = cuda_resource_usage(_window_confidence_kernel, args, config, num_warps)
    assert usage.stack_bytes == 0 and usage.local_bytes == 0, usage
    assert usage.registers <= 255


# --------------------------------------------------------------------------- reference vs loops
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("window, tail", [(1, 1), (4, 3), (16, 1000), (5000, 2)])
def test_reference_matches_naive_loops(k: int, window: int, tail: int) -> None:
    topk, offsets = make_batch(LENGTHS[:-1], k, seed=3)  # the long sequence makes loops slow
    expected = naive_window_confidence(topk, offsets, window, tail)
    ref = window_confidence_reference(topk, offsets, window, tail)
    for got, want in zip(ref, expected, strict=True):
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float32), equal_nan=True)


@pytest.mark.parametrize("pct", [10.0, 33.0, 100.0])
@pytest.mark.parametrize("window", [None, 1, 16, 5000])
def test_bottom_percent_matches_naive_loops(pct: float, window: int | None) -> None:
    topk, offsets = make_batch(LENGTHS, 5, seed=4)
    window_conf = window_confidence(topk, offsets, window or 8, 8).window_conf
    got = bottom_percent(window_conf, offsets, pct, window=window)
    want = torch.tensor(naive_bottom_percent(window_conf, offsets, pct, window))
    torch.testing.assert_close(got, want, equal_nan=True)


def test_bottom_percent_agrees_with_lowest() -> None:
    topk, offsets = make_batch(LENGTHS, 5, seed=5)
    out = window_confidence(topk, offsets, 16, 8)
    tiny = bottom_percent(out.window_conf, offsets, 1e-9, window=16)  # takes one group: the min
    torch.testing.assert_close(tiny, out.lowest, equal_nan=True)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "topk, offsets, window, tail, message",
    [
        (torch.zeros(5), torch.tensor([0, 5]), 2, 2, r"must be \[T, k\] with k >= 1"),
        (torch.zeros(5, 0), torch.tensor([0, 5]), 2, 2, r"must be \[T, k\] with k >= 1"),
        (torch.zeros(5, 2, dtype=torch.int32), torch.tensor([0, 5]), 2, 2, "must be a float"),
        (torch.zeros(5, 2), torch.tensor([0, 5]), 0, 2, "window must be an int >= 1"),
        (torch.zeros(5, 2), torch.tensor([0, 5]), 2.5, 2, "window must be an int >= 1"),
        (torch.zeros(5, 2), torch.tensor([0, 5]), True, 2, "window must be an int >= 1"),
        (torch.zeros(5, 2), torch.tensor([0, 5]), 2, -1, "tail must be an int >= 1"),
        (torch.zeros(5, 2), torch.tensor([0, 4]), 2, 2, "must start at 0 and end at 5"),
        (torch.zeros(5, 2), torch.tensor([1, 5]), 2, 2, "must start at 0 and end at 5"),
        (torch.zeros(5, 2), torch.tensor([0, 3, 2, 5]), 2, 2, "must be non-decreasing"),
        (torch.zeros(5, 2), torch.tensor([[0, 5]]), 2, 2, "must be 1-D"),
    ],
)
def test_invalid_inputs_raise(
    topk: torch.Tensor, offsets: torch.Tensor, window: int, tail: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        window_confidence(topk, offsets, window, tail, backend="torch")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pct": 0.0}, r"pct must be in \(0, 100\]"),
        ({"pct": 100.5}, r"pct must be in \(0, 100\]"),
        ({"window": 0}, "window must be an int >= 1"),
        ({"seq_offsets": torch.tensor([0, 3])}, "must start at 0 and end at 4"),
    ],
)
def test_bottom_percent_invalid_inputs_raise(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"window_conf": torch.zeros(4), "seq_offsets": torch.tensor([0, 4])}
    with pytest.raises(ValueError, match=message):
        bottom_percent(**{**args, **kwargs})  # type: ignore[arg-type]


def test_triton_on_cpu_without_interpreter_is_a_clear_error() -> None:
    topk, offsets = make_batch([3], 2)
    with pytest.raises(RuntimeError, match="needs Triton's interpreter"):
        window_confidence(topk, offsets, 2, 2, backend="triton")
