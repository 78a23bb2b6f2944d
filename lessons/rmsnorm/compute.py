"""Lesson 4 computations: RMSNorm against LayerNorm.

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b    two statistics per row, a gain and a bias
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * g                 one statistic per row, a gain only

Four views, each computed live:
1. Invariance: a real residual-stream vector x of the course model becomes a*x + b; LayerNorm's output
   ignores both a and b, RMSNorm's ignores only a (up to eps).
2. The course model's residual stream entering and leaving each of its RMSNorms (from `trace=True`),
   with the learned gains.
3. Cost: both norms of `llama/model.py` timed on the device the app runs on, and their operation counts.
4. Pre-norm against post-norm: gradient norms at initialisation of small fresh models, initialised as Xiong et al.
   (2020) do (Xavier), per layer and against depth.

    >>> cm = load_course_model()
    >>> res = load_text(cm, "To be, or not to be")
    >>> inv = invariance(cm, res, token=3, shift=1.0, scale=2.0)
    >>> inv.ln_change < 1e-3 < inv.rms_change
    True

Notation: T tokens (BOS first), C = config.dim channels, S norm sites (2 per layer + the final norm).
Nothing here imports Gradio; `app/pages/rmsnorm.py` lays these out.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from lessons.course import LRU, CourseModel, prepare_text, trace
from lessons.grading import Question, grade
from lessons.inputs import join, number, whole
from lessons.plots import figure, panel_axes, panels
from llama.config import LlamaConfig
from llama.model import LayerNorm, Llama, RMSNorm

DEFAULT_TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"
MAX_TOKENS = 128  # BOS included
# Okabe-Ito, with a dark grey for reference lines (#999999 sits too near PINK for deuteranopes: tests/test_share.py)
BLUE, ORANGE, GREEN, PINK, GREY, RED = "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#555555", "#D55E00"
SHIFT_LIMIT, SCALE_MIN, SCALE_LIMIT = 100.0, 0.01, 100.0  # what the invariance demo accepts (sliders stay inside)


# ----------------------------------------------------------------------------- the traced residual stream


@dataclass
class NormSite:
    """One norm of the course model and what went through it for the learner's text."""

    name: str  # "layer 1 · FFN norm"
    short: str  # "L1 ffn", for axis labels
    module: str  # "layers.1.post_attention_layernorm", the name in the checkpoint
    layer: int  # the block it sits in (n_layers for the final norm)
    x_in: torch.Tensor  # (T, C) residual stream entering the norm
    x_out: torch.Tensor  # (T, C) the norm's output, as the model computed it
    gain: torch.Tensor  # (C,) learned gain g


@dataclass
class Residuals:
    """The learner's text (ids start with BOS) and every norm site of one traced forward pass."""

    ids: tuple[int, ...]
    labels: list[str]
    notice: str
    sites: list[NormSite]


_PREPARED, _TRACED = LRU(64), LRU(32)  # (model, text, max_tokens) -> Prepared; (model, ids) -> sites


def _row(t: torch.Tensor) -> torch.Tensor:
    return t[0].detach().float().cpu()  # (1, T, C) -> (T, C), kept on the CPU for numpy and plotting


def trace_sites(cm: CourseModel, ids: tuple[int, ...]) -> list[NormSite]:
    """One forward pass with trace=True; every norm's input, output and gain, in the order the model runs them."""
    cfg, model = cm.config, cm.model
    with torch.inference_mode():
        tr = trace(model, ids)
        sites = []
        for l, lt in enumerate(tr.layers):
            block = model.layers[l]
            sites.append(NormSite(f"layer {l} · attention norm", f"L{l} attn", f"layers.{l}.input_layernorm", l,
                                  _row(lt.attn_in), _row(lt.attn_norm_out), block.input_layernorm.weight.float().cpu()))
            sites.append(NormSite(f"layer {l} · FFN norm", f"L{l} ffn", f"layers.{l}.post_attention_layernorm", l,
                                  _row(lt.ffn_in), _row(lt.ffn_norm_out),
                                  block.post_attention_layernorm.weight.float().cpu()))
        if cfg.norm_placement == "pre":  # a post-norm model has no separate final norm
            sites.append(NormSite("final norm", "final", "norm", cfg.n_layers, _row(tr.final_norm_in),
                                  _row(tr.final_norm_out), model.norm.weight.float().cpu()))
    return sites


def load_text(cm: CourseModel, text: str, max_tokens: int = MAX_TOKENS) -> Residuals:
    """Tokenize (BOS first, at most max_tokens) and trace, cached per text and per ids.

    Empty text raises LessonError with a message for the page (from `prepare_text`).
    """
    text = "" if text is None else text
    p = _PREPARED.get_or_compute((cm.model, text, max_tokens), lambda: prepare_text(cm, text, max_tokens))
    ids = tuple(p.ids)
    sites = _TRACED.get_or_compute((cm.model, ids), lambda: trace_sites(cm, ids))
    return Residuals(ids, p.labels, p.notice, sites)


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last axis: (T, C) -> (T,). rms([3, 4]) = sqrt((9 + 16) / 2) = 3.54."""
    return x.pow(2).mean(-1).sqrt()


def rmsnorm_formula(x: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    """The lesson's formula written out: x / sqrt(mean(x^2) + eps) * g (the model's RMSNorm must agree)."""
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def layernorm_formula(x: torch.Tensor, g: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) * g + b, with the biased variance as in LayerNorm."""
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt((x - mu).pow(2).mean(-1, keepdim=True) + eps) * g + b


