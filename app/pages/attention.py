"""Lesson 2 page: attention. Layout first, listeners last; every number comes from lessons.attention.compute.

Events (api_name: inputs -> outputs), all stateless: each takes the text box, and the traced forward
pass is cached per text in compute, so a slider only slices cached tensors.
    attention_analyze         text, layer, head, query, scale -> message, query slider, all six figures
    attention_map             text, layer, head -> message, heatmap
    attention_heads           text, layer -> all-heads grid
    attention_query           text, layer, head, query -> message, step-by-step figure
    attention_scale           text, layer, head, query, scale -> message, scale figure
    attention_reveal_previous text, guess -> Markdown answer
    attention_reveal_scaling  text, guess -> Markdown answer
"""

from __future__ import annotations

import math

import gradio as gr

from app import widgets
from lessons import LessonInfo
from lessons.attention import compute as C
from lessons.course import CourseModel

N_SECTIONS = 8  # lesson.md is cut at 7 '<!-- figure -->' markers; see the layout below


def build(cm: CourseModel, lesson: LessonInfo) -> None:
    cfg = cm.config
    init = C.analyze_view(cm, C.DEFAULT_TEXT, 0, 0, None, 1.0)  # the first figures, computed by the model at start-up
    root = math.sqrt(cfg.head_dim)
    secs = (widgets.sections(lesson) + [""] * N_SECTIONS)[:N_SECTIONS]

    widgets.lesson_header(lesson)
    widgets.prose(secs[0])
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            text = gr.Textbox(C.DEFAULT_TEXT, lines=3, max_lines=10,
                              label=f"Your text (at most {C.MAX_TOKENS} tokens with BOS; longer text is cut)",
                              elem_id="attention-text")
            analyze = gr.Button("Analyze", variant="primary")
            msg = widgets.message(widgets.note(init.message))
            layer = gr.Slider(0, cfg.n_layers - 1, value=0, step=1, label=f"Layer (0 to {cfg.n_layers - 1})")
            head = gr.Slider(0, cfg.n_heads - 1, value=0, step=1,
                             label=f"Query head (0 to {cfg.n_heads - 1}); it reads KV head = head // {cfg.n_rep}")
            map_msg = widgets.message()
        with gr.Column(scale=2):
            heatmap = gr.Plot(init.heatmap, label="Attention map of one head", elem_id="attention-heatmap")
    widgets.prose(secs[1])
    grid = gr.Plot(init.grid, label="Every head of the layer", elem_id="attention-grid")
    widgets.prose(secs[2])
    with gr.Row():
        query = gr.Slider(0, init.n_tokens - 1, value=init.query, step=1, scale=2,
                          label="Query position (0 = BOS; the maximum follows your text)")
        query_msg = widgets.message()
    steps = gr.Plot(init.steps, label="One query, step by step", elem_id="attention-steps")
    widgets.prose(secs[3])
    with gr.Row():
        scale = gr.Slider(0.1, max(10.0, math.ceil(root)), value=1.0, step=0.1, scale=2,
                          label=f"Multiply the scaled scores by (1 = the model; {root:.2f} = √d, i.e. no ÷√d)")
        scale_msg = widgets.message()
    scale_plot = gr.Plot(init.scale, label="Softmax at another scale", elem_id="attention-scale")
    widgets.prose(secs[4])
    summary = gr.Plot(init.summary, label="Every head, summarised", elem_id="attention-summary")
    widgets.prose(secs[5])
    with gr.Row():
        guess_prev = gr.Radio(C.layer_choices(cm), label="Your prediction: the strongest previous-token head is in")
        reveal_prev = gr.Button("Reveal", scale=0, min_width=120)
    answer_prev = gr.Markdown()
    widgets.prose(secs[6])
    with gr.Row():
        guess_scale = gr.Radio(C.SCALE_CHOICES, label="Your prediction: without ÷√d, attention gets")
        reveal_scale = gr.Button("Reveal", scale=0, min_width=120)
    answer_scale = gr.Markdown()
    widgets.prose(secs[7])
    widgets.lesson_footer(lesson)

    # ------------------------------------------------------------------ listeners
    def attention_analyze(text, layer, head, query, scale):
        """A new text: one traced forward pass (cached), every figure, and the query slider resized to the text."""
        a = C.analyze_view(cm, text, layer, head, query, scale)
        slider = gr.Slider(maximum=a.n_tokens - 1, value=a.query) if a.n_tokens else gr.skip()  # bad text: keep it
        return widgets.note(a.message), slider, a.heatmap, a.grid, a.steps, a.scale, a.summary

    def attention_map(text, layer, head):
        """The heatmap of one layer's head."""
        note, fig = C.map_view(cm, text, layer, head)
        return widgets.note(note), fig

    def attention_heads(text, layer):
        """Every head of one layer, as small multiples."""
        return C.grid_view(cm, text, layer)

    def attention_query(text, layer, head, query):
        """One query's scores, scaling, mask, softmax and weighted sum of values."""
        note, fig = C.query_view(cm, text, layer, head, query)
        return widgets.note(note), fig

    def attention_scale(text, layer, head, query, scale):
        """The same query's softmax with the scaled scores multiplied by `scale`."""
        note, fig = C.scale_view(cm, text, layer, head, query, scale)
        return widgets.note(note), fig

    def attention_reveal_previous(text, guess):
        """Which layer holds the strongest previous-token head, measured on the text."""
        return C.reveal_previous_token(cm, text, guess)

    def attention_reveal_scaling(text, guess):
        """What dropping 1/sqrt(d) does to every attention row of the text."""
        return C.reveal_scaling(cm, text, guess)

    quiet = dict(show_progress="minimal")
    gr.on([text.submit, analyze.click], attention_analyze, [text, layer, head, query, scale],
          [msg, query, heatmap, grid, steps, scale_plot, summary], api_name="attention_analyze")
    gr.on([layer.release, head.release], attention_map, [text, layer, head], [map_msg, heatmap],
          api_name="attention_map", **quiet)
    layer.release(attention_heads, [text, layer], grid, api_name="attention_heads", **quiet)
    gr.on([layer.release, head.release, query.release], attention_query, [text, layer, head, query],
          [query_msg, steps], api_name="attention_query", **quiet)
    gr.on([layer.release, head.release, query.release, scale.release], attention_scale,
          [text, layer, head, query, scale], [scale_msg, scale_plot], api_name="attention_scale", **quiet)
    reveal_prev.click(attention_reveal_previous, [text, guess_prev], answer_prev, api_name="attention_reveal_previous")
    reveal_scale.click(attention_reveal_scaling, [text, guess_scale], answer_scale, api_name="attention_reveal_scaling")
