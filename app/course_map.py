"""The whole model as a strip of parts, each a link to its lesson: the compact "you are here" map on every page.

    >>> html = you_are_here(lessons.get("attention"), n_layers=6)   # the attention chip highlighted

The strip follows a token through a Llama (tokens -> embeddings -> N blocks of RMSNorm, attention with RoPE, add,
RMSNorm, SwiGLU, add -> final RMSNorm -> output layer -> probabilities -> sampling), with the chapters that are
about the model as a whole (its KV cache, training, scale) after it. The course map's live picture
(app/whole_model.py) draws the same parts with the loaded model's numbers.
"""

from __future__ import annotations

import html

import lessons
from lessons import LessonInfo

# (part, label, lesson slug): one chip each, in the order a token meets them. `part` matches LessonInfo.part.
BEFORE = [("tokens", "Tokens", "tokenization"), ("tokens", "Embeddings", "tokenization")]
BLOCK = [("norm", "RMSNorm", "rmsnorm"), ("attention", "Attention", "attention"), ("rope", "RoPE", "rope"),
         ("blocks", "+", "assembled"), ("norm", "RMSNorm", "rmsnorm"), ("ffn", "SwiGLU", "swiglu"),
         ("blocks", "+", "assembled")]
AFTER = [("norm", "RMSNorm", "rmsnorm"), ("output", "Output layer", "next_token"),
         ("output", "Next-token probabilities", "next_token"), ("sampling", "Sampling", "sampling")]
AROUND = [("kv_cache", "KV cache", "kv_cache")]
PARTS = sorted({p for p, _, _ in BEFORE + BLOCK + AFTER + AROUND})


def _chip(part: str, label: str, slug: str, here: LessonInfo | None) -> str:
    target = lessons.get(slug)
    on = here is not None and here.part == part
    cls = "map-chip here" if on else "map-chip"
    current = ' aria-current="page"' if here is not None and here.slug == slug else ""
    tip = html.escape(f"{target.title}: {target.summary}", quote=True)
    if not target.ready:
        return f'<span class="{cls}" title="{tip}">{html.escape(label)}</span>'
    return (f'<a class="{cls}" href="{html.escape(target.path)}" target="_self" title="{tip}"{current}>'
            f"{html.escape(label)}</a>")


def you_are_here(here: LessonInfo | None, n_layers: int) -> str:
    """The compact map: every part a link to its lesson, `here`'s part highlighted, the block drawn once with its
    repeat count (n_layers from the loaded model's config). Lessons about the model as a whole (training, scale,
    Meta's code) are listed after the strip, the current one highlighted."""
    arrow = '<span class="map-arrow" aria-hidden="true">→</span>'
    strip = arrow.join(_chip(p, l, s, here) for p, l, s in BEFORE)
    block = arrow.join(_chip(p, l, s, here) for p, l, s in BLOCK)
    on = " here" if here is not None and here.part == "blocks" else ""
    strip += (f'{arrow}<span class="map-block{on}" title="one Llama block, repeated {n_layers} times">'
              f'<span class="map-repeat">{n_layers} ×</span>{block}</span>')
    strip += arrow + arrow.join(_chip(p, l, s, here) for p, l, s in AFTER)
    strip += ' <span class="map-sep">·</span> ' + " ".join(_chip(p, l, s, here) for p, l, s in AROUND)
    others = [lesson for lesson in lessons.LESSONS if lesson.ready and not lesson.part]
    if others:
        strip += ' <span class="map-sep">·</span> ' + " ".join(
            f'<a class="map-chip{" here" if here is not None and here.slug == o.slug else ""}" href="{o.path}" '
            f'target="_self" title="{html.escape(o.summary, quote=True)}">{html.escape(o.title.split(". ", 1)[-1])}</a>'
            for o in others)
    title = "You are here" if here is not None else "The whole model"
    return (f'<nav class="course-map-strip" aria-label="{title}: the parts of a Llama, each a link to its lesson">'
            f'<span class="map-title">{title}:</span> {strip}</nav>')
