"""Lesson 6 page: MQA and GQA.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Handlers only call `lessons.gqa.compute` and place what it returns; bad input becomes a message.
"""

from __future__ import annotations

import gradio as gr

from app import widgets
from lessons.course import CourseModel
from lessons.gqa import compute as C
from lessons.kv_cache.compute import DTYPE_BYTES, configs_markdown, reference_configs
from lessons.plots import message_figure

DEFAULT_TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?"
DEFAULTS = dict(positions=4096, batch=1, dtype="fp16 / bf16", layer=0)
MAX_CONTEXT = 131_072


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson)
    parts += [""] * (6 - len(parts))  # five figures
    c = cm.config
    first_diagram = C.sharing_figure(c.n_heads, c.n_kv_heads)
    first_memory, first_table, _ = C.memory_comparison(cm, c.n_kv_heads, DEFAULTS["positions"], DEFAULTS["batch"],
                                                       DEFAULTS["dtype"])
    first_maps, first_maps_md = C.grouped_attention_figure(cm, DEFAULT_TEXT, DEFAULTS["layer"])
    base = C.converted_loss(cm, c.n_kv_heads)
    first_results = {c.n_kv_heads: base["loss"]}
    options = C.conversion_options(cm)

    widgets.lesson_header(lesson)
    widgets.prose(parts[0])

    # --- figure 1: which query heads share which K/V head
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            kv = gr.Slider(1, c.n_heads, c.n_kv_heads, step=1, label="K/V heads",
                           info=f"the course model has {c.n_heads} query heads; possible: "
                                f"{', '.join(map(str, C.divisors(c.n_heads)))} (others snap to the nearest)")
            kv_msg = widgets.message()
        with gr.Column(scale=3):
            diagram = gr.Plot(first_diagram, label="Which query heads share which K/V head", elem_id="gqa-diagram")

    widgets.prose(parts[1])

    # --- figure 2: cache memory and attention weights, course model and real Llamas
    with gr.Row():
        positions = gr.Slider(256, MAX_CONTEXT, DEFAULTS["positions"], step=256, label="context length (tokens)")
        batch = gr.Slider(1, 128, DEFAULTS["batch"], step=1, label="batch (sequences at once)")
        dtype = gr.Radio(list(DTYPE_BYTES), value=DEFAULTS["dtype"], label="number format of the cache")
    memory_plot = gr.Plot(first_memory, label="KV cache memory", elem_id="gqa-memory")
    memory_table = gr.Markdown(first_table)
    with gr.Accordion("The configurations used (llama/config.py PRESETS)", open=False):
        gr.Markdown(configs_markdown(reference_configs(cm)))

    widgets.prose(parts[2])

    # --- figure 3: the course model's attention maps grouped by K/V head
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            text = gr.Textbox(DEFAULT_TEXT, lines=3, max_lines=6,
                              label=f"Text ({widgets.RUN_HINT})",
                              info=f"BOS is added in front; the maps show the first {C.MAX_MAP_TOKENS} tokens")
            show = gr.Button("Show attention maps", variant="primary")
            layer = gr.Slider(0, c.n_layers - 1, DEFAULTS["layer"], step=1, label="layer (model.layers[i])")
            maps_msg = widgets.message()
        with gr.Column(scale=3):
            maps_plot = gr.Plot(first_maps, label="Attention maps by K/V head", elem_id="gqa-maps")
            maps_md = gr.Markdown(first_maps_md)

    widgets.prose(parts[3])

    # --- figure 4: converting the checkpoint: mean-pool (GQA paper) and repeat (exact)
    results = gr.State(first_results)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            target = gr.Slider(1, c.n_heads, min(options), step=1, label="K/V heads after conversion",
                               info=f"now {c.n_kv_heads}; fewer = mean-pool, more = repeat; possible: "
                                    f"{', '.join(map(str, options))}")
            convert = gr.Button("Convert and measure the loss", variant="primary")
            convert_md = gr.Markdown(C.conversion_markdown(cm, base))
            repeat = gr.Button("Repeat K/V heads: GQA → MHA, compare logits")
            repeat_md = gr.Markdown()
        with gr.Column(scale=2):
            convert_plot = gr.Plot(C.conversion_figure(cm, first_results), label="Loss after conversion",
                                   elem_id="gqa-convert")

    widgets.prose(parts[4])

    # --- figure 5: predict, then reveal
    pool_choice, pool_btn, pool_out = widgets.predict_reveal(
        C.POOL_QUESTION, C.POOL_CHOICES,
        "Reveal (pools and measures the course model)")
    repeat_choice, repeat_btn, repeat_out = widgets.predict_reveal(
        C.REPEAT_QUESTION, C.REPEAT_CHOICES,
        "Reveal (converts and compares on the text above)")

    widgets.prose(parts[5])
    widgets.lesson_footer(lesson)

    # --- listeners
    def on_sharing(kv_heads):
        return sharing(cm, kv_heads)

    def on_memory(kv_heads, context_tokens, batch_size, number_format):
        return memory(cm, kv_heads, context_tokens, batch_size, number_format)

    def on_maps(text, layer):
        return attention(cm, text, layer)

    def on_convert(kv_heads_after, res, progress=gr.Progress()):
        return conversion(cm, kv_heads_after, res, progress)

    def on_repeat(text):
        return repeated(cm, text)

    def on_reveal_pool(choice, progress=gr.Progress()):
        return C.reveal_pooling(cm, choice, lambda f, d: progress(f, desc=d))

    def on_reveal_repeat(text, choice):
        try:
            return C.reveal_repeat(cm, text, choice)
        except ValueError as e:
            return widgets.note(str(e))

    kv.release(on_sharing, kv, [diagram, kv_msg], api_name="gqa_sharing", trigger_mode="always_last")
    gr.on([kv.release, positions.release, batch.release, dtype.change], on_memory, [kv, positions, batch, dtype],
          [memory_plot, memory_table, kv_msg], api_name="gqa_memory", trigger_mode="always_last",
          show_progress="minimal")
    gr.on([show.click, text.submit, layer.release], on_maps, [text, layer], [maps_plot, maps_md, maps_msg],
          api_name="gqa_attention", trigger_mode="always_last", show_progress="minimal")
    gr.on([convert.click, target.release], on_convert, [target, results], [convert_plot, convert_md, results],
          api_name="gqa_convert", trigger_mode="always_last")
    repeat.click(on_repeat, text, repeat_md, api_name="gqa_repeat")
    pool_btn.click(on_reveal_pool, pool_choice, pool_out, api_name="gqa_reveal_pooling")
    repeat_btn.click(on_reveal_repeat, [text, repeat_choice], repeat_out, api_name="gqa_reveal_repeat")


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def sharing(cm: CourseModel, n):
    """(diagram, notice) for n K/V heads, snapped to a divisor of the query heads."""
    n, notice = C.clamp_kv_heads(cm.config.n_heads, n)
    return C.sharing_figure(cm.config.n_heads, n), widgets.note(notice)


