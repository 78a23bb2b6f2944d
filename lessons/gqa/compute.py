"""Lesson 6: multi-query and grouped-query attention, computed on the course model.

In multi-head attention (MHA) every query head has its own key and value head. Multi-query
attention (MQA, Shazeer 2019) keeps many query heads but one K/V head; grouped-query attention
(GQA, Ainslie et al. 2023) sits between: n_kv K/V heads, each shared by n_rep = n_heads / n_kv
query heads. Query head h reads K/V head h // n_rep (`llama.model.repeat_kv`).

    >>> head_groups(8, 2)
    [0, 0, 0, 0, 1, 1, 1, 1]

Fewer K/V heads means a smaller KV cache and fewer k_proj/v_proj parameters. The GQA paper
(Ainslie et al. 2023, section 2.1) turns an MHA checkpoint into GQA by mean-pooling the K/V heads of
each group, then uptrains for 5% of the original steps; here we do the pooling (no uptraining) to the
loaded model and measure what it costs, and the exact reverse: repeating K/V heads turns GQA into MHA
without changing a single output. Every input of the page's views is clamped or snapped with a notice
(lessons.inputs), and each view returns the value its figure shows so the page can set its slider to it.

Notation: nh query heads, nkv K/V heads, hs head size, C width, T tokens, L layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch

from lessons import cost, inputs
from lessons.course import CourseModel, prepare_text, trace, unique_labels, validation_excerpt
from lessons.grading import Question
from lessons.inputs import LessonError
from lessons.plots import figure, grid, panel_axes, panels
from lessons.kv_cache.compute import (COURSE, DTYPE_BYTES, check_memory_inputs, config_cache_bytes, fmt_bytes, memo,
                                      reference_configs)
from llama.config import LlamaConfig
from llama.count import parameter_counts
from llama.model import Llama
from llama.train import loss_per_char
from llama.variant import shared_variant

Progress = Callable[[float, str], None]

MAX_MAP_TOKENS = 24  # tokens (BOS included) in the attention maps: every map stays readable
EVAL_CHARS = 3_000  # the fixed slice of validation text the conversions are measured on
MAX_EVAL_WINDOW = 512  # tokens per window of that text (the course model's 256-token context is one window)
MIN_CONTEXT, MAX_CONTEXT = 256, 131_072  # the context-length slider (tokens)
MAX_BATCH = 128
DEFAULT_DTYPE = "fp16 / bf16"
# Okabe-Ito colours, apart for every common colour-vision deficiency (tests/test_share.py checks); a ninth group
# and beyond reuse them in order.
GROUP_COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]


# ----------------------------------------------------------------------------- who shares with whom


def divisors(n: int) -> list[int]:
    """The numbers of K/V heads that n query heads can be split into evenly.

        >>> divisors(8)
        [1, 2, 4, 8]
    """
    return [d for d in range(1, n + 1) if n % d == 0]


def head_groups(n_heads: int, n_kv_heads: int) -> list[int]:
    """The K/V head each query head reads: h // n_rep (repeat_kv's order).

        >>> head_groups(4, 4), head_groups(4, 1)
        ([0, 1, 2, 3], [0, 0, 0, 0])
    """
    if n_kv_heads < 1 or n_heads % n_kv_heads:
        raise LessonError(f"{n_kv_heads} K/V heads cannot be shared evenly by {n_heads} query heads: "
                         f"choose one of {divisors(n_heads)}.")
    n_rep = n_heads // n_kv_heads
    return [h // n_rep for h in range(n_heads)]


def nearest_divisor(n: int, value: float) -> int:
    """The divisor of n closest to value (ties go to the larger, i.e. less sharing).

        >>> nearest_divisor(8, 3), nearest_divisor(64, 16)
        (4, 16)
    """
    return min(divisors(n), key=lambda d: (abs(d - value), -d))


def snap(options: list[int], want: int, previous: int | None = None) -> int:
    """The option a slider at `want` stands for. Moving from `previous` it goes on to the next option in the
    direction of the move (so arrow keys step through 1, 2, 3, 6 instead of falling back); without a
    previous value, the nearest option (ties to the larger).

        >>> snap([1, 2, 3, 6], 4), snap([1, 2, 3, 6], 4, previous=3), snap([1, 2, 3, 6], 5, previous=6)
        (3, 6, 3)
    """
    if previous is not None and want != previous:
        ahead = [o for o in options if (o >= want if want > previous else o <= want)]
        if ahead:
            return min(ahead, key=lambda o: abs(o - want))
    return min(options, key=lambda o: (abs(o - want), -o))


def clamp_kv_heads(n_heads: int, n_kv, default: int | None = None, previous: int | None = None) -> tuple[int, str]:
    """A valid number of K/V heads for n_heads query heads (a divisor: see `snap`), and a notice when the
    request was moved. NaN, text, 1e20, -1 or 4.5 are clamped and rounded first (lessons.inputs.whole).

        >>> clamp_kv_heads(6, 4)
        (3, '4 K/V heads cannot be shared evenly by 6 query heads (possible: 1, 2, 3, 6); showing 3.')
    """
    want, notice = inputs.whole(n_kv, "K/V heads", 1, n_heads, default=default or n_heads)
    got = snap(divisors(n_heads), want, previous)
    if got != want:
        notice = inputs.join(notice, f"{want} K/V heads cannot be shared evenly by {n_heads} query heads "
                                     f"(possible: {', '.join(map(str, divisors(n_heads)))}); showing {got}.")
    return got, notice


def attention_kind(n_heads: int, n_kv_heads: int) -> str:
    """'MHA', 'MQA' or 'GQA'. A one-head model is both MHA and MQA; we call it MHA."""
    if n_kv_heads == n_heads:
        return "MHA"
    return "MQA" if n_kv_heads == 1 else "GQA"


def sharing_figure(n_heads: int, n_kv_heads: int) -> go.Figure:
    """Query heads in a row on top, K/V heads below, a line from each query head to the K/V head it reads."""
    groups = head_groups(n_heads, n_kv_heads)
    n_rep = n_heads // n_kv_heads
    kv_x = [g * n_rep + (n_rep - 1) / 2 for g in range(n_kv_heads)]  # each K/V head under the middle of its group
    shapes = [dict(type="line", x0=h, y0=1, x1=kv_x[g], y1=0, line=dict(color=GROUP_COLORS[g % 8], width=2))
              for h, g in enumerate(groups)]
    data = [go.Scatter(
        x=list(range(n_heads)), y=[1] * n_heads, mode="markers+text", text=[f"q{h}" for h in range(n_heads)],
        textposition="top center", marker=dict(size=22, color=[GROUP_COLORS[g % 8] for g in groups], symbol="circle"),
        name="query heads", hovertemplate="query head %{x}<extra></extra>"), go.Scatter(
        x=kv_x, y=[0] * n_kv_heads, mode="markers+text", text=[f"K/V {g}" for g in range(n_kv_heads)],
        textposition="bottom center", name="K/V heads",
        marker=dict(size=30, symbol="square", color=[GROUP_COLORS[g % 8] for g in range(n_kv_heads)]),
        hovertemplate="K/V head: serves %{customdata} query heads<extra></extra>", customdata=[n_rep] * n_kv_heads)]
    kind = attention_kind(n_heads, n_kv_heads)
    fig = figure(data, None, shapes=shapes,
        title=dict(text=f"{kind}: {n_heads} query heads share {n_kv_heads} K/V head{'s' * (n_kv_heads > 1)} "
                        f"({n_rep} query head{'s' * (n_rep > 1)} per K/V head)"),
        height=260, margin=dict(l=20, r=20, t=60, b=20), showlegend=False, plot_bgcolor="white",
        xaxis=dict(visible=False, range=[-0.7, n_heads - 0.3]), yaxis=dict(visible=False, range=[-0.6, 1.6]))
    return fig


# ----------------------------------------------------------------------------- memory and parameters


def attention_parameters(cfg: LlamaConfig, n_kv_heads: int | None = None) -> int:
    """Weights of q_proj, k_proj, v_proj and o_proj over all layers (llama.count), with n_kv_heads K/V heads:
    L * C * hs * (2 nh + 2 nkv) without biases.

        >>> attention_parameters(LlamaConfig.from_name("llama2-7b")) / 1e9   # a third of its 6.7B
        2.147483648
    """
    c = dataclasses.replace(cfg, n_kv_heads=n_kv_heads) if n_kv_heads else cfg
    return c.n_layers * parameter_counts(c).attention


def scaled_kv_heads(cfg: LlamaConfig, fraction: float) -> int:
    """The K/V heads of a bigger model at the same sharing ratio n_kv / n_heads (a divisor of its n_heads)."""
    return nearest_divisor(cfg.n_heads, cfg.n_heads * fraction)


def clamp_memory_inputs(positions, batch, dtype) -> tuple[int, int, str, str]:
    """(positions, batch, dtype, notice): the context length and batch clamped into the sliders' ranges and
    rounded, an unknown number format replaced by fp16 / bf16, each change said in the notice."""
    positions, n1 = inputs.whole(positions, "Context length", MIN_CONTEXT, MAX_CONTEXT, default=4096)
    batch, n2 = inputs.whole(batch, "Batch", 1, MAX_BATCH, default=1)
    dtype, n3 = inputs.choice(dtype, "Number format", list(DTYPE_BYTES), default=DEFAULT_DTYPE)
    return positions, batch, dtype, inputs.join(n1, n2, n3)


def cache_vs_weights(cm: CourseModel, positions: int, batch: int, dtype: str) -> str:
    """A Markdown table: each model's weights against its KV cache (K/V heads as shipped) in one number format,
    and the batch x context at which the cache would equal the weights. Batch 1 at a few thousand tokens keeps
    the cache well below the weights of a real Llama; many long sequences at once make it dominate."""
    nbytes = DTYPE_BYTES[dtype]
    rows = [f"| model | weights ({dtype}) | cache per token | cache at {positions:,} tokens x batch {batch} | "
            "cache / weights | cache = weights at batch x context |", "|---|---|---|---|---|---|"]
    for name, c in reference_configs(cm).items():
        weights = parameter_counts(c).total * nbytes
        per_token = config_cache_bytes(c, 1, 1, nbytes)
        cache = config_cache_bytes(c, positions, batch, nbytes)
        rows.append(f"| {name} | {fmt_bytes(weights)} | {fmt_bytes(per_token)} | {fmt_bytes(cache)} | "
                    f"**{cache / weights:.2f}x** | {weights / per_token:,.0f} tokens |")
    return "\n".join(rows)


def memory_comparison(cm: CourseModel, n_kv, positions, batch, dtype, mine=False) -> tuple[go.Figure, str, str]:
    """KV cache memory and attention parameters of the loaded model and the real Llamas, against context length
    and at (positions, batch): by default with the K/V heads each model shipped with; with `mine` true at the
    learner's sharing ratio n_kv / n_heads (n_kv K/V heads for the loaded model, the nearest divisor of the same
    ratio for the others). Returns the figure, a Markdown table and a notice (empty unless an input was moved:
    every input is clamped or snapped first, so any value works)."""
    positions, batch, dtype, notice = clamp_memory_inputs(positions, batch, dtype)
    positions, batch, nbytes = check_memory_inputs(positions, batch, dtype)
    n_kv, kv_notice = clamp_kv_heads(cm.config.n_heads, n_kv, cm.config.n_kv_heads)
    mine = mine is True or mine == "true"  # a checkbox: anything else (an API client's odd value) is "as shipped"
    notice = inputs.join(kv_notice, notice) if mine else notice
    fraction = n_kv / cm.config.n_heads
    configs = reference_configs(cm)
    lengths = np.unique(np.geomspace(128, max(131072, positions), 60).astype(int))
    layout = panels([f"cache memory against context length ({'your ratio' if mine else 'as shipped'})",
                     f"GiB at {positions:,} tokens x batch {batch}"], stacked=False, gap=0.12, sizes=[0.55, 0.45])
    data = []
    rows = ["| model | query heads | K/V heads: shipped / yours | cache: MHA | shipped | yours | "
            "attention weights: MHA | yours |", "|---|---|---|---|---|---|---|---|"]
    for i, (name, c) in enumerate(configs.items()):
        kv = (n_kv if name == COURSE else scaled_kv_heads(c, fraction)) if mine else c.n_kv_heads
        color = GROUP_COLORS[i % 8]
        gib = [config_cache_bytes(c, int(t), batch, nbytes, kv) / 2**30 for t in lengths]
        data.append(go.Scatter(x=lengths, y=gib, mode="lines", name=f"{name} ({kv} K/V heads)",
                               line=dict(color=color), hovertemplate="%{x:,} tokens: %{y:.3g} GiB<extra>" + name +
                               "</extra>", **panel_axes(1)))
        sizes = {label: config_cache_bytes(c, positions, batch, nbytes, k)
                 for label, k in (("MHA", c.n_heads), ("shipped", c.n_kv_heads), ("yours", kv))}
        bars = ["MHA", "shipped"] + ["yours"] * mine
        data.append(go.Bar(x=bars, y=[sizes[k] / 2**30 for k in bars], name=name, marker_color=color,
                           showlegend=False, hovertemplate="%{x}: %{y:.3g} GiB<extra>" + name + "</extra>",
                           **panel_axes(2)))
        past = " *(past its context)*" if positions > c.max_seq_len else ""
        rows.append(f"| {name}{past} | {c.n_heads} | {c.n_kv_heads} / **{kv}** | {fmt_bytes(sizes['MHA'])} | "
                    f"{fmt_bytes(sizes['shipped'])} | **{fmt_bytes(sizes['yours'])}** | "
                    f"{attention_parameters(c, c.n_heads) / 1e6:,.1f} M | "
                    f"**{attention_parameters(c, kv) / 1e6:,.1f} M** |")
    # Decades only on the log axes (2 and 5 between them crowd a phone's half-width panel); the bars' axis has the
    # same unit as the curves', named in its panel title, so the narrow right panel carries no axis title.
    layout["xaxis"].update(title=dict(text="context length (tokens, log scale)"), type="log", dtick=1)
    layout["yaxis"].update(title=dict(text="GiB (log scale)"), type="log", dtick=1)
    layout["yaxis2"].update(type="log", dtick=1)
    layout["xaxis2"].update(title=dict(text="K/V heads"))
    fig = figure(data, layout, height=400, margin=dict(l=60, r=20, t=60, b=40), barmode="group",
                 shapes=[dict(type="line", x0=positions, x1=positions, xref="x", y0=0, y1=1, yref="y domain",
                              line=dict(color="#6b7280", dash="dot"))],
                 title=dict(text=f"KV cache, {dtype}: {n_kv} of {cm.config.n_heads} K/V heads "
                                 f"({fraction:.0%} of the query heads) for every model" if mine else
                            f"KV cache, {dtype}: each model's K/V heads as shipped"),
                 legend=dict(orientation="h", y=-0.2, font=dict(size=11)))
    table = "\n".join(rows) + "\n\n**Cache against weights** (K/V heads as shipped):\n\n" + \
        cache_vs_weights(cm, positions, batch, dtype)
    return fig, table, notice


def memory_view(cm: CourseModel, n_kv, positions, batch, dtype, mine=False
                ) -> tuple[go.Figure, str, str, int, int, str]:
    """memory_comparison plus the clamped context length, batch and number format, for the page's controls."""
    fig, table, notice = memory_comparison(cm, n_kv, positions, batch, dtype, mine)
    positions, batch, dtype, _ = clamp_memory_inputs(positions, batch, dtype)
    return fig, table, notice, positions, batch, dtype


