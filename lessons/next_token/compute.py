"""Lesson 10 computations: what a Llama is trained to do, measured on the learner's text.

A causal language model factors the probability of a text into next-token predictions,

    p(x_1 .. x_n) = prod_t p(x_t | x_<t)

and is trained to lower the cross-entropy of each one, -ln p(x_t | x_<t) (nats per token), with the targets being
the inputs shifted by one (`llama.train.get_batch`). Everything here reads one cached traced forward pass
(`lessons.course.trace`):

    ids [BOS, x_1 .. x_n] -> logits (n+1, V) -> per-token losses (n,) -> mean, perplexity, bits per character
                          -> each layer's residual stream through the final norm and lm_head (the logit lens)

and compares the model with counting baselines (unigram and bigram frequencies over the model's own tokens,
counted on the model's own training split, which ships in assets/data, or for another model on the held-out
TinyShakespeare excerpt).

    >>> s = score(cm, "To be, or not to be")
    >>> len(s.losses) == len(s.ids) - 1, round(s.perplexity, 2) == round(math.exp(s.mean_loss), 2)
    (True, True)

Nothing here imports Gradio; `app/pages/next_token.py` lays these out.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from lessons import plots
from lessons.course import (LRU, DEFAULT_MODEL_DIR, ROOT, CourseModel, plot_label, prepare_text, token_label, trace,
                            training_summary, unique_labels, validation_excerpt, vocab_tokens)
from lessons.grading import Question, grade
from lessons.inputs import LessonError, clean_text, join, whole
from llama import Llama
from llama.train import split_text

# Hamlet's soliloquy: TinyShakespeare (the course model's training and held-out text) does not contain it, so
# neither the model nor the counting baselines have seen it.
DEFAULT_TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
                "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles")
MAX_TOKENS = 128  # tokens scored, BOS included (a 128 x V lens per layer stays small)
TOP_K = 10  # predictions drawn in the bar chart
LN2 = math.log(2)

_SCORES = LRU(16)  # (model, ids) -> Scored
_COUNTS = LRU(4)  # (model,) -> Counts over the shipped text with the model's tokenizer

MODEL, UNIGRAM, BIGRAM_ADD1, BIGRAM_WB, UNIFORM = (
    "the model", "unigram counts (add-one)", "bigram counts (add-one)", "bigram counts (Witten-Bell)",
    "uniform guess")
PREDICTORS = (MODEL, BIGRAM_WB, BIGRAM_ADD1, UNIGRAM)  # the question's choices (uniform is ln V, no counting)
COLOURS = {MODEL: "#0072B2", BIGRAM_WB: "#009E73", BIGRAM_ADD1: "#56B4E9", UNIGRAM: "#E69F00", UNIFORM: "#999999"}


# ----------------------------------------------------------------------------- the model's losses


def readout(model: Llama, resid: torch.Tensor) -> torch.Tensor:
    """The logit lens (nostalgebraist, "interpreting GPT: the logit lens", 2020): a residual stream (..., C) read
    out as if it were the last layer's, through the final norm and lm_head -> logits (..., V) in fp32.

    A post-norm model's blocks already end in a norm, so its final norm is the identity (as in `Llama.forward`).
    At the last layer this is exactly the model's own logits."""
    h = model.norm(resid) if model.config.norm_placement == "pre" else resid
    return model.lm_head(h).float()


@dataclass
class Scored:
    """One text scored by the model. Target j (1..n) is ids[j], predicted at position j-1 from ids[:j].

    Lists over targets have n = len(ids) - 1 entries (entry j-1 is target j); lens lists have one row per
    readout: the embeddings, then the output of each of model.layers[0 .. L-1] (the last row is the logits)."""

    ids: list[int]
    labels: list[str]
    notice: str
    losses: list[float]  # -ln p(target) in nats, from the final logits
    chars: int  # characters the n targets spell (the tokenizer's decode)
    top_ids: list[list[int]]  # (n, TOP_K) most likely tokens at each position
    top_probs: list[list[float]]  # (n, TOP_K)
    ranks: list[int]  # (n,) 1 = the target was the model's top prediction
    lens_probs: list[list[float]]  # (L+1, n) p(target) read out after each layer
    lens_ranks: list[list[int]]  # (L+1, n)
    lens_top: list[list[int]]  # (L+1, n) the top prediction read out after each layer

    @property
    def n(self) -> int:
        return len(self.losses)

    @property
    def total(self) -> float:
        return sum(self.losses)

    @property
    def mean_loss(self) -> float:
        return self.total / self.n

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_loss)

    @property
    def bits_per_char(self) -> float:
        return bits_per_char(self.total, self.chars)


def bits_per_char(total_nats: float, chars: int) -> float:
    """Total loss in nats -> bits per character: total / (ln 2 * characters). The tokenizer-free scale: a model
    with a bigger vocabulary has fewer, harder tokens, and per character both read the same."""
    return total_nats / (LN2 * max(chars, 1))


