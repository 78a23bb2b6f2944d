"""The library on a CUDA GPU, in fp32 and bf16: parity with transformers and timings, in one run.

    python bench/gpu_check.py            # on a machine with a GPU; elsewhere it says it skipped (exit 0)
    python bench/gpu_check.py --device cpu --small   # the same script on the CPU, the page actions on a small
                                                     # shape: checks that the script itself works, times mean little

After the checks it times every page's main actions with a 1B-shape model (TinyLlama-1.1B's shape, random weights,
built by bench/bench_bigmodel.py in a temporary directory; `--small` builds a 4-layer shape instead) loaded as the
picker loads it, and prints each action's seconds and whether it stays under 1 s (what a learner should wait on a
GPU). An action that fails counts as a failed check; a slow one is printed, not failed (timings are not asserts).

Every check is a function registered with `@check(name)`; it receives the device and dtype and returns
a short result string, or raises AssertionError when the numbers disagree. Each runs in fp32 and in
bf16 and is timed. To add a check (for example a lesson's main function on a real model), write one
more `@check` function below; nothing else changes.

In fp32 the tolerances are the CPU tests' (1e-4, TF32 off); in bf16 the two implementations round
differently, so logits are compared against transformers' own bf16 run with a bf16-sized tolerance and
greedy tokens are reported as the number of leading tokens that agree.
Exit status: 0 when every check passed (or no GPU), 1 otherwise.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llama import generate, load_pretrained  # noqa: E402

STORIES = ROOT.parent / "shared" / "models" / "stories260K"
CHECKS: list[tuple[str, callable]] = []
TOL = {torch.float32: 1e-4, torch.bfloat16: 5e-2}


def check(name: str):
    def register(fn):
        CHECKS.append((name, fn))
        return fn
    return register


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def agree_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def hf_greedy(model, prompt, n, device):
    out = model.generate(torch.tensor([prompt], device=device), max_new_tokens=n, min_new_tokens=n,
                         do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def compare(ours, ref, vocab, device, dtype, T=200) -> str:
    idx = torch.randint(0, vocab, (2, T), device=device)
    with torch.inference_mode():
        a, b = ours(idx).logits.float(), ref(idx).logits.float()
    diff = float((a - b).abs().max())
    scale = float(b.abs().max())
    assert diff <= TOL[dtype] * max(1.0, scale if dtype != torch.float32 else 1.0), \
        f"max |logit difference| {diff:.3g} (logits up to {scale:.3g})"
    return f"max |dlogit| {diff:.2g}"


def tiny_llama32(path: Path):
    """A random Llama 3.2-shaped checkpoint (tied, theta 500000, llama3 RoPE scaling, GQA 4:1) written by transformers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=2, vocab_size=2000, max_position_embeddings=1024, tie_word_embeddings=True,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 128},
                      eos_token_id=[1998, 1999], initializer_range=0.2)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def load_both(path, device, dtype):
    from transformers import LlamaForCausalLM

    ours = load_pretrained(path, device=device, dtype=dtype)
    ref = LlamaForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager").to(device).eval()
    return ours, ref


@check("stories260K: logits and greedy tokens vs transformers")
def stories(device, dtype):
    ours, ref = load_both(STORIES, device, dtype)
    res = compare(ours, ref, ours.config.vocab_size, device, dtype)
    prompt = [1, 403, 407, 261, 378]
    got, want = generate(ours, prompt, 100, eos_id=None), hf_greedy(ref, prompt, 100, device)
    n = agree_prefix(got, want)
    if dtype == torch.float32:
        assert n == 100, f"greedy tokens differ from step {n}"
    return f"{res}; greedy: {n}/100 tokens agree"


@check("Llama 3.2 shape (llama3 RoPE, tied, GQA 4:1): logits vs transformers")
def llama32(device, dtype):
    with tempfile.TemporaryDirectory() as d:
        ours, ref = load_both(tiny_llama32(Path(d)), device, dtype)
    res = compare(ours, ref, ours.config.vocab_size, device, dtype, T=400)
    got, want = generate(ours, [1, 5, 9], 50, eos_id=None), hf_greedy(ref, [1, 5, 9], 50, device)
    n = agree_prefix(got, want)
    if dtype == torch.float32:
        assert n == 50, f"greedy tokens differ from step {n}"
    return f"{res}; greedy: {n}/50 tokens agree"


@check("cached decoding equals uncached, manual and sdpa attention")
def cached(device, dtype):
    ours = load_pretrained(STORIES, device=device, dtype=dtype)
    out = []
    for backend in ("manual", "sdpa"):
        ours.attn_backend = backend
        a = generate(ours, [1, 403, 407], 60, eos_id=None)
        b = generate(ours, [1, 403, 407], 60, eos_id=None, use_cache=False)
        n = agree_prefix(a, b)
        if dtype == torch.float32:
            assert n == 60, f"{backend}: cached and uncached tokens differ from step {n}"
        out.append(f"{backend} {n}/60")
    return "agree: " + ", ".join(out)


@check("decode speed (stories260K, sdpa, cached)")
def speed(device, dtype):
    ours = load_pretrained(STORIES, device=device, dtype=dtype)
    ours.attn_backend = "sdpa"
    generate(ours, [1], 20, eos_id=None)
    sync(device)
    t = time.perf_counter()
    n = len(generate(ours, [1], 400, eos_id=None))
    sync(device)
    return f"{n / (time.perf_counter() - t):,.0f} tokens/s"


