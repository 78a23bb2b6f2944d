"""Lesson 8 page: generation and sampling.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Handlers only call `lessons.sampling.compute` and place what it returns; bad input becomes a message.
"""

from __future__ import annotations

import gradio as gr

from app import widgets
from lessons.course import CourseModel
from lessons.sampling import compute as C

DEFAULTS = dict(temperature=1.0, top_k=10, top_p=0.9, max_new_tokens=80, seed=0)


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson)
    parts += [""] * (4 - len(parts))  # three figures: tolerate a lesson.md with fewer markers
    ctx, V = cm.config.max_seq_len, cm.config.vocab_size
    first_fig, first_summary, _ = distribution(cm, C.DEFAULT_PROMPT, DEFAULTS["temperature"], DEFAULTS["top_k"],
                                               DEFAULTS["top_p"])

    widgets.lesson_header(lesson)
    widgets.prose(parts[0])

    # --- figure 1: the next-token distribution and the three filters
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            prompt = gr.Textbox(C.DEFAULT_PROMPT, lines=3, max_lines=8,
                                label=f"Prompt ({widgets.RUN_HINT})",
                                info=f"BOS is added in front. At most {C.prompt_limit(cm)} tokens with BOS (half the "
                                f"{ctx}-token context); a longer prompt keeps its end.")
            show = gr.Button("Show next-token probabilities", variant="primary")
            temperature = gr.Slider(0.0, 2.0, DEFAULTS["temperature"], step=0.05, label="temperature T",
                                    info="0 = greedy (always the most likely token)")
            top_k = gr.Slider(0, min(100, V), DEFAULTS["top_k"], step=1, label="top-k",
                              info="keep the k most likely tokens; 0 = off")
            top_p = gr.Slider(0.0, 1.0, DEFAULTS["top_p"], step=0.01, label="top-p",
                              info="keep the fewest tokens holding this share; 1 = off")
            dist_msg = widgets.message()
        with gr.Column(scale=2):
            dist_plot = gr.Plot(first_fig, label="Next-token probabilities (top 20)", elem_id="sampling-dist")
            dist_summary = gr.Markdown(first_summary)

    widgets.prose(parts[1])

    # --- figure 2: greedy against sampled, streamed
    with gr.Row():
        max_new = gr.Slider(1, ctx, DEFAULTS["max_new_tokens"], step=1, label="max new tokens",
                            info=f"generation also stops at EOS or when the {ctx}-token context is full")
        seed = gr.Number(DEFAULTS["seed"], precision=0, label="seed", info="same seed, same settings: same text")
        gen = gr.Button("Generate greedy and sampled", variant="primary")
    with gr.Row():
        greedy_out = gr.Textbox(label="Greedy (T = 0): always the most likely token", lines=10, max_lines=14,
                                interactive=False, elem_id="sampling-greedy")
        sampled_out = gr.Textbox(label="Sampled: temperature, top-k, top-p above, and the seed", lines=10,
                                 max_lines=14, interactive=False, elem_id="sampling-sampled")
    gen_status = gr.Markdown(elem_id="sampling-status")

    widgets.prose(parts[2])

    # --- figure 3: predict, then reveal
    seed_choice, seed_btn, seed_out = widgets.predict_reveal(
        C.SEED_QUESTION, C.SEED_CHOICES,
        "Reveal (runs the model on your prompt)")
    nucleus_choice, nucleus_btn, nucleus_out = widgets.predict_reveal(
        C.NUCLEUS_QUESTION, C.NUCLEUS_CHOICES,
        "Reveal (counts on your prompt)")

    widgets.prose(parts[3])
    widgets.lesson_footer(lesson)

    # --- listeners
    def on_distribution(text, t, k, p):
        return distribution(cm, text, t, k, p)

    def on_generate(text, t, k, p, n, sd):
        yield from generation(cm, text, t, k, p, n, sd)

    def on_reveal_seeds(text, choice):
        yield from reveal_seeds(cm, text, choice)

    def on_reveal_nucleus(text, choice):
        return reveal_nucleus(cm, text, choice)

    gr.on([show.click, prompt.submit, temperature.release, top_k.release, top_p.release], on_distribution,
          [prompt, temperature, top_k, top_p], [dist_plot, dist_summary, dist_msg], api_name="sampling_distribution",
          trigger_mode="always_last", show_progress="minimal")
    gen.click(on_generate, [prompt, temperature, top_k, top_p, max_new, seed], [greedy_out, sampled_out, gen_status],
              api_name="sampling_generate", show_progress="minimal")
    seed_btn.click(on_reveal_seeds, [prompt, seed_choice], seed_out, api_name="sampling_reveal_seeds")
    nucleus_btn.click(on_reveal_nucleus, [prompt, nucleus_choice], nucleus_out, api_name="sampling_reveal_nucleus")


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def distribution(cm: CourseModel, text, t, k, p):
    """(figure, summary Markdown, message Markdown) for the prompt and the three sliders."""
    try:
        prep = C.prepare_prompt(cm, text)
    except ValueError as e:
        return C.message_figure("Type a prompt to see what the model expects next."), "", widgets.note(str(e))
    s = C.read_settings(t, k, p)
    d = C.next_token_view(cm, prep.ids, s)
    notes = "\n\n".join(widgets.note(n) for n in (prep.notice, *s.notes) if n)
    return C.distribution_figure(d), C.distribution_summary(d), notes


def generation(cm: CourseModel, text, t, k, p, n, sd):
    """Yields (greedy text, sampled text, status) after every new token of each."""
    try:
        prep = C.prepare_prompt(cm, text)
    except ValueError as e:
        yield "", "", widgets.note(str(e))
        return
    s, seed = C.read_settings(t, k, p), C.read_seed(sd)
    n = max(1, min(int(n or 1), cm.config.max_seq_len))
    head = C.prompt_text(cm, prep)
    for step in C.stream_side_by_side(cm, prep.ids, n, s, seed):
        yield head + step.greedy_text, head + step.sampled_text, C.generation_status(step, s, seed, n, prep.notice)


def reveal_seeds(cm: CourseModel, text, choice):
    try:
        prep = C.prepare_prompt(cm, text)
    except ValueError as e:
        yield widgets.note(str(e))
        return
    for item in C.reveal_seeds(cm, prep.ids):
        yield item if isinstance(item, str) else C.seed_reveal_markdown(item, choice)


def reveal_nucleus(cm: CourseModel, text, choice):
    try:
        prep = C.prepare_prompt(cm, text)
    except ValueError as e:
        return widgets.note(str(e))
    return C.nucleus_reveal_markdown(C.reveal_nucleus(cm, prep.ids), choice)
