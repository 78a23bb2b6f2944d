"""The course map's live picture of the whole model: one text through the loaded Llama, drawn as HTML from
`lessons.overview.Overview` (plain data, computed by the model), each part a link to its lesson.

The parts and their lessons are app/course_map.py's (BEFORE, BLOCK, AFTER, AROUND: the same chips as the "you are
here" strip on every page), so the picture and the strip can never disagree; here each part also shows a live
quantity: token chips with their ids, tensor shapes, the residual stream's RMS after each of the N blocks (one bar
per block of the loaded model's config), the top-5 next tokens.

Layout (app/static/whole_model.css): one row of cards at a laptop's width, a column on a phone.
"""

from __future__ import annotations

import html
from pathlib import Path

import lessons
from app.course_map import AFTER, AROUND, BEFORE, BLOCK
from lessons.overview import Overview

CSS = (Path(__file__).resolve().parent / "static" / "whole_model.css").read_text(encoding="utf-8")
ARROW = '<span class="wm-arrow" aria-hidden="true">→</span>'


def _a(slug: str, label: str, cls: str = "wm-link") -> str:
    """A same-tab link to a lesson (plain text while the lesson has no page yet), its summary as the tooltip."""
    lesson = lessons.get(slug)
    tip = html.escape(f"{lesson.title}: {lesson.summary}", quote=True)
    if not lesson.ready:
        return f'<span class="{cls}" title="{tip}">{html.escape(label)}</span>'
    return (f'<a class="{cls}" href="{html.escape(lesson.path)}" target="_self" title="{tip}" '
            f'data-part="{html.escape(label, quote=True)}">{html.escape(label)}</a>')


def _shape(shape: tuple[int, ...], names: str) -> str:
    """'(1, 8, 192)' with the axes' names as its tooltip, e.g. names='B, T, C'."""
    return f'<code class="wm-shape" title="{html.escape(names)}">({", ".join(f"{n:,}" for n in shape)})</code>'


def _tokens(ov: Overview, label: str, slug: str) -> str:
    chips = "".join(f'<span class="wm-tok"><b>{html.escape(t)}</b><small>{i}</small></span>'
                    for t, i in zip(ov.tokens, ov.ids))
    return (f'<section class="wm-card wm-tokens"><h3>{_a(slug, label)} <span class="wm-note">and their ids</span></h3>'
            f'<div class="wm-chips" aria-label="tokens and ids">{chips}</div>'
            f'<p>T = {len(ov.ids)} tokens (BOS first), ids below each</p></section>')


def _embeddings(ov: Overview, label: str, slug: str) -> str:
    return (f'<section class="wm-card wm-embed"><h3>{_a(slug, label)}</h3>'
            f"<p>each id picks a row of a {ov.vocab_size:,} × {ov.dim:,} table</p>"
            f'<p>{_shape(ov.shapes["embeddings"], "B, T, C")}</p>'
            f'<p>RMS at the last token <b class="wm-num">{ov.residual_rms[0]:.2f}</b></p></section>')


def _bars(values: list[float]) -> str:
    """The residual stream's RMS as an SVG bar chart: the embedding, then one bar per block."""
    n, top = len(values), max(values) or 1.0
    w, h = 10, 48
    rects = []
    for j, v in enumerate(values):
        bh = max(1.0, h * v / top)
        name = "the embedding" if j == 0 else f"after block {j}"
        rects.append(f'<rect class="{"wm-bar0" if j == 0 else "wm-bar"}" x="{j * w + 1}" y="{h - bh:.1f}" '
                     f'width="{w - 2}" height="{bh:.1f}"><title>{name}: RMS {v:.3f}</title></rect>')
    # under the bars: every bar's name when they are few, else the first and the last (hover names each bar)
    names = ["emb"] + [str(j) for j in range(1, n)] if n <= 17 else ["emb"] + [""] * (n - 2) + [str(n - 1)]
    ticks = "".join(f"<span>{s}</span>" for s in names)
    return (f'<svg class="wm-bars" viewBox="0 0 {n * w} {h}" preserveAspectRatio="none" role="img" '
            f'aria-label="residual stream RMS at the last token: the embedding then {n - 1} blocks, from '
            f'{values[0]:.2f} to {values[-1]:.2f}">{"".join(rects)}</svg>'
            f'<div class="wm-ticks" style="grid-template-columns: repeat({n}, 1fr)" aria-hidden="true">{ticks}</div>')


