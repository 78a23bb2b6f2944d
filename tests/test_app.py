"""The app as a whole: it serves the course map and one page per ready lesson, each with its own URL."""

import html
import urllib.request

import lessons
from app.pages.home import model_summary


def test_registry_order_and_navigation():
    slugs = [lesson.slug for lesson in lessons.LESSONS]
    # issue 21's order: what the model does first, then each part as a token meets it, then generation, cost, training
    order = ["next_token", "tokenization", "attention", "rope", "rmsnorm", "swiglu", "assembled", "sampling",
             "kv_cache", "gqa", "efficient_attention", "training", "scale"]
    assert [s for s in slugs if s in order] == order and len(set(slugs)) == len(slugs)
    assert slugs.index("kv_cache") < slugs.index("gqa"), "GQA builds on the KV cache it exists to shrink"
    assert all(lesson.short and lesson.knows and lesson.adds for lesson in lessons.LESSONS)
    assert [lesson.number for lesson in lessons.LESSONS] == list(range(1, len(slugs) + 1))
    ready = [lesson for lesson in lessons.LESSONS if lesson.ready]
    assert ready, "no lesson page is ready"
    prev, nxt = lessons.neighbours(ready[0].slug)
    assert prev is None and (nxt is None or nxt.slug == ready[1].slug)


def test_course_map_summarises_the_real_model(cm):
    md = model_summary(cm)
    assert f"{cm.model.num_parameters():,} parameters" in md
    assert f"{cm.config.n_heads} query heads" in md and f"{cm.config.n_kv_heads} key/value heads" in md


def test_course_map_validation_figure_is_the_cards_whole_split_figure(cm, tmp_path):
    """The course map shows the validation loss the training script measured on the whole held-out split (the
    model card's figure, from summary.json), names that text, and reads every fact from the model directory."""
    import dataclasses
    import json
    import shutil

    from lessons.course import card_rows

    summary = json.loads((cm.path / "summary.json").read_text())
    md = model_summary(cm)
    shown = f"{summary['val_loss_per_token']:.4f} nats per token"
    assert shown in md and shown in card_rows(cm.card)["validation loss"]  # the card says the same
    assert f"{summary['val_tokens']:,} tokens" in md and "whole held-out validation split" in md
    assert card_rows(cm.card)["data"] in md  # names the text: TinyShakespeare, its held-out part

    # Another model directory: a changed summary and card show through; no fact of the course model remains.
    for name in ("summary.json", "MODEL_CARD.md"):
        shutil.copy(cm.path / name, tmp_path / name)
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "val_loss_per_token": 1.2345}))
    (tmp_path / "MODEL_CARD.md").write_text(cm.card.replace("the last 10%", "the first 5%"))
    other = model_summary(dataclasses.replace(cm, path=tmp_path, card=(tmp_path / "MODEL_CARD.md").read_text()))
    assert "1.2345 nats per token" in other and "the first 5%" in other and "last 10%" not in other

    # A directory with no card, summary or log (stories260K ships none): say what is unknown, invent nothing.
    bare = model_summary(dataclasses.replace(cm, path=tmp_path / "none", card="", train_log=[]))
    assert "not known" in bare and "no model card" in bare
    assert "Shakespeare" not in bare and "10%" not in bare and "nats" not in bare
    # Architecture facts come from the config: a config without GQA and with LayerNorm says so.
    mha = dataclasses.replace(cm.config, n_kv_heads=cm.config.n_heads, norm="layernorm", tie_embeddings=False)
    other_cfg = model_summary(dataclasses.replace(cm, model=_with_config(cm.model, mha)))
    assert "MHA" in other_cfg and "GQA" not in other_cfg and "LayerNorm" in other_cfg and "RMSNorm" not in other_cfg
    assert "tied" not in other_cfg


def _with_config(model, config):
    """A stand-in with model's parameters count and another config (model_summary reads only these)."""
    class Stub:
        def num_parameters(self):
            return model.num_parameters()

    stub = Stub()
    stub.config = config
    return stub


def test_every_ready_page_has_its_own_url(app_url):
    for lesson in lessons.LESSONS:
        if lesson.ready:
            with urllib.request.urlopen(app_url + lesson.slug, timeout=30) as r:
                assert r.status == 200


