"""Lesson: smaller models on more data. The LLaMA paper's central choice, computed from the published sizes
(llama.config.PRESETS, PRESET_FACTS, llama.count) and from the course's own two-size experiment (llama.scale,
shipped in assets/scale/scale.json).

    >>> rows = preset_rows()
    >>> round(rows[0].tokens_per_parameter)        # LLaMA 7B: 1.0T tokens over 6.7B parameters
    148

Formulas, each with its source:
  training compute   C = 6 N D FLOPs   (N parameters, D training tokens; Kaplan et al. 2020, section 2.1: a forward
                                        pass costs about 2N per token, the backward pass twice that)
  inference compute  2 N FLOPs per generated token (the forward pass alone; same source)
  compute-optimal    D ≈ 20 N          (Hoffmann et al. 2022, "Chinchilla": parameters and tokens should grow in
                                        equal proportion; their 70B Chinchilla saw 1.4T tokens, section 3, Table 3)
  so for a budget C: N_opt = sqrt(C / (6 · 20)), D_opt = 20 N_opt.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from llama.config import PRESET_FACTS, LlamaConfig
from llama.count import parameter_counts
from lessons.grading import Question
from lessons.inputs import LessonError, choice
from lessons.plots import figure

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "assets" / "scale" / "scale.json"
CHINCHILLA_TOKENS_PER_PARAMETER = 20


def tokens_of(text: str) -> float:
    """A token count as the sources write it, in tokens: "1.0T" -> 1e12, "15T+" -> 15e12, "~15T" -> 15e12,
    "up to 9T" -> 9e12 (the qualifier is kept by the caller)."""
    m = re.search(r"([\d.]+)\s*([TB])", text or "")
    if not m:
        raise ValueError(f"no token count in {text!r}")
    return float(m.group(1)) * (1e12 if m.group(2) == "T" else 1e9)


@dataclass(frozen=True)
class PresetRow:
    key: str  # llama.config preset name
    name: str  # as the papers write it
    parameters: int  # N, counted from the config (llama.count)
    tokens: float  # D, from the source
    tokens_said: str  # the source's own words ("15T+")
    source: str

    @property
    def tokens_per_parameter(self) -> float:
        return self.tokens / self.parameters

    @property
    def training_flops(self) -> float:
        return 6 * self.parameters * self.tokens

    @property
    def inference_flops_per_token(self) -> float:
        return 2 * self.parameters


def preset_rows() -> list[PresetRow]:
    """Every published Llama of the presets whose source gives its training tokens."""
    rows = []
    for key, facts in PRESET_FACTS.items():
        if not facts.train_tokens:
            continue
        n = parameter_counts(LlamaConfig.from_name(key)).total
        rows.append(PresetRow(key, facts.name, n, tokens_of(facts.train_tokens), facts.train_tokens, facts.source))
    return rows


def compute_optimal(budget_flops: float, ratio: float = CHINCHILLA_TOKENS_PER_PARAMETER) -> tuple[float, float]:
    """(N_opt, D_opt) for a training budget in FLOPs under D = ratio · N and C = 6 N D."""
    n = math.sqrt(budget_flops / (6 * ratio))
    return n, ratio * n


def _short(x: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"


def _flops(x: float) -> str:
    """FLOPs in scientific notation, as papers write them: 4.04e22."""
    return f"{x:.3g}".replace("e+", "e")


def tokens_per_parameter_figure() -> go.Figure:
    """Tokens seen per parameter for every published Llama, on a log scale, against Chinchilla's ~20."""
    rows = preset_rows()
    fig = figure([dict(type="bar", x=[r.name for r in rows], y=[r.tokens_per_parameter for r in rows],
                       text=[f"{r.tokens_per_parameter:,.0f}" for r in rows], textposition="outside",
                       marker=dict(color="#4338ca"), name="published Llamas",
                       customdata=[[_short(r.parameters), r.tokens_said] for r in rows],
                       hovertemplate="%{x}: %{customdata[0]} parameters, %{customdata[1]} tokens, %{y:,.0f} tokens "
                                     "per parameter<extra></extra>")],
                 None, height=420, title="Tokens per parameter (dashed: Chinchilla's ≈ 20)",
                 yaxis=dict(type="log", title="tokens per parameter (log)"), xaxis=dict(tickangle=-40),
                 shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=CHINCHILLA_TOKENS_PER_PARAMETER,
                              y1=CHINCHILLA_TOKENS_PER_PARAMETER, line=dict(color="#b45309", dash="dash", width=2))],
                 margin=dict(l=70, r=20, t=60, b=120), showlegend=False)
    return fig


