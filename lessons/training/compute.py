"""Lesson 11: the training lab. Pure compute (no Gradio); `app/pages/training.py` places what it returns.

Three parts, all from real runs:

    lab         train_lab (a generator): a small Llama of the learner's choosing, trained live by the project's
                one training loop (llama.train.training_steps) under a time budget; curves and samples stream
    ablation    the shipped study of assets/ablation/ablation.json (made by `python -m llama.ablate`): curves,
                a table of mean and spread over seeds, and "within noise" computed from that spread
    snapshots   the course model's own training, replayed from the weights saved at chosen steps
                (assets/snapshots, made by `python -m llama.train --snapshot-steps ...`): the loss at that
                step, a generation, an attention map and the embedding map, each by the lessons' own functions
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch

from llama import load_pretrained
from llama.ablate import ffn_changes
from llama.config import FFNS, NORMS, PLACEMENTS, POSITIONS, LlamaConfig
from llama.generate import generate
from llama.model import Llama
from llama.tokenizer import BPETokenizer, decode_continuation
from llama.train import Recipe, split_text, steps_for_budget, training_steps
from lessons.attention import compute as A
from lessons.course import DEFAULT_MODEL_DIR, ROOT, LRU, CourseModel
from lessons.grading import Question
from lessons.inputs import LessonError, choice, clean_text, join, number, whole
from lessons.tokenization import compute as T

CORPUS = ROOT / "assets" / "data" / "tinyshakespeare.txt"  # shipped, so the lab works offline
ABLATION = ROOT / "assets" / "ablation" / "ablation.json"
SNAPSHOTS = ROOT / "assets" / "snapshots"

# ----------------------------------------------------------------------------- (a) the lab

LAB_SEQ_LEN = 128  # context of the lab's models (tokens)
MAX_NEW_TOKENS = LAB_SEQ_LEN // 2  # a generation by the learner's model: half its context, the prompt keeps the rest
MAX_BUDGET_S = 60.0
SAMPLE_PROMPT = "ROMEO:"
SAMPLE_TOKENS = 40
SAMPLE_EVERY_S = 5.0  # a sample generation at most this often while training (and one at the end)
KEEP_TRAINED_S = 3600  # a learner's trained model is dropped this long after their last run (memory stays bounded)
UPDATE_EVERY_S = 1.0  # the curve is redrawn at most this often
LAB_EVAL_EVERY = 25  # steps between validation measurements
LAB_EVAL_WINDOWS = 4  # validation windows of LAB_SEQ_LEN tokens per measurement
LIMITS = dict(n_layers=(1, 6), dim=(16, 256), n_heads=(1, 8), n_kv_heads=(1, 8), lr=(1e-4, 1e-2),
              batch_size=(1, 32), budget_s=(2.0, MAX_BUDGET_S))
DEFAULTS = dict(n_layers=2, dim=64, n_heads=4, n_kv_heads=2, norm="rmsnorm", position="rope", ffn="swiglu",
                norm_placement="pre", lr=3e-3, batch_size=8, budget_s=8.0)
RECIPE = Recipe()  # the project's recipe: the lab changes only steps, batch, lr, warmup and evaluation


@dataclass(frozen=True)
class LabSettings:
    n_layers: int
    dim: int
    n_heads: int
    n_kv_heads: int
    norm: str
    position: str
    ffn: str
    norm_placement: str
    lr: float
    batch_size: int
    budget_s: float


def lab_settings(n_layers, dim, n_heads, n_kv_heads, norm, position, ffn, norm_placement, lr, batch_size,
                 budget_s) -> tuple[LabSettings, str]:
    """The learner's choices, repaired: (settings, notice). Widths are multiples of 16; heads must divide the
    width and K/V heads must divide the heads (the nearest smaller value that does is used, and said)."""
    notes = []

    def take(v, name, label, kind=whole):
        lo, hi = LIMITS[name]
        x, n = kind(v, label, lo, hi, DEFAULTS[name])
        notes.append(n)
        return x

    L = take(n_layers, "n_layers", "Layers")
    d = take(dim, "dim", "Width")
    if d % 16:
        notes.append(f"Width {d} is not a multiple of 16: using {16 * max(1, round(d / 16))}.")
        d = 16 * max(1, round(d / 16))
    h = take(n_heads, "n_heads", "Query heads")
    if d % h:
        h2 = max(k for k in range(1, h + 1) if d % k == 0)
        notes.append(f"{h} query heads do not divide the width {d}: using {h2}.")
        h = h2
    kv = take(n_kv_heads, "n_kv_heads", "K/V heads")
    if kv > h or h % kv:
        kv2 = max(k for k in range(1, min(kv, h) + 1) if h % k == 0)
        notes.append(f"{kv} K/V heads must divide the {h} query heads: using {kv2}.")
        kv = kv2
    picks = []
    for v, name, opts in ((norm, "Norm", NORMS), (position, "Position", POSITIONS), (ffn, "Feed-forward", FFNS),
                          (norm_placement, "Norm placement", PLACEMENTS)):
        x, n = choice(v, name, opts, DEFAULTS[{"Norm": "norm", "Position": "position", "Feed-forward": "ffn",
                                               "Norm placement": "norm_placement"}[name]])
        picks.append(x)
        notes.append(n)
    lr = take(lr, "lr", "Learning rate", number)
    B = take(batch_size, "batch_size", "Batch size")
    budget = take(budget_s, "budget_s", "Time budget (s)", number)
    return LabSettings(L, d, h, kv, *picks, lr, B, budget), join(*notes)


def lab_config(cm: CourseModel, s: LabSettings) -> LlamaConfig:
    """The lab's model: the learner's sizes and switches, the picked model's tokenizer (its vocabulary and
    special ids), a LAB_SEQ_LEN context, tied embeddings. ReLU/GELU get SwiGLU's parameter count, as in the
    ablation (llama.ablate.ffn_changes)."""
    tok = cm.tokenizer
    base = LlamaConfig(dim=s.dim, n_layers=s.n_layers, n_heads=s.n_heads, n_kv_heads=s.n_kv_heads,
                       vocab_size=tok.vocab_size, max_seq_len=LAB_SEQ_LEN, multiple_of=16, tie_embeddings=True,
                       bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, norm=s.norm, position=s.position,
                       norm_placement=s.norm_placement)
    return base.replace(**ffn_changes(base, s.ffn))


_CORPORA = LRU(2)  # (tokenizer, path) -> (train ids, val ids)


def corpus_ids(cm: CourseModel, path: Path = CORPUS) -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus in the picked model's tokens, split 90/10 by characters as llama.train does; once per tokenizer."""
    def encode():
        train, val = split_text(Path(path).read_text(encoding="utf-8"))
        return (torch.tensor(cm.tokenizer.encode(train), dtype=torch.long),
                torch.tensor(cm.tokenizer.encode(val), dtype=torch.long))
    return _CORPORA.get_or_compute((cm.tokenizer, str(path)), encode)


