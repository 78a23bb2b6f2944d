"""Blockwise causal attention with an online softmax: the idea behind FlashAttention, in plain PyTorch.

model.py's "manual" path builds all the scores of a call at once, a (T, S) matrix per head, and then
takes a softmax over each row. This module computes the same softmax(q k^T / sqrt(hs)) v one tile at
a time. No more than one (block_size, block_size) tile of scores exists at any moment, and tiles that
lie wholly in the future of their queries (every score masked) are never computed. It adds two ideas
and no new maths:

- the online softmax (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax"): a row's
  softmax can be built from its keys one block at a time. It keeps a running maximum m, a running sum
  l of exp(score - m) and a running output o. When a later block raises the maximum, everything
  accumulated so far is rescaled by exp(m_old - m_new), so the result is exact, not an approximation;
- tiling (Dao et al. 2022, "FlashAttention: Fast and Memory-Efficient Exact Attention with
  IO-Awareness", Algorithm 1): loop over blocks of queries, and for each one over blocks of keys.
  FlashAttention (v1) keeps the output normalised after every key block (it divides by the running sum
  each time); this module, like FlashAttention-2 (Dao 2023, "FlashAttention-2: Faster Attention with
  Better Parallelism and Work Partitioning", section 3.1.1), keeps o unnormalised and divides by l once,
  after the last block. The causal skipping is FlashAttention-2's too (its section 3.1.1): a key block
  that starts after the last position of a query block holds nothing those queries may see, so it is
  skipped. A causal prefill of n blocks computes n(n+1)/2 of the n^2 tiles.

This is the teaching version, with Python loops over blocks, so on a CPU it is slower than the manual
path. FlashAttention runs the same loops inside one GPU kernel and keeps each tile in fast on-chip
memory, which is where its speed comes from.
"""

from __future__ import annotations

import math

import torch


def blockwise_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor | None = None,
                        block_size: int = 64) -> torch.Tensor:
    """Causal attention softmax(q k^T / sqrt(hs)) v computed tile by tile; the same numbers as the manual path.

    q is (B, nh, T, hs); k and v are (B, nkv, S, hs), with nh a multiple of nkv (GQA; MQA when nkv == 1).
    Key j sits at position j. The query in row i sits at position q_pos[i] and sees the keys at positions
    0 .. q_pos[i]. The default q_pos is S-T .. S-1: the queries are the last T positions, as in a prefill
    (S == T) or in a call that continues a KV cache. Returns (B, nh, T, hs).

    For each block of query rows, m (running max), l (running sum) and o (running output) start at
    -inf, 0 and 0. Each key block that is not wholly in the future gives a tile of scores s (bq, bk)
    with future keys set to -inf, and updates every row:

        m_new = max(m, rowmax(s))
        p     = exp(s - m_new)               # this tile's unnormalised probabilities
        c     = exp(m - m_new)               # rescales what was summed under the old maximum
        l     = c * l + rowsum(p)
        o     = c * o + p @ v_tile
        m     = m_new

    and after the last key block the rows are o / l. The sums are kept in fp32, as the manual path's softmax is.

        >>> q, k, v = torch.randn(1, 4, 10, 8), torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
        >>> blockwise_attention(q, k, v, block_size=4).shape  # 3 query blocks, 1 + 2 + 3 = 6 tiles of 4 x 4
        torch.Size([1, 4, 10, 8])
    """
    if block_size < 1:
        raise ValueError(f"block_size must be a positive number of positions, not {block_size}")
    B, nh, T, hs = q.shape
    nkv, S = k.shape[1], k.shape[2]
    if q_pos is None:
        q_pos = torch.arange(S - T, S, device=q.device)  # (T,)
    # GQA without copying K/V: group the query heads that share a K/V head, and broadcast that head.
    q = q.view(B, nkv, nh // nkv, T, hs)  # (B, nkv, n_rep, T, hs)
    k, v = k[:, :, None], v[:, :, None]  # (B, nkv, 1, S, hs)
    y = torch.empty_like(q)  # (B, nkv, n_rep, T, hs)

    for i0 in range(0, T, block_size):
        i1 = min(i0 + block_size, T)
        q_blk, pos = q[:, :, :, i0:i1], q_pos[i0:i1]  # (B, nkv, n_rep, bq, hs), (bq,)
        m = torch.full(q_blk.shape[:-1] + (1,), float("-inf"), device=q.device,
                       dtype=torch.float32)  # (B, nkv, n_rep, bq, 1)
        l = torch.zeros_like(m)  # (B, nkv, n_rep, bq, 1)
        o = torch.zeros(q_blk.shape, device=q.device, dtype=torch.float32)  # (B, nkv, n_rep, bq, hs)
        # Keys after the block's last position are in the future of every row in it: skip those blocks.
        # (The first key block is never skipped and every row sees key 0, so m is finite after it.)
        visible = min(S, int(pos.max()) + 1)
        for j0 in range(0, visible, block_size):
            j1 = min(j0 + block_size, S)
            s = (q_blk @ k[:, :, :, j0:j1].transpose(-2, -1) / math.sqrt(hs)).float()  # (B, nkv, n_rep, bq, bk)
            future = torch.arange(j0, j1, device=q.device)[None, :] > pos[:, None]  # (bq, bk) True = masked
            s = s.masked_fill(future, float("-inf"))
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))  # (B, nkv, n_rep, bq, 1)
            p = torch.exp(s - m_new)  # (B, nkv, n_rep, bq, bk), 0 where masked
            c = torch.exp(m - m_new)  # (B, nkv, n_rep, bq, 1), 0 on the first tile (m = -inf)
            l = c * l + p.sum(-1, keepdim=True)
            o = c * o + p @ v[:, :, :, j0:j1].float()  # (B, nkv, n_rep, bq, hs)
            m = m_new
        y[:, :, :, i0:i1] = (o / l).to(q.dtype)
    return y.view(B, nh, T, hs)
