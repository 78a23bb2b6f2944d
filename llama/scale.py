"""Smaller models on more data: two model sizes trained at the same compute, the course's own scaling experiment.

    python -m llama.scale --seeds 0 1 2 --threads 1 --out assets/scale

Both models use the course model's recipe, tokenizer and data (TinyShakespeare, the same 90/10 split as
`llama.train`). The large one is the course configuration trained for `--steps` steps; the small one is a narrower,
shallower Llama trained on more tokens until it has spent the same training compute, counted as 6 N D (N parameters,
D tokens seen; Kaplan et al. 2020, section 2.1, as the LLaMA and Chinchilla papers count it). Each run records its
validation loss against tokens seen; the final loss is in nats per character on the same held-out text as the
ablation (`llama.ablate`), so the two sizes compare on one scale, with the seed spread beside them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .ablate import FINAL_CHARS, run_one
from .checkpoint import load_model_config
from .config import LlamaConfig
from .model import Llama
from .tokenizer import BPETokenizer
from .train import Recipe, command_line, hardware, split_text


def sizes(base: LlamaConfig) -> dict[str, LlamaConfig]:
    """The two model sizes: the course configuration and one about a quarter of its parameters (half the width,
    two thirds of the depth, the same head size, half the query and K/V heads)."""
    small = base.replace(dim=base.dim // 2, n_layers=max(2, base.n_layers * 2 // 3), n_heads=max(2, base.n_heads // 2),
                         n_kv_heads=max(1, base.n_kv_heads // 2), hidden_dim=None, head_dim=None)
    return {"large": base, "small": small}


def study(data: str | Path, model_dir: str | Path, recipe: Recipe, seeds: list[int], seq_len: int, log=print) -> dict:
    model_dir = Path(model_dir)
    base = load_model_config(model_dir).replace(max_seq_len=seq_len)
    tok = BPETokenizer.load(model_dir / "tokenizer.json")
    train_text, val_text = split_text(Path(data).read_text(encoding="utf-8"))
    ids = (torch.tensor(tok.encode(train_text), dtype=torch.long), torch.tensor(tok.encode(val_text), dtype=torch.long))
    final_text = val_text[:FINAL_CHARS]
    cfgs = sizes(base)
    n = {name: Llama(cfg).num_parameters() for name, cfg in cfgs.items()}
    tokens_per_step = recipe.batch_size * seq_len
    budget = 6 * n["large"] * recipe.steps * tokens_per_step  # FLOPs: the large model's whole run
    out = {"command": command_line("llama.scale"), "hardware": hardware(torch.device("cpu")), "recipe": recipe.__dict__,
           "seeds": seeds, "seq_len": seq_len, "tokens_per_step": tokens_per_step, "budget_flops": budget,
           "final_text": f"the first {len(final_text):,} characters of the validation split (last 10% of the file)",
           "sizes": []}
    for name, cfg in cfgs.items():
        steps = round(budget / (6 * n[name] * tokens_per_step))
        r = Recipe(**{**recipe.__dict__, "steps": steps, "eval_every": max(1, steps // 8),
                      "warmup": max(1, round(recipe.warmup * steps / recipe.steps))})
        runs = []
        for seed in seeds:
            runs.append(run_one(cfg, ids, tok, final_text, r, seed))
            log(f"{name}: {n[name]:,} parameters, seed {seed}: {runs[-1]['final_per_char']:.4f} nats/char after "
                f"{steps} steps, {runs[-1]['wall_s']:.0f} s")
        out["sizes"].append({"name": name, "config": cfg.to_dict(), "parameters": n[name], "steps": steps,
                             "tokens": steps * tokens_per_step, "runs": runs})
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m llama.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="assets/data/tinyshakespeare.txt")
    p.add_argument("--model", default="assets/model")
    p.add_argument("--out", default="assets/scale")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=80, help="steps of the large model; the small one takes more")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = Recipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, eval_every=10,
                    eval_windows=8)
    result = study(args.data, args.model, recipe, args.seeds, args.seq_len)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"wrote {out / 'scale.json'}")
    return result


if __name__ == "__main__":
    main()
