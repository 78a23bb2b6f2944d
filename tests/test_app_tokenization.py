"""The tokenization page served for real: each event through gradio_client, and a browser moving the
merge slider with the keyboard."""

import html
import json
import re

import pytest

from lessons.tokenization import compute as C
from llama.tokenizer import BPETokenizer

SUB_ID = re.compile(r"<sub[^>]*>(\d+)</sub>")
TEXT = "the cat sat on the mat. the hat is on the cat, and that is that.\n" * 30
SENTENCE = "that cat, the hat"


def chip_ids(chips: str) -> list[int]:
    return [int(i) for i in SUB_ID.findall(chips)]


def plot_data(value) -> list[dict]:
    """gr.Plot's value as gradio_client returns it: {'type': 'plotly', 'plot': '<figure JSON>'}."""
    return json.loads(value["plot"])["data"]


def train(client, text=TEXT, vocab=300, sentence=SENTENCE):
    keys = ("msg", "slider", "chips", "merge_md", "curve", "replay_msg", "compare_html", "compare_fig", "q2", "q2_out",
            "text")
    return dict(zip(keys, client.predict(text, vocab, sentence, api_name="/tokenization_train")))


@pytest.fixture(scope="module")
def reference():
    return BPETokenizer.train(TEXT, 300)


def test_train_endpoint(client, reference):
    out = train(client)
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


def test_replay_endpoint_uses_the_learners_tokenizer(client, reference):
    train(client)
    chips, merge_md, curve, notice = client.predict(0, SENTENCE, api_name="/tokenization_replay")
    assert chip_ids(chips) == [3 + b for b in SENTENCE.encode("utf-8")] and "no merges yet" in merge_md
    chips, merge_md, curve, notice = client.predict(5, SENTENCE, api_name="/tokenization_replay")
    assert chip_ids(chips) == reference.encode_as_of(SENTENCE, 5)
    m = reference.merges[4]
    assert f"Merge 5 of {len(reference.merges)}" in merge_md and f"**{m.count:,}**" in merge_md
    marker = plot_data(curve)[1]
    assert marker["x"] == [259 + 5] and notice == ""


def test_train_endpoint_bad_input(client):
    out = train(client, text="   ")
    assert "empty" in out["msg"] and "empty" in out["compare_html"]
    assert "Train a tokenizer first" in out["chips"]
    chips, merge_md, curve, notice = client.predict(0, SENTENCE, api_name="/tokenization_replay")
    assert "Train a tokenizer first" in notice  # the failed training left no tokenizer behind
    out = train(client, text="😀🎉😀 🎉😀", vocab=1000, sentence="😀")
    assert "stopped at" in out["msg"] and len(plot_data(out["compare_fig"])[0]["y"]) == 5
    out = train(client, text="x" * (C.MAX_TEXT_CHARS + 10), vocab=400)
    assert "100,000" in out["msg"] and out["text"] == "x" * C.MAX_TEXT_CHARS  # the box shows what was trained


def test_embed_endpoint(client, cm):
    heat, pca, notice = client.predict("To be, or not to be", api_name="/tokenization_embed")
    z = plot_data(heat)[0]["z"]
    assert len(z) == 1 + len(cm.tokenizer.encode("To be, or not to be")) and len(z[0]) == cm.config.dim
    assert len(plot_data(pca)[0]["x"]) == cm.config.vocab_size and notice == ""
    heat, pca, notice = client.predict("", api_name="/tokenization_embed")
    assert "empty" in notice


def test_reveal_endpoints(client, cm, reference):
    n = len(cm.tokenizer.encode(C.QUESTION_TEXT))
    right = C.count_question()[C._bucket(n, C.QUESTION_TEXT)]
    md, chips = client.predict(right, api_name="/tokenization_reveal_count")
    assert md.startswith("✅") and f"**{n} tokens**" in md and len(chip_ids(chips)) == n
    train(client)
    answer = C.pair_label(reference, reference.merges[0].pair)
    md = client.predict(answer, api_name="/tokenization_reveal_merge")
    assert md.startswith("✅") and f"**{reference.merges[0].count:,}**" in md


# ----------------------------------------------------------------------------- in a browser


def no_error_toast(page) -> bool:
    return page.locator(".toast-body").filter(has_text="Error").count() == 0


def open_page(page, app_url):
    page.goto(app_url + "tokenization")
    page.wait_for_selector("#merge-curve .js-plotly-plot .main-svg", timeout=30_000)
    page.wait_for_selector("#replay-chips .chip", timeout=30_000)


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
    assert "The text is empty" in page.inner_text("#comparison")
    assert no_error_toast(page) and page.errors == []
