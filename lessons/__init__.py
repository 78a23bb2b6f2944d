"""The course's lessons, in order. Each lesson is a package `lessons/<slug>/` with `lesson.md`
(the explanation, Markdown with LaTeX) and `compute.py` (pure functions from inputs to Plotly
figures or plain data). Nothing here imports Gradio; `app/` turns each lesson into a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class LessonInfo:
    slug: str  # package name and URL path
    title: str
    summary: str  # one line for the course map: what the learner will see
    short: str = ""  # the page bar's label (a word or two): fifteen lessons fit one bar at 1366 px
    knows: str = ""  # what the learner already knows from the pages before: the page opens with it
    adds: str = ""  # one sentence: what this page adds
    part: str = ""  # the part of the whole-model map this page is about (app.course_map.PARTS), "" for none

    @property
    def ready(self) -> bool:
        """A lesson gets a page once its text exists; until then the course map lists it as coming soon."""
        return (HERE / self.slug / "lesson.md").exists()

    @property
    def path(self) -> str:
        return "/" + self.slug

    @property
    def number(self) -> int:
        """Its place in the course (1-based), counting every lesson of the registry."""
        return [lesson.slug for lesson in LESSONS].index(self.slug) + 1

    def text(self) -> str:
        """The lesson's explanation (lesson.md), split at '<!-- figure -->' markers by the page builder."""
        return (HERE / self.slug / "lesson.md").read_text(encoding="utf-8")


