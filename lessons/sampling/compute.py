"""Lesson 8 computations: the course model's next-token distribution under temperature, top-k and top-p,
and continuations generated from it, greedy beside sampled.

Everything goes through `llama.generate` (`filter_top_k`, `filter_top_p`, `next_token_distribution`,
`stream_generate_rows`), so the bars a learner sees and the tokens `generate` picks come from one code path:

    logits z (V,) -> z / T -> top-k -> top-p -> softmax -> draw one token   (T = 0: argmax instead)

    >>> cm = load_course_model()
    >>> s = read_settings(1.0, 10, 0.9)   # Meta's defaults are 0.6, off, 0.9
    >>> d = next_token_view(cm, prepare_prompt(cm, "ROMEO:\\n").ids, s)
    >>> d.n_kept <= 10, round(sum(d.renorm), 4)   # all survivors are among the 20 bars, renormalised
    (True, 1.0)

Nothing here imports Gradio; `app/pages/sampling.py` lays these out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import plotly.graph_objects as go
import torch

from lessons import cost, plots
from lessons.course import LRU, CourseModel, Prepared, token_label, token_step, vocab_tokens
from lessons.grading import Question
from lessons.inputs import choice, clean_text, join, number, whole
from llama.generate import filter_top_k, filter_top_p, next_token_distribution, stream_generate_rows
from llama.tokenizer import decode_continuation

DEFAULT_PROMPT = "ROMEO:\n"
N_BARS = 20  # tokens drawn in the chart, most likely first
MAX_PROMPT_CHARS = 5_000  # longer prompts keep their last characters
MAX_TEMPERATURE = 5.0
# Meta's reference sampler for Llama 2 and 3 (llama/generation.py, Llama.text_completion): temperature 0.6,
# top-p 0.9, no top-k. The page opens with them.
META_TEMPERATURE, META_TOP_P = 0.6, 0.9
TINY_TOP_P = 1e-6  # top-p 0 keeps no token; this keeps exactly the most likely one (what "0" can sensibly mean)
MAX_NEW_TOKENS = 128  # the page's cap on one continuation: enough to see a loop or a drift, cheap to serve
DEFAULT_NEW_TOKENS = 80
MAX_SEED = 2**32 - 1  # seeds 0 .. 2^32 - 1, as numpy's
STREAM_INTERVAL_S = 0.1  # a streamed continuation updates the page at most 10 times a second

KEPT, CUT_K, CUT_P, NOT_ARGMAX = "kept", "cut by top-k", "cut by top-p", "not the argmax (T = 0 is greedy)"
COLOURS = {KEPT: "#0072B2", CUT_K: "#E69F00", CUT_P: "#CC79A7", NOT_ARGMAX: "#999999"}  # colour-blind safe
RENORM_COLOUR = "#009E73"


# ----------------------------------------------------------------------------- inputs


def prompt_limit(cm: CourseModel) -> int:
    """Most prompt tokens (BOS included): half the context, so a continuation always has room to grow.

        >>> prompt_limit(cm)   # context 256
        128
    """
    return max(1, cm.config.max_seq_len // 2)


def prepare_prompt(cm: CourseModel, text: str | None) -> Prepared:
    """BOS + the prompt's tokens. The model was trained on windows that start with BOS, so BOS goes first.

    The text is cleaned by `lessons.inputs.clean_text` (lone surrogates replaced, with a notice). A prompt longer
    than MAX_PROMPT_CHARS characters or `prompt_limit` tokens keeps its *end* (the words the continuation
    follows), with a notice. Empty or blank text raises LessonError with a message for the page.
    """
    notices = []
    if isinstance(text, str) and len(text) > MAX_PROMPT_CHARS:
        text = text[-MAX_PROMPT_CHARS:]
        notices.append(f"The prompt is longer than {MAX_PROMPT_CHARS:,} characters; only its end is used.")
    text, cleaned = clean_text(text, MAX_PROMPT_CHARS, "prompt")
    notices.insert(0, cleaned)
    body = cm.tokenizer.encode(text)
    limit = prompt_limit(cm)
    if len(body) + 1 > limit:
        notices.append(f"The prompt has {len(body)} tokens; only its last {limit - 1} are used (the limit is "
                       f"{limit} tokens with BOS, half the model's {cm.config.max_seq_len}-token context, so the "
                       f"continuation has room).")
        body = body[-(limit - 1):]
    ids = [cm.tokenizer.bos_id] + body
    return Prepared(ids, [token_label(cm.tokenizer, i) for i in ids], join(*notices))


@dataclass(frozen=True)
class Settings:
    """Sampling knobs after reading the sliders: top_k / top_p None means "off"; notes explain any change."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def sampler(self, seed: int | None = None) -> dict:
        """The arguments llama.generate takes for these settings."""
        return dict(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, seed=seed)

    def describe(self) -> str:
        """'T = 0.80, top-k 10, top-p 0.90' (or 'T = 0 (greedy)')."""
        if self.greedy:
            return "T = 0 (greedy)"
        k = "top-k off" if self.top_k is None else f"top-k {self.top_k}"
        p = "top-p off" if self.top_p is None else ("top-p 0 (top token only)" if self.top_p == TINY_TOP_P
                                                     else f"top-p {self.top_p:.2f}")
        return f"T = {self.temperature:.2f}, {k}, {p}"


