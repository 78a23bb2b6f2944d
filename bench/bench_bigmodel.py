"""Real-size Llamas through the picker: resident memory and time of every page's main actions on a 1B-shape model.

The bench builds the checkpoint itself (no download): a Llama with the shape of a published model (default
TinyLlama-1.1B: hidden 2048, 22 layers, 32 query heads sharing 4 K/V heads, SwiGLU 5632, vocabulary 32,000, context
2048) and random weights, saved in bf16 safetensors with a byte-level BPE trained here by Hugging Face `tokenizers` on
the shipped TinyShakespeare (it stops short of 32,000 tokens, so the embedding table is padded: as in many published
checkpoints). It loads the model as the picker does (lessons.models.load_model: fp32 on a CPU), then runs what each
page computes when a learner opens it with that model picked (the page's `refresh(cm)`, which widgets.on_model sends)
and its long actions (reveals, measurements, conversions, generation), one page after the other in one process,
sampling the process's resident memory every 20 ms.

It prints, per page, the seconds taken and the peak resident memory, and at the end the peak against the target:
under 2x the model's own fp32 size plus 1 GB (the model itself, one variant or working copy's worth, and room for
activations and caches).

    .venv/bin/python bench/bench_bigmodel.py                        # TinyLlama-1.1B shape, every page (minutes)
    .venv/bin/python bench/bench_bigmodel.py --shape smollm2-135m   # a smaller shape, same pages
    .venv/bin/python bench/bench_bigmodel.py --pages rope,gqa --dir /tmp/tinyllama   # reuse a built checkpoint
    cd ../main-checkout && python /path/to/bench_bigmodel.py --root .  # the same bench against another checkout

Each action is given a generous budget and run once; a page whose action fails prints the error and the bench goes on.

Measured on the 2-core development machine under heavy load from other work (seconds are several times a quiet
machine's), TinyLlama-1.1B shape, fp32 model 4.10 GB, target 9.42 GB:
- before (llama.variant absent: every RoPE variant a full copy kept by an lru_cache of 8): RoPE page opened 8.79 GB,
  after its second variant 12.86 GB, GQA page opened 13.06 GB (stopped there: the machine had 2 GB left).
- after: peak 5.81 GB over tokenization, attention, RoPE, RMSNorm, SwiGLU, GQA (pooling sweep and repeat included)
  and the KV-cache page; opening times 35-433 s, the KV-cache timing 1,357 s (under load).

Speed (issue 25, "Speed on a CPU"), same machine and shape, seconds of the main actions; load average 5-9 from other
work, so the same action moves 2-3x between runs. Before: main at 8202150 (its own bench); after: lessons.cost sizes
the big model's views and the `estimate` column is what the page states before the action:
    page / action                         before   after (estimate)
    kv_cache open                           96.9    2.1-12.3   (step-by-step run: 12 tokens -> 3)
    kv_cache measure                       196.3    4.8-42.8 (18)  (13 steps x 3 runs -> 4-5 steps x 1)
    kv_cache reveal: same tokens           126.9   20.6-44.8 (18)  (32 tokens both ways -> fewer, within 20 s)
    rope loss, RoPE off                    125.1   23.1-38.9 (94-110)  (3,000 characters -> about 256 tokens)
    rope loss, theta 500,000                29.1   15.5-16.0 (47-55)
    gqa open                                34.7   19.0-24.7
    gqa reveal: pooling sweep               54.4   28.1-34.8 (94-110)
    sampling generate (24 tokens)          232.7   43.5-88.1 (20-148)
    next_token open                         21.0   12.6-26.2
The estimates run 0.3x-4x the time measured: the rate is measured once, on the model, at one moment of a machine
whose load swings; they are stated as "about".
Opening each page with the model picked (its `refresh`), on a quieter machine (load 2), TinyLlama shape, seconds
measured once beside the page's `opening_cost` (said in its progress line while it opens; under 1 s says nothing):
kv_cache 8.3 (8.5), gqa 4.2 (5.5), rope 3.0 (2.7), next_token 3.0 (2.3), meta_code 2.4 (2.0), swiglu 1.0 (0.8),
attention 0.8 (0.7), assembled 0.8 (0.5), relative 0.8 (0.5), rmsnorm 0.7 (0.7), sampling 0.8 (0.3); tokenization
4.0 has no estimate (its first BPE training and the 5,000-point embedding map: Python work, not the model's passes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
SHAPES = {  # Hugging Face config fields of published Llama shapes
    "tinyllama-1.1b": dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                           intermediate_size=5632, vocab_size=32000, max_position_embeddings=2048, rope_theta=10000.0,
                           tie_word_embeddings=False),
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                         tie_word_embeddings=True),
}


# ----------------------------------------------------------------------------- the checkpoint


def build_checkpoint(out: Path, shape: str, seed: int = 0) -> None:
    """config.json, tokenizer.json (+ tokenizer_config.json) and model.safetensors (bf16, random N(0, 0.02), norms 1)
    for `shape`, written to `out`. Run in a child process, so the bench's own memory starts clean."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    cfg = dict(SHAPES[shape], architectures=["LlamaForCausalLM"], model_type="llama", rms_norm_eps=1e-5,
               hidden_act="silu", bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16")
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg["vocab_size"], special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(HERE / "assets" / "data" / "tinyshakespeare.txt")], trainer)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    g = torch.Generator().manual_seed(seed)
    C, H, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hs = C // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hs

    def rand(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(torch.bfloat16)

    state = {"model.embed_tokens.weight": rand(V, C), "model.norm.weight": torch.ones(C, dtype=torch.bfloat16)}
    if not cfg["tie_word_embeddings"]:
        state["lm_head.weight"] = rand(V, C)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        state.update({p + "self_attn.q_proj.weight": rand(C, C), p + "self_attn.k_proj.weight": rand(kv, C),
                      p + "self_attn.v_proj.weight": rand(kv, C), p + "self_attn.o_proj.weight": rand(C, C),
                      p + "mlp.gate_proj.weight": rand(H, C), p + "mlp.up_proj.weight": rand(H, C),
                      p + "mlp.down_proj.weight": rand(C, H),
                      p + "input_layernorm.weight": torch.ones(C, dtype=torch.bfloat16),
                      p + "post_attention_layernorm.weight": torch.ones(C, dtype=torch.bfloat16)})
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    print(f"built {shape}: {sum(t.numel() for t in state.values()):,} parameters, tokenizer "
          f"{tok.get_vocab_size():,} tokens, embedding rows {V:,}, in {out}", flush=True)


# ----------------------------------------------------------------------------- measuring


def rss() -> int:
    """This process's resident memory now, in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Peak:
    """The highest resident memory seen by a 20 ms sampler while the block runs."""

    def __enter__(self):
        self.peak, self.done = rss(), False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while not self.done:
            self.peak = max(self.peak, rss())
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.done = True
        self.thread.join()
        self.peak = max(self.peak, rss())


def drain(x):
    """Run a handler to its end: exhaust a generator (streamed output), return the last value."""
    if hasattr(x, "__next__"):
        last = None
        for last in x:
            pass
        return last
    return x


def actions(cm) -> dict[str, list[tuple]]:
    """Per page: (what, callable, estimate) for opening it with the model picked and for its long actions, each as
    a learner starts it with the page's defaults. `estimate` is lessons.cost's estimate in seconds (what the page
    says before the action runs; for "open", the page's `opening_cost`, said in its progress line while it opens),
    or None where the checkout has none (an older checkout, or no estimate)."""
    from app.pages import (assembled, attention, gqa, kv_cache, next_token, rmsnorm, rope, sampling, swiglu,
                           tokenization, training)
    from lessons.assembled import compute as AS
    from lessons.attention import compute as A
    from lessons.gqa import compute as G
    from lessons.kv_cache import compute as K
    from lessons.next_token import compute as N
    from lessons.rope import compute as R
    from lessons.sampling import compute as S
    from lessons.course import prepare_text

    try:
        from lessons import cost
    except ImportError:  # a checkout before lessons.cost: no estimates
        cost = None

    def est(fn):
        return (lambda: fn().seconds) if cost is not None else None

    P_kv = len(prepare_text(cm, kv_cache.DEFAULT_PROMPT, max_tokens=K.MAX_PROMPT_TOKENS).ids)
    P_s = len(S.prepare_prompt(cm, S.DEFAULT_PROMPT).ids)
    # the page's defaults for this model (the older checkout: its fixed ones)
    n_gen = S.default_new_tokens(cm) if hasattr(S, "default_new_tokens") else sampling.DEFAULTS["max_new_tokens"]
    n_timed = (K.default_timed(cm, P_kv) if hasattr(K, "default_timed")
               else min(kv_cache.DEFAULTS["timed"], K.timing_limit(cm)))
    n_run = K.default_new_tokens(cm, P_kv) if hasattr(K, "default_new_tokens") else 12

    def gen():
        d = sampling.DEFAULTS
        return drain(sampling.generation(cm, sampling.C.DEFAULT_PROMPT, d["temperature"], d["top_k"], d["top_p"],
                                         n_gen, d["seed"]))  # (gr.Progress outside an event does nothing)

    def seeds():
        ids = S.prepare_prompt(cm, S.DEFAULT_PROMPT).ids
        return drain(S.reveal_seeds(cm, ids))

    def opening(page):  # the page's own estimate of opening it (said in its progress line), where it has one
        return est(lambda: page.opening_cost(cm)) if hasattr(page, "opening_cost") else None

    def text_pass(text, most, k=1, lens=False):
        return est(lambda: cost.text_pass(cm, text, most, lens=lens) * k)

    return {
        "tokenization": [("open", lambda: tokenization.refresh(cm), opening(tokenization))],
        "attention": [("open", lambda: attention.refresh(cm), opening(attention)),
                      ("analyze (a new text)", lambda: A.analyze_view(cm, A.DEFAULT_TEXT + " Again.", 0, 0, 1, 1.0),
                       text_pass(A.DEFAULT_TEXT + " Again.", A.MAX_TOKENS)),
                      ("reveal: without 1/sqrt(d)", lambda: A.rerun_without_scaling(cm, A.DEFAULT_TEXT),
                       text_pass(A.DEFAULT_TEXT, A.MAX_TOKENS, 2))],
        "rope": [("open", lambda: rope.refresh(cm), opening(rope)),
                 ("loss, RoPE off", lambda: R.loss_change(cm, "none"), est(lambda: R.loss_cost(cm))),
                 ("loss, theta 500,000", lambda: R.loss_change(cm, "500000"),
                  est(lambda: cost.loss(cm, R.validation_slice(cm, R.loss_chars(cm)), cm.config.max_seq_len)))],
        "rmsnorm": [("open", lambda: rmsnorm.refresh(cm), opening(rmsnorm))],
        "swiglu": [("open", lambda: swiglu.refresh(cm), opening(swiglu))],
        "gqa": [("open", lambda: gqa.refresh(cm), opening(gqa)),
                ("reveal: pooling sweep", lambda: G.pooling_sweep(cm),
                 est(lambda: G.measure_cost(cm) * (len([k for k in G.conversion_options(cm)
                                                        if k <= cm.config.n_kv_heads]) - 1))),
                ("repeat to MHA", lambda: G.repeat_check(cm, gqa.DEFAULT_TEXT),
                 est(lambda: G.repeat_cost(cm, gqa.DEFAULT_TEXT)))],
        "kv_cache": [("open", lambda: kv_cache.refresh(cm), opening(kv_cache)),
                     (f"measure (timing, {n_timed} steps)", lambda: K.timing_view(cm, kv_cache.DEFAULT_PROMPT, n_timed),
                      est(lambda: K.timing_cost(cm, P_kv, n_timed))),
                     (f"step by step ({n_run + 1} tokens)",
                      lambda: K.step_view(cm, kv_cache.DEFAULT_PROMPT, n_run + 1, 0),
                      est(lambda: K.cached_vs_uncached_cost(cm, P_kv, n_run + 1))),
                     ("reveal: same tokens", lambda: K.reveal_same(cm, kv_cache.DEFAULT_PROMPT, K.SAME_CHOICES[0]),
                      est(lambda: K.run_cost(cm, kv_cache.DEFAULT_PROMPT))),
                     ("reveal: speed", lambda: K.reveal_speed(cm, K.SPEED_CHOICES[0]),
                      est(lambda: K.speed_cost(cm)))],
        "sampling": [("open", lambda: sampling.refresh(cm), opening(sampling)),
                     (f"generate ({n_gen} tokens)", gen, est(lambda: S.generation_cost(cm, P_s, n_gen))),
                     ("reveal: seeds", seeds, est(lambda: S.seeds_cost(cm, P_s)))],
        "assembled": [("open", lambda: assembled.refresh(cm), opening(assembled)),
                      ("run the forward pass", lambda: AS.pass_view(cm, assembled.DEFAULT_TEXT + " Again.",
                                                                    assembled.DEFAULTS["box"], 0, 0),
                       text_pass(assembled.DEFAULT_TEXT + " Again.", AS.MAX_TOKENS))],
        "next_token": [("open", lambda: next_token.refresh(cm), opening(next_token)),
                       ("score (a new text)", lambda: N.text_view(cm, N.DEFAULT_TEXT + " Again."),
                        text_pass(N.DEFAULT_TEXT + " Again.", N.MAX_TOKENS, lens=True)),
                       ("reveal", lambda: N.reveal(cm, N.DEFAULT_TEXT, None), None)],
        "training": [("open", lambda: training.refresh(cm), opening(training))],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama-1.1b")
    ap.add_argument("--dir", type=Path, help="checkpoint directory: built there if it has no config.json (default: "
                                              "a temporary directory, removed afterwards)")
    ap.add_argument("--pages", default="all", help="comma-separated page slugs (default: every page)")
    ap.add_argument("--root", type=Path, default=HERE, help="the checkout whose app/ and lessons/ are measured")
    ap.add_argument("--json", type=Path, help="also write the per-action rows to this file")
    ap.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # child process: build and exit
    args = ap.parse_args()
    if args.build:
        build_checkpoint(args.build, args.shape)
        return

    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bigmodel-")
        args.dir = Path(tmp.name)
    if not (args.dir / "config.json").exists():
        t0 = time.time()
        subprocess.run([sys.executable, __file__, "--shape", args.shape, "--build", str(args.dir)], check=True)
        print(f"(checkpoint built in {time.time() - t0:.0f} s)", flush=True)

    sys.path.insert(0, str(args.root.resolve()))
    os.chdir(args.root)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import torch

    torch.set_grad_enabled(False)
    from lessons.models import load_model

    base = rss()
    t0 = time.time()
    with Peak() as load_peak:
        cm = load_model(str(args.dir), "cpu")
    fp32 = sum(p.numel() for p in cm.model.parameters()) * 4
    target = base + 2 * fp32 + (1 << 30)
    gb = 1 / 2**30
    print(f"\n{args.root.resolve().name}: {args.shape}, {cm.model.num_parameters():,} parameters (fp32 "
          f"{fp32 * gb:.2f} GB), tokenizer {cm.tokenizer.vocab_size:,} tokens, embedding rows "
          f"{cm.config.vocab_size:,}; loaded in {time.time() - t0:.0f} s; resident before loading {base * gb:.2f} GB, "
          f"after {rss() * gb:.2f} GB (peak {load_peak.peak * gb:.2f} GB)", flush=True)
    print(f"target: peak resident < {base * gb:.2f} + 2 x {fp32 * gb:.2f} + 1 = {target * gb:.2f} GB\n", flush=True)
    try:  # as the picker does on loading a big model: the rate every estimate uses, measured once on the model
        from lessons import cost

        if cost.big(cm):
            t0 = time.time()
            r = cost.measured_rate(cm)
            P = cm.model.num_parameters()
            print(f"lessons.cost rate, measured in {time.time() - t0:.1f} s: one-token pass "
                  f"{P * (r.read_s + r.flop_s):.2f} s, each further token {P * r.flop_s * 1000:.0f} ms\n", flush=True)
    except ImportError:  # an older checkout: no estimates
        pass
    table = actions(cm)
    pages = list(table) if args.pages == "all" else [p.strip() for p in args.pages.split(",")]
    print(f"{'page':<13} {'action':<34} {'seconds':>8} {'estimate':>9} {'peak GB':>8} {'after GB':>8}  result",
          flush=True)
    overall, rows = load_peak.peak, []
    for page in pages:
        for what, fn, estimate in table[page]:
            guess = ""
            if estimate is not None:  # said before the action (lessons.cost; the first one measures the rate)
                try:
                    guess = f"{estimate():.1f}"
                except Exception as e:  # noqa: BLE001 (an estimate that fails is reported, the action still runs)
                    guess = f"({type(e).__name__})"
            t0 = time.time()
            with Peak() as p:
                try:
                    drain(fn())
                    result = "ok"
                except Exception as e:  # a page that fails is reported, the others still measured
                    result = f"FAILED: {type(e).__name__}: {str(e)[:90]}"
                    if os.environ.get("BENCH_TRACEBACK"):
                        traceback.print_exc()
            overall = max(overall, p.peak)
            seconds = time.time() - t0
            rows.append(dict(page=page, action=what, seconds=round(seconds, 1), estimate=guess, result=result))
            print(f"{page:<13} {what:<34} {seconds:>8.1f} {guess:>9} {p.peak * gb:>8.2f} {rss() * gb:>8.2f}  "
                  f"{result}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows))
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\npeak resident {overall * gb:.2f} GB (ru_maxrss {ru * gb:.2f} GB) against the target {target * gb:.2f} GB: "
          f"{'MET' if max(overall, ru) < target else 'NOT MET'} "
          f"({max(overall, ru) / (2 * fp32 + (1 << 30) + base):.2f} of it)", flush=True)
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
