"""Issue 15, a course a teacher can share: links that keep the state (app/share.py), the code beside every figure,
figures to take away (PNG, SVG, CSV), colour scales checked for colour-vision deficiencies (lessons/colours.py), and
a description of every figure for screen readers (lessons/plots.describe)."""

import importlib
import inspect
import json
import urllib.parse
import urllib.request

import numpy as np
import plotly.graph_objects as go
import pytest

from app.share import Field, read_link
from lessons import colours as K
from lessons.inputs import MAX_TEXT_CHARS
from lessons.plots import describe, described, figure
from ui import idle, svg_text, wait_svg

FIELDS = [Field("text", "text", "Text"), Field("layer", "whole", "Layer", 0, 5, default=0),
          Field("scale", "number", "Scale", 0.1, 4.0, default=1.0), Field("on", "bool", "Top-k", default=False),
          Field("format", "choice", "Number format", choices=("fp32", "bf16", 4), default="fp32")]


# ----------------------------------------------------------------------------- reading a link (no server)


def test_a_link_sets_only_what_it_names_and_checks_it_like_a_typed_value():
    values, notice = read_link({"text": "To be", "layer": "2", "scale": "0.5", "on": "1", "format": "4",
                                "other": "x"}, FIELDS)
    assert values == {"text": "To be", "layer": 2, "scale": 0.5, "on": True, "format": 4}  # "4" picks the option 4
    assert notice == ""
    assert read_link({}, FIELDS) == ({}, "")


@pytest.mark.parametrize("name, raw, want, said", [
    ("layer", "99", 5, "out of range (0 to 5): using 5"),
    ("layer", "-1e308", 0, "out of range"),
    ("layer", "2.5", 2, "not a whole number"),
    ("layer", "nan", 0, "nan is not a number"),
    ("layer", "abc", 0, "is not a number"),
    ("scale", "inf", 4.0, "out of range"),
    ("scale", "1.8e308", 4.0, "out of range"),
    ("on", "maybe", False, "not on or off"),
    ("format", "fp8<script>", "fp32", "is not one of"),
])
def test_hostile_link_values_are_repaired_with_a_notice(name, raw, want, said):
    values, notice = read_link({name: raw}, FIELDS)
    assert values[name] == want
    assert notice.startswith("From the link: ") and said in notice


def test_link_text_is_capped_and_cleaned_and_empty_text_keeps_the_page_default():
    values, notice = read_link({"text": "x" * (MAX_TEXT_CHARS + 10)}, FIELDS)
    assert len(values["text"]) == MAX_TEXT_CHARS and f"limit is {MAX_TEXT_CHARS:,}" in notice
    values, notice = read_link({"text": "a\ud800b"}, FIELDS)
    assert values["text"] == "a\ufffdb" and "U+FFFD" in notice
    values, notice = read_link({"text": "   ", "layer": "1"}, FIELDS)
    assert values == {"layer": 1} and "empty" in notice


# ----------------------------------------------------------------------------- figure data and descriptions


def test_description_is_computed_from_the_data():
    bars = figure([dict(type="bar", name="next token", x=["the", "a", "of"], y=[0.2, 0.5, 0.3])], title="Top <b>3</b>")
    assert describe(bars) == "Top 3. next token: 3 bars, largest a = 0.5."
    heat = figure([go.Heatmap(z=[[0.1, 0.9], [0.4, 0.2]], x=["k0", "k1"], y=["q0", "q1"])])
    assert "2 by 2 heatmap, largest 0.9 at q0, k1" in describe(heat)
    own = figure([], None, meta=dict(description="said by the lesson"))
    assert described(own.to_plotly_json())["layout"]["meta"]["description"] == "said by the lesson"
    assert described(bars.to_plotly_json())["layout"]["meta"]["description"] == describe(bars)


def test_attention_heatmap_description_matches_the_weights(cm):
    from lessons.attention import compute as C

    t = C.trace_text(cm, "To be or not to be")
    a = t.attn[2, 1]  # (T, T)
    T = a.shape[0]
    prev = np.mean([a[i, i - 1] for i in range(1, T)])
    said = C.heatmap_figure(t, 2, 1).layout.meta["description"]
    assert said.startswith(f"Layer 2, head 1: {prev:.0%} of attention on the previous token")
    assert f"mean over {T - 1} queries" in said


# ----------------------------------------------------------------------------- colour vision


