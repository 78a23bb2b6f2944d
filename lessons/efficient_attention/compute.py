"""Lesson 13, efficient attention: the same attention output without storing the T x T table of weights.

Split out of lesson 3 (`lessons.attention`), whose traced forward pass it reads (`trace_text`, `read_sliders`):

- the peak memory of one causal attention call, measured (llama.memory, not estimated) for the manual, blockwise
  and fused paths on the model's head shapes, when the learner asks;
- the online softmax (Milakov & Gimelshein 2018; FlashAttention, Dao et al. 2022, Algorithm 1) on one real query
  row, block of keys by block of keys, ending exactly at the full softmax's output.

Notation as in lessons.attention: nh query heads, nkv key/value heads, hs head size, T tokens (BOS first).
Nothing here imports Gradio; `app/pages/efficient_attention.py` lays these out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from lessons.attention import compute as A
from lessons.attention.compute import MAX_TOKENS, Traced, _axis, _figure, read_sliders, softmax, trace_text
from lessons.course import LRU, CourseModel
from lessons.grading import Question
from lessons.inputs import choice, join, whole
from llama.memory import attention_memory

DEFAULT_TEXT = A.DEFAULT_TEXT  # lesson 3's text: one cached traced pass serves both pages

# ----------------------------------------------------------------------------- attention without storing the weights

# Peak memory of one causal attention call, measured by llama.memory (not estimated) on the model's device, for the
# model's head shapes. A length stops where one (nh, T, T) fp32 score tensor would pass MEMORY_SCORE_LIMIT: the
# manual path holds about two of them, on a machine that serves a class.
MEMORY_SCORE_LIMIT = 64 * 2 ** 20  # bytes
MEMORY_POINTS = 6  # lengths measured: the longest, then halving
MEMORY_SHORTEST = 16
PATH_NAMES = {"manual": "manual: every score at once", "blockwise": "blockwise: one tile at a time (llama.blockwise)",
              "sdpa": "fused kernel (F.scaled_dot_product_attention)"}
PATH_COLORS = {"manual": "#dc2626", "blockwise": "#2563eb", "sdpa": "#059669"}
REACH_CHOICES = ["up to the model's context", "up to 4 × the context"]
MEMORY_WAITING = ("Press Measure peak memory: each path runs once per length on this machine, and the figure "
                  "shows what PyTorch's allocator held at the peak.")
_MEMORY = LRU(8)  # (model, lengths, block size) -> llama.memory.AttentionMemory


def memory_lengths(cm: CourseModel, reach: str) -> tuple[tuple[int, ...], str]:
    """The sequence lengths to measure: the longest (the model's context, or 4 times it), then halving, at most
    MEMORY_POINTS of them, none shorter than MEMORY_SHORTEST; capped where one (nh, T, T) fp32 score tensor
    would pass MEMORY_SCORE_LIMIT. Returns (lengths, increasing; a sentence on how they were chosen).

        >>> memory_lengths(cm, REACH_CHOICES[0])[0]        # course model: context 256
        (16, 32, 64, 128, 256)
    """
    cfg = cm.config
    want = cfg.max_seq_len * (4 if reach == REACH_CHOICES[1] else 1)
    cap = math.isqrt(MEMORY_SCORE_LIMIT // (4 * cfg.n_heads))
    top = min(want, cap)
    lengths = []
    T = top
    while T >= MEMORY_SHORTEST and len(lengths) < MEMORY_POINTS:
        lengths.append(T)
        T //= 2
    lengths = tuple(sorted(lengths or [top]))
    note = f"T = {', '.join(map(str, lengths))}"
    if top < want:
        note += (f" (stopped at {top}: at {want} one {cfg.n_heads}-head score tensor alone would take "
                 f"{cfg.n_heads * want * want * 4 / 2 ** 20:,.0f} MiB)")
    elif want > cfg.max_seq_len:
        note += f", past the model's context of {cfg.max_seq_len}: random tensors of its head shapes"
    return lengths, note


def measure_memory(cm: CourseModel, reach, progress=None):
    """Peak memory of one causal attention call for each path and length (llama.memory.attention_memory), with the
    model's heads, K/V heads, head size, dtype, device and blockwise tile size; cached per (model, lengths).
    Returns (notice, AttentionMemory, the lengths sentence)."""
    reach, notice = choice(reach, "Lengths", REACH_CHOICES, default=REACH_CHOICES[0])
    lengths, note = memory_lengths(cm, reach)
    cfg, w = cm.config, cm.model.embed_tokens.weight
    device = w.device if w.device.type in ("cpu", "cuda") else torch.device("cpu")  # what llama.memory can measure
    block = cm.model.attn_block_size
    m = _MEMORY.get_or_compute((cm.model, lengths, block), lambda: attention_memory(
        cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, lengths, block, w.dtype, device, progress))
    return notice, m, note


def _mib(n: float) -> str:
    return f"{n / 2 ** 20:,.2f}" if n < 10 * 2 ** 20 else f"{n / 2 ** 20:,.0f}"


def memory_figure(m) -> go.Figure:
    """Peak MiB against T on log-log axes (a slope of 2 is a quadratic, of 1 a linear growth), one line per path,
    and one (nh, T, T) fp32 score tensor dashed for scale."""
    T = list(m.lengths)
    data = [dict(type="scatter", x=T, y=[b / 2 ** 20 for b in m.peaks[p]], mode="lines+markers", name=PATH_NAMES[p],
                 line=dict(color=PATH_COLORS[p], width=3), marker=dict(size=8),
                 hovertemplate=f"{p}<br>T = %{{x}}<br>peak %{{y:.3f}} MiB<extra></extra>") for p in m.peaks]
    data.append(dict(type="scatter", x=T, y=[m.score_bytes(t) / 2 ** 20 for t in T], mode="lines",
                     name=f"one ({m.n_heads}, T, T) fp32 score tensor", line=dict(color="#71717a", dash="dash"),
                     hovertemplate="T = %{x}<br>%{y:.3f} MiB<extra></extra>"))
    dtype = str(m.dtype).replace("torch.", "")
    return _figure(data, dict(
        title=dict(text=f"Peak memory of one causal attention call, measured on {m.device.type}"
                        f"<br><sup>{m.n_heads} query heads, {m.n_kv_heads} K/V heads, head size {m.head_dim}, "
                        f"{dtype}, batch 1 · blockwise tiles of {m.block_size}</sup>"),
        height=460, margin=dict(l=10, r=10, t=80, b=10), legend=dict(orientation="h", y=-0.25, x=0),
        xaxis=_axis("sequence length T (tokens, log scale)", type="log", tickvals=T, ticktext=[str(t) for t in T]),
        yaxis=_axis("peak memory (MiB, log scale)", type="log")))


def memory_readout(m, note: str) -> str:
    """The measured numbers in a table, and the growth from the second-longest to the longest length in words."""
    rows = ["| T | " + " | ".join(m.peaks) + " | one score tensor |", "|---|" + "---|" * (len(m.peaks) + 1)]
    rows += [f"| {T} | " + " | ".join(_mib(m.peaks[p][i]) for p in m.peaks) + f" | {_mib(m.score_bytes(T))} |"
             for i, T in enumerate(m.lengths)]
    lines = [f"**Measured** ({note}), peak MiB above what was held before the call, output included:", "",
             *rows, ""]
    if len(m.lengths) > 1:
        a, b = m.lengths[-2], m.lengths[-1]
        growth = ", ".join(f"{p} × {m.peaks[p][-1] / max(m.peaks[p][-2], 1):.2f}" for p in m.peaks)
        lines.append(f"From T = {a} to T = {b} (× {b / a:g} the length; a quadratic term grows × {(b / a) ** 2:g}) "
                     f"the peaks grew: {growth}.")
    T, least = m.lengths[-1], min(m.peaks, key=lambda p: m.peaks[p][-1])
    share = {p: m.peaks[p][-1] / m.score_bytes(T) for p in m.peaks}
    lines.append(f"At T = {T}, in score tensors: manual {share['manual']:.2f}, blockwise {share['blockwise']:.2f}, "
                 f"fused kernel {share['sdpa']:.2f}; the smallest peak is {least}'s.")
    return "\n".join(lines)


def memory_view(cm: CourseModel, reach, progress=None) -> tuple[str, go.Figure, str]:
    """What the Measure button shows: (notice, figure, readout)."""
    notice, m, note = measure_memory(cm, reach, progress)
    return notice, memory_figure(m), memory_readout(m, note)


# The online softmax, one query row at a time: the update blockwise attention makes for every row of a tile.

BLOCK_DEFAULT = 4  # keys per block on the page


@dataclass
class OnlineStep:
    """The running state after one block of keys j0 .. j1-1 (Milakov & Gimelshein 2018; Dao et al. 2022, Alg. 1)."""

    j0: int
    j1: int
    block_max: float  # the largest scaled score in this block
    m: float  # running max over every key so far
    c: float  # exp(m_old - m): what rescales the sums made under the old max (0 for the first block)
    l: float  # running sum of exp(s_j - m)
    o: np.ndarray  # (hs,) running sum of exp(s_j - m) v_j; o / l is the answer from the keys so far


@dataclass
class OnlineSoftmax:
    """One query row split into key blocks, its steps, and the same row's output by the full softmax at once."""

    layer: int
    head: int
    query: int
    block: int
    steps: list  # OnlineStep per block
    out: np.ndarray  # (hs,) o / l after the last block
    full: np.ndarray  # (hs,) softmax(s) @ v computed at once

    @property
    def max_diff(self) -> float:
        return float(np.abs(self.out - self.full).max())


def online_softmax(t: Traced, layer: int, head: int, query: int, block: int) -> OnlineSoftmax:
    """The online softmax of one real query row (the traced q_rot, k_rot, v), in float64 so that any difference
    from the full softmax is the algorithm's and not rounding. For each block of keys, with s the scaled scores:

        m_new = max(m, max_j s_j);  c = exp(m - m_new);  l = c l + sum_j exp(s_j - m_new);
        o = c o + sum_j exp(s_j - m_new) v_j;  m = m_new            and at the end out = o / l

    Keys after the query (masked) are never visited: the row stops at the query's own position.

        >>> r = online_softmax(t, 0, 0, 9, 4); [(s.j0, s.j1) for s in r.steps]
        [(0, 4), (4, 8), (8, 10)]
    """
    kv = t.kv_head(head)
    q = t.q[layer, head, query].astype(np.float64)  # (hs,)
    k = t.k[layer, kv, : query + 1].astype(np.float64)  # (query + 1, hs) visible keys only
    v = t.v[layer, kv, : query + 1].astype(np.float64)  # (query + 1, hs)
    scores = np.einsum("jd,d->j", k, q) / math.sqrt(t.head_dim)  # (query + 1,) einsum: see head_scores
    m, l, o = -np.inf, 0.0, np.zeros(t.head_dim)
    steps = []
    for j0 in range(0, query + 1, block):
        j1 = min(j0 + block, query + 1)
        blk = scores[j0:j1]
        m_new = max(m, float(blk.max()))
        p = np.exp(blk - m_new)  # (j1 - j0,) this block's unnormalised weights
        c = math.exp(m - m_new)  # 0.0 on the first block (m = -inf)
        l = c * l + float(p.sum())
        o = c * o + p @ v[j0:j1]
        m = m_new
        steps.append(OnlineStep(j0, j1, float(blk.max()), m, c, l, o.copy()))
    full = softmax(scores) @ v  # (hs,) every weight at once
    return OnlineSoftmax(layer, head, query, block, steps, o / l, full)


def online_table(t: Traced, r: OnlineSoftmax) -> str:
    """The steps as a Markdown table, and the final comparison with the full softmax."""
    def keys(a, b):
        return t.labels[a] if b - a == 1 else f"{t.labels[a]} … {t.labels[b - 1]}"

    n = r.query + 1
    blocks = f"{len(r.steps)} block{'s' if len(r.steps) > 1 else ''}"
    lines = [f"**Query {r.query} ({t.labels[r.query]}), layer {r.layer}, head {r.head}:** its {n} visible keys in "
             f"{blocks} of at most {r.block}, scores s = q·k / √d. Start: m = −∞, l = 0, o = 0.",
             "", "| block | keys | largest score in the block | running max m | rescale c = e^(m_old − m) "
             "| running sum l | distance from o / l to the final output |", "|---|---|---|---|---|---|---|"]
    for i, st in enumerate(r.steps):
        dist = float(np.linalg.norm(st.o / st.l - r.out))
        lines.append(f"| {i + 1} | {keys(st.j0, st.j1)} | {st.block_max:+.3f} | {st.m:+.3f} | {st.c:.4f} | "
                     f"{st.l:.4f} | {dist:.4f} |")
    lines += ["", f"After the last block, o / l is the head's output for this query. The full softmax of the same "
                  f"{n} scores at once, softmax(s) · v: the largest difference over the {t.head_dim} components is "
                  f"**{r.max_diff:.1e}** (both in float64)."]
    rose = sum(1 for st in r.steps[1:] if st.c < 1)
    if len(r.steps) > 1 and rose:
        lines.append(f"The running max rose in {rose} of the {len(r.steps) - 1} blocks after the first; each time, "
                     "c < 1 scaled down what had been summed under the old max.")
    elif len(r.steps) > 1:
        lines.append("The first block already held this row's largest score, so m never moved and c stayed 1: "
                     "try another query or head, or fewer keys per block, to see a rescaling.")
    return "\n".join(lines)


def online_view(cm: CourseModel, text, layer, head, query, block) -> tuple[str, int, str]:
    """The online-softmax table for the page's layer, head and query on the analyzed text.
    Returns (notice, the keys per block used, table)."""
    t = trace_text(cm, text)
    sl = read_sliders(t, layer, head, query)
    b, n = whole(block, "Keys per block", 1, MAX_TOKENS, default=BLOCK_DEFAULT)
    return join(sl.notice, n), b, online_table(t, online_softmax(t, sl.layer, sl.head, sl.query, b))


# ----------------------------------------------------------------------------- a question that teaches

Q_RUNNING = Question(
    "efficient-running",
    "In the online softmax, after only some of a row's blocks of keys, what is o / l?",
    ("already the final output", "the exact attention output over the keys seen so far",
     "nothing meaningful until the last block"),
    misconception="that a blockwise softmax is an approximation that becomes right only at the end: after every "
                  "block, o / l is exactly the softmax-weighted average over the keys seen so far")


def reveal_running(cm: CourseModel, text, layer, head, query, block, picked) -> str:
    """Grade Q_RUNNING on the chosen row: after each block, o / l against softmax over the keys seen so far (the
    prefix) and against the final output."""
    t = trace_text(cm, text)
    sl = read_sliders(t, layer, head, query)
    b, notice = whole(block, "Keys per block", 1, MAX_TOKENS, default=BLOCK_DEFAULT)
    r = online_softmax(t, sl.layer, sl.head, sl.query, b)
    kv = t.kv_head(sl.head)
    q = t.q[sl.layer, sl.head, sl.query].astype(np.float64)
    k = t.k[sl.layer, kv, : sl.query + 1].astype(np.float64)
    v = t.v[sl.layer, kv, : sl.query + 1].astype(np.float64)
    s = np.einsum("jd,d->j", k, q) / math.sqrt(t.head_dim)
    prefix = [float(np.abs(st.o / st.l - softmax(s[: st.j1]) @ v[: st.j1]).max()) for st in r.steps]
    final = [float(np.abs(st.o / st.l - r.out).max()) for st in r.steps[:-1]]
    if len(r.steps) < 2:
        answer = (Q_RUNNING.choices[0], Q_RUNNING.choices[1])  # one block: both are true (a tie)
    elif max(prefix) < 1e-9:
        answer = Q_RUNNING.choices[1]
    elif max(final) < 1e-9:
        answer = Q_RUNNING.choices[0]
    else:
        answer = Q_RUNNING.choices[2]
    body = (f"Query {r.query} of layer {r.layer}, head {r.head}, in {len(r.steps)} block(s) of at most {b} keys. "
            f"After each block, o / l differs from softmax over the keys seen so far by at most **{max(prefix):.1e}** "
            "(float64 rounding)" + (f", and from the final output by up to **{max(final):.3f}** before the last "
                                    "block" if final else "") +
            ". The table below shows it block by block: its last column shrinks to 0 only at the last block.")
    said = join(sl.notice, notice)
    return Q_RUNNING.reveal(picked, answer, body) + (f"\n\n⚠️ {said}" if said else "")
