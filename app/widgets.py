"""Shared page pieces: the lesson header with previous/next links, lesson text sections, error notes."""

from __future__ import annotations

import functools
import html
import inspect
import secrets
from pathlib import Path

import gradio as gr

import lessons
from lessons import LessonInfo
from lessons.inputs import LessonError
from lessons.course import ROOT
from app import costs


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
    """Navigation, the title, the "you are here" map, what the learner knows and what this page adds, and the page's
    link box (app.share fills it: the link that keeps this state)."""
    from app.context import course
    from app.course_map import you_are_here
    from app.share import link_box

    gr.HTML(nav_links(lesson))
    gr.Markdown(f"# {lesson.title}")
    gr.HTML(you_are_here(lesson, course().config.n_layers), elem_classes=["you-are-here"])
    with gr.Row(equal_height=False, elem_classes=["lesson-top"]):
        gr.Markdown(f"**You know** {lesson.knows} **This page adds** {lesson.adds}",
                    elem_classes=["lesson-opener"], elem_id=f"{lesson.slug}-opener")
        with gr.Column(scale=0, min_width=320):
            link_box()


def lesson_footer(lesson: LessonInfo) -> None:
    """"Check yourself" (the page's questions with the learner's picks and results, kept in the browser) and the
    previous/next links."""
    check_yourself(lesson)
    gr.HTML(nav_links(lesson))


def check_yourself(lesson: LessonInfo) -> gr.HTML:
    """The page's questions, each with the learner's pick and result so far. app/static/course.js fills it from the
    browser's storage (kept while they browse; a page whose storage is blocked keeps them for the visit)."""
    return gr.HTML(f'<section class="check-yourself" data-lesson="{html.escape(lesson.slug)}">'
                   "<h2>Check yourself</h2><ol class=\"check-list\"></ol></section>",
                   elem_id=f"{lesson.slug}-check-yourself")


def go_deeper(title: str, elem_id: str) -> gr.Accordion:
    """Depth that the core path can skip: a collapsed accordion "Go deeper: <title>". A link ending in
    `#deeper-<elem_id>` opens it and scrolls to it (app/static/course.js).

        with widgets.go_deeper("the memory attention needs", "memory"):
            ...components...
    """
    return gr.Accordion(f"Go deeper: {title}", open=False, elem_id=f"deeper-{elem_id}", elem_classes=["go-deeper"])


def until_reveal(qid: str) -> gr.Column:
    """A column that stays hidden until the learner presses the Reveal of question `qid` (predict_reveal): put the
    figure or table that answers the question inside, so the answer is never on screen before the question is
    answered. Hidden by CSS on the page (app/static/course.js adds `revealed-<qid>` to the page on Reveal), so the
    figure is computed with the page and shows at once."""
    return gr.Column(elem_classes=["until-reveal", f"until-{_css_id(qid)}"])


def _css_id(qid: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in qid)


def sections(lesson: LessonInfo, n_figures: int) -> list[str]:
    """lesson.md split at '<!-- figure -->' markers, so text and live figures can alternate on the page: at least
    n_figures + 1 parts (missing ones are empty, so a lesson.md with fewer markers never drops a figure)."""
    parts = [s.strip() for s in lesson.text().split("<!-- figure -->")]
    return parts + [""] * (n_figures + 1 - len(parts))


def prose(md: str) -> gr.Markdown:
    """Lesson text with $...$ and $$...$$ rendered as LaTeX."""
    return gr.Markdown(md, latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                             {"left": "$", "right": "$", "display": False}])


