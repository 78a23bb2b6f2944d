"""The model picker reaches lessons 7 (the KV cache) and 8 (sampling): pick stories260K on the course map, open the
page in the same browser, and see that model on it (its layers, context and vocabulary) and its main action work."""


def svg_text(page, elem_id: str) -> str:
    return " ".join(page.locator(f"#{elem_id} .main-svg").all_text_contents())


def no_error_toast(page) -> bool:
    return page.locator(".toast-body").filter(has_text="Error").count() == 0


def pick_stories(page, app_url) -> None:
    """On the course map choose stories260K in the picker and wait until the map describes it."""
    page.goto(app_url)
    page.locator("#model-picker input").click()
    page.get_by_role("option", name="stories260K").click()
    page.locator("#model-summary", has_text="5 layers").wait_for(timeout=60_000)


def wait_svg(page, elem_id: str, text: str) -> None:
    page.wait_for_function(
        "([id, t]) => [...document.querySelectorAll('#' + id + ' .main-svg')].some(s => s.textContent.includes(t))",
        arg=[elem_id, text], timeout=60_000)


def test_kv_cache_page_shows_the_picked_model(page, app_url):
    pick_stories(page, app_url)
    page.goto(app_url + "kv_cache")
    # the page opens with the course model (6 layers, context 256) and refreshes for stories260K (5, 512)
    page.locator("#kv-allocated", has_text="655,360 bytes").wait_for(timeout=60_000)  # 2 x 5 x 4 x 8 x 512 x 4
    grid = svg_text(page, "kv-grid")
    assert "layer 4" in grid and "layer 5" not in grid
    assert page.get_by_label("range slider for steps to time (used when you press Measure)").get_attribute("max") \
        == "510"
    assert page.get_by_text("With 511 tokens already in the context").count() == 1
    step = page.get_by_label("range slider for step", exact=True)
    step.focus()
    for _ in range(2):  # arrow keys; releasing a key counts as letting go: the step event runs on stories260K
        step.press("ArrowRight")
    wait_svg(page, "kv-grid", "Step 2:")
    page.get_by_text("x 5 layers").first.wait_for(timeout=30_000)
    assert "layer 5" not in svg_text(page, "kv-grid")
    assert no_error_toast(page) and page.errors == []


def test_sampling_page_shows_the_picked_model(page, app_url):
    pick_stories(page, app_url)
    page.goto(app_url + "sampling")
    wait_svg(page, "sampling-dist", "of 512 tokens")  # stories260K's vocabulary (the course model's is 1,024)
    assert page.get_by_text("At most 256 tokens with BOS (half the 512-token context)").count() == 1
    page.get_by_role("button", name="Generate greedy and sampled").click()
    page.locator("#sampling-status", has_text="stopped").wait_for(timeout=60_000)
    assert page.locator("#sampling-greedy textarea").input_value().startswith("ROMEO:")
    assert len(page.locator("#sampling-sampled textarea").input_value()) > len("ROMEO:\n")
    assert no_error_toast(page) and page.errors == []
