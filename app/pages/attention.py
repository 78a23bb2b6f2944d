"""Lesson 3 page: attention. Layout first, listeners last; every number comes from lessons.attention.compute.

The core path: a toy example of three tokens with 2-D q, k, v (editable), then the same steps on the model's real
head (its map, one query step by step, every head of a layer), then two questions on the 1/sqrt(d) scaling whose
answering figures stay hidden until their Reveal. Depth (lengths and angles with footnote 4 checked, o_proj, every
head summarised) sits in Go deeper sections. Attention without storing the weights is its own page,
/efficient_attention: an old link to /attention that carries that page's inputs (`block`) is forwarded there.

The last analyzed text lives in a per-learner gr.State: Analyze (or Shift+Enter) sets it, and every slider and
reveal reads it, never the text box.

Events (api_name: inputs -> outputs); the model key and the analyzed text are hidden States:
    attention_toy             toy table -> message, the checked table, toy figure, the four steps as tables
    attention_analyze         text, layer, head, query, scale -> message, analyzed text, the four sliders
                                                                  (clamped values, query range), every figure
                                                                  (the summary of every head included)
    attention_view            layer, head, query, scale -> message, the four sliders, every slider figure
    attention_scale           layer, head, query, scale -> message, scale slider, scale figure
    attention_reveal_dot      guess -> Markdown answer (random q·k at d = 32, measured)
    attention_reveal_scaling  guess -> Markdown answer (the whole model re-run without 1/sqrt(d))

A model picked on the course map (widgets.on_model) refills every model-dependent component from
`_model_values`, the same function the page is built from.
"""

from __future__ import annotations

import math

import gradio as gr

from app import costs, share, widgets
from lessons import LessonInfo, cost
from lessons.attention import compute as C
from lessons.course import CourseModel


from app.pages.efficient_attention import MOVED

N_SECTIONS = 10  # lesson.md is cut at 9 '<!-- figure -->' markers; see the layout below
# An old link to /attention that carries a parameter of the part that moved to /efficient_attention goes there,
# with its whole query (text, layer, head, query are read there too) and hash.
FORWARD = """() => {
  const p = new URLSearchParams(location.search);
  if (%s.some((n) => p.has(n))) location.replace('/efficient_attention' + location.search + location.hash);
}""" % list(MOVED)


def _sliders(sl: C.Sliders, n_tokens: int | None = None):
    """Slider updates that show the values the figures were drawn with (clamped, rounded)."""
    query = gr.update(value=sl.query) if n_tokens is None else gr.update(maximum=max(1, n_tokens - 1), value=sl.query)
    return gr.update(value=sl.layer), gr.update(value=sl.head), query, gr.update(value=sl.factor)


def _figures(v: C.View):
    return v.dot, v.dot_md, v.heatmap, v.grid, v.mix, v.steps, v.scale


def default_query(cm: CourseModel) -> int:
    """The query the page opens on: the middle of the default text, so that later keys exist and panel 1's grey
    bars (scores the mask hides) are there to see."""
    return C.trace_text(cm, C.DEFAULT_TEXT).n_tokens // 2


def _toy(rows):
    toy = C.toy_attention(rows)
    return widgets.note(toy.notice), C.toy_table(toy), C.toy_figure(toy), C.toy_steps_markdown(toy)


