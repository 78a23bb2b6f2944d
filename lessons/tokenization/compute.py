"""Lesson 1, tokenization: pure functions from a learner's text to figures and plain data.

The page (app/pages/tokenization.py) only wires these to widgets. Five groups, leaf to root:

    text in        default_text, lessons.inputs     limits, odd Unicode, the course's own text
    training       train_lesson -> Training        our BPE + the three library tokenizers + the course
                                                   model's tokenizer, all on the learner's text; the
                                                   per-learner `Trained` it returns is all a replay needs
    replay         replay(trained, k, sentence)    the sentence cut as of merge k, merge k itself, and the
                                                   compression curve with k marked: one encode, no training
    vectors        embedding_heatmap, embedding_map   the course model's rows E[id] and a PCA map of E
    questions      count_question / reveal_count, reveal_first_merge

Nothing here imports Gradio. HTML (token chips) is built here because it is data about tokens, and
every piece of learner text in it goes through `html.escape`.

    >>> t = train_lesson("low lower lowest " * 50, 262, cm.tokenizer)
    >>> [m.token for m in t.trained.tok.merges]
    ['lo', 'low', 'Ġlow']
    >>> t.trained.n_tokens          # tokens of the text after 0, 1, 2, 3 merges
    [850, 700, 550, 401]
    >>> replay(t.trained, 1, "lowest").chips   # chips lo w e s t, ids 259 122 104 118 119
"""

from __future__ import annotations

import html
import re
import time
import unicodedata
import weakref
from collections import Counter
from dataclasses import dataclass, field

import plotly.graph_objects as go
import torch

import lessons
from lessons.course import LRU, CourseModel, prepare_text, token_label, unique_labels, vocab_tokens
from lessons.grading import Question, grade
from lessons.inputs import LessonError, clean_text, join, whole
from lessons.plots import sparse_labels
from llama.tokenizer import (DEFAULT_SPECIAL_TOKENS, BPETokenizer, compare_tokenizers, merge, pretokenize,
                             train_hf_bpe, train_sentencepiece)
from llama.tokenizer.base import bytes_to_unicode
from llama.tokenizer.interface import Tokenizer
from llama.tokenizer.references import CHARACTER_COVERAGE, VocabTooSmall, is_partial

# ----------------------------------------------------------------------------- limits and defaults

# Training four tokenizers and encoding with five takes about 1 s per 50,000 characters on a busy
# 2-core machine (bench/bench_tokenization.py); more would make every learner wait.
MAX_TEXT_CHARS = 100_000
MAX_SENTENCE_CHARS = 300  # the replayed sentence: long enough for a paragraph, short enough to read as chips
PREVIEW_CHARS = 300  # the comparison colours this much of the learner's text
MAX_EMBED_TOKENS = 48  # rows of the embedding heatmap (BOS included)
VOCAB_MIN, VOCAB_MAX = 260, 4096  # 3 specials + 256 bytes + at least one merge; the slider's range
DEFAULT_SENTENCE = "To be, or not to be: that is the question."
QUESTION_TEXT = "Wherefore art thou Romeo?"

OURS, HF_BPE, SP_BPE, SP_UNIGRAM, COURSE = ("ours (byte-level BPE)", "Hugging Face BPE", "sentencepiece BPE",
                                            "sentencepiece Unigram", "the model's tokenizer")

# Pastel backgrounds with dark text read in light and dark themes; neighbours always differ.
CHIP_COLOURS = ("#fde68a", "#bbf7d0", "#bfdbfe", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#e5e7eb")


def default_text() -> str:
    """The course's own lesson texts, read now, in course order: a text the project wrote itself.

    Each lesson adds its lesson.md when it is ready, so the default grows with the course.
    """
    parts = [lesson.text() for lesson in lessons.LESSONS if lesson.ready]
    return "\n\n".join(p.replace("<!-- figure -->", "").strip() for p in parts)


# ----------------------------------------------------------------------------- showing tokens


def visible(piece: str) -> str:
    """A token's text with the invisible made visible, for a chip.

    ' the\\n' -> '␣the⏎';  a zero-width joiner or right-to-left override -> '<U+200D>', '<U+202E>'
    (an RLO left as is would reverse every chip after it); '' -> '∅'.
    """
    out = []
    for ch in piece:
        if ch == " ":
            out.append("␣")
        elif ch == "\n":
            out.append("⏎")
        elif ch == "\t":
            out.append("⇥")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out) or "∅"


def chips_html(pieces: list[str], ids: list[int] | None = None, caption: str = "") -> str:
    """Coloured token chips; each shows the token's text and, when given, its id.

    ['To', ' be'], [1234, 77] -> '<div class="token-chips">...<span class="chip" ...>To<sub>1234</sub></span>...'
    """
    spans = []
    for i, piece in enumerate(pieces):
        text = html.escape(visible(piece))
        tip = html.escape(f"{repr(piece)}" + (f", id {ids[i]}" if ids else ""), quote=True)
        sub = f"<sub style='opacity:.6;margin-left:2px'>{ids[i]}</sub>" if ids else ""
        spans.append(f"<span class='chip' title=\"{tip}\" style='background:{CHIP_COLOURS[i % len(CHIP_COLOURS)]};"
                     f"color:#111'>{text}{sub}</span>")
    head = f"<div style='font-size:.85em;opacity:.8;margin-bottom:2px'>{html.escape(caption)}</div>" if caption else ""
    return f"{head}<div class='token-chips'>{''.join(spans)}</div>"


def plot_text(s: str) -> str:
    """Plotly reads a few HTML tags in text ('<s>' is strikethrough, '<b>' bold): escape token text.

    '<s>' -> '&lt;s&gt;', which Plotly shows as <s>.
    """
    return html.escape(s, quote=False)


_MD_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&$])")


def md_text(s: str) -> str:
    """Token text inside Markdown: every ASCII punctuation mark escaped, so a token such as '**' or
    '<s>' is shown, not obeyed. '**' -> '\\*\\*'."""
    return _MD_PUNCT.sub(r"\\\1", s)


def pair_label(tok: BPETokenizer, pair: tuple[int, int]) -> str:
    """(35, 119) -> "'␣' + 't'": the two tokens a merge joins, readable."""
    return " + ".join(f"'{token_label(tok, i)}'" for i in pair)


# ----------------------------------------------------------------------------- training


