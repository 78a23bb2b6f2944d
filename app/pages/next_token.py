"""Lesson 1 page: next-token prediction.

Layout first, listeners last. The core path: the model's top predictions on the learner's text (the first figure),
how a prediction is scored, a question on the loss before training (its answering figure hidden until Reveal), the
per-token chips, and the model against counting baselines counted on its own training split (hidden until its
question's Reveal). The smoothing formulas and the logit lens (with its question) sit in Go deeper sections.
Handlers only call `lessons.next_token.compute`, which cleans and clamps every input; the text last scored is kept
per learner (gr.State), so the position slider always reads the text the chips show.
"""

from __future__ import annotations

import gradio as gr

from app import costs, share, widgets
from lessons import cost
from lessons.course import CourseModel
from lessons.next_token import compute as C


def first_view(cm: CourseModel) -> C.View:
    """The page's opening figures for one model: the default text at its easiest token. The comparison with
    counting is left to its question's Reveal (it counts the training split: seconds, once per model)."""
    return C.text_view(cm, C.DEFAULT_TEXT, baselines=False)


def warm(cm: CourseModel) -> None:
    """Before learners arrive (app.main): count the course model's training split in the background, so the first
    Reveal of the comparison does not wait for it, and the server does not wait either."""
    import threading

    threading.Thread(target=C.counts, args=(cm,), daemon=True, name="next-token-counts").start()


def slider_update(v: C.View) -> dict:
    # A one-token text has one prediction: the slider cannot move (its range would be empty); the notice says why.
    return gr.update(maximum=max(v.n, 2), value=v.position, interactive=v.n > 1)


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): the default text scored, logit lens included."""
    return score_cost(cm, C.DEFAULT_TEXT)


def refresh(cm: CourseModel) -> tuple:
    """The page's model-dependent outputs for another model, in the order `build` wires them to on_model."""
    v = first_view(cm)
    return (score_notice(cm), C.DEFAULT_TEXT, v.chips, v.summary, slider_update(v), v.top, v.comparison,
            v.comparison_md,
            v.lens, v.lens_position, v.lens_md, v.untrained, "", "", "")


def score_cost(cm: CourseModel, text: str):
    """lessons.cost's estimate of scoring a text: one pass and the logit lens (the comparison's counting aside)."""
    return cost.text_pass(cm, text, C.MAX_TOKENS, lens=True)


