"""The course shape of issue 21 on the pages of lessons 1 to 6, 9, 13 and 15 (next_token, tokenization, attention,
rope, relative, rmsnorm, meta_code, efficient_attention, scale), in a browser at 1366x768 and 390 px: at most WORDS words of visible prose and
FIGURES figures before the first "Go deeper" section, the first figure on the first screen at 1366x768, and every
question's answering column (widgets.until_reveal) hidden until its Reveal. The measuring is in tests/shape.py;
tests/test_course_shape_b.py holds the other pages' cases.

Also: an old link to /attention that carries a parameter of the part that moved to /efficient_attention is
forwarded there with its whole query."""

import pytest

from shape import FIGURES, WORDS, measure, open_deeper, open_page, questions, reveal
from ui import recording_errors

PAGES = ["next_token", "tokenization", "attention", "rope", "rmsnorm", "efficient_attention", "relative", "meta_code",
         "scale"]
LAPTOP = (1366, 768)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def tab(browser):
    ctx = browser.new_context(viewport={"width": LAPTOP[0], "height": LAPTOP[1]})
    yield recording_errors(ctx.new_page())
    ctx.close()


@pytest.mark.parametrize("slug", PAGES)
def test_core_path_fits_and_answers_stay_hidden_until_reveal(tab, app_url, slug):
    open_page(tab, app_url, slug, *LAPTOP)
    s = measure(tab)
    print(f"/{slug} at 1366x768: {s}")
    assert s["deeper"], f"/{slug} has no Go deeper section"
    assert s["words"] <= WORDS, f"/{slug}: {s['words']} words of prose before the first Go deeper"
    assert 1 <= s["figures"] <= FIGURES, f"/{slug}: {s['figures']} figures before the first Go deeper"
    assert s["first_figure_y"] is not None and s["first_figure_y"] <= LAPTOP[1], \
        f"/{slug}: the first figure starts at y = {s['first_figure_y']:.0f}, below the first screen"
    # Questions inside a Go deeper section count too: open every section (Gradio renders a closed one lazily).
    open_deeper(tab)
    qs = questions(tab)
    assert qs, f"/{slug} asks no question"
    for q in qs:
        assert q["columns"] >= 1, f"/{slug}: question {q['id']} has no answering column (widgets.until_reveal)"
        assert not q["visible"], f"/{slug}: the answer to {q['id']} is on screen before its Reveal"
    for q in qs:
        reveal(tab, q["id"])
        now = {x["id"]: x for x in questions(tab)}
        assert now[q["id"]]["visible"], f"/{slug}: Reveal of {q['id']} did not show its answer"
    assert tab.errors == []


@pytest.mark.parametrize("slug", PAGES)
def test_core_path_on_a_phone(tab, app_url, slug):
    open_page(tab, app_url, slug, *PHONE)
    s = measure(tab)
    print(f"/{slug} at 390 px: {s}")
    assert s["words"] <= WORDS and 1 <= s["figures"] <= FIGURES
    assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE[0]  # no sideways scrolling
    tab.set_viewport_size({"width": LAPTOP[0], "height": LAPTOP[1]})


def test_old_attention_links_to_the_moved_part_are_forwarded(tab, app_url):
    """/attention?block=3&... (the online softmax moved to /efficient_attention): the page forwards the whole query
    there, and that page reads it."""
    tab.goto(app_url + "attention?text=To%20be%20or%20not&block=3&layer=1")
    tab.wait_for_url("**/efficient_attention?*", timeout=60_000)
    assert "block=3" in tab.url and "layer=1" in tab.url
    tab.wait_for_function("() => { const e = document.querySelector('#attention-online');"
                          " return e && e.textContent.includes('of at most 3'); }", timeout=60_000)
    # a link without a moved parameter stays on /attention
    tab.goto(app_url + "attention?layer=1")
    tab.locator("#attention-heatmap .main-svg").first.wait_for(timeout=60_000)
    tab.wait_for_timeout(500)
    assert "/attention?" in tab.url
