"""Lesson 5 page: SwiGLU.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Handlers take the learner's model first (`widgets.handler`) and only call `lessons.swiglu.compute`, which
clamps every input with a notice; a LessonError becomes a notice on the page.
"""

from __future__ import annotations

import gradio as gr

from app import share, widgets
from lessons import cost
from lessons.course import CourseModel
from lessons.swiglu import compute as C

DEFAULTS = dict(beta=1.0, dim=4096, multiple_of=256, threshold=0.05)


def initial(cm: CourseModel) -> dict:
    """Every figure, readout and model-dependent label the page opens with, for one model (the page is built
    with it, and `refresh` reuses it when a learner opens the page with another model)."""
    curves_fig, surface_fig, curves_md, _ = C.curves_view(DEFAULTS["beta"])
    table, note, *_ = C.hidden_overview(cm)
    gates_msg, gates_fig, gates_md, _ = C.gates_view(cm, C.DEFAULT_TEXT, DEFAULTS["threshold"])
    return dict(curves=curves_fig, surface=surface_fig, curves_md=curves_md, table=table, note=note,
                gates=gates_fig, gates_md=gates_md, gates_msg=gates_msg,
                text_info=f"BOS is added in front; at most {C.max_tokens(cm)} tokens with BOS are used.")


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): one pass over the default text for the gate activations."""
    return cost.text_pass(cm, C.DEFAULT_TEXT, C.max_tokens(cm))


def refresh(cm: CourseModel) -> tuple:
    """The page's model-dependent outputs for another model, in the order `build` wires them to on_model
    (the activation curves do not depend on the model)."""
    first = initial(cm)
    return ("", first["table"], first["note"], gr.update(info=first["text_info"]), first["gates_msg"],
            first["gates"], first["gates_md"])


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson, 8)
    first = initial(cm)
    key = widgets.model_key()

    widgets.lesson_header(lesson)
    model_msg = widgets.message(elem_id="swiglu-model-msg")  # a model that cannot be loaded says so here
    widgets.prose(parts[0])

    # --- figure 1: activation curves and the gate surface (β and the readout are depth: Go deeper)
    with gr.Row():
        curves_plot = widgets.Plot(first["curves"], label="Activation functions", elem_id="swiglu-curves", code=C.curves_figure)
        surface_plot = widgets.Plot(first["surface"], label="The gate surface of one hidden unit",
                               elem_id="swiglu-surface", code=C.surface_figure)
    widgets.prose(parts[1])
    with widgets.go_deeper("the 2017 MLP, GELU, and Swish with your own β", "swish"):
        widgets.prose(parts[2])
        beta = widgets.Slider(0.0, C.MAX_BETA, DEFAULTS["beta"], step=0.1, label="β in Swish(x) = x·σ(βx)",
                              info="1 = SiLU, the one Llama uses; large β approaches ReLU; 0 is the line x/2",
                              elem_id="swiglu-beta")
        curves_readout = gr.Markdown(first["curves_md"], elem_id="swiglu-curves-readout")

    widgets.prose(parts[3])

    # --- figure 2: the hidden size, step by step
    with gr.Row():
        # precision=None: Gradio's own rounding (precision=0) fails on NaN and text; compute rounds with a notice
        dim = widgets.Number(DEFAULTS["dim"], precision=None, label="your width d")
        multiple_of = widgets.Number(DEFAULTS["multiple_of"], precision=None, label="your multiple_of")
        hidden_btn = gr.Button("Add my column", variant="primary")
    hidden_msg = widgets.message()
    hidden_table = gr.Markdown(first["table"], elem_id="swiglu-hidden-table")
    widgets.prose(parts[4])
    with widgets.go_deeper("why multiple_of, and what rounding costs", "rounding"):
        widgets.prose(parts[5])
        hidden_note = gr.Markdown(first["note"], elem_id="swiglu-hidden-note")

    widgets.prose(parts[6])

    # --- figure 3: the learner's text, the questions, then the gates that answer them (hidden until revealed)
    with gr.Row():
        text = gr.Textbox(C.DEFAULT_TEXT, lines=2, max_lines=6, scale=4, label=f"Your text ({widgets.RUN_HINT})",
                          info=first["text_info"])
        run = gr.Button("Run the model on this text", variant="primary", scale=1)
    gates_msg = widgets.message(first["gates_msg"], elem_id="swiglu-gates-msg")
    neg_guess, neg_btn, neg_out = widgets.predict_reveal(C.Q_NEGATIVE, button="Reveal (counts on your text)",
                                                         elem_id="swiglu-reveal-negative")
    floor_guess, floor_btn, floor_out = widgets.predict_reveal(C.Q_FLOOR, button="Reveal (runs the model on your text)",
                                                               elem_id="swiglu-reveal-floor")
    with widgets.until_reveal(C.Q_NEGATIVE.qid):
        gr.Markdown("### The measurement")
        threshold = widgets.Slider(C.THRESHOLD_MIN, C.THRESHOLD_MAX, DEFAULTS["threshold"], step=0.005,
                                   label="near zero means |gate| below", elem_id="swiglu-threshold")
        gates_readout = gr.Markdown(first["gates_md"], elem_id="swiglu-gates-readout")
        with widgets.until_reveal(C.Q_FLOOR.qid):  # the histogram shows the lowest gate: both answers
            gates_plot = widgets.Plot(first["gates"], label="Gate activations per layer", elem_id="swiglu-gates",
                                      code=C.gates_figure)
            widgets.prose(parts[7])

    widgets.prose(parts[8])
    widgets.lesson_footer(lesson)

    # --- listeners: every handler gets the learner's model first and clamps its inputs (compute does)
    widgets.on_model(key, refresh, [model_msg, hidden_table, hidden_note, text, gates_msg, gates_plot, gates_readout],
                     opening=opening_cost)

    def on_curves(cm, beta_value):
        return C.curves_view(beta_value)

    def on_hidden(cm, d, m):
        table, note, notice, d_used, m_used = C.hidden_overview(cm, d, m)
        keep = gr.skip()  # no column added: leave the boxes as typed
        return (table, note, widgets.note(notice), keep if d_used is None else d_used,
                keep if m_used is None else m_used)

    def on_gates(cm, t, thr):
        return C.gates_view(cm, t, thr)

    def on_reveal_floor(cm, t, guess):
        return C.reveal_floor_view(cm, t, guess)

    def on_reveal_negative(cm, t, guess):
        return C.reveal_negative_view(cm, t, guess)

    curves_ev = beta.release(widgets.handler(on_curves, 4, msg_at=2), [key, beta],
                 [curves_plot, surface_plot, curves_readout, beta], api_name="swiglu_curves",
                 trigger_mode="always_last", show_progress="minimal")
    hidden_ev = gr.on([hidden_btn.click, dim.submit, multiple_of.submit], widgets.handler(on_hidden, 5, msg_at=2),
          [key, dim, multiple_of], [hidden_table, hidden_note, hidden_msg, dim, multiple_of], api_name="swiglu_hidden")
    gates_ev = gr.on([run.click, text.submit, threshold.release], widgets.handler(on_gates, 4, msg_at=0),
                     [key, text, threshold],
          [gates_msg, gates_plot, gates_readout, threshold], api_name="swiglu_gates", trigger_mode="always_last",
          show_progress="minimal")
    floor_btn.click(widgets.handler(on_reveal_floor), [key, text, floor_guess], floor_out,
                    api_name="swiglu_reveal_floor")
    neg_btn.click(widgets.handler(on_reveal_negative), [key, text, neg_guess], neg_out,
                  api_name="swiglu_reveal_negative")
    share.link(key, dict(text=text, threshold=threshold, beta=beta, width=dim, multiple_of=multiple_of),
               runs=[gates_ev, curves_ev, hidden_ev])
