"""Start-up chores of the server, kept out of app/main.py: the start-up time by phase, a log without false alarms,
the Hub's models fetched in the background, and pages that travel compressed and cached.

- `mark(name)`: a start-up phase ended (timed from the previous mark, the first from the process's start);
  `report()` prints "[inside-llama] start-up in 9.1s: imports 3.2s, course model 0.2s, pages 4.1s, ...".
- `quiet_log()`: no line in the log that is not an error. torch.profiler (llama.memory measures peak memory with
  it) prints "ERROR: External init callback must run in same thread as registerClient" the first time a profiler
  starts in a worker thread: starting one empty session in the main thread here (about 2 ms) registers it where
  kineto expects. On a Space, Gradio starts its hot-reload watcher for Spaces' dev mode, which logs
  "GRADIO_HOT_RELOAD: Launching demo not found ..." and fails without the `spaces` package: the course is served
  as it is, without hot reload.
- `middleware()`: responses compressed (gzip) where the browser accepts it, for the paths Gradio's own Brotli
  middleware leaves alone (it compresses only names ending .js, .css, .json, ...: not the pages, whose HTML carries
  the page's whole config and first figures, nor /gradio_api/info); never the event streams (text/event-stream).
  A page's HTML also carries an ETag: a repeat visit revalidates and gets "304 Not Modified" instead of the page;
  and it starts with app.model_url.STORAGE_SHIM (a page in a frame whose storage is blocked still starts). A page
  goes out in Brotli where the browser takes it (its config repeats itself across a window wider than gzip's:
  tokenization's HTML is 351 kB in gzip, 110 kB in Brotli), compressed once per version of the page.
- `PackedAssets`: Gradio's own Brotli middleware compresses its front-end's files again on every request, at
  quality 4 (Plotly's 4.6 MB bundle: 1,227 kB, 0.2 s of CPU per visitor). A file a browser asks for is compressed
  once at quality 11 (965 kB) by a low-priority background thread, kept on disk (`INSIDE_LLAMA_CACHE`, default
  ~/.cache/inside-llama) and served from there with a year's caching (Vite names the files by their content).
  Plotly's chunk goes out with Plotly's cartesian bundle in place of the full one (`cartesian_plotly`: 389 kB).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import re
import time
from pathlib import Path

PHASES: list[tuple[str, float]] = []


def process_started() -> float:
    """The wall-clock time this process started (Linux /proc), so the imports before this module count too."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        import os

        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


_T0 = process_started()
_last = [_T0]


def mark(name: str) -> None:
    """The phase `name` ended now (it began where the previous one ended)."""
    now = time.time()
    PHASES.append((name, now - _last[0]))
    _last[0] = now


def report() -> str:
    total = _last[0] - _T0
    line = f"[inside-llama] start-up in {total:.1f}s: " + ", ".join(f"{n} {s:.1f}s" for n, s in PHASES)
    print(line, flush=True)
    return line


@contextlib.contextmanager
def app_built_at_launch():
    """Build the app's config and its web app once, at launch, instead of at every step before it.

    Gradio's Blocks.__exit__ (`with demo.route(...)` returns demo itself) rebuilds the whole app's config and a new
    FastAPI app with a route per API endpoint every time a page's block ends: work that grows with the square of the
    pages (16 pages: about 1,650 routes declared and 33 configs built, 10 s of the start-up on a busy machine), and
    `queue()` builds both once more. All of it is thrown away, since `launch()` builds them again. Inside this
    block a block's end and `queue()` skip both (a built app's `demo.config` and `demo.app` stay None until
    launch); launch builds them once. Measured: 0.5-0.7 s of the start-up on this 2-core machine (app.startup's
    phases, before and after)."""
    from gradio.blocks import Blocks
    from gradio.routes import App

    create_app, get_config_file = App.create_app, Blocks.get_config_file
    Blocks.get_config_file = lambda self: None
    App.create_app = staticmethod(lambda *args, **kwargs: None)
    try:
        yield
    finally:
        Blocks.get_config_file = get_config_file
        App.create_app = create_app


