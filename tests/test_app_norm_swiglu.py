"""Lessons 4 (RMSNorm) and 5 (SwiGLU) through the real app: every main event by api_name (gradio_client),
then both pages in a real browser."""

import json

from lessons.grading import NO_PICK
from raw_api import call_json
from ui import held, idle, no_errors, nudge, text_of, wait_text

TEXT = "To be, or not to be, that is the question."


def _fig(out):
    return json.loads(out["plot"])


def _texts(fig):
    """Every title and annotation of a Plotly figure (what the browser draws as SVG text)."""
    lay = fig["layout"]
    out = [a.get("text", "") for a in lay.get("annotations", [])]
    title = lay.get("title", {})
    meta = lay.get("meta") if isinstance(lay.get("meta"), dict) else {}
    # lessons/plots.py keeps the plain title in layout.meta.title (the page wraps it to the figure's width,
    # app/static/figures.js) and a pre-wrapped copy, with <br>, in title.text
    plain = meta.get("title") or (title.get("text", "") if isinstance(title, dict) else str(title))
    return " ".join(out + [plain]).replace("<br>", " ")



def test_rmsnorm_events(client, cm):
    msg, token, inv, inv_md, overview, site, site_md = client.predict(TEXT, 3, 1.0, 2.0, 2, api_name="/rmsnorm_text")
    assert msg == "" and held(token, 3) == 3 and token["maximum"] >= 10  # the slider now spans the text's tokens
    assert "a = 2, b = 1" in _texts(_fig(inv)) and "RMSNorm" in inv_md
    assert len([t for t in _fig(overview)["data"] if t["type"] == "box"]) == 2
    assert "reproduces the model's output" in site_md
    msg, *_ = client.predict("", 3, 1.0, 2.0, 2, api_name="/rmsnorm_text")
    assert "empty" in msg

    inv, md, *_ = client.predict(TEXT, 3, 0.0, 4.0, api_name="/rmsnorm_invariance")
    assert "a = 4, b = 0" in _texts(_fig(inv)) and "LayerNorm" in md
    # a new, shorter text typed but not submitted: the slider may point past its end
    inv, md, token, _, _ = client.predict("To be", 10, 0.0, 1.0, api_name="/rmsnorm_invariance")
    assert "out of range" in md and "a = 1, b = 0" in _texts(_fig(inv)) and token["value"] == 2
    inv, md, *_ = client.predict("", 3, 0.0, 1.0, api_name="/rmsnorm_invariance")
    assert "empty" in md and inv.get("__type__") == "update" and "value" not in inv  # the figure stays

    site, md = client.predict(TEXT, 0, api_name="/rmsnorm_site")
    assert "layers.0.input_layernorm" in md and "layers.0.input_layernorm" in _texts(_fig(site))

    plot, table, msg, depth, gain = client.predict(4, 1.0, api_name="/rmsnorm_placement")
    assert "post / pre" in table and "Xavier init, gain 1" in _texts(_fig(plot)) and "(4 layers)" in _texts(_fig(plot))
    assert msg == ""


def test_rmsnorm_reveals_grade_against_independent_measurements(client, cm):
    from lessons.rmsnorm import compute as C
    from test_lesson_rmsnorm import expected_shift_answer

    res = C.load_text(cm, TEXT)
    assert client.predict(TEXT, "√d", api_name="/rmsnorm_reveal_length").startswith("✅")
    assert client.predict(TEXT, "d", api_name="/rmsnorm_reveal_length").startswith("❌")
    md = client.predict(TEXT, None, api_name="/rmsnorm_reveal_length")
    assert md.startswith("You did not pick a prediction.") and C.Q_LENGTH.misconception in md
    answer = expected_shift_answer(cm, res)
    wrong = next(c for c in C.SHIFT_CHOICES if c != answer)
    assert client.predict(TEXT, answer, api_name="/rmsnorm_reveal_shift").startswith("✅")
    assert client.predict(TEXT, wrong, api_name="/rmsnorm_reveal_shift").startswith("❌")
    assert client.predict(TEXT, None, api_name="/rmsnorm_reveal_shift").startswith("You did not pick a prediction.")
    assert "empty" in client.predict(" ", None, api_name="/rmsnorm_reveal_shift")


