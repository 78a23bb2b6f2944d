"""lessons.course.LRU, the lessons' one cache, under concurrent learners: one computation per key, no blocking of
other keys, bounded, failures not cached, results never served for another model, a dropped model's entries freed."""

import gc
import threading
import time

import pytest
import torch

from lessons.course import LRU


def test_one_computation_per_key_under_concurrent_callers():
    cache, calls, started = LRU(8), [], threading.Event()

    def slow():
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return object()

    results = [None] * 8

    def ask(i):
        results[i] = cache.get_or_compute(("k",), slow)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(calls) == 1, f"{len(calls)} computations for one key"
    assert all(r is results[0] for r in results), "every caller gets the one computed value"


def test_a_slow_key_does_not_block_a_hit_or_a_computation_on_another_key():
    cache, release, started = LRU(8), threading.Event(), threading.Event()
    cache.get_or_compute(("fast",), lambda: "cached")

    def slow():
        started.set()
        release.wait(10)
        return "slow"

    t = threading.Thread(target=cache.get_or_compute, args=(("slow",), slow))
    t.start()
    assert started.wait(5)
    t0 = time.perf_counter()
    assert cache.get_or_compute(("fast",), lambda: "recomputed") == "cached"
    assert cache.get_or_compute(("other",), lambda: "new") == "new"
    waited = time.perf_counter() - t0
    release.set()
    t.join(5)
    assert waited < 1.0, f"a hit waited {waited:.2f}s behind another key's computation"
    assert cache.get_or_compute(("slow",), lambda: "again") == "slow"


def test_bounded_least_recently_used_first():
    cache = LRU(3)
    for i in range(3):
        cache.get_or_compute(i, lambda i=i: i)
    cache.get_or_compute(0, lambda: "no")  # 0 is now the most recent
    cache.get_or_compute(3, lambda: 3)  # evicts 1
    assert len(cache) == 3
    assert cache.get_or_compute(1, lambda: "recomputed") == "recomputed"
    assert cache.get_or_compute(0, lambda: "no") in (0, "no")
    for i in range(100):
        cache.get_or_compute(("many", i), lambda: bytearray(10))
    assert len(cache) == 3


def test_an_exception_reaches_every_waiter_and_is_not_cached():
    cache, started, errors = LRU(4), threading.Event(), []

    def boom():
        started.set()
        time.sleep(0.3)
        raise RuntimeError("measured nothing")

    def ask():
        try:
            cache.get_or_compute("k", boom)
        except RuntimeError as e:
            errors.append(str(e))

    first = threading.Thread(target=ask)
    first.start()
    assert started.wait(5)
    waiter = threading.Thread(target=ask)
    waiter.start()
    first.join(5), waiter.join(5)
    assert errors == ["measured nothing"] * 2
    assert len(cache) == 0
    assert cache.get_or_compute("k", lambda: 7) == 7  # the next call retries


def test_results_are_per_model_and_a_dropped_model_frees_its_entries():
    cache = LRU(8)
    a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    assert cache.get_or_compute((a, "text"), lambda: "from a") == "from a"
    assert cache.get_or_compute((b, "text"), lambda: "from b") == "from b"
    assert cache.get_or_compute((a, "text"), lambda: "no") == "from a"
    del a
    gc.collect()
    assert len(cache) == 1, "the dropped model's result is still held"
    assert cache.get_or_compute((b, "text"), lambda: "no") == "from b"


@pytest.mark.parametrize("n_threads", [16])
def test_many_threads_many_keys_each_computed_once(n_threads):
    cache, counts, lock = LRU(64), {}, threading.Lock()

    def make(k):
        def run():
            with lock:
                counts[k] = counts.get(k, 0) + 1
            time.sleep(0.01)
            return k * 2
        return run

    def worker(seed):
        for i in range(40):
            k = (seed * 7 + i) % 10
            assert cache.get_or_compute(k, make(k)) == k * 2

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert counts == {k: 1 for k in range(10)}
