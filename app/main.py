"""Entry point: `python -m app.main` (make run) or `python app/main.py` (Hugging Face Spaces).

Only assembles pages: the course map at "/" and one route per ready lesson.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# One BLAS/OpenMP thread per request (set before numpy and torch load): two threads on a 2-vCPU host
# wait on each other and make small matrix products 10-100x slower under load. See app/context.py.
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `python app/main.py` finds llama/ and lessons/


def _libc():
    """glibc through ctypes, or None off glibc (then the two memory settings below do nothing)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _few_malloc_arenas(n: int = 2) -> None:
    """glibc gives each new thread its own malloc arena, and memory freed in one is rarely returned: with Gradio's
    worker threads the server's resident memory grows by hundreds of MB of half-empty arenas. Two arenas (before
    any thread starts) keep it flat (bench/bench_memory.py). Same as MALLOC_ARENA_MAX=2."""
    if (libc := _libc()) is not None:
        libc.mallopt(-8, n)  # M_ARENA_MAX


def _trim_heap_every(seconds: float = 30.0) -> None:
    """glibc keeps freed memory in the process (for reuse) rather than handing it back; malloc_trim(0) hands back
    the free pages. Building the pages and serving requests free a lot of short-lived memory (traces, figures,
    tokenizer training), so a daemon thread trims every `seconds` (a few milliseconds each time)."""
    if (libc := _libc()) is None:
        return

    def loop():
        while True:
            time.sleep(seconds)
            libc.malloc_trim(0)

    threading.Thread(target=loop, name="malloc-trim", daemon=True).start()


_few_malloc_arenas()

import collections  # noqa: E402
import copy  # noqa: E402
import gc  # noqa: E402
import html  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import app  # noqa: E402,F401  (before gradio: its import then skips writing type stubs; app/__init__.py)
import gradio as gr  # noqa: E402

import lessons  # noqa: E402
from app import background, classroom, controls, model_url, share, startup  # noqa: E402
from app.classroom import api as class_api  # noqa: E402
from app.context import course  # noqa: E402
from app.pages import home  # noqa: E402

# The Soft theme with the reader's own system fonts instead of its web fonts (Montserrat and IBM Plex Mono: about
# 200 kB on every first visit; bench/bench_pages.py).
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial",
                "Noto Sans", "sans-serif")
SYSTEM_MONO = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "DejaVu Sans Mono",
               "monospace")
THEME = gr.themes.Soft(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO)


def tab_titles() -> dict[str, str]:
    """URL path -> browser-tab title: the course map and every ready lesson."""
    titles = {"/": "Inside LLaMA: course map"}
    titles.update({lesson.path: f"{lesson.title} · Inside LLaMA" for lesson in lessons.LESSONS if lesson.ready})
    return titles


STATIC = Path(__file__).resolve().parent / "static"  # the page's own CSS and JS
KEEP_ALIVE_S = 75  # seconds an idle HTTP connection is kept open (main(): the Stop's request must not queue)
CSS = (STATIC / "app.css").read_text(encoding="utf-8")  # launch(css=...): Gradio scopes it to the app


def head() -> str:
    """The page head of every route: the phone rules (app/static/layout.css); the keyboard, figure-title and
    screen-reader scripts (app/static/keys.js, figures.js, figure_labels.js, controls.css); the picked model kept in
    the URL (app/model_url.py) and a link's fragment (app/share.py); each page's tab title (titles.js); the course
    skeleton (app/static/course.css, course.js: answers hidden until Reveal, Go deeper links, check yourself); the
    learner's Stop (app/static/stop.js, app.background.StopBoard); the figures' Plotly chunk fetched as a lesson page starts (startup.preload_js); and class mode's banner and script
    (app/classroom)."""
    static = {name: (STATIC / name).read_text(encoding="utf-8") for name in
              ("layout.css", "controls.css", "course.css", "keys.js", "figures.js", "figure_labels.js", "titles.js",
               "course.js", "stop.js")}
    return ("<style>" + static["layout.css"] + static["controls.css"] + static["course.css"] + "</style><script>"
            + static["keys.js"] + static["figures.js"] + static["figure_labels.js"] + model_url.HEAD_JS
            + share.HEAD_JS + static["titles.js"].replace("__TITLES__", json.dumps(tab_titles()))
            + static["course.js"] + static["stop.js"] + startup.preload_js() + "</script>" + classroom.head())


