"""The SwiGLU and GQA pages with stories260K picked on the course map, in a real browser: each page shows the
picked model (layer choices, slider ranges, head counts, figures) and its main action works there."""

import pytest

from conftest import STORIES


@pytest.fixture()
def stories_page(page, app_url):
    """A browser tab whose learner picked stories260K on the course map (the choice lives in the browser)."""
    page.goto(app_url)
    page.locator("#model-picker input").click()
    page.get_by_role("option", name=STORIES.name).click()
    page.wait_for_function("() => document.querySelector('#model-summary')?.textContent.includes('5 layers')",
                           timeout=120_000)
    return page


def wait_text(page, selector: str, text: str, timeout: float = 90_000) -> None:
    page.wait_for_function("([s, t]) => [...document.querySelectorAll(s)].some(e => e.textContent.includes(t))",
                           arg=[selector, text], timeout=timeout)


def press(page, label: str, key: str = "ArrowRight", times: int = 1) -> None:
    """Arrow keys on a slider's range input; letting go of the key counts as a release (app/main.py)."""
    rng = page.get_by_label(f"range slider for {label}", exact=True)
    rng.focus()
    for _ in range(times):
        rng.press(key)


def no_error(page) -> None:
    assert page.locator(".toast-body").filter(has_text="Error").count() == 0 and page.errors == []


def test_swiglu_page_on_stories260k(stories_page, app_url):
    page = stories_page
    page.goto(app_url + "swiglu")
    # the gates of stories260K: 172 hidden units, five layers to predict from (the course model has six)
    wait_text(page, "#swiglu-gates-readout", "(of 172)")
    assert page.get_by_role("radio", name="layer 4").count() == 1 and page.get_by_role("radio", name="layer 5").count() == 0
    assert "172" in page.locator("#swiglu-hidden-table").text_content()
    assert "but not multiple_of" in page.locator("#swiglu-hidden-note").text_content()
    # the main action: a new threshold recounts the gates of this model
    press(page, "near zero means |gate| below")
    wait_text(page, "#swiglu-gates-readout", "0.055")
    wait_text(page, "#swiglu-gates .main-svg", "|value| < 0.055")
    assert "(of 172)" in page.locator("#swiglu-gates-readout").text_content()
    assert page.locator("#swiglu-model-msg").text_content().strip() == ""
    no_error(page)


def test_gqa_page_on_stories260k(stories_page, app_url):
    page = stories_page
    page.goto(app_url + "gqa")
    wait_text(page, "#gqa-heads", "8 query heads and 4 K/V heads")
    wait_text(page, "#gqa-diagram .main-svg", "share 4 K/V head")
    assert page.get_by_label("number input for layer (model.layers[i])").get_attribute("max") == "4"
    assert page.get_by_label("number input for K/V heads after conversion").input_value() == "4"
    wait_text(page, "#gqa-convert-readout", "TinyShakespeare")  # the held-out text is not this model's own
    wait_text(page, "#gqa-pool-question", "4 K/V heads into 1")
    # the main action: one step right from 4 K/V heads goes on to 8 (MHA); the memory figure follows
    press(page, "K/V heads")
    wait_text(page, "#gqa-diagram .main-svg", "share 8 K/V head")
    wait_text(page, "#gqa-memory .main-svg", "8 of 8 K/V heads")
    # converting: one step left from 4 mean-pools into 2 and measures stories260K's loss
    press(page, "K/V heads after conversion", "ArrowLeft")
    wait_text(page, "#gqa-convert-readout", "mean-pooled 4 → 2")
    no_error(page)