def sharing_view(cm: CourseModel, n_kv, previous: int | None = None) -> tuple[go.Figure, str, int]:
    """(diagram, notice, K/V heads drawn): the slider is set to the count the diagram shows; `previous` is the
    count shown before, so a step of the slider goes on to the next divisor in its direction."""
    n, notice = clamp_kv_heads(cm.config.n_heads, n_kv, cm.config.n_kv_heads, _whole_or_none(previous))
    return sharing_figure(cm.config.n_heads, n), notice, n


def _whole_or_none(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def heads_readout(cm: CourseModel) -> str:
    """What the loaded model uses, from its config."""
    c = cm.config
    kind = attention_kind(c.n_heads, c.n_kv_heads)
    md = (f"The model loaded here has {c.n_heads} query heads and {c.n_kv_heads} K/V head"
          f"{'s' * (c.n_kv_heads > 1)} in each of its {c.n_layers} layers: **{kind}**, {c.n_rep} query head"
          f"{'s' * (c.n_rep > 1)} per K/V head.")
    if kind == "MHA" and c.n_heads > 1:
        md += (" No query heads share keys and values here: the slider shows what sharing would look like, and "
               "the conversion below turns the model into GQA or MQA by mean-pooling its K/V heads.")
    return md


def conversion_info(cm: CourseModel) -> str:
    """The conversion slider's help line: the model's count and the counts it converts to."""
    c = cm.config
    how = ("fewer = mean-pool, more = repeat" if 1 < c.n_kv_heads < c.n_heads else
           "fewer = mean-pool" if c.n_kv_heads == c.n_heads else "more = repeat")
    return f"now {c.n_kv_heads}; {how}; possible: {', '.join(map(str, conversion_options(cm)))}"


def kv_info(cm: CourseModel) -> str:
    """The sharing slider's help line."""
    c = cm.config
    return (f"the model has {c.n_heads} query heads; possible: {', '.join(map(str, divisors(c.n_heads)))} "
            "(others snap to the nearest)")


# ----------------------------------------------------------------------------- attention maps by K/V head


def attention_maps(cm: CourseModel, text: str, layer: int) -> tuple[np.ndarray, list[str], str]:
    """Attention probabilities of one layer, (nh, T, T), the token labels, and a notice."""
    L = cm.config.n_layers
    if not 0 <= int(layer) < L:
        raise LessonError(f"Layer {layer} does not exist: the model has layers 0 to {L - 1}.")
    prep = prepare_text(cm, text, max_tokens=MAX_MAP_TOKENS)
    maps = memo(cm, ("gqa_attn", tuple(prep.ids)), lambda: _trace_attention(cm, prep.ids))
    return maps[int(layer)], prep.labels, prep.notice


def _trace_attention(cm: CourseModel, ids: list[int]) -> list[np.ndarray]:
    return [lt.attn[0].float().cpu().numpy() for lt in trace(cm.model, tuple(ids)).layers]  # L x (nh, T, T)


def head_differences(attn: np.ndarray, n_kv_heads: int) -> tuple[float, float]:
    """Mean total-variation distance between the attention rows of two heads, for heads that share a K/V
    head and for heads that do not: 0 = identical attention, 1 = disjoint. (nan when there is no pair.)

    TV(p, p') = 1/2 sum_j |p_j - p'_j| for one query row, averaged over rows and pairs of heads."""
    nh = attn.shape[0]
    groups = head_groups(nh, n_kv_heads)
    same, other = [], []
    for a in range(nh):
        for b in range(a + 1, nh):
            tv = 0.5 * np.abs(attn[a] - attn[b]).sum(-1).mean()  # (T, T) -> per-row distance -> mean
            (same if groups[a] == groups[b] else other).append(tv)
    return (float(np.mean(same)) if same else float("nan")), (float(np.mean(other)) if other else float("nan"))


def grouped_attention_figure(cm: CourseModel, text: str, layer: int) -> tuple[go.Figure, str]:
    """One row per K/V head, one column per query head that reads it: the heads of a row share keys and
    values, yet their maps differ because each has its own queries."""
    attn, labels, notice = attention_maps(cm, text, layer)
    c = cm.config
    nkv, n_rep = c.n_kv_heads, c.n_rep
    labels = unique_labels(labels)
    titles = [f"q{g * n_rep + r} → K/V {g}" for g in range(nkv) for r in range(n_rep)]  # as in the sharing figure
    layout = grid(titles, cols=n_rep, gap_x=0.08, gap_y=0.25 / max(nkv, 1))
    data = [go.Heatmap(z=attn[g * n_rep + r], x=labels, y=labels, coloraxis="coloraxis",
                       hovertemplate="query %{y}<br>key %{x}<br>p = %{z:.3f}<extra>head " + str(g * n_rep + r) +
                       "</extra>", **panel_axes(g * n_rep + r + 1)) for g in range(nkv) for r in range(n_rep)]
    for i in range(len(titles)):
        layout[f"yaxis{'' if i == 0 else i + 1}"]["autorange"] = "reversed"
    fig = figure(data, layout, height=min(1000, 120 + 230 * nkv), margin=dict(l=30, r=30, t=80, b=20),
                 coloraxis=dict(colorscale="Blues", cmin=0, cmax=1, colorbar=dict(title="p")),
                 title=dict(text=f"Layer {layer}: attention maps grouped by K/V head (rows: query, columns: key)"))
    same, other = head_differences(attn, nkv)
    md = (f"Layer {layer}, {len(labels)} tokens. Mean difference between two heads' attention "
          f"(total variation, 0 = identical, 1 = disjoint): **{same:.2f}** for heads that share a K/V head, "
          f"**{other:.2f}** for heads that do not.")
    if n_rep == 1:
        md = f"Layer {layer}: this model is MHA (no two query heads share a K/V head)."
    return fig, md + (f"\n\n⚠️ {notice}" if notice else "")


def maps_view(cm: CourseModel, text, layer) -> tuple[go.Figure, str, str, int]:
    """(figure, readout, notice, layer shown) for raw page inputs; the layer is clamped into the model's."""
    layer, notice = inputs.whole(layer, "Layer", 0, cm.config.n_layers - 1, default=0)
    fig, md = grouped_attention_figure(cm, text, layer)
    return fig, md, notice, layer


# ----------------------------------------------------------------------------- converting checkpoints


def convert_kv_heads(model: Llama, n_kv: int) -> Llama:
    """A new Llama with n_kv K/V heads, built from `model` (which is not touched).

    Fewer heads (n_kv divides the model's nkv): mean-pool the k_proj and v_proj rows of each group of
    nkv / n_kv heads, as the GQA paper converts an MHA checkpoint. More heads (the model's nkv divides
    n_kv): repeat each K/V head, which gives exactly the same attention (repeat_kv does this anyway).
    Every other weight is copied."""
    cfg = model.config
    nkv, hs, C = cfg.n_kv_heads, cfg.head_dim, cfg.dim
    if n_kv < 1 or cfg.n_heads % n_kv:
        raise ValueError(f"{n_kv} K/V heads cannot be shared evenly by {cfg.n_heads} query heads.")
    if nkv % n_kv and n_kv % nkv:
        raise ValueError(f"{nkv} K/V heads can be pooled into a divisor of {nkv} or repeated into a multiple of "
                         f"it, not turned into {n_kv}.")
    state = {}
    for name, p in model.state_dict().items():
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            heads = p.view(nkv, hs, C)  # (nkv, hs, C): the rows of each K/V head
            if n_kv <= nkv:
                heads = heads.view(n_kv, nkv // n_kv, hs, C).mean(1)  # (n_kv, hs, C): mean of each group
            else:
                heads = heads.repeat_interleave(n_kv // nkv, dim=0)  # (n_kv, hs, C): head j -> j*r .. j*r+r-1
            state[name] = heads.reshape(n_kv * hs, C)  # (n_kv * hs, C)
    # Only k_proj and v_proj are new; every other tensor is the model's own, shared (llama.variant): a 1B model's
    # conversion costs its K/V projections, not a second copy of the model.
    return shared_variant(model, cfg.replace(n_kv_heads=n_kv), state)


def eval_text(cm: CourseModel) -> str:
    """The fixed slice of held-out text every conversion is measured on: the first EVAL_CHARS characters of
    the val_excerpt.txt shipped beside the model (the start of its held-out split), or, for a model directory
    without one (any real checkpoint), of the course model's (held-out TinyShakespeare: lessons.course)."""
    text = validation_excerpt(cm)[:EVAL_CHARS]
    return text[:cost.eval_chars(cm, text)]  # fewer characters for a big model on a CPU (lessons.cost)


def own_eval_text(cm: CourseModel) -> bool:
    """Whether the model ships its own held-out excerpt (else eval_text is the course model's Shakespeare)."""
    return (Path(cm.path) / "val_excerpt.txt").exists()


def eval_window(cm: CourseModel) -> int:
    """The window the loss is measured in: the model's context, at most MAX_EVAL_WINDOW tokens (a Llama with
    131,072 positions would need far more text than EVAL_CHARS), and at most the eval text's own length."""
    n = len(cm.tokenizer.encode(eval_text(cm)))
    if n < 2:
        raise LessonError("The held-out text gives fewer than two tokens with this model's tokenizer: "
                          "no loss can be measured.")
    return min(cm.config.max_seq_len, MAX_EVAL_WINDOW, n)


def eval_source(r: dict) -> str:
    """The text a measurement used, in words (from the measurement's own record)."""
    n = r.get("text_chars", EVAL_CHARS)  # fewer than EVAL_CHARS for a big model on a CPU (eval_text)
    if r["own_text"]:
        return f"the first {n:,} characters of the model's held-out excerpt (val_excerpt.txt)"
    return (f"the first {n:,} characters of the course's held-out TinyShakespeare excerpt: this model "
            "ships no held-out text of its own, and Shakespeare may be far from what it was trained on, so its "
            "losses are high; compare them with each other, not with another model's")


def measured_on(r: dict) -> str:
    """Which text a loss was measured on, in words, from the measurement itself."""
    return (f"{r['tokens']:,} tokens ({r['windows']} window{'s' * (r['windows'] > 1)} of {r['seq_len']}) from "
            + eval_source(r))


def _measure(model: Llama, cm: CourseModel) -> dict:
    # NOTE: llama.train.loss_per_char -> evaluate() calls model.eval() / model.train(was_training) on the model
    # it is given, which for base_loss is the shared model (the library helper is making evaluate() leave the
    # model's mode alone; the shared model is in eval mode already, so the value is unchanged).
    T = eval_window(cm)
    r = loss_per_char(model, cm.tokenizer, eval_text(cm), seq_len=T)
    return {**r, "seq_len": T, "windows": r["tokens"] // T, "own_text": own_eval_text(cm),
            "text_chars": len(eval_text(cm))}


def base_loss(cm: CourseModel) -> dict:
    return memo(cm, ("gqa_loss", cm.config.n_kv_heads),
                lambda: _measure(cm.model, cm))


def conversion_options(cm: CourseModel) -> list[int]:
    """K/V head counts the model converts to: divisors of its nkv (pooling) and multiples (repeating)."""
    c = cm.config
    return [d for d in divisors(c.n_heads) if c.n_kv_heads % d == 0 or d % c.n_kv_heads == 0]


def converted_loss(cm: CourseModel, n_kv: int, progress: Progress | None = None) -> dict:
    """Validation loss of the model converted to n_kv K/V heads, beside the original's.

        {'n_kv': 1, 'how': 'mean-pooled', 'loss': 4.1, 'base': 3.7, 'delta': 0.4, 'kv_params': ..., ...}"""
    if n_kv not in conversion_options(cm):
        raise ValueError(f"The model's {cm.config.n_kv_heads} K/V heads can become "
                         f"{', '.join(map(str, conversion_options(cm)))} K/V heads, not {n_kv}.")
    if progress:
        progress(0.05, "measuring the original model")
    base = base_loss(cm)
    if progress:
        progress(0.45, f"building and measuring the {n_kv}-K/V-head model")

    def measure():
        model = convert_kv_heads(cm.model, n_kv)
        return _measure(model, cm)

    new = memo(cm, ("gqa_loss", n_kv), measure)
    if progress:
        progress(1.0, "done")
    nkv = cm.config.n_kv_heads
    how = "unchanged" if n_kv == nkv else ("mean-pooled" if n_kv < nkv else "repeated")
    c = cm.config
    return {"n_kv": n_kv, "how": how, "loss": new["per_token"], "base": base["per_token"],
            "delta": new["per_token"] - base["per_token"], "per_char": new["per_char"], "tokens": new["tokens"],
            "chars": new["chars"], "windows": new["windows"], "seq_len": new["seq_len"], "own_text": new["own_text"],
            "text_chars": new["text_chars"],
            "kv_params": 2 * c.n_layers * c.dim * n_kv * c.head_dim}


def conversion_figure(cm: CourseModel, results: dict[int, float]) -> go.Figure:
    """Validation loss against the number of K/V heads, for every conversion measured so far; the title
    names the text measured."""
    b = base_loss(cm)
    base = b["per_token"]
    ks = sorted(results)
    fig = go.Figure(go.Bar(x=[str(k) for k in ks], y=[results[k] for k in ks],
                           marker_color=["#9ca3af" if k == cm.config.n_kv_heads else "#2563eb" for k in ks],
                           text=[f"{results[k]:.3f}" for k in ks], textposition="outside",
                           hovertemplate="%{x} K/V heads: %{y:.4f} nats/token<extra></extra>"))
    fig.add_hline(y=base, line=dict(color="#6b7280", dash="dot"),
                  annotation_text=f"as trained ({cm.config.n_kv_heads} K/V heads): {base:.3f}")
    top = max(results.values()) if results else base
    where = "val_excerpt.txt" if b["own_text"] else "the course's Shakespeare excerpt (not this model's own text)"
    fig.update_layout(height=360, margin=dict(l=60, r=20, t=80, b=50),
                      title=dict(text="Loss after converting K/V heads (no retraining)<br><sup>on "
                                      f"{b['tokens']:,} held-out tokens: {b['windows']} window"
                                      f"{'s' * (b['windows'] > 1)} of {b['seq_len']} from {where}</sup>"),
                      xaxis=dict(title="K/V heads after conversion", type="category"),
                      yaxis=dict(title="loss (nats/token)", range=[0, top * 1.15]))
    return fig


def repeat_start(cm: CourseModel) -> int:
    """The K/V heads the GQA → MHA repeat starts from: the model's own when its query heads share them; for an
    MHA model (nothing to repeat) the pooled count of the question (pool_target), so that the repeat undoes a
    pooling. LessonError for a one-head model, which can neither pool nor repeat."""
    c = cm.config
    if c.n_kv_heads < c.n_heads:
        return c.n_kv_heads
    k = pool_target(cm)
    if k is None:
        raise LessonError("The model has a single attention head: there is nothing to share, pool or repeat.")
    return k


@torch.inference_mode()
def repeat_check(cm: CourseModel, text: str) -> dict:
    """Repeat K/V heads until every query head has its own (MHA) and compare logits with the model repeated
    from: the loaded model, or for an MHA model its mean-pooled version (`repeat_start`).

    Both models see the same tokens; the largest |logit difference| is float rounding (or exactly 0)."""
    prep = prepare_text(cm, text, max_tokens=cm.config.max_seq_len)
    start = repeat_start(cm)

    def compute():
        base = cm.model if start == cm.config.n_kv_heads else convert_kv_heads(cm.model, start)
        mha = convert_kv_heads(base, cm.config.n_heads)
        idx = torch.tensor([prep.ids], device=cm.device)  # (1, T)
        a, b = base(idx).logits, mha(idx).logits  # (1, T, V) each
        return {"max_diff": float((a - b).abs().max()), "tokens": len(prep.ids), "vocab": a.shape[-1],
                "start": start, "k_rows_before": base.layers[0].self_attn.k_proj.weight.shape[0],
                "k_rows_after": mha.layers[0].self_attn.k_proj.weight.shape[0],
                "v_rows_before": base.layers[0].self_attn.v_proj.weight.shape[0],
                "v_rows_after": mha.layers[0].self_attn.v_proj.weight.shape[0],
                "params_before": base.num_parameters(), "params_after": mha.num_parameters()}

    out = dict(memo(cm, ("gqa_repeat2", start, tuple(prep.ids)), compute))
    out["notice"] = prep.notice
    return out


def repeat_markdown(cm: CourseModel, r: dict) -> str:
    c, k = cm.config, r["start"]
    warn = f"⚠️ {r['notice']}\n\n" if r["notice"] else ""
    pooled = k != c.n_kv_heads
    what = (f"This model is MHA already (each of its {c.n_heads} query heads has its own K/V head), so it is first "
            f"mean-pooled to {k} K/V head{'s' * (k > 1)} (as in the conversion below), then repeated back. "
            if pooled else "")
    than = "the pooled model" if pooled else "the model as trained"
    return (warn + what + f"GQA → MHA: every one of the {k} K/V heads repeated {c.n_heads // k}x, so each of the "
            f"{c.n_heads} query heads has its own. k_proj grows from {r['k_rows_before']} to {r['k_rows_after']} "
            f"rows per layer and v_proj from {r['v_rows_before']} to {r['v_rows_after']} "
            f"({r['params_before']:,} → {r['params_after']:,} parameters). Largest |logit "
            f"difference| from {than} over {r['tokens']} tokens x {r['vocab']:,} vocabulary entries: "
            f"**{r['max_diff']:.2e}**.")


def repeat_loss(cm: CourseModel) -> dict:
    """The loss of the repeated (MHA) model against the model it was repeated from (`repeat_start`):
    {'loss', 'base', 'delta', 'tokens', 'windows', 'seq_len', 'own_text'}."""
    start, c = repeat_start(cm), cm.config
    if start == c.n_kv_heads:
        return converted_loss(cm, c.n_heads)
    pooled = converted_loss(cm, start)
    new = memo(cm, ("gqa_loss_repeated", start),
               lambda: _measure(convert_kv_heads(convert_kv_heads(cm.model, start), c.n_heads), cm))
    return {**new, "loss": new["per_token"], "base": pooled["loss"], "delta": new["per_token"] - pooled["loss"]}


def pooling_sweep(cm: CourseModel, progress: Progress | None = None) -> dict[int, dict]:
    """converted_loss for every pooled count (every divisor of the model's nkv), fewest heads first."""
    ks = [k for k in conversion_options(cm) if k <= cm.config.n_kv_heads]
    out = {}
    for i, k in enumerate(ks):
        if progress:
            progress(i / len(ks), f"measuring {k} K/V head{'s' * (k > 1)}")
        out[k] = converted_loss(cm, k)
    return out


def measure_cost(cm: CourseModel) -> cost.Cost:
    """lessons.cost's estimate of one loss measurement (one converted model on eval_text)."""
    return cost.loss(cm, eval_text(cm), eval_window(cm))


def pooling_cost(cm: CourseModel) -> cost.Cost:
    """The pooling reveal (pooling_sweep), nothing cached yet: the model as trained and every pooled count."""
    return measure_cost(cm) * len([k for k in conversion_options(cm) if k <= cm.config.n_kv_heads])


def repeat_cost(cm: CourseModel, text: str) -> cost.Cost:
    """The repeat check (repeat_check): the model and its MHA copy on the text, one pass each."""
    T = len(prepare_text(cm, text, max_tokens=cm.config.max_seq_len).ids)
    return cost.passes(cm, 2 * T, 2)


def clamp_conversion(cm: CourseModel, n_kv, previous: int | None = None) -> tuple[int, str]:
    """The possible conversion target the request stands for (see `snap`), and a notice when it was moved
    (NaN, text, 1e20, -1, 4.5 are clamped and rounded first)."""
    options = conversion_options(cm)
    want, notice = inputs.whole(n_kv, "K/V heads after conversion", 1, cm.config.n_heads,
                                default=cm.config.n_kv_heads)
    got = snap(options, want, _whole_or_none(previous))
    if got != want:
        notice = inputs.join(notice, f"{want} K/V heads is not a possible conversion "
                                     f"({', '.join(map(str, options))}); measured {got}.")
    return got, notice


def conversion_markdown(cm: CourseModel, r: dict) -> str:
    nkv, n = cm.config.n_kv_heads, r["n_kv"]
    what = {"mean-pooled": f"mean-pooled {nkv} → {n} K/V heads", "repeated": f"repeated {nkv} → {n} K/V heads",
            "unchanged": "unchanged (the model as trained)"}[r["how"]]
    return (f"**{what}**: {r['loss']:.3f} nats/token against {r['base']:.3f} as trained (**{r['delta']:+.3f}**), "
            f"{r['per_char']:.3f} nats/character, measured on {measured_on(r)}; k_proj + v_proj hold "
            f"{r['kv_params']:,} weights in all.")


def conversion_view(cm: CourseModel, n_kv, results: dict | None, progress: Progress | None = None,
                    previous: int | None = None) -> tuple[go.Figure, str, dict, int]:
    """(figure, readout, results, K/V heads measured): the request snaps to a possible count (the slider is
    set to it; `previous` is the count measured before); results gathers this learner's measurements."""
    n, notice = clamp_conversion(cm, n_kv, previous)
    r = converted_loss(cm, n, progress)
    results = {**(results or {}), n: r["loss"]}
    md = conversion_markdown(cm, r) + (f"\n\n⚠️ {notice}" if notice else "")
    return conversion_figure(cm, results), md, results, n


# ----------------------------------------------------------------------------- predict, then reveal

SAME = 0.01  # nats/token: a loss change smaller than this counts as "about the same"
POOL_CHOICES = [f"It rises by more than {SAME} nats/token",
                f"It stays within {SAME} nats/token of the original",
                f"It falls by more than {SAME} nats/token"]
POOL_QUESTION = "what happens to the loss on the held-out text?"
REPEAT_QUESTION = "do its outputs change?"
REPEAT_CHOICES = ["No: identical outputs, up to float rounding",
                  "A little: more parameters, slightly different predictions",
                  "A lot: the heads no longer match what the model learned"]
ROUNDING = 1e-4  # largest |logit difference| that counts as float rounding
Q_POOL = Question("gqa-pool", POOL_QUESTION, tuple(POOL_CHOICES),
                  misconception="that heads sharing a group are interchangeable, so averaging their keys and values "
                                "loses nothing: each head learned its own, and the model was trained with them apart")
Q_REPEAT = Question("gqa-repeat", REPEAT_QUESTION, tuple(REPEAT_CHOICES),
                    misconception="that more parameters must change what a model computes: copies of a K/V head are "
                                  "exactly what repeat_kv already hands each query head")


def pool_target(cm: CourseModel) -> int | None:
    """The pooling the question asks about: the fewest K/V heads the model can pool into (1 = MQA), or None
    when it has one K/V head already."""
    pooled = [k for k in conversion_options(cm) if k < cm.config.n_kv_heads]
    return min(pooled) if pooled else None


def pool_question(cm: CourseModel) -> str:
    """The setup of the pooling question, for the loaded model (the page asks POOL_QUESTION after it). One
    conversion, one measurement: a single pooling (a trend needs more points than a model with few K/V heads
    can give)."""
    nkv, k = cm.config.n_kv_heads, pool_target(cm)
    if k is None:
        return "The model has a single K/V head already (MQA): there is nothing to pool."
    text = ("the model's held-out text" if own_eval_text(cm) else
            "held-out Shakespeare (the course's excerpt: this model ships no held-out text of its own)")
    return (f"Mean-pool the model's {nkv} K/V heads into {k} (each new head the mean of {nkv // k}), with no "
            f"retraining, and measure the loss on {text}.")


def repeat_question(cm: CourseModel) -> str:
    """The setup of the repeat question (the page asks REPEAT_QUESTION after it): from the model's own K/V
    heads, or for an MHA model from its pooled version."""
    c = cm.config
    try:
        k = repeat_start(cm)
    except LessonError as e:
        return str(e)
    heads = f"{k} K/V head{'s' * (k > 1)}"
    if k == c.n_kv_heads:
        return (f"The reverse: copy each of the model's {heads} so that every one of its {c.n_heads} query heads "
                "has its own (GQA → MHA). The model now has more parameters.")
    return (f"The reverse: this model is MHA already, so take it mean-pooled to {heads} (as above), then copy "
            f"each K/V head so that every one of its {c.n_heads} query heads has its own again (GQA → MHA). The "
            "copy has more parameters than the pooled model.")


def pool_answer(delta: float) -> int:
    """The index of POOL_CHOICES that a loss change (nats/token) falls in."""
    return 0 if delta > SAME else (2 if delta < -SAME else 1)


def reveal_pooling(cm: CourseModel, choice, progress: Progress | None = None) -> str:
    """Pool to the question's count, measure, and grade; other pooled counts (when the model has any) are listed
    as measurements, not graded."""
    k = pool_target(cm)
    if k is None:
        return pool_question(cm)
    sweep = pooling_sweep(cm, progress)
    nkv = cm.config.n_kv_heads
    r = sweep[k]
    lines = [f"- **{n} K/V head{'s' * (n > 1)}**: {x['loss']:.3f} nats/token ({x['delta']:+.3f})"
             for n, x in sorted(sweep.items())]
    return Q_POOL.reveal(choice, POOL_CHOICES[pool_answer(r["delta"])],
            f"Measured on {measured_on(r)} (as trained: {nkv} K/V heads):\n" + "\n".join(lines) +
            "\n\nPooling throws away what made the heads of a group different. The GQA paper (Ainslie et al. "
            "2023, section 2.1) mean-pools T5 checkpoints this way and then uptrains them for 5% of the original "
            "pre-training steps; Llama 2 34B and 70B and Llama 3 were instead trained with GQA from the start.")


def repeat_answer(max_diff: float, delta: float) -> int:
    """The index of REPEAT_CHOICES for a largest |logit difference| and a loss change."""
    return 0 if max_diff < ROUNDING else (1 if abs(delta) < 0.05 else 2)


def reveal_repeat(cm: CourseModel, text: str, choice) -> str:
    """Convert to MHA by repetition, compare logits and loss with the original, and grade the prediction."""
    r = repeat_check(cm, text)
    loss = repeat_loss(cm)
    than = "as trained" if r["start"] == cm.config.n_kv_heads else "pooled"
    return Q_REPEAT.reveal(choice, REPEAT_CHOICES[repeat_answer(r["max_diff"], loss["delta"])],
            repeat_markdown(cm, r) +
            f" Loss on {measured_on(loss)}: {loss['loss']:.4f} against {loss['base']:.4f} {than} "
            f"({loss['delta']:+.1e}). The copies hold the very keys and values `repeat_kv` already hands to each "
            "query head, so MHA costs more memory for the same model.")
