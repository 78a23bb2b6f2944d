"""Lesson 4 computations: RMSNorm against LayerNorm.

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b    two statistics per row, a gain and a bias
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * g                 one statistic per row, a gain only

Four views, each computed live:
1. Invariance: a real residual-stream vector x of the course model becomes a*x + b; LayerNorm's output
   ignores both a and b, RMSNorm's ignores only a (up to eps).
2. The course model's residual stream entering and leaving each of its RMSNorms (from `trace=True`),
   with the learned gains.
3. Cost: both norms of `llama/model.py` timed on the device the app runs on, and their operation counts.
4. Pre-norm against post-norm: per-layer gradient norms at initialisation of two small fresh models.

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
from lessons.plots import figure, panel_axes, panels
from llama.config import LlamaConfig
from llama.model import LayerNorm, Llama, RMSNorm

DEFAULT_TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"
MAX_TOKENS = 128  # BOS included
BLUE, ORANGE, GREEN, PINK, GREY, RED = "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#999999", "#D55E00"  # Okabe-Ito
SHIFT_LIMIT, SCALE_LIMIT = 100.0, 100.0  # what the invariance demo accepts (the sliders stay well inside)


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

    Empty text raises ValueError with a message for the page (from `prepare_text`).
    """
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

    @property
    def mean_square(self) -> float:
        return float(np.mean(self.x_mod.astype(np.float64) ** 2))

    @property
    def ln_change(self) -> float:
        return float(np.abs(self.ln - self.ln_ref).max())

    @property
    def rms_change(self) -> float:
        return float(np.abs(self.rms - self.rms_ref).max())


def check_shift_scale(shift: float, scale: float) -> tuple[float, float]:
    """Finite numbers, a positive scale (a = 0 erases x; a < 0 flips its sign, which no norm undoes)."""
    try:
        shift, scale = float(shift), float(scale)
    except (TypeError, ValueError):
        raise ValueError("The shift and the scale must be numbers.") from None
    if not (math.isfinite(shift) and math.isfinite(scale)):
        raise ValueError("The shift and the scale must be finite numbers.")
    if not 0 < scale <= SCALE_LIMIT:
        raise ValueError(f"The scale a must be positive and at most {SCALE_LIMIT:g} (a = 0 would erase the vector, "
                         "and a negative a flips its sign, which neither norm undoes).")
    if abs(shift) > SHIFT_LIMIT:
        raise ValueError(f"The shift b must be between -{SHIFT_LIMIT:g} and {SHIFT_LIMIT:g}.")
    return shift, scale


def invariance(cm: CourseModel, res: Residuals, token: int, shift: float, scale: float) -> Invariance:
    """Normalise x and a*x + b with both norms; x is token `token`'s residual stream (clamped to the text).

        >>> inv = invariance(cm, res, token=1, shift=0.0, scale=3.0)
        >>> inv.ln_change < 1e-3 and inv.rms_change < 1e-3     # both ignore a scale
        True
    """
    shift, scale = check_shift_scale(shift, scale)
    T = len(res.ids)
    notice = ""
    t = int(token)
    if not 0 <= t < T:
        t = min(max(t, 0), T - 1)
        notice = f"The text has {T} tokens (BOS included), so token {int(token)} does not exist; showing token {t}."
    site = res.sites[invariance_site(cm)]
    x = site.x_in[t]  # (C,)
    x_mod = scale * x + shift
    ln, rn = _unit_norms(x.shape[-1], cm.config.norm_eps)
    with torch.inference_mode():
        both = torch.stack([x, x_mod])  # (2, C): the original and the modified vector
        ln_out, rms_out = ln(both), rn(both)
    label = f"token {t} '{res.labels[t]}', residual stream entering {site.name}"
    return Invariance(label, shift, scale, x.numpy(), x_mod.numpy(), ln_out[0].numpy(), ln_out[1].numpy(),
                      rms_out[0].numpy(), rms_out[1].numpy(), cm.config.norm_eps, notice)


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


def site_stats(cm: CourseModel, res: Residuals, site_index: int) -> SiteStats:
    s = res.sites[check_site(res, site_index)]
    text = slice(1, None) if len(res.ids) > 1 else slice(None)
    g = s.gain
    return SiteStats(s.name, s.module, float(rms(s.x_in[text]).median()), float(rms(s.x_out[text]).median()),
                     float(g.mean()), float(g.min()), float(g.max()), int(g.abs().argmax()), reproduce_error(cm, s))


