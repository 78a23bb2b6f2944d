"""Sliders that follow the learner's hand: one pass over the built app (app/main.py calls `steady_sliders`), so that
no page needs per-slider code.

Two things made a slider lose key presses and jump back (issue 24: five ArrowRight presses 50 ms apart moved the
attention layer one step; RoPE's query slider snapped from 5 back to 1 when the server answered):

- an event run by a slider's release with Gradio's default trigger_mode "once" ignores every release while it runs:
  here every event that only sliders trigger runs "always_last" (the presses during a run become one run with the
  last value, so every press counts);
- a handler that returns a slider among its outputs (to clamp it, or to reset its range) wrote back the value it
  was called with, which by then is stale: the learner has moved on, the slider jumps back, and the next run reads
  the stale value. Here such a handler's result leaves the slider's value alone when it equals the value the
  handler got (its other properties, a new maximum, still apply); a value the handler changed (clamped) is sent.

`heavy_slider_events` lists events that run server code on every move of a slider (.change / .input of a slider):
the app has none (a slider updates on release; the keyboard's key-up counts as one, app/static/keys.js), and a test
holds it to that.
"""

from __future__ import annotations

import functools
import inspect
import math

import gradio as gr

ON_MOVE = ("change", "input")  # slider events that fire on every step of a drag


def _same(a, b) -> bool:
    """Two slider values equal as numbers (a browser may send 3 for 3.0, or text typed into the box)."""
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    return x == y or (math.isnan(x) and math.isnan(y))


def _keep_hand(fn, echoes: dict[int, int], n_outputs: int):
    """fn with each output i in `echoes` (output index -> input index, a slider in both) dropped from its result
    when it only repeats the input's value."""

    def fix(result, args):
        single = n_outputs == 1
        out = [result] if single else list(result) if isinstance(result, (tuple, list)) else None
        if out is None or len(out) != n_outputs:
            return result  # a dict keyed by component, or an error shape: left to Gradio
        for i, j in echoes.items():
            if j >= len(args):
                continue
            v = out[i]
            if isinstance(v, dict) and v.get("__type__") == "update":
                if "value" in v and _same(v["value"], args[j]):
                    out[i] = {k: x for k, x in v.items() if k != "value"}
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and _same(v, args[j]):
                out[i] = gr.skip()
        return out[0] if single else tuple(out)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            for result in fn(*args, **kwargs):
                yield fix(result, args)
    else:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            return fix(fn(*args, **kwargs), args)
    return wrapped


def _slider_targets(demo: gr.Blocks, dep) -> list[tuple[gr.Slider, str]]:
    blocks = demo.blocks
    return [(blocks[t[0]], t[1]) for t in dep.targets if t[0] in blocks and isinstance(blocks[t[0]], gr.Slider)]


def steady_sliders(demo: gr.Blocks) -> None:
    """The pass described above, over every event of the built app (before launch)."""
    for dep in demo.fns.values():
        if dep.fn is None:
            continue
        if _slider_targets(demo, dep) and len(_slider_targets(demo, dep)) == len(dep.targets) \
                and dep.trigger_mode == "once":  # (an event that other controls also run keeps its mode)
            dep.trigger_mode = "always_last"
        echoes = {i: dep.inputs.index(c) for i, c in enumerate(dep.outputs)
                  if isinstance(c, gr.Slider) and c in dep.inputs}
        if echoes and not dep.inputs_as_dict:
            dep.fn = _keep_hand(dep.fn, echoes, len(dep.outputs))


def heavy_slider_events(demo: gr.Blocks) -> list[str]:
    """Events that run server code on every move of a slider: '<page> <label>.<event> -> <handler>' each."""
    found = []
    for dep in demo.fns.values():
        if dep.fn is None:
            continue
        for slider, event in _slider_targets(demo, dep):
            if event in ON_MOVE:
                found.append(f"/{dep.page} {slider.label!r}.{event} -> {dep.name}")
    return found
