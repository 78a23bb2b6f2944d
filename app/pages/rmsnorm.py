"""Lesson 4 page: RMSNorm against LayerNorm.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Handlers only call `lessons.rmsnorm.compute` and place what it returns; bad input becomes a message.
"""

from __future__ import annotations

import gradio as gr

from app import widgets
from lessons.course import CourseModel
from lessons.plots import message_figure
from lessons.rmsnorm import compute as C

DEFAULTS = dict(token=3, shift=1.0, scale=2.0, depth=8, gain=2.0)


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson)
    parts += [""] * (6 - len(parts))  # five figures: tolerate a lesson.md with fewer markers
    res = C.load_text(cm, C.DEFAULT_TEXT)
    site_choices = [(s.name, i) for i, s in enumerate(res.sites)]
    site0 = C.invariance_site(cm)
    inv_fig, inv_md = invariance(cm, C.DEFAULT_TEXT, DEFAULTS["token"], DEFAULTS["shift"], DEFAULTS["scale"])
    site_fig, site_md = site(cm, C.DEFAULT_TEXT, site0)
    place_fig, place_md, _ = placement(cm, DEFAULTS["depth"], DEFAULTS["gain"])

    widgets.lesson_header(lesson)
    widgets.prose(parts[0])

    # --- the learner's text, shared by every figure that reads the course model
    with gr.Row():
        text = gr.Textbox(C.DEFAULT_TEXT, lines=2, max_lines=6, scale=4, label=f"Your text ({widgets.RUN_HINT})",
                          info=f"BOS is added in front; at most {C.MAX_TOKENS} tokens with BOS are used.")
        run = gr.Button("Run the model on this text", variant="primary", scale=1)
    text_msg = widgets.message()

    # --- figure 1: invariance of both norms
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            token = gr.Slider(0, len(res.ids) - 1, DEFAULTS["token"], step=1, label="token position",
                              info="whose residual-stream vector x to use (0 = BOS)", elem_id="rmsnorm-token")
            shift = gr.Slider(-3.0, 3.0, DEFAULTS["shift"], step=0.1, label="shift b (added to every element)",
                              elem_id="rmsnorm-shift")
            scale = gr.Slider(0.1, 5.0, DEFAULTS["scale"], step=0.1, label="scale a (multiplies every element)",
                              elem_id="rmsnorm-scale")
            inv_readout = gr.Markdown(inv_md, elem_id="rmsnorm-invariance-readout")
        with gr.Column(scale=2):
            inv_plot = gr.Plot(inv_fig, label="x, a·x + b, and both norms of each", elem_id="rmsnorm-invariance")

    widgets.prose(parts[1])

    # --- figure 2: the course model's residual stream around every norm
    overview_plot = gr.Plot(C.residual_overview_figure(res), label="Per-token RMS before and after each RMSNorm",
                            elem_id="rmsnorm-overview")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            site_pick = gr.Dropdown(site_choices, value=site0, label="norm to inspect", elem_id="rmsnorm-site")
            site_readout = gr.Markdown(site_md, elem_id="rmsnorm-site-readout")
        with gr.Column(scale=3):
            site_plot = gr.Plot(site_fig, label="Values through one norm, and its learned gain",
                                elem_id="rmsnorm-site-plot")

    widgets.prose(parts[2])

    # --- figure 3: cost, timed live
    with gr.Row():
        with gr.Column(scale=1, min_width=420):
            gr.Markdown(C.operation_table())
        with gr.Column(scale=1, min_width=420):
            time_btn = gr.Button(f"Time both norms on this machine ({C.device_name(cm.device)})", variant="primary")
            time_plot = gr.Plot(message_figure("Press the button to time both norms here, now."),
                                label="Time per call", elem_id="rmsnorm-timing")
            time_table = gr.Markdown(elem_id="rmsnorm-timing-table")

    widgets.prose(parts[3])

    # --- figure 4: pre-norm against post-norm at initialisation
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            depth = gr.Slider(2, 16, DEFAULTS["depth"], step=1, label="layers", elem_id="rmsnorm-depth")
            gain = gr.Slider(0.1, 3.0, DEFAULTS["gain"], step=0.1, label="init gain (weights ~ N(0, gain² / fan_in))",
                             info=f"the course model's init, std 0.02, is gain {C.course_init_gain():.2f} at this "
                                  f"width ({C.PLACEMENT_SIZES['dim']})", elem_id="rmsnorm-gain")
            place_btn = gr.Button("Build both models and backpropagate", variant="primary")
            place_msg = widgets.message()
            place_table = gr.Markdown(place_md, elem_id="rmsnorm-placement-table")
        with gr.Column(scale=2):
            place_plot = gr.Plot(place_fig, label="Gradient norms per layer at initialisation",
                                 elem_id="rmsnorm-placement")

    widgets.prose(parts[4])

    # --- figure 5: predict, then reveal
    rms_guess, rms_btn, rms_out = widgets.predict_reveal(
        "on your text, where is the residual stream largest (mean RMS per token)?", C.rms_question_choices(cm.config),
        "Reveal (runs the model on your text)", elem_id="rmsnorm-reveal-rms")
    shift_guess, shift_btn, shift_out = widgets.predict_reveal(
        "add 1 to every element of your text's last token vector. Which output changes?", C.SHIFT_CHOICES,
        "Reveal (computes both norms)", elem_id="rmsnorm-reveal-shift")

    widgets.prose(parts[5])
    widgets.lesson_footer(lesson)

    # --- listeners
    def on_text(t, tok, b, a, s):
        return text_changed(cm, t, tok, b, a, s)

    def on_invariance(t, tok, b, a):
        return invariance(cm, t, tok, b, a)

    def on_site(t, s):
        return site(cm, t, s)

    def on_timing(progress=gr.Progress()):
        return timing(cm, progress)

    def on_placement(n, g, progress=gr.Progress()):
        return placement(cm, n, g, progress)

    def on_reveal_rms(t, guess):
        return reveal_rms(cm, t, guess)

    def on_reveal_shift(t, guess):
        return reveal_shift(cm, t, guess)

    gr.on([run.click, text.submit], on_text, [text, token, shift, scale, site_pick],
          [text_msg, token, inv_plot, inv_readout, overview_plot, site_plot, site_readout], api_name="rmsnorm_text",
          show_progress="minimal")
    gr.on([token.release, shift.release, scale.release], on_invariance, [text, token, shift, scale],
          [inv_plot, inv_readout], api_name="rmsnorm_invariance", trigger_mode="always_last", show_progress="minimal")
    site_pick.input(on_site, [text, site_pick], [site_plot, site_readout], api_name="rmsnorm_site",
                    trigger_mode="always_last", show_progress="minimal")
    time_btn.click(on_timing, None, [time_plot, time_table], api_name="rmsnorm_timing", concurrency_limit=1)
    gr.on([place_btn.click, depth.release, gain.release], on_placement, [depth, gain],
          [place_plot, place_table, place_msg], api_name="rmsnorm_placement", trigger_mode="always_last")
    rms_btn.click(on_reveal_rms, [text, rms_guess], rms_out, api_name="rmsnorm_reveal_rms")
    shift_btn.click(on_reveal_shift, [text, shift_guess], shift_out, api_name="rmsnorm_reveal_shift")


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def invariance(cm: CourseModel, text, token, shift, scale):
    """(figure, readout Markdown) for one token's vector under a*x + b."""
    try:
        res = C.load_text(cm, text)
        inv = C.invariance(cm, res, token, shift, scale)
    except ValueError as e:
        return message_figure("Nothing to normalise: see the message.", 560), widgets.note(str(e))
    return C.invariance_figure(inv), C.describe_invariance(inv)


