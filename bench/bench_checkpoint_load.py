"""Load time and peak memory of a ~250M-parameter bf16 Llama checkpoint: ours against transformers,
measured side by side in this one run (not a test).

    python bench/bench_checkpoint_load.py                    # ours (now) vs transformers
    python bench/bench_checkpoint_load.py --before 1a5b250     # ... and the library as it was at that commit

The checkpoint is written by transformers' own classes (LlamaForCausalLM.save_pretrained, bf16) into a
temporary directory. Each load runs in a fresh subprocess, so its peak RSS (ru_maxrss) is its own; the
imports are counted separately ("after imports") and the table shows what the load itself added.
Loads alternate between the loaders, so both find the file in the page cache alike.

Target (issue 12): load time and peak RSS within 1.5x of transformers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ~248M parameters: 12 layers of width 1024 (GQA 16:4), SwiGLU 4096, a 32000-token vocabulary, untied.
SHAPE = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=12, num_attention_heads=16,
             num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False)

WRITE = """
import json, sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
cfg = LlamaConfig(**json.loads(sys.argv[2]))
with torch.device("cpu"):
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
model.save_pretrained(sys.argv[1])
print(sum(p.numel() for p in model.parameters()))
"""

# One load, measured from inside a fresh process: (seconds, peak RSS MB, RSS after imports MB, dtype).
MEASURE = """
import json, resource, sys, time
which, path, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
import torch
if which == "transformers":
    from transformers import LlamaForCausalLM
else:
    sys.path.insert(0, sys.argv[4])
    from llama import load_pretrained
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss()
t = time.perf_counter()
if which == "transformers":
    model = LlamaForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    w = model.model.embed_tokens.weight
else:
    kw = {} if which == "before" else {"dtype": getattr(torch, dtype)}
    model = load_pretrained(path, device="cpu", **kw)
    w = model.embed_tokens.weight
seconds = time.perf_counter() - t
print(json.dumps({"s": seconds, "peak": rss(), "base": base, "dtype": str(w.dtype).removeprefix("torch.")}))
"""


def run(args: list[str]) -> str:
    out = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return out.stdout.strip().splitlines()[-1]


def export(commit: str, into: Path) -> Path:
    """The llama/ package as it was at `commit`, unpacked into `into`."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "llama"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return into


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="also measure the llama/ package of this git commit (loads in fp32 only)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "ckpt"
        n = int(run([WRITE, str(ckpt), json.dumps(SHAPE)]))
        size = sum(f.stat().st_size for f in ckpt.glob("*.safetensors")) / 2**20
        print(f"checkpoint: {n / 1e6:.0f}M parameters, bf16, {size:.0f} MB of safetensors written by transformers "
              f"{run(['import transformers; print(transformers.__version__)'])}")
        loaders = [("ours", str(ROOT)), ("transformers", "")]
        if args.before:
            loaders.append(("before", str(export(args.before, tmp / "before"))))
        rows = []
        for dtype in ("bfloat16", "float32"):
            results = {name: [] for name, _ in loaders}
            for _ in range(args.repeats):
                for name, path in loaders:
                    if name == "before" and dtype != "float32":
                        continue  # the old loader had no way to keep bf16
                    results[name].append(json.loads(run([MEASURE, name, str(ckpt), dtype, path])))
            rows.append((dtype, results))

        print(f"\n{'loaded as':>10} {'loader':>13} {'time s':>8} {'peak RSS MB':>12} {'load adds MB':>13} "
              f"{'time / tf':>10} {'RSS / tf':>9}")
        for dtype, results in rows:
            tf = results["transformers"]
            tf_s, tf_peak = statistics.median(r["s"] for r in tf), max(r["peak"] for r in tf)
            for name, rs in results.items():
                if not rs:
                    continue
                s, peak = statistics.median(r["s"] for r in rs), max(r["peak"] for r in rs)
                adds = max(r["peak"] - r["base"] for r in rs)
                got = rs[0]["dtype"]
                print(f"{got:>10} {name:>13} {s:>8.2f} {peak:>12,.0f} {adds:>13,.0f} {s / tf_s:>10.2f} "
                      f"{peak / tf_peak:>9.2f}")
        print("\ntime: median of the loads; peak RSS: the largest, imports included; target: ours / transformers "
              "<= 1.5 on both.")


if __name__ == "__main__":
    main()