def read_settings(temperature, top_k, top_p, vocab_size: int = 1 << 30) -> Settings:
    """Turn slider or API values (any values, even impossible ones) into settings `generate` accepts, saying why.
    Out of range is clamped, NaN or a non-number takes Meta's default (lessons.inputs), and each change is a note.
    top-k 0 means off (as in Hugging Face); a blank top-k or top-p (None) is off too.

        >>> read_settings(0, 0, 0).notes[0][:40]
        'Temperature 0 means greedy: the single m'
        >>> read_settings(1.0, None, 1.0)
        Settings(temperature=1.0, top_k=None, top_p=None, notes=())
    """
    notes = []
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature < 0:
        notes.append("Temperature cannot be negative (dividing the logits by a negative number would make the "
                     "least likely token the most likely); using 0.")
        t = 0.0
    else:
        t, n = number(temperature, "Temperature", 0.0, MAX_TEMPERATURE, META_TEMPERATURE)
        notes.append(n)
    k = None
    if top_k is not None:
        k, n = whole(top_k, "top-k", 0, vocab_size, 0)
        notes.append(n)
        k = k or None  # 0 keeps no token at all, so it means off
    p = None
    if top_p is not None:
        p, n = number(top_p, "top-p", 0.0, 1.0, META_TOP_P)
        notes.append(n)
        if p >= 1.0:
            p = None  # keeping 100% of the probability keeps every token
        elif p <= 0.0:
            notes.append("top-p 0 would keep no token, but the most likely token always survives, so top-p 0 "
                         "keeps just that one: sampling becomes greedy.")
            p = TINY_TOP_P
    if t == 0.0:
        notes.insert(0, "Temperature 0 means greedy: the single most likely token is always picked (argmax), so "
                        "top-k, top-p and the seed change nothing.")
    return Settings(t, k, p, tuple(n for n in notes if n))


def read_seed(seed) -> tuple[int, str]:
    """A seed from a number box or the API: a whole number in 0 .. MAX_SEED, with a notice when changed.

        >>> read_seed(-1)
        (0, 'Seed -1 is out of range (0 to 4294967295): using 0.')
    """
    return whole(seed, "Seed", 0, MAX_SEED, 0)


SMALL_MODEL = cost.BIG_MODEL  # parameters up to which the page generates DEFAULT_NEW_TOKENS by default
MIN_DEFAULT_TOKENS = 16


