"""Lesson 4 page: RMSNorm against LayerNorm.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Every handler is `on_x(cm, *inputs)`, wired through `widgets.handler` with the page's model key first; it only
calls `lessons.rmsnorm.compute` (which clamps every input through lessons.inputs, with a notice) and places what
it returns. A LessonError (empty text) becomes a message in the handler's message slot.

Everything that depends on the model (slider ranges, choices, labels, first figures) comes from one function,
`first_view(cm)`: the page is built from it with the course model, and `widgets.on_model` refills the same components
from it when the learner picked another model on the course map.

The core path: one short vector through both norms (editable, the model's own formulas), the geometric picture,
then the real residual stream with two questions whose answering figures stay hidden until their Reveal
(widgets.until_reveal). The history, the timing and pre- against post-norm sit in Go deeper sections.
"""

from __future__ import annotations

import gradio as gr

from app import share, widgets
from lessons import cost
from lessons.course import CourseModel
from lessons.plots import message_figure
from lessons.rmsnorm import compute as C

DEFAULTS = dict(token=3, shift=0.0, scale=2.0, depth=8, gain=1.0)  # shift 0: the figure does not answer question 2


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def invariance(cm: CourseModel, text, token, shift, scale):
    """(figure, readout Markdown, token, shift, scale) for one token's vector under a*x + b; the sliders move to the
    values used only when one was clamped."""
    inv = C.invariance(cm, C.load_text(cm, text), token, shift, scale)
    moved = (lambda v: gr.update(value=v)) if inv.notice else (lambda v: gr.skip())
    return C.invariance_figure(inv), C.describe_invariance(inv), moved(inv.token), moved(inv.shift), moved(inv.scale)


def site(cm: CourseModel, text, site_index):
    res = C.load_text(cm, text)
    i, notice = C.check_site(res, site_index)
    md = C.describe_site(C.site_stats(cm, res, i))
    return C.site_figure(cm, res, i), (f"{widgets.note(notice)}\n\n{md}" if notice else md)


def text_changed(cm: CourseModel, text, token, shift, scale, site_index):
    """Everything that depends on the text: message, token slider range, figures 1 and 2."""
    res = C.load_text(cm, text)
    last = len(res.ids) - 1
    inv = C.invariance(cm, res, token, shift, scale)
    site_fig, site_md = site(cm, text, site_index)
    return (widgets.note(res.notice), gr.update(maximum=last, value=inv.token), C.invariance_figure(inv),
            C.describe_invariance(inv), C.residual_overview_figure(res), site_fig, site_md)


def timing(cm: CourseModel, progress=gr.Progress()):
    timings = C.time_norms(cm.device, C.timing_dims(cm.config), on_step=lambda f, d: progress(f, desc=d))
    return C.timing_figure(timings, C.device_name(cm.device)), C.timing_table(timings)


def placement(cm: CourseModel, n_layers, gain, progress=None):
    """(figure, table, message, depth, gain); `cm` is unused (the models are fresh) but keeps the handler form."""
    step = (lambda f, d: progress(f, desc=d)) if progress is not None else None
    r = C.compare_placements(n_layers, gain, on_step=step)
    moved = (lambda v: gr.update(value=v)) if r.notice else (lambda v: gr.skip())
    return (C.placement_figure(r), C.describe_placements(r), widgets.note(r.notice), moved(r.n_layers),
            moved(r.gain))


def on_placement(cm, n_layers, gain, progress=gr.Progress()):
    return placement(cm, n_layers, gain, progress)


def reveal_length(cm: CourseModel, text, guess):
    return C.reveal_length(cm, C.load_text(cm, text), guess)


def toy(text):
    """The toy vector edited: both norms number by number."""
    t = C.toy_norms(text)
    return widgets.note(t.notice), C.toy_figure(t), C.toy_markdown(t)


def reveal_shift(cm: CourseModel, text, guess):
    return C.reveal_shift(cm, C.load_text(cm, text), guess)


# ----------------------------------------------------------------------------- page


