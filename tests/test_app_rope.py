"""Lesson 3 (positional encoding and RoPE) through the real app: each event by api_name with gradio_client,
then the page in a real browser."""

import re

import numpy as np
import pytest

from conftest import array, fig
from lessons.rope import compute as C

TEXT = "To be, or not to be: that is the question."


def title(plot) -> str:
    return fig(plot)["layout"]["title"]["text"]


def test_tokens_and_shuffle(client, cm):
    msg, q_tok, k_tok, m, n = client.predict(TEXT, api_name="/rope_tokens")
    T = len(C.prepared(cm, TEXT, C.ROTATE_TOKENS).ids)
    assert msg == "" and len(q_tok["choices"]) == T and q_tok["value"] == T - 1 == m["value"]
    assert k_tok["value"] == n["value"] < T - 1

    msg, plot, readout = client.predict(TEXT, 1, 2, api_name="/rope_shuffle")
    ref = C.shuffle_scores(cm, TEXT, 1, 2)
    assert msg == "" and "head 1" in title(plot)
    heat = fig(plot)["data"]
    assert len(heat) == 4
    np.testing.assert_allclose(array(heat[0]["z"]), ref.none.numpy(), atol=1e-5)
    np.testing.assert_allclose(array(heat[1]["z"]), ref.none_shuffled.numpy(), atol=1e-5)
    diff = float(re.search(r"cells = \*\*([0-9.e+-]+)\*\*", readout).group(1))
    assert diff < 1e-5 and f"{ref.diff_rope:.3f}" in readout


def test_schemes_rotate_and_relative(client, cm):
    msg, plot, table = client.predict(TEXT, 32, 4, api_name="/rope_schemes")
    assert msg == "" and len(fig(plot)["data"]) == 4 and "Shaw" in table and "±4" in table
    rope = array(fig(plot)["data"][3]["z"])
    assert rope.shape == (32, 32) and np.allclose(rope[1:, 1:], rope[:-1, :-1], atol=1e-4)

    msg, plane, angles, readout, m, n, pair = client.predict(TEXT, 0, 1, 5, 2, 9, 20, 3, api_name="/rope_rotate")
    assert "causal mask" in msg and n["value"] == 9 and m["value"] == 9 and pair["value"] == 3
    assert "m·θ_3 = 9 ×" in title(plane) and "head 1" in readout
    z = array(fig(angles)["data"][0]["z"])
    assert z.shape == (cm.config.max_seq_len, cm.config.head_dim // 2)
    theta_3 = C.rope_frequencies(cm.config.head_dim, cm.config.rope_theta)[3].item()
    assert z[9, 3] == pytest.approx(9 * theta_3, abs=1e-5)

    msg, plot, readout, shift = client.predict(TEXT, 0, 1, 5, 2, 30, 10, 250, api_name="/rope_relative")
    assert "Shift s = 250" in msg and shift["value"] == 225
    both = array(fig(plot)["data"][0]["y"])
    assert np.ptp(both) < 1e-4
    diff = float(re.search(r"shifts that fit in the context: \*\*([0-9.e+-]+)\*\*", readout).group(1))
    assert diff < 1e-4


def test_spectrum_compare_and_loss(client, cm):
    msg, plot, readout = client.predict(5.7, api_name="/rope_spectrum")
    assert msg == "" and "500,000" in readout and len(fig(plot)["data"]) == 4  # two thetas x two panels

    msg, plot, readout, hint = client.predict(TEXT, 1, 1, "500000", api_name="/rope_compare_attention")
    f = fig(plot)
    assert msg == "" and "Layer 1, head 1" in f["layout"]["title"]["text"]
    assert "rope_theta = 500,000" in [a["text"] for a in f["layout"]["annotations"]]
    trained = np.nan_to_num(array(f["data"][0]["z"]))
    np.testing.assert_allclose(trained.sum(-1), 1.0, atol=1e-5)
    assert "Measure the loss" in hint

    out = client.predict("none", api_name="/rope_loss_change")
    ref = C.loss_change(cm, "none")
    assert f"**{ref.trained:.3f}**" in out and f"**{ref.variant:.3f}**" in out and f"{ref.delta:+.3f}" in out

    answer = client.predict("lot", api_name="/rope_reveal_rope_off")
    assert ("✅" in answer) == (C.change_size(ref.delta) == "lot") and f"{ref.delta:+.3f}" in answer
    answer = client.predict("barely", api_name="/rope_reveal_theta")
    assert "rope_theta = 500,000" in answer and ("✅" in answer or "❌" in answer)
    assert "Pick a prediction" in client.predict(None, api_name="/rope_reveal_theta")


@pytest.mark.parametrize("api,args", [("/rope_shuffle", (1, 0)), ("/rope_compare_attention", (0, 0, "none")),
                                      ("/rope_rotate", (0, 0, 1, 0, 3, 1, 0))])
def test_bad_text_gets_a_message_and_keeps_the_figure(client, api, args):
    msg, plot, *_ = client.predict("   ", *args, api_name=api)
    assert "The text is empty" in msg
    assert plot.get("__type__") == "update" and "value" not in plot  # the previous figure stays


def test_page_in_a_real_browser(page, app_url):
    page.goto(app_url + "rope")
    plane_title = page.locator("#rope-plane .gtitle").first
    plane_title.wait_for(timeout=90_000)
    readout = page.locator("#rope-angle-readout")
    before_readout, before_title = readout.inner_text(), plane_title.text_content()
    m0 = int(re.search(r"= (\d+) ×", before_title).group(1))

    # Keyboard alone: focus the position slider, one step right (the key release runs the event).
    slider = page.locator("#rope-m input[type=range]")
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        f"document.querySelector('#rope-plane .gtitle').textContent.includes('= {m0 + 1} ×')", timeout=60_000)
    page.wait_for_function(f"document.querySelector('#rope-angle-readout').innerText.includes('{m0 + 1} ×')",
                           timeout=60_000)
    assert readout.inner_text() != before_readout

    # Empty text: a message on the page, never a traceback.
    page.locator("textarea").first.fill("")
    page.get_by_role("button", name="Use this text").click()
    page.get_by_text("The text is empty", exact=False).first.wait_for(timeout=60_000)
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0
    assert "Error" not in page.inner_text("body")
    assert page.errors == []
