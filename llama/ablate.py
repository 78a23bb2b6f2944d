"""What each Llama part buys: train the course configuration varied one switch at a time.

    python -m llama.ablate --steps 120 --seeds 0 1 --threads 1 --out assets/ablation

Every variant is the course model's config (assets/model/config.json) with ONE change from Llama's
choice: the norm (RMSNorm -> LayerNorm), the position scheme (RoPE -> learned, sinusoidal, none), the
feed-forward (SwiGLU -> ReLU or GELU, widened to the same parameter count), the number of key/value
heads (MHA, GQA, MQA) and the norm placement (pre -> post). All variants train with the same recipe,
data, tokenizer (the course model's), number of steps (or seconds) and seeds, through the one training
loop `llama.train.training_steps`. Each run ends with its validation loss in nats per *character* on
the same held-out text, so the variants are compared on one scale.

The result is one small JSON file (`ablation.json`): per run, the loss curves, the final loss, the
parameter count and the wall time, plus the command line and the recipe.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .checkpoint import load_model_config
from .config import LlamaConfig
from .model import Llama
from .tokenizer import BPETokenizer
from .train import Recipe, _option, command_line, hardware, loss_per_char, split_text, training_steps

ROOT = Path(__file__).resolve().parents[1]
FINAL_CHARS = 20_000  # the final loss is measured on this start of the validation split (the same for every run)


def ffn_changes(base: LlamaConfig, ffn: str) -> dict:
    """Config changes that swap a SwiGLU config's feed-forward for `ffn` at the same parameter count: ReLU and
    GELU have two matrices where SwiGLU has three, so their hidden size is 1.5x SwiGLU's (Shazeer 2020 compares
    GLU variants the same way). Empty for "swiglu"."""
    return {} if ffn == "swiglu" else {"ffn": ffn, "hidden_dim": base.hidden_dim * 3 // 2}


def variants(base: LlamaConfig) -> dict[str, dict]:
    """Name -> config changes; "llama" is the course config unchanged. The one-switch variants of `base`.

    ReLU and GELU feed-forwards get SwiGLU's parameter count (`ffn_changes`).

        >>> sorted(variants(LlamaConfig(dim=64, n_heads=4, n_kv_heads=2, hidden_dim=128)))[:3]
        ['ffn=gelu', 'ffn=relu', 'llama']
    """
    out = {"llama": {},
           "norm=layernorm": {"norm": "layernorm"},
           "position=learned": {"position": "learned"},
           "position=sinusoidal": {"position": "sinusoidal"},
           "position=none": {"position": "none"},
           "ffn=relu": ffn_changes(base, "relu"),
           "ffn=gelu": ffn_changes(base, "gelu"),
           "norm_placement=post": {"norm_placement": "post"}}
    # K/V heads: every head its own (MHA), the course's grouping, and one shared (MQA); only divisors of n_heads.
    for kv in sorted({base.n_heads, base.n_kv_heads, 1}, reverse=True):
        if kv != base.n_kv_heads:
            out[f"n_kv_heads={kv}"] = {"n_kv_heads": kv}
    return out


def run_one(cfg: LlamaConfig, ids: tuple[torch.Tensor, torch.Tensor], tok: BPETokenizer, final_text: str,
            recipe: Recipe, seed: int, budget_s: float | None = None) -> dict:
    """Train one model from seed `seed` (initial weights and batch order); its curves and final loss."""
    torch.manual_seed(seed)
    model = Llama(cfg)
    t0 = time.time()
    curve, val = [], []
    for r in training_steps(model, *ids, tok.bos_id, recipe.__class__(**{**recipe.__dict__, "seed": seed}),
                            budget_s=budget_s):
        curve.append(round(r.train_loss, 4))
        if r.val_loss is not None:
            val.append([r.step, round(r.val_loss, 4)])
    wall = time.time() - t0
    model.eval()
    final = loss_per_char(model, tok, final_text, cfg.max_seq_len)
    return {"seed": seed, "steps": len(curve), "train_loss": curve, "val_loss": val,
            "final_per_char": round(final["per_char"], 4), "final_per_token": round(final["per_token"], 4),
            "wall_s": round(wall, 1)}


def ablate(data: str | Path, model_dir: str | Path, recipe: Recipe, seeds: list[int], budget_s: float | None = None,
           seq_len: int | None = None, only: list[str] | None = None, log=print,
           final_chars: int = FINAL_CHARS) -> dict:
    """Every variant x every seed; returns the JSON-ready study (see the module docstring)."""
    model_dir = Path(model_dir)
    base = load_model_config(model_dir)
    if seq_len:
        base = base.replace(max_seq_len=seq_len)
    tok = BPETokenizer.load(model_dir / "tokenizer.json")
    train_text, val_text = split_text(Path(data).read_text(encoding="utf-8"))
    ids = (torch.tensor(tok.encode(train_text), dtype=torch.long), torch.tensor(tok.encode(val_text), dtype=torch.long))
    final_text = val_text[:final_chars]
    study = {"command": command_line("llama.ablate"), "hardware": hardware(torch.device("cpu")),
             "recipe": recipe.__dict__, "budget_s": budget_s, "seeds": seeds, "base_config": base.to_dict(),
             "final_text": f"the first {len(final_text):,} characters of the validation split (last 10% of the file)",
             "variants": []}
    for name, change in variants(base).items():
        if only and name not in only:
            continue
        cfg = base.replace(**change)
        runs = []
        for seed in seeds:
            runs.append(run_one(cfg, ids, tok, final_text, recipe, seed, budget_s))
            log(f"{name:22s} seed {seed}: {runs[-1]['final_per_char']:.4f} nats/char after {runs[-1]['steps']} steps, "
                f"{runs[-1]['wall_s']:.0f} s")
        study["variants"].append({"name": name, "change": change, "parameters": Llama(cfg).num_parameters(),
                                  "runs": runs})
    return study


def parse_args(argv=None):
    count = _option(integer=True, low=1)  # the training CLI's checks: a clear message naming the option
    p = argparse.ArgumentParser(prog="python -m llama.ablate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="assets/data/tinyshakespeare.txt")
    p.add_argument("--model", default="assets/model", help="the course model: its config and tokenizer")
    p.add_argument("--out", default="assets/ablation", help="directory for ablation.json")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=count, default=120, help="optimizer steps per run (the cosine runs over them)")
    p.add_argument("--budget-s", type=_option(low=0, low_open=True), help="also stop each run after this many seconds of training")
    p.add_argument("--batch-size", type=count, default=8)
    p.add_argument("--seq-len", type=count, default=128, help="context length of the runs (the course model: 256)")
    p.add_argument("--lr", type=_option(low=0, low_open=True), default=2e-3)
    p.add_argument("--warmup", type=_option(integer=True, low=0), default=12)
    p.add_argument("--eval-every", type=count, default=20)
    p.add_argument("--eval-windows", type=count, default=8)
    p.add_argument("--threads", type=count, help="CPU threads for torch")
    p.add_argument("--only", nargs="+", help="run only these variants (names as in the JSON)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = Recipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                    eval_every=args.eval_every, eval_windows=args.eval_windows)
    study = ablate(args.data, args.model, recipe, args.seeds, args.budget_s, args.seq_len, args.only)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(study, separators=(",", ":")) + "\n")
    print(f"wrote {out / 'ablation.json'}")
    return study


if __name__ == "__main__":
    main()
