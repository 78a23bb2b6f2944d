"""Lessons 6 (MQA and GQA) and 7 (the KV cache) in the running app: every main event through gradio_client by
api_name, then both pages in a real browser (a slider moved by keyboard changes the figure)."""

import json

import pytest

from raw_api import call, call_json
from llama.generate import generate
from lessons.grading import NO_PICK
from lessons.gqa import compute as G
from lessons.kv_cache import compute as K
from ui import held, no_error_toast, press, svg_text

PROMPT = "JULIET:\nO Romeo, Romeo!"
FP16 = "fp16 / bf16"


def plot(out) -> dict:
    """The Plotly figure inside a gr.Plot value as gradio_client returns it."""
    return json.loads(out["plot"]) if isinstance(out, dict) else json.loads(out)


def title(out) -> str:
    """A figure's title as the page shows it: lessons/plots.py keeps the plain title in layout.meta.title (the
    browser wraps it to the figure's width, app/static/figures.js) and a pre-wrapped copy (<br>) in title.text."""
    lay = plot(out)["layout"]
    meta = lay.get("meta") if isinstance(lay.get("meta"), dict) else {}
    return meta.get("title") or lay["title"]["text"].replace("<br>", " ")



# ----------------------------------------------------------------------------- gradio_client


def test_gqa_sharing_and_memory_events(client, cm):
    nh, nkv = cm.config.n_heads, cm.config.n_kv_heads
    fig, notice, n = client.predict(1, api_name="/gqa_sharing")
    assert title(fig).startswith("MQA") and notice == "" and held(n, 1) == 1
    bad = next(k for k in range(1, nh + 1) if nh % k)  # a count that cannot split the heads evenly
    fig, notice, n = client.predict(bad, api_name="/gqa_sharing")
    snapped = G.clamp_kv_heads(nh, bad, previous=1)[0]  # a step up from 1 goes on to the next divisor
    assert snapped > bad and snapped in G.divisors(nh)
    assert "cannot be shared evenly" in notice and f"share {snapped} K/V head" in title(fig)
    assert held(n, bad) == snapped  # the slider is set to what the diagram shows
    fig, table, notice, t, b = client.predict(nkv, 4096, 1, FP16, True, api_name="/gqa_memory")
    assert "Llama 2 70B" in table and "Llama 3 8B" in table and notice == "" and (held(t, 4096), held(b, 1)) == (4096, 1)
    assert f"{nkv} of {nh} K/V heads" in title(fig) and "cache / weights" in table
    fig, *_ = client.predict(1, 4096, 1, FP16, False, api_name="/gqa_memory")  # as shipped: the slider does not count
    assert "as shipped" in title(fig)


# Hostile values (JSON text, as a script or a slider's number box can send them): clamped with a notice.
HOSTILE = ["NaN", "Infinity", "-Infinity", "1e20", "1.8e308", "-1", "4.5", '"abc"', "null"]


def test_gqa_hostile_numbers_get_a_notice_not_an_error(app_url, cm):
    nh, L = cm.config.n_heads, cm.config.n_layers
    for bad in HOSTILE:
        fig, notice, n, *_ = call_json(app_url, "gqa_sharing", f"[{bad}]")
        assert notice.startswith("⚠️") and n in G.divisors(nh) and f"share {n} K/V head" in title(fig), bad
        fig, table, notice, t, b = call_json(app_url, "gqa_memory", f'[{bad}, {bad}, {bad}, {json.dumps(bad)}, true]')
        assert notice.startswith("⚠️") and G.MIN_CONTEXT <= t <= G.MAX_CONTEXT and 1 <= b <= G.MAX_BATCH, bad
        assert f"{t:,} tokens x batch {b}" in table
        fig, md, msg, layer = call_json(app_url, "gqa_attention", f'["To be, or not", {bad}]')
        assert msg.startswith("⚠️") and 0 <= layer < L and f"Layer {layer}" in md, bad
        out = call_json(app_url, "gqa_convert", f"[{bad}]")  # plot, readout, (State), slider value, (State)
        fig, md, n = out[0], out[1], out[3]
        assert n in G.conversion_options(cm) and "⚠️" in md and "nats/token" in md, bad
    lone = '"ab\\ud800c"'  # a lone surrogate, as a browser can send half an emoji
    fig, md, msg, layer = call_json(app_url, "gqa_attention", f"[{lone}, 0]")
    assert "U+FFFD" in md
    md, = call_json(app_url, "gqa_repeat", f"[{lone}]")
    assert "U+FFFD" in md
    md, = call_json(app_url, "gqa_reveal_repeat", f"[{lone}, null]")
    assert "U+FFFD" in md and NO_PICK in md