def default_new_tokens(cm: CourseModel) -> int:
    """How many tokens the page generates by default: DEFAULT_NEW_TOKENS for a model of up to SMALL_MODEL parameters,
    fewer for a bigger one, in proportion to 1/sqrt(parameters) (each token costs a forward pass of the whole model:
    a 1.1B model made 0.6-0.7 tokens/s on a 2-core CPU, so 80 tokens took two minutes), at least MIN_DEFAULT_TOKENS.
    On a GPU every size gets DEFAULT_NEW_TOKENS.

        >>> default_new_tokens(course_model), default_new_tokens(tinyllama_1b)
        (80, 24)
    """
    n = cm.model.num_parameters()
    if cm.device.type == "cuda" or n <= SMALL_MODEL:
        return DEFAULT_NEW_TOKENS
    return max(MIN_DEFAULT_TOKENS, int(DEFAULT_NEW_TOKENS * (SMALL_MODEL / n) ** 0.5))


def generation_cost(cm: CourseModel, prompt_len: int, n_new: int) -> cost.Cost:
    """lessons.cost's estimate of the Generate button: two rows (greedy and sampled) batched, n_new tokens."""
    return cost.generation(cm, prompt_len, n_new, rows=2)


def reveal_tokens(cm: CourseModel) -> int:
    """Tokens the seed reveal samples per row: REVEAL_TOKENS, fewer for a big model on a CPU in the same proportion
    as default_new_tokens (each step is a pass of the whole model for three rows).

        >>> reveal_tokens(course_model), reveal_tokens(tinyllama_1b)
        (40, 16)
    """
    return max(MIN_DEFAULT_TOKENS, REVEAL_TOKENS * default_new_tokens(cm) // DEFAULT_NEW_TOKENS)


def seeds_cost(cm: CourseModel, prompt_len: int) -> cost.Cost:
    """lessons.cost's estimate of the seed reveal: three rows (two seeds and greedy), reveal_tokens(cm) tokens."""
    return cost.generation(cm, prompt_len, reveal_tokens(cm), rows=3)


def read_new_tokens(n) -> tuple[int, str]:
    """Max new tokens, 1 .. MAX_NEW_TOKENS, with a notice when changed."""
    return whole(n, "Max new tokens", 1, MAX_NEW_TOKENS, DEFAULT_NEW_TOKENS)


def read_prediction(value, choices: list[str]) -> str | None:
    """A learner's prediction: None when none is picked; a value that is not a choice raises LessonError."""
    if value is None or value == "":
        return None
    return choice(value, "Your prediction", choices)[0]


# ----------------------------------------------------------------------------- the next-token distribution

_LOGITS = LRU(64)  # (model, prompt ids) -> logits of the next token


def last_logits(cm: CourseModel, ids: list[int]) -> torch.Tensor:
    """Logits (V,) for the token after `ids`, over the tokenizer's V tokens (an embedding table padded past them
    has rows no text can be: lessons.course.vocab_tokens). Cached per prompt, so moving a slider costs no forward
    pass."""

    @torch.inference_mode()
    def run():
        x = torch.tensor([ids], dtype=torch.long, device=cm.device)  # (1, T)
        logits = cm.model(x, logits_to_keep=1).logits[0, -1]  # (V,) the last position predicts the next token
        return logits[:vocab_tokens(cm)].float().cpu()

    return _LOGITS.get_or_compute((cm.model, tuple(ids)), run)


@dataclass
class NextToken:
    """The chart's data: the N most likely next tokens, what each filter does to them, and totals."""

    ids: list[int]  # most likely first (temperature never changes the order)
    labels: list[str]
    probs: list[float]  # softmax(z / T): before the filters
    status: list[str]  # KEPT, CUT_K, CUT_P or NOT_ARGMAX
    renorm: list[float]  # what sampling draws from: kept tokens rescaled to add up to 1, cut ones 0
    n_kept: int  # kept tokens over the whole vocabulary
    kept_mass: float  # their probability before renormalising
    rest_kept_mass: float  # renormalised probability of kept tokens outside the N shown
    vocab_size: int
    settings: Settings = field(default_factory=Settings)


def next_token_view(cm: CourseModel, ids: list[int], s: Settings, n: int = N_BARS) -> NextToken:
    """Apply temperature, top-k and top-p exactly as `generate` does, and report which tokens survive each.

    The filters run in order, so top-p measures mass *within what top-k kept* (renormalised there).
    At T = 0 sampling is argmax: only the most likely token is kept.
    """
    z = last_logits(cm, ids)  # (V,)
    V = z.shape[-1]
    scaled = z / max(s.temperature, 1e-8)  # the same division next_token_distribution does
    probs = torch.softmax(scaled, dim=-1)  # (V,)
    if s.greedy:
        # sample_next skips the filters at T = 0 and takes the argmax: a one-hot distribution
        kept_mask = torch.zeros(V, dtype=torch.bool)
        kept_mask[int(torch.argmax(z))] = True
        after_k = kept_mask
        renorm = kept_mask.float()
    else:
        after_k = torch.isfinite(filter_top_k(scaled, s.top_k))  # (V,) True where top-k keeps the token
        kept_mask = torch.isfinite(filter_top_p(filter_top_k(scaled, s.top_k), s.top_p))
        renorm = next_token_distribution(z, s.temperature, s.top_k, s.top_p)  # the library's own distribution
    top = torch.argsort(z, descending=True)[:n].tolist()
    status = [KEPT if kept_mask[i] else (NOT_ARGMAX if s.greedy else CUT_K if not after_k[i] else CUT_P) for i in top]
    shown_renorm = [float(renorm[i]) for i in top]
    return NextToken(ids=top, labels=[token_label(cm.tokenizer, i) for i in top], probs=[float(probs[i]) for i in top],
                     status=status, renorm=shown_renorm, n_kept=int(kept_mask.sum()),
                     kept_mass=float(probs[kept_mask].sum()), rest_kept_mass=max(0.0, 1.0 - sum(shown_renorm)),
                     vocab_size=V, settings=s)


def rank_labels(labels: list[str]) -> list[str]:
    """Plotly merges equal category labels, so rank them: ['␣the', 'd'] -> ['1. ␣the', '2. d']."""
    return [f"{i + 1}. {s}" for i, s in enumerate(labels)]


def distribution_figure(d: NextToken) -> go.Figure:
    """Top: softmax(z / T) coloured by which filter cut each token. Bottom: the renormalised distribution."""
    x = rank_labels(d.labels)
    fig = go.Figure()
    for st in (KEPT, CUT_K, CUT_P, NOT_ARGMAX):
        if st not in d.status:
            continue
        ys = [p if s == st else None for p, s in zip(d.probs, d.status)]
        fig.add_bar(x=x, y=ys, name=st, marker_color=COLOURS[st], xaxis="x", yaxis="y", customdata=d.ids,
                    hovertemplate="%{x} (id %{customdata})<br>p = %{y:.4f}<extra>" + st + "</extra>")
    fig.add_bar(x=x, y=d.renorm, name="renormalised (sampled from)", marker_color=RENORM_COLOUR, xaxis="x2",
                yaxis="y2", text=[f"{p:.0%}" if p >= 0.005 else "" for p in d.renorm], textposition="outside",
                cliponaxis=False, customdata=d.ids,
                hovertemplate="%{x} (id %{customdata})<br>p = %{y:.4f}<extra>renormalised</extra>")
    top_y = max(d.probs + [1e-9]) * 1.1
    bottom_y = max(d.renorm + [1e-9]) * 1.25
    fig.update_layout(
        title=dict(text=f"Next token: {d.settings.describe()}; keeps {d.n_kept} of {d.vocab_size} tokens "
                        f"({d.kept_mass:.0%} of the probability)", font=dict(size=14)),
        barmode="overlay", height=520, margin=dict(l=60, r=20, t=60, b=90), bargap=0.15,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, font=dict(size=11)),
        xaxis=dict(showticklabels=False, matches="x2"),
        yaxis=dict(domain=[0.56, 0.94], title=dict(text="probability: softmax(z / T)", font=dict(size=11)),
                   range=[0, top_y]),
        xaxis2=dict(anchor="y2", title=dict(text="next token (ranked by probability; ␣ = space, ⏎ = new line)"),
                    tickangle=-45),
        yaxis2=dict(domain=[0, 0.42], title=dict(text="after filters, renormalised", font=dict(size=11)),
                    range=[0, bottom_y]),
    )
    return fig