def lesson_check(slug: str):
    """Every lesson's main functions on the GPU: the page's refresh(cm), which computes every model-dependent
    figure and readout of the page (what a learner sees on opening it), for the course model and stories260K."""

    def run(device, dtype):
        import importlib

        from lessons.course import DEFAULT_MODEL_DIR, CourseModel
        from llama.tokenizer.interface import load_tokenizer

        page = importlib.import_module(f"app.pages.{slug}")
        if not hasattr(page, "refresh"):
            raise AssertionError(f"app/pages/{slug}.py has no refresh(cm)")
        out = []
        for path in (DEFAULT_MODEL_DIR, STORIES):
            cm = CourseModel(load_pretrained(path, device=device, dtype=dtype).requires_grad_(False),
                             load_tokenizer(path), Path(path))
            t = time.perf_counter()
            values = page.refresh(cm)
            sync(device)
            out.append(f"{Path(path).name} {len(values)} outputs in {(time.perf_counter() - t) * 1000:.0f} ms")
        return "; ".join(out)

    return run


for _slug in ("tokenization", "attention", "rope", "rmsnorm", "swiglu", "gqa", "kv_cache", "sampling"):
    check(f"lesson {_slug}: the page's figures on the device")(lesson_check(_slug))


SMALL_SHAPE = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                   intermediate_size=688, vocab_size=2048, max_position_embeddings=512, rope_theta=10000.0,
                   tie_word_embeddings=False)


def page_actions(device: torch.device, small: bool) -> tuple[list[dict], int]:
    """Every page's main actions (bench/bench_bigmodel.py's list: opening each page with the model picked, then its
    long actions) on a 1B-shape model built here, each timed once after the model is loaded and warmed up by one
    forward pass. Returns (rows, failures); prints a row per action as it goes."""
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_bigmodel as B

    from lessons.models import load_model

    shape = "small-check" if small else "tinyllama-1.1b"
    B.SHAPES.setdefault("small-check", SMALL_SHAPE)
    rows, failed = [], 0
    with tempfile.TemporaryDirectory(prefix="gpu-check-1b-") as d:
        t = time.perf_counter()
        B.build_checkpoint(Path(d), shape)
        cm = load_model(d, device)
        print(f"\npage actions with the {shape} shape ({cm.model.num_parameters():,} parameters, "
              f"{next(cm.model.parameters()).dtype}) on {device}, built and loaded in {time.perf_counter() - t:.0f} s",
              flush=True)
        with torch.inference_mode():
            cm.model(torch.tensor([[1, 2, 3]], device=device))  # warm-up: kernels, allocator
        sync(device)
        for page, acts in B.actions(cm).items():
            for what, fn, _ in acts:
                sync(device)
                t = time.perf_counter()
                try:
                    B.drain(fn())
                    sync(device)
                    result = ""
                except Exception:  # noqa: BLE001 (a crash is a failed check; print it and go on to the next)
                    result = "ERROR: " + traceback.format_exc(limit=3).strip().splitlines()[-1]
                    failed += 1
                s = time.perf_counter() - t
                rows.append({"page": page, "action": what, "s": round(s, 3), "under_1s": s < 1, "error": result})
                print(f"{'FAIL' if result else 'ok  '} {page:<13} {what:<34} {s:>7.2f} s  "
                      f"{'under 1 s' if s < 1 else 'OVER 1 s'} {result}", flush=True)
    print(f"{sum(r['under_1s'] for r in rows)} of {len(rows)} page actions under 1 s on {device}")
    return rows, failed


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: run the script without a GPU (fp32 only), to check it works")
    ap.add_argument("--small", action="store_true", help="time the page actions on a 4-layer shape, not 1B")
    ap.add_argument("--skip-checks", action="store_true", help="only the page actions")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: SKIPPED - no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing was run.")
        return 0
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 for the 1e-4 comparisons
        torch.backends.cudnn.allow_tf32 = False
        print(f"gpu_check on {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        print(f"gpu_check on the CPU (--device cpu: fp32 only), torch {torch.__version__}")
    rows, failed = [], 0
    dtypes = (torch.float32, torch.bfloat16) if device.type == "cuda" else (torch.float32,)
    for dtype in dtypes if not args.skip_checks else ():
        for name, fn in CHECKS:
            torch.manual_seed(0)
            sync(device)
            t = time.perf_counter()
            try:
                result, ok = fn(device, dtype), True
            except AssertionError as e:
                result, ok = f"FAILED: {e}", False
            except Exception:  # noqa: BLE001 (a crash is a failed check; print it and go on to the next)
                result, ok = "ERROR: " + traceback.format_exc(limit=3).strip().splitlines()[-1], False
            sync(device)
            ms = (time.perf_counter() - t) * 1000
            failed += not ok
            rows.append({"check": name, "dtype": str(dtype).removeprefix("torch."), "ok": ok, "ms": round(ms),
                         "result": result})
            print(f"{'ok  ' if ok else 'FAIL'} {rows[-1]['dtype']:>8} {ms:>8.0f} ms  {name}: {result}", flush=True)
    print(f"\n{len(rows) - failed} of {len(rows)} checks passed")
    pages, page_failed = page_actions(device, args.small)
    print(json.dumps(rows + pages))
    return 1 if failed or page_failed else 0


if __name__ == "__main__":
    sys.exit(main())
