"""The course model, loaded once at start and shared read-only by every learner's session."""

from __future__ import annotations

import functools
import time

import torch

from lessons.course import CourseModel, load_course_model
from lessons.models import ModelRegistry
from llama import CheckpointError


@functools.cache
def course() -> CourseModel:
    """Load on first use (the app calls it at start-up); CUDA when available, eval mode, no gradients."""
    t0 = time.time()
    torch.set_grad_enabled(False)
    # The course model is small: one intra-op thread per request is faster than two threads that wait
    # on each other, and leaves the second core to a second learner (a free Space has 2 vCPUs).
    torch.set_num_threads(1)
    try:
        # fast_decode: generation (the sampling page) through llama.fast.DecodeStep, the same tokens with fused
        # weights; not compiled (torch.compile would take minutes at start-up on a 2-vCPU machine).
        cm = load_course_model(device="cuda" if torch.cuda.is_available() else "cpu", fast_decode=True)
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
    return ModelRegistry(course())


def resolve(key: str | None) -> CourseModel:
    """The model a learner chose on the course map, by key ('' or None: the course model). Raises LessonError when
    that model is not offered or cannot be loaded (the course model keeps working)."""
    return registry().get(key)
