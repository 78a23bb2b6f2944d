"""Lesson 6 page: MQA and GQA.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Handlers take the learner's model first (`widgets.handler`) and only call `lessons.gqa.compute`, which clamps
every input with a notice; each slider is set back to the value its figure shows, so the two never disagree.
"""

from __future__ import annotations

import gradio as gr

from app import costs, share, widgets
from lessons import cost
from lessons.course import CourseModel
from lessons.gqa import compute as C
from lessons.kv_cache.compute import DTYPE_BYTES, configs_markdown, reference_configs

DEFAULT_TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?"
DEFAULTS = dict(positions=4096, batch=1, dtype=C.DEFAULT_DTYPE, layer=0)


def initial(cm: CourseModel) -> dict:
    """Every figure, readout, question, slider setting and per-learner value the page opens with, for one model
    (the page is built with it, and `refresh` reuses it when a learner opens the page with another model)."""
    c = cm.config
    memory, table, _ = C.memory_comparison(cm, c.n_kv_heads, DEFAULTS["positions"], DEFAULTS["batch"],
                                           DEFAULTS["dtype"])
    maps, maps_md = C.grouped_attention_figure(cm, DEFAULT_TEXT, DEFAULTS["layer"])
    base = C.converted_loss(cm, c.n_kv_heads)
    results = {c.n_kv_heads: base["loss"]}
    return dict(diagram=C.sharing_figure(c.n_heads, c.n_kv_heads), heads=C.heads_readout(cm), memory=memory,
                table=table, configs=configs_markdown(reference_configs(cm)), maps=maps, maps_md=maps_md,
                results=results, convert_md=C.conversion_markdown(cm, base), convert=C.conversion_figure(cm, results),
                pool_question=C.pool_question(cm), repeat_question=C.repeat_question(cm),
                options=C.conversion_options(cm), kv_info=C.kv_info(cm), convert_info=C.conversion_info(cm),
                **costs_view(cm))


LABELS = dict(convert="Convert and measure the loss", repeat="Repeat K/V heads: GQA → MHA, compare logits",
              pool_btn="Reveal (pools and measures the model)",
              repeat_btn="Reveal (converts and compares on the text above)")