@dataclass
class LabModel:
    """A learner's trained model (kept in their session, never shared) and what it was trained with."""

    model: Llama
    tokenizer: object
    settings: LabSettings
    steps: int = 0
    val_loss: float | None = None

    def __getstate__(self) -> dict:
        """Pickled (the app trains in a child process, app.background) with the weights as plain bytes: pickling
        the module through multiprocessing would move its tensors into shared memory held by the child."""
        buf = io.BytesIO()
        torch.save(self.model.state_dict(), buf)
        return {**self.__dict__, "model": (self.model.config, self.model.training, self.model.attn_backend,
                                           buf.getvalue())}

    def __setstate__(self, state: dict) -> None:
        config, training, backend, weights = state["model"]
        model = Llama(config)
        model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        model.train(training)
        model.attn_backend = backend
        self.__dict__.update(state, model=model)


@dataclass
class LabUpdate:
    figure: go.Figure
    status: str  # Markdown: steps, tokens, time, losses
    sample: str | None  # a generation from SAMPLE_PROMPT, when one was made at this update
    lab: LabModel
    done: bool
    details: str = ""  # the status after its "Training: step N of about M planned" head


def stopped(last: LabUpdate | None) -> LabUpdate | None:
    """The learner pressed Stop: the run as the page last received it (its curve, and its model at that step, made
    ready to generate), the status saying so. None when Stop came before the first step (nothing to keep)."""
    if last is None:
        return None
    last.lab.model.eval()
    last.lab.model.attn_backend = "manual"
    status = f"**Stopped at step {last.lab.steps:,}** (you pressed Stop){last.details}"
    return dataclasses.replace(last, status=status, sample=None, done=True)


