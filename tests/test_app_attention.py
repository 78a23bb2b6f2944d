"""Lesson 2 (attention) through the real app: each event by api_name with gradio_client, then a real browser."""


import numpy as np
import pytest

from conftest import array, fig
from lessons.attention import compute as C

TEXT = "To be, or not to be: that is the question."
LONG = "Now is the winter of our discontent made glorious summer. " * 60


def title(plot) -> str:
    return fig(plot)["layout"]["title"]["text"]


@pytest.fixture(scope="module")
def traced(cm):
    return C.trace_text(cm, TEXT)


def test_analyze_draws_the_models_attention_and_resizes_the_query_slider(client, traced):
    msg, slider, heat, grid, steps, scale, summary = client.predict(TEXT, 1, 1, 3, 1.0, api_name="/attention_analyze")
    assert msg == ""
    assert slider["maximum"] == traced.n_tokens - 1 and slider["value"] == 3
    assert "Layer 1, head 1" in title(heat)
    z = array(fig(heat)["data"][0]["z"])
    np.testing.assert_allclose(np.nan_to_num(z), traced.attn[1, 1], atol=1e-6)  # the real weights, masked cells NaN
    np.testing.assert_allclose(np.nansum(z, axis=1), 1.0, atol=1e-5)
    assert np.isnan(z[0, 1:]).all()
    assert len(fig(grid)["data"]) == traced.n_heads
    assert "Query 3" in title(steps) and "× 1 for query 3" in title(scale)
    assert len(fig(summary)["data"]) == 4


def test_analyze_cuts_long_text_and_refuses_empty_text(client):
    msg, slider, heat, *_ = client.predict(LONG, 0, 0, 5, 1.0, api_name="/attention_analyze")
    assert f"the limit is {C.MAX_TOKENS} tokens" in msg and slider["maximum"] == C.MAX_TOKENS - 1
    assert len(fig(heat)["data"][0]["x"]) == C.MAX_TOKENS
    msg, slider, heat, *_ = client.predict("  ", 0, 0, 5, 1.0, api_name="/attention_analyze")
    assert "empty" in msg and "maximum" not in slider  # the slider is left as it was
    assert "empty" in fig(heat)["layout"]["annotations"][0]["text"]  # a figure that says why, not a blank one
    msg, _, heat, *_ = client.predict("🦙🦙🦙", 0, 0, 5, 1.0, api_name="/attention_analyze")
    assert "single bytes" in msg and fig(heat)["data"][0]["type"] == "heatmap"


def test_head_and_layer_sliders(client, traced):
    note, heat = client.predict(TEXT, 2, 3, api_name="/attention_map")
    assert note == "" and "Layer 2, head 3" in title(heat)
    np.testing.assert_allclose(np.nan_to_num(array(fig(heat)["data"][0]["z"])), traced.attn[2, 3], atol=1e-6)
    grid = client.predict(TEXT, 3, api_name="/attention_heads")
    assert title(grid).startswith("Layer 3: all") and len(fig(grid)["data"]) == traced.n_heads


def test_query_and_scale_sliders(client, traced):
    head = traced.n_heads - 1
    note, steps = client.predict(TEXT, 0, head, 4, api_name="/attention_query")
    assert note == "" and f"uses KV head {head // traced.n_rep}" in title(steps)
    bars = {d.get("name"): d for d in fig(steps)["data"]}
    ours, model = array(bars["softmax (ours)"]["y"]), array(bars["model's traced attn"]["y"])
    np.testing.assert_allclose(ours, model, atol=2e-6)
    np.testing.assert_allclose(ours, traced.attn[0, head, 4], atol=2e-6)
    note, scale = client.predict(TEXT, 0, head, 4, 5.7, api_name="/attention_scale")
    assert note == "" and "Scores × 5.7 for query 4" in title(scale)


def test_stale_query_is_clamped_with_a_notice(app_url, traced):
    """The slider is sized for a long text; the box then holds a short one: no crash, a notice instead."""
    from gradio_client import Client

    own = Client(app_url, verbose=False)  # its own session: the slider maximum is per learner
    own.predict(LONG, 0, 0, 5, 1.0, api_name="/attention_analyze")
    note, steps = own.predict(TEXT, 0, 0, 100, api_name="/attention_query")
    assert f"showing query {traced.n_tokens - 1}" in note and f"Query {traced.n_tokens - 1}" in title(steps)


def test_reveals_answer_from_the_live_model(client, traced):
    prev = C.head_stats(traced).previous
    best_l, best_h = np.unravel_index(prev.argmax(), prev.shape)
    answer = client.predict(TEXT, f"layer {best_l}", api_name="/attention_reveal_previous")
    assert f"**layer {best_l}, head {best_h}**" in answer and "is right" in answer
    answer = client.predict(TEXT, C.SCALE_CHOICES[1], api_name="/attention_reveal_scaling")
    assert "**sharper (lower entropy)**" in answer and "You predicted: flatter" in answer


def test_page_in_a_real_browser(page, app_url):
    page.goto(app_url + "attention")
    heat_title = page.locator("#attention-heatmap .gtitle").first
    heat_title.wait_for(timeout=60_000)
    assert "Layer 0, head 0" in heat_title.text_content()
    for elem in ("attention-grid", "attention-steps", "attention-scale", "attention-summary"):
        assert page.locator(f"#{elem} .main-svg").count() > 0

    # Keyboard: focus the head slider's number box, step it up, leave it (blur = release).
    head_box = page.locator('input[aria-label^="number input for Query head"]')
    head_box.focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Tab")
    page.wait_for_function(
        "document.querySelector('#attention-heatmap .gtitle').textContent.includes('head 1')", timeout=30_000)
    page.wait_for_function(
        "document.querySelector('#attention-steps .gtitle').textContent.includes('head 1')", timeout=30_000)

    # A long text: visible notice, and the query slider now reaches the last of 128 tokens.
    box = page.locator("#attention-text textarea")
    box.fill(LONG)
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text(f"the limit is {C.MAX_TOKENS} tokens", exact=False).first.wait_for(timeout=30_000)
    query_box = page.locator('input[aria-label^="number input for Query position"]')
    page.wait_for_function(
        f"document.querySelector('input[aria-label^=\"number input for Query position\"]').max == '{C.MAX_TOKENS - 1}'",
        timeout=30_000)
    assert query_box.get_attribute("max") == str(C.MAX_TOKENS - 1)

    # Empty text: a message on the page and in the figure, never a traceback.
    box.fill("")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("The text is empty", exact=False).first.wait_for(timeout=30_000)
    page.wait_for_function(
        "document.querySelector('#attention-heatmap .annotation-text')?.textContent.includes('empty')",
        timeout=30_000)
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0
    assert "Error" not in page.inner_text("body")
    assert page.errors == []
