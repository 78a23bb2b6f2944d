"""Lesson 7 page: the KV cache.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md; each question comes
before the figure that could answer it), listeners last. Handlers only call `lessons.kv_cache.compute` and place
what it returns; every input is repaired there (lessons.inputs), and a LessonError becomes a notice
(widgets.handler).

The two timing events measure time on purpose, so they run one at a time (concurrency_limit=1): two at once on a
2-vCPU Space would time each other.
"""

from __future__ import annotations

import gradio as gr

from app import widgets
from lessons.course import CourseModel
from lessons.plots import message_figure
from lessons.kv_cache import compute as C

DEFAULT_PROMPT = "JULIET:\nO Romeo, Romeo!"
DEFAULTS = dict(new_tokens=12, step=0, timed=128, positions=4096, batch=1, dtype=C.DEFAULT_DTYPE)


def first_view(cm: CourseModel):
    """The page's opening figures for this model: the step grid (and its step count), the memory chart."""
    grid, readout, n_steps, _, _ = C.step_view(cm, DEFAULT_PROMPT, DEFAULTS["new_tokens"], DEFAULTS["step"])
    table, memory_fig, _ = C.cache_memory(cm, DEFAULTS["positions"], DEFAULTS["batch"], DEFAULTS["dtype"])
    return grid, readout, n_steps, table, memory_fig