def sample(lab: LabModel, prompt: str = SAMPLE_PROMPT, n: int = SAMPLE_TOKENS, temperature: float = 0.8,
           seed: int = 0) -> str:
    """A generation by the lab's model through the project's one generation loop (llama.generate): n new tokens
    (1 <= n < the model's context) after the prompt's last tokens that leave room for them."""
    ids = [lab.tokenizer.bos_id] + lab.tokenizer.encode(prompt)  # BOS first, as in training (prepare_text)
    ids = ids[-(lab.model.config.max_seq_len - n):]
    new = generate(lab.model, ids, n, temperature=temperature, top_k=50, seed=seed)
    return prompt + decode_continuation(lab.tokenizer, ids, new)  # with the prompt: its joining space kept


def curve_figure(steps: list[int], train: list[float], val: list[tuple[int, float]], vocab: int,
                 title: str) -> go.Figure:
    """Train loss per step (thin) and validation loss when measured (markers), with the uniform guess ln V."""
    data = [dict(type="scatter", x=steps, y=train, mode="lines", name="train (this step's batch)",
                 line=dict(color="#93c5fd", width=1)),
            dict(type="scatter", x=[s for s, _ in val], y=[v for _, v in val], mode="lines+markers",
                 name="validation (held-out 10%)", line=dict(color="#dc2626", width=2))]
    top = math.log(vocab)
    data.append(dict(type="scatter", x=[0, max(steps or [1])], y=[top, top], mode="lines",
                     name=f"uniform guess: ln {vocab:,} = {top:.2f}", line=dict(color="#6b7280", dash="dot")))
    return go.Figure(data=data, layout=dict(
        title=dict(text=title), height=400, margin=dict(l=10, r=10, t=70, b=10), showlegend=True,
        xaxis=dict(title=dict(text="optimizer step"), rangemode="tozero"),
        yaxis=dict(title=dict(text="loss (nats per token)"))), _validate=False)


def waiting_figure(cm: CourseModel) -> go.Figure:
    return curve_figure([], [], [], cm.tokenizer.vocab_size, "Press Train: losses appear as measured")


