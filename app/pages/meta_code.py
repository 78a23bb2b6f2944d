"""Lesson page: reading Meta's Llama code, side by side with this course's.

Layout first (prose and figures alternate at the '<!-- figure -->' markers of lesson.md), listeners last. Handlers
take the learner's model first (`widgets.handler`) and only call `lessons.meta_code.compute`.
"""

from __future__ import annotations

import gradio as gr

from app import share, widgets
from lessons import cost
from lessons.course import CourseModel
from lessons.meta_code import compute as C
from llama import model as llama_model


def initial(cm: CourseModel) -> dict:
    """What the page opens with for one model."""
    r = C.compare(cm, C.DEFAULT_TEXT)
    return dict(names=C.name_table(cm), pairs=C.pair_layout_figure(cm.config.head_dim),
                comparison=C.comparison_figure(r, show_unpermuted=False), readout=C.comparison_readout(r),
                unpermuted=C.comparison_figure(r), top_p=C.top_p_agreement(cm, C.DEFAULT_TEXT))


def run(cm: CourseModel, text: str) -> tuple:
    r = C.compare(cm, text)
    return (widgets.note(r.notice), C.comparison_figure(r, show_unpermuted=False), C.comparison_readout(r),
            C.comparison_figure(r), C.top_p_agreement(cm, text))


def opening_cost(cm: CourseModel):
    """lessons.cost's estimate of opening the page with this model (widgets.on_model says it before `refresh`
    runs): our forward pass twice and Meta's forward on the converted weights twice (with and without the q/k
    permutation), each over the default text."""
    return cost.text_pass(cm, C.DEFAULT_TEXT) * 4


def refresh(cm: CourseModel) -> tuple:
    first = initial(cm)
    return ("", first["names"], first["pairs"], first["comparison"], first["readout"], first["unpermuted"],
            first["top_p"])


def build(cm: CourseModel, lesson) -> None:
    parts = widgets.sections(lesson, 4)
    first = initial(cm)
    key = widgets.model_key()

    widgets.lesson_header(lesson)
    model_msg = widgets.message(elem_id="meta-model-msg")
    widgets.prose(parts[0])
    with gr.Row():
        text = gr.Textbox(C.DEFAULT_TEXT, lines=1, max_lines=4, scale=4, elem_id="meta-text",
                          label=f"Your text (at most {C.MAX_TOKENS} tokens with BOS; {widgets.RUN_HINT})")
        go = gr.Button("Run both codes", variant="primary", scale=1)
    msg = widgets.message(elem_id="meta-msg")
    comparison = widgets.Plot(first["comparison"], label="Meta's code against this course's model",
                              elem_id="meta-comparison", code=C.compare)
    readout = gr.Markdown(first["readout"], elem_id="meta-readout")
    widgets.prose(parts[1])
    names = gr.Markdown(first["names"], elem_id="meta-names")
    widgets.prose(parts[2])
    pairs = widgets.Plot(first["pairs"], label="RoPE pairs in the two layouts", elem_id="meta-pairs",
                         code=C.pair_layout_figure)
    with gr.Row():
        gr.Code(widgets.source_of(C.apply_rotary_emb)[0], language="python", interactive=False,
                label="Meta's layout: apply_rotary_emb (as the lesson writes Meta's code)")
        gr.Code(widgets.source_of(llama_model.apply_rope)[0], language="python", interactive=False,
                label="This course: llama/model.py apply_rope (rotate-half)")
    widgets.prose(parts[3])
    guess, reveal_btn, answer = widgets.predict_reveal(C.PERMUTE_QUESTION, button="Reveal (runs Meta's code)",
                                                       elem_id="meta-answer")
    with widgets.until_reveal(C.PERMUTE_QUESTION.qid):
        unpermuted = widgets.Plot(first["unpermuted"], label="With and without the q/k permutation",
                                  elem_id="meta-unpermuted", code=C.comparison_figure)
    widgets.prose(parts[4])
    with widgets.go_deeper("the rest of Meta's code: the forward pass, sampling, its KV cache", "meta-rest"):
        gr.Markdown(
            "The whole of `meta_forward`, block by block as Meta's `Transformer.forward` and "
            "`TransformerBlock.forward` write it: `h = x + attention(attention_norm(x))`, then "
            "`out = h + feed_forward(ffn_norm(h))`. Meta's `FeedForward` is `w2(silu(w1(x)) * w3(x))`: `w1` is our "
            "`gate_proj`, `w3` our `up_proj`, `w2` our `down_proj`. Meta's `Attention` keeps its KV cache "
            "(`cache_k`, `cache_v`) inside the module, sized for `max_batch_size` sequences, and writes it at "
            "`start_pos`; this course keeps its cache outside the model (`model.new_cache()`), so one shared model "
            "serves many learners at once. Meta's layers are fairscale's model-parallel `ColumnParallelLinear` and "
            "`RowParallelLinear`, which split each weight across GPUs; on one device they are plain linear layers.")
        gr.Code(widgets.source_of(C.meta_forward)[0], language="python", interactive=False,
                label="meta_forward (lessons/meta_code/compute.py), in Meta's structure and names")
        gr.Markdown("**Sampling.** Meta's `generation.py` draws each token with `sample_top_p`: sort, cumulative "
                    "sum, drop a token once the probability before it already exceeds p. This course's "
                    "`filter_top_p` (llama/generate.py, lesson 10) keeps the same set; measured on your text:")
        top_p = gr.Markdown(first["top_p"], elem_id="meta-top-p")
    widgets.lesson_footer(lesson)

    # --- listeners
    widgets.on_model(key, refresh, [model_msg, names, pairs, comparison, readout, unpermuted, top_p],
                     opening=opening_cost)
    run_ev = gr.on([go.click, text.submit], widgets.handler(run, 5, msg_at=0), [key, text],
                   [msg, comparison, readout, unpermuted, top_p], api_name="meta_code_run",
                   show_progress="minimal")
    reveal_btn.click(widgets.handler(C.reveal_permutation), [key, text, guess], answer,
                     api_name="meta_code_reveal")
    share.link(key, dict(text=text), runs=[run_ev])