def test_gqa_attention_conversion_and_reveals(client, cm):
    fig, md, msg, layer = client.predict("ROMEO: But soft, what light", 1, api_name="/gqa_attention")
    assert md.startswith("Layer 1, ") and "share a K/V head" in md and msg == "" and held(layer, 1) == 1
    assert title(fig).startswith("Layer 1: attention maps") and len(plot(fig)["data"]) == cm.config.n_heads
    fig, md, msg, layer = client.predict("   ", 0, api_name="/gqa_attention")
    assert "empty" in msg  # a clear message, not a traceback
    fig, md, n = client.predict(1, api_name="/gqa_convert")
    assert "mean-pooled" in md and "nats/token" in md and held(n, 1) == 1 and "val_excerpt.txt" in md
    fig, md, n = client.predict(cm.config.n_heads, api_name="/gqa_convert")
    assert "repeated" in md and "(**+0.000**)" in md
    # a count that is no possible conversion: the slider is set to the count measured and drawn
    impossible = next(k for k in range(1, cm.config.n_heads + 1) if k not in G.conversion_options(cm))
    fig, md, n = client.predict(impossible, api_name="/gqa_convert")  # a step down from n_heads
    n = held(n, impossible)
    assert n == G.clamp_conversion(cm, impossible, previous=cm.config.n_heads)[0] and n < impossible and str(n) in plot(fig)["data"][0]["x"]
    assert "not a possible conversion" in md
    md = client.predict("Good morrow, neighbour", api_name="/gqa_repeat")
    assert "Largest |logit difference|" in md and "GQA → MHA" in md


def test_gqa_reveals_grade_from_the_measurements(client, cm):
    """The expected grade follows from the measured loss change and logit difference (recomputed in
    test_lesson_gqa from independently built models); exactly one choice gets the tick."""
    k = G.pool_target(cm)
    delta = G.converted_loss(cm, k)["delta"]
    expected = 0 if delta > 0.01 else (2 if delta < -0.01 else 1)
    for i, choice in enumerate(G.POOL_CHOICES):
        md = client.predict(choice, api_name="/gqa_reveal_pooling")
        assert md.startswith("✅") == (i == expected) and md.startswith("❌") == (i != expected), md
    md = client.predict(None, api_name="/gqa_reveal_pooling")
    assert md.startswith(NO_PICK) and G.POOL_CHOICES[expected] in md
    for i, choice in enumerate(G.REPEAT_CHOICES):
        md = client.predict("Good morrow", choice, api_name="/gqa_reveal_repeat")
        assert md.startswith("✅") == (i == 0) and md.startswith("❌") == (i != 0), md


def test_kv_cache_events(client, cm):
    fig, readout, step, msg = client.predict(PROMPT, 8, 3, api_name="/kv_generate")
    assert "Step 3" in title(fig) and "**Step 3**" in readout and msg == ""
    fig, readout, msg = client.predict(PROMPT, 8, 5, api_name="/kv_step")
    assert "**Step 5**" in readout
    fig, readout, msg = client.predict(PROMPT, 4, 6, api_name="/kv_step")  # fewer tokens than the step slider says
    assert "out of range" in msg and "**Step 3**" in readout  # clamped to the last step, with a notice
    fig, readout, step, msg = client.predict("", 8, 0, api_name="/kv_generate")
    assert "empty" in msg
    fig, md, msg = client.predict(PROMPT, 16, api_name="/kv_timing")
    assert "speed-up" in md and "median of" in md and len(plot(fig)["data"]) == 6  # time and FLOPs, both ways
    assert "**Prefill**" in md and "the FLOPs of the cached one" in md
    fig, table, msg = client.predict(4096, 1, FP16, api_name="/kv_memory")
    assert "| Llama 2 7B | 32 of 32 | 2.00 GiB | 2.00 GiB | 1x |" in table and msg == ""


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e20, 1.8e308, -5, 4.5, "abc"])
def test_kv_cache_hostile_values_get_a_notice(app_url, bad):
    fig, readout, step, msg = call(app_url, "kv_generate", PROMPT, bad, bad)
    assert "⚠️" in msg and "**Step" in readout
    fig, readout, msg = call(app_url, "kv_step", PROMPT, 8, bad)
    assert "⚠️" in msg and "**Step" in readout
    fig, table, msg = call(app_url, "kv_memory", bad, bad, FP16)
    assert "⚠️" in msg and "| Llama 2 7B" in table


