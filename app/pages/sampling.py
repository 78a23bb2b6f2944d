"""Lesson 8 page: generation and sampling.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md; each question comes
before the figure that could answer it), listeners last. Handlers only call `lessons.sampling.compute` and place
what it returns; every input goes through it (lessons.inputs), and a LessonError becomes a notice
(widgets.handler).

Concurrency: generation streams two rows in one batched forward pass and updates the page at most 10 times a
second. Generation (and the seed reveal, which also generates) runs 2 at a time: with 8 learners at once on the
2-core machine (bench/bench_sampling.py --load-only, one run per limit, machine load average 8-10) limit 1 gave
first output p95 5.8 s and whole stream p95 6.9 s, limit 2 gave 3.6 s and 5.4 s, limit 4 gave 4.3 s and 7.9 s
(more streams at once share the cores and each takes longer; the bench's "parallel generations" shows no gain
in streams per second beyond one or two at once). The cheap events keep the app's default limit.
"""

from __future__ import annotations

import os

import gradio as gr

from app import costs, share, widgets
from lessons import cost
from lessons.course import CourseModel
from lessons.sampling import compute as C

DEFAULTS = dict(temperature=C.META_TEMPERATURE, top_k=0, top_p=C.META_TOP_P, max_new_tokens=C.DEFAULT_NEW_TOKENS,
                seed=0)
# Generations at once (measured: see the module docstring); the environment variable lets the bench compare limits.
GENERATE_CONCURRENCY = int(os.environ.get("INSIDE_LLAMA_GENERATE_CONCURRENCY", "2"))


class SeedBox(gr.Number):
    """gr.Number that passes the value on unchecked, like widgets.Slider: Gradio's own preprocess turns NaN, inf
    or a non-number sent through the API into a red "Error" toast; compute.read_seed repairs them with a notice."""

    def preprocess(self, payload):
        return payload

    def get_block_name(self) -> str:
        return "number"  # the browser draws it as the gr.Number it is


def first_view(cm: CourseModel) -> dict:
    """Everything on the page that depends on the model, by name: the opening chart and summary (the default
    prompt at Meta's defaults), and the controls whose range or text quotes the model (dicts of component
    arguments). `build` lays the page out with the course model's values; `refresh` sends another model's."""
    ctx, V = cm.config.max_seq_len, C.vocab_tokens(cm)  # the tokenizer's tokens (not padding rows)
    fig, summary, _ = distribution(cm, C.DEFAULT_PROMPT, DEFAULTS["temperature"], DEFAULTS["top_k"], DEFAULTS["top_p"])
    P, n = len(C.prepare_prompt(cm, C.DEFAULT_PROMPT).ids), C.default_new_tokens(cm)
    gen_cost, seeds_cost = C.generation_cost(cm, P, n), C.seeds_cost(cm, P)
    message = "  \n".join(x for x in (
        costs.notice(gen_cost, f"Generate ({n} tokens, greedy and sampled)"),
        costs.notice(seeds_cost, f"The seed reveal ({C.reveal_tokens(cm)} tokens, three rows)")) if x)
    return dict(message=message, gen=dict(value=costs.label(GENERATE_LABEL, gen_cost)),
                seed_btn=dict(value=costs.label(SEEDS_LABEL, seeds_cost)),
        prompt=dict(info=f"BOS is added in front. At most {C.prompt_limit(cm)} tokens with BOS (half the {ctx}-token "
                         "context); a longer prompt keeps its end."),
        top_k=dict(maximum=min(100, V), value=DEFAULTS["top_k"]),
        fig=fig, summary=summary,
        max_new=dict(value=C.default_new_tokens(cm),  # fewer for a big model on a CPU: each token is a forward pass
                     info=f"at most {C.MAX_NEW_TOKENS} (so the shared server stays quick); generation also stops at "
                          f"EOS or when the {ctx}-token context is full"
                          + ("" if C.default_new_tokens(cm) == C.DEFAULT_NEW_TOKENS else
                             f". Each token is one pass through this model's {cm.model.num_parameters():,} "
                             f"parameters, so it starts at {C.default_new_tokens(cm)} on this machine")
                          + (f": {costs.with_model(gen_cost)}" if gen_cost.slow else "")))


