"""Latency of the MQA/GQA and KV-cache lessons' interactions: compute alone (lessons.gqa.compute,
lessons.kv_cache.compute) and the round trip through gradio_client against the real app, p50/p95 over 50
calls each. The timing demos (kv_timing, kv_reveal_speed) are left out: they measure time on purpose.

    python bench/bench_gqa_kv.py

Targets: compute p95 < 50 ms, round trip p95 < 250 ms. "new text" changes the text on every call (a cache
miss: the model runs); the other rows reuse cached results, as the page does when a slider moves. The loss
measurements behind gqa_convert and the pooling reveal are cached per K/V head count; their cold cost is
printed separately (they show progress on the page).
"""

import itertools
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

from bench.latency import percentiles, report, served_app, time_calls  # noqa: E402
from lessons.course import load_course_model  # noqa: E402
from lessons.gqa import compute as G  # noqa: E402
from lessons.kv_cache import compute as K  # noqa: E402

N = 50
TEXT = "ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun."
PROMPT = "JULIET:\nO Romeo, Romeo!"
FP16 = "fp16 / bf16"


def main() -> None:
    cm = load_course_model(device="cpu")
    c = cm.config
    counter = itertools.count()

    def fresh(s: str) -> str:  # a different text each call: a cache miss every time
        return f"{next(counter)} {s}"

    print(f"model {cm.path} ({cm.model.num_parameters():,} parameters; {c.n_heads} heads, {c.n_kv_heads} K/V heads), "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs")
    kvs = itertools.cycle(G.divisors(c.n_heads))
    G.converted_loss(cm, 1)  # warm the loss cache (its cold cost is measured below)
    interactions = [
        # name, compute call, api_name, api args (a callable so that "new text" differs per call)
        ("K/V slider: gqa_sharing", lambda: G.sharing_view(cm, next(kvs)), "/gqa_sharing", lambda: (next(kvs),)),
        ("K/V, context, batch: gqa_memory", lambda: G.memory_view(cm, next(kvs), 8192, 4, FP16),
         "/gqa_memory", lambda: (next(kvs), 8192, 4, FP16)),
        ("new text: gqa_attention", lambda: G.maps_view(cm, fresh(TEXT), 0),
         "/gqa_attention", lambda: (fresh(TEXT), 0)),
        ("layer slider: gqa_attention", lambda: G.maps_view(cm, TEXT, c.n_layers - 1),
         "/gqa_attention", lambda: (TEXT, c.n_layers - 1)),
        ("convert (cached loss): gqa_convert", lambda: G.conversion_view(cm, 1, None),
         "/gqa_convert", lambda: (1,)),
        ("new text: gqa_repeat", lambda: G.repeat_check(cm, fresh(TEXT)), "/gqa_repeat", lambda: (fresh(TEXT),)),
        ("reveal: gqa_reveal_pooling", lambda: G.reveal_pooling(cm, G.POOL_CHOICES[0]),
         "/gqa_reveal_pooling", lambda: (G.POOL_CHOICES[0],)),
        ("reveal: gqa_reveal_repeat", lambda: G.reveal_repeat(cm, TEXT, G.REPEAT_CHOICES[0]),
         "/gqa_reveal_repeat", lambda: (TEXT, G.REPEAT_CHOICES[0])),
        ("new prompt: kv_generate (12 tokens)", lambda: K.step_view(cm, fresh(PROMPT), 12, 3),
         "/kv_generate", lambda: (fresh(PROMPT), 12, 3)),
        ("step slider: kv_step", lambda: K.step_view(cm, PROMPT, 12, 7), "/kv_step", lambda: (PROMPT, 12, 7)),
        ("context, batch: kv_memory", lambda: K.cache_memory(cm, 8192, 4, FP16), "/kv_memory",
         lambda: (8192, 4, FP16)),
        ("reveal: kv_reveal_same", lambda: K.reveal_same(cm, PROMPT, K.SAME_CHOICES[0]),
         "/kv_reveal_same", lambda: (PROMPT, K.SAME_CHOICES[0])),
    ]
    compute = {name: time_calls(fn, N) for name, fn, _, _ in interactions}

    # Cold cost of one loss measurement (build the converted model, run the validation slice).
    cold = []
    for _ in range(5):
        K._RESULTS.pop(cm.model, None)
        t = time.perf_counter()
        G.converted_loss(cm, 1)
        cold.append(time.perf_counter() - t)

    from gradio_client import Client

    rows = []
    with served_app() as url:
        client = Client(url, verbose=False)
        client.predict(PROMPT, 12, 3, api_name="/kv_generate")  # size the step slider for this session
        for name, _, api, args in interactions:
            rows.append((name, compute[name], time_calls(lambda: client.predict(*args(), api_name=api), N)))
    report(rows)
    p50, p95 = percentiles(cold)
    print(f"cold gqa_convert compute (original and pooled model each run on {G.EVAL_CHARS:,} characters of "
          f"validation text, "
          f"5 calls): p50 {p50:.0f} ms, p95 {p95:.0f} ms (progress shown on the page)")


if __name__ == "__main__":
    main()
