"""Memory over many sessions: start the app, open N fresh sessions (the page's HTML, then one action with a new
session hash, as a new browser tab does), and print the server's resident memory before and after.

    python bench/bench_memory.py [--sessions 2000] [--workers 4]

Targets: growth under 100 MB over 2,000 sessions, serving RSS under 600 MB. Gradio keeps a per-session copy of
every component's config (about 0.7 MB for this app) until the session is evicted; app/main.py bounds that with
launch(state_session_capacity=...).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.latency import rss_mb, serving  # noqa: E402
from bench.learners import Learner  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    with serving() as (url, proc):
        local = threading.local()

        def learner() -> Learner:
            if not hasattr(local, "learner"):
                local.learner = Learner(url, seed=threading.get_ident())
            return local.learner

        print(f"RSS of the started app: {rss_mb(proc.pid):.0f} MiB", flush=True)
        first = learner()
        plan = [(page, a) for page, acts in first.served().items() for a in acts if a[1] == "slider"]
        if not plan:
            raise SystemExit("no slider action of bench/learners.py is served by the app")
        print(f"each session: GET the page, then one of {len(plan)} slider actions ({', '.join(a[0] for _, a in plan)})")
        errors, lock, done = [], threading.Lock(), itertools.count(1)

        def session(i: int) -> None:
            page, (api, kind, over) = plan[i % len(plan)]
            lr = learner()
            lr.new_session()
            try:
                with urllib.request.urlopen(url + page, timeout=60) as r:
                    r.read()
                lr.call(api, kind, over)
            except Exception as e:  # noqa: BLE001 (a bench counts every failure)
                with lock:
                    errors.append(f"{api}: {type(e).__name__}: {e}"[:200])
            n = next(done)
            if n % 500 == 0:
                print(f"  {n} sessions, RSS {rss_mb(proc.pid):.0f} MiB", flush=True)

        with ThreadPoolExecutor(args.workers) as pool:  # warm-up: first calls, caches, lazily built objects
            list(pool.map(session, range(2 * len(plan))))
        time.sleep(2)
        before = rss_mb(proc.pid)
        print(f"RSS after warm-up ({2 * len(plan)} sessions): {before:.0f} MiB", flush=True)
        t0 = time.time()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(session, range(args.sessions)))
        time.sleep(2)
        after = rss_mb(proc.pid)
        print(f"RSS after {args.sessions} more sessions ({time.time() - t0:.0f}s): {after:.0f} MiB; "
              f"growth {after - before:+.0f} MiB ({(after - before) / args.sessions * 1024:.0f} KiB a session); "
              f"errors {len(errors)}")
        for e in errors[:5]:
            print("  error:", e)
        mb = 1.048576  # MB per MiB: the targets are in MB
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        split = ", ".join(line.split(":")[0] + " " + f"{int(line.split()[1]) / 1e3:.0f} MB" for line in status
                          if line.startswith(("RssAnon", "RssFile")))
        print(f"in MB: RSS {after * mb:.0f} MB ({split}; RssFile is shared library code), "
              f"growth {(after - before) * mb:+.0f} MB")
        ok = (after - before) * mb < 100 and after * mb < 600 and not errors
        print(f"targets: growth < 100 MB, RSS < 600 MB, no errors: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
