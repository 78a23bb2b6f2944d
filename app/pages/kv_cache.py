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

from app import costs, share, widgets
from lessons import cost
from lessons.course import CourseModel, prepare_text
from lessons.plots import message_figure
from lessons.kv_cache import compute as C

DEFAULT_PROMPT = "JULIET:\nO Romeo, Romeo!"
DEFAULTS = dict(new_tokens=C.DEFAULT_NEW_TOKENS, step=0, timed=128, positions=4096, batch=1, dtype=C.DEFAULT_DTYPE)
RUN_LABEL = "Generate step by step"
MEASURE_LABEL = "Measure on this machine"
SAME_LABEL = "Reveal (generates from the prompt above both ways)"
SPEED_LABEL = "Reveal (counts the FLOPs, and times both on this machine)"


def costs_view(cm: CourseModel) -> dict:
    """What the page says about its slow actions before they run (lessons.cost's estimates, for the default prompt
    and settings; empty notices and plain labels for the course model): the page's message, each button's label,
    and the defaults of the two sliders a big model lowers."""
    P = len(prepare_text(cm, DEFAULT_PROMPT, max_tokens=C.MAX_PROMPT_TOKENS).ids)
    n_run, n_same, n_timed = C.default_new_tokens(cm, P), C.default_new_tokens(cm, P, C.MAX_NEW_TOKENS), \
        C.default_timed(cm, P)
    run, same = C.cached_vs_uncached_cost(cm, P, n_run), C.cached_vs_uncached_cost(cm, P, n_same)
    timing, speed = C.timing_cost(cm, P, n_timed), C.speed_cost(cm)
    notices = [costs.notice(run, f"Generate step by step ({n_run} tokens, with and without the cache)"),
               costs.notice(same, f"The same-tokens reveal ({n_same} tokens both ways)"),
               costs.notice(speed, "The speed reveal (times one step both ways)"),
               costs.notice(timing, f"Measure ({n_timed} steps, {C.timing_repeats(cm)} run"
                                    f"{'s' * (C.timing_repeats(cm) > 1)} each, both ways)")]
    return dict(message="  \n".join(n for n in notices if n), new_tokens=n_run, timed=n_timed,
                run=costs.label(RUN_LABEL, run), same=costs.label(SAME_LABEL, same),
                speed=costs.label(SPEED_LABEL, speed), measure=costs.label(MEASURE_LABEL, timing),
                timing_note=costs.notice(timing, f"{n_timed} steps"))


def first_view(cm: CourseModel) -> dict:
    """Everything on the page that depends on the model, by name: the opening figures and readouts, the
    sliders' ranges (dicts of gr.Slider arguments), the speed question and the facts quoted in the text.
    `build` lays the page out with the course model's values; `refresh` sends another model's."""
    c, slow = cm.config, costs_view(cm)
    grid, readout, n_steps, _, _ = C.step_view(cm, DEFAULT_PROMPT, slow["new_tokens"], DEFAULTS["step"])
    table, memory_fig, _ = C.cache_memory(cm, DEFAULTS["positions"], DEFAULTS["batch"], DEFAULTS["dtype"])
    limit = C.timing_limit(cm)
    why = (f"up to the {c.max_seq_len}-token context" if limit >= c.max_seq_len - 2 else
           f"at most {limit} for a model of {cm.model.num_parameters():,} parameters, so the uncached run stays "
           f"quick (its context is {c.max_seq_len:,} tokens)")
    real, formula, T = C.allocated_cache_bytes(cm)
    allocated = (f"Checked on the real thing: `model.new_cache(1, {T})` for this model allocates **{real:,} bytes**; "
                 f"the formula with $L={c.n_layers}$, $n_{{kv}}={c.n_kv_heads}$, $d_h={c.head_dim}$, $T={T}$, $B=1$ "
                 f"and {cm.model.embed_tokens.weight.element_size()} bytes per number gives **{formula:,}**.")
    return dict(grid=grid, readout=readout, step=dict(maximum=max(n_steps - 1, 1), value=DEFAULTS["step"]),
                timed=dict(maximum=limit, value=slow["timed"],
                           info=f"from the prompt above, {why}" + (f". {slow['timing_note']}" if slow["timing_note"]
                                                                   else "")),
                speed_question=f"**Predict:** {C.speed_question(cm)}",  # widgets.predict_reveal's format
                positions=dict(maximum=C.max_context(cm), value=DEFAULTS["positions"]),
                memory_fig=memory_fig, memory_table=table, allocated=allocated,
                configs=C.configs_markdown(C.reference_configs(cm)), message=slow["message"],
                new_tokens=dict(value=slow["new_tokens"]), run=dict(value=slow["run"]),
                measure=dict(value=slow["measure"]), same_btn=dict(value=slow["same"]),
                speed_btn=dict(value=slow["speed"]))