def reproduce_error(cm: CourseModel, site: NormSite) -> float:
    """max |formula(x_in) - traced output|: the written formula reproduces what the model computed."""
    module = cm.model.get_submodule(site.module)
    if isinstance(module, LayerNorm):
        y = layernorm_formula(site.x_in, site.gain, module.bias.float().cpu(), module.eps)
    else:
        y = rmsnorm_formula(site.x_in, site.gain, module.eps)
    return float((y - site.x_out).abs().max())


# ----------------------------------------------------------------------------- 1. invariance


@functools.lru_cache(maxsize=8)
def _unit_norms(dim: int, eps: float) -> tuple[LayerNorm, RMSNorm]:
    """The model's own norm classes with g = 1 and b = 0, so the pictures show pure normalisation."""
    return LayerNorm(dim, eps).requires_grad_(False), RMSNorm(dim, eps).requires_grad_(False)


def invariance_site(cm: CourseModel) -> int:
    """The vector comes from the residual stream entering the middle layer's attention norm."""
    return 2 * (cm.config.n_layers // 2)


@dataclass
class Invariance:
    """x, a*x + b, and both norms (unit gain) of each. Arrays are (C,)."""

    label: str
    shift: float
    scale: float
    x: np.ndarray
    x_mod: np.ndarray
    ln_ref: np.ndarray  # LayerNorm(x)
    ln: np.ndarray  # LayerNorm(a*x + b)
    rms_ref: np.ndarray
    rms: np.ndarray
    eps: float = 1e-5
    notice: str = ""
    token: int = 0  # the token position used (after clamping)

    @property
    def mean_square(self) -> float:
        return float(np.mean(self.x_mod.astype(np.float64) ** 2))

    @property
    def ln_change(self) -> float:
        return float(np.abs(self.ln - self.ln_ref).max())

    @property
    def rms_change(self) -> float:
        return float(np.abs(self.rms - self.rms_ref).max())


def check_shift_scale(shift, scale) -> tuple[float, float, str]:
    """(shift, scale, notice): numbers clamped into range (lessons.inputs.number). The scale stays positive:
    a = 0 erases x, and a < 0 flips its sign, which neither norm undoes."""
    shift, b_note = number(shift, "Shift b", -SHIFT_LIMIT, SHIFT_LIMIT, default=0.0)
    scale, a_note = number(scale, "Scale a", SCALE_MIN, SCALE_LIMIT, default=1.0)
    if a_note and scale == SCALE_MIN:
        a_note += " (a must be positive: a = 0 erases the vector, a negative a flips its sign.)"
    return shift, scale, join(b_note, a_note)


def invariance(cm: CourseModel, res: Residuals, token: int, shift: float, scale: float) -> Invariance:
    """Normalise x and a*x + b with both norms; x is token `token`'s residual stream (clamped to the text).

        >>> inv = invariance(cm, res, token=1, shift=0.0, scale=3.0)
        >>> inv.ln_change < 1e-3 and inv.rms_change < 1e-3     # both ignore a scale
        True
    """
    shift, scale, notice = check_shift_scale(shift, scale)
    T = len(res.ids)
    t, t_note = whole(token, "Token position", 0, T - 1, default=min(3, T - 1))
    if t_note:
        t_note += f" (the text has {T} tokens with BOS, so token positions run from 0 to {T - 1})"
    notice = join(t_note, notice)
    site = res.sites[invariance_site(cm)]
    x = site.x_in[t]  # (C,)
    x_mod = scale * x + shift
    ln, rn = _unit_norms(x.shape[-1], cm.config.norm_eps)
    with torch.inference_mode():
        both = torch.stack([x, x_mod])  # (2, C): the original and the modified vector
        ln_out, rms_out = ln(both), rn(both)
    label = f"token {t} '{res.labels[t]}', residual stream entering {site.name}"
    return Invariance(label, shift, scale, x.numpy(), x_mod.numpy(), ln_out[0].numpy(), ln_out[1].numpy(),
                      rms_out[0].numpy(), rms_out[1].numpy(), cm.config.norm_eps, notice, t)


def invariance_figure(inv: Invariance) -> go.Figure:
    """Three stacked panels over the C channels: the input, LayerNorm's output, RMSNorm's output."""
    ch = np.arange(len(inv.x))
    layout = panels([f"input: a·x + b with a = {inv.scale:g}, b = {inv.shift:g}",
                     f"LayerNorm(a·x + b): max |change| = {inv.ln_change:.2g}",
                     f"RMSNorm(a·x + b): max |change| = {inv.rms_change:.2g}"], gap=0.09)
    ref = dict(color=GREY, dash="dot")
    data = [
        go.Scatter(x=ch, y=inv.x, name="x itself (a = 1, b = 0), normalised below", line=ref, **panel_axes(1)),
        go.Scatter(x=ch, y=inv.x_mod, name="a·x + b", line=dict(color=BLUE), **panel_axes(1)),
        go.Scatter(x=ch, y=inv.ln_ref, name="LayerNorm(x)", line=ref, showlegend=False, **panel_axes(2)),
        go.Scatter(x=ch, y=inv.ln, name="LayerNorm(a·x + b)", line=dict(color=ORANGE), **panel_axes(2)),
        go.Scatter(x=ch, y=inv.rms_ref, name="RMSNorm(x)", line=ref, showlegend=False, **panel_axes(3)),
        go.Scatter(x=ch, y=inv.rms, name="RMSNorm(a·x + b)", line=dict(color=GREEN), **panel_axes(3)),
    ]
    layout["xaxis3"]["title"] = dict(text="channel (0 … C−1)")
    for ax, title in (("yaxis", "value"), ("yaxis2", "output"), ("yaxis3", "output")):
        layout[ax]["title"] = dict(text=title)
    return figure(data, layout, height=560, margin=dict(l=60, r=20, t=70, b=50),
                  legend=dict(orientation="h", y=-0.12), title=dict(text=inv.label, font=dict(size=13)))


def describe_invariance(inv: Invariance) -> str:
    """The readout under the figure: both maximum differences, and why neither is exactly zero."""
    lines = [f"**{inv.label}**, a = {inv.scale:g}, b = {inv.shift:g}",
             "",
             "| | max \\|norm(a·x + b) − norm(x)\\| |",
             "|---|---|",
             f"| LayerNorm | {inv.ln_change:.3g} |",
             f"| RMSNorm | {inv.rms_change:.3g} |",
             "",
             f"What is left comes from ε = {inv.eps:g}, added to the statistic inside the square root: it does "
             f"not scale with a (here mean(x²) of a·x + b is {inv.mean_square:.3g}), and from float rounding."]
    if inv.notice:
        lines.insert(0, f"⚠️ {inv.notice}\n")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- 2. the course model's norms


def residual_rms(res: Residuals) -> tuple[np.ndarray, np.ndarray]:
    """Per-token RMS entering and leaving every norm site: two (S, T) arrays (output after the gain)."""
    rin = torch.stack([rms(s.x_in) for s in res.sites])  # (S, T)
    rout = torch.stack([rms(s.x_out) for s in res.sites])  # (S, T)
    return rin.numpy(), rout.numpy()


def residual_overview_figure(res: Residuals) -> go.Figure:
    """Per-token RMS at each norm, before and after it, as boxes (quartiles, whiskers from min to max, computed
    here so the browser gets 5 numbers per box, not every token); BOS is drawn apart (it behaves differently)."""
    rin, rout = residual_rms(res)
    text = rin[:, 1:] if rin.shape[1] > 1 else rin  # (S, T-1) the learner's tokens; position 0 is BOS
    shorts = [s.short for s in res.sites]
    data = []
    for arr, name, colour in ((rin, "entering the norm", BLUE), (rout, "leaving it (after the gain g)", ORANGE)):
        a = arr[:, 1:] if arr.shape[1] > 1 else arr
        q1, med, q3 = np.quantile(a, [0.25, 0.5, 0.75], axis=1)  # (S,) each
        data.append(go.Box(x=shorts, q1=q1, median=med, q3=q3, lowerfence=a.min(1), upperfence=a.max(1),
                           name=name, marker_color=colour, offsetgroup=name))
    data.append(go.Scatter(x=shorts, y=rin[:, 0], mode="markers", name="BOS token, entering",
                           marker=dict(symbol="x", size=9, color=RED)))
    lo, hi = float(min(rin.min(), rout.min())), float(max(rin.max(), rout.max()))
    span = [math.log10(max(lo, 1e-12)) - 0.15, math.log10(max(hi, 1e-12)) + 0.15]  # log axis: range in decades
    return figure(data, None, boxmode="group", height=400, margin=dict(l=60, r=20, t=50, b=50),
                  title=dict(text=f"per-token RMS at each of the model's {len(res.sites)} RMSNorms "
                                  f"({text.shape[1]} text tokens)", font=dict(size=13)),
                  legend=dict(orientation="h", y=-0.2),
                  yaxis=dict(type="log", range=span, title=dict(text="RMS of a token's vector (log scale)")),
                  xaxis=dict(title=dict(text="norm site, in the order the model runs them")))


@dataclass
class SiteStats:
    name: str
    module: str
    rms_in: float  # median per-token RMS over text tokens, entering
    rms_out: float  # ... leaving (after the gain)
    gain_mean: float
    gain_min: float
    gain_max: float
    top_channel: int  # channel with the largest |g|
    error: float  # max |formula - traced|
    above_one: int = 0  # channels with g > 1
    channels: int = 0


def site_stats(cm: CourseModel, res: Residuals, site_index: int) -> SiteStats:
    s = res.sites[check_site(res, site_index)[0]]
    text = slice(1, None) if len(res.ids) > 1 else slice(None)
    g = s.gain
    return SiteStats(s.name, s.module, float(rms(s.x_in[text]).median()), float(rms(s.x_out[text]).median()),
                     float(g.mean()), float(g.min()), float(g.max()), int(g.abs().argmax()), reproduce_error(cm, s),
                     int((g > 1).sum()), int(g.numel()))


def check_site(res: Residuals, site_index) -> tuple[int, str]:
    """(site, notice): a whole number from 0 to the number of norm sites - 1 (lessons.inputs.whole)."""
    return whole(site_index, "Norm site", 0, len(res.sites) - 1, default=0)


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of values per bin; values beyond the range are counted in the edge bins."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return counts / max(1, values.size)


def site_figure(cm: CourseModel, res: Residuals, site_index: int) -> go.Figure:
    """Left: histogram of values entering and leaving one norm (text tokens). Right: its learned gain per channel."""
    s = res.sites[check_site(res, site_index)[0]]
    text = slice(1, None) if len(res.ids) > 1 else slice(None)
    vin, vout = s.x_in[text].numpy().ravel(), s.x_out[text].numpy().ravel()
    lo, hi = np.quantile(np.concatenate([vin, vout]), [0.002, 0.998])  # robust: a few huge values squash the rest
    edges = np.linspace(lo, hi, 81)
    mids = (edges[:-1] + edges[1:]) / 2
    layout = panels([f"values at {s.name}", f"learned gain g of {s.module}"], stacked=False, gap=0.1,
                    sizes=[0.55, 0.45])
    data = [go.Scatter(x=mids, y=_histogram(vin, edges), name="entering", line=dict(color=BLUE, shape="hvh"),
                       **panel_axes(1)),
            go.Scatter(x=mids, y=_histogram(vout, edges), name="leaving", line=dict(color=ORANGE, shape="hvh"),
                       **panel_axes(1)),
            go.Bar(x=np.arange(len(s.gain)), y=s.gain.numpy(), name="gain g", marker_color=GREEN, **panel_axes(2))]
    layout["xaxis"]["title"] = dict(text="value (edge bins include the 0.2% beyond)")
    layout["yaxis"].update(type="log", title=dict(text="fraction of values"))
    layout["xaxis2"]["title"] = dict(text="channel")
    layout["yaxis2"]["title"] = dict(text="g (1 at initialisation)")
    return figure(data, layout, height=380, margin=dict(l=60, r=20, t=50, b=50),
                  legend=dict(orientation="h", y=-0.25),
                  shapes=[dict(type="line", xref="x2 domain", x0=0, x1=1, yref="y2", y0=1, y1=1,
                               line=dict(color=GREY, dash="dot"))])


def describe_site(st: SiteStats) -> str:
    return (f"**{st.name}** (`{st.module}`): median per-token RMS **{st.rms_in:.3g}** entering, "
            f"**{st.rms_out:.3g}** leaving. Gain g: mean {st.gain_mean:.3g}, from {st.gain_min:.3g} to "
            f"{st.gain_max:.3g}; largest |g| on channel {st.top_channel}; {st.above_one} of {st.channels} channels "
            f"have g > 1 (amplified), the rest are damped. The formula "
            f"x / √(mean(x²) + ε) · g reproduces the model's output to {st.error:.1g}.")


# ----------------------------------------------------------------------------- 3. cost

# Per element of a row of length d, in the order a straightforward implementation computes them.
OPS = [
    ("mean μ = Σx / d", "1 add", "—"),
    ("centre: x − μ", "1 subtract", "—"),
    ("square", "1 multiply", "1 multiply"),
    ("sum the squares (variance or mean square)", "1 add", "1 add"),
    ("scale by 1/√(· + ε)", "1 multiply", "1 multiply"),
    ("gain g", "1 multiply", "1 multiply"),
    ("bias b", "1 add", "—"),
]


def op_counts() -> tuple[int, int]:
    """(LayerNorm, RMSNorm) arithmetic operations per element, counted from OPS: (7, 4)."""
    return sum(ln != "—" for _, ln, _ in OPS), sum(rn != "—" for _, _, rn in OPS)


def operation_table() -> str:
    ln_n, rn_n = op_counts()
    rows = ["| step (per element) | LayerNorm | RMSNorm |", "|---|---|---|"]
    rows += [f"| {step} | {ln} | {rn} |" for step, ln, rn in OPS]
    rows += [f"| **operations per element** | **{ln_n}** | **{rn_n}** |",
             "| reductions over the row | 2 (mean, then variance) | 1 (mean square) |",
             "| per row | 1 rsqrt | 1 rsqrt |",
             "| learned parameters | 2d (g, b) | d (g) |"]
    return "\n".join(rows)


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"


def timing_dims(cfg: LlamaConfig) -> list[int]:
    """Row widths to time: the course model's, then two real Llama widths (Llama 2 7B's is 4096)."""
    return sorted({cfg.dim, 1024, 4096})


@dataclass
class NormTiming:
    kind: str  # "RMSNorm" or "LayerNorm"
    rows: int
    dim: int
    times_ms: list[float]  # one per repeat: the mean of `inner` back-to-back calls

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times_ms)

    @property
    def std(self) -> float:
        return statistics.stdev(self.times_ms) if len(self.times_ms) > 1 else 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_norms(device: torch.device | str, dims: list[int], rows: int = 256, max_repeats: int = 12,
               min_repeats: int = 4, inner: int = 3, budget_s: float = 0.6, on_step=None) -> list[NormTiming]:
    """Time the model's RMSNorm and LayerNorm modules on (rows, d) inputs.

    Repeats alternate between the two so that a busy machine slows both alike; each size gets up to
    `budget_s` seconds (at least `min_repeats` repeats). on_step(fraction, text) reports progress.

        >>> [t.kind for t in time_norms("cpu", [64], max_repeats=2, min_repeats=2)]
        ['RMSNorm', 'LayerNorm']
    """
    device = torch.device(device)
    out = []
    with torch.inference_mode():
        for n, d in enumerate(dims):
            x = torch.randn(rows, d, device=device)  # (rows, d): `rows` tokens of a d-wide residual stream
            mods = {"RMSNorm": RMSNorm(d).to(device), "LayerNorm": LayerNorm(d).to(device)}
            times = {k: [] for k in mods}
            for m in mods.values():  # warm-up: first calls allocate memory and pick kernels
                m(x)
            start = time.perf_counter()
            for r in range(max_repeats):
                if r >= min_repeats and time.perf_counter() - start > budget_s:
                    break
                for kind, m in mods.items():
                    _sync(device)
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        m(x)
                    _sync(device)
                    times[kind].append((time.perf_counter() - t0) / inner * 1000)
                if on_step:
                    on_step((n + (r + 1) / max_repeats) / len(dims), f"timing {rows} × {d}")
            out += [NormTiming(k, rows, d, v) for k, v in times.items()]
    return out


