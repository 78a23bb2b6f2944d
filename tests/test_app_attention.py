"""Lesson 3 (attention, and lesson 13, efficient attention, split out of it) through the real app: each event by api_name with gradio_client, then a real browser."""


import numpy as np
import pytest
from gradio_client import Client

import raw_api
from conftest import array, fig
from lessons.attention import compute as C
from lessons.grading import NO_PICK
from ui import held, text_of

TEXT = "To be, or not to be: that is the question."
OTHER = "Now is the winter of our discontent made glorious summer by this sun of York."
LONG = "Now is the winter of our discontent made glorious summer. " * 60
ANALYZE = ("msg", "layer", "head", "query", "scale", "dot", "dot_md", "heatmap", "grid", "mix", "steps", "scale_plot",
           "summary", "answer_scale")
VIEW = ("msg", "layer", "head", "query", "scale", "dot", "dot_md", "heatmap", "grid", "mix", "steps", "scale_plot")


def title(plot) -> str:
    """A figure's title as the page shows it: lessons/plots.py keeps the plain title in layout.meta.title (the
    browser wraps it to the figure's width, app/static/figures.js) and a pre-wrapped copy (<br>) in title.text."""
    lay = fig(plot)["layout"]
    meta = lay.get("meta") if isinstance(lay.get("meta"), dict) else {}
    return meta.get("title") or lay["title"]["text"].replace("<br>", " ")



def unwrap(out: dict, sent: dict) -> dict:
    """Slider outputs come back as updates ({'value': 3, 'maximum': 15, '__type__': 'update'}, without 'value' when
    unchanged): keep the value the slider shows, and the query slider's maximum as 'query_max'."""
    for name in ("layer", "head", "query", "scale"):
        if isinstance(out.get(name), dict):
            if name == "query" and "maximum" in out[name]:
                out["query_max"] = out[name]["maximum"]
            out[name] = held(out[name], sent[name])
    return out


def analyze(client, text=TEXT, layer=1, head=1, query=3, scale=1.0) -> dict:
    sent = dict(layer=layer, head=head, query=query, scale=scale)
    return unwrap(dict(zip(ANALYZE, client.predict(text, layer, head, query, scale, api_name="/attention_analyze"))),
                  sent)


def view(client, layer, head, query, scale=1.0) -> dict:
    sent = dict(layer=layer, head=head, query=query, scale=scale)
    return unwrap(dict(zip(VIEW, client.predict(layer, head, query, scale, api_name="/attention_view"))), sent)


@pytest.fixture(scope="module")
def traced(cm):
    return C.trace_text(cm, TEXT)


@pytest.fixture()
def own(app_url):
    """A fresh learner: State (the analyzed text) is per session."""
    return Client(app_url, verbose=False)


def test_analyze_draws_the_models_attention_and_resizes_the_query_slider(own, traced):
    out = analyze(own)
    assert out["msg"] == "" and (out["layer"], out["head"], out["query"]) == (1, 1, 3)
    assert out["query_max"] == traced.n_tokens - 1
    assert "Layer 1, head 1" in title(out["heatmap"])
    z = array(fig(out["heatmap"])["data"][0]["z"])
    np.testing.assert_allclose(np.nan_to_num(z), traced.attn[1, 1], atol=1e-6)  # the real weights, masked cells NaN
    np.testing.assert_allclose(np.nansum(z, axis=1), 1.0, atol=1e-5)
    assert np.isnan(z[0, 1:]).all()
    assert len(fig(out["grid"])["data"]) == traced.n_heads
    assert "Query 3" in title(out["steps"]) and "× 1 for query 3" in title(out["scale_plot"])
    assert title(out["dot"]).startswith("Query 3") and "Query 3" in out["dot_md"]
    # The summary of every head (in Go deeper) is drawn with every analyze; the scaling answer is cleared.
    assert array(fig(out["summary"])["data"][1]["z"]).shape == (traced.n_layers, traced.n_heads)
    assert out["answer_scale"] == ""


def test_analyze_cuts_long_text_and_refuses_empty_text(own):
    out = analyze(own, LONG, 0, 0, 5)
    assert f"the limit is {C.MAX_TOKENS} tokens" in out["msg"] and out["query_max"] == C.MAX_TOKENS - 1
    assert len(fig(out["heatmap"])["data"][0]["x"]) == C.MAX_TOKENS
    msg, *rest = own.predict("  ", 0, 0, 5, 1.0, api_name="/attention_analyze")
    assert "empty" in msg  # a notice; the figures stay as they were (skipped), still the long text
    out = view(own, 0, 0, 5)
    assert len(fig(out["heatmap"])["data"][0]["x"]) == C.MAX_TOKENS
    out = analyze(own, "🦙🦙🦙", 0, 0, 5)
    assert "single bytes" in out["msg"] and fig(out["heatmap"])["data"][0]["type"] == "heatmap"



