"""Lesson 11 page: the training lab.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last.
Handlers only call `lessons.training.compute` and place what it returns.

Training is the learner's own: the model lives in their session (gr.State), never in a shared object. The Train
event runs at most one at a time (concurrency_limit=1 with its own concurrency_id): a second learner sees their
queue position, and the other pages' events are not queued behind it. The training itself runs in a child process
at a lower CPU priority (app.background), so that it takes only what the other learners leave of the two cores.
Stop is the project's own (app.background.StopBoard and app/static/stop.js: a plain request, not a Gradio event,
which the browser can hold back while a run streams; nor Gradio's cancel, which holds a lock while the generator
is inside next()): Stop kills the training process within background.POLL_S, and the page keeps the curve and the model of the last update it got,
"Stopped at step N". Train clicked again runs at once.
"""

from __future__ import annotations

import gradio as gr

from app import background, share, widgets
from lessons.course import CourseModel
from lessons.attention import compute as A
from lessons.tokenization import compute as T
from lessons.training import compute as C

D = C.DEFAULTS
L = C.LIMITS


def tokenizer_facts(cm: CourseModel) -> str:
    tok = cm.tokenizer
    name = "the course model" if cm.path == C.DEFAULT_MODEL_DIR else cm.path.name
    return (f"Your model uses the tokenizer of the model picked on the course map ({name}: "
            f"**{tok.vocab_size:,} tokens**), a {C.LAB_SEQ_LEN}-token context and tied embeddings; it starts from "
            f"random weights (seed 0).")


def refresh(cm: CourseModel):
    """The page for another model than the one it was built with: the lab trains with that model's tokenizer."""
    return "", tokenizer_facts(cm), C.waiting_figure(cm)


def warm(cm: CourseModel) -> None:
    """Every snapshot's view (a model load and a generation each, about 0.3 s), before a class opens the page at
    once; and the corpus in the course model's tokens, which every training run starts from."""
    for i in range(len(C.snapshots())):
        C.snapshot_view(i)
    C.corpus_ids(cm)


