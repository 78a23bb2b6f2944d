"""Latency harness for lesson interactions: compute time alone, and the round trip through gradio_client
against the real app, p50 and p95 over N calls each. Used by bench/bench_lessons.py."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return statistics.median(ms), p95


def time_calls(fn, n: int = 50, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


@contextmanager
def serving(env: dict | None = None, log=subprocess.DEVNULL):
    """Start `python -m app.main` on a free port (extra environment variables in env); yield (url, process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "app.main"], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(360):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("the app exited before serving")
                time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def served_app():
    """Start `python -m app.main` on a free port; yield its URL."""
    with serving() as (url, _):
        yield url


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def report(rows: list[tuple[str, list[float], list[float]]], target_compute=50.0, target_round=250.0) -> None:
    print(f"{'interaction':<42} {'compute p50':>11} {'p95':>7} {'round trip p50':>15} {'p95':>7}")
    for name, comp, rt in rows:
        c50, c95 = percentiles(comp)
        r50, r95 = percentiles(rt)
        flag = "" if c95 < target_compute and r95 < target_round else "  (over target)"
        print(f"{name:<42} {c50:>9.1f}ms {c95:>5.1f}ms {r50:>13.1f}ms {r95:>5.1f}ms{flag}")
    print(f"targets: compute p95 < {target_compute:.0f} ms, round trip p95 < {target_round:.0f} ms")