def site(cm: CourseModel, text, site_index):
    try:
        res = C.load_text(cm, text)
        return C.site_figure(cm, res, site_index), C.describe_site(C.site_stats(cm, res, site_index))
    except ValueError as e:
        return message_figure("Nothing to show: see the message."), widgets.note(str(e))


def text_changed(cm: CourseModel, text, token, shift, scale, site_index):
    """Everything that depends on the text: message, token slider range, figures 1 and 2."""
    try:
        res = C.load_text(cm, text)
    except ValueError as e:
        blank = message_figure("Type a text to see the model's residual stream.")
        return (widgets.note(str(e)), gr.Slider(), blank, "", blank, blank, "")
    last = len(res.ids) - 1
    token = min(int(token or 0), last)
    inv_fig, inv_md = invariance(cm, text, token, shift, scale)
    site_fig, site_md = site(cm, text, site_index)
    return (widgets.note(res.notice), gr.Slider(maximum=last, value=token), inv_fig, inv_md,
            C.residual_overview_figure(res), site_fig, site_md)


def timing(cm: CourseModel, progress):
    timings = C.time_norms(cm.device, C.timing_dims(cm.config), on_step=lambda f, d: progress(f, desc=d))
    return C.timing_figure(timings, C.device_name(cm.device)), C.timing_table(timings)


def placement(cm: CourseModel, n_layers, gain, progress=None):
    try:
        step = (lambda f, d: progress(f, desc=d)) if progress is not None else None
        pre, post = C.compare_placements(n_layers, gain, on_step=step)
    except ValueError as e:
        return message_figure("Nothing to compare: see the message."), "", widgets.note(str(e))
    return C.placement_figure(pre, post, float(gain)), C.describe_placements(pre, post), ""


def reveal_rms(cm: CourseModel, text, guess):
    try:
        return C.reveal_largest_rms(C.load_text(cm, text), guess)
    except ValueError as e:
        return widgets.note(str(e))


def reveal_shift(cm: CourseModel, text, guess):
    try:
        return C.reveal_shift(cm, C.load_text(cm, text), guess)
    except ValueError as e:
        return widgets.note(str(e))
