"""Step-score kernel: Triton (interpreter, in a child process) vs the torch reference,
the reference vs naive Python loops, input validation and the backend switch.

The Triton side runs in :class:`ponder.kernels.interpret.InterpreterProcess` (a child
started with TRITON_INTERPRET=1), so this session's triton stays compiled-mode for
the vLLM engine tests; see ponder/kernels/backend.py for why it must be a process.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from ponder.kernels import backend as kb
from ponder.kernels.aot import cuda_resource_usage
from ponder.kernels.interpret import InterpreterProcess
from ponder.kernels.step_scores import (
    REDUCTIONS,
    StepScores,
    _step_scores_kernel,
    launch_config,
    step_scores,
    step_scores_reference,
)

TARGET = "ponder.kernels.step_scores:step_scores"
# Ragged batch: empty sequences, a length-1 sequence, sequences with zero steps,
# a sequence whose steps span several BLOCK_S tiles (BLOCK_S is 8-32, by d).
LENGTHS = [7, 0, 1, 120, 12, 0, 3]
N_STEPS = [3, 0, 1, 70, 0, 0, 3]
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-4, torch.float16: 1e-4}

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@pytest.fixture(scope="module")
def interp() -> Iterator[InterpreterProcess]:
    with InterpreterProcess() as proc:
        yield proc


def make_batch(
    lengths: list[int],
    n_steps: list[int],
    d: int,
    num_classes: int,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    index_dtype: torch.dtype = torch.int64,
) -> Batch:
    """(hidden, seq_offsets, step_pos, step_offsets, weight, bias); the last step of a
    sequence with steps sits on its last token, as a PRM's final step does."""
    gen = torch.Generator().manual_seed(seed)
    positions: list[int] = []
    for length, n in zip(lengths, n_steps, strict=True):
        inner = torch.randperm(max(length - 1, 0), generator=gen)[: n - 1].sort().values
        positions += (inner.tolist() + [length - 1]) if n else []
    hidden = torch.randn(sum(lengths), d, generator=gen).to(dtype)
    weight = (torch.randn(num_classes, d, generator=gen) / math.sqrt(d)).to(dtype)
    bias = torch.randn(num_classes, generator=gen).to(dtype)
    seq_offsets = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=index_dtype)
    step_offsets = torch.tensor([0, *torch.tensor(n_steps).cumsum(0).tolist()], dtype=index_dtype)
    step_pos = torch.tensor(positions, dtype=index_dtype)
    return hidden, seq_offsets, step_pos, step_offsets, weight, bias


def naive_step_scores(batch: Batch, reduce: str) -> tuple[list[float], list[float]]:
    """Independent plain-Python version: loops, fp64 floats, math.exp."""
    hidden, seq_offsets, step_pos, step_offsets, weight, bias = (t.tolist() for t in batch)
    probs: list[float] = []
    scores: list[float] = []
    for b in range(len(seq_offsets) - 1):
        seq_probs = []
        for i in range(step_offsets[b], step_offsets[b + 1]):
            row = hidden[seq_offsets[b] + step_pos[i]]
            z = [
                sum(x * w for x, w in zip(row, wc, strict=True)) + bc
                for wc, bc in zip(weight, bias, strict=True)
            ]
            if len(z) == 1:
                seq_probs.append(1.0 / (1.0 + math.exp(-z[0])))
            else:
                seq_probs.append(math.exp(z[1]) / (math.exp(z[0]) + math.exp(z[1])))
        probs += seq_probs
        if not seq_probs:
            scores.append(math.nan)
        elif reduce == "min":
            scores.append(min(seq_probs))
        elif reduce == "prod":
            scores.append(math.prod(seq_probs))
        elif reduce == "last":
            scores.append(seq_probs[-1])
        else:
            scores.append(sum(seq_probs) / len(seq_probs))
    return probs, scores


def assert_same(actual: StepScores, expected: StepScores, tol: float) -> None:
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == torch.float32 and got.shape == want.shape
        torch.testing.assert_close(got, want, atol=tol, rtol=tol, equal_nan=True)


