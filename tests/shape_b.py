"""Measuring a lesson page's core path in a real browser (issue 21, "less at once"): the visible words of prose and
the figures before the first "Go deeper" accordion, and where the first figure sits; and whether each question's
answer (`widgets.until_reveal`) stays hidden until its Reveal button is pressed.

Words are counted in the text nodes of visible Markdown (`.prose`) after the page's header (the nav, the title,
the "you are here" map and the opener row with the link box) and before the first `.go-deeper` accordion; KaTeX's
hidden MathML copy of each formula is not counted twice, nor a figure's export buttons and Code panel. Figures are visible `.js-plotly-plot` elements in the
same stretch. Used by tests/test_course_shape_b.py.
"""

from __future__ import annotations

from ui import idle

SHAPE = """() => {
  const before = (a, b) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const top = document.querySelector('.lesson-top');
  const deeper = document.querySelector('.go-deeper');
  const inCore = (el) => (!top || (before(top, el) && !top.contains(el))) && (!deeper || before(el, deeper));
  let words = 0, total = 0;
  const seen = new Set();
  for (const md of document.querySelectorAll('.prose')) {
    if (!shown(md) || [...seen].some((s) => s.contains(md))) continue;
    const core = inCore(md), afterTop = !top || (before(top, md) && !top.contains(md));
    if (!afterTop || md.closest('.check-yourself, .figure-extras')) continue;
    seen.add(md);
    const walk = document.createTreeWalker(md, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      const p = n.parentElement;
      if (!p || p.closest('.katex-mathml, script, style') || !shown(p)) continue;
      const k = n.textContent.split(/\\s+/).filter((w) => /[\\p{L}\\p{N}]/u.test(w)).length;
      total += k;
      if (core) words += k;
    }
  }
  const figures = [...document.querySelectorAll('.js-plotly-plot')].filter((p) => {
    const r = p.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && inCore(p);
  });
  const first = [...document.querySelectorAll('.js-plotly-plot')].find((p) => p.getBoundingClientRect().width > 0);
  return {words, total_words: total, figures: figures.length, first_y: first ? first.getBoundingClientRect().top + window.scrollY : null,
          deeper: !!deeper};
}"""

QUESTIONS = """() => [...document.querySelectorAll('.predict-question[id^="question-"]')].map((q) => {
  const cid = q.id.replace(/^question-/, '');
  const hidden = [...document.querySelectorAll('.until-' + cid)];
  return {cid, n: hidden.length, shown: hidden.filter((el) => el.getClientRects().length > 0).length};
})"""

# the Reveal button of question `cid`: the first .reveal-button after its question in the page
CLICK_REVEAL = """(cid) => {
  const q = document.getElementById('question-' + cid);
  const b = [...document.querySelectorAll('.reveal-button')].find(
      (el) => q.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING);
  b.click();
}"""


def open_page(page, url: str) -> None:
    """Load a lesson page and wait until its figures are drawn and the queue is idle."""
    page.goto(url)
    page.locator("h1").first.wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for(state="attached", timeout=60_000)
    idle(page)
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].every(p => "
                           "p.querySelector('.main-svg'))", timeout=60_000)
    page.wait_for_timeout(300)


def shape(page) -> dict:
    """{'words' (before the first Go deeper), 'total_words' (every visible word after the header), 'figures',
    'first_y', 'deeper'} of the page as it stands (scrolled to the top)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    return page.evaluate(SHAPE)


def questions(page) -> list[dict]:
    """One {'cid', 'n' (answer columns), 'shown' (of them visible)} per question on the page."""
    return page.evaluate(QUESTIONS)


def reveal(page, cid: str) -> None:
    page.evaluate(CLICK_REVEAL, cid)
    page.wait_for_timeout(200)