def test_lone_surrogate_text_gets_a_notice(app_url):
    keys = ANALYZE[:1] + ("analyzed",) + ANALYZE[1:]  # the plain HTTP API also returns the State output
    out = unwrap(dict(zip(keys, raw_api.call(app_url, "attention_analyze", "ab\ud800c", 0, 0, 1, 1.0))),
                 dict(layer=0, head=0, query=1, scale=1.0))
    assert "not valid Unicode" in out["msg"] and "Layer 0, head 0" in title(out["heatmap"])


@pytest.mark.parametrize("bad, word", [(9, "out of range"), (-5, "out of range"), (4.5, "not a whole number"),
                                       (float("nan"), "not a number"), (float("inf"), "out of range"),
                                       (1e20, "out of range"), (1.8e308, "out of range"), ("abc", "not a number")])
def test_bad_slider_values_through_the_api_are_clamped_with_a_notice(app_url, cm, bad, word):
    """Plain HTTP (NaN and inf cannot go through gradio_client); a fresh session shows the page's default text."""
    traced = C.trace_text(cm, C.DEFAULT_TEXT)
    for args in ((bad, 0, 2), (0, bad, 2), (0, 0, bad)):
        out = unwrap(dict(zip(VIEW, raw_api.call(app_url, "attention_view", *args, 1.0))),
                     dict(layer=args[0], head=args[1], query=args[2], scale=1.0))
        if not (args[2] == bad == 9):  # query 9 is a position of the default text: nothing to say
            assert word in out["msg"] and "⚠️" in out["msg"]
        lay, hd, q = out["layer"], out["head"], out["query"]
        assert 0 <= lay < traced.n_layers and 0 <= hd < traced.n_heads and 0 <= q < traced.n_tokens
        assert f"Layer {lay}, head {hd}" in title(out["heatmap"]) and f"Query {q}" in title(out["steps"])
    msg, value, plot = raw_api.call(app_url, "attention_scale", 0, 0, 2, bad)
    value = held(value, bad)  # (unchanged when bad is a fine scale factor)
    assert msg == "" if bad in (9, 4.5) else word in msg  # 9 and 4.5 are fine scale factors
    assert C.SCALE_MIN <= value <= C.scale_max(traced.head_dim) and f"× {value:g} for" in title(plot)


def test_sliders_use_the_analyzed_text_not_the_box(own, cm):
    """Editing the box without Analyze changes nothing: a slider shows the analyzed text in every figure."""
    analyze(own, TEXT)
    t_text, t_other = C.trace_text(cm, TEXT), C.trace_text(cm, OTHER)
    out = view(own, 2, 3, 4)  # (the box is not an input of this event: it cannot disagree)
    for name in ("heatmap", "grid"):
        assert len(fig(out[name])["data"][0]["x"]) == t_text.n_tokens
    np.testing.assert_allclose(np.nan_to_num(array(fig(out["heatmap"])["data"][0]["z"])), t_text.attn[2, 3], atol=1e-6)
    analyze(own, OTHER)
    out = view(own, 2, 3, 4)
    np.testing.assert_allclose(np.nan_to_num(array(fig(out["heatmap"])["data"][0]["z"])), t_other.attn[2, 3],
                               atol=1e-6)
    assert len(fig(out["grid"])["data"][0]["x"]) == t_other.n_tokens
    labels = fig(out["steps"])["data"][0]["x"]
    assert list(labels) == t_other.labels


def test_stale_query_is_clamped_with_a_notice(own, traced):
    """The slider is sized for a long text; then a short one is analyzed with the old query: clamped, said."""
    analyze(own, LONG, 0, 0, 5)
    out = analyze(own, TEXT, 0, 0, 100)
    assert f"using {traced.n_tokens - 1}" in out["msg"] and f"Query {traced.n_tokens - 1}" in title(out["steps"])
    assert out["query"] == traced.n_tokens - 1


def test_reveals_grade_from_the_measurement(own, traced):
    analyze(own)
    prev = np.array([[np.mean([traced.attn[l, h, i, i - 1] for i in range(2, traced.n_tokens)])
                      for h in range(traced.n_heads)] for l in range(traced.n_layers)])
    best_l, best_h = np.unravel_index(prev.argmax(), prev.shape)
    z = array(fig(analyze(own)["summary"])["data"][1]["z"])  # the summary's previous-token panel, with every analyze
    assert z.shape == prev.shape and np.unravel_index(z.argmax(), z.shape) == (best_l, best_h)
    sd = float(C.random_dots().std())  # q.k of random unit-variance vectors at d = 32: about sqrt(32)
    assert abs(sd - 32 ** 0.5) < 0.2
    md = own.predict(C.Q_DOT.choices[1], api_name="/attention_reveal_dot")
    assert md.startswith("✅") and f"**{sd:.2f}**" in md and C.Q_DOT.misconception in md
    assert own.predict(C.Q_DOT.choices[0], api_name="/attention_reveal_dot").startswith("❌")
    md = own.predict(None, api_name="/attention_reveal_scaling")
    assert md.startswith(NO_PICK) and "re-running the model" in md and C.Q_SCALE.misconception in md
    md = own.predict("bogus", api_name="/attention_reveal_scaling")
    assert "not one of" in md and "⚠️" in md


