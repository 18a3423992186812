"""Process-reward step scoring over a ragged packed batch: one fused Triton kernel.

A process reward model (PRM) scores a reasoning trace at the end of each step:
take the last hidden state at every step-end token, apply a small reward head
(``weight [C, d]``, ``bias [C]``), turn the logits into P(step is good), then
reduce each sequence's step probabilities to one score (``min``, ``prod``,
``last`` or ``mean``; Lightman et al. 2023 / search-and-learn use ``min``/``last``).

Layout (CSR, everything packed along dim 0):
    hidden        [T, d]   float (fp32/bf16/fp16); sequence b owns rows
                           seq_offsets[b]:seq_offsets[b+1]
    seq_offsets   [B+1]    int
    step_pos      [S]      int, step-end positions RELATIVE to the sequence start,
                           listed in step order; sequence b owns
                           step_pos[step_offsets[b]:step_offsets[b+1]]
    step_offsets  [B+1]    int
    weight, bias  [C, d], [C]   C = 1: sigmoid(logit); C = 2: softmax, class 1 = good
Returns ``StepScores(step_probs [S] fp32, scores [B] fp32)``. ``last`` is the last
step *listed* for the sequence. A sequence with no steps scores NaN (no evidence
is not the same as a bad trace; callers decide what NaN means).

File order as in Triton's fused-softmax tutorial: torch reference, kernel,
launcher, public dispatch. Backend choice: :mod:`ponder.kernels.backend`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ponder.kernels.backend import check_offsets, common_device, resolve_backend

REDUCTIONS = ("min", "prod", "last", "mean")


class StepScores(NamedTuple):
    step_probs: torch.Tensor  # [S] fp32, P(step good)
    scores: torch.Tensor  # [B] fp32, reduced per sequence; NaN for a sequence with no steps


# --------------------------------------------------------------------------- torch reference
def step_scores_reference(
    hidden: torch.Tensor,
    seq_offsets: torch.Tensor,
    step_pos: torch.Tensor,
    step_offsets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    reduce: str,
) -> StepScores:
    """Plain torch; gathers an [S, d] copy (fine for a reference, and on CPU)."""
    num_seqs = seq_offsets.numel() - 1
    seq_offsets, step_offsets = seq_offsets.long(), step_offsets.long()
    counts = step_offsets[1:] - step_offsets[:-1]  # [B] steps per sequence
    seq_of_step = torch.repeat_interleave(
        torch.arange(num_seqs, device=hidden.device), counts, output_size=step_pos.numel()
    )  # [S]
    rows = seq_offsets[:-1][seq_of_step] + step_pos.long()  # [S] absolute rows
    logits = hidden.index_select(0, rows).float() @ weight.float().T + bias.float()  # [S, C]
    sigmoid = weight.shape[0] == 1  # C = 1: P(good) = sigmoid; C = 2: softmax, class 1
    probs = torch.sigmoid(logits[:, 0]) if sigmoid else torch.softmax(logits, dim=-1)[:, 1]
    return StepScores(probs, _segment_reduce(probs, seq_of_step, counts, step_offsets, reduce))


def _segment_reduce(
    probs: torch.Tensor,
    seq_of_step: torch.Tensor,
    counts: torch.Tensor,
    step_offsets: torch.Tensor,
    reduce: str,
) -> torch.Tensor:
    num_seqs = counts.numel()
    if reduce == "mean":
        out = probs.new_zeros(num_seqs).index_add_(0, seq_of_step, probs) / counts
    elif reduce == "min":
        out = probs.new_full((num_seqs,), float("inf"))
        out.scatter_reduce_(0, seq_of_step, probs, "amin")
    elif reduce == "prod":
        out = probs.new_ones(num_seqs).scatter_reduce_(0, seq_of_step, probs, "prod")
    else:  # "last": pad with one NaN so empty sequences index something
        padded = torch.cat([probs, probs.new_full((1,), float("nan"))])
        last = torch.where(counts > 0, step_offsets[1:] - 1, probs.numel())
        out = padded[last]
    return torch.where(counts > 0, out, float("nan"))


# --------------------------------------------------------------------------- Triton kernel
@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _step_scores_kernel(
    hidden_ptr,  # [T, d], row stride `stride_h`, unit column stride
    seq_offsets_ptr,  # [B+1]
    step_pos_ptr,  # [S]
    step_offsets_ptr,  # [B+1]
    weight_ptr,  # [C, d] contiguous
    bias_ptr,  # [C]
    probs_ptr,  # [S] fp32 out
    scores_ptr,  # [B] fp32 out
    d,
    stride_h,
    NUM_CLASSES: tl.constexpr,
    REDUCE: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # One program per sequence. It walks its steps BLOCK_S at a time; for each
    # block it gathers the step-end rows in BLOCK_D column tiles and dots them with
    # the head in fp32, so no [S, d] copy is ever written.
    # Traffic for the launch: reads S×d of hidden + B×ceil(S_b/BLOCK_S)×C×d of head
    # (L2-resident) + 2(B+1) + S ints; writes S + B fp32.
    b = tl.program_id(0)
    row0 = tl.load(seq_offsets_ptr + b).to(tl.int64)
    s_begin = tl.load(step_offsets_ptr + b)
    s_end = tl.load(step_offsets_ptr + b + 1)
    bias0 = tl.load(bias_ptr).to(tl.float32)
    if NUM_CLASSES == 2:
        bias1 = tl.load(bias_ptr + 1).to(tl.float32)
    if REDUCE == "min":
        acc = float("inf")
    elif REDUCE == "prod":
        acc = 1.0
    else:  # "mean" sums, "last" picks by adding the one matching step
        acc = 0.0
    for s0 in range(s_begin, s_end, BLOCK_S):
        offs_s = s0 + tl.arange(0, BLOCK_S)
        mask_s = offs_s < s_end
        pos = tl.load(step_pos_ptr + offs_s, mask=mask_s, other=0)
        row_ptrs = hidden_ptr + (row0 + pos.to(tl.int64)) * stride_h  # [BLOCK_S]
        z0 = tl.zeros([BLOCK_S], dtype=tl.float32)
        z1 = tl.zeros([BLOCK_S], dtype=tl.float32)
        for d0 in range(0, d, BLOCK_D):
            offs_d = d0 + tl.arange(0, BLOCK_D)
            mask_d = offs_d < d
            h = tl.load(
                row_ptrs[:, None] + offs_d[None, :],
                mask=mask_s[:, None] & mask_d[None, :],
                other=0.0,
            ).to(tl.float32)  # [BLOCK_S, BLOCK_D]
            w0 = tl.load(weight_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
            z0 += tl.sum(h * w0[None, :], axis=1)
            if NUM_CLASSES == 2:
                w1 = tl.load(weight_ptr + d + offs_d, mask=mask_d, other=0.0).to(tl.float32)
                z1 += tl.sum(h * w1[None, :], axis=1)
        if NUM_CLASSES == 1:  # noqa: SIM108 (constexpr branch, kept readable)
            p = tl.sigmoid(z0 + bias0)
        else:  # softmax([z0, z1])[1] == sigmoid(z1 - z0), without overflow
            p = tl.sigmoid((z1 + bias1) - (z0 + bias0))
        tl.store(probs_ptr + offs_s, p, mask=mask_s)
        if REDUCE == "min":
            acc = tl.minimum(acc, tl.min(tl.where(mask_s, p, float("inf")), axis=0))
        elif REDUCE == "prod":
            acc = acc * tl.reduce(tl.where(mask_s, p, 1.0), 0, _mul)
        elif REDUCE == "mean":
            acc += tl.sum(tl.where(mask_s, p, 0.0), axis=0)
        else:
            acc += tl.sum(tl.where(offs_s == s_end - 1, p, 0.0), axis=0)
    n = s_end - s_begin
    if REDUCE == "mean":
        acc = acc / tl.maximum(n, 1).to(tl.float32)
    tl.store(scores_ptr + b, tl.where(n > 0, acc, float("nan")))


# --------------------------------------------------------------------------- launcher
def launch_config(d: int) -> dict[str, int]:
    """Tile sizes and warps for hidden size ``d``. Large d: [8, 512] tiles (8 KiB of
    bf16 per load, 8 column tiles per step block at d = 4096) on 8 warps; smaller d
    takes more steps per tile (up to 32) at 2048 elements on 4 warps. Chosen from
    sm_90 resource usage (ponder.kernels.aot): at most ~160 registers, no spills,
    where [16, 512] tiles spilled for C = 2, reduce = prod."""
    block_d = min(512, triton.next_power_of_2(d))
    block_s = max(8, min(32, 2048 // block_d))
    return {"BLOCK_S": block_s, "BLOCK_D": block_d, "num_warps": 8 if block_d >= 512 else 4}


def step_scores_triton(
    hidden: torch.Tensor,
    seq_offsets: torch.Tensor,
    step_pos: torch.Tensor,
    step_offsets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    reduce: str,
) -> StepScores:
    """Launch the kernel on already-checked inputs (``step_scores`` checks them)."""
    num_seqs, num_classes, d = seq_offsets.numel() - 1, weight.shape[0], weight.shape[1]
    if hidden.stride(1) != 1:
        hidden = hidden.contiguous()
    probs = torch.empty(step_pos.numel(), dtype=torch.float32, device=hidden.device)
    scores = torch.empty(num_seqs, dtype=torch.float32, device=hidden.device)
    if num_seqs == 0:
        return StepScores(probs, scores)
    _step_scores_kernel[(num_seqs,)](
        hidden,
        seq_offsets,
        step_pos,
        step_offsets,
        weight.contiguous(),
        bias.contiguous(),
        probs,
        scores,
        d,
        hidden.stride(0),
        NUM_CLASSES=num_classes,
        REDUCE=reduce,
        **launch_config(d),
    )
    return StepScores(probs, scores)


# --------------------------------------------------------------------------- public dispatch
def step_scores(
    hidden: torch.Tensor,
    seq_offsets: torch.Tensor,
    step_pos: torch.Tensor,
    step_offsets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    reduce: str = "min",
    *,
    backend: str | None = None,
) -> StepScores:
    """Per-step P(good) ``[S]`` and per-sequence ``reduce``d scores ``[B]`` (fp32).

    ``backend``: ``"triton"``, ``"torch"`` or ``"auto"``; ``None`` reads
    ``$PONDER_KERNELS`` (default ``auto``: Triton on CUDA tensors, torch otherwise).
    """
    if bias is None:
        bias = weight.new_zeros(weight.shape[0] if weight.ndim == 2 else 1)
    _check_inputs(hidden, seq_offsets, step_pos, step_offsets, weight, bias, reduce)
    device = common_device(hidden, seq_offsets, step_pos, step_offsets, weight, bias)
    args = (hidden, seq_offsets, step_pos, step_offsets, weight, bias, reduce)
    if resolve_backend(backend, device, _step_scores_kernel) == "triton":
        return step_scores_triton(*args)
    return step_scores_reference(*args)


def _check_inputs(
    hidden: torch.Tensor,
    seq_offsets: torch.Tensor,
    step_pos: torch.Tensor,
    step_offsets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    reduce: str,
) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}; got {reduce!r}")
    if hidden.ndim != 2 or not hidden.is_floating_point():
        raise ValueError(f"hidden must be a float [T, d] tensor; got {_desc(hidden)}")
    if weight.ndim != 2 or weight.shape[0] not in (1, 2) or not weight.is_floating_point():
        raise ValueError(f"weight must be a float [C, d] tensor, C = 1 or 2; got {_desc(weight)}")
    if weight.shape[1] != hidden.shape[1] or hidden.shape[1] == 0:
        raise ValueError(f"weight is [C, {weight.shape[1]}] but hidden is [T, {hidden.shape[1]}]")
    if bias.shape != (weight.shape[0],) or not bias.is_floating_point():
        raise ValueError(f"bias must be a float [{weight.shape[0]}] tensor; got {_desc(bias)}")
    if step_pos.ndim != 1 or step_pos.is_floating_point() or step_pos.dtype == torch.bool:
        raise ValueError(f"step_pos must be a 1-D integer tensor; got {_desc(step_pos)}")
    check_offsets("seq_offsets", seq_offsets, hidden.shape[0])
    check_offsets("step_offsets", step_offsets, step_pos.numel())
    if step_offsets.numel() != seq_offsets.numel():
        raise ValueError(
            f"step_offsets has {step_offsets.numel()} entries but seq_offsets has "
            f"{seq_offsets.numel()} (both must be [B+1])"
        )
    counts = (step_offsets[1:] - step_offsets[:-1]).long()
    seq_of_step = torch.repeat_interleave(
        torch.arange(counts.numel(), device=counts.device), counts, output_size=step_pos.numel()
    )  # [S]
    lengths = (seq_offsets[1:] - seq_offsets[:-1]).long()[seq_of_step]  # [S]
    bad = (step_pos.long() < 0) | (step_pos.long() >= lengths)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"step_pos[{i}] = {int(step_pos[i])} is outside sequence {int(seq_of_step[i])} "
            f"(length {int(lengths[i])}); positions are relative to the sequence start"
        )


def _desc(t: torch.Tensor) -> str:
    return f"{str(t.dtype).removeprefix('torch.')} {list(t.shape)}"
