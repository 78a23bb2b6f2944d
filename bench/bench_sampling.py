"""Latency of the sampling lesson's interactions: compute alone (lessons.sampling.compute) and the round trip
through gradio_client against the real app, p50/p95 over 50 calls each.

    python bench/bench_sampling.py              # everything
    python bench/bench_sampling.py --load-only  # only the many-learners run
    INSIDE_LLAMA_GENERATE_CONCURRENCY=1 python bench/bench_sampling.py --load-only  # another limit for generation
    python bench/bench_sampling.py --parallel-only  # only generations at once in threads (sets concurrency_limit)

Targets: compute p95 < 50 ms, round trip p95 < 250 ms. "slider move" reuses the prompt's cached logits, as
the page does; "new prompt" changes a 128-token prompt (the page's limit) on every call, so each call runs a
forward pass. Generation streams, so it is measured as time to first token (greedy and sampled each have
one), and the full 80-token stream is printed for information.

Compute runs in a worker thread, as Gradio runs handlers: PyTorch then uses one intra-op thread, which on a
busy 2-core machine is many times faster for this small model than two threads from the main thread.
"""

import itertools
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.latency import percentiles, report, served_app, time_calls  # noqa: E402
from lessons.course import load_course_model, validation_excerpt  # noqa: E402
from lessons.sampling import compute as C  # noqa: E402

N = 50
PROMPT = C.DEFAULT_PROMPT
MAX_NEW = 80


def long_prompts(cm):
    """Endless distinct prompts of the page's maximum length (cut by prepare_prompt to 128 tokens)."""
    text = validation_excerpt(cm)
    for i in itertools.count():
        yield f"{i} " + text[i % 200:]


def distribution(cm, text, t, k=10, p=0.9):
    """What the page's distribution handler computes."""
    d = C.next_token_view(cm, C.prepare_prompt(cm, text).ids, C.read_settings(t, k, p))
    return C.distribution_figure(d).to_json(), C.distribution_summary(d)


def first_step(cm, text):
    return next(C.stream_side_by_side(cm, C.prepare_prompt(cm, text).ids, MAX_NEW, C.read_settings(1.0, 10, 0.9), 0))


def full_stream(cm, text):
    return list(C.stream_side_by_side(cm, C.prepare_prompt(cm, text).ids, MAX_NEW, C.read_settings(1.0, 10, 0.9), 0))


def parallel_generations(cm, ks=(1, 2, 4), per_thread: int = 3) -> None:
    """Whole 80-token generations (greedy and sampled, batched) run by k threads at once, as Gradio would with
    concurrency_limit=k: streams per second and the time one stream takes. With one torch thread per request, k
    beyond the number of cores adds waiting, not throughput: this sets the page's concurrency_limit."""
    print(f"parallel generations ({MAX_NEW} new tokens each, {per_thread} per thread, {os.cpu_count()} CPUs):")
    for k in ks:
        with ThreadPoolExecutor(k) as pool:
            t = time.perf_counter()
            lat = list(pool.map(lambda _: time_calls(lambda: full_stream(cm, PROMPT), per_thread, warmup=0),
                                range(k)))
            wall = time.perf_counter() - t
        p50, p95 = percentiles([x for xs in lat for x in xs])
        print(f"  {k} at once: {k * per_thread / wall:.2f} streams/s, one stream p50 {p50:.0f} ms, p95 {p95:.0f} ms")


def in_worker(fn, n: int, warmup: int = 3) -> list[float]:
    """time_calls(fn) run in a worker thread, where Gradio would run the handler."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(time_calls, fn, n, warmup).result()


def ttft_round_trip(client, n: int) -> list[float]:
    """Seconds from submitting a generation to its first streamed output; each job then runs to the end."""
    out = []
    for i in range(n + 3):
        t = time.perf_counter()
        job = client.submit(PROMPT, 1.0, 10, 0.9, MAX_NEW, i, api_name="/sampling_generate")
        while not job.outputs() and not job.done():
            time.sleep(0.002)
        dt = time.perf_counter() - t
        job.result()
        if i >= 3:  # warm-up
            out.append(dt)
    return out


LEARNERS = 8  # simulated learners at once in the load run
ROUNDS = 4  # each: one slider move, one generation
THINK_S = 0.5  # pause between a learner's actions (short on purpose: a busy class)


def one_learner(url: str, i: int, out: dict) -> None:
    """A learner who alternates a slider move and a generation; records latencies, messages per stream and
    errors (a timed-out or failed call counts as an error, and the learner goes on)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    temps = itertools.cycle([0.3, 0.7, 1.0, 1.5])
    for r in range(ROUNDS):
        try:
            t = time.perf_counter()
            client.predict(PROMPT, next(temps), 10, 0.9, api_name="/sampling_distribution")
            out["slider move"].append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001 (a bench counts every failure)
            out["errors"].append(f"slider move: {type(e).__name__}")
        time.sleep(THINK_S)
        try:
            t = time.perf_counter()
            job = client.submit(PROMPT, 1.0, 10, 0.9, MAX_NEW, 100 * i + r, api_name="/sampling_generate")
            while not job.outputs() and not job.done():
                time.sleep(0.002)
            out["generate: first output"].append(time.perf_counter() - t)
            job.result()
            out["generate: whole stream"].append(time.perf_counter() - t)
            out["messages per stream"].append(len(job.outputs()))
        except Exception as e:  # noqa: BLE001
            out["errors"].append(f"generate: {type(e).__name__}")
        time.sleep(THINK_S)


