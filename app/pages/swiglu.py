"""Lesson 5 page: SwiGLU.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Handlers only call `lessons.swiglu.compute` and place what it returns; bad input becomes a message.
"""

from __future__ import annotations

import gradio as gr

from app import widgets
from lessons.course import CourseModel
from lessons.plots import message_figure
from lessons.swiglu import compute as C

DEFAULTS = dict(beta=1.0, dim=4096, multiple_of=256, threshold=0.05)


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson)
    parts += [""] * (5 - len(parts))  # four figures: tolerate a lesson.md with fewer markers
    curves_fig, surface_fig, curves_md = curves(DEFAULTS["beta"])
    table_md, table_note, _ = hidden(cm, None, None)
    _, gates_fig, gates_md = gates(cm, C.DEFAULT_TEXT, DEFAULTS["threshold"])

    widgets.lesson_header(lesson)
    widgets.prose(parts[0])

    # --- figure 1: activation curves and the gate surface
    beta = gr.Slider(0.0, C.MAX_BETA, DEFAULTS["beta"], step=0.1, label="β in Swish(x) = x·σ(βx)",
                     info="1 = SiLU, the one Llama uses; large β approaches ReLU; 0 is the line x/2",
                     elem_id="swiglu-beta")
    with gr.Row():
        curves_plot = gr.Plot(curves_fig, label="Activation functions", elem_id="swiglu-curves")
        surface_plot = gr.Plot(surface_fig, label="The gate surface of one hidden unit", elem_id="swiglu-surface")
    curves_readout = gr.Markdown(curves_md, elem_id="swiglu-curves-readout")

    widgets.prose(parts[1])

    # --- figure 2: the hidden size, step by step
    with gr.Row():
        dim = gr.Number(DEFAULTS["dim"], precision=0, label="your width d")
        multiple_of = gr.Number(DEFAULTS["multiple_of"], precision=0, label="your multiple_of")
        hidden_btn = gr.Button("Add my column", variant="primary")
    hidden_msg = widgets.message()
    hidden_table = gr.Markdown(table_md, elem_id="swiglu-hidden-table")
    hidden_note = gr.Markdown(table_note)

    widgets.prose(parts[2])

    # --- figure 3: the course model's gate activations on the learner's text
    with gr.Row():
        text = gr.Textbox(C.DEFAULT_TEXT, lines=2, max_lines=6, scale=4, label=f"Your text ({widgets.RUN_HINT})",
                          info=f"BOS is added in front; at most {C.MAX_TOKENS} tokens with BOS are used.")
        run = gr.Button("Run the model on this text", variant="primary", scale=1)
    gates_msg = widgets.message()
    threshold = gr.Slider(0.005, 0.5, DEFAULTS["threshold"], step=0.005, label="near zero means |gate| below",
                          elem_id="swiglu-threshold")
    gates_plot = gr.Plot(gates_fig, label="Gate activations per layer", elem_id="swiglu-gates")
    gates_readout = gr.Markdown(gates_md, elem_id="swiglu-gates-readout")

    widgets.prose(parts[3])

    # --- figure 4: predict, then reveal
    sparse_guess, sparse_btn, sparse_out = widgets.predict_reveal(
        "at the threshold above, which layer switches off the most gate values on your text?", C.layer_choices(cm),
        "Reveal (runs the model on your text)", elem_id="swiglu-reveal-sparsest")
    neg_guess, neg_btn, neg_out = widgets.predict_reveal(
        "what share of all gate values silu(gate_proj x) on your text is negative?", C.NEGATIVE_CHOICES,
        "Reveal (counts on your text)", elem_id="swiglu-reveal-negative")

    widgets.prose(parts[4])
    widgets.lesson_footer(lesson)

    # --- listeners
    def on_hidden(d, m):
        return hidden(cm, d, m)

    def on_gates(t, thr):
        return gates(cm, t, thr)

    def on_reveal_sparsest(t, thr, guess):
        return reveal_sparsest(cm, t, thr, guess)

    def on_reveal_negative(t, guess):
        return reveal_negative(cm, t, guess)

    beta.release(curves, beta, [curves_plot, surface_plot, curves_readout], api_name="swiglu_curves",
                 trigger_mode="always_last", show_progress="minimal")
    gr.on([hidden_btn.click, dim.submit, multiple_of.submit], on_hidden, [dim, multiple_of],
          [hidden_table, hidden_note, hidden_msg], api_name="swiglu_hidden")
    gr.on([run.click, text.submit, threshold.release], on_gates, [text, threshold],
          [gates_msg, gates_plot, gates_readout], api_name="swiglu_gates", trigger_mode="always_last",
          show_progress="minimal")
    sparse_btn.click(on_reveal_sparsest, [text, threshold, sparse_guess], sparse_out, api_name="swiglu_reveal_sparsest")
    neg_btn.click(on_reveal_negative, [text, neg_guess], neg_out, api_name="swiglu_reveal_negative")


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def curves(beta):
    """(curves figure, surface figure, readout) for one beta."""
    try:
        c = C.activation_curves(beta)
        return C.curves_figure(c), C.surface_figure(c.beta), C.describe_curves(c)
    except ValueError as e:
        blank = message_figure("Nothing to draw: see the message below.", 400)
        return blank, blank, widgets.note(str(e))


def hidden(cm: CourseModel, d, m):
    """(table, note, message): the learner's column is added when both numbers are valid."""
    try:
        table, note = C.hidden_overview(cm, d, m)
        return table, note, ""
    except ValueError as e:
        table, note = C.hidden_overview(cm)
        return table, note, widgets.note(str(e))


def gates(cm: CourseModel, text, threshold):
    """(message, figure, readout) for the learner's text at one threshold."""
    try:
        g = C.load_gates(cm, text)
        return widgets.note(g.notice), C.gates_figure(g, threshold), C.describe_gates(g, threshold)
    except ValueError as e:
        return widgets.note(str(e)), message_figure("Nothing to show: see the message above.", 400), ""


def reveal_sparsest(cm: CourseModel, text, threshold, guess):
    try:
        return C.reveal_sparsest(C.load_gates(cm, text), threshold, guess)
    except ValueError as e:
        return widgets.note(str(e))


def reveal_negative(cm: CourseModel, text, guess):
    try:
        return C.reveal_negative(C.load_gates(cm, text), guess)
    except ValueError as e:
        return widgets.note(str(e))
