"""The course map: every lesson with what the learner will see, the model picker, and the chosen model in short."""

from __future__ import annotations

import html

import gradio as gr

import lessons
from app import classroom, costs, model_url, share, whole_model, widgets
from app.context import registry
from app.widgets import link
from lessons.course import CourseModel, card_rows, training_summary
from lessons.inputs import LessonError, echo
from lessons.overview import overview


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
    gr.Markdown("# Inside LLaMA\nAn interactive course on how a LLaMA-family language model works, computed live by "
                "a real Llama. Type a sentence and follow it through the whole model; every part links to its lesson.",
                elem_id="home-intro")
    first = overview(cm, DEFAULT_TEXT)
    with gr.Row(equal_height=True, elem_id="whole-model-input"):
        # lines=1: Enter runs it; max_lines=4: a textarea, so an appended newline token stays in the text
        text = gr.Textbox(DEFAULT_TEXT, label="Your text (the model predicts the token that comes next)", lines=1,
                          max_lines=4, scale=4, elem_id="whole-model-text")
        run = gr.Button("Run the model", variant="primary", scale=0, min_width=130, elem_id="whole-model-run")
        append = gr.Button(append_label(first), scale=0, min_width=220, elem_id="whole-model-append")
    msg = widgets.message(widgets.note(first.notice), elem_id="whole-model-message")
    picture = gr.HTML(whole_model.picture(first, model_name(cm)), elem_id="whole-model",
                      css_template=whole_model.CSS)
    gr.Markdown("## Course map")
    items = []
    for lesson in lessons.LESSONS:
        title = link(lesson.path, lesson.title) if lesson.ready else f"{html.escape(lesson.title)} (coming soon)"
        items.append(f"<li><strong>{title}</strong>: {html.escape(lesson.summary)}</li>")
    gr.HTML('<ul class="course-map">' + "".join(items) + "</ul>")
    repo = widgets.repository_url()  # known on a Space, or from $INSIDE_LLAMA_REPO; else no link
    if repo:
        gr.HTML(f'<p class="source-link">Every figure\'s code is under it; the whole project\'s source: '
                f'<a href="{html.escape(repo)}" target="_blank" rel="noopener">{html.escape(repo)}</a></p>',
                elem_id="source-link")
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
    with widgets.go_deeper("the model card", "model-card"):
        card = gr.Markdown(cm.card or NO_CARD)
    remembered = gr.BrowserState("", storage_key=widgets.MODEL_KEY_STORAGE, secret=widgets.MODEL_KEY_SECRET)
    classroom.teach_block()  # "Teach with this course": start or join a class

    # ------------------------------------------------------------------ listeners
    def describe(key, progress):
        """(the model, its picker key) for a key, loading it once (shared by every learner) with progress."""
        if not reg.is_offered(key):
            raise LessonError(f"The model {echo(key)!r} is not offered here: the course model is used.")
        if key and key not in reg.resident():
            label = next((o.label for o in options if o.key == key), "the model")  # a name, not a server path
            progress(0.1, desc=f"loading {label} (once; then it is shared by every learner)")
        return reg.get(key), key

    def choose_model(key, previous, progress=gr.Progress()):
        """The learner picks a model: load it (or say why it cannot be), remember it, describe it."""
        try:
            m, key = describe(key, progress)
        except LessonError as e:  # the course model keeps working; the picker goes back to what worked
            previous = previous if reg.is_offered(previous) else ""
            return widgets.note(str(e)), previous, previous, gr.skip(), gr.skip(), gr.skip()
        return "", key, key, device_line(m), model_summary(m), m.card or NO_CARD

    def show_remembered(key, request: gr.Request, progress=gr.Progress()):
        """Page load: show the model the URL names (model=, app.model_url), else the one this browser chose before
        (the course model when it is gone)."""
        linked, notice = share.model_from_link(request.query_params.get(share.MODEL_PARAM) if request else None)
        if notice:
            return widgets.note(notice), "", "", device_line(cm), model_summary(cm), cm.card or NO_CARD
        key = linked if linked is not None else key
        try:
            m, key = describe(key, progress)
        except LessonError as e:
            return widgets.note(str(e)), "", "", device_line(cm), model_summary(cm), cm.card or NO_CARD
        if not key:
            return (gr.skip(),) * 6  # the page was built with the course model
        return "", key, key, device_line(m), model_summary(m), m.card or NO_CARD

    def draw(m, text):
        """The picture for a text on the chosen model (and the append button naming its predicted token)."""
        ov = overview(m, text)
        return widgets.note(ov.notice), whole_model.picture(ov, model_name(m)), gr.Button(append_label(ov))

    def append_next(m, text):
        """Append the predicted token to the text and run the model again on it."""
        ov = overview(m, text)
        if not ov.next_text:
            return gr.skip(), widgets.note(ov.notice), gr.skip(), gr.skip()
        return (ov.next_text, *draw(m, ov.next_text))

    def redraw_remembered(key, text):
        """Page load: the page was drawn with the course model; redraw only for another remembered model."""
        return (gr.skip(),) * 3 if not key else draw_on(key, text)

    drawn = [msg, picture, append]
    draw_on = widgets.handler(draw, 3, 0)
    outputs = [status, picker, remembered, runs_on, summary, card]
    picked = picker.input(choose_model, [picker, remembered], outputs, api_name="choose_model")
    picked.then(draw_on, [picker, text], drawn, api_visibility="private")
    # the choice into the URL too (storage may be blocked in the huggingface.co frame): app.model_url
    shown = gr.Textbox(visible="hidden", elem_id="model-in-url")
    picked.then(share.model_name, picker, shown, api_visibility="private", queue=False).then(
        None, shown, None, js=model_url.WRITE_MODEL)
    gr.context.Context.root_block.load(show_remembered, [remembered], outputs, api_visibility="private").then(
        redraw_remembered, [picker, text], drawn, api_visibility="private")
    gr.on([run.click, text.submit], draw_on, [picker, text], drawn, api_name="whole_model")
    append.click(widgets.handler(append_next, 4, 1), [picker, text], [text, *drawn], api_name="append_prediction")