def _model_values(cm: CourseModel) -> dict:
    """Everything on the page that depends on the model, as component arguments: the page is built from it
    for the course model, and `widgets.on_model` refills the same components from it for a picked model."""
    cfg = cm.config
    init = C.analyze_view(cm, C.DEFAULT_TEXT, 0, 0, default_query(cm), 1.0)  # the first figures, by the model
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
        figures=_figures(v),
        summary=C.summary_view(cm, C.DEFAULT_TEXT),
    )


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): one pass over the default text."""
    return cost.text_pass(cm, C.DEFAULT_TEXT, C.MAX_TOKENS)


def refresh(cm: CourseModel) -> tuple:
    """Another model picked on the course map (widgets.on_model): every model-dependent component, in the order
    `build` wires them, and the analyzed text (State) reset to the default."""
    m = _model_values(cm)
    one = cost.text_pass(cm, C.DEFAULT_TEXT, C.MAX_TOKENS)  # a big model's costs, said before (else nothing)
    slow = (costs.notice(one, "Analyze (one pass over the text)"),
            costs.notice(one * 2, "The scaling reveal (the model and its twin without 1/√d, one pass each)"))
    return ("  \n".join(x for x in (m["msg"]["value"], *slow) if x), C.DEFAULT_TEXT, C.DEFAULT_TEXT,
            gr.update(**m["facts"]),
            *(gr.update(**m[k]) for k in ("layer", "head", "query", "scale")),
            *m["figures"], m["summary"], "")


def build(cm: CourseModel, lesson: LessonInfo) -> None:
    m = _model_values(cm)
    dot0, dot_md0, heat0, grid0, mix0, steps0, scale0 = m["figures"]
    secs = widgets.sections(lesson, N_SECTIONS - 1)
    toy_msg0, toy_rows0, toy_fig0, toy_md0 = _toy(C.TOY_DEFAULT)

    key = widgets.model_key()
    analyzed = gr.State(C.DEFAULT_TEXT)  # the text every figure shows: set by Analyze only
    widgets.lesson_header(lesson)
    widgets.prose(secs[0])
    # --- the toy example: three tokens, 2-D q, k, v, editable; the same functions as the real head
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            toy_in = gr.Dataframe(toy_rows0, headers=C.TOY_COLUMNS, datatype=["str"] + ["number"] * 6,
                                  row_count=(3, "fixed"), column_count=(7, "fixed"), interactive=True,
                                  label="Toy tokens: q, k and v (edit any number; it recomputes)",
                                  elem_id="attention-toy-table")
            toy_msg = widgets.message(toy_msg0, elem_id="attention-toy-msg")
        toy_fig = widgets.Plot(toy_fig0, label="Toy attention: values and outputs", elem_id="attention-toy",
                               code=C.toy_figure)
    with gr.Accordion("The four steps as tables (Q Kᵀ, scale and mask, softmax, weighted sum)", open=True,
                      elem_id="attention-toy-steps-box"):
        toy_md = gr.Markdown(toy_md0, elem_id="attention-toy-steps")
    widgets.prose(secs[1])
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
    heatmap = widgets.Plot(heat0, label="Attention map of one head", elem_id="attention-heatmap", code=C.heatmap_figure)
    widgets.prose(secs[2])
    steps = widgets.Plot(steps0, label="One query, step by step", elem_id="attention-steps", code=C.query_figure)
    widgets.prose(secs[3])
    grid = widgets.Plot(grid0, label="Every head of the layer", elem_id="attention-grid", code=C.heads_grid_figure)
    widgets.prose(secs[4])
    # --- the scaling, asked before it is shown
    guess_dot, reveal_dot, answer_dot = widgets.predict_reveal(C.Q_DOT, elem_id="attention-answer-dot")
    with widgets.until_reveal(C.Q_DOT.qid):
        widgets.Plot(C.random_dot_figure(), label="q·k of random vectors", elem_id="attention-random-dot",
                     code=C.random_dot_figure)
    guess_scale, reveal_scale, answer_scale = widgets.predict_reveal(C.Q_SCALE, elem_id="attention-answer-scaling")
    with widgets.until_reveal(C.Q_SCALE.qid):
        widgets.prose(secs[5])
        with gr.Row():
            scale = widgets.Slider(step=0.1, scale=2, **m["scale"])
            scale_msg = widgets.message()
        scale_plot = widgets.Plot(scale0, label="Softmax at another scale (one row)", elem_id="attention-scale",
                                  code=C.scale_figure)
    # --- depth
    with widgets.go_deeper("lengths and angles, and footnote 4 checked on a real head", "dot"):
        widgets.prose(secs[6])
        dot = widgets.Plot(dot0, label="One query and its keys: length and direction", elem_id="attention-dot",
                           code=C.dot_figure)
        dot_md = gr.Markdown(dot_md0, elem_id="attention-dot-readout")
    with widgets.go_deeper("what o_proj adds, head by head", "o-proj"):
        widgets.prose(secs[7])
        mix = widgets.Plot(mix0, label="What o_proj adds, head by head", elem_id="attention-mix",
                           code=C.heads_mix_figure)
    with widgets.go_deeper("every head of every layer, summarised", "summary"):
        widgets.prose(secs[8])
        summary = widgets.Plot(m["summary"], label="Every head, summarised", elem_id="attention-summary",
                               code=C.summary_figure)
    widgets.prose(secs[9])
    widgets.lesson_footer(lesson)

    # ------------------------------------------------------------------ listeners
    def attention_toy(rows):
        """The toy table edited: its numbers checked, the four steps and the figure again."""
        return _toy(rows)

    def attention_analyze(cm, text, layer, head, query, scale, progress=gr.Progress()):
        """A new text: one traced forward pass (cached), every figure, the sliders set to what is drawn."""
        progress(0, desc="running the model" + costs.while_running(cost.text_pass(cm, text, C.MAX_TOKENS)))
        a = C.analyze_view(cm, text, layer, head, query, scale)
        v = a.view
        # The answers were measured on the previous text: cleared until asked again.
        return (widgets.note(v.notice), text, *_sliders(v.sliders, a.n_tokens), *_figures(v),
                C.summary_view(cm, text), "")

    def attention_view(cm, text, layer, head, query, scale):
        """Any of the layer, head or query sliders released: every slider figure, from the analyzed text."""
        v = C.view(cm, text, layer, head, query, scale)
        return (widgets.note(v.notice), *_sliders(v.sliders), *_figures(v))

    def attention_scale(cm, text, layer, head, query, scale):
        """The scale slider released: the same query's softmax with the scaled scores multiplied by `scale`."""
        notice, fig, factor = C.scale_view(cm, text, layer, head, query, scale)
        return widgets.note(notice), gr.update(value=factor), fig

    def attention_reveal_dot(cm, guess):
        """How large q·k is for random unit-variance vectors at d = 32, measured."""
        return C.reveal_random_dot(guess)

    def attention_reveal_scaling(cm, text, guess, progress=gr.Progress()):
        """Re-run the model without 1/sqrt(d) in every layer on the analyzed text."""
        progress(0, desc="running the model with and without 1/√d" + costs.while_running(
            cost.text_pass(cm, text, C.MAX_TOKENS) * 2))
        return C.reveal_scaling(cm, text, guess)

    figures = [dot, dot_md, heatmap, grid, mix, steps, scale_plot]
    sliders = [layer, head, query, scale]
    quiet = dict(show_progress="minimal")
    gr.on([toy_in.input], attention_toy, toy_in, [toy_msg, toy_in, toy_fig, toy_md], api_name="attention_toy",
          trigger_mode="always_last", **quiet)
    widgets.on_model(key, refresh, [msg, analyzed, text, facts, *sliders, *figures, summary, answer_scale],
                     opening=opening_cost)
    analyze_ev = gr.on([text.submit, analyze.click], widgets.handler(attention_analyze, 15, 0),
                       [key, text, *sliders], [msg, analyzed, *sliders, *figures, summary, answer_scale],
                       api_name="attention_analyze")
    gr.on([layer.release, head.release, query.release], widgets.handler(attention_view, 12, 0),
          [key, analyzed, *sliders], [view_msg, *sliders, *figures], api_name="attention_view",
          trigger_mode="always_last", **quiet)
    scale_ev = scale.release(widgets.handler(attention_scale, 3, 0), [key, analyzed, *sliders],
                             [scale_msg, scale, scale_plot], api_name="attention_scale",
                             trigger_mode="always_last", **quiet)
    reveal_dot.click(widgets.handler(attention_reveal_dot), [key, guess_dot], answer_dot,
                     api_name="attention_reveal_dot")
    reveal_scale.click(widgets.handler(attention_reveal_scaling), [key, analyzed, guess_scale], answer_scale,
                       api_name="attention_reveal_scaling")
    share.link(key, dict(text=text, layer=layer, head=head, query=query, scale=scale),
               runs=[analyze_ev, scale_ev], ranges=dict(query=(0, C.MAX_TOKENS)))
    gr.context.Context.root_block.load(None, js=FORWARD)
