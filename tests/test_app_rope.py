"""Lesson 3 (positional encoding and RoPE) through the real app: each event by api_name with gradio_client,
then the page in a real browser."""

import math
import re

import numpy as np
import pytest

from conftest import array, fig
from lessons.rope import compute as C
from test_lesson_rope import expected_grade, reference_losses
import raw_api
from ui import held, text_of

TEXT = "To be, or not to be: that is the question."


def title(plot) -> str:
    """A figure's title as the page shows it: lessons/plots.py keeps the plain title in layout.meta.title (the
    browser wraps it to the figure's width, app/static/figures.js) and a pre-wrapped copy (<br>) in title.text."""
    lay = fig(plot)["layout"]
    meta = lay.get("meta") if isinstance(lay.get("meta"), dict) else {}
    return meta.get("title") or lay["title"]["text"].replace("<br>", " ")



def test_tokens_and_shuffle(client, cm):
    msg, q_tok, k_tok, m, n = client.predict(TEXT, api_name="/rope_tokens")
    T = len(C.prepared(cm, TEXT, C.ROTATE_TOKENS).ids)
    assert msg == "" and len(q_tok["choices"]) == T and q_tok["value"] == T - 1 == m["value"]
    assert k_tok["value"] == n["value"] < T - 1

    msg, plot, readout, seed = client.predict(TEXT, 1, 2, api_name="/rope_shuffle")
    ref = C.shuffle_scores(cm, TEXT, 1, 2)
    assert msg == "" and "head 1" in title(plot) and seed == 2
    heat = fig(plot)["data"]
    assert len(heat) == 4
    np.testing.assert_allclose(array(heat[0]["z"]), ref.none.numpy(), atol=1e-5)
    np.testing.assert_allclose(array(heat[1]["z"]), ref.none_shuffled.numpy(), atol=1e-5)
    diff = float(re.search(r"cells = \*\*([0-9.e+-]+)\*\*", readout).group(1))
    assert diff < 1e-5 and f"{ref.diff_rope:.3f}" in readout


def test_schemes_rotate_and_relative(client, cm):
    msg, plot, table, n_pos, clip = client.predict(TEXT, 32, 4, api_name="/rope_schemes")
    assert msg == "" and len(fig(plot)["data"]) == 4 and "Shaw" in table and "±4" in table
    rope = array(fig(plot)["data"][3]["z"])
    assert rope.shape == (32, 32) and np.allclose(rope[1:, 1:], rope[:-1, :-1], atol=1e-4)

    msg, plane, angles, readout, m, n, pair = client.predict(TEXT, 0, 1, 5, 2, 9, 20, 3, api_name="/rope_rotate")
    assert "causal mask" in msg and n["value"] == 9 and held(m, 9) == 9 and held(pair, 3) == 3  # n clamped to m
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
    msg, plot, readout, slider = client.predict(5.7, api_name="/rope_spectrum")
    assert msg == "" and "500,000" in readout and len(fig(plot)["data"]) == 4  # two thetas x two panels
    names = [t["name"] for t in fig(plot)["data"]]
    assert any(f"{cm.config.rope_theta:,.0f} (this model" in n for n in names)

    msg, plot, readout, hint = client.predict(TEXT, 1, 1, "500000", api_name="/rope_compare_attention")
    f = fig(plot)
    assert msg == "" and "Layer 1, head 1" in title(plot)
    assert "rope_theta = 500,000" in [a["text"] for a in f["layout"]["annotations"]]
    trained = np.nan_to_num(array(f["data"][0]["z"]))
    np.testing.assert_allclose(trained.sum(-1), 1.0, atol=1e-5)
    assert "Measure the loss" in hint

    out = client.predict("none", api_name="/rope_loss_change")
    ref, ref_off = reference_losses(cm, position="none")  # llama.train on a variant built in the test
    delta = ref_off["per_token"] - ref["per_token"]
    assert f"**{ref['per_token']:.3f}**" in out and f"**{ref_off['per_token']:.3f}**" in out
    assert f"{delta:+.3f}" in out and "val_excerpt.txt" in out


@pytest.mark.parametrize("api,changes", [("/rope_reveal_rope_off", dict(position="none")),
                                         ("/rope_reveal_theta", dict(rope_theta=500_000.0))])
