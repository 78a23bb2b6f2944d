"""The whole model on one screen (the course map's live picture): a text through the loaded Llama, part by part.

    >>> ov = overview(cm, "To be, or not to be")
    >>> ov.tokens[:3], ov.ids[:3]                   # BOS first
    (['<s>', 'To', '␣be'], [0, 301, 283])
    >>> len(ov.residual_rms) == cm.config.n_layers + 1   # the embeddings, then after each block
    True
    >>> ov.top[0]                                   # the predicted token: (id, label, probability)
    (11, ',', 0.41)

Every number comes from one traced forward pass of the project's model (`lessons.course.trace`, shared with every
lesson): the token ids, the shapes of the tensors a token meets (B = 1 sequence, T tokens, C = model width,
V = vocabulary), the size of the residual stream after each block, and the next-token probabilities. No Gradio here:
app/pages/home.py draws it, each part a link to its lesson (the parts of app/course_map.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lessons.course import CourseModel, token_label, trace
from lessons.inputs import clean_text

TOP_K = 5  # next tokens shown with their probabilities
MAX_TOKENS = 128  # the picture reads at most this many tokens (BOS included): a longer text's last ones, with a notice


@dataclass(frozen=True)
class Overview:
    """One text through the whole model, as plain data (shapes are tuples of ints, B = 1)."""

    text: str  # the text the model read (cleaned; its last MAX_TOKENS - 1 tokens)
    tokens: list[str]  # readable token labels, BOS first (lessons.course.token_label)
    ids: list[int]  # token ids, BOS first
    n_layers: int
    dim: int  # C, the residual stream's width
    vocab_size: int  # V
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int  # the feed-forward's width
    position: str  # "rope", or the config's other position scheme
    rope_theta: float  # RoPE's base (used when position == "rope")
    shapes: dict[str, tuple[int, ...]]  # part -> the tensor's shape there (see `overview`)
    residual_rms: list[float]  # at the last position: the embedding, then the residual stream after each block
    final_rms: float  # the last position's vector after the final norm (what the output layer reads)
    top: list[tuple[int, str, float]]  # the TOP_K most probable next tokens: (id, label, probability), best first
    next_text: str  # the text with the predicted token appended ("" when it cannot be: end of text, half a character)
    notice: str = ""  # a cut or cleaned text, or why the prediction cannot be appended

    @property
    def predicted(self) -> str:
        """The label of the most probable next token (greedy decoding's pick)."""
        return self.top[0][1]


def rms(x: torch.Tensor) -> float:
    """Root mean square of a vector (C,): sqrt(mean(x**2)), the size RMSNorm divides by (eps left out)."""
    return float(x.float().pow(2).mean().sqrt())


def overview(cm: CourseModel, text, k: int = TOP_K) -> Overview:
    """The learner's text through the whole loaded model. Raises LessonError for an empty text.

    shapes: "embeddings" (1, T, C); "attention" (1, n_heads, T, T), the attention probabilities of one block;
    "ffn" (1, T, hidden_dim), the SwiGLU gate of one block; "block" (1, T, C), what each block returns;
    "logits" (1, T, V); "probabilities" (V,), the softmax of the last position's logits.
    The residual stream's size is its RMS at the last position (the one whose next token is predicted)."""
    c, model, tok = cm.config, cm.model, cm.tokenizer
    cleaned, notice = clean_text(text)  # LessonError for empty text
    body = tok.encode(cleaned)
    limit = min(MAX_TOKENS, c.max_seq_len) - 1  # tokens after BOS
    cut = len(body) > limit or len(cleaned) < len(text or "")
    if len(body) > limit:  # the next token follows the end of the text: the model reads its last tokens
        notice = " ".join(s for s in (notice, f"The text has {len(body):,} tokens; the model reads the last {limit} "
                                      f"(after BOS; the limit is {limit + 1} tokens).") if s)
        body = body[-limit:]
    ids = [tok.bos_id] + body
    tr = trace(model, tuple(ids))  # cached: every lesson reads the same recorded tensors
    T = len(ids)
    with torch.inference_mode():
        last = tr.final_norm_out[0, -1]  # (C,) the last position after the final norm
        logits = model.lm_head(last).float()  # (V,)
        probs = torch.softmax(logits, dim=-1)
        top_p, top_i = probs.topk(min(k, probs.numel()))
    top = [(int(i), token_label(cm.tokenizer, int(i)), float(q)) for q, i in zip(top_p, top_i)]
    resid = [rms(tr.embeddings[0, -1])] + [rms(layer.out[0, -1]) for layer in tr.layers]
    shapes = {
        "embeddings": tuple(tr.embeddings.shape),  # (1, T, C)
        "attention": tuple(tr.layers[0].attn.shape),  # (1, nh, T, T)
        "ffn": tuple(tr.layers[0].gate.shape),  # (1, T, hidden)
        "block": tuple(tr.layers[-1].out.shape),  # (1, T, C)
        "logits": (1, T, c.vocab_size),  # (1, T, V): the output layer at every position
        "probabilities": tuple(probs.shape),  # (V,)
    }
    next_text, why = _append(cm, cleaned, ids, top[0][0], cut)
    notice = " ".join(s for s in (notice, why) if s)
    read = tok.decode(body, skip_special_tokens=True) if cut else cleaned
    return Overview(read, [token_label(tok, i) for i in ids], ids, c.n_layers, c.dim, c.vocab_size, c.n_heads, c.n_kv_heads,
                    c.head_dim, c.hidden_dim, c.position, c.rope_theta, shapes, resid, rms(last), top, next_text, notice)


def _append(cm: CourseModel, text: str, ids: list[int], new: int, cut: bool) -> tuple[str, str]:
    """(the text with token `new` appended, "") or ("", why not). The token is decoded together with the text it
    follows (a sentencepiece token's leading space is only kept that way), and the learner's own text is kept as
    typed: only what decoding the token adds is appended. A `cut` text is replaced by the part the model read, plus
    the token, so the next run reads the new token too."""
    tok = cm.tokenizer
    if new in (tok.eos_id, tok.bos_id, tok.pad_id):
        return "", "The most probable next token is the end of the text: there is nothing to append."
    body = ids[1:]  # without BOS
    base = tok.decode(body, skip_special_tokens=True)
    full = tok.decode(body + [new], skip_special_tokens=True)
    added = full[len(base):] if full.startswith(base) else None
    if added is None or "\ufffd" in added:
        return "", ("The most probable next token is only part of a character (one byte of several): it cannot be "
                    "appended as text on its own.")
    return (full if cut else text + added), ""