def costs_view(cm: CourseModel) -> dict:
    """What the page says about its slow actions before they run (lessons.cost; nothing for the course model): the
    page's message and each button's label."""
    measure, pool, repeat = C.measure_cost(cm), C.pooling_cost(cm), C.repeat_cost(cm, DEFAULT_TEXT)
    tokens = len(cm.tokenizer.encode(C.eval_text(cm)))
    notices = [costs.notice(measure, f"Convert and measure ({tokens:,} held-out tokens per conversion)"),
               costs.notice(pool, "The pooling reveal (every pooled count measured)"),
               costs.notice(repeat, "The repeat check (two passes over the text)")]
    return dict(message="  \n".join(n for n in notices if n),
                labels=dict(convert=costs.label(LABELS["convert"], measure), repeat=costs.label(LABELS["repeat"], repeat),
                            pool_btn=costs.label(LABELS["pool_btn"], pool),
                            repeat_btn=costs.label(LABELS["repeat_btn"], measure)))


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): one pass over the text for the attention maps and the loss of the model as trained."""
    return cost.text_pass(cm, DEFAULT_TEXT) + C.measure_cost(cm)


def refresh(cm: CourseModel) -> tuple:
    """The page's model-dependent outputs for another model, in the order `build` wires them to on_model."""
    c, first = cm.config, initial(cm)
    return (first["message"],  # the page's message slot: the cost of its slow actions with this model, if any
            gr.update(maximum=c.n_heads, value=c.n_kv_heads, info=first["kv_info"]), c.n_kv_heads, first["heads"],
            first["diagram"], first["memory"], first["table"], first["configs"],
            gr.update(maximum=c.n_layers - 1, value=DEFAULTS["layer"]), first["maps"], first["maps_md"],
            first["pool_question"], first["repeat_question"], first["results"], c.n_kv_heads,
            gr.update(maximum=c.n_heads, value=c.n_kv_heads, info=first["convert_info"]), first["convert_md"],
            first["convert"], *(gr.update(value=first["labels"][k]) for k in LABELS))


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson, 8)
    c = cm.config
    first = initial(cm)
    key = widgets.model_key()

    widgets.lesson_header(lesson)
    model_msg = widgets.message(elem_id="gqa-model-msg")  # a model that cannot be loaded says so here
    widgets.prose(parts[0])

    # --- figure 1: which query heads share which K/V head
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            kv = widgets.Slider(1, c.n_heads, c.n_kv_heads, step=1, label="K/V heads", info=first["kv_info"],
                                elem_id="gqa-kv")
            kv_msg = widgets.message()
            kv_shown = gr.State(c.n_kv_heads)  # the count the diagram shows: a slider step goes on from it
            heads_md = gr.Markdown(first["heads"], elem_id="gqa-heads")
        with gr.Column(scale=3):
            diagram = widgets.Plot(first["diagram"], label="Which query heads share which K/V head", elem_id="gqa-diagram", code=C.sharing_figure)

    widgets.prose(parts[1])
    with widgets.go_deeper("why the cache matters, MQA and GQA in the papers, and repeat_kv", "sharing"):
        widgets.prose(parts[2])

    widgets.prose(parts[3])

    # --- figure 2: cache memory, the model and real Llamas (as shipped, or at the learner's ratio)
    with gr.Row():
        positions = widgets.Slider(C.MIN_CONTEXT, C.MAX_CONTEXT, DEFAULTS["positions"], step=256,
                                   label="context length (tokens)")
        batch = widgets.Slider(1, C.MAX_BATCH, DEFAULTS["batch"], step=1, label="batch (sequences at once)")
        dtype = widgets.Radio(list(DTYPE_BYTES), value=DEFAULTS["dtype"], label="number format of the cache")
    mine = gr.Checkbox(False, label="apply my K/V-head ratio (the slider above) to every model",
                       elem_id="gqa-mine")
    memory_msg = widgets.message()
    memory_plot = widgets.Plot(first["memory"], label="KV cache memory", elem_id="gqa-memory", code=C.memory_comparison)
    widgets.prose(parts[4])
    with widgets.go_deeper("the numbers: cache against weights for each model, and the configurations", "memory"):
        memory_table = gr.Markdown(first["table"], elem_id="gqa-memory-table")
        configs_md = gr.Markdown(first["configs"])

    widgets.prose(parts[5])

    # --- figure 3: the model's attention maps grouped by K/V head
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            text = gr.Textbox(DEFAULT_TEXT, lines=3, max_lines=6,
                              label=f"Text ({widgets.RUN_HINT})",
                              info=f"BOS is added in front; the maps show the first {C.MAX_MAP_TOKENS} tokens")
            show = gr.Button("Show attention maps", variant="primary")
            layer = widgets.Slider(0, c.n_layers - 1, DEFAULTS["layer"], step=1, label="layer (model.layers[i])",
                                   elem_id="gqa-layer")
            maps_msg = widgets.message()
        with gr.Column(scale=3):
            maps_plot = widgets.Plot(first["maps"], label="Attention maps by K/V head", elem_id="gqa-maps", code=C.grouped_attention_figure)
            maps_md = gr.Markdown(first["maps_md"], elem_id="gqa-maps-readout")

    widgets.prose(parts[6])
    widgets.prose(parts[7])
    with widgets.go_deeper("how the GQA paper converts a checkpoint, and how the Llamas were trained", "uptraining"):
        widgets.prose(parts[8])

    # --- predict, then reveal; the conversion that measures the same things stays hidden until both are answered
    # each question's model-dependent setup stands above it (the page refills it for another model)
    pool_q = gr.Markdown(first["pool_question"], elem_id="gqa-pool-question")
    pool_choice, pool_btn, pool_out = widgets.predict_reveal(
        C.Q_POOL, button=LABELS["pool_btn"], elem_id="gqa-reveal-pool")
    repeat_q = gr.Markdown(first["repeat_question"], elem_id="gqa-repeat-question")
    repeat_choice, repeat_btn, repeat_out = widgets.predict_reveal(
        C.Q_REPEAT, button=LABELS["repeat_btn"], elem_id="gqa-reveal-repeat")

    results = gr.State(first["results"])
    target_shown = gr.State(c.n_kv_heads)  # the count last measured: a slider step goes on from it
    with widgets.until_reveal(C.Q_POOL.qid), widgets.until_reveal(C.Q_REPEAT.qid):
        gr.Markdown("### Measure it yourself")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                target = widgets.Slider(1, c.n_heads, c.n_kv_heads, step=1, label="K/V heads after conversion",
                                        info=first["convert_info"], elem_id="gqa-target")
                convert = gr.Button(LABELS["convert"], variant="primary")
                convert_md = gr.Markdown(first["convert_md"], elem_id="gqa-convert-readout")
                repeat = gr.Button(LABELS["repeat"])
                repeat_md = gr.Markdown(elem_id="gqa-repeat-readout")
            with gr.Column(scale=2):
                convert_plot = widgets.Plot(first["convert"], label="Loss after conversion", elem_id="gqa-convert", code=C.conversion_figure)
        widgets.prose(parts[9])
    widgets.lesson_footer(lesson)

    # --- listeners: every handler gets the learner's model first; compute clamps the inputs
    widgets.on_model(key, refresh, [model_msg, kv, kv_shown, heads_md, diagram, memory_plot, memory_table, configs_md,
                                    layer, maps_plot, maps_md, pool_q, repeat_q, results, target_shown, target,
                                    convert_md, convert_plot, convert, repeat, pool_btn, repeat_btn],
                     opening=opening_cost)

    def on_sharing(cm, kv_heads, shown):
        fig, notice, n = C.sharing_view(cm, kv_heads, shown)
        return fig, widgets.note(notice), n, n

    def on_memory(cm, kv_heads, context_tokens, batch_size, number_format, my_ratio):
        fig, table, notice, t, b, _ = C.memory_view(cm, kv_heads, context_tokens, batch_size, number_format, my_ratio)
        return fig, table, widgets.note(notice), t, b  # (the radio is not written back: that would fire .change)

    def on_maps(cm, text, layer_index):
        fig, md, notice, l = C.maps_view(cm, text, layer_index)
        return fig, md, widgets.note(notice), l

    def on_convert(cm, kv_heads_after, res, shown, progress=gr.Progress()):
        total = costs.while_running(C.measure_cost(cm))  # ' (about 40 s)' for a big model: said while it runs
        fig, md, res, n = C.conversion_view(cm, kv_heads_after, res, lambda f, d: progress(f, desc=d + total), shown)
        return fig, md, res, n, n

    def on_repeat(cm, text, progress=gr.Progress()):
        progress(0, desc="repeating K/V heads and comparing" + costs.while_running(C.repeat_cost(cm, text)))
        return C.repeat_markdown(cm, C.repeat_check(cm, text))

    def on_reveal_pool(cm, choice, progress=gr.Progress()):
        total = costs.while_running(C.pooling_cost(cm))
        return C.reveal_pooling(cm, choice, lambda f, d: progress(f, desc=d + total))

    def on_reveal_repeat(cm, text, choice, progress=gr.Progress()):
        progress(0, desc="converting and measuring" + costs.while_running(C.measure_cost(cm) + C.repeat_cost(cm, text)))
        return C.reveal_repeat(cm, text, choice)

    memory_inputs = [key, kv, positions, batch, dtype, mine]
    memory_outputs = [memory_plot, memory_table, memory_msg, positions, batch]
    sharing_ev = kv.release(widgets.handler(on_sharing, 4, msg_at=1), [key, kv, kv_shown],
                            [diagram, kv_msg, kv, kv_shown], api_name="gqa_sharing", trigger_mode="always_last")
    sharing_ev.then(  # the memory figure, at the snapped count
        widgets.handler(on_memory, 5, msg_at=2), memory_inputs, memory_outputs, api_visibility="private",
        show_progress="minimal")
    memory_ev = gr.on([positions.release, batch.release, dtype.change, mine.change], widgets.handler(on_memory, 5, msg_at=2),
                      memory_inputs, memory_outputs, api_name="gqa_memory", trigger_mode="always_last",
                      show_progress="minimal")
    maps_ev = gr.on([show.click, text.submit, layer.release], widgets.handler(on_maps, 4, msg_at=2),
                    [key, text, layer], [maps_plot, maps_md, maps_msg, layer], api_name="gqa_attention",
                    trigger_mode="always_last", show_progress="minimal")
    gr.on([convert.click, target.release], widgets.handler(on_convert, 5, msg_at=1), [key, target, results, target_shown],
          [convert_plot, convert_md, results, target, target_shown], api_name="gqa_convert", trigger_mode="always_last")
    repeat.click(widgets.handler(on_repeat), [key, text], repeat_md, api_name="gqa_repeat")
    pool_btn.click(widgets.handler(on_reveal_pool), [key, pool_choice], pool_out, api_name="gqa_reveal_pooling")
    repeat_btn.click(widgets.handler(on_reveal_repeat), [key, text, repeat_choice], repeat_out,
                     api_name="gqa_reveal_repeat")
    share.link(key, dict(text=text, layer=layer, kv_heads=kv, positions=positions, batch=batch, format=dtype,
                         my_ratio=mine),
               runs=[maps_ev, sharing_ev, memory_ev])