def rank_of(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank of each target among its row's logits, 1 = the largest (ties count in the target's favour).
    logits (..., V), targets (...) -> (...)"""
    own = logits.gather(-1, targets[..., None])  # (..., 1)
    return (logits > own).sum(-1) + 1


@torch.inference_mode()
def _score(cm: CourseModel, ids: tuple[int, ...], labels: list[str], notice: str) -> Scored:
    model = cm.model
    tr = trace(model, ids)
    targets = torch.tensor(ids[1:], device=cm.device)  # (n,) the inputs shifted by one
    streams = [tr.embeddings] + [layer.out for layer in tr.layers]  # L+1 of (1, T, C)
    lens_probs, lens_ranks, lens_top = [], [], []
    n_tok = vocab_tokens(cm)  # ranks, tops and lists among the tokenizer's ids (not an embedding's padding rows)
    for resid in streams:  # one layer's (T, V) logits at a time: a 128k vocabulary stays affordable
        logits = readout(model, resid[0, :-1])  # (n, V): position t predicts ids[t+1]
        logp = torch.log_softmax(logits, -1)
        lens_probs.append(logp.gather(-1, targets[:, None])[:, 0].exp().tolist())
        lens_ranks.append(rank_of(logits[:, :n_tok], targets).tolist())
        lens_top.append(logits[:, :n_tok].argmax(-1).tolist())
    # the last readout is the model's own logits: its cross-entropy is the training loss, token by token
    losses = F.cross_entropy(logits, targets, reduction="none")  # (n,) nats
    top = torch.softmax(logits, -1)[:, :n_tok].topk(min(TOP_K, n_tok), -1)  # the model's probabilities
    return Scored(list(ids), labels, notice, losses.tolist(), len(cm.tokenizer.decode(list(ids[1:]))),
                  top.indices.tolist(), top.values.tolist(), lens_ranks[-1], lens_probs, lens_ranks, lens_top)


def score(cm: CourseModel, text) -> Scored:
    """The learner's text scored by the model, cached by (model, ids). The text is cleaned and capped at
    MAX_TOKENS tokens with BOS (`lessons.course.prepare_text`, with a notice); LessonError for empty text or a
    text that gives no token after BOS."""
    p = prepare_text(cm, text, MAX_TOKENS)
    if len(p.ids) < 2:
        raise LessonError("The text gives no token after BOS: there is nothing to predict.")
    return _SCORES.get_or_compute((cm.model, tuple(p.ids)), lambda: _score(cm, tuple(p.ids), p.labels, p.notice))


# ----------------------------------------------------------------------------- counting baselines


TRAINING_CORPUS = ROOT / "assets" / "data" / "tinyshakespeare.txt"  # the course model's corpus, shipped


def training_split(cm: CourseModel) -> str | None:
    """The text the model was trained on, where it ships: for the course model (assets/model), the first 90% of
    assets/data/tinyshakespeare.txt, cut exactly as `llama.train.split_text` cut it for training. None for any
    other model (a real checkpoint's training data does not ship)."""
    if cm.path.resolve() != DEFAULT_MODEL_DIR.resolve() or not TRAINING_CORPUS.exists():
        return None
    return _TRAIN_TEXT.get_or_compute(TRAINING_CORPUS, lambda: split_text(TRAINING_CORPUS.read_text("utf-8"))[0])


_TRAIN_TEXT = LRU(1)


def counted_label(cm: CourseModel) -> str:
    """A few words for a figure's subtitle: which text the counts come from."""
    return "the model's training split" if training_split(cm) is not None else "held-out Shakespeare"


def counted_text(cm: CourseModel) -> str:
    """The text the baselines are counted on: the model's own training split where it ships (as the model, counting
    learns from what it was trained on), else the course's held-out TinyShakespeare excerpt."""
    return training_split(cm) or validation_excerpt(cm)


def counted_on(cm: CourseModel) -> str:
    """The text the baselines are counted on, in words."""
    train = training_split(cm)
    if train is not None:
        return (f"the model's own training split: the first {len(train):,} characters (90%) of "
                f"`assets/data/{TRAINING_CORPUS.name}`, cut as `llama.train.split_text` cut it for training")
    return (f"the course's `{DEFAULT_MODEL_DIR.name}/val_excerpt.txt` ({len(validation_excerpt(cm)):,} characters of "
            f"held-out TinyShakespeare): `{cm.path.name}/` ships no training text of its own, so the counts come "
            "from Shakespeare, which may be far from what this model was trained on")


@dataclass
class Counts:
    """Token and token-pair counts over a text tokenized by the model's tokenizer (BOS first, as the model sees
    every window). unigram[w] = c(w); bigram[(v, w)] = c(v w); context[v] = c(v followed by anything);
    followers[v] = how many different tokens follow v."""

    vocab: int
    tokens: int  # targets counted (text tokens, BOS excluded)
    unigram: Counter
    bigram: Counter
    context: Counter
    followers: Counter

    @classmethod
    def of(cls, ids: list[int], vocab: int) -> "Counts":
        """[1, 5, 5, 7] -> unigram {5: 2, 7: 1}, bigram {(1, 5): 1, (5, 5): 1, (5, 7): 1}, context {1: 1, 5: 2}"""
        pairs = Counter(zip(ids[:-1], ids[1:]))
        return cls(vocab, len(ids) - 1, Counter(ids[1:]), pairs, Counter(ids[:-1]), Counter(v for v, _ in pairs))

    def p_unigram(self, w: int) -> float:
        """Add-one (Laplace) smoothing: (c(w) + 1) / (N + V). Every token gets some probability."""
        return (self.unigram[w] + 1) / (self.tokens + self.vocab)

    def p_bigram_add1(self, v: int, w: int) -> float:
        """Add-one bigram: (c(v w) + 1) / (c(v) + V)."""
        return (self.bigram[(v, w)] + 1) / (self.context[v] + self.vocab)

    def p_bigram_wb(self, v: int, w: int) -> float:
        """Witten-Bell interpolation (Witten & Bell 1991; Chen & Goodman 1998, section 2.6): the bigram's
        relative frequency mixed with the add-one unigram, trusting the bigram more the more often v was seen and
        the fewer different tokens followed it: (c(v w) + n(v) * p_uni(w)) / (c(v) + n(v)), n(v) = distinct
        followers of v. A v never seen as context falls back to the unigram."""
        c, n = self.context[v], self.followers[v]
        if c == 0:
            return self.p_unigram(w)
        return (self.bigram[(v, w)] + n * self.p_unigram(w)) / (c + n)

    def losses(self, name: str, ids: list[int]) -> list[float]:
        """-ln p(target) of each target ids[1:] under the named baseline (nats)."""
        p = {UNIGRAM: lambda v, w: self.p_unigram(w), BIGRAM_ADD1: self.p_bigram_add1, BIGRAM_WB: self.p_bigram_wb,
             UNIFORM: lambda v, w: 1 / self.vocab}[name]
        return [-math.log(p(v, w)) for v, w in zip(ids[:-1], ids[1:])]


def counts(cm: CourseModel) -> Counts:
    """The baselines' counts over `counted_on(cm)` with the model's tokenizer (cached per model)."""
    def count():
        ids = [cm.tokenizer.bos_id] + cm.tokenizer.encode(counted_text(cm))
        return Counts.of(ids, vocab_tokens(cm))
    return _COUNTS.get_or_compute((cm.model,), count)


@dataclass
class Comparison:
    rows: dict  # predictor -> {"loss": nats/token, "perplexity", "bpc"}
    notice: str  # non-empty when the learner's text is part of the counted text

    @property
    def best(self) -> str:
        """The predictor (of PREDICTORS) with the lowest mean loss on the text."""
        return min(PREDICTORS, key=lambda k: self.rows[k]["loss"])


def compare(cm: CourseModel, text) -> Comparison:
    """The model and the counting baselines on the same targets of the learner's text."""
    s = score(cm, text)
    c = counts(cm)
    rows = {}
    for name in (MODEL, BIGRAM_WB, BIGRAM_ADD1, UNIGRAM, UNIFORM):
        losses = s.losses if name == MODEL else c.losses(name, s.ids)
        total = sum(losses)
        rows[name] = dict(loss=total / s.n, perplexity=math.exp(total / s.n), bpc=bits_per_char(total, s.chars))
    body = cm.tokenizer.decode(s.ids[1:]).strip()
    seen = "" if not body or body not in counted_text(cm) else (
        "Your text is part of the text the baselines were counted on, so they have seen it (and where that is the "
        "training split, so has the model): their losses are lower than on new text.")
    return Comparison(rows, seen)


# ----------------------------------------------------------------------------- showing it


def md_token(s: str) -> str:
    """A token label inside Markdown code: backticks would end the span, so they become ˋ."""
    return "`" + s.replace("`", "ˋ") + "`"


def surprise_colour(loss: float, top: float) -> str:
    """White (0 nats) to red (`top` nats or more)."""
    f = max(0.0, min(1.0, loss / top))
    g = round(255 - 175 * f)
    return f"rgb(255,{g},{g})"


def chips_html(cm: CourseModel, s: Scored) -> str:
    """The text as token chips coloured by the model's loss on each (its "surprise"), the loss in nats under each
    chip; BOS is grey (it is given, never predicted). White is 0 nats, red ln V: as surprised as a uniform guess."""
    top = math.log(vocab_tokens(cm))
    spans = [f"<span class='chip' title='BOS: given, not predicted' style='background:#e5e7eb;color:#111'>"
             f"{html.escape(s.labels[0])}</span>"]
    for j, (label, loss) in enumerate(zip(s.labels[1:], s.losses), start=1):
        tip = html.escape(f"token {j} {label!r}: loss {loss:.2f} nats, p = {math.exp(-loss):.3g}, rank {s.ranks[j - 1]}",
                          quote=True)
        spans.append(f"<span class='chip' title=\"{tip}\" style='background:{surprise_colour(loss, top)};color:#111'>"
                     f"{html.escape(label)}<sub style='opacity:.7;margin-left:2px'>{loss:.1f}</sub></span>")
    legend = (f"<div style='font-size:.85em;opacity:.8;margin-bottom:2px'>Each token's loss −ln p in nats (the small "
              f"number); white = 0 (certain), red = ln V = {top:.2f} (as surprised as a uniform guess over "
              f"{vocab_tokens(cm):,} tokens) or more. Hover a chip for p and rank.</div>")
    return f"{legend}<div class='token-chips'>{''.join(spans)}</div>"


def summary_markdown(cm: CourseModel, s: Scored) -> str:
    """The text's mean loss, perplexity and bits per character, with the arithmetic, and the loss the training
    script measured on the model's whole held-out split (summary.json beside the model) when there is one."""
    best = max(range(s.n), key=lambda j: s.losses[j])
    easy = min(range(s.n), key=lambda j: s.losses[j])
    first = sum(r == 1 for r in s.ranks)
    return (f"**{s.n} tokens predicted** (every token after BOS), {s.chars:,} characters.\n\n"
            f"| | |\n|---|---|\n"
            f"| total loss | {s.total:.2f} nats |\n"
            f"| mean loss | {s.total:.2f} / {s.n} = **{s.mean_loss:.3f} nats per token** |\n"
            f"| perplexity | exp({s.mean_loss:.3f}) = **{s.perplexity:.1f}** |\n"
            f"| bits per character | {s.total:.2f} / (ln 2 × {s.chars:,}) = **{s.bits_per_char:.3f}** |\n"
            f"| top prediction right | {first} of {s.n} tokens |\n\n"
            f"Most surprising: token {best + 1} {md_token(s.labels[best + 1])} ({s.losses[best]:.2f} nats, "
            f"p = {math.exp(-s.losses[best]):.2g}). Least: token {easy + 1} {md_token(s.labels[easy + 1])} "
            f"({s.losses[easy]:.3f} nats, p = {math.exp(-s.losses[easy]):.3f}).{held_out_line(cm)}")


def held_out_line(cm: CourseModel) -> str:
    summ = training_summary(cm)
    if "val_loss_per_token" not in summ:
        return ""
    return (f"\n\nFor comparison, the training script measured {summ['val_loss_per_token']:.3f} nats per token "
            f"(perplexity {math.exp(summ['val_loss_per_token']):.1f}, "
            f"{summ['val_loss_per_char'] / LN2:.3f} bits per character) on the model's whole held-out split "
            f"({summ['val_tokens']:,} tokens, `summary.json`).")


def read_position(s: Scored, position) -> tuple[int, str]:
    """The slider's target token, clamped to 1..n (n = tokens after BOS), with a notice."""
    return whole(position, "Predicted token", 1, s.n, default=1)


def context_label(s: Scored, j: int, width: int = 24) -> str:
    """The text before target j, its end only: '…not to be, that is the'"""
    text = "".join(s.labels[1:j]).replace("␣", " ").replace("⏎", " ")
    return ("…" + text[-width:]) if len(text) > width else (text or "(BOS only)")


def top_figure(cm: CourseModel, s: Scored, j: int) -> go.Figure:
    """The model's TOP_K predictions at position j-1 (for target j), the true next token marked; when the true
    token is not among them it gets its own bar with its rank."""
    ids, probs = list(s.top_ids[j - 1]), list(s.top_probs[j - 1])
    target = s.ids[j]
    p_true, rank = math.exp(-s.losses[j - 1]), s.ranks[j - 1]
    names = [token_label(cm.tokenizer, i) for i in ids]
    if target not in ids:
        ids.append(target)
        probs.append(p_true)
        names.append(token_label(cm.tokenizer, target))
    shown = len(s.top_ids[j - 1])
    ticks = [plot_label(f"{k + 1 if k < shown else rank}. {n}") for k, n in enumerate(names)]
    colours = [COLOURS[MODEL] if i != target else "#D55E00" for i in ids]
    fig = plots.figure([go.Bar(x=probs, y=ticks, orientation="h", marker_color=colours,
                               text=[f"{p:.3f}" for p in probs], textposition="outside", cliponaxis=False,
                               hovertemplate="%{y}: p = %{x:.4f}<extra></extra>")],
                       height=140 + 26 * len(ids), margin=dict(l=60, r=40, t=80, b=50),
                       title=dict(text=f"Token {j}: after “{plot_label(context_label(s, j))}”, the top {TOP_K} of "
                                       f"{vocab_tokens(cm):,} (true next: {plot_label(s.labels[j])}, p = "
                                       f"{p_true:.3f}, rank {rank}, in orange)"),
                       xaxis=dict(title="probability", range=[0, max(probs) * 1.25]),
                       yaxis=dict(autorange="reversed", type="category"))
    return fig


SHORT = {MODEL: "model", BIGRAM_WB: "bigram<br>Witten-<br>Bell", BIGRAM_ADD1: "bigram<br>add-one",
         UNIGRAM: "unigram<br>add-one", UNIFORM: "uniform<br>guess"}  # axis labels that fit a phone


def comparison_figure(cm: CourseModel, comp: Comparison, s: Scored) -> go.Figure:
    """Mean loss (nats per token) of the model and each baseline on the same targets, bits per character as text."""
    names = [MODEL, BIGRAM_WB, BIGRAM_ADD1, UNIGRAM, UNIFORM]
    rows = [comp.rows[k] for k in names]
    return plots.figure([go.Bar(x=[SHORT[k] for k in names], customdata=names, y=[r["loss"] for r in rows], marker_color=[COLOURS[k] for k in names],
                                text=[f"{r['loss']:.2f} nats<br>{r['bpc']:.2f} bits/char" for r in rows],
                                textposition="outside", cliponaxis=False,
                                hovertemplate="%{customdata}: %{y:.3f} nats per token<extra></extra>")],
                        height=400, margin=dict(l=60, r=20, t=80, b=80),
                        title=dict(text=f"Your text's {s.n} tokens: the model against counting "
                                        f"(counts from {counts(cm).tokens:,} tokens: {counted_label(cm)})"),
                        xaxis=dict(type="category", tickangle=0),  # two-line labels: never rotated
                        yaxis=dict(title="mean loss (nats per token)",
                                   range=[0, max(r["loss"] for r in rows) * 1.25]))


def comparison_markdown(cm: CourseModel, comp: Comparison, s: Scored) -> str:
    c = counts(cm)
    lines = ["| predictor | nats per token | perplexity | bits per character |", "|---|---|---|---|"]
    for name, r in comp.rows.items():
        lines.append(f"| {name} | {r['loss']:.3f} | {r['perplexity']:.1f} | {r['bpc']:.3f} |")
    m, wb = comp.rows[MODEL]["loss"], comp.rows[BIGRAM_WB]["loss"]
    gap = (f"The model's loss is {wb - m:.2f} nats per token below the best bigram's: each token is "
           f"e^{wb - m:.2f} = {math.exp(wb - m):.1f}× more probable on average (geometric mean) under the model: "
           "what the model predicts beyond counting pairs of tokens." if m < wb else
           f"Here the Witten-Bell bigram beats the model by {m - wb:.2f} nats per token.")
    return (comp.notice + "\n\n" if comp.notice else "") + "\n".join(lines) + (
        f"\n\nCounted on {counted_on(cm)}: {c.tokens:,} tokens with the model's tokenizer, "
        f"{len(c.bigram):,} different pairs of the {c.vocab ** 2:,} possible. {gap}")


def lens_figure(cm: CourseModel, s: Scored, j: int | None = None) -> go.Figure:
    """The logit lens as a heatmap: p(true next token) read out after each layer (rows, embeddings at the bottom)
    at each position (columns, labelled by the token to predict); a dot where it is that readout's top
    prediction; a box around the chosen target j."""
    L = cm.config.n_layers
    rows = ["embedding"] + [f"layer {i}" for i in range(L)]
    cols = [plot_label(x) for x in unique_labels(s.labels[1:])]
    hit_x = [cols[t] for r in range(L + 1) for t in range(s.n) if s.lens_ranks[r][t] == 1]
    hit_y = [rows[r] for r in range(L + 1) for t in range(s.n) if s.lens_ranks[r][t] == 1]
    data = [go.Heatmap(z=s.lens_probs, x=cols, y=rows, zmin=0, zmax=1, colorscale="Blues",
                       colorbar=dict(title="p", thickness=12),
                       hovertemplate="predicting %{x}<br>read out after %{y}: p = %{z:.3f}<extra></extra>"),
            go.Scatter(x=hit_x, y=hit_y, mode="markers", marker=dict(size=5, color="#D55E00"), showlegend=False,
                       hovertemplate="%{x}: the top prediction after %{y}<extra></extra>")]
    shapes = []
    if j is not None:
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=j - 1.5, x1=j - 0.5, y0=0, y1=1,
                           line=dict(color="#D55E00", width=2)))
    return plots.figure(data, height=260 + 22 * L, margin=dict(l=70, r=20, t=80, b=80), shapes=shapes,
                        title=dict(text="Logit lens: p(true next token) read out after each layer "
                                        "(dot: the top prediction there)"),
                        xaxis=dict(type="category", title="token to predict", tickangle=-60, range=[-0.5, s.n - 0.5]),
                        yaxis=dict(type="category"))


