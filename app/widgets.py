"""Shared page pieces: the lesson header with previous/next links, lesson text sections, error notes."""

from __future__ import annotations

import functools
import html
import inspect
import secrets

import gradio as gr

import lessons
from lessons import LessonInfo
from lessons.inputs import LessonError


# In a multi-line Gradio textbox Enter starts a new line and Shift+Enter submits: say so in every label.
RUN_HINT = "Shift+Enter or the button runs it"


def link(href: str, text: str) -> str:
    """A same-tab link. (Gradio's Markdown opens every link in a new tab; course navigation should not.)"""
    return f'<a href="{html.escape(href)}" target="_self">{html.escape(text)}</a>'


def nav_links(lesson: LessonInfo) -> str:
    prev, nxt = lessons.neighbours(lesson.slug)
    parts = [link("/", "Course map")]
    if prev:
        parts.insert(0, link(prev.path, f"← {prev.title}"))
    if nxt:
        parts.append(link(nxt.path, f"{nxt.title} →"))
    return '<nav class="lesson-nav">' + " &nbsp;·&nbsp; ".join(parts) + "</nav>"


def lesson_header(lesson: LessonInfo) -> None:
    gr.HTML(nav_links(lesson))
    gr.Markdown(f"# {lesson.title}")


def lesson_footer(lesson: LessonInfo) -> None:
    gr.HTML(nav_links(lesson))


def sections(lesson: LessonInfo, n_figures: int) -> list[str]:
    """lesson.md split at '<!-- figure -->' markers, so text and live figures can alternate on the page: at least
    n_figures + 1 parts (missing ones are empty, so a lesson.md with fewer markers never drops a figure)."""
    parts = [s.strip() for s in lesson.text().split("<!-- figure -->")]
    return parts + [""] * (n_figures + 1 - len(parts))


def prose(md: str) -> gr.Markdown:
    """Lesson text with $...$ and $$...$$ rendered as LaTeX."""
    return gr.Markdown(md, latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                             {"left": "$", "right": "$", "display": False}])


def predict_reveal(question: str, choices: list, button: str = "Reveal", elem_id: str | None = None):
    """A predict-then-reveal question: the learner commits to an answer, then the button asks the live model.
    Returns (radio, button, answer) for the page to wire."""
    gr.Markdown(f"**Predict:** {question}")
    guess = Radio(choices, label="Your prediction")  # an unknown value (API) becomes a notice (lessons.grading)
    btn = gr.Button(button)
    out = gr.Markdown(elem_id=elem_id)
    return guess, btn, out


def message(text: str = "", elem_id: str | None = None) -> gr.Markdown:
    """A slot for notices and input errors, shown on the page instead of a traceback."""
    return gr.Markdown(text, elem_classes=["lesson-message"], elem_id=elem_id)


def note(text: str) -> str:
    return f"⚠️ {text}" if text else ""



class Slider(gr.Slider):
    """gr.Slider that passes the value on unchecked: Gradio's own range check raises a red "Error" toast (and a
    logged traceback) for a number typed into the slider's box outside its range, and lets NaN through anyway.
    Every handler clamps and rounds its inputs itself (lessons.inputs.whole / number) and says so on the page."""

    def preprocess(self, payload):
        return payload


class Plot(gr.Plot):
    """gr.Plot for lesson figures: every figure it shows goes through lessons.plots.responsive (titles wrapped and
    sized for a phone, legend below the plot, margins the labels need), so pages need no per-figure layout code.
    The label is not drawn (Gradio floats it over the top of the plot, where the figure's own title is); it stays
    the component's name for the API and the page's accessibility tree."""

    def get_config(self):
        # Not through __init__: Gradio builds a component's config from its __init__ signature.
        return {**super().get_config(), "show_label": False}

    def postprocess(self, value):
        from gradio.components.plot import PlotData
        from plotly.io.json import to_json_plotly

        from lessons.plots import responsive

        if value is not None and hasattr(value, "to_plotly_json"):  # a copy: cached figures are shared
            return PlotData(type="plotly", plot=to_json_plotly(responsive(value.to_plotly_json())))
        return super().postprocess(value)