def predict_reveal(question, choices: list | None = None, button: str = "Reveal", elem_id: str | None = None,
                   qid: str | None = None):
    """A predict-then-reveal question: the learner commits to an answer, then the button asks the live model.
    `question` is a lessons.grading.Question (its text, choices, id and misconception) or, for older pages, the
    question's text with `choices`. Returns (radio, button, answer) for the page to wire; the page's reveal puts a
    verdict (lessons.grading) into `answer`. Pressing the button also shows what `widgets.until_reveal(qid)` hid,
    and the verdict is kept for the page's "check yourself" list (app/static/course.js)."""
    from lessons.grading import Question

    if isinstance(question, Question):
        qid, text, choices = question.qid, question.text, list(question.choices)
    else:
        text = question
        qid = qid or (elem_id or "q-" + _css_id(text.lower())[:40])
    cid = _css_id(qid)
    gr.Markdown(f"**Predict:** {text}", elem_classes=["predict-question"], elem_id=f"question-{cid}")
    guess = Radio(choices, label="Your prediction")  # an unknown value (API) becomes a notice (lessons.grading)
    btn = gr.Button(button, elem_classes=["reveal-button"])
    out = gr.Markdown(elem_id=elem_id, elem_classes=["reveal-answer"])
    btn.click(None, None, None, js=f"() => {{ window.insideLlama && window.insideLlama.reveal({cid!r}); }}")
    out.change(None, [guess, out], None,
               js=f"(g, o) => {{ window.insideLlama && window.insideLlama.record({cid!r}, g, o); }}")
    from app.classroom import record_answers  # late: app.classroom imports nothing of the pages

    record_answers(text, choices, guess, out, qid=qid)  # for the class, when the learner's browser is in one
    return guess, btn, out


def message(text: str = "", elem_id: str | None = None) -> gr.Markdown:
    """A slot for notices and input errors, shown on the page instead of a traceback."""
    return gr.Markdown(text, elem_classes=["lesson-message"], elem_id=elem_id)


def note(text: str) -> str:
    return f"⚠️ {text}" if text else ""



class Slider(gr.Slider):
    """gr.Slider that passes the value on unchecked: Gradio's own range check raises a red "Error" toast (and a
    logged traceback) for a number typed into the slider's box outside its range, and lets NaN through anyway.
    Every handler clamps and rounds its inputs itself (lessons.inputs.whole / number) and says so on the page.

    An empty range (maximum <= minimum: a one-token text, a one-layer model) would make Gradio raise "Slider minimum
    must be less than maximum", a red "Error" toast, when a handler sends it: the slider then spans one step and
    is disabled instead (an update that does not say `interactive` leaves the browser's state as it was, so a
    page whose range depends on the text sends interactive= itself, with its notice)."""

    def __init__(self, minimum: float = 0, maximum: float = 100, value=None, *, step: float | None = None,
                 interactive: bool | None = None, **kwargs):
        if maximum <= minimum:
            maximum, interactive = minimum + (step or 1), False
        super().__init__(minimum, maximum, value, step=step, interactive=interactive, **kwargs)

    def get_config(self, cls=None):
        # gr.Slider's own signature (this __init__ names only a few arguments): Gradio builds the config from it.
        return super().get_config(cls or gr.Slider)

    def preprocess(self, payload):
        return payload


