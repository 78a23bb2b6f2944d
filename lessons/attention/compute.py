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

Attention without storing the weights (peak memory measured, the online softmax, blockwise attention) is its own
lesson, `lessons.efficient_attention`, which reads the same traced pass through `trace_text`.

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
from lessons.grading import Question, grade
from lessons.inputs import LessonError, join, number, whole
from lessons.plots import grid, panel_axes, sparse_labels
from llama.variant import shared_variant

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


def masked_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """q k^T / sqrt(d), with -inf where the causal mask hides the key: q and k are (T, d), the result (T, T).
    The same function scores the toy example's three 2-D tokens and every real head (`head_scores`).

        >>> masked_scores(np.array([[1., 0.], [0., 2.]]), np.array([[1., 0.], [0., 1.]])).round(3)
        array([[0.707,  -inf],
               [0.   , 1.414]])
    """
    d = q.shape[-1]
    # einsum, not q @ k.T: numpy's threaded BLAS stalls for tens of ms on tiny matrices when torch's
    # own threads share the two CPU cores; einsum's plain loop takes ~0.1 ms here.
    scores = np.einsum("id,jd->ij", q, k) / np.asarray(math.sqrt(d), dtype=q.dtype)  # (T, T)
    return np.where(causal_mask(len(q)), scores, -np.inf)


def head_scores(t: Traced, layer: int, head: int) -> np.ndarray:
    """q k^T / sqrt(hs) for one head, masked with -inf: the logits whose softmax is `t.attn[layer, head]`."""
    return masked_scores(t.q[layer, head], t.k[layer, t.kv_head(head)])  # (T, hs) each; GQA: the shared key head


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
        f"**Footnote 4, checked.** The variance argument assumes the {hs} components of q and k are *independent*, "
        f"with mean 0 and variance 1; independent components would give var(q·k) = d × var(q) × var(k). In this "
        f"head, on your text, q's components have mean {q.mean():+.2f} and variance {q.var():.2f}, k's mean "
        f"{k.mean():+.2f} and variance {k.var():.2f}, so independence would give "
        f"{hs} × {q.var():.2f} × {k.var():.2f} = {hs * q.var() * k.var():.1f}; the {dots.size:,} visible scores "
        f"q·k have variance **{dots.var():.1f}**, {dots.var() / max(hs * q.var() * k.var(), 1e-12):.1f} times that. "
        + ("Means near 0 and variances near 1 are not what breaks the argument here: independence is. Training "
           "aligns q with the keys it should find, so their components move together."
           if dots.var() > 2 * hs * q.var() * k.var() else
           "Here the independent estimate is within a factor of 2 of the measurement."),
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
        sd = model.state_dict()
        scaled = {n: sd[n] * root for n in (f"layers.{i}.self_attn.q_proj.weight" for i in range(cfg.n_layers))}
        twin = shared_variant(model, replace=scaled)  # every other tensor (and the RoPE tables) shared
        twin.attn_backend = "manual"
        return twin

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
    root = math.sqrt(t.head_dim)
    sharper, rows = int((er < e1 - 1e-9).sum()), e1.size
    lines = [f"Measured by re-running the model on your text with the division removed in every layer (each "
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
             "Why train with it? Attention Is All You Need (section 3.2.1) grounds the scaling in an observation it "
             "cites: for small d additive and dot-product attention perform alike, but additive attention "
             "outperforms dot-product attention *without* scaling for larger d (Britz et al. 2017). The mechanism is "
             "what it *suspects*: for large d the dot products grow large, pushing the softmax into regions with "
             "extremely small gradients (∂a_j/∂s_j = a_j(1 − a_j) is near 0 when a_j is near 0 or 1)."]
    return Q_SCALE.reveal(guess, answer, "\n".join(lines))


# ----------------------------------------------------------------------------- a toy example before the real model

