"""Latency of the RoPE lesson's interactions: the compute function alone, and the round trip through
gradio_client against the real app, p50 and p95 over 50 calls each (not a test).

    python bench/bench_rope.py              # the course model (assets/model, or $INSIDE_LLAMA_MODEL)
    python bench/bench_rope.py --threads 1  # torch/OpenMP threads for this process and the served app

Each call varies its input the way a learner would (a new shuffle, the next slider position, another
variant), so the numbers include the traced forward passes a new input needs. Targets: compute p95 < 50 ms,
round trip p95 < 250 ms. The first loss measurement of a variant runs the model over the validation
slice (with a progress bar on the page); it is timed separately, cold, below the table.
"""

import argparse
import itertools
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
_parser = argparse.ArgumentParser(description="RoPE lesson latency")
_parser.add_argument("--threads", type=int, default=None,
                     help="OMP_NUM_THREADS for this process and the app it serves (default: torch's own choice)")
THREADS = _parser.parse_args().threads
if THREADS:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)  # before torch is imported; the served app inherits it
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

from bench.latency import percentiles, report, served_app, time_calls  # noqa: E402
from lessons.course import load_course_model  # noqa: E402
from lessons.rope import compute as C  # noqa: E402

N = 50
TEXT = C.DEFAULT_TEXT


def interactions(cm):
    """(name, compute call, (api_name, args) for the round trip); each call takes the next input in a cycle."""
    c = cm.config
    L, P = c.max_seq_len, c.head_dim // 2
    q, k = len(C.prepared(cm, TEXT, C.ROTATE_TOKENS).ids) - 1, 3
    seeds, ms, shifts = itertools.count(), itertools.count(), itertools.count()
    positions = itertools.cycle(range(8, L + 1, 8))
    logs = itertools.cycle([x / 10 for x in range(20, 70)])
    heads = itertools.cycle([(la, h, v) for v in C.VARIANTS for la in range(c.n_layers) for h in range(c.n_heads)])
    texts = (f"{TEXT} ({i})" for i in itertools.count())  # a new text each call: its forward passes are not cached

    def cyc(it):
        return lambda: next(it)

    rows = [
        ("shuffle again (new shuffle)", cyc(seeds), lambda s: C.shuffle_scores(cm, TEXT, 0, C.next_seed(s)[0]),
         lambda s: ("/rope_new_shuffle", (TEXT, 0, s))),
        ("four schemes (positions slider)", cyc(positions), lambda n: C.schemes(cm, TEXT, n, 8),
         lambda n: ("/rope_schemes", (TEXT, n, 8))),
        ("rotate (position m slider)", cyc(ms), lambda m: C.rotate(cm, TEXT, 0, 0, q, k, m % L, k, m % P),
         lambda m: ("/rope_rotate", (TEXT, 0, 0, q, k, m % L, k, m % P))),
        ("relative (shift slider)", cyc(shifts), lambda s: C.relative_shift(cm, TEXT, 0, 0, q, k, q, k, s % (L - q)),
         lambda s: ("/rope_relative", (TEXT, 0, 0, q, k, q, k, s % (L - q)))),
        ("spectrum (rope_theta slider)", cyc(logs), lambda x: C.spectrum(cm, x),
         lambda x: ("/rope_spectrum", (x,))),
        ("compare attention (layer/head/variant)", cyc(heads), lambda a: C.compare_attention(cm, TEXT, *a),
         lambda a: ("/rope_compare_attention", (TEXT, *a))),
        ("compare attention (new text)", cyc(texts), lambda t: C.compare_attention(cm, t, 1, 1, "none"),
         lambda t: ("/rope_compare_attention", (t, 1, 1, "none"))),
        ("new text: pickers (rope_tokens)", cyc(texts), lambda t: C.token_choices(cm, t),
         lambda t: ("/rope_tokens", (t,))),
        ("loss change (measured before)", cyc(itertools.cycle(["none", "500000"])), lambda v: C.loss_change(cm, v),
         lambda v: ("/rope_loss_change", (v,))),
        ("reveal: RoPE off (measured before)", cyc(itertools.repeat("lot")), lambda p: C.reveal(cm, "none", p),
         lambda p: ("/rope_reveal_rope_off", (p,))),
    ]
    return rows


def main():
    cm = load_course_model(device="cpu")
    torch.set_grad_enabled(False)
    print(f"RoPE lesson, model {cm.path} ({cm.model.num_parameters():,} parameters), "
          f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f}\n")
    rows = interactions(cm)
    compute = []
    for name, nxt, fn, _ in rows:
        compute.append(time_calls(lambda: fn(nxt()), n=N))
    with served_app() as url:
        client = Client(url, verbose=False)
        results = []
        for (name, nxt, _, api), comp in zip(rows, compute):
            def call():
                api_name, args = api(nxt())
                client.predict(*args, api_name=api_name)
            results.append((name, comp, time_calls(call, n=N)))
    report(results)

    def cold():
        C.clear_caches()  # new variant model, new traces, new losses: what the first press of the button costs
        C.loss_change(cm, "none")
    times = time_calls(cold, n=10, warmup=1)
    p50, p95 = percentiles(times)
    print(f"\nloss change, cold (variant built, 2 x {C.LOSS_CHARS:,} characters scored; the page shows progress): "
          f"p50 {p50:.0f} ms, p95 {p95:.0f} ms over 10 calls")


if __name__ == "__main__":
    main()
