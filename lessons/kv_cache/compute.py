"""Lesson 7: the KV cache, computed on the course model.

Generating token t+1 needs attention from the newest query to the keys and values of every
earlier position. Those keys and values never change once computed (a causal model never
looks ahead), so a cache keeps them: each step computes k and v for one new position and
reads the rest. Without it every step recomputes all positions again.

Everything here is pure: token ids in, numbers or Plotly figures out.

    >>> kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, positions=4096, batch=1, bytes_per_value=2) / 2**30
    2.0

Notation: L layers, nkv key/value heads, hs head size, S positions, B batch, V vocabulary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lessons import cost
from lessons.course import LRU, CourseModel, prepare_text, token_label, unique_labels, vocab_tokens
from lessons.grading import Question
from lessons.inputs import LessonError, choice, join, whole
from llama.config import LlamaConfig
from llama.count import matmul_weights
from llama.tokenizer import decode_continuation

Progress = Callable[[float, str], None]

# Bytes per stored number, as a learner would pick them.
DTYPE_BYTES = {"fp32": 4, "fp16 / bf16": 2, "int8": 1}
# The real Llama configurations the lessons compare with (llama/config.py PRESETS).
REAL_MODELS = {"Llama 2 7B": "llama2-7b", "Llama 2 70B": "llama2-70b",
               "Llama 3 8B": "llama3-8b", "Llama 3 70B": "llama3-70b"}
COURSE = "this model"  # the loaded model's row in the memory chart (whichever model is served)
MAX_PROMPT_TOKENS = 48  # prompt tokens shown in the step-by-step grid (BOS included)
MAX_NEW_TOKENS = 32
MAX_CONTEXT = 131_072  # the memory chart's longest context (Llama 3.1's), or the model's own when longer
MAX_BATCH = 128
DEFAULT_DTYPE = "fp16 / bf16"
TIMING_REPEATS = 3  # each timed step runs this many times, cached and uncached interleaved; the median counts
# Work limits for the live timings, in parameter-tokens (parameters x tokens pushed through the model, about half
# the floating-point operations): n uncached steps push about n^2 / 2 tokens, one uncached step at length T pushes
# T. The course model and stories260K fit their whole context; a 1B-parameter Llama gets a few dozen tokens, so
# a press of the button stays a matter of seconds on a CPU rather than hours.
TIMING_WORK = 1e11
SPEED_WORK = 1e10
MIN_SPEED_LENGTH = 32
# A big model on a CPU (lessons.cost.big) sizes the page's runs to about BIG_BUDGET_S seconds each on this machine
# (lessons.cost's estimate): fewer steps timed, once each (a step of a 1B model takes a second, so one busy moment
# of the machine shifts it little), and fewer tokens generated both ways. The course model keeps every default.
BIG_BUDGET_S = 20
OPEN_BUDGET_S = 8  # the step-by-step run, which also runs when the page opens: a shorter wait
BIG_TIMING_REPEATS = 1
SPEED_REPEATS = 5  # runs of each one-step timing in the speed reveal (median)
ALLOC_CHECK_POSITIONS = 4096  # allocated_cache_bytes allocates at most this many positions


# ----------------------------------------------------------------------------- a per-model result cache


_RESULTS = LRU(64)  # (model, *key) -> a measured result: runs, losses, attention maps (the lessons' one cache)


def memo(cm: CourseModel, key: tuple, make: Callable[[], object]):
    """`make()` cached under (the model, *key) in the lessons' one cache (lessons.course.LRU): computed once
    per key even when several learners ask at once, never served for another model."""
    return _RESULTS.get_or_compute((cm.model, *key), make)


# ----------------------------------------------------------------------------- cache memory


def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, positions: int, batch: int = 1,
                   bytes_per_value: int = 2) -> int:
    """2 (one K and one V) x layers x KV heads x head size x positions x batch x bytes per number.

        >>> kv_cache_bytes(4, 2, 32, 256, 1, 4)   # a tiny model, fp32
        524288
    """
    return 2 * n_layers * n_kv_heads * head_dim * positions * batch * bytes_per_value


def config_cache_bytes(cfg: LlamaConfig, positions: int, batch: int = 1, bytes_per_value: int = 2,
                       n_kv_heads: int | None = None) -> int:
    """kv_cache_bytes for a config; n_kv_heads overrides the config's (n_heads gives the MHA figure)."""
    return kv_cache_bytes(cfg.n_layers, n_kv_heads or cfg.n_kv_heads, cfg.head_dim, positions, batch, bytes_per_value)


def reference_configs(cm: CourseModel) -> dict[str, LlamaConfig]:
    """The course model's config and the four real Llama configs, by display name."""
    return {COURSE: cm.config, **{name: LlamaConfig.from_name(preset) for name, preset in REAL_MODELS.items()}}


