"""The app as a whole: it serves the course map and one page per ready lesson, each with its own URL."""

import urllib.request

import lessons
from app.pages.home import model_summary


def test_registry_order_and_navigation():
    slugs = [lesson.slug for lesson in lessons.LESSONS]
    assert slugs[:2] == ["tokenization", "attention"] and len(set(slugs)) == len(slugs)
    ready = [lesson for lesson in lessons.LESSONS if lesson.ready]
    assert ready, "no lesson page is ready"
    prev, nxt = lessons.neighbours(ready[0].slug)
    assert prev is None and (nxt is None or nxt.slug == ready[1].slug)


def test_course_map_summarises_the_real_model(cm):
    md = model_summary(cm)
    assert f"{cm.model.num_parameters():,} parameters" in md
    assert f"{cm.config.n_heads} query heads" in md and f"{cm.config.n_kv_heads} key/value heads" in md


def test_every_ready_page_has_its_own_url(app_url):
    for lesson in lessons.LESSONS:
        if lesson.ready:
            with urllib.request.urlopen(app_url + lesson.slug, timeout=30) as r:
                assert r.status == 200


def test_course_map_in_a_real_browser_links_every_ready_lesson(page, app_url):
    page.goto(app_url)
    page.get_by_text("Course map").first.wait_for(timeout=60_000)
    body = page.inner_text("body")
    for lesson in lessons.LESSONS:
        assert lesson.title in body
    page.get_by_text("The course model").first.wait_for()
    ready = [lesson for lesson in lessons.LESSONS if lesson.ready]
    link = page.locator(f'a[href="{ready[0].path}"]').first
    link.click()
    page.wait_for_url("**" + ready[0].path, timeout=30_000)
    page.get_by_text(ready[0].title).first.wait_for(timeout=60_000)
    assert page.errors == []


def test_sliders_work_from_the_keyboard_alone(page, app_url):
    """Arrow keys on a slider (no mouse, no synthetic pointer events) must run the slider's model work."""
    page.goto(app_url + "sampling")
    title = page.locator("#sampling-dist .gtitle")
    title.wait_for(timeout=60_000)
    before = title.text_content()
    slider = page.get_by_label("range slider for temperature T")
    slider.focus()
    for _ in range(2):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("b => { const t = document.querySelector('#sampling-dist .gtitle');"
                           " return t && t.textContent !== b; }", arg=before, timeout=30_000)
    assert title.text_content() != before
    assert page.errors == []


def test_a_malformed_model_directory_stops_the_app_with_a_clear_message(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "config.json").write_text("{not json")
    env = {**os.environ, "INSIDE_LLAMA_MODEL": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "app.main"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert "cannot load the course model" in r.stderr and "not valid JSON" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_shift_enter_runs_a_multiline_text_box_as_its_label_says(page, app_url):
    """Gradio's multi-line boxes submit on Shift+Enter (Enter is a new line); labels must say that."""
    from app.widgets import RUN_HINT

    page.goto(app_url + "swiglu")
    readout = page.locator("#swiglu-gates-readout")
    readout.wait_for(timeout=60_000)
    before = readout.inner_text()
    box = page.get_by_label(f"Your text ({RUN_HINT})")
    box.fill("Now is the winter of our discontent")
    box.press("Shift+Enter")
    page.wait_for_function("b => document.querySelector('#swiglu-gates-readout').innerText !== b", arg=before,
                           timeout=30_000)
    assert box.input_value() == "Now is the winter of our discontent"
    assert page.errors == []
