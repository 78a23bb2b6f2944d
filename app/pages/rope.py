"""Lesson 3 page: positional encoding and RoPE.

Layout first (prose and figures alternate, following lesson.md's `<!-- figure -->` markers), listeners
last. Every handler is `on_x(cm, *inputs)`, wired through `widgets.handler` with the page's model key first; it
calls one function of `lessons.rope.compute`, which clamps every input (lessons.inputs) and says so in a notice,
and only lays out what it returns. A LessonError (empty text) becomes a message next to the figure it concerns.

Everything that depends on the model (slider ranges, choices, labels, first figures) comes from one function,
`first_view(cm)`: the page is built from it with the course model, and `widgets.on_model` refills the same components
from it when the learner picked another model on the course map.

Main events (api_name: inputs), all prefixed "rope_" because api names are shared by the whole app:
    rope_tokens             text -> the query/key pickers and default positions for the text
    rope_shuffle            text, head, seed (-> message, figure, readout, the shuffle number used)
    rope_new_shuffle        text, head, seed -> the next shuffle number and its figure ("Shuffle again")
    rope_schemes            text, n_positions, clip (-> message, figure, table, both sliders)
    rope_rotate             text, layer, head, q_token, k_token, m, n, pair
    rope_relative           text, layer, head, q_token, k_token, m, n, shift
    rope_spectrum           log10(rope_theta)
    rope_compare_attention  text, layer, head, variant ("none" or a rope_theta such as "500000")
    rope_loss_change        variant
    rope_reveal_rope_off    prediction ("barely" | "little" | "lot")
    rope_reveal_theta       prediction
    rope_toy                q1, q2, k1, k2, m, n -> message, figure, readout (the toy: one 2-D query and key)

The core path: the toy (one 2-D query and key rotated by the model's own RoPE code), RoPE on a real head, the
relative property, and two questions whose answering figures (the attention maps with RoPE off or another
rope_theta, the measured loss) stay hidden until their Reveal. The shuffle, the four schemes and the frequency
spectrum sit in Go deeper sections.
"""

from __future__ import annotations

import math

import gradio as gr

from app import costs, share, widgets
from lessons import cost
from lessons.course import CourseModel
from lessons.rope import compute as C

PREDICTION_CHOICES = [(text, key) for key, text in C.PREDICTIONS.items()]
N_SECTIONS = 13  # lesson.md is cut at 12 '<!-- figure -->' markers; see the layout below
QUIET = dict(show_progress="minimal")  # slider redraws take milliseconds: no overlay flashing over the figure


def variant_choices(cm: CourseModel) -> list[tuple[str, str]]:
    own = float(cm.config.rope_theta)
    out = [("RoPE switched off (position = none)", "none")]
    for v in C.VARIANTS[1:]:
        th = float(v)
        note = " (as trained)" if th == own else " (Llama 3)" if th == C.LLAMA3_THETA else ""
        out.append((f"rope_theta = {th:,.0f}{note}", v))
    return out


# ----------------------------------------------------------------------------- handlers (no maths here)


def _defaults(cm: CourseModel, text) -> tuple[list, int, int]:
    """Picker choices and the default query (last token) and key (three tokens earlier) for a text."""
    choices = C.token_choices(cm, text)
    q = len(choices) - 1
    return choices, q, max(1, q - 3) if q > 1 else 0


def on_tokens(cm, text):
    choices, q, k = _defaults(cm, text)
    notice = C.prepared(cm, text, C.ROTATE_TOKENS).notice
    return (widgets.note(notice), gr.update(choices=choices, value=q), gr.update(choices=choices, value=k),
            gr.update(value=q), gr.update(value=k))


def on_shuffle(cm, text, head, seed):
    r = C.shuffle_scores(cm, text, head, seed)
    return widgets.note(r.notice), r.figure, r.readout, r.seed  # the box shows the shuffle number used


def on_new_shuffle(cm, text, head, seed):
    """'Shuffle again' = the next shuffle number (clamped into 0 .. SEED_MAX first, wrapping at the end)."""
    seed, notice = C.next_seed(seed)
    r = C.shuffle_scores(cm, text, head, seed)
    return seed, widgets.note(" ".join(n for n in (notice, r.notice) if n)), r.figure, r.readout