def test_toy_example_through_the_api(own):
    """The toy's three 2-D tokens, edited: the same functions as a real head; a non-number becomes 0 with a notice."""
    import pandas as pd

    rows = [list(r) for r in C.TOY_DEFAULT]
    rows[2][2] = "x"  # "sat"'s q2
    msg, table, plot, md = own.predict({"headers": C.TOY_COLUMNS, "data": rows, "metadata": None},
                                       api_name="/attention_toy")
    assert "not a number" in msg and "⚠️" in msg
    toy = C.toy_attention(pd.DataFrame(rows, columns=C.TOY_COLUMNS))
    assert f"{toy.weights[2, 0]:.3f}" in md and "−∞ (masked)" in md
    assert len(fig(plot)["data"]) == 6


def test_page_in_a_real_browser(page, app_url):
    page.goto(app_url + "attention")
    heat_title = page.locator("#attention-heatmap .gtitle").first
    heat_title.wait_for(timeout=60_000)
    assert "Layer 0, head 0" in text_of(heat_title)
    for elem in ("attention-toy", "attention-grid", "attention-steps"):
        assert page.locator(f"#{elem} .main-svg").count() > 0

    # Keyboard: focus the head slider's number box, step it up, leave it (blur = release).
    head_box = page.locator('input[aria-label^="number input for Query head"]')
    head_box.focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Tab")
    for elem in ("attention-heatmap", "attention-steps"):
        page.wait_for_function(
            f"document.querySelector('#{elem} .gtitle').textContent.includes('head 1')", timeout=30_000)

    # A layer typed out of range: clamped with a notice on the page, no red toast.
    layer_box = page.locator('input[aria-label^="number input for Layer"]')
    layer_box.fill("99")
    layer_box.press("Enter")
    page.keyboard.press("Tab")
    page.get_by_text("is out of range", exact=False).filter(visible=True).first.wait_for(timeout=30_000)

    # Edit the text without Analyze, then move a slider: every figure still shows the analyzed text.
    box = page.locator("#attention-text textarea")
    n_before = page.locator("#attention-heatmap .xtick").count()
    box.fill(LONG)
    head_box.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    page.wait_for_function(
        "document.querySelector('#attention-heatmap .gtitle').textContent.includes('head 0')", timeout=30_000)
    assert page.locator("#attention-heatmap .xtick").count() == n_before

    # Analyze the long text: visible notice, and the query slider now reaches the last of 128 tokens.
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text(f"the limit is {C.MAX_TOKENS} tokens", exact=False).filter(visible=True).first.wait_for(timeout=30_000)
    page.wait_for_function(
        f"document.querySelector('input[aria-label^=\"number input for Query position\"]').max == '{C.MAX_TOKENS - 1}'",
        timeout=30_000)

    # Empty text: a message on the page, never a traceback; the figures keep the analyzed text.
    box.fill("")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("The text is empty", exact=False).filter(visible=True).first.wait_for(timeout=30_000)
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0
    assert "Error" not in page.inner_text("body")
    assert page.errors == []


def test_memory_is_measured_on_request_and_the_online_softmax_follows_the_text(own, cm):
    """/efficient_attention (split out of /attention): Measure peak memory: the model's head shapes up to its
    context, cached; the online-softmax table: the text's query row in blocks of the chosen size, ending at the full
    softmax; its question graded from the same row."""
    from lessons.efficient_attention import compute as E

    msg, plot, md = own.predict(E.REACH_CHOICES[0], api_name="/efficient_attention_memory")
    cfg, head = cm.config, title(plot).replace("<br>", " ")  # the page wraps titles to fit a phone
    assert msg == "" and "Peak memory of one causal attention call" in head
    assert f"{cfg.n_heads} query heads, {cfg.n_kv_heads} K/V heads" in head
    assert f"| {cfg.max_seq_len} |" in md and len(fig(plot)["data"]) == 4
    msg, query, block, md = own.predict(TEXT, 1, 2, 5, 3, api_name="/efficient_attention_online")
    assert msg == "" and held(block, 3) == 3 and "**Query 5" in md and "2 blocks of at most 3" in md
    r = E.online_softmax(E.trace_text(cm, TEXT), 1, 2, 5, 3)
    assert f"**{r.max_diff:.1e}**" in md and r.max_diff < 1e-6
    md = own.predict(TEXT, 1, 2, 5, 3, E.Q_RUNNING.choices[1], api_name="/efficient_attention_reveal")
    assert md.startswith("✅") and E.Q_RUNNING.misconception in md