def first_top_layer(s: Scored, j: int) -> int | None:
    """The first readout (0 = embedding, i + 1 = after model.layers[i]) from which the true token j stays the top
    prediction through the last layer; None when the model's final top prediction is another token."""
    ranks = [s.lens_ranks[r][j - 1] for r in range(len(s.lens_ranks))]
    if ranks[-1] != 1:
        return None
    r = len(ranks) - 1
    while r > 0 and ranks[r - 1] == 1:
        r -= 1
    return r


def readout_name(r: int) -> str:
    return "the embedding" if r == 0 else f"layer {r - 1}"


def lens_position_figure(cm: CourseModel, s: Scored, j: int) -> go.Figure:
    """For target j: p(true next token) after each layer, each bar labelled with that readout's top prediction."""
    L = cm.config.n_layers
    rows = ["embedding"] + [f"layer {i}" for i in range(L)]
    probs = [s.lens_probs[r][j - 1] for r in range(L + 1)]
    tops = [plot_label(token_label(cm.tokenizer, s.lens_top[r][j - 1])) for r in range(L + 1)]
    r = first_top_layer(s, j)
    when = (f"the top prediction from {readout_name(r)} on" if r is not None else
            "never the final top prediction")
    return plots.figure([go.Bar(x=rows, y=probs, marker_color=["#D55E00" if s.lens_ranks[k][j - 1] == 1 else "#0072B2"
                                                               for k in range(L + 1)],
                                text=[f"top: {t}" for t in tops], textposition="outside", cliponaxis=False,
                                customdata=[s.lens_ranks[k][j - 1] for k in range(L + 1)],
                                hovertemplate="%{x}: p = %{y:.3f}, rank %{customdata}<extra></extra>")],
                        height=380, margin=dict(l=60, r=20, t=80, b=60),
                        title=dict(text=f"Token {j} ({plot_label(s.labels[j])}) through the lens: {when} "
                                        "(orange: ranked first)"),
                        xaxis=dict(type="category", title="read out after"),
                        yaxis=dict(title="p(true next token)", range=[0, 1.15]))