def test_rmsnorm_hostile_numbers_through_the_api(client, cm):
    """NaN, inf, 1e20, 1.8e308, negative, 4.5 and text in every slider (JSON has no NaN or inf: sent as text)."""
    from lessons.rmsnorm import compute as C

    inv, md, token, shift, scale = client.predict(TEXT, "nan", "1e20", "-5", api_name="/rmsnorm_invariance")
    assert "not a number" in md and "out of range" in md and "must be positive" in md
    assert shift["value"] == C.SHIFT_LIMIT and scale["value"] == C.SCALE_MIN and token["value"] == 3
    inv, md, token, shift, scale = client.predict(TEXT, 4.5, "abc", "1.8e308", api_name="/rmsnorm_invariance")
    assert token["value"] == 4 and shift["value"] == 0 and scale["value"] == C.SCALE_LIMIT
    # (the norm-site picker is a Dropdown: Gradio itself refuses a value outside its choices; compute clamps too)
    plot, table, msg, depth, gain = client.predict(-5, "nan", api_name="/rmsnorm_placement")
    assert depth["value"] == 1 and gain["value"] == 1.0 and "out of range" in msg and "not a number" in msg
    plot, table, msg, depth, gain = client.predict(4.5, 1e20, api_name="/rmsnorm_placement")
    assert depth["value"] == 4 and gain["value"] == C.MAX_GAIN and "(4 layers)" in _texts(_fig(plot))


def test_rmsnorm_timing_event(client):
    plot, table = client.predict(api_name="/rmsnorm_timing")
    assert "LayerNorm / RMSNorm" in table and "× 4096" in table
    bars = [t for t in _fig(plot)["data"] if t["type"] == "bar"]
    assert {b["name"] for b in bars} == {"LayerNorm", "RMSNorm"} and all(min(b["y"]) > 0 for b in bars)


def test_swiglu_events(client):
    curves, surface, md, beta = client.predict(2.0, api_name="/swiglu_curves")
    assert "β = 2" in _texts(_fig(curves)) and "β = 2" in _texts(_fig(surface)) and "dips" in md and held(beta, 2.0) == 2
    curves, _, md, beta = client.predict(0.0, api_name="/swiglu_curves")
    assert "straight line" in md and "β = 0" in _texts(_fig(curves))

    table, note, msg, d, m = client.predict(5120, 256, api_name="/swiglu_hidden")
    assert "11,008" in table and "13,824" in table and msg == "" and (d, m) == (5120, 256)  # Llama 2 13B: 13,824
    assert "stores multiple_of" in note or "not multiple_of" in note

    msg, plot, md, thr = client.predict(TEXT, 0.1, api_name="/swiglu_gates")
    assert msg == "" and "|value| < 0.1" in _texts(_fig(plot)) and "near zero" in md and held(thr, 0.1) == 0.1
    msg, plot, md, thr = client.predict("", 0.1, api_name="/swiglu_gates")
    assert "empty" in msg  # the other outputs are left as they were (gr.skip)


# Hostile values a slider's number box or an API call can send (as JSON text: NaN and Infinity are what a
# script can send, though gradio_client cannot encode them): each is clamped or rounded, with a notice.
HOSTILE = ["NaN", "Infinity", "-Infinity", "1e20", "1.8e308", "-1", "4.5", '"abc"', "null"]


def test_swiglu_hostile_numbers_get_a_notice_not_an_error(app_url):
    from lessons.swiglu import compute as C

    text = json.dumps(TEXT)
    for bad in HOSTILE:
        curves, _, md, beta = call_json(app_url, "swiglu_curves", f"[{bad}]")
        beta = held(beta, json.loads(bad))  # 4.5 is a fine beta: left as sent
        assert 0 <= beta <= C.MAX_BETA and f"β = {beta:g}" in _texts(_fig(curves)), bad
        if bad != "4.5":  # 4.5 is a fine beta
            assert md.startswith("⚠️"), bad
        msg, plot, md, thr = call_json(app_url, "swiglu_gates", f"[{text}, {bad}]")
        thr = held(thr, json.loads(bad))
        assert C.THRESHOLD_MIN <= thr <= C.THRESHOLD_MAX and msg.startswith("⚠️"), bad
        assert f"|value| < {thr:g}" in _texts(_fig(plot))
        table, note, msg, d, m = call_json(app_url, "swiglu_hidden", f"[{bad}, {bad if bad != 'null' else 1}]")
        assert msg.startswith("⚠️") and "your choice" in table and d >= 1 and m >= 1, bad
        assert float(d).is_integer() and float(m).is_integer()
    lone = '"ab\\ud800c"'  # JSON text with a lone surrogate, as a browser can send half an emoji
    msg, *_ = call_json(app_url, "swiglu_gates", f"[{lone}, 0.05]")
    assert "U+FFFD" in msg
    md, = call_json(app_url, "swiglu_reveal_negative", f"[{lone}, null]")
    assert "U+FFFD" in md and NO_PICK in md


