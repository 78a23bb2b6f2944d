"""Lesson page: smaller models on more data (the LLaMA paper's central choice).

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last. Nothing on
this page depends on the picked model: it computes from the published configs (llama.config) and the course's
shipped two-size experiment (assets/scale/scale.json).
"""

from __future__ import annotations

import gradio as gr

from app import share, widgets
from lessons.course import CourseModel
from lessons.inputs import LessonError
from lessons.plots import message_figure
from lessons.scale import compute as C


def _study_figures() -> tuple:
    """(loss against tokens, loss against compute, notice); a missing study file is a notice, not an error."""
    try:
        study = C.load_study()
    except LessonError as e:
        return message_figure(str(e)), message_figure(str(e)), str(e)
    return C.curves_figure(study, "tokens"), C.curves_figure(study, "compute"), ""


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson, 3)
    key = widgets.model_key()
    s, _ = C.same_budget(C.preset_choices()[0])
    by_tokens, by_compute, study_msg = _study_figures()

    widgets.lesson_header(lesson)
    widgets.prose(parts[0])
    widgets.Plot(C.tokens_per_parameter_figure(), label="Training tokens per parameter", elem_id="scale-ratio",
                 code=C.tokens_per_parameter_figure)
    widgets.prose(parts[1])
    opt_guess, opt_btn, opt_answer = widgets.predict_reveal(C.OPTIMAL_QUESTION, elem_id="scale-answer-optimal")
    with widgets.until_reveal(C.OPTIMAL_QUESTION.qid):
        model = widgets.Dropdown(C.preset_choices(), value=s.row.name, label="Published model",
                                 elem_id="scale-model")
        budget_msg = widgets.message()
        budget = widgets.Plot(C.same_budget_figure(s), label="The same compute, spent Chinchilla's way",
                              elem_id="scale-budget", code=C.same_budget_figure)
        budget_md = gr.Markdown(C.same_budget_readout(s), elem_id="scale-budget-readout")
    widgets.prose(parts[2])
    widgets.message(study_msg, elem_id="scale-study-msg")
    size_guess, size_btn, size_answer = widgets.predict_reveal(C.SIZE_QUESTION, elem_id="scale-answer-sizes")
    with widgets.until_reveal(C.SIZE_QUESTION.qid):
        with gr.Row():
            widgets.Plot(by_tokens, label="Loss against tokens seen", elem_id="scale-tokens", code=C.curves_figure)
            widgets.Plot(by_compute, label="Loss against training compute", elem_id="scale-compute",
                         code=C.curves_figure)
    with widgets.go_deeper("the formulas and their sources", "scale-formulas"):
        gr.Markdown(C.__doc__.split("\n\n", 2)[2].replace("\n", "  \n"), elem_id="scale-formulas-text")
    widgets.lesson_footer(lesson)

    # --- listeners
    def on_model(cm, name):
        s, notice = C.same_budget(name)
        return widgets.note(notice), C.same_budget_figure(s), C.same_budget_readout(s)

    def on_reveal_optimal(cm, picked):
        return C.reveal_optimal(picked)

    def on_reveal_sizes(cm, picked):
        return C.reveal_sizes(picked)

    model_ev = model.input(widgets.handler(on_model, 3, msg_at=0), [key, model], [budget_msg, budget, budget_md],
                           api_name="scale_budget")
    opt_btn.click(widgets.handler(on_reveal_optimal, 2, msg_at=0), [key, opt_guess], [opt_answer, budget],
                  api_name="scale_reveal_optimal")
    size_btn.click(widgets.handler(on_reveal_sizes), [key, size_guess], size_answer, api_name="scale_reveal_sizes")
    share.link(key, dict(preset=model), runs=[model_ev])
