"""Lesson 1 page: BPE tokenization. Layout first, listeners last; every number comes from
lessons/tokenization/compute.py.

Events (api_name: inputs -> what changes), all prefixed "tokenization_"; the model key and the learner's
trained tokenizer are hidden States:
    train         text, vocab_size, sentence -> the learner's tokenizer (gr.State), vocabulary slider (clamped
                                                value), merge slider, replay, comparison of five tokenizers,
                                                the first-merge question, and the text box when the text was cut
    replay        k, sentence                -> notice, chips as of merge k, merge k, compression curve
    embed         sentence                   -> embedding heatmap and PCA map
    reveal_count  choice                     -> the model's tokenizer's count for the question's text
    reveal_merge  choice                     -> our BPE's real first merge on the learner's text

The core path: the live training with its compression curve (the first figure), how BPE learns, the first-merge
question (the merge table hidden until its Reveal), the replay, the token-count question (its chips hidden until
Reveal), and the embedding rows. The comparison of five tokenizers and the map of the whole embedding table sit in
Go deeper sections.

A model picked on the course map (widgets.on_model) refills what depends on it from the same functions the page
is built from: the first training with its tokenizer (_train_values of compute.first_training) and _model_values.
"""

from __future__ import annotations

import gradio as gr

from app import background, share, widgets
from lessons.inputs import LessonError
from lessons.tokenization import compute

N_FIGURES = 12  # lesson.md holds N_FIGURES '<!-- figure -->' markers: prose, figure, prose, ..., prose


def _train_values(training: compute.Training, sentence: str) -> dict:
    """Everything a training changes, as component values (a dict of arguments for a component whose range or
    choices change too). The page is built from it, the train event and a picked model (`on_model`) send it."""
    trained = training.trained
    n = trained.n_merges
    try:
        shown = compute.replay(trained, n, sentence)
        chips, merge_md, curve, replay_notice = shown.chips, shown.merge_md, shown.figure, shown.notice
    except LessonError as e:  # an empty sample sentence: the training still counts; the replay says why
        chips, merge_md, curve, replay_notice = gr.skip(), gr.skip(), gr.skip(), str(e)
    return dict(msg=widgets.note(training.notice), trained=trained, vocab=dict(value=trained.asked_vocab),
                merge_k=dict(maximum=max(1, n), value=n, interactive=n > 0),
                chips=chips, merge_md=merge_md, curve=curve, replay_msg=widgets.note(replay_notice),
                compare_html=compute.comparison_html(training), compare_fig=compute.comparison_figure(training),
                q2=dict(choices=compute.merge_question(trained), value=None), q2_out="",
                text=training.text if training.cut else gr.skip())  # show the cut: what was trained is what is seen


def _updates(values: dict) -> tuple:
    """A values dict (see _train_values, _model_values) as event outputs, in its order."""
    return tuple(gr.update(**v) if isinstance(v, dict) else v for v in values.values())


def _model_values(cm) -> dict:
    """What depends on the model but not on the learner's training: the facts about its tokenizer and embedding
    table, and the first embedding figures (the course model at build time, a picked model through on_model)."""
    heat, heat_notice = compute.embedding_heatmap(cm, compute.DEFAULT_SENTENCE)
    return dict(tok_facts=compute.model_tokenizer_facts(cm), special=compute.special_tokens_facts(cm),
                embed_facts=compute.embedding_facts(cm), heatmap=heat,
                pca=compute.embedding_map(cm, compute.DEFAULT_SENTENCE), embed_msg=widgets.note(heat_notice),
                q1_out="", q1_chips="", map_md=compute.embedding_map_readout(cm), numbers=compute.number_chunks(cm))


def refresh(cm) -> tuple:
    """Another model picked on the course map (widgets.on_model): its tokenizer's first training (cached per
    model) in _train_values' order, then _model_values; the learner's State goes back to None (that training)."""
    return (*_updates({**_train_values(compute.first_training(cm), compute.DEFAULT_SENTENCE), "trained": None}),
            *_updates(_model_values(cm)))