# --------------------------------------------------------------------------- Triton vs torch
@pytest.mark.parametrize("d", [16, 64, 192, 257])
@pytest.mark.parametrize("num_classes", [1, 2])
@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_triton_matches_reference(
    interp: InterpreterProcess, d: int, num_classes: int, reduce: str, dtype: torch.dtype
) -> None:
    batch = make_batch(LENGTHS, N_STEPS, d, num_classes, dtype, seed=d + num_classes)
    got = interp.call(TARGET, *batch, reduce, backend="triton")
    assert_same(got, step_scores(*batch, reduce, backend="torch"), TOLERANCE[dtype])
    scores = got.scores.tolist()
    assert [math.isnan(s) for s in scores] == [n == 0 for n in N_STEPS]


@pytest.mark.parametrize(
    "lengths, n_steps",
    [
        ([], []),  # B = 0
        ([0, 0], [0, 0]),  # only empty sequences, S = 0
        ([5, 4], [0, 0]),  # tokens but no steps
        ([1], [1]),  # one token, one step
        ([33], [33]),  # a step on every token: two BLOCK_S (32) tiles at d = 24
    ],
)
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_triton_edge_batches(
    interp: InterpreterProcess, lengths: list[int], n_steps: list[int], reduce: str
) -> None:
    batch = make_batch(lengths, n_steps, 24, 2, index_dtype=torch.int32)
    got = interp.call(TARGET, *batch, reduce, backend="triton")
    assert_same(got, step_scores(*batch, reduce, backend="torch"), 1e-5)


def test_triton_strided_hidden_and_no_bias(interp: InterpreterProcess) -> None:
    hidden, *rest, weight, _ = make_batch(LENGTHS, N_STEPS, 80, 1)
    wide = torch.randn(hidden.shape[0], 96)
    wide[:, :80] = hidden
    strided = wide[:, :80]  # row stride 96: the kernel reads it in place
    got = interp.call(TARGET, strided, *rest, weight, None, "mean", backend="triton")
    assert_same(got, step_scores(hidden, *rest, weight, None, "mean", backend="torch"), 1e-5)


# --------------------------------------------------------------------------- compiled for sm_90
@pytest.mark.parametrize("num_classes", [1, 2])
@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("d", [64, 4096])
def test_compiles_for_h100_without_spills(num_classes: int, reduce: str, d: int) -> None:
    """The real code generator + bundled ptxas accept the kernel at the launcher's
    tile sizes (no GPU needed; see ponder/kernels/aot.py). Stack > 0 = spills."""
    ints, floats = torch.empty(1, dtype=torch.int64), torch.empty(1, dtype=torch.float32)
    args = {
        "hidden_ptr": torch.empty(1, dtype=torch.bfloat16),
        "seq_offsets_ptr": ints,
        "step_pos_ptr": ints,
        "step_offsets_ptr": ints,
        "weight_ptr": torch.empty(1, dtype=torch.bfloat16),
        "bias_ptr": floats,
        "probs_ptr": floats,
        "scores_ptr": floats,
        "d": d,
        "stride_h": d,
    }
    config = launch_config(d)
    num_warps = config.pop("num_warps")
    constexprs = {"NUM_CLASSES": num_classes, "REDUCE": reduce, **config}
    usage = cuda_resource_usage(_step_scores_kernel, args, constexprs, num_warps)
    assert usage.stack_bytes == 0 and usage.local_bytes == 0, usage
    assert usage.registers <= 255


# --------------------------------------------------------------------------- reference vs loops
@pytest.mark.parametrize("num_classes", [1, 2])
@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reference_matches_naive_loops(num_classes: int, reduce: str, dtype: torch.dtype) -> None:
    batch = make_batch(LENGTHS, N_STEPS, 37, num_classes, dtype, seed=7)
    probs, scores = naive_step_scores(batch, reduce)
    ref = step_scores_reference(*batch, reduce)
    torch.testing.assert_close(ref.step_probs, torch.tensor(probs, dtype=torch.float32))
    torch.testing.assert_close(
        ref.scores, torch.tensor(scores, dtype=torch.float32), equal_nan=True
    )