def message_figure(text: str) -> go.Figure:
    """The shared message figure at this chart's height, so the page does not jump."""
    return plots.message_figure(text, height=520)


def distribution_summary(d: NextToken) -> str:
    """One Markdown line under the chart: what survives and where the probability goes."""
    s = d.settings
    if s.greedy:
        return f"**Greedy (T = 0).** Only the most likely token, `{d.labels[0]}`, can be picked."
    shown_kept = sum(st == KEPT for st in d.status)
    extra = (f" {d.n_kept - shown_kept} kept tokens are off the chart and share {d.rest_kept_mass:.1%} of the "
             f"renormalised probability." if d.n_kept > shown_kept else "")
    return (f"**{d.n_kept} of {d.vocab_size} tokens survive** ({s.describe()}). Before renormalising they hold "
            f"{d.kept_mass:.1%} of the probability; dividing by that makes them add up to 100%.{extra}")


# ----------------------------------------------------------------------------- generation


def stop_reason(cm: CourseModel, n_prompt: int, new_ids: list[int], max_new_tokens: int) -> str:
    """Why a continuation ended: an EOS token (any of the model's: Llama 3 lists several), the max-new-tokens
    limit, or a full context."""
    if new_ids and new_ids[-1] in cm.config.eos_ids:
        return f"stopped at the end-of-text token (EOS, `{cm.tokenizer.id_to_token(new_ids[-1])}`)"
    if len(new_ids) >= max_new_tokens:
        return f"stopped after {max_new_tokens} new tokens (the max-new-tokens limit)"
    return (f"stopped because the context is full ({n_prompt} prompt + {len(new_ids)} new = "
            f"{cm.config.max_seq_len} tokens, the model's limit)")