def fmt_bytes(n: float) -> str:
    """1536 -> '1.50 KiB'; binary units, as memory is sold."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} B" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1024
    return ""  # unreachable


def configs_markdown(configs: dict[str, LlamaConfig]) -> str:
    """The configurations used, stated as a table (layers, heads, KV heads, head size, context)."""
    rows = ["| model | layers | query heads | KV heads | head size | width | context |",
            "|---|---|---|---|---|---|---|"]
    for name, c in configs.items():
        rows.append(f"| {name} | {c.n_layers} | {c.n_heads} | {c.n_kv_heads} | {c.head_dim} | {c.dim:,} | "
                    f"{c.max_seq_len:,} |")
    return "\n".join(rows)


def max_context(cm: CourseModel) -> int:
    """The memory chart's longest context: Llama 3.1's 131,072 tokens, or the model's own when it is longer
    (rounded up to the slider's step of 256)."""
    return max(MAX_CONTEXT, -(-cm.config.max_seq_len // 256) * 256)


def read_memory_inputs(positions, batch, dtype, longest: int = MAX_CONTEXT) -> tuple[int, int, int, str, str]:
    """(positions, batch, bytes per value, number format, notice): any values repaired through lessons.inputs.
    `longest` is the largest context accepted (max_context of the model)."""
    positions, n1 = whole(positions, "Context length", 1, longest, 4096)
    batch, n2 = whole(batch, "Batch", 1, MAX_BATCH, 1)
    dtype, n3 = choice(dtype, "Number format", list(DTYPE_BYTES), DEFAULT_DTYPE)
    return positions, batch, DTYPE_BYTES[dtype], dtype, join(n1, n2, n3)


def check_memory_inputs(positions: int, batch: int, dtype: str) -> tuple[int, int, int]:
    """Validated (positions, batch, bytes per value); a LessonError for the page otherwise. Kept as it was for the
    GQA lesson, which calls it; this lesson repairs its inputs with read_memory_inputs instead."""
    if dtype not in DTYPE_BYTES:
        raise LessonError(f"Unknown number format {dtype!r}: choose one of {', '.join(DTYPE_BYTES)}.")
    positions, batch = int(positions or 0), int(batch or 0)
    if positions < 1 or batch < 1:
        raise LessonError("Context length and batch size must both be at least 1.")
    return positions, batch, DTYPE_BYTES[dtype]


def cache_memory(cm: CourseModel, positions, batch, dtype) -> tuple[str, go.Figure, str]:
    """Cache memory of every reference model at this context and batch, with GQA (as shipped) and
    without (MHA: one K/V head per query head). Returns a Markdown table, a bar figure and a notice."""
    positions, batch, nbytes, dtype, notice = read_memory_inputs(positions, batch, dtype, max_context(cm))
    configs = reference_configs(cm)
    rows = ["| model | KV heads (shipped) | with GQA | MHA (KV heads = query heads) | saved |", "|---|---|---|---|---|"]
    names, gqa, mha = [], [], []
    for name, c in configs.items():
        g = config_cache_bytes(c, positions, batch, nbytes)
        m = config_cache_bytes(c, positions, batch, nbytes, n_kv_heads=c.n_heads)
        past = " *(past its context)*" if positions > c.max_seq_len else ""
        rows.append(f"| {name}{past} | {c.n_kv_heads} of {c.n_heads} | {fmt_bytes(g)} | {fmt_bytes(m)} | "
                    f"{m / g:.0f}x |")
        names.append(name)
        gqa.append(g / 2**30)
        mha.append(m / 2**30)
    fig = go.Figure([
        go.Bar(name="MHA (no sharing)", x=names, y=mha, marker_color="#9ca3af",
               hovertemplate="%{x}: %{y:.3g} GiB<extra>MHA</extra>"),
        go.Bar(name="GQA as shipped", x=names, y=gqa, marker_color="#2563eb",
               hovertemplate="%{x}: %{y:.3g} GiB<extra>GQA</extra>"),
    ])
    fig.update_layout(barmode="group", height=360, margin=dict(l=60, r=20, t=60, b=40),
                      title=dict(text=f"KV cache at {positions:,} tokens x batch {batch}, {dtype}"),
                      yaxis=dict(title="cache memory (GiB, log scale)", type="log"),
                      legend=dict(orientation="h", y=-0.15))
    return "\n".join(rows), fig, notice


def allocated_cache_bytes(cm: CourseModel, batch: int = 1) -> tuple[int, int, int]:
    """(bytes really allocated by model.new_cache(batch, T), the formula's bytes for the same shape, T):
    the formula is not an estimate, it is exactly what the cache tensors occupy. T is the model's context, at
    most ALLOC_CHECK_POSITIONS (a Llama 3 context of 131,072 positions would take gigabytes just to check)."""
    c = cm.config
    T = min(c.max_seq_len, ALLOC_CHECK_POSITIONS)
    real = sum(layer.nbytes for layer in cm.model.new_cache(batch, T))
    formula = config_cache_bytes(c, T, batch, cm.model.embed_tokens.weight.element_size())
    return real, formula, T


# ----------------------------------------------------------------------------- generation, cached and not


@torch.inference_mode()
def greedy_steps(model, prompt_ids: Sequence[int], n_new: int, use_cache: bool, n_tokens: int | None = None):
    """Greedy generation that keeps each step's logits: (new tokens, logits (n_new, V), cache or None). With
    n_tokens, the argmax is over the first n_tokens ids only (the tokenizer's: lessons.course.vocab_tokens).

    The same loop as llama.generate.stream_generate: with a cache the first call (the prefill)
    feeds the whole prompt and every later call feeds only the newest token at its position;
    without one every call feeds the whole sequence again."""
    device = model.embed_tokens.weight.device
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)  # (1, P)
    cache = model.new_cache(1, len(prompt_ids) + n_new) if use_cache else None  # as long as this run needs
    pos, tokens, logits = 0, [], []
    for _ in range(n_new):
        if use_cache:
            new_pos = torch.arange(pos, ids.shape[1], device=device)  # the prompt at first, then one position
            out = model(ids[:, pos:], new_pos, cache=cache, logits_to_keep=1).logits  # (1, 1, V)
            pos = ids.shape[1]
        else:
            out = model(ids, logits_to_keep=1).logits  # (1, 1, V): every position again, the output layer once
        last = out[0, -1].float()  # (V,) the next-token logits
        tok = int(last[:n_tokens].argmax())  # (padding rows past the tokenizer's ids are never picked)
        tokens.append(tok)
        logits.append(last)
        ids = torch.cat([ids, torch.tensor([[tok]], device=device)], dim=1)  # (1, T + 1)
    return tokens, torch.stack(logits).cpu(), cache


@dataclass(frozen=True)
class CacheRun:
    """One greedy generation, run with and without the cache."""

    prompt_len: int  # P, BOS included
    ids: tuple[int, ...]  # prompt + new tokens (with the cache)
    labels: tuple[str, ...]
    new_tokens: tuple[int, ...]  # with the cache
    uncached_tokens: tuple[int, ...]
    max_logit_diff: float  # over all steps and the whole vocabulary
    k_norms: np.ndarray  # (L, S) |k| of each cached key (mean over KV heads), S = positions that entered the cache
    cache_bytes: int  # bytes of the preallocated cache (room for the prompt and the new tokens)
    text: str = ""  # the new tokens, decoded
    notice: str = ""

    @property
    def n_layers(self) -> int:
        return self.k_norms.shape[0]

    @property
    def same_tokens(self) -> bool:
        return self.new_tokens == self.uncached_tokens


def clamp_new_tokens(cm: CourseModel, prompt_len: int, n_new) -> tuple[int, str]:
    """n_new as a whole number in 1..MAX_NEW_TOKENS and within the room left in the context, with a notice."""
    room = max(1, cm.config.max_seq_len - prompt_len)
    return whole(n_new, "New tokens", 1, min(MAX_NEW_TOKENS, room), min(default_new_tokens(cm, prompt_len), room))


DEFAULT_NEW_TOKENS = 12  # the step-by-step run's tokens when the page opens


def default_new_tokens(cm: CourseModel, prompt_len: int, most: int = DEFAULT_NEW_TOKENS) -> int:
    """Tokens the cached-against-uncached run generates by default: `most` (DEFAULT_NEW_TOKENS when the page opens,
    MAX_NEW_TOKENS for the same-tokens reveal), fewer for a big model on a CPU, as many as fit both ways in
    OPEN_BUDGET_S (the page's run) or BIG_BUDGET_S (the reveal) by lessons.cost's estimate; at least 2."""
    if not cost.big(cm):
        return most
    budget = OPEN_BUDGET_S if most <= DEFAULT_NEW_TOKENS else BIG_BUDGET_S
    return cost.most_within(lambda n: cached_vs_uncached_cost(cm, prompt_len, n), 2, most, budget)


def cached_vs_uncached_cost(cm: CourseModel, prompt_len: int, n_new: int) -> cost.Cost:
    """lessons.cost's estimate of run_cached_vs_uncached: greedy generation with the cache, then without."""
    return cost.generation(cm, prompt_len, n_new) + cost.uncached_generation(cm, prompt_len, n_new)


def run_cost(cm: CourseModel, prompt, n_new=None) -> cost.Cost:
    """The estimate for a learner's prompt and token count (repaired as run_cached_vs_uncached repairs them; None:
    the same-tokens reveal's count)."""
    P = len(prepare_text(cm, prompt, max_tokens=MAX_PROMPT_TOKENS).ids)
    n = same_tokens(cm, prompt) if n_new is None else clamp_new_tokens(cm, P, n_new)[0]
    return cached_vs_uncached_cost(cm, P, n)


def run_cached_vs_uncached(cm: CourseModel, prompt: str, n_new: int) -> CacheRun:
    """Generate n_new tokens greedily from the prompt both ways, and compare tokens and logits step by step."""
    prep = prepare_text(cm, prompt, max_tokens=MAX_PROMPT_TOKENS)
    n, notice = clamp_new_tokens(cm, len(prep.ids), n_new)
    notice = join(prep.notice, notice)
    run = memo(cm, ("cache_run", tuple(prep.ids), n), lambda: _run(cm, prep.ids, n))
    return CacheRun(**{**run.__dict__, "notice": notice})


def _run(cm: CourseModel, prompt_ids: list[int], n: int) -> CacheRun:
    toks, cached_logits, cache = greedy_steps(cm.model, prompt_ids, n, use_cache=True, n_tokens=vocab_tokens(cm))
    utoks, uncached_logits, _ = greedy_steps(cm.model, prompt_ids, n, use_cache=False, n_tokens=vocab_tokens(cm))
    # Compare logits only while both runs have the same prefix (they do, unless the proof fails).
    agree = next((i for i, (a, b) in enumerate(zip(toks, utoks)) if a != b), n) + 1
    agree = min(agree, n)
    diff = float((cached_logits[:agree] - uncached_logits[:agree]).abs().max())
    S = cache[0].length  # positions written: the prompt and every new token but the last
    k_norms = np.stack([c.k[0, :, :S].float().norm(dim=-1).mean(0).cpu().numpy() for c in cache])  # (L, S)
    ids = tuple(prompt_ids) + tuple(toks)
    return CacheRun(len(prompt_ids), ids, tuple(token_label(cm.tokenizer, i) for i in ids), tuple(toks), tuple(utoks),
                    diff, k_norms, sum(c.nbytes for c in cache), decode_continuation(cm.tokenizer, prompt_ids, toks))


# Status of a (layer, position) cell at one step of generation.
EMPTY, READ, WRITTEN, RECOMPUTED = 0, 1, 2, 3
STATUS_NAMES = {EMPTY: "not computed yet", READ: "read from the cache", WRITTEN: "computed now, written to the cache",
                RECOMPUTED: "computed again (no cache)"}
STATUS_COLORS = {EMPTY: "#f3f4f6", READ: "#60a5fa", WRITTEN: "#f97316", RECOMPUTED: "#ef4444"}


def step_status(prompt_len: int, step: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position (width,), what step `step` does with its keys and values, with and without a cache.

    Step 0 is the prefill: the cache computes all P prompt positions. Step s >= 1 feeds only the token at
    position P + s - 1 and reads positions 0 .. P + s - 2 from the cache. Without a cache, step s recomputes
    positions 0 .. P + s - 1.

        >>> step_status(3, 1, 5)
        (array([1, 1, 1, 2, 0]), array([3, 3, 3, 3, 0]))
    """
    pos = np.arange(width)
    last = prompt_len + step - 1  # the newest position fed at this step
    first_new = 0 if step == 0 else last
    cached = np.where(pos < first_new, READ, np.where(pos <= last, WRITTEN, EMPTY))
    uncached = np.where(pos <= last, RECOMPUTED, EMPTY)
    return cached, uncached


def step_figure(run: CacheRun, step: int) -> tuple[go.Figure, str]:
    """The layer x position grid at one step, with the cache (top) and without (bottom), and a readout."""
    n = len(run.new_tokens)
    if not 0 <= step < n:
        raise LessonError(f"Step {step} does not exist: this run has steps 0 to {n - 1}.")
    L, P = run.n_layers, run.prompt_len
    width = P + n - 1  # every position that is ever fed to the model (the last new token never is)
    cached, uncached = step_status(P, step, width)
    fed = P + step  # positions fed to the model by the end of this step; later ones are not generated yet
    labels = unique_labels([t if i < fed else "·" for i, t in enumerate(run.labels[:width])])  # "12 ·": not yet
    layers = [f"layer {i}" for i in range(L)]
    colorscale = []
    for code, color in STATUS_COLORS.items():  # a discrete colour per status code 0..3
        colorscale += [[code / 4, color], [(code + 1) / 4, color]]
    hover_k = np.full((L, width), np.nan)
    hover_k[:, :run.k_norms.shape[1]] = run.k_norms
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("with the KV cache", "without a cache"))
    for row, status in ((1, cached), (2, uncached)):
        z = np.tile(status, (L, 1))  # (L, width) the same for every layer
        text = [[STATUS_NAMES[int(s)] for s in status]] * L
        fig.add_trace(go.Heatmap(z=z, x=labels, y=layers, zmin=0, zmax=4, colorscale=colorscale, showscale=False,
                                 xgap=1, ygap=1, customdata=hover_k, text=text,
                                 hovertemplate="%{y}, position %{x}<br>%{text}<br>"
                                               "|k| = %{customdata:.2f}<extra></extra>"),
                      row=row, col=1)
    for code in (READ, WRITTEN, RECOMPUTED):  # legend entries for the discrete colours
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=STATUS_NAMES[code],
                                 marker=dict(size=12, symbol="square", color=STATUS_COLORS[code])))
    out = token_label_of(run, P + step)
    row = max(10, min(30, 480 // L))  # pixels per layer: a 32-layer model gets thinner rows
    fig.update_layout(height=160 + 2 * (row * L + 40), margin=dict(l=70, r=20, t=110, b=40),
                      title=dict(text=f"Step {step}: predicts token {P + step} '{out}'"),
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0), plot_bgcolor="white")
    fig.update_xaxes(title_text="position (token fed to the model)", row=2, col=1, tickangle=-60)
    fed = P if step == 0 else 1
    read = 0 if step == 0 else P + step - 1
    with_cache_total = L * (P + step)  # every position computed once, by the end of this step
    without_total = L * sum(P + s for s in range(step + 1))
    readout = (f"**Step {step}** ({'the prefill' if step == 0 else 'one decode step'}): with the cache the model "
               f"computes k and v for **{fed}** position(s) x {L} layers and reads **{read}** positions per layer "
               f"from the cache; without a cache it computes them for **{P + step}** positions x {L} layers. "
               f"Next token: `{inline(out)}`. "
               f"K/V vectors computed so far: {with_cache_total:,} with the cache, {without_total:,} without.")
    return fig, readout


def token_label_of(run: CacheRun, position: int) -> str:
    return run.labels[position] if position < len(run.labels) else "?"


def proof_markdown(run: CacheRun) -> str:
    """The cached and uncached runs side by side: tokens and the largest logit difference, measured."""
    same = sum(a == b for a, b in zip(run.new_tokens, run.uncached_tokens))
    verdict = ("the **same tokens**" if run.same_tokens else
               f"**different tokens**: {same} of {len(run.new_tokens)} agree")
    return (f"Greedy, {len(run.new_tokens)} new tokens: cached and uncached generation give {verdict}. "
            f"Largest |logit difference| over every step and every vocabulary entry: **{run.max_logit_diff:.2e}**. "
            "The cached keys and values are equal to the recomputed ones in exact arithmetic, and equal up to float "
            "rounding here: the two runs multiply matrices of different shapes (one new row against many), which "
            "round differently. So a token can differ where the top two logits are nearly tied, more often in "
            "16-bit formats (fp16, bf16) than in fp32.\n\n"
            f"Generated after the prompt (with the cache): `{inline(run.text)}`")


def inline(text: str) -> str:
    """Text safe inside one Markdown code span: newlines shown as ⏎, backticks as quotes."""
    return text.replace("`", "'").replace("\n", "⏎") or "∅"


# ----------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timer(device: torch.device, clock: Callable[[], float]):
    """time(fn) -> milliseconds fn took, the device synchronised before and after."""

    def time_ms(fn) -> float:
        _sync(device)
        t = clock()
        fn()
        _sync(device)
        return (clock() - t) * 1000

    return time_ms


def timing_limit(cm: CourseModel) -> int:
    """Most generation steps the live timing runs: the context less room for BOS and one prompt token, and at
    most TIMING_WORK parameter-tokens of uncached work (n steps push about n^2 / 2 tokens through the model).

        >>> timing_limit(cm)   # context 256, 2.6M parameters: the whole context
        254
    """
    by_work = int((2 * TIMING_WORK / cm.model.num_parameters()) ** 0.5)
    return max(2, min(cm.config.max_seq_len - 2, by_work))


def timing_repeats(cm: CourseModel) -> int:
    """Runs of each timed step (the median counts): TIMING_REPEATS, once for a big model on a CPU."""
    return BIG_TIMING_REPEATS if cost.big(cm) else TIMING_REPEATS


def default_timed(cm: CourseModel, prompt_len: int) -> int:
    """Steps the timing measures by default: 128 within the room (timing_limit), and for a big model on a CPU as
    many as fit BIG_BUDGET_S on this machine (lessons.cost), at least 2."""
    room = min(cm.config.max_seq_len - prompt_len, timing_limit(cm))
    if not cost.big(cm):
        return min(128, room)
    return cost.most_within(lambda n: timing_cost(cm, prompt_len, n), 2, room, BIG_BUDGET_S)


def timing_cost(cm: CourseModel, prompt_len: int, n: int) -> cost.Cost:
    """lessons.cost's estimate of time_per_token for n steps after a prompt of prompt_len tokens."""
    return cost.kv_timing(cm, prompt_len, n, timing_repeats(cm))


def timing_run_cost(cm: CourseModel, prompt, n_new) -> cost.Cost:
    """timing_cost for a learner's prompt and step count, repaired as timing_view repairs them (0 s when the prompt
    leaves no room: timing_view says why)."""
    P = len(prepare_text(cm, prompt, max_tokens=MAX_PROMPT_TOKENS).ids)
    room = min(cm.config.max_seq_len - P, timing_limit(cm))
    if room < 2:
        return cost.Cost(0.0, cm.model.num_parameters(), cm.device.type)
    return timing_cost(cm, P, whole(n_new, "Steps to time", 2, room, default_timed(cm, P))[0])


def speed_cost(cm: CourseModel) -> cost.Cost:
    """lessons.cost's estimate of one_step_ratio (the speed reveal): a prefill, then SPEED_REPEATS cached
    one-token steps and as many uncached passes over speed_length tokens."""
    T = speed_length(cm)
    return (cost.passes(cm, T - 1) + cost.passes(cm, SPEED_REPEATS, SPEED_REPEATS)
            + cost.passes(cm, SPEED_REPEATS * T, SPEED_REPEATS))


def speed_length(cm: CourseModel) -> int:
    """Context length of the speed reveal: the whole context but one position, at most SPEED_WORK
    parameter-tokens for the uncached step (at least MIN_SPEED_LENGTH tokens, where the context has them)."""
    ctx = cm.config.max_seq_len
    return max(min(ctx - 1, MIN_SPEED_LENGTH), min(ctx - 1, int(SPEED_WORK / cm.model.num_parameters())))


@torch.inference_mode()
def time_per_token(cm: CourseModel, prompt_ids: Sequence[int], n_new: int, progress: Progress | None = None,
                   repeats: int = TIMING_REPEATS, clock: Callable[[], float] = time.perf_counter) -> dict:
    """Wall-clock time of each generation step on this machine, with the cache and without, measured fairly:

    - the same work apart from the cache: both compute the output layer for the last position only
      (`logits_to_keep=1`), so the only difference is the keys and values of earlier positions (read from the
      cache, or recomputed by a full pass over all tokens so far);
    - interleaved: at every step the cached and the uncached step run one after the other, `repeats` times
      (the cache is rewound and the same positions re-written), so a busy moment of the machine hits
      both alike;
    - the median of the repeats counts, so one slow run (another process took the CPU) does not.

    Step 0 is the prefill (the whole prompt); step s >= 1 adds the greedy token of step s-1. Returns
    milliseconds per step against the context length, the totals, the speed-up, and the largest difference
    between the two ways' next-token logits (they compute the same thing: equal up to rounding).
    `clock` is the timer (seconds), replaceable in a test."""
    model, device = cm.model, cm.device
    n = min(int(n_new), cm.config.max_seq_len - len(prompt_ids))
    if n < 2:
        raise LessonError("The prompt leaves no room in the context for new tokens: shorten it.")
    time_ms = _timer(device, clock)
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)  # (1, P)
    cache = model.new_cache(1, len(prompt_ids) + n)
    cached_ms, uncached_ms, lengths, diff = [], [], [], 0.0
    pos = 0  # first position not yet in the cache
    for s in range(n):
        T = ids.shape[1]  # tokens in the context at this step
        input_pos = torch.arange(pos, T, device=device)  # the prompt at step 0, then the newest position
        out = {}

        def cached():  # rewind first: re-writing the same positions makes every repeat the same step
            for c in cache:
                c.rewind(pos)
            out["cached"] = model(ids[:, pos:], input_pos, cache=cache, logits_to_keep=1).logits[0, -1]

        def uncached():
            out["uncached"] = model(ids, logits_to_keep=1).logits[0, -1]  # (V,) all T positions again

        runs = [(time_ms(cached), time_ms(uncached)) for _ in range(repeats)]
        cached_ms.append(float(np.median([c for c, _ in runs])))
        uncached_ms.append(float(np.median([u for _, u in runs])))
        lengths.append(T)
        diff = max(diff, float((out["cached"].float() - out["uncached"].float()).abs().max()))
        pos = T
        tok = int(out["cached"][:vocab_tokens(cm)].argmax())  # one of the tokenizer's ids
        ids = torch.cat([ids, torch.tensor([[tok]], device=device)], dim=1)  # (1, T + 1)
        if progress and s % 8 == 0:
            progress(s / n, f"step {s + 1} of {n}, with and without the cache")
    return {"lengths": lengths, "cached_ms": cached_ms, "uncached_ms": uncached_ms,
            "prefill_ms": cached_ms[0], "total_cached_ms": sum(cached_ms), "total_uncached_ms": sum(uncached_ms),
            "speedup": sum(uncached_ms) / sum(cached_ms), "device": str(device), "new_tokens": n,
            "repeats": repeats, "max_logit_diff": diff}


def step_flops(cfg: LlamaConfig, T: int, cached: bool) -> int:
    """Forward FLOPs of one generation step with T tokens in the context (the newest included), output layer for
    the newest position only (as both timings run it, `logits_to_keep=1`):

        block weights   2 · (matmul_weights − V·C) per token pushed through: 1 token cached, T uncached
        attention       2 · 2 · L · nh·hs per (query, key) pair, both products (q·k and the weighted sum of v):
                        T pairs cached (one query), T(T+1)/2 uncached (every query sees the keys up to it)
        lm_head         2 · V · C, once

    (llama.count.flops_per_token counts the same per token.)

        >>> c = LlamaConfig.from_name("llama2-7b")
        >>> step_flops(c, 255, False) / step_flops(c, 255, True)  # doctest: +ELLIPSIS
        248.7...
    """
    blocks = matmul_weights(cfg) - cfg.vocab_size * cfg.dim  # (n_out, n_in) weights of every block
    per_pair = 2 * 2 * cfg.n_layers * cfg.n_heads * cfg.head_dim
    tokens, pairs = (1, T) if cached else (T, T * (T + 1) // 2)
    return 2 * blocks * tokens + per_pair * pairs + 2 * cfg.vocab_size * cfg.dim


def rolling_median(x: Sequence[float], k: int = 9) -> list[float]:
    """Median of each window of k neighbours: one slow step (another process took the CPU) does not show.

        >>> rolling_median([1, 9, 1, 1, 1], 3)
        [5.0, 1.0, 1.0, 1.0, 1.0]
    """
    x = np.asarray(x, dtype=float)
    h = k // 2
    return [float(np.median(x[max(0, i - h): i + h + 1])) for i in range(len(x))]


def timing_figure(t: dict, cfg: LlamaConfig | None = None) -> tuple[go.Figure, str]:
    """Time per decode step against context length, both ways (step 0, the prefill, is reported apart: it is the
    same work with and without a cache), and, given the model's config, FLOPs per step (step_flops) below it."""
    x = t["lengths"][1:]
    rows = 2 if cfg is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("time per step (ms), measured", "FLOPs per step, counted")[:rows])
    for key, name, color, cached in (("uncached_ms", "without a cache", "#ef4444", False),
                                     ("cached_ms", "with the KV cache", "#2563eb", True)):
        y = t[key][1:]
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", marker=dict(color=color, size=4, opacity=0.35),
                                 name=f"{name} (each step)", showlegend=False,
                                 hovertemplate="%{x} tokens: %{y:.2f} ms<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=rolling_median(y), mode="lines", line=dict(color=color, width=3),
                                 name=f"{name} (median of 9)"), row=1, col=1)
        if cfg is not None:
            fig.add_trace(go.Scatter(x=x, y=[step_flops(cfg, T, cached) for T in x], mode="lines",
                                     line=dict(color=color, width=2, dash="dot"), name=f"{name}: FLOPs",
                                     hovertemplate="%{x} tokens: %{y:.3s} FLOPs<extra></extra>"), row=2, col=1)
    fig.update_layout(height=380 + 220 * (rows - 1), margin=dict(l=60, r=20, t=60, b=50),
                      title=dict(text=f"Per decode step on this machine ({t['device']})"),
                      legend=dict(orientation="h", y=-0.12 if rows == 2 else -0.2))
    fig.update_yaxes(rangemode="tozero")
    fig.update_xaxes(title_text="tokens in the context", row=rows, col=1)
    decode_c = t["total_cached_ms"] - t["cached_ms"][0]
    decode_u = t["total_uncached_ms"] - t["uncached_ms"][0]
    md = (f"**Prefill** (the {t['lengths'][0]}-token prompt at once, the same work both ways): "
          f"{t['cached_ms'][0]:.1f} ms with the cache, {t['uncached_ms'][0]:.1f} ms without. "
          f"**Decode**, {t['new_tokens'] - 1} step{'s' * (t['new_tokens'] != 2)}: **{decode_c:.0f} ms** with the cache, **{decode_u:.0f} ms** "
          f"without: a **{decode_u / decode_c:.1f}x** speed-up (prefill included: {t['speedup']:.1f}x). Each step is "
          f"the median of {t['repeats']} runs, cached and uncached taking turns; both compute the output layer for "
          f"the newest position only, so the cache is the only difference. Their next-token logits differ by at "
          f"most {t['max_logit_diff']:.1e} (rounding).")
    if cfg is not None and len(x):
        T = x[-1]
        fr = step_flops(cfg, T, False) / step_flops(cfg, T, True)
        tr = t["uncached_ms"][-1] / t["cached_ms"][-1]
        md += (f"\n\nAt {T} tokens the uncached step does **{fr:.0f}x** the FLOPs of the cached one, and took "
               f"**{tr:.1f}x** the time (last step, measured).")
    return fig, md


