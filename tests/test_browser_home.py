"""The course map's first screen in Chromium: the whole-model picture (app/whole_model.py) above the fold at 1366x768
with the text box and the append button, readable at 390 px, every part a link to its lesson, one bar per block of
the loaded model (the picker's choice included), the append button adding the predicted token and running again;
the page bar naming "/" "Course map" on every page; no server path shown to learners."""

import pytest

import lessons
from app.course_map import AFTER, AROUND, BEFORE, BLOCK
from conftest import ROOT, STORIES
from ui import IDLE, pick, recording_errors, wait_text

PARTS = [e for e in BEFORE + BLOCK + AFTER + AROUND if lessons.get(e[2]).ready]
FIRST_SCREEN = """() => {
  const box = s => { const e = document.querySelector(s); const r = e.getBoundingClientRect();
                     return [r.left, r.top, r.right, r.bottom]; };
  return {picture: box('#whole-model .wm'), text: box('#whole-model-text'), append: box('#whole-model-append'),
          scroll: document.documentElement.scrollWidth, inner: window.innerWidth, height: window.innerHeight,
          cards: [...document.querySelectorAll('#whole-model .wm-card')].map(c => {
            const r = c.getBoundingClientRect(); return [r.left, r.right, r.width]; }),
          font: Math.min(...[...document.querySelectorAll('#whole-model .wm *')].filter(e => e.childNodes.length &&
            [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
            .map(e => parseFloat(getComputedStyle(e).fontSize)))};
}"""


def open_home(browser, app_url, width, height):
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = recording_errors(ctx.new_page())
    page.goto(app_url)
    page.locator("#whole-model .wm").wait_for(timeout=60_000)
    page.wait_for_function(IDLE, timeout=60_000)
    page.wait_for_timeout(300)
    return ctx, page


def test_the_whole_model_is_on_the_first_screen_at_1366x768_and_reads_at_390px(browser, app_url):
    ctx, page = open_home(browser, app_url, 1366, 768)
    m = page.evaluate(FIRST_SCREEN)
    for name in ("picture", "text", "append"):  # wholly above the fold
        left, top, right, bottom = m[name]
        assert 0 <= top and bottom <= m["height"] and right <= m["inner"], (name, m[name])
    assert m["scroll"] <= m["inner"]
    assert m["font"] >= 11.5  # the smallest text of the picture (ids, notes) still reads
    # the course model's config draws the picture: one bar per block after the embedding's
    assert page.locator("#whole-model .wm-bars rect").count() == 6 + 1
    assert "6 × Llama block" in page.inner_text("#whole-model")
    ctx.close()

    ctx, page = open_home(browser, app_url, 390, 844)
    m = page.evaluate(FIRST_SCREEN)
    assert m["scroll"] <= 390, "the page scrolls sideways on a phone"
    for left, right, width in m["cards"]:  # stacked one per row, none clipped
        assert left >= 0 and right <= 390 and width >= 250, m["cards"]
    top = m["text"][1]
    assert top < 844, "the text box is not on a phone's first screen"
    assert page.errors == []
    ctx.close()


def test_every_part_of_the_picture_links_to_its_lesson(page, app_url):
    page.goto(app_url)
    page.locator("#whole-model .wm").wait_for(timeout=60_000)
    links = page.eval_on_selector_all("#whole-model a", "as => as.map(a => [a.getAttribute('href'), a.textContent, "
                                      "a.getAttribute('target')])")
    for part, label, slug in PARTS:
        hit = [t for href, t, _ in links if href == "/" + slug and label in t]
        assert hit, f"no link to /{slug} labelled {label!r} ({part}) in the picture: {links}"
    assert {href for href, _, _ in links} == {"/" + s for _, _, s in PARTS} | {"/assembled"}
    assert all(target == "_self" for _, _, target in links)
    # a part's link opens its lesson
    page.locator('#whole-model a[href="/attention"]').first.click()
    page.wait_for_url("**/attention", timeout=30_000)
    page.locator("h1").first.wait_for(timeout=60_000)
    assert lessons.get("attention").title in page.locator("h1").first.inner_text()