def prepare(cm) -> None:
    """Before any page is built (app/main.py): the first training (about 1.5 s: our BPE in pure Python and three
    libraries) starts in a child process (app.background, on the other core) while the other pages are built;
    `build` then waits for it (lessons.course.LRU hands a key being computed to its second caller)."""
    import threading

    threading.Thread(target=compute.first_training, args=(cm, background.call), name="first-training",
                     daemon=True).start()


def learners_tokenizer(cm, trained: compute.Trained | None) -> compute.Trained:
    """The learner's trained tokenizer, or None for the model's first training: shared and read-only, so a
    session holds a tokenizer of its own (about 0.4 MB) only once the learner trains one."""
    return trained if trained is not None else compute.first_training(cm).trained


def build(cm, lesson) -> None:
    parts = widgets.sections(lesson, N_FIGURES)
    first = compute.first_training(cm)
    t0 = _train_values(first, compute.DEFAULT_SENTENCE)
    m0 = _model_values(cm)

    key = widgets.model_key()
    state = gr.State(None)  # the learner's own Trained once they train; None: the shared first training
    widgets.lesson_header(lesson)
    widgets.prose(parts[0])

    # -- 1. train live: the text and the compression curve first
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            text_box = gr.Textbox(first.text, lines=4, max_lines=8, elem_id="training-text", label=(
                f"Training text: the course's own lesson texts, or paste yours (at most "
                f"{compute.MAX_TEXT_CHARS:,} characters; {widgets.RUN_HINT})"))
            vocab = widgets.Slider(compute.VOCAB_MIN, compute.VOCAB_MAX, step=1, label="vocabulary size (tokens)",
                                   info="3 special + 256 bytes + merges; trains when you let go", **t0["vocab"])
            with gr.Row():
                train_btn = gr.Button("Train the tokenizers", variant="primary")
                restore_btn = gr.Button("Use the course's text", size="sm")
            train_msg = widgets.message(t0["msg"])
        with gr.Column(scale=3, min_width=300):
            curve = widgets.Plot(t0["curve"], label="compression curve", elem_id="merge-curve",
                                 code=compute.merge_curve_figure)
    widgets.prose(parts[1])
    numbers = gr.Markdown(m0["numbers"], elem_id="tokenization-numbers")
    widgets.prose(parts[2])

    # -- predict the first merge; the merge table answers it
    q2, q2_btn, q2_out = widgets.predict_reveal(compute.Q_MERGE.text, t0["q2"]["choices"], elem_id="reveal-merge",
                                                qid=compute.Q_MERGE.qid)
    with widgets.until_reveal(compute.Q_MERGE.qid):
        merge_md = gr.Markdown(t0["merge_md"], elem_id="merge-info")
    widgets.prose(parts[3])
    with gr.Row():
        merge_k = widgets.Slider(0, step=1, label="merge step k: replay the training",
                                 info="0 = raw bytes; move with the mouse or the arrow keys", scale=3,
                                 elem_id="merge-slider", **t0["merge_k"])
        with gr.Column(scale=2):
            sentence_box = gr.Textbox(compute.DEFAULT_SENTENCE, label="sample sentence (Enter to update)",
                                      max_lines=2)
            sentence_btn = gr.Button("Show this sentence", size="sm")
    chips = gr.HTML(t0["chips"], elem_id="replay-chips")
    replay_msg = widgets.message(t0["replay_msg"])
    widgets.prose(parts[4])

    # -- predict the model's token count; its chips answer it
    q1, q1_btn, q1_out = widgets.predict_reveal(compute.Q_COUNT.text, compute.count_question(),
                                                elem_id="reveal-count", qid=compute.Q_COUNT.qid)
    with widgets.until_reveal(compute.Q_COUNT.qid):
        q1_chips = gr.HTML()

    # -- 2. five tokenizers side by side
    with widgets.go_deeper("the same text through five tokenizers, and Llama 3's", "tokenizers"):
        widgets.prose(parts[5])
        compare_fig = widgets.Plot(t0["compare_fig"], label="characters per token", code=compute.comparison_figure)
        compare_html = gr.HTML(t0["compare_html"], elem_id="comparison")
        widgets.prose(parts[6])
        tok_facts = gr.Markdown(m0["tok_facts"], elem_id="model-tokenizer-facts")
        special = widgets.prose(m0["special"])
        widgets.prose(parts[7])

    # -- 3. from ids to vectors
    widgets.prose(parts[8])
    embed_facts = widgets.prose(m0["embed_facts"])
    heatmap = widgets.Plot(m0["heatmap"], label="embedding rows", elem_id="embedding-heatmap",
                           code=compute.embedding_heatmap)
    embed_msg = widgets.message(m0["embed_msg"])
    widgets.prose(parts[9])
    with widgets.go_deeper("a map of the whole embedding table", "map"):
        widgets.prose(parts[10])
        pca = widgets.Plot(m0["pca"], label="embedding map", elem_id="embedding-map", code=compute.embedding_map)
        map_md = gr.Markdown(m0["map_md"], elem_id="embedding-map-readout")
        widgets.prose(parts[11])
    widgets.prose(parts[12])
    widgets.lesson_footer(lesson)

    # -- listeners
    def on_train(cm, text, vocab_size, sentence, progress=gr.Progress()):
        # Four tokenizers trained (seconds of CPU, our BPE in pure Python): in a child process at a lower priority
        # (app.background), so the other learners' sliders do not wait for it.
        training = background.call(compute.train_lesson, text, vocab_size, cm.tokenizer, progress=progress)
        return _updates(_train_values(training, sentence))

    def on_replay(cm, trained, k, sentence):
        r = compute.replay(learners_tokenizer(cm, trained), k, sentence)
        return widgets.note(r.notice), r.chips, r.merge_md, r.figure

    def on_embed(cm, sentence):
        fig, notice = compute.embedding_heatmap(cm, sentence)
        return widgets.note(notice), fig, compute.embedding_map(cm, sentence)

    def on_reveal_count(cm, choice):
        r = compute.reveal_count(cm, choice)
        return r.markdown, r.chips

    def on_reveal_merge(cm, trained, choice):
        return compute.reveal_first_merge(learners_tokenizer(cm, trained), choice).markdown

    trained_outputs = [train_msg, state, vocab, merge_k, chips, merge_md, curve, replay_msg, compare_html,
                       compare_fig, q2, q2_out, text_box]  # in _train_values' order
    widgets.on_model(key, refresh, trained_outputs + [tok_facts, special, embed_facts, heatmap, pca, embed_msg,
                                                       q1_out, q1_chips, map_md, numbers])  # and _model_values'
    train_ev = gr.on([train_btn.click, text_box.submit, vocab.release], widgets.handler(on_train, 13, 0),
          inputs=[key, text_box, vocab, sentence_box], outputs=trained_outputs,
          api_name="tokenization_train", concurrency_limit=2)
    restore_btn.click(compute.default_text, outputs=text_box, api_visibility="private")
    # The merge slider replays on release (a drag is one replay, not one per step; an arrow key's key-up counts as a
    # release, app/static/keys.js). It does not write the slider back (that would wipe the notice): a typed value
    # out of range stays in the box, and the notice says which step is shown.
    replay_ev = gr.on([merge_k.release, sentence_box.submit, sentence_btn.click],
                      widgets.handler(on_replay, 4, 0),
          inputs=[key, state, merge_k, sentence_box], outputs=[replay_msg, chips, merge_md, curve],
          api_name="tokenization_replay", trigger_mode="always_last", show_progress="hidden")
    embed_ev = gr.on([sentence_box.submit, sentence_btn.click], widgets.handler(on_embed, 3, 0),
                     inputs=[key, sentence_box], outputs=[embed_msg, heatmap, pca], api_name="tokenization_embed")
    q1_btn.click(widgets.handler(on_reveal_count, 2, 0), inputs=[key, q1], outputs=[q1_out, q1_chips],
                 api_name="tokenization_reveal_count")
    q2_btn.click(widgets.handler(on_reveal_merge), inputs=[key, state, q2], outputs=q2_out,
                 api_name="tokenization_reveal_merge")
    share.link(key, dict(text=text_box, vocab=vocab, merge=merge_k, sentence=sentence_box),
               runs=[train_ev, replay_ev, embed_ev], ranges=dict(merge=(0, compute.VOCAB_MAX)),
               caps=dict(text=compute.MAX_TEXT_CHARS))
