"""Forward throughput of our Llama against transformers on the same weights, decode speed with and
without the KV cache, and the course model's generation speed on one thread: ours now, ours as it was at
an earlier commit, and transformers' `generate`. Prints ratios measured side by side in this one run
(not a test).

    python bench/bench_model.py                    # everything
    python bench/bench_model.py --generate-only    # only the one-thread generation table
    python bench/bench_model.py --before 1a5b250   # the commit the "before" column is taken from

Targets (issue 2): our forward at least as fast as transformers (ratio >= 1.0); cached decoding at least
5x uncached at 512 positions. Issue 11: the course model's cached decode on one thread at least 2x the
"before" column (327 tokens/s when the issue was filed): `llama.fast.DecodeStep` (fused weights, static
shapes; `compile=True` adds torch.compile), passed to generate as decode_step.
"""

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformers import LlamaForCausalLM  # noqa: E402

from llama import Llama, LlamaConfig, load_pretrained, save_pretrained  # noqa: E402

STORIES = ROOT.parent / "shared" / "models" / "stories260K"


def paired_times(fa, fb, repeats=9, warmup=2):
    """Median seconds of fa and of fb, timed alternately (a, b, a, b, ...) so that drift in machine load
    affects both sides alike."""
    for _ in range(warmup):
        fa(), fb()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((fa, ta), (fb, tb)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return sorted(ta)[repeats // 2], sorted(tb)[repeats // 2]


@torch.inference_mode()
def forward_table(name, ours, ref, vocab):
    print(f"\n{name}: forward, 256 tokens ({ours.num_parameters():,} parameters, {torch.get_num_threads()} threads)")
    print(f"{'batch':>6} {'ours tok/s':>12} {'transformers tok/s':>19} {'ratio':>7}")
    for B in (1, 8):
        x = torch.randint(0, vocab, (B, 256))
        t_ours, t_ref = paired_times(lambda: ours(x), lambda: ref(x))
        print(f"{B:>6} {B * 256 / t_ours:>12,.0f} {B * 256 / t_ref:>19,.0f} {t_ref / t_ours:>7.2f}")


@torch.inference_mode()
def decode_table(model):
    print(f"\ndecode one new token after N positions ({model.num_parameters():,} parameters)")
    print(f"{'N':>6} {'cached tok/s':>13} {'uncached tok/s':>15} {'speed-up':>9}")
    for n in (64, 256, 512):
        ids = torch.randint(0, model.config.vocab_size, (1, n + 1))
        cache = model.new_cache(1)
        model(ids[:, :n], torch.arange(n), cache=cache)  # prefill once

        def cached():
            for c in cache:
                c.rewind(n)  # write position n again each call, as the next decode step would
            model(ids[:, n:], torch.tensor([n]), cache=cache)

        t_c, t_u = paired_times(cached, lambda: model(ids))
        print(f"{n:>6} {1 / t_c:>13,.0f} {1 / t_u:>15,.0f} {t_u / t_c:>8.1f}x")


# One generation run in a fresh one-thread process: tokens/s over wall time and over CPU time.
GENERATE = """
import json, sys, time, torch
torch.set_num_threads(1)
which, lib, model_dir, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
prompt = [0, 403, 407, 261, 378]
if which == "transformers":
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    x = torch.tensor([prompt])
    run = lambda: model.generate(x, max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None,
                                 pad_token_id=0)
else:  # "ours:<attention backend>[:fast|:compile]": the speed knobs, chosen here at the entry point
    sys.path.insert(0, lib)
    from llama import generate, load_pretrained
    model = load_pretrained(model_dir, device="cpu")
    _, model.attn_backend, *knob = which.split(":")
    kw = {}
    if knob:  # (a library from before llama.fast has no decode_step argument)
        from llama.fast import DecodeStep
        kw["decode_step"] = DecodeStep(model, compile=knob == ["compile"])
    run = lambda: generate(model, prompt, n, eos_id=None, **kw)
with torch.inference_mode():
    first = time.perf_counter()
    run()  # includes compiling, for the compiled step
    first = time.perf_counter() - first
    best = None
    for _ in range(3):
        w, c = time.perf_counter(), time.process_time()
        run()
        w, c = time.perf_counter() - w, time.process_time() - c
        best = (w, c) if best is None or w < best[0] else best
print(json.dumps({"wall": n / best[0], "cpu": n / best[1], "first": first}))
"""


def export_llama(commit: str, into: Path) -> Path:
    """The llama/ package as it was at `commit`, unpacked into `into`."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "llama"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return into


def generate_table(before: str, n: int = 200, rounds: int = 3):
    """The course model, greedy, cached, 200 new tokens, one thread; each variant in its own process,
    alternating, best of 3 inside each process, median over rounds."""
    model_dir = str(ROOT / "assets" / "model")
    with tempfile.TemporaryDirectory() as tmp:
        old = str(export_llama(before, Path(tmp)))
        variants = [(f"ours {before} (manual)", "ours:manual", old), (f"ours {before} (sdpa)", "ours:sdpa", old),
                    ("ours now (manual)", "ours:manual", str(ROOT)), ("ours now (sdpa)", "ours:sdpa", str(ROOT)),
                    ("ours now (fast step)", "ours:sdpa:fast", str(ROOT)),
                    ("ours now (compiled step)", "ours:sdpa:compile", str(ROOT)),
                    ("transformers generate", "transformers", "")]
        results = {name: [] for name, _, _ in variants}
        for _ in range(rounds):
            for name, which, lib in variants:
                out = subprocess.run([sys.executable, "-c", GENERATE, which, lib, model_dir, str(n)],
                                     capture_output=True, text=True, cwd=ROOT)
                if out.returncode:
                    raise SystemExit(out.stderr[-2000:])
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["wall"] for r in results[f"ours {before} (sdpa)"])
    base_cpu = statistics.median(r["cpu"] for r in results[f"ours {before} (sdpa)"])
    print(f"\ncourse model, greedy cached generation of {n} tokens on one thread")
    print(f"{'':>24} {'tok/s (wall)':>13} {'tok/s (CPU)':>12} {'vs before sdpa (wall / CPU)':>28} "
          f"{'first run s (min-max)':>22}")
    for name, rs in results.items():
        w, c = statistics.median(r["wall"] for r in rs), statistics.median(r["cpu"] for r in rs)
        first = sorted(r["first"] for r in rs)
        print(f"{name:>24} {w:>13,.0f} {c:>12,.0f} {w / base:>18.2f} / {c / base_cpu:.2f} "
              f"{first[0]:>14.2f}-{first[-1]:.2f}")
    print("(first run: the first generation in a fresh process; for the compiled step it includes torch.compile, "
          "cold in the first round, then from inductor's on-disk cache)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="1a5b250", help="git commit of the 'before' generation column")
    ap.add_argument("--generate-only", action="store_true")
    args = ap.parse_args()
    generate_table(args.before)
    if args.generate_only:
        return
    torch.manual_seed(0)
    ours = load_pretrained(STORIES, device="cpu")
    ours.attn_backend = "sdpa"  # the speed knob is chosen here, at the entry point
    ref = LlamaForCausalLM.from_pretrained(STORIES).eval()
    forward_table("stories260K", ours, ref, 512)

    cfg = LlamaConfig(dim=384, n_layers=6, n_heads=6, n_kv_heads=2, vocab_size=4096, max_seq_len=1024,
                      multiple_of=64, tie_embeddings=False)
    with tempfile.TemporaryDirectory() as d:
        save_pretrained(Llama(cfg), d)
        ours = load_pretrained(d, device="cpu")
        ours.attn_backend = "sdpa"
        ref = LlamaForCausalLM.from_pretrained(d).eval()
    forward_table("random Llama", ours, ref, cfg.vocab_size)
    decode_table(ours)


if __name__ == "__main__":
    main()
