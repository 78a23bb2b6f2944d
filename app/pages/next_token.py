"""Lesson 10 page: next-token prediction.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md; the question comes before
the figures that answer it), listeners last. Handlers only call `lessons.next_token.compute`, which cleans and
clamps every input; the text last scored is kept per learner (gr.State), so the position slider always reads
the text the chips show.
"""

from __future__ import annotations

import gradio as gr

from app import share, widgets
from lessons.course import CourseModel
from lessons.next_token import compute as C


def first_view(cm: CourseModel) -> C.View:
    """The page's opening figures for one model: the default text at its easiest token."""
    return C.text_view(cm, C.DEFAULT_TEXT)


def slider_update(v: C.View) -> dict:
    # A one-token text has one prediction: the slider cannot move (its range would be empty); the notice says why.
    return gr.update(maximum=max(v.n, 2), value=v.position, interactive=v.n > 1)


def refresh(cm: CourseModel) -> tuple:
    """The page's model-dependent outputs for another model, in the order `build` wires them to on_model."""
    v = first_view(cm)
    return ("", C.DEFAULT_TEXT, v.chips, v.summary, slider_update(v), v.top, v.comparison, v.comparison_md,
            gr.update(choices=C.lens_choices(cm), value=None), "", v.lens, v.lens_position, v.lens_md, "")


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson, 4)
    v = first_view(cm)
    key = widgets.model_key()

    widgets.lesson_header(lesson)
    model_msg = widgets.message(elem_id="next-token-model-msg")  # a model that cannot be loaded says so here
    widgets.prose(parts[0])

    # --- the text, the question (before anything that answers it), then the chips and the totals
    text = gr.Textbox(C.DEFAULT_TEXT, lines=4, max_lines=8, label=f"Text ({widgets.RUN_HINT})",
                      info=f"BOS is added in front; the first {C.MAX_TOKENS - 1} tokens after it are scored",
                      elem_id="next-token-text")
    scored = gr.State(C.DEFAULT_TEXT)  # the text the figures show (the slider reads it, not the box)
    run = gr.Button("Score the text", variant="primary")
    text_msg = widgets.message(elem_id="next-token-msg")
    choice, reveal_btn, answer = widgets.predict_reveal(C.QUESTION, list(C.PREDICTORS),
                                                        "Reveal (scores the text above)", elem_id="next-token-reveal")
    chips = gr.HTML(v.chips, elem_id="next-token-chips")
    summary = gr.Markdown(v.summary, elem_id="next-token-summary")

    widgets.prose(parts[1])

    # --- the model's top predictions at one position
    position = widgets.Slider(1, v.n, v.position, step=1, label="predicted token (1 = the first after BOS)",
                              elem_id="next-token-position")
    position_msg = widgets.message()
    top = widgets.Plot(v.top, label="The model's top predictions", elem_id="next-token-top", code=C.top_figure)

    widgets.prose(parts[2])

    # --- the model against counting baselines
    comparison = widgets.Plot(v.comparison, label="The model against counting", elem_id="next-token-compare", code=C.comparison_figure)
    comparison_md = gr.Markdown(v.comparison_md, elem_id="next-token-compare-table")

    widgets.prose(parts[3])

    # --- the logit lens: the question first, then the heatmap and the chosen token's bars that answer it
    lens_choice, lens_btn, lens_answer = widgets.predict_reveal(
        C.LENS_QUESTION, C.lens_choices(cm), "Reveal (reads every layer)", elem_id="next-token-reveal-lens")
    lens = widgets.Plot(v.lens, label="Logit lens", elem_id="next-token-lens", code=C.lens_figure)
    lens_position = widgets.Plot(v.lens_position, label="The chosen token through the lens",
                                 elem_id="next-token-lens-position", code=C.lens_position_figure)
    lens_md = gr.Markdown(v.lens_md, elem_id="next-token-lens-readout")

    widgets.prose(parts[4])
    widgets.lesson_footer(lesson)

    # --- listeners: every handler gets the learner's model first; compute cleans and clamps the inputs
    widgets.on_model(key, refresh, [model_msg, text, chips, summary, position, top, comparison, comparison_md,
                                    lens_choice, lens_answer, lens, lens_position, lens_md, answer])

    def on_score(cm, text_value):
        v = C.text_view(cm, text_value)
        return (widgets.note(v.notice), v.text, v.chips, v.summary, slider_update(v), v.top, v.comparison,
                v.comparison_md, v.lens, v.lens_position, v.lens_md)

    def on_position(cm, text_value, position_value):
        fig, lens_fig, lens_pos, md, j, notice = C.position_view(cm, text_value, position_value)
        return fig, lens_fig, lens_pos, md, j, widgets.note(notice)

    def on_reveal(cm, text_value, picked):
        return C.reveal(cm, text_value, picked)

    def on_reveal_lens(cm, text_value, position_value, picked):
        return C.reveal_lens(cm, text_value, position_value, picked)

    score_ev = gr.on([run.click, text.submit], widgets.handler(on_score, 11, msg_at=0), [key, text],
          [text_msg, scored, chips, summary, position, top, comparison, comparison_md, lens, lens_position, lens_md],
          api_name="next_token_score", trigger_mode="always_last")
    position_ev = position.release(widgets.handler(on_position, 6, msg_at=5), [key, scored, position],
                     [top, lens, lens_position, lens_md, position, position_msg], api_name="next_token_position",
                     trigger_mode="always_last", show_progress="minimal")
    share.link(key, dict(text=text, position=position), runs=[score_ev, position_ev],
               ranges=dict(position=(1, C.MAX_TOKENS)))
    reveal_btn.click(widgets.handler(on_reveal), [key, text, choice], answer, api_name="next_token_reveal")
    lens_btn.click(widgets.handler(on_reveal_lens), [key, scored, position, lens_choice], lens_answer,
                   api_name="next_token_reveal_lens")
