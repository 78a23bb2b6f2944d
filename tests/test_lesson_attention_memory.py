"""Lesson 2 (attention), "Attention without storing the weights": peak memory measured by llama.memory, and the
online softmax of one real query row, on the course model and on stories260K."""

import math

import numpy as np
import pytest
import torch

from lessons.efficient_attention import compute as C
from llama.blockwise import blockwise_attention
from llama.memory import MemoryMeter, attention_memory, peak_bytes

TEXT = "To be, or not to be: that is the question. Whether 'tis nobler in the mind to suffer."


def test_peak_bytes_is_the_largest_sum_of_live_allocations():
    def f():
        a, b = torch.empty(1000), torch.empty(2000)  # 4,000 + 8,000 bytes live together
        del a
        c = torch.empty(500)  # 8,000 + 2,000: less than before
        return b, c

    assert peak_bytes(f) == 12_000
    assert peak_bytes(lambda: torch.empty(0)) == 0
    with MemoryMeter("cpu") as meter:  # several runs in one profiler session: what is made between them is not counted
        keep = torch.empty(5000)
        meter.run(f)
        more = torch.empty(7000)
        meter.run(lambda: torch.empty(1000))
        meter.run(lambda: None)
        meter.run(f)
    assert meter.peaks == [12_000, 4000, 0, 12_000] and keep.numel() + more.numel() == 12_000


def test_manual_holds_every_score_and_grows_quadratically_blockwise_does_not(cm):
    """The manual path allocates the whole (nh, T, T) fp32 score tensor, so its peak is at least that; its other
    allocations (K/V copies for GQA, the output) are linear in T, so once the scores dominate, doubling T multiplies
    the peak by nearly 4 (more than 3 here). The blockwise path holds tiles of at most block x block scores and
    linear state, so doubling T at most about doubles it, and at a long T it is below one score tensor."""
    cfg = cm.config
    m = attention_memory(cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, (256, 512), block_size=64)
    man, blk, sdpa = m.peaks["manual"], m.peaks["blockwise"], m.peaks["sdpa"]
    for i, T in enumerate(m.lengths):
        assert man[i] >= m.score_bytes(T) == cfg.n_heads * T * T * 4
    assert 3.0 < man[1] / man[0] < 4.5
    assert blk[1] < m.score_bytes(512) < man[1] and blk[1] / blk[0] < 2.5
    out = cfg.n_heads * 512 * cfg.head_dim * 4  # every path returns the (nh, T, hs) output: it is counted
    assert min(man[1], blk[1], sdpa[1]) >= out


@pytest.mark.parametrize("which", ["cm", "stories_cm"])
def test_memory_view_measures_the_models_head_shapes_up_to_its_context(request, which):
    cm = request.getfixturevalue(which)
    cfg = cm.config
    lengths, note = C.memory_lengths(cm, C.REACH_CHOICES[0])
    assert lengths[-1] == cfg.max_seq_len and all(b == 2 * a for a, b in zip(lengths, lengths[1:]))
    notice, m, _ = C.measure_memory(cm, C.REACH_CHOICES[0])
    assert notice == "" and m.lengths == lengths and (m.n_heads, m.n_kv_heads, m.head_dim) == \
        (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim)
    assert m.block_size == cm.model.attn_block_size and m.dtype == cm.model.embed_tokens.weight.dtype
    assert C.measure_memory(cm, C.REACH_CHOICES[0])[1] is m  # cached per (model, lengths): measured once
    assert m.peaks["manual"][-1] > m.peaks["blockwise"][-1]
    fig = C.memory_figure(m)
    assert [list(t.x) for t in fig.data] == [list(lengths)] * 4
    np.testing.assert_allclose(fig.data[0].y, np.array(m.peaks["manual"]) / 2 ** 20)
    assert f"{cfg.n_heads} query heads, {cfg.n_kv_heads} K/V heads, head size {cfg.head_dim}" in fig.layout.title.text
    md = C.memory_readout(m, note)
    assert f"| {lengths[-1]} |" in md and "quadratic term grows × 4" in md
    notice, *_ = C.memory_view(cm, "x" * 100_000)  # a hostile choice: the default, with a short notice
    assert "not one of" in notice and len(notice) < 300


