"""The tokenization page served for real: each event through gradio_client, and a browser moving the
merge slider with the keyboard."""

import html
import json
import re
import time

import pytest
from gradio_client import Client

import raw_api
from lessons.grading import NO_PICK
from lessons.tokenization import compute as C
from llama.tokenizer import BPETokenizer
from ui import idle, no_error_toast

SUB_ID = re.compile(r"<sub[^>]*>(\d+)</sub>")
TEXT = "the cat sat on the mat. the hat is on the cat, and that is that.\n" * 30
SENTENCE = "that cat, the hat"


def chip_ids(chips: str) -> list[int]:
    return [int(i) for i in SUB_ID.findall(chips)]


def plot_data(value) -> list[dict]:
    """gr.Plot's value as gradio_client returns it: {'type': 'plotly', 'plot': '<figure JSON>'}."""
    return json.loads(value["plot"])["data"]


TRAIN = ("msg", "vocab", "slider", "chips", "merge_md", "curve", "replay_msg", "compare_html", "compare_fig", "q2",
         "q2_out", "text")


def train(client, text=TEXT, vocab=300, sentence=SENTENCE):
    return dict(zip(TRAIN, client.predict(text, vocab, sentence, api_name="/tokenization_train")))


def replay(client, k, sentence=SENTENCE) -> dict:
    return dict(zip(("notice", "chips", "merge_md", "curve"), client.predict(k, sentence, api_name="/tokenization_replay")))


@pytest.fixture()
def own(app_url):
    """A fresh learner: the trained tokenizer is per session (gr.State)."""
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def reference():
    return BPETokenizer.train(TEXT, 300)


def test_train_endpoint(own, reference):
    out = train(own)
    n = len(reference.merges)
    assert out["slider"]["maximum"] == n and out["slider"]["value"] == n
    assert chip_ids(out["chips"]) == reference.encode(SENTENCE)
    assert f"Merge {n} of {n}" in out["merge_md"]
    line = plot_data(out["curve"])[0]
    assert line["x"][0] == 259 and line["x"][-1] == 259 + n
    for name in (C.OURS, C.HF_BPE, C.SP_BPE, C.SP_UNIGRAM, C.COURSE):
        assert html.escape(name) in out["compare_html"]
    bars = plot_data(out["compare_fig"])[0]
    assert len(bars["y"]) == 5
    choices = [c[0] for c in out["q2"]["choices"]]
    assert C.pair_label(reference, reference.merges[0].pair) in choices


def test_replay_endpoint_uses_the_learners_tokenizer(own, reference):
    train(own)
    r = replay(own, 0)
    assert chip_ids(r["chips"]) == [3 + b for b in SENTENCE.encode("utf-8")] and "no merges yet" in r["merge_md"]
    r = replay(own, 5)
    assert chip_ids(r["chips"]) == reference.encode_as_of(SENTENCE, 5)
    m = reference.merges[4]
    assert f"Merge 5 of {len(reference.merges)}" in r["merge_md"] and f"**{m.count:,}**" in r["merge_md"]
    assert plot_data(r["curve"])[1]["x"] == [259 + 5] and r["notice"] == ""