def not_found_page() -> str:
    """A lost learner (an old or mistyped link) gets the course's pages, not Starlette's raw JSON."""
    items = "".join(f'<li><a href="{html.escape(lesson.path)}">{html.escape(lesson.title)}</a></li>'
                    for lesson in lessons.LESSONS if lesson.ready)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>Page not found · Inside LLaMA</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;"
            "margin:2rem auto;padding:0 1rem;line-height:1.5}</style></head><body>"
            "<h1>Inside LLaMA</h1><p>There is no page at this address. The course's pages are:</p>"
            f"<ul><li><a href='/'>Course map</a></li>{items}</ul></body></html>")


async def not_found(request, exc):
    """404 handler: a browser asking for a page gets not_found_page(); API calls keep their JSON answer."""
    from fastapi.responses import HTMLResponse, JSONResponse

    path = request.url.path
    if request.method == "GET" and "text/html" in request.headers.get("accept", "") and "gradio_api" not in path:
        return HTMLResponse(not_found_page(), status_code=404)
    return JSONResponse({"detail": getattr(exc, "detail", "Not Found")}, status_code=404,
                        headers=getattr(exc, "headers", None))


COURSE_MAP = "Course map"  # the page bar's name for "/"


def build() -> gr.Blocks:
    """The course map at "/" and one route per ready lesson. Its config and web app are built by `launch()`."""
    with startup.app_built_at_launch():  # not at each page's end (app/startup.py)
        return _build()


def _build() -> gr.Blocks:
    t0 = time.time()
    startup.mark("imports")
    cm = course()  # loaded once, before any page is built
    startup.mark("course model")
    with gr.Blocks(title="Inside LLaMA") as demo:
        # Gradio reads the page bar's settings from the gr.Navbar of the page being shown (one per page, none
        # inherited): without one, a lesson page's bar names "/" "Home". So every page gets its own.
        gr.Navbar(main_page_name=COURSE_MAP)
        home.build(cm)
    ready = [lesson for lesson in lessons.LESSONS if lesson.ready]
    for lesson in ready:  # a page's slow first results, started now on the other core (a page's `prepare(cm)`)
        getattr(importlib.import_module(f"app.pages.{lesson.slug}"), "prepare", lambda cm: None)(cm)
    for n, lesson in enumerate(ready, 1):
        print(f"[inside-llama] building page {n}/{len(ready)}: {lesson.title}", flush=True)
        page = importlib.import_module(f"app.pages.{lesson.slug}")
        with demo.route(lesson.short or lesson.title, lesson.path):
            gr.Navbar(main_page_name=COURSE_MAP)
            page.build(cm, lesson)
        share.check_linked(lesson.slug)
    controls.steady_sliders(demo)  # every slider follows the learner's hand (app/controls.py)
    print(f"[inside-llama] {len(ready)} lesson pages ready in {time.time() - t0:.1f}s", flush=True)
    startup.mark("pages")
    return demo


def _lean_sessions() -> None:
    """Gradio keeps, in each browser session, a copy of the app's block table and a config (with the last value
    shown: every plot's JSON) of every component the session touched, only to build "deep links" (a URL that
    restores a session), which this app does not offer; building the full config also took about 0.3 s of CPU
    per new session. Over a few thousand visits that grew the server by hundreds of MB (bench/bench_memory.py).
    Here a session shares the app's block table until a handler changes a component's properties (then it keeps
    only the changed blocks, over the shared table) and keeps no config; its gr.State values
    (gradio.state_holder.SessionState.state_data) are kept as before."""
    from gradio import state_holder
    from gradio.components import State

    class LeanSessionState(state_holder.SessionState):
        def __init__(self, blocks):  # SessionState.__init__ of Gradio 6, less the copies
            self.blocks_config = blocks.default_config  # shared read-only; copied on the first write below
            self._own_blocks = False
            self.config_values = {}  # stays empty: no deep links
            self.state_data = {}
            self._state_ttl = {}
            self.is_closed = False
            self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600

        def __setitem__(self, key, value):
            if not self._own_blocks and not isinstance(self.blocks_config.blocks.get(key), State):
                # A handler changed a component's properties (a slider's maximum): this session gets its own
                # table, as an overlay on the shared one (Gradio's copy.copy duplicated every block and event,
                # about 9 KB a session).
                own = copy.copy(self.blocks_config.__dict__)
                self.blocks_config = object.__new__(type(self.blocks_config))
                self.blocks_config.__dict__.update(own, blocks=collections.ChainMap({}, own["blocks"]))
                self._own_blocks = True
            super().__setitem__(key, value)
            self.config_values.pop(key, None)

        def _update_config(self, key):
            pass

        def _update_value_in_config(self, key, value):
            pass

    state_holder.SessionState = LeanSessionState