# The outputs `refresh` fills, in order (after the page's message slot); the dicts become gr.update()s.
REFRESHED = ("prompt", "top_k", "fig", "summary", "max_new", "gen", "seed_btn")
GENERATE_LABEL = "Generate greedy and sampled"
SEEDS_LABEL = "Reveal (runs the model on your prompt)"


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): one pass over the default prompt for the next-token distribution."""
    return cost.passes(cm, len(C.prepare_prompt(cm, C.DEFAULT_PROMPT).ids), 1)


def refresh(cm: CourseModel):
    """The page for another model than the one it was built with (widgets.on_model): a message (the cost of the
    page's slow actions with this model, if any), then REFRESHED."""
    v = first_view(cm)
    return (v["message"], *(gr.update(**v[k]) if isinstance(v[k], dict) else v[k] for k in REFRESHED))


def build(cm: CourseModel, lesson) -> None:
    key = widgets.model_key()
    parts = widgets.sections(lesson, 6)
    v = first_view(cm)

    widgets.lesson_header(lesson)
    page_msg = widgets.message()  # says when the chosen model cannot be loaded
    widgets.prose(parts[0])

    # --- figure 1: the next-token distribution and the three filters
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            prompt = gr.Textbox(C.DEFAULT_PROMPT, lines=3, max_lines=8, label=f"Prompt ({widgets.RUN_HINT})",
                                **v["prompt"])
            show = gr.Button("Show next-token probabilities", variant="primary")
            gr.Markdown(f"Opens at Meta's defaults for Llama 2 and 3: temperature {C.META_TEMPERATURE:g}, top-p "
                        f"{C.META_TOP_P:g}, no top-k.")
            temperature = widgets.Slider(0.0, 2.0, DEFAULTS["temperature"], step=0.05, label="temperature T",
                                         info="0 = greedy (always the most likely token)")
            top_k = widgets.Slider(minimum=0, step=1, label="top-k", info="keep the k most likely tokens; 0 = off",
                                   **v["top_k"])
            top_p = widgets.Slider(0.0, 1.0, DEFAULTS["top_p"], step=0.01, label="top-p",
                                   info="keep the fewest tokens holding this share; 1 = off")
            dist_msg = widgets.message()
        with gr.Column(scale=2):
            dist_plot = widgets.Plot(v["fig"], label=f"Next-token probabilities (top {C.N_BARS})",
                                elem_id="sampling-dist", code=C.distribution_figure)
            dist_summary = gr.Markdown(v["summary"])

    widgets.prose(parts[1])
    nucleus_choice, nucleus_btn, nucleus_out = widgets.predict_reveal(
        C.Q_NUCLEUS, button="Reveal (counts on your prompt)")
    with widgets.until_reveal(C.Q_NUCLEUS.qid):  # what to look for says how top-p's count moves
        widgets.prose(parts[3])
    with widgets.go_deeper("temperature, top-k and top-p in formulas, and Meta's defaults", "filters"):
        widgets.prose(parts[2])

    widgets.prose(parts[4])

    # --- predict first, then figure 2: greedy against sampled, streamed
    seed_choice, seed_btn, seed_out = widgets.predict_reveal(
        C.Q_SEED, button=SEEDS_LABEL)
    with gr.Row():
        max_new = widgets.Slider(1, C.MAX_NEW_TOKENS, step=1, label="max new tokens", **v["max_new"])
        seed = SeedBox(DEFAULTS["seed"], precision=0, label="seed",
                         info=f"0 to {C.MAX_SEED:,}; same seed, same settings: same text")
        gen = gr.Button(GENERATE_LABEL, variant="primary")
    with gr.Row():
        greedy_out = gr.Textbox(label="Greedy (T = 0): always the most likely token", lines=10, max_lines=14,
                                interactive=False, elem_id="sampling-greedy")
        sampled_out = gr.Textbox(label="Sampled: temperature, top-k, top-p above, and the seed", lines=10,
                                 max_lines=14, interactive=False, elem_id="sampling-sampled")
    gen_status = gr.Markdown(elem_id="sampling-status")
    with widgets.go_deeper("the generation loop: KV cache, seeds, stopping, and sharing the server", "loop"):
        widgets.prose(parts[5])
    with widgets.until_reveal(C.Q_SEED.qid):  # what to look for says what seeds do
        widgets.prose(parts[6])
    widgets.lesson_footer(lesson)

    # --- listeners
    widgets.on_model(key, refresh, [page_msg, prompt, top_k, dist_plot, dist_summary, max_new, gen, seed_btn],
                     opening=opening_cost)
    dist_ev = gr.on([show.click, prompt.submit, temperature.release, top_k.release, top_p.release],
          widgets.handler(distribution, 3, msg_at=2), [key, prompt, temperature, top_k, top_p],
          [dist_plot, dist_summary, dist_msg], api_name="sampling_distribution", trigger_mode="always_last",
          show_progress="minimal")
    gen.click(widgets.handler(generation, 3, msg_at=2), [key, prompt, temperature, top_k, top_p, max_new, seed],
              [greedy_out, sampled_out, gen_status], api_name="sampling_generate", show_progress="minimal",
              concurrency_limit=GENERATE_CONCURRENCY, concurrency_id="sampling_generation")
    share.link(key, dict(text=prompt, temperature=temperature, top_k=top_k, top_p=top_p, max_new=max_new,
                         seed=seed), runs=[dist_ev])
    seed_btn.click(widgets.handler(reveal_seeds), [key, prompt, seed_choice], seed_out,
                   api_name="sampling_reveal_seeds", concurrency_limit=GENERATE_CONCURRENCY,
                   concurrency_id="sampling_generation")
    nucleus_btn.click(widgets.handler(reveal_nucleus), [key, prompt, nucleus_choice], nucleus_out,
                      api_name="sampling_reveal_nucleus")


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def distribution(cm: CourseModel, text, t, k, p):
    """(figure, summary Markdown, message Markdown) for the prompt and the three sliders."""
    prep = C.prepare_prompt(cm, text)
    s = C.read_settings(t, k, p, C.vocab_tokens(cm))
    d = C.next_token_view(cm, prep.ids, s)
    notes = "\n\n".join(widgets.note(n) for n in (prep.notice, *s.notes) if n)
    return C.distribution_figure(d), C.distribution_summary(d), notes


def generation(cm: CourseModel, text, t, k, p, n, sd, progress=gr.Progress()):
    """Yields (greedy text, sampled text, status): the first token at once, then at most 10 updates a second."""
    prep = C.prepare_prompt(cm, text)
    s = C.read_settings(t, k, p, C.vocab_tokens(cm))
    seed, seed_notice = C.read_seed(sd)
    n, n_notice = C.read_new_tokens(n)
    progress(0, desc=f"generating {n} tokens" + costs.while_running(C.generation_cost(cm, len(prep.ids), n)))
    notice = " ".join(x for x in (prep.notice, n_notice, seed_notice) if x)
    head = C.prompt_text(cm, prep)
    for step in C.stream_side_by_side(cm, prep.ids, n, s, seed):
        yield head + step.greedy_text, head + step.sampled_text, C.generation_status(step, s, seed, n, notice)


def reveal_seeds(cm: CourseModel, text, choice, progress=gr.Progress()):
    prep = C.prepare_prompt(cm, text)
    progress(0, desc="sampling with two seeds" + costs.while_running(C.seeds_cost(cm, len(prep.ids))))
    choice = C.read_prediction(choice, C.SEED_CHOICES)
    notice = f"\n\n{widgets.note(prep.notice)}" if prep.notice else ""
    for item in C.reveal_seeds(cm, prep.ids):
        yield item if isinstance(item, str) else C.seed_reveal_markdown(item, choice) + notice


def reveal_nucleus(cm: CourseModel, text, choice):
    prep = C.prepare_prompt(cm, text)
    choice = C.read_prediction(choice, C.NUCLEUS_CHOICES)
    notice = f"\n\n{widgets.note(prep.notice)}" if prep.notice else ""
    return C.nucleus_reveal_markdown(C.reveal_nucleus(cm, prep.ids), choice) + notice