def lens_markdown(cm: CourseModel, s: Scored, j: int) -> str:
    """Where in depth token j becomes the top prediction, and how many positions the lens gets right per layer."""
    r = first_top_layer(s, j)
    label = md_token(s.labels[j])
    where = (f"Token {j} {label} is the top prediction from {readout_name(r)} on." if r is not None else
             f"Token {j} {label} is not the model's final top prediction (rank {s.ranks[j - 1]}).")
    L = cm.config.n_layers
    counts_per = [sum(x == 1 for x in s.lens_ranks[k]) for k in range(L + 1)]
    rows = ", ".join(f"{'embedding' if k == 0 else f'layer {k - 1}'} {counts_per[k]}" for k in range(L + 1))
    echo = sum(s.lens_top[0][t] == s.ids[t] for t in range(s.n))
    return (f"{where} Positions whose true next token is the top readout, of {s.n}: {rows}. The embedding's readout "
            f"predicts the input token itself again at {echo} of {s.n} positions.")


# ----------------------------------------------------------------------------- the page's views


@dataclass
class View:
    """Everything the page shows for one text and target position."""

    chips: str
    summary: str
    top: go.Figure
    comparison: go.Figure
    comparison_md: str
    lens: go.Figure
    lens_position: go.Figure
    lens_md: str
    position: int
    n: int  # the slider's maximum
    notice: str
    text: str  # the text scored, after cleaning (at most MAX_TEXT_CHARS): what the page keeps for the slider
    untrained: go.Figure | None = None  # the loss before training against ln V and the trained model (Q_UNTRAINED)