def train_lab(cm: CourseModel, s: LabSettings, seed: int = 0, corpus: Path = CORPUS, progress=None):
    """Train the learner's model for s.budget_s seconds; yields a LabUpdate about once a second, at every
    validation measurement, and at the end (done=True). Stopping the iteration stops the training."""
    if progress:
        progress(0, "tokenizing the corpus (once per tokenizer)")
    train_ids, val_ids = corpus_ids(cm, corpus)
    cfg = lab_config(cm, s)
    torch.manual_seed(seed)
    model = Llama(cfg)
    lab = LabModel(model, cm.tokenizer, s)
    recipe = Recipe(steps=1, batch_size=s.batch_size, lr=s.lr, eval_every=LAB_EVAL_EVERY,
                    eval_windows=LAB_EVAL_WINDOWS, seed=seed)
    if progress:
        progress(0, "timing one step to fit the schedule to the budget")
    steps = steps_for_budget(model, train_ids, recipe, s.budget_s)
    recipe = Recipe(**{**recipe.__dict__, "steps": steps, "warmup": max(1, steps // 20)})
    xs, train, val = [], [], []
    last_draw = last_sample = time.time()
    n_params = model.num_parameters()
    for r in training_steps(model, train_ids, val_ids, cfg.bos_token_id, recipe, budget_s=s.budget_s):
        xs.append(r.step)
        train.append(r.train_loss)
        if r.val_loss is not None:
            val.append((r.step, r.val_loss))
            lab.val_loss = r.val_loss
        lab.steps = r.step
        now = time.time()
        if not (r.last or r.val_loss is not None or now - last_draw >= UPDATE_EVERY_S):
            continue
        last_draw = now
        text = None
        if r.last or now - last_sample >= SAMPLE_EVERY_S:
            text, last_sample = sample(lab), time.time()
        if r.last:
            model.eval()
            model.attn_backend = "manual"
        details = (f", {r.tokens:,} tokens, {r.elapsed:.1f} s of {s.budget_s:g} s · {n_params:,} parameters · "
                   f"train loss {r.train_loss:.3f}"
                   + (f" · validation loss {val[-1][1]:.3f} nats/token (step {val[-1][0]})" if val else "")
                   + f" · learning rate {r.lr:.2e}")
        status = f"**{'Done' if r.last else 'Training'}**: step {r.step:,} of about {steps:,} planned" + details
        title = (f"Your model: {s.n_layers} layers, width {s.dim}, {s.n_heads}/{s.n_kv_heads} heads, "
                 f"{s.norm}, {s.position}, {s.ffn}, {s.norm_placement}-norm")
        yield LabUpdate(curve_figure(xs, train, val, cfg.vocab_size, title), status, text, lab, r.last, details)


def generate_with(lab: LabModel | None, prompt, n_tokens, temperature) -> tuple[str, str]:
    """The learner's trained model continues their prompt (the project's generation loop): (text, notice).

    A prompt over 500 characters is cut, odd characters replaced, new tokens clamped to 1..MAX_NEW_TOKENS and
    the temperature to 0..2, each with the notice saying so; the generation runs with what was kept (the model
    reads the prompt's last LAB_SEQ_LEN - n tokens, also said). No trained model raises LessonError."""
    if lab is None:
        raise LessonError("Train a model first (part 1): this box generates with the model you trained "
                          f"(kept for {KEEP_TRAINED_S // 60} minutes after your last run).")
    prompt, n1 = clean_text(prompt, 500, "prompt")
    n, n2 = whole(n_tokens, "New tokens", 1, MAX_NEW_TOKENS, min(60, MAX_NEW_TOKENS))
    t, n3 = number(temperature, "Temperature", 0.0, 2.0, 0.8)
    room = lab.model.config.max_seq_len - n
    n4 = (f"Your model's context is {lab.model.config.max_seq_len} tokens: it reads the last {room} tokens of "
          f"your prompt." if len(lab.tokenizer.encode(prompt)) + 1 > room else "")
    return sample(lab, prompt, n, t, seed=0), join(n1, n2, n3, n4)


def recipe_markdown() -> str:
    """The LLaMA paper's recipe next to what llama.train (and so this lab) uses, read from llama.train.Recipe."""
    r = RECIPE
    return (f"| | LLaMA paper (Touvron et al. 2023a, §2.3) | this lab (`llama.train.Recipe`) |\n|---|---|---|\n"
            f"| optimizer | AdamW, β₁ 0.9, β₂ 0.95 | AdamW, β₁ 0.9, β₂ 0.95 |\n"
            f"| weight decay | 0.1 | {r.weight_decay:g} (matrices and embeddings; not norm gains) |\n"
            f"| schedule | 2,000 warmup steps, cosine to 10% of peak | warmup 5% of the planned steps, cosine to "
            f"{100 * r.min_lr_ratio:.0f}% of peak |\n"
            f"| gradient clipping | 1.0 | {r.grad_clip:.1f} |\n"
            f"| peak learning rate | 3e-4 (7B, 13B), 1.5e-4 (33B, 65B) | your choice (default {DEFAULTS['lr']:g}) |\n"
            f"| batch | 4M tokens | your batch × {LAB_SEQ_LEN} tokens |\n"
            f"| length | 1.0T–1.4T tokens | your time budget; the planned steps come from timing one step |")


# ----------------------------------------------------------------------------- (b) the shipped ablation


_STUDY = LRU(2)


def load_study(path: Path = ABLATION) -> dict:
    return _STUDY.get_or_compute(str(path), lambda: json.loads(Path(path).read_text(encoding="utf-8")))


LABELS = {"llama": "Llama (RMSNorm, RoPE, SwiGLU, GQA, pre-norm)", "norm=layernorm": "LayerNorm instead of RMSNorm",
          "position=learned": "learned positions instead of RoPE", "position=sinusoidal": "sinusoidal positions",
          "position=none": "no positions at all", "ffn=relu": "ReLU feed-forward (same parameters)",
          "ffn=gelu": "GELU feed-forward (same parameters)", "norm_placement=post": "post-norm instead of pre-norm"}


def label(name: str) -> str:
    if name.startswith("n_kv_heads="):
        n = name.split("=")[1]
        return f"{n} K/V head{'' if n == '1' else 's'}"
    return LABELS.get(name, name)


@dataclass(frozen=True)
class Row:
    name: str
    parameters: int
    finals: tuple[float, ...]  # final validation nats per character, one per seed
    mean: float
    spread: float  # max - min over seeds
    delta: float  # mean - the Llama baseline's mean
    within_noise: bool  # |delta| <= NOISE_FACTOR x the larger of the two spreads: inconclusive


# A difference between two recipes counts only beyond this many times the larger seed range (max - min over seeds)
# of the two rows. With 2 or 3 seeds a range is a rough estimate of the noise (a third seed can widen it), so a
# difference of one range is no evidence; twice the range is the least the table calls a difference (issue 22).
NOISE_FACTOR = 2.0


def ablation_rows(study: dict) -> list[Row]:
    """One row per variant, baseline first. A difference is inconclusive ("within noise") when it is no larger than
    NOISE_FACTOR times the seed range (max - min) of the variant or of the baseline, whichever is larger."""
    raw = {v["name"]: (v["parameters"], [r["final_per_char"] for r in v["runs"]]) for v in study["variants"]}
    base = np.mean(raw["llama"][1])
    base_spread = float(np.ptp(raw["llama"][1]))
    rows = []
    for name, (params, finals) in raw.items():
        m, sp = float(np.mean(finals)), float(np.ptp(finals))
        rows.append(Row(name, params, tuple(finals), m, sp, m - base,
                        abs(m - base) <= NOISE_FACTOR * max(sp, base_spread)))
    return rows


def verdict(row: Row) -> str:
    if row.name == "llama":
        return "baseline"
    if row.within_noise:
        return f"inconclusive ({row.delta:+.3f}, within {NOISE_FACTOR:g}× the seed range)"
    return f"{'worse' if row.delta > 0 else 'better'} by {abs(row.delta):.3f}"


def ablation_markdown(study: dict) -> str:
    rows = ablation_rows(study)
    n = len(study["seeds"])
    lines = [f"| variant | parameters | final loss (nats/char), mean ± half-range of {n} seeds | per seed | vs Llama |",
             "|---|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {label(r.name)} | {r.parameters:,} | {r.mean:.3f} ± {r.spread / 2:.3f} | "
                     f"{', '.join(f'{x:.3f}' for x in r.finals)} | {verdict(r)} |")
    rec = study["recipe"]
    steps = {len(r["train_loss"]) for v in study["variants"] for r in v["runs"]}
    walls = [r["wall_s"] for v in study["variants"] for r in v["runs"]]
    return "\n".join(lines) + (
        f"\n\nEach run: {'/'.join(map(str, sorted(steps)))} steps of batch {rec['batch_size']} × "
        f"{study['base_config']['max_seq_len']} tokens, peak lr {rec['lr']:g}, seeds {study['seeds']}, "
        f"{min(walls):.0f}–{max(walls):.0f} s each on {study['hardware']}. Final loss on {study['final_text']}. "
        f"The verdict rule: a difference from Llama's mean counts only when it exceeds {NOISE_FACTOR:g}× the larger seed "
        f"range (max − min over the {n} seeds) of the two rows; otherwise it is **inconclusive**: these runs cannot "
        f"tell the two recipes apart. With {n} seeds a range is only a rough estimate of the noise, hence the "
        f"factor {NOISE_FACTOR:g}. "
        f"Produced by `{study['command']}`.")


FAMILIES = {"norm": "norm", "position": "position", "feed-forward": "ffn", "K/V heads": "n_kv_heads",
            "norm placement": "norm_placement"}


def family(value) -> tuple[str, str]:
    """A switch family from the page's radio: (family, notice); an unknown one becomes "norm", with a notice."""
    return choice(value, "Switch", list(FAMILIES), "norm")


def ablation_figure(study: dict, family: str) -> go.Figure:
    """Validation loss curves of the baseline and one family's variants (a key of FAMILIES); one line per seed."""
    key = FAMILIES[family]
    colors = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed"]
    data = []
    shown = [v for v in study["variants"] if v["name"] == "llama" or v["name"].startswith(key + "=")]
    for c, v in zip(colors, shown):
        for k, r in enumerate(v["runs"]):
            data.append(dict(type="scatter", x=[s for s, _ in r["val_loss"]], y=[x for _, x in r["val_loss"]],
                             mode="lines+markers", name=f"{label(v['name'])} (seed {r['seed']})",
                             legendgroup=v["name"], line=dict(color=c, dash="solid" if k == 0 else "dash")))
    return go.Figure(data=data, layout=dict(
        title=dict(text=f"Validation loss while training: {family}"), height=420,
        margin=dict(l=10, r=10, t=60, b=10), xaxis=dict(title=dict(text="optimizer step")),
        yaxis=dict(title=dict(text="validation loss (nats per token)"))), _validate=False)


NOISE_CHOICES = ("LayerNorm trains better here", "RMSNorm trains better here",
                 "Neither: the difference is within the seed noise")
NOISE_MISCONCEPTION = ("that any difference between two training runs measures the change made: runs of the very same "
                       "recipe with different seeds differ too, and a difference no larger than that spread cannot be "
                       "told from chance")


def noise_question(study: dict) -> Question:
    """What the shipped runs can conclude about LayerNorm against RMSNorm: the question quotes the measured seed
    range of Llama's recipe and the measured difference, so the learner reasons from the numbers, not a guess."""
    rows = {r.name: r for r in ablation_rows(study)}
    base, ln = rows["llama"], rows["norm=layernorm"]
    n = len(study["seeds"])
    text = (f"{n} runs of Llama's own recipe (RMSNorm), differing only in the seed, ended **{base.spread:.3f}** "
            f"nats/char apart (best to worst). The same recipe with LayerNorm ended **{abs(ln.delta):.3f}** "
            f"{'lower' if ln.delta < 0 else 'higher'} on average. What can these runs conclude?")
    return Question("training-noise", text, NOISE_CHOICES, NOISE_MISCONCEPTION)


def noise_answer(study: dict) -> str:
    ln = next(r for r in ablation_rows(study) if r.name == "norm=layernorm")
    return NOISE_CHOICES[2] if ln.within_noise else NOISE_CHOICES[0 if ln.delta < 0 else 1]


def reveal_noise(study: dict, picked) -> str:
    """Graded by the verdict rule (NOISE_FACTOR x the larger seed range); every variant's verdict follows."""
    rows = ablation_rows(study)
    base = rows[0]
    ln = next(r for r in rows if r.name == "norm=layernorm")
    clear = [f"{label(r.name)} ({verdict(r)})" for r in rows if r.name != "llama" and not r.within_noise]
    unclear = [label(r.name) for r in rows if r.name != "llama" and r.within_noise]
    body = (f"LayerNorm against RMSNorm: {ln.delta:+.3f} nats/char; the seed ranges are {base.spread:.3f} (RMSNorm) "
            f"and {ln.spread:.3f} (LayerNorm), so the rule needs more than {NOISE_FACTOR:g} × "
            f"{max(base.spread, ln.spread):.3f} = {NOISE_FACTOR * max(base.spread, ln.spread):.3f}: "
            f"**{verdict(ln)}**."
            + (f"\n\nDifferences these runs can show: {', '.join(clear)}." if clear else "")
            + (f"\n\nInconclusive at this length and number of seeds: {', '.join(unclear)}." if unclear else ""))
    return noise_question(study).reveal(picked, noise_answer(study), body)


# ----------------------------------------------------------------------------- (c) snapshots of the course model


@dataclass(frozen=True)
class Snapshot:
    step: int
    path: Path
    val_loss: float  # nats per token on the periodic evaluation windows


def eval_windows_said(root: Path = SNAPSHOTS, final: Path = DEFAULT_MODEL_DIR) -> str:
    """Which text the snapshots' validation losses are measured on, from the training run's own record
    (snapshots.json: `eval_windows` consecutive windows of `seq_len` tokens from the start of the validation split,
    llama.train.evaluate), and the whole split's loss of the final model (summary.json) for comparison."""
    index = json.loads((root / "snapshots.json").read_text())
    n, T = index.get("eval_windows"), index.get("seq_len")
    where = (f"on the first {n} windows of {T} tokens ({n * T:,} tokens) of TinyShakespeare's validation split (its "
             "last 10%, never trained on)" if n and T else "on the whole validation split (the last 10% of "
             "TinyShakespeare)")
    summary = final / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        where += (f"; the whole split, {s['val_tokens']:,} tokens, gives {s['val_loss_per_token']:.4f} for the final "
                  "model (its card)")
    return f"({where})"


def snapshots(root: Path = SNAPSHOTS, final: Path = DEFAULT_MODEL_DIR) -> list[Snapshot]:
    """The saved steps (snapshots.json); if they stop before the course model's last logged step, the shipped
    course model is added as that last step."""
    index = json.loads((root / "snapshots.json").read_text())
    out = [Snapshot(s["step"], root / s["dir"], s["val_loss"]) for s in index["snapshots"]]
    log = json.loads((final / "train_log.json").read_text())
    if log and log[-1]["step"] > out[-1].step:
        out.append(Snapshot(log[-1]["step"], final, log[-1]["val_loss"]))
    return out


# The tokenizer and at most two snapshot models (about 10 MB each in fp32): a step's view is computed once and kept
# (_VIEWS), so its model is not needed afterwards; keeping all seven cost the server 70 MB.
_SNAP_MODELS = LRU(3)


def course_tokenizer(final: Path = DEFAULT_MODEL_DIR) -> BPETokenizer:
    """The tokenizer the course model (and so every snapshot) was trained with, loaded once."""
    return _SNAP_MODELS.get_or_compute(("tokenizer", str(final)), lambda: BPETokenizer.load(final / "tokenizer.json"))


def snapshot_model(snap: Snapshot, final: Path = DEFAULT_MODEL_DIR) -> CourseModel:
    """The course model as it was at that step, with the course tokenizer (read-only, shared)."""
    def load():
        return CourseModel(model=load_pretrained(snap.path, device="cpu"), tokenizer=course_tokenizer(final),
                           path=snap.path)
    return _SNAP_MODELS.get_or_compute(str(snap.path), load)


ATTENTION_TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?"
EMBED_SENTENCE = "the king and the queen, my lord"


def watch_head(final: CourseModel) -> tuple[int, int]:
    """The head of the trained model that puts the most weight on the previous token (lessons.attention's
    head statistics on ATTENTION_TEXT): the slider shows it forming."""
    st = A.head_stats(A.trace_text(final, ATTENTION_TEXT))
    layer, head = np.unravel_index(int(np.argmax(st.previous)), st.previous.shape)
    return int(layer), int(head)


@dataclass
class SnapshotView:
    curve: go.Figure
    generation: str
    attention: go.Figure
    embedding: go.Figure
    readout: str
    notice: str  # what was repaired in the input ('' when nothing)
    previous: float  # the watched head's mean weight on the previous token at this step


_VIEWS = LRU(16)  # (snapshots dir, index) -> SnapshotView: the same step always shows the same thing


def snapshot_view(index, root: Path = SNAPSHOTS, final: Path = DEFAULT_MODEL_DIR) -> SnapshotView:
    """Everything the slider shows at snapshot `index` (0 = the first saved step); computed once per step."""
    snaps = snapshots(root, final)
    i, notice = whole(index, "Snapshot", 0, len(snaps) - 1, 0)
    view = _VIEWS.get_or_compute((str(root), str(final), i), lambda: _snapshot_view(snaps, i, final))
    return dataclasses.replace(view, notice=notice)


def _snapshot_view(snaps: list[Snapshot], i: int, final: Path) -> SnapshotView:
    notice = ""
    snap = snaps[i]
    cm = snapshot_model(snap, final)
    tok = cm.tokenizer
    layer, head = _VIEWS.get_or_compute(("watched head", str(snaps[-1].path)),
                                        lambda: watch_head(snapshot_model(snaps[-1], final)))
    t = A.trace_text(cm, ATTENTION_TEXT)
    previous = float(A.head_stats(t).previous[layer, head])
    ids = [tok.bos_id] + tok.encode(SAMPLE_PROMPT)
    text = SAMPLE_PROMPT + decode_continuation(tok, ids, generate(cm.model, ids, 40))
    log = json.loads((final / "train_log.json").read_text())
    curve = go.Figure(data=[
        dict(type="scatter", x=[e["step"] for e in log], y=[e["val_loss"] for e in log], mode="lines+markers",
             name="validation loss (train_log.json)", line=dict(color="#2563eb")),
        dict(type="scatter", x=[s.step for s in snaps], y=[s.val_loss for s in snaps], mode="markers",
             name="saved snapshots", marker=dict(size=9, color="#94a3b8")),
        dict(type="scatter", x=[snap.step], y=[snap.val_loss], mode="markers", name=f"step {snap.step}",
             marker=dict(size=16, color="#dc2626", symbol="star"))],
        layout=dict(title=dict(text=f"The course model's training: step {snap.step}, "
                                    f"validation loss {snap.val_loss:.3f} nats/token"),
                    height=360, margin=dict(l=10, r=10, t=60, b=10),
                    xaxis=dict(title=dict(text="optimizer step")),
                    yaxis=dict(title=dict(text="validation loss (nats per token)"))), _validate=False)
    emb = T.embedding_map(cm, EMBED_SENTENCE)
    emb.update_layout(title=dict(text=f"Step {snap.step}: all {cm.config.vocab_size:,} token embeddings (PCA)"))
    readout = (f"Step **{snap.step}** of {snaps[-1].step}: validation loss **{snap.val_loss:.3f}** "
                           f"nats per token {eval_windows_said()} (a uniform guess: "
                           f"{math.log(cm.config.vocab_size):.3f}). Weights: "
                           f"`{snap.path.relative_to(ROOT) if snap.path.is_relative_to(ROOT) else snap.path}`; "
                           f"attention: layer {layer}, head {head}, the trained model's strongest previous-token head, puts "
               f"**{previous:.2f}** of its weight on the previous token at this step (mean over the text's rows; "
               f"uniform attention over the past would give {uniform_previous(t.n_tokens):.2f}).")
    return SnapshotView(curve, text, A.heatmap_figure(t, layer, head), emb, readout, notice, previous)


def uniform_previous(n_tokens: int) -> float:
    """The previous-token weight of a head that spreads evenly over the past, averaged like head_stats (rows from 2)."""
    rows = np.arange(2, n_tokens) if n_tokens >= 3 else np.arange(1, n_tokens)
    return float(np.mean(1.0 / (rows + 1)))