def quiet_log() -> None:
    """See the module docstring. Call from the main thread, before the server starts."""
    import threading

    if threading.current_thread() is threading.main_thread():
        import torch
        from torch.profiler import ProfilerActivity
        from torch._C._profiler import ProfilerConfig, ProfilerState, _ExperimentalConfig
        from torch.autograd.profiler import _prepare_profiler

        config = ProfilerConfig(ProfilerState.KINETO, False, False, False, False, False, _ExperimentalConfig())
        _prepare_profiler(config, {ProfilerActivity.CPU})
        torch._C._autograd._enable_profiler(config, {ProfilerActivity.CPU})
        torch._C._autograd._disable_profiler()

    import gradio.http_server

    gradio.http_server.get_space = lambda: None  # only start_server's choice of a hot-reload watcher reads it


# What Gradio's BrotliMiddleware compresses itself (gradio/brotli_middleware.py): by the path's extension.
_BROTLI_EXTENSIONS = (".html", ".htm", ".js", ".css", ".json", ".md", ".txt", ".csv", ".tsv", ".xml", ".svg",
                      ".mjs", ".map")


class CompressPages:
    """gzip for the responses Gradio's Brotli middleware skips (Starlette's GZipMiddleware: never
    text/event-stream, nothing under 500 bytes), and an ETag with `Cache-Control: no-cache` on a page's HTML (in
    Brotli where the browser takes it); Gradio's front-end files packed once (`PackedAssets`)."""

    def __init__(self, app):
        from starlette.middleware.gzip import GZipMiddleware

        self.app = app
        self.gzip = GZipMiddleware(PageHTML(app), minimum_size=500, compresslevel=6)
        self.assets = PackedAssets(app)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path", "").startswith(PackedAssets.PREFIX):
            return await self.assets(scope, receive, send)
        if scope["type"] == "http" and not scope.get("path", "").endswith(_BROTLI_EXTENSIONS):
            return await self.gzip(scope, receive, send)
        return await self.app(scope, receive, send)


def _not_modified(scope, tag: str) -> bool:
    """The request's If-None-Match names this ETag: a 304 answers it."""
    from starlette.datastructures import Headers

    return tag in [t.strip() for t in Headers(scope=scope).get("if-none-match", "").split(",")]


def _accepts_br(scope) -> bool:
    from starlette.datastructures import Headers

    return "br" in Headers(scope=scope).get("accept-encoding", "")


