"""Lesson 2, attention: the course model's real attention, taken apart one step at a time.

Everything here starts from one traced forward pass of the course model on the learner's text
(`model(ids, trace=True)`), run once per text and cached, so that moving a slider only slices
tensors that already exist. Then, for one layer and head:

    scores = q_rot @ k_rot^T / sqrt(hs)        # (T, T) how well each query matches each key
    scores[j > i] = -inf                       # causal mask: position i may not look ahead
    attn = softmax(scores, dim=-1)             # (T, T) each row sums to 1
    out = attn @ v                             # (T, hs) a weighted average of value vectors

which is exactly what `llama.model.Attention` computes (its "manual" path), and a test checks
that our reconstruction equals the traced `attn` to float precision.

The last section, attention without storing the weights, measures the peak memory of one attention call for
the manual, blockwise and fused paths (llama.memory, on the model's head shapes, when the learner asks), and
runs the online softmax (Milakov & Gimelshein 2018; FlashAttention, Dao et al. 2022, Algorithm 1) on one real
query row, block of keys by block of keys.

Notation (shape comments):
    L    layers             nh   query heads        nkv  key/value heads (GQA: nh = nkv * n_rep)
    T    tokens (BOS first) hs   head size, the "d" of 1/sqrt(d)

Functions named `*_view` are what the page calls. Every slider value goes through `read_sliders`
(lessons.inputs: clamped, rounded, NaN and non-numbers replaced, each with a notice); text the model
cannot use raises `LessonError`, which the page shows as a notice while the figures keep the last
analyzed text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from lessons.course import LRU, CourseModel, plot_label, prepare_text, token_label, trace, unique_labels
from lessons.grading import grade
from lessons.inputs import LessonError, choice, join, number, whole
from lessons.plots import grid, panel_axes, sparse_labels
from llama.memory import attention_memory

MAX_TOKENS = 128  # the page's limit (BOS included); longer text is cut with a notice
DEFAULT_TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
                "All:\nSpeak, speak.")
MASKED_COLOR = "#d4d4d8"  # plot background behind masked (NaN) cells: the causal mask shows as grey
COLORSCALE = "Viridis"

# ----------------------------------------------------------------------------- the traced forward pass


@dataclass(frozen=True)
class Traced:
    """One text's attention tensors, every layer stacked, batch dimension dropped. Kept as numpy: the
    slicing and small sums after the forward pass run faster there than as many tiny torch ops,
    which pay for thread start-up on every call (and the CPU is shared)."""

    ids: tuple[int, ...]
    labels: list[str]  # numbered, plot-safe token labels: ['0 &lt;s&gt;', '1 First', ...]
    notice: str  # cut text, byte-level tokens ...: shown above the figures
    attn: np.ndarray  # (L, nh, T, T) float32, the model's attention probabilities
    q: np.ndarray  # (L, nh, T, hs) queries after RoPE (q_rot)
    k: np.ndarray  # (L, nkv, T, hs) keys after RoPE (k_rot)
    v: np.ndarray  # (L, nkv, T, hs) values (RoPE does not touch them)

    @property
    def n_layers(self) -> int:
        return self.attn.shape[0]

    @property
    def n_heads(self) -> int:
        return self.attn.shape[1]

    @property
    def n_tokens(self) -> int:
        return self.attn.shape[2]

    @property
    def head_dim(self) -> int:
        return self.q.shape[-1]

    @property
    def n_rep(self) -> int:
        return self.q.shape[1] // self.k.shape[1]

    def kv_head(self, head: int) -> int:
        """GQA: query head h reads key/value head h // n_rep (as `repeat_kv` arranges), e.g. 8 heads, 4 KV: 5 -> 2."""
        return head // self.n_rep


def _byte_pieces(cm: CourseModel, ids: list[int]) -> int:
    """How many tokens are fragments of a multi-byte character (emoji, CJK, ...)."""
    tok, n = cm.tokenizer, 0
    for i in ids[1:]:
        try:
            tok.token_bytes(i).decode("utf-8")
        except UnicodeDecodeError:
            n += 1
    return n


_prepared_cache = LRU(64)  # text -> Prepared (tokenizing 5,000 characters takes ~10 ms)
_traced_cache = LRU(16)  # ids -> Traced, a few MB each for the shipped model


def clear_caches() -> None:
    """Forget every cached text and trace (the benchmark uses it to time a cold forward pass)."""
    _prepared_cache.clear()
    _traced_cache.clear()
    _RERUNS.clear()


def _run_model(cm: CourseModel, ids: tuple[int, ...], notice: str) -> Traced:
    layers = trace(cm.model, ids).layers
    if layers and layers[0].attn is None:
        raise RuntimeError("attention probabilities are only recorded by the 'manual' attention backend")

    def stack(name):
        a = torch.stack([getattr(lt, name)[0] for lt in layers]).float().cpu().numpy()  # (L, heads, T, ...)
        a.flags.writeable = False  # shared by every learner who types this text: slicing only
        return a

    labels = [plot_label(s) for s in unique_labels([token_label(cm.tokenizer, i) for i in ids])]
    return Traced(ids, labels, notice, stack("attn"), stack("q_rot"), stack("k_rot"), stack("v"))


def trace_text(cm: CourseModel, text: str) -> Traced:
    """Tokenize (BOS + at most MAX_TOKENS - 1 tokens) and run the traced forward pass, both cached.
    Raises LessonError with a message for the page when there is nothing to show (empty text).

        >>> t = trace_text(cm, "To be, or not to be")
        >>> t.attn.shape                    # (L, nh, T, T) for the course model
        (6, 6, 8, 8)
    """
    p = _prepared_cache.get_or_compute((cm.model, text), lambda: prepare_text(cm, text, MAX_TOKENS))
    notices = [p.notice] if p.notice else []
    n_bytes = _byte_pieces(cm, p.ids)
    if n_bytes:
        notices.append(f"{n_bytes} of the {len(p.ids) - 1} tokens are single bytes of characters the tokenizer "
                       "has no piece for (emoji, other scripts), shown as &lt;F0&gt;-style hex. The model saw "
                       "almost none of them in Shakespeare, so expect odd patterns.")
    ids = tuple(p.ids)
    return _traced_cache.get_or_compute((cm.model, ids), lambda: _run_model(cm, ids, " ".join(notices)))