def memory(cm: CourseModel, n, positions, batch, dtype):
    """(figure, table, notice)."""
    try:
        fig, table, notice = C.memory_comparison(cm, n, positions, batch, dtype)
    except ValueError as e:
        return message_figure(str(e)), "", widgets.note(str(e))
    return fig, table, widgets.note(notice)


def attention(cm: CourseModel, text, layer):
    """(figure, readout, message)."""
    try:
        fig, md = C.grouped_attention_figure(cm, text, int(layer))
    except ValueError as e:
        return message_figure(str(e)), "", widgets.note(str(e))
    return fig, md, ""


def conversion(cm: CourseModel, n, results, progress):
    """(figure, readout, results): n snaps to a possible count; results gathers this learner's measurements."""
    n, notice = C.clamp_conversion(cm, n)
    r = C.converted_loss(cm, n, lambda f, d: progress(f, desc=d))
    results = {**(results or {}), n: r["loss"]}
    md = C.conversion_markdown(cm, r) + (f"\n\n{widgets.note(notice)}" if notice else "")
    return C.conversion_figure(cm, results), md, results


def repeated(cm: CourseModel, text):
    try:
        return C.repeat_markdown(cm, C.repeat_check(cm, text))
    except ValueError as e:
        return widgets.note(str(e))
