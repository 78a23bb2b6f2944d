"""Where the course computes: the CPU, a CUDA GPU, or a ZeroGPU Space's GPU lent per call.

A ZeroGPU Space (Hugging Face's shared GPUs) attaches a GPU only while a function decorated with `@spaces.GPU`
runs, and reports `torch.cuda.is_available()` as True from start-up, before any GPU is there. So on ZeroGPU:

- nothing touches CUDA at start-up: the course model (2.6M parameters, the cheap interactive events of every page)
  and every picked model are loaded on the CPU (`serving_device`);
- the heavy paths (a picked large model's forward passes and generation, the GQA conversion, the training lab) run
  inside functions wrapped by `gpu(duration)`, which is `spaces.GPU(duration=...)` where the `spaces` package is
  installed and does nothing elsewhere; inside such a call `compute_device()` is the GPU and the picked model is
  moved there for the call (`widgets.handler` does this for every event of a picked model).

Durations are seconds of GPU time asked per call; a visitor's daily ZeroGPU quota is a few minutes, and a call
that asks for more than is left is refused, so each heavy path asks for what it needs on a GPU, not more.

    >>> @gpu(30)
    ... def forward(cm, text): ...
    >>> on_zerogpu()   # False here: no `spaces`, or SPACES_ZERO_GPU unset
    False
"""

from __future__ import annotations

import importlib.util
import os

# Seconds of GPU time per call (spaces.GPU's `duration`, default 60 there). A forward pass of a 1B model on a GPU
# takes well under a second; generation and training stream for up to their own time budget.
FORWARD_S = 30
STREAM_S = 90


def has_spaces() -> bool:
    """The `spaces` package is installed (a Hugging Face Space installs it; this machine does not)."""
    return importlib.util.find_spec("spaces") is not None


def on_zerogpu() -> bool:
    """This process runs on a ZeroGPU Space: Spaces sets SPACES_ZERO_GPU there and installs `spaces`."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true", "yes") and has_spaces()


def serving_device():
    """Where models are loaded at start-up and by the picker: the CPU on ZeroGPU (no GPU outside a `gpu` call, though
    CUDA reports itself available), else CUDA when available, else the CPU."""
    import torch

    if on_zerogpu():
        return torch.device("cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gpu(duration: int = FORWARD_S):
    """Decorator: `spaces.GPU(duration=duration)` where `spaces` is installed (a GPU is attached for the call on
    ZeroGPU; elsewhere spaces.GPU itself does nothing), the function unchanged everywhere else. Works for plain
    functions and generators (a streamed generation keeps the GPU until it ends)."""
    def wrap(fn):
        if not has_spaces():
            return fn
        import spaces  # only where present

        return spaces.GPU(duration=duration)(fn)
    return wrap
