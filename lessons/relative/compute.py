"""Lesson: relative positions and the Transformer they came from.

Three ways to give attention a sense of order, computed on one real query and key of the loaded model:
  absolute   Vaswani et al. 2017, section 3.5: a position vector p_i (sinusoidal) is added to the input, so the
             score of (i, j) is W_Q(x + p_i) · W_K(x + p_j): it depends on i and j, not only on j - i;
  relative   Shaw et al. 2018, "Self-Attention with Relative Position Representations", section 3: learned
             vectors a^K and a^V for each clipped distance clip(j - i, k) = max(-k, min(k, j - i)) are added to the
             key in the score (their eq. 4) and to the value in the output (their eq. 3):
                 e_ij = x_i W_Q (x_j W_K + a^K_ij)^T / sqrt(d),   z_i = sum_j alpha_ij (x_j W_V + a^V_ij);
  rotary     Su et al. 2021 (lesson 4): q and k rotated by their positions, so the score depends on j - i only,
             with no table and no clipping.

The course model was trained with RoPE, so its q and k are real but Shaw's a^K and a^V here are random (seeded) with
the keys' scale: the figures show the *structure* each scheme gives the scores, not a trained model's habits.

Then the model Llama descends from (the 2017 encoder-decoder, drawn beside the loaded decoder-only config) and
internal covariate shift measured: how the inputs of each block drift while the course model trains (its shipped
snapshots, lessons.training).

    >>> cm = load_course_model()
    >>> r = position_scores(cm, "To be, or not to be", clip_k=4)
    >>> r.diagonal_spread["rotary"] < 1e-4, r.diagonal_spread["absolute"] > 0.01
    (True, True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from llama.model import apply_rope, sinusoidal_positions
from lessons.course import CourseModel, prepare_text, trace
from lessons.grading import Question
from lessons.inputs import LessonError, whole
from lessons.plots import figure, grid, panel_axes, wrap

DEFAULT_TEXT = "To be, or not to be, that is the question"
POSITIONS = 24  # positions drawn in the score maps
MAX_CLIP = 16
SCHEMES = ("absolute", "relative", "rotary")
TITLES = {"absolute": "absolute", "relative": "relative (Shaw)", "rotary": "rotary (RoPE)"}


def clip(d: torch.Tensor, k: int) -> torch.Tensor:
    """Shaw et al.'s clipping of a distance j - i to [-k, k] (section 3.2)."""
    return d.clamp(-k, k)