# The outputs `refresh` fills, in order (after the page's message slot).
REFRESHED = ("grid", "readout", "step", "timed", "speed_question", "positions", "memory_fig", "memory_table",
             "allocated", "configs", "new_tokens", "run", "measure", "same_btn", "speed_btn")
UPDATES = ("step", "timed", "positions", "new_tokens", "run", "measure", "same_btn", "speed_btn")  # sent as gr.update


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): the step-by-step run at the model's default length, both ways, and the cache's allocation check."""
    P = len(prepare_text(cm, DEFAULT_PROMPT, max_tokens=C.MAX_PROMPT_TOKENS).ids)
    return C.cached_vs_uncached_cost(cm, P, C.default_new_tokens(cm, P)) + cost.passes(cm, 3, 3)


def refresh(cm: CourseModel):
    """The page for another model than the one it was built with (widgets.on_model): a message (the cost of the
    page's slow actions with this model, if any), then REFRESHED."""
    v = first_view(cm)
    return (v["message"], *(gr.update(**v[k]) if k in UPDATES else v[k] for k in REFRESHED))


def question_markdown(guess: gr.Radio) -> gr.Markdown:
    """The question Markdown that widgets.predict_reveal placed just before its radio (so the page can refresh a
    question that quotes the model)."""
    siblings = guess.parent.children
    return siblings[siblings.index(guess) - 1]


def build(cm: CourseModel, lesson) -> None:
    key = widgets.model_key()
    parts = widgets.sections(lesson, 9)
    v = first_view(cm)

    widgets.lesson_header(lesson)
    page_msg = widgets.message()  # says when the chosen model cannot be loaded
    widgets.prose(parts[0])

    # --- figure 1: generation step by step, the cache filling up
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            prompt = gr.Textbox(DEFAULT_PROMPT, lines=3, max_lines=6, label=f"Prompt ({widgets.RUN_HINT})",
                                info=f"BOS is added in front; at most {C.MAX_PROMPT_TOKENS} tokens")
            new_tokens = widgets.Slider(1, C.MAX_NEW_TOKENS, DEFAULTS["new_tokens"], step=1,
                                        label="new tokens (greedy)")
            run = gr.Button(RUN_LABEL, variant="primary")
            step = widgets.Slider(minimum=0, step=1, label="step", info="step 0 is the prefill (the whole prompt "
                                  "at once)", **v["step"])
            step_msg = widgets.message()
        with gr.Column(scale=3):
            grid = widgets.Plot(v["grid"], label="Keys and values per layer and position", elem_id="kv-grid", code=C.step_figure)
            readout = gr.Markdown(v["readout"])

    widgets.prose(parts[1])
    same_choice, same_btn, same_out = widgets.predict_reveal(
        C.Q_SAME, button=SAME_LABEL)
    with widgets.go_deeper("prefill and decode, step by step in the code", "prefill"):
        widgets.prose(parts[2])

    widgets.prose(parts[3])

    # --- predict first, then figure 2: FLOPs counted and time measured per step (hidden until revealed)
    speed_choice, speed_btn, speed_out = widgets.predict_reveal(
        C.speed_q(cm), button=SPEED_LABEL)
    speed_question = question_markdown(speed_choice)
    with widgets.until_reveal(C.SPEED_QUESTION_ID):
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                with gr.Group():  # the slider belongs to the button: nothing runs until it is pressed
                    timed = widgets.Slider(minimum=2, step=1, label="steps to time (used when you press Measure)",
                                           **v["timed"])
                    measure = gr.Button(MEASURE_LABEL, variant="primary")
                timing_msg = widgets.message()
                timing_md = gr.Markdown()
            with gr.Column(scale=3):
                timing_plot = widgets.Plot(message_figure("Press “Measure on this machine”: it generates the tokens\n"
                                                     "with and without the cache and times every step."),
                                      label="Time and FLOPs per new token", elem_id="kv-timing", code=C.timing_figure)
        widgets.prose(parts[4])
        with widgets.go_deeper("how the timing is kept fair, and how the FLOPs are counted", "timing"):
            widgets.prose(parts[5])

    widgets.prose(parts[6])

    # --- figure 3: cache memory, this model and real Llamas, with and without GQA
    with gr.Row():
        positions = widgets.Slider(minimum=256, step=256, label="context length (tokens)", **v["positions"])
        batch = widgets.Slider(1, C.MAX_BATCH, DEFAULTS["batch"], step=1, label="batch (sequences at once)")
        dtype = widgets.Radio(list(C.DTYPE_BYTES), value=DEFAULTS["dtype"], label="number format of the cache")
    memory_msg = widgets.message()
    memory_plot = widgets.Plot(v["memory_fig"], label="KV cache memory", elem_id="kv-memory", code=C.cache_memory)
    widgets.prose(parts[7])
    with widgets.go_deeper("the memory table, the allocation checked, and the configurations used", "memory"):
        memory_table = gr.Markdown(v["memory_table"])
        allocated = gr.Markdown(v["allocated"], latex_delimiters=[{"left": "$", "right": "$", "display": False}],
                                elem_id="kv-allocated")
        configs = gr.Markdown(v["configs"])
        widgets.prose(parts[8])

    with widgets.until_reveal(C.Q_SAME.qid):  # the summary states the answer to the first question
        widgets.prose(parts[9])
    widgets.lesson_footer(lesson)

    # --- listeners
    widgets.on_model(key, refresh, [page_msg, grid, readout, step, timed, speed_question, positions, memory_plot,
                                    memory_table, allocated, configs, new_tokens, run, measure, same_btn, speed_btn],
                     opening=opening_cost)
    gen_ev = gr.on([run.click, prompt.submit, new_tokens.release], widgets.handler(generation, 4, msg_at=3),
          [key, prompt, new_tokens, step], [grid, readout, step, step_msg], api_name="kv_generate",
          trigger_mode="always_last", show_progress="minimal")
    step.release(widgets.handler(step_only, 3, msg_at=2), [key, prompt, new_tokens, step], [grid, readout, step_msg],
                 api_name="kv_step", trigger_mode="always_last", show_progress="minimal")
    measure.click(widgets.handler(timing, 3, msg_at=2), [key, prompt, timed], [timing_plot, timing_md, timing_msg],
                  api_name="kv_timing", concurrency_limit=1, concurrency_id="kv_timing")
    memory_ev = gr.on([positions.release, batch.release, dtype.change], widgets.handler(memory, 3, msg_at=2),
          [key, positions, batch, dtype], [memory_plot, memory_table, memory_msg], api_name="kv_memory",
          trigger_mode="always_last", show_progress="minimal")
    share.link(key, dict(text=prompt, new_tokens=new_tokens, step=step, timed=timed, positions=positions,
                         batch=batch, format=dtype),
               runs=[gen_ev, memory_ev], ranges=dict(step=(0, C.MAX_NEW_TOKENS)))
    same_btn.click(widgets.handler(reveal_same), [key, prompt, same_choice], same_out, api_name="kv_reveal_same")
    speed_btn.click(widgets.handler(reveal_speed), [key, speed_choice], speed_out, api_name="kv_reveal_speed",
                    concurrency_limit=1, concurrency_id="kv_timing")


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def generation(cm: CourseModel, prompt, n, step, progress=gr.Progress()):
    """(grid, readout, step slider, message): a new run; the step slider gets the run's range."""
    progress(0, desc="generating with and without the cache" + costs.while_running(C.run_cost(cm, prompt, n)))
    fig, readout, n_steps, shown, notice = C.step_view(cm, prompt, n, step)
    return fig, readout, gr.update(maximum=max(n_steps - 1, 1), value=shown), widgets.note(notice)


def step_only(cm: CourseModel, prompt, n, step):
    """(grid, readout, message) for another step of the same run (cached, so this is fast)."""
    fig, readout, _, _, notice = C.step_view(cm, prompt, n, step)
    return fig, readout, widgets.note(notice)


def timing(cm: CourseModel, prompt, n, progress=gr.Progress()):
    total = costs.while_running(C.timing_run_cost(cm, prompt, n))  # ' (about 20 s)' for a big model
    fig, md, notice = C.timing_view(cm, prompt, n, lambda f, d: progress(f, desc=d + total))
    return fig, md, widgets.note(notice)


def memory(cm: CourseModel, positions, batch, dtype):
    table, fig, notice = C.cache_memory(cm, positions, batch, dtype)
    return fig, table, widgets.note(notice)


def reveal_same(cm: CourseModel, prompt, choice, progress=gr.Progress()):
    progress(0, desc="generating both ways" + costs.while_running(C.run_cost(cm, prompt)))
    return C.reveal_same(cm, prompt, choice)


def reveal_speed(cm: CourseModel, choice, progress=gr.Progress()):
    progress(0, desc="counting FLOPs and timing one step both ways" + costs.while_running(C.speed_cost(cm)))
    return C.reveal_speed(cm, choice)