class PackedAssets:
    """Gradio's front-end files (/assets/<name>-<content hash>.js or .css) at Brotli's best quality, compressed once:
    the first request for a file queues it for a background thread (at the lowest CPU priority, so learners'
    requests go first) and gets Gradio's own answer meanwhile; later requests get the packed file from memory,
    with `Cache-Control: immutable` (a file's name changes with its content). Files under MIN_BYTES are left to
    Gradio: packing them saves little. Files packed by an earlier start are read back from disk at once."""

    PREFIX = "/assets/"
    MIN_BYTES = 20_000
    # Packed at start-up, before anyone asks: the chunk every lesson page loads for its figures (Plotly, 4.6 MB;
    # packed with the cartesian bundle in its place, 1.4 MB: `cartesian_plotly`).
    EAGER = ("PlotlyPlot-*.js",)

    def __init__(self, app, root: Path | None = None):
        import threading

        self.app = app
        self.packed: dict[str, bytes] = {}
        self.queued: set[str] = set()
        self.lock = threading.Lock()
        self.work = None
        self.root = root
        if root is None:
            try:
                from gradio.route_utils import BUILD_PATH_LIB

                self.root = Path(BUILD_PATH_LIB)  # .../gradio/templates/frontend/assets
            except ImportError:
                pass
        if self.root is not None:
            for pattern in self.EAGER:
                for f in sorted(self.root.glob(pattern)):
                    self.want(f.name)
            for f in sorted(self.cache().glob("*.br")):  # packed by an earlier start: read back at once
                self.want(re.sub(r"\.(js|css)\..*", r".\1", f.name[:-len(".br")]))  # (x.js.<bundle>.br: x.js)

    @staticmethod
    def cache() -> Path:
        import os

        return Path(os.environ.get("INSIDE_LLAMA_CACHE") or Path.home() / ".cache" / "inside-llama") / "assets"

    def source(self, name: str) -> Path | None:
        if self.root is None or "/" in name or "\\" in name or not name.endswith((".js", ".css")):
            return None
        f = self.root / name
        return f if f.is_file() and f.stat().st_size >= self.MIN_BYTES else None

    def want(self, name: str) -> None:
        """Queue `name` for packing (once)."""
        import queue
        import threading

        with self.lock:
            if name in self.queued or self.source(name) is None:
                return
            self.queued.add(name)
            if self.work is None:
                self.work = queue.Queue()
                threading.Thread(target=self._packer, name="pack-assets", daemon=True).start()
        self.work.put(name)

    def _packer(self) -> None:
        import os
        import threading

        try:  # Linux: this thread alone at the lowest priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        while True:
            name = self.work.get()
            try:
                self.packed[name] = self._pack(name)
            except Exception as e:  # noqa: BLE001  (a file we cannot pack is served by Gradio, as before)
                print(f"[inside-llama] could not pack {name}: {e}", flush=True)

    def _pack(self, name: str) -> bytes:
        import os

        import brotli

        cache = self.cache()
        swap = fnmatch.fnmatch(name, self.EAGER[0]) and CARTESIAN.is_file()
        packed = cache / (name + (f".{CARTESIAN.stem}.br" if swap else ".br"))
        if packed.is_file():  # (read back without reading or splicing the source again)
            return packed.read_bytes()
        source = self.source(name).read_bytes()
        lighter = cartesian_plotly(source) if swap else None  # None: another layout, Gradio's chunk as it is
        data = brotli.compress(lighter if lighter is not None else source, quality=11)
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = packed.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(packed)
        except OSError:  # a read-only home: kept in memory only
            pass
        return data

    async def __call__(self, scope, receive, send):
        name = scope.get("path", "")[len(self.PREFIX):]
        body = self.packed.get(name)
        if scope.get("method") != "GET" or not _accepts_br(scope):
            return await self.app(scope, receive, send)
        if body is None:
            self.want(name)
            return await self.app(scope, receive, send)
        tag = '"br-' + hashlib.sha1(name.encode() + CARTESIAN.name.encode()).hexdigest()[:16] + '"'
        headers = [(b"content-type", b"text/css" if name.endswith(".css") else b"application/javascript"),
                   (b"content-encoding", b"br"), (b"vary", b"Accept-Encoding"), (b"etag", tag.encode()),
                   (b"cache-control", b"public, max-age=31536000, immutable")]
        if _not_modified(scope, tag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            return await send({"type": "http.response.body", "body": b""})
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# Plotly's cartesian bundle (its bar, box, heatmap, scatter and 8 more traces: every trace the lessons draw) in
# place of the full bundle inside Gradio's PlotlyPlot chunk: 389 kB in Brotli instead of 965 kB, the largest part
# of a lesson page's first visit (issue 24). The npm package plotly.js-cartesian-dist-min, MIT (vendor/LICENSE).
CARTESIAN = Path(__file__).resolve().parent / "static" / "vendor" / "plotly-cartesian-3.4.0.min.js"
# Gradio's chunk wraps Plotly's UMD build in a CommonJS shim, `((e,t)=>{(function(e,n){typeof t==`object`&&
# t.exports?t.exports=n():...})(...,()=>{...return window.Plotly=e,e})})`, then its Svelte component follows.
_UMD_START = re.compile(rb"=>\{\(function\((\w+),(\w+)\)\{typeof (\w+)==`object`&&\3\.exports\?\3\.exports=\2\(\)")
_UMD_END = re.compile(rb"return window\.Plotly=(\w+),\1\}\)")


def cartesian_plotly(chunk: bytes) -> bytes | None:
    """Gradio's PlotlyPlot chunk with CARTESIAN in place of the full Plotly it wraps; None when the chunk is not
    laid out as expected (another Gradio build: its own chunk is served as it is) or CARTESIAN is missing."""
    start, ends = _UMD_START.search(chunk), list(_UMD_END.finditer(chunk))
    if start is None or len(ends) != 1 or not CARTESIAN.is_file():
        return None
    module = start.group(3)
    # The bundle's own UMD header asks `typeof module === "object" && module.exports`: the shim's module is it.
    return (chunk[:start.start() + 3] + b"(function(module){" + CARTESIAN.read_bytes() + b"\n})(" + module + b");"
            + chunk[ends[0].end():])


class PageHTML:
    """A GET answered 200 with text/html: app.model_url.STORAGE_SHIM goes first into its <head> (it must run before
    Gradio's scripts), and it gets an ETag (a hash of its body) and `Cache-Control: no-cache`; a request whose
    If-None-Match carries that ETag gets 304 and no body. Other responses pass through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "GET":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers, MutableHeaders

        start, body, passthrough = {}, [], [False]

        async def capture(message):
            if passthrough[0]:
                return await send(message)
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                if message["status"] != 200 or not headers.get("content-type", "").startswith("text/html") \
                        or "content-encoding" in headers:
                    passthrough[0] = True
                    return await send(message)
                start.update(message)
                return None
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return None
            content = b"".join(body)
            if b"<head>" in content[:4096]:
                from app.model_url import STORAGE_SHIM

                content = content.replace(b"<head>", b"<head><script>" + STORAGE_SHIM.encode() + b"</script>", 1)
            tag = '"' + hashlib.sha1(content).hexdigest()[:20] + '"'
            headers = MutableHeaders(raw=start["headers"])
            headers["ETag"] = tag
            headers.add_vary_header("Accept-Encoding")
            headers["Cache-Control"] = "no-cache"  # keep it, but ask whether it changed (a restart rebuilds it)
            if _not_modified(scope, tag):
                del headers["content-length"]
                headers["content-length"] = "0"
                await send({**start, "status": 304, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return None
            if _accepts_br(scope):  # else the gzip around this middleware compresses it
                content = _brotli_page(tag, content)
                headers["content-encoding"] = "br"
            headers["content-length"] = str(len(content))
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": content})
            return None

        return await self.app(scope, receive, capture)


_PAGES_BR: dict[str, bytes] = {}  # ETag -> the page in Brotli (a page's versions: one per page and model choice)


def _brotli_page(tag: str, content: bytes) -> bytes:
    """The page in Brotli (quality 9: 0.06 s for tokenization's 1.1 MB), compressed once per ETag."""
    import brotli

    if tag not in _PAGES_BR:
        if len(_PAGES_BR) >= 64:  # bounded: the oldest version goes
            _PAGES_BR.pop(next(iter(_PAGES_BR)))
        _PAGES_BR[tag] = brotli.compress(content, quality=9)
    return _PAGES_BR[tag]


def preload_js() -> str:
    """In the page head: a lesson page asks for Plotly's chunk (Gradio's largest file, the figures need it) as soon
    as it starts, instead of once Gradio has built the page and mounted its first figure; the course map (no
    figure) does not. '' when the chunk is not found."""
    import json

    try:
        from gradio.route_utils import BUILD_PATH_LIB

        chunk = next(iter(sorted(Path(BUILD_PATH_LIB).glob(PackedAssets.EAGER[0]))), None)
    except ImportError:
        chunk = None
    if chunk is None:
        return ""
    return ("""
(() => {
  if (window.location.pathname.replace(/\\/+$/, "") === "") return;
  const link = document.createElement("link");
  link.rel = "modulepreload";
  link.href = "./assets/" + %s;
  document.head.appendChild(link);
})();
""" % json.dumps(chunk.name))


def middleware() -> list:
    """For `launch(app_kwargs={"middleware": ...})`: innermost of the app's middleware (Gradio adds its own
    around it)."""
    from starlette.middleware import Middleware

    return [Middleware(CompressPages)]


def prefetch_models() -> None:
    from app.context import prefetch

    prefetch()