def preset_choices() -> list[str]:
    return [r.name for r in preset_rows()]


@dataclass(frozen=True)
class SameBudget:
    row: PresetRow
    n_opt: float
    d_opt: float

    @property
    def serving_ratio(self) -> float:
        """Inference FLOPs per token of the compute-optimal model over the published one's."""
        return self.n_opt / self.row.parameters


def same_budget(name: str) -> tuple[SameBudget, str]:
    """The published model against the compute-optimal model of the same training compute. Unknown names give the
    first preset with a notice (lessons.inputs.choice)."""
    rows = preset_rows()
    picked, notice = choice(name, "model", [r.name for r in rows], rows[0].name)
    row = next(r for r in rows if r.name == picked)
    n, d = compute_optimal(row.training_flops)
    return SameBudget(row, n, d), notice


def same_budget_figure(s: SameBudget) -> go.Figure:
    """Parameters and training tokens of the published model and of the compute-optimal one at its compute."""
    names = [s.row.name, "compute-optimal, same compute"]
    fig = figure([
        dict(type="bar", name="parameters N", x=names, y=[s.row.parameters, s.n_opt], marker=dict(color="#4338ca"),
             text=[_short(s.row.parameters), _short(s.n_opt)], textposition="outside"),
        dict(type="bar", name="training tokens D", x=names, y=[s.row.tokens, s.d_opt], marker=dict(color="#0f766e"),
             text=[_short(s.row.tokens), _short(s.d_opt)], textposition="outside")],
        None, height=400, barmode="group", title=f"Same training compute: {_flops(s.row.training_flops)} FLOPs",
        yaxis=dict(type="log", title="count (log)"), legend=dict(orientation="h", y=-0.15),
        margin=dict(l=70, r=20, t=60, b=80))
    return fig


def same_budget_readout(s: SameBudget) -> str:
    r = s.row
    return (f"**{r.name}**: N = {_short(r.parameters)} parameters (counted from its config) trained on "
            f"{r.tokens_said} tokens ({r.source}): **{r.tokens_per_parameter:,.0f} tokens per parameter**, "
            f"C = 6ND = {_flops(r.training_flops)} FLOPs. Chinchilla's rule spends the same compute on "
            f"**{_short(s.n_opt)} parameters** and {_short(s.d_opt)} tokens. Serving costs 2N FLOPs per generated "
            f"token: {_flops(r.inference_flops_per_token)} for {r.name} against {_flops(2 * s.n_opt)} for the "
            f"compute-optimal model: the compute-optimal model would cost **{s.serving_ratio:.2g}×** as much to "
            "serve, on every token generated for as long as it is used.")


OPTIMAL_CHOICES = ("fewer parameters than LLaMA 7B", "about as many (7B)", "more parameters than LLaMA 7B")
OPTIMAL_QUESTION = Question(
    "scale.optimal",
    "LLaMA 7B trained on 1.0T tokens. With the same training compute, Chinchilla's rule would train a model with",
    OPTIMAL_CHOICES,
    misconception="that the LLaMA models were trained compute-optimally: they trained small models far past "
                  "Chinchilla's point, paying more training compute per unit of quality to be cheaper to serve.")


def optimal_answer(s: SameBudget) -> str:
    ratio = s.serving_ratio
    return OPTIMAL_CHOICES[0] if ratio < 0.8 else OPTIMAL_CHOICES[2] if ratio > 1.25 else OPTIMAL_CHOICES[1]


def reveal_optimal(picked) -> tuple[str, go.Figure]:
    s, _ = same_budget("LLaMA 7B")
    return OPTIMAL_QUESTION.reveal(picked, optimal_answer(s), same_budget_readout(s)), same_budget_figure(s)


# ----------------------------------------------------------------------------- the course's own experiment


def load_study(path: Path = STUDY) -> dict:
    """assets/scale/scale.json (python -m llama.scale). Raises LessonError when it is missing or malformed."""
    try:
        study = json.loads(Path(path).read_text(encoding="utf-8"))
        assert study["sizes"] and all(s["runs"] for s in study["sizes"])
        return study
    except (OSError, ValueError, KeyError, AssertionError, TypeError) as e:
        raise LessonError(f"The two-size experiment ({path.name}) is missing or unreadable ({type(e).__name__}): "
                          "run `python -m llama.scale` to make it.") from None


