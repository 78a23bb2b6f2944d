"""Lesson 9: the Llama assembled. Every part of the earlier lessons in one forward pass of the loaded model, its
parameters, FLOPs and memory counted from its config (llama.count), and the published Llamas side by side.

The forward pass is a list of boxes (`boxes(cfg)`), in the order the model computes them, each naming the module
it is, the tensor it produces with that tensor's shape for the learner's text, and the lesson that explains it.
Selecting a box shows the real tensor from the traced pass (`lessons.course.trace`):

    >>> [b.key for b in boxes(LlamaConfig.from_name("llama2-7b"))][:4]
    ['ids', 'embed', 'attn_norm', 'qkv']
    >>> box_shapes(LlamaConfig.from_name("llama2-7b"), 10, "softmax")     # (B, nh, T, T)
    [('attention probabilities', '(B, nh, T, T)', (1, 32, 10, 10))]

Notation as in llama/model.py: B batch (1 here), T tokens (BOS included), C width, L layers, nh / nkv query /
key-value heads, hs head size, H feed-forward width, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from lessons import inputs
from lessons.course import CourseModel, plot_label, prepare_text, token_label, trace, unique_labels, vocab_tokens
from lessons.grading import Question
from lessons.kv_cache.compute import fmt_bytes, inline, memo
from lessons.plots import figure
from llama.config import PRESET_FACTS, PRESETS, LlamaConfig
from llama.count import BYTES_PER_PARAMETER, flops_per_token, parameter_counts, weight_bytes
from llama.model import Trace, repeat_kv

MAX_TOKENS = 48  # tokens of the learner's text in the pass (BOS included): an attention map stays readable
MAX_CHANNELS = 96  # channels drawn in a heatmap of a wide tensor (the title says how many of how many)
TOP = 10  # next-token candidates shown
COURSE = "this model"  # the loaded model's row in the tables
NORMS = {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}
FFNS = {"swiglu": "SwiGLU (gate, up, down)", "relu": "ReLU MLP (up, down)", "gelu": "GELU MLP (up, down)"}
POSITIONS = {"learned": "learned absolute positions", "sinusoidal": "sinusoidal positions"}
COLORS = dict(box="#e0e7ff", edge="#4f46e5", selected="#f97316", layer="#f1f5f9", text="#111827")


# ----------------------------------------------------------------------------- the boxes of the forward pass


@dataclass(frozen=True)
class Box:
    key: str  # "attn_norm"
    label: str  # the diagram's text, from the config ("RMSNorm")
    module: str  # where it lives in llama/model.py ("model.layers[i].input_layernorm")
    lesson: str  # the lesson that explains it ("/rmsnorm")
    in_layer: bool  # one per block (repeated L times)


def attention_kind(cfg: LlamaConfig) -> str:
    """'MHA', 'MQA' or 'GQA' from n_heads and n_kv_heads (a one-head model is called MHA)."""
    if cfg.n_kv_heads == cfg.n_heads:
        return "MHA"
    return "MQA" if cfg.n_kv_heads == 1 else "GQA"


def boxes(cfg: LlamaConfig) -> list[Box]:
    """The forward pass of `llama.model.Llama` for this config, box by box, in the order it is computed. A
    pre-norm block (Llama) normalises before attention and before the feed-forward and ends in a final norm; a
    post-norm block (the 2017 Transformer) normalises after each residual add and has no final norm."""
    norm = NORMS.get(cfg.norm, cfg.norm)
    L = "model.layers[i]"
    embed = "embedding" + (f" + {POSITIONS[cfg.position]}" if cfg.position in POSITIONS else "")
    attn = [Box("qkv", "q, k, v projections", f"{L}.self_attn.q_proj / k_proj / v_proj", "/attention", True)]
    if cfg.position == "rope":
        attn.append(Box("rope", "RoPE on q and k", "llama.model.apply_rope", "/rope", True))
    attn += [Box("gqa", f"{attention_kind(cfg)}: {cfg.n_heads} query heads, {cfg.n_kv_heads} K/V heads",
                 "llama.model.repeat_kv", "/gqa", True),
             Box("softmax", "causal softmax(q kᵀ/√hs) v", f"{L}.self_attn", "/attention", True),
             Box("o_proj", "o_proj", f"{L}.self_attn.o_proj", "/attention", True)]
    add_attn = Box("add_attn", "add to the residual stream", "x + self_attn(...)", "/rmsnorm", True)
    ffn = Box("ffn", FFNS.get(cfg.ffn, cfg.ffn), f"{L}.mlp", "/swiglu", True)
    add_ffn = Box("add_ffn", "add to the residual stream", "x + mlp(...)", "/rmsnorm", True)
    attn_norm = Box("attn_norm", norm, f"{L}.input_layernorm", "/rmsnorm", True)
    ffn_norm = Box("ffn_norm", norm, f"{L}.post_attention_layernorm", "/rmsnorm", True)
    if cfg.norm_placement == "pre":
        layer = [attn_norm, *attn, add_attn, ffn_norm, ffn, add_ffn]
        final = [Box("final_norm", norm, "model.norm", "/rmsnorm", False)]
    else:
        layer = [*attn, add_attn, attn_norm, ffn, add_ffn, ffn_norm]
        final = []
    head = "lm_head" + (" (tied: embed_tokens.weight)" if cfg.tie_embeddings else "")
    return [Box("ids", "token ids", "tokenizer.encode", "/tokenization", False),
            Box("embed", embed, "model.embed_tokens", "/tokenization", False),
            *layer, *final,
            Box("lm_head", head, "model.lm_head", "/sampling", False),
            Box("probs", "softmax", "torch.softmax(logits, -1)", "/sampling", False),
            Box("next", "next token", "argmax (or sample)", "/sampling", False)]


def box_shapes(cfg: LlamaConfig, T: int, key: str) -> list[tuple[str, str, tuple[int, ...]]]:
    """[(tensor, shape in symbols, shape in numbers)] of what a box produces for one sequence of T tokens."""
    B, C, nh, nkv, hs, H, V = 1, cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.hidden_dim, cfg.vocab_size
    stream = lambda what: [(what, "(B, T, C)", (B, T, C))]  # noqa: E731
    shapes = {
        "ids": [("token ids", "(B, T)", (B, T))],
        "embed": stream("embeddings"),
        "attn_norm": stream("normalised stream"),
        "qkv": [("q", "(B, nh, T, hs)", (B, nh, T, hs)), ("k", "(B, nkv, T, hs)", (B, nkv, T, hs)),
                ("v", "(B, nkv, T, hs)", (B, nkv, T, hs))],
        "rope": [("q rotated", "(B, nh, T, hs)", (B, nh, T, hs)), ("k rotated", "(B, nkv, T, hs)", (B, nkv, T, hs))],
        "gqa": [("k, v per query head (repeat_kv)", "(B, nh, T, hs)", (B, nh, T, hs))],
        "softmax": [("attention probabilities", "(B, nh, T, T)", (B, nh, T, T))],
        "o_proj": stream("attention output"),
        "add_attn": stream("residual stream"),
        "ffn_norm": stream("normalised stream"),
        "ffn": [("gate activations", "(B, T, H)", (B, T, H))] + stream("feed-forward output"),
        "add_ffn": stream("residual stream"),
        "final_norm": stream("normalised stream"),
        "lm_head": [("logits", "(B, T, V)", (B, T, V))],
        "probs": [("probabilities", "(B, T, V)", (B, T, V))],
        "next": [("next token id (last position)", "(B,)", (B,))],
    }
    return shapes[key]


def box_tensors(cm: CourseModel, ids: tuple[int, ...], key: str, layer: int) -> list[torch.Tensor]:
    """The traced tensors of a box, in `box_shapes` order, for the block `layer` (ignored outside blocks).
    Read from the cached traced pass; the two outputs a trace does not keep (a sublayer's contribution, the
    logits) are computed from it: o_proj's output is the residual after the add minus before it, the logits are
    model.lm_head applied to the final norm's output."""
    tr = trace(cm.model, ids)
    pre = cm.config.norm_placement == "pre"
    lt = tr.layers[layer] if 0 <= layer < len(tr.layers) else None
    x_in = stream_in(tr, layer)
    ids_t = torch.tensor([ids])  # (B, T)
    if key == "ids":
        return [ids_t]
    if key == "embed":
        return [tr.embeddings]
    if key == "attn_norm":
        return [lt.attn_norm_out]
    if key == "qkv":
        return [lt.q, lt.k, lt.v]
    if key == "rope":
        return [lt.q_rot, lt.k_rot]
    if key == "gqa":
        return [repeat_kv(lt.k_rot, cm.config.n_rep)]  # (B, nh, T, hs) the key each query head reads
    if key == "softmax":
        return [lt.attn]
    if key == "o_proj":
        return [(lt.ffn_in - lt.attn_in) if pre else (lt.attn_in - x_in)]
    if key == "add_attn":
        return [lt.ffn_in if pre else lt.attn_in]
    if key == "ffn_norm":
        return [lt.ffn_norm_out]
    if key == "ffn":
        return [lt.gate, (lt.out - lt.ffn_in) if pre else (lt.ffn_in - lt.attn_norm_out)]
    if key == "add_ffn":
        return [lt.out if pre else lt.ffn_in]
    if key == "final_norm":
        return [tr.final_norm_out]
    logits = logits_of(cm, ids)
    if key == "lm_head":
        return [logits]
    if key == "probs":
        return [torch.softmax(logits.float(), dim=-1)]
    if key == "next":
        return [logits[:, -1, :vocab_tokens(cm)].argmax(-1)]  # one of the tokenizer's ids
    raise KeyError(key)


