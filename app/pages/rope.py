"""Lesson 3 page: positional encoding and RoPE.

Layout first (prose and figures alternate, following lesson.md's `<!-- figure -->` markers), listeners
last. Every handler is `on_x(cm, *inputs)`, wired through `widgets.handler` with the page's model key first; it
calls one function of `lessons.rope.compute`, which clamps every input (lessons.inputs) and says so in a notice,
and only lays out what it returns. A LessonError (empty text) becomes a message next to the figure it concerns.

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
"""

from __future__ import annotations

import math

import gradio as gr

from app import widgets
from lessons.course import CourseModel
from lessons.rope import compute as C

PREDICTION_CHOICES = [(text, key) for key, text in C.PREDICTIONS.items()]
N_SECTIONS = 8  # lesson.md is cut at 7 '<!-- figure -->' markers, one per figure block below
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
    return C.loss_change(cm, variant, on_window=_progress_fn(progress, "scoring held-out text")).readout


def on_reveal_off(cm, prediction, progress=gr.Progress()):
    return C.reveal(cm, "none", prediction, _progress_fn(progress, "running the model"))


def on_reveal_theta(cm, prediction, progress=gr.Progress()):
    return C.reveal(cm, C.theta_question_variant(cm), prediction, _progress_fn(progress, "running the model"))


# ----------------------------------------------------------------------------- page