@dataclass(frozen=True)
class SizeResult:
    name: str
    parameters: int
    tokens: int
    mean: float  # final validation loss, nats per character, mean over seeds
    low: float
    high: float

    @property
    def spread(self) -> float:
        return self.high - self.low


def results(study: dict) -> list[SizeResult]:
    out = []
    for s in study["sizes"]:
        finals = [r["final_per_char"] for r in s["runs"]]
        out.append(SizeResult(s["name"], s["parameters"], s["tokens"], sum(finals) / len(finals), min(finals),
                              max(finals)))
    return out


def verdict(rs: list[SizeResult]) -> tuple[str | tuple[str, str], str]:
    """Which size ends lower, or a tie: a difference of the means smaller than twice the larger seed spread is
    within the seed noise (the same rule as the shipped ablation)."""
    a, b = rs
    diff = b.mean - a.mean
    noise = 2 * max(a.spread, b.spread)
    if abs(diff) <= noise:
        return (a.name, b.name), (f"a tie: the means differ by {abs(diff):.4f} nats per character, within twice "
                                  f"the seed spread ({noise:.4f})")
    best = a if diff > 0 else b
    return best.name, (f"the {best.name} model is lower by {abs(diff):.4f} nats per character, more than twice "
                       f"the seed spread ({noise:.4f})")


def curves_figure(study: dict, against: str = "tokens") -> go.Figure:
    """Validation loss (nats per token, on the validation windows) of every run against tokens seen or against
    training compute 6·N·tokens. Colour = model size, one line per seed."""
    colours = {"large": "#4338ca", "small": "#0f766e"}
    traces = []
    tps = study["tokens_per_step"]
    for s in study["sizes"]:
        for i, r in enumerate(s["runs"]):
            steps = [p[0] for p in r["val_loss"]]
            x = [st * tps for st in steps]
            if against == "compute":
                x = [6 * s["parameters"] * t for t in x]
            traces.append(dict(type="scatter", mode="lines+markers", x=x, y=[p[1] for p in r["val_loss"]],
                               name=f"{s['name']} ({_short(s['parameters'])} params)", legendgroup=s["name"],
                               showlegend=i == 0, line=dict(color=colours.get(s["name"], "#555"), width=2),
                               hovertemplate=f"{s['name']}, seed {r['seed']}: step %{{customdata}}, "
                                             f"loss %{{y:.3f}}<extra></extra>", customdata=steps))
    xtitle = "tokens seen" if against == "tokens" else "training compute, FLOPs (6·N·tokens)"
    return figure(traces, None, height=420, title=f"Validation loss against {'tokens' if against == 'tokens' else 'compute'}",
                  xaxis=dict(title=xtitle), yaxis=dict(title="validation loss (nats per token)"),
                  legend=dict(orientation="h", y=-0.2), margin=dict(l=70, r=20, t=60, b=90))


SIZE_CHOICES = ("the large model (fewer tokens)", "the small model (more tokens)", "a tie within the seed noise")
SIZE_QUESTION = Question(
    "scale.same_compute",
    "both models spent the same training compute on TinyShakespeare; the small one saw about 5× more tokens. "
    "Which ends with the lower validation loss?",
    SIZE_CHOICES,
    misconception="that at a fixed compute the bigger model always wins (or always loses): which size is best "
                  "depends on the budget, and a difference smaller than the seed noise decides nothing.")


def reveal_sizes(picked) -> str:
    study = load_study()
    rs = results(study)
    best, said = verdict(rs)
    by = {"large": SIZE_CHOICES[0], "small": SIZE_CHOICES[1]}
    answer = (SIZE_CHOICES[2], by[best[0]], by[best[1]]) if isinstance(best, tuple) else by[best]
    rows = "\n".join(f"| {r.name} | {r.parameters:,} | {r.tokens:,} | {r.mean:.4f} | {r.low:.4f} to {r.high:.4f} |"
                     for r in rs)
    body = (f"Measured ({len(study['seeds'])} seeds each, final loss on {study['final_text']}): {said}.\n\n"
            "| size | parameters | tokens seen | nats per character (mean) | seed range |\n|---|---|---|---|---|\n"
            + rows)
    return SIZE_QUESTION.reveal(picked, answer, body)