def default_position(s: Scored) -> int:
    """The token the page opens on: the one the model found easiest (lowest loss), so the lens shows it arrive."""
    return 1 + min(range(s.n), key=lambda t: s.losses[t])


BASELINES_WAITING = ("The model against counting answers the question above: press its Reveal (the first one "
                     "counts the model's whole training split, a few seconds).")


def comparison_view(cm: CourseModel, text) -> tuple[go.Figure, str]:
    """(figure, table) of the model against the counting baselines on the text."""
    s = score(cm, text)
    comp = compare(cm, text)
    return comparison_figure(cm, comp, s), comparison_markdown(cm, comp, s)


def text_view(cm: CourseModel, text, position=None, baselines: bool = True) -> View:
    """Score the text and draw every figure, for the target token `position` (None: `default_position`); the
    position is clamped to the text with a notice. `baselines=False` leaves the comparison with counting (which
    counts the training split once per model, seconds) to its question's Reveal: a placeholder figure instead."""
    s = score(cm, text)
    j, why = (default_position(s), "") if position is None else read_position(s, position)
    few = ("Your text is a single token after BOS, so there is one prediction to show and the position slider "
           "stays put: type a few more words to compare positions." if s.n == 1 else "")
    cmp_fig, cmp_md = comparison_view(cm, text) if baselines else (plots.message_figure(BASELINES_WAITING), "")
    return View(chips_html(cm, s), summary_markdown(cm, s), top_figure(cm, s, j), cmp_fig, cmp_md,
                lens_figure(cm, s, j), lens_position_figure(cm, s, j), lens_markdown(cm, s, j), j, s.n,
                join(s.notice, why, few), clean_text(text)[0], untrained_figure(cm, text))