def test_the_simulation_loses_what_a_deficiency_loses():
    red, green = "#d62728", "#2ca02c"  # Plotly's default red and green: apart for normal vision
    assert K.delta_e(red, green) > 100
    assert K.delta_e(red, green, "deutan") < 10  # nearly one colour without M cones (Machado et al. 2009)
    assert K.delta_e(red, green, "tritan") > 100  # tritanopes keep red-green
    assert K.lightness_shape(K.scale_colours("Viridis"), "protan") == "monotone"
    assert K.lightness_shape(K.scale_colours("Jet"), "protan") == "mixed"  # a rainbow is caught


def _config(app_url) -> dict:
    with urllib.request.urlopen(app_url + "config", timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def config(app_url):
    return _config(app_url)


def _plots(config) -> list[dict]:
    return [c for c in config["components"] if c.get("type") == "plot"]


def test_every_figure_reads_in_colour_blind_and_dark_themes(config):
    checked = 0
    for comp in _plots(config):
        value = comp["props"].get("value")
        if not value:
            continue
        eid, fig = comp["props"]["elem_id"], json.loads(value["plot"])
        scales, cats = K.figure_colours(fig)
        for s in scales:
            cols = K.scale_colours(s)
            cyclic = K.delta_e(cols[0], cols[-1]) < 1  # a cyclic scale (angles) returns to its start
            for kind in K.VISIONS:
                assert K.lightness_shape(cols, kind) in ("monotone", "diverging"), (eid, s, kind)
                if not cyclic:
                    assert K.delta_e(cols[0], cols[-1], kind) > 20, (eid, s, kind)
            checked += 1
        for kind in K.VISIONS:
            if len(cats) > 1:
                d, a, b = K.closest_pair(cats, kind)
                assert d >= 10, f"{eid}: {a} and {b} are ΔE {d:.1f} apart for {kind} vision"
        # Dark theme: the figure keeps its own light paper (Plotly's default, or set opaque), so dark text stays
        # readable on any page background.
        paper = (fig.get("layout") or {}).get("paper_bgcolor")
        assert paper is None or K.lab(paper)[0] > 90, (eid, paper)
        checked += 1
    assert checked > 40


# ----------------------------------------------------------------------------- every figure: code, export, words


def test_every_figure_on_every_page_has_its_code_export_and_description(config):
    """Under each figure, one HTML block (app/widgets.py figure_tools): PNG, SVG and CSV buttons for figures.js, and
    a closed Code panel with the source of the function that computes the figure, read now."""
    import html as html_lib
    import re

    by_elem = {c["props"].get("elem_id"): c for c in config["components"] if c["props"].get("elem_id")}
    extras = [c["props"]["value"] for c in config["components"]
              if "figure-extras" in (c["props"].get("elem_classes") or [])]
    plots = _plots(config)
    assert len(plots) >= 40
    for comp in plots:
        eid = comp["props"]["elem_id"]
        mine = [h for h in extras if f'id="{eid}-tools"' in h]
        assert len(mine) == 1, eid
        block = mine[0]
        for button in ("png", "svg", "csv"):
            assert re.search(f'<button type="button" [^>]*id="{eid}-{button}" data-save="{button}" '
                             f'data-figure="{eid}"', block), (eid, button)
        panel = re.search(f'<details class="figure-code" id="{eid}-code"><summary>(.*?)</summary>.*?'
                          "<pre[^>]*><code>(.*?)</code></pre></details>", block, re.S)
        assert panel, eid  # a <details> without `open`: closed until the learner opens it
        # "Code: heatmap_figure (lessons/attention/compute.py, line 339)": the function there, read now
        name, rest = html_lib.unescape(panel[1]).removeprefix("Code: ").split(" (", 1)
        path, line = rest.rstrip(")").split(", line ")
        fn = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
        lines, first = inspect.getsourcelines(fn)
        assert first == int(line) and path.startswith(("lessons/", "llama/"))
        assert html_lib.unescape(panel[2]).rstrip() == "".join(lines).rstrip(), eid
        value = comp["props"].get("value")
        if value:  # the figure the page opens with carries its description for screen readers
            assert json.loads(value["plot"])["layout"]["meta"]["description"], eid
    assert "figure-tools" not in json.dumps([c["props"].get("elem_classes") for c in config["components"]
                                             if c.get("type") in ("button", "row", "accordion")])


def test_the_csv_button_gives_one_row_per_cell_or_bar_from_numpy_arrays_and_plain_lists(browser, app_url):
    """app/static/figures.js `csv`, on a figure as the server sends it (numpy arrays in Plotly's binary form), then
    the CSV button under a figure saves what `csv` makes of the figure drawn there."""
    z = np.array([[1.0, np.nan], [0.25, 0.75]], dtype=np.float32)
    fig = figure([go.Heatmap(z=z, x=["0 &lt;s&gt;", "1 To"], y=["0 &lt;s&gt;", "1 To"], name="map"),
                  dict(type="bar", name="p", x=["a", "b", "c"], y=[3, 1, 2]),
                  dict(type="bar", orientation="h", x=np.array([0.5, 1.5]), y=["q, r", 'say "hi"']),
                  dict(type="scatter", y=np.arange(2, 4, dtype=np.int16))])
    assert "bdata" in fig.to_json()  # numpy arrays travel in binary form
    from ui import recording_errors

    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page = recording_errors(ctx.new_page())
    try:
        page.goto(app_url + "attention")
        page.wait_for_function("() => window.insideLlama && window.insideLlama.csv", timeout=60_000)
        lines = page.evaluate("f => window.insideLlama.csv(JSON.parse(f))", fig.to_json()).split("\n")
        assert lines[0] == "trace,x,y,value" and lines[-1] == ""
        assert lines[1:5] == ["map,0 <s>,0 <s>,1", "map,1 To,0 <s>,", "map,0 <s>,1 To,0.25", "map,1 To,1 To,0.75"]
        assert lines[5:8] == ["p,a,3,3", "p,b,1,1", "p,c,2,2"]
        assert lines[8:10] == ['bar 3,0.5,"q, r",0.5', 'bar 3,1.5,"say ""hi""",1.5']  # a horizontal bar: x
        assert lines[10:12] == ["scatter 4,0,2,2", "scatter 4,1,3,3"]  # no x: positions
        page.locator("#attention-heatmap .main-svg").first.wait_for(timeout=60_000)
        idle(page)  # the page's load chain has drawn what it draws
        with page.expect_download() as saved:
            page.locator("#attention-heatmap-csv").click()
        assert saved.value.suggested_filename == "attention-heatmap.csv"
        text = open(saved.value.path(), encoding="utf-8").read()
        gd = "document.querySelector('#attention-heatmap .js-plotly-plot')"
        drawn = page.evaluate(f"() => window.insideLlama.csv({gd})")
        T = int(page.evaluate(f"() => {gd}.data[0].y.length"))
        assert text == drawn and len(text.splitlines()) == 1 + T * T  # one row per cell of the map
        assert page.errors == []
    finally:
        ctx.close()


# ----------------------------------------------------------------------------- a link in a fresh browser


def test_a_link_opens_its_state_in_a_fresh_browser_and_the_url_follows_the_learner_back_and_forth(browser, app_url):
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)  # fresh: no storage
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    query = urllib.parse.urlencode({"text": "To be or not to be", "layer": 2, "head": 1, "scale": 99})
    try:
        page.goto(app_url + "attention?" + query)
        wait_svg(page, "attention-heatmap", "Layer 2, head 1", timeout=120_000)
        idle(page)
        assert page.locator("#attention-text textarea").input_value() == "To be or not to be"
        heat = svg_text(page, "attention-heatmap")
        assert "␣not" in heat and "First" not in heat  # the linked text's tokens, not the default text's
        from shape import reveal

        reveal(page, "attention-scaling")  # the one-row scale figure answers that question: hidden until Reveal
        assert "×" in svg_text(page, "attention-scale")
        assert "out of range" in page.locator("#attention-msg").inner_text()  # scale 99 clamped, said
        aria = page.locator("#attention-heatmap .js-plotly-plot").get_attribute("aria-label")
        assert aria.startswith("Layer 2, head 1: ") and "previous token" in aria
        # The URL now holds the state as drawn (scale clamped) and follows a slider the learner moves.
        params = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
        assert params["layer"] == ["2"] and params["head"] == ["1"] and params["text"] == ["To be or not to be"]
        assert float(params["scale"][0]) < 99
        page.get_by_label("range slider for Query head (0 to 5); it reads KV head = head // 2", exact=True).press(
            "ArrowRight")
        wait_svg(page, "attention-heatmap", "Layer 2, head 2")
        page.wait_for_function("() => new URL(location.href).searchParams.get('head') === '2'")
        box = page.locator(".share-link textarea, .share-link input").first
        assert "head=2" in box.input_value()
        # On to the next lesson and back: the URL brings this page's state back.
        page.locator("nav.lesson-nav a", has_text="RoPE").first.click()
        page.wait_for_url("**/rope")
        page.go_back()
        wait_svg(page, "attention-heatmap", "Layer 2, head 2", timeout=120_000)
        assert page.locator("#attention-text textarea").input_value() == "To be or not to be"
        assert errors == []
    finally:
        ctx.close()