def test_four_times_the_context_is_capped_by_the_score_limit(stories_cm):
    cfg = stories_cm.config
    lengths, note = C.memory_lengths(stories_cm, C.REACH_CHOICES[1])
    cap = math.isqrt(C.MEMORY_SCORE_LIMIT // (4 * cfg.n_heads))
    assert lengths[-1] == min(4 * cfg.max_seq_len, cap) and len(lengths) <= C.MEMORY_POINTS
    assert cfg.n_heads * lengths[-1] ** 2 * 4 <= C.MEMORY_SCORE_LIMIT
    assert ("stopped at" in note) == (cap < 4 * cfg.max_seq_len)


@pytest.mark.parametrize("which", ["cm", "stories_cm"])
def test_online_softmax_ends_at_the_full_softmax_of_the_real_row(request, which):
    cm = request.getfixturevalue(which)
    t = C.trace_text(cm, TEXT)
    for layer, head, query, block in ((0, 0, t.n_tokens - 1, 4), (t.n_layers - 1, t.n_heads - 1, t.n_tokens // 2, 3),
                                      (1, 1, 5, 1), (0, 1, 0, 4), (1, 0, 7, 64)):
        r = C.online_softmax(t, layer, head, query, block)
        kv = head // t.n_rep
        q = torch.tensor(t.q[layer, head, query], dtype=torch.float64)  # (hs,)
        k = torch.tensor(t.k[layer, kv, : query + 1], dtype=torch.float64)  # (query + 1, hs)
        v = torch.tensor(t.v[layer, kv, : query + 1], dtype=torch.float64)
        row = k @ q / math.sqrt(t.head_dim)  # (query + 1,) the visible scores
        ref = torch.softmax(row, -1) @ v  # (hs,)
        np.testing.assert_allclose(r.out, ref.numpy(), atol=1e-6, rtol=0)
        assert r.max_diff < 1e-6
        assert [(s.j0, s.j1) for s in r.steps] == [(j, min(j + block, query + 1)) for j in range(0, query + 1, block)]
        m_run = np.maximum.accumulate([float(row[s.j0:s.j1].max()) for s in r.steps])  # the running max
        np.testing.assert_allclose([s.m for s in r.steps], m_run, rtol=1e-6)
        last = r.steps[-1]
        np.testing.assert_allclose(last.l, float(torch.exp(row - last.m).sum()), rtol=1e-9)
        assert r.steps[0].c == 0.0 and all(0 < s.c <= 1 for s in r.steps[1:])
        # the model's blockwise backend on the same row, with the same key blocks, gives the same output (fp32)
        y = blockwise_attention(q.float()[None, None, None], k.float()[None, None], v.float()[None, None],
                                q_pos=torch.tensor([query]), block_size=block)
        np.testing.assert_allclose(y[0, 0, 0].numpy(), r.out, atol=1e-5)


def test_online_view_follows_the_sliders_and_clamps_the_block(cm):
    t = C.trace_text(cm, TEXT)
    notice, b, md = C.online_view(cm, TEXT, 1, 2, 9, 4)
    assert notice == "" and b == 4 and "**Query 9" in md and md.count("\n| ") == 1 + 3  # header + 3 blocks of 10 keys
    notice, b, md = C.online_view(cm, TEXT, 1, 2, 9, float("nan"))
    assert "Keys per block" in notice and b == C.BLOCK_DEFAULT
    notice, b, _ = C.online_view(cm, TEXT, 99, 2, 9, 0)
    assert "Layer" in notice and "Keys per block" in notice and b == 1
    r = C.online_softmax(t, 1, 2, 9, 4)
    assert f"**{r.max_diff:.1e}**" in md