TOY_COLUMNS = ["token", "q1", "q2", "k1", "k2", "v1", "v2"]
# Three tokens with 2-dimensional q, k and v, chosen so that "sat" asks for what "cat" offers. The learner edits them.
TOY_DEFAULT = [["the", 1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
               ["cat", 0.0, 2.0, 0.0, 2.0, 0.0, 1.0],
               ["sat", 0.0, 3.0, 1.0, 1.0, 1.0, 1.0]]
TOY_LIMIT = 10.0  # |value| of a toy number


@dataclass
class Toy:
    """The toy example, step by step, through the same functions as a real head (masked_scores, softmax)."""

    tokens: list
    q: np.ndarray  # (3, 2)
    k: np.ndarray
    v: np.ndarray
    dots: np.ndarray  # (3, 3) q_i . k_j, the future ones too
    masked: np.ndarray  # (3, 3) dots / sqrt(2), -inf above the diagonal
    weights: np.ndarray  # (3, 3) softmax of each row
    out: np.ndarray  # (3, 2) weights @ v
    notice: str


def toy_attention(rows) -> Toy:
    """Attention on the toy table: rows of [token, q1, q2, k1, k2, v1, v2] (a pandas DataFrame or lists, as the
    page's table sends it). Every number is checked (lessons.inputs.number: clamped to ±TOY_LIMIT, a non-number
    becomes 0 with a notice).

        >>> toy_attention(TOY_DEFAULT).weights[2].round(3)        # "sat" looks mostly at "cat"
        array([0.013, 0.882, 0.106])
    """
    if hasattr(rows, "values") and hasattr(rows, "columns"):
        rows = rows.values.tolist()
    rows = [list(r) for r in (rows or [])][:3]
    rows += [list(TOY_DEFAULT[i]) for i in range(len(rows), 3)]
    notices, tokens, nums = [], [], []
    for i, r in enumerate(rows):
        r = (r + [0.0] * 7)[:7]
        tokens.append(str(r[0])[:12] or TOY_DEFAULT[i][0])
        row = []
        for name, x in zip(TOY_COLUMNS[1:], r[1:]):
            val, n = number(x, f"{tokens[-1]} {name}", -TOY_LIMIT, TOY_LIMIT, default=0.0)
            row.append(val)
            notices.append(n)
        nums.append(row)
    a = np.array(nums, dtype=np.float64)  # (3, 6)
    q, k, v = a[:, 0:2], a[:, 2:4], a[:, 4:6]
    masked = masked_scores(q, k)  # the real head's function
    weights = softmax(masked)
    return Toy(tokens, q, k, v, np.einsum("id,jd->ij", q, k), masked, weights, np.einsum("ij,jd->id", weights, v),
               join(*notices))


def toy_table(toy: Toy) -> list[list]:
    """The table as the page shows it (after the checks)."""
    return [[toy.tokens[i], *map(float, toy.q[i]), *map(float, toy.k[i]), *map(float, toy.v[i])] for i in range(3)]


def _md_matrix(toy: Toy, m: np.ndarray, fmt: str) -> list[str]:
    rows = ["| query \\ key | " + " | ".join(toy.tokens) + " |", "|---|" + "---|" * len(toy.tokens)]
    rows += [f"| **{toy.tokens[i]}** | " + " | ".join("−∞ (masked)" if np.isneginf(x) else format(x, fmt)
                                                      for x in m[i]) + " |" for i in range(len(m))]
    return rows


def toy_steps_markdown(toy: Toy) -> str:
    """The four steps as tables: Q K^T, scale and mask, softmax row by row, the weighted sum of values."""
    out = ["| query | output o = Σ weight · v |", "|---|---|"]
    out += [f"| **{toy.tokens[i]}** | ({toy.out[i, 0]:.3f}, {toy.out[i, 1]:.3f}) |" for i in range(3)]
    return "\n".join(["**1. Q Kᵀ**, every dot product q·k:", "", *_md_matrix(toy, toy.dots, ".2f"), "",
                      "**2. Scale by 1/√d (d = 2) and mask the future:**", "", *_md_matrix(toy, toy.masked, ".3f"),
                      "", "**3. Softmax, row by row** (each row sums to 1):", "",
                      *_md_matrix(toy, toy.weights, ".3f"), "", "**4. Weighted sum of the values:**", "", *out])


def toy_figure(toy: Toy) -> go.Figure:
    """The values v_j as grey arrows from the origin and each query's output o_i as a coloured dot: an output is a
    weighted average of the values it may see, so it lies inside their triangle (or on its edge)."""
    colours = ["#0072B2", "#E69F00", "#009E73"]
    data = []
    for j in range(3):
        data.append(dict(type="scatter", x=[0, toy.v[j, 0]], y=[0, toy.v[j, 1]], mode="lines+markers+text",
                         line=dict(color="#9ca3af", width=3), marker=dict(size=[0, 9], color="#6b7280"),
                         text=["", f"v({toy.tokens[j]})"], textposition="top center", showlegend=False,
                         hovertemplate=f"value of {toy.tokens[j]}: (%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    for i in range(3):
        data.append(dict(type="scatter", x=[toy.out[i, 0]], y=[toy.out[i, 1]], mode="markers",
                         marker=dict(size=16, color=colours[i], symbol="diamond", line=dict(color="white", width=1)),
                         name=f"output of {toy.tokens[i]}",
                         hovertemplate=f"output of {toy.tokens[i]}: (%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))
    lo = float(min(0.0, toy.v.min(), toy.out.min())) - 0.3
    hi = float(max(0.0, toy.v.max(), toy.out.max())) + 0.4
    return _figure(data, dict(
        title=dict(text="Three toy tokens: each output (◆) is a weighted average of the values (grey) it may see"),
        height=380, margin=dict(l=10, r=10, t=70, b=10), legend=dict(orientation="h", y=-0.2, x=0),
        xaxis=_axis("dimension 1", range=[lo, hi], zeroline=True),
        yaxis=_axis("dimension 2", range=[lo, hi], zeroline=True, scaleanchor="x")))


# ----------------------------------------------------------------------------- questions that teach

Q_DOT = Question(
    "attention-random-dot",
    "Take two random vectors q and k of size d = 32, each component drawn independently with mean 0 and variance 1. "
    "How large is q·k typically (its standard deviation)?",
    ("about 1", "about 5.7 (√32)", "about 32"),
    misconception="that a dot product of unit-variance numbers stays about 1 whatever the size: the d products "
                  "add up, so the sum's variance is d and its typical size √d")
Q_SCALE = Question(
    "attention-scaling",
    "If the model skipped the division by √d in every layer (the same weights, every score multiplied by √d), "
    "would its attention over your text get sharper or flatter?",
    tuple(SCALE_CHOICES),
    misconception="that multiplying every score by the same number cannot change the softmax (only adding one "
                  "cannot: multiplying stretches the gaps between scores)")
RANDOM_DIM = 32
RANDOM_PAIRS = 20_000


def random_dots(d: int = RANDOM_DIM, n: int = RANDOM_PAIRS, seed: int = 0) -> np.ndarray:
    """q·k of n pairs of independent standard-normal vectors of size d (seeded): the premise of footnote 4."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((n, d)), rng.standard_normal((n, d))  # (n, d) each
    return np.einsum("nd,nd->n", q, k)  # (n,)


def random_dot_figure(d: int = RANDOM_DIM) -> go.Figure:
    """Histogram of q·k for random unit-variance vectors, with the measured standard deviation marked. Binned here
    (60 bins) rather than by Plotly in the browser: the page then carries 60 counts, not 20,000 samples (160 kB of
    every first visit to the attention page, bench/bench_pages.py)."""
    x = random_dots(d)
    sd = float(x.std())
    counts, edges = np.histogram(x, bins=60)  # (60,), (61,)
    centres = (edges[:-1] + edges[1:]) / 2
    return _figure([dict(type="bar", x=np.round(centres, 3), y=counts, width=float(edges[1] - edges[0]),
                         marker_color="#0072B2", name="q·k",
                         hovertemplate="q·k %{x}<br>%{y} pairs<extra></extra>")],
                   dict(title=dict(text=f"q·k of {len(x):,} random pairs at d = {d}: standard deviation {sd:.2f} "
                                        f"(√d = {math.sqrt(d):.2f})"),
                        height=340, margin=dict(l=10, r=10, t=70, b=10), bargap=0.02,
                        shapes=[dict(type="line", x0=v, x1=v, y0=0, y1=1, yref="paper",
                                     line=dict(color="#D55E00", dash="dash")) for v in (-sd, sd)],
                        xaxis=_axis("q·k"), yaxis=_axis("pairs")))


def reveal_random_dot(guess) -> str:
    """Grade Q_DOT from the measured spread of random dot products (the choice nearest on a log scale)."""
    sd = float(random_dots().std())
    values = {Q_DOT.choices[0]: 1.0, Q_DOT.choices[1]: math.sqrt(RANDOM_DIM), Q_DOT.choices[2]: float(RANDOM_DIM)}
    answer = min(values, key=lambda c: abs(math.log(values[c] / sd)))
    body = (f"Measured on {RANDOM_PAIRS:,} random pairs: the standard deviation of q·k is **{sd:.2f}**, and "
            f"√{RANDOM_DIM} = {math.sqrt(RANDOM_DIM):.2f}. Each product q_m k_m has mean 0 and variance 1; a sum of "
            f"{RANDOM_DIM} independent ones has variance {RANDOM_DIM}. Dividing by √d brings the scores back to "
            "about 1 whatever the head size: that is the reason Attention Is All You Need (section 3.2.1, "
            "footnote 4) gives for the scaling. Whether a trained head's q and k behave like random vectors is "
            "measured in Go deeper below (they do not: they align).")
    return Q_DOT.reveal(guess, answer, body)
