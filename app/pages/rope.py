"""Lesson 3 page: positional encoding and RoPE.

Layout first (prose and figures alternate, following lesson.md's `<!-- figure -->` markers), listeners
last. Every handler calls one function of `lessons.rope.compute` and only lays out what it returns; a
ValueError from there is a message for the learner, shown next to the figure it concerns.

Main events (api_name: inputs), all prefixed "rope_" because api names are shared by the whole app:
    rope_tokens             text -> the query/key pickers and default positions for the text
    rope_shuffle            text, head, seed
    rope_schemes            text, n_positions, clip
    rope_rotate             text, layer, head, q_token, k_token, m, n, pair
    rope_relative           text, layer, head, q_token, k_token, m, n, shift
    rope_spectrum           log10(rope_theta)
    rope_compare_attention  text, layer, head, variant ("none" or a rope_theta such as "500000")
    rope_loss_change        variant
    rope_reveal_rope_off    prediction ("barely" | "little" | "lot")
    rope_reveal_theta       prediction
"""

from __future__ import annotations

import gradio as gr

from app import widgets
from lessons.course import CourseModel
from lessons.rope import compute as C

VARIANT_CHOICES = [("RoPE switched off (position = none)", "none"), ("rope_theta = 100", "100"),
                   ("rope_theta = 1,000", "1000"), ("rope_theta = 100,000", "100000"),
                   ("rope_theta = 500,000 (Llama 3)", "500000"), ("rope_theta = 1,000,000", "1000000")]
PREDICTION_CHOICES = [(text, key) for key, text in C.PREDICTIONS.items()]
N_SECTIONS = 8  # lesson.md is cut at 7 '<!-- figure -->' markers, one per figure block below
QUIET = dict(show_progress="minimal")  # slider redraws take milliseconds: no overlay flashing over the figure


# ----------------------------------------------------------------------------- handlers (no maths here)


def _defaults(cm: CourseModel, text: str) -> tuple[list, int, int]:
    """Picker choices and the default query (last token) and key (three tokens earlier) for a text."""
    choices = C.token_choices(cm, text)
    q = len(choices) - 1
    return choices, q, max(1, q - 3) if q > 1 else 0


def make_handlers(cm: CourseModel):
    """The page's event functions, closed over the shared read-only course model."""

    def on_tokens(text):
        try:
            choices, q, k = _defaults(cm, text)
        except ValueError as e:
            return widgets.note(str(e)), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        notice = C.prepared(cm, text, C.ROTATE_TOKENS).notice
        return (widgets.note(notice), gr.update(choices=choices, value=q), gr.update(choices=choices, value=k),
                gr.update(value=q), gr.update(value=k))

    def on_shuffle(text, head, seed):
        try:
            r = C.shuffle_scores(cm, text, head, seed)
        except ValueError as e:
            return widgets.note(str(e)), gr.skip(), gr.skip()
        return widgets.note(r.notice), r.figure, r.readout

    def on_new_shuffle(text, head, seed):
        seed = int(seed or 0) + 1  # "Shuffle again" = the next shuffle number
        return (seed, *on_shuffle(text, head, seed))

    def on_schemes(text, n_positions, clip):
        try:
            r = C.schemes(cm, text, n_positions, clip)
        except ValueError as e:
            return widgets.note(str(e)), gr.skip(), gr.skip()
        return widgets.note(r.notice), r.figure, r.table

    def on_rotate(text, layer, head, q_token, k_token, m, n, pair):
        try:
            r = C.rotate(cm, text, layer, head, q_token, k_token, m, n, pair)
        except ValueError as e:
            return widgets.note(str(e)), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return (widgets.note(r.notice), r.plane, r.angles_figure, r.readout,
                gr.update(value=r.m), gr.update(value=r.n), gr.update(value=r.pair))

    def on_relative(text, layer, head, q_token, k_token, m, n, shift):
        try:
            r = C.relative_shift(cm, text, layer, head, q_token, k_token, m, n, shift)
        except ValueError as e:
            return widgets.note(str(e)), gr.skip(), gr.skip(), gr.skip()
        return widgets.note(r.notice), r.figure, r.readout, gr.update(value=r.shift)

    def on_spectrum(log_theta):
        r = C.spectrum(cm, log_theta)
        return widgets.note(r.notice), r.figure, r.readout

    def on_compare(text, layer, head, variant):
        try:
            r = C.compare_attention(cm, text, layer, head, variant)
        except ValueError as e:
            return widgets.note(str(e)), gr.skip(), gr.skip(), gr.skip()
        hint = f"Press **Measure the loss** to score the trained model and the one with {r.variant_name}."
        return widgets.note(r.notice), r.figure, r.readout, hint

    def _progress_fn(progress, what):
        return lambda done, total: progress(done / total, desc=f"{what}: window {done} of {total}")

    def on_loss(variant, progress=gr.Progress()):
        try:
            r = C.loss_change(cm, variant, on_window=_progress_fn(progress, "scoring held-out text"))
        except ValueError as e:
            return widgets.note(str(e))
        return r.readout

    def reveal_with(variant):
        def reveal(prediction, progress=gr.Progress()):
            try:
                return C.reveal(cm, variant, prediction, _progress_fn(progress, "running the model"))
            except ValueError as e:
                return widgets.note(str(e))
        return reveal

    return dict(tokens=on_tokens, shuffle=on_shuffle, new_shuffle=on_new_shuffle, schemes=on_schemes,
                rotate=on_rotate, relative=on_relative, spectrum=on_spectrum, compare=on_compare, loss=on_loss,
                reveal_off=reveal_with("none"), reveal_theta=reveal_with("500000"))