# ----------------------------------------------------------------------------- slider values

SCALE_MIN = 0.1  # the scale slider's lower end


def scale_max(head_dim: int) -> float:
    """The scale slider's upper end: at least 10, and always past sqrt(hs) (no division at all)."""
    return float(max(10, math.ceil(math.sqrt(head_dim))))


@dataclass(frozen=True)
class Sliders:
    layer: int
    head: int
    query: int
    factor: float
    notice: str  # what was clamped or rounded, '' when nothing was


def read_sliders(t: Traced, layer, head, query=None, factor=1.0) -> Sliders:
    """The page's slider values (or an API client's) made valid for this text and model, with a notice.
    NaN, inf, 1e20, -3, 4.5 and 'abc' all arrive here: lessons.inputs clamps and rounds them.

        >>> read_sliders(t, 9, 1, 50).layer, t.n_layers        # course model: 6 layers
        (5, 6)
    """
    lay, n1 = whole(layer, "Layer", 0, t.n_layers - 1, default=0)
    hd, n2 = whole(head, "Query head", 0, t.n_heads - 1, default=0)
    if query is None:
        qu, n3 = t.n_tokens - 1, ""
    else:
        qu, n3 = whole(query, "Query position", 0, t.n_tokens - 1, default=t.n_tokens - 1)
    f, n4 = number(factor, "Scale factor", SCALE_MIN, scale_max(t.head_dim), default=1.0)
    return Sliders(lay, hd, qu, f, join(n1, n2, n3, n4))


# ----------------------------------------------------------------------------- the maths, one head at a time


def causal_mask(T: int) -> np.ndarray:
    """True where query i may attend to key j (j <= i).

        >>> causal_mask(3).astype(int)
        array([[1, 0, 0],
               [1, 1, 0],
               [1, 1, 1]])
    """
    return np.tri(T, dtype=bool)  # (T, T)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis. Subtracting the row max changes nothing mathematically but keeps
    exp from overflowing; exp(-inf) = 0, so masked keys get exactly zero weight.

        >>> softmax(np.array([0.0, np.log(3), -np.inf]))
        array([0.25, 0.75, 0.  ])
    """
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def head_scores(t: Traced, layer: int, head: int) -> np.ndarray:
    """q k^T / sqrt(hs) for one head, masked with -inf: the logits whose softmax is `t.attn[layer, head]`."""
    q = t.q[layer, head]  # (T, hs)
    k = t.k[layer, t.kv_head(head)]  # (T, hs) the shared GQA key head
    # einsum, not q @ k.T: numpy's threaded BLAS stalls for tens of ms on tiny matrices when torch's
    # own threads share the two CPU cores; einsum's plain loop takes ~0.1 ms here.
    scores = np.einsum("id,jd->ij", q, k) / np.float32(math.sqrt(t.head_dim))  # (T, T)
    return np.where(causal_mask(t.n_tokens), scores, -np.inf)


def reconstruct_attention(t: Traced) -> np.ndarray:
    """softmax(mask(q k^T / sqrt(hs))) for every layer and head, from the traced q, k: (L, nh, T, T)."""
    return np.stack([np.stack([softmax(head_scores(t, l, h)) for h in range(t.n_heads)])
                     for l in range(t.n_layers)])


def entropy_bits(p: np.ndarray) -> float:
    """Shannon entropy in bits; 0 for a one-hot row, log2(n) for a uniform one.

        >>> entropy_bits(np.array([0.5, 0.5, 0.0]))
        1.0
    """
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@dataclass
class QuerySteps:
    """One query row of one head, step by step. Arrays over keys are (T,); masked keys are j > query."""

    layer: int
    head: int
    kv_head: int
    query: int
    dots: np.ndarray  # q . k_j for every key, future ones too (they exist; the mask hides them)
    scaled: np.ndarray  # dots / sqrt(hs), -inf where masked
    probs: np.ndarray  # softmax(scaled): our reconstruction, 0 where masked
    traced: np.ndarray  # the model's own attention row, for comparison
    out: np.ndarray  # (hs,) sum_j probs_j v_j, this head's output for the query
    v_top: np.ndarray  # (hs,) the value vector of the most-attended key
    top_key: int


def query_steps(t: Traced, layer: int, head: int, query: int) -> QuerySteps:
    """Score, scale, mask, softmax and weighted sum for one query, from the real q_rot, k_rot, v."""
    kv = t.kv_head(head)
    q = t.q[layer, head, query]  # (hs,)
    k, v = t.k[layer, kv], t.v[layer, kv]  # (T, hs) each
    dots = np.einsum("jd,d->j", k, q)  # (T,) one dot product per key (einsum: see head_scores)
    scaled = dots / np.float32(math.sqrt(t.head_dim))
    scaled = np.where(np.arange(t.n_tokens) > query, -np.inf, scaled)  # the causal mask for this row
    probs = softmax(scaled)  # (T,) zero where masked
    out = np.einsum("j,jd->d", probs, v)  # (hs,) the weighted sum of value vectors
    top = int(probs.argmax())
    return QuerySteps(layer, head, kv, query, dots, scaled, probs, t.attn[layer, head, query], out, v[top], top)


def scaled_softmax(steps: QuerySteps, factor: float) -> np.ndarray:
    """softmax(factor * scores / sqrt(hs)) over the visible keys: factor 1 is the model,
    factor sqrt(hs) is attention without the 1/sqrt(d), factor -> 0 is uniform.

        >>> scaled_softmax(steps, 1.0) == steps.probs[: steps.query + 1]   # (approximately)
    """
    return softmax(factor * steps.scaled[: steps.query + 1].astype(np.float64))  # (query + 1,) masked keys dropped


def scale_sweep(steps: QuerySteps, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised entropy (0 = all weight on one key, 1 = uniform) and max weight for each factor."""
    n = steps.query + 1
    ent, top = [], []
    for f in factors:
        p = scaled_softmax(steps, float(f))
        ent.append(entropy_bits(p) / math.log2(n) if n > 1 else 0.0)
        top.append(float(p.max()))
    return np.array(ent), np.array(top)


