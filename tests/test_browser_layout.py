"""Every page read on a 390 px phone and a 1366 px laptop: no sideways scrolling of the page or of a display formula, plot titles inside
their plots and clear of the plot area, the legend and Plotly's toolbar, no legend on an axis title, a short
navigation bar, each lesson's own tab title, and each page's first figure exported as a 1920 x 1080 slide with
no text under 16 px. A screenshot of each page's first plot goes
to $LAYOUT_SHOTS (default: the test's tmp dir); with LAYOUT_SHOTS set, whole pages too, for a look."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import lessons
from ui import idle

READY = [lesson for lesson in lessons.LESSONS if lesson.ready]
PAGES = [""] + [lesson.slug for lesson in READY]
TITLES = {"": "course map", **{lesson.slug: lesson.title for lesson in READY}}

MEASURE = """() => {
  const out = {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, titles: [], nav: 0,
               legends: [], overlaps: []};
  const boxes = (plot, sel) => [...plot.querySelectorAll(sel)].map(e => e.getBoundingClientRect()).filter(r => r.width);
  const into = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const box = plot.getBoundingClientRect();
    if (box.width === 0) continue;
    for (const t of plot.querySelectorAll('.gtitle, .annotation-text')) {
      const r = t.getBoundingClientRect();
      if (r.width === 0) continue;
      // cut at a side, or (the figure's own title) at the top
      if (r.left < box.left - 2 || r.right > box.right + 2 || (t.classList.contains('gtitle') && r.top < box.top - 2))
        out.titles.push([t.textContent.slice(0, 60), Math.round(r.left - box.left), Math.round(box.right - r.right)]);
    }
    const around = {plot: boxes(plot, '.nsewdrag'), legend: boxes(plot, '.legend'), toolbar: boxes(plot, '.modebar')};
    for (const t of plot.querySelectorAll('.gtitle')) {  // the figure's title clear of its plot, legend and toolbar
      const r = t.getBoundingClientRect();
      for (const [what, rects] of Object.entries(around))
        if (r.width && rects.some(b => into(r, b)))
          out.overlaps.push([t.textContent.slice(0, 60), what, (plot.closest('[id]') || plot).id]);
    }
    for (const legend of plot.querySelectorAll('.legend')) {  // a legend must not sit on an axis title
      const r = legend.getBoundingClientRect();
      for (const t of plot.querySelectorAll('[class*="xtitle"], [class*="ytitle"]'))
        if (r.width && t.getBoundingClientRect().width && meets(r, t.getBoundingClientRect()))
          out.legends.push([t.textContent.slice(0, 60), (plot.closest('[id]') || plot).id]);
    }
  }
  // every display formula fits its column (KaTeX's box would scroll sideways and cut the formula off on a phone)
  out.formulas = [...document.querySelectorAll('.katex-display')]
    .filter((e) => e.getClientRects().length && e.scrollWidth > e.clientWidth + 1)
    .map((e) => [(e.querySelector('annotation') || e).textContent.slice(0, 50), e.scrollWidth - e.clientWidth]);
  const nav = document.querySelector('.nav-holder, nav');
  if (nav) out.nav = nav.getBoundingClientRect().height;
  // every lesson is reachable from the page bar: each of its links lies inside the window, none cut off
  out.navHidden = [...document.querySelectorAll('.nav-holder nav a')].filter((a) => {
    const r = a.getBoundingClientRect();
    return r.width === 0 || r.left < 0 || r.right > window.innerWidth + 1;
  }).map((a) => a.textContent.trim());
  return out;
}"""


# The page's first figure as the PNG/SVG buttons export it (app/static/figures.js): the smallest text of the slide in
# its pixels (an SVG's font sizes are in the figure's units; the slide's width over the figure's converts them).
SLIDE_TEXT = """async () => {
  const gd = document.querySelector('.js-plotly-plot');
  const s = window.insideLlama.slide(gd, 'svg');
  const url = await window.Plotly.toImage(s.figure, s.options);
  const svg = new DOMParser().parseFromString(decodeURIComponent(url.slice(url.indexOf(',') + 1)), 'image/svg+xml');
  const root = svg.documentElement;
  const box = (root.getAttribute('viewBox') || '').split(/[ ,]+/).map(Number);
  const units = box.length === 4 && box[2] ? box[2] : Number(root.getAttribute('width'));
  const px = Number(root.getAttribute('width')) / units;
  const sizes = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim())
    .map(t => parseFloat((t.getAttribute('style') || '').match(/font-size:\\s*([\\d.]+)/)?.[1] || '0') * px)
    .filter(x => x > 0);
  return {width: Number(root.getAttribute('width')), smallest: Math.min(...sizes)};
}"""


@pytest.mark.parametrize("width", [390, 1366])
def test_every_page_fits_the_screen(browser, app_url, width, tmp_path):
    shots = Path(os.environ.get("LAYOUT_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    problems = []
    for slug in PAGES:
        page.goto(app_url + slug)
        page.locator("h1").first.wait_for(timeout=60_000)
        if slug:
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        idle(page)
        page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].every(p => "
                               "p.querySelector('.main-svg'))", timeout=60_000)
        page.wait_for_timeout(150)  # plots finish drawing; Gradio sets its own tab title while it renders
        try:  # the titles are re-wrapped to each figure's drawn width (app/static/figures.js) a moment after it draws
            page.wait_for_function(f"() => ({MEASURE})().overlaps.length === 0", timeout=5_000, polling=100)
        except PlaywrightTimeout:
            pass  # measured and reported below
        m = page.evaluate(MEASURE)
        if TITLES[slug] not in page.title():
            problems.append(f"/{slug}: tab title {page.title()!r} does not name {TITLES[slug]!r}")
        if "LAYOUT_SHOTS" in os.environ:  # the whole page too, for a look (a long page takes seconds to shoot)
            page.screenshot(path=str(shots / f"{slug or 'home'}-{width}.png"), full_page=True)
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed() if slug else None
        page.screenshot(path=str(shots / f"{slug or 'home'}-{width}-first-plot.png"))  # one screen, readable size
        if m["scroll"] > m["inner"]:
            problems.append(f"/{slug}: page {m['scroll']} px wide in a {m['inner']} px window")
        for text, left, right in m["titles"]:
            problems.append(f"/{slug}: title {text!r} outside its plot by {min(left, right)} px")
        for text, where in m["legends"]:
            problems.append(f"/{slug}: a legend covers the axis title {text!r} (#{where})")
        for tex, cut in m["formulas"]:
            problems.append(f"/{slug}: the formula {tex!r} is {cut} px wider than its column")
        for label in m["navHidden"]:
            problems.append(f"/{slug}: the page bar's {label!r} is cut off or hidden at {width} px")
        for text, what, where in m["overlaps"]:
            problems.append(f"/{slug}: the title {text!r} overlaps its {what} (#{where})")
        if slug and width == 1366:  # the export does not depend on the window: once per page
            slide = page.evaluate(SLIDE_TEXT)
            if slide["width"] != 1920 or slide["smallest"] < 16:
                problems.append(f"/{slug}: exported slide {slide['width']} px wide, smallest text "
                                f"{slide['smallest']:.1f} px")
        if m["nav"] > (140 if width > 700 else 200):  # two lines at 1366 px (89 px for one), a few on a phone
            problems.append(f"/{slug}: navigation bar {m['nav']:.0f} px high")
    ctx.close()
    assert not problems, "\n".join(problems)
