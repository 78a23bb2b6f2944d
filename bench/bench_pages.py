"""Page weight and speed as a learner's Chromium sees them: bytes over the wire on a first visit (empty cache) and on
a repeat visit (warm cache), and the time from navigation to the first figure drawn, for every page; then the
app's cold start.

    python bench/bench_pages.py                  # starts the app itself (python -m app.main) on a free port
    python bench/bench_pages.py --url http://127.0.0.1:7860/ --pages attention tokenization

Targets (issue 24): repeat visit under 150 kB per page, first visit under 1.2 MB, first figure within 1.5 s of
navigation with the cache warm, responses compressed where the browser accepts it (never the event streams).
Bytes are what the network carried (Chromium's encodedDataLength: headers and compressed bodies), summed over
every request the page made until it settled. The first figure's time is the page's own clock (performance.now()
when the first figure is drawn and shown, from the start of the navigation).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.latency import serving  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPEAT_KB, FIRST_KB, FIGURE_S = 150, 1200, 1.5
FIGURE = ".js-plotly-plot .main-svg"
# The page's own clock: milliseconds from the start of its navigation to the first figure drawn and shown, as the
# learner sees it (a wall clock around Playwright's calls adds its round trips: 0.5 s and more on a busy machine).
FIRST_FIGURE = """
new MutationObserver((_, observer) => {
  const shown = [...document.querySelectorAll('%s')].some(s => s.getBoundingClientRect().width > 0);
  if (shown) { window.__firstFigure = performance.now(); observer.disconnect(); }
}).observe(document, {subtree: true, childList: true});
""" % FIGURE


def visit(page, cdp, url: str, settle_s: float = 1.5) -> tuple[int, float | None, dict]:
    """Navigate to url; (bytes carried, seconds from navigation to the first figure drawn or None, bytes per
    content type). Waits until no request has finished for settle_s."""
    sizes, kinds, last = {}, {}, [time.time()]

    def on_response(e):
        kinds[e["requestId"]] = e["response"].get("mimeType", "?")

    def on_finished(e):
        sizes[e["requestId"]] = e["encodedDataLength"]
        last[0] = time.time()

    cdp.on("Network.responseReceived", on_response)
    cdp.on("Network.loadingFinished", on_finished)
    page.goto(url, wait_until="commit")
    figure_s = None
    try:
        page.wait_for_selector(FIGURE, state="visible", timeout=30_000)
        page.wait_for_function("() => window.__firstFigure !== undefined", timeout=5_000)
        figure_s = page.evaluate("() => window.__firstFigure") / 1e3
    except Exception:  # a page without figures at the top (the course map)
        pass
    while time.time() - last[0] < settle_s:
        time.sleep(0.2)
    cdp.remove_listener("Network.responseReceived", on_response)
    cdp.remove_listener("Network.loadingFinished", on_finished)
    by_kind = {}
    for rid, n in sizes.items():
        k = kinds.get(rid, "?")
        by_kind[k] = by_kind.get(k, 0) + n
    return sum(sizes.values()), figure_s, by_kind


def plotly_packed(url: str, timeout_s: float = 180) -> str:
    """Wait until the app serves Plotly's chunk packed (app.startup.PackedAssets packs it at start-up, in the
    background; until then Gradio serves its own, full bundle); its name."""
    import urllib.request

    from gradio.route_utils import BUILD_PATH_LIB

    from app.startup import PackedAssets

    name = sorted(Path(BUILD_PATH_LIB).glob(PackedAssets.EAGER[0]))[0].name
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        req = urllib.request.Request(url + "assets/" + name, headers={"Accept-Encoding": "br"})
        with urllib.request.urlopen(req) as r:
            if r.headers.get("Content-Encoding") == "br":
                return name
        time.sleep(1)
    raise SystemExit(f"{name} was not packed within {timeout_s:.0f} s")


def bench(url: str, slugs: list[str]) -> list[tuple]:
    from playwright.sync_api import sync_playwright

    plotly_packed(url)
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for slug in slugs:
            ctx = browser.new_context(viewport={"width": 1366, "height": 768})  # an empty cache per page
            ctx.add_init_script(FIRST_FIGURE)
            page = ctx.new_page()
            cdp = ctx.new_cdp_session(page)
            cdp.send("Network.enable")
            first, fig_first, kinds = visit(page, cdp, url + slug)
            if fig_first is not None:  # the Plotly the page runs: the cartesian bundle app.startup serves
                kinds["Plotly " + page.evaluate("() => window.Plotly ? window.Plotly.version : '?'")] = 0
            page.goto("about:blank")
            repeat, fig_repeat, _ = visit(page, cdp, url + slug)
            rows.append((slug or "/", first, repeat, fig_first, fig_repeat, kinds))
            ctx.close()
        browser.close()
    return rows


def cold_start() -> tuple[float, str]:
    """Seconds from `python -m app.main` to the first page served, and the app's own start-up line by phase."""
    log = Path("/tmp") / f"bench_pages_{int(time.time())}.log"
    t0 = time.time()
    with open(log, "w") as f, serving(log=f) as (url, _):
        took = time.time() - t0
    phases = next((line for line in log.read_text().splitlines() if "start-up" in line), "")
    return took, phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running app (default: start one)")
    ap.add_argument("--pages", nargs="*", help="page slugs (default: the course map and every ready lesson)")
    ap.add_argument("--no-cold-start", action="store_true")
    args = ap.parse_args()
    import lessons

    slugs = args.pages if args.pages else [""] + [lesson.slug for lesson in lessons.LESSONS if lesson.ready]
    if args.url:
        rows = bench(args.url.rstrip("/") + "/", slugs)
    else:
        with serving() as (url, _):
            rows = bench(url, slugs)
    print(f"{'page':<14} {'first visit':>12} {'repeat':>10} {'figure (1st)':>13} {'figure (warm)':>14}   largest kinds (first)")
    worst = [0, 0, 0.0]
    for slug, first, repeat, f1, f2, kinds in rows:
        top = ", ".join(f"{re.sub('^(application|text)/', '', k)} {v / 1e3:.0f}"
                        for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:3])
        top += "".join(f", {k}" for k in kinds if k.startswith("Plotly "))
        fmt = lambda s: f"{s:.2f} s" if s is not None else "-"  # noqa: E731
        print(f"{slug:<14} {first / 1e3:>9.0f} kB {repeat / 1e3:>7.0f} kB {fmt(f1):>13} {fmt(f2):>14}   {top}")
        worst = [max(worst[0], first), max(worst[1], repeat), max(worst[2], f2 or 0.0)]
    print(f"worst: first visit {worst[0] / 1e3:.0f} kB (target < {FIRST_KB}), repeat {worst[1] / 1e3:.0f} kB "
          f"(target < {REPEAT_KB}), first figure with a warm cache {worst[2]:.2f} s (target < {FIGURE_S})")
    if not args.no_cold_start:
        took, phases = cold_start()
        print(f"cold start: {took:.1f} s to the first page served (target < 8 s on a quiet machine)")
        if phases:
            print(phases)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else "?"
    print(f"load average while measuring: {' '.join(load)}")


if __name__ == "__main__":
    main()