def load_run(url: str) -> None:
    """LEARNERS learners at once against the served app: per-action p50/p95 and messages per stream."""
    import threading

    out = {k: [] for k in ("slider move", "generate: first output", "generate: whole stream",
                           "messages per stream", "errors")}
    threads = [threading.Thread(target=one_learner, args=(url, i, out)) for i in range(LEARNERS)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    limit = os.environ.get("INSIDE_LLAMA_GENERATE_CONCURRENCY", "the page's")
    print(f"load: {LEARNERS} learners x {ROUNDS} rounds (slider move, {MAX_NEW}-token generation), think "
          f"{THINK_S} s, generation concurrency_limit {limit}, {time.perf_counter() - t0:.0f} s in all, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in ("slider move", "generate: first output", "generate: whole stream"):
        p50, p95 = percentiles(out[name])
        print(f"  {name:<28} p50 {p50:>7.0f} ms   p95 {p95:>7.0f} ms   ({len(out[name])} calls)")
    msgs = sorted(out["messages per stream"])
    print(f"  messages per stream: median {msgs[len(msgs) // 2]}, max {msgs[-1]}; errors: {len(out['errors'])} "
          f"{sorted(set(out['errors']))}")


def main() -> None:
    from gradio_client import Client

    if "--load-only" in sys.argv:
        with served_app() as url:
            load_run(url)
        return
    if "--parallel-only" in sys.argv:
        parallel_generations(load_course_model(device="cpu"))
        return

    cm = load_course_model(device="cpu")
    temps = itertools.cycle([0.3, 0.7, 1.0, 1.5, 0.0])
    prompts = long_prompts(cm)
    compute = {
        "slider move (temperature, cached prompt)": in_worker(lambda: distribution(cm, PROMPT, next(temps)), N),
        "new prompt (128 tokens: forward pass)": in_worker(lambda: distribution(cm, next(prompts), 1.0), N),
        "generate: time to first token": in_worker(lambda: first_step(cm, PROMPT), N),
        "reveal: top-p count at 3 temperatures": in_worker(
            lambda: C.reveal_nucleus(cm, C.prepare_prompt(cm, PROMPT).ids), N),
    }
    full = in_worker(lambda: full_stream(cm, PROMPT), 10, warmup=1)
    parallel_generations(cm)
    with served_app() as url:
        client = Client(url, verbose=False)
        rt = {
            "slider move (temperature, cached prompt)": time_calls(
                lambda: client.predict(PROMPT, next(temps), 10, 0.9, api_name="/sampling_distribution"), N),
            "new prompt (128 tokens: forward pass)": time_calls(
                lambda: client.predict(next(prompts), 1.0, 10, 0.9, api_name="/sampling_distribution"), N),
            "generate: time to first token": ttft_round_trip(client, N),
            "reveal: top-p count at 3 temperatures": time_calls(
                lambda: client.predict(PROMPT, "It goes up", api_name="/sampling_reveal_nucleus"), N),
        }
        full_rt = time_calls(lambda: client.predict(PROMPT, 1.0, 10, 0.9, MAX_NEW, 0, api_name="/sampling_generate"),
                             10, warmup=1)
        load_run(url)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    report([(name, compute[name], rt[name]) for name in compute])
    c50, c95 = percentiles(full)
    r50, r95 = percentiles(full_rt)
    print(f"for information, the whole {MAX_NEW}-token stream, greedy and sampled (10 calls): compute p50 "
          f"{c50:.0f} ms, p95 {c95:.0f} ms; round trip p50 {r50:.0f} ms, p95 {r95:.0f} ms")


if __name__ == "__main__":
    main()