def _blocks(ov: Overview) -> str:
    quantity = {"attention": f'{ov.n_heads} heads × {len(ov.ids)} × {len(ov.ids)}', "rope": f"θ = {ov.rope_theta:,.0f}",
                "ffn": f"{ov.hidden_dim:,} wide"}
    parts = []
    for part, label, slug in BLOCK:
        if part == "rope" and ov.position != "rope":
            continue  # this model has no RoPE: its block has no such part
        shown = "+ residual" if label == "+" else label
        q = quantity.get(part)
        parts.append(f'<span class="wm-step">{_a(slug, shown)}'
                     + (f'<small>{html.escape(q)}</small>' if q else "") + "</span>")
    anatomy = '<span class="wm-sub" aria-hidden="true">›</span>'.join(parts)
    first, last = ov.residual_rms[0], ov.residual_rms[-1]
    return (f'<section class="wm-card wm-blocks"><h3>{_a("assembled", f"{ov.n_layers} × Llama block")} '
            f'<span class="wm-note">each returns {_shape(ov.shapes["block"], "B, T, C")}</span></h3>'
            f'<div class="wm-anatomy">{anatomy}</div>{_bars(ov.residual_rms)}'
            f'<p>the residual stream\'s RMS at the last token, after the embedding and each of the {ov.n_layers} '
            f'blocks: <b class="wm-num">{first:.2f}</b> → <b class="wm-num">{last:.2f}</b></p></section>')


def _final_norm(ov: Overview, label: str, slug: str) -> str:
    return (f'<section class="wm-card wm-final"><h3>{_a(slug, "Final " + label)}</h3>'
            f'<p>RMS <b class="wm-num">{ov.residual_rms[-1]:.2f}</b> → <b class="wm-num">{ov.final_rms:.2f}</b></p>'
            "<p>at the last token</p></section>")


def _output(ov: Overview, label: str, slug: str) -> str:
    return (f'<section class="wm-card wm-output"><h3>{_a(slug, label)}</h3>'
            f"<p>{ov.dim:,} → {ov.vocab_size:,} scores (logits) per token</p>"
            f'<p>{_shape(ov.shapes["logits"], "B, T, V")}</p></section>')


def _percent(p: float) -> str:
    """0.512 -> '51.2%'; a small probability keeps two significant digits (0.00034 -> '0.034%'), never '0.0%'."""
    if p >= 0.001:
        return f"{100 * p:.1f}%"
    return f"{100 * p:.2g}%" if p >= 1e-6 else "<0.0001%"


def _probabilities(ov: Overview, label: str, slug: str, sampling: tuple[str, str, str]) -> str:
    rows = []
    for r, (i, t, p) in enumerate(ov.top):
        rows.append(f'<li class="{"wm-best" if r == 0 else ""}"><span class="wm-ptok">{html.escape(t)}</span>'
                    f'<span class="wm-pbar"><span style="width:{100 * p:.1f}%"></span></span>'
                    f'<span class="wm-pval">{_percent(p)}</span></li>')
    _, s_label, s_slug = sampling
    kv = next(iter(AROUND))
    return (f'<section class="wm-card wm-probs"><h3>{_a(slug, label)} <span class="wm-note">top {len(ov.top)} of '
            f'{ov.vocab_size:,}</span></h3><ol class="wm-top">{"".join(rows)}</ol>'
            f'<p class="wm-pick">{_a(s_slug, s_label)}: the most probable is '
            f'<b class="wm-predicted">{html.escape(ov.predicted)}</b>; appended, the model runs again '
            f'(the {_a(kv[2], kv[1])} saves the earlier tokens\' work)</p></section>')


def picture(ov: Overview, model_name: str) -> str:
    """The whole picture as one HTML fragment (for a gr.HTML with css_template=CSS)."""
    cards = {"Tokens": _tokens, "Embeddings": _embeddings, "RMSNorm": _final_norm, "Output layer": _output}
    out = [cards[label](ov, label, slug) for _, label, slug in BEFORE if label in cards]
    out.append(_blocks(ov))
    after = [e for e in AFTER if e[0] != "sampling"]
    sampling = next(e for e in AFTER if e[0] == "sampling")
    for _, label, slug in after:
        if label in cards:
            out.append(cards[label](ov, label, slug))
        else:  # the probabilities, with sampling's pick under them
            out.append(_probabilities(ov, label, slug, sampling))
    caption = (f"{html.escape(model_name)} reads your text: {ov.n_layers} blocks, width {ov.dim:,}, "
               f"{ov.vocab_size:,} tokens. Every part is live and links to its lesson.")
    return (f'<figure class="wm" aria-label="The whole model on your text">'
            f'<figcaption>{caption}</figcaption><div class="wm-flow">{ARROW.join(out)}</div></figure>')
