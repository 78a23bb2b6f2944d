"""Lesson 5 computations: SwiGLU, Llama's feed-forward network.

    classic MLP   FFN(x)    = W2 · relu(W1 x)                        two matrices, hidden size 4d
    SwiGLU        FFN(x)    = W_down · (silu(W_gate x) ⊙ (W_up x))   three matrices, hidden size ≈ 2/3 · 4d

Three views, each computed live:
1. Curves of ReLU, GELU and Swish_beta(x) = x · sigmoid(beta x) (SiLU is beta = 1), and the gate surface
   Swish_beta(a) · b that one SwiGLU hidden unit computes from its gate input a and up input b.
2. The hidden size: 4d, then 2/3 of it, then rounded up to `multiple_of` (`llama.config.llama_hidden_dim`),
   with parameter counts against a 4d ReLU MLP, for the course model and real Llamas.
3. The course model's gate activations silu(gate_proj x) per layer on the learner's text
   (`trace.layers[l].gate`), and how many are near zero.

    >>> steps = preset_steps("llama2-7b")
    >>> steps.four_d, steps.two_thirds, steps.hidden
    (16384, 10922, 11008)

Nothing here imports Gradio; `app/pages/swiglu.py` lays these out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from lessons import inputs
from lessons.course import LRU, CourseModel, prepare_text, trace
from lessons.grading import Question
from lessons.inputs import LessonError
from lessons.plots import figure, message_figure, panel_axes, panels  # noqa: F401  (shared helpers)
from llama.config import LlamaConfig, llama_hidden_dim

DEFAULT_TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun."
MAX_TOKENS = 128  # BOS included
BLUE, ORANGE, GREEN, PINK, GREY, RED, SKY = "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#999999", "#D55E00", "#56B4E9"
MAX_BETA = 10.0
THRESHOLD_MIN, THRESHOLD_MAX = 0.005, 0.5  # what "near zero" may mean: |gate| below this
MAX_WIDTH = 1_000_000  # the learner's own width d and multiple_of (Llama 3 405B has d = 16,384)
PRESETS_SHOWN = [("Llama 2 7B", "llama2-7b"), ("Llama 3 8B", "llama3-8b"), ("Llama 2 70B", "llama2-70b")]


# ----------------------------------------------------------------------------- 1. activation curves


def swish(x: torch.Tensor, beta: float) -> torch.Tensor:
    """x · sigmoid(beta x): beta = 1 is SiLU; beta -> infinity tends to ReLU; beta = 0 is the line x / 2."""
    return x * torch.sigmoid(beta * x)


def check_beta(beta) -> float:
    """beta as the curves need it; LessonError outside [0, MAX_BETA] (pages clamp first with `clamp_beta`)."""
    beta, notice = clamp_beta(beta)
    if notice:
        raise LessonError(notice)
    return beta


def clamp_beta(beta) -> tuple[float, str]:
    """(beta in [0, MAX_BETA], notice): NaN, text, 1e20 or -1 are clamped (NaN -> 1, SiLU) with a notice."""
    return inputs.number(beta, "β", 0.0, MAX_BETA, default=1.0)


@dataclass
class Curves:
    beta: float
    x: np.ndarray
    relu: np.ndarray
    gelu: np.ndarray
    silu: np.ndarray
    swish: np.ndarray
    min_x: float  # where Swish_beta dips lowest
    min_y: float  # ... and how low (0 when beta = 0: the line x/2 has no minimum on the plot's left edge)


def _sigmoid(u: float) -> float:
    return 1.0 / (1.0 + math.exp(-u))


def swish_minimum(beta: float) -> tuple[float, float]:
    """Where x · sigmoid(beta x) is lowest. With u = beta x it is (1/beta) · u · sigmoid(u), so the dip sits at
    x = u*/beta with depth u* sigmoid(u*)/beta, where u* solves d/du [u sigmoid(u)] = 0, i.e. 1 + u (1 - sigmoid(u)) = 0
    (Newton's method, in plain floats: a few microseconds). For SiLU: -0.278 at x = -1.278.

        >>> [round(v, 3) for v in swish_minimum(1.0)]
        [-1.278, -0.278]
    """
    if beta <= 0:
        return float("-inf"), float("-inf")  # x/2 keeps falling
    u = -1.3
    for _ in range(50):
        s = _sigmoid(u)
        f, df = 1.0 + u * (1.0 - s), (1.0 - s) - u * s * (1.0 - s)
        step = f / df
        u -= step
        if abs(step) < 1e-12:
            break
    return u / beta, u * _sigmoid(u) / beta


def activation_curves(beta: float, lim: float = 5.0, n: int = 401) -> Curves:
    beta = check_beta(beta)
    x = torch.linspace(-lim, lim, n)
    mx, my = swish_minimum(beta)
    return Curves(beta, x.numpy(), F.relu(x).numpy(), F.gelu(x).numpy(), F.silu(x).numpy(),
                  swish(x, beta).numpy(), mx, my)


def curves_figure(c: Curves) -> go.Figure:
    data = [go.Scatter(x=c.x, y=c.relu, name="ReLU: max(0, x)", line=dict(color=GREY, dash="dot")),
            go.Scatter(x=c.x, y=c.gelu, name="GELU: x·Φ(x)", line=dict(color=ORANGE)),
            go.Scatter(x=c.x, y=c.silu, name="SiLU: x·σ(x) (β = 1)", line=dict(color=GREEN, dash="dash")),
            go.Scatter(x=c.x, y=c.swish, name=f"Swish: x·σ({c.beta:g}x)", line=dict(color=BLUE, width=3))]
    if math.isfinite(c.min_y) and c.min_x >= c.x[0]:
        data.append(go.Scatter(x=[c.min_x], y=[c.min_y], mode="markers", name="Swish minimum",
                               marker=dict(color=RED, size=9)))
    title = (f"Swish with β = {c.beta:g}: lowest value {c.min_y:.3f} at x = {c.min_x:.2f}" if math.isfinite(c.min_y)
             else "Swish with β = 0 is the straight line x / 2")
    return figure(data, None, height=400, margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.2),
                  title=dict(text=title, font=dict(size=13)), xaxis=dict(title=dict(text="input x")),
                  yaxis=dict(title=dict(text="output"), range=[-1.5, 5]))


def gate_surface(beta: float, lim: float = 4.0, n: int = 81) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One SwiGLU hidden unit: z = Swish_beta(a) · b over a grid of gate inputs a and up inputs b. z is (n, n),
    rows indexed by b, columns by a."""
    beta = check_beta(beta)
    a = torch.linspace(-lim, lim, n)
    b = torch.linspace(-lim, lim, n)
    z = b[:, None] * swish(a, beta)[None, :]  # (n_b, n_a): the product of gate and up values
    return a.numpy(), b.numpy(), z.numpy()


def surface_figure(beta: float) -> go.Figure:
    a, b, z = gate_surface(beta)
    data = [go.Heatmap(x=a, y=b, z=z, colorscale="RdBu", zmid=0.0, colorbar=dict(title=dict(text="output")))]
    return figure(data, None, height=400, margin=dict(l=60, r=20, t=50, b=50),
                  title=dict(text=f"one SwiGLU unit: Swish_β(a) · b with β = {beta:g}", font=dict(size=13)),
                  xaxis=dict(title=dict(text="gate input a = (W_gate x)_j")),
                  yaxis=dict(title=dict(text="up input b = (W_up x)_j")))


def describe_curves(c: Curves) -> str:
    if not math.isfinite(c.min_y):
        return "**β = 0:** x·σ(0) = x/2, a straight line: no gating at all."
    return (f"**β = {c.beta:g}:** Swish dips to **{c.min_y:.3f}** at x = {c.min_x:.2f} "
            f"(SiLU, β = 1: −0.278 at −1.278); "
            f"the dip shrinks as 1/β and moves toward 0, so large β approaches ReLU. At x = 1 Swish gives "
            f"{float(swish(torch.tensor(1.0), c.beta)):.3f} (ReLU 1, GELU {float(F.gelu(torch.tensor(1.0))):.3f}).")


# ----------------------------------------------------------------------------- 2. the hidden size


@dataclass
class HiddenSteps:
    """Meta's recipe for the SwiGLU hidden size, step by step, with parameter counts per layer."""

    name: str
    dim: int
    multiple_of: int
    ffn_dim_multiplier: float | None
    four_d: int  # a classic MLP's hidden size
    two_thirds: int  # int(2/3 * 4d): three matrices instead of two, same parameters
    scaled: int  # after the optional multiplier (Llama 2 70B, Llama 3)
    hidden: int  # rounded up to a multiple of multiple_of
    stored: int | None = None  # hidden size in the model's config, when there is one

    @property
    def relu_params(self) -> int:
        return 2 * self.dim * self.four_d  # W1 (4d x d) and W2 (d x 4d)

    @property
    def swiglu_params(self) -> int:
        return 3 * self.dim * self.hidden  # gate_proj, up_proj (H x d) and down_proj (d x H)


def hidden_steps(name: str, dim: int, multiple_of: int, ffn_dim_multiplier: float | None = None,
                 stored: int | None = None) -> HiddenSteps:
    """The recipe of `llama_hidden_dim`, keeping every intermediate value for the table.

        >>> s = hidden_steps("Llama 2 7B", 4096, 256)
        >>> s.hidden, s.relu_params, s.swiglu_params
        (11008, 134217728, 135266304)
    """
    if int(dim) != dim or dim <= 0 or int(multiple_of) != multiple_of or multiple_of <= 0:
        raise LessonError("The width d and multiple_of must be positive whole numbers.")
    dim, multiple_of = int(dim), int(multiple_of)
    four_d = 4 * dim
    two_thirds = int(2 * four_d / 3)
    scaled = int(ffn_dim_multiplier * two_thirds) if ffn_dim_multiplier is not None else two_thirds
    hidden = multiple_of * ((scaled + multiple_of - 1) // multiple_of)
    assert hidden == llama_hidden_dim(dim, multiple_of, ffn_dim_multiplier)  # same recipe as the model code
    return HiddenSteps(name, dim, multiple_of, ffn_dim_multiplier, four_d, two_thirds, scaled, hidden, stored)


def preset_steps(preset: str, name: str | None = None) -> HiddenSteps:
    cfg = LlamaConfig.from_name(preset)
    return hidden_steps(name or preset, cfg.dim, cfg.multiple_of, cfg.ffn_dim_multiplier, cfg.hidden_dim)


def stored_multiple_of(cm: CourseModel) -> int | None:
    """`multiple_of` as the model directory's config.json stores it (this project saves it under "inside_llama"),
    or None: a Hugging Face checkpoint stores intermediate_size only, and LlamaConfig then holds its default."""
    try:
        d = json.loads((Path(cm.path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    m = (d.get("inside_llama") or {}).get("multiple_of")
    return m if isinstance(m, int) and not isinstance(m, bool) and m > 0 else None


def powers_that_fit(cfg: LlamaConfig, top: int = 12) -> list[int]:
    """Every power of two 1, 2, 4, ..., 2**top whose rounding gives the config's hidden size, smallest first.

        >>> powers_that_fit(LlamaConfig.from_name("llama2-7b"))   # 10922 rounded up: 11008 = 86 * 128 = 43 * 256
        [128, 256]
    """
    return [2 ** k for k in range(top + 1)
            if llama_hidden_dim(cfg.dim, 2 ** k, cfg.ffn_dim_multiplier) == cfg.hidden_dim]


def _powers(fits: list[int]) -> str:
    return (f"multiple_of = {fits[0]} is the only power of two that gives" if len(fits) == 1 else
            f"every power of two from {fits[0]} to {fits[-1]} as multiple_of gives")


def rounding_readout(s: HiddenSteps) -> str:
    """What the rounding step did to one column, and the SwiGLU / ReLU weight ratio it leaves (3H / 8d)."""
    added = s.hidden - s.scaled
    ratio = s.swiglu_params / s.relu_params
    if added == 0:
        what = (f"⌊2/3 · 4d⌋ = {s.two_thirds:,}" if s.ffn_dim_multiplier is None
                else f"× {s.ffn_dim_multiplier:g} gives {s.scaled:,}, which")
        return (f"For {s.name}, {what} is already a multiple of {s.multiple_of:,}: rounding adds nothing, and "
                f"SwiGLU / ReLU = 3 · {s.hidden:,} / (8 · {s.dim:,}) = **{ratio:.3f}**.")
    return (f"For {s.name}, rounding {s.scaled:,} up to a multiple of {s.multiple_of:,} adds {added:,} hidden units "
            f"({added / s.scaled:.1%}), and SwiGLU / ReLU = 3 · {s.hidden:,} / (8 · {s.dim:,}) = **{ratio:.3f}**.")


def course_steps(cm: CourseModel) -> tuple[HiddenSteps, str]:
    """The loaded model's steps, and a note (computed, not asserted) saying where its multiple_of comes from:
    the config when it stores one, else the smallest power of two that reproduces the stored hidden size."""
    cfg = cm.config
    stored, fits = stored_multiple_of(cm), powers_that_fit(cfg)
    H = cfg.hidden_dim
    if stored is not None:
        s = hidden_steps("this model", cfg.dim, stored, cfg.ffn_dim_multiplier, H)
        note = (f"The model's config stores multiple_of = {stored}; the recipe with it gives {s.hidden:,}, "
                + ("equal to the stored hidden size ✓." if s.hidden == H else f"not the stored hidden size {H:,} ✗."))
        if fits:
            note += f" In fact {_powers(fits)} {H:,}."
    elif fits:
        s = hidden_steps("this model", cfg.dim, fits[0], cfg.ffn_dim_multiplier, H)
        note = (f"The checkpoint stores the hidden size ({H:,}) but not multiple_of; the table uses {fits[0]}, the "
                f"smallest power of two that reproduces it ({_powers(fits)} {H:,}).")
    else:
        s = hidden_steps("this model", cfg.dim, cfg.multiple_of, cfg.ffn_dim_multiplier, H)
        note = (f"The model's hidden size {H:,} does not follow the recipe for any power-of-two multiple_of from 1 "
                f"to 4096; the table shows the recipe with multiple_of = {cfg.multiple_of} beside the stored value.")
    return s, note + " " + rounding_readout(s)


def hidden_table(columns: list[HiddenSteps]) -> str:
    """Steps as rows, models as columns (Markdown)."""
    def row(label, fn):
        return f"| {label} | " + " | ".join(fn(s) for s in columns) + " |"

    lines = ["| step | " + " | ".join(s.name for s in columns) + " |", "|---|" + "---|" * len(columns),
             row("width d", lambda s: f"{s.dim:,}"),
             row("1. classic MLP: 4d", lambda s: f"{s.four_d:,}"),
             row("2. keep 2/3: ⌊2/3 · 4d⌋", lambda s: f"{s.two_thirds:,}"),
             row("3. × ffn_dim_multiplier", lambda s: "—" if s.ffn_dim_multiplier is None
                 else f"× {s.ffn_dim_multiplier:g} = {s.scaled:,}"),
             row("4. round up to a multiple of", lambda s: f"{s.multiple_of:,} → **{s.hidden:,}**"),
             row("hidden size in the config", lambda s: "—" if s.stored is None else
                 f"{s.stored:,} {'✓' if s.stored == s.hidden else '✗'}"),
             row("ReLU MLP weights: 2 · d · 4d", lambda s: f"{s.relu_params:,}"),
             row("SwiGLU weights: 3 · d · H", lambda s: f"{s.swiglu_params:,}"),
             row("SwiGLU / ReLU", lambda s: f"{s.swiglu_params / s.relu_params:.3f}")]
    return "\n".join(lines)


def hidden_overview(cm: CourseModel, dim=None, multiple_of=None) -> tuple[str, str, str, int | None, int | None]:
    """(table, note, notice, d, multiple_of): the loaded model and real Llamas, plus the learner's own column
    when either number is given (d and multiple_of are then the values used, else None). Bad values (0, -1,
    4.5, NaN, 1e20, text) are clamped or rounded, and the notice says so."""
    course, note = course_steps(cm)
    cols = [course] + [preset_steps(p, n) for n, p in PRESETS_SHOWN]
    notice, d, m = "", None, None
    if dim not in (None, "") or multiple_of not in (None, ""):
        d, n1 = inputs.whole(dim, "Your width d", 1, MAX_WIDTH, default=cm.config.dim)
        m, n2 = inputs.whole(multiple_of, "Your multiple_of", 1, MAX_WIDTH, default=1)
        notice = inputs.join(n1, n2)
        mine = hidden_steps("your choice", d, m)
        cols.append(mine)
        note += " " + rounding_readout(mine)
    return hidden_table(cols), note, notice, d, m


# ----------------------------------------------------------------------------- 3. the course model's gates


@dataclass
class Gates:
    """silu(gate_proj x) of every layer for the learner's text: one (T, H) array per layer, BOS first."""

    ids: tuple[int, ...]
    labels: list[str]
    notice: str
    layers: list[np.ndarray]

    @property
    def text(self) -> list[np.ndarray]:
        """Per layer, the rows of the learner's tokens (BOS left out: it is the same for every text)."""
        return [g[1:] if g.shape[0] > 1 else g for g in self.layers]


_PREPARED, _TRACED = LRU(64), LRU(32)


def trace_gates(cm: CourseModel, ids: tuple[int, ...]) -> list[np.ndarray]:
    return [lt.gate[0].float().cpu().numpy() for lt in trace(cm.model, ids).layers]  # (1, T, H) -> (T, H) per layer


def max_tokens(cm: CourseModel) -> int:
    """Tokens (BOS included) the gates are computed on: MAX_TOKENS, or the model's context if shorter."""
    return min(MAX_TOKENS, cm.config.max_seq_len)


def load_gates(cm: CourseModel, text: str, max_tokens: int = MAX_TOKENS) -> Gates:
    """Tokenize (BOS first) and trace, cached per text and per ids. Empty text raises LessonError; lone
    surrogates and over-long text are repaired with a notice (`Gates.notice`)."""
    p = _PREPARED.get_or_compute((cm.model, text, max_tokens), lambda: prepare_text(cm, text, max_tokens))
    ids = tuple(p.ids)
    return Gates(ids, p.labels, p.notice, _TRACED.get_or_compute((cm.model, ids), lambda: trace_gates(cm, ids)))


def clamp_threshold(threshold) -> tuple[float, str]:
    """(threshold in [THRESHOLD_MIN, THRESHOLD_MAX], notice); NaN or text becomes 0.05."""
    return inputs.number(threshold, "Near zero threshold", THRESHOLD_MIN, THRESHOLD_MAX, default=0.05)


def check_threshold(threshold) -> float:
    """The threshold as the counts need it; LessonError outside the range (pages clamp first)."""
    t, notice = clamp_threshold(threshold)
    if notice:
        raise LessonError(notice)
    return t


def near_zero_fractions(g: Gates, threshold: float) -> np.ndarray:
    """Per layer, the fraction of gate values (text tokens × hidden units) with |value| < threshold: (L,).

        >>> g = Gates((0, 5, 6), ["<s>", "a", "b"], "", [np.array([[9.0, 9.0], [0.01, 1.0], [-0.2, 0.03]])])
        >>> near_zero_fractions(g, 0.05)       # BOS row left out; 0.01 and 0.03 of 4 values
        array([0.5])
    """
    t = check_threshold(threshold)
    return np.array([float((np.abs(a) < t).mean()) for a in g.text])


def silent_units(g: Gates, threshold: float) -> np.ndarray:
    """Per layer, how many hidden units stay near zero (|value| < threshold) on every token of the text: (L,)."""
    t = check_threshold(threshold)
    return np.array([int((np.abs(a) < t).all(axis=0).sum()) for a in g.text])


def negative_fractions(g: Gates) -> np.ndarray:
    """Per layer, the fraction of gate values below zero (SiLU's dip, never below -0.279): (L,)."""
    return np.array([float((a < 0).mean()) for a in g.text])


def gates_figure(g: Gates, threshold: float) -> go.Figure:
    """Left: the distribution of gate values per layer (log y), the near-zero band shaded.
    Right: the fraction near zero per layer."""
    t = check_threshold(threshold)
    allv = np.concatenate([a.ravel() for a in g.text])
    hi = float(np.quantile(allv, 0.999))
    edges = np.linspace(min(-0.3, float(allv.min())), max(hi, 0.5), 121)
    mids = (edges[:-1] + edges[1:]) / 2
    colours = [BLUE, ORANGE, GREEN, PINK, SKY, RED, GREY, "#000000"]
    frac = near_zero_fractions(g, t)
    layout = panels([f"gate values silu(gate_proj x), {g.text[0].shape[0]} tokens × {g.text[0].shape[1]} units",
                     f"share with |value| < {t:g}"], stacked=False, gap=0.1, sizes=[0.62, 0.38])
    data = []
    for l, a in enumerate(g.text):
        counts, _ = np.histogram(np.clip(a.ravel(), edges[0], edges[-1]), bins=edges)
        data.append(go.Scatter(x=mids, y=counts / a.size, name=f"layer {l}", line=dict(color=colours[l % 8],
                                                                                           shape="hvh"),
                               **panel_axes(1)))
    data.append(go.Bar(x=[f"layer {l}" for l in range(len(frac))], y=frac, marker_color=colours[:len(frac)],
                       text=[f"{f:.1%}" for f in frac], textposition="outside", showlegend=False, **panel_axes(2)))
    layout["xaxis"]["title"] = dict(text="gate value (edge bin includes the top 0.1%)")
    layout["yaxis"].update(type="log", title=dict(text="fraction of values"))
    layout["xaxis2"]["title"] = dict(text="layer")
    layout["yaxis2"].update(range=[0, 1.1], tickformat=".0%", title=dict(text="near zero"))
    return figure(data, layout, height=400, margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.22),
                  shapes=[dict(type="rect", xref="x", yref="y domain", x0=-t, x1=t, y0=0, y1=1,
                               fillcolor=GREY, opacity=0.25, line=dict(width=0))])


def describe_gates(g: Gates, threshold: float) -> str:
    t = check_threshold(threshold)
    frac, silent, neg = near_zero_fractions(g, t), silent_units(g, t), negative_fractions(g)
    H = g.text[0].shape[1]
    rows = [f"| layer | near zero (\\|gate\\| < {t:g}) | units near zero on every token (of {H}) | negative |",
            "|---|---|---|---|"]
    rows += [f"| {l} | {f:.1%} | {s} | {n:.1%} |" for l, (f, s, n) in enumerate(zip(frac, silent, neg))]
    return "\n".join(rows)


# ----------------------------------------------------------------------------- what the page shows


def curves_view(beta) -> tuple[go.Figure, go.Figure, str, float]:
    """(curves figure, surface figure, readout, beta used) for a raw beta; a clamped beta is said in the readout."""
    beta, notice = clamp_beta(beta)
    c = activation_curves(beta)
    return curves_figure(c), surface_figure(beta), inputs.join(_warn(notice), describe_curves(c)), beta


def gates_view(cm: CourseModel, text, threshold) -> tuple[str, go.Figure, str, float]:
    """(notice, figure, readout, threshold used) for the learner's text at one raw threshold."""
    t, notice = clamp_threshold(threshold)
    g = load_gates(cm, text)
    return _warn(inputs.join(g.notice, notice)).strip(), gates_figure(g, t), describe_gates(g, t), t


def _warn(notice: str) -> str:
    return f"⚠️ {notice}\n\n" if notice else ""


# ----------------------------------------------------------------------------- predict, then reveal


def layer_choices(cm: CourseModel) -> list[str]:
    return [f"layer {l}" for l in range(cm.config.n_layers)]


SILU_FLOOR = -0.2785  # min over z of z·sigmoid(z), at z ≈ -1.278

FLOOR_CHOICES = ("below −0.28", "between −0.28 and 0", "exactly 0: no gate is negative")
Q_FLOOR = Question(
    "swiglu-floor", "on your text, where is the most negative gate value silu(gate_proj x), over every layer, token "
    "and unit?", FLOOR_CHOICES,
    misconception="that a gate is either like a weight (any negative value) or like ReLU (never negative): SiLU "
                  "lets negative inputs through but bounds them below by its minimum, about −0.28")


def floor_answer(lowest: float) -> str:
    return FLOOR_CHOICES[0 if lowest < SILU_FLOOR else 1 if lowest < 0 else 2]


def reveal_floor(g: Gates, guess: str | None) -> str:
    """Where the lowest gate value lies, measured on the learner's text, graded against SiLU's floor."""
    lows = [float(a.min()) for a in g.text]
    lowest = min(lows)
    per_layer = ", ".join(f"layer {l}: {x:.3f}" for l, x in enumerate(lows))
    return Q_FLOOR.reveal(guess, floor_answer(lowest), (
        f"The lowest gate value on your text is **{lowest:.4f}** ({per_layer}). SiLU's minimum is "
        f"{SILU_FLOOR:.4f} (at z ≈ −1.278): however negative $W_{{gate}} x$ gets, the gate stays above it, and very "
        "negative inputs give a gate near 0, an off switch."))


NEGATIVE_CHOICES = ["under 10%", "10% to 30%", "30% to 50%", "over 50%"]
Q_NEGATIVE = Question(
    "swiglu-negative", "what share of all gate values silu(gate_proj x) on your text is negative?",
    tuple(NEGATIVE_CHOICES),
    misconception="that SiLU, like ReLU, sets every negative input to zero: it keeps the sign, so every unit whose "
                  "gate input is negative gives a (small) negative gate")


def negative_bucket(share: float) -> str:
    return NEGATIVE_CHOICES[0 if share < 0.1 else 1 if share < 0.3 else 2 if share < 0.5 else 3]


def reveal_negative(g: Gates, guess: str | None) -> str:
    neg = negative_fractions(g)
    overall = float(np.mean(np.concatenate([(a < 0).ravel() for a in g.text])))
    answer = negative_bucket(overall)
    lowest = min(float(a.min()) for a in g.text)
    per_layer = ", ".join(f"layer {l}: {n:.1%}" for l, n in enumerate(neg))
    return Q_NEGATIVE.reveal(guess, answer, (
        f"**{overall:.1%}** of all gate values on your text are negative ({answer}; {per_layer}). The lowest is "
        f"{lowest:.3f}: SiLU never goes below −0.278, so a negative gate is a small negative weight on its unit, "
        "not an off switch. ReLU would have made all of these exactly 0."))


def reveal_floor_view(cm: CourseModel, text, guess) -> str:
    """The floor reveal for raw page inputs (text cleaned with a notice)."""
    g = load_gates(cm, text)
    return _warn(g.notice) + reveal_floor(g, guess)


def reveal_negative_view(cm: CourseModel, text, guess) -> str:
    g = load_gates(cm, text)
    return _warn(g.notice) + reveal_negative(g, guess)
