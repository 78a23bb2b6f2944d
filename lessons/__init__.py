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
    @property
    def ready(self) -> bool:
        """A lesson gets a page once its text exists; until then the course map lists it as coming soon."""
        return (HERE / self.slug / "lesson.md").exists()

    @property
    def path(self) -> str:
        return "/" + self.slug

    def text(self) -> str:
        """The lesson's explanation (lesson.md), split at '<!-- figure -->' markers by the page builder."""
        return (HERE / self.slug / "lesson.md").read_text(encoding="utf-8")


LESSONS: list[LessonInfo] = [
    LessonInfo("tokenization", "1. BPE tokenization",
               "Train a byte-level BPE live, replay its merges, compare it with Hugging Face and sentencepiece, "
               "and see the course model's embedding vectors."),
    LessonInfo("attention", "2. Attention",
               "The course model's real attention maps: scaled dot-product, the causal mask, every head of a layer, "
               "and one query's scores, softmax and weighted sum of values."),
    LessonInfo("rope", "3. Positional encoding and RoPE",
               "Why attention needs positions, and how RoPE rotates q and k so that only distance matters."),
    LessonInfo("rmsnorm", "4. RMSNorm vs LayerNorm",
               "Two normalisations side by side, and the course model's residual stream before and after each norm."),
    LessonInfo("swiglu", "5. SwiGLU",
               "The gated feed-forward of Llama: activation curves, the 2/3 hidden size, and real gate activations."),
    LessonInfo("gqa", "6. MQA and GQA",
               "Query heads sharing key/value heads: memory against quality, measured on the course model."),
    LessonInfo("kv_cache", "7. The KV cache",
               "Generation step by step with and without a cache, timed live."),
    LessonInfo("sampling", "8. Generation and sampling",
               "Temperature, top-k and top-p on the course model's next-token probabilities, streamed."),
    LessonInfo("assembled", "9. The Llama, assembled",
               "The whole forward pass on your text, box by box with live tensors; parameters, FLOPs and memory "
               "counted; GPT-2 against Llama; Llama 1, 2, 3, 3.1 and 3.2 side by side."),
    LessonInfo("next_token", "10. Next-token prediction",
               "What the model is trained to do: each token's loss on your text, perplexity and bits per character, "
               "unigram and bigram baselines, and a logit lens through the layers."),
    LessonInfo("training", "11. Training lab",
               "Train a small Llama live with the LLaMA recipe and watch its curves and samples; a shipped ablation "
               "of what RMSNorm, RoPE, SwiGLU, GQA and pre-norm buy, with seed noise; the course model's own "
               "training replayed step by step."),
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