@torch.inference_mode()
def one_step_ratio(cm: CourseModel, length: int | None = None, repeats: int = SPEED_REPEATS,
                   clock: Callable[[], float] = time.perf_counter) -> dict:
    """Median time of one step at a long context, without a cache (a full pass over `length` tokens) and with
    one (one token reading length-1 cached positions), interleaved, the output layer at the last position only
    in both (see time_per_token). For the predict-then-reveal question."""
    model, device = cm.model, cm.device
    T = min(length or speed_length(cm), cm.config.max_seq_len)
    text_ids = torch.arange(T, device=device)[None] % cm.config.vocab_size  # (1, T) any ids: cost ignores them
    cache = model.new_cache(1, T)
    model(text_ids[:, : T - 1], torch.arange(T - 1, device=device), cache=cache)  # prefill T-1 positions
    pos = torch.tensor([T - 1], device=device)
    time_ms = _timer(device, clock)

    def step():  # rewind to T-1 positions and write position T-1 again: every repeat is the same step
        for c in cache:
            c.rewind(T - 1)
        model(text_ids[:, T - 1:], pos, cache=cache, logits_to_keep=1)

    runs = [(time_ms(step),
             time_ms(lambda: model(text_ids, logits_to_keep=1))) for _ in range(repeats)]
    cached = float(np.median([c for c, _ in runs]))
    uncached = float(np.median([u for _, u in runs]))
    return {"length": T, "cached_ms": cached, "uncached_ms": uncached, "ratio": uncached / cached,
            "repeats": repeats}