def build(cm: CourseModel, lesson) -> None:
    key = widgets.model_key()
    parts = widgets.sections(lesson)
    parts += [""] * (4 - len(parts))  # three figures
    c, ctx = cm.config, cm.config.max_seq_len
    first_grid, first_readout, n_steps, first_memory_table, first_memory = first_view(cm)
    real, formula = C.allocated_cache_bytes(cm)

    widgets.lesson_header(lesson)
    widgets.prose(parts[0])

    # --- predict first, then figure 1: generation step by step, the cache filling up
    same_choice, same_btn, same_out = widgets.predict_reveal(
        C.SAME_QUESTION, C.SAME_CHOICES, "Reveal (generates from the prompt below both ways)")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            prompt = gr.Textbox(DEFAULT_PROMPT, lines=3, max_lines=6, label=f"Prompt ({widgets.RUN_HINT})",
                                info=f"BOS is added in front; at most {C.MAX_PROMPT_TOKENS} tokens")
            new_tokens = widgets.Slider(1, C.MAX_NEW_TOKENS, DEFAULTS["new_tokens"], step=1,
                                        label="new tokens (greedy)")
            run = gr.Button("Generate step by step", variant="primary")
            step = widgets.Slider(0, max(n_steps - 1, 1), DEFAULTS["step"], step=1, label="step",
                                  info="step 0 is the prefill (the whole prompt at once)")
            step_msg = widgets.message()
        with gr.Column(scale=3):
            grid = widgets.Plot(first_grid, label="Keys and values per layer and position", elem_id="kv-grid")
            readout = gr.Markdown(first_readout)

    widgets.prose(parts[1])

    # --- predict first, then figure 2: time per token, measured live
    speed_choice, speed_btn, speed_out = widgets.predict_reveal(
        C.speed_question(cm), C.SPEED_CHOICES, "Reveal (times both on this machine)")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            with gr.Group():  # the slider belongs to the button: nothing runs until it is pressed
                timed = widgets.Slider(2, ctx - 2, min(DEFAULTS["timed"], ctx - 2), step=1,
                                       label="steps to time (used when you press Measure)",
                                       info=f"from the prompt above, up to the {ctx}-token context")
                measure = gr.Button("Measure on this machine", variant="primary")
            timing_msg = widgets.message()
            timing_md = gr.Markdown()
        with gr.Column(scale=3):
            timing_plot = widgets.Plot(message_figure("Press “Measure on this machine”: it generates the tokens\n"
                                                 "with and without the cache and times every step."),
                                  label="Time per new token", elem_id="kv-timing")

    widgets.prose(parts[2])

    # --- figure 3: cache memory, this model and real Llamas, with and without GQA
    with gr.Row():
        positions = widgets.Slider(256, C.MAX_CONTEXT, DEFAULTS["positions"], step=256,
                                   label="context length (tokens)")
        batch = widgets.Slider(1, C.MAX_BATCH, DEFAULTS["batch"], step=1, label="batch (sequences at once)")
        dtype = widgets.Radio(list(C.DTYPE_BYTES), value=DEFAULTS["dtype"], label="number format of the cache")
    memory_msg = widgets.message()
    memory_plot = widgets.Plot(first_memory, label="KV cache memory", elem_id="kv-memory")
    memory_table = gr.Markdown(first_memory_table)
    gr.Markdown(f"Checked on the real thing: `model.new_cache(1)` for this model allocates **{real:,} bytes**; "
                f"the formula with $L={c.n_layers}$, $n_{{kv}}={c.n_kv_heads}$, $d_h={c.head_dim}$, "
                f"$T={c.max_seq_len}$, $B=1$ and {cm.model.embed_tokens.weight.element_size()} bytes per number "
                f"gives **{formula:,}**.", latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    with gr.Accordion("The configurations used (llama/config.py PRESETS)", open=False):
        gr.Markdown(C.configs_markdown(C.reference_configs(cm)))

    widgets.prose(parts[3])
    widgets.lesson_footer(lesson)

    # --- listeners
    gr.on([run.click, prompt.submit, new_tokens.release], widgets.handler(generation, 4, msg_at=3),
          [key, prompt, new_tokens, step], [grid, readout, step, step_msg], api_name="kv_generate",
          trigger_mode="always_last", show_progress="minimal")
    step.release(widgets.handler(step_only, 3, msg_at=2), [key, prompt, new_tokens, step], [grid, readout, step_msg],
                 api_name="kv_step", trigger_mode="always_last", show_progress="minimal")
    measure.click(widgets.handler(timing, 3, msg_at=2), [key, prompt, timed], [timing_plot, timing_md, timing_msg],
                  api_name="kv_timing", concurrency_limit=1, concurrency_id="kv_timing")
    gr.on([positions.release, batch.release, dtype.change], widgets.handler(memory, 3, msg_at=2),
          [key, positions, batch, dtype], [memory_plot, memory_table, memory_msg], api_name="kv_memory",
          trigger_mode="always_last", show_progress="minimal")
    same_btn.click(widgets.handler(reveal_same), [key, prompt, same_choice], same_out, api_name="kv_reveal_same")
    speed_btn.click(widgets.handler(reveal_speed), [key, speed_choice], speed_out, api_name="kv_reveal_speed",
                    concurrency_limit=1, concurrency_id="kv_timing")


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def generation(cm: CourseModel, prompt, n, step):
    """(grid, readout, step slider, message): a new run; the step slider gets the run's range."""
    fig, readout, n_steps, shown, notice = C.step_view(cm, prompt, n, step)
    return fig, readout, gr.update(maximum=max(n_steps - 1, 1), value=shown), widgets.note(notice)


def step_only(cm: CourseModel, prompt, n, step):
    """(grid, readout, message) for another step of the same run (cached, so this is fast)."""
    fig, readout, _, _, notice = C.step_view(cm, prompt, n, step)
    return fig, readout, widgets.note(notice)


def timing(cm: CourseModel, prompt, n, progress=gr.Progress()):
    fig, md, notice = C.timing_view(cm, prompt, n, lambda f, d: progress(f, desc=d))
    return fig, md, widgets.note(notice)


def memory(cm: CourseModel, positions, batch, dtype):
    table, fig, notice = C.cache_memory(cm, positions, batch, dtype)
    return fig, table, widgets.note(notice)


def reveal_same(cm: CourseModel, prompt, choice):
    return C.reveal_same(cm, prompt, choice)


def reveal_speed(cm: CourseModel, choice):
    return C.reveal_speed(cm, choice)
