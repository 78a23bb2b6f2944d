"""Lesson: reading Meta's Llama code. The loaded model's weights converted to Meta's layout and run through a
forward pass written the way Meta's reference `llama/model.py` writes it, beside this course's own model.

Meta's reference implementation (github.com/meta-llama/llama, `llama/model.py`, Llama 2; Llama 3 keeps the same
structure in meta-llama/llama3) differs from this course's code (and from transformers') in three ways only:
  1. names: `tok_embeddings`, `attention.wq`, `feed_forward.w1`, ... (llama.checkpoint.META_NAMES);
  2. RoPE: Meta rotates neighbouring dimensions (2i, 2i+1) as complex numbers (`torch.view_as_complex`), the course
     and Hugging Face rotate dimension i with i + hs/2 (`rotate_half`); the weights of q and k differ by a fixed
     row permutation (llama.checkpoint.rope_rows_to_meta) so that both compute the same scores;
  3. engineering: model-parallel layers (fairscale) and a KV cache inside the module (the course keeps its cache
     outside, so one shared model serves many learners).

The functions below re-write Meta's forward pass in its own structure and names (our code, not a copy: no
fairscale, no cache), so the learner can read one beside the other and see them agree to float rounding.

    >>> cm = load_course_model()
    >>> r = compare(cm, "To be, or not to be")
    >>> r.max_diff < 1e-3, r.max_diff_unpermuted > 0.1
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llama.checkpoint import META_NAMES, to_meta_state_dict
from llama.generate import filter_top_p
from llama.model import rope_frequencies
from lessons.course import CourseModel, prepare_text, token_label
from lessons.grading import Question
from lessons.inputs import LessonError
import plotly.graph_objects as go

from lessons.plots import figure

DEFAULT_TEXT = "To be, or not to be, that is the question"
MAX_TOKENS = 64

# ----------------------------------------------------------------------------- Meta's forward, in Meta's words
# Notation as in Meta's code: bsz = batch, seqlen = tokens, n_heads / n_kv_heads, head_dim.


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Meta's RMSNorm.forward: normalise in float32, cast back, then multiply by the gain."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


def precompute_freqs_cis(head_dim: int, end: int, theta: float, scaling: dict | None = None) -> torch.Tensor:
    """Meta's rotation table as complex numbers: freqs_cis[m, i] = exp(i * m * theta_i), (end, head_dim/2).
    (Llama 3.1's long-context rule rescales theta_i first, Meta's `apply_scaling`; llama.model.rope_frequencies
    computes the same frequencies for both codes.)"""
    freqs = rope_frequencies(head_dim, theta, scaling)  # (hd/2,)
    t = torch.arange(end, dtype=torch.float32)
    return torch.polar(torch.ones(end, freqs.numel()), torch.outer(t, freqs))  # complex64 (end, hd/2)


def apply_rotary_emb(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor):
    """Meta's RoPE: dimensions (2i, 2i+1) of each head are one complex number, multiplied by exp(i m theta_i).
    xq (bsz, seqlen, n_heads, hd), xk (bsz, seqlen, n_kv_heads, hd), freqs_cis (seqlen, hd/2)."""
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))  # (bsz, seqlen, nh, hd/2) complex
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    f = freqs_cis[None, :, None, :]  # (1, seqlen, 1, hd/2): broadcast over batch and heads
    xq_out = torch.view_as_real(xq_ * f).flatten(3)  # back to (bsz, seqlen, nh, hd), pairs interleaved
    xk_out = torch.view_as_real(xk_ * f).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Meta's repeat_kv (Llama 2): (bsz, seqlen, n_kv_heads, hd) -> (bsz, seqlen, n_kv_heads * n_rep, hd)."""
    bs, slen, n_kv_heads, head_dim = x.shape
    if n_rep == 1:
        return x
    return x[:, :, :, None, :].expand(bs, slen, n_kv_heads, n_rep, head_dim).reshape(bs, slen, n_kv_heads * n_rep,
                                                                                     head_dim)


