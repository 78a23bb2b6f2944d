"""The sentences that state an action's cost before the learner starts it (the estimate is lessons.cost's).

    >>> notice(lessons.cost.generation(cm, 12, 24, rows=2), "Generate (24 tokens, two rows)")
    '⏱️ Generate (24 tokens, two rows): about 35 s with this 1.1B-parameter model on this server's CPU.'
    >>> suffix(cost)         # for a button label
    ' (about 35 s)'

Both are empty for an action estimated under lessons.cost.SLOW_S (every action of the course model): its page reads
as before.
"""

from __future__ import annotations

from lessons.cost import Cost


def duration(seconds: float) -> str:
    """'about 4 s', 'about 40 s', 'about 3 min' (two significant figures at most: it is an estimate)."""
    if seconds < 9.5:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90:
        return f"about {round(seconds, -1):.0f} s"
    return f"about {max(2, round(seconds / 60))} min"


def size(parameters: int) -> str:
    """1,100,048,384 -> '1.1B', 134,515,008 -> '135M'."""
    if parameters >= 1e9:
        return f"{parameters / 1e9:.1f}B"
    return f"{parameters / 1e6:.0f}M"


def device(cost: Cost) -> str:
    """'CPU' or 'GPU': where the estimate was measured."""
    return "CPU" if cost.device == "cpu" else "GPU"


def with_model(cost: Cost) -> str:
    """'about 40 s with this 1.1B-parameter model on this server's CPU'."""
    return f"{duration(cost.seconds)} with this {size(cost.parameters)}-parameter model on this server's {device(cost)}"


def notice(cost: Cost, what: str) -> str:
    """A line before a slow action ('' when it is quick): what it does and how long it should take."""
    return f"⏱️ {what}: {with_model(cost)}." if cost.slow else ""


def suffix(cost: Cost) -> str:
    """' (about 40 s)' for a button that starts a slow action, '' for a quick one."""
    return f" ({duration(cost.seconds)})" if cost.slow else ""


def label(text: str, cost: Cost) -> str:
    """A button's label with its cost: 'Measure on this machine (about 40 s)', and inside a label's own closing
    parenthesis: 'Reveal (runs the model; about 40 s)'."""
    if not cost.slow:
        return text
    if text.endswith(")"):
        return f"{text[:-1]}; {duration(cost.seconds)})"
    return text + suffix(cost)


def while_running(cost: Cost) -> str:
    """For a progress bar's description: ' (about 40 s)' while a slow action runs, '' for a quick one."""
    return suffix(cost)


def opening(cost: Cost) -> str:
    """The progress line while a page opens with a picked model ('' when it opens quickly, as with the course model):
    'Opening with this 1.1B-parameter model: about 20 s on this CPU' (short: Gradio shows it over every output of
    the page, a slider's small box included)."""
    return f"Opening with this {size(cost.parameters)}-parameter model: {duration(cost.seconds)} on this " \
        f"{device(cost)}" if cost.slow else ""


def span(lo: float, hi: float) -> str:
    """'about 2-20 s', 'about 40 s-2 min' (a range of estimates; one duration when both round alike)."""
    a, b = duration(lo), duration(hi)
    if a == b:
        return a
    a, b = a.removeprefix("about "), b.removeprefix("about ")
    if a.split()[1] == b.split()[1]:  # same unit: 'about 2-20 s'
        a = a.split()[0]
    return f"about {a}–{b}"


def pages_open(opening_costs: list[Cost]) -> str:
    """Beside the picker's choice: how long the lessons take to open with this model ('' when every page opens
    quickly: the course model, stories260K, any model on a GPU)."""
    slow = [c for c in opening_costs if c.slow]
    if not slow:
        return ""
    lo, hi = min(c.seconds for c in slow), max(c.seconds for c in slow)
    return (f"⏱️ With this {size(slow[0].parameters)}-parameter model on this server's {device(slow[0])}, a lesson "
            f"takes {span(lo, hi)} to open (each page says its own while it opens).")