# --------------------------------------------------------------------------- validation
def _bad(**changes: object) -> tuple[object, ...]:
    hidden, so, sp, sto, w, b = make_batch([4, 3], [2, 1], 8, 1)
    args: dict[str, object] = dict(
        hidden=hidden, seq_offsets=so, step_pos=sp, step_offsets=sto, weight=w, bias=b, reduce="min"
    )
    args.update(changes)
    return tuple(args.values())


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"reduce": "median"}, "reduce must be one of"),
        ({"weight": torch.randn(3, 8), "bias": torch.zeros(3)}, "C = 1 or 2"),
        ({"weight": torch.randn(1, 9)}, r"weight is \[C, 9\] but hidden is \[T, 8\]"),
        ({"bias": torch.zeros(2)}, r"bias must be a float \[1\]"),
        ({"hidden": torch.randn(7)}, r"hidden must be a float \[T, d\]"),
        ({"hidden": torch.ones(7, 8, dtype=torch.int64)}, "hidden must be a float"),
        ({"seq_offsets": torch.tensor([0, 4, 6])}, "seq_offsets must start at 0 and end at 7"),
        (
            {"seq_offsets": torch.tensor([0, 5, 4, 7]), "step_offsets": torch.tensor([0, 1, 2, 3])},
            "seq_offsets must be non-decreasing",
        ),
        ({"seq_offsets": torch.tensor([0.0, 4.0, 7.0])}, "seq_offsets must be an integer"),
        (
            {"step_offsets": torch.tensor([0, 3])},
            "step_offsets has 2 entries but seq_offsets has 3",
        ),
        (
            {"step_pos": torch.tensor([0, 4, 0])},
            r"step_pos\[1\] = 4 is outside sequence 0 \(length 4\)",
        ),
        ({"step_pos": torch.tensor([0, 1, -1])}, r"step_pos\[2\] = -1 is outside sequence 1"),
        ({"step_pos": torch.tensor([0.0, 1.0, 2.0])}, "step_pos must be a 1-D integer"),
    ],
)
def test_invalid_inputs_raise(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        step_scores(*_bad(**changes), backend="torch")  # type: ignore[arg-type]


def test_validation_is_the_same_on_the_triton_path(interp: InterpreterProcess) -> None:
    with pytest.raises(ValueError, match="outside sequence 0"):
        interp.call(TARGET, *_bad(step_pos=torch.tensor([0, 9, 0])), backend="triton")


# --------------------------------------------------------------------------- backend switch
def test_switch_env_and_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = make_batch([4, 3], [2, 1], 8, 1)
    expected = step_scores_reference(*batch, "min")
    for choice in ("torch", "auto", " AUTO "):
        monkeypatch.setenv(kb.ENV_VAR, choice)
        assert_same(step_scores(*batch, "min"), expected, 0.0)
    monkeypatch.setenv(kb.ENV_VAR, "triton")  # compiled triton cannot take CPU tensors
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        step_scores(*batch, "min")
    assert_same(step_scores(*batch, "min", backend="torch"), expected, 0.0)  # argument wins
    monkeypatch.setenv(kb.ENV_VAR, "cuda")
    with pytest.raises(ValueError, match="PONDER_KERNELS must be one of"):
        step_scores(*batch, "min")
    with pytest.raises(ValueError, match="backend must be one of"):
        step_scores(*batch, "min", backend="gpu")


def test_auto_resolution_by_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kb.ENV_VAR, raising=False)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert kb.resolve_backend(None, cuda, _step_scores_kernel) == "triton"
    assert kb.resolve_backend(None, cpu, _step_scores_kernel) == "torch"
    assert kb.resolve_backend("torch", cuda, _step_scores_kernel) == "torch"
    with pytest.raises(ValueError, match="one device"):
        kb.common_device(torch.zeros(1), torch.zeros(1, device="meta"))


def test_interpreter_process_runs_interpreted_kernels(interp: InterpreterProcess) -> None:
    assert interp.call("os:getenv", "TRITON_INTERPRET") == "1"
    assert not kb.is_interpreted(_step_scores_kernel)  # this process stays compiled-mode
