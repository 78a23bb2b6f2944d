"""Many learners at once: start the app, run N simulated learners for a bounded time over every page's main actions
(bench/learners.py, through gradio_client as the browser calls them), print per-action p50/p95 and errors.

    python bench/bench_load.py [--learners 32] [--seconds 90] [--think 3 10] [--fast-seconds 45] [--concurrency 4]
    python bench/bench_load.py --solo 3     # each action alone, 3 times: its service time with nobody else on

All learners first open the app (timed as "page load": the app's config and API description, as a browser
loads them); the actions' clock starts once all are in. Each learner then picks a page, does a few of its
actions, each after a think time drawn between --think seconds, then moves to another page. A second, shorter
run uses one-second think times (--fast-seconds 0 skips it).
Targets: zero errors; slider and analyze p95 < 1 s; first generated token p95 < 2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.latency import percentiles, serving  # noqa: E402
from bench.learners import Learner  # noqa: E402

TARGETS = {"slider": 1.0, "analyze": 1.0, "generate": 2.0}


def run(url: str, pid: int, learners: int, seconds: float, think: tuple[float, float]) -> None:
    times, errors, lock = defaultdict(list), defaultdict(list), threading.Lock()
    # The class arrives first: every learner opens the app (its config and API description, as a browser's page
    # load does), timed as "page load"; the actions' clock starts when all are in, so that the action latencies
    # below are not the cost of 32 page loads at once (and of 32 clients parsing them on this same machine).
    # Then each learner thinks before each action: a class does not press 32 buttons in the same millisecond.
    stop = [0.0]
    connected = threading.Barrier(learners + 1, action=lambda: stop.__setitem__(0, time.time() + seconds))

    def learner(i: int) -> None:
        t, lr = time.perf_counter(), None
        try:
            lr = Learner(url, seed=i)
            with lock:
                times[("page", "page load")].append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001 (a bench counts every failure)
            with lock:
                errors[("page", "page load")].append(f"{type(e).__name__}: {e}"[:120])
        connected.wait()
        if lr is None:
            return
        plan = {p: acts for p, acts in lr.served().items() if acts}
        while time.time() < stop[0]:
            page = lr.rng.choice(sorted(plan))
            for _ in range(lr.rng.randint(2, 5)):
                time.sleep(lr.rng.uniform(*think))  # reads the page (or the last result) first
                if time.time() >= stop[0]:
                    return
                api, kind, over = lr.rng.choice(plan[page])
                try:
                    first, _end = lr.call(api, kind, over, timeout=60)
                    with lock:
                        times[(kind, api)].append(first)
                except Exception as e:  # noqa: BLE001 (a bench counts every failure)
                    with lock:
                        errors[(kind, api)].append(f"{type(e).__name__}: {e}"[:120])

    threads = [threading.Thread(target=learner, args=(i,), daemon=True) for i in range(learners)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    connected.wait(300)
    t0, c0, s0 = time.time(), cpu_seconds(os.getpid()), cpu_seconds(pid)
    for t in threads:
        t.join(seconds + 120)
    wall = time.time() - t0
    print(f"{learners} learners, think {think[0]:g}-{think[1]:g} s, {wall:.0f} s of actions after all had loaded "
          f"the page; load average now {os.getloadavg()[0]:.2f}; the learners' own CPU on this machine "
          f"{(cpu_seconds(os.getpid()) - c0) / wall:.2f} cores, the server's {(cpu_seconds(pid) - s0) / wall:.2f}")
    print(f"{'kind':<9} {'action':<26} {'calls':>5} {'p50 ms':>8} {'p95 ms':>8} {'errors':>6}")
    worst = {}
    for key in sorted(set(times) | set(errors)):
        kind, api = key
        ts = times.get(key, [])
        p50, p95 = percentiles(ts) if ts else (float("nan"), float("nan"))
        worst[kind] = max(worst.get(kind, 0.0), p95 / 1000 if ts else 0.0)
        note = "  first token" if kind == "generate" else ""
        print(f"{kind:<9} {api:<26} {len(ts):>5} {p50:>8.0f} {p95:>8.0f} {len(errors.get(key, [])):>6}{note}")
    n_err = sum(len(v) for v in errors.values())
    for key, errs in errors.items():
        print(f"  {key[1]}: {errs[0]}")
    met = n_err == 0 and all(k in worst and worst[k] < v for k, v in TARGETS.items())
    print(f"errors {n_err}; worst p95: " + ", ".join(f"{k} {worst.get(k, 0):.2f}s (target {v:g}s)"
                                                 for k, v in TARGETS.items()) + f"; targets {'met' if met else 'NOT met'}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process and its ended children (the app's job processes, app.background)
    have used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def solo(url: str, pid: int, repeats: int) -> None:
    """Each action alone, `repeats` times with fresh random values: its wall time with no other learner, and the
    server's CPU time for it (what bounds how many learners two cores serve)."""
    lr = Learner(url, seed=0)
    print(f"{'kind':<9} {'action':<26} {'wall ms (each run)':>30} {'server CPU ms (median)':>23}")
    for page, acts in lr.served().items():
        for api, kind, over in acts:
            walls, cpus = [], []
            for _ in range(repeats):
                c = cpu_seconds(pid)
                walls.append(lr.call(api, kind, over, timeout=120)[1] * 1000)
                time.sleep(0.2)  # the server finishes its bookkeeping for the call
                cpus.append((cpu_seconds(pid) - c) * 1000)
            print(f"{kind:<9} {api:<26} {' '.join(f'{t:>6.0f}' for t in walls):>30} "
                  f"{sorted(cpus)[len(cpus) // 2]:>23.0f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--learners", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--think", type=float, nargs=2, default=(3.0, 10.0))
    ap.add_argument("--fast-seconds", type=float, default=45)
    ap.add_argument("--concurrency", type=int, default=None,
                    help="the app's default_concurrency_limit (INSIDE_LLAMA_CONCURRENCY; default: the app's own)")
    ap.add_argument("--solo", type=int, default=0, help="only time each action alone, this many times")
    args = ap.parse_args()
    env = {"INSIDE_LLAMA_CONCURRENCY": str(args.concurrency)} if args.concurrency else {}
    # Latencies depend on what else the machine runs: say how busy it was.
    print(f"{os.cpu_count()} CPUs; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"(1, 5, 15 min); default_concurrency_limit {args.concurrency or 'as the app sets it'}", flush=True)
    with serving(env) as (url, proc):
        if args.solo:
            return solo(url, proc.pid, args.solo)
        run(url, proc.pid, args.learners, args.seconds, tuple(args.think))
        if args.fast_seconds > 0:
            print()
            run(url, proc.pid, args.learners, args.fast_seconds, (0.5, 1.5))


if __name__ == "__main__":
    main()