def test_append_adds_the_predicted_token_and_runs_again(page, app_url):
    page.goto(app_url)
    page.locator("#whole-model .wm").wait_for(timeout=60_000)
    page.wait_for_function(IDLE, timeout=60_000)
    box = page.locator("#whole-model-text textarea, #whole-model-text input").first
    for _ in range(2):  # the course model's second pick is a newline token: the text box must keep it
        before = box.input_value()
        n_before = page.locator("#whole-model .wm-tok").count()
        predicted = page.locator("#whole-model .wm-predicted").inner_text()
        button = page.locator("#whole-model-append")
        assert predicted in button.inner_text()
        button.click()
        page.wait_for_function("n => document.querySelectorAll('#whole-model .wm-tok').length === n",
                               arg=n_before + 1, timeout=60_000)
        page.wait_for_function(IDLE, timeout=60_000)
        after = box.input_value()
        assert after.startswith(before) and after != before
        assert after[len(before):] == predicted.replace("␣", " ").replace("⏎", "\n")
        last_chip = page.locator("#whole-model .wm-tok b").last.inner_text()
        assert last_chip == predicted  # the model read the appended token: the last token of the new picture
        assert page.locator("#whole-model").inner_text().count(f"T = {n_before + 1} tokens") == 1
    # typing a new text and pressing Enter runs it too
    box.fill("To be, or not to be")
    box.press("Enter")
    wait_text(page, "#whole-model", "T = 8 tokens")
    assert page.errors == []


def test_the_picture_follows_the_model_picker(page, app_url):
    pick(page, app_url)  # stories260K: 5 layers, width 64
    wait_text(page, "#whole-model", "5 × Llama block", timeout=120_000)
    assert page.locator("#whole-model .wm-bars rect").count() == 5 + 1
    assert "(1, " in page.inner_text("#whole-model") and ", 64)" in page.inner_text("#whole-model")
    device = page.inner_text("#model-device")
    assert "stories260K" in device and "/" not in device  # a name, no path
    page.reload()  # the browser remembers the choice: the page, built with the course model, redraws for it
    wait_text(page, "#whole-model", "5 × Llama block", timeout=120_000)
    assert page.locator("#whole-model .wm-bars rect").count() == 5 + 1


@pytest.mark.parametrize("path", ["", "attention"])
def test_the_page_bar_calls_the_course_map_course_map(page, app_url, path):
    from playwright.sync_api import TimeoutError as Timeout

    page.goto(app_url + path, wait_until="domcontentloaded")  # the bar, not the lesson's figures
    page.locator(".nav-holder nav a").first.wait_for(timeout=60_000)
    try:  # Gradio renames the bar's first link when the page's gr.Navbar mounts (never, on a page without one)
        page.wait_for_function("() => { const a = document.querySelector('.nav-holder nav a'); "
                               "return a && a.textContent.trim() === 'Course map'; }", timeout=30_000)
    except Timeout:
        pass  # the assertion below says what the bar shows
    names = [a.inner_text().strip() for a in page.locator(".nav-holder nav a").all()]
    assert names[0] == "Course map" and "Home" not in names


def test_the_course_map_names_the_model_and_shows_no_server_path(client):
    status, picker, remembered, runs_on, summary, card = client.predict("", str(STORIES), api_name="/choose_model")
    assert "The Inside LLaMA course model" in runs_on
    assert str(ROOT) not in runs_on and "assets/model" not in runs_on
    status, picker, remembered, runs_on, summary, card = client.predict(str(STORIES), "", api_name="/choose_model")
    assert "stories260K" in runs_on and str(STORIES) not in runs_on


def test_a_model_is_named_by_its_card_its_hub_id_or_its_folder():
    from types import SimpleNamespace
    from pathlib import Path

    from app.pages.home import model_name

    assert model_name(SimpleNamespace(card="# My Llama\ntext", path=Path("/srv/x/model"))) == "My Llama"
    hub = Path("/root/.cache/huggingface/hub/models--meta-llama--Llama-3.2-1B/snapshots/0123abc")
    assert model_name(SimpleNamespace(card="", path=hub)) == "meta-llama/Llama-3.2-1B"
    assert model_name(SimpleNamespace(card="", path=STORIES)) == "stories260K"