class Dropdown(gr.Dropdown):
    """gr.Dropdown that passes the value on unchecked (Gradio answers a value outside the choices, which an API
    client can send, with a red "Error" toast); the handler checks it (lessons.inputs.choice) and says so."""

    def preprocess(self, payload):
        return payload


class Radio(gr.Radio):
    """gr.Radio that passes the value on unchecked, like Dropdown: Gradio's own check answers a value outside the
    choices with a red "Error" toast, a logged traceback and the whole value quoted back (a 100,000-character
    value comes back whole). The handler checks it (lessons.inputs.choice) and says so on the page."""

    def preprocess(self, payload):
        return payload


class Number(gr.Number):
    """gr.Number that passes the value on unchecked, like Slider: Gradio's own preprocess turns NaN, inf or text
    into a red "Error" toast and a logged traceback. The handler clamps and rounds it (lessons.inputs.whole /
    number) and says so on the page."""

    def preprocess(self, payload):
        return payload


MODEL_KEY_STORAGE = "inside-llama-model"
# gr.BrowserState encrypts what it stores with its `secret`, a random one per instance unless given: the course
# map's picker and every page's model_key() must share one, or a page cannot read the learner's choice. One per
# server process: after a restart an old stored value cannot be read, and the page uses the course model.
MODEL_KEY_SECRET = secrets.token_hex(16)


def model_key() -> gr.State:
    """The learner's chosen model on this page ('' = the course model). Every handler takes it as its first input,
    through `handler`. It is a session State (so API clients see no extra parameter), filled on page load from the
    choice the learner made on the course map, which the browser remembers (a BrowserState) while they browse."""
    from app.context import registry  # late: context loads the model

    remembered = gr.BrowserState("", storage_key=MODEL_KEY_STORAGE, secret=MODEL_KEY_SECRET)
    key = gr.State("")

    def chosen(k):  # a key the host no longer offers (an old browser value) means the course model
        return k if isinstance(k, str) and registry().is_offered(k) else ""

    key.loaded = gr.context.Context.root_block.load(chosen, remembered, key, api_visibility="private", queue=False)
    return key


def on_model(key: gr.State, fn, outputs: list) -> None:
    """When the page opens with another model than the course model, refill `outputs` from `fn(cm)` (every figure
    and control that depends on the model: slider ranges, labels, first figures). The page itself is built with
    the course model, so nothing runs for it. `fn` returns one value per output, like any handler."""
    n = len(outputs)
    run = handler(fn, n, 0)

    def refresh(k, progress=gr.Progress()):
        if not k:
            return gr.skip() if n == 1 else tuple(gr.skip() for _ in range(n))
        progress(0, desc="computing this page on the chosen model")
        return run(k)

    key.loaded.then(refresh, [key], outputs, api_visibility="private")


def handler(fn, n_outputs: int = 1, msg_at: int = 0):
    """Wrap an event handler `fn(cm, *inputs)` for Gradio, wired with the page's model key first:

        btn.click(widgets.handler(on_run, 3), [key, text], [msg, fig, table])

    The wrapper resolves the key to the shared read-only model (app.context.resolve) and turns a LessonError
    (bad learner input, or a model that cannot be loaded) into a notice in output `msg_at`, leaving every other
    output as it was (gr.skip()). Nothing broader is caught: a bug stays a bug. Works for plain handlers and
    for generators (streaming); the wrapper's signature is fn's with `cm` replaced by `model_key`, so
    gr.Progress defaults still work.
    """
    from app.context import resolve  # late: context loads the model

    def fail(e: LessonError):
        if n_outputs == 1:
            return note(str(e))
        return tuple(note(str(e)) if i == msg_at else gr.skip() for i in range(n_outputs))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped(key, *args, **kwargs):
            try:
                yield from fn(resolve(key), *args, **kwargs)
            except LessonError as e:
                yield fail(e)
    else:
        @functools.wraps(fn)
        def wrapped(key, *args, **kwargs):
            try:
                return fn(resolve(key), *args, **kwargs)
            except LessonError as e:
                return fail(e)

    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    wrapped.__signature__ = sig.replace(parameters=[inspect.Parameter(
        "model_key", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params[1:])
    return wrapped