def test_train_endpoint_bad_input_keeps_the_last_tokenizer(own, reference):
    train(own)
    out = train(own, text="   ")
    assert "empty" in out["msg"] and "⚠️" in out["msg"]
    assert chip_ids(replay(own, 5)["chips"]) == reference.encode_as_of(SENTENCE, 5)  # nothing lost
    out = train(own, text="<s></s><s>")
    assert "nothing but special tokens" in out["msg"]
    out = train(own, text="😀🎉😀 🎉😀", vocab=1000, sentence="😀")
    assert "stopped at" in out["msg"] and len(plot_data(out["compare_fig"])[0]["y"]) == 5
    long = "ab cd\n" * (C.MAX_TEXT_CHARS // 6 + 10)  # over the limit, in short lines (sentencepiece trains fast)
    out = train(own, text=long, vocab=400)
    assert "100,000" in out["msg"] and out["text"] == long[:C.MAX_TEXT_CHARS]  # the box shows what was trained
    out = train(own, sentence="")
    assert "empty" in out["replay_msg"] and out["slider"]["maximum"] > 0  # trained anyway; the replay says why


@pytest.mark.parametrize("vocab, used, word", [(5, C.VOCAB_MIN, "out of range"), (100, C.VOCAB_MIN, "out of range"),
                                               (99999, C.VOCAB_MAX, "out of range"), (-3, C.VOCAB_MIN, "out of range"),
                                               (300.5, 300, "not a whole number"), (1e20, C.VOCAB_MAX, "out of range"),
                                               (1.8e308, C.VOCAB_MAX, "out of range"),
                                               (float("inf"), C.VOCAB_MAX, "out of range"),
                                               (float("nan"), None, "not a number"), ("abc", None, "not a number")])
def test_bad_vocabulary_sizes_are_clamped_with_a_notice(app_url, cm, vocab, used, word):
    """Plain HTTP, as a browser or any client may send it (gradio_client cannot send NaN or inf)."""
    out = raw_api.call(app_url, "tokenization_train", "the cat sat on the mat. " * 20, vocab, SENTENCE)
    out = dict(zip(TRAIN[:1] + ("state",) + TRAIN[1:], out))  # the plain API also returns the State output
    default = min(max(cm.tokenizer.vocab_size, C.VOCAB_MIN), C.VOCAB_MAX)
    assert word in out["msg"] and out["vocab"]["value"] == (default if used is None else used)
    assert "tokens on your text" in out["compare_html"]


@pytest.mark.parametrize("k, word", [(10**6, "out of range"), (-1, "out of range"), (4.5, "not a whole number"),
                                     (float("nan"), "not a number"), (float("inf"), "out of range"),
                                     (1.8e308, "out of range"), ("abc", "not a number")])
def test_bad_merge_steps_are_clamped_with_a_notice(app_url, k, word):
    notice, chips, merge_md, curve = raw_api.call(app_url, "tokenization_replay", k, SENTENCE)
    assert word in notice and "⚠️" in notice and chip_ids(chips)


def test_lone_surrogates_get_a_notice(app_url):
    notice, chips, *_ = raw_api.call(app_url, "tokenization_replay", 3, "ab\ud800c")
    assert "not valid Unicode" in notice and chip_ids(chips)
    notice, heat, pca = raw_api.call(app_url, "tokenization_embed", "ab\udc00c")
    assert "not valid Unicode" in notice


def test_embed_endpoint(client, cm):
    notice, heat, pca = client.predict("To be, or not to be", api_name="/tokenization_embed")
    z = plot_data(heat)[0]["z"]
    assert len(z) == 1 + len(cm.tokenizer.encode("To be, or not to be")) and len(z[0]) == cm.config.dim
    kinds = plot_data(pca)[:-2]  # one trace per kind of token, then the sentence's tokens and BOS/EOS
    assert sum(len(k["x"]) for k in kinds) == cm.config.vocab_size and notice == ""
    notice, heat, pca = client.predict("", api_name="/tokenization_embed")
    assert "empty" in notice


def test_reveal_endpoints_grade_from_the_measurement(own, cm, reference):
    n = len(cm.tokenizer.encode(C.QUESTION_TEXT))  # measured here
    for choice in C.count_question():
        nums = [int(x) for x in re.findall(r"\d+", choice.split("(")[0])]
        lo, hi = (0, nums[0]) if "or fewer" in choice else (nums[0], nums[1])
        md, chips = own.predict(choice, api_name="/tokenization_reveal_count")
        assert md.startswith("✅" if lo <= n <= hi else "❌") and f"**{n} tokens**" in md and len(chip_ids(chips)) == n
    md, chips = own.predict(None, api_name="/tokenization_reveal_count")
    assert md.startswith(NO_PICK) and f"**{n} tokens**" in md
    md, chips = own.predict("a hundred", api_name="/tokenization_reveal_count")
    assert "not one of" in md and "⚠️" in md
    out = train(own)
    first = C.pair_label(reference, reference.merges[0].pair)  # an independent training of our BPE on TEXT
    for choice in [c[0] for c in out["q2"]["choices"]]:
        md = own.predict(choice, api_name="/tokenization_reveal_merge")
        assert md.startswith("✅" if choice == first else "❌") and f"**{reference.merges[0].count:,}**" in md
    assert own.predict(None, api_name="/tokenization_reveal_merge").startswith(NO_PICK)


# ----------------------------------------------------------------------------- in a browser


def open_page(page, app_url):
    from shape import open_deeper, reveal

    page.goto(app_url + "tokenization")
    page.wait_for_selector("#merge-curve .js-plotly-plot .main-svg", timeout=30_000)
    page.wait_for_selector("#replay-chips .chip", timeout=30_000)
    reveal(page, "tokenization-first-merge")  # the merge table answers it: hidden until this Reveal
    open_deeper(page)  # the comparison of five tokenizers


def test_browser_merge_slider_with_keyboard(page, app_url):
    open_page(page, app_url)
    before_chips = page.inner_text("#replay-chips")
    slider = page.locator("#merge-slider input[type=range]")
    slider.focus()
    page.keyboard.press("Home")  # k = 0: raw bytes
    page.wait_for_function("document.querySelector('#merge-info').innerText.includes('no merges yet')",
                           timeout=20_000)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#merge-info').innerText.includes('Merge 3 of')",
                           timeout=20_000)
    page.wait_for_function("document.querySelector('#replay-chips').innerText.includes('after 3 merges')",
                           timeout=20_000)
    assert page.inner_text("#replay-chips") != before_chips
    page.wait_for_function(
        "document.querySelector('#merge-curve .main-svg') && "
        "[...document.querySelectorAll('#merge-curve text')].some(t => t.textContent === 'k = 3')", timeout=20_000)
    assert slider.input_value() == "3"
    assert no_error_toast(page) and page.errors == []


