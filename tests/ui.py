"""Browser helpers shared by the tests that drive the app in Chromium (Playwright): one way to pick a model, wait
for a text, move a slider from the keyboard, wait for the app to finish, and check for errors."""

from conftest import STORIES

IDLE = "() => document.querySelectorAll('.pending').length === 0"  # Gradio marks outputs of a running event
# An element's text as a reader sees it. Plotly draws each line of a wrapped title as its own <tspan>, so the
# textContent of "top-p<br>0.90" is "top-p0.90": inside SVG, text pieces are joined with a space.
TEXT_OF = """e => {
  if (!(e.closest('svg') || e.querySelector('svg'))) return e.textContent;
  const parts = [], walk = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) parts.push(walk.currentNode.textContent);
  return parts.join(' ').replace(/\\s+/g, ' ');
}"""


def pick(page, app_url: str, name: str = STORIES.name, summary: str = "5 layers") -> None:
    """On the course map choose `name` in the model picker and wait until the map describes it (the browser
    remembers the choice for every page; stories260K by default)."""
    page.goto(app_url)
    page.locator("#model-picker input").click()
    page.get_by_role("option", name=name).click()
    wait_text(page, "#model-summary", summary, timeout=120_000)


def wait_text(page, selector: str, text: str, timeout: float = 60_000) -> str:
    """Wait until an element matching `selector` contains `text` (a pending event first shows a timer there);
    returns the first match's text."""
    page.wait_for_function(f"([s, t]) => [...document.querySelectorAll(s)].some(e => ({TEXT_OF})(e).includes(t))",
                           arg=[selector, text], timeout=timeout)
    return text_of(page.locator(selector).first)


def text_of(locator) -> str:
    """The text of one element as a reader sees it (TEXT_OF: a wrapped Plotly title's lines joined by spaces)."""
    return locator.evaluate(TEXT_OF)


def svg_text(page, elem_id: str) -> str:
    """All text a Plotly figure draws (Plotly text is SVG)."""
    return " ".join(text_of(svg) for svg in page.locator(f"#{elem_id} .main-svg").all())


def wait_svg(page, elem_id: str, text: str, timeout: float = 60_000) -> None:
    wait_text(page, f"#{elem_id} .main-svg", text, timeout)


def press(page, slider, key: str = "ArrowRight", times: int = 1) -> None:
    """Arrow keys on a Gradio slider's range input (a locator, or the slider's label); letting go of the key
    counts as a release (app/main.py), so the slider's event runs."""
    if isinstance(slider, str):
        slider = page.get_by_label(f"range slider for {slider}", exact=True)
    slider.focus()
    for _ in range(times):
        slider.press(key)


def nudge(page, elem_id: str, key: str = "ArrowRight") -> None:
    """One keyboard step of the slider whose elem_id is `elem_id`."""
    press(page, page.locator(f"#{elem_id} input[type=range]"), key)


def idle(page, timeout: float = 120_000) -> None:
    """Wait until no event of the page is running (give a just-clicked event 120 ms to start first)."""
    page.wait_for_timeout(120)
    page.wait_for_function(IDLE, timeout=timeout)


def recording_errors(page):
    """The page, with `page.errors` collecting every uncaught JavaScript error it raises (no_errors asserts none)."""
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def no_error_toast(page) -> bool:
    return page.locator(".toast-body").filter(has_text="Error").count() == 0


def no_errors(page) -> None:
    """No red toast and no JavaScript error (the `page` fixture records them)."""
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0
    assert "Error" not in " ".join(page.locator(".toast-wrap").all_inner_texts())
    assert page.errors == []


def held(out, sent):
    """The value a slider shows after an event: app/controls.py leaves the value out of a slider's update when the
    handler only repeats the value it was sent (so a slider never jumps back to a stale value): an update without
    'value' means "unchanged", the value sent."""
    if isinstance(out, dict):
        assert out.get("__type__") == "update", out
        return out.get("value", sent)
    return out