def on_schemes(cm, text, n_positions, clip):
    r = C.schemes(cm, text, n_positions, clip)
    moved = (lambda v: gr.update(value=v)) if r.notice else (lambda v: gr.skip())  # sliders show the values used
    return widgets.note(r.notice), r.figure, r.table, moved(r.n_positions), moved(r.clip)


def on_rotate(cm, text, layer, head, q_token, k_token, m, n, pair):
    r = C.rotate(cm, text, layer, head, q_token, k_token, m, n, pair)
    return (widgets.note(r.notice), r.plane, r.angles_figure, r.readout,
            gr.update(value=r.m), gr.update(value=r.n), gr.update(value=r.pair))


def on_relative(cm, text, layer, head, q_token, k_token, m, n, shift):
    r = C.relative_shift(cm, text, layer, head, q_token, k_token, m, n, shift)
    return widgets.note(r.notice), r.figure, r.readout, gr.update(value=r.shift)


def on_spectrum(cm, log_theta):
    r = C.spectrum(cm, log_theta)
    # the slider moves to the value used only when its own was clamped or replaced (NaN, 1e20, text)
    return (widgets.note(r.notice), r.figure, r.readout,
            gr.update(value=round(math.log10(r.theta), 4)) if r.notice else gr.skip())


def on_compare(cm, text, layer, head, variant):
    r = C.compare_attention(cm, text, layer, head, variant)
    hint = f"Press **Measure the loss** to score the trained model and the one with {r.variant_name}."
    return widgets.note(r.notice), r.figure, r.readout, hint


def _progress_fn(progress, what):
    return lambda done, total: progress(done / total, desc=f"{what}: window {done} of {total}")


def on_loss(cm, variant, progress=gr.Progress()):
    what = "scoring held-out text" + costs.while_running(C.loss_cost(cm))
    return C.loss_change(cm, variant, on_window=_progress_fn(progress, what)).readout


def on_reveal_off(cm, prediction, progress=gr.Progress()):
    return C.reveal(cm, "none", prediction, _progress_fn(progress, "running the model" + costs.while_running(
        C.loss_cost(cm))))


def on_reveal_theta(cm, prediction, progress=gr.Progress()):
    return C.reveal(cm, C.theta_question_variant(cm), prediction, _progress_fn(
        progress, "running the model" + costs.while_running(C.loss_cost(cm))))


# ----------------------------------------------------------------------------- page