class Plot(gr.Plot):
    """gr.Plot for lesson figures, with what a teacher takes away from each figure placed right under it:

        widgets.Plot(fig, label="Attention map of one head", elem_id="attention-heatmap", code=C.heatmap_figure)

    - a collapsed "Code" panel with the source of `code`, the function of llama/ or lessons/ that computes the figure,
      read at run time (inspect), with its file and first line (and a link to it on the project's repository when
      the app knows the repository: `repository_url`), so it can never disagree with the code;
    - PNG and SVG buttons (the figure at slide size, 1920 x 1080, drawn by Plotly in the browser) and a CSV button
      (the figure's data, one row per value drawn, from the traces the browser holds).

    Both are one gr.HTML (`figure_tools`): plain buttons and a <details> panel, run by app/static/figures.js.

    Every figure it shows goes through lessons.plots.responsive (titles wrapped and sized for a phone, legend below
    the plot, margins the labels need) and gets a text description for screen readers (lessons.plots.describe, or
    the one the compute function gave it in layout.meta.description), so pages need no per-figure code. The label
    is not drawn (Gradio floats it over the top of the plot, where the figure's own title is); it stays the
    component's name for the API and the page's accessibility tree."""

    def __init__(self, value=None, *, code=None, **kwargs):
        if kwargs.get("elem_id") is None and kwargs.get("render", True):
            kwargs["elem_id"] = _plot_id(kwargs.get("label"))
        if not kwargs.get("render", True) or gr.context.Context.block is None:
            super().__init__(value, **kwargs)
            return
        if code is None:
            raise TypeError(f"widgets.Plot {kwargs.get('label')!r}: name the function that computes the figure "
                            "(code=...), for its Code panel")
        # One column holds the figure and its tools, so figures side by side in a row keep their widths.
        with gr.Column(scale=kwargs.get("scale") or 1, min_width=kwargs.get("min_width") or 160,
                       elem_classes=["figure-block"]):
            super().__init__(value, **kwargs)
            figure_tools(self, code)

    def get_config(self):
        # gr.Plot's own signature (this __init__ adds `code`): Gradio builds a component's config from it.
        config = gr.components.Component.get_config(self, gr.Plot)
        return {**config, "bokeh_version": None, "show_label": False}

    def postprocess(self, value):
        from gradio.components.plot import PlotData
        from plotly.io.json import to_json_plotly

        from lessons.plots import described, responsive

        if value is not None and hasattr(value, "to_plotly_json"):  # a copy: cached figures are shared
            fig = described(responsive(value.to_plotly_json()))
            # The PNG and SVG buttons under the figure export it as a slide (app/static/figures.js); the modebar's
            # camera, which would draw the figure at its size on screen, is left out, and so are the tools a lesson
            # figure does not need: the toolbar stays short, and the title takes the rest of the width (figures.js).
            fig["config"] = {"modeBarButtonsToRemove": MODEBAR_OFF, "displaylogo": False}
            return PlotData(type="plotly", plot=to_json_plotly(fig))
        return super().postprocess(value)


SLIDE = (1920, 1080)  # pixels of an exported figure: a 16:9 slide (app/static/figures.js draws it)
MODEBAR_OFF = ["toImage", "select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "hoverClosestCartesian",
               "hoverCompareCartesian", "toggleSpikelines"]
_plot_ids: dict[str, int] = {}


def _plot_id(label) -> str:
    """An elem_id for a figure the page did not name (the export buttons find the figure by it)."""
    base = "fig-" + ("".join(ch if ch.isalnum() else "-" for ch in (label or "figure").lower()).strip("-")[:40])
    _plot_ids[base] = _plot_ids.get(base, 0) + 1
    return base if _plot_ids[base] == 1 else f"{base}-{_plot_ids[base]}"


def source_of(fn) -> tuple[str, str, int]:
    """(source, file relative to the project, first line) of the function that computes a figure, read now.

        >>> source_of(lessons.plots.wrap)[1]
        'lessons/plots.py'
    """
    fn = inspect.unwrap(fn)
    lines, first = inspect.getsourcelines(fn)
    path = Path(inspect.getsourcefile(fn)).resolve()
    try:
        rel = path.relative_to(ROOT).as_posix()  # lessons.course.ROOT: the project's directory
    except ValueError:
        rel = path.as_posix()
    return "".join(lines), rel, first


REPO_ENV = "INSIDE_LLAMA_REPO"  # the project's source repository, e.g. https://github.com/owner/inside-llama


def repository_url(path: str | None = None, line: int | None = None) -> str | None:
    """The project's source on its repository, when the app knows where that is: $INSIDE_LLAMA_REPO (a GitHub or
    other web URL; files under /blob/main/), or on a Hugging Face Space its own repository ($SPACE_ID, set by
    Spaces). None when neither is set (then no link is shown). With `path` (and `line`): that file (and line)."""
    import os

    base = os.environ.get(REPO_ENV, "").strip().rstrip("/")
    if not base and os.environ.get("SPACE_ID", "").strip():
        base = "https://huggingface.co/spaces/" + os.environ["SPACE_ID"].strip()
    if not base.startswith(("https://", "http://")):
        return None
    if path is None:
        return base
    return f"{base}/blob/main/{path}" + (f"#L{line}" if line else "")