# ----------------------------------------------------------------------------- what the page shows


def step_view(cm: CourseModel, prompt, n_new, step) -> tuple[go.Figure, str, int, int, str]:
    """(grid figure, step readout, number of steps, the step shown, notice) for one step of one run. Any step
    value is repaired (lessons.inputs.whole): a step past the last one snaps to the last, with a notice."""
    run = run_cached_vs_uncached(cm, prompt, n_new)
    n = len(run.new_tokens)
    step, notice = whole(step, "Step", 0, n - 1, 0)
    fig, readout = step_figure(run, step)
    return fig, readout, n, step, join(run.notice, notice)


def timing_view(cm: CourseModel, prompt, n_new, progress: Progress | None = None) -> tuple[go.Figure, str, str]:
    """(figure, summary, notice): time_per_token for the prompt and n_new steps (2 up to the room in the
    context; other values repaired with a notice)."""
    prep = prepare_text(cm, prompt, max_tokens=MAX_PROMPT_TOKENS)
    room = min(cm.config.max_seq_len - len(prep.ids), timing_limit(cm))
    if room < 2:
        raise LessonError("The prompt leaves no room in the context for new tokens: shorten it.")
    n, notice = whole(n_new, "Steps to time", 2, room, default_timed(cm, len(prep.ids)))
    fig, md = timing_figure(time_per_token(cm, prep.ids, n, progress, repeats=timing_repeats(cm)), cm.config)
    return fig, md, join(prep.notice, notice)


