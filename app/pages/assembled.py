"""Lesson 9 page: the Llama, assembled.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md; the two questions come
before the parameter table that answers them), listeners last. Handlers only call `lessons.assembled.compute`,
which clamps every input with a notice; the sliders are set back to the block and head the figure shows.
"""

from __future__ import annotations

import gradio as gr

from app import costs, share, widgets
from lessons import cost
from lessons.assembled import compute as C
from lessons.course import CourseModel

DEFAULT_TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?"
DEFAULTS = dict(box="add_ffn", layer=0, head=0)


def initial(cm: CourseModel) -> dict:
    """Every model-dependent value the page opens with, for one model (built with the course model; `refresh`
    sends another model's)."""
    c = cm.config
    diagram, values, readout, notice, _, _ = C.pass_view(cm, DEFAULT_TEXT, DEFAULTS["box"], DEFAULTS["layer"],
                                                    DEFAULTS["head"])
    return dict(diagram=diagram, values=values, readout=readout, notice=widgets.note(notice), facts=C.architecture_facts(cm),
                choices=C.box_choices(c), params=C.parameter_table(cm), shares=C.shares_figure(cm),
                layer_info=f"0 to {c.n_layers - 1}: the {c.n_layers} blocks are alike, their weights are not",
                head_info=f"0 to {c.n_heads - 1}; query head h reads K/V head h // {c.n_rep}")


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): the forward pass over the default text."""
    return cost.text_pass(cm, DEFAULT_TEXT, C.MAX_TOKENS)


def refresh(cm: CourseModel) -> tuple:
    """The page's model-dependent outputs for another model, in the order `build` wires them to on_model."""
    c, first = cm.config, initial(cm)
    return (costs.notice(cost.text_pass(cm, DEFAULT_TEXT, C.MAX_TOKENS), "Run the forward pass (one pass over the "
                         "text)"),  # the page's message slot: a big model's cost, said before (else nothing)
            first["diagram"], first["values"], first["readout"], first["notice"], first["facts"],
            gr.update(choices=first["choices"], value=DEFAULTS["box"]),
            gr.update(maximum=c.n_layers - 1, value=DEFAULTS["layer"], info=first["layer_info"]),
            gr.update(maximum=c.n_heads - 1, value=DEFAULTS["head"], info=first["head_info"]),
            first["params"], first["shares"])


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson, 8)
    c = cm.config
    first = initial(cm)
    key = widgets.model_key()

    widgets.lesson_header(lesson)
    model_msg = widgets.message(elem_id="assembled-model-msg")  # a model that cannot be loaded says so here
    widgets.prose(parts[0])

    # --- figure 1: the forward pass, box by box
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            text = gr.Textbox(DEFAULT_TEXT, lines=3, max_lines=6, label=f"Text ({widgets.RUN_HINT})",
                              info=f"BOS is added in front; the pass runs on the first {C.MAX_TOKENS} tokens",
                              elem_id="assembled-text")
            show = gr.Button("Run the forward pass", variant="primary")
            box = widgets.Dropdown(first["choices"], value=DEFAULTS["box"], label="Box of the forward pass",
                                   elem_id="assembled-box")
            layer = widgets.Slider(0, c.n_layers - 1, DEFAULTS["layer"], step=1, label="block (model.layers[i])",
                                   info=first["layer_info"], elem_id="assembled-layer")
            head = widgets.Slider(0, c.n_heads - 1, DEFAULTS["head"], step=1, label="query head",
                                  info=first["head_info"], elem_id="assembled-head")
            pass_msg = widgets.message(first["notice"])
            readout = gr.Markdown(first["readout"], elem_id="assembled-readout")
        with gr.Column(scale=3, min_width=300):
            diagram = widgets.Plot(first["diagram"], label="The forward pass", elem_id="assembled-diagram", code=C.diagram_figure)
    values = widgets.Plot(first["values"], label="The selected box's live values", elem_id="assembled-values", code=C.box_figure)
    widgets.prose(parts[1])
    with widgets.go_deeper("the block's formula, and what the loaded model's config makes true", "block"):
        widgets.prose(parts[2])
        facts = gr.Markdown(first["facts"], elem_id="assembled-facts")

    widgets.prose(parts[3])

    # --- predict, then reveal: the counts that answer both questions stay hidden until revealed
    part_choice, part_btn, part_out = widgets.predict_reveal(
        C.Q_PARTS, button="Reveal (counts the loaded model)", elem_id="assembled-reveal-parts")
    growth_choice, growth_btn, growth_out = widgets.predict_reveal(
        C.Q_GROWTH, button="Reveal (counts both configs)", elem_id="assembled-reveal-growth")
    with widgets.until_reveal(C.Q_PARTS.qid):
        shares = widgets.Plot(first["shares"], label="Parameters by component", elem_id="assembled-shares",
                              code=C.shares_figure)
        gr.Markdown(C.shares_markdown(), elem_id="assembled-shares-readout")
        widgets.prose(parts[4])
        with widgets.until_reveal(C.Q_GROWTH.qid):  # the table answers the growth question too
            with widgets.go_deeper("every count, FLOPs per token and weight memory", "counts"):
                widgets.prose(parts[5])
                params = gr.Markdown(first["params"], elem_id="assembled-params")

    with widgets.go_deeper("from the 2017 Transformer and GPT-2 to Llama", "history"):
        widgets.prose(parts[6])
    with widgets.go_deeper("Llama 1, 2, 3, 3.1 and 3.2 side by side", "family"):
        widgets.prose(parts[7])
        gr.Markdown(C.family_table(), elem_id="assembled-family")
        widgets.prose(parts[8])
    widgets.lesson_footer(lesson)

    # --- listeners: every handler gets the learner's model first; compute clamps the inputs
    widgets.on_model(key, refresh, [model_msg, diagram, values, readout, pass_msg, facts, box, layer, head, params, shares],
                     opening=opening_cost)

    def on_pass(cm, text, box_key, layer_index, head_index, progress=gr.Progress()):
        progress(0, desc="running the forward pass" + costs.while_running(cost.text_pass(cm, text, C.MAX_TOKENS)))
        fig, vals, md, notice, l, h = C.pass_view(cm, text, box_key, layer_index, head_index)
        return fig, vals, md, widgets.note(notice), l, h  # (the dropdown is not written back: it would fire .change)

    def on_parts(cm, choice):
        return C.reveal_parts(cm, choice)

    def on_growth(cm, choice):
        return C.reveal_growth(choice)

    pass_ev = gr.on([show.click, text.submit, box.change, layer.release, head.release],
                    widgets.handler(on_pass, 6, msg_at=3),
          [key, text, box, layer, head], [diagram, values, readout, pass_msg, layer, head],
          api_name="assembled_pass", trigger_mode="always_last", show_progress="minimal")
    share.link(key, dict(text=text, box=box, layer=layer, head=head), runs=[pass_ev])
    part_btn.click(widgets.handler(on_parts), [key, part_choice], part_out, api_name="assembled_reveal_parts")
    growth_btn.click(widgets.handler(on_growth), [key, growth_choice], growth_out, api_name="assembled_reveal_growth")
