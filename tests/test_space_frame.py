"""A Space opened inside the huggingface.co page: a third-party frame where the browser may block storage. The
picked model must survive in the URL (app/model_url.py): picked on the course map, it is in the map's URL, every
link the learner follows carries it, and the lesson pages compute with it."""

import lessons

from conftest import STORIES
from ui import idle, no_errors, wait_text

# What Chromium does to a third-party frame whose storage is blocked: touching localStorage or sessionStorage
# throws a SecurityError.
BLOCK_STORAGE = """
for (const name of ["localStorage", "sessionStorage"]) {
  Object.defineProperty(window, name, {configurable: true, get() {
    throw new DOMException(`Failed to read the '${name}' property from 'Window': Access is denied for this document.`,
                           "SecurityError");
  }});
}
"""


def test_picked_model_survives_in_the_url_with_storage_blocked(app_url, browser):
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    ctx.add_init_script(BLOCK_STORAGE)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    try:
        page.goto(app_url)
        page.locator("#model-picker input").click()
        page.get_by_role("option", name=STORIES.name).click()
        wait_text(page, "#model-summary", "5 layers", timeout=120_000)
        page.wait_for_function("() => new URL(location.href).searchParams.get('model') === 'stories260K'",
                               timeout=30_000)
        # the course map's link to the attention lesson, as a learner clicks it
        page.locator("ul.course-map a[href='/attention']").click()
        page.wait_for_url("**/attention?*model=stories260K*", timeout=30_000)
        wait_text(page, "#attention-grid", "head 7 · KV 3", timeout=120_000)  # stories260K: 8 heads, 4 K/V heads
        idle(page)
        # the lesson's own "next" link carries the model on
        page.locator(".lesson-nav a", has_text=lessons.get("rope").title).first.click()
        page.wait_for_url("**/rope?*model=stories260K*", timeout=30_000)
        page.locator("#rope-plane .js-plotly-plot").first.wait_for(timeout=120_000)
        idle(page)
        # and back on the course map, the picker shows it (from the URL: nothing could be stored)
        page.locator(".lesson-nav a", has_text="Course map").first.click()
        page.wait_for_url("**/?model=stories260K*", timeout=30_000)
        wait_text(page, "#model-summary", "5 layers", timeout=120_000)
        assert STORIES.name in page.locator("#model-picker input").input_value()
        no_errors(page)
    finally:
        ctx.close()
