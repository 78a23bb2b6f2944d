"""The course map: every lesson with what the learner will see, the model picker, and the chosen model in short."""

from __future__ import annotations

import html

import gradio as gr

import lessons
from app import classroom, widgets
from app.context import registry
from app.widgets import link
from lessons.course import CourseModel, card_rows, training_summary
from lessons.inputs import LessonError, echo


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
    repo = widgets.repository_url()  # known on a Space, or from $INSIDE_LLAMA_REPO; else no link
    if repo:
        gr.HTML(f'<p class="source-link">Every figure\'s code is under it; the whole project\'s source: '
                f'<a href="{html.escape(repo)}" target="_blank" rel="noopener">{html.escape(repo)}</a></p>',
                elem_id="source-link")
    gr.Markdown("## Course map")
    items = []
    for lesson in lessons.LESSONS:
        title = link(lesson.path, lesson.title) if lesson.ready else f"{html.escape(lesson.title)} (coming soon)"
        items.append(f"<li><strong>{title}</strong>: {html.escape(lesson.summary)}</li>")
    gr.HTML('<ul class="course-map">' + "".join(items) + "</ul>")
    gr.Markdown("## The model")
    reg = registry()
    options = reg.options()
    picker = widgets.Dropdown([(o.label, o.key) for o in options], value="", label="Model used by every lesson",
                         info=("remembered in this browser while you browse; every lesson recomputes on it"
                               if len(options) > 1 else "this host offers only the course model (a host lists more "
                               "in INSIDE_LLAMA_MODELS: local Llama directories or Hub ids, separated by ':')"),
                         interactive=len(options) > 1, elem_id="model-picker")
    status = widgets.message(elem_id="model-status")
    runs_on = gr.Markdown(device_line(cm), elem_id="model-device")
    summary = gr.Markdown(model_summary(cm), elem_id="model-summary")
    with gr.Accordion("Full model card", open=False):
        card = gr.Markdown(cm.card or NO_CARD)
    remembered = gr.BrowserState("", storage_key=widgets.MODEL_KEY_STORAGE, secret=widgets.MODEL_KEY_SECRET)
    classroom.teach_block()  # "Teach with this course": start or join a class

    # ------------------------------------------------------------------ listeners
    def describe(key, progress):
        """(the model, its picker key) for a key, loading it once (shared by every learner) with progress."""
        if not reg.is_offered(key):
            raise LessonError(f"The model {echo(key)!r} is not offered here: the course model is used.")
        if key and key not in reg.resident():
            progress(0.1, desc=f"loading {key} (once; then it is shared by every learner)")
        return reg.get(key), key

    def choose_model(key, previous, progress=gr.Progress()):
        """The learner picks a model: load it (or say why it cannot be), remember it, describe it."""
        try:
            m, key = describe(key, progress)
        except LessonError as e:  # the course model keeps working; the picker goes back to what worked
            previous = previous if reg.is_offered(previous) else ""
            return widgets.note(str(e)), previous, previous, gr.skip(), gr.skip(), gr.skip()
        return "", key, key, device_line(m), model_summary(m), m.card or NO_CARD

    def show_remembered(key, progress=gr.Progress()):
        """Page load: show the model this browser chose before (the course model when it is gone)."""
        try:
            m, key = describe(key, progress)
        except LessonError as e:
            return widgets.note(str(e)), "", "", device_line(cm), model_summary(cm), cm.card or NO_CARD
        if not key:
            return (gr.skip(),) * 6  # the page was built with the course model
        return "", key, key, device_line(m), model_summary(m), m.card or NO_CARD

    outputs = [status, picker, remembered, runs_on, summary, card]
    picker.input(choose_model, [picker, remembered], outputs, api_name="choose_model")
    gr.context.Context.root_block.load(show_remembered, [remembered], outputs, api_visibility="private")


NO_CARD = "This model directory has no model card (MODEL_CARD.md)."


def device_line(cm: CourseModel) -> str:
    """Where and in which number format the model runs, and which other models the host offers."""
    dtype = str(cm.model.embed_tokens.weight.dtype).removeprefix("torch.")
    where = "a GPU (CUDA)" if cm.device.type == "cuda" else "the CPU"
    return (f"Runs on **{where}** in **{dtype}**, from `{html.escape(str(cm.path))}`. "
            f"Models offered by this host: {len(registry().options())}.")
