"""Lesson 3, positional encoding and RoPE: why attention needs positions, and what rotary embeddings do.

Attention compares every query with every key by a dot product, and a dot product does not know
where its two vectors came from. Shuffle the text and, without positions, the score matrix is the
same numbers shuffled. RoPE fixes that by rotating each pair of q's and k's coordinates by an angle
proportional to the token's position:

    theta_i = rope_theta ** (-2i / hs)          # one frequency per pair i = 0 .. hs/2-1
    q_m -> R(m * theta_i) q_m,  k_n -> R(n * theta_i) k_n
    q_m . k_n  ->  depends on the content and on m - n only

Every number here comes from the course model: its traced forward pass (q and k before RoPE,
`trace.layers[l].q`), its own RoPE tables (`model.rope_cos/rope_sin`, built by `precompute_rope`)
and `apply_rope`, and *variant* models built from its config with one switch changed
(`position="none"`, another `rope_theta`) that share its weights (llama.variant: no copy of the model). The
shared course model is never modified: variants are separate `Llama` instances over the same tensors.

Notation (shape comments):
    T    tokens (BOS first)      L    max_seq_len (the context)      hs   head size
    nh   query heads             nkv  key/value heads (query head h reads kv head h // n_rep)
    P    pairs, hs / 2

Every learner input goes through `lessons.inputs` (whole, number, choice; text through prepare_text):
out-of-range, NaN, infinite or non-numeric values are clamped or replaced and the result's `notice`
says so. Input that cannot be shown at all (empty text, one token) raises `LessonError`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import plotly.graph_objects as go
import torch

import torch.nn.functional as F

from lessons import cost
from lessons.course import (DEFAULT_MODEL_DIR, LRU, ROOT, CourseModel, plot_label, prepare_text, trace, unique_labels,
                            validation_excerpt)
from lessons.grading import Question
from lessons.inputs import LessonError, choice, number, whole
from llama import Llama, apply_rope, rope_frequencies, sinusoidal_positions
from llama.variant import shared_variant

DEFAULT_TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer"
SHUFFLE_TOKENS = 32  # BOS included; a 32 x 32 heatmap still has readable labels
ATTN_TOKENS = 40  # the attention-map comparison
ROTATE_TOKENS = 64  # tokens offered in the query/key pickers
LOSS_CHARS = 3_000  # the fixed validation slice: about a second of CPU for two models
LLAMA2_THETA, LLAMA3_THETA = 10_000.0, 500_000.0
VARIANTS = ("none", "100", "1000", "100000", "500000", "1000000")  # what the page can compare the trained model with
SEED_MAX = 2**31 - 1  # shuffle numbers: a JSON-safe whole number (a 2**64 one broke the event stream)
CHANGE_BINS = ((0.05, "barely"), (0.5, "little"), (math.inf, "lot"))  # nats per token: < 0.05, < 0.5, more
DIVERGING = "RdBu_r"
CYCLIC = "Twilight"  # an angle scale that wraps: 0 and 2*pi have the same colour

# ----------------------------------------------------------------------------- caches and the traced forward pass


_prepared = LRU(64)  # (model, text, max_tokens) -> Prepared
_traces = LRU(32)  # (model, ids) -> per-layer q, k before and after RoPE, attention
_losses = LRU(16)  # (model, n_chars) -> loss on the validation slice


def clear_caches() -> None:
    """Forget cached texts, traces, losses and variant models (the benchmark times cold calls with it)."""
    for c in (_prepared, _traces, _losses, _variants):
        c.clear()


def md_label(s: str) -> str:
    r"""A token label safe inside Markdown: HTML-escaped as for Plotly, and Markdown's marks backslashed.

        >>> md_label('<s>'), md_label('*_')
        ('&lt;s&gt;', '\\*\\_')
    """
    return "".join("\\" + ch if ch in "\\`*_[]#|~" else ch for ch in plot_label(s))


def _grid(rows: int, cols: int, titles: list[str], hgap: float = 0.08, vgap: float = 0.12) -> tuple[dict, list]:
    """A subplot layout as a plain dict, and per cell (xref, yref, xaxis dict, yaxis dict), row by row.

    The same grid as plotly's make_subplots, built without its per-property validation (~50 ms
    a call, most of a slider's budget): figures here are assembled as dicts and validated once.
    """
    w, h = (1 - hgap * (cols - 1)) / cols, (1 - vgap * (rows - 1)) / rows
    layout, cells = {"annotations": []}, []
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c + 1
            s = "" if k == 1 else str(k)
            x0, y1 = c * (w + hgap), 1 - r * (h + vgap)
            xa = layout[f"xaxis{s}"] = dict(domain=[x0, x0 + w], anchor=f"y{s}")
            ya = layout[f"yaxis{s}"] = dict(domain=[y1 - h, y1], anchor=f"x{s}")
            layout["annotations"].append(dict(text=titles[k - 1], x=x0 + w / 2, y=y1, xref="paper", yref="paper",
                                              xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=12)))
            cells.append((f"x{s}", f"y{s}", xa, ya))
    return layout, cells


def prepared(cm: CourseModel, text, max_tokens: int):
    """prepare_text, cached; LessonError for empty text or anything that is not text (lessons.inputs.clean_text)."""
    text = "" if text is None else text
    return _prepared.get_or_compute((cm.model, text, max_tokens), lambda: prepare_text(cm, text, max_tokens))


@dataclass(frozen=True)
class LayerQK:
    """One layer of one traced forward pass, batch dimension dropped."""

    q: torch.Tensor  # (nh, T, hs) before RoPE
    k: torch.Tensor  # (nkv, T, hs) before RoPE
    q_rot: torch.Tensor  # (nh, T, hs) after RoPE (equal to q when the model has no RoPE)
    k_rot: torch.Tensor  # (nkv, T, hs)
    attn: torch.Tensor  # (nh, T, T) attention probabilities


def traced(model: Llama, ids: tuple[int, ...]) -> list[LayerQK]:
    """The model's traced forward pass on ids, per layer, cached by (model, ids)."""

    def run():
        layers = trace(model, ids).layers
        return [LayerQK(*(getattr(lt, n)[0].float().cpu() for n in ("q", "k", "q_rot", "k_rot", "attn")))
                for lt in layers]

    return _traces.get_or_compute((model, ids), run)


# ----------------------------------------------------------------------------- variant models


_variants = LRU(8)  # (model, position, rope_theta) -> the variant: only its RoPE tables are its own


def variant_model(base: Llama, position: str = "rope", rope_theta: float | None = None) -> Llama:
    """The base model with one teaching switch changed, sharing every weight with it (llama.variant): RoPE has no
    weights (its tables are computed from the config), so the same tensors fit a model with RoPE switched off or
    with another rope_theta: only the positions change. The variant costs its RoPE tables, not a copy of the model;
    base is left as it is. Cached per (base, position, rope_theta), so its traces are cached too.

        >>> off = variant_model(cm.model, "none")
        >>> off.config.position, off is cm.model, cm.config.position
        ('none', False, 'rope')
    """
    cfg = base.config.replace(position=position, rope_theta=float(rope_theta or base.config.rope_theta))

    def build():
        model = shared_variant(base, cfg)
        model.attn_backend = "manual"  # the readable path, the only one that records attention
        return model

    return _variants.get_or_compute((base, cfg.position, cfg.rope_theta), build)


def check_variant(variant) -> tuple[str, str]:
    """One of VARIANTS, or 'none' with a notice: (variant, notice)."""
    return choice(variant, "Comparison", VARIANTS, default="none")


