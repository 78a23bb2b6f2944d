"""The tokenization and attention pages on the model picked on the course map (stories260K: 5 layers, 8 heads of
size 8, 4 KV heads, a Hugging Face sentencepiece-style tokenizer of 512 tokens), in a real browser."""

import pytest

from conftest import STORIES
from llama.tokenizer.interface import load_tokenizer

ERROR_TOAST = ".toast-body.error, .toast-wrap .error"


@pytest.fixture()
def stories_page(page, app_url):
    """A browser context in which the learner picked stories260K on the course map."""
    page.goto(app_url)
    page.locator("#model-picker input").click()
    page.get_by_role("option", name="stories260K").click()
    page.wait_for_function("document.querySelector('#model-summary').textContent.includes('5 layers')",
                           timeout=120_000)
    return page


def wait_text(page, selector: str, text: str, timeout: int = 120_000) -> None:
    page.wait_for_function(f"(document.querySelector({selector!r}) || {{textContent: ''}}).textContent"
                           f".includes({text!r})", timeout=timeout)


def test_attention_page_on_stories260k(stories_page, app_url):
    page = stories_page
    page.goto(app_url + "attention")
    wait_text(page, "#attention-grid", "head 7 · KV 3")  # 8 query heads, 4 KV heads: refilled for the model
    layer_max = page.locator('input[aria-label^="number input for Layer"]').get_attribute("max")
    assert layer_max == "4" and page.get_by_text("Layer (0 to 4)").count() == 1
    assert page.get_by_text("5 layers, each with 8 query heads of size d = 8", exact=False).count() == 1
    assert "√d = 2.83" in page.locator("#attention-steps .gtitle").text_content()
    assert page.get_by_label("layer 4").count() == 1 and page.get_by_label("layer 5").count() == 0  # the question

    # Analyze a text: stories260K's tokenizer cuts it (query slider), then the previous-token reveal draws the
    # summary of every head with 5 layers.
    text = "Once upon a time there was a little girl."
    n = len(load_tokenizer(STORIES).encode(text))  # BOS + n tokens: the last query is n
    page.locator("#attention-text textarea").fill(text)
    page.get_by_role("button", name="Analyze").click()
    page.wait_for_function(
        f"document.querySelector('input[aria-label^=\"number input for Query position\"]').max == '{n}'",
        timeout=60_000)
    page.get_by_role("button", name="Reveal").first.click()
    wait_text(page, "#attention-answer-previous", "puts the most weight on the previous token")
    wait_text(page, "#attention-summary", "L4")
    assert page.locator("#attention-summary").text_content().count("L5") == 0
    assert page.locator(ERROR_TOAST).count() == 0 and page.errors == []


def test_tokenization_page_on_stories260k(stories_page, app_url):
    page = stories_page
    page.goto(app_url + "tokenization")
    wait_text(page, "#model-tokenizer-facts", "not our BPE")
    facts = page.locator("#model-tokenizer-facts").text_content()
    assert "512 tokens" in facts and "no merge list or split regex" in facts
    assert "512 × 64" in page.locator("body").text_content()  # the embedding table's facts
    wait_text(page, "#embedding-heatmap", "× 64 dimensions")
    wait_text(page, "#embedding-map", "All 512 token embeddings")
    assert page.locator('input[aria-label^="number input for vocabulary size"]').input_value() == "512"

    # The count question, answered by stories260K's tokenizer: 18 tokens, and its chips.
    page.get_by_role("button", name="Reveal").first.click()
    wait_text(page, "#reveal-count", "18 tokens")
    assert "no split regex" in page.locator("#reveal-count").text_content()
    assert page.locator(ERROR_TOAST).count() == 0 and page.errors == []


def test_refresh_gives_every_model_dependent_output_for_stories260k(stories_cm):
    """The pages' refresh(cm), which widgets.on_model sends on page load (and bench/gpu_check runs on CUDA)."""
    from app.pages import attention, tokenization
    from lessons.attention import compute as A

    out = attention.refresh(stories_cm)
    assert len(out) == 19  # msg, analyzed, text, facts, 4 sliders, question, 7 figures, 2 answers, summary
    layer, head, query, scale = out[4:8]
    assert (layer["maximum"], head["maximum"], layer["value"]) == (4, 7, 0) and "head // 2" in head["label"]
    assert query["maximum"] == A.trace_text(stories_cm, A.DEFAULT_TEXT).n_tokens - 1
    assert scale["maximum"] == A.scale_max(8) and "2.83 = √d" in scale["label"]
    assert out[8]["choices"] == [(f"layer {l}", f"layer {l}") for l in range(5)] or \
        out[8]["choices"] == [f"layer {l}" for l in range(5)]
    assert "Layer 0: all 8 heads" in out[12].layout.title.text

    out = tokenization.refresh(stories_cm)
    assert len(out) == 21  # _train_values (13) and _model_values (8)
    assert out[2]["value"] == 512 and "not our BPE" in out[13] and "All 512 token embeddings" in \
        out[17].layout.title.text
