"""Train the course's baby Llama: our own BPE tokenizer, then a Llama, on a text file.

    python -m llama.train --data ../shared/data/tinyshakespeare.txt --out runs/baby --preset baby

The last 10% of the file (by position) is the validation split; the tokenizer
is trained on the first 90% only. Every training window starts with BOS, as
every sequence a Llama sees does, so the lessons can always prepend it.

The run directory holds the Hugging Face layout (`config.json`,
`model.safetensors`, `tokenizer.json`) plus `train_log.json` and, for
`--resume`, `optimizer.safetensors` and `train_state.json`. Nothing is pickled.
`--ship DIR` also writes a compact copy (fp16 weights) with a model card.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .checkpoint import default_device, load_pretrained, save_pretrained
from .config import PRESETS, LlamaConfig
from .generate import generate
from .model import Llama
from .tokenizer import BPETokenizer, decode_continuation

VAL_FRACTION = 0.1


# ----------------------------------------------------------------------------- data


def split_text(text: str) -> tuple[str, str]:
    """Train on the first 90% of the characters, validate on the last 10%."""
    n = int(len(text) * (1 - VAL_FRACTION))
    return text[:n], text[n:]


def get_batch(data: torch.Tensor, batch_size: int, seq_len: int, bos: int, generator: torch.Generator):
    """Random windows, each [BOS] + seq_len-1 tokens; targets are the inputs shifted by one. (B, T) each."""
    ix = torch.randint(0, len(data) - seq_len, (batch_size,), generator=generator)
    chunks = torch.stack([data[i:i + seq_len] for i in ix.tolist()])  # (B, T) tokens at t..t+T-1
    x = torch.cat([torch.full((batch_size, 1), bos, dtype=torch.long), chunks[:, :-1]], dim=1)  # (B, T)
    return x, chunks


@torch.no_grad()
def evaluate(model: Llama, data: torch.Tensor, seq_len: int, bos: int, max_windows: int | None = None,
             device=None, batch_size: int = 8) -> float:
    """Mean next-token loss (nats) over consecutive windows of the split, each predicted after BOS.

    Every token of the split (up to max_windows windows) is predicted exactly once.

    A pure function of the model: it never switches train()/eval(), so a shared model that many
    threads read (the app's) is never changed. It needs no switch: the model has no dropout or
    batch norm, so its training and evaluation modes compute the same numbers."""
    device = device or model.embed_tokens.weight.device
    starts = list(range(0, len(data) - seq_len + 1, seq_len))
    if max_windows is not None:
        starts = starts[:max_windows]
    total, count = 0.0, 0
    for b in range(0, len(starts), batch_size):
        chunks = torch.stack([data[i:i + seq_len] for i in starts[b:b + batch_size]])  # (B, T)
        x = torch.cat([torch.full((len(chunks), 1), bos, dtype=torch.long), chunks[:, :-1]], dim=1)
        logits = model(x.to(device)).logits.float()
        total += F.cross_entropy(logits.flatten(0, 1), chunks.to(device).flatten(), reduction="sum").item()
        count += chunks.numel()
    return total / max(count, 1)


def loss_per_char(model: Llama, tok: BPETokenizer, text: str, seq_len: int | None = None) -> dict:
    """Validation loss of a text in nats per token and per character (loss per token x tokens / characters).

    Per character is the tokenizer-independent figure: a model with a bigger vocabulary has fewer,
    harder tokens, and this puts both on one scale."""
    seq_len = seq_len or model.config.max_seq_len
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    if len(ids) < seq_len:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than one window of {seq_len}")
    per_token = evaluate(model, ids, seq_len, tok.bos_id)
    scored = (len(ids) // seq_len) * seq_len  # evaluate() scores whole windows
    chars = len(tok.decode(ids[:scored].tolist()))
    return {"per_token": per_token, "per_char": per_token * scored / chars, "tokens": scored, "chars": chars}


TEST_SLICE_CHARS = 20_000  # the shipped model's test re-measures the loss on this start of the validation split
EXCERPT_CHARS = 8_000  # validation text shipped beside the model, so lessons can measure losses offline


def lr_at(step: int, max_steps: int, lr: float, warmup: int, min_lr: float) -> float:
    """Linear warmup for `warmup` steps, then cosine decay from lr to min_lr at max_steps."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- checkpoints


def make_optimizer(model: Llama, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.95),
                   eps: float = 1e-8) -> torch.optim.AdamW:
    # Decay matrices and embeddings, not gains (norm weights are 1-D).
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for n, p in named if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def save_optimizer(opt: torch.optim.AdamW, model: Llama, path: Path) -> None:
    """AdamW's moments as safetensors, keyed by parameter name (no pickle)."""
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if st:
                n = names[id(p)]
                tensors[f"{n}.exp_avg"] = st["exp_avg"].detach().cpu().contiguous()
                tensors[f"{n}.exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().contiguous()
                tensors[f"{n}.step"] = torch.as_tensor(st["step"]).reshape(1).float().cpu()
    save_file(tensors, str(path))


def load_optimizer(opt: torch.optim.AdamW, model: Llama, path: Path) -> None:
    tensors = load_file(str(path))
    for n, p in model.named_parameters():
        if f"{n}.exp_avg" in tensors:
            opt.state[p] = {"step": tensors[f"{n}.step"].reshape(()).to(torch.float32),
                            "exp_avg": tensors[f"{n}.exp_avg"].to(p.device, p.dtype),
                            "exp_avg_sq": tensors[f"{n}.exp_avg_sq"].to(p.device, p.dtype)}


def save_run(out: Path, model: Llama, opt, tok: BPETokenizer, log: list, state: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_pretrained(model, out, dtype=torch.float32)
    tok.save(out / "tokenizer.json")
    save_optimizer(opt, model, out / "optimizer.safetensors")
    (out / "train_log.json").write_text(json.dumps(log, indent=1) + "\n")
    (out / "train_state.json").write_text(json.dumps(state, indent=2) + "\n")


# ----------------------------------------------------------------------------- main loop


def build_config(args, tok: BPETokenizer) -> LlamaConfig:
    overrides = {k: v for k, v in dict(dim=args.dim, n_layers=args.n_layers, n_heads=args.n_heads,
                                       n_kv_heads=args.n_kv_heads, max_seq_len=args.seq_len).items() if v is not None}
    return LlamaConfig.from_name(args.preset, vocab_size=tok.vocab_size, tie_embeddings=True,
                                 bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id,
                                 **overrides)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class Recipe:
    """How to train: the optimiser and schedule of the LLaMA paper (Touvron et al. 2023a, Section 2.3):
    AdamW with beta1 0.9, beta2 0.95, weight decay 0.1, 2,000 warmup steps then cosine decay to 10% of the
    peak learning rate, gradients clipped at norm 1.0 (the paper gives the number of warmup steps, not their
    shape; this project warms up linearly). Sizes are this course's (the paper's peak lr is 3e-4 and its batch
    4M tokens)."""

    steps: int = 3000  # the cosine runs over this many steps
    batch_size: int = 16
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # final learning rate / peak
    warmup: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 250  # measure the validation loss every this many steps (and at the last one)
    eval_windows: int | None = 40  # validation windows per measurement (None: the whole split)
    seed: int = 1337  # batch order (the model's initial weights come from the caller's torch seed)
    beta1: float = 0.9  # AdamW's decay of the gradient's running mean
    beta2: float = 0.95  # ... and of its running square
    eps: float = 1e-8  # AdamW's guard against dividing by a zero running square

    def __post_init__(self):
        # Each option within its meaning, or a ValueError naming it: grad_clip 0 means no clipping (nanoGPT,
        # transformers' max_grad_norm) and a negative one would flip every gradient; a zero batch, a NaN rate
        # or a beta of 1 would train nothing, or NaNs, without a word.
        for name in ("steps", "batch_size", "eval_every"):
            check_option(name, getattr(self, name), integer=True, low=1)
        check_option("warmup", self.warmup, integer=True, low=0)
        if self.eval_windows is not None:
            check_option("eval_windows", self.eval_windows, integer=True, low=1)
        check_option("seed", self.seed, integer=True)
        check_option("lr", self.lr, low=0, low_open=True)
        check_option("min_lr_ratio", self.min_lr_ratio, low=0, high=1)
        check_option("weight_decay", self.weight_decay, low=0)
        check_option("grad_clip", self.grad_clip, low=0, note="0 turns clipping off")
        check_option("beta1", self.beta1, low=0, high=1, high_open=True)
        check_option("beta2", self.beta2, low=0, high=1, high_open=True)
        check_option("eps", self.eps, low=0, low_open=True)


def check_option(name: str, value, integer: bool = False, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, note: str = "") -> None:
    """Raise ValueError naming `name` unless value is a finite number (an integer if asked) in the range.

        >>> check_option("grad_clip", -1.0, low=0, note="0 turns clipping off")
        Traceback (most recent call last):
        ValueError: grad_clip must be a finite number >= 0 (0 turns clipping off), not -1.0
    """
    bounds = ([f"{'>' if low_open else '>='} {low:g}"] if low is not None else []) + (
        [f"{'<' if high_open else '<='} {high:g}"] if high is not None else [])
    want = ("an integer" if integer else "a finite number") + (" " + " and ".join(bounds) if bounds else "")
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if not bad and integer and not float(value).is_integer():
        bad = True
    if not bad:
        v = float(value)
        bad = (not math.isfinite(v) or (low is not None and (v <= low if low_open else v < low))
               or (high is not None and (v >= high if high_open else v > high)))
    if bad:
        note = f" ({note})" if note else ""
        raise ValueError(f"{name} must be {want}{note}, not {value!r}")


@dataclass
class StepReport:
    """What `training_steps` yields after a step (step 0: before any update, only for a snapshot)."""

    step: int  # optimizer updates done
    train_loss: float | None  # nats per token on this step's batch (None at step 0)
    lr: float
    tokens: int  # training tokens seen so far
    elapsed: float  # seconds of training so far
    val_loss: float | None = None  # nats per token on the validation split, when measured at this step
    snapshot: bool = False  # the caller asked for the weights at this step (`snapshot_steps`)
    last: bool = False  # the run ends here (steps done, stop_at, or budget spent)


def training_steps(model: Llama, train_ids: torch.Tensor, val_ids: torch.Tensor, bos: int, recipe: Recipe,
                   opt: torch.optim.AdamW | None = None, start_step: int = 0, tokens: int = 0,
                   elapsed: float = 0.0, stop_at: int | None = None, budget_s: float | None = None,
                   snapshot_steps=(), should_stop=None) -> Iterator[StepReport]:
    """The one training loop: yields a StepReport after every optimizer step.

    The CLI (`train`), the ablation (`llama.ablate`) and the course's training lab all consume it.
    Training ends after `recipe.steps` (or `stop_at`) steps, when `budget_s` seconds of training are
    spent, when `should_stop()` returns True, or when the consumer stops iterating (a generator closed
    by a cancelled web request). The last report has `last=True` and a validation loss; reports at
    multiples of `recipe.eval_every` carry one too. Batches are drawn by a generator seeded with
    (recipe.seed, step), so a resumed run draws exactly the batches an uninterrupted one would.
    With a time budget the learning-rate schedule still runs over `recipe.steps`: choose steps the
    budget can reach to see the whole cosine (the lab estimates them from a timed first step).

    `model` is trained in place (train() mode, fused attention); its weights are the run's result."""
    T = model.config.max_seq_len
    device = model.embed_tokens.weight.device
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, not {type(recipe).__name__}")
    recipe.__post_init__()  # again: a Recipe's fields can be changed after it was made
    check_option("start_step", start_step, integer=True, low=0)
    check_option("tokens", tokens, integer=True, low=0)
    check_option("elapsed", elapsed, low=0)
    if stop_at is not None:
        check_option("stop_at", stop_at, integer=True, low=1)
    if budget_s is not None:
        check_option("budget_s", budget_s, low=0, low_open=True)
    if len(train_ids) <= T + 1 or len(val_ids) < T:
        raise ValueError(f"the text is too short for a context of {T} tokens: "
                         f"{len(train_ids)} train and {len(val_ids)} validation tokens")
    opt = opt or make_optimizer(model, recipe.lr, recipe.weight_decay, (recipe.beta1, recipe.beta2), recipe.eps)
    min_lr = recipe.lr * recipe.min_lr_ratio
    model.train()
    model.attn_backend = "sdpa"  # the fused kernel for speed; lessons use the readable path
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    snapshot_steps = set(snapshot_steps)
    step, t0 = start_step, time.time()
    stop_at = min(recipe.steps, stop_at) if stop_at else recipe.steps

    def val() -> float:
        return evaluate(model, val_ids, T, bos, recipe.eval_windows, device)

    if step in snapshot_steps:
        yield StepReport(step, None, lr_at(step, recipe.steps, recipe.lr, recipe.warmup, min_lr), tokens,
                         elapsed, val(), snapshot=True)
    while step < stop_at:
        lr = lr_at(step, recipe.steps, recipe.lr, recipe.warmup, min_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        gen = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        x, y = get_batch(train_ids, recipe.batch_size, T, bos, gen)
        # Gradients on here, whatever the consumer's thread says (the app turns them off for its shared model);
        # only around the step, so nothing leaks into the consumer's code between yields.
        with torch.enable_grad(), autocast:
            logits = model(x.to(device)).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
        if recipe.grad_clip > 0:  # 0: no clipping (clipping at norm 0 would zero every gradient)
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        step += 1
        tokens += x.numel()
        spent = elapsed + time.time() - t0
        last = (step == stop_at or (budget_s is not None and spent >= budget_s)
                or (should_stop is not None and should_stop()))
        measure = last or step % recipe.eval_every == 0 or step in snapshot_steps
        yield StepReport(step, loss.item(), lr, tokens, spent, val() if measure else None,
                         snapshot=step in snapshot_steps, last=last)
        if last:
            return


def steps_for_budget(model: Llama, train_ids: torch.Tensor, recipe: Recipe, budget_s: float) -> int:
    """How many steps fit in budget_s seconds, from timing one forward and backward pass (after one untimed
    warm-up pass), so a time-budgeted run can plan its cosine schedule. No weight changes (no optimizer step);
    the gradients are dropped. Plus 10% for the optimizer step: an estimate, the budget still stops the run."""
    T = model.config.max_seq_len
    x, y = get_batch(train_ids, recipe.batch_size, T, model.config.bos_token_id or 0, torch.Generator().manual_seed(0))
    x, y = x.to(model.embed_tokens.weight.device), y.to(model.embed_tokens.weight.device)
    backend, model.attn_backend = model.attn_backend, "sdpa"
    times = []
    for _ in range(2):
        t0 = time.time()
        with torch.enable_grad():
            F.cross_entropy(model(x).logits.float().flatten(0, 1), y.flatten()).backward()
        times.append(time.time() - t0)
    model.zero_grad(set_to_none=True)
    model.attn_backend = backend
    return max(1, int(budget_s / (1.1 * times[-1])))


def train(args) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device != "auto" else default_device()
    out = Path(args.out)
    try:
        text = Path(args.data).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:  # a clear line naming the option, not a traceback
        raise SystemExit(f"--data {args.data}: cannot be read as UTF-8 text ({getattr(e, 'strerror', None) or e})")
    if args.max_chars:
        text = text[: args.max_chars]
    train_text, val_text = split_text(text)

    resume = args.resume and (out / "train_state.json").exists()
    if resume:
        tok = BPETokenizer.load(out / "tokenizer.json")
        state = json.loads((out / "train_state.json").read_text())
        model = load_pretrained(out, device=device)
        log = json.loads((out / "train_log.json").read_text())
        print(f"resuming {out} at step {state['step']}")
    else:
        t0 = time.time()
        tok = BPETokenizer.train(train_text, args.vocab_size)
        print(f"tokenizer: {tok.vocab_size} tokens trained in {time.time() - t0:.1f}s")
        model = Llama(build_config(args, tok)).to(device)
        state, log = {"step": 0, "tokens": 0, "elapsed": 0.0}, []
    cfg = model.config
    train_ids = torch.tensor(tok.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    T = cfg.max_seq_len
    if len(train_ids) <= T + 1 or len(val_ids) < T:
        raise SystemExit(f"the text is too short for a context of {T} tokens: "
                         f"{len(train_ids)} train and {len(val_ids)} validation tokens")
    recipe = Recipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr, min_lr_ratio=args.min_lr_ratio,
                    warmup=args.warmup, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
                    eval_every=args.eval_every, eval_windows=args.eval_windows, seed=args.seed, beta1=args.beta1,
                    beta2=args.beta2, eps=args.eps)
    opt = make_optimizer(model, args.lr, args.weight_decay, (args.beta1, args.beta2), args.eps)
    if resume:
        load_optimizer(opt, model, out / "optimizer.safetensors")
    n_params = model.num_parameters()
    print(f"model: {n_params:,} parameters, {cfg.n_layers} layers, dim {cfg.dim}, {cfg.n_heads} heads / "
          f"{cfg.n_kv_heads} KV heads, context {T}; {len(train_ids):,} train / {len(val_ids):,} val tokens; {device}")
    snapshot_steps = parse_steps(args.snapshot_steps)
    snap_dir = Path(args.snapshot_dir) if args.snapshot_dir else out / "snapshots"
    snapshots = []

    from tqdm import tqdm

    step = state["step"]
    bar = tqdm(total=args.steps, initial=step, dynamic_ncols=True, mininterval=2.0, disable=args.quiet)
    last_t, last_tokens = time.time(), state["tokens"]
    stop_at = min(args.steps, step + args.stop_after) if args.stop_after else args.steps
    for r in training_steps(model, train_ids, val_ids, tok.bos_id, recipe, opt, start_step=step,
                            tokens=state["tokens"], elapsed=state["elapsed"], stop_at=stop_at,
                            budget_s=args.budget_s, snapshot_steps=snapshot_steps):
        if r.snapshot:  # the index is rewritten after each one, so an interrupted run's snapshots are listed too
            snapshots.append(save_snapshot(model, snap_dir, r))
            (snap_dir / "snapshots.json").write_text(json.dumps(
                {"command": command_line("llama.train"), "eval_windows": args.eval_windows, "seq_len": T,
                 "snapshots": snapshots}, indent=1) + "\n")
        if r.train_loss is None:
            continue  # the step-0 report: a snapshot before training
        step, state["tokens"] = r.step, r.tokens
        now = time.time()
        tok_s = (r.tokens - last_tokens) / max(now - last_t, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{r.train_loss:.3f}", lr=f"{r.lr:.2e}", tok_s=f"{tok_s:,.0f}")
        last_t, last_tokens = now, r.tokens
        if r.step % args.eval_every == 0 or r.last:
            state["elapsed"] = r.elapsed
            log.append({"step": step, "train_loss": round(r.train_loss, 4), "val_loss": round(r.val_loss, 4),
                        "lr": r.lr, "tokens": state["tokens"], "elapsed": round(state["elapsed"], 1)})
            bar.write(f"step {step}: train {r.train_loss:.4f}, val {r.val_loss:.4f} nats/token")
            state["step"] = step
            save_run(out, model, opt, tok, log, state)
    bar.close()
    state["step"] = step
    if step < args.steps:
        print(f"stopped at step {step} of {args.steps}; continue with --resume")
        return {"stopped_at": step}
    model.eval()
    model.attn_backend = "manual"
    full = loss_per_char(model, tok, val_text, T)
    test_slice = loss_per_char(model, tok, val_text[:TEST_SLICE_CHARS], T)
    summary = {"val_loss_per_token": full["per_token"], "val_loss_per_char": full["per_char"],
               "test_slice_loss_per_char": test_slice["per_char"],
               "val_tokens": full["tokens"], "val_chars": full["chars"], "parameters": n_params, "steps": step,
               "tokens_seen": state["tokens"], "elapsed_s": round(state["elapsed"], 1), "device": str(device),
               "hardware": hardware(device), "command": command_line("llama.train")}
    state["summary"] = summary
    save_run(out, model, opt, tok, log, state)
    print(json.dumps(summary, indent=2))
    if args.ship:
        ship(out, Path(args.ship), model, tok, summary, val_text)
    return summary


def parse_steps(text: str | None) -> list[int]:
    """'0,50,100' -> [0, 50, 100] (the steps at which to save a snapshot)."""
    return sorted({int(s) for s in text.split(",") if s.strip()}) if text else []


def save_snapshot(model: Llama, root: Path, r: StepReport) -> dict:
    """The weights after r.step updates, fp16, in root/step_000100/ (Hugging Face layout); returns its index row."""
    name = f"step_{r.step:06d}"
    save_pretrained(model, root / name, dtype=torch.float16)
    return {"step": r.step, "dir": name, "train_loss": None if r.train_loss is None else round(r.train_loss, 4),
            "val_loss": round(r.val_loss, 4), "tokens": r.tokens, "elapsed": round(r.elapsed, 1)}


def hardware(device: torch.device) -> str:
    return (f"{cpu_name()}, {torch.get_num_threads()} thread(s)"
            + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))


def command_line(module: str) -> str:
    return f"python -m {module} " + " ".join(shlex.quote(a) for a in sys.argv[1:])


# ----------------------------------------------------------------------------- the shipped copy


def ship(run: Path, dest: Path, model: Llama, tok: BPETokenizer, summary: dict, val_text: str) -> None:
    """Write the compact shipped model (fp16 storage) and its card into dest.

    The losses on the card are measured again on the fp16 weights as shipped, on CPU."""
    dest.mkdir(parents=True, exist_ok=True)
    save_pretrained(model, dest, dtype=torch.float16)
    tok.save(dest / "tokenizer.json")
    model = load_pretrained(dest, device="cpu")
    full = loss_per_char(model, tok, val_text)
    summary = {**summary, "val_loss_per_token": full["per_token"], "val_loss_per_char": full["per_char"],
               "test_slice_loss_per_char": loss_per_char(model, tok, val_text[:TEST_SLICE_CHARS])["per_char"]}
    (dest / "train_log.json").write_text((run / "train_log.json").read_text())
    (dest / "MODEL_CARD.md").write_text(model_card(model, tok, summary))
    (dest / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    # A short piece of the held-out text, for lessons that measure a loss live (ablations, GQA pooling).
    (dest / "val_excerpt.txt").write_text(val_text[:EXCERPT_CHARS], encoding="utf-8")
    print(f"shipped to {dest}")


def model_card(model: Llama, tok: BPETokenizer, s: dict) -> str:
    cfg = model.config
    prompts = ["ROMEO:", "First Citizen:\nWe are", "KING HENRY:\nO, "]
    greedy, sampled = [], []
    for p in prompts:
        ids = tok.encode(p, add_bos=True)
        greedy.append(p + decode_continuation(tok, ids, generate(model, ids, 60)))
        sampled.append(p + decode_continuation(tok, ids, generate(model, ids, 60, temperature=0.8, top_k=50, seed=0)))
    fence = "\n```\n"
    gens = "\n".join(f"**Greedy** from `{p!r}`:{fence}{g}{fence}\n**Sampled** (temperature 0.8, top-k 50, seed 0):"
                     f"{fence}{x}{fence}" for p, g, x in zip(prompts, greedy, sampled))
    return f"""# The Inside LLaMA course model

A baby Llama trained from scratch by this project's own script on TinyShakespeare, so every
picture in the course comes from one real model, from its tokenizer to its attention heads.

| | |
|---|---|
| data | TinyShakespeare (1,115,394 characters); the last 10% by position is validation, never trained on |
| tokenizer | the project's byte-level BPE (`llama/tokenizer`), {tok.vocab_size} tokens, trained on the training split; `<s>` (BOS) starts every training window |
| architecture | Llama: RMSNorm (pre-norm), RoPE (theta {cfg.rope_theta:g}), SwiGLU (hidden {cfg.hidden_dim}), GQA with {cfg.n_heads} query heads sharing {cfg.n_kv_heads} KV heads; {cfg.n_layers} layers, width {cfg.dim}, head size {cfg.head_dim}, context {cfg.max_seq_len} tokens, tied embeddings |
| parameters | {s['parameters']:,} |
| training | {s['steps']:,} steps of AdamW with warmup and cosine decay, {s['tokens_seen']:,} tokens seen |
| hardware | {s['hardware']} ({s['device']}) |
| wall time | {s['elapsed_s'] / 60:.1f} minutes |
| validation loss | **{s['val_loss_per_token']:.4f} nats per token**, **{s['val_loss_per_char']:.4f} nats per character** ({s['val_tokens']:,} tokens, {s['val_chars']:,} characters) |
| test slice | {s['test_slice_loss_per_char']:.4f} nats per character on the first {TEST_SLICE_CHARS:,} characters of the validation split (re-measured by `tests/test_course_model.py`) |
| storage | fp16 safetensors (the loader computes in fp32) |

Produced by:

```bash
{s['command']}
```

## Generations

{gens}
"""


def _option(integer: bool = False, **limits):
    """An argparse type: the number, or "argument --grad-clip: must be ..." (check_option's limits)."""
    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if integer else 'a number'}, not {text!r}")
        try:
            check_option("it", value, integer=integer, **limits)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("it ")) from None
        return value
    parse.__name__ = "integer" if integer else "number"
    return parse


def _steps_list(text: str) -> str:
    try:
        steps = parse_steps(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be step numbers separated by commas, e.g. 0,50,100, not {text!r}")
    if any(s < 0 for s in steps):
        raise argparse.ArgumentTypeError(f"steps count from 0, not {text!r}")
    return text


def parse_args(argv=None):
    count, positive = _option(integer=True, low=1), _option(low=0, low_open=True)
    p = argparse.ArgumentParser(prog="python -m llama.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="../shared/data/tinyshakespeare.txt", help="training text file (UTF-8)")
    p.add_argument("--out", default="runs/baby", help="run directory (checkpoints, log)")
    p.add_argument("--preset", default="baby", choices=sorted(PRESETS), help="model size preset")
    p.add_argument("--dim", type=count, help="override the preset's width")
    p.add_argument("--n-layers", type=count, help="override the preset's layer count")
    p.add_argument("--n-heads", type=count, help="override the preset's query heads")
    p.add_argument("--n-kv-heads", type=count, help="override the preset's key/value heads")
    p.add_argument("--seq-len", type=count,
                   help="context length (default: the preset's max_seq_len)")
    p.add_argument("--vocab-size", type=count, default=1024, help="BPE vocabulary size, special tokens included")
    p.add_argument("--steps", type=count, default=3000)
    p.add_argument("--batch-size", type=count, default=16)
    p.add_argument("--lr", type=positive, default=2e-3)
    p.add_argument("--min-lr-ratio", type=_option(low=0, high=1), default=0.1, help="final learning rate / peak")
    p.add_argument("--warmup", type=_option(integer=True, low=0), default=100)
    p.add_argument("--weight-decay", type=_option(low=0), default=0.1)
    p.add_argument("--grad-clip", type=_option(low=0, note="0 turns clipping off"), default=1.0,
                   help="clip the gradients' global norm at this value; 0 turns clipping off")
    p.add_argument("--beta1", type=_option(low=0, high=1, high_open=True), default=0.9, help="AdamW's beta1")
    p.add_argument("--beta2", type=_option(low=0, high=1, high_open=True), default=0.95, help="AdamW's beta2")
    p.add_argument("--eps", type=positive, default=1e-8, help="AdamW's epsilon")
    p.add_argument("--eval-every", type=count, default=250)
    p.add_argument("--eval-windows", type=count, default=40, help="validation windows per periodic evaluation")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=count, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--stop-after", type=count,
                   help="stop (with a checkpoint) after this many steps of this invocation; --resume continues "
                        "with the same learning-rate schedule, for training in several sittings")
    p.add_argument("--budget-s", type=positive, help="also stop after this many seconds of training")
    p.add_argument("--snapshot-steps", type=_steps_list,
                   help="save fp16 weights after these steps, e.g. 0,50,100 (0: before training)")
    p.add_argument("--snapshot-dir", help="where the snapshots go (default: OUT/snapshots)")
    p.add_argument("--max-chars", type=count, help="use only the first N characters of the file (quick tests)")
    p.add_argument("--ship", help="also write the compact shipped model (fp16 + model card) to this directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    main()
