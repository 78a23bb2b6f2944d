"""Latency of the attention lesson's interactions: compute alone (lessons.attention.compute) and the round
trip through gradio_client against the real app, p50/p95 over 50 calls each, on a 128-token text (the
page's limit, so the worst case).

    python bench/bench_attention.py               # threads as the app has them (torch's default)
    python bench/bench_attention.py --threads 1   # OMP_NUM_THREADS=1 for this process and the served app

Targets: compute p95 < 50 ms, round trip p95 < 250 ms. "new text" changes the text on every call, so each
call runs the traced forward pass; every other interaction reuses the cached trace, as the page does. A slider
release is one event that redraws every slider figure from one trace (so they always agree); the scaling
reveal runs the model and its no-1/sqrt(d) twin, both cached per text after the first call.
"""

import itertools
import os
import sys
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
        # name, compute call, api_name, api args (a callable so that "new text" differs per call). The sliders and
        # reveals read the learner's last analyzed text from gr.State, so the session analyzes `text` first.
        ("new text: attention_analyze", lambda: C.analyze_view(cm, fresh(), L, H, T, 1.0),
         "/attention_analyze", lambda: (fresh(), L, H, T, 1.0)),
        ("same text: attention_analyze", lambda: C.analyze_view(cm, text, L, H, T, 1.0),
         "/attention_analyze", lambda: (text, L, H, T, 1.0)),
        ("layer/head/query release: attention_view (every slider figure)", lambda: C.view(cm, text, L, H, T, 3.0),
         "/attention_view", lambda: (L, H, T, 3.0)),
        ("scale release: attention_scale", lambda: C.scale_view(cm, text, L, H, T, 3.0), "/attention_scale",
         lambda: (L, H, T, 3.0)),
        ("reveal: attention_reveal_dot (random q.k at d = 32)",
         lambda: C.reveal_random_dot(C.Q_DOT.choices[1]), "/attention_reveal_dot", lambda: (C.Q_DOT.choices[1],)),
        ("reveal: attention_reveal_scaling (re-runs the model twice)",
         lambda: C.reveal_scaling(cm, text, C.SCALE_CHOICES[0]), "/attention_reveal_scaling",
         lambda: (C.SCALE_CHOICES[0],)),
    ]
    compute = {name: time_calls(fn, N) for name, fn, _, _ in interactions}

    from gradio_client import Client

    rows = []
    with served_app() as url:
        client = Client(url, verbose=False)
        for name, _, api, args in interactions:
            if not name.startswith("new text"):
                client.predict(text, L, H, T, 1.0, api_name="/attention_analyze")  # this session's analyzed text
            rows.append((name, compute[name], time_calls(lambda: client.predict(*args(), api_name=api), N)))
    report(rows)


if __name__ == "__main__":
    main()