NO_CARD = "This model directory has no model card (MODEL_CARD.md)."


def device_line(cm: CourseModel) -> str:
    """Which model, where and in which number format it runs, and how many models the host offers. The model is
    named (model_name), never by its path on the server."""
    dtype = str(cm.model.embed_tokens.weight.dtype).removeprefix("torch.")
    where = "a GPU (CUDA)" if cm.device.type == "cuda" else "the CPU"
    opens = pages_open(cm)
    return (f"**{html.escape(model_name(cm))}** runs on **{where}** in **{dtype}**. "
            f"Models offered by this host: {len(registry().options())}." + (f"  \n{opens}" if opens else ""))


def pages_open(cm: CourseModel) -> str:
    """How long the lessons take to open with this model, from each page's `opening_cost` (lessons.cost's
    estimate, which the page also says while it opens); '' when every page opens quickly (the course model)."""
    import importlib

    from lessons import cost

    if not cost.big(cm):  # every page opens quickly: nothing to add, nothing computed
        return ""
    pages = [importlib.import_module(f"app.pages.{lesson.slug}") for lesson in lessons.LESSONS if lesson.ready]
    return costs.pages_open([p.opening_cost(cm) for p in pages if hasattr(p, "opening_cost")])


def model_name(cm: CourseModel) -> str:
    """A model's name for learners: its model card's title, else its Hub id (a model fetched from the Hub lives in
    the Hub cache as .../models--org--name/snapshots/<commit>), else its directory's name.

        >>> model_name(course())
        'The Inside LLaMA course model'
    """
    for line in (cm.card or "").splitlines():
        if line.startswith("# ") and line[2:].strip():
            return line[2:].strip()
    p = cm.path
    if p.parent.name == "snapshots" and p.parent.parent.name.startswith("models--"):
        return p.parent.parent.name.removeprefix("models--").replace("--", "/")
    return p.name


DEFAULT_TEXT = "Before we proceed any further, hear me"


def append_label(ov) -> str:
    """The append button names the token it appends (a sentence that ends the text appends nothing)."""
    return f"Append “{ov.predicted}” and run again" if ov.next_text else "Nothing to append"