def figure_tools(plot: gr.Plot, code) -> None:
    """The export buttons and the Code panel under a figure (widgets.Plot places them), as one gr.HTML.

    Plain HTML, not Gradio buttons and an accordion: a figure's tools were 8 components and 4 events, 500 of the
    course's 1,130 components, and building them took a quarter of the pages' start-up and a third of each config
    (app/startup.py prints the phases). The buttons carry `data-save` and the figure's elem_id; one click listener in
    app/static/figures.js draws the slide (PNG, SVG) or writes the CSV from the figure the browser holds. <button>
    and <details> work with the keyboard as they are (Tab, Enter, Space)."""
    pid = plot.elem_id
    source, path, first = source_of(code)
    name = getattr(code, "__name__", "figure")
    url = repository_url(path, first)
    link = (f'<p><a href="{html.escape(url)}" target="_blank" rel="noopener">{html.escape(path)}, line {first}, '
            "on the project's repository</a></p>") if url else ""
    buttons = "".join(f'<button type="button" class="figure-tool" id="{pid}-{fmt}" data-save="{fmt}" '
                      f'data-figure="{pid}" aria-label="{label} of this figure">{text}</button>'
                      for fmt, text, label in (("png", "PNG", "Save a PNG image"), ("svg", "SVG", "Save an SVG image"),
                                               ("csv", "CSV (data)", "Save the data")))
    gr.HTML(f'<div class="figure-tools" id="{pid}-tools">{buttons}</div>'
            f'<details class="figure-code" id="{pid}-code"><summary>Code: {html.escape(name)} ({html.escape(path)}, '
            f'line {first})</summary>{link}<pre aria-label="{html.escape(path)}, from line {first}"><code>'
            f"{html.escape(source)}</code></pre></details>",
            js_on_load=None, elem_classes=["figure-extras"])


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

    from app.share import MODEL_PARAM, model_from_link

    remembered = gr.BrowserState("", storage_key=MODEL_KEY_STORAGE, secret=MODEL_KEY_SECRET)
    key = gr.State("")
    # The query of the address the page was opened with, read once here: app.share applies it after the page has
    # refreshed for the chosen model. (A later request carries the address as it is then, which the page itself has
    # rewritten with the values a picked model set: those are not a link.)
    key.query = gr.State({})

    def chosen(k, request: gr.Request):
        """A link's `model=` wins (and is remembered for the next pages); else the browser's choice. A key the
        host no longer offers (an old browser value) means the course model."""
        query = dict(request.query_params) if request is not None else {}
        linked, _ = model_from_link(query.get(MODEL_PARAM))
        if linked is not None:
            return linked, linked, query
        return (k if isinstance(k, str) and registry().is_offered(k) else ""), gr.skip(), query

    key.loaded = gr.context.Context.root_block.load(chosen, remembered, [key, remembered, key.query],
                                                    api_visibility="private", queue=False)
    return key