def prompt_text(cm: CourseModel, prep: Prepared) -> str:
    """The prompt as the model sees it (after any cut), without BOS: the start of both continuations."""
    return cm.tokenizer.decode(prep.ids, skip_special_tokens=True)


def continuation_text(cm: CourseModel, new_ids: list[int], prompt_ids: list[int] = ()) -> str:
    """The new tokens as text, as they continue the prompt (decoded with it, so a sentencepiece tokenizer keeps
    the space that joins them: `llama.tokenizer.decode_continuation`); EOS is dropped (the status line reports it)."""
    return decode_continuation(cm.tokenizer, prompt_ids, new_ids, skip_special_tokens=True)


@dataclass
class SideBySide:
    """Both continuations so far. `done` once both have stopped; then the reasons say why."""

    greedy_ids: list[int]
    sampled_ids: list[int]
    greedy_text: str
    sampled_text: str
    done: bool = False
    greedy_reason: str = ""
    sampled_reason: str = ""


def stream_side_by_side(cm: CourseModel, ids: list[int], max_new_tokens: int, s: Settings, seed: int,
                        interval: float = STREAM_INTERVAL_S) -> Iterator[SideBySide]:
    """Greedy (T = 0) and sampled (the settings, this seed) continuations, generated together: one batched
    forward pass of two rows per step (`llama.generate.stream_generate_rows`, which owns its KV cache: the
    shared model is only read).

    Yields the texts so far after the first token, then at most once every `interval` seconds (0: after every
    step), so a stream costs the server a few messages a second rather than one per token. The last item has
    done=True and, up to float rounding at near-ties, the ids `generate` returns for the same arguments.
    """
    out: list[list[int]] = [[], []]
    last = None  # when the page was last updated
    rows = [Settings(0.0).sampler(), s.sampler(seed)]
    for toks in stream_generate_rows(cm.model, ids, max(0, int(max_new_tokens)), rows,
                                     decode_step=token_step(cm)):
        for j, tok in enumerate(toks):
            if tok is not None:
                out[j].append(tok)
        now = time.perf_counter()
        if last is None or now - last >= interval:
            last = now
            yield SideBySide(out[0][:], out[1][:], continuation_text(cm, out[0], ids),
                             continuation_text(cm, out[1], ids))
    reasons = [stop_reason(cm, len(ids), o, max_new_tokens) for o in out]
    yield SideBySide(out[0], out[1], continuation_text(cm, out[0], ids), continuation_text(cm, out[1], ids), True,
                     *reasons)