def check_site(res: Residuals, site_index) -> int:
    try:
        i = int(site_index)
    except (TypeError, ValueError):
        raise ValueError("The norm site must be a whole number.") from None
    if not 0 <= i < len(res.sites):
        raise ValueError(f"The model has {len(res.sites)} norms: choose a site from 0 to {len(res.sites) - 1}.")
    return i


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of values per bin; values beyond the range are counted in the edge bins."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return counts / max(1, values.size)


def site_figure(cm: CourseModel, res: Residuals, site_index: int) -> go.Figure:
    """Left: histogram of values entering and leaving one norm (text tokens). Right: its learned gain per channel."""
    s = res.sites[check_site(res, site_index)]
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
            f"{st.gain_max:.3g}; largest |g| on channel {st.top_channel}. The formula "
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

MAX_DEPTH, MAX_GAIN = 24, 4.0
# The two models are small (width 64) so that a click costs a fraction of a second on a shared CPU:
# the effect shown depends on depth and weight scale, not on width.
PLACEMENT_SIZES = dict(dim=64, n_heads=4, n_kv_heads=2, vocab_size=256)


@dataclass
class GradProfile:
    placement: str  # "pre" or "post"
    layer_grad: list[float]  # ||grad|| over all parameters of each block
    resid_grad: list[float]  # ||d loss / d x|| of the residual stream entering each block
    loss: float

    @property
    def spread(self) -> float:
        """Largest over smallest per-layer gradient norm: 1 means every layer gets the same push."""
        return max(self.layer_grad) / min(self.layer_grad)


def placement_config(placement: str, n_layers: int, seq_len: int = 32) -> LlamaConfig:
    """A small Llama with RMSNorm placed `placement` ("pre" or "post"), untied so both ends get the same init."""
    return LlamaConfig(**PLACEMENT_SIZES, n_layers=n_layers, max_seq_len=seq_len, tie_embeddings=False,
                       norm_placement=placement)


def course_init_gain(dim: int = PLACEMENT_SIZES["dim"]) -> float:
    """The course model starts from std 0.02; as gain / sqrt(fan_in) that is gain 0.02 * sqrt(d) (0.16 for d = 64)."""
    return 0.02 * math.sqrt(dim)


def check_depth_gain(n_layers, gain) -> tuple[int, float]:
    try:
        n, g = int(n_layers), float(gain)
    except (TypeError, ValueError):
        raise ValueError("The number of layers and the init gain must be numbers.") from None
    if not 1 <= n <= MAX_DEPTH:
        raise ValueError(f"Choose between 1 and {MAX_DEPTH} layers.")
    if not (math.isfinite(g) and 0 < g <= MAX_GAIN):
        raise ValueError(f"The init gain must be positive and at most {MAX_GAIN:g}.")
    return n, g


def grad_profile(placement: str, n_layers: int, gain: float = 1.0, seed: int = 0, batch: int = 4,
                 seq_len: int = 32) -> GradProfile:
    """A fresh small Llama (`placement_config`), every matrix drawn N(0, gain^2 / fan_in) and the embeddings
    N(0, 1); one backward pass of next-token loss on random tokens; the gradient norm each block receives.

    Same seed, same weights and batch for "pre" and "post": only where the norms sit differs.
    The shared course model is not touched; this model lives only inside the call.
    """
    n_layers, gain = check_depth_gain(n_layers, gain)
    cfg = placement_config(placement, n_layers, seq_len)
    gen = torch.Generator().manual_seed(seed)  # a private generator: the global RNG state is left alone
    with torch.enable_grad():  # the app turns gradients off by default
        model = Llama(cfg)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "embed" in name:
                    p.normal_(0.0, 1.0, generator=gen)
                elif p.dim() == 2:  # (out, in) Linear weights; norm gains stay at 1
                    p.normal_(0.0, gain / math.sqrt(p.shape[1]), generator=gen)
        idx = torch.randint(0, cfg.vocab_size, (batch, seq_len + 1), generator=gen)  # (B, T+1)
        out = model(idx[:, :-1], trace=True)
        tr = out.trace
        entering = [tr.embeddings] + [lt.out for lt in tr.layers[:-1]]  # block inputs, each (B, T, C)
        for x in entering:
            x.retain_grad()
        loss = F.cross_entropy(out.logits.reshape(-1, cfg.vocab_size), idx[:, 1:].reshape(-1))  # (B*T, V)
        loss.backward()
    layer_grad = [math.sqrt(sum(float(p.grad.pow(2).sum()) for p in block.parameters())) for block in model.layers]
    return GradProfile(placement, layer_grad, [float(x.grad.norm()) for x in entering], float(loss.detach()))


