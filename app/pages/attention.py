"""Lesson 2 page: attention. Layout first, listeners last; every number comes from lessons.attention.compute.

The last analyzed text lives in a per-learner gr.State: Analyze (or Shift+Enter) sets it, and every slider and
reveal reads it, never the text box. Editing the box without pressing Analyze therefore changes nothing until
Analyze, and all figures always show one text.

Events (api_name: inputs -> outputs); the model key and the analyzed text are hidden States:
    attention_analyze         text, layer, head, query, scale -> message, analyzed text, the four sliders
                                                                  (clamped values, query range), every slider
                                                                  figure; both answers and the summary cleared
    attention_view            layer, head, query, scale -> message, the four sliders, every slider figure
    attention_scale           layer, head, query, scale -> message, scale slider, scale figure
    attention_reveal_previous guess -> Markdown answer, summary of every head (drawn only here: it answers it)
    attention_reveal_scaling  guess -> Markdown answer
    attention_memory          lengths -> message, peak-memory figure, readout (measured when pressed, cached)
    attention_online          layer, head, query, keys per block -> message, keys per block, online-softmax table
                              (also run after every analyze and view, so the table follows the sliders)

A model picked on the course map (widgets.on_model) refills every model-dependent component from
`_model_values`, the same function the page is built from.
"""

from __future__ import annotations

import functools
import math

import gradio as gr

from app import classroom, share, widgets
from lessons import LessonInfo
from lessons.attention import compute as C
from lessons.course import CourseModel
from lessons.plots import message_figure


@functools.cache
def _waiting():
    """The summary's place before its reveal: one figure, built once (Gradio only serialises it)."""
    return message_figure(C.SUMMARY_WAITING)


@functools.cache
def _memory_waiting():
    """The memory figure's place before Measure is pressed (its numbers are measured only when asked)."""
    return message_figure(C.MEMORY_WAITING)


def _cleared():
    """The two answers and the summary of every head, before their reveals are pressed for this text."""
    return "", "", _waiting()

N_SECTIONS = 13  # lesson.md is cut at 12 '<!-- figure -->' markers; see the layout below


def _sliders(sl: C.Sliders, n_tokens: int | None = None):
    """Slider updates that show the values the figures were drawn with (clamped, rounded)."""
    query = gr.update(value=sl.query) if n_tokens is None else gr.update(maximum=max(1, n_tokens - 1), value=sl.query)
    return gr.update(value=sl.layer), gr.update(value=sl.head), query, gr.update(value=sl.factor)


def _figures(v: C.View):
    return v.dot, v.dot_md, v.heatmap, v.grid, v.mix, v.steps, v.scale


def _model_values(cm: CourseModel) -> dict:
    """Everything on the page that depends on the model, as component arguments: the page is built from it
    for the course model, and `widgets.on_model` refills the same components from it for a picked model."""
    cfg = cm.config
    init = C.analyze_view(cm, C.DEFAULT_TEXT, 0, 0, None, 1.0)  # the first figures, computed by the model
    v = init.view
    root = math.sqrt(cfg.head_dim)
    return dict(
        msg=dict(value=widgets.note(v.notice)),
        facts=dict(value=C.model_facts(cm)),
        layer=dict(minimum=0, maximum=max(1, cfg.n_layers - 1), value=0, interactive=cfg.n_layers > 1,
                   label=f"Layer (0 to {cfg.n_layers - 1})"),
        head=dict(minimum=0, maximum=max(1, cfg.n_heads - 1), value=0, interactive=cfg.n_heads > 1,
                  label=f"Query head (0 to {cfg.n_heads - 1}); it reads KV head = head // {cfg.n_rep}"),
        query=dict(minimum=0, maximum=max(1, init.n_tokens - 1), value=v.sliders.query,
                   label="Query position (0 = BOS; the maximum follows the analyzed text)"),
        scale=dict(minimum=C.SCALE_MIN, maximum=C.scale_max(cfg.head_dim), value=1.0,
                   label=f"Multiply this row's scaled scores by (1 = the model; {root:.2f} = √d, i.e. no ÷√d)"),
        guess_prev=dict(choices=C.layer_choices(cm), value=None),
        figures=_figures(v),
        memory=(_memory_waiting(), ""),
        block=dict(minimum=1, maximum=C.MAX_TOKENS, value=C.BLOCK_DEFAULT,
                   label=f"Keys per block (1 to {C.MAX_TOKENS})"),
        online=C.online_view(cm, C.DEFAULT_TEXT, 0, 0, None, C.BLOCK_DEFAULT)[2],
    )


