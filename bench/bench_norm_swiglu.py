"""Latency of the RMSNorm and SwiGLU lessons' interactions: compute alone (the RMSNorm page handlers, and the
functions of lessons.swiglu.compute the SwiGLU page's handlers return as they are) and the round trip through
gradio_client against the real app, p50/p95 over 50 calls each.

    INSIDE_LLAMA_MODEL=runs/dev python bench/bench_norm_swiglu.py

Targets: compute p95 < 50 ms, round trip p95 < 250 ms. "new text" changes the text on every call, so each
call tokenizes and runs a traced forward pass; slider moves reuse the text's cached trace, as the page does.
The live timing demo (RMSNorm against LayerNorm) is left out: it is a measurement itself, behind a button
with progress. Compute runs in a worker thread, where Gradio runs handlers.
"""

import itertools
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app.pages import rmsnorm as RP  # noqa: E402  (the page handlers: compute calls, no Gradio maths)
from bench.latency import report, served_app, time_calls  # noqa: E402
from lessons.course import load_course_model, validation_excerpt  # noqa: E402
from lessons.rmsnorm import compute as RC  # noqa: E402
from lessons.swiglu import compute as SC  # noqa: E402

N = 50


def in_worker(fn, n: int = N, warmup: int = 3) -> list[float]:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(time_calls, fn, n, warmup).result()


def new_texts(cm):
    """Endless distinct texts of the pages' maximum length (cut to 128 tokens with BOS)."""
    text = validation_excerpt(cm)
    for i in itertools.count():
        yield f"{i} " + text[i % 200:]


def cases(cm, texts, shifts, betas, thresholds, sites, gains):
    """name -> (compute call, round-trip call builder taking a client)."""
    rt, st = RC.DEFAULT_TEXT, SC.DEFAULT_TEXT
    n_sites = 2 * cm.config.n_layers + 1
    return {
        "rmsnorm: new text (all text figures)": (
            lambda: RP.text_changed(cm, next(texts), 3, 1.0, 2.0, 2),
            lambda c: c.predict(next(texts), 3, 1.0, 2.0, 2, api_name="/rmsnorm_text")),
        "rmsnorm: shift/scale/token slider": (
            lambda: RP.invariance(cm, rt, 3, next(shifts), 2.0),
            lambda c: c.predict(rt, 3, next(shifts), 2.0, api_name="/rmsnorm_invariance")),
        "rmsnorm: pick a norm site": (
            lambda: RP.site(cm, rt, next(sites) % n_sites),
            lambda c: c.predict(rt, next(sites) % n_sites, api_name="/rmsnorm_site")),
        "rmsnorm: pre/post-norm gradients (8 layers)": (
            lambda: RP.placement(cm, 8, 1.0),
            lambda c: c.predict(8, 1.0, api_name="/rmsnorm_placement")),
        "rmsnorm: pre/post-norm, new gain (+ depth sweep)": (
            lambda: RP.placement(cm, 8, next(gains)),
            lambda c: c.predict(8, next(gains), api_name="/rmsnorm_placement")),
        "rmsnorm: reveal largest RMS": (
            lambda: RP.reveal_rms(cm, rt, "entering layer 0"),
            lambda c: c.predict(rt, "entering layer 0", api_name="/rmsnorm_reveal_rms")),
        "rmsnorm: reveal shift": (
            lambda: RP.reveal_shift(cm, rt, "both"),
            lambda c: c.predict(rt, "both", api_name="/rmsnorm_reveal_shift")),
        "swiglu: beta slider (curves + surface)": (
            lambda: SC.curves_view(next(betas)),
            lambda c: c.predict(next(betas), api_name="/swiglu_curves")),
        "swiglu: hidden-size table": (
            lambda: SC.hidden_overview(cm, 4096, 256),
            lambda c: c.predict(4096, 256, api_name="/swiglu_hidden")),
        "swiglu: new text (gates)": (
            lambda: SC.gates_view(cm, next(texts), 0.05),
            lambda c: c.predict(next(texts), 0.05, api_name="/swiglu_gates")),
        "swiglu: threshold slider": (
            lambda: SC.gates_view(cm, st, next(thresholds)),
            lambda c: c.predict(st, next(thresholds), api_name="/swiglu_gates")),
        "swiglu: reveal sparsest layer": (
            lambda: SC.reveal_sparsest_view(cm, st, 0.05, "layer 0"),
            lambda c: c.predict(st, 0.05, "layer 0", api_name="/swiglu_reveal_sparsest")),
        "swiglu: reveal negative share": (
            lambda: SC.reveal_negative_view(cm, st, "over 50%"),
            lambda c: c.predict(st, "over 50%", api_name="/swiglu_reveal_negative")),
    }


def main() -> None:
    from gradio_client import Client

    cm = load_course_model(device="cpu")
    shifts = itertools.cycle([-1.0, 0.0, 0.5, 1.0, 2.5])
    betas = itertools.cycle([0.5, 1.0, 1.7, 3.0])
    thresholds = itertools.cycle([0.01, 0.05, 0.1, 0.2])
    sites = itertools.count()
    gains = itertools.cycle([round(0.1 * g, 1) for g in range(5, 30)])  # 25 gains > the 16 cached sweeps: all cold
    table = cases(cm, new_texts(cm), shifts, betas, thresholds, sites, gains)
    compute = {name: in_worker(fn) for name, (fn, _) in table.items()}
    with served_app() as url:
        client = Client(url, verbose=False)
        rt = {name: time_calls(lambda: call(client), N) for name, (_, call) in table.items()}
    print(f"course model {cm.path.name}: {cm.config.n_layers} layers, width {cm.config.dim}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    report([(name, compute[name], rt[name]) for name in table])


if __name__ == "__main__":
    main()
