"""Every lesson page with stories260K picked on the course map, in a real browser (tests/picker.py says what each
page must show and give): the pages at even places in the course here, the others in
test_app_picker_every_action_b.py (two files: each runs whole in one test process, `make test`'s --dist loadfile)."""

import pytest

from picker import PAGES, every_control_works
from ui import idle, no_errors, pick, wait_text


@pytest.mark.parametrize("slug", PAGES[0::2])
def test_every_control_works_on_the_picked_model(picked_page, app_url, slug):
    every_control_works(picked_page, app_url, slug)


def test_refresh_gives_every_model_dependent_output_for_stories260k(stories_cm):
    """The pages' refresh(cm), which widgets.on_model sends on page load (and bench/gpu_check runs on CUDA)."""
    from app.pages import attention, tokenization
    from lessons.attention import compute as A

    out = attention.refresh(stories_cm)
    assert len(out) == 17  # msg, analyzed, text, facts, 4 sliders, 7 figures, summary, the scaling answer
    assert out[16] == "" and "L4" in str(out[15].to_plotly_json())
    layer, head, query, scale = out[4:8]
    assert (layer["maximum"], head["maximum"], layer["value"]) == (4, 7, 0) and "head // 2" in head["label"]
    assert query["maximum"] == A.trace_text(stories_cm, A.DEFAULT_TEXT).n_tokens - 1
    assert scale["maximum"] == A.scale_max(8) and "2.83 = √d" in scale["label"]
    assert "Layer 0: all 8 heads" in out[11].layout.title.text

    out = tokenization.refresh(stories_cm)
    assert len(out) == 23  # _train_values (13) and _model_values (10)
    assert out[2]["value"] == 512 and "not our BPE" in out[13] and "All 512 token embeddings" in \
        out[17].layout.title.text


def _open_picked(page, url: str) -> None:
    """Open a page with stories260K picked and wait until the link box has been written (the end of the page's load
    chain: refresh for the model, the link's values, its runs)."""
    page.goto(url)
    page.wait_for_function("() => location.search.includes('model=stories260K')", timeout=120_000)
    idle(page)


def test_a_link_is_checked_against_the_picked_models_choices_and_only_a_link_gives_a_notice(page, app_url):
    """stories260K has 8 heads (the course model 6): on the RoPE page a link's head 7 is taken as it is, a head 9 is
    refused with the picked model's range; opening the page without a link says nothing about one, although the page
    has written the head it opens on (the one RoPE changes most) into the address bar."""
    pick(page, app_url)
    _open_picked(page, app_url + "rope")
    assert "From the link" not in page.locator("body").inner_text()
    _open_picked(page, app_url + "rope?compare_head=7&head=7&layer=4")
    assert "compare_head=7" in page.url and "head=7" in page.url and "layer=4" in page.url
    assert "From the link" not in page.locator("body").inner_text()
    _open_picked(page, app_url + "rope?compare_head=9")
    wait_text(page, ".lesson-message", "From the link")
    said = page.locator(".lesson-message").filter(has_text="From the link").first.inner_text()
    assert "'9' is not one of 0, 1, 2, 3, 4, 5, 6, 7" in said
    no_errors(page)