def position_view(cm: CourseModel, text, position) -> tuple:
    """For the position slider: (top figure, lens heatmap, lens bar figure, lens markdown, position, notice)."""
    s = score(cm, text)
    j, why = read_position(s, position)
    return (top_figure(cm, s, j), lens_figure(cm, s, j), lens_position_figure(cm, s, j), lens_markdown(cm, s, j),
            j, why)


# ----------------------------------------------------------------------------- questions that teach

Q_UNTRAINED = Question(
    "next-token-untrained",
    "Before any training, with small random weights, what mean loss does a Llama get on your text?",
    ("about 0 nats", "about 1 nat", "about ln V (V = the vocabulary size)", "far above ln V"),
    misconception="that an untrained model is either hopeless (a loss without bound) or already decent: with small "
                  "random weights every logit is near 0, the softmax is nearly uniform, and each token costs ln V")
Q_BEST = Question(
    "next-token-best",
    "On your text, which gives the lowest mean loss (nats per token): the model, or one of the counting baselines "
    "(counted on the same text the model was trained on)?",
    PREDICTORS,
    misconception="that counting which token follows which is about as good as a language model, or that a small "
                  "model must beat counting by a wide margin")
UNTRAINED_SEED = 0
UNTRAINED_MAX_PARAMETERS = 60_000_000  # a fresh copy of a bigger model is not built for a question
_UNTRAINED = LRU(2)  # model -> a freshly initialised Llama of the same config