def build(cm: CourseModel, lesson) -> None:
    key = widgets.model_key()
    parts = widgets.sections(lesson, 6)
    study = C.load_study()
    noise_q = C.noise_question(study)
    snaps = C.snapshots()
    first = C.snapshot_view(0)

    widgets.lesson_header(lesson)
    page_msg = widgets.message()
    widgets.prose(parts[0])

    # --- part 1: train one yourself
    facts = gr.Markdown(tokenizer_facts(cm), elem_id="training-tokenizer")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            layers = widgets.Slider(*L["n_layers"], D["n_layers"], step=1, label="layers")
            dim = widgets.Slider(*L["dim"], D["dim"], step=16, label="width (dim)")
            heads = widgets.Slider(*L["n_heads"], D["n_heads"], step=1, label="query heads")
            kv = widgets.Slider(*L["n_kv_heads"], D["n_kv_heads"], step=1, label="K/V heads",
                                info="must divide the query heads: 1 is MQA, as many as the query heads is MHA")
            norm = widgets.Radio(["rmsnorm", "layernorm"], value=D["norm"], label="norm")
            position = widgets.Radio(["rope", "learned", "sinusoidal", "none"], value=D["position"], label="position")
            ffn = widgets.Radio(["swiglu", "relu", "gelu"], value=D["ffn"], label="feed-forward")
            placement = widgets.Radio(["pre", "post"], value=D["norm_placement"], label="norm placement")
            lr = widgets.Number(D["lr"], label="peak learning rate", info=f"{L['lr'][0]:g} to {L['lr'][1]:g}")
            batch = widgets.Slider(*L["batch_size"], D["batch_size"], step=1, label="batch size (windows)")
            budget = widgets.Slider(*L["budget_s"], D["budget_s"], step=1, label="time budget (seconds)")
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_classes=[background.ARM_CLASS])
                gr.Button("Stop", elem_classes=[background.STOP_CLASS])  # app/static/stop.js posts it: no Gradio event
            lab_msg = widgets.message()
        with gr.Column(scale=2):
            curve = widgets.Plot(C.waiting_figure(cm), label="Training curves", elem_id="training-curve",
                                 code=C.curve_figure)
            status = gr.Markdown(elem_id="training-status")
            sample = gr.Textbox(label=f"Sample from {C.SAMPLE_PROMPT!r} (temperature 0.8, top-k 50, seed 0), "
                                      f"every {C.SAMPLE_EVERY_S:g} s and at the end",
                                lines=5, interactive=False, elem_id="training-sample")
    # The learner's trained model (one per session, replaced by their next run), dropped an hour after their last run.
    lab = gr.State(None, time_to_live=C.KEEP_TRAINED_S)
    run_id = gr.Textbox("", visible=False)  # the run's id for the learner's Stop, set in the browser (app.background)
    gr.Markdown("**Try your trained model** (the same generation loop as lesson 8):")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            prompt = gr.Textbox("JULIET:", lines=2, label=f"Prompt ({widgets.RUN_HINT})")
            n_new = widgets.Slider(1, C.MAX_NEW_TOKENS, min(60, C.MAX_NEW_TOKENS), step=1,
                                   label=f"new tokens (up to half the model's {C.LAB_SEQ_LEN}-token context)")
            temperature = widgets.Slider(0, 2, 0.8, step=0.1, label="temperature (0 = greedy)")
            gen = gr.Button("Generate with my model")
            gen_msg = widgets.message()
        with gr.Column(scale=2):
            generated = gr.Textbox(label="Your model's text", lines=6, interactive=False, elem_id="training-generated")

    widgets.prose(parts[1])
    with widgets.go_deeper("one training step, and the LLaMA paper's recipe next to the lab's", "recipe"):
        widgets.prose(parts[2])
        gr.Markdown(C.recipe_markdown(), elem_id="training-recipe")

    widgets.prose(parts[3])

    # --- part 2: the shipped ablation; the question comes first, the curves and the table stay hidden until Reveal
    guess, reveal, answer = widgets.predict_reveal(noise_q, button="Reveal the measured runs",
                                                   elem_id="training-ablation-answer")
    with widgets.until_reveal(noise_q.qid) as revealed:
        family = widgets.Radio(list(C.FAMILIES), value="norm", label="switch to compare with Llama's recipe")
        ablation_msg = widgets.message()
        ablation_plot = widgets.Plot(C.ablation_figure(study, "norm"), label="Ablation curves",
                                     elem_id="training-ablation", code=C.ablation_figure)
        table = gr.Markdown(C.ablation_markdown(study), elem_id="training-ablation-table")
        widgets.prose(parts[4])

    widgets.prose(parts[5])

    # --- part 3: the course model's own training, replayed from snapshots
    steps_info = ", ".join(f"{i} = step {s.step}" for i, s in enumerate(snaps))
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            snap = widgets.Slider(0, len(snaps) - 1, 0, step=1, label="snapshot", info=steps_info,
                                  elem_id="training-snapshot")
            snap_msg = widgets.message()
            readout = gr.Markdown(first.readout, elem_id="training-snapshot-readout")
            snap_text = gr.Textbox(first.generation, label=f"Greedy generation from {C.SAMPLE_PROMPT!r}", lines=4,
                                   interactive=False, elem_id="training-snapshot-text")
        with gr.Column(scale=2):
            snap_curve = widgets.Plot(first.curve, label="Course model loss", elem_id="training-snapshot-curve",
                                      code=C.snapshot_view)
    with gr.Row():
        attention = widgets.Plot(first.attention, label="Attention at this step", elem_id="training-snapshot-attention",
                                 code=A.heatmap_figure)
        embedding = widgets.Plot(first.embedding, label="Embeddings at this step", elem_id="training-snapshot-embedding",
                                 code=T.embedding_map)

    widgets.prose(parts[6])
    widgets.lesson_footer(lesson)

    # --- listeners
    widgets.on_model(key, refresh, [page_msg, facts, curve])
    # Train carries the run id its click made (app.background.StopBoard); a click while a run ends is kept
    # (always_last). Stop is the page's own script (app/static/stop.js), not a Gradio event.
    train.click(widgets.handler(on_train, 5, msg_at=0),
                [key, run_id, layers, dim, heads, kv, norm, position, ffn, placement, lr, batch, budget],
                [lab_msg, curve, status, sample, lab], api_name="training_train", js=background.RUN_ID_JS % 1,
                concurrency_limit=1, concurrency_id="training_lab", trigger_mode="always_last")
    gr.on([gen.click, prompt.submit], widgets.handler(on_generate, 2, msg_at=0), [key, lab, prompt, n_new, temperature],
          [gen_msg, generated], api_name="training_generate")
    reveal.click(widgets.handler(on_reveal, 4, msg_at=0), [key, guess, family], [answer, revealed, ablation_plot, table],
                 api_name="training_reveal")
    family.change(widgets.handler(on_family, 2, msg_at=0), [key, family], [ablation_msg, ablation_plot],
                  api_name="training_family")
    snap_ev = snap.release(widgets.handler(on_snapshot, 6, msg_at=0), [key, snap],
                           [snap_msg, snap_curve, readout, snap_text, attention, embedding],
                           api_name="training_snapshot", trigger_mode="always_last", show_progress="minimal")
    # A link keeps the lab's settings and the snapshot shown; a training run is never started from a link.
    share.link(key, dict(layers=layers, dim=dim, heads=heads, kv_heads=kv, norm=norm, position=position, ffn=ffn,
                         placement=placement, lr=lr, batch=batch, budget=budget, text=prompt, new_tokens=n_new,
                         temperature=temperature, snapshot=snap), runs=[snap_ev])


