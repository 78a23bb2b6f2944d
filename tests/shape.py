"""The course shape of one page, measured in a browser (issue 21, "less at once"): how much a learner meets before
the first "Go deeper" section, where the first figure sits, and whether each question's answer stays hidden until
its Reveal. Shared by tests/test_course_shape.py and tests/test_course_shape_b.py (one page slug per case):

    s = measure(page)            # after opening the page and waiting for its figures
    assert s["words"] <= WORDS and s["figures"] <= FIGURES and s["first_figure_y"] <= 768

What counts:
- words: the words of visible prose (Gradio Markdown, `.prose`) before the first Go deeper accordion in document
  order, the page's header (nav links, title, "you are here" map, opener) excluded; text inside a closed
  accordion or a hidden column (until_reveal) is not visible and not counted, nor are a figure's export buttons
  and Code panel (.figure-extras);
- figures: visible Plotly figures (`.js-plotly-plot` with a size) before that accordion;
- first_figure_y: the top of the first visible figure, in CSS pixels from the top of the page (scrolled to 0).
"""

from __future__ import annotations

WORDS = 1200  # the core path's budget of visible words (issue 21)
FIGURES = 4  # and of figures before the first Go deeper

MEASURE = """() => {
  window.scrollTo(0, 0);
  const deeper = document.querySelector('.go-deeper');
  const before = (el) => !deeper || (deeper.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_PRECEDING);
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const skip = '.lesson-nav, .you-are-here, .lesson-opener, .figure-extras, .check-yourself, .share-link';
  let words = 0;
  for (const p of document.querySelectorAll('.prose')) {
    if (!before(p) || !shown(p) || p.closest(skip) || p.querySelector('h1')) continue;
    if (p.parentElement.closest('.prose')) continue;  // nested: counted with its parent
    const walk = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
    let text = '';
    while (walk.nextNode()) {
      const n = walk.currentNode;
      if (n.parentElement && shown(n.parentElement) && !n.parentElement.closest('.katex-mathml')) text += ' ' + n.textContent;
    }
    words += text.split(/\\s+/).filter((w) => /[A-Za-z0-9]/.test(w)).length;
  }
  const figs = [...document.querySelectorAll('.js-plotly-plot')].filter((f) => shown(f) && f.getBoundingClientRect().width > 0);
  const first = figs.length ? figs[0].getBoundingClientRect().top + window.scrollY : null;
  return {words, figures: figs.filter(before).length, first_figure_y: first, deeper: !!deeper};
}"""

# Every question of the page (widgets.predict_reveal): its id, whether it has an answering column
# (widgets.until_reveal), and whether that column is visible now.
QUESTIONS = """() => [...document.querySelectorAll('[id^="question-"].predict-question')].map((q) => {
  const id = q.id.replace(/^question-/, '');
  const cols = [...document.querySelectorAll('.until-' + id)];
  return {id, columns: cols.length, visible: cols.some((c) => c.getClientRects().length > 0)};
})"""


def open_page(page, app_url: str, slug: str, width: int = 1366, height: int = 768) -> None:
    """Open /slug at width x height and wait until its figures are drawn and no event runs."""
    from ui import idle

    page.set_viewport_size({"width": width, "height": height})
    page.goto(app_url + slug)
    page.locator("h1").first.wait_for(timeout=60_000)
    page.locator(".check-yourself .check-list").first.wait_for(state="attached", timeout=60_000)
    idle(page)
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].every(p => "
                           "p.querySelector('.main-svg'))", timeout=60_000)
    page.wait_for_timeout(300)  # fonts and KaTeX settle


def measure(page) -> dict:
    """{'words', 'figures', 'first_figure_y', 'deeper'} of the open page (see the module docstring)."""
    return page.evaluate(MEASURE)


def questions(page) -> list[dict]:
    """[{'id', 'columns', 'visible'}] for every question on the open page."""
    return page.evaluate(QUESTIONS)


def reveal(page, qid: str) -> None:
    """Press the Reveal button of question `qid` (the first reveal button after its question) and wait."""
    from ui import idle

    page.evaluate("""(id) => {
      const q = document.getElementById('question-' + id);
      const b = [...document.querySelectorAll('.reveal-button')].find(
        (e) => q.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING);
      (b.tagName === 'BUTTON' ? b : b.querySelector('button')).click();
    }""", qid)
    idle(page)
    page.wait_for_timeout(200)


def open_deeper(page) -> None:
    """Open every closed Go deeper section of the page (Gradio renders a closed one's contents only when opened)."""
    for acc in page.locator(".go-deeper").all():
        if acc.locator(".label-wrap.open").count() == 0:
            acc.locator(".label-wrap").first.click()
    page.wait_for_timeout(500)