def timing_figure(timings: list[NormTiming], device: str) -> go.Figure:
    """Grouped bars (mean time per call) with error bars (one standard deviation over repeats)."""
    data = []
    for kind, colour in (("LayerNorm", ORANGE), ("RMSNorm", GREEN)):
        ts = [t for t in timings if t.kind == kind]
        data.append(go.Bar(x=[f"{t.rows} × {t.dim}" for t in ts], y=[t.mean for t in ts], name=kind,
                           marker_color=colour, error_y=dict(type="data", array=[t.std for t in ts], visible=True)))
    return figure(data, None, barmode="group", height=360, margin=dict(l=60, r=20, t=50, b=50),
                  title=dict(text=f"one call of each norm on {device} (mean ± sd over repeats)", font=dict(size=13)),
                  yaxis=dict(type="log", title=dict(text="time per call (ms, log scale)")),
                  xaxis=dict(title=dict(text="input size (tokens × width d)")))


def timing_table(timings: list[NormTiming]) -> str:
    rows = ["| input (tokens × d) | LayerNorm (ms) | RMSNorm (ms) | LayerNorm / RMSNorm |", "|---|---|---|---|"]
    for d in sorted({t.dim for t in timings}):
        ln = next(t for t in timings if t.dim == d and t.kind == "LayerNorm")
        rn = next(t for t in timings if t.dim == d and t.kind == "RMSNorm")
        rows.append(f"| {ln.rows} × {d} | {ln.mean:.3f} ± {ln.std:.3f} | {rn.mean:.3f} ± {rn.std:.3f} | "
                    f"{ln.mean / rn.mean:.2f}× |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- 4. pre-norm against post-norm

MAX_DEPTH, MIN_GAIN, MAX_GAIN = 24, 0.05, 4.0
SWEEP_DEPTHS = (1, 2, 4, 8, 16)  # Xiong et al.'s Theorem 1 is about how the last layer's gradient scales with depth
# The models are small (width 64) so that a click costs a fraction of a second on a shared CPU. They are Llama
# blocks (RMSNorm, RoPE, SwiGLU, untied output layer); only where the norms sit differs between the two.
PLACEMENT_SIZES = dict(dim=64, n_heads=4, n_kv_heads=4, vocab_size=256)
_SWEEPS = LRU(16)  # gain -> (pre, post) last-layer gradients per depth
_PROFILES = LRU(64)  # (placement, layers, gain) -> GradProfile: a class moving one slider asks for the same ones


@dataclass
class GradProfile:
    placement: str  # "pre" or "post"
    layer_grad: list[float]  # ||d loss / d W2|| of each block's down_proj (W2 of the FFN, as Xiong et al. plot)
    block_grad: list[float]  # ||grad|| over all parameters of each block
    loss: float

    @property
    def top_over_bottom(self) -> float:
        """Last block's W2 gradient over the first's: above 1 when the gradients are largest near the output."""
        return self.layer_grad[-1] / self.layer_grad[0]


def placement_config(placement: str, n_layers: int, seq_len: int = 32) -> LlamaConfig:
    """A small Llama with RMSNorm placed `placement` ("pre" or "post"), untied so both ends get the same init."""
    return LlamaConfig(**PLACEMENT_SIZES, n_layers=n_layers, max_seq_len=seq_len, tie_embeddings=False,
                       norm_placement=placement)


def course_init_gain(dim: int = PLACEMENT_SIZES["dim"]) -> float:
    """The course model starts from std 0.02. A square Xavier matrix has std gain / sqrt(dim), so that is gain
    0.02 * sqrt(dim) (0.16 for dim 64)."""
    return 0.02 * math.sqrt(dim)


def check_depth_gain(n_layers, gain) -> tuple[int, float, str]:
    """(layers, gain, notice): whole layers in 1..MAX_DEPTH, gain in MIN_GAIN..MAX_GAIN (lessons.inputs)."""
    n, n_note = whole(n_layers, "Layers", 1, MAX_DEPTH, default=8)
    g, g_note = number(gain, "Init gain", MIN_GAIN, MAX_GAIN, default=1.0)
    return n, g, join(n_note, g_note)


def xavier_init_(model: Llama, gain: float, gen: torch.Generator) -> None:
    """Xiong et al.'s initialisation: every weight matrix Xavier-uniform, U(-a, a) with a = gain * sqrt(6 / (fan_in +
    fan_out)) (Glorot and Bengio, 2010; gain 1 is the paper's); token embeddings N(0, 1), the scale fairseq's
    Transformer gives them (N(0, 1/d) times sqrt(d)). Norm gains stay at 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed" in name:
                p.normal_(0.0, 1.0, generator=gen)
            elif p.dim() == 2:  # (out, in) Linear weights
                a = gain * math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p.uniform_(-a, a, generator=gen)


def grad_profile(placement: str, n_layers: int, gain: float = 1.0, seed: int = 0, batch: int = 4,
                 seq_len: int = 32) -> GradProfile:
    """A fresh small Llama (`placement_config`), initialised as Xiong et al. (`xavier_init_`); one backward pass of
    next-token loss on random tokens; the gradient norm of each block's W2 (down_proj) and of the whole block.

    Same seed, same weights and batch for "pre" and "post": only where the norms sit differs.
    The shared course model is not touched; this model lives only inside the call.
    """
    cfg = placement_config(placement, n_layers, seq_len)
    gen = torch.Generator().manual_seed(seed)  # a private generator: the global RNG state is left alone
    with torch.enable_grad():  # the app turns gradients off by default
        model = Llama(cfg)
        xavier_init_(model, gain, gen)
        idx = torch.randint(0, cfg.vocab_size, (batch, seq_len + 1), generator=gen)  # (B, T+1)
        logits = model(idx[:, :-1]).logits  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), idx[:, 1:].reshape(-1))
        loss.backward()
    w2 = [float(block.mlp.down_proj.weight.grad.norm()) for block in model.layers]
    blocks = [math.sqrt(sum(float(p.grad.pow(2).sum()) for p in block.parameters())) for block in model.layers]
    return GradProfile(placement, w2, blocks, float(loss.detach()))


@dataclass
class DepthSweep:
    """The last block's W2 gradient norm for models of each depth (Xiong et al., Theorem 1)."""

    depths: list[int]
    pre: list[float]
    post: list[float]


def depth_sweep(gain: float, on_step=None) -> DepthSweep:
    """Pre- and post-norm models of every depth in SWEEP_DEPTHS at one gain; cached per gain."""

    def run():
        pre, post = [], []
        for i, L in enumerate(SWEEP_DEPTHS):
            if on_step:
                on_step(0.5 + 0.5 * i / len(SWEEP_DEPTHS), f"depth sweep: {L} layers")
            pre.append(grad_profile("pre", L, gain).layer_grad[-1])
            post.append(grad_profile("post", L, gain).layer_grad[-1])
        return DepthSweep(list(SWEEP_DEPTHS), pre, post)

    return _SWEEPS.get_or_compute(float(gain), run)


@dataclass
class Placement:
    pre: GradProfile
    post: GradProfile
    sweep: DepthSweep
    n_layers: int
    gain: float
    notice: str = ""


def compare_placements(n_layers, gain, on_step=None) -> Placement:
    """Pre-norm and post-norm models with identical weights and batch, and the depth sweep; inputs clamped.

        >>> r = compare_placements(8, 1.0)
        >>> r.post.layer_grad[-1] > r.pre.layer_grad[-1]   # near the output, post-norm's gradient is larger
        True
    """
    n_layers, gain, notice = check_depth_gain(n_layers, gain)
    if on_step:
        on_step(0.0, "pre-norm model: forward and backward")
    pre = _PROFILES.get_or_compute(("pre", n_layers, gain), lambda: grad_profile("pre", n_layers, gain))
    if on_step:
        on_step(0.25, "post-norm model: forward and backward")
    post = _PROFILES.get_or_compute(("post", n_layers, gain), lambda: grad_profile("post", n_layers, gain))
    return Placement(pre, post, depth_sweep(gain, on_step), n_layers, gain, notice)


def placement_figure(r: Placement) -> go.Figure:
    """Left: W2 gradient per layer at the chosen depth. Right: the last layer's W2 gradient against depth."""
    layers = list(range(r.n_layers))
    layout = panels([f"‖∂loss/∂W2‖ of each layer ({r.n_layers} layers)",
                     "‖∂loss/∂W2‖ of the last layer, against depth"], stacked=False, gap=0.12)
    data = []
    for prof, sweep, colour, name in ((r.pre, r.sweep.pre, GREEN, "pre-norm (Llama)"),
                                      (r.post, r.sweep.post, PINK, "post-norm (2017 Transformer)")):
        data.append(go.Scatter(x=layers, y=prof.layer_grad, name=name, mode="lines+markers", line=dict(color=colour),
                               legendgroup=name, **panel_axes(1)))
        data.append(go.Scatter(x=r.sweep.depths, y=sweep, name=name, mode="lines+markers", showlegend=False,
                               line=dict(color=colour), legendgroup=name, **panel_axes(2)))
    ref = [r.sweep.pre[0] / math.sqrt(L) for L in r.sweep.depths]
    data.append(go.Scatter(x=r.sweep.depths, y=ref, name="1/√L from the 1-layer value", mode="lines",
                           line=dict(color=GREY, dash="dot"), **panel_axes(2)))
    layout["yaxis"].update(type="log", title=dict(text="‖gradient‖ (log scale)"))
    layout["xaxis"].update(title=dict(text="layer (0 = next to the embeddings)"), dtick=1 if len(layers) <= 12 else 2)
    layout["yaxis2"].update(type="log")
    layout["xaxis2"].update(type="log", title=dict(text="number of layers L (log scale)"),
                            tickvals=r.sweep.depths, ticktext=[str(d) for d in r.sweep.depths])
    return figure(data, layout, height=400, margin=dict(l=60, r=20, t=80, b=50),
                  legend=dict(orientation="h", y=-0.25),
                  title=dict(text=f"Xavier init, gain {r.gain:g}: last / first layer ‖∂loss/∂W2‖ = "
                                  f"{r.pre.top_over_bottom:.2f} pre-norm, {r.post.top_over_bottom:.2f} post-norm",
                             font=dict(size=13)))


def _ratio(x: float) -> str:
    """A ratio for a table: two decimals when small, whole and grouped when large (1,938,145, not 1938144.99)."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.2f}"


def describe_placements(r: Placement) -> str:
    pre, post, sw = r.pre, r.post, r.sweep
    rows = ["| | pre-norm | post-norm | post / pre |", "|---|---|---|---|",
            f"| loss at init (nats/token) | {pre.loss:.3f} | {post.loss:.3f} | |",
            f"| ‖∂loss/∂W2‖, first layer | {pre.layer_grad[0]:.3g} | {post.layer_grad[0]:.3g} | "
            f"{_ratio(post.layer_grad[0] / pre.layer_grad[0])} |",
            f"| ‖∂loss/∂W2‖, last layer | {pre.layer_grad[-1]:.3g} | {post.layer_grad[-1]:.3g} | "
            f"{_ratio(post.layer_grad[-1] / pre.layer_grad[-1])} |",
            f"| last layer, {sw.depths[0]} → {sw.depths[-1]} layers deep | ×{_ratio(sw.pre[-1] / sw.pre[0])} | "
            f"×{_ratio(sw.post[-1] / sw.post[0])} | |",
            f"| 1/√L from {sw.depths[0]} to {sw.depths[-1]} layers (the dotted line) | "
            f"×{math.sqrt(sw.depths[0] / sw.depths[-1]):.2f} | | |"]
    ratio = sw.pre[-1] / sw.pre[0] / math.sqrt(sw.depths[0] / sw.depths[-1])
    return "\n".join(rows) + (f"\n\nAt {sw.depths[-1]} layers the pre-norm gradient is {ratio:.2f} × what 1/√L alone "
                              "would leave of its 1-layer value.")


# ----------------------------------------------------------------------------- predict, then reveal


def rms_question_choices(cfg: LlamaConfig) -> list[str]:
    """'entering layer l' for each layer, then the stream after the last layer (the final norm's input)."""
    return [f"entering layer {l}" for l in range(cfg.n_layers)] + ["after the last layer"]


def stream_rms_by_depth(res: Residuals) -> list[tuple[str, float]]:
    """Mean per-token RMS (text tokens) of the residual stream entering each layer and after the last one."""
    text = slice(1, None) if len(res.ids) > 1 else slice(None)
    attn_norms = [s for s in res.sites if s.short.endswith("attn")]  # each layer's first norm: the layer's input
    out = [(f"entering layer {s.layer}", float(rms(s.x_in[text]).mean())) for s in attn_norms]
    final = [s for s in res.sites if s.module == "norm"]
    if final:
        out.append(("after the last layer", float(rms(final[0].x_in[text]).mean())))
    return out


def reveal_largest_rms(cm: CourseModel, res: Residuals, guess: str | None) -> str:
    """(No longer asked on the page: a guess with no principle behind it. Kept for API clients.)"""
    ranked = stream_rms_by_depth(res)
    best = max(ranked, key=lambda r: r[1])[0]
    rows = ["| residual stream | mean per-token RMS |", "|---|---|"]
    rows += [f"| {'**' + n + '**' if n == best else n} | {v:.3g} |" for n, v in ranked]
    g = grade(guess, best, rms_question_choices(cm.config))
    return (f"{g.verdict()} On your text the largest RMS is **{best}**. "
            "Every layer adds its attention and feed-forward outputs to the stream, and nothing divides the stream "
            "itself (only the copies the norms hand to each sub-layer), so it can grow with depth; the table and "
            "the overview figure below show where it actually does.\n\n" + "\n".join(rows))


LENGTH_CHOICES = ("1: a unit vector", "√d", "d")
Q_LENGTH = Question(
    "rmsnorm-length",
    "RMSNorm with gain 1 turns a token's vector of d numbers into a vector of what length?",
    LENGTH_CHOICES,
    misconception="that normalising makes a unit vector: RMSNorm makes the root mean square of the elements 1, "
                  "so the sum of their squares is d and the length √d")


def reveal_length(cm: CourseModel, res: Residuals, guess: str | None) -> str:
    """Grade Q_LENGTH on the real stream: the length of x / rms(x) (the unit-gain RMSNorm, eps included) of every
    text token entering every norm, against 1, √d and d."""
    d = cm.config.dim
    eps = cm.config.norm_eps
    _, unit_rms = _unit_norms(d, eps)
    lengths = torch.cat([unit_rms(s.x_in).norm(dim=-1) for s in res.sites])  # (sites * T,)
    mid = float(lengths.median())
    values = dict(zip(LENGTH_CHOICES, (1.0, math.sqrt(d), float(d))))
    answer = min(values, key=lambda c: abs(math.log(values[c] / mid)))
    body = (f"Every token of your text entering every one of the model's {len(res.sites)} norms, normalised with "
            f"gain 1: the lengths run from {float(lengths.min()):.3f} to {float(lengths.max()):.3f} (median "
            f"{mid:.3f}), and √d = √{d} = {math.sqrt(d):.3f}. Each element is divided by the root mean square, so "
            f"the mean of the squares becomes 1 and their sum d. The output sits on a sphere of radius √d; the gain "
            "g then stretches each axis. The overview below shows the same in RMS: about 1 × the gain leaving each "
            "norm.")
    return Q_LENGTH.reveal(guess, answer, body)


Q_SHIFT = Question(
    "rmsnorm-shift",
    "Add 1 to every element of your text's last token vector. Which norm's output changes?",
    None,  # SHIFT_CHOICES, set below
    misconception="that the two norms differ only in cost: LayerNorm subtracts the mean, which removes any constant "
                  "added to every element; RMSNorm does not")


SHIFT_CHOICES = ["only LayerNorm's", "only RMSNorm's", "both", "neither"]
Q_SHIFT = Question(Q_SHIFT.qid, Q_SHIFT.text, tuple(SHIFT_CHOICES), Q_SHIFT.misconception)


def reveal_shift(cm: CourseModel, res: Residuals, guess: str | None, shift: float = 1.0) -> str:
    """Add `shift` to every element of the last token's vector and say which output moved (beyond 1e-3)."""
    inv = invariance(cm, res, token=len(res.ids) - 1, shift=shift, scale=1.0)
    ln_moved, rms_moved = inv.ln_change > 1e-3, inv.rms_change > 1e-3
    answer = {(True, False): SHIFT_CHOICES[0], (False, True): SHIFT_CHOICES[1], (True, True): SHIFT_CHOICES[2],
              (False, False): SHIFT_CHOICES[3]}[(ln_moved, rms_moved)]
    return Q_SHIFT.reveal(guess, answer,
                          f"Adding {shift:g} to every element of {inv.label} changes **{answer}** output: LayerNorm's "
                          f"by at most {inv.ln_change:.2g}, RMSNorm's by at most {inv.rms_change:.2g}. LayerNorm "
                          "subtracts the mean, which removes any constant; RMSNorm divides by the root mean square, "
                          "which a constant changes. The figure below shows it: move the shift b.")


# ----------------------------------------------------------------------------- a toy example before the real model

TOY_DEFAULT = "1, 2, 6, -1"  # one short vector x, edited by the learner
TOY_MAX = 8  # elements
TOY_EPS = 1e-5  # the course model's norm_eps


@dataclass
class ToyNorm:
    """One short vector through both norms (gain 1, bias 0), every intermediate number kept. Arrays are (d,)."""

    x: np.ndarray
    mean: float  # LayerNorm's mu
    centred: np.ndarray  # x - mu
    var: float  # LayerNorm's sigma^2 (biased)
    ms: float  # RMSNorm's mean square
    layer: np.ndarray  # LayerNorm(x)
    rms: np.ndarray  # RMSNorm(x)
    notice: str


def toy_vector(text) -> tuple[np.ndarray, str]:
    """Numbers separated by commas or spaces -> (x, notice): at most TOY_MAX of them, each clamped to ±100; fewer
    than 2 numbers fall back to the default (a norm over one number is degenerate)."""

    raw = [p for p in str(text if text is not None else "").replace(",", " ").split() if p][: TOY_MAX + 1]
    notes = [f"Only the first {TOY_MAX} numbers are used."] if len(raw) > TOY_MAX else []
    vals = []
    for p in raw[:TOY_MAX]:
        v, n = number(p, f"x element {len(vals) + 1}", -100.0, 100.0, default=0.0)
        vals.append(v)
        notes.append(n)
    if len(vals) < 2:
        return toy_vector(TOY_DEFAULT)[0], "Type at least two numbers: showing the default vector."
    return np.array(vals, dtype=np.float64), " ".join(n for n in notes if n)


def toy_norms(text) -> ToyNorm:
    """x through the model's own formulas (layernorm_formula, rmsnorm_formula) with g = 1 and b = 0.

        >>> t = toy_norms("1, 2, 6, -1"); round(float(np.linalg.norm(t.rms)), 3), round(float(t.layer.mean()), 3)
        (2.0, 0.0)
    """
    x, notice = toy_vector(text)
    xt = torch.tensor(x)
    one, zero = torch.ones_like(xt), torch.zeros_like(xt)
    mean = float(x.mean())
    return ToyNorm(x, mean, x - mean, float(((x - mean) ** 2).mean()), float((x ** 2).mean()),
                   layernorm_formula(xt, one, zero, TOY_EPS).numpy(), rmsnorm_formula(xt, one, TOY_EPS).numpy(),
                   notice)


def toy_markdown(t: ToyNorm) -> str:
    """The two norms number by number, and the lengths that make the geometric picture."""
    d = len(t.x)

    def row(name, a):
        return f"| {name} | " + " | ".join(f"{v:.3f}" for v in a) + " |"

    head = ["| | " + " | ".join(f"x{i + 1}" for i in range(d)) + " |", "|---|" + "---|" * d]
    return "\n".join([
        *head, row("x", t.x),
        row(f"RMSNorm: x / √(mean x² + ε), mean x² = {t.ms:.3f}", t.rms),
        row(f"LayerNorm step 1: x − μ, μ = {t.mean:.3f}", t.centred),
        row(f"LayerNorm step 2: (x − μ) / √(σ² + ε), σ² = {t.var:.3f}", t.layer), "",
        f"**Lengths.** |x| = {np.linalg.norm(t.x):.3f}; |RMSNorm(x)| = **{np.linalg.norm(t.rms):.3f}** and "
        f"|LayerNorm(x)| = **{np.linalg.norm(t.layer):.3f}**, while √d = √{d} = {math.sqrt(d):.3f}. "
        f"Mean of LayerNorm(x): {t.layer.mean():+.3f}; of RMSNorm(x): {t.rms.mean():+.3f}."])


def toy_figure(t: ToyNorm) -> go.Figure:
    """The elements of x, RMSNorm(x) and LayerNorm(x) side by side, with ±1 (an element's RMS after either norm)."""
    d = len(t.x)
    names = [f"x{i + 1}" for i in range(d)]
    data = [go.Bar(x=names, y=t.x, name="x", marker_color="#999999"),
            go.Bar(x=names, y=t.rms, name="RMSNorm(x)", marker_color="#0072B2"),
            go.Bar(x=names, y=t.layer, name="LayerNorm(x)", marker_color="#E69F00")]
    return figure(data, height=340, barmode="group", margin=dict(l=50, r=20, t=80, b=40),
                        title=dict(text=f"x (d = {d}) through both norms, gain 1"),
                        xaxis=dict(title="element"), yaxis=dict(title="value", zeroline=True),
                        legend=dict(orientation="h", y=-0.2, x=0))