def attention(w: dict, i: int, x: torch.Tensor, freqs_cis: torch.Tensor, mask: torch.Tensor | None,
              n_heads: int, n_kv_heads: int, head_dim: int) -> torch.Tensor:
    """Meta's Attention.forward for layer i (without its KV cache): wq, wk, wv, RoPE, scores, softmax, wo."""
    bsz, seqlen, _ = x.shape
    p = f"layers.{i}.attention."
    xq = (x @ w[p + "wq.weight"].T).view(bsz, seqlen, n_heads, head_dim)
    xk = (x @ w[p + "wk.weight"].T).view(bsz, seqlen, n_kv_heads, head_dim)
    xv = (x @ w[p + "wv.weight"].T).view(bsz, seqlen, n_kv_heads, head_dim)
    xq, xk = apply_rotary_emb(xq, xk, freqs_cis)
    keys = repeat_kv(xk, n_heads // n_kv_heads)
    values = repeat_kv(xv, n_heads // n_kv_heads)
    xq, keys, values = xq.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2)  # (bsz, nh, seqlen, hd)
    scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(head_dim)  # (bsz, nh, seqlen, seqlen)
    if mask is not None:
        scores = scores + mask
    scores = F.softmax(scores.float(), dim=-1).type_as(xq)
    output = torch.matmul(scores, values).transpose(1, 2).contiguous().view(bsz, seqlen, -1)
    return output @ w[p + "wo.weight"].T


def feed_forward(w: dict, i: int, x: torch.Tensor) -> torch.Tensor:
    """Meta's FeedForward.forward: w2(silu(w1(x)) * w3(x)); w1 is our gate_proj, w3 up_proj, w2 down_proj."""
    p = f"layers.{i}.feed_forward."
    return (F.silu(x @ w[p + "w1.weight"].T) * (x @ w[p + "w3.weight"].T)) @ w[p + "w2.weight"].T


@torch.no_grad()
def meta_forward(w: dict, cfg, tokens: torch.Tensor) -> torch.Tensor:
    """Meta's Transformer.forward from position 0, every position's logits: tokens (bsz, seqlen) -> (bsz, seqlen, V).
    `w` is a state dict in Meta's names and layout (llama.checkpoint.to_meta_state_dict); `cfg` gives the sizes."""
    _bsz, seqlen = tokens.shape
    h = w["tok_embeddings.weight"][tokens]  # (bsz, seqlen, dim)
    freqs_cis = precompute_freqs_cis(cfg.head_dim, seqlen, cfg.rope_theta, cfg.rope_scaling)
    mask = None
    if seqlen > 1:
        mask = torch.triu(torch.full((seqlen, seqlen), float("-inf")), diagonal=1).type_as(h)  # (seqlen, seqlen)
    for i in range(cfg.n_layers):  # TransformerBlock.forward
        a = f"layers.{i}."
        h = h + attention(w, i, rms_norm(h, w[a + "attention_norm.weight"], cfg.norm_eps), freqs_cis, mask,
                          cfg.n_heads, cfg.n_kv_heads, cfg.head_dim)
        h = h + feed_forward(w, i, rms_norm(h, w[a + "ffn_norm.weight"], cfg.norm_eps))
    h = rms_norm(h, w["norm.weight"], cfg.norm_eps)
    return (h @ w["output.weight"].T).float()


# ----------------------------------------------------------------------------- Meta's sampling (generation.py)


def sample_top_p_keep(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Which tokens Meta's `sample_top_p` (llama/generation.py) can draw: sort, cumulative sum, drop a token when the
    mass *before* it already exceeds p, renormalise. Returns a bool mask over the vocabulary, (V,)."""
    probs_sort, probs_idx = torch.sort(probs, dim=-1, descending=True)
    probs_sum = torch.cumsum(probs_sort, dim=-1)
    mask = probs_sum - probs_sort > p
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[probs_idx[~mask]] = True
    return keep


# ----------------------------------------------------------------------------- what the page shows


def name_rows(cm: CourseModel) -> list[tuple[str, str, str]]:
    """(our / Hugging Face name, Meta's name, shape) for every tensor kind of layer 0 and the model's ends, read
    from the loaded model's own state dict."""
    state = cm.model.state_dict()
    rows = []
    for ours, meta in META_NAMES.items():
        name = ours.format(i=0)
        if name in state:
            rows.append((name, meta.format(i=0), " × ".join(str(s) for s in state[name].shape)))
    return rows


def name_table(cm: CourseModel) -> str:
    """name_rows as a Markdown table."""
    lines = ["| this course and Hugging Face (`model.` prefix in the file) | Meta's reference code | shape |",
             "|---|---|---|"]
    lines += [f"| `{a}` | `{b}` | {s} |" for a, b, s in name_rows(cm)]
    return "\n".join(lines)


def pair_layout_figure(head_dim: int) -> go.Figure:
    """For one head, which dimensions RoPE rotates together: in Meta's layout pair i is dimensions (2i, 2i+1), in
    the rotate-half layout (Hugging Face, this course) it is (i, i + hd/2). Colour = pair index."""
    half = head_dim // 2
    dims = list(range(head_dim))
    meta = [d // 2 for d in dims]
    hf = [d % half for d in dims]
    text = [[str(v) for v in meta], [str(v) for v in hf]]
    fig = figure([dict(type="heatmap", z=[meta, hf], x=dims, y=["Meta", "rotate-half"],
                       text=text, texttemplate="%{text}" if head_dim <= 32 else None, colorscale="Viridis",
                       colorbar=dict(title="pair i"),
                       hovertemplate="dimension %{x}: pair %{z}<extra>%{y}</extra>")],
                 None, height=260, title=f"RoPE pair of each dimension (hd = {head_dim})",
                 xaxis=dict(title="dimension of the head"), margin=dict(l=90, r=20, t=60, b=50))
    return fig


@dataclass(frozen=True)
class Comparison:
    labels: list[str]  # the tokens, BOS first
    max_diff: float  # max |logit ours - logit Meta's code with permuted weights|
    max_diff_unpermuted: float  # the same with the q/k rows left in our order
    logit_scale: float  # max |logit| of our model, for scale
    top1_agree: float  # share of positions whose argmax agrees (ours vs Meta's, permuted)
    top1_agree_unpermuted: float
    next_ours: str  # the predicted next token (last position)
    next_meta: str
    next_unpermuted: str
    notice: str = ""


@torch.no_grad()
def compare(cm: CourseModel, text: str) -> Comparison:
    """Run the learner's text through our model and through Meta's forward on the same weights converted to Meta's
    layout, with and without the q/k permutation. Raises LessonError for empty text or a model that Meta's code
    does not describe."""
    p = prepare_text(cm, text, MAX_TOKENS)
    try:
        meta_w = {k: v.float().cpu() for k, v in to_meta_state_dict(cm.model).items()}
        raw_w = {k: v.float().cpu() for k, v in to_meta_state_dict(cm.model, permute=False).items()}
    except ValueError as e:
        raise LessonError(str(e)) from None
    ids = torch.tensor([p.ids])
    ours = cm.model(ids.to(cm.device)).logits.float().cpu()  # (1, T, V)
    meta = meta_forward(meta_w, cm.config, ids)
    raw = meta_forward(raw_w, cm.config, ids)

    def label(i: int) -> str:
        try:
            return token_label(cm.tokenizer, int(i))
        except (KeyError, IndexError, ValueError):  # an id the tokenizer cannot show (a padded vocabulary)
            return f"<id {int(i)}>"

    return Comparison(
        labels=p.labels, max_diff=float((ours - meta).abs().max()), max_diff_unpermuted=float((ours - raw).abs().max()),
        logit_scale=float(ours.abs().max()),
        top1_agree=float((ours.argmax(-1) == meta.argmax(-1)).float().mean()),
        top1_agree_unpermuted=float((ours.argmax(-1) == raw.argmax(-1)).float().mean()),
        next_ours=label(ours[0, -1].argmax()), next_meta=label(meta[0, -1].argmax()),
        next_unpermuted=label(raw[0, -1].argmax()), notice=p.notice)


def comparison_figure(r: Comparison, show_unpermuted: bool = True) -> go.Figure:
    """The largest logit difference from our model, on a log scale: Meta's code on converted weights, and (when
    show_unpermuted) on weights only renamed."""
    names = ["renamed + q/k permuted"]
    vals = [max(r.max_diff, 1e-12)]
    if show_unpermuted:
        names.append("renamed only")
        vals.append(max(r.max_diff_unpermuted, 1e-12))
    fig = figure([dict(type="bar", x=vals, y=names, orientation="h", text=[f"{v:.2g}" for v in vals],
                       textposition="outside", marker=dict(color=["#4338ca", "#b45309"][:len(vals)]),
                       hovertemplate="%{y}: largest |Δ logit| %{x:.3g}<extra></extra>")],
                 None, height=260, title="Largest |Δ logit| from the course's code",
                 xaxis=dict(type="log", title=f"largest |Δ logit|, log scale (logits reach {r.logit_scale:.1f})"),
                 yaxis=dict(automargin=True), margin=dict(l=20, r=40, t=70, b=60))
    return fig


def comparison_readout(r: Comparison) -> str:
    return (f"On {len(r.labels)} tokens (BOS included): Meta's forward on the converted weights differs from this "
            f"course's model by at most **{r.max_diff:.2g}** in any logit (float rounding: the logits reach "
            f"{r.logit_scale:.1f}); the predicted token agrees at **{r.top1_agree:.0%}** of positions, and both "
            f"predict **{r.next_meta}** next (ours: {r.next_ours}).")


PERMUTE_CHOICES = ("the same logits as the course's model",
                   "logits off by float rounding only",
                   "different logits: the model predicts differently")
PERMUTE_QUESTION = Question(
    "meta_code.permutation",
    "you rename every tensor to Meta's names but skip the q/k row permutation, then run Meta's code. It gives",
    PERMUTE_CHOICES,
    misconception="that converting a checkpoint between the two codes is only a matter of renaming tensors: the "
                  "two RoPE layouts pair different dimensions, so q and k rows must be reordered.")


def permutation_answer(r: Comparison) -> str:
    """The choice the measurement supports: a difference under 1e-4 of the logits' scale is float rounding."""
    if r.max_diff_unpermuted == 0:
        return PERMUTE_CHOICES[0]
    if r.max_diff_unpermuted < 1e-4 * max(r.logit_scale, 1.0):
        return PERMUTE_CHOICES[1]
    return PERMUTE_CHOICES[2]


def reveal_permutation(cm: CourseModel, text: str, picked) -> str:
    r = compare(cm, text)
    body = (f"Measured on your text: without the permutation the largest logit difference is "
            f"**{r.max_diff_unpermuted:.3g}** (with it, {r.max_diff:.2g}); the predicted token agrees at only "
            f"**{r.top1_agree_unpermuted:.0%}** of positions"
            + (f", and the next token would be **{r.next_unpermuted}** instead of **{r.next_ours}**. "
               if r.next_unpermuted != r.next_ours else
               f" (at the last position both still pick **{r.next_ours}**: a wrong model can be right by chance). ")
            + "Meta's `apply_rotary_emb` rotates "
            "dimensions (2i, 2i+1) together; our rows put pair i at (i, i + hd/2), so Meta's code rotates the wrong "
            "pairs by the wrong angles, and every attention score changes.")
    return PERMUTE_QUESTION.reveal(picked, permutation_answer(r), body)


def top_p_agreement(cm: CourseModel, text: str, p: float = 0.9) -> str:
    """Meta's sample_top_p and this course's filter_top_p keep the same tokens for the model's next-token
    distribution on the learner's text: a one-line check of generation.py against llama/generate.py."""
    prep = prepare_text(cm, text, MAX_TOKENS)
    with torch.no_grad():
        logits = cm.model(torch.tensor([prep.ids], device=cm.device)).logits[0, -1].float().cpu()
    meta_keep = sample_top_p_keep(torch.softmax(logits, -1), p)
    ours_keep = torch.isfinite(filter_top_p(logits, p))
    same = bool(torch.equal(meta_keep, ours_keep))
    return (f"At top-p = {p}: Meta's `sample_top_p` keeps **{int(meta_keep.sum())}** tokens, this course's "
            f"`filter_top_p` keeps **{int(ours_keep.sum())}**; the two sets are "
            f"{'**the same**' if same else '**different**'}.")