def first_view(cm: CourseModel) -> dict[str, dict]:
    """Everything on the page that depends on the model, as constructor/update arguments per component: the page is
    built from it (course model) and `widgets.on_model` refills the same components from it for another model.
    The first entry is the page's message slot. (The placement figure uses fresh small models, not this one.)"""
    res = C.load_text(cm, C.DEFAULT_TEXT)
    inv = C.invariance(cm, res, DEFAULTS["token"], DEFAULTS["shift"], DEFAULTS["scale"])
    site0 = C.invariance_site(cm)
    site_fig, site_md = site(cm, C.DEFAULT_TEXT, site0)
    return {"text_msg": dict(value=widgets.note(res.notice)),
            "rms_out": dict(value=""), "shift_out": dict(value=""),  # reveals measured on another model are gone
            "token": dict(maximum=len(res.ids) - 1, value=inv.token),
            "inv_plot": dict(value=C.invariance_figure(inv)), "inv_readout": dict(value=C.describe_invariance(inv)),
            "overview_plot": dict(value=C.residual_overview_figure(res)),
            "site_pick": dict(choices=[(s.name, i) for i, s in enumerate(res.sites)], value=site0),
            "site_plot": dict(value=site_fig), "site_readout": dict(value=site_md),
            "time_btn": dict(value=f"Time both norms on this machine ({C.device_name(cm.device)})")}


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): one traced pass over the default text."""
    return cost.text_pass(cm, C.DEFAULT_TEXT, C.MAX_TOKENS)


def refresh(cm: CourseModel) -> tuple:
    """`first_view` as updates, in its order (for widgets.on_model)."""
    return tuple(gr.update(**kw) for kw in first_view(cm).values())


def build(cm: CourseModel, lesson) -> None:
    key = widgets.model_key()
    parts = widgets.sections(lesson, 10)
    V = first_view(cm)
    place_fig, place_md, *_ = placement(cm, DEFAULTS["depth"], DEFAULTS["gain"])
    toy_msg0, toy_fig0, toy_md0 = toy(C.TOY_DEFAULT)

    widgets.lesson_header(lesson)
    widgets.prose(parts[0])

    # --- the toy: one short vector, both norms number by number
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            toy_in = gr.Textbox(C.TOY_DEFAULT, label=f"x: up to {C.TOY_MAX} numbers, separated by commas",
                                elem_id="rmsnorm-toy-x")
            toy_msg = widgets.message(toy_msg0, elem_id="rmsnorm-toy-msg")
            toy_md = gr.Markdown(toy_md0, elem_id="rmsnorm-toy-steps")
        with gr.Column(scale=1, min_width=300):
            toy_fig = widgets.Plot(toy_fig0, label="One vector through both norms", elem_id="rmsnorm-toy",
                                   code=C.toy_figure)
    widgets.prose(parts[1])

    # --- the learner's text, shared by every figure that reads the course model
    with gr.Row():
        text = gr.Textbox(C.DEFAULT_TEXT, lines=2, max_lines=6, scale=4, label=f"Your text ({widgets.RUN_HINT})",
                          info=f"BOS is added in front; at most {C.MAX_TOKENS} tokens with BOS are used.")
        run = gr.Button("Run the model on this text", variant="primary", scale=1)
    text_msg = widgets.message(V["text_msg"]["value"])

    # --- question 1, then the invariance figure that answers it
    shift_guess, shift_btn, shift_out = widgets.predict_reveal(C.Q_SHIFT, "Reveal (computes both norms)",
                                                               elem_id="rmsnorm-reveal-shift")
    with widgets.until_reveal(C.Q_SHIFT.qid):
        widgets.prose(parts[2])
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                token = widgets.Slider(0, **V["token"], step=1, label="token position",
                                       info="whose residual-stream vector x to use (0 = BOS)", elem_id="rmsnorm-token")
                shift = widgets.Slider(-3.0, 3.0, DEFAULTS["shift"], step=0.1,
                                       label="shift b (added to every element)", elem_id="rmsnorm-shift")
                scale = widgets.Slider(0.1, 5.0, DEFAULTS["scale"], step=0.1,
                                       label="scale a (multiplies every element)", elem_id="rmsnorm-scale")
                inv_readout = gr.Markdown(**V["inv_readout"], elem_id="rmsnorm-invariance-readout")
            with gr.Column(scale=2):
                inv_plot = widgets.Plot(**V["inv_plot"], label="x, a·x + b, and both norms of each",
                                        elem_id="rmsnorm-invariance", code=C.invariance_figure)

    widgets.prose(parts[3])
    # --- question 2, then the residual stream around every norm that answers it
    rms_guess, rms_btn, rms_out = widgets.predict_reveal(C.Q_LENGTH, "Reveal (runs the model on your text)",
                                                         elem_id="rmsnorm-reveal-rms")
    with widgets.until_reveal(C.Q_LENGTH.qid):
        overview_plot = widgets.Plot(**V["overview_plot"], label="Per-token RMS before and after each RMSNorm",
                                     elem_id="rmsnorm-overview", code=C.residual_overview_figure)
    widgets.prose(parts[4])
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            site_pick = widgets.Dropdown(**V["site_pick"], label="norm to inspect", elem_id="rmsnorm-site")
            site_readout = gr.Markdown(**V["site_readout"], elem_id="rmsnorm-site-readout")
        with gr.Column(scale=3):
            site_plot = widgets.Plot(**V["site_plot"], label="Values through one norm, and its learned gain",
                                elem_id="rmsnorm-site-plot", code=C.site_figure)

    with widgets.go_deeper("why normalise at all", "why"):
        widgets.prose(parts[5])
    with widgets.go_deeper("what dropping the mean saves, timed here", "cost"):
        widgets.prose(parts[6])
        with gr.Row():
            with gr.Column(scale=1, min_width=420):
                gr.Markdown(C.operation_table())
            with gr.Column(scale=1, min_width=420):
                time_btn = gr.Button(**V["time_btn"], variant="primary")
                time_plot = widgets.Plot(message_figure("Press the button to time both norms here, now."),
                                    label="Time per call", elem_id="rmsnorm-timing", code=C.timing_figure)
                time_table = gr.Markdown(elem_id="rmsnorm-timing-table")
        widgets.prose(parts[7])
    with widgets.go_deeper("pre-norm against post-norm: gradients at initialisation", "placement"):
        widgets.prose(parts[8])
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                depth = widgets.Slider(2, 16, DEFAULTS["depth"], step=1, label="layers", elem_id="rmsnorm-depth")
                gain = widgets.Slider(0.1, 3.0, DEFAULTS["gain"], step=0.1,
                                      label="init gain (Xavier range × gain; 1 = Xiong et al.'s init)",
                                      info=f"the course model's init, std 0.02, is about gain "
                                           f"{C.course_init_gain():.2f} at this width ({C.PLACEMENT_SIZES['dim']})",
                                      elem_id="rmsnorm-gain")
                place_btn = gr.Button("Build the models and backpropagate", variant="primary")
                place_msg = widgets.message()
                place_table = gr.Markdown(place_md, elem_id="rmsnorm-placement-table")
            with gr.Column(scale=2):
                place_plot = widgets.Plot(place_fig, label="Gradient norms at initialisation",
                                          elem_id="rmsnorm-placement", code=C.placement_figure)
        widgets.prose(parts[9])

    widgets.prose(parts[10])
    widgets.lesson_footer(lesson)

    # --- listeners
    H = widgets.handler
    toy_in.change(toy, toy_in, [toy_msg, toy_fig, toy_md], api_name="rmsnorm_toy", trigger_mode="always_last",
                  show_progress="minimal")
    text_ev = gr.on([run.click, text.submit], H(text_changed, 7), [key, text, token, shift, scale, site_pick],
          [text_msg, token, inv_plot, inv_readout, overview_plot, site_plot, site_readout], api_name="rmsnorm_text",
          show_progress="minimal")
    inv_ev = gr.on([token.release, shift.release, scale.release], H(invariance, 5, msg_at=1),
                   [key, text, token, shift, scale],
          [inv_plot, inv_readout, token, shift, scale], api_name="rmsnorm_invariance", trigger_mode="always_last",
          show_progress="minimal")
    site_pick.input(H(site, 2, msg_at=1), [key, text, site_pick], [site_plot, site_readout], api_name="rmsnorm_site",
                    trigger_mode="always_last", show_progress="minimal")
    time_btn.click(H(timing, 2, msg_at=1), [key], [time_plot, time_table], api_name="rmsnorm_timing",
                   concurrency_limit=1)
    place_ev = gr.on([place_btn.click, depth.release, gain.release], H(on_placement, 5, msg_at=2), [key, depth, gain],
          [place_plot, place_table, place_msg, depth, gain], api_name="rmsnorm_placement",
          trigger_mode="always_last")
    rms_btn.click(H(reveal_length), [key, text, rms_guess], rms_out, api_name="rmsnorm_reveal_length")
    shift_btn.click(H(reveal_shift), [key, text, shift_guess], shift_out, api_name="rmsnorm_reveal_shift")
    # another model: every component of first_view again, in its order (the message slot first)
    comps = dict(text_msg=text_msg, rms_out=rms_out, shift_out=shift_out, token=token,
                 inv_plot=inv_plot, inv_readout=inv_readout, overview_plot=overview_plot, site_pick=site_pick,
                 site_plot=site_plot, site_readout=site_readout, time_btn=time_btn)
    assert list(comps) == list(V), "first_view and the page list different components"
    widgets.on_model(key, refresh, list(comps.values()), opening=opening_cost)
    share.link(key, dict(text=text, token=token, shift=shift, scale=scale, norm=site_pick, layers=depth, gain=gain,
                         x=toy_in), runs=[text_ev, inv_ev, place_ev])