def untrained_model(cm: CourseModel) -> Llama | None:
    """A Llama of the same config with fresh random weights (llama.model init: N(0, 0.02), seed UNTRAINED_SEED, as
    `llama.train` starts), on the CPU; None for a model above UNTRAINED_MAX_PARAMETERS. The global random state is
    left as it was (fork_rng)."""
    if sum(p.numel() for p in cm.model.parameters()) > UNTRAINED_MAX_PARAMETERS:
        return None

    def build():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(UNTRAINED_SEED)
            return Llama(cm.model.config).eval().requires_grad_(False)
    return _UNTRAINED.get_or_compute(cm.model, build)


@torch.inference_mode()
def untrained_loss(cm: CourseModel, text) -> float | None:
    """Mean next-token loss (nats per token) of `untrained_model` on the scored text; None where not built."""
    model = untrained_model(cm)
    if model is None:
        return None
    ids = torch.tensor([score(cm, text).ids])  # (1, T)
    return float(F.cross_entropy(model(ids).logits[0, :-1].float(), ids[0, 1:]))


def untrained_figure(cm: CourseModel, text) -> go.Figure:
    """Three bars: a uniform guess (ln V), the model before training, and the trained model, on the learner's text."""
    s = score(cm, text)
    before = untrained_loss(cm, text)
    V = cm.config.vocab_size
    names = ["uniform guess<br>ln V", "before training<br>(random weights)", "trained model"]
    values = [math.log(V), before if before is not None else float("nan"), s.mean_loss]
    return plots.figure([go.Bar(x=names, y=values, marker_color=[COLOURS[UNIFORM], "#D55E00", COLOURS[MODEL]],
                                text=[f"{v:.2f} nats" for v in values], textposition="outside", cliponaxis=False,
                                hovertemplate="%{x}: %{y:.3f} nats per token<extra></extra>")],
                        height=340, margin=dict(l=60, r=20, t=80, b=60),
                        title=dict(text=f"Mean loss on your text's {s.n} tokens (V = {V:,}, ln V = {math.log(V):.2f})"),
                        xaxis=dict(type="category", tickangle=0),
                        yaxis=dict(title="nats per token", range=[0, max(v for v in values if v == v) * 1.25]))