def compare_placements(n_layers: int, gain: float, on_step=None) -> tuple[GradProfile, GradProfile]:
    """Pre-norm and post-norm models with identical weights and batch.

        >>> pre, post = compare_placements(8, 2.0)
        >>> post.spread > pre.spread      # post-norm's gradients compound across layers
        True
    """
    if on_step:
        on_step(0.0, "pre-norm model: forward and backward")
    pre = grad_profile("pre", n_layers, gain)
    if on_step:
        on_step(0.5, "post-norm model: forward and backward")
    post = grad_profile("post", n_layers, gain)
    return pre, post


def placement_figure(pre: GradProfile, post: GradProfile, gain: float) -> go.Figure:
    layers = list(range(len(pre.layer_grad)))
    layout = panels(["gradient norm of each block's weights",
                     "gradient norm of the residual stream entering it"], stacked=False, gap=0.12)
    data = []
    for prof, colour, name in ((pre, GREEN, "pre-norm (Llama)"), (post, PINK, "post-norm (2017 Transformer)")):
        data.append(go.Scatter(x=layers, y=prof.layer_grad, name=name, mode="lines+markers", line=dict(color=colour),
                               legendgroup=name, **panel_axes(1)))
        data.append(go.Scatter(x=layers, y=prof.resid_grad, name=name, mode="lines+markers", showlegend=False,
                               line=dict(color=colour, dash="dash"), legendgroup=name, **panel_axes(2)))
    for i in ("", "2"):
        layout[f"yaxis{i}"].update(type="log", title=dict(text="‖gradient‖ (log scale)"))
        layout[f"xaxis{i}"].update(title=dict(text="layer (0 = next to the embeddings)"),
                                   dtick=1 if len(layers) <= 12 else 2)
    return figure(data, layout, height=380, margin=dict(l=60, r=20, t=80, b=50),
                  legend=dict(orientation="h", y=-0.25),
                  title=dict(text=f"{len(layers)} layers, init gain {gain:g}: largest / smallest block gradient "
                                  f"= {pre.spread:.3g}× pre-norm, {post.spread:.3g}× post-norm", font=dict(size=13)))


def describe_placements(pre: GradProfile, post: GradProfile) -> str:
    rows = ["| | pre-norm | post-norm |", "|---|---|---|",
            f"| loss at init (nats/token) | {pre.loss:.3f} | {post.loss:.3f} |",
            f"| gradient, first block | {pre.layer_grad[0]:.3g} | {post.layer_grad[0]:.3g} |",
            f"| gradient, last block | {pre.layer_grad[-1]:.3g} | {post.layer_grad[-1]:.3g} |",
            f"| largest / smallest | {pre.spread:.3g}× | {post.spread:.3g}× |"]
    return "\n".join(rows)


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


def reveal_largest_rms(res: Residuals, guess: str | None) -> str:
    ranked = stream_rms_by_depth(res)
    best = max(ranked, key=lambda r: r[1])[0]
    verdict = ("You predicted **" + guess + "**: " + ("right." if guess == best else "not this time.")
               if guess else "You did not pick an answer; here it is.")
    rows = ["| residual stream | mean per-token RMS |", "|---|---|"]
    rows += [f"| {'**' + n + '**' if n == best else n} | {v:.3g} |" for n, v in ranked]
    return (f"{verdict} On your text the largest RMS is **{best}**: every layer adds its attention and "
            f"feed-forward outputs to the stream and nothing ever divides the stream itself (only the copies the "
            f"norms hand to each sub-layer), so it tends to grow with depth.\n\n" + "\n".join(rows))


SHIFT_CHOICES = ["only LayerNorm's", "only RMSNorm's", "both", "neither"]


def reveal_shift(cm: CourseModel, res: Residuals, guess: str | None, shift: float = 1.0) -> str:
    """Add `shift` to every element of the last token's vector and say which output moved (beyond 1e-3)."""
    inv = invariance(cm, res, token=len(res.ids) - 1, shift=shift, scale=1.0)
    ln_moved, rms_moved = inv.ln_change > 1e-3, inv.rms_change > 1e-3
    answer = {(True, False): SHIFT_CHOICES[0], (False, True): SHIFT_CHOICES[1], (True, True): SHIFT_CHOICES[2],
              (False, False): SHIFT_CHOICES[3]}[(ln_moved, rms_moved)]
    verdict = ("You predicted **" + guess + "**: " + ("right." if guess == answer else "not this time.")
               if guess else "You did not pick an answer; here it is.")
    return (f"{verdict} Adding {shift:g} to every element of {inv.label} changes **{answer}** output: "
            f"LayerNorm's by at most {inv.ln_change:.2g}, RMSNorm's by at most {inv.rms_change:.2g}. "
            "LayerNorm subtracts the mean, which removes any constant; RMSNorm divides by the root mean square, "
            "which a constant changes.")