# ----------------------------------------------------------------------------- page


def build(cm: CourseModel, lesson) -> None:
    h = make_handlers(cm)
    c = cm.config
    text0 = C.DEFAULT_TEXT
    choices, q0, k0 = _defaults(cm, text0)
    layers = [(f"layer {i}", i) for i in range(c.n_layers)]
    heads = [(f"head {i}", i) for i in range(c.n_heads)]
    s = (widgets.sections(lesson) + [""] * N_SECTIONS)[:N_SECTIONS]

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
        seed = gr.Number(0, precision=0, label="Shuffle number", info="the same number gives the same shuffle",
                         scale=1)
        reshuffle = gr.Button("Shuffle again", scale=1)
    shuf_msg, shuf_fig, shuf_readout = _outputs(h["shuffle"](text0, 0, 0))
    widgets.prose(s[1])

    # 2. four schemes
    with gr.Row():
        n_pos = gr.Slider(8, c.max_seq_len, value=min(64, c.max_seq_len), step=1, label="Positions shown",
                          info="applies when you let go of the slider")
        clip = gr.Slider(1, 32, value=8, step=1, label="Shaw's clipping distance k")
    sch_msg, sch_fig, sch_table = _outputs(h["schemes"](text0, n_pos.value, clip.value), latex_table=True)
    widgets.prose(s[2])

    # 3. RoPE in 2-D
    with gr.Row():
        layer = gr.Dropdown(layers, value=0, label="Layer")
        head = gr.Dropdown(heads, value=0, label="Query head")
        q_tok = gr.Dropdown(choices, value=q0, label="Query token (its q before RoPE)")
        k_tok = gr.Dropdown(choices, value=k0, label="Key token (its k before RoPE)")
    with gr.Row():
        m = gr.Slider(0, c.max_seq_len - 1, value=q0, step=1, label="Query position m", elem_id="rope-m")
        n = gr.Slider(0, c.max_seq_len - 1, value=k0, step=1, label="Key position n (at most m)", elem_id="rope-n")
        pair = gr.Slider(0, c.head_dim // 2 - 1, value=0, step=1, label="Pair index i", elem_id="rope-pair")
    r0 = h["rotate"](text0, 0, 0, q0, k0, q0, k0, 0)
    rot_msg = widgets.message(r0[0])
    with gr.Row():
        plane = gr.Plot(r0[1], label="one pair of q and k, before and after rotation", elem_id="rope-plane")
        angles = gr.Plot(r0[2], label="rotation angle of every position and pair", elem_id="rope-angles")
    rot_readout = gr.Markdown(r0[3], elem_id="rope-angle-readout")
    widgets.prose(s[3])

    # 4. relative property
    shift = gr.Slider(-(c.max_seq_len - 1), c.max_seq_len - 1, value=100, step=1, label="Shift s for both tokens",
                      info="clamped so that m+s and n+s stay inside the context")
    rel0 = h["relative"](text0, 0, 0, q0, k0, q0, k0, 100)
    rel_msg = widgets.message(rel0[0])
    rel_fig = gr.Plot(rel0[1], label="score as both tokens shift")
    rel_readout = gr.Markdown(rel0[2], elem_id="rope-relative-readout")
    widgets.prose(s[4])

    # 5. spectrum and decay
    log_theta = gr.Slider(1, 7, value=4, step=0.05, label="log₁₀ rope_theta (4 = 10,000 as in Llama 2; "
                                                          "5.7 = 500,000 as in Llama 3)")
    spec_msg, spec_fig, spec_readout = _outputs(h["spectrum"](4))
    widgets.prose(s[5])

    # 6. the course model with other positions
    l0, h0, _ = C.most_changed_head(cm, text0, "none")  # open on the head that RoPE matters most to
    with gr.Row():
        cmp_layer = gr.Dropdown(layers, value=l0, label="Layer")
        cmp_head = gr.Dropdown(heads, value=h0, label="Head")
        variant = gr.Radio(VARIANT_CHOICES, value="none", label="Compare the trained model with", scale=3)
    cmp0 = h["compare"](text0, l0, h0, "none")
    cmp_msg = widgets.message(cmp0[0])
    cmp_fig = gr.Plot(cmp0[1], label="attention maps")
    cmp_readout = gr.Markdown(cmp0[2])
    loss_btn = gr.Button("Measure the loss (about a second)", variant="primary")
    loss_out = gr.Markdown(cmp0[3], elem_id="rope-loss")
    widgets.prose(s[6])

    # 7. predict, then reveal
    gr.Markdown("**1. If we switch RoPE off (same weights), the validation loss ...**")
    with gr.Row():
        pred1 = gr.Radio(PREDICTION_CHOICES, label="Your prediction", scale=4)
        reveal1 = gr.Button("Reveal", scale=1)
    ans1 = gr.Markdown(elem_id="rope-reveal-1")
    gr.Markdown("**2. Llama 3 uses rope_theta = 500,000. If we run our model (trained at 10,000) with 500,000, "
                "the validation loss ...**")
    with gr.Row():
        pred2 = gr.Radio(PREDICTION_CHOICES, label="Your prediction", scale=4)
        reveal2 = gr.Button("Reveal", scale=1)
    ans2 = gr.Markdown(elem_id="rope-reveal-2")
    widgets.prose(s[7])
    widgets.lesson_footer(lesson)

    # ------------------------------------------------------------------------- listeners
    text_events = [text.submit, apply.click]
    rot_in = [text, layer, head, q_tok, k_tok, m, n, pair]
    rot_out = [rot_msg, plane, angles, rot_readout, m, n, pair]
    rel_in = [text, layer, head, q_tok, k_tok, m, n, shift]
    rel_out = [rel_msg, rel_fig, rel_readout, shift]

    # A new text resets the pickers and positions first, then redraws the rotation figures with them.
    (gr.on(text_events, h["tokens"], [text], [text_msg, q_tok, k_tok, m, n], api_name="rope_tokens")
     .then(h["rotate"], rot_in, rot_out, api_visibility="private")
     .then(h["relative"], rel_in, rel_out, api_visibility="private"))
    gr.on([*text_events, shuf_head.input, seed.submit], h["shuffle"], [text, shuf_head, seed],
          [shuf_msg, shuf_fig, shuf_readout], api_name="rope_shuffle")
    reshuffle.click(h["new_shuffle"], [text, shuf_head, seed], [seed, shuf_msg, shuf_fig, shuf_readout],
                    api_visibility="private")
    gr.on([*text_events, n_pos.release, clip.release], h["schemes"], [text, n_pos, clip],
          [sch_msg, sch_fig, sch_table], api_name="rope_schemes", **QUIET)
    gr.on([layer.input, head.input, q_tok.input, k_tok.input, m.release, n.release, pair.release],
          h["rotate"], rot_in, rot_out, api_name="rope_rotate", **QUIET)
    gr.on([layer.input, head.input, q_tok.input, k_tok.input, m.release, n.release, shift.release],
          h["relative"], rel_in, rel_out, api_name="rope_relative", **QUIET)
    log_theta.release(h["spectrum"], [log_theta], [spec_msg, spec_fig, spec_readout], api_name="rope_spectrum",
                      **QUIET)
    gr.on([*text_events, cmp_layer.input, cmp_head.input, variant.input], h["compare"],
          [text, cmp_layer, cmp_head, variant], [cmp_msg, cmp_fig, cmp_readout, loss_out],
          api_name="rope_compare_attention")
    loss_btn.click(h["loss"], [variant], [loss_out], api_name="rope_loss_change")
    reveal1.click(h["reveal_off"], [pred1], [ans1], api_name="rope_reveal_rope_off")
    reveal2.click(h["reveal_theta"], [pred2], [ans2], api_name="rope_reveal_theta")


def _outputs(values, latex_table: bool = False):
    """A message slot, a figure and a Markdown readout, filled with a handler's first result."""
    msg, fig, md = values
    slot = widgets.message(msg)
    plot = gr.Plot(fig)
    out = widgets.prose(md) if latex_table else gr.Markdown(md)
    return slot, plot, out