@dataclass
class HeadStats:
    """Per-head averages over query rows, each (L, nh) in [0, 1]."""

    entropy: np.ndarray  # entropy / log(visible keys): 0 = one key, 1 = uniform over the past
    previous: np.ndarray  # weight on the token just before the query
    bos: np.ndarray  # weight on position 0, the BOS token
    self_: np.ndarray  # weight on the query's own position
    first_query: int  # rows first_query .. T-1 are averaged


def row_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row over the last axis (0 log 0 = 0). numpy, not torch: torch's log is
    ~100x slower here on the many exact zeros that the mask leaves."""
    return -(p * np.log(np.maximum(p, 1e-30))).sum(-1)


def head_stats(t: Traced) -> HeadStats:
    """Average over queries from position 2 (from 1 if the text has a single token): at position 1
    the previous token *is* BOS, so starting at 2 keeps "previous" and "BOS" apart."""
    T = t.n_tokens
    q0 = 2 if T >= 3 else 1
    a = t.attn[:, :, q0:, :].astype(np.float64)  # (L, nh, R, T), R = T - q0 query rows
    rows = np.arange(q0, T)  # (R,)
    r = np.arange(len(rows))
    ent = row_entropy(a) / np.log(rows + 1)  # (L, nh, R) divided by the entropy of uniform over the past

    def mean(x):
        return np.clip(x.mean(-1), 0, 1)  # (L, nh)

    return HeadStats(mean(ent), mean(a[..., r, rows - 1]), mean(a[..., 0]), mean(a[..., r, rows]), q0)


# ----------------------------------------------------------------------------- figures


def _figure(data: list, layout: dict) -> go.Figure:
    """go.Figure without Plotly's validation of every property on every call, which is most of a new text's
    cost (pure Python, so it holds the GIL that every learner's request shares). The figures are fixed code,
    checked once by the tests (test_figures_are_valid_plotly rebuilds each one with validation on)."""
    return go.Figure(data=data, layout=layout, _validate=False)


def _axis(title: str = "", **kw) -> dict:
    return dict(title=dict(text=title), automargin=True, **kw)


def _masked(a: np.ndarray) -> np.ndarray:
    """Masked cells (above the diagonal) as NaN: Plotly leaves a gap and the grey background shows."""
    a = a.astype(np.float32, copy=True)  # float32 halves what goes to the browser
    a[np.triu_indices(a.shape[-1], 1)] = np.nan
    return a


def describe_head(t: Traced, layer: int, head: int) -> str:
    """The attention map in one sentence, for screen readers (the heatmap's description): the mean weight, over
    the queries after BOS, on the previous token, on BOS and on the query itself.

        'Layer 2, head 1: 45% of attention on the previous token, 30% on BOS, 12% on the token itself
         (mean over 6 queries).'
    For the first query after BOS the previous token is BOS, so the first two shares can overlap."""
    a = t.attn[layer, head]  # (T, T)
    T = a.shape[0]
    if T < 2:
        return f"Layer {layer}, head {head}: only BOS, which attends to itself."
    q = np.arange(1, T)
    prev, bos, own = (float(a[q, q - 1].mean()), float(a[q, 0].mean()), float(a[q, q].mean()))
    return (f"Layer {layer}, head {head}: {prev:.0%} of attention on the previous token, {bos:.0%} on BOS, "
            f"{own:.0%} on the token itself (mean over {T - 1} queries).")


def heatmap_figure(t: Traced, layer: int, head: int) -> go.Figure:
    """One head's T x T attention map: rows are queries (top = first token), columns are keys."""
    z = _masked(t.attn[layer, head])  # (T, T)
    # Plain dicts in one go.Figure call: update_layout re-validates the whole figure (tens of ms here).
    return _figure([dict(
        type="heatmap", z=z, x=t.labels, y=t.labels, zmin=0, zmax=1, colorscale=COLORSCALE,
        colorbar=dict(title=dict(text="weight"), thickness=12),
        hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>")], layout=dict(
        title=dict(text=f"Layer {layer}, head {head} (KV head {t.kv_head(head)}): attention weights"
                        "<br><sup>each row sums to 1 · grey = masked by the causal mask (weight exactly 0)</sup>"),
        xaxis=_axis("key token (attended to)", tickangle=-60, tickfont=dict(size=10), showgrid=False),
        yaxis=_axis("query token (attending)", autorange="reversed", tickfont=dict(size=10), showgrid=False),
        plot_bgcolor=MASKED_COLOR, height=560, margin=dict(l=10, r=10, t=70, b=10),
        meta=dict(description=describe_head(t, layer, head))))


def heads_grid_figure(t: Traced, layer: int, cols: int = 4) -> go.Figure:
    """Small multiples: every head of one layer, same colour scale, laid out by lessons.plots.grid."""
    nh = t.n_heads
    cols = min(cols, nh)
    rows = -(-nh // cols)
    layout = grid([f"head {h} · KV {t.kv_head(h)}" for h in range(nh)], cols)
    data = [dict(type="heatmap", z=_masked(t.attn[layer, h]), x=t.labels, y=t.labels, coloraxis="coloraxis",
                 hovertemplate=f"head {h}<br>query %{{y}}<br>key %{{x}}<br>weight %{{z:.3f}}<extra></extra>",
                 **panel_axes(h + 1)) for h in range(nh)]
    for h in range(nh):
        layout[f"yaxis{'' if h == 0 else h + 1}"]["autorange"] = "reversed"
    layout.update(height=260 * rows + 60, plot_bgcolor=MASKED_COLOR, margin=dict(l=10, r=10, t=60, b=10),
                  coloraxis=dict(colorscale=COLORSCALE, cmin=0, cmax=1,
                                 colorbar=dict(title=dict(text="weight"), thickness=12)),
                  title=dict(text=f"Layer {layer}: all {nh} heads (query down, key across; grey = masked)"))
    return _figure(data, layout)


def query_figure(t: Traced, s: QuerySteps) -> go.Figure:
    """Four panels for one query: raw scores, scaled and masked scores, softmax weights, weighted sum of v."""
    keys = t.labels
    visible = np.arange(t.n_tokens) <= s.query
    grey, blue, green = "#a1a1aa", "#2563eb", "#059669"
    fin = np.where(visible, s.scaled, np.nan)  # masked keys: no bar
    low = float(np.nanmin(fin)) if visible.any() else 0.0
    dims = [str(i) for i in range(t.head_dim)]
    data = [
        dict(type="bar", x=keys, y=np.where(visible, s.dots, np.nan), marker_color=blue, showlegend=False,
               hovertemplate="key %{x}<br>q·k = %{y:.3f}<extra></extra>"),
        dict(type="bar", x=keys, y=np.where(visible, np.nan, s.dots), marker_color=grey, showlegend=False,
               hovertemplate="key %{x} (future)<br>q·k = %{y:.3f}<extra></extra>"),
        dict(type="bar", x=keys, y=fin, marker_color=blue, xaxis="x2", yaxis="y2", showlegend=False,
               hovertemplate="key %{x}<br>q·k/√d = %{y:.3f}<extra></extra>"),
        dict(type="scatter", x=[keys[j] for j in np.flatnonzero(~visible)], y=[low] * int((~visible).sum()), mode="markers",
                   marker=dict(symbol="x", color=grey, size=7), xaxis="x2", yaxis="y2", name="masked: −∞",
                   hovertemplate="key %{x}<br>masked: −∞<extra></extra>"),
        dict(type="bar", x=keys, y=s.probs, marker_color=green, xaxis="x3", yaxis="y3", name="softmax (ours)",
               hovertemplate="key %{x}<br>weight %{y:.4f}<extra></extra>"),
        dict(type="scatter", x=keys, y=s.traced, mode="markers", marker=dict(symbol="diamond-open", color="black", size=8),
                   xaxis="x3", yaxis="y3", name="model's traced attn",
                   hovertemplate="key %{x}<br>traced %{y:.4f}<extra></extra>"),
        dict(type="bar", x=dims, y=s.out, marker_color="#D55E00", xaxis="x4", yaxis="y4", name="output Σ weight·v",
               hovertemplate="dim %{x}<br>%{y:.3f}<extra></extra>"),
        dict(type="scatter", x=dims, y=s.v_top, mode="markers", marker=dict(symbol="circle-open", color="#f59e0b", size=7),
                   xaxis="x4", yaxis="y4", name=f"v of the top key ({keys[s.top_key]})",
                   hovertemplate="dim %{x}<br>%{y:.3f}<extra></extra>"),
    ]
    tick = dict(tickangle=-60, tickfont=dict(size=9))
    layout = dict(
        height=680, barmode="overlay", margin=dict(l=10, r=10, t=80, b=10),
        legend=dict(orientation="h", y=-0.2, x=0),
        title=dict(text=f"Query {s.query} ({t.labels[s.query]}) · layer {s.layer}, head {s.head} uses KV head "
                        f"{s.kv_head} · d = {t.head_dim}, √d = {math.sqrt(t.head_dim):.2f}"),
        xaxis=dict(domain=[0, 0.46], anchor="y", **tick), yaxis=_axis("q·k", domain=[0.58, 0.92]),
        # The right column's y axes have no title (their panel titles name them): on a phone the columns are
        # 24 px apart, and a title there sat on the left panel.
        xaxis2=dict(domain=[0.54, 1], anchor="y2", **tick), yaxis2=_axis(domain=[0.58, 0.92], anchor="x2"),
        xaxis3=_axis("key token", domain=[0, 0.46], anchor="y3", **tick),
        yaxis3=_axis("weight", domain=[0, 0.4], anchor="x3", rangemode="tozero"),
        xaxis4=_axis("output dimension", domain=[0.54, 1], anchor="y4", tickfont=dict(size=9)),
        yaxis4=_axis(domain=[0, 0.4], anchor="x4"),
        annotations=[dict(text=txt, x=x, y=y, xref="paper", yref="paper", showarrow=False, xanchor="left",
                          yanchor="bottom", font=dict(size=13))
                     for txt, x, y in (("1. dot products q·k (grey: future keys)", 0, 0.93),
                                       ("2. q·k ÷ √d, then mask the future (×)", 0.54, 0.93),
                                       ("3. softmax: weights sum to 1", 0, 0.41),
                                       ("4. weighted sum of value vectors", 0.54, 0.41))],
    )
    return _figure(data, layout)


def scale_factors(t: Traced) -> np.ndarray:
    """The x axis of the sweep panel (log scale), from SCALE_MIN to the slider's upper end."""
    return np.geomspace(SCALE_MIN, scale_max(t.head_dim), 41)


def scale_figure(t: Traced, s: QuerySteps, factor: float) -> go.Figure:
    """Left: the weights at this factor against the model's (factor 1). Right: entropy and max weight
    as the factor sweeps, with the model (1) and 'no 1/sqrt(d)' (sqrt(hs)) marked. Only this one row's recorded
    scores are multiplied: no layer is re-run (the reveal below re-runs the whole model)."""
    factors = scale_factors(t)
    n = s.query + 1
    keys = t.labels[:n]
    p, p1 = scaled_softmax(s, factor), scaled_softmax(s, 1.0)
    h = entropy_bits(p)
    ent, top = scale_sweep(s, factors)
    root = math.sqrt(t.head_dim)
    data = [
        dict(type="bar", x=keys, y=p, marker_color="#059669", name=f"weights at ×{factor:g}",
               hovertemplate="key %{x}<br>weight %{y:.4f}<extra></extra>"),
        dict(type="scatter", x=keys, y=p1, mode="markers", marker=dict(symbol="diamond-open", color="black", size=8),
                   name="the model's weights (×1)", hovertemplate="key %{x}<br>weight %{y:.4f}<extra></extra>"),
        dict(type="scatter", x=factors, y=ent, mode="lines", xaxis="x2", yaxis="y2", line=dict(color="#2563eb"),
                   name="entropy / log(keys)", hovertemplate="×%{x:.2f}<br>entropy %{y:.3f}<extra></extra>"),
        dict(type="scatter", x=factors, y=top, mode="lines", xaxis="x2", yaxis="y2", line=dict(color="#dc2626"),
                   name="max weight", hovertemplate="×%{x:.2f}<br>max weight %{y:.3f}<extra></extra>"),
    ]
    shapes, notes = [], []
    marks = ((1.0, "model", "black", 1.05), (root, "no ÷√d", "#9333ea", 1.05), (factor, "you", "#059669", 0.5))
    for x, txt, color, y in marks:
        shapes.append(dict(type="line", xref="x2", yref="y2", x0=x, x1=x, y0=0, y1=1.02,
                           line=dict(color=color, dash="dot", width=2)))
        notes.append(dict(text=txt, x=math.log10(x), y=y, xref="x2", yref="y2", showarrow=False, bgcolor="white",
                          font=dict(color=color, size=11)))
    max_bits = math.log2(n) if n > 1 else 0.0
    layout = dict(
        height=430, margin=dict(l=10, r=10, t=80, b=10), legend=dict(orientation="h", y=-0.3, x=0),
        title=dict(text=f"Scores × {factor:g} for query {s.query} ({t.labels[s.query]}), layer {s.layer} head {s.head}: "
                        f"entropy {h:.2f} bits (uniform would be {max_bits:.2f}), max weight {p.max():.2f}"
                        "<br><sup>this row's recorded scores multiplied; no layer re-run"
                        + (" · query 0 sees only BOS: its weight is 1 at every scale" if n == 1 else "") + "</sup>"),
        xaxis=_axis("key token", domain=[0, 0.55], tickangle=-60, tickfont=dict(size=9)),
        yaxis=_axis("weight", range=[0, 1.05]),
        xaxis2=_axis("factor on the scaled scores (log scale)", domain=[0.65, 1], anchor="y2", type="log"),
        yaxis2=_axis("entropy (normalised) / max weight", anchor="x2", range=[0, 1.1]),
        shapes=shapes, annotations=notes,
    )
    return _figure(data, layout)


def summary_figure(t: Traced, st: HeadStats) -> go.Figure:
    """Four layers x heads heatmaps side by side, one per statistic, all on the 0..1 scale."""
    panels = (("entropy (0 one key, 1 uniform)", st.entropy), ("weight on previous token", st.previous),
              ("weight on BOS", st.bos), ("weight on itself", st.self_))
    heads = [f"h{h}" for h in range(t.n_heads)]
    layers = [f"L{l}" for l in range(t.n_layers)]
    data, layout = [], dict(annotations=[], height=120 + 34 * t.n_layers, margin=dict(l=10, r=10, t=70, b=10),
                            coloraxis=dict(colorscale="Magma", cmin=0, cmax=1,
                                           colorbar=dict(title=dict(text="0..1"), thickness=12)))
    for i, (name, z) in enumerate(panels):
        ax = "" if i == 0 else str(i + 1)
        x0, x1 = i / 4 + 0.012, (i + 1) / 4 - 0.012
        data.append(dict(type="heatmap", z=np.round(z, 3), x=heads, y=layers, coloraxis="coloraxis", xaxis="x" + ax,
                               yaxis="y" + ax, texttemplate="%{z:.2f}", textfont=dict(size=10),
                               hovertemplate=f"{name}<br>layer %{{y}} head %{{x}}: %{{z:.3f}}<extra></extra>"))
        layout["xaxis" + ax] = _axis("head", domain=[x0, x1], anchor="y" + ax, tickfont=dict(size=10))
        layout["yaxis" + ax] = _axis("layer" if i == 0 else "", anchor="x" + ax, autorange="reversed",
                                     tickfont=dict(size=10))
        layout["annotations"].append(dict(text=name, x=(x0 + x1) / 2, y=1.0, xref="paper", yref="paper",
                                          showarrow=False, yanchor="bottom", font=dict(size=12)))
    layout["title"] = dict(text=f"Every head on your text, averaged over queries {st.first_query}..{t.n_tokens - 1}")
    return _figure(data, layout)


# ----------------------------------------------------------------------------- the dot product, pictured


@dataclass
class DotProducts:
    """One query against the keys it may see (j <= query), in one head: the dot product taken apart.

    q . k_j = |q| |k_j| cos(angle_j): length times length times direction. Arrays are (query + 1,)."""

    q_norm: float
    k_norm: np.ndarray  # |k_j|
    cos: np.ndarray  # cos of the angle between q and k_j
    dots: np.ndarray  # q . k_j (before the division by sqrt(hs))


def dot_products(t: Traced, layer: int, head: int, query: int) -> DotProducts:
    """|q|, |k_j|, cos and q . k_j for one query of one head, from the traced q_rot and k_rot.

        >>> d = dot_products(t, 0, 0, 5); np.allclose(d.q_norm * d.k_norm * d.cos, d.dots)
        True
    """
    q = t.q[layer, head, query].astype(np.float64)  # (hs,)
    k = t.k[layer, t.kv_head(head), : query + 1].astype(np.float64)  # (query + 1, hs)
    qn, kn = float(np.linalg.norm(q)), np.linalg.norm(k, axis=-1)
    dots = np.einsum("jd,d->j", k, q)
    cos = dots / np.maximum(qn * kn, 1e-30)
    return DotProducts(qn, kn, cos, dots)


def dot_figure(t: Traced, layer: int, head: int, query: int) -> go.Figure:
    """Each visible key drawn at its true length |k_j| and its true angle to the query q (q along the x axis).

    A key's x coordinate is |k_j| cos(angle), its reach along q, so its score is q . k_j = |q| x: keys on one
    vertical line score the same, whether they are long and slanted or short and aligned."""
    d = dot_products(t, layer, head, query)
    x, y = d.k_norm * d.cos, d.k_norm * np.sqrt(np.clip(1 - d.cos ** 2, 0, None))  # (query + 1,) each
    keys = t.labels[: query + 1]
    best = int(d.dots.argmax())
    hover = [f"key {lab}<br>|k| = {kn:.2f}, cos = {c:+.2f}<br>q·k = |q|·|k|·cos = {dt:.2f}"
             for lab, kn, c, dt in zip(keys, d.k_norm, d.cos, d.dots)]
    lim = float(max(d.k_norm.max(), d.q_norm)) * 1.1
    # Labels on the keys that matter (highest, then lowest score) where they do not pile up; hover names every key.
    order = [int(j) for j in np.argsort(-d.dots)]
    shown = sparse_labels(x, y, keys, order[:3] + order[::-1][:2] + order[3:], most=6)
    data = [  # plain dicts: validated once by go.Figure, not once more per trace
        dict(type="scatter", x=x, y=y, mode="markers+text", text=shown, textposition="top center",
             textfont=dict(size=9), marker=dict(size=9, color=d.dots, colorscale="RdBu_r", cmid=0,
                                                 colorbar=dict(title=dict(text="q·k"), thickness=12)),
             hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", name="keys (end points)"),
        dict(type="scatter", x=[0, d.q_norm], y=[0, 0], mode="lines+markers", line=dict(color="black", width=3),
             marker=dict(symbol=["circle", "triangle-right"], size=[4, 12]),
             name=f"query q (|q| = {d.q_norm:.2f})", hoverinfo="skip"),
    ]
    layout = dict(
        title=dict(text=f"Query {query} ({t.labels[query]}) against its {query + 1} keys · layer {layer}, head {head}"
                        f"<br><sup>each key at its length |k| and its angle to q · score q·k = |q| × (reach along q)"
                        f" · highest: {keys[best]}</sup>"),
        height=460, margin=dict(l=10, r=10, t=80, b=10), legend=dict(orientation="h", y=-0.18, x=0),
        xaxis=dict(title=dict(text="along q: |k|·cos(angle)"), range=[-lim, lim], zeroline=True, automargin=True),
        yaxis=dict(title=dict(text="across q: |k|·sin(angle)"), range=[0, lim], scaleanchor="x", automargin=True),
        shapes=[dict(type="line", x0=x[best], x1=x[best], y0=0, y1=lim, line=dict(color="#dc2626", dash="dot"))])
    return _figure(data, layout)


def dot_readout(t: Traced, layer: int, head: int, query: int) -> str:
    """The same numbers in words, and footnote 4's assumption checked on this head's real q and k."""
    d = dot_products(t, layer, head, query)
    keys = t.labels[: query + 1]
    best, longest, aligned = int(d.dots.argmax()), int(d.k_norm.argmax()), int(d.cos.argmax())
    q = t.q[layer, head].astype(np.float64)  # (T, hs) every query of the text
    k = t.k[layer, t.kv_head(head)].astype(np.float64)  # (T, hs)
    dots = np.einsum("id,jd->ij", q, k)[causal_mask(t.n_tokens)]  # every visible (query, key) pair (einsum: see
    # head_scores)
    hs = t.head_dim
    lines = [
        f"**Query {query}** has length |q| = {d.q_norm:.2f}. Highest score: key **{keys[best]}**, "
        f"q·k = {d.q_norm:.2f} × {d.k_norm[best]:.2f} × {d.cos[best]:+.2f} = {d.dots[best]:.2f}. "
        f"Longest key: {keys[longest]} (|k| = {d.k_norm[longest]:.2f}); best aligned: {keys[aligned]} "
        f"(cos = {d.cos[aligned]:+.2f}).",
        f"**Footnote 4, checked.** The variance argument assumes the {hs} components of q and k have mean 0 and "
        f"variance 1. In this head, on your text, q's components have mean {q.mean():+.2f} and variance "
        f"{q.var():.2f}, k's mean {k.mean():+.2f} and variance {k.var():.2f}; the {dots.size:,} visible scores q·k "
        f"have variance {dots.var():.1f}, where d × var(q) × var(k) = {hs * q.var() * k.var():.1f} and d = {hs}.",
    ]
    return "\n\n".join(lines)


# ----------------------------------------------------------------------------- several heads, and o_proj


def head_contributions(cm: CourseModel, t: Traced, layer: int, query: int) -> np.ndarray:
    """What each head writes into the residual stream at one query: (nh, C).

    o_proj sees the heads' outputs side by side, [o_1; ...; o_nh] (nh*hs,), and multiplies by W_O (C, nh*hs);
    cutting W_O into nh column blocks W_O^h (C, hs) gives o_proj(concat) = sum_h W_O^h o_h, one term per head.
    W_O is read from the model when asked (not copied into every cached text: for a 1B Llama all layers' W_O
    are 268 MB).
    """
    kv = [t.kv_head(h) for h in range(t.n_heads)]
    o = np.einsum("hj,hjd->hd", t.attn[layer, :, query], t.v[layer, kv])  # (nh, hs) each head's weighted sum of v
    W = cm.model.layers[layer].self_attn.o_proj.weight  # (C, nh*hs) on the model's device and dtype
    W = W.detach().float().cpu().numpy().reshape(W.shape[0], t.n_heads, t.head_dim)  # (C, nh, hs)
    return np.einsum("chd,hd->hc", W, o)  # (nh, C); einsum, not @: see head_scores


def heads_mix_figure(cm: CourseModel, t: Traced, layer: int, query: int) -> go.Figure:
    """Length of each head's term W_O^h o_h and of their sum, the attention block's output at this query."""
    c = head_contributions(cm, t, layer, query).astype(np.float64)  # (nh, C)
    total = c.sum(0)
    norms = np.linalg.norm(c, axis=-1)
    names = [f"head {h}" for h in range(t.n_heads)] + ["sum: o_proj output"]
    colors = ["#60a5fa"] * t.n_heads + ["#1d4ed8"]
    return _figure([dict(type="bar", x=names, y=list(norms) + [float(np.linalg.norm(total))], marker_color=colors,
                         hovertemplate="%{x}: length %{y:.3f}<extra></extra>")],
                   dict(title=dict(text=f"Layer {layer}, query {query} ({t.labels[query]}): what o_proj "
                                        f"adds to the residual stream, head by head"
                                        "<br><sup>o_proj([o_1; …; o_nh]) = Σ_h W_O^h o_h · bar = length "
                                        "of each term and of the sum</sup>"),
                        height=360, margin=dict(l=10, r=10, t=80, b=10),
                        xaxis=_axis("", tickangle=-30), yaxis=_axis("length (L2 norm)", rangemode="tozero")))


# ----------------------------------------------------------------------------- what the page calls


@dataclass
class View:
    """Every figure that depends on the sliders, for one text: all drawn from one Traced, so they agree."""

    notice: str
    sliders: Sliders
    dot: go.Figure
    dot_md: str
    heatmap: go.Figure
    grid: go.Figure
    mix: go.Figure
    steps: go.Figure
    scale: go.Figure


def view(cm: CourseModel, text, layer, head, query, factor) -> View:
    """Every slider-dependent figure for the analyzed text. Raises LessonError for text the model cannot use."""
    t = trace_text(cm, text)
    sl = read_sliders(t, layer, head, query, factor)
    s = query_steps(t, sl.layer, sl.head, sl.query)
    return View(join(t.notice, sl.notice), sl, dot_figure(t, sl.layer, sl.head, sl.query),
                dot_readout(t, sl.layer, sl.head, sl.query), heatmap_figure(t, sl.layer, sl.head),
                heads_grid_figure(t, sl.layer), heads_mix_figure(cm, t, sl.layer, sl.query), query_figure(t, s),
                scale_figure(t, s, sl.factor))


@dataclass
class Analysis:
    """A new text: every slider figure and the query slider's new range. The summary of every head is not
    drawn here: it answers the previous-token question, so its reveal draws it (`summary_view`)."""

    view: View
    n_tokens: int


def analyze_view(cm: CourseModel, text, layer, head, query, factor) -> Analysis:
    """Run (or reuse) the traced forward pass and draw every slider figure for the current sliders."""
    v = view(cm, text, layer, head, query, factor)
    return Analysis(v, trace_text(cm, text).n_tokens)


def summary_view(cm: CourseModel, text) -> go.Figure:
    """Every head of every layer on the analyzed text, four statistics each (head_stats)."""
    t = trace_text(cm, text)
    return summary_figure(t, head_stats(t))


SUMMARY_WAITING = ("This summary answers the previous-token question above: press its Reveal (with or without "
                   "a prediction) to draw it for the analyzed text.")


def scale_view(cm: CourseModel, text, layer, head, query, factor) -> tuple[str, go.Figure, float]:
    """The scale slider alone: the same query's weights with the scaled scores multiplied by `factor`.
    Returns (notice, figure, the factor used)."""
    t = trace_text(cm, text)
    sl = read_sliders(t, layer, head, query, factor)
    return sl.notice, scale_figure(t, query_steps(t, sl.layer, sl.head, sl.query), sl.factor), sl.factor


def model_facts(cm: CourseModel) -> str:
    """The attention sizes of the loaded model, read from its config."""
    c = cm.config
    kind = "multi-head (MHA)" if c.n_kv_heads == c.n_heads else \
        "multi-query (MQA)" if c.n_kv_heads == 1 else "grouped-query (GQA)"
    return (f"**The model here:** {c.n_layers} layers, each with {c.n_heads} query heads of size d = {c.head_dim} "
            f"and {c.n_kv_heads} key/value heads ({kind}; query head h reads key/value head h // {c.n_rep}); "
            f"width {c.dim} = {c.n_heads} × {c.head_dim}, so o_proj is a {c.dim} × {c.n_heads * c.head_dim} matrix.")


# ----------------------------------------------------------------------------- predict, then reveal


def layer_choices(cm: CourseModel) -> list[str]:
    return [f"layer {l}" for l in range(cm.config.n_layers)]


SCALE_CHOICES = ["sharper (lower entropy)", "flatter (higher entropy)", "no change"]


def reveal_previous_token(cm: CourseModel, text, guess) -> str:
    """Which layer holds the head that puts the most weight on the previous token, measured on the text.

        >>> reveal_previous_token(cm, "To be, or not to be", "layer 1").splitlines()[0]
        '✅ Right: ...' or '❌ Not this time: ...'
    """
    t = trace_text(cm, text)
    if t.n_tokens < 3:
        raise LessonError("Type at least two tokens: with fewer there is no previous token apart from BOS.")
    st = head_stats(t)
    prev = st.previous  # (L, nh)
    best_l, best_h = (int(x) for x in np.unravel_index(prev.argmax(), prev.shape))
    g = grade(guess, f"layer {best_l}", layer_choices(cm), "Your prediction")
    lines = [g.verdict(), "",
             f"On your text ({t.n_tokens} tokens), **layer {best_l}, head {best_h}** puts the most weight on the "
             f"previous token: on average **{prev[best_l, best_h]:.2f}** of each query's attention "
             f"(queries {st.first_query} to {t.n_tokens - 1}).", "",
             "| weight on previous token | " + " | ".join(f"head {h}" for h in range(t.n_heads)) + " |",
             "|---|" + "---|" * t.n_heads]
    lines += [f"| layer {l} | " + " | ".join(f"**{x:.2f}**" if (l, h) == (best_l, best_h) else f"{x:.2f}"
                                            for h, x in enumerate(prev[l])) + " |" for l in range(t.n_layers)]
    lines.append("")
    if g.correct is False:
        gl = int(g.picked.split()[-1])
        lines.append(f"Your layer {gl}'s best head puts {prev[gl].max():.2f} on the previous token.")
    if prev[best_l, best_h] >= 0.4:
        lines.append(f"Set layer {best_l} and head {best_h} above: its map has a bright line just below the diagonal.")
    else:
        lines.append(f"Set layer {best_l} and head {best_h} above: the line just below the diagonal is there but "
                     "faint. On this text no head is a clean previous-token head; the weight is shared with other keys.")
    return "\n".join(lines)


_TWINS = LRU(2)  # model -> the same model with every q_proj multiplied by sqrt(hs)


def without_scaling(model):
    """The same model with the 1/sqrt(hs) removed from every layer: a twin whose q_proj weights are multiplied
    by sqrt(hs) (so its scores are q.k, not q.k / sqrt(hs); RoPE is linear, so the rotation does not care), all
    other tensors shared with the original, which is never changed. Cached per model."""

    def build():
        cfg = model.config
        root = math.sqrt(cfg.head_dim)
        with torch.device("meta"):
            twin = type(model)(cfg)  # no memory: every tensor is assigned below
        sd = dict(model.state_dict())
        for i in range(cfg.n_layers):
            name = f"layers.{i}.self_attn.q_proj.weight"
            sd[name] = sd[name] * root
        twin.load_state_dict(sd, assign=True)
        for name, buf in model.named_buffers():  # the RoPE tables (not in the state dict)
            twin.register_buffer(name, buf, persistent=False)
        twin.attn_backend = "manual"
        return twin.eval().requires_grad_(False)

    return _TWINS.get_or_compute(model, build)


@dataclass
class Rerun:
    """The model and its no-1/sqrt(d) twin on one text: per row (L, nh, T-1) normalised entropy and max weight
    (queries 1.. T-1; query 0 sees only BOS), and the next-token loss in nats per token."""

    entropy: dict  # {"model": (L, nh, T-1), "without": ...}
    max_weight: dict
    loss: dict  # {"model": float, "without": float}


_RERUNS = LRU(16)  # (model, ids) -> Rerun


def rerun_without_scaling(cm: CourseModel, text) -> Rerun:
    """Run the model and its twin without 1/sqrt(d) (`without_scaling`) through every layer on the text
    (cached per text: a second reveal on the same text re-reads the measurement)."""
    t = trace_text(cm, text)
    return _RERUNS.get_or_compute((cm.model, t.ids), lambda: _rerun(cm, t))


def _rerun(cm: CourseModel, t: Traced) -> Rerun:
    ids = torch.tensor([t.ids], device=cm.device)  # (1, T)
    ent, top, loss = {}, {}, {}
    n_keys = np.log(np.arange(2, t.n_tokens + 1))  # (T-1,) log of the keys each query sees
    for name, model in (("model", cm.model), ("without", without_scaling(cm.model))):
        with torch.inference_mode():
            out = model(ids, trace=True)
        attn = np.stack([lt.attn[0].float().cpu().numpy() for lt in out.trace.layers])[:, :, 1:]  # (L, nh, T-1, T)
        ent[name] = row_entropy(attn.astype(np.float64)) / n_keys
        top[name] = attn.max(-1)
        logits = out.logits[0, :-1].float()  # (T-1, V) predictions for tokens 1..T-1
        loss[name] = float(torch.nn.functional.cross_entropy(logits, ids[0, 1:]))
    return Rerun(ent, top, loss)


def reveal_scaling(cm: CourseModel, text, guess) -> str:
    """What removing 1/sqrt(d) from every layer does to the attention on the learner's text: the model is re-run
    (`rerun_without_scaling`), so each layer's change reaches the layers after it."""
    t = trace_text(cm, text)
    if t.n_tokens < 2:
        raise LessonError("Type at least one token after BOS.")
    r = rerun_without_scaling(cm, text)
    e1, er = r.entropy["model"], r.entropy["without"]
    m1, mr = r.max_weight["model"], r.max_weight["without"]
    diff = er.mean() - e1.mean()
    answer = SCALE_CHOICES[2] if abs(diff) < 1e-6 else SCALE_CHOICES[0] if diff < 0 else SCALE_CHOICES[1]
    g = grade(guess, answer, SCALE_CHOICES, "Your prediction")
    root = math.sqrt(t.head_dim)
    sharper, rows = int((er < e1 - 1e-9).sum()), e1.size
    lines = [g.verdict(), "",
             f"Measured by re-running the model on your text with the division removed in every layer (each "
             f"`q_proj` multiplied by √d = {root:.2f}, so the scores are q·k): attention gets **{answer}**; "
             f"{sharper} of {rows} attention rows are sharper (all layers, heads and queries after BOS).", "",
             "| | with 1/√d (the model) | without, re-run |", "|---|---|---|",
             f"| mean entropy (0 = one key, 1 = uniform) | {e1.mean():.3f} | {er.mean():.3f} |",
             f"| mean max weight | {m1.mean():.3f} | {mr.mean():.3f} |",
             f"| next-token loss on your text (nats per token) | {r.loss['model']:.3f} | {r.loss['without']:.3f} |",
             "", "| layer | " + " | ".join(f"{l}" for l in range(t.n_layers)) + " |",
             "|---|" + "---|" * t.n_layers,
             "| entropy with 1/√d | " + " | ".join(f"{x:.2f}" for x in e1.mean(axis=(1, 2))) + " |",
             "| entropy without | " + " | ".join(f"{x:.2f}" for x in er.mean(axis=(1, 2))) + " |", "",
             "Larger logits always make a softmax peakier. This is the trained model with its division taken "
             "away, not a model trained without it; the loss shows how much this model relies on the division. "
             "Why train with it? Attention Is All You Need (section 3.2.1) *suspects* that for large d the dot "
             "products grow large, pushing the softmax into regions with extremely small gradients "
             "(∂a_j/∂s_j = a_j(1 − a_j) is near 0 when a_j is near 0 or 1); it does not measure it."]
    return "\n".join(lines)


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