def generation_status(step: SideBySide, s: Settings, seed: int, max_new_tokens: int, notice: str = "") -> str:
    """The Markdown line under the two continuations: progress while streaming, stop reasons at the end."""
    if not step.done:
        n = max(len(step.greedy_ids), len(step.sampled_ids))
        head = f"Generating… {n} / {max_new_tokens} new tokens"
    else:
        head = (f"**Greedy:** {step.greedy_reason}, {len(step.greedy_ids)} tokens. "
                f"**Sampled** ({s.describe()}, seed {seed}): {step.sampled_reason}, {len(step.sampled_ids)} tokens.")
        if s.greedy:
            head += " At T = 0 the sampled column is greedy too, so both are the same."
    notes = [n for n in (notice, *s.notes) if n]
    return head + "".join(f"\n\n⚠️ {n}" for n in notes)


# ----------------------------------------------------------------------------- predict, then reveal

SEED_QUESTION = "At temperature 0.1 (top-k and top-p off), will two different seeds give different continuations?"
SEED_CHOICES = ["Yes: different seeds give different texts",
                "No: both give the same text",
                "Only the first token differs, then they agree again"]
NUCLEUS_QUESTION = ("With top-p 0.9 (top-k off), how does the number of tokens that survive change when the "
                    "temperature rises from 0.5 to 1.5?")
NUCLEUS_CHOICES = ["It goes up", "It goes down", "It stays the same: top-p only looks at the ranking"]
REVEAL_TOKENS = 40
Q_SEED = Question("sampling-seed", SEED_QUESTION, tuple(SEED_CHOICES),
                  misconception="that a different seed always gives a different text: at a low temperature the top "
                                "token takes nearly all the probability, so the draw rarely has a choice to make")
Q_NUCLEUS = Question("sampling-nucleus", NUCLEUS_QUESTION, tuple(NUCLEUS_CHOICES),
                     misconception="that top-p, like top-k, keeps a fixed number of tokens: it keeps as many as it "
                                   "takes to reach a share of the probability, so a flatter distribution keeps more")


@dataclass
class SeedReveal:
    temperature: float
    seeds: tuple[int, int]
    ids: tuple[list[int], list[int]]  # the two seeds' new tokens
    texts: tuple[str, str]
    greedy_text: str
    n_tokens: int
    first_difference: int | None  # token position where the two seeds first differ, None if identical

    @property
    def answer(self) -> str:
        a, b = self.ids
        if self.first_difference is None:
            return SEED_CHOICES[1]
        if self.first_difference == 0 and a[1:] == b[1:]:
            return SEED_CHOICES[2]
        return SEED_CHOICES[0]