def stream_in(tr: Trace, layer: int) -> torch.Tensor:
    """The residual stream entering block `layer` (B, T, C): the embeddings, or the previous block's output."""
    return tr.embeddings if layer <= 0 else tr.layers[layer - 1].out


def logits_of(cm: CourseModel, ids: tuple[int, ...]) -> torch.Tensor:
    """(B, T, V) logits: model.lm_head on the traced final norm's output (what the forward pass returns)."""
    def run():
        with torch.inference_mode():
            return cm.model.lm_head(trace(cm.model, ids).final_norm_out)

    return memo(cm, ("assembled_logits", ids), run)


def residual_norms(cm: CourseModel, ids: tuple[int, ...]) -> np.ndarray:
    """(L + 1, T): the L2 norm of the residual stream at each position, entering block 0 (the embeddings) and
    leaving each block."""
    tr = trace(cm.model, ids)
    streams = [tr.embeddings] + [lt.out for lt in tr.layers]  # each (B, T, C)
    return np.stack([s[0].float().norm(dim=-1).cpu().numpy() for s in streams])


# ----------------------------------------------------------------------------- the diagram


def diagram_figure(cfg: LlamaConfig, T: int, selected: str | None = None) -> go.Figure:
    """The forward pass as boxes and arrows, top to bottom, each box with its label and its output's shape for T
    tokens; the boxes of one block stand in a frame marked "x L". The selected box is drawn in orange."""
    bs = boxes(cfg)
    step, h = 1.0, 0.74  # vertical distance between boxes, box height (data units)
    ys = [-i * step for i in range(len(bs))]
    shapes, notes = [], []
    in_layer = [i for i, b in enumerate(bs) if b.in_layer]
    top, bottom = ys[in_layer[0]] + 0.5, ys[in_layer[-1]] - 0.5
    shapes.append(dict(type="rect", x0=-1.6, x1=1.6, y0=bottom, y1=top, line=dict(color="#94a3b8", dash="dot"),
                       fillcolor=COLORS["layer"], layer="below"))
    notes.append(dict(x=-1.45, y=(top + bottom) / 2, text=f"× {cfg.n_layers} layers", showarrow=False,
                      textangle=-90, font=dict(size=11, color="#475569")))
    for b, y in zip(bs, ys):
        sel = b.key == selected
        shapes.append(dict(type="rect", x0=-1.3, x1=1.3, y0=y - h / 2, y1=y + h / 2,
                           line=dict(color=COLORS["selected"] if sel else COLORS["edge"], width=3 if sel else 1),
                           fillcolor="#fed7aa" if sel else COLORS["box"]))
        shape = " ".join(str(s[2]) for s in box_shapes(cfg, T, b.key)[:1])
        notes.append(dict(x=0, y=y, text=f"<b>{b.label}</b><br>{shape}", showarrow=False, font=dict(size=11)))
    for y0, y1 in zip(ys, ys[1:]):  # an arrow from each box to the next
        notes.append(dict(x=0, y=y1 + h / 2, ax=0, ay=y0 - h / 2, xref="x", yref="y", axref="x", ayref="y",
                          showarrow=True, arrowhead=2, arrowsize=1, arrowwidth=1.2, arrowcolor="#334155", text=""))
    # the residual connections: from the stream before a sublayer to the add after it, on the right
    keys = [b.key for b in bs]
    for add, start in (("add_attn", "qkv" if cfg.norm_placement == "post" else "attn_norm"),
                       ("add_ffn", "ffn" if cfg.norm_placement == "post" else "ffn_norm")):
        y0, y1 = ys[keys.index(start)] + h / 2 + 0.1, ys[keys.index(add)]
        shapes.append(dict(type="path", path=f"M 1.3,{y0} L 1.45,{y0} L 1.45,{y1} L 1.3,{y1}",
                           line=dict(color="#16a34a", width=1.5)))
        notes.append(dict(x=1.45, y=(y0 + y1) / 2, text="residual", showarrow=False, textangle=-90,
                          xanchor="left", font=dict(size=10, color="#16a34a")))
    # an invisible trace so each box shows its lesson on hover
    hover = go.Scatter(x=[0] * len(bs), y=ys, mode="markers", marker=dict(size=30, opacity=0),
                       customdata=[[b.module, b.lesson] for b in bs],
                       hovertemplate="%{customdata[0]}<br>explained in %{customdata[1]}<extra></extra>")
    return figure([hover], title=dict(text=f"The forward pass on your text: T = {T} tokens, B = 1"),
                  height=int(60 + 46 * len(bs)), showlegend=False, shapes=shapes, annotations=notes,
                  margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor="white",
                  xaxis=dict(visible=False, range=[-1.7, 1.75], fixedrange=True),
                  yaxis=dict(visible=False, range=[ys[-1] - 0.6, 0.6], fixedrange=True))


