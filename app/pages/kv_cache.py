"""Lesson 7 page: the KV cache.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Handlers only call `lessons.kv_cache.compute` and place what it returns; bad input becomes a message.
"""

from __future__ import annotations

import gradio as gr

from app import widgets
from lessons.course import CourseModel
from lessons.plots import message_figure
from lessons.kv_cache import compute as C

DEFAULT_PROMPT = "JULIET:\nO Romeo, Romeo!"
DEFAULTS = dict(new_tokens=12, step=0, timed=128, positions=4096, batch=1, dtype="fp16 / bf16")
MAX_CONTEXT = 131_072


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson)
    parts += [""] * (5 - len(parts))  # four figures
    ctx = cm.config.max_seq_len
    first_grid, first_readout, first_proof, n_steps, _ = C.step_view(cm, DEFAULT_PROMPT, DEFAULTS["new_tokens"],
                                                                     DEFAULTS["step"])
    first_memory_table, first_memory = C.cache_memory(cm, DEFAULTS["positions"], DEFAULTS["batch"], DEFAULTS["dtype"])
    real, formula = C.allocated_cache_bytes(cm)
    c = cm.config

    widgets.lesson_header(lesson)
    widgets.prose(parts[0])

    # --- figure 1: generation step by step, the cache filling up
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            prompt = gr.Textbox(DEFAULT_PROMPT, lines=3, max_lines=6, label=f"Prompt ({widgets.RUN_HINT})",
                                info=f"BOS is added in front; at most {C.MAX_PROMPT_TOKENS} tokens")
            new_tokens = gr.Slider(1, C.MAX_NEW_TOKENS, DEFAULTS["new_tokens"], step=1, label="new tokens (greedy)")
            run = gr.Button("Generate step by step", variant="primary")
            step = gr.Slider(0, n_steps - 1, DEFAULTS["step"], step=1, label="step",
                             info="step 0 is the prefill (the whole prompt at once)")
            step_msg = widgets.message()
        with gr.Column(scale=3):
            grid = gr.Plot(first_grid, label="Keys and values per layer and position", elem_id="kv-grid")
            readout = gr.Markdown(first_readout)
    proof = gr.Markdown(first_proof)

    widgets.prose(parts[1])

    # --- figure 2: time per token, measured live
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            timed = gr.Slider(16, ctx - 2, min(DEFAULTS["timed"], ctx - 2), step=1, label="steps to time",
                              info=f"from the prompt above, up to the {ctx}-token context")
            measure = gr.Button("Measure on this machine", variant="primary")
            timing_msg = widgets.message()
            timing_md = gr.Markdown()
        with gr.Column(scale=3):
            timing_plot = gr.Plot(message_figure("Press “Measure on this machine”: it generates the tokens\n"
                                                   "with and without the cache and times every step."),
                                  label="Time per new token", elem_id="kv-timing")

    widgets.prose(parts[2])

    # --- figure 3: cache memory, course model and real Llamas, with and without GQA
    with gr.Row():
        positions = gr.Slider(256, MAX_CONTEXT, DEFAULTS["positions"], step=256, label="context length (tokens)")
        batch = gr.Slider(1, 128, DEFAULTS["batch"], step=1, label="batch (sequences at once)")
        dtype = gr.Radio(list(C.DTYPE_BYTES), value=DEFAULTS["dtype"], label="number format of the cache")
    memory_msg = widgets.message()
    memory_plot = gr.Plot(first_memory, label="KV cache memory", elem_id="kv-memory")
    memory_table = gr.Markdown(first_memory_table)
    gr.Markdown(f"Checked on the real thing: `model.new_cache(1)` for the course model allocates **{real:,} bytes**; "
                f"the formula with $L={c.n_layers}$, $n_{{kv}}={c.n_kv_heads}$, $d_h={c.head_dim}$, "
                f"$T={c.max_seq_len}$, $B=1$ and {cm.model.embed_tokens.weight.element_size()} bytes per number "
                f"gives **{formula:,}**.", latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    with gr.Accordion("The configurations used (llama/config.py PRESETS)", open=False):
        gr.Markdown(C.configs_markdown(C.reference_configs(cm)))

    widgets.prose(parts[3])

    # --- figure 4: predict, then reveal
    same_choice, same_btn, same_out = widgets.predict_reveal(
        C.SAME_QUESTION, C.SAME_CHOICES,
        "Reveal (generates from your prompt both ways)")
    speed_choice, speed_btn, speed_out = widgets.predict_reveal(
        C.speed_question(cm), C.SPEED_CHOICES,
        "Reveal (times both on this machine)")

    widgets.prose(parts[4])
    widgets.lesson_footer(lesson)

    # --- listeners
    def on_generate(prompt, new_tokens, step):
        return generation(cm, prompt, new_tokens, step)

    def on_step(prompt, new_tokens, step):
        return step_only(cm, prompt, new_tokens, step)

    def on_timing(prompt, steps, progress=gr.Progress()):
        return timing(cm, prompt, steps, progress)

    def on_memory(context_tokens, batch_size, number_format):
        return memory(cm, context_tokens, batch_size, number_format)

    def on_reveal_same(prompt, choice):
        try:
            return C.reveal_same(cm, prompt, choice)
        except ValueError as e:
            return widgets.note(str(e))

    def on_reveal_speed(choice):
        return C.reveal_speed(cm, choice)

    gr.on([run.click, prompt.submit, new_tokens.release], on_generate, [prompt, new_tokens, step],
          [grid, readout, proof, step, step_msg], api_name="kv_generate", trigger_mode="always_last",
          show_progress="minimal")
    step.release(on_step, [prompt, new_tokens, step], [grid, readout, step_msg], api_name="kv_step",
                 trigger_mode="always_last", show_progress="minimal")
    measure.click(on_timing, [prompt, timed], [timing_plot, timing_md, timing_msg], api_name="kv_timing",
                  concurrency_limit=1)
    gr.on([positions.release, batch.release, dtype.change], on_memory, [positions, batch, dtype],
          [memory_plot, memory_table, memory_msg], api_name="kv_memory", trigger_mode="always_last",
          show_progress="minimal")
    same_btn.click(on_reveal_same, [prompt, same_choice], same_out, api_name="kv_reveal_same")
    speed_btn.click(on_reveal_speed, speed_choice, speed_out, api_name="kv_reveal_speed", concurrency_limit=1)


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def generation(cm: CourseModel, prompt, n, step):
    """(grid, readout, proof, step slider, message): a new run; the step slider gets the run's range."""
    try:
        fig, readout, proof, n_steps, notice = C.step_view(cm, prompt, n, step)
    except ValueError as e:
        return message_figure(str(e)), "", "", gr.update(), widgets.note(str(e))
    s = min(max(int(step or 0), 0), n_steps - 1)
    return fig, readout, proof, gr.update(maximum=max(n_steps - 1, 1), value=s), widgets.note(notice)


def step_only(cm: CourseModel, prompt, n, step):
    """(grid, readout, message) for another step of the same run (cached, so this is fast)."""
    try:
        fig, readout, _, _, notice = C.step_view(cm, prompt, n, step)
    except ValueError as e:
        return message_figure(str(e)), "", widgets.note(str(e))
    return fig, readout, widgets.note(notice)


def timing(cm: CourseModel, prompt, n, progress):
    try:
        fig, md, notice = C.timing_view(cm, prompt, n, lambda f, d: progress(f, desc=d))
    except ValueError as e:
        return message_figure(str(e)), "", widgets.note(str(e))
    return fig, md, widgets.note(notice)


def memory(cm: CourseModel, positions, batch, dtype):
    try:
        table, fig = C.cache_memory(cm, positions, batch, dtype)
    except ValueError as e:
        return message_figure(str(e)), "", widgets.note(str(e))
    return fig, table, ""