# The course's order (issue 21): the whole model and its one job first, then each part in the order a token meets
# it, then how text is generated and made cheap, then how a Llama is trained and sized. Every slug is also a URL,
# so reordering never breaks a link.
LESSONS: list[LessonInfo] = [
    LessonInfo("next_token", "1. Next-token prediction",
               "What the model is trained to do: each token's loss on your text, perplexity and bits per character, "
               "unigram and bigram baselines, and a logit lens through the layers.",
               short="1 Predict", part="output",
               knows="the course map's picture: text goes in, a Llama turns it into probabilities for the next token.",
               adds="what those probabilities are scored against, in nats per token, and how far a real model "
                    "beats simple counting."),
    LessonInfo("tokenization", "2. Tokens and embeddings",
               "Train a byte-level BPE live, replay its merges, compare it with Hugging Face and sentencepiece, "
               "and see the course model's embedding vectors.",
               short="2 Tokens", part="tokens",
               knows="a Llama predicts the next token and is scored in nats per token.",
               adds="what a token is: how byte-level BPE cuts text into ids, and how each id becomes a vector."),
    LessonInfo("attention", "3. Attention",
               "The course model's real attention maps: scaled dot-product, the causal mask, every head of a layer, "
               "and one query's scores, softmax and weighted sum of values.",
               short="3 Attention", part="attention",
               knows="text becomes token ids, and each id becomes an embedding vector.",
               adds="how each position mixes in information from earlier positions: queries, keys, values, "
                    "the causal mask and softmax."),
    LessonInfo("rope", "4. Positions and RoPE",
               "Why attention needs positions, and how RoPE rotates q and k so that only distance matters.",
               short="4 RoPE", part="rope",
               knows="attention scores every earlier token by a dot product of q and k.",
               adds="why those scores cannot see word order on their own, and how RoPE rotates q and k so that "
                    "only the distance between tokens matters."),
    LessonInfo("relative", "5. Relative positions and the first Transformer",
               "Shaw et al.'s relative position representations computed live beside absolute and rotary ones; the "
               "original encoder-decoder Transformer beside the decoder-only Llama.",
               short="5 Relative", part="rope",
               knows="RoPE makes attention depend on the distance between tokens.",
               adds="the earlier ways of giving a Transformer positions, and the encoder-decoder model they came "
                    "from."),
    LessonInfo("rmsnorm", "6. RMSNorm vs LayerNorm",
               "Two normalisations side by side, and the course model's residual stream before and after each norm.",
               short="6 Norms", part="norm",
               knows="attention with RoPE mixes information between positions.",
               adds="why every block first rescales its input, and what RMSNorm keeps and LayerNorm removes."),
    LessonInfo("swiglu", "7. The feed-forward: SwiGLU",
               "The gated feed-forward of Llama: activation curves, the 2/3 hidden size, and real gate activations.",
               short="7 SwiGLU", part="ffn",
               knows="a block normalises its input, then attention mixes positions.",
               adds="the block's second half: a gated feed-forward that works on each position alone."),
    LessonInfo("assembled", "8. The Llama, assembled",
               "The whole forward pass on your text, box by box with live tensors; parameters, FLOPs and memory "
               "counted; GPT-2 against Llama; Llama 1, 2, 3, 3.1 and 3.2 side by side.",
               short="8 Assembled", part="blocks",
               knows="every part of a block: RMSNorm, attention with RoPE, SwiGLU.",
               adds="the parts stacked into a whole Llama, counted and compared with Llama 1, 2 and 3."),
    LessonInfo("meta_code", "9. Reading Meta's Llama code",
               "How to get real Llama weights, and Meta's reference model.py read side by side with this course's "
               "code: names, the two RoPE layouts and the permutation between them, run live.",
               short="9 Meta's code", part="blocks",
               knows="the whole Llama, part by part, as this course's code writes it.",
               adds="the same model as Meta's own code writes it, and how to convert between the two layouts."),
    LessonInfo("sampling", "10. Generation and sampling",
               "Temperature, top-k and top-p on the course model's next-token probabilities, streamed.",
               short="10 Sampling", part="sampling",
               knows="the whole model turns a text into next-token probabilities.",
               adds="how those probabilities become text: greedy choice, temperature, top-k and top-p."),
    LessonInfo("kv_cache", "11. The KV cache",
               "Generation step by step with and without a cache, timed live.",
               short="11 KV cache", part="kv_cache",
               knows="generation runs the model once per new token.",
               adds="why each step need not recompute the keys and values of earlier tokens, and what that saves."),
    LessonInfo("gqa", "12. MQA and GQA",
               "Query heads sharing key/value heads: memory against quality, measured on the course model.",
               short="12 GQA", part="kv_cache",
               knows="the KV cache keeps every layer's keys and values, and its memory grows with the text.",
               adds="how letting query heads share key/value heads shrinks that cache, and what it costs."),
    LessonInfo("efficient_attention", "13. Efficient attention",
               "The memory attention needs, measured; the online softmax; blockwise attention as FlashAttention "
               "computes it (LLaMA section 2.4).",
               short="13 Efficient", part="attention",
               knows="attention's scores form a table of size tokens × tokens in every head.",
               adds="how attention gets the same result without ever storing that table."),
    LessonInfo("training", "14. Training lab",
               "Train a small Llama live with the LLaMA recipe and watch its curves and samples; a shipped ablation "
               "of what RMSNorm, RoPE, SwiGLU, GQA and pre-norm buy, with seed noise; the course model's own "
               "training replayed step by step.",
               short="14 Training", part="",
               knows="every part of a Llama and how it generates text.",
               adds="how the weights are learned: the loss of lesson 1 minimised step by step, live."),
    LessonInfo("scale", "15. Smaller models on more data",
               "Chinchilla's compute-optimal rule against LLaMA's many tokens per parameter; training against "
               "serving cost; two model sizes trained at the same compute.",
               short="15 Scale", part="",
               knows="how a Llama is trained, step by step.",
               adds="how to spend a compute budget: why LLaMA trained small models on far more tokens."),
]


def get(slug: str) -> LessonInfo:
    for lesson in LESSONS:
        if lesson.slug == slug:
            return lesson
    raise KeyError(slug)


def neighbours(slug: str) -> tuple[LessonInfo | None, LessonInfo | None]:
    """The previous and next *ready* lessons, for the page's navigation links."""
    ready = [lesson for lesson in LESSONS if lesson.ready]
    i = [lesson.slug for lesson in ready].index(slug)
    return (ready[i - 1] if i > 0 else None), (ready[i + 1] if i + 1 < len(ready) else None)
