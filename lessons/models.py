"""The models a learner can pick on the course map: the shipped course model and whatever the host offers.

The host lists extra models in the environment variable INSIDE_LLAMA_MODELS, separated by os.pathsep (':' on
Linux): local Hugging Face Llama directories, or Hub ids ("org/name") that are fetched on first use where the
host can download (a Space). Models load lazily, once, and are shared read-only by every learner; at most
INSIDE_LLAMA_MAX_MODELS (default 2) extra models stay resident, least recently used first out. The course model
is always resident and is what an empty key means.

    >>> reg = ModelRegistry(course_model, ["../shared/models/stories260K"])
    >>> [o.label for o in reg.options()]
    ['course model (assets/model)', 'stories260K']
    >>> reg.get("../shared/models/stories260K").config.n_layers
    5

A model that fails to load raises LessonError with the reason; the course model keeps working.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lessons import cost
from lessons.course import CourseModel, load_course_model
from lessons.inputs import LessonError, echo
from llama import CheckpointError

ENV_MODELS = "INSIDE_LLAMA_MODELS"
ENV_MAX = "INSIDE_LLAMA_MAX_MODELS"


@dataclass(frozen=True)
class ModelOption:
    key: str  # what the picker stores: "" for the course model, else the source string itself
    label: str  # what the picker shows
    source: str  # a local directory or a Hub id


def offered_sources(env: str | None = None) -> list[str]:
    """The host's extra models from INSIDE_LLAMA_MODELS (or `env`), in order, without blanks or repeats."""
    raw = os.environ.get(ENV_MODELS, "") if env is None else env
    out = []
    for s in raw.split(os.pathsep):
        s = s.strip()
        if s and s not in out:
            out.append(s)
    return out


def _label(source: str) -> str:
    p = Path(source)
    return p.name if p.is_dir() else source  # a directory by its name, a Hub id as itself


class ModelRegistry:
    """Lazy, bounded, thread-safe: each model is loaded once even when many learners ask at the same moment
    (they wait for the one load), and loading one model never blocks learners using another."""

    def __init__(self, course: CourseModel, sources: list[str] | None = None, max_resident: int | None = None,
                 device: str | torch.device | None = None):
        self.course = course
        self.sources = offered_sources() if sources is None else list(sources)
        if max_resident is None:
            try:
                max_resident = int(os.environ.get(ENV_MAX, "2"))
            except ValueError:
                max_resident = 2
        self.max_resident = max(1, max_resident)
        self.device = torch.device(device) if device is not None else course.device
        self._loaded: OrderedDict[str, CourseModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def options(self) -> list[ModelOption]:
        course = ModelOption("", f"course model ({_label(str(self.course.path))})", str(self.course.path))
        return [course] + [ModelOption(s, _label(s), s) for s in self.sources]

    def is_offered(self, key: str | None) -> bool:
        return not key or key in self.sources

    def resident(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def get(self, key: str | None, on_progress: Callable[[str], None] | None = None) -> CourseModel:
        """The model for a picker key ('' or None: the course model). Raises LessonError for a key the host does
        not offer or a model that cannot be loaded (the message says why)."""
        if not key:
            return self.course
        if not isinstance(key, str) or key not in self.sources:
            raise LessonError(f"The model {echo(key)!r} is not offered here; the course model is used. "
                              "Pick a model on the course map.")
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per key; other keys are not blocked
            with self._lock:
                if key in self._loaded:
                    self._loaded.move_to_end(key)
                    return self._loaded[key]
            if on_progress:
                on_progress(f"loading {_label(key)}")
            try:
                cm = load_model(key, self.device)
                if cost.big(cm):  # its pages state costs: the rate is measured now, once, inside the load's wait
                    if on_progress:
                        on_progress(f"timing {_label(key)} on this machine (once)")
                    cost.measured_rate(cm)
            except (CheckpointError, OSError) as e:
                raise LessonError(f"The model {_label(key)!r} could not be loaded: {e}. "
                                  "The course model keeps working.") from None
            with self._lock:
                self._loaded[key] = cm
                while len(self._loaded) > self.max_resident:
                    self._loaded.popitem(last=False)
                self._loading.pop(key, None)
            return cm


def load_model(source: str | Path, device: str | torch.device) -> CourseModel:
    """Load any Llama directory (or Hub id) as a CourseModel: on CUDA in bf16 where the checkpoint is stored in
    bf16, otherwise fp32 (CPU stays fp32: bf16 matmuls are slow on most CPUs)."""
    return load_course_model(source, device=device)
