"""The app as a Hugging Face Space starts it, and its start-up log.

ZeroGPU simulated (tests/zerogpu/: a sitecustomize and a stand-in `spaces` package first on the PYTHONPATH):
`torch.cuda.is_available()` is True from start-up, any real CUDA use outside a `spaces.GPU` function fails, the
Space's environment (SYSTEM=spaces, SPACE_ID, SPACES_ZERO_GPU, GRADIO_SSR_MODE=true: Spaces switch server-side
rendering on) is set and the app is started the Space's way,
`python app/main.py`. It must start, decorate its heavy paths, keep the course model on the CPU, and run every
page's opening events in a browser without an error.
"""

import os
import re
import subprocess
import sys
import time

import pytest

from conftest import ROOT, _free_port, wait_until_serving
from lessons.efficient_attention import compute as E
from ui import idle, no_errors, recording_errors

import lessons

SIM = ROOT / "tests" / "zerogpu"
PAGES = [""] + [lesson.slug for lesson in lessons.LESSONS if lesson.ready]


def false_alarms(log: str) -> list[str]:
    """Lines a teacher reading the log would take for a failure that is not one."""
    return [line for line in log.splitlines()
            if line.startswith("ERROR:") or "GRADIO_HOT_RELOAD" in line or "hot-reload" in line.lower()
            or line.startswith("Traceback")]


@pytest.fixture(scope="module")
def zerogpu(tmp_path_factory):
    """(url, server log path, simulation log path) of the app started as a ZeroGPU Space starts it."""
    tmp = tmp_path_factory.mktemp("zerogpu")
    sim_log, server_log = tmp / "sim.log", tmp / "server.log"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(SIM), "ZEROGPU_SIM_LOG": str(sim_log), "SPACES_ZERO_GPU": "true",
           "SYSTEM": "spaces", "SPACE_ID": "teacher/inside-llama", "GRADIO_SSR_MODE": "true", "SPACE_HOST": "teacher-inside-llama.hf.space",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("INSIDE_LLAMA_MODELS", None)
    with open(server_log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app/main.py"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(proc, url, 240, lambda: f"the app exited as a ZeroGPU Space (code {proc.returncode}):\n"
                           f"{server_log.read_text()[-3000:]}\n{sim_log.read_text() if sim_log.exists() else ''}",
                           fail=pytest.fail)
        yield url, server_log, sim_log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_zerogpu_start_up_touches_no_cuda_and_decorates_the_heavy_paths(zerogpu):
    url, server_log, sim_log = zerogpu
    sim = sim_log.read_text()
    assert sim.startswith("started")  # the simulation was in force
    assert "cuda-outside" not in sim, sim
    durations = [int(d) for d in re.findall(r"^decorated .* duration=(\d+)$", sim, re.M)]
    assert durations, "ZeroGPU needs at least one function decorated with @spaces.GPU at start-up"
    assert max(durations) <= 120  # a visitor's daily quota is a few minutes: no call asks for more than 2
    log = server_log.read_text()
    assert "course model from" in log and " on cpu " in log  # the cheap events stay on the CPU
    assert not false_alarms(log), false_alarms(log)


def test_zerogpu_every_page_opens_without_an_error(zerogpu, browser):
    url, server_log, sim_log = zerogpu
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        for slug in PAGES:
            page = recording_errors(ctx.new_page())
            page.goto(url + slug)
            page.wait_for_selector("gradio-app .main", timeout=60_000)
            idle(page)
            no_errors(page)
            if slug:  # a page's figures draw once its data arrives: wait for the first, then check it is there
                page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            assert page.locator(".js-plotly-plot").count() > 0 or not slug, f"/{slug} shows no figure"
            page.close()
    finally:
        ctx.close()
    assert "cuda-outside" not in sim_log.read_text()
    assert not false_alarms(server_log.read_text())


def test_with_ssr_switched_on_an_unknown_path_gets_the_course_404_page(zerogpu, browser):
    """Spaces set GRADIO_SSR_MODE=true; the course's own 404 page (app.main.not_found_page) must still answer a lost
    learner, and the pages must still come from the app's server (compressed, with the storage stand-in)."""
    url, server_log, sim_log = zerogpu
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        response = page.goto(url + "no-such-lesson")
        assert response.status == 404
        assert page.title() == "Page not found · Inside LLaMA"
        assert page.locator("a[href='/attention']").count() == 1
        lesson = page.goto(url + "attention")
        assert lesson.status == 200 and "__inside_llama" in lesson.text()  # app.model_url.STORAGE_SHIM
    finally:
        ctx.close()


def test_start_up_log_has_no_false_alarm_after_a_profiled_measurement(app_url, client):
    """The efficient-attention page's memory measurement (llama.memory) runs torch.profiler in a worker thread:
    once, on the old code, kineto printed 'ERROR: External init callback must run in same thread as
    registerClient'."""
    msg, plot, md = client.predict(E.REACH_CHOICES[0], api_name="/efficient_attention_memory")
    assert msg == "" and plot is not None and "T = " in md
    time.sleep(0.5)
    log = app_url.log.read_text()
    assert "[inside-llama] start-up in" in log  # the start-up time by phase
    assert not false_alarms(log), false_alarms(log)