def build(cm: CourseModel, lesson) -> None:
    key = widgets.model_key()
    c = cm.config
    text0 = C.DEFAULT_TEXT
    choices, q0, k0 = _defaults(cm, text0)
    layers = [(f"layer {i}", i) for i in range(c.n_layers)]
    heads = [(f"head {i}", i) for i in range(c.n_heads)]
    s = (widgets.sections(lesson) + [""] * N_SECTIONS)[:N_SECTIONS]
    log0 = math.log10(c.rope_theta)
    q_variant = C.theta_question_variant(cm)

    widgets.lesson_header(lesson)
    widgets.prose(s[0])

    # 1. shuffling without positions; the text box serves the whole page
    with gr.Row():
        text = gr.Textbox(text0, label=f"Text for every figure on this page ({widgets.RUN_HINT})", lines=2,
                          max_lines=4, scale=5)
        apply = gr.Button("Use this text", variant="primary", scale=1)
    text_msg = widgets.message()
    with gr.Row():
        shuf_head = gr.Dropdown(heads, value=0, label="Layer-0 head", scale=1)
        seed = gr.Number(0, label="Shuffle number", info=f"0 to {C.SEED_MAX:,}; the same number gives the same "
                                                         "shuffle", scale=1, elem_id="rope-seed")
        reshuffle = gr.Button("Shuffle again", scale=1)
    shuf_msg, shuf_fig, shuf_readout = _outputs(on_shuffle(cm, text0, 0, 0)[:3], elem_id="rope-shuffle")
    widgets.prose(s[1])

    # 2. four schemes
    with gr.Row():
        n_pos = widgets.Slider(8, c.max_seq_len, value=min(64, c.max_seq_len), step=1, label="Positions shown",
                               info="applies when you let go of the slider")
        clip = widgets.Slider(1, C.shaw_clip_max(cm), value=min(8, C.shaw_clip_max(cm)), step=1,
                              label="Shaw's clipping distance k")
    sch_msg, sch_fig, sch_table = _outputs(on_schemes(cm, text0, n_pos.value, clip.value)[:3], latex_table=True)
    widgets.prose(s[2])

    # 3. RoPE in 2-D
    with gr.Row():
        layer = gr.Dropdown(layers, value=0, label="Layer")
        head = gr.Dropdown(heads, value=0, label="Query head")
        q_tok = gr.Dropdown(choices, value=q0, label="Query token (its q before RoPE)")
        k_tok = gr.Dropdown(choices, value=k0, label="Key token (its k before RoPE)")
    with gr.Row():
        m = widgets.Slider(0, c.max_seq_len - 1, value=q0, step=1, label="Query position m", elem_id="rope-m")
        n = widgets.Slider(0, c.max_seq_len - 1, value=k0, step=1, label="Key position n (at most m)",
                           elem_id="rope-n")
        pair = widgets.Slider(0, c.head_dim // 2 - 1, value=0, step=1, label="Pair index i", elem_id="rope-pair")
    r0 = on_rotate(cm, text0, 0, 0, q0, k0, q0, k0, 0)
    rot_msg = widgets.message(r0[0])
    with gr.Row():
        plane = gr.Plot(r0[1], label="one pair of q and k, before and after rotation", elem_id="rope-plane")
        angles = gr.Plot(r0[2], label="rotation angle of every position and pair", elem_id="rope-angles")
    rot_readout = gr.Markdown(r0[3], elem_id="rope-angle-readout")
    widgets.prose(s[3])

    # 4. relative property
    shift0 = min(100, c.max_seq_len - 1 - q0)
    shift = widgets.Slider(-(c.max_seq_len - 1), c.max_seq_len - 1, value=shift0, step=1,
                           label="Shift s for both tokens",
                           info="clamped so that m+s and n+s stay inside the context")
    rel0 = on_relative(cm, text0, 0, 0, q0, k0, q0, k0, shift0)
    rel_msg = widgets.message(rel0[0])
    rel_fig = gr.Plot(rel0[1], label="score as both tokens shift")
    rel_readout = gr.Markdown(rel0[2], elem_id="rope-relative-readout")
    widgets.prose(s[4])

    # 5. spectrum and decay
    log_theta = widgets.Slider(1, 7, value=round(log0, 4), step=0.05,
                               label=f"log₁₀ rope_theta (this model: {log0:.2f} = {c.rope_theta:,.0f}; "
                                     "4 = 10,000 as in Llama 2; 5.7 = 500,000 as in Llama 3)",
                               elem_id="rope-log-theta")
    sp0 = on_spectrum(cm, log0)
    spec_msg, spec_fig, spec_readout = _outputs(sp0[:3], elem_id="rope-spectrum")
    widgets.prose(s[5])

    # 6. predict, then reveal: before anything on the page measures the loss of a variant
    gr.Markdown("**1. If we switch RoPE off (same weights), the validation loss ...**")
    with gr.Row():
        pred1 = gr.Radio(PREDICTION_CHOICES, label="Your prediction", scale=4)
        reveal1 = gr.Button("Reveal", scale=1)
    ans1 = gr.Markdown(elem_id="rope-reveal-1")
    gr.Markdown(f"**2. Llama 3 uses rope_theta = 500,000. If we run this model (trained at rope_theta = "
                f"{c.rope_theta:,.0f}) with {float(q_variant):,.0f}, the validation loss ...**")
    with gr.Row():
        pred2 = gr.Radio(PREDICTION_CHOICES, label="Your prediction", scale=4)
        reveal2 = gr.Button("Reveal", scale=1)
    ans2 = gr.Markdown(elem_id="rope-reveal-2")
    widgets.prose(s[6])

    # 7. the course model with other positions
    l0, h0, _ = C.most_changed_head(cm, text0, "none")  # open on the head that RoPE matters most to
    with gr.Row():
        cmp_layer = gr.Dropdown(layers, value=l0, label="Layer")
        cmp_head = gr.Dropdown(heads, value=h0, label="Head")
        variant = gr.Radio(variant_choices(cm), value="none", label="Compare the trained model with", scale=3)
    cmp0 = on_compare(cm, text0, l0, h0, "none")
    cmp_msg = widgets.message(cmp0[0])
    cmp_fig = gr.Plot(cmp0[1], label="attention maps")
    cmp_readout = gr.Markdown(cmp0[2])
    loss_btn = gr.Button("Measure the loss (about a second)", variant="primary")
    loss_out = gr.Markdown(cmp0[3], elem_id="rope-loss")
    widgets.prose(s[7])
    widgets.lesson_footer(lesson)

    # ------------------------------------------------------------------------- listeners
    H = widgets.handler
    text_events = [text.submit, apply.click]
    rot_in = [key, text, layer, head, q_tok, k_tok, m, n, pair]
    rot_out = [rot_msg, plane, angles, rot_readout, m, n, pair]
    rel_in = [key, text, layer, head, q_tok, k_tok, m, n, shift]
    rel_out = [rel_msg, rel_fig, rel_readout, shift]

    # A new text resets the pickers and positions first, then redraws the rotation figures with them.
    (gr.on(text_events, H(on_tokens, 5), [key, text], [text_msg, q_tok, k_tok, m, n], api_name="rope_tokens")
     .then(H(on_rotate, 7), rot_in, rot_out, api_visibility="private")
     .then(H(on_relative, 4), rel_in, rel_out, api_visibility="private"))
    gr.on([*text_events, shuf_head.input, seed.submit], H(on_shuffle, 4), [key, text, shuf_head, seed],
          [shuf_msg, shuf_fig, shuf_readout, seed], api_name="rope_shuffle")
    reshuffle.click(H(on_new_shuffle, 4, msg_at=1), [key, text, shuf_head, seed],
                    [seed, shuf_msg, shuf_fig, shuf_readout], api_name="rope_new_shuffle")
    gr.on([*text_events, n_pos.release, clip.release], H(on_schemes, 5), [key, text, n_pos, clip],
          [sch_msg, sch_fig, sch_table, n_pos, clip], api_name="rope_schemes", **QUIET)
    gr.on([layer.input, head.input, q_tok.input, k_tok.input, m.release, n.release, pair.release],
          H(on_rotate, 7), rot_in, rot_out, api_name="rope_rotate", **QUIET)
    gr.on([layer.input, head.input, q_tok.input, k_tok.input, m.release, n.release, shift.release],
          H(on_relative, 4), rel_in, rel_out, api_name="rope_relative", **QUIET)
    log_theta.release(H(on_spectrum, 4), [key, log_theta], [spec_msg, spec_fig, spec_readout, log_theta],
                      api_name="rope_spectrum", **QUIET)
    gr.on([*text_events, cmp_layer.input, cmp_head.input, variant.input], H(on_compare, 4),
          [key, text, cmp_layer, cmp_head, variant], [cmp_msg, cmp_fig, cmp_readout, loss_out],
          api_name="rope_compare_attention")
    loss_btn.click(H(on_loss), [key, variant], [loss_out], api_name="rope_loss_change")
    reveal1.click(H(on_reveal_off), [key, pred1], [ans1], api_name="rope_reveal_rope_off")
    reveal2.click(H(on_reveal_theta), [key, pred2], [ans2], api_name="rope_reveal_theta")


def _outputs(values, latex_table: bool = False, elem_id: str | None = None):
    """A message slot, a figure and a Markdown readout, filled with a handler's first result."""
    msg, fig, md = values
    slot = widgets.message(msg)
    plot = gr.Plot(fig, elem_id=elem_id)
    out = widgets.prose(md) if latex_table else gr.Markdown(md, elem_id=f"{elem_id}-readout" if elem_id else None)
    return slot, plot, out