SAME_QUESTION = ("Generate greedily from your prompt twice: once with the KV cache, once recomputing every position "
                 "at every step. Will the two runs give the same tokens?")
SAME_CHOICES = ["Yes: the same tokens", "Mostly, but a few tokens differ",
                "No: the cache is an approximation, the texts drift apart"]
Q_SAME = Question("kv-same", SAME_QUESTION, tuple(SAME_CHOICES),
                  misconception="that the cache approximates: its keys and values are the very ones a full pass "
                                "recomputes (a causal model never looks ahead), equal up to float rounding")
SPEED_CHOICES = ["about 2x", "about 16x", "about as many times as there are tokens"]
SPEED_QUESTION_ID = "kv-flops"
SPEED_MISCONCEPTION = ("that time follows arithmetic: the uncached step does about T times the FLOPs, but a decode "
                       "step also pays a fixed cost (reading every weight from memory once, launching each "
                       "layer's work), so the measured speed-up is far smaller than the FLOP ratio")


def speed_question(cm: CourseModel) -> str:
    return (f"With {speed_length(cm)} tokens already in the context, how many times more arithmetic (FLOPs) does "
            "one step without the cache (all tokens again) do than one step with it (one new token)?")


def speed_q(cm: CourseModel) -> Question:
    """The FLOPs question for this model (its text quotes the model's context)."""
    return Question(SPEED_QUESTION_ID, speed_question(cm), tuple(SPEED_CHOICES), SPEED_MISCONCEPTION)


