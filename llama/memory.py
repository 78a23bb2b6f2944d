"""Peak memory of one causal attention call, measured on the running machine (not estimated from shapes).

Three ways to compute the same softmax(q k^T / sqrt(hs)) v over a causal prefill of T positions:

    "manual"     model.manual_attention: the whole (B, nh, T, T) matrix of scores, masked, then a softmax per row
    "blockwise"  blockwise.blockwise_attention: tiles of at most block_size x block_size scores, online softmax
    "sdpa"       PyTorch's fused kernel, F.scaled_dot_product_attention(is_causal=True)

What is measured (`peak_bytes`): the largest number of bytes that PyTorch's allocator holds for tensors made
during the call, above what was held when the call started. The inputs q, k, v (made before) are not counted;
the output and every temporary are, including buffers a kernel allocates for itself. On CUDA this is
torch.cuda.max_memory_allocated after reset_peak_memory_stats. On a CPU, where PyTorch keeps no such counter,
the call runs once under torch.profiler with profile_memory=True, which records every allocation and free of
the CPU allocator with its size (on the calling thread and the intra-op threads it starts); summing them in time
order gives the live bytes at every moment, and the peak is their maximum. Memory that bypasses PyTorch's
allocator (the C library's own scratch space, a BLAS library's internal buffers) is not seen on either device.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .blockwise import blockwise_attention
from .model import manual_attention

PATHS = ("manual", "blockwise", "sdpa")  # the three ways, as the model's attn_backend names them

_PROFILER = threading.Lock()  # one profiler session at a time in a process (a second one would refuse to start)
RANGE = "llama.memory run "  # the profiler range of each MemoryMeter.run, numbered


class MemoryMeter:
    """Measure the peak bytes of several calls in one go (see the module docstring for what is counted):

        with MemoryMeter("cpu") as meter:
            meter.run(lambda: torch.empty(1000))    # each call's result is dropped when it returns
            meter.run(lambda: torch.empty(2000))
        meter.peaks                                  # [4000, 8000]: one per run, known after the block

    On a CPU the whole block is one profiler session (starting one takes a moment and logs a line), and each run
    is a named range in it: a run's peak is the largest running sum of allocations and frees inside its range,
    minus the sum at its start, so whatever is made between runs (their inputs) is not counted. On CUDA each
    run reads the allocator's peak counter. Raises ValueError for another device.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"peak memory is measured on cpu or cuda, not {self.device.type}")
        self.peaks: list[int] = []
        self._prof = None
        self._runs = 0

    def __enter__(self) -> "MemoryMeter":
        if self.device.type == "cpu":
            from torch.profiler import ProfilerActivity, profile

            _PROFILER.acquire()
            try:
                self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
                self._prof.__enter__()
            except BaseException:
                _PROFILER.release()
                raise
        return self

    def run(self, fn: Callable[[], object]) -> None:
        """Call fn() once, measured; its result is dropped."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            out = fn()
            torch.cuda.synchronize(self.device)
            self.peaks.append(int(torch.cuda.max_memory_allocated(self.device) - base))
            del out
            return
        with torch.profiler.record_function(f"{RANGE}{self._runs}"):
            out = fn()
            del out  # its free is recorded too
        self._runs += 1

    def __exit__(self, *exc) -> None:
        if self._prof is None:
            return
        try:
            self._prof.__exit__(*exc)
        finally:
            _PROFILER.release()
        if exc[0] is not None:
            return
        ranges, memory = {}, []
        for e in self._prof.profiler.kineto_results.events():
            if e.name() == "[memory]":
                memory.append((e.start_ns(), e.nbytes()))  # +bytes on allocation, -bytes on free
            elif e.name().startswith(RANGE):
                ranges[int(e.name()[len(RANGE):])] = (e.start_ns(), e.start_ns() + e.duration_ns())
        memory.sort()
        self.peaks = [0] * self._runs
        live, run, base = 0, None, 0
        for t, n in memory:
            if run is not None and t > ranges[run][1]:
                run = None
            if run is None:  # entering a run's range: its peak counts from the live bytes at its start
                run = next((i for i, (a, b) in ranges.items() if a <= t <= b), None)
                base = live
            live += n
            if run is not None:
                self.peaks[run] = max(self.peaks[run], live - base)


def peak_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Run fn() once and return the peak of live bytes it allocated (see the module docstring), result included.

    fn's result is dropped before returning. On a CPU the call runs under torch.profiler, so it is slower than
    usual; the bytes are not affected.

        >>> def f():
        ...     a, b = torch.empty(1000), torch.empty(2000)   # 4,000 + 8,000 bytes live at once
        ...     del a
        ...     return torch.empty(500)                         # 8,000 + 2,000
        >>> peak_bytes(f)
        12000
    """
    with MemoryMeter(device) as meter:
        meter.run(fn)
    return meter.peaks[0]


