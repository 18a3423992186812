"""DeepConf confidence over a ragged packed batch: one Triton kernel + torch reference.

Definitions (DeepConf, Fu et al. 2025, "Deep Think with Confidence"):
    token confidence   C_t = -(1/k) * sum_j logprob[t, j]   (higher = more confident)
    group confidence   G_t = mean of C over the last ``window`` tokens ending at t,
                       restricted to t's sequence. Before a full window exists
                       (the first ``window - 1`` tokens) G_t is the mean of the
                       tokens so far: a warm-up value, so every token has one.
    lowest             min of G_t over positions with a FULL window; a sequence
                       shorter than ``window`` has no full window and gets the mean
                       of all its tokens (as DeepConf's reference code does)
    tail               mean C over the last ``tail`` tokens (all if shorter)
    mean               mean C over the sequence
Empty sequences get NaN in lowest / tail / mean.

Layout (CSR, packed along dim 0):
    topk_logprobs [T, k] float   per-token top-k log-probabilities, B sequences
    seq_offsets   [B+1]  int     sequence b owns rows seq_offsets[b]:seq_offsets[b+1]
Returns ``WindowConfidence(token_conf [T], window_conf [T], lowest [B], tail_conf [B],
mean [B])``, all fp32. Inputs are expected finite: an infinite logprob makes the
running window sums of the rest of its sequence non-finite (both backends).

Window sums are running sums of differences (add the token entering the window,
subtract the one leaving it), never differences of long prefix sums, so their
rounding error scales with the window's sum, not the whole pack's. The torch
reference uses fp64 prefix sums instead and is the accuracy yardstick.

``bottom_percent`` (DeepConf's "bottom-10% group confidence") needs a sort per
sequence and stays in plain torch. Backend choice: :mod:`ponder.kernels.backend`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from ponder.kernels.backend import check_offsets, common_device, resolve_backend


class WindowConfidence(NamedTuple):
    token_conf: torch.Tensor  # [T] C_t
    window_conf: torch.Tensor  # [T] G_t (warm-up mean before a full window)
    lowest: torch.Tensor  # [B] min G over full windows (mean if shorter than window)
    tail_conf: torch.Tensor  # [B] mean C over the last `tail` tokens
    mean: torch.Tensor  # [B] mean C


# --------------------------------------------------------------------------- torch reference
def window_confidence_reference(
    topk_logprobs: torch.Tensor, seq_offsets: torch.Tensor, window: int, tail: int
) -> WindowConfidence:
    """Plain torch: fp64 prefix sums over the pack, differenced per window."""
    num_tokens, device = topk_logprobs.shape[0], topk_logprobs.device
    offs = seq_offsets.long()
    starts, ends = offs[:-1], offs[1:]
    lengths = ends - starts  # [B]
    seq_id = torch.repeat_interleave(
        torch.arange(lengths.numel(), device=device), lengths, output_size=num_tokens
    )  # [T]
    t = torch.arange(num_tokens, device=device)
    token_conf = -topk_logprobs.float().mean(dim=1)  # [T]; reads T×k
    csum = torch.nn.functional.pad(token_conf.double().cumsum(0), (1, 0))  # [T+1] exclusive
    lo = torch.maximum(t - window + 1, starts[seq_id])  # first token of each window
    window_conf = ((csum[t + 1] - csum[lo]) / (t + 1 - lo)).float()

    nan = float("nan")
    mean = ((csum[ends] - csum[starts]) / lengths).float()  # 0/0 -> NaN for empty
    tail_lo = torch.maximum(ends - tail, starts)
    tail_conf = ((csum[ends] - csum[tail_lo]) / (ends - tail_lo)).float()
    full = (t - starts[seq_id]) >= window - 1  # positions with a full window
    inf = torch.full_like(mean, float("inf"))
    lowest = inf.scatter_reduce(0, seq_id, torch.where(full, window_conf, float("inf")), "amin")
    lowest = torch.where(lengths < window, mean, lowest)
    lowest = torch.where(lengths > 0, lowest, nan)
    return WindowConfidence(token_conf, window_conf, lowest, tail_conf, mean)


# --------------------------------------------------------------------------- Triton kernel
@triton.jit
def _window_confidence_kernel(
    logprobs_ptr,  # [T, k], row stride `stride_t`, unit column stride
    seq_offsets_ptr,  # [B+1]
    token_conf_ptr,  # [T] fp32 out
    window_conf_ptr,  # [T] fp32 out
    lowest_ptr,  # [B] fp32 out
    tail_ptr,  # [B] fp32 out
    mean_ptr,  # [B] fp32 out
    k,
    stride_t,
    window,
    tail,
    BLOCK_T: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # One program per sequence, walking it BLOCK_T tokens at a time. For each block
    # it loads the block's logprobs (C entering the window) and the block `window`
    # tokens earlier (C leaving it); an in-block cumsum of the difference plus a
    # scalar carry gives every token's window sum.
    # Traffic: reads T×k + (T - sum_b min(window, n_b))×k (the leaving rows, read
    # `window` tokens after the first time: L2 hits for window×k×elem ≲ 100 KiB per
    # program) + (B+1) ints; writes 2T + 3B fp32.
    b = tl.program_id(0)
    start = tl.load(seq_offsets_ptr + b)
    end = tl.load(seq_offsets_ptr + b + 1)
    tail_start = tl.maximum(end - tail, start)
    offs_k = tl.arange(0, BLOCK_K)
    mask_k = offs_k < k
    carry = 0.0  # window sum at the token just before this block
    total = 0.0
    tail_sum = 0.0
    lowest = float("inf")
    for t0 in range(start, end, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        mask_t = offs_t < end
        lp = tl.load(
            logprobs_ptr + offs_t.to(tl.int64)[:, None] * stride_t + offs_k[None, :],
            mask=mask_t[:, None] & mask_k[None, :],
            other=0.0,
        ).to(tl.float32)
        conf = -tl.sum(lp, axis=1) / k  # [BLOCK_T], 0 past the end
        offs_out = offs_t - window  # token leaving the window at t
        mask_out = mask_t & (offs_out >= start)
        lp_out = tl.load(
            logprobs_ptr + offs_out.to(tl.int64)[:, None] * stride_t + offs_k[None, :],
            mask=mask_out[:, None] & mask_k[None, :],
            other=0.0,
        ).to(tl.float32)
        delta = conf + tl.sum(lp_out, axis=1) / k  # C_t - C_{t-window}
        win = (carry + tl.cumsum(delta, axis=0)) / tl.minimum(offs_t - start + 1, window).to(
            tl.float32
        )
        tl.store(token_conf_ptr + offs_t, conf, mask=mask_t)
        tl.store(window_conf_ptr + offs_t, win, mask=mask_t)
        carry += tl.sum(delta, axis=0)
        total += tl.sum(conf, axis=0)
        tail_sum += tl.sum(tl.where(offs_t >= tail_start, conf, 0.0), axis=0)
        full = mask_t & (offs_t - start >= window - 1)
        lowest = tl.minimum(lowest, tl.min(tl.where(full, win, float("inf")), axis=0))
    n = end - start
    mean = total / tl.maximum(n, 1).to(tl.float32)
    lowest = tl.where(n < window, mean, lowest)
    tail_conf = tail_sum / tl.maximum(end - tail_start, 1).to(tl.float32)
    tl.store(mean_ptr + b, tl.where(n > 0, mean, float("nan")))
    tl.store(lowest_ptr + b, tl.where(n > 0, lowest, float("nan")))
    tl.store(tail_ptr + b, tl.where(n > 0, tail_conf, float("nan")))


# --------------------------------------------------------------------------- launcher
def launch_config(k: int) -> dict[str, int]:
    """Tile sizes and warps for top-``k``. Tiles hold up to 4096 elements (BLOCK_T
    tokens × BLOCK_K, k padded to a power of two); with two such tiles live (entering
    and leaving tokens), 8 warps keep sm_90 at about 160 registers and no spills,
    where 8192-element tiles at 4 warps spilled (checked with ponder.kernels.aot)."""
    block_k = triton.next_power_of_2(k)
    block_t = max(16, min(1024, 4096 // block_k))
    return {
        "BLOCK_T": block_t,
        "BLOCK_K": block_k,
        "num_warps": 8 if block_t * block_k >= 4096 else 4,
    }


def window_confidence_triton(
    topk_logprobs: torch.Tensor, seq_offsets: torch.Tensor, window: int, tail: int
) -> WindowConfidence:
    """Launch the kernel on already-checked inputs (``window_confidence`` checks them)."""
    num_tokens, k = topk_logprobs.shape
    num_seqs, device = seq_offsets.numel() - 1, topk_logprobs.device
    if topk_logprobs.stride(1) != 1:
        topk_logprobs = topk_logprobs.contiguous()
    token_conf, window_conf = (
        torch.empty(num_tokens, dtype=torch.float32, device=device) for _ in "tw"
    )
    lowest, tail_conf, mean = (
        torch.empty(num_seqs, dtype=torch.float32, device=device) for _ in "ltm"
    )
    if num_seqs == 0:
        return WindowConfidence(token_conf, window_conf, lowest, tail_conf, mean)
    _window_confidence_kernel[(num_seqs,)](
        topk_logprobs,
        seq_offsets,
        token_conf,
        window_conf,
        lowest,
        tail_conf,
        mean,
        k,
        topk_logprobs.stride(0),
        min(window, num_tokens + 1),  # any window >= the longest sequence acts the same
        min(tail, num_tokens + 1),
        **launch_config(k),
    )
    return WindowConfidence(token_conf, window_conf, lowest, tail_conf, mean)


# --------------------------------------------------------------------------- public dispatch
def window_confidence(
    topk_logprobs: torch.Tensor,
    seq_offsets: torch.Tensor,
    window: int = 2048,
    tail: int = 2048,
    *,
    backend: str | None = None,
) -> WindowConfidence:
    """DeepConf token / group / lowest / tail / mean confidence of a ragged batch.

    ``backend``: ``"triton"``, ``"torch"`` or ``"auto"``; ``None`` reads
    ``$PONDER_KERNELS`` (default ``auto``: Triton on CUDA tensors, torch otherwise).
    """
    if topk_logprobs.ndim != 2 or topk_logprobs.shape[1] < 1:
        raise ValueError(
            f"topk_logprobs must be [T, k] with k >= 1; got {list(topk_logprobs.shape)}"
        )
    if not topk_logprobs.is_floating_point():
        raise ValueError(f"topk_logprobs must be a float tensor; got {topk_logprobs.dtype}")
    _check_positive_int("window", window)
    _check_positive_int("tail", tail)
    check_offsets("seq_offsets", seq_offsets, topk_logprobs.shape[0])
    device = common_device(topk_logprobs, seq_offsets)
    if resolve_backend(backend, device, _window_confidence_kernel) == "triton":
        return window_confidence_triton(topk_logprobs, seq_offsets, window, tail)
    return window_confidence_reference(topk_logprobs, seq_offsets, window, tail)


def bottom_percent(
    window_conf: torch.Tensor,
    seq_offsets: torch.Tensor,
    pct: float = 10.0,
    *,
    window: int | None = None,
) -> torch.Tensor:
    """Per sequence, the mean of its lowest ``pct``% group confidences ``[B]`` fp32.

    Takes ``max(1, floor(n_groups * pct / 100))`` groups. With ``window`` given,
    only full-window positions are groups (a sequence shorter than ``window`` has
    one: its last position, the whole-sequence mean), matching ``lowest``; without
    it every position counts, warm-up included. Empty sequences get NaN.
    """
    if window_conf.ndim != 1 or not window_conf.is_floating_point():
        raise ValueError(f"window_conf must be a 1-D float tensor; got {list(window_conf.shape)}")
    if not 0.0 < pct <= 100.0:
        raise ValueError(f"pct must be in (0, 100]; got {pct}")
    if window is not None:
        _check_positive_int("window", window)
    check_offsets("seq_offsets", seq_offsets, window_conf.numel())
    common_device(window_conf, seq_offsets)
    offs, device = seq_offsets.long(), window_conf.device
    lengths = offs[1:] - offs[:-1]
    num_seqs = lengths.numel()
    seq_id = torch.repeat_interleave(
        torch.arange(num_seqs, device=device), lengths, output_size=window_conf.numel()
    )
    if window is not None:
        pos, length = (
            torch.arange(window_conf.numel(), device=device) - offs[seq_id],
            lengths[seq_id],
        )
        keep = (pos >= window - 1) | ((length < window) & (pos == length - 1))
        values, seq_id = window_conf[keep].float(), seq_id[keep]
    else:
        values = window_conf.float()
    # Sort by value, then stably by sequence: each sequence's groups ascending, contiguous.
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(seq_id[order], stable=True)]
    values, seq_id = values[order], seq_id[order]
    n_groups = torch.bincount(seq_id, minlength=num_seqs)
    take = (n_groups.double() * pct / 100.0).floor().clamp_min(1).long()
    rank = torch.arange(values.numel(), device=device) - (n_groups.cumsum(0) - n_groups)[seq_id]
    chosen = rank < take[seq_id]
    sums = values.new_zeros(num_seqs).index_add_(0, seq_id[chosen], values[chosen])
    return torch.where(n_groups > 0, sums / take, float("nan"))


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
