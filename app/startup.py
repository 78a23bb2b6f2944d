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
  and it starts with app.model_url.STORAGE_SHIM (a page in a frame whose storage is blocked still starts).
"""

from __future__ import annotations

import hashlib
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
    text/event-stream, nothing under 500 bytes), and an ETag with `Cache-Control: no-cache` on a page's HTML."""

    def __init__(self, app):
        from starlette.middleware.gzip import GZipMiddleware

        self.app = app
        self.gzip = GZipMiddleware(PageHTML(app), minimum_size=500, compresslevel=6)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not scope.get("path", "").endswith(_BROTLI_EXTENSIONS):
            return await self.gzip(scope, receive, send)
        return await self.app(scope, receive, send)


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
            headers["Cache-Control"] = "no-cache"  # keep it, but ask whether it changed (a restart rebuilds it)
            wanted = Headers(scope=scope).get("if-none-match", "")
            if tag in [t.strip() for t in wanted.split(",")]:
                del headers["content-length"]
                headers["content-length"] = "0"
                await send({**start, "status": 304, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return None
            headers["content-length"] = str(len(content))
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": content})
            return None

        return await self.app(scope, receive, capture)


def middleware() -> list:
    """For `launch(app_kwargs={"middleware": ...})`: innermost of the app's middleware (Gradio adds its own
    around it)."""
    from starlette.middleware import Middleware

    return [Middleware(CompressPages)]


def prefetch_models() -> None:
    from app.context import prefetch

    prefetch()