def score_notice(cm: CourseModel) -> str:
    """The page's message for a big model: what scoring a text costs (empty for the course model)."""
    return costs.notice(score_cost(cm, C.DEFAULT_TEXT), "Scoring a text (one pass and the logit lens)")


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson, 5)
    v = first_view(cm)
    key = widgets.model_key()

    widgets.lesson_header(lesson)
    model_msg = widgets.message(elem_id="next-token-model-msg")  # a model that cannot be loaded says so here
    widgets.prose(parts[0])

    # --- the text and the model's top predictions at one position: the first figure
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            text = gr.Textbox(C.DEFAULT_TEXT, lines=4, max_lines=8, label=f"Text ({widgets.RUN_HINT})",
                              info=f"BOS is added in front; the first {C.MAX_TOKENS - 1} tokens after it are scored",
                              elem_id="next-token-text")
            run = gr.Button("Score the text", variant="primary")
            text_msg = widgets.message(elem_id="next-token-msg")
            position = widgets.Slider(1, v.n, v.position, step=1, label="predicted token (1 = the first after BOS)",
                                      elem_id="next-token-position")
            position_msg = widgets.message()
        with gr.Column(scale=3, min_width=300):
            top = widgets.Plot(v.top, label="The model's top predictions", elem_id="next-token-top",
                               code=C.top_figure)
    scored = gr.State(C.DEFAULT_TEXT)  # the text the figures show (the slider reads it, not the box)

    widgets.prose(parts[1])
    # --- the loss before training: asked, then shown
    q0, q0_btn, q0_answer = widgets.predict_reveal(C.Q_UNTRAINED, "Reveal (scores your text before training)",
                                                   elem_id="next-token-reveal-untrained")
    with widgets.until_reveal(C.Q_UNTRAINED.qid):
        untrained = widgets.Plot(v.untrained, label="Loss before training", elem_id="next-token-untrained",
                                 code=C.untrained_figure)
    chips = gr.HTML(v.chips, elem_id="next-token-chips")
    summary = gr.Markdown(v.summary, elem_id="next-token-summary")

    widgets.prose(parts[2])
    # --- the model against counting baselines: asked, then shown
    choice, reveal_btn, answer = widgets.predict_reveal(C.Q_BEST, "Reveal (scores the text above)",
                                                        elem_id="next-token-reveal")
    with widgets.until_reveal(C.Q_BEST.qid):
        comparison = widgets.Plot(v.comparison, label="The model against counting", elem_id="next-token-compare",
                                  code=C.comparison_figure)
        comparison_md = gr.Markdown(v.comparison_md, elem_id="next-token-compare-table")

    with widgets.go_deeper("smoothing the counts (add-one, Witten-Bell)", "smoothing"):
        widgets.prose(parts[3])
    with widgets.go_deeper("the logit lens: reading every layer as if it were the last", "lens"):
        widgets.prose(parts[4])
        lens_choice, lens_btn, lens_answer = widgets.predict_reveal(
            C.Q_LENS, "Reveal (reads the embeddings out)", elem_id="next-token-reveal-lens")
        with widgets.until_reveal(C.Q_LENS.qid):
            lens = widgets.Plot(v.lens, label="Logit lens", elem_id="next-token-lens", code=C.lens_figure)
            lens_position = widgets.Plot(v.lens_position, label="The chosen token through the lens",
                                         elem_id="next-token-lens-position", code=C.lens_position_figure)
            lens_md = gr.Markdown(v.lens_md, elem_id="next-token-lens-readout")
        widgets.prose(parts[5])
    widgets.lesson_footer(lesson)

    # --- listeners: every handler gets the learner's model first; compute cleans and clamps the inputs
    widgets.on_model(key, refresh, [model_msg, text, chips, summary, position, top, comparison, comparison_md,
                                    lens, lens_position, lens_md, untrained, answer, lens_answer, q0_answer],
                     opening=opening_cost)

    def on_score(cm, text_value, progress=gr.Progress()):
        progress(0, desc="scoring the text" + costs.while_running(score_cost(cm, text_value)))
        v = C.text_view(cm, text_value)
        return (widgets.note(v.notice), v.text, v.chips, v.summary, slider_update(v), v.top, v.comparison,
                v.comparison_md, v.lens, v.lens_position, v.lens_md, v.untrained)

    def on_position(cm, text_value, position_value):
        fig, lens_fig, lens_pos, md, j, notice = C.position_view(cm, text_value, position_value)
        return fig, lens_fig, lens_pos, md, j, widgets.note(notice)

    def on_reveal(cm, text_value, picked):
        """The graded answer, and the comparison figure and table that answer it (shown by this Reveal)."""
        return (C.reveal(cm, text_value, picked), *C.comparison_view(cm, text_value))

    def on_reveal_untrained(cm, text_value, picked):
        return C.reveal_untrained(cm, text_value, picked)

    def on_reveal_lens(cm, text_value, picked):
        return C.reveal_embedding_readout(cm, text_value, picked)

    score_ev = gr.on([run.click, text.submit], widgets.handler(on_score, 12, msg_at=0), [key, text],
          [text_msg, scored, chips, summary, position, top, comparison, comparison_md, lens, lens_position, lens_md,
           untrained], api_name="next_token_score", trigger_mode="always_last")
    position_ev = position.release(widgets.handler(on_position, 6, msg_at=5), [key, scored, position],
                     [top, lens, lens_position, lens_md, position, position_msg], api_name="next_token_position",
                     trigger_mode="always_last", show_progress="minimal")
    share.link(key, dict(text=text, position=position), runs=[score_ev, position_ev],
               ranges=dict(position=(1, C.MAX_TOKENS)))
    reveal_btn.click(widgets.handler(on_reveal, 3, 0), [key, text, choice], [answer, comparison, comparison_md],
                     api_name="next_token_reveal")
    q0_btn.click(widgets.handler(on_reveal_untrained), [key, scored, q0], q0_answer,
                 api_name="next_token_reveal_untrained")
    lens_btn.click(widgets.handler(on_reveal_lens), [key, scored, lens_choice], lens_answer,
                   api_name="next_token_reveal_lens")