def box_choices(cfg: LlamaConfig) -> list[tuple[str, str]]:
    """(label, key) for the page's box picker, numbered in pass order; block boxes say they repeat."""
    def name(b: Box) -> str:  # the norms share a label: say which module each is
        return f"{b.label} ({b.module.rsplit('.', 1)[-1]})" if b.key.endswith("norm") else b.label

    return [(f"{i}. {name(b)}" + (" (in each block)" if b.in_layer else ""), b.key)
            for i, b in enumerate(boxes(cfg), start=1)]


# ----------------------------------------------------------------------------- a box's live values


def _heatmap(z: np.ndarray, labels: list[str], title: str, xtitle: str, ylabels: list[str] | None = None) -> go.Figure:
    """A (rows, columns) heatmap, rows = tokens top to bottom; at most MAX_CHANNELS columns (the title says so)."""
    cols = z.shape[1]
    if cols > MAX_CHANNELS:
        z = z[:, :MAX_CHANNELS]
        title += f" (first {MAX_CHANNELS} of {cols:,})"
    lim = float(np.abs(z).max()) or 1.0
    hm = go.Heatmap(z=z, y=[plot_label(s) for s in unique_labels(labels)], x=ylabels or list(range(z.shape[1])),
                    colorscale="RdBu", zmin=-lim, zmax=lim, colorbar=dict(thickness=10),
                    hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>")
    return figure([hm], title=dict(text=title), height=max(260, 60 + 14 * len(labels)),
                  margin=dict(l=60, r=10, t=60, b=40), xaxis=dict(title=dict(text=xtitle)),
                  yaxis=dict(autorange="reversed", tickfont=dict(size=10)))


def _lines(series: dict[str, np.ndarray], labels: list[str], title: str, ytitle: str,
           bold: str | None = None) -> go.Figure:
    x = [plot_label(s) for s in unique_labels(labels)]
    data = [go.Scatter(x=x, y=v, mode="lines+markers", name=name,
                       line=dict(width=3.5 if name == bold else 1.5), marker=dict(size=4),
                       hovertemplate=f"{name}<br>%{{x}}: %{{y:.3f}}<extra></extra>") for name, v in series.items()]
    return figure(data, title=dict(text=title), height=360, margin=dict(l=50, r=10, t=60, b=60),
                  xaxis=dict(title=dict(text="position (token)"), tickangle=-60, tickfont=dict(size=9)),
                  yaxis=dict(title=dict(text=ytitle)))


def _bars(labels: list[str], values: list[float], title: str, ytitle: str) -> go.Figure:
    bar = go.Bar(x=[plot_label(s) for s in labels], y=values, marker_color=COLORS["edge"],
                 hovertemplate="%{x}: %{y:.4f}<extra></extra>")
    return figure([bar], title=dict(text=title), height=320, margin=dict(l=50, r=10, t=60, b=60),
                  yaxis=dict(title=dict(text=ytitle)), xaxis=dict(tickangle=-45))


def _rms(x: torch.Tensor) -> np.ndarray:
    return x[0].float().pow(2).mean(-1).sqrt().cpu().numpy()


def _top(cm: CourseModel, row: torch.Tensor, k: int = TOP) -> tuple[list[str], list[float], list[int]]:
    row = row[..., :vocab_tokens(cm)]  # the tokenizer's ids (an embedding table may be padded past them)
    vals, idx = row.float().topk(min(k, row.shape[-1]))
    ids = idx.tolist()
    return [token_label(cm.tokenizer, i) for i in ids], vals.tolist(), ids


def box_figure(cm: CourseModel, ids: tuple[int, ...], labels: list[str], key: str, layer: int, head: int) -> go.Figure:
    """A small view of the box's live values: heatmaps of stream tensors, the attention map of one head, the
    gate activations, RMS per position before and after a norm, the residual stream's norm per position after
    every block, the top next-token logits and probabilities."""
    c = cm.config
    t = [x.detach() for x in box_tensors(cm, ids, key, layer)]
    where = f"block {layer}"
    kv = head // c.n_rep
    if key == "ids":
        return _bars(unique_labels(labels), [float(i) for i in ids], "token ids of your text (BOS first)", "id")
    if key == "embed":
        return _heatmap(t[0][0].float().cpu().numpy(), labels, "embeddings: one row per token", "channel")
    if key in ("attn_norm", "ffn_norm", "final_norm"):
        tr = trace(cm.model, ids)
        lt = tr.layers[layer]
        before = {"attn_norm": lt.attn_in, "ffn_norm": lt.ffn_in, "final_norm": tr.final_norm_in}[key]
        name = NORMS.get(c.norm, c.norm)
        at = "the final norm" if key == "final_norm" else f"{where}, {'attention' if key == 'attn_norm' else 'feed-forward'} norm"
        return _lines({"RMS entering": _rms(before), "RMS leaving": _rms(t[0])}, labels,
                      f"{name} at {at}: RMS of each position's vector", "RMS")
    if key in ("qkv", "rope"):
        which = "after RoPE" if key == "rope" else "before RoPE"
        return _heatmap(t[0][0, head].float().cpu().numpy(), labels,
                        f"q of head {head}, {where}, {which}", "dimension of the head")
    if key == "gqa":
        return _heatmap(t[0][0, head].float().cpu().numpy(), labels,
                        f"the keys query head {head} reads: K/V head {kv} = {head} // {c.n_rep}, {where}",
                        "dimension of the head")
    if key == "softmax":
        z = t[0][0, head].float().cpu().numpy()
        y = [plot_label(s) for s in unique_labels(labels)]
        hm = go.Heatmap(z=z, x=y, y=y, colorscale="Blues", zmin=0, zmax=1, colorbar=dict(thickness=10),
                        hovertemplate="query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>")
        return figure([hm], title=dict(text=f"attention map of head {head}, {where}: rows sum to 1, zero above "
                                            "the diagonal"), height=max(300, 80 + 14 * len(labels)),
                      margin=dict(l=60, r=10, t=60, b=60), xaxis=dict(title=dict(text="key"), tickangle=-60,
                                                                     tickfont=dict(size=9)),
                      yaxis=dict(autorange="reversed", title=dict(text="query"), tickfont=dict(size=9)))
    if key == "o_proj":
        return _heatmap(t[0][0].float().cpu().numpy(), labels, f"what attention adds to the stream, {where}",
                        "channel")
    if key == "ffn":
        return _heatmap(t[0][0].float().cpu().numpy(), labels, f"gate activations, {where}", "hidden unit")
    if key in ("add_attn", "add_ffn"):
        norms = residual_norms(cm, ids)
        if key == "add_ffn":
            series = {"embeddings": norms[0], **{f"after block {i}": norms[i + 1] for i in range(c.n_layers)}}
            return _lines(series, labels, "the residual stream's norm per position after each block "
                                          f"(block {layer} bold)", "‖x‖", bold=f"after block {layer}")
        before = stream_in(trace(cm.model, ids), layer)[0].float().norm(dim=-1).cpu().numpy()
        after = t[0][0].float().norm(dim=-1).cpu().numpy()
        return _lines({"before the add": before, "after adding attention": after}, labels,
                      f"the residual stream's norm per position, {where}", "‖x‖")
    row = t[0][0, -1] if key in ("lm_head", "probs") else None
    if key == "lm_head":
        toks, vals, _ = _top(cm, row)
        return _bars(toks, vals, f"the {len(toks)} largest logits at the last position (of {c.vocab_size:,})",
                     "logit")
    probs = box_tensors(cm, ids, "probs", layer)[0][0, -1]
    toks, vals, _ = _top(cm, probs)
    return _bars(toks, vals, f"next-token probabilities at the last position: the top {len(toks)} of "
                             f"{c.vocab_size:,}", "probability")


def box_markdown(cm: CourseModel, ids: tuple[int, ...], key: str, layer: int, head: int) -> str:
    """What the box is: its module, each output's shape in symbols and in numbers, the lesson that explains it,
    and a line of what the live tensor shows."""
    c = cm.config
    b = next(x for x in boxes(c) if x.key == key)
    T = len(ids)
    rows = [f"**{b.label}** (`{b.module}`" + (f", block {layer} of {c.n_layers}" if b.in_layer else "") + ")", ""]
    for (what, sym, num), t in zip(box_shapes(c, T, key), box_tensors(cm, ids, key, layer)):
        rows.append(f"- {what}: {sym} = **{tuple(num)}**, measured {tuple(t.shape)}")
    rows.append("")
    rows.append(f"B = 1, T = {T}, C = {c.dim}, nh = {c.n_heads}, nkv = {c.n_kv_heads}, hs = {c.head_dim}, "
                f"H = {c.hidden_dim}, V = {c.vocab_size:,}.")
    if key == "next":
        nxt = int(box_tensors(cm, ids, "next", layer)[0][0])
        p = float(box_tensors(cm, ids, "probs", layer)[0][0, -1, nxt])
        rows.append(f"\nThe most likely next token is **{nxt}** `{inline(token_label(cm.tokenizer, nxt))}` "
                    f"(probability {p:.3f}).")
    if key in ("qkv", "rope", "gqa", "softmax"):
        rows.append(f"\nQuery head {head} reads K/V head {head // c.n_rep} (n_rep = {c.n_rep}).")
    rows.append(f"\nExplained in the lesson [{b.lesson.strip('/')}]({b.lesson}).")
    return "\n".join(rows)


def check_view(cm: CourseModel, key, layer, head) -> tuple[str, int, int, str]:
    """The box key, block and head the view shows (unknown box -> the embeddings; block and head clamped)."""
    c = cm.config
    keys = [b.key for b in boxes(c)]
    key, n1 = inputs.choice(key, "Box", keys, default="embed")
    layer, n2 = inputs.whole(layer, "Block", 0, c.n_layers - 1, default=0)
    head, n3 = inputs.whole(head, "Head", 0, c.n_heads - 1, default=0)
    return key, layer, head, inputs.join(n1, n2, n3)


def pass_view(cm: CourseModel, text, key, layer, head) -> tuple[go.Figure, go.Figure, str, str, int, int]:
    """(diagram, the box's values, readout, notice, block, head) for the learner's text and selection."""
    key, layer, head, notice = check_view(cm, key, layer, head)
    prep = prepare_text(cm, text, max_tokens=MAX_TOKENS)
    ids = tuple(prep.ids)
    notice = inputs.join(prep.notice, notice)
    return (diagram_figure(cm.config, len(ids), key), box_figure(cm, ids, prep.labels, key, layer, head),
            box_markdown(cm, ids, key, layer, head), notice, layer, head)


def architecture_facts(cm: CourseModel) -> str:
    """What the loaded model's config makes true, in words (pre- or post-norm, norm kind, positions, feed-forward,
    attention sharing, tied output layer)."""
    c = cm.config
    norm = NORMS.get(c.norm, c.norm)
    placement = ("**pre-norm**: each sublayer reads a normalised copy of the stream and adds its output to it; a "
                 "final norm comes before lm_head" if c.norm_placement == "pre" else
                 "**post-norm**: each residual add is followed by a norm, and there is no final norm")
    pos = {"rope": f"**RoPE** (θ = {c.rope_theta:,.0f}) rotates q and k; nothing is added to the embeddings",
           "learned": "**learned absolute positions** are added to the embeddings",
           "sinusoidal": "**sinusoidal positions** are added to the embeddings",
           "none": "**no position information** at all"}[c.position]
    kind = attention_kind(c)
    share = (f"**{kind}**: {c.n_heads} query heads share {c.n_kv_heads} K/V head{'s' * (c.n_kv_heads > 1)}, "
             f"{c.n_rep} query head{'s' * (c.n_rep > 1)} per K/V head" if kind != "MHA" else
             f"**MHA**: each of the {c.n_heads} query heads has its own K/V head")
    tied = ("**tied**: lm_head's weight is embed_tokens.weight, stored once" if c.tie_embeddings else
            "**untied**: lm_head has its own V × C matrix")
    bias = "no biases" if not (c.attention_bias or c.mlp_bias) else "biases on " + " and ".join(
        n for n, on in (("attention", c.attention_bias), ("feed-forward", c.mlp_bias)) if on)
    return "\n".join([
        f"From the loaded model's config ({c.n_layers} blocks, width C = {c.dim}):",
        f"- {placement}; the norm is **{norm}** (ε = {c.norm_eps:g});",
        f"- {pos};",
        f"- feed-forward: **{FFNS.get(c.ffn, c.ffn)}**, hidden size H = {c.hidden_dim};",
        f"- attention: {share};",
        f"- output layer: {tied};",
        f"- {bias} on the projections.",
    ])


# ----------------------------------------------------------------------------- parameters, FLOPs, memory

REAL = [k for k in PRESETS if k in PRESET_FACTS]  # the published Llamas (PRESET_FACTS says what each is), in PRESETS order


def components(cfg: LlamaConfig) -> dict[str, int]:
    """Parameters by component over the whole model (llama.count): embeddings (embed_tokens and learned
    positions), attention (q, k, v, o_proj of every block), feed-forward (gate, up, down_proj), norms, lm_head
    (0 when tied)."""
    p = parameter_counts(cfg)
    return {"embeddings": p.embed_tokens + p.embed_positions, "attention": p.n_layers * p.attention,
            "feed-forward": p.n_layers * p.mlp, "norms": p.norms, "lm_head": p.lm_head}


def _flops(n: float) -> str:
    """6.44e6 -> '6.44 MFLOP'; 1.89e12 -> '1.89 TFLOP'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}FLOP"
    return f"{n:.0f} FLOP"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else (f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}")


def model_configs(cm: CourseModel) -> dict[str, LlamaConfig]:
    """The loaded model's config and every published Llama in PRESETS, by display name."""
    return {COURSE: cm.config, **{PRESET_FACTS[k].name: LlamaConfig.from_name(k) for k in REAL}}


def parameter_table(cm: CourseModel) -> str:
    """Markdown: each model's parameters by component, total, FLOPs per token and weight memory in fp32, bf16 and
    int8, all from llama.count; the loaded model's total beside model.num_parameters()."""
    dtypes = list(BYTES_PER_PARAMETER)
    rows = ["| model | embeddings | attention | feed-forward | norms | lm_head | **total** | "
            "FLOPs per token (forward, attending to the whole context) | "
            + " | ".join(f"weights, {d}" for d in dtypes) + " |", "|---" * (8 + len(dtypes)) + "|"]
    for name, c in model_configs(cm).items():
        parts = components(c)
        total = parameter_counts(c).total
        head = "tied" if c.tie_embeddings else _count(parts["lm_head"])
        rows.append(f"| {name} | " + " | ".join(_count(parts[k]) for k in ("embeddings", "attention",
                                                                            "feed-forward", "norms"))
                    + f" | {head} | **{total:,}** | {_flops(flops_per_token(c))} | "
                    + " | ".join(fmt_bytes(weight_bytes(c, d)) for d in dtypes) + " |")
    real = cm.model.num_parameters()
    mine = parameter_counts(cm.config).total
    check = "they agree" if real == mine else "**they differ**"
    return ("\n".join(rows) + f"\n\nThe loaded model, counted from its config: **{mine:,}**; "
            f"`model.num_parameters()` on the loaded weights: **{real:,}**: {check}.")


def shares_figure(cm: CourseModel) -> go.Figure:
    """Each model's parameters split by component, in percent of its total (a stacked bar per model)."""
    configs = model_configs(cm)
    names = list(configs)
    parts = {n: components(c) for n, c in configs.items()}
    totals = {n: parameter_counts(c).total for n, c in configs.items()}
    # Okabe-Ito colours: apart for every common colour-vision deficiency (tests/test_share.py checks)
    colors = {"embeddings": "#E69F00", "attention": "#0072B2", "feed-forward": "#009E73", "norms": "#CC79A7",
              "lm_head": "#D55E00"}
    data = [go.Bar(y=names, x=[100 * parts[n][k] / totals[n] for n in names], name=k, orientation="h",
                   marker_color=colors[k], customdata=[parts[n][k] for n in names],
                   hovertemplate=f"{k}: %{{x:.1f}}%% (%{{customdata:,}})<extra>%{{y}}</extra>")
            for k in colors]
    return figure(data, title=dict(text="Where the parameters are: share of each model's total"),
                  barmode="stack", height=520, margin=dict(l=100, r=10, t=60, b=40),
                  xaxis=dict(title=dict(text="% of parameters"), range=[0, 100]),
                  yaxis=dict(autorange="reversed", tickfont=dict(size=10)))


def shares_markdown() -> str:
    """What the share chart shows, counted from every published Llama in PRESETS (llama.count): the feed-forward's
    share (its range, and how many stay below two thirds), attention's share with MHA and with GQA, and by how much
    GQA shrinks k_proj and v_proj (n_h / n_kv)."""
    rows, largest = [], True
    for key in REAL:
        c = LlamaConfig.from_name(key)
        parts, total = components(c), parameter_counts(c).total
        largest = largest and parts["feed-forward"] == max(parts.values())
        rows.append((PRESET_FACTS[key].name, parts["feed-forward"] / total, parts["attention"] / total,
                     c.n_heads / c.n_kv_heads))
    ffn = sorted(rows, key=lambda r: r[1])
    below = [r for r in rows if r[1] < 2 / 3]
    mha = [r[2] for r in rows if r[3] == 1]
    gqa = sorted((r for r in rows if r[3] > 1), key=lambda r: r[3])
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    out = [f"- **Feed-forward**: {'the largest part of every published Llama' if largest else 'its share'}, from {pct(ffn[0][1])} ({ffn[0][0]}) to "
           f"{pct(ffn[-1][1])} ({ffn[-1][0]}); {len(below)} of the {len(rows)} are below two thirds"
           + (f" ({', '.join(f'{n} {pct(f)}' for n, f, _, _ in below)})." if below else ".")]
    if mha:
        out.append(f"- **Attention**: {pct(min(mha))} to {pct(max(mha))} of the models with MHA"
                   + (f", {pct(min(r[2] for r in gqa))} to {pct(max(r[2] for r in gqa))} of those with GQA" if gqa
                      else "") + ".")
    if gqa:
        lo, hi = gqa[0], gqa[-1]
        out.append(f"- **GQA** makes `k_proj` and `v_proj` $n_h / n_{{kv}}$ times smaller than `q_proj`: "
                   f"{lo[3]:g}× ({lo[0]}) to {hi[3]:g}× ({hi[0]}).")
    out.append("- **Embeddings** are a few percent, except where the vocabulary is large next to the width: Llama 3's "
               "128K tokens, most of all in Llama 3.2 1B, which ties `lm_head` to the embeddings.")
    return "\n".join(out)


# ----------------------------------------------------------------------------- Llama 1, 2, 3, 3.1, 3.2


def _scaling(c: LlamaConfig) -> str:
    s = c.rope_scaling
    if not s:
        return "none"
    return f"{s['rope_type']}, ×{s['factor']:g} from {s.get('original_max_position_embeddings', 0):,}"


def family_rows() -> list[dict]:
    """One dict per published Llama in PRESETS: its config's sizes and what PRESET_FACTS adds."""
    out = []
    for key in REAL:
        c, f = LlamaConfig.from_name(key), PRESET_FACTS[key]
        out.append(dict(preset=key, name=f.name, layers=c.n_layers, width=c.dim, heads=c.n_heads,
                        kv_heads=c.n_kv_heads, gqa=c.n_kv_heads < c.n_heads, ffn=c.hidden_dim, vocab=c.vocab_size,
                        tokenizer=f.tokenizer, context=c.max_seq_len, rope_theta=c.rope_theta,
                        rope_scaling=_scaling(c), tied=c.tie_embeddings, norm_eps=c.norm_eps,
                        params=parameter_counts(c).total, tokens=f.train_tokens or "not stated", source=f.source))
    return out


def family_table() -> str:
    """Markdown: the family_rows, one line each, and the sources below."""
    rows = ["| model | layers | width | heads | K/V heads | FFN size | vocabulary | tokenizer | context | rope_theta "
            "| RoPE scaling | tied | norm ε | parameters | training tokens |", "|---" * 15 + "|"]
    sources: list[str] = []
    for r in family_rows():
        if r["source"] not in sources:
            sources.append(r["source"])
        kv = f"{r['kv_heads']} (GQA)" if r["gqa"] else f"{r['kv_heads']} (MHA)"
        rows.append(f"| {r['name']} | {r['layers']} | {r['width']:,} | {r['heads']} | {kv} | {r['ffn']:,} | "
                    f"{r['vocab']:,} | {r['tokenizer']} | {r['context']:,} | {r['rope_theta']:,.0f} | "
                    f"{r['rope_scaling']} | {'yes' if r['tied'] else 'no'} | {r['norm_eps']:g} | "
                    f"{r['params'] / 1e9:.2f} B | {r['tokens']} [{sources.index(r['source']) + 1}] |")
    notes = [f"[{i}] {s}" for i, s in enumerate(sources, start=1)]
    return "\n".join(rows) + "\n\nSizes from `llama.config.PRESETS`; parameters computed by `llama.count`. " \
        "Sources of the training tokens and sizes: " + "; ".join(notes) + "."


# ----------------------------------------------------------------------------- predict, then reveal

PART_CHOICES = ["attention (q, k, v, o_proj)", "feed-forward (gate, up, down_proj)",
                "embeddings and lm_head", "the norms"]
PART_OF = {"attention": 0, "feed-forward": 1, "embeddings": 2, "lm_head": 2, "norms": 3}
PART_QUESTION = "Of the model loaded here, which part holds the most parameters?"


def growth_question(a: str = "llama2-7b", b: str = "llama3-8b") -> str:
    """The growth question, its numbers counted from the two presets."""
    ca, cb = LlamaConfig.from_name(a), LlamaConfig.from_name(b)
    more = parameter_counts(cb).total - parameter_counts(ca).total
    same = [f"{what} {getattr(ca, f):,}" for what, f in (("width", "dim"), ("layers", "n_layers"))
            if getattr(ca, f) == getattr(cb, f)]
    return (f"{PRESET_FACTS[b].name} has {more / 1e9:.2f} billion more parameters than {PRESET_FACTS[a].name}"
            + (f" (same {' and '.join(same)})" if same else "") + ". Which change adds the most?")


GROWTH_QUESTION = growth_question()
GROWTH_CHOICES = ["the larger vocabulary (embeddings and lm_head)", "the wider feed-forward",
                  "more attention parameters"]
Q_PARTS = Question("assembled-parts", PART_QUESTION, tuple(PART_CHOICES),
                   misconception="that attention, the part a Transformer is named for, holds most of the weights: "
                                 "per block SwiGLU's 3·C·H outweighs attention's 2·C·(n_h + n_kv)·h_s")
Q_GROWTH = Question("assembled-growth", GROWTH_QUESTION, tuple(GROWTH_CHOICES),
                    misconception="that a larger model grew evenly everywhere: with the same width and depth, the "
                                  "vocabulary and the feed-forward grew while GQA shrank attention")


def part_sizes(cfg: LlamaConfig) -> list[int]:
    """Parameters of each PART_CHOICES entry (embeddings and lm_head together)."""
    out = [0] * len(PART_CHOICES)
    for k, n in components(cfg).items():
        out[PART_OF[k]] += n
    return out


def reveal_parts(cm: CourseModel, choice) -> str:
    """Grade the part question from llama.count on the loaded model's config, and show the same split for the
    loaded model and Llama 2 7B."""
    sizes = part_sizes(cm.config)
    answer = PART_CHOICES[int(np.argmax(sizes))]
    l2 = part_sizes(LlamaConfig.from_name("llama2-7b"))
    rows = ["| part | this model | Llama 2 7B |", "|---|---|---|"]
    for i, part in enumerate(PART_CHOICES):
        rows.append(f"| {part} | {sizes[i]:,} ({100 * sizes[i] / sum(sizes):.1f}%) | "
                    f"{l2[i]:,} ({100 * l2[i] / sum(l2):.1f}%) |")
    return Q_PARTS.reveal(choice, answer, "\n".join(rows))


def growth(a: str = "llama2-7b", b: str = "llama3-8b") -> dict[str, int]:
    """Parameter change from preset a to preset b by GROWTH_CHOICES entry (llama.count)."""
    pa, pb = part_sizes(LlamaConfig.from_name(a)), part_sizes(LlamaConfig.from_name(b))
    return {GROWTH_CHOICES[0]: pb[2] - pa[2], GROWTH_CHOICES[1]: pb[1] - pa[1], GROWTH_CHOICES[2]: pb[0] - pa[0],
            "the norms": pb[3] - pa[3]}


def reveal_growth(choice) -> str:
    """Grade the growth question from llama.count: the change that adds the most parameters."""
    d = growth()
    answer = max(GROWTH_CHOICES, key=lambda k: d[k])
    a, b = LlamaConfig.from_name("llama2-7b"), LlamaConfig.from_name("llama3-8b")
    total = parameter_counts(b).total - parameter_counts(a).total
    lines = [f"- {k}: **{v:+,}**" for k, v in d.items()]
    return Q_GROWTH.reveal(choice, answer, "Llama 2 7B → Llama 3 8B, counted from the two "
            f"configs (total {total:+,}):\n" + "\n".join(lines) +
            f"\n\nThe feed-forward went from {a.hidden_dim:,} to {b.hidden_dim:,} hidden units in each of "
            f"{b.n_layers} blocks, the vocabulary from {a.vocab_size:,} to {b.vocab_size:,} tokens "
            f"({'one V × C matrix, tied' if b.tie_embeddings else 'embed_tokens and an untied lm_head'}), and the K/V heads from {a.n_kv_heads} to {b.n_kv_heads} (GQA), which shrinks "
            "k_proj and v_proj.")
