"""The course model, loaded once at start and shared read-only by every learner's session, and the models a learner
can pick (loaded lazily, the Hub's files fetched in the background at start-up)."""

from __future__ import annotations

import functools
import threading
import time

import torch

from lessons.course import CourseModel, load_course_model
from app import gpu
from lessons.models import ModelRegistry, offered_sources
from llama import CheckpointError


@functools.cache
def course() -> CourseModel:
    """Load on first use (the app calls it at start-up); eval mode, no gradients. CUDA when available, except on
    ZeroGPU, where the CPU serves the course model's cheap events and no GPU is there at start-up (app.gpu)."""
    t0 = time.time()
    torch.set_grad_enabled(False)
    # The course model is small: one intra-op thread per request is faster than two threads that wait
    # on each other, and leaves the second core to a second learner (a free Space has 2 vCPUs).
    torch.set_num_threads(1)
    try:
        # fast_decode: generation (the sampling page) through llama.fast.DecodeStep, the same tokens with fused
        # weights; not compiled (torch.compile would take minutes at start-up on a 2-vCPU machine).
        cm = load_course_model(device=gpu.serving_device(), fast_decode=True)
    except (CheckpointError, OSError, ValueError) as e:  # a missing or malformed model directory
        raise SystemExit(f"[inside-llama] cannot load the course model: {e}\n"
                         "Point INSIDE_LLAMA_MODEL at a directory with config.json, model.safetensors and "
                         "tokenizer.json (assets/model is the shipped one).") from None
    print(f"[inside-llama] course model from {cm.path} on {cm.device} in {time.time() - t0:.1f}s "
          f"({cm.model.num_parameters():,} parameters)", flush=True)
    return cm


@functools.cache
def registry() -> ModelRegistry:
    """The models a learner can pick (the course model and $INSIDE_LLAMA_MODELS), loaded lazily and shared."""
    # On ZeroGPU a picked model is moved to "cuda" when it loads, outside any GPU call: the `spaces` package keeps
    # such weights aside and puts them on the GPU it lends for each call (its documented pattern); its events run
    # inside app.gpu.gpu (widgets.handler, lent_gpu).
    return ModelRegistry(course(), device="cuda" if gpu.on_zerogpu() else None)


def lent_gpu(key: str | None) -> bool:
    """True when the event for this picker key runs on a GPU lent per call (ZeroGPU and a picked model, loaded here
    first, outside the call); False for the course model and everywhere else. Raises LessonError like resolve."""
    if not key or not gpu.on_zerogpu():
        return False
    resolve(key)
    return True


def prefetch(sources: list[str] | None = None) -> threading.Thread | None:
    """Start fetching the Hub's files of the models the host offers (INSIDE_LLAMA_MODELS entries that are not local
    directories) in a background thread, so the first learner who picks one does not wait for the download. Local
    directories need nothing. A failed download is logged; the learner who picks that model gets the message."""
    from pathlib import Path

    from llama.checkpoint import resolve_path

    hub = [s for s in (offered_sources() if sources is None else sources) if not Path(s).exists()]
    if not hub:
        return None

    def fetch():
        for s in hub:
            t0 = time.time()
            try:
                path = resolve_path(s)
                print(f"[inside-llama] fetched {s} into {path} in {time.time() - t0:.1f}s", flush=True)
            except (CheckpointError, OSError) as e:
                print(f"[inside-llama] could not fetch {s}: {e}", flush=True)

    thread = threading.Thread(target=fetch, name="fetch-models", daemon=True)
    thread.start()
    return thread


def resolve(key: str | None) -> CourseModel:
    """The model a learner chose on the course map, by key ('' or None: the course model). Raises LessonError when
    that model is not offered or cannot be loaded (the course model keeps working)."""
    return registry().get(key)