def test_reveals_grade_against_an_independent_measurement(client, cm, api, changes):
    ref, ref_var = reference_losses(cm, **changes)
    right = expected_grade(ref_var["per_token"] - ref["per_token"])
    wrong = next(p for p in C.PREDICTIONS if p != right)
    assert client.predict(right, api_name=api).startswith("✅")
    assert client.predict(wrong, api_name=api).startswith("❌")
    none = client.predict(None, api_name=api)
    assert none.startswith("You did not pick a prediction.") and "nats/token" in none
    bad = client.predict("banana", api_name=api)  # only an API call can send it: a notice, not an error event
    assert bad.startswith("⚠️") and "not one of" in bad


def test_hostile_numbers_through_the_api(client, cm, app_url):
    L = cm.config.max_seq_len
    # "Shuffle again" from a shuffle number past 64 bits: a JSON-safe next number and a notice, no broken stream
    seed, msg, plot, readout = client.predict(TEXT, 0, 2**70, api_name="/rope_new_shuffle")
    assert seed == 0 and "out of range" in msg and len(fig(plot)["data"]) == 4
    seed, msg, *_ = client.predict(TEXT, 0, 41, api_name="/rope_new_shuffle")
    assert seed == 42 and msg == ""
    msg, plot, readout, seed = client.predict(TEXT, 1, "nan", api_name="/rope_shuffle")  # JSON has no NaN: text
    assert "not a number" in msg and "head 1" in title(plot) and seed == 0
    msg, plot, readout, slider = client.predict("NaN", api_name="/rope_spectrum")
    assert "nan is not a number" in msg and slider["value"] == pytest.approx(math.log10(cm.config.rope_theta), 1e-3)
    msg, plot, readout, slider = client.predict(1e20, api_name="/rope_spectrum")
    assert "out of range" in msg and slider["value"] == 7
    msg, plane, angles, readout, m, n, pair = client.predict(TEXT, 0, 0, 1, 0, "1.8e308", -5, 4.5,
                                                             api_name="/rope_rotate")
    assert m["value"] == L - 1 and n["value"] == 0 and pair["value"] == 4 and "not a whole number" in msg
    msg, plot, table, n_pos, clip = client.predict(TEXT, "abc", 1e20, api_name="/rope_schemes")
    assert "not a number" in msg and "out of range" in msg
    assert n_pos["value"] == 2 and clip["value"] == C.shaw_clip_max(cm)  # the sliders show the values used
    msg, plot, readout, shift = client.predict(TEXT, 0, 0, 1, 0, 10, 5, "inf", api_name="/rope_relative")
    assert shift["value"] == L - 1 - 10 and "out of range" in msg
    # a lone surrogate, as a browser can send it (JSON "\\ud800"; gradio_client cannot encode one)
    msg = raw_api.call(app_url, "rope_shuffle", "ab\ud800c to be", 0, 1)[0]
    assert "U+FFFD" in msg


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
    # predict first: the comparison and the loss button that answer the questions stay hidden until their Reveal
    from shape import open_deeper, questions, reveal

    assert {q["id"]: q["visible"] for q in questions(page)} == {"rope-off": False, "rope-theta": False}
    reveal(page, "rope-theta")
    y = lambda sel: page.locator(sel).bounding_box()["y"]  # noqa: E731
    assert y("#rope-reveal-2") < y("#rope-loss")
    assert page.get_by_role("button", name="Measure the loss").bounding_box()["y"] > y("#rope-reveal-2")
    open_deeper(page)  # the spectrum's slider is in a Go deeper section
    readout = page.locator("#rope-angle-readout")
    before_readout, before_title = readout.inner_text(), text_of(plane_title)
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

    # A number typed into a slider's box outside its range: clamped with a notice on the page, no red toast.
    box = page.locator("#rope-log-theta input[type=number]")
    box.fill("99")
    box.press("Enter")
    box.blur()  # the slider's release event fires when the box loses focus
    page.wait_for_function("document.body.innerText.includes('log10(rope_theta) 99 is out of range (1 to 7)')",
                           timeout=60_000)
    assert box.input_value() == "7"  # the slider shows the value used
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0

    # Empty text: a message on the page, never a traceback.
    page.locator("#rope-text textarea").fill("")
    page.get_by_role("button", name="Use this text").click()
    page.get_by_text("The text is empty", exact=False).filter(visible=True).first.wait_for(timeout=60_000)
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0
    assert "Error" not in page.inner_text("body")
    assert page.errors == []
