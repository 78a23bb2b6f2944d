"""Every page read on a 390 px phone and a 1366 px laptop: no sideways scrolling of the page, plot titles inside
their plots, a short navigation bar. Screenshots go to $LAYOUT_SHOTS (default: the test's tmp dir) for a look."""

import os
from pathlib import Path

import pytest

import lessons

PAGES = [""] + [lesson.slug for lesson in lessons.LESSONS if lesson.ready]

MEASURE = """() => {
  const out = {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, titles: [], nav: 0};
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const box = plot.getBoundingClientRect();
    if (box.width === 0) continue;
    for (const t of plot.querySelectorAll('.gtitle, .annotation-text')) {
      const r = t.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.left < box.left - 2 || r.right > box.right + 2)
        out.titles.push([t.textContent.slice(0, 60), Math.round(r.left - box.left), Math.round(box.right - r.right)]);
    }
  }
  const nav = document.querySelector('.nav-holder, nav');
  if (nav) out.nav = nav.getBoundingClientRect().height;
  return out;
}"""


# At 390 px Gradio's page bar still wraps to ~289 px and several Plotly titles sit outside their plots: known and
# open (issue 11, "A phone and a lost URL"). strict: the day it passes, this marker must go.
PHONE_OPEN = pytest.mark.xfail(strict=True, reason="phone layout at 390 px not fixed yet (issue 11): page bar wraps, "
                                                   "some plot titles overflow")


@pytest.mark.parametrize("width", [pytest.param(390, marks=PHONE_OPEN), 1366])
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
        page.wait_for_timeout(1500)  # plots finish drawing
        m = page.evaluate(MEASURE)
        page.screenshot(path=str(shots / f"{slug or 'home'}-{width}.png"), full_page=True)
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed() if slug else None
        page.screenshot(path=str(shots / f"{slug or 'home'}-{width}-first-plot.png"))  # one screen, readable size
        if m["scroll"] > m["inner"]:
            problems.append(f"/{slug}: page {m['scroll']} px wide in a {m['inner']} px window")
        for text, left, right in m["titles"]:
            problems.append(f"/{slug}: title {text!r} outside its plot by {min(left, right)} px")
        if m["nav"] > 100:  # one line of Gradio's page bar with its padding measures 89 px
            problems.append(f"/{slug}: navigation bar {m['nav']:.0f} px high")
    ctx.close()
    assert not problems, "\n".join(problems)