def relative_tables(head_dim: int, clip_k: int, scale: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """a^K and a^V: one vector per clipped distance -k..k, (2k+1, hd) each. Learned in Shaw et al.; random here
    (seeded, std `scale`), since the course model never learned them."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2 * clip_k + 1, head_dim, generator=g) * scale,
            torch.randn(2 * clip_k + 1, head_dim, generator=g) * scale)


def shaw_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a_k: torch.Tensor, a_v: torch.Tensor,
                   clip_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal self-attention with Shaw et al.'s relative representations (eqs. 3 and 4) for one head.
    q, k, v (T, hd); a_k, a_v (2k+1, hd). Returns (output z (T, hd), weights alpha (T, T), the value term
    sum_j alpha_ij a^V_ij (T, hd))."""
    T, hd = q.shape
    pos = torch.arange(T)
    rel = clip(pos[None, :] - pos[:, None], clip_k) + clip_k  # (T, T) index of clip(j - i) in the tables
    scores = (q @ k.T + torch.einsum("id,ijd->ij", q, a_k[rel])) / math.sqrt(hd)  # (T, T), eq. 4
    scores = scores.masked_fill(pos[None, :] > pos[:, None], float("-inf"))
    alpha = torch.softmax(scores, dim=-1)
    value_term = torch.einsum("ij,ijd->id", alpha, a_v[rel])  # (T, hd)
    return alpha @ v + value_term, alpha, value_term  # eq. 3


@dataclass(frozen=True)
class PositionScores:
    token: str  # the token whose q and k are repeated at every position
    scores: dict  # scheme -> (T, T) numpy array of scores, NaN above the diagonal (the future)
    diagonal_spread: dict  # scheme -> largest spread of the scores along one diagonal (0 = depends on j - i only)
    clip_k: int
    far_equal: float  # relative scheme: |score(d) - score(d')| for two distances beyond k (0 = clipped)
    value_share: float  # relative scheme, real tokens: |value term| / |output| averaged over positions
    notice: str = ""


@torch.no_grad()
def position_scores(cm: CourseModel, text: str, clip_k=4, layer: int = 0, head: int = 0) -> PositionScores:
    """One real token's q and k (the last token of the learner's text, layer `layer`, head `head`, before any
    position is applied) placed at every position 0..POSITIONS-1, scored under the three schemes. Raises
    LessonError for empty text."""
    clip_k, notice = whole(clip_k, "clipping distance k", 1, MAX_CLIP, 4)
    p = prepare_text(cm, text, 64)
    tr = trace(cm.model, tuple(p.ids))
    cfg = cm.config
    lt = tr.layers[layer]
    x = lt.attn_norm_out[0, -1].float().cpu()  # (C,) the normed input of the last token
    attn = cm.model.layers[layer].self_attn
    hd, kv_head = cfg.head_dim, head // cfg.n_rep
    wq = attn.q_proj.weight[head * hd:(head + 1) * hd].float().cpu()  # (hd, C)
    wk = attn.k_proj.weight[kv_head * hd:(kv_head + 1) * hd].float().cpu()
    q, k = wq @ x, wk @ x  # (hd,)
    T = POSITIONS
    pos = torch.arange(T)
    future = (pos[None, :] > pos[:, None]).numpy()
    out = {}
    # absolute: position vectors added to the input, then projected
    pe = sinusoidal_positions(T, cfg.dim)  # (T, C)
    qa, ka = (x + pe) @ wq.T, (x + pe) @ wk.T  # (T, hd)
    out["absolute"] = (qa @ ka.T / math.sqrt(hd)).numpy()
    # relative: the same q and k everywhere, plus a^K of the clipped distance
    a_k, a_v = relative_tables(hd, clip_k, float(k.std()))
    rel = clip(pos[None, :] - pos[:, None], clip_k) + clip_k
    out["relative"] = ((q @ k + (a_k[rel] @ q)) / math.sqrt(hd)).numpy()
    # rotary: q and k rotated by their positions with the model's own frequencies
    cos, sin = cm.model.rope_cos[:T].float().cpu(), cm.model.rope_sin[:T].float().cpu()
    qr = apply_rope(q.expand(T, hd).contiguous(), cos, sin)
    kr = apply_rope(k.expand(T, hd).contiguous(), cos, sin)
    out["rotary"] = (qr @ kr.T / math.sqrt(hd)).numpy()
    spread = {}
    for name, s in out.items():
        s[future] = np.nan
        spread[name] = max(float(np.nanmax(np.diagonal(s, -d)) - np.nanmin(np.diagonal(s, -d))) for d in range(T))
    d1, d2 = min(T - 1, clip_k + 2), T - 1  # two distances beyond k
    far = abs(float(out["relative"][T - 1, T - 1 - d1] - out["relative"][T - 1, T - 1 - d2]))
    # the value term on the learner's real tokens (q, k, v of this head at their true positions)
    qs = lt.q[0, head].float().cpu()
    ks = lt.k[0, kv_head].float().cpu()
    vs = lt.v[0, kv_head].float().cpu()
    a_k2, a_v2 = relative_tables(hd, clip_k, float(ks.std()))
    a_v2 = a_v2 * float(vs.std()) / max(float(ks.std()), 1e-9)
    z, _, value_term = shaw_attention(qs, ks, vs, a_k2, a_v2, clip_k)
    share = float((value_term.norm(dim=-1) / z.norm(dim=-1).clamp_min(1e-9)).mean())
    return PositionScores(p.labels[-1], out, spread, clip_k, far, share, " ".join(x for x in (notice, p.notice) if x))


def scores_figure(r: PositionScores) -> go.Figure:
    """The three score maps side by side: query position down, key position across, the future blank."""
    g = grid([TITLES[s] for s in SCHEMES], cols=3)
    traces = []
    for i, s in enumerate(SCHEMES, 1):
        z = r.scores[s]
        traces.append(dict(type="heatmap", z=z.tolist(), colorscale="RdBu", zmid=float(np.nanmean(z)),
                           showscale=False, **panel_axes(i),
                           hovertemplate=f"{TITLES[s]}: query %{{y}}, key %{{x}}, score %{{z:.3f}}<extra></extra>"))
    layout = dict(g, height=380, title=f"One token ({r.token}) at every position",
                  margin=dict(l=50, r=20, t=90, b=50))
    for i in range(1, 4):
        sx = "" if i == 1 else str(i)
        layout.setdefault(f"yaxis{sx}", {}).update(autorange="reversed", title="query position" if i == 1 else None)
        layout.setdefault(f"xaxis{sx}", {}).update(title="key position")
    return figure(traces, layout)


def scores_readout(r: PositionScores) -> str:
    s = r.diagonal_spread
    return (f"Along each diagonal (one distance j − i) the score varies by at most **{s['rotary']:.2g}** with RoPE "
            f"and **{s['relative']:.2g}** with Shaw's relative vectors (both: the distance alone decides), but by "
            f"**{s['absolute']:.3g}** with absolute positions (the same distance scores differently at different "
            f"places). Beyond k = {r.clip_k}, Shaw's scores stop changing: two distances past k differ by "
            f"**{r.far_equal:.2g}**.")


def parameters_table(cm: CourseModel, clip_k: int = 4) -> str:
    """Position parameters each scheme would add to the loaded model's config."""
    c = cm.config
    rows = [("absolute, sinusoidal (Vaswani et al. 2017)", "0: a fixed table"),
            ("absolute, learned (GPT-2)", f"{c.max_seq_len:,} × {c.dim} = {c.max_seq_len * c.dim:,}"),
            (f"relative, Shaw et al. (k = {clip_k}), a^K and a^V per layer",
             f"2 × (2k+1) × {c.head_dim} × {c.n_layers} layers = {2 * (2 * clip_k + 1) * c.head_dim * c.n_layers:,}"),
            ("rotary (RoPE, Llama)", "0: a fixed rotation")]
    return "| scheme | parameters for the loaded model |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


TABLE_CHOICES = ("one per position: 256 for keys and 256 for values",
                 "one per clipped distance -k..k: 2k+1 = 9 for keys and 9 for values",
                 "one per pair of positions: 256 × 256")
TABLE_QUESTION = Question(
    "relative.tables",
    "Shaw et al. add a learned vector to the keys and another to the values for each relative position. With the "
    "clipping distance k = 4 and a context of 256 tokens, how many vectors does one layer learn?",
    TABLE_CHOICES,
    misconception="that relative positions need a vector for every position or every pair of positions: distances "
                  "beyond k share the vector of k, so a layer learns 2k+1 vectors per table whatever the context.")


def reveal_tables(cm: CourseModel, text: str, picked) -> str:
    """Counted from the scores themselves: how many different relative vectors the relative map used."""
    r = position_scores(cm, text, 4)
    T = POSITIONS
    pos = torch.arange(T)
    used = sorted(set((clip(pos[None, :] - pos[:, None], 4)[torch.tril(torch.ones(T, T, dtype=torch.bool))]).tolist()))
    body = (f"Measured on the map above ({T} positions): the keys' relative vectors used are those of the distances "
            f"{used[0]} to {used[-1]}, **{len(used)}** of them for a causal model (which sees only j ≤ i); a model "
            f"that also looks ahead uses all 2k+1 = **{2 * r.clip_k + 1}** per table, keys and values each, whatever "
            f"the context length.\n\n" + parameters_table(cm, r.clip_k))
    return TABLE_QUESTION.reveal(picked, TABLE_CHOICES[1], body)


def value_term_readout(r: PositionScores) -> str:
    return (f"Shaw et al. add a relative vector to the **values** too (their eq. 3), not only to the keys: on your "
            f"text, with value vectors of the head's own scale, the value term Σ α_ij a^V_ij is on average "
            f"**{r.value_share:.0%}** of the output's length. RoPE has no such term: it rotates q and k only, and "
            "the values carry no position.")


# ----------------------------------------------------------------------------- the 2017 Transformer beside Llama


def architecture_figure(cm: CourseModel) -> go.Figure:
    """The original encoder-decoder Transformer (Vaswani et al. 2017, Figure 1 and section 3) beside the loaded
    decoder-only Llama, each block's parts read from the paper and from the loaded config."""
    c = cm.config
    enc = ["inputs → embedding + sinusoidal positions", "multi-head self-attention (sees all tokens)",
           "add, then LayerNorm (post-norm)", "feed-forward: ReLU, biases b1, b2", "add, then LayerNorm",
           "× 6 encoder layers (d_model 512)"]
    dec = ["outputs so far → embedding + sinusoidal positions", "masked self-attention (causal)", "add, LayerNorm",
           "cross-attention: reads the encoder's output", "add, LayerNorm", "feed-forward (ReLU), add, LayerNorm",
           "× 6 decoder layers → linear → softmax"]
    lla = ["tokens → embedding (no position vector)", "RMSNorm (pre-norm)",
           f"masked self-attention, RoPE on q and k; {c.n_heads} query / {c.n_kv_heads} K/V heads", "add",
           "RMSNorm", f"SwiGLU feed-forward (hidden {c.hidden_dim}), no biases", "add",
           f"× {c.n_layers} layers → RMSNorm → output layer → softmax"]
    cols = [("Transformer 2017: encoder", enc, "#0f766e"), ("Transformer 2017: decoder", dec, "#4338ca"),
            ("Llama (the loaded model)", lla, "#b45309")]
    shapes, ann = [], []
    for ci, (title, boxes, colour) in enumerate(cols):
        x0, x1 = ci / 3 + 0.01, (ci + 1) / 3 - 0.01
        ann.append(dict(x=(x0 + x1) / 2, y=1.0, xref="paper", yref="paper", text=f"<b>{title}</b>", showarrow=False,
                        font=dict(size=15, color=colour), xanchor="center", yanchor="bottom"))
        for bi, label in enumerate(boxes):
            y1 = 1 - bi / 8 - 0.01
            y0 = y1 - 1 / 8 + 0.02
            shapes.append(dict(type="rect", xref="paper", yref="paper", x0=x0, x1=x1, y0=y0, y1=y1,
                               line=dict(color=colour), fillcolor="rgba(255,255,255,0.9)"))
            ann.append(dict(x=(x0 + x1) / 2, y=(y0 + y1) / 2, xref="paper", yref="paper", text=wrap(label, 17),
                            showarrow=False, font=dict(size=11), xanchor="center", yanchor="middle"))
    return figure([], None, height=640, shapes=shapes, annotations=ann, xaxis=dict(visible=False),
                  yaxis=dict(visible=False), margin=dict(l=10, r=10, t=50, b=10))


# ----------------------------------------------------------------------------- internal covariate shift, measured


@dataclass(frozen=True)
class Drift:
    steps: list[int]
    rms_in: list[list[float]]  # [layer][snapshot] RMS of the residual stream entering the block's attention norm
    rms_out: list[list[float]]  # [layer][snapshot] RMS after the norm (what attention reads)
    text_tokens: int


@functools.lru_cache(maxsize=2)
@torch.no_grad()
def covariate_drift(text: str | None = None) -> Drift:
    """Run one held-out text through each shipped snapshot of the course model's training (lessons.training) and
    record, per layer, the RMS of the block's input before and after its RMSNorm. The snapshots never change, so
    the result is computed once per text (every learner's button press after the first reads it)."""
    from lessons.course import validation_excerpt
    from lessons.training import compute as T

    snaps = T.snapshots()
    rms_in, rms_out, steps, n = None, None, [], 0
    for snap in snaps:
        m = T.snapshot_model(snap)
        if text is None:
            text = validation_excerpt(m)[:600]
        p = prepare_text(m, text, 128)
        tr = trace(m.model, tuple(p.ids))
        n = len(p.ids)
        if rms_in is None:
            rms_in, rms_out = [[] for _ in tr.layers], [[] for _ in tr.layers]
        for i, lt in enumerate(tr.layers):
            rms_in[i].append(float(lt.attn_in[0, 1:].float().pow(2).mean().sqrt()))
            rms_out[i].append(float(lt.attn_norm_out[0, 1:].float().pow(2).mean().sqrt()))
        steps.append(snap.step)
    if not steps:
        raise LessonError("No training snapshots are shipped (assets/snapshots).")
    return Drift(steps, rms_in, rms_out, n)


def drift_figure(d: Drift) -> go.Figure:
    """RMS of each block's input during training, before and after its RMSNorm (log y)."""
    g = grid(["entering the norm (the block's input)", "leaving the norm (what attention reads)"], cols=2)
    traces = []
    for i, (a, b) in enumerate(zip(d.rms_in, d.rms_out)):
        colour = f"hsl({int(240 - 200 * i / max(1, len(d.rms_in) - 1))},70%,45%)"
        traces.append(dict(type="scatter", mode="lines+markers", x=d.steps, y=a, name=f"layer {i}", legendgroup=str(i),
                           line=dict(color=colour), **panel_axes(1)))
        traces.append(dict(type="scatter", mode="lines+markers", x=d.steps, y=b, name=f"layer {i}", legendgroup=str(i),
                           showlegend=False, line=dict(color=colour), **panel_axes(2)))
    layout = dict(g, height=400, title="RMS of each block's input while the course model trains",
                  legend=dict(orientation="h", y=-0.25), margin=dict(l=60, r=20, t=90, b=100))
    layout.setdefault("yaxis", {}).update(type="log", title="RMS")
    layout.setdefault("yaxis2", {}).update(type="log")
    layout.setdefault("xaxis", {}).update(title="training step")
    layout.setdefault("xaxis2", {}).update(title="training step")
    return figure(traces, layout)


def drift_readout(d: Drift) -> str:
    ratios_in = [max(r) / max(min(r), 1e-12) for r in d.rms_in]
    ratios_out = [max(r) / max(min(r), 1e-12) for r in d.rms_out]
    return (f"Measured on {d.text_tokens} tokens of held-out text at steps {', '.join(map(str, d.steps))}: the RMS "
            f"of a block's input changes by up to **{max(ratios_in):.1f}×** during training (layer "
            f"{int(np.argmax(ratios_in))}): what each layer receives keeps shifting as the layers below it learn. "
            f"After the RMSNorm it changes by at most **{max(ratios_out):.1f}×**, and only through the norm's learned "
            "gain. Ioffe and Szegedy (2015) named this drift *internal covariate shift* and introduced batch "
            "normalisation to reduce it; Santurkar et al. (2018) later found that normalisation helps training "
            "mainly by making the loss smoother, not by removing the shift.")