def test_swiglu_reveals_grade_against_the_gate_counts(client, cm):
    """The grade comes from an independent count on the model's gates (lessons' test recomputes them from the
    modules); here, from the traced gates: exactly one choice is right, and it is the measured bucket."""
    from lessons.swiglu import compute as C

    g = C.load_gates(cm, TEXT)
    lowest = min(float(a.min()) for a in g.text)
    for choice in C.FLOOR_CHOICES:
        md = client.predict(TEXT, choice, api_name="/swiglu_reveal_floor")
        assert md.startswith("✅ Right") == (choice == C.floor_answer(lowest)) and f"{lowest:.4f}" in md, choice
    neg = sum(float((a < 0).sum()) for a in g.text) / sum(a.size for a in g.text)
    answer = C.NEGATIVE_CHOICES[sum(neg >= e for e in (0.1, 0.3, 0.5))]
    for choice in C.NEGATIVE_CHOICES:
        md = client.predict(TEXT, choice, api_name="/swiglu_reveal_negative")
        assert md.startswith("✅ Right") == (choice == answer) and "are negative" in md
    md = client.predict(TEXT, None, api_name="/swiglu_reveal_negative")
    assert md.startswith(NO_PICK) and "✅" not in md and "❌" not in md


def test_rmsnorm_page_in_a_real_browser(page, app_url):
    from shape import open_deeper, reveal

    page.goto(app_url + "rmsnorm")
    page.locator("#rmsnorm-toy .main-svg").first.wait_for(timeout=60_000)
    idle(page)
    reveal(page, "rmsnorm-shift")  # the invariance figure answers it: hidden until this Reveal
    reveal(page, "rmsnorm-length")  # and the overview answers the length question
    open_deeper(page)  # pre- against post-norm
    page.locator("#rmsnorm-invariance .annotation-text").first.wait_for(timeout=60_000)
    # predict first: each question sits above the figure that answers it, and figure 1 opens without a shift
    y = lambda sel: page.locator(sel).bounding_box()["y"]  # noqa: E731
    assert y("#rmsnorm-reveal-shift") < y("#rmsnorm-invariance") and y("#rmsnorm-reveal-rms") < y("#rmsnorm-overview")
    assert "a = 2, b = 0" in text_of(page.locator("#rmsnorm-invariance"))
    assert "b = 0.1" not in page.locator("#rmsnorm-invariance-readout").text_content()
    nudge(page, "rmsnorm-shift")
    readout = wait_text(page, "#rmsnorm-invariance-readout", "b = 0.1")
    assert "LayerNorm" in readout and "RMSNorm" in readout
    wait_text(page, "#rmsnorm-invariance", "a = 2, b = 0.1")  # the figure's SVG title
    assert "(8 layers)" in text_of(page.locator("#rmsnorm-placement"))
    nudge(page, "rmsnorm-depth")
    wait_text(page, "#rmsnorm-placement", "(9 layers)")
    # a number typed into a slider's box outside its range: clamped, with a notice on the page, no red toast
    box = page.locator("#rmsnorm-gain input[type=number]")
    box.fill("1e20")
    box.press("Enter")
    box.blur()
    wait_text(page, "body", "Init gain 1e+20 is out of range")
    no_errors(page)


def test_swiglu_page_in_a_real_browser(page, app_url):
    page.goto(app_url + "swiglu")
    page.locator("#swiglu-curves .gtitle").wait_for(timeout=60_000)
    assert "β = 1:" in text_of(page.locator("#swiglu-curves .gtitle"))
    # predict, then reveal: the gate figure and readout that answer both questions stay hidden until revealed
    assert not page.locator("#swiglu-gates").is_visible() and not page.locator("#swiglu-gates-readout").is_visible()
    page.locator(".reveal-button").nth(0).click()
    page.locator(".reveal-button").nth(1).click()
    page.locator("#swiglu-gates").wait_for(state="visible")
    page.locator("#deeper-swish .label-wrap").click()  # β lives in a Go deeper section
    nudge(page, "swiglu-beta")
    wait_text(page, "#swiglu-curves .gtitle", "β = 1.1")
    wait_text(page, "#swiglu-curves-readout", "β = 1.1")
    assert "0.055" not in page.locator("#swiglu-gates-readout").text_content()
    nudge(page, "swiglu-threshold")
    wait_text(page, "#swiglu-gates-readout", "0.055")
    wait_text(page, "#swiglu-gates", "|value| < 0.055")
    no_errors(page)
