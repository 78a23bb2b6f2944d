"""Forward throughput of our Llama against transformers on the same weights, and decode speed with and
without the KV cache. Prints ratios measured side by side in this one run (not a test).

    python bench/bench_model.py

Targets (issue 2): our forward at least as fast as transformers (ratio >= 1.0); cached decoding at least
5x uncached at 512 positions.
"""

import sys
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
                c.length = n  # rewrite position n each call, as the next decode step would
            model(ids[:, n:], torch.tensor([n]), cache=cache)

        t_c, t_u = paired_times(cached, lambda: model(ids))
        print(f"{n:>6} {1 / t_c:>13,.0f} {1 / t_u:>15,.0f} {t_u / t_c:>8.1f}x")


def main():
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
