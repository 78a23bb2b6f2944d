"""The course map: every lesson with what the learner will see, and the course model in short."""

from __future__ import annotations

import html

import gradio as gr

import lessons
from app.widgets import link
from lessons.course import CourseModel


def model_summary(cm: CourseModel) -> str:
    c = cm.config
    last = cm.train_log[-1] if cm.train_log else {}
    rows = [
        ("architecture", f"Llama: RMSNorm, RoPE (θ = {c.rope_theta:,.0f}), SwiGLU, GQA ({c.n_heads} query heads "
                         f"share {c.n_kv_heads} key/value heads)"),
        ("size", f"{cm.model.num_parameters():,} parameters; {c.n_layers} layers, width {c.dim}, "
                 f"context {c.max_seq_len} tokens"),
        ("tokenizer", f"the course's own byte-level BPE, {cm.tokenizer.vocab_size:,} tokens"),
        ("data", "TinyShakespeare (the last 10% held out for validation)"),
    ]
    if last:
        rows.append(("training", f"{last.get('step', 0):,} steps, {last.get('tokens', 0):,} tokens, "
                                 f"validation loss {last.get('val_loss', float('nan')):.3f} nats/token"))
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def build(cm: CourseModel) -> None:
    gr.Markdown("# Inside LLaMA\nAn interactive course on how a LLaMA-family language model works. Every "
                "picture is computed live by a small Llama that this course implemented from scratch, trained on "
                "Shakespeare and runs right here.")
    gr.Markdown("## Course map")
    items = []
    for lesson in lessons.LESSONS:
        title = link(lesson.path, lesson.title) if lesson.ready else f"{html.escape(lesson.title)} (coming soon)"
        items.append(f"<li><strong>{title}</strong>: {html.escape(lesson.summary)}</li>")
    gr.HTML('<ul class="course-map">' + "".join(items) + "</ul>")
    gr.Markdown("## The course model\n" + model_summary(cm))
    if cm.card:
        with gr.Accordion("Full model card", open=False):
            gr.Markdown(cm.card)