def first_view(cm: CourseModel) -> dict[str, dict]:
    """Everything on the page that depends on the model, as constructor/update arguments per component: the page is
    built from it (course model) and `widgets.on_model` refills the same components from it for another model.
    The first entry is the page's message slot."""
    c = cm.config
    text0 = C.DEFAULT_TEXT
    choices, q0, k0 = _defaults(cm, text0)
    layers = [(f"layer {i}", i) for i in range(c.n_layers)]
    heads = [(f"head {i}", i) for i in range(c.n_heads)]
    L, clip_max = c.max_seq_len, C.shaw_clip_max(cm)
    n_pos0, clip0 = min(64, L), min(8, clip_max)
    log0 = math.log10(c.rope_theta)
    shift0 = min(100, L - 1 - q0)
    l0, h0, _ = C.most_changed_head(cm, text0, "none")  # open on the head that RoPE matters most to
    loss = C.loss_cost(cm)  # lessons.cost's estimate, said before the learner measures (nothing for the course model)
    v = {"text_msg": dict(value=costs.notice(loss, "Measuring a loss, and each of the two reveals (the model and a "
                                                   "variant on the held-out slice)"))}

    def three(prefix, values):
        for name, val in zip(("msg", "fig", "readout"), values):
            v[f"{prefix}_{name}"] = dict(value=val)

    v["shuf_head"] = dict(choices=heads, value=0)
    three("shuf", on_shuffle(cm, text0, 0, 0)[:3])
    v["n_pos"] = dict(maximum=L, value=n_pos0)
    v["clip"] = dict(maximum=clip_max, value=clip0)
    three("sch", on_schemes(cm, text0, n_pos0, clip0)[:3])
    v["layer"] = dict(choices=layers, value=0)
    v["head"] = dict(choices=heads, value=0)
    v["q_tok"] = dict(choices=choices, value=q0)
    v["k_tok"] = dict(choices=choices, value=k0)
    v["m"] = dict(maximum=L - 1, value=q0)
    v["n"] = dict(maximum=L - 1, value=k0)
    v["pair"] = dict(maximum=c.head_dim // 2 - 1, value=0)
    rot = on_rotate(cm, text0, 0, 0, q0, k0, q0, k0, 0)
    for name, val in zip(("rot_msg", "plane", "angles", "rot_readout"), rot[:4]):
        v[name] = dict(value=val)
    v["shift"] = dict(minimum=-(L - 1), maximum=L - 1, value=shift0)
    three("rel", on_relative(cm, text0, 0, 0, q0, k0, q0, k0, shift0)[:3])
    v["log_theta"] = dict(value=round(log0, 4), label=theta_label(c.rope_theta))
    three("spec", on_spectrum(cm, log0)[:3])
    v["question2"] = dict(value=f"The next question runs this model, trained at rope_theta = {c.rope_theta:,.0f}, "
                                f"with rope_theta = {float(C.theta_question_variant(cm)):,.0f}.")
    v["ans1"] = dict(value="")  # a reveal measured on another model is gone with it
    v["ans2"] = dict(value="")
    v["cmp_layer"] = dict(choices=layers, value=l0)
    v["cmp_head"] = dict(choices=heads, value=h0)
    v["variant"] = dict(choices=variant_choices(cm), value="none")
    cmp0 = on_compare(cm, text0, l0, h0, "none")
    for name, val in zip(("cmp_msg", "cmp_fig", "cmp_readout", "loss_out"), cmp0):
        v[name] = dict(value=val)
    v["loss_btn"] = dict(value=costs.label(LOSS_LABEL, loss) if loss.slow else f"{LOSS_LABEL} (about a second)")
    return v


LOSS_LABEL = "Measure the loss of the variant chosen above"


def theta_label(theta: float) -> str:
    """The spectrum slider's label: this model's value, then the published ones it is not (never one twice)."""
    refs = [(10_000.0, "4 = 10,000 as in Llama 2"), (C.LLAMA3_THETA, "5.7 = 500,000 as in Llama 3")]
    own = f"this model: {math.log10(theta):.2f} = {theta:,.0f}"
    for value, text in refs:
        if abs(float(theta) - value) < 0.5:
            own += " as in Llama " + text.rsplit(" ", 1)[-1]
    others = [text for value, text in refs if abs(float(theta) - value) >= 0.5]
    return "log₁₀ rope_theta (" + "; ".join([own, *others]) + ")"


def on_toy(qx, qy, kx, ky, m, n):
    t = C.toy_rope(qx, qy, kx, ky, m, n)
    return widgets.note(t.notice), C.toy_rope_figure(t), C.toy_rope_readout(t)


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): about four passes over the default text (the model and its RoPE-off twin for the head RoPE matters most
    to, and the opening figures' q and k)."""
    return cost.text_pass(cm, C.DEFAULT_TEXT, C.ROTATE_TOKENS) * 4


def refresh(cm: CourseModel) -> tuple:
    """`first_view` as updates, in its order (for widgets.on_model)."""
    return tuple(gr.update(**kw) for kw in first_view(cm).values())


def build(cm: CourseModel, lesson) -> None:
    key = widgets.model_key()
    V = first_view(cm)
    s = widgets.sections(lesson, N_SECTIONS - 1)
    toy0 = on_toy(*C.TOY_Q, *C.TOY_K, 3, 1)

    widgets.lesson_header(lesson)
    widgets.prose(s[0])

    # 0. the toy: one 2-D query and key, rotated by their positions
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            with gr.Row():
                toy_q1 = widgets.Number(C.TOY_Q[0], label="q₁", min_width=60, elem_id="rope-toy-q1")
                toy_q2 = widgets.Number(C.TOY_Q[1], label="q₂", min_width=60, elem_id="rope-toy-q2")
                toy_k1 = widgets.Number(C.TOY_K[0], label="k₁", min_width=60, elem_id="rope-toy-k1")
                toy_k2 = widgets.Number(C.TOY_K[1], label="k₂", min_width=60, elem_id="rope-toy-k2")
            toy_m = widgets.Slider(0, C.TOY_POSITIONS - 1, 3, step=1, label="Toy query position m", elem_id="rope-toy-m")
            toy_n = widgets.Slider(0, C.TOY_POSITIONS - 1, 1, step=1, label="Toy key position n", elem_id="rope-toy-n")
            toy_msg = widgets.message(toy0[0], elem_id="rope-toy-msg")
        with gr.Column(scale=2, min_width=300):
            toy_fig = widgets.Plot(toy0[1], label="One 2-D query and key, rotated", elem_id="rope-toy",
                                   code=C.toy_rope_figure)
    toy_md = gr.Markdown(toy0[2], elem_id="rope-toy-readout")
    widgets.prose(s[1])

    # 1. RoPE on a real head; the text box serves the whole page
    with gr.Row():
        text = gr.Textbox(C.DEFAULT_TEXT, label=f"Text for every figure on this page ({widgets.RUN_HINT})", lines=2,
                          max_lines=4, scale=5, elem_id="rope-text")
        apply = gr.Button("Use this text", variant="primary", scale=1)
    text_msg = widgets.message(V["text_msg"]["value"])
    with gr.Row():
        layer = widgets.Dropdown(**V["layer"], label="Layer", elem_id="rope-layer")
        head = widgets.Dropdown(**V["head"], label="Query head")
        q_tok = widgets.Dropdown(**V["q_tok"], label="Query token (its q before RoPE)")
        k_tok = widgets.Dropdown(**V["k_tok"], label="Key token (its k before RoPE)")
    with gr.Row():
        m = widgets.Slider(0, **V["m"], step=1, label="Query position m", elem_id="rope-m")
        n = widgets.Slider(0, **V["n"], step=1, label="Key position n (at most m)", elem_id="rope-n")
        pair = widgets.Slider(0, **V["pair"], step=1, label="Pair index i", elem_id="rope-pair")
    rot_msg = widgets.message(V["rot_msg"]["value"])
    with gr.Row():
        plane = widgets.Plot(**V["plane"], label="one pair of q and k, before and after rotation", elem_id="rope-plane", code=C.rotate)
        angles = widgets.Plot(**V["angles"], label="rotation angle of every position and pair", elem_id="rope-angles", code=C.rotate)
    rot_readout = gr.Markdown(**V["rot_readout"], elem_id="rope-angle-readout")
    widgets.prose(s[2])

    # 2. relative property
    shift = widgets.Slider(**V["shift"], step=1, label="Shift s for both tokens",
                           info="clamped so that m+s and n+s stay inside the context", elem_id="rope-shift")
    rel_msg = widgets.message(V["rel_msg"]["value"])
    rel_fig = widgets.Plot(**V["rel_fig"], label="score as both tokens shift", code=C.relative_shift)
    rel_readout = gr.Markdown(**V["rel_readout"], elem_id="rope-relative-readout")
    widgets.prose(s[3])

    # 3. predict, then reveal: the figures that measure a variant stay hidden until asked
    pred1, reveal1, ans1 = widgets.predict_reveal(C.Q_OFF.text, PREDICTION_CHOICES, elem_id="rope-reveal-1",
                                                  qid=C.Q_OFF.qid)
    with widgets.until_reveal(C.Q_OFF.qid):
        widgets.prose(s[4])
        with gr.Row():
            cmp_layer = widgets.Dropdown(**V["cmp_layer"], label="Layer")
            cmp_head = widgets.Dropdown(**V["cmp_head"], label="Head")
            variant = widgets.Radio(**V["variant"], label="Compare the trained model with", scale=3)
        cmp_msg = widgets.message(V["cmp_msg"]["value"])
        cmp_fig = widgets.Plot(**V["cmp_fig"], label="attention maps", elem_id="rope-compare", code=C.compare_attention)
        cmp_readout = gr.Markdown(**V["cmp_readout"])
        widgets.prose(s[5])
    question2 = gr.Markdown(**V["question2"], elem_id="rope-question-2")
    pred2, reveal2, ans2 = widgets.predict_reveal(C.Q_THETA.text, PREDICTION_CHOICES, elem_id="rope-reveal-2",
                                                  qid=C.Q_THETA.qid)
    with widgets.until_reveal(C.Q_THETA.qid):
        loss_btn = gr.Button(**V["loss_btn"], variant="primary",
                             elem_id="rope-loss-button")
        loss_out = gr.Markdown(**V["loss_out"], elem_id="rope-loss")

    # depth
    with widgets.go_deeper("shuffling the text, with and without positions", "shuffle"):
        widgets.prose(s[6])
        with gr.Row():
            shuf_head = widgets.Dropdown(**V["shuf_head"], label="Layer-0 head", scale=1, elem_id="rope-shuffle-head")
            seed = widgets.Number(0, label="Shuffle number", info=f"0 to {C.SEED_MAX:,}; the same number gives the "
                                                             "same shuffle", scale=1, elem_id="rope-seed")
            reshuffle = gr.Button("Shuffle again", scale=1)
        shuf_msg, shuf_fig, shuf_readout = _outputs(V, "shuf", C.shuffle_scores, elem_id="rope-shuffle")
        widgets.prose(s[7])
    with widgets.go_deeper("four ways to give attention positions", "schemes"):
        widgets.prose(s[8])
        with gr.Row():
            n_pos = widgets.Slider(8, **V["n_pos"], step=1, label="Positions shown",
                                   info="applies when you let go of the slider", elem_id="rope-n-pos")
            clip = widgets.Slider(1, **V["clip"], step=1, label="Shaw's clipping distance k")
        sch_msg, sch_fig, sch_table = _outputs(V, "sch", C.schemes, latex_table=True)
        widgets.prose(s[9])
    with widgets.go_deeper("frequencies, long-range decay, and past the context", "spectrum"):
        widgets.prose(s[10])
        log_theta = widgets.Slider(1, 7, **V["log_theta"], step=0.05, elem_id="rope-log-theta")
        spec_msg, spec_fig, spec_readout = _outputs(V, "spec", C.spectrum, elem_id="rope-spectrum")
        widgets.prose(s[11])
    widgets.prose(s[12])
    widgets.lesson_footer(lesson)

    # ------------------------------------------------------------------------- listeners
    H = widgets.handler
    toy_ins = [toy_q1, toy_q2, toy_k1, toy_k2, toy_m, toy_n]
    gr.on([*(b.input for b in toy_ins[:4]), toy_m.release, toy_n.release], on_toy, toy_ins,
          [toy_msg, toy_fig, toy_md], api_name="rope_toy", trigger_mode="always_last", **QUIET)
    text_events = [text.submit, apply.click]
    rot_in = [key, text, layer, head, q_tok, k_tok, m, n, pair]
    rot_out = [rot_msg, plane, angles, rot_readout, m, n, pair]
    rel_in = [key, text, layer, head, q_tok, k_tok, m, n, shift]
    rel_out = [rel_msg, rel_fig, rel_readout, shift]

    # A new text resets the pickers and positions first, then redraws the rotation figures with them.
    tokens_ev = gr.on(text_events, H(on_tokens, 5), [key, text], [text_msg, q_tok, k_tok, m, n],
                      api_name="rope_tokens")
    (tokens_ev.then(H(on_rotate, 7), rot_in, rot_out, api_visibility="private")
     .then(H(on_relative, 4), rel_in, rel_out, api_visibility="private"))
    shuffle_ev = gr.on([*text_events, shuf_head.input, seed.submit], H(on_shuffle, 4), [key, text, shuf_head, seed],
          [shuf_msg, shuf_fig, shuf_readout, seed], api_name="rope_shuffle")
    reshuffle.click(H(on_new_shuffle, 4, msg_at=1), [key, text, shuf_head, seed],
                    [seed, shuf_msg, shuf_fig, shuf_readout], api_name="rope_new_shuffle")
    schemes_ev = gr.on([*text_events, n_pos.release, clip.release], H(on_schemes, 5), [key, text, n_pos, clip],
          [sch_msg, sch_fig, sch_table, n_pos, clip], api_name="rope_schemes", **QUIET)
    rotate_ev = gr.on([layer.input, head.input, q_tok.input, k_tok.input, m.release, n.release, pair.release],
          H(on_rotate, 7), rot_in, rot_out, api_name="rope_rotate", **QUIET)
    relative_ev = gr.on([layer.input, head.input, q_tok.input, k_tok.input, m.release, n.release, shift.release],
          H(on_relative, 4), rel_in, rel_out, api_name="rope_relative", **QUIET)
    spectrum_ev = log_theta.release(H(on_spectrum, 4), [key, log_theta], [spec_msg, spec_fig, spec_readout, log_theta],
                      api_name="rope_spectrum", **QUIET)
    compare_ev = gr.on([*text_events, cmp_layer.input, cmp_head.input, variant.input], H(on_compare, 4),
          [key, text, cmp_layer, cmp_head, variant], [cmp_msg, cmp_fig, cmp_readout, loss_out],
          api_name="rope_compare_attention")
    loss_btn.click(H(on_loss), [key, variant], [loss_out], api_name="rope_loss_change")
    reveal1.click(H(on_reveal_off), [key, pred1], [ans1], api_name="rope_reveal_rope_off")
    reveal2.click(H(on_reveal_theta), [key, pred2], [ans2], api_name="rope_reveal_theta")
    # another model: every component of first_view again, in its order (the message slot first)
    comps = dict(text_msg=text_msg, shuf_head=shuf_head, shuf_msg=shuf_msg, shuf_fig=shuf_fig,
                 shuf_readout=shuf_readout, n_pos=n_pos, clip=clip, sch_msg=sch_msg, sch_fig=sch_fig,
                 sch_readout=sch_table, layer=layer, head=head, q_tok=q_tok, k_tok=k_tok, m=m, n=n, pair=pair,
                 rot_msg=rot_msg, plane=plane, angles=angles, rot_readout=rot_readout, shift=shift, rel_msg=rel_msg,
                 rel_fig=rel_fig, rel_readout=rel_readout, log_theta=log_theta, spec_msg=spec_msg, spec_fig=spec_fig,
                 spec_readout=spec_readout, question2=question2, ans1=ans1, ans2=ans2, cmp_layer=cmp_layer,
                 cmp_head=cmp_head, variant=variant, cmp_msg=cmp_msg, cmp_fig=cmp_fig, cmp_readout=cmp_readout,
                 loss_out=loss_out, loss_btn=loss_btn)
    assert list(comps) == list(V), "first_view and the page list different components"
    widgets.on_model(key, refresh, list(comps.values()), opening=opening_cost)
    # (the query and key tokens and their positions follow the text: a new text resets them, so a link omits them)
    share.link(key, dict(text=text, shuffle_head=shuf_head, shuffle=seed, positions=n_pos, clip=clip, layer=layer,
                         head=head, pair=pair, shift=shift, log_theta=log_theta, compare_layer=cmp_layer,
                         compare_head=cmp_head, variant=variant),
               runs=[tokens_ev, shuffle_ev, schemes_ev, rotate_ev, relative_ev, spectrum_ev, compare_ev])


def _outputs(V: dict, prefix: str, code, latex_table: bool = False, elem_id: str | None = None):
    """A message slot, a figure and a Markdown readout, filled with first_view's `<prefix>_msg/_fig/_readout`."""
    slot = widgets.message(V[f"{prefix}_msg"]["value"])
    plot = widgets.Plot(**V[f"{prefix}_fig"], elem_id=elem_id, code=code)
    md = V[f"{prefix}_readout"]["value"]
    out = widgets.prose(md) if latex_table else gr.Markdown(md, elem_id=f"{elem_id}-readout" if elem_id else None)
    return slot, plot, out