def test_browser_train_on_pasted_text_and_empty_text(page, app_url):
    open_page(page, app_url)
    box = page.locator("#training-text textarea")
    box.fill("😀🎉 naïve café " * 20)
    page.get_by_role("button", name="Train the tokenizers").click()
    page.wait_for_function("document.querySelector('#comparison').innerText.includes('tokens on your text') && "
                           "document.querySelector('#replay-chips').innerText.includes('merges')", timeout=30_000)
    page.wait_for_selector(".lesson-message:has-text('stopped at')", timeout=30_000)
    box.fill("")
    page.get_by_role("button", name="Train the tokenizers").click()
    page.wait_for_selector(".lesson-message:has-text('The text is empty')", timeout=30_000)
    assert "tokens on your text" in page.inner_text("#comparison")  # the last training is kept
    assert no_error_toast(page) and page.errors == []


def test_browser_vocabulary_typed_out_of_range(page, app_url):
    open_page(page, app_url)
    box = page.locator('input[aria-label^="number input for vocabulary size"]')
    box.fill("5")
    box.press("Enter")
    page.keyboard.press("Tab")
    page.wait_for_selector(".lesson-message:has-text('is out of range')", timeout=60_000)
    page.wait_for_function(
        f"document.querySelector('input[aria-label^=\"number input for vocabulary size\"]').value == '{C.VOCAB_MIN}'",
        timeout=30_000)
    assert no_error_toast(page) and page.errors == []


def test_browser_a_link_carries_a_long_training_text_whole(browser, page, app_url):
    """A teacher's training text far longer than a query can carry (app/share.py: the fragment, compressed) travels
    whole in the "Link to this view": a fresh browser opened on the link trains on the same text, so the teacher's
    merge 5 is the students' merge 5."""
    from pathlib import Path

    corpus = (Path(C.__file__).resolve().parents[2] / "assets" / "data" / "tinyshakespeare.txt").read_text()
    text = corpus[20_000:23_000]  # 3,000 characters: twice what a query carries (share.LONG; a short training)
    link_of = "(document.querySelector('.share-link input, .share-link textarea') || {value: ''}).value"
    # the merge's own words (.prose), not Gradio's status timer ("0.3s") shown over them while an event runs
    info = "(document.querySelector('#merge-info .prose') || {textContent: ''}).textContent"
    open_page(page, app_url)
    idle(page)  # the page's load chain has written the course text's merges
    before = page.evaluate(info)  # (the link says "#text=" as soon as the box changes: the merge table tells)
    page.locator("#training-text textarea").fill(text)
    page.get_by_role("button", name="Train the tokenizers").click()
    idle(page)  # the training and its outputs (a niced child: slow beside the other test worker)
    page.wait_for_function(f"{info}.includes(' of ') && {info} !== {json.dumps(before)} && {link_of}.includes('#text=')",
                           timeout=60_000)
    page.locator("#merge-slider input[type=range]").focus()
    page.keyboard.press("Home")
    page.wait_for_function(f"{info}.includes('no merges yet')", timeout=60_000)
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    try:  # (a loaded machine: each step is the server's replay)
        page.wait_for_function(f"{info}.includes('Merge 5 of') && {link_of}.includes('merge=5')", timeout=60_000)
    except Exception as e:
        raise AssertionError(f"after Home and five ArrowRight: slider at "
                             f"{page.input_value('#merge-slider input[type=range]')}, info {page.evaluate(info)[:80]!r}, "
                             f"link ...{page.evaluate(link_of)[-80:]!r}") from e
    teachers, link = page.evaluate(info), page.evaluate(link_of)
    assert len(link) < len(text) and "text=" not in link.split("#")[0]  # compressed, never in the query

    ctx = browser.new_context(viewport={"width": 1366, "height": 900})  # a student: nothing shared with the teacher
    try:
        student = ctx.new_page()
        student.goto(link)
        t0 = time.monotonic()
        try:
            student.wait_for_function(f"{info}.includes('Merge 5 of')", timeout=90_000)
        except Exception as e:
            raise AssertionError(f"the student's page after {time.monotonic() - t0:.0f} s: text box "
                                 f"{len(student.input_value('#training-text textarea'))} characters, info "
                                 f"{student.evaluate(info)[:80]!r}") from e
        idle(student)
        assert student.input_value("#training-text textarea") == text
        assert student.evaluate(info) == teachers  # the same merge 5, the same count, the same merges before it
        assert no_error_toast(student)
    finally:
        ctx.close()
    assert no_error_toast(page) and page.errors == []
