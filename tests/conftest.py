"""Shared test fixtures: paths to ../shared, the course model, a live app server and a real browser."""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch load; the app server inherits it

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models: one thread is faster than two that wait on each other, and steadier when the machine is busy.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
STORIES = SHARED / "models" / "stories260K"
SHAKESPEARE = SHARED / "data" / "tinyshakespeare.txt"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def fig(plot) -> dict:
    """The Plotly figure inside a gr.Plot output as gradio_client returns it ({'type': 'plotly', 'plot': json})."""
    assert plot["type"] == "plotly"
    return json.loads(plot["plot"])


def array(z) -> np.ndarray:
    """A Plotly array: a plain list, or numpy's binary form {'dtype', 'bdata', 'shape'}."""
    if isinstance(z, dict):
        a = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
        return a.reshape([int(x) for x in str(z.get("shape", len(a))).split(",")])
    return np.array(z, dtype=float)


@pytest.fixture(scope="session")
def cm():
    """The course model the app serves (assets/model, or $INSIDE_LLAMA_MODEL), on CPU."""
    from lessons.course import load_course_model

    return load_course_model(device="cpu")


@pytest.fixture(scope="session")
def stories_cm():
    """A real pretrained Llama (../shared/models/stories260K, its own tokenizer) as the picker would load it."""
    from lessons.course import load_course_model

    return load_course_model(STORIES, device="cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc, url: str, seconds: float, exited, fail=None) -> None:
    """Poll `url` until it answers 200 (the app has started). If the process ends first, fail with `exited()` (its
    message, read then: the log is complete); after `seconds`, kill it and fail. `fail` raises the message
    (default: RuntimeError; a test may pass pytest.fail)."""
    fail = fail or (lambda msg: (_ for _ in ()).throw(RuntimeError(msg)))
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            fail(exited())
        if time.time() > deadline:
            proc.kill()
            fail(f"the app did not start within {seconds:.0f} s")
        time.sleep(0.5)


class AppURL(str):
    """The app's URL ("http://127.0.0.1:PORT/"); `.log` is the path of the server's stdout and stderr."""

    log: Path


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The real app (python -m app.main) served on a free local port for the whole test session (an AppURL: the
    URL string, with the server's log file at `app_url.log`)."""
    port = _free_port()
    # The picker offers stories260K besides the course model (and one broken directory, to show its message).
    broken = tmp_path_factory.mktemp("broken-model")
    (broken / "config.json").write_text("{not json")
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "INSIDE_LLAMA_MODELS": os.pathsep.join([str(STORIES), str(broken)]),
           "GRADIO_ANALYTICS_ENABLED": "False", "INSIDE_LLAMA_DATA": str(tmp_path_factory.mktemp("class-data"))}
    log_path = tmp_path_factory.mktemp("app") / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "app.main"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = AppURL(f"http://127.0.0.1:{port}/")
    url.log = log_path
    wait_until_serving(proc, url, 180, lambda: f"the app exited with code {proc.returncode} before serving:\n"
                                               f"{log_path.read_text()[-3000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def client(app_url):
    import concurrent.futures

    from gradio_client import Client

    class OnceMore(Client):
        """gradio_client shares one event stream among a session's calls, and the server closes it once no call is
        pending (close_stream): a call that joins just then is never heard of, and the client raises CancelledError
        (seen once in a thousand calls, on a loaded machine). Such a call is made once more, on a new stream; what
        the server answered (an error included) is never retried."""

        def predict(self, *args, **kwargs):
            try:
                return super().predict(*args, **kwargs)
            except concurrent.futures.CancelledError:
                return super().predict(*args, **kwargs)

    return OnceMore(app_url, verbose=False)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (Playwright's own browser download is not used)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it when run as root"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    from ui import recording_errors

    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    yield recording_errors(ctx.new_page())
    ctx.close()


@pytest.fixture(scope="module")
def picked(browser, app_url):
    """One browser context in which stories260K was picked on the course map, once (the browser remembers the
    choice for every page, as a learner's does)."""
    from ui import pick

    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    page = ctx.new_page()
    pick(page, app_url)
    page.close()
    yield ctx
    ctx.close()


@pytest.fixture()
def picked_page(picked):
    from ui import recording_errors

    page = recording_errors(picked.new_page())
    yield page
    page.close()