def test_kv_cache_hostile_text_and_timing_steps(app_url):
    fig, readout, step, msg = call(app_url, "kv_generate", "ab\ud800c", 4, 0)
    assert "U+FFFD" in msg and "**Step 0**" in readout
    fig, md, msg = call(app_url, "kv_timing", PROMPT, float("nan"))
    assert "nan is not a number" in msg and "speed-up" in md
    fig, md, msg = call(app_url, "kv_timing", PROMPT, -3)
    assert "out of range" in msg and "**Decode**, 1 step:" in md  # 2 steps: the prefill and one decode step


def test_kv_cache_reveals_grade_an_independent_measurement(client, cm):
    ids = [cm.tokenizer.bos_id] + cm.tokenizer.encode(PROMPT)
    n = K.MAX_NEW_TOKENS
    a = generate(cm.model, ids, n, use_cache=True, eos_id=None)  # through llama.generate, not the lesson
    b = generate(cm.model, ids, n, use_cache=False, eos_id=None)
    agree = sum(x == y for x, y in zip(a, b))
    want = K.SAME_CHOICES[0 if a == b else 1 if agree >= n // 2 else 2]
    for pick in K.SAME_CHOICES:
        md = client.predict(PROMPT, pick, api_name="/kv_reveal_same")
        assert md.startswith("✅" if pick == want else "❌") and "Largest |logit difference|" in md
    md = client.predict(PROMPT, None, api_name="/kv_reveal_same")
    assert md.startswith(NO_PICK) and want in md
    for i, pick in enumerate(K.SPEED_CHOICES):  # graded on the FLOPs (about T times): the timing is shown, not graded
        md = client.predict(pick, api_name="/kv_reveal_speed")
        assert md.startswith("✅" if i == 2 else "❌") and "FLOPs** without the cache" in md and "ms** against" in md


# ----------------------------------------------------------------------------- a real browser


def test_gqa_page_slider_redraws_the_diagram(page, app_url, cm):
    nh, nkv = cm.config.n_heads, cm.config.n_kv_heads
    page.goto(app_url + "gqa")
    page.get_by_text("MQA and GQA").filter(visible=True).first.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('#gqa-diagram .main-svg') !== null", timeout=60_000)
    before = svg_text(page, "gqa-diagram")
    assert f"share {nkv} K/V head" in before
    up = next((d for d in G.divisors(nh) if d > nkv), None)
    target, key, presses = (up, "ArrowRight", up - nkv) if up else (nkv // 2, "ArrowLeft", nkv - nkv // 2)
    press(page, "K/V heads", key, presses)
    expected = f"share {target} K/V head"
    page.wait_for_function(
        "t => [...document.querySelectorAll('#gqa-diagram .main-svg')].some(s => s.textContent.includes(t))",
        arg=expected, timeout=60_000)
    assert svg_text(page, "gqa-diagram") != before
    # the conversion slider opens at the count the conversion figure shows (the model as trained)
    assert page.get_by_label("number input for K/V heads after conversion").input_value() == str(nkv)
    # the conversion lab answers both questions: hidden until both are revealed
    assert not page.locator("#gqa-convert").is_visible()
    page.locator("#gqa-reveal-pool").locator("xpath=preceding::button[1]").click()
    assert not page.locator("#gqa-convert").is_visible()
    page.locator("#gqa-reveal-repeat").locator("xpath=preceding::button[1]").click()
    page.locator("#gqa-convert").wait_for(state="visible")
    assert "as shipped" in svg_text(page, "gqa-memory")  # the memory chart opens with the shipped K/V heads
    page.locator("#gqa-mine input").check()  # the learner's ratio is a separate choice
    page.wait_for_function(  # the memory figure follows the same slider
        "t => [...document.querySelectorAll('#gqa-memory .main-svg')].some(s => s.textContent.includes(t))",
        arg=f"{target} of {nh} K/V heads", timeout=60_000)
    assert no_error_toast(page) and page.errors == []


def test_kv_cache_page_step_slider_moves_the_grid(page, app_url):
    page.goto(app_url + "kv_cache")
    page.get_by_text("The KV cache").filter(visible=True).first.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('#kv-grid .main-svg') !== null", timeout=60_000)
    assert "Step 0:" in svg_text(page, "kv-grid")
    press(page, "step", times=2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#kv-grid .main-svg')].some(s => s.textContent.includes('Step 2:'))",
        timeout=60_000)
    page.get_by_text("one decode step").filter(visible=True).first.wait_for(timeout=30_000)
    assert page.get_by_text("steps to time (used when you press Measure)").count() == 1
    assert no_error_toast(page) and page.errors == []