def on_model(key: gr.State, fn, outputs: list, opening=None) -> None:
    """When the page opens with another model than the course model, refill `outputs` from `fn(cm)` (every figure
    and control that depends on the model: slider ranges, labels, first figures). The page itself is built with
    the course model, so nothing runs for it. `fn` returns one value per output, like any handler. `opening(cm)`,
    lessons.cost's estimate of what `fn` computes, is said in the progress line before `fn` runs when it is slow
    (a big model on a CPU: app.costs.opening)."""
    n = len(outputs)
    run = handler(fn, n, 0)
    sliders = [i for i, c in enumerate(outputs) if isinstance(c, gr.Slider)]
    pickers = [i for i, c in enumerate(outputs) if isinstance(c, (gr.Radio, gr.Dropdown))]
    key.model_outputs = outputs  # (tests check that every model-dependent control is among them)
    # {slider id: (min, max)} and {radio or dropdown id: [choices]} as set for the chosen model: a link's values are
    # checked against these (share.with_bounds), not against the course model's the page was built with
    key.bounds = gr.State({})

    def refresh(k, progress=gr.Progress()):
        if not k:
            return (*(gr.skip() for _ in range(n)), gr.skip())
        progress(0, desc="computing this page on the chosen model")
        said = opening_line(k, opening)
        if said:
            progress(0, desc=said)
        out = run(k)
        out = (out,) if n == 1 else tuple(out)
        bounds = {str(outputs[i]._id): (out[i].get("minimum", outputs[i].minimum),
                                        out[i].get("maximum", outputs[i].maximum))
                  for i in sliders if isinstance(out[i], dict)}
        bounds.update({str(outputs[i]._id): [c[1] if isinstance(c, (tuple, list)) else c for c in out[i]["choices"]]
                       for i in pickers if isinstance(out[i], dict) and out[i].get("choices") is not None})
        return (*out, bounds)

    key.refreshed = key.loaded.then(refresh, [key], [*outputs, key.bounds], api_visibility="private")


def opening_line(key: str, opening) -> str:
    """The progress line said before a page opens with the model `key` ('' when the page opens quickly, has no
    estimate, or the model cannot be loaded: the page's handler then says why)."""
    from app.context import resolve  # late: context loads the model

    if opening is None:
        return ""
    try:
        cm = resolve(key)  # loaded once (the picker measured its rate then), shared
        return costs.opening(opening(cm))
    except LessonError:
        return ""


def handler(fn, n_outputs: int = 1, msg_at: int = 0):
    """Wrap an event handler `fn(cm, *inputs)` for Gradio, wired with the page's model key first:

        btn.click(widgets.handler(on_run, 3), [key, text], [msg, fig, table])

    The wrapper resolves the key to the shared read-only model (app.context.resolve) and turns a LessonError
    (bad learner input, or a model that cannot be loaded) into a notice in output `msg_at`, leaving every other
    output as it was (gr.skip()). Nothing broader is caught: a bug stays a bug. Works for plain handlers and
    for generators (streaming); the wrapper's signature is fn's with `cm` replaced by `model_key`, so
    gr.Progress defaults still work.
    """
    from app.context import lent_gpu, resolve  # late: context loads the model
    from app.gpu import FORWARD_S, STREAM_S, gpu

    def fail(e: LessonError):
        if n_outputs == 1:
            return note(str(e))
        return tuple(note(str(e)) if i == msg_at else gr.skip() for i in range(n_outputs))

    # A picked model on a GPU lent per call (ZeroGPU): the event runs inside app.gpu.gpu, which attaches the GPU for
    # the call; the key is resolved inside it (the model is not passed to the GPU worker). Elsewhere it is fn itself.
    if inspect.isgeneratorfunction(fn):
        @gpu(STREAM_S)
        def on_gpu(key, *args, **kwargs):
            yield from fn(resolve(key), *args, **kwargs)

        @functools.wraps(fn)
        def wrapped(key, *args, **kwargs):
            try:
                if lent_gpu(key):
                    yield from on_gpu(key, *args, **kwargs)
                else:
                    yield from fn(resolve(key), *args, **kwargs)
            except LessonError as e:
                yield fail(e)
    else:
        @gpu(FORWARD_S)
        def on_gpu(key, *args, **kwargs):
            return fn(resolve(key), *args, **kwargs)

        @functools.wraps(fn)
        def wrapped(key, *args, **kwargs):
            try:
                return on_gpu(key, *args, **kwargs) if lent_gpu(key) else fn(resolve(key), *args, **kwargs)
            except LessonError as e:
                return fail(e)

    wrapped.msg_at = msg_at  # where the notice goes (app.share puts a link's notice there too)
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    wrapped.__signature__ = sig.replace(parameters=[inspect.Parameter(
        "model_key", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params[1:])
    return wrapped
