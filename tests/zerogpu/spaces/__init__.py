"""A stand-in for Hugging Face's `spaces` package on a ZeroGPU Space (tests/test_zerogpu.py): `GPU` decorates a
function, recording its name and duration in $ZEROGPU_SIM_LOG; a GPU is "attached" while it runs."""

import functools
import inspect
import os
import threading

_inside = threading.local()


def inside_gpu_call() -> bool:
    return getattr(_inside, "depth", 0) > 0


def _log(line: str) -> None:
    if log := os.environ.get("ZEROGPU_SIM_LOG"):
        with open(log, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def GPU(fn=None, duration=60):
    def deco(f):
        _log(f"decorated {f.__module__}.{f.__qualname__} duration={duration}")
        if inspect.isgeneratorfunction(f):
            @functools.wraps(f)
            def gen(*args, **kwargs):
                _inside.depth = getattr(_inside, "depth", 0) + 1
                try:
                    yield from f(*args, **kwargs)
                finally:
                    _inside.depth -= 1
            return gen

        @functools.wraps(f)
        def call(*args, **kwargs):
            _inside.depth = getattr(_inside, "depth", 0) + 1
            try:
                return f(*args, **kwargs)
            finally:
                _inside.depth -= 1
        return call
    return deco(fn) if callable(fn) else deco


def gradio_auto_wrap(fn):
    """Gradio calls this on every event handler on a Space (gradio/block_function.py); the real one prepares
    ZeroGPU's request context. Here: the handler unchanged."""
    return fn