@dataclass
class Trained:
    """What a learner's training leaves behind, kept per learner (gr.State): all a replay needs.

    n_tokens[k] is how many tokens the training text has after the first k merges, for
    k = 0 .. len(tok.merges), so the compression curve is a lookup, not a re-encode.
    """

    tok: BPETokenizer
    n_chars: int
    n_tokens: list[int]
    asked_vocab: int
    first_pairs: list[tuple[str, int]]  # the most frequent pairs before any merge: (label, count)
    course_point: tuple[int, float] | None = None  # (vocab size, chars/token) of the course model's tokenizer

    @property
    def n_merges(self) -> int:
        return len(self.tok.merges)

    @property
    def n_base(self) -> int:
        return self.tok.vocab_size - self.n_merges  # specials + 256 bytes


@dataclass
class Training:
    """One press of Train: the learner's state, the comparison of five tokenizers, and notices."""

    trained: Trained
    text: str  # the text actually used (cleaned, maybe cut)
    notices: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # compare_tokenizers rows (+ 'error' rows), one per tokenizer
    preview: str = ""
    cut: bool = False  # the learner's text was longer than MAX_TEXT_CHARS: `text` is its start

    @property
    def notice(self) -> str:
        return " ".join(self.notices)


def _split_specials(text: str, specials) -> list[tuple[str, bool]]:
    """'a<s>b' -> [('a', False), ('<s>', True), ('b', False)]: specials are cut out before BPE, as encode does."""
    if not specials:
        return [(text, False)]
    rx = re.compile("(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")")
    return [(p, k % 2 == 1) for k, p in enumerate(rx.split(text)) if p]


def token_counts_by_merge(tok: BPETokenizer, text: str) -> tuple[list[int], list[tuple[tuple[int, int], int]]]:
    """Tokens in `text` after each number of merges, and the pair counts before the first merge.

    Applying merges 0, 1, 2, ... one after another to every word gives exactly what
    encode(text, upto_merge=k) gives (a merge can only create pairs that rank later), so one
    pass over the unique words yields the whole curve: the cost of training once, not of
    encoding the text len(merges) times.

        "low lower lowest " * 50, merges 'lo', 'low', 'Ġlow' -> [850, 700, 550, 401]
    """
    words: Counter[str] = Counter()
    n_special = 0
    for piece, is_special in _split_specials(text, tok.special_tokens):
        if is_special:
            n_special += 1
        else:
            words.update(pretokenize(piece, tok.pattern))
    byte_id = [tok.token_to_id(bytes_to_unicode()[b]) for b in range(256)]
    word_ids = [[byte_id[b] for b in w.encode("utf-8")] for w in words]
    freqs = list(words.values())

    where: dict[tuple[int, int], set[int]] = {}  # pair -> the words holding it, so a merge visits only those
    pair_counts: Counter = Counter()
    for w, ids in enumerate(word_ids):
        for pair in zip(ids, ids[1:]):
            where.setdefault(pair, set()).add(w)
            pair_counts[pair] += freqs[w]
    total = n_special + sum(len(ids) * f for ids, f in zip(word_ids, freqs))
    counts = [total]
    for m in tok.merges:
        for w in where.pop(m.pair, ()):
            ids = word_ids[w]
            new = merge(ids, m.pair, m.new_id)
            total -= (len(ids) - len(new)) * freqs[w]
            for pair in zip(new, new[1:]):
                where.setdefault(pair, set()).add(w)
            word_ids[w] = new
        counts.append(total)
    # Ties as the trainer breaks them: higher count first, then the smaller pair of ids.
    top = sorted(pair_counts.items(), key=lambda pc: (-pc[1], pc[0]))[:4]
    return counts, top


def _stage(progress, start: float, end: float):
    """A progress callback for one stage, mapping its own 0..1 onto [start, end] of the whole."""
    def report(fraction: float, desc: str):
        if progress is not None:
            progress(start + (end - start) * min(max(fraction, 0.0), 1.0), desc=desc)
    return report