def variant_of(cm: CourseModel, variant: str) -> tuple[Llama, str]:
    """'none' -> RoPE switched off; a number -> that rope_theta. Returns the model and a readable name.

        >>> variant_of(cm, "500000")[1]
        'rope_theta = 500,000'
    """
    variant = str(variant).strip().replace(",", "").replace("_", "")
    if variant == "none":
        return variant_model(cm.model, "none"), "RoPE switched off"
    try:
        theta = float(variant)
    except ValueError:
        raise LessonError(f"Unknown comparison {variant[:40]!r}: choose RoPE off or one of the rope_theta values.") \
            from None
    if not 1.0 < theta <= 1e9:  # also refuses nan
        raise LessonError(f"rope_theta must be between 1 and 1,000,000,000 (got {theta:g}).")
    return variant_model(cm.model, "rope", theta), f"rope_theta = {theta:,.0f}"


# ----------------------------------------------------------------------------- 1. no positions: shuffling


def _scores(layer: LayerQK, head: int, rotated: bool) -> torch.Tensor:
    """Raw attention scores q . k / sqrt(hs) of one head, every query against every key (no causal mask)."""
    n_rep = layer.q.shape[0] // layer.k.shape[0]
    q = (layer.q_rot if rotated else layer.q)[head]  # (T, hs)
    k = (layer.k_rot if rotated else layer.k)[head // n_rep]  # (T, hs) the KV head this query head reads
    return q @ k.T / math.sqrt(q.shape[-1])  # (T, T)


def _permutation(n: int, seed: int) -> list[int]:
    """A shuffle of 1..n-1 that moves at least one token; BOS stays first, as in every sequence the model sees.

        >>> _permutation(5, 0)[0]
        0
    """
    rng = random.Random(seed)
    rest = list(range(1, n))
    for _ in range(20):
        rng.shuffle(rest)
        if rest != sorted(rest):
            break
    return [0] + rest


def _clamp_int(x, lo: int, hi: int, name: str, notices: list[str]) -> int:
    """A whole number in [lo, hi] (lessons.inputs.whole: NaN, inf, 1e20, 4.5, 'abc' handled); notices get why."""
    v, notice = whole(x, name, lo, hi, default=lo)
    if notice:
        notices.append(notice)
    return v


def check_seed(seed) -> tuple[int, str]:
    """The shuffle number: a whole number from 0 to SEED_MAX (an empty box is the first shuffle)."""
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        return 0, ""
    return whole(seed, "Shuffle number", 0, SEED_MAX, default=0)


def next_seed(seed) -> tuple[int, str]:
    """'Shuffle again': the next shuffle number, back to 0 after SEED_MAX.

        >>> next_seed(4), next_seed(SEED_MAX)[0], next_seed(2**70)[0]
        ((5, ''), 0, 0)
    """
    s, notice = check_seed(seed)
    return (s + 1 if s < SEED_MAX else 0), notice


@dataclass
class ShuffleResult:
    figure: go.Figure
    perm: list[int]  # shuffled position a holds the token from original position perm[a]
    none: torch.Tensor  # (T, T) scores without positions, original order
    none_shuffled: torch.Tensor  # (T, T) ... for the shuffled text
    rope: torch.Tensor  # (T, T) with RoPE as trained
    rope_shuffled: torch.Tensor
    diff_none: float  # max |shuffled scores - original scores permuted|: 0 up to float rounding
    diff_rope: float  # ... with RoPE: large
    readout: str
    notice: str = ""
    seed: int = 0  # the shuffle number used (after clamping)


def shuffle_scores(cm: CourseModel, text: str, head: int = 0, seed: int = 0) -> ShuffleResult:
    """Layer-0 attention scores of the text and of a shuffle of it, without positions and with RoPE.

    Layer 0 without positions computes q and k from each token alone (embedding -> RMSNorm -> q_proj),
    so shuffling the tokens shuffles the rows and columns of the score matrix and nothing else:
    S_shuffled[a, b] == S[perm[a], perm[b]]. With RoPE the same tokens at new positions get new scores.

        >>> r = shuffle_scores(cm, "To be, or not to be")
        >>> r.diff_none < 1e-5 < r.diff_rope
        True
    """
    notices = []
    p = prepared(cm, text, SHUFFLE_TOKENS)
    if p.notice:
        notices.append(p.notice)
    T = len(p.ids)
    if T < 3:
        raise LessonError("Shuffling needs at least two tokens after &lt;s&gt;: type a few words.")
    head = _clamp_int(head, 0, cm.config.n_heads - 1, "Head", notices)
    seed, seed_notice = check_seed(seed)
    if seed_notice:
        notices.append(seed_notice)
    perm = _permutation(T, seed)
    ids, ids_shuf = tuple(p.ids), tuple(p.ids[i] for i in perm)
    off = variant_model(cm.model, "none")  # position="none": the same weights, no positional signal at all
    none, none_s = (_scores(traced(off, x)[0], head, False) for x in (ids, ids_shuf))
    rope, rope_s = (_scores(traced(cm.model, x)[0], head, True) for x in (ids, ids_shuf))
    idx = torch.tensor(perm)
    diff_none = (none_s - none[idx][:, idx]).abs().max().item()  # undo the shuffle, compare cell by cell
    diff_rope = (rope_s - rope[idx][:, idx]).abs().max().item()

    labels = [plot_label(s) for s in unique_labels(p.labels)]
    labels_s = [plot_label(f"{a} {p.labels[i]}") for a, i in enumerate(perm)]
    layout, cells = _grid(2, 2, ["no positions: original text", "no positions: shuffled text",
                                 "RoPE (as trained): original text", "RoPE (as trained): shuffled text"], 0.12, 0.16)
    data = []
    for (xr, yr, xa, ya), z, lab in zip(cells, (none, none_s, rope, rope_s), (labels, labels_s, labels, labels_s)):
        data.append(dict(type="heatmap", z=z.numpy(), x=lab, y=lab, xaxis=xr, yaxis=yr, coloraxis="coloraxis",
                         hovertemplate="query %{y}<br>key %{x}<br>score %{z:.3f}<extra></extra>"))
        xa.update(title=dict(text="key token", font_size=11), tickangle=-60, tickfont_size=9)
        ya.update(title=dict(text="query token", font_size=11), autorange="reversed", tickfont_size=9)
    layout.update(height=820, margin=dict(l=10, r=10, t=60, b=10),
                  coloraxis=dict(colorscale=DIVERGING, cmid=0, colorbar=dict(title=dict(text="q·k/√hs"))),
                  title=dict(text=f"Layer 0, head {head}: raw scores before the causal mask and softmax", font_size=14))
    fig = go.Figure(data=data, layout=layout)
    order = " ".join(md_label(p.labels[i]) for i in perm[1:])
    readout = (f"Shuffled order: {order}  \n"
               f"**No positions:** un-shuffling the shuffled matrix gives the original one back; largest difference "
               f"over all {T}×{T} cells = **{diff_none:.2e}** (float rounding).  \n"
               f"**RoPE:** the same comparison gives a largest difference of **{diff_rope:.3f}**: the scores moved "
               f"because the tokens moved.")
    return ShuffleResult(fig, perm, none, none_s, rope, rope_s, diff_none, diff_rope, readout, " ".join(notices), seed)


# ----------------------------------------------------------------------------- 2. four schemes side by side


@torch.no_grad()
def rope_scores_by_position(model: Llama, q: torch.Tensor, k: torch.Tensor, n_positions: int) -> torch.Tensor:
    """Score of one query vector placed at every position m against one key vector at every position n.

    Uses the model's own RoPE tables and `apply_rope`. The result is (n_positions, n_positions) and,
    for RoPE, constant along every diagonal: it depends on m - n only.
    """
    cos, sin = model.rope_cos[:n_positions].cpu(), model.rope_sin[:n_positions].cpu()  # (N, P) each
    qm = apply_rope(q.expand(n_positions, -1), cos, sin)  # (N, hs) q at positions 0..N-1
    kn = apply_rope(k.expand(n_positions, -1), cos, sin)  # (N, hs)
    return qm @ kn.T / math.sqrt(q.shape[-1])  # (N, N)


def _cosine_gram(x: torch.Tensor) -> torch.Tensor:
    x = x / x.norm(dim=-1, keepdim=True)
    return x @ x.T


@dataclass
class SchemesResult:
    figure: go.Figure
    table: str  # Markdown: what each scheme does to q and k, and what it costs
    sinusoidal: torch.Tensor  # (N, N) cosine similarity of sinusoidal position vectors
    learned: torch.Tensor  # (N, N) ... of a freshly initialised learned table
    shaw: torch.Tensor  # (N, N) the clipped relative distance that picks Shaw's vector
    rope: torch.Tensor  # (N, N) the course model's q . k at positions m, n
    notice: str = ""
    n_positions: int = 0  # the values used, after clamping
    clip: int = 0


def schemes_table(cm: CourseModel, clip: int) -> str:
    """What each scheme adds to, or does with, q and k; parameter counts for the course model's sizes."""
    c = cm.config
    shaw = 2 * (2 * clip + 1) * c.head_dim * c.n_layers  # a key table and a value table per layer, shared by heads
    rows = [
        ("Absolute sinusoidal (Transformer, 2017)", "added to the token embedding: $x_m + p_m$",
         "$q_m = W_q(x_m + p_m)$, $k_n = W_k(x_n + p_n)$: position is mixed into the content", "0 (a fixed formula)"),
        ("Learned absolute (GPT-2)", "added to the token embedding: $x_m + P[m]$",
         "as above, but $P$ is a trained table; no row exists past the context",
         f"{c.max_seq_len:,} × {c.dim} = {c.max_seq_len * c.dim:,}"),
        ("Relative (Shaw et al., 2018)", "inside attention, per pair of positions",
         f"$q_m \\cdot (k_n + a_{{n-m}})$: a learned vector per distance, clipped to ±{clip}",
         f"2 × {2 * clip + 1} × {c.head_dim} × {c.n_layers} layers = {shaw:,}"),
        ("Rotary, RoPE (Llama)", "inside attention, on q and k after the projections",
         "$q_m \\to R(m\\theta) q_m$, $k_n \\to R(n\\theta) k_n$: a rotation; $q \\cdot k$ sees only $m-n$",
         "0 (a fixed rotation)"),
    ]
    lines = ["| scheme | where it enters | what happens to q and k | new parameters (this model's sizes) |",
             "|---|---|---|---|"]
    return "\n".join(lines + [f"| {a} | {b} | {d} | {e} |" for a, b, d, e in rows])


def shaw_clip_max(cm: CourseModel) -> int:
    """The largest clipping distance the page offers: 32 keeps the picture legible."""
    return min(32, cm.config.max_seq_len - 1)


def schemes(cm: CourseModel, text: str = DEFAULT_TEXT, n_positions: int = 64, clip: int = 8) -> SchemesResult:
    """Four position-by-position pictures: how much positions m and n "see" each other in each scheme.

    Sinusoidal and learned: cosine similarity of the vectors added at m and n. Shaw: which learned
    vector (distance n - m, clipped) is added to the key. RoPE: the course model's real q . k of the
    text's last token (layer 0, head 0) placed at positions m and n.
    """
    notices = []
    c = cm.config
    n_positions = _clamp_int(n_positions, 2, c.max_seq_len, "Positions shown", notices)
    clip = _clamp_int(clip, 1, shaw_clip_max(cm), "Shaw's clipping distance", notices)
    p = prepared(cm, text, ROTATE_TOKENS)
    if p.notice:
        notices.append(p.notice)
    layer0 = traced(cm.model, tuple(p.ids))[0]
    t = len(p.ids) - 1
    q, k = layer0.q[0, t], layer0.k[0, t]  # (hs,) head 0's query and key of the last token, before RoPE
    sin_gram = _cosine_gram(sinusoidal_positions(n_positions, c.dim))  # (N, N)
    g = torch.Generator().manual_seed(0)
    learned = _cosine_gram(torch.randn(n_positions, c.dim, generator=g) * 0.02)  # (N, N) drawn as _init_weights does
    pos = torch.arange(n_positions)
    shaw = (pos[None, :] - pos[:, None]).clamp(-clip, clip).float()  # (N, N) n - m, clipped
    rope = rope_scores_by_position(cm.model, q, k, n_positions)

    tok = plot_label(p.labels[t])
    titles = ("sinusoidal: cos(p_m, p_n)", "learned, at initialisation: cos(P[m], P[n])",
              f"Shaw: index of a_(n−m), clip ±{clip}", f"RoPE: q·k/√hs of “{tok}” at m, n")
    layout, cells = _grid(1, 4, titles, hgap=0.05)
    data = []
    panels = ((sin_gram, "Viridis", "cos"), (learned, "Viridis", "cos"), (shaw, DIVERGING, "n−m"),
              (rope, DIVERGING, "score"))
    for (xr, yr, xa, ya), (z, scale, unit) in zip(cells, panels):
        centre = sum(xa["domain"]) / 2  # each panel's colour bar lies flat under it
        data.append(dict(type="heatmap", z=z.numpy(), xaxis=xr, yaxis=yr, colorscale=scale,
                         zmid=0 if scale == DIVERGING else None,
                         colorbar=dict(orientation="h", x=centre, y=-0.42, len=0.2, thickness=8,
                                       title=dict(text=unit, side="top")),
                         hovertemplate="m %{y}, n %{x}<br>%{z:.3f}<extra></extra>"))
        xa.update(title=dict(text="key position n", font_size=11))
        ya.update(title=dict(text="query position m" if xr == "x" else "", font_size=11), autorange="reversed")
    layout.update(height=440, margin=dict(l=10, r=10, t=50, b=110))
    fig = go.Figure(data=data, layout=layout)
    return SchemesResult(fig, schemes_table(cm, clip), sin_gram, learned, shaw, rope, " ".join(notices), n_positions,
                         clip)


# ----------------------------------------------------------------------------- 3. RoPE in 2-D


def rope_angles(head_dim: int, n_positions: int, theta: float) -> torch.Tensor:
    """The rotation angle m * theta_i of every position m and pair i: (n_positions, hs/2), in radians.

    The same outer product `precompute_rope` takes the cos and sin of.

        >>> rope_angles(4, 3, 10000.0)
        tensor([[0.0000, 0.0000],
                [1.0000, 0.0100],
                [2.0000, 0.0200]])
    """
    return torch.outer(torch.arange(n_positions, dtype=torch.float32), rope_frequencies(head_dim, theta))  # (N, P)


def token_choices(cm: CourseModel, text: str) -> list[tuple[str, int]]:
    """(label, index) for the query/key pickers: '3 ␣or' -> 3."""
    p = prepared(cm, text, ROTATE_TOKENS)
    return list(zip(unique_labels(p.labels), range(len(p.ids))))


@dataclass
class Picked:
    """The vectors a learner picked: one head's q of one token and k of another, before RoPE."""

    q: torch.Tensor  # (hs,)
    k: torch.Tensor  # (hs,)
    q_label: str
    k_label: str
    layer: int
    head: int
    notices: list[str]


def pick_vectors(cm: CourseModel, text: str, layer, head, q_token, k_token) -> Picked:
    """q (layer, head, token) and k (layer, the head's KV head, token) from the traced forward pass."""
    notices = []
    c = cm.config
    p = prepared(cm, text, ROTATE_TOKENS)
    if p.notice:
        notices.append(p.notice)
    layer = _clamp_int(layer, 0, c.n_layers - 1, "Layer", notices)
    head = _clamp_int(head, 0, c.n_heads - 1, "Head", notices)
    T = len(p.ids)
    q_token = _clamp_int(q_token, 0, T - 1, "Query token", notices)
    k_token = _clamp_int(k_token, 0, T - 1, "Key token", notices)
    lq = traced(cm.model, tuple(p.ids))[layer]
    q = lq.q[head, q_token]  # (hs,) before RoPE
    k = lq.k[head // c.n_rep, k_token]  # (hs,) GQA: this head's KV head
    return Picked(q, k, p.labels[q_token], p.labels[k_token], layer, head, notices)


def _positions(cm: CourseModel, m, n, notices: list[str]) -> tuple[int, int]:
    """Query position m and key position n, clamped to the context and to n <= m (the causal mask)."""
    L = cm.config.max_seq_len
    m = _clamp_int(m, 0, L - 1, "Query position m", notices)
    n = _clamp_int(n, 0, L - 1, "Key position n", notices)
    if n > m:
        notices.append(f"A query at position {m} only sees keys at positions 0 to {m} (the causal mask), "
                       f"so the key position was set from {n} to {m}.")
        n = m
    return m, n


@dataclass
class RotateResult:
    plane: go.Figure  # pair i of q and k, before and after rotation
    angles_figure: go.Figure  # heatmap of m * theta_i over position x pair
    angles: torch.Tensor  # (L, P) radians
    q_pair: tuple[float, float]  # pair i of q before RoPE
    q_pair_rot: tuple[float, float]  # ... after rotation to position m
    k_pair: tuple[float, float]
    k_pair_rot: tuple[float, float]
    m: int
    n: int
    pair: int
    angle: float  # m * theta_i in radians
    readout: str
    notice: str = ""


def _rotate_to(model: Llama, x: torch.Tensor, pos: int) -> torch.Tensor:
    """x (hs,) rotated as the model rotates a vector at position pos, with its own tables and apply_rope."""
    cos, sin = model.rope_cos[pos:pos + 1].cpu(), model.rope_sin[pos:pos + 1].cpu()  # (1, P)
    return apply_rope(x[None], cos, sin)[0]  # (hs,)


def _pair(x: torch.Tensor, i: int) -> tuple[float, float]:
    """Pair i in apply_rope's layout: (x[i], x[i + hs/2])."""
    half = x.shape[-1] // 2
    return float(x[i]), float(x[i + half])


def rotate(cm: CourseModel, text: str = DEFAULT_TEXT, layer=0, head=0, q_token=None, k_token=None,
           m=5, n=2, pair=0) -> RotateResult:
    """Rotate pair i of a real query to position m and of a real key to position n, as the model does.

        >>> r = rotate(cm, "To be", m=3, n=1, pair=0)
        >>> round(r.angle, 4)     # 3 * theta_0 = 3 * 1.0
        3.0
    """
    c = cm.config
    P = c.head_dim // 2
    if q_token is None:
        q_token = len(prepared(cm, text, ROTATE_TOKENS).ids) - 1
    if k_token is None:
        k_token = max(1, len(prepared(cm, text, ROTATE_TOKENS).ids) - 2)
    v = pick_vectors(cm, text, layer, head, q_token, k_token)
    notices = v.notices
    m, n = _positions(cm, m, n, notices)
    pair = _clamp_int(pair, 0, P - 1, "Pair index i", notices)
    angles = rope_angles(c.head_dim, c.max_seq_len, c.rope_theta)  # (L, P)
    theta_i = float(rope_frequencies(c.head_dim, c.rope_theta)[pair])
    q_rot, k_rot = _rotate_to(cm.model, v.q, m), _rotate_to(cm.model, v.k, n)
    qp, qr, kp, kr = _pair(v.q, pair), _pair(q_rot, pair), _pair(v.k, pair), _pair(k_rot, pair)
    angle = float(angles[m, pair])

    r = max(math.hypot(*qp), math.hypot(*kp), 1e-6) * 1.15
    circle = torch.linspace(0, 2 * math.pi, 121)
    data = []
    for vec, name, colour in ((qp, "q", "#2563eb"), (kp, "k", "#ea580c")):
        rad = math.hypot(*vec)  # rotation keeps this length: the dotted circle is the pair's whole orbit
        data.append(dict(type="scatter", x=(rad * circle.cos()).numpy(), y=(rad * circle.sin()).numpy(),
                         mode="lines", line=dict(color=colour, width=1, dash="dot"), hoverinfo="skip",
                         name=f"|{name} pair| = {rad:.3f}"))
    for (x, y), name, colour, dash in ((qp, "q at position 0 (no rotation)", "#93c5fd", "dash"),
                                       (qr, f"q at m = {m}", "#2563eb", "solid"),
                                       (kp, "k at position 0", "#fdba74", "dash"),
                                       (kr, f"k at n = {n}", "#ea580c", "solid")):
        data.append(dict(type="scatter", x=[0, x], y=[0, y], mode="lines+markers", name=name,
                         line=dict(color=colour, width=3, dash=dash), marker=dict(size=[0, 10]),
                         hovertemplate=f"{name}<br>(%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))
    plane = go.Figure(data=data, layout=dict(
        title=dict(text=f"pair {pair}: q turned by m·θ_{pair} = {m} × {theta_i:.4g} = {angle:.3f} rad",
                   font_size=13),
        height=460, margin=dict(l=10, r=10, t=50, b=10), legend=dict(font_size=10, orientation="h", y=-0.15),
        xaxis=dict(title=dict(text=f"coordinate {pair} of the head"), range=[-r, r], zeroline=True),
        yaxis=dict(title=dict(text=f"coordinate {pair + P}"), range=[-r, r], scaleanchor="x", zeroline=True)))

    wrapped = torch.remainder(angles, 2 * math.pi)  # (L, P) the rotation a learner would see: turns wrap at 2*pi
    heat = go.Figure(data=[
        dict(type="heatmap", z=wrapped.numpy(), customdata=angles.numpy(), colorscale=CYCLIC, zmin=0,
             zmax=2 * math.pi, colorbar=dict(title=dict(text="angle mod 2π (rad)")),
             hovertemplate="position %{y}, pair %{x}<br>m·θ_i = %{customdata:.3f} rad"
                           "<br>mod 2π = %{z:.3f}<extra></extra>"),
        dict(type="scatter", x=[pair], y=[m], mode="markers", marker=dict(symbol="x", size=12, color="#dc2626"),
             name=f"m = {m}, i = {pair}", hoverinfo="skip"),
    ], layout=dict(title=dict(text=f"Rotation angle m·θ_i (rope_theta = {c.rope_theta:,.0f}); ✕ = m {m}, i {pair}",
                              font_size=13),
                   height=460, margin=dict(l=10, r=10, t=50, b=10), showlegend=False,
                   xaxis=dict(title=dict(text="pair index i (fast → slow)")),
                   yaxis=dict(title=dict(text="position m (tokens)"), autorange="reversed")))

    dot_pair = qr[0] * kr[0] + qr[1] * kr[1]
    dot_pair_0 = qp[0] * kp[0] + qp[1] * kp[1]
    readout = (f"Query **{md_label(v.q_label)}** and key **{md_label(v.k_label)}**, layer {v.layer}, head {v.head}, "
               f"pair i = {pair}.  \n"
               f"θ_{pair} = rope_theta^(−2·{pair}/{c.head_dim}) = **{theta_i:.6g}** rad per token, "
               f"a full turn every {2 * math.pi / theta_i:,.1f} tokens.  \n"
               f"Angle of q: m·θ_{pair} = {m} × {theta_i:.6g} = **{angle:.4f} rad** "
               f"({math.degrees(angle) % 360:.1f}° after whole turns); "
               f"angle of k: n·θ_{pair} = **{float(angles[n, pair]):.4f} rad**.  \n"
               f"This pair's part of q·k: {dot_pair_0:.4f} before RoPE → **{dot_pair:.4f}** after "
               f"(turned by the difference (m−n)·θ_{pair} = {(m - n) * theta_i:.4f} rad).")
    return RotateResult(plane, heat, angles, qp, qr, kp, kr, m, n, pair, angle, readout, " ".join(notices))


# ----------------------------------------------------------------------------- 4. only the distance matters


@dataclass
class RelativeResult:
    figure: go.Figure
    shifts: list[int]  # every shift s with both m+s and n+s inside the context
    both: list[float]  # score with q at m+s and k at n+s: the same for every s
    query_only: list[float]  # score with q at m+s and k left at n: changes
    score: float  # at (m, n)
    shifted: float  # at (m+s, n+s) for the chosen s
    max_diff: float  # over all shifts
    m: int
    n: int
    shift: int
    readout: str
    notice: str = ""


@torch.no_grad()
def relative_shift(cm: CourseModel, text: str = DEFAULT_TEXT, layer=0, head=0, q_token=None, k_token=None,
                   m=5, n=2, shift=10) -> RelativeResult:
    """q . k / sqrt(hs) with q at m+s and k at n+s for every valid shift s: one value, up to float rounding.

        >>> r = relative_shift(cm, "To be, or not to be", m=5, n=2, shift=100)
        >>> r.max_diff < 1e-4
        True
    """
    L = cm.config.max_seq_len
    if q_token is None or k_token is None:
        T = len(prepared(cm, text, ROTATE_TOKENS).ids)
        q_token = T - 1 if q_token is None else q_token
        k_token = max(1, T - 2) if k_token is None else k_token
    v = pick_vectors(cm, text, layer, head, q_token, k_token)
    notices = v.notices
    m, n = _positions(cm, m, n, notices)
    lo, hi = -n, L - 1 - m  # n <= m, so these keep both m+s and n+s in 0..L-1
    requested = _clamp_int(shift, -10 * L, 10 * L, "Shift s", notices)
    shift = min(max(requested, lo), hi)
    if shift != requested:
        notices.append(f"Shift s = {requested} would move {'the query' if requested > hi else 'the key'} outside the "
                       f"context (positions 0 to {L - 1}); with m = {m} and n = {n} it can be {lo} to {hi}, "
                       f"so s = {shift} is used.")
    cos, sin = cm.model.rope_cos.cpu(), cm.model.rope_sin.cpu()  # (L, P) the model's own tables
    q_all = apply_rope(v.q.expand(L, -1), cos, sin)  # (L, hs) the query rotated to every position
    k_all = apply_rope(v.k.expand(L, -1), cos, sin)  # (L, hs)
    scale = math.sqrt(v.q.shape[-1])
    s = torch.arange(lo, hi + 1)
    both = (q_all[m + s] * k_all[n + s]).sum(-1) / scale  # (S,)
    query_only = (q_all[m + s] * k_all[n]).sum(-1) / scale  # (S,)
    score = float(both[-lo])  # s = 0
    shifted = float(both[shift - lo])
    max_diff = float((both - both[-lo]).abs().max())

    fig = go.Figure(data=[
        dict(type="scatter", x=s.numpy(), y=both.numpy(), mode="lines", name="q at m+s, k at n+s (both shifted)",
             line=dict(color="#2563eb", width=3)),
        dict(type="scatter", x=s.numpy(), y=query_only.numpy(), mode="lines", name="q at m+s, k stays at n",
             line=dict(color="#9ca3af", width=1.5)),
        dict(type="scatter", x=[shift], y=[shifted], mode="markers", name=f"s = {shift}",
             marker=dict(color="#dc2626", size=11)),
    ], layout=dict(title=dict(text=f"“{plot_label(v.q_label)}” · “{plot_label(v.k_label)}” as both move "
                                   f"together (m = {m}, n = {n}, distance {m - n})", font_size=13),
                   height=380, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.25),
                   xaxis=dict(title=dict(text="shift s (tokens)")), yaxis=dict(title=dict(text="score q·k/√hs"))))
    readout = (f"At (m, n) = ({m}, {n}): q·k/√hs = **{score:.7f}**  \n"
               f"At (m+s, n+s) = ({m + shift}, {n + shift}): q·k/√hs = **{shifted:.7f}**  \n"
               f"Largest difference over all {len(s)} shifts that fit in the context: **{max_diff:.2e}** "
               f"(float32 rounding; the values themselves are of order {max(abs(score), 1e-9):.2g}).")
    return RelativeResult(fig, s.tolist(), both.tolist(), query_only.tolist(), score, shifted, max_diff, m, n, shift,
                          readout, " ".join(notices))


# ----------------------------------------------------------------------------- 5. frequencies and long-range decay


def decay_bound(head_dim: int, theta: float, distances: torch.Tensor) -> torch.Tensor:
    """RoFormer's long-range decay curve (section 3.4.3): (1/(d/2)) * sum_j |S_j|, S_j = sum_{k<j} e^{i r theta_k}.

    The score q_m . k_n is bounded by (max_j |h_{j+1} - h_j|) times this, with r = m - n; it
    shrinks as r grows because the fast pairs' unit vectors point every which way and cancel.

        >>> decay_bound(4, 10000.0, torch.tensor([0.0]))   # r = 0: S_1 = 1, S_2 = 2 -> (1 + 2) / 2
        tensor([1.5000], dtype=torch.float64)
    """
    freqs = rope_frequencies(head_dim, theta).double()  # (P,)
    phases = torch.polar(torch.ones(len(distances), len(freqs), dtype=torch.float64),
                         distances.double()[:, None] * freqs[None, :])  # (D, P) e^{i r theta_k}
    partial = phases.cumsum(dim=-1)  # (D, P) S_1 .. S_P
    return partial.abs().mean(dim=-1)  # (D,)


def theta_from_log(log_theta) -> float:
    """The slider gives log10(rope_theta). Values within 1% of Llama 2's or Llama 3's base snap to it.

        >>> theta_from_log(4.0), theta_from_log(5.7), round(theta_from_log(3.0))   # 10^5.7 = 501,187
        (10000.0, 500000.0, 1000)
    """
    theta = 10 ** float(log_theta)
    for ref in (LLAMA2_THETA, LLAMA3_THETA):
        if abs(theta / ref - 1) < 0.01:
            return ref
    return theta


@dataclass
class SpectrumResult:
    figure: go.Figure
    theta: float
    freqs: torch.Tensor  # (P,) theta_i for the chosen rope_theta
    distances: torch.Tensor  # (D,)
    bound: torch.Tensor  # (D,) for the chosen rope_theta
    readout: str
    notice: str = ""


def spectrum(cm: CourseModel, log_theta=None, max_distance: int | None = None) -> SpectrumResult:
    """theta_i per pair and RoFormer's decay bound for the chosen rope_theta, next to the model's own, Llama 2's and
    Llama 3's. `log_theta` (the slider) is clamped to 1..7 with a notice; None = the model's own rope_theta."""
    c = cm.config
    own = float(c.rope_theta)
    lt, notice = number(math.log10(own) if log_theta is None else log_theta, "log10(rope_theta)", 1.0, 7.0,
                        default=math.log10(own))
    theta = theta_from_log(lt)
    if abs(theta / own - 1) < 0.01:
        theta = own
    hs, L = c.head_dim, c.max_seq_len
    max_distance = max_distance or 8 * L
    distances = torch.arange(0, max_distance + 1, dtype=torch.float64)
    # every curve's name comes from the config or from the slider; equal thetas share one curve
    names: dict[float, list[str]] = {}
    for th, who in ((own, "this model"), (LLAMA2_THETA, "Llama 2"), (LLAMA3_THETA, "Llama 3"), (theta, "slider")):
        names.setdefault(th, []).append(who)
    colours = {own: "#111827", LLAMA2_THETA: "#9ca3af", LLAMA3_THETA: "#a16207", theta: "#2563eb"}
    layout, ((xr1, yr1, xa1, ya1), (xr2, yr2, xa2, ya2)) = _grid(
        1, 2, [f"frequency θ_i per pair (head size {hs})", "RoFormer's upper bound on |q·k| against distance"], 0.1)
    data, bounds = [], {}
    for th, who in names.items():
        name = f"rope_theta = {th:,.0f} ({', '.join(who)})"
        width = 3 if th == theta else 1.5
        colour = "#2563eb" if th == theta else colours[th]
        f = rope_frequencies(hs, th)
        bounds[th] = decay_bound(hs, th, distances)
        data.append(dict(type="scatter", x=list(range(hs // 2)), y=f.numpy(), xaxis=xr1, yaxis=yr1,
                         mode="lines+markers", name=name, legendgroup=name, line=dict(color=colour, width=width),
                         customdata=(2 * math.pi / f).numpy(),
                         hovertemplate="pair %{x}: θ = %{y:.3g} rad/token<br>a full turn every "
                                       "%{customdata:,.0f} tokens<extra></extra>"))
        data.append(dict(type="scatter", x=distances.numpy(), y=bounds[th].numpy(), xaxis=xr2, yaxis=yr2, mode="lines",
                         name=name, legendgroup=name, showlegend=False, line=dict(color=colour, width=width),
                         hovertemplate="distance %{x:.0f}: bound %{y:.3f}<extra></extra>"))
    xa1.update(title=dict(text="pair index i"))
    ya1.update(type="log", title=dict(text="θ_i (radians per token)"))
    xa2.update(title=dict(text="relative distance m − n (tokens, log scale)"), type="log",
               range=[0, math.log10(max_distance)])  # from distance 1: a log axis has no 0
    ya2.update(title=dict(text="(1/(d/2)) Σ_j |S_j|"))
    layout["shapes"] = [dict(type="line", x0=L, x1=L, y0=0, y1=1, xref=xr2, yref=f"{yr2} domain",  # the context
                             line=dict(color="#dc2626", dash="dash", width=1))]
    layout["annotations"].append(dict(x=L, y=1, xref=xr2, yref=f"{yr2} domain", text=f"context {L}", showarrow=False,
                                      xanchor="left", yanchor="top", font=dict(size=10, color="#dc2626")))
    layout.update(height=440, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.22))
    fig = go.Figure(data=data, layout=layout)

    freqs, bound = rope_frequencies(hs, theta), bounds[theta]
    slow = int((2 * math.pi / freqs > L).sum())
    d = L if L <= max_distance else max_distance
    rows = ["| rope_theta | bound at distance 0 | bound at distance " + f"{d} (the context) |", "|---|---|---|"]
    for th, who in names.items():
        b = bounds[th]
        rows.append(f"| {th:,.0f} ({', '.join(who)}) | {float(b[0]):.2f} | {float(b[d]):.2f} "
                    f"({float(b[d]) / float(b[0]):.0%}) |")
    readout = (f"rope_theta = **{theta:,.0f}**: θ_i runs from {float(freqs[0]):.3g} to {float(freqs[-1]):.3g} "
               f"rad per token. **{slow} of {hs // 2}** pairs turn less than once across the {L}-token context.  \n"
               f"The model's RoPE tables hold positions 0 to {cm.model.rope_cos.shape[0] - 1} "
               f"(`rope_cos` is {tuple(cm.model.rope_cos.shape)[0]} × {tuple(cm.model.rope_cos.shape)[1]}); "
               f"the model refuses a position past them.\n\n" + "\n".join(rows))
    return SpectrumResult(fig, theta, freqs, distances, bound, readout, notice)


# ----------------------------------------------------------------------------- 6. the model with other positions


def _mean_lookback(attn: torch.Tensor) -> float:
    """Average distance m - n a query looks back, weighted by attention; (T, T) rows that sum to 1."""
    T = attn.shape[-1]
    dist = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).clamp(min=0).float()  # (T, T)
    return float((attn * dist).sum(-1)[1:].mean()) if T > 1 else 0.0


@dataclass
class CompareResult:
    figure: go.Figure
    trained: torch.Tensor  # (T, T) attention of the chosen head, model as trained
    variant: torch.Tensor  # (T, T) the same head in the variant model
    lookback_trained: float
    lookback_variant: float
    variant_name: str
    readout: str
    notice: str = ""


def compare_attention(cm: CourseModel, text: str = DEFAULT_TEXT, layer=0, head=0,
                      variant: str = "none") -> CompareResult:
    """One head's attention map in the trained model and in a variant with the same weights."""
    notices = []
    c = cm.config
    layer = _clamp_int(layer, 0, c.n_layers - 1, "Layer", notices)
    head = _clamp_int(head, 0, c.n_heads - 1, "Head", notices)
    p = prepared(cm, text, ATTN_TOKENS)
    if p.notice:
        notices.append(p.notice)
    variant, vnote = check_variant(variant)
    if vnote:
        notices.append(vnote)
    other, name = variant_of(cm, variant)
    ids = tuple(p.ids)
    a = traced(cm.model, ids)[layer].attn[head]  # (T, T)
    b = traced(other, ids)[layer].attn[head]  # (T, T)
    lb_a, lb_b = _mean_lookback(a), _mean_lookback(b)
    labels = [plot_label(s) for s in unique_labels(p.labels)]
    masked = torch.ones_like(a, dtype=torch.bool).triu(1)  # future keys: shown blank, not as 0
    layout, cells = _grid(1, 2, [f"as trained (RoPE, θ = {c.rope_theta:,.0f})", name], 0.14)
    data = []
    for (xr, yr, xa, ya), z in zip(cells, (a, b)):
        data.append(dict(type="heatmap", z=z.masked_fill(masked, float("nan")).numpy(), x=labels, y=labels,
                         xaxis=xr, yaxis=yr, coloraxis="coloraxis", hoverongaps=False,
                         hovertemplate="query %{y}<br>key %{x}<br>p = %{z:.3f}<extra></extra>"))
        xa.update(title=dict(text="key token", font_size=11), tickangle=-60, tickfont_size=8)
        ya.update(title=dict(text="query token", font_size=11), autorange="reversed", tickfont_size=8)
    layout.update(height=540, margin=dict(l=10, r=10, t=60, b=10), plot_bgcolor="#e5e7eb",
                  coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar=dict(title=dict(text="attention"))),
                  title=dict(text=f"Layer {layer}, head {head}: the same weights, different positions "
                                  "(grey: future keys, hidden by the causal mask)", font_size=13))
    fig = go.Figure(data=data, layout=layout)
    tv = 0.5 * float((a - b).abs().sum(-1).mean())
    readout = (f"Average distance looked back: **{lb_a:.1f} tokens** as trained, **{lb_b:.1f} tokens** with {name}.  \n"
               f"Average share of each query's attention that moved to other keys: **{tv:.0%}**.")
    return CompareResult(fig, a, b, lb_a, lb_b, name, readout, " ".join(notices))


def most_changed_head(cm: CourseModel, text: str = DEFAULT_TEXT, variant: str = "none") -> tuple[int, int, float]:
    """The (layer, head) whose attention on this text moves most in the variant, and how much (0..1).

    "How much" is the total variation distance between the two attention rows, averaged over queries:
    the share of attention that went elsewhere. The page opens on this head.
    """
    p = prepared(cm, text, ATTN_TOKENS)
    other, _ = variant_of(cm, check_variant(variant)[0])
    ids = tuple(p.ids)
    a = torch.stack([lt.attn for lt in traced(cm.model, ids)])  # (n_layers, nh, T, T)
    b = torch.stack([lt.attn for lt in traced(other, ids)])
    tv = 0.5 * (a - b).abs().sum(-1).mean(-1)  # (n_layers, nh)
    layer, head = divmod(int(tv.argmax()), tv.shape[1])
    return layer, head, float(tv[layer, head])


@dataclass
class LossResult:
    trained: float  # nats per token on the slice
    variant: float
    delta: float  # variant - trained
    trained_per_char: float
    variant_per_char: float
    tokens: int
    chars: int
    variant_name: str
    readout: str
    notice: str = ""


def validation_slice(cm: CourseModel, n_chars: int = LOSS_CHARS) -> str:
    """The first n_chars of the held-out text the page scores: val_excerpt.txt beside the model, or, for a model
    directory without one (a real checkpoint), the course model's shipped excerpt (lessons.course.validation_excerpt)."""
    return validation_excerpt(cm)[:n_chars]


def own_excerpt(cm: CourseModel) -> bool:
    """Whether the model directory ships its own held-out text (val_excerpt.txt)."""
    return (cm.path / "val_excerpt.txt").exists()


def slice_name(cm: CourseModel, n_chars: int, tokens: int, windows: int) -> str:
    """What a loss on this page was measured on, in words the page shows next to the number."""
    size = f"{tokens:,} tokens in {windows} window{'s' * (windows != 1)} of {cm.config.max_seq_len}"
    if own_excerpt(cm):
        return (f"the first {n_chars:,} characters of `{cm.path.name}/val_excerpt.txt` (the start of the held-out "
                f"validation text shipped beside the model: {size}). It is a slice, not the whole validation split, "
                "so it differs from the model card's validation loss")
    shipped = (DEFAULT_MODEL_DIR / "val_excerpt.txt").relative_to(ROOT).as_posix()
    return (f"the first {n_chars:,} characters of the course's shipped excerpt `{shipped}` (held-out "
            f"TinyShakespeare: {size}). `{cm.path.name}/` ships no held-out text, so this text may come from another "
            "domain than the model's training data: the two losses say little on their own; the change between "
            "them is the measurement")


@torch.inference_mode()
def window_loss(model: Llama, window: torch.Tensor, bos: int) -> float:
    """Summed next-token loss (nats) of one window (L,) predicted after BOS: the inputs are BOS + window[:-1].

    Reads the model only: unlike llama.train.evaluate it never switches the shared model between train() and eval()
    (the course model is loaded in eval mode and has no dropout)."""
    x = torch.cat([torch.tensor([bos]), window[:-1]])[None].to(model.embed_tokens.weight.device)  # (1, L)
    logits = model(x).logits.float()[0]  # (L, V)
    return float(F.cross_entropy(logits, window.to(logits.device), reduction="sum"))


def slice_loss(cm: CourseModel, model: Llama, n_chars: int = LOSS_CHARS, on_window=None) -> dict:
    """Mean next-token loss of `model` on the validation slice, one context window at a time (for progress).

    Every token of the whole windows is predicted once, each window starting after BOS, as in training's
    validation. Cached per model and slice.
    """

    def run():
        tok = cm.tokenizer
        ids = torch.tensor(tok.encode(validation_slice(cm, n_chars)), dtype=torch.long)
        # One window is the model's context, or the whole slice when the context is longer (a real Llama's 2,048
        # to 131,072 positions): then the slice is one window, shorter than the context.
        L = min(model.config.max_seq_len, len(ids))
        n_win = len(ids) // L if L >= 2 else 0
        if n_win == 0:
            raise LessonError(f"The validation slice has only {len(ids)} tokens: too few to measure a loss.")
        total = 0.0
        for w in range(n_win):
            total += window_loss(model, ids[w * L:(w + 1) * L], tok.bos_id)
            if on_window:
                on_window(w + 1, n_win)
        tokens = n_win * L
        chars = len(tok.decode(ids[:tokens].tolist()))
        per_token = total / tokens
        return {"per_token": per_token, "per_char": total / chars, "tokens": tokens, "chars": chars,
                "windows": n_win}

    return _losses.get_or_compute((model, n_chars), run)


def loss_chars(cm: CourseModel) -> int:
    """Characters of the validation slice the loss is measured on: LOSS_CHARS, fewer for a big model on a CPU
    (lessons.cost.eval_chars: about 256 tokens of a 1.1B model)."""
    return cost.eval_chars(cm, validation_slice(cm, LOSS_CHARS))


def loss_cost(cm: CourseModel) -> cost.Cost:
    """lessons.cost's estimate of loss_change when nothing is cached yet: the model and a variant on the slice."""
    return cost.loss(cm, validation_slice(cm, loss_chars(cm)), cm.config.max_seq_len, models=2)


def loss_change(cm: CourseModel, variant: str = "none", n_chars: int | None = None, on_window=None) -> LossResult:
    """Validation loss of the trained model and of a variant on the same fixed slice (n_chars characters, default
    loss_chars(cm)); on_window(done, total)."""
    n_chars = loss_chars(cm) if n_chars is None else n_chars
    variant, notice = check_variant(variant)
    other, name = variant_of(cm, variant)

    # one progress bar over both models' windows: the trained model's first, then the variant's
    a = slice_loss(cm, cm.model, n_chars, on_window and (lambda d, t: on_window(d, 2 * t)))
    b = slice_loss(cm, other, n_chars, on_window and (lambda d, t: on_window(t + d, 2 * t)))
    delta = b["per_token"] - a["per_token"]
    readout = (f"Measured on {slice_name(cm, n_chars, a['tokens'], a['windows'])}.  \n"
               f"as trained: **{a['per_token']:.3f}** nats/token ({a['per_char']:.3f} per character)  \n"
               f"{name}: **{b['per_token']:.3f}** nats/token ({b['per_char']:.3f} per character)  \n"
               f"change: **{delta:+.3f}** nats/token, perplexity ×{math.exp(delta):.2f}")
    if notice:
        readout = f"⚠️ {notice}\n\n{readout}"
    return LossResult(a["per_token"], b["per_token"], delta, a["per_char"], b["per_char"], a["tokens"], a["chars"],
                      name, readout, notice)


# ----------------------------------------------------------------------------- 7. predict, then reveal


def change_size(delta: float) -> str:
    """'barely' below 0.05 nats/token, 'little' below 0.5, else 'lot'.

        >>> change_size(0.01), change_size(0.2), change_size(1.3)
        ('barely', 'little', 'lot')
    """
    for limit, name in CHANGE_BINS:
        if delta < limit:
            return name
    return CHANGE_BINS[-1][1]


PREDICTIONS = {"barely": "barely changes (less than 0.05 nats per token)",
               "little": "rises a little (0.05 to 0.5 nats per token)",
               "lot": "rises a lot (more than 0.5 nats per token)"}


def theta_question_variant(cm: CourseModel) -> str:
    """Question 2 runs the model at Llama 3's rope_theta, or at 1,000,000 if the model was trained at 500,000."""
    return "500000" if float(cm.config.rope_theta) != LLAMA3_THETA else "1000000"


def reveal(cm: CourseModel, variant: str, prediction: str | None, on_window=None) -> str:
    """Run the variant on the validation slice and grade the learner's prediction against the live result
    (no prediction: the measurement alone, saying so). A prediction that is not one of PREDICTIONS' keys (an API
    call) raises LessonError naming the choices (lessons.grading.grade)."""
    r = loss_change(cm, variant, on_window=on_window)
    q = Q_OFF if variant == "none" else Q_THETA
    return q.reveal(prediction, change_size(r.delta), r.readout, show=lambda k: f"the loss {PREDICTIONS[k]}")


Q_OFF = Question(
    "rope-off",
    "If we switch RoPE off (the same weights), the validation loss ...",
    tuple(PREDICTIONS),
    misconception="that a model which attends by content barely needs positions once trained: its weights expect "
                  "rotated queries and keys, and without the rotation every score is computed from the wrong vectors")
Q_THETA = Question(
    "rope-theta",
    "Llama 3 uses rope_theta = 500,000. If we run this model with a rope_theta it was not trained at, the "
    "validation loss ...",
    tuple(PREDICTIONS),
    misconception="that rope_theta is a harmless setting to change after training: every pair but the first turns at "
                  "another speed, so each learned distance pattern lands at the wrong distance")


# ----------------------------------------------------------------------------- a toy example before the real model

TOY_POSITIONS = 12  # positions 0 .. 11 in the toy's table of scores
TOY_Q, TOY_K = (1.0, 0.0), (0.5, 1.0)


@dataclass
class ToyRope:
    """One 2-D query and key rotated to positions m and n by the model's own RoPE code (precompute_rope and
    apply_rope with head size 2: a single pair, turning one radian per position, as pair 0 of every Llama)."""

    q: torch.Tensor  # (2,) before RoPE
    k: torch.Tensor
    m: int
    n: int
    q_rot: torch.Tensor  # (2,) at position m
    k_rot: torch.Tensor  # (2,) at position n
    scores: torch.Tensor  # (P, P) (R_m q) . (R_n k) for every m (rows) and n (columns)
    notice: str

    @property
    def score(self) -> float:
        return float(self.q_rot @ self.k_rot)


def toy_rope(qx, qy, kx, ky, m, n) -> ToyRope:
    """Rotate q to position m and k to position n; every input clamped (lessons.inputs), with a notice.

        >>> t = toy_rope(1, 0, 0.5, 1, 5, 2); round(t.score, 4) == round(float(t.scores[8, 5]), 4)   # same m - n
        True
    """
    from llama.model import precompute_rope

    notes = []
    vals = []
    for name, x, d in (("q₁", qx, TOY_Q[0]), ("q₂", qy, TOY_Q[1]), ("k₁", kx, TOY_K[0]), ("k₂", ky, TOY_K[1])):
        v, nt = number(x, name, -5.0, 5.0, default=d)
        vals.append(v)
        notes.append(nt)
    m, n1 = whole(m, "Query position m", 0, TOY_POSITIONS - 1, default=3)
    n, n2 = whole(n, "Key position n", 0, TOY_POSITIONS - 1, default=1)
    cos, sin = precompute_rope(2, TOY_POSITIONS)  # (P, 1) each: one pair
    q, k = torch.tensor(vals[:2]), torch.tensor(vals[2:])
    qs = apply_rope(q.expand(TOY_POSITIONS, 2), cos, sin)  # (P, 2) q at every position
    ks = apply_rope(k.expand(TOY_POSITIONS, 2), cos, sin)  # (P, 2)
    return ToyRope(q, k, m, n, qs[m], ks[n], qs @ ks.T, " ".join(x for x in [*notes, n1, n2] if x))


def toy_rope_figure(t: ToyRope) -> go.Figure:
    """Left: q and k before (dashed) and after (solid) their rotation. Right: the score for every pair of positions,
    constant along each diagonal (the same m - n)."""
    def arrow(v, colour, name, dash):
        return dict(type="scatter", x=[0, float(v[0])], y=[0, float(v[1])], mode="lines+markers", name=name,
                    line=dict(color=colour, width=3, dash=dash), marker=dict(size=[0, 9], color=colour),
                    xaxis="x", yaxis="y", hovertemplate=f"{name}: (%{{x:.2f}}, %{{y:.2f}})<extra></extra>")
    r = float(max(t.q.norm(), t.k.norm(), 0.5)) * 1.15
    P = list(range(TOY_POSITIONS))
    data = [arrow(t.q, "#0072B2", "q", "dot"), arrow(t.q_rot, "#0072B2", f"q at m = {t.m}", "solid"),
            arrow(t.k, "#E69F00", "k", "dot"), arrow(t.k_rot, "#E69F00", f"k at n = {t.n}", "solid"),
            dict(type="heatmap", z=t.scores.tolist(), x=P, y=P, colorscale=DIVERGING, zmid=0, xaxis="x2",
                 yaxis="y2", colorbar=dict(title=dict(text="q·k"), len=0.8, x=1.02),
                 hovertemplate="m = %{y}, n = %{x}<br>score %{z:.3f}<extra></extra>"),
            dict(type="scatter", x=[t.n], y=[t.m], mode="markers", xaxis="x2", yaxis="y2", showlegend=False,
                 marker=dict(symbol="square-open", size=14, color="black", line=dict(width=2)),
                 hovertemplate="the chosen m and n<extra></extra>")]
    return go.Figure(data=data, layout=dict(
        title=dict(text=f"One 2-D query and key, rotated by position: score {t.score:+.3f} at m − n = {t.m - t.n}"),
        height=400, margin=dict(l=10, r=10, t=70, b=10), legend=dict(orientation="h", y=-0.2, x=0),
        xaxis=dict(domain=[0, 0.42], range=[-r, r], zeroline=True, title=dict(text="coordinate 1")),
        yaxis=dict(range=[-r, r], scaleanchor="x", zeroline=True, title=dict(text="coordinate 2")),
        xaxis2=dict(domain=[0.55, 0.95], anchor="y2", title=dict(text="key position n"), dtick=2),
        yaxis2=dict(anchor="x2", title=dict(text="query position m"), dtick=2, autorange="reversed")))


def toy_rope_readout(t: ToyRope) -> str:
    """The score at the chosen positions and at every other pair with the same distance."""
    d = t.m - t.n
    same = [float(t.scores[i, i - d]) for i in range(TOY_POSITIONS) if 0 <= i - d < TOY_POSITIONS]
    return (f"q = ({t.q[0]:.2f}, {t.q[1]:.2f}) at m = {t.m} turns by {t.m} rad to ({t.q_rot[0]:.3f}, "
            f"{t.q_rot[1]:.3f}); k = ({t.k[0]:.2f}, {t.k[1]:.2f}) at n = {t.n} turns by {t.n} rad to "
            f"({t.k_rot[0]:.3f}, {t.k_rot[1]:.3f}). Their dot product is **{t.score:+.4f}**. The {len(same)} "
            f"pairs of positions with the same distance m − n = {d} all score between {min(same):+.4f} and "
            f"{max(same):+.4f}: only the distance matters. Lengths are kept: |q| = {float(t.q.norm()):.3f} before "
            f"and {float(t.q_rot.norm()):.3f} after.")
