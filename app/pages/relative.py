"""Lesson page: relative positions and the Transformer they came from.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last. Handlers
take the learner's model first (`widgets.handler`) and only call `lessons.relative.compute`.
"""

from __future__ import annotations

import gradio as gr

from app import share, widgets
from lessons import cost
from lessons.course import CourseModel
from lessons.relative import compute as C


def initial(cm: CourseModel) -> dict:
    r = C.position_scores(cm, C.DEFAULT_TEXT, 4)
    return dict(scores=C.scores_figure(r), readout=C.scores_readout(r), values=C.value_term_readout(r),
                params=C.parameters_table(cm), arch=C.architecture_figure(cm))


def run(cm: CourseModel, text: str, clip_k) -> tuple:
    r = C.position_scores(cm, text, clip_k)
    return (widgets.note(r.notice), C.scores_figure(r), C.scores_readout(r), C.value_term_readout(r),
            C.parameters_table(cm, r.clip_k))


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): one pass over the default text for one token's scores."""
    return cost.text_pass(cm, C.DEFAULT_TEXT, 64)


def refresh(cm: CourseModel) -> tuple:
    first = initial(cm)
    return "", first["scores"], first["readout"], first["values"], first["params"], first["arch"]


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson, 3)
    first = initial(cm)
    key = widgets.model_key()

    widgets.lesson_header(lesson)
    model_msg = widgets.message(elem_id="relative-model-msg")
    widgets.prose(parts[0])
    with gr.Row():
        text = gr.Textbox(C.DEFAULT_TEXT, lines=1, max_lines=3, scale=3, elem_id="relative-text",
                          label=f"Your text: its last token is placed at every position ({widgets.RUN_HINT})")
        clip_k = widgets.Slider(1, C.MAX_CLIP, 4, step=1, scale=2, label="Shaw's clipping distance k",
                                elem_id="relative-clip")
        go = gr.Button("Score", variant="primary", scale=1)
    msg = widgets.message(elem_id="relative-msg")
    scores = widgets.Plot(first["scores"], label="Scores under three position schemes", elem_id="relative-scores",
                          code=C.position_scores)
    readout = gr.Markdown(first["readout"], elem_id="relative-readout")
    widgets.prose(parts[1])
    guess, reveal_btn, answer = widgets.predict_reveal(C.TABLE_QUESTION, elem_id="relative-answer")
    with widgets.until_reveal(C.TABLE_QUESTION.qid):
        params = gr.Markdown(first["params"], elem_id="relative-params")
    with widgets.go_deeper("Shaw's value term, measured", "relative-values"):
        values = gr.Markdown(first["values"], elem_id="relative-values-readout")
    widgets.prose(parts[2])
    arch = widgets.Plot(first["arch"], label="The 2017 Transformer beside Llama", elem_id="relative-architecture",
                        code=C.architecture_figure)
    with widgets.go_deeper("internal covariate shift, measured on the course model's training", "relative-drift"):
        gr.Markdown("The 2017 Transformer normalised after each sub-layer (post-norm, LayerNorm); Llama normalises "
                    "before (pre-norm, RMSNorm; lesson 6). Why normalise at all? Each block's input is the output of "
                    "every block below it, and that changes as they learn. Measured on the course model's shipped "
                    "training snapshots:")
        drift_btn = gr.Button("Measure the drift (runs 7 snapshots, a few seconds)")
        drift_msg = widgets.message(elem_id="relative-drift-msg")
        drift = widgets.Plot(None, label="Block inputs during training", elem_id="relative-drift-plot",
                             code=C.covariate_drift)
        drift_md = gr.Markdown(elem_id="relative-drift-readout")
    widgets.lesson_footer(lesson)

    # --- listeners
    widgets.on_model(key, refresh, [model_msg, scores, readout, values, params, arch],
                     opening=opening_cost)
    run_ev = gr.on([go.click, text.submit, clip_k.release], widgets.handler(run, 5, msg_at=0), [key, text, clip_k],
                   [msg, scores, readout, values, params], api_name="relative_scores", trigger_mode="always_last",
                   show_progress="minimal")
    reveal_btn.click(widgets.handler(C.reveal_tables), [key, text, guess], answer, api_name="relative_reveal")

    def on_drift(cm):
        d = C.covariate_drift()
        return "", C.drift_figure(d), C.drift_readout(d)

    drift_btn.click(widgets.handler(on_drift, 3, msg_at=0), [key], [drift_msg, drift, drift_md],
                    api_name="relative_drift")
    share.link(key, dict(text=text, k=clip_k), runs=[run_ev])