# ----------------------------------------------------------------------------- handlers (no maths: compute does it)


def on_train(cm: CourseModel, run_id, layers, dim, heads, kv, norm, position, ffn, placement, lr,
             batch, budget, progress=gr.Progress()):
    stopped = background.STOPS.watch(run_id)
    s, notice = C.lab_settings(layers, dim, heads, kv, norm, position, ffn, placement, lr, batch, budget)
    yield widgets.note(notice), gr.skip(), "Preparing…", gr.skip(), gr.skip()
    C.corpus_ids(cm)  # tokenized in the server, once per tokenizer: the training process inherits it
    last = None
    for last in background.stream(C.train_lab, cm, s, progress=lambda f, d: progress(f, desc=d), stop=stopped):
        u = last
        yield widgets.note(notice), u.figure, u.status, (u.sample if u.sample is not None else gr.skip()), u.lab
    if stopped() and not (last and last.done):
        u = C.stopped(last)
        if u is None:
            yield widgets.note(notice), gr.skip(), "**Stopped** before the first step. Press Train to start.", \
                gr.skip(), gr.skip()
        else:
            yield widgets.note(notice), gr.skip(), u.status, gr.skip(), u.lab


def on_generate(cm: CourseModel, lab, prompt, n, temperature):
    text, notice = C.generate_with(lab, prompt, n, temperature)
    return widgets.note(notice), text


def on_reveal(cm: CourseModel, picked, family):
    study = C.load_study()
    f, _ = C.family(family)  # a bad family only matters to its own control, which says so
    return (C.reveal_noise(study, picked), gr.update(visible=True), C.ablation_figure(study, f),
            C.ablation_markdown(study))


def on_family(cm: CourseModel, family):
    f, notice = C.family(family)
    return widgets.note(notice), C.ablation_figure(C.load_study(), f)


def on_snapshot(cm: CourseModel, index):
    v = C.snapshot_view(index)
    return widgets.note(v.notice), v.curve, v.readout, v.generation, v.attention, v.embedding