def reveal_seeds(cm: CourseModel, ids: list[int], temperature: float = 0.1, seeds: tuple[int, int] = (1, 2),
                 n_tokens: int | None = None) -> Iterator[SeedReveal | str]:
    """Both seeds and greedy on the prompt, as three rows of one batched generation of n_tokens (default
    reveal_tokens(cm)); yields a progress string, then the SeedReveal."""
    n_tokens = reveal_tokens(cm) if n_tokens is None else n_tokens
    yield f"Sampling {n_tokens} tokens at T = {temperature:g} with seeds {seeds[0]} and {seeds[1]}, and greedy…"
    rows = [Settings(temperature).sampler(seeds[0]), Settings(temperature).sampler(seeds[1]), Settings(0.0).sampler()]
    out: list[list[int]] = [[], [], []]
    for toks in stream_generate_rows(cm.model, ids, n_tokens, rows, decode_step=token_step(cm)):
        for j, tok in enumerate(toks):
            if tok is not None:
                out[j].append(tok)
    a, b, greedy = out
    diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if diff is None and len(a) != len(b):
        diff = min(len(a), len(b))
    yield SeedReveal(temperature, seeds, (a, b), (continuation_text(cm, a, ids), continuation_text(cm, b, ids)),
                     continuation_text(cm, greedy, ids), n_tokens, diff)


def seed_reveal_markdown(r: SeedReveal, choice: str | None) -> str:
    why = (f"Dividing the logits by T = {r.temperature:g} multiplies every gap between them by "
           f"{1 / r.temperature:g}, so the top token takes nearly all the probability")
    if r.first_difference is None:
        same = " (the greedy text too)" if r.texts[0] == r.greedy_text else " (not the greedy text, though)"
        what = f"The two seeds gave **the same tokens**{same}. {why}, and the seed hardly matters."
    else:
        what = (f"The two seeds **first differ at new token {r.first_difference + 1}**. {why}, except where the top "
                f"two tokens are nearly tied: there the runner-up keeps a real chance, and one different draw can "
                f"change everything after it.")
    return Q_SEED.reveal(choice, r.answer, f"{what}\n\n| | continuation |\n|---|---|\n"
                         f"| seed {r.seeds[0]} | {_cell(r.texts[0])} |\n| seed {r.seeds[1]} | {_cell(r.texts[1])} |\n"
                         f"| greedy | {_cell(r.greedy_text)} |")


@dataclass
class NucleusReveal:
    top_p: float
    temperatures: tuple[float, ...]
    kept: tuple[int, ...]  # surviving tokens at each temperature

    @property
    def answer(self) -> str:
        if self.kept[-1] > self.kept[0]:
            return NUCLEUS_CHOICES[0]
        return NUCLEUS_CHOICES[1] if self.kept[-1] < self.kept[0] else NUCLEUS_CHOICES[2]


def reveal_nucleus(cm: CourseModel, ids: list[int], top_p: float = 0.9,
                   temperatures: tuple[float, ...] = (0.5, 1.0, 1.5)) -> NucleusReveal:
    kept = tuple(next_token_view(cm, ids, Settings(t, None, top_p)).n_kept for t in temperatures)
    return NucleusReveal(top_p, temperatures, kept)


def nucleus_reveal_markdown(r: NucleusReveal, choice: str | None) -> str:
    rows = "\n".join(f"| {t:g} | {k} |" for t, k in zip(r.temperatures, r.kept))
    if r.answer == NUCLEUS_CHOICES[0]:
        why = ("A higher temperature flattens the distribution, so the most likely tokens hold less probability each "
               "and top-p needs more of them to reach its share. Top-p adapts to how sure the model is; top-k does "
               "not.")
    else:
        why = (f"On this prompt the count went from {r.kept[0]} to {r.kept[-1]}, not up: a higher temperature still "
               "flattens the distribution, but here so few tokens share the probability that the count barely "
               "moves. Try a prompt that stops mid-sentence.")
    return Q_NUCLEUS.reveal(choice, r.answer, f"| temperature | tokens kept by top-p {r.top_p:g} |\n|---|---|\n"
                            f"{rows}\n\n{why}")


def _cell(text: str) -> str:
    """Text for one Markdown table cell: new lines shown as ⏎, pipes escaped."""
    return text.replace("|", "\\|").replace("\n", " ⏎ ") or "(nothing: EOS at once)"