def train_ours(text: str, vocab_size: int, progress=None) -> BPETokenizer:
    """Our BPE on the text, reporting progress every ~2% of merges (a report costs more than a merge)."""
    n_merges = max(1, vocab_size - len(DEFAULT_SPECIAL_TOKENS) - 256)
    every = max(1, n_merges // 50)

    def on_merge(m):
        if m.step % every == 0 and progress is not None:
            progress(m.step / n_merges, f"our BPE: merge {m.step + 1:,} of up to {n_merges:,}")
    return BPETokenizer.train(text, vocab_size, on_merge=on_merge)


def train_references(text: str, vocab_size: int, progress=None) -> tuple[dict, dict, list[str]]:
    """The three library tokenizers on the text: ({name: tokenizer}, {name: error message}, notices).

    One that cannot train on this text gets a message; the others still run. sentencepiece
    needs a vocabulary of at least 4 + 256 + (distinct characters); below that it is trained at
    its minimum, and the notice says so.
    """
    toks, errors, notices = {}, {}, []
    report = _stage(progress, 0, 1)
    report(0.0, "Hugging Face BPE")
    try:
        toks[HF_BPE] = train_hf_bpe(text, vocab_size)
    except Exception as e:  # the Rust library raises plain Exceptions; one failure must not sink the others
        errors[HF_BPE] = f"could not train on this text: {e}"
    for j, (model_type, name) in enumerate((("bpe", SP_BPE), ("unigram", SP_UNIGRAM))):
        report((j + 1) / 3, name)
        try:
            try:
                toks[name] = train_sentencepiece(text, vocab_size, model_type)
            except VocabTooSmall as e:
                toks[name] = train_sentencepiece(text, e.minimum, model_type)
                notices.append(f"{name} needs at least {e.minimum:,} tokens for this text (4 special and 256 byte "
                               f"pieces, and one per character it keeps: those covering {100 * CHARACTER_COVERAGE:g}% "
                               f"of the text, its space mark ▁ included), so it was trained at {e.minimum:,}.")
        except Exception as e:  # as above: report it in the table, keep the other tokenizers
            errors[name] = f"could not train on this text: {e}"
    return toks, errors, notices


def preview_of(text: str, n: int = PREVIEW_CHARS) -> str:
    """The first ~n characters, cut at a space or line break when there is one nearby, so no word is split."""
    if len(text) <= n:
        return text
    cut = max(text.rfind(" ", 0, n), text.rfind("\n", 0, n))
    return text[:cut if cut > n // 2 else n]


def model_row(tok: Tokenizer, text: str) -> dict:
    """The model's tokenizer on the text, as one comparison row (the keys of compare_tokenizers' rows), through
    the course's Tokenizer interface only: any model's tokenizer (our BPE, Hugging Face `tokenizers`,
    sentencepiece) is measured the same way. "byte tokens" are tokens that are not whole characters."""
    t0 = time.perf_counter()
    ids = tok.encode(text)
    encode_ms = (time.perf_counter() - t0) * 1000
    n, n_bytes = len(ids), len(text.encode("utf-8"))
    return {"name": COURSE, "vocab_size": tok.vocab_size, "n_tokens": n, "chars_per_token": len(text) / n if n else 0.0,
            "bytes_per_token": n_bytes / n if n else 0.0,
            "byte_fallback_count": sum(is_partial(tok.token_bytes(i)) for i in ids), "encode_ms": encode_ms,
            "tokens": tok.pieces(ids)}


def train_lesson(text: str | None, vocab_size: int, course_tok: Tokenizer, progress=None) -> Training:
    """Train our BPE and the three library tokenizers on the learner's text; compare all five.

    `progress(fraction, desc=...)`, when given, hears about each stage (the page passes gr.Progress).
    The vocabulary size is clamped into VOCAB_MIN..VOCAB_MAX and rounded (with a notice); text that nothing
    can be trained on (empty, or nothing but special tokens) raises LessonError.
    """
    cut = isinstance(text, str) and len(text) > MAX_TEXT_CHARS
    text, cleaned = clean_text(text, MAX_TEXT_CHARS, "text")
    vocab_size, vocab_notice = whole(vocab_size, "Vocabulary size", VOCAB_MIN, VOCAB_MAX,
                                     default=min(max(course_tok.vocab_size, VOCAB_MIN), VOCAB_MAX))
    notices = [n for n in (cleaned, vocab_notice) if n]
    if not "".join(p for p, special in _split_specials(text, DEFAULT_SPECIAL_TOKENS) if not special).strip():
        raise LessonError("This text is nothing but special tokens (<s>, </s>, <pad>), which never take part in "
                          "merges: there is nothing to train on. Add some ordinary text.")
    tok = train_ours(text, vocab_size, _stage(progress, 0.0, 0.45))
    _stage(progress, 0.45, 0.5)(0, "counting tokens after every merge")
    n_tokens, top = token_counts_by_merge(tok, text)
    if tok.vocab_size < vocab_size:
        notices.append(f"This text supports only {len(tok.merges):,} merges (every word is already one token), "
                       f"so our vocabulary stopped at {tok.vocab_size:,} tokens instead of {vocab_size:,}.")
    refs, errors, ref_notices = train_references(text, vocab_size, _stage(progress, 0.5, 0.9))
    notices += ref_notices

    _stage(progress, 0.9, 1.0)(0, "encoding your text with all five tokenizers")
    toks = {OURS: tok, **refs}
    stats = {r["name"]: r for r in compare_tokenizers(text, toks) + [model_row(course_tok, text)]}
    preview = preview_of(text)
    shown = {r["name"]: r["tokens"] for r in compare_tokenizers(preview, toks) + [model_row(course_tok, preview)]}
    rows = []
    for name in (OURS, HF_BPE, SP_BPE, SP_UNIGRAM, COURSE):
        if name in errors:
            rows.append({"name": name, "error": errors[name]})
        else:
            row = dict(stats[name], preview_tokens=shown[name])
            row.pop("tokens")  # the whole text's pieces: not shown, and large
            rows.append(row)
    small = [f"{name} at {stats[name]['vocab_size']:,}" for name in refs if stats[name]["vocab_size"] < vocab_size]
    if small:
        notices.append("The library tokenizers found fewer tokens worth learning than you asked for and stopped "
                       "early: " + ", ".join(small) + ".")
    course_row = stats[COURSE]
    trained = Trained(tok, len(text), n_tokens, vocab_size, [(pair_label(tok, p), c) for p, c in top],
                      (course_tok.vocab_size, course_row["chars_per_token"]))
    return Training(trained, text, notices, rows, preview, cut=cut)


_FIRST = LRU(4)  # model -> the page's first Training (seconds of work: once per model, shared read-only)


def first_training(cm: CourseModel, run=None) -> Training:
    """What the page shows before the learner trains anything: the course's text at the model's vocabulary size
    (clamped into the slider's range), computed once per model. Nothing mutates a Training (replays only read it),
    so every learner's State may start from the same one. `run(fn, *args)` runs the training where the caller
    wants it (the app: in a child process, app.background.call); default here."""
    vocab = min(max(cm.tokenizer.vocab_size, VOCAB_MIN), VOCAB_MAX)
    run = run or (lambda fn, *args: fn(*args))
    return _FIRST.get_or_compute((cm.model,), lambda: run(train_lesson, default_text(), vocab, cm.tokenizer))


# ----------------------------------------------------------------------------- the comparison, drawn


def comparison_html(training: Training) -> str:
    """A table of the five tokenizers on the learner's text, then each one's tokens for the text's start."""
    head = ("<table style='border-collapse:collapse;font-size:.92em'><thead><tr>"
            + "".join(f"<th style='text-align:{a};padding:2px 10px'>{h}</th>" for h, a in
                      (("tokenizer", "left"), ("vocabulary", "right"), ("tokens on your text", "right"),
                       ("characters per token", "right"), ("byte tokens", "right"), ("trained on", "left")))
            + "</tr></thead><tbody>")
    body, chips = [], []
    for row in training.rows:
        name = html.escape(row["name"])
        if "error" in row:
            body.append(f"<tr><td style='padding:2px 10px'>{name}</td><td colspan='5' style='padding:2px 10px'>"
                        f"⚠️ {html.escape(row['error'])}</td></tr>")
            continue
        source = "the model's training text (fixed)" if row["name"] == COURSE else "your text"
        cells = (f"{row['vocab_size']:,}", f"{row['n_tokens']:,}", f"{row['chars_per_token']:.2f}",
                 f"{row['byte_fallback_count']:,}")
        body.append(f"<tr><td style='padding:2px 10px'>{name}</td>"
                    + "".join(f"<td style='text-align:right;padding:2px 10px'>{c}</td>" for c in cells)
                    + f"<td style='padding:2px 10px'>{source}</td></tr>")
        pieces = row["preview_tokens"]
        chips.append(chips_html(pieces, caption=f"{row['name']}: {len(pieces)} tokens"))
    n = len(training.preview)
    intro = (f"<p style='margin:.6em 0 .2em'>The first {n:,} characters of your text, as each tokenizer cuts them "
             f"(sentencepiece shows a space as part of the next token, and bytes as &lt;0x..&gt;):</p>")
    return head + "".join(body) + "</tbody></table>" + intro + "".join(chips)


def comparison_figure(training: Training) -> go.Figure:
    """Characters per token for each tokenizer on the learner's text (higher = fewer, longer tokens)."""
    rows = [r for r in training.rows if "error" not in r]
    names = [r["name"] for r in rows]
    bars = go.Bar(
        x=[r["chars_per_token"] for r in rows], y=names, orientation="h",
        marker_color=["#2563eb" if n == OURS else "#9ca3af" if n == COURSE else "#60a5fa" for n in names],
        text=[f"{r['chars_per_token']:.2f} chars/token · {r['n_tokens']:,} tokens · vocab {r['vocab_size']:,}"
              for r in rows],
        textposition="auto", hovertemplate="%{y}: %{x:.2f} characters per token<extra></extra>")
    missing = [r["name"] for r in training.rows if "error" in r]
    notes = [dict(text="not trained: " + ", ".join(missing), xref="paper", yref="paper", x=1, y=-0.25,
                  showarrow=False, xanchor="right", font=dict(size=11))] if missing else []
    return go.Figure(data=[bars], layout=dict(
        title=dict(text=f"Compression on your text ({training.trained.n_chars:,} characters)"), height=300,
        margin=dict(l=10, r=10, t=50, b=40), yaxis=dict(autorange="reversed"), annotations=notes,
        xaxis=dict(title=dict(text="characters per token (more = shorter sequences)"), rangemode="tozero")))


# ----------------------------------------------------------------------------- replaying the merges


@dataclass
class Replay:
    chips: str  # HTML
    merge_md: str  # Markdown: merge k and its neighbours
    figure: go.Figure
    notice: str = ""
    k: int = 0  # the merge step shown (clamped)


def merge_markdown(trained: Trained, k: int) -> str:
    """What merge k did, and the merges just before it, as Markdown.

    k = 0: no merge yet; k >= 1: merge number k (1-based) is tok.merges[k - 1].
    """
    tok, n = trained.tok, trained.n_merges
    if n == 0:
        return "This text supports **no merges**: no word in it is longer than one byte."
    cpt = trained.n_chars / trained.n_tokens[k]
    if k == 0:
        first = tok.merges[0]
        lines = [f"**Step 0 of {n:,}: no merges yet.** Every token is one byte; your text is "
                 f"{trained.n_tokens[0]:,} tokens ({cpt:.2f} characters per token).",
                 f"Merge 1 will join {md_text(pair_label(tok, first.pair))}, the most frequent pair "
                 f"({times(first.count)})."]
        return "\n\n".join(lines)
    m = tok.merges[k - 1]
    lines = [f"**Merge {k:,} of {n:,}:** {md_text(pair_label(tok, m.pair))} → "
             f"'{md_text(token_label(tok, m.new_id))}' (new id {m.new_id:,})",
             f"The pair occurred **{m.count:,}** {times(m.count).split()[-1]} in your text when it was merged. After it your text is "
             f"{trained.n_tokens[k]:,} tokens ({cpt:.2f} characters per token); vocabulary "
             f"{trained.n_base + k:,} tokens.",
             "| merge | pair | new token | count |", "|---:|---|---|---:|"]
    for j in range(max(0, k - 6), k):
        mj = tok.merges[j]
        lines.append(f"| {j + 1:,} | {md_text(pair_label(tok, mj.pair))} | '{md_text(token_label(tok, mj.new_id))}' "
                     f"| {mj.count:,} |")
    return "\n\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:])


def merge_curve_figure(trained: Trained, k: int) -> go.Figure:
    """Characters per token on the learner's text against vocabulary size, merge by merge, with k marked.

    Built in one go.Figure(data, layout) call: update_layout and add_vline each validate the whole
    figure again, which made this 4x slower (it runs on every move of the merge slider).
    """
    n = trained.n_merges
    step = max(1, n // 600)  # at most ~600 points on the line: the shape is the same, the payload small
    ks = list(range(0, n + 1, step))
    if ks[-1] != n:
        ks.append(n)
    cx, cy = trained.n_base + k, trained.n_chars / trained.n_tokens[k]
    data = [
        go.Scatter(x=[trained.n_base + j for j in ks], y=[trained.n_chars / trained.n_tokens[j] for j in ks],
                   mode="lines", name="our BPE on your text", line=dict(color="#2563eb"),
                   hovertemplate="vocabulary %{x:,}: %{y:.2f} chars/token<extra></extra>"),
        go.Scatter(x=[cx], y=[cy], mode="markers+text", name=f"merge {k:,}", marker=dict(size=12, color="#dc2626"),
                   text=[f"k = {k:,}"], textposition="bottom left" if 2 * k > n else "top right",
                   hovertemplate="after %{text}: %{y:.2f} chars/token<extra></extra>"),
    ]
    if trained.course_point:
        vx, vy = trained.course_point
        data.append(go.Scatter(x=[vx], y=[vy], mode="markers", name="the model's tokenizer (its own training text)",
                               marker=dict(size=11, symbol="star", color="#6b7280"),
                               hovertemplate="the model's tokenizer, vocabulary %{x:,}: %{y:.2f} chars/token"
                                             "<extra></extra>"))
    layout = dict(
        title=dict(text="Compression as merges accumulate"), height=340, margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=-0.45, x=0),
        xaxis=dict(title=dict(text="vocabulary size (tokens: 3 special + 256 bytes + merges)")),
        yaxis=dict(title=dict(text="characters per token"), rangemode="tozero"),
        shapes=[dict(type="line", x0=cx, x1=cx, y0=0, y1=1, yref="paper",
                     line=dict(color="#dc2626", width=1, dash="dot"))])
    return go.Figure(data=data, layout=layout)


def replay(trained: Trained | None, k: int | float, sentence: str | None) -> Replay:
    """The sample sentence as the tokenizer cut it after k merges, merge k, and the curve with k marked.

    k is clamped into 0 .. len(merges) and rounded (lessons.inputs.whole, with a notice). At k = 0 every chip
    is one byte; at k = len(merges) the chips are exactly tok.encode(sentence). Raises LessonError when there
    is no tokenizer yet or the sentence is empty.
    """
    if trained is None:
        raise LessonError("Train a tokenizer first (the Train button above).")
    k, k_notice = whole(k, "Merge step", 0, trained.n_merges, default=trained.n_merges)
    sentence, cleaned = clean_text(sentence, MAX_SENTENCE_CHARS, "sample sentence")
    ids = trained.tok.encode_as_of(sentence, k)
    pieces = trained.tok.pieces(ids)
    n_bytes = len(sentence.encode("utf-8"))
    chips = chips_html(pieces, ids, caption=f"after {k:,} merge{'' if k == 1 else 's'}: {len(ids)} tokens "
                                            f"for {len(sentence)} characters ({n_bytes} bytes)")
    return Replay(chips, merge_markdown(trained, k), merge_curve_figure(trained, k), join(k_notice, cleaned), k)


# ----------------------------------------------------------------------------- from ids to vectors


@dataclass(frozen=True)
class EmbeddingPCA:
    coords: torch.Tensor  # (V, 2) every token's embedding projected on the top two principal axes
    explained: tuple[float, float]  # fraction of the total variance along each axis
    shown: list[int]  # the ids drawn as points: every token, or an even sample of MAP_POINTS of a big vocabulary
    names: list[str]  # hover text per shown token, '17 <0x0E>' escaped for Plotly (built once, not per call)
    rows: int = 0  # rows of the embedding table (more than V when it is padded past the tokenizer)

    @property
    def xy(self) -> tuple[list[float], list[float]]:
        """x and y of the shown tokens."""
        xy = self.coords[self.shown]  # (n, 2)
        return xy[:, 0].tolist(), xy[:, 1].tolist()


MAP_POINTS = 5_000  # points on the map at most: 128,256 of them took minutes to send and draw, and read as a blob
EXACT_PCA = 20_000_000  # numbers in the table (V x d) up to which the SVD is exact; above, a randomized one

# id(weight) -> (weak reference to that weight, its PCA). Keyed by id because tensors compare
# element-wise; the weak reference checks the id was not reused by a newer tensor.
_PCA_CACHE: dict[int, tuple[weakref.ref, EmbeddingPCA]] = {}


def embedding_pca(cm: CourseModel) -> EmbeddingPCA:
    """A 2-D map of the embedding table's token rows, computed once per model and cached.

    Centre the rows (E - mean), take the SVD U S V^T; coordinates are U[:, :2] S[:2], and
    S_i^2 / sum S^2 is the share of variance each axis keeps. Signs are fixed (largest entry
    of each axis positive) so the map looks the same on every start. Only the tokenizer's V rows count (a table
    padded past them has rows no text can reach: lessons.course.vocab_tokens). A table over EXACT_PCA numbers
    (a 1B model's 32,000 x 2,048) uses torch.pca_lowrank (Halko et al. 2011, a randomized SVD: the top two axes
    to within rounding, in a second instead of a minute); the map draws at most MAP_POINTS of its tokens.
    """
    weight = cm.model.embed_tokens.weight
    ref, cached = _PCA_CACHE.get(id(weight), (None, None))
    if ref is not None and ref() is weight:
        return cached
    V = vocab_tokens(cm)
    E = weight[:V].detach().float().cpu()  # (V, d) the tokens' rows
    X = E - E.mean(dim=0, keepdim=True)  # (V, d) centred
    if X.numel() <= EXACT_PCA:
        U, S, _ = torch.linalg.svd(X, full_matrices=False)  # U (V, r), S (r,)
        total = S.pow(2).sum()
    else:
        U, S, _ = torch.pca_lowrank(X, q=6, center=False, niter=4)  # the top 6 axes, randomized
        total = X.pow(2).sum()  # sum of all S^2 = the squared Frobenius norm
    coords = U[:, :2] * S[:2]  # (V, 2)
    signs = torch.sign(coords.gather(0, coords.abs().argmax(dim=0, keepdim=True)))  # (1, 2)
    coords = coords * torch.where(signs == 0, torch.ones_like(signs), signs)
    var = S.pow(2)
    if V <= MAP_POINTS:
        shown = list(range(V))
    else:  # an even sample, the same on every start
        shown = sorted(torch.randperm(V, generator=torch.Generator().manual_seed(0))[:MAP_POINTS].tolist())
    names = [plot_text(f"{i} {token_label(cm.tokenizer, i)}") for i in shown]
    result = EmbeddingPCA(coords, (float(var[0] / total), float(var[1] / total)), shown, names, weight.shape[0])
    _PCA_CACHE[id(weight)] = (weakref.ref(weight), result)
    return result


def embedding_facts(cm: CourseModel) -> str:
    """The embedding table in numbers, read from the model: size, share of parameters, tying (from the config,
    checked against the weights)."""
    V, d = cm.model.embed_tokens.weight.shape
    total = cm.model.num_parameters()
    tied = bool(cm.config.tie_embeddings)
    if tied != (cm.model.lm_head.weight is cm.model.embed_tokens.weight):
        raise RuntimeError("config.tie_embeddings disagrees with the loaded weights")
    big = ("Llama 1, 2 and 3 at 7B and up (Llama 3.1 8B included) do **not** tie: their `lm_head` is a second "
           "V × d matrix of its own; of Meta's Llamas only the small Llama 3.2 (1B, 3B) tie theirs.")
    return (f"The model's embedding table $E$ is {V:,} × {d} = {V * d:,} numbers, "
            f"{100 * V * d / total:.0f}% of its {total:,} parameters. "
            + ("It is **tied** (`tie_word_embeddings` is true in its config): the output layer `lm_head` reuses "
               "the same matrix to score the next token, so each row below is also the direction that makes its "
               "token likely as the *next* one. " if tied else
               "Its output layer `lm_head` has its own matrix (`tie_word_embeddings` is false in its config), so "
               "the rows below only *read* tokens; choosing the next token uses other vectors. ") + big)


_RUN_BY = {"HFTokenizer": "a Hugging Face tokenizer.json run by the `tokenizers` library",
           "SentencePieceTokenizer": "a sentencepiece model run by the `sentencepiece` library"}
PROBE = "🦙"  # a character few small vocabularies have a piece for: how the tokenizer writes the unknown


def model_tokenizer_facts(cm: CourseModel) -> str:
    """What the model's tokenizer is, and what this page can show of it. Our BPE shows its merges and regex;
    any other tokenizer is used only through the Tokenizer interface (encode, decode, pieces, bytes), so the page
    says what it cannot show. The fallback sentence is measured by encoding PROBE."""
    tok = cm.tokenizer
    ids = tok.encode(PROBE)
    pieces = ", ".join(f"`{md_text(visible(p))}`" for p in tok.pieces(ids))
    n_part = sum(is_partial(tok.token_bytes(i)) for i in ids)
    fallback = (f"A character it has no piece for falls back to bytes: {PROBE} becomes {len(ids)} tokens "
                f"({pieces}), {n_part} of them bytes." if n_part else
                f"It writes {PROBE} as {len(ids)} token{'s' if len(ids) != 1 else ''} ({pieces}).")
    if isinstance(tok, BPETokenizer):
        return (f"**The model's tokenizer** is our own byte-level BPE, the code you just trained: "
                f"{len(tok.merges):,} merges on top of 256 bytes and {len(tok.special_tokens)} special tokens, "
                f"{tok.vocab_size:,} tokens in all, with the split regex described above. {fallback}")
    kind = _RUN_BY.get(type(tok).__name__, f"a `{type(tok).__name__}`")
    return (f"**The model's tokenizer** is not our BPE: it is {kind}, {tok.vocab_size:,} tokens. This page uses it "
            f"only through the course's small tokenizer interface (encode, decode, readable pieces, the bytes of "
            f"each token), so it has no merge list or split regex to show here: the replay and the first-merge "
            f"question use our BPE trained on your text, and its pieces above show a space as part of the next "
            f"token, as it writes them. {fallback}")


def special_tokens_facts(cm: CourseModel) -> str:
    """Where the model's special tokens come from, with their ids read from its tokenizer."""
    tok = cm.tokenizer
    listed = ", ".join(f"**{md_text(s)}** = {i}" for s, i in sorted(tok.special_tokens.items(), key=lambda x: x[1]))
    bos = tok.id_to_token(tok.bos_id)
    ids = tok.encode(bos)
    return (f"**Special tokens.** The model's tokenizer has {len(tok.special_tokens)}: {listed}. They are not "
            f"learned by BPE: the tokenizer's authors reserve them before training, and "
            f"`encode` cuts them out of the text before BPE runs, so the characters {md_text(bos)} typed in a text "
            f"become {'the single id ' + str(ids[0]) if len(ids) == 1 else 'the ids ' + str(ids)}. The model meets them only where the training data put them "
            "(BOS in front of every training sequence).")


def embedding_heatmap(cm: CourseModel, sentence: str | None) -> tuple[go.Figure, str]:
    """The embedding rows E[id] of the sentence's tokens (the model's tokenizer, BOS first):
    a tokens x dimensions heatmap. Returns (figure, notice). Raises LessonError for an empty sentence."""
    sentence, cleaned = clean_text(sentence, MAX_SENTENCE_CHARS, "sample sentence")
    prepared = prepare_text(cm, sentence, max_tokens=MAX_EMBED_TOKENS)
    notices = [n for n in (cleaned, prepared.notice) if n]
    ids = torch.tensor(prepared.ids, device=cm.device)
    rows = cm.model.embed_tokens.weight[ids].float().cpu()  # (T, d): a lookup is just row selection
    T, d = rows.shape
    labels = [plot_text(f"{lab} ({i})") for lab, i in zip(unique_labels(prepared.labels), prepared.ids)]
    lim = float(rows.abs().max()) or 1.0
    fig = go.Figure(
        data=[go.Heatmap(z=rows.tolist(), x=list(range(d)), y=labels, colorscale="RdBu_r", zmin=-lim, zmax=lim,
                         colorbar=dict(title=dict(text="value")),
                         hovertemplate="token %{y}<br>dimension %{x}: %{z:.3f}<extra></extra>")],
        layout=dict(title=dict(text=f"Embedding rows E[id]: {T} tokens × {d} dimensions"),
                    height=min(120 + 22 * T, 700), margin=dict(l=10, r=10, t=50, b=10),
                    xaxis=dict(title=dict(text=f"embedding dimension (0 to {d - 1})")),
                    yaxis=dict(title=dict(text="token (position, text, id)"), autorange="reversed",
                               type="category")))
    return fig, " ".join(notices)


def embedding_map(cm: CourseModel, sentence: str | None) -> go.Figure:
    """Every token of the model's vocabulary (an even sample of MAP_POINTS for a big one) on the top two principal
    axes of E, with the sentence's tokens, BOS and EOS marked."""
    pca = embedding_pca(cm)
    tok = cm.tokenizer
    x, _ = pca.xy
    V = len(pca.coords)

    def at(ids):
        return [float(pca.coords[i, 0]) for i in ids], [float(pca.coords[i, 1]) for i in ids]

    # One trace per kind of token, over the tokens shown (every token, or an even sample of a big vocabulary).
    # Plain dicts, not go.Scatter: go.Figure validates each once instead of twice.
    shown = set(pca.shown)
    name_of = dict(zip(pca.shown, pca.names))
    data = []
    for kind, kind_ids in token_kinds(cm).items():
        kind_ids = [i for i in kind_ids if i in shown]
        if kind_ids:
            kx, ky = at(kind_ids)
            data.append(dict(type="scatter", x=kx, y=ky, mode="markers", name=f"{kind} ({len(kind_ids):,})",
                             marker=dict(size=4, color=KIND_COLOURS[kind]), text=[name_of[i] for i in kind_ids],
                             hovertemplate="%{text}<extra></extra>"))
    sentence, _ = clean_text(sentence, MAX_SENTENCE_CHARS, "sample sentence")  # LessonError when empty
    ids = prepare_text(cm, sentence, max_tokens=MAX_EMBED_TOKENS).ids[1:]  # BOS is drawn with the specials
    if ids:
        seen = list(dict.fromkeys(ids))  # a repeated token sits at one point; label it once
        names = [plot_text(token_label(tok, i)) for i in seen]
        sx, sy = at(seen)
        # Labels in the sentence's order where they do not pile up (measured on the whole map's span); hover
        # names every token.
        span = float(max(pca.coords.max(dim=0).values - pca.coords.min(dim=0).values).clamp_min(1e-12))
        local = max(max(sx) - min(sx), max(sy) - min(sy), 1e-12)
        shown = sparse_labels(sx, sy, names, range(len(seen)), most=10, apart=0.06 * span / local)
        data.append(go.Scatter(x=sx, y=sy, mode="markers+text", name="your sentence's tokens",
                               marker=dict(size=9, color="#dc2626"), text=shown, textposition="top center",
                               hovertext=names, hovertemplate="%{hovertext}<extra></extra>"))
    specials = [(i, f"{role} {tok.id_to_token(i)}") for i, role in ((tok.bos_id, "BOS"), (tok.eos_id, "EOS"))
                if i is not None and i < V]
    px, py = at([i for i, _ in specials])
    data.append(go.Scatter(x=px, y=py, mode="markers+text",
                           name="BOS / EOS", text=[plot_text(s) for _, s in specials], textposition="bottom center",
                           marker=dict(size=12, symbol="diamond", color="#7c3aed"),
                           hovertemplate="%{text}<extra></extra>"))
    e1, e2 = pca.explained
    title = (f"All {V:,} token embeddings, projected to 2-D (PCA)" if len(x) == V else
             f"{len(x):,} of the {V:,} token embeddings (an even sample), projected to 2-D (PCA)")
    if pca.rows > V:
        title += f"; the table's {pca.rows - V:,} padding rows past the tokenizer are left out"
    return go.Figure(data=data, layout=dict(
        title=dict(text=title + ", coloured by kind"), height=480,
        margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.15),
        xaxis=dict(title=dict(text=f"principal axis 1 ({100 * e1:.1f}% of variance)")),
        yaxis=dict(title=dict(text=f"principal axis 2 ({100 * e2:.1f}% of variance)"))))


NUMBER_EXAMPLE = "12345"


def number_chunks(cm: CourseModel, number: str = NUMBER_EXAMPLE) -> str:
    """How the model's tokenizer cuts a number, measured: the split regex's chunks (at most three digits each, from
    the left) and the tokens the merges then make of them. A tokenizer with no split regex says so."""
    tok = cm.tokenizer
    ids = tok.encode(number)
    pieces = " · ".join(f"`{md_text(token_label(tok, i))}`" for i in ids)
    pattern = getattr(tok, "pattern", None)
    if not pattern:
        return (f"*Measured:* this model's tokenizer has no split regex; it encodes `{number}` as "
                f"{len(ids)} token{'s' if len(ids) != 1 else ''}: {pieces}.")
    chunks = " · ".join(f"`{w}`" for w in pretokenize(number, pattern))
    return (f"*Measured on the model's tokenizer:* its split regex cuts `{number}` into {chunks} (chunks of at most "
            f"three digits, from the left), and its merges spell that as {len(ids)} "
            f"token{'s' if len(ids) != 1 else ''}: {pieces}.")


def times(n: int) -> str:
    """'1 time', '2 times', '1,024 times'."""
    return f"{n:,} time" + ("" if n == 1 else "s")


KIND_BYTE, KIND_WORD, KIND_DIGIT, KIND_PUNCT, KIND_SPACE, KIND_SPECIAL = (
    "byte of a multi-byte character", "letters", "digits", "punctuation", "spaces and line breaks", "special")
KIND_COLOURS = {KIND_BYTE: "#D55E00", KIND_WORD: "#94a3b8", KIND_DIGIT: "#009E73", KIND_PUNCT: "#0072B2",
                KIND_SPACE: "#E69F00", KIND_SPECIAL: "#7c3aed"}


def token_kind(b: bytes, special: bool = False) -> str:
    """What a token spells, from its bytes: a special token; a piece of a multi-byte UTF-8 character (a byte
    0x80 or above that is not whole characters); whitespace only; digits (with spaces); punctuation (with spaces);
    else letters (any token with a letter in it).

        >>> token_kind(b"\\xf0"), token_kind(b" the"), token_kind(b"\\n\\n"), token_kind(b"123"), token_kind(b",")
        ('byte of a multi-byte character', 'letters', 'spaces and line breaks', 'digits', 'punctuation')
    """
    if special:
        return KIND_SPECIAL
    if is_partial(b):
        return KIND_BYTE
    t = b.decode("utf-8")
    if not t.strip():
        return KIND_SPACE
    if any(ch.isalpha() for ch in t):
        return KIND_WORD
    if t.strip().isdigit():
        return KIND_DIGIT
    return KIND_PUNCT


def token_kinds(cm: CourseModel) -> dict[str, list[int]]:
    """{kind: token ids} over the model's vocabulary (rows of the embedding table), in KIND_COLOURS' order."""
    tok = cm.tokenizer
    specials = set(tok.special_tokens.values())
    out = {k: [] for k in KIND_COLOURS}
    for i in range(vocab_tokens(cm)):  # the tokenizer's tokens (a padded table's extra rows are no token)
        try:
            b = tok.token_bytes(i)
        except (KeyError, IndexError, ValueError):
            b = b""
        out[token_kind(b, i in specials or not b)].append(i)
    return out


def embedding_map_readout(cm: CourseModel) -> str:
    """What the two axes separate, measured: the mean position of each kind of token on each axis, and which kind
    lies furthest from the rest along axis 1."""
    pca = embedding_pca(cm)
    x, y = pca.coords[:, 0].double(), pca.coords[:, 1].double()  # every token of the vocabulary, by id
    kinds = {k: v for k, v in token_kinds(cm).items() if v}
    rows = ["| kind of token | tokens | mean on axis 1 | mean on axis 2 |", "|---|---|---|---|"]
    rows += [f"| {k} | {len(v):,} | {float(x[v].mean()):+.2f} | {float(y[v].mean()):+.2f} |" for k, v in kinds.items()]
    spread = float(x.std())
    far = max(kinds, key=lambda k: abs(float(x[kinds[k]].mean())))
    rest = [i for k, v in kinds.items() if k != far for i in v]
    gap = float(x[kinds[far]].mean() - x[rest].mean()) if rest else 0.0
    return ("\n".join(rows) + f"\n\nAlong axis 1 the kind furthest from the rest is **{far}**: its mean lies "
            f"{abs(gap) / max(spread, 1e-12):.1f} standard deviations of axis 1 away from the other tokens' mean. "
            "Kinds whose means differ by a small fraction of a standard deviation barely separate on this map.")


# ----------------------------------------------------------------------------- predict, then reveal


def count_question(text: str = QUESTION_TEXT) -> list[str]:
    """Answer choices for "how many tokens?", as ranges built from the question's own text.

    'Wherefore art thou Romeo?' (4 words, 25 bytes) ->
    ['4 or fewer (a word or more per token)', '5 to 8', '9 to 16', '17 to 25 (close to one per character)']
    """
    w, b = len(text.split()), len(text.encode("utf-8"))
    edges = [w, 2 * w, 4 * w, b]
    return [f"{w} or fewer (a word or more per token)", f"{w + 1} to {edges[1]}", f"{edges[1] + 1} to {edges[2]}",
            f"{edges[2] + 1} to {b} (close to one per character)"]


def _bucket(n: int, text: str) -> int:
    """Which of count_question(text)'s ranges holds n."""
    w, b = len(text.split()), len(text.encode("utf-8"))
    for j, hi in enumerate((w, 2 * w, 4 * w, b)):
        if n <= hi:
            return j
    return 3


@dataclass
class Reveal:
    markdown: str
    chips: str
    correct: bool | None  # None when no choice was made


def single_token_words(tok: Tokenizer, text: str, ids: list[int], words: list[str]) -> list[str] | None:
    """The words of `text` (consecutive pieces of it) that its encoding `ids` holds as one token each, found by
    lining the tokens' bytes up with the text's, so it works for any tokenizer. The word's leading spaces belong
    to it, and a space the tokenizer adds in front of the text (sentencepiece's dummy prefix) may go with the
    first word.

        our BPE: "Wherefore art thou Romeo?" -> [' art', ' thou', '?']
    """
    got, want = b"".join(tok.token_bytes(i) for i in ids), text.encode("utf-8")
    off = len(got) - len(want)
    if off < 0 or got[off:] != want or got[:off].strip(b" "):
        return None  # the tokens do not spell the text (a normalising tokenizer): no word is claimed
    ends, pos = {}, -off
    for i in ids:  # byte span of each token in the text -> start by end
        n = len(tok.token_bytes(i))
        ends[pos + n] = pos
        pos += n
    out, pos = [], 0
    for w in words:
        end = pos + len(w.encode("utf-8"))
        if end in ends and ends[end] in (pos, -off):  # one token from the word's start (or the prefix) to its end
            out.append(w)
        pos = end
    return out


def reveal_count(cm: CourseModel, choice: str | None, text: str = QUESTION_TEXT) -> Reveal:
    """Run the model's tokenizer on the question's text and grade the learner's range (lessons.grading)."""
    tok = cm.tokenizer
    text, _ = clean_text(text, MAX_SENTENCE_CHARS, "question's text")  # empty: LessonError; long: cut (the page's is fixed)
    ids = tok.encode(text)
    choices = count_question(text)
    right = choices[_bucket(len(ids), text)]
    g = grade(choice, right, choices)
    pieces = tok.pieces(ids)
    md = (f"{g.verdict(md_text)}\n\n*The wrong idea this question tests:* {Q_COUNT.misconception}\n\n"
          f"The model's tokenizer cuts **{md_text(text)}** into **{len(ids)} tokens** "
          f"(the model also puts BOS in front). ")
    pattern = getattr(tok, "pattern", None)  # our BPE's split regex; other tokenizers do not expose one
    words = pretokenize(text, pattern) if pattern else re.findall(r"\s*\S+", text)  # ['Wherefore', ' art', ...]
    whole = single_token_words(tok, text, ids, words)
    how = ("The split regex makes" if pattern else
           "The model's tokenizer has no split regex this page can read; cut at spaces, the text has")
    md += f"That is {len(text) / len(ids):.1f} characters per token. {how} {len(words)} words of it; "
    if whole is None:
        md += "its tokens do not spell the text byte for byte (it normalises text), so no word is matched to them."
    else:
        listed = f" ({', '.join(md_text(repr(w)) for w in whole)})" if whole else ""
        md += (f"{len(whole)} of them are single tokens{listed} and the rest are cut into pieces. A word frequent "
               "in the tokenizer's training text earns a token of its own, its leading space included.")
    return Reveal(md, chips_html(pieces, ids, caption=f"{len(ids)} tokens"), g.correct)


def merge_question(trained: Trained | None) -> list[str]:
    """Choices for "which pair is merged first?": the four most frequent pairs of the learner's text,
    in alphabetical order so that their order gives nothing away."""
    if trained is None:
        return []
    return sorted(label for label, _ in trained.first_pairs)


def reveal_first_merge(trained: Trained | None, choice: str | None) -> Reveal:
    """The first merge our BPE really made on the learner's text, graded against the learner's pick."""
    if trained is None:
        raise LessonError("Train a tokenizer first (the Train button above).")
    if trained.n_merges == 0:
        raise LessonError("This text supports no merges at all: every word is a single byte.")
    tok = trained.tok
    first = tok.merges[0]
    answer = pair_label(tok, first.pair)
    tied = tuple(label for label, count in trained.first_pairs if count == first.count)
    g = grade(choice, tied if len(tied) > 1 else answer, merge_question(trained))  # equal counts: a tie
    new = md_text(token_label(tok, first.new_id))
    md = (f"{g.verdict(md_text)}\n\nOur BPE's first merge on your text was **{md_text(answer)} → '{new}'**, a pair "
          f"seen **{first.count:,}** {times(first.count).split()[-1]}. ")
    others = ", ".join(f"{md_text(label)}: {count:,}" for label, count in trained.first_pairs)
    md += f"Counts of the candidates before any merge: {others}. "
    if b" " in tok.token_bytes(first.pair[0]) + tok.token_bytes(first.pair[1]):
        md += ("The split regex glues a space to the start of the next word, so a space and a common first "
               "letter form the most frequent pair, ahead of pairs inside words.")
    else:
        md += "No pair with a space won here: the most frequent pair lies inside words."
    if len(tied) > 1:
        md += f" {len(tied)} pairs had the same count: BPE breaks the tie by its own rule, so each of them is right."
    md += f"\n\n*The wrong idea this question tests:* {Q_MERGE.misconception}"
    return Reveal(md, "", g.correct)


Q_COUNT = Question(
    "tokenization-count",
    f"How many tokens will the model's tokenizer use for “{QUESTION_TEXT}”?",
    tuple(count_question()),
    misconception="that a token is a word (or a character): common words with their leading space are one token, "
                  "rarer words are cut into pieces")
Q_MERGE = Question(
    "tokenization-first-merge",
    "Which pair will our BPE merge first on your training text?",
    (),  # the four most frequent pairs of the learner's text (merge_question)
    misconception="that BPE merges whole words or meaningful pieces first: it merges the most frequent adjacent "
                  "pair, and with a space glued to each word that is often a space and a common first letter")
