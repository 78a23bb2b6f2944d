"""The RoPE and RMSNorm pages with stories260K picked on the course map: each page shows that model (its context,
head size, layers) and its main action works there, in a real browser."""

from test_app_norm_swiglu import _no_errors, _nudge, _wait_for_text


def pick_stories(page, app_url):
    """Pick stories260K in the course map's picker (the browser remembers it) and wait until it is described."""
    page.goto(app_url)
    page.locator("#model-picker input").click()
    page.get_by_role("option", name="stories260K").click()
    _wait_for_text(page, "#model-summary", "5 layers")


def test_rope_page_on_stories260k(page, app_url):
    pick_stories(page, app_url)
    page.goto(app_url + "rope")
    # the page recomputes on the chosen model: its 512-token context and 4 pairs per head (head size 8)
    spectrum = _wait_for_text(page, "#rope-spectrum-readout", "512-token context")
    assert "of 4 pairs" in spectrum
    assert page.locator("#rope-m input[type=range]").get_attribute("max") == "511"
    assert page.locator("#rope-pair input[type=range]").get_attribute("max") == "3"
    # main action 1: one step of the query position moves the rotation picture
    title = page.locator("#rope-plane .gtitle").first.text_content()
    _nudge(page, "rope-m")
    page.wait_for_function("t => { const e = document.querySelector('#rope-plane .gtitle');"
                           " return e && e.textContent !== t; }", arg=title, timeout=30_000)
    # main action 2: the loss, measured on the shipped excerpt, which the readout names
    page.locator("#rope-loss-button").click()
    loss = _wait_for_text(page, "#rope-loss", "nats/token")
    assert "stories260K/ ships no held-out text" in loss and "TinyShakespeare" in loss
    _no_errors(page)


def test_rmsnorm_page_on_stories260k(page, app_url):
    pick_stories(page, app_url)
    page.goto(app_url + "rmsnorm")
    # 5 layers: the middle layer's attention norm is layer 2's, and the norms end at layer 4
    _wait_for_text(page, "#rmsnorm-site-readout", "layer 2 · attention norm")
    overview = _wait_for_text(page, "#rmsnorm-overview", "the model's 11 RMSNorms")  # 2 per layer + the final one
    assert "L4 ffn" in overview and "L5" not in overview
    shown = page.locator("body").inner_text()  # the first question's choices, as the learner sees them
    assert "entering layer 4" in shown and "entering layer 5" not in shown
    # main action: the invariance sliders still redraw (shift b one step)
    _nudge(page, "rmsnorm-shift")
    _wait_for_text(page, "#rmsnorm-invariance-readout", "b = 0.1")
    _no_errors(page)
