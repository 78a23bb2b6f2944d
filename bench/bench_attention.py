"""Latency of the attention lesson's interactions: compute alone (lessons.attention.compute) and the round
trip through gradio_client against the real app, p50/p95 over 50 calls each, on a 128-token text (the
page's limit, so the worst case).

    python bench/bench_attention.py               # threads as the app has them (torch's default)
    python bench/bench_attention.py --threads 1   # OMP_NUM_THREADS=1 for this process and the served app

Targets: compute p95 < 50 ms, round trip p95 < 250 ms. "new text" changes the text on every call, so each
call runs the traced forward pass; every other interaction reuses the cached trace, as the page does.
"""

import itertools
import os
import sys
from concurrent.futures import CancelledError, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if "--threads" in sys.argv:  # must be set before torch and numpy start their thread pools
    os.environ["OMP_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]

import torch  # noqa: E402

from bench.latency import report, served_app, time_calls  # noqa: E402
from lessons.attention import compute as C  # noqa: E402
from lessons.course import load_course_model, validation_excerpt  # noqa: E402

N = 50


def main() -> None:
    cm = load_course_model(device="cpu")
    text = validation_excerpt(cm)
    t = C.trace_text(cm, text)
    L, H, T = t.n_layers - 1, t.n_heads - 1, t.n_tokens - 1  # last layer, head and query: the largest slices
    counter = itertools.count()

    def fresh() -> str:  # a different text each call, same length: a cache miss every time
        return f"{next(counter)} {text}"

    print(f"model {cm.path} ({cm.model.num_parameters():,} parameters), text of {t.n_tokens} tokens, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs")
    interactions = [
        # name, compute call, api_name, api args (a callable so that "new text" differs per call)
        ("new text: attention_analyze", lambda: C.analyze_view(cm, fresh(), L, H, T, 1.0),
         "/attention_analyze", lambda: (fresh(), L, H, T, 1.0)),
        ("same text: attention_analyze", lambda: C.analyze_view(cm, text, L, H, T, 1.0),
         "/attention_analyze", lambda: (text, L, H, T, 1.0)),
        ("layer/head: attention_map", lambda: C.map_view(cm, text, L, H), "/attention_map", lambda: (text, L, H)),
        ("layer: attention_heads (grid)", lambda: C.grid_view(cm, text, L), "/attention_heads", lambda: (text, L)),
        ("query: attention_query", lambda: C.query_view(cm, text, L, H, T), "/attention_query",
         lambda: (text, L, H, T)),
        ("scale: attention_scale", lambda: C.scale_view(cm, text, L, H, T, 3.0), "/attention_scale",
         lambda: (text, L, H, T, 3.0)),
        ("reveal: attention_reveal_previous", lambda: C.reveal_previous_token(cm, text, "layer 1"),
         "/attention_reveal_previous", lambda: (text, "layer 1")),
        ("reveal: attention_reveal_scaling", lambda: C.reveal_scaling(cm, text, C.SCALE_CHOICES[0]),
         "/attention_reveal_scaling", lambda: (text, C.SCALE_CHOICES[0])),
    ]
    compute = {name: time_calls(fn, N) for name, fn, _, _ in interactions}

    from gradio_client import Client

    rows = []
    with served_app() as url:
        client = Client(url, verbose=False)
        client.predict(text, 0, 0, 0, 1.0, api_name="/attention_analyze")  # sizes the query slider for this session
        for name, _, api, args in interactions:
            rows.append((name, compute[name], time_calls(lambda: client.predict(*args(), api_name=api), N)))

        # Releasing the layer slider fires four events at once; the learner waits for the slowest.
        retries = [0]

        def layer_release():
            # gradio_client sometimes cancels a job submitted just as its session's event stream closes
            # (a client-side race, not an app error); such a round is run again and counted below.
            while True:
                jobs = [client.submit(text, L, H, api_name="/attention_map"),
                        client.submit(text, L, api_name="/attention_heads"),
                        client.submit(text, L, H, T, api_name="/attention_query"),
                        client.submit(text, L, H, T, 3.0, api_name="/attention_scale")]
                wait(jobs)
                try:
                    for j in jobs:
                        j.result()
                    return
                except CancelledError:
                    retries[0] += 1

        def layer_compute():
            C.map_view(cm, text, L, H), C.grid_view(cm, text, L)
            C.query_view(cm, text, L, H, T), C.scale_view(cm, text, L, H, T, 3.0)

        rows.append(("layer release: all 4 events", time_calls(layer_compute, N), time_calls(layer_release, N)))
        print(f"(layer release: {retries[0]} round(s) re-run after a gradio_client cancellation)")
    report(rows)


if __name__ == "__main__":
    main()
