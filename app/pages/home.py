"""The course map: every lesson with what the learner will see, and the course model in short."""

from __future__ import annotations

import html

import gradio as gr

import lessons
from app.widgets import link
from lessons.course import CourseModel, card_rows, training_summary


NORMS = {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}
POSITIONS = {"rope": "RoPE", "none": "no position encoding", "sinusoidal": "sinusoidal positions",
             "learned": "learned positions"}
FFNS = {"swiglu": "SwiGLU", "relu": "ReLU MLP", "gelu": "GELU MLP"}


def attention_kind(n_heads: int, n_kv_heads: int) -> str:
    """MHA, MQA or GQA, with the head counts, for a config."""
    if n_kv_heads == n_heads:
        return f"MHA ({n_heads} heads, each with its own key/value head)"
    kind = "MQA" if n_kv_heads == 1 else "GQA"
    return f"{kind} ({n_heads} query heads share {n_kv_heads} key/value head{'s' if n_kv_heads > 1 else ''})"


def model_summary(cm: CourseModel) -> str:
    """The loaded model in short. Every fact comes from its config, tokenizer, model card or training summary
    (summary.json); a fact the model directory does not give is said to be unknown, never filled in."""
    c, card, summ = cm.config, card_rows(cm.card), training_summary(cm)
    position = POSITIONS.get(c.position, c.position)
    if c.position == "rope":
        position += f" (θ = {c.rope_theta:,.0f})"
    rows = [
        ("architecture", f"{NORMS.get(c.norm, c.norm)} ({c.norm_placement}-norm), {position}, "
                         f"{FFNS.get(c.ffn, c.ffn)} (hidden size {c.hidden_dim}), "
                         f"{attention_kind(c.n_heads, c.n_kv_heads)}"
                         f"{', output layer tied to the embeddings' if c.tie_embeddings else ''}"),
        ("size", f"{cm.model.num_parameters():,} parameters; {c.n_layers} layers, width {c.dim}, "
                 f"head size {c.head_dim}, context {c.max_seq_len} tokens"),
        ("tokenizer", card.get("tokenizer", f"{cm.tokenizer.vocab_size:,} tokens (tokenizer.json)")),
        ("data", card.get("data", "not stated: this model directory has no model card")),
    ]
    if "val_loss_per_token" in summ:
        where = "the whole held-out validation split"
        if "val_tokens" in summ and "val_chars" in summ:
            where += f" ({summ['val_tokens']:,} tokens, {summ['val_chars']:,} characters)"
        rows.append(("validation loss", f"{summ['val_loss_per_token']:.4f} nats per token on {where}, as in the "
                                        "model card (the data row says which text is held out)"))
    elif "validation loss" in card:
        rows.append(("validation loss", card["validation loss"] + " (from the model card)"))
    else:
        rows.append(("validation loss", "not known: this model directory ships no training summary or model card"))
    if "steps" in summ:
        rows.append(("training", f"{summ['steps']:,} steps, {summ.get('tokens_seen', 0):,} tokens seen"))
    elif "training" in card:
        rows.append(("training", card["training"]))
    elif cm.train_log:
        last = cm.train_log[-1]
        rows.append(("training", f"{last.get('step', 0):,} steps, {last.get('tokens', 0):,} tokens seen "
                                 "(from the training log)"))
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v.replace('|', '&#124;')} |" for k, v in rows])


def build(cm: CourseModel) -> None:
    gr.Markdown("# Inside LLaMA\nAn interactive course on how a LLaMA-family language model works. Every "
                "picture is computed live by a real Llama (described below), running right here on the course's "
                "from-scratch implementation.")
    gr.Markdown("## Course map")
    items = []
    for lesson in lessons.LESSONS:
        title = link(lesson.path, lesson.title) if lesson.ready else f"{html.escape(lesson.title)} (coming soon)"
        items.append(f"<li><strong>{title}</strong>: {html.escape(lesson.summary)}</li>")
    gr.HTML('<ul class="course-map">' + "".join(items) + "</ul>")
    gr.Markdown("## The model\n" + model_summary(cm))
    if cm.card:
        with gr.Accordion("Full model card", open=False):
            gr.Markdown(cm.card)