_lean_sessions()

# Sessions (their gr.State values: a learner's trained tokenizer, measured results) are evicted least recently
# used first once this many newer ones exist; a learner who is using a page keeps it.
SESSIONS = int(os.environ.get("INSIDE_LLAMA_SESSIONS", "2000"))
# Events of one kind that run at once (each page's heavy events set their own, lower limits). Chosen by
# bench/bench_load.py on a 2-vCPU host; the variable is there to re-measure on another one.
CONCURRENCY = int(os.environ.get("INSIDE_LLAMA_CONCURRENCY", "4"))


def warm() -> None:
    """A page's `warm(cm)`, where it has one, computes the few results that every learner of a class would otherwise
    ask for at once (bench/bench_load.py showed them waiting seconds). main() runs it in a background thread once the
    server answers (it took 3-6 s of the start-up): a learner who asks for one of these results meanwhile waits for
    the computation under way (lessons.course.LRU.get_or_compute), never for a second one."""
    t0 = time.time()
    try:
        for lesson in (lesson for lesson in lessons.LESSONS if lesson.ready):
            page = importlib.import_module(f"app.pages.{lesson.slug}")
            if hasattr(page, "warm"):
                page.warm(course())
    except Exception as e:  # noqa: BLE001  (the results are then computed when first asked for)
        print(f"[inside-llama] warming the pages' shared results failed: {e!r}", flush=True)
        return
    print(f"[inside-llama] pages' shared results warmed in {time.time() - t0:.1f}s (in the background)", flush=True)


def main() -> None:
    startup.prefetch_models()  # the Hub's files of INSIDE_LLAMA_MODELS, in a background thread
    # What the imports made (gradio, torch, numpy: modules live as long as the server) is frozen at once, so the
    # collections that building the pages sets off walk only the pages' new objects: 0.4 s less start-up on this
    # 2-core machine (0.26 -> 0.08 s of collections during the build, 0.28 -> 0.05 s for the collection below).
    gc.freeze()
    demo = build()
    startup.quiet_log()
    # The pages and the model are ~460,000 Python objects that live as long as the server. A
    # full garbage collection walks them all (about 0.3 s on a quiet 2-core machine, every thread waiting), now and
    # then while a class is on: frozen, collections walk only what the learners' requests create.
    gc.collect()  # what start-up left as garbage goes first: frozen objects are never collected
    gc.freeze()
    _trim_heap_every()
    with startup.app_built_at_launch():  # queue() would build the web app once more
        demo.queue(default_concurrency_limit=CONCURRENCY)
    # Local default 127.0.0.1:7860; Hugging Face Spaces sets GRADIO_SERVER_NAME=0.0.0.0 itself.
    os.environ.setdefault("GRADIO_SERVER_NAME", "127.0.0.1")
    demo.launch(theme=THEME, css=CSS, head=head(), state_session_capacity=SESSIONS,
                app_kwargs={"exception_handlers": {404: not_found}, "middleware": startup.middleware(),
                            "routes": class_api.routes() + background.routes()},
                prevent_thread_lock=True, ssr_mode=False)  # SSR (on by default on Spaces): README, Hosting
    # Idle connections stay open KEEP_ALIVE_S, not uvicorn's 5 s: with the page's two long streams (Gradio's heartbeat
    # and queue) and connections the server had closed after 5 idle seconds, Chromium held a new request (the
    # training lab's Stop) in its six-per-host queue until a stream ended, up to 10 s (issue 24). Read per connection.
    demo.server.config.timeout_keep_alive = KEEP_ALIVE_S
    startup.mark("launch")
    startup.report()
    threading.Thread(target=warm, name="warm", daemon=True).start()
    demo.block_thread()


if __name__ == "__main__":
    main()