def same_answer(run: CacheRun) -> int:
    """Which SAME_CHOICES the measured run supports: all tokens equal, at least half, or fewer."""
    same = sum(a == b for a, b in zip(run.new_tokens, run.uncached_tokens))
    return 0 if run.same_tokens else (1 if same >= len(run.new_tokens) // 2 else 2)


def same_tokens(cm: CourseModel, prompt) -> int:
    """Tokens the same-tokens reveal generates both ways: MAX_NEW_TOKENS, fewer for a big model on a CPU."""
    prep = prepare_text(cm, prompt, max_tokens=MAX_PROMPT_TOKENS)
    return default_new_tokens(cm, len(prep.ids), MAX_NEW_TOKENS)


def reveal_same(cm: CourseModel, prompt, choice, n_new: int | None = None) -> str:
    run = run_cached_vs_uncached(cm, prompt, same_tokens(cm, prompt) if n_new is None else n_new)
    body = proof_markdown(run) + (f"\n\n⚠️ {run.notice}" if run.notice else "")
    return Q_SAME.reveal(choice, SAME_CHOICES[same_answer(run)], body)


def flops_answer(ratio: float, T: int) -> int:
    """Which SPEED_CHOICES a FLOP ratio at T tokens is nearest to (on a log scale): 2, 16 or T."""
    return int(np.argmin([abs(np.log(ratio / target)) for target in (2, 16, T)]))


def reveal_speed(cm: CourseModel, choice) -> str:
    """Graded on the FLOPs (counted, not noisy); the timing is measured and shown beside them, unjudged."""
    T = speed_length(cm)
    fu, fc = step_flops(cm.config, T, False), step_flops(cm.config, T, True)
    ratio = fu / fc
    r = one_step_ratio(cm)
    return speed_q(cm).reveal(choice, SPEED_CHOICES[flops_answer(ratio, T)], (
        f"At {T} tokens: **{fu:,.0f} FLOPs** without the cache, **{fc:,.0f}** with it: **{ratio:.0f}x** "
        f"(`step_flops`: the block weights for every token again, both attention products for every pair, the output "
        f"layer once). Timed on {cm.device} just now: **{r['uncached_ms']:.2f} ms** against "
        f"**{r['cached_ms']:.2f} ms** (median of {r['repeats']} runs each, taking turns): **{r['ratio']:.1f}x**. "
        "Time falls far short of the FLOP ratio because every step also pays a fixed cost that does not shrink with "
        "the number of tokens: launching each layer's operations (for a model this small on a CPU, most of the "
        "time) and reading every weight from memory once (for a large model on a GPU, most of the time: decode is "
        "memory-bound, the arithmetic of one token cannot hide it). The uncached step spends the same fixed cost on "
        "T tokens at once. The timing is measured and moves from run to run; the grade rests on the FLOP count."))
