"""Lesson 13 page: efficient attention (split out of the attention page, issue 21). Layout first, listeners last;
every number comes from lessons.efficient_attention.compute, which reads the attention lesson's traced pass.

Events (api_name: inputs -> outputs); the model key is a hidden State:
    efficient_attention_memory  lengths -> message, peak-memory figure, readout (measured when pressed, cached)
    efficient_attention_online  text, layer, head, query, keys per block -> message, keys per block, the
                                online-softmax table of that query row
    efficient_attention_reveal  text, layer, head, query, keys per block, guess -> Markdown answer (the table
                                that answers it is hidden until this Reveal)

Old links to /attention that carried this page's inputs (`block`) are forwarded here by the attention page.
"""

from __future__ import annotations

import functools

import gradio as gr

from app import share, widgets
from lessons import LessonInfo
from lessons.course import CourseModel
from lessons.efficient_attention import compute as C
from lessons.plots import message_figure

MOVED = ("block",)  # link parameters that /attention used to carry for this page's part: it forwards them here


@functools.cache
def _memory_waiting():
    """The memory figure's place before Measure is pressed (its numbers are measured only when asked)."""
    return message_figure(C.MEMORY_WAITING)


def _model_values(cm: CourseModel) -> dict:
    cfg = cm.config
    notice, b, table = C.online_view(cm, C.DEFAULT_TEXT, 0, 0, None, C.BLOCK_DEFAULT)
    n = len(C.trace_text(cm, C.DEFAULT_TEXT).labels)
    return dict(
        layer=dict(minimum=0, maximum=max(1, cfg.n_layers - 1), value=0, interactive=cfg.n_layers > 1,
                   label=f"Layer (0 to {cfg.n_layers - 1})"),
        head=dict(minimum=0, maximum=max(1, cfg.n_heads - 1), value=0, interactive=cfg.n_heads > 1,
                  label=f"Query head (0 to {cfg.n_heads - 1})"),
        query=dict(minimum=0, maximum=max(1, n - 1), value=n - 1,
                   label="Query position (0 = BOS; the maximum follows the text)"),
        block=dict(minimum=1, maximum=C.MAX_TOKENS, value=C.BLOCK_DEFAULT,
                   label=f"Keys per block (1 to {C.MAX_TOKENS})"),
        online=table,
    )


def refresh(cm: CourseModel) -> tuple:
    """Another model picked on the course map: the sliders, the table and the memory figure for it."""
    m = _model_values(cm)
    return (C.DEFAULT_TEXT, *(gr.update(**m[k]) for k in ("layer", "head", "query", "block")), m["online"],
            _memory_waiting(), "")


def build(cm: CourseModel, lesson: LessonInfo) -> None:
    m = _model_values(cm)
    secs = widgets.sections(lesson, 2)
    core, _, deeper = secs[2].partition("<!-- deeper -->")

    key = widgets.model_key()
    widgets.lesson_header(lesson)
    widgets.prose(secs[0])
    with gr.Row():
        reach = widgets.Radio(C.REACH_CHOICES, value=C.REACH_CHOICES[0], label="Sequence lengths")
        measure = gr.Button("Measure peak memory", variant="primary", scale=0, min_width=200)
    mem_msg = widgets.message(elem_id="efficient-memory-msg")
    mem_plot = widgets.Plot(_memory_waiting(), label="Peak memory against sequence length",
                            elem_id="attention-memory", code=C.memory_figure)
    widgets.prose(secs[1])
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            text = gr.Textbox(C.DEFAULT_TEXT, lines=2, max_lines=8, elem_id="efficient-text",
                              label=f"Text (at most {C.MAX_TOKENS} tokens with BOS; {widgets.RUN_HINT})")
            run = gr.Button("Run the online softmax", variant="primary")
            online_msg = widgets.message(elem_id="efficient-online-msg")
        with gr.Column(scale=1, min_width=300):
            layer = widgets.Slider(step=1, **m["layer"])
            head = widgets.Slider(step=1, **m["head"])
            query = widgets.Slider(step=1, **m["query"])
            block = widgets.Slider(step=1, **m["block"])
    guess, reveal_btn, answer = widgets.predict_reveal(C.Q_RUNNING, "Reveal (runs the row block by block)",
                                                       elem_id="efficient-answer-running")
    with widgets.until_reveal(C.Q_RUNNING.qid):
        online = gr.Markdown(m["online"], elem_id="attention-online")
    widgets.prose(core)
    with widgets.go_deeper("why it is exact, FlashAttention 1 and 2, and how the memory is measured", "flash"):
        widgets.prose(deeper)
        mem_md = gr.Markdown("", elem_id="attention-memory-readout")
    widgets.lesson_footer(lesson)

    # ------------------------------------------------------------------ listeners
    def efficient_attention_memory(cm, reach, progress=gr.Progress()):
        """Peak memory of one attention call per path and length, measured now on this machine (cached)."""
        progress(0, desc="measuring peak memory")
        notice, fig, md = C.memory_view(cm, reach, lambda f, what: progress(f, desc=f"measuring: {what}"))
        return widgets.note(notice), fig, md

    def efficient_attention_online(cm, text, layer, head, query, block):
        """The online softmax of the chosen query row, block by block (the query clamped to the text)."""
        t = C.trace_text(cm, text)
        notice, b, md = C.online_view(cm, text, layer, head, query, block)
        sl = C.read_sliders(t, layer, head, query)
        return (widgets.note(notice), gr.update(maximum=max(1, len(t.labels) - 1), value=sl.query),
                gr.update(value=b), md)

    def efficient_attention_reveal(cm, text, layer, head, query, block, picked):
        """Is o / l after some blocks the exact output over the keys so far? Measured on the chosen row."""
        return C.reveal_running(cm, text, layer, head, query, block, picked)

    quiet = dict(show_progress="minimal")
    reveal_btn.click(widgets.handler(efficient_attention_reveal), [key, text, layer, head, query, block, guess],
                     answer, api_name="efficient_attention_reveal")
    widgets.on_model(key, refresh, [text, layer, head, query, block, online, mem_plot, mem_md])
    online_ev = gr.on([run.click, text.submit, layer.release, head.release, query.release, block.release],
                      widgets.handler(efficient_attention_online, 4, 0),
                      [key, text, layer, head, query, block], [online_msg, query, block, online],
                      api_name="efficient_attention_online", trigger_mode="always_last", **quiet)
    measure.click(widgets.handler(efficient_attention_memory, 3, 0), [key, reach], [mem_msg, mem_plot, mem_md],
                  api_name="efficient_attention_memory")
    share.link(key, dict(text=text, layer=layer, head=head, query=query, block=block), runs=[online_ev],
               ranges=dict(query=(0, C.MAX_TOKENS)))