@dataclass(frozen=True)
class AttentionMemory:
    """Peak bytes of one causal attention call at each length, per path; peaks[path][i] is at lengths[i]."""

    lengths: tuple[int, ...]
    peaks: dict  # {"manual": (bytes, ...), "blockwise": ..., "sdpa": ...}
    n_heads: int
    n_kv_heads: int
    head_dim: int
    block_size: int
    dtype: torch.dtype
    device: torch.device

    def score_bytes(self, T: int) -> int:
        """One (nh, T, T) fp32 score tensor, the size of what the manual path's softmax reads."""
        return self.n_heads * T * T * 4


def attention_memory(n_heads: int, n_kv_heads: int, head_dim: int, lengths, block_size: int = 64,
                     dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                     progress: Callable[[float, str], None] | None = None) -> AttentionMemory:
    """Measure `peak_bytes` of one causal attention call (batch 1, a prefill of T positions: queries and keys
    0..T-1) for each path in PATHS and each T in lengths, on random q (1, nh, T, hs) and k, v (1, nkv, T, hs).
    The values do not change how much is allocated; the shapes, dtype and device do.

    The manual path gets its (T, T) boolean mask made before the measurement: the model builds it once per
    forward pass and every layer shares it. Each path runs once at the first length before anything is measured,
    so one-time set-up (thread pools, kernel choice) is not counted. progress(fraction, text) is called before
    each measurement. Raises ValueError for a head count that is not a multiple of the K/V head count.

        >>> m = attention_memory(6, 3, 32, [64, 128])
        >>> m.peaks["manual"][1] > m.peaks["blockwise"][1]
        True
    """
    if n_heads % n_kv_heads:
        raise ValueError(f"{n_heads} query heads cannot share {n_kv_heads} K/V heads evenly")
    device = torch.device(device)
    gqa = n_heads != n_kv_heads

    def call(path: str, T: int) -> Callable[[], torch.Tensor]:
        q = torch.randn(1, n_heads, T, head_dim, dtype=dtype, device=device)  # (B, nh, T, hs)
        k = torch.randn(1, n_kv_heads, T, head_dim, dtype=dtype, device=device)  # (B, nkv, T, hs)
        v = torch.randn(1, n_kv_heads, T, head_dim, dtype=dtype, device=device)  # (B, nkv, T, hs)
        if path == "manual":
            mask = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T) True = may attend
            return lambda: manual_attention(q, k, v, mask)[0]
        if path == "blockwise":
            return lambda: blockwise_attention(q, k, v, block_size=block_size)
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)

    lengths = tuple(int(T) for T in lengths)
    n, i = len(PATHS) * len(lengths), 0
    with torch.no_grad():
        for path in PATHS:
            call(path, lengths[0])()  # warm-up, not measured
        with MemoryMeter(device) as meter:  # one profiler session for every run
            for path in PATHS:
                for T in lengths:
                    if progress is not None:
                        progress(i / n, f"{path}, T = {T}")
                    i += 1
                    meter.run(call(path, T))
    it = iter(meter.peaks)
    peaks = {p: tuple(next(it) for _ in lengths) for p in PATHS}
    return AttentionMemory(lengths, peaks, n_heads, n_kv_heads, head_dim, block_size, dtype, device)