def test_course_map_in_a_real_browser_links_every_ready_lesson(page, app_url):
    page.goto(app_url)
    page.locator("h1").first.wait_for(timeout=60_000)
    page.locator("ul.course-map li").nth(len(lessons.LESSONS) - 1).wait_for(timeout=60_000)  # rendered after h1
    body = page.inner_text("body")
    for lesson in lessons.LESSONS:
        assert lesson.title in body
    page.get_by_text("The course model").filter(visible=True).first.wait_for()
    ready = [lesson for lesson in lessons.LESSONS if lesson.ready]
    link = page.locator(f'a[href="{ready[0].path}"]').first
    link.click()
    page.wait_for_url("**" + ready[0].path, timeout=30_000)
    page.get_by_text(ready[0].title).filter(visible=True).first.wait_for(timeout=60_000)
    assert page.errors == []


def test_sliders_work_from_the_keyboard_alone(page, app_url):
    """Arrow keys on a slider (no mouse, no synthetic pointer events) must run the slider's model work."""
    page.goto(app_url + "sampling")
    title = page.locator("#sampling-dist .gtitle")
    title.wait_for(timeout=60_000)
    before = title.text_content()
    slider = page.get_by_label("range slider for temperature T")
    slider.focus()
    for _ in range(2):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("b => { const t = document.querySelector('#sampling-dist .gtitle');"
                           " return t && t.textContent !== b; }", arg=before, timeout=30_000)
    assert title.text_content() != before
    assert page.errors == []


def test_a_malformed_model_directory_stops_the_app_with_a_clear_message(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "config.json").write_text("{not json")
    env = {**os.environ, "INSIDE_LLAMA_MODEL": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "app.main"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert "cannot load the course model" in r.stderr and "not valid JSON" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_shift_enter_runs_a_multiline_text_box_as_its_label_says(page, app_url):
    """Gradio's multi-line boxes submit on Shift+Enter (Enter is a new line); labels must say that."""
    from app.widgets import RUN_HINT

    page.goto(app_url + "swiglu")
    readout = page.locator("#swiglu-gates-readout")
    readout.wait_for(state="attached", timeout=60_000)  # hidden until the page's questions are answered
    before = readout.inner_text()
    box = page.get_by_label(f"Your text ({RUN_HINT})")
    box.fill("Now is the winter of our discontent")
    box.press("Shift+Enter")
    page.wait_for_function("b => document.querySelector('#swiglu-gates-readout').innerText !== b", arg=before,
                           timeout=30_000)
    assert box.input_value() == "Now is the winter of our discontent"
    assert page.errors == []


def test_an_unknown_url_shows_the_course_pages_not_raw_json(app_url):
    import urllib.error

    req = urllib.request.Request(app_url + "nope", headers={"Accept": "text/html,application/xhtml+xml"})
    try:
        urllib.request.urlopen(req, timeout=30)
        raise AssertionError("an unknown URL answered 200")
    except urllib.error.HTTPError as e:
        assert e.code == 404
        body = e.read().decode()
    assert "<html" in body and '"detail"' not in body
    assert 'href="/"' in body or "href='/'" in body
    for lesson in lessons.LESSONS:
        if lesson.ready:
            assert f'href="{lesson.path}">{html.escape(lesson.title)}</a>' in body  # a title's ' is escaped
    # API clients still get JSON
    req = urllib.request.Request(app_url + "gradio_api/nope", headers={"Accept": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=30)
    except urllib.error.HTTPError as e:
        assert e.code == 404 and e.read().startswith(b"{")


def test_an_idle_connection_stays_open_past_uvicorns_five_seconds(app_url):
    """The server keeps an idle keep-alive connection (app.main.KEEP_ALIVE_S): when it closed them after 5 s, Chromium
    queued the training lab's Stop behind the page's two long streams for up to 10 s (issue 24)."""
    import http.client
    import time

    host, port = app_url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/favicon.ico")
    conn.getresponse().read()
    sock = conn.sock
    time.sleep(6.5)
    conn.request("GET", "/favicon.ico")  # on the same socket: http.client reconnects only after a failure
    r = conn.getresponse()
    r.read()
    assert conn.sock is sock and r.status in (200, 404)
    conn.close()