def reveal_untrained(cm: CourseModel, text, picked) -> str:
    """Grade Q_UNTRAINED from the untrained model's measured loss (the choice nearest to it)."""
    s = score(cm, text)
    V = cm.config.vocab_size
    lnv = math.log(V)
    before = untrained_loss(cm, text)
    measured = lnv if before is None else before
    values = dict(zip(Q_UNTRAINED.choices, (0.0, 1.0, lnv, 2 * lnv)))
    answer = min(values, key=lambda c: abs(values[c] - measured))
    how = (f"A Llama of the same configuration with fresh random weights (seed {UNTRAINED_SEED}, the initialisation "
           f"`llama.train` starts from) scores **{before:.3f}** nats per token on your text's {s.n} tokens"
           if before is not None else
           "This model is too large to build an untrained copy of here; an untrained model's logits are all "
           "near 0, so its loss is close to the uniform guess's")
    body = (f"{how}; a uniform guess over V = {V:,} tokens scores ln {V:,} = **{lnv:.3f}** on every token, and the "
            f"trained model {s.mean_loss:.3f}. Random weights of size 0.02 give logits near 0, so the softmax is "
            "almost uniform: training starts from ln V, and every nat below it is learned.")
    return Q_UNTRAINED.reveal(picked, answer, body)


def reveal(cm: CourseModel, text, picked) -> str:
    """Grade Q_BEST from the measured losses on the learner's text."""
    comp = compare(cm, text)
    ranked = sorted(PREDICTORS, key=lambda k: comp.rows[k]["loss"])
    listed = "; ".join(f"{k} {comp.rows[k]['loss']:.3f}" for k in ranked)
    return Q_BEST.reveal(picked, comp.best,
                         f"Mean loss on your text's {score(cm, text).n} tokens, lowest first: {listed} nats per "
                         f"token (a uniform guess: ln {vocab_tokens(cm):,} = "
                         f"{math.log(vocab_tokens(cm)):.3f}).")


QUESTION = Q_BEST.text  # (older name)


NEVER = "never: it is not the final top prediction"
CURRENT, NEXT, NEITHER = "the current token (its own input)", "the next token", "neither: mostly other tokens"
Q_LENS = Question(
    "next-token-embedding-readout",
    "The logit lens's first row reads each position's input embedding straight out through the final norm and "
    "lm_head. On your text, does that readout's top prediction mostly name the current token or the next one?",
    (CURRENT, NEXT, NEITHER),
    misconception="that every readout of the residual stream already predicts the next token: before any layer the "
                  "stream holds only the input token's embedding, and with tied embeddings lm_head scores that "
                  "embedding highest against itself")


def embedding_readout(s: Scored) -> tuple[int, int, int]:
    """(positions whose embedding readout's top token is the current input token, is the next token, positions)."""
    top = s.lens_top[0]  # (n,) position t's top prediction from the embedding alone
    cur = sum(1 for t, w in enumerate(top) if w == s.ids[t])
    nxt = sum(1 for t, w in enumerate(top) if w == s.ids[t + 1])
    return cur, nxt, len(top)


def reveal_embedding_readout(cm: CourseModel, text, picked) -> str:
    """Grade Q_LENS from the embedding row of the lens: which of the two it names more often (neither when both
    are under a fifth of the positions; a tie when they are equal)."""
    s = score(cm, text)
    cur, nxt, n = embedding_readout(s)
    if max(cur, nxt) < n / 5:
        answer = NEITHER
    elif cur == nxt:
        answer = (CURRENT, NEXT)
    else:
        answer = CURRENT if cur > nxt else NEXT
    tied = "" if cm.config.tie_embeddings else " This model's lm_head is its own matrix (untied embeddings)."
    body = (f"Of your text's {n} positions, the embedding readout's top prediction is the **current** token at "
            f"**{cur}** and the **next** token at **{nxt}**.{tied} The first row of the heatmap below shows it: "
            "the embedding row is the input read back, and the next token appears only as layers write into the "
            "stream.")
    return Q_LENS.reveal(picked, answer, body)


LENS_QUESTION = Q_LENS.text  # (older name)


def lens_choices(cm: CourseModel) -> list[str]:
    """The old lens question's choices for this model: every readout, then 'never' (kept for the lens readout)."""
    return [readout_name(r) for r in range(cm.config.n_layers + 1)] + [NEVER]


def reveal_lens(cm: CourseModel, text, position, picked) -> str:
    """Grade the old lens prediction for target `position` of the scored text, from the lens's own ranks."""
    s = score(cm, text)
    j, why = read_position(s, position)
    r = first_top_layer(s, j)
    g = grade(picked, NEVER if r is None else readout_name(r), lens_choices(cm))
    steps = "; ".join(f"{readout_name(k)}: rank {s.lens_ranks[k][j - 1]}, p = {s.lens_probs[k][j - 1]:.3f}"
                      for k in range(len(s.lens_ranks)))
    return join(why, f"{g.verdict()}\n\nToken {j} {md_token(s.labels[j])} read out after each layer: {steps}.")