def refresh(cm: CourseModel) -> tuple:
    """Another model picked on the course map (widgets.on_model): every model-dependent component, in the order
    `build` wires them, and the analyzed text (State) reset to the default."""
    m = _model_values(cm)
    return (m["msg"]["value"], C.DEFAULT_TEXT, C.DEFAULT_TEXT, gr.update(**m["facts"]),
            *(gr.update(**m[k]) for k in ("layer", "head", "query", "scale", "guess_prev")),
            *m["figures"], *_cleared(), *m["memory"], gr.update(**m["block"]), m["online"])


def build(cm: CourseModel, lesson: LessonInfo) -> None:
    m = _model_values(cm)
    dot0, dot_md0, heat0, grid0, mix0, steps0, scale0 = m["figures"]
    secs = widgets.sections(lesson, N_SECTIONS - 1)

    key = widgets.model_key()
    analyzed = gr.State(C.DEFAULT_TEXT)  # the text every figure shows: set by Analyze only
    widgets.lesson_header(lesson)
    widgets.prose(secs[0])
    facts = widgets.prose(m["facts"]["value"])
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            text = gr.Textbox(C.DEFAULT_TEXT, lines=3, max_lines=10, elem_id="attention-text",
                              label=f"Your text (at most {C.MAX_TOKENS} tokens with BOS; longer text is cut; "
                                    f"{widgets.RUN_HINT})")
            analyze = gr.Button("Analyze", variant="primary")
            msg = widgets.message(m["msg"]["value"], elem_id="attention-msg")
        with gr.Column(scale=1, min_width=300):
            layer = widgets.Slider(step=1, **m["layer"])
            head = widgets.Slider(step=1, **m["head"])
            query = widgets.Slider(step=1, **m["query"])
            view_msg = widgets.message(elem_id="attention-view-msg")
    widgets.prose(secs[1])
    with gr.Row():
        dot = widgets.Plot(dot0, label="One query and its keys: length and direction", elem_id="attention-dot", code=C.dot_figure)
        dot_md = gr.Markdown(dot_md0, elem_id="attention-dot-readout")
    widgets.prose(secs[2])
    with gr.Row():
        guess_prev = widgets.Radio(label="Your prediction: the strongest previous-token head is in",
                                   **m["guess_prev"])
        reveal_prev = gr.Button("Reveal", scale=0, min_width=120)
    answer_prev = gr.Markdown(elem_id="attention-answer-previous")
    classroom.record_answers(guess_prev.label, guess_prev.choices, guess_prev, answer_prev, qid="attention.previous")
    widgets.prose(secs[3])
    heatmap = widgets.Plot(heat0, label="Attention map of one head", elem_id="attention-heatmap", code=C.heatmap_figure)
    widgets.prose(secs[4])
    grid = widgets.Plot(grid0, label="Every head of the layer", elem_id="attention-grid", code=C.heads_grid_figure)
    widgets.prose(secs[5])
    mix = widgets.Plot(mix0, label="What o_proj adds, head by head", elem_id="attention-mix", code=C.heads_mix_figure)
    widgets.prose(secs[6])
    steps = widgets.Plot(steps0, label="One query, step by step", elem_id="attention-steps", code=C.query_figure)
    widgets.prose(secs[7])
    with gr.Row():
        guess_scale = widgets.Radio(C.SCALE_CHOICES, label="Your prediction: without ÷√d in every layer, attention gets")
        reveal_scale = gr.Button("Reveal", scale=0, min_width=120)
    answer_scale = gr.Markdown(elem_id="attention-answer-scaling")
    classroom.record_answers(guess_scale.label, C.SCALE_CHOICES, guess_scale, answer_scale, qid="attention.scale")
    widgets.prose(secs[8])
    with gr.Row():
        scale = widgets.Slider(step=0.1, scale=2, **m["scale"])
        scale_msg = widgets.message()
    scale_plot = widgets.Plot(scale0, label="Softmax at another scale (one row)", elem_id="attention-scale", code=C.scale_figure)
    widgets.prose(secs[9])
    summary = widgets.Plot(message_figure(C.SUMMARY_WAITING), label="Every head, summarised", elem_id="attention-summary", code=C.summary_figure)
    widgets.prose(secs[10])
    with gr.Row():
        reach = widgets.Radio(C.REACH_CHOICES, value=C.REACH_CHOICES[0], label="Sequence lengths")
        measure = gr.Button("Measure peak memory", scale=0, min_width=200)
    mem_msg = widgets.message(elem_id="attention-memory-msg")
    mem_plot = widgets.Plot(m["memory"][0], label="Peak memory against sequence length", elem_id="attention-memory", code=C.memory_figure)
    mem_md = gr.Markdown(m["memory"][1], elem_id="attention-memory-readout")
    widgets.prose(secs[11])
    with gr.Row():
        block = widgets.Slider(step=1, scale=2, **m["block"])
        online_msg = widgets.message()
    online = gr.Markdown(m["online"], elem_id="attention-online")
    widgets.prose(secs[12])
    widgets.lesson_footer(lesson)

    # ------------------------------------------------------------------ listeners
    def attention_analyze(cm, text, layer, head, query, scale):
        """A new text: one traced forward pass (cached), every figure, the sliders set to what is drawn."""
        a = C.analyze_view(cm, text, layer, head, query, scale)
        v = a.view
        # The answers and the summary were measured on the previous text: cleared until asked again.
        return (widgets.note(v.notice), text, *_sliders(v.sliders, a.n_tokens), *_figures(v), *_cleared())

    def attention_view(cm, text, layer, head, query, scale):
        """Any of the layer, head or query sliders released: every slider figure, from the analyzed text."""
        v = C.view(cm, text, layer, head, query, scale)
        return (widgets.note(v.notice), *_sliders(v.sliders), *_figures(v))

    def attention_scale(cm, text, layer, head, query, scale):
        """The scale slider released: the same query's softmax with the scaled scores multiplied by `scale`."""
        notice, fig, factor = C.scale_view(cm, text, layer, head, query, scale)
        return widgets.note(notice), gr.update(value=factor), fig

    def attention_reveal_previous(cm, text, guess):
        """Which layer holds the strongest previous-token head, measured on the analyzed text, and the summary
        of every head (drawn only now: it answers this question)."""
        return C.reveal_previous_token(cm, text, guess), C.summary_view(cm, text)

    def attention_reveal_scaling(cm, text, guess):
        """Re-run the model without 1/sqrt(d) in every layer on the analyzed text."""
        return C.reveal_scaling(cm, text, guess)

    def attention_memory(cm, reach, progress=gr.Progress()):
        """Peak memory of one attention call per path and length, measured now on this machine (cached)."""
        progress(0, desc="measuring peak memory")
        notice, fig, md = C.memory_view(cm, reach, lambda f, what: progress(f, desc=f"measuring: {what}"))
        return widgets.note(notice), fig, md

    def attention_online(cm, text, layer, head, query, block):
        """The online softmax of the chosen query row, block by block, on the analyzed text."""
        notice, b, md = C.online_view(cm, text, layer, head, query, block)
        return widgets.note(notice), gr.update(value=b), md

    figures = [dot, dot_md, heatmap, grid, mix, steps, scale_plot]
    sliders = [layer, head, query, scale]
    answers = [answer_prev, answer_scale, summary]
    quiet = dict(show_progress="minimal")
    widgets.on_model(key, refresh, [msg, analyzed, text, facts, *sliders, guess_prev, *figures, *answers,
                                    mem_plot, mem_md, block, online])
    online_io = ([key, analyzed, layer, head, query, block], [online_msg, block, online])
    # (wired before the chains below, which reuse the handler: the public event keeps the plain api_name)
    online_ev = block.release(widgets.handler(attention_online, 3, 0), *online_io, api_name="attention_online",
                              trigger_mode="always_last", **quiet)
    analyze_ev = gr.on([text.submit, analyze.click], widgets.handler(attention_analyze, 16, 0),
                       [key, text, *sliders], [msg, analyzed, *sliders, *figures, *answers],
                       api_name="attention_analyze")
    analyze_ev.then(widgets.handler(attention_online, 3, 0), *online_io, api_visibility="private", **quiet)
    gr.on([layer.release, head.release, query.release], widgets.handler(attention_view, 12, 0),
          [key, analyzed, *sliders], [view_msg, *sliders, *figures], api_name="attention_view",
          trigger_mode="always_last", **quiet
          ).then(widgets.handler(attention_online, 3, 0), *online_io, api_visibility="private", **quiet)
    measure.click(widgets.handler(attention_memory, 3, 0), [key, reach], [mem_msg, mem_plot, mem_md],
                  api_name="attention_memory")
    scale_ev = scale.release(widgets.handler(attention_scale, 3, 0), [key, analyzed, *sliders],
                             [scale_msg, scale, scale_plot], api_name="attention_scale",
                             trigger_mode="always_last", **quiet)
    reveal_prev.click(widgets.handler(attention_reveal_previous, 2, 0), [key, analyzed, guess_prev],
                      [answer_prev, summary], api_name="attention_reveal_previous")
    reveal_scale.click(widgets.handler(attention_reveal_scaling), [key, analyzed, guess_scale], answer_scale,
                       api_name="attention_reveal_scaling")
    share.link(key, dict(text=text, layer=layer, head=head, query=query, scale=scale, block=block),
               runs=[analyze_ev, scale_ev, online_ev], ranges=dict(query=(0, C.MAX_TOKENS)))
