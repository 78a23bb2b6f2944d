"""Issue 21, "less at once" and "questions that teach", on the SwiGLU, assembled, sampling, KV-cache, GQA and
training pages, in a real browser (tests/shape_b.py measures):

- the core path: at most about 1,200 visible words of prose and at most four figures before the first "Go deeper"
  section, which exists and is closed; the first figure's top within the first screen at 1366x768;
- every question's answer (`widgets.until_reveal`) is hidden before its Reveal button is pressed and shown after.

The Reveal buttons are pressed with the server's queue held: what shows the answer is the page's own script
(app/static/course.js), and holding the queue keeps the measurements the reveals would start (timings, pooled
models, generations) off the shared CPU.
"""

from shape_b import open_page, questions, reveal, shape

PAGES = ["swiglu", "assembled", "sampling", "kv_cache", "gqa", "training"]
MAX_WORDS, MAX_FIGURES, SCREEN = 1200, 4, 768


def test_core_path_and_hidden_answers(browser, app_url):
    """Each page is loaded once at 1366x768, measured, measured again at 390 px wide (the window resized: the counts
    do not depend on the plots' sizes), then its questions are revealed one by one."""
    page = browser.new_context(viewport={"width": 1366, "height": SCREEN}).new_page()
    problems, seen = [], {}
    for slug in PAGES:
        open_page(page, app_url + slug)
        for width, height in ((1366, SCREEN), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(400)
            m = shape(page)
            seen[f"{slug}@{width}"] = m
            if not m["deeper"]:
                problems.append(f"/{slug}: no Go deeper section")
            if m["words"] > MAX_WORDS:
                problems.append(f"/{slug} at {width} px: {m['words']} words before the first Go deeper")
            if m["figures"] > MAX_FIGURES:
                problems.append(f"/{slug} at {width} px: {m['figures']} figures before the first Go deeper")
            if width == 1366 and (m["first_y"] is None or m["first_y"] > SCREEN):
                problems.append(f"/{slug}: first figure at y = {m['first_y']} (the first screen ends at {SCREEN})")
        page.set_viewport_size({"width": 1366, "height": SCREEN})
        if page.locator(".go-deeper .label-wrap.open").count():
            problems.append(f"/{slug}: a Go deeper section is open by default")
        qs = questions(page)
        if not qs:
            problems.append(f"/{slug}: no questions")
        held = []  # the reveals' server events wait here, unanswered: the page's own script must show the answers
        page.route("**/queue/join**", lambda route: held.append(route))
        for q in qs:
            cid = q["cid"]
            now = {x["cid"]: x for x in questions(page)}[cid]
            if now["n"] == 0:
                problems.append(f"/{slug}: question {cid} hides nothing until it is answered")
                continue
            if now["shown"]:
                problems.append(f"/{slug}: the answer to {cid} is on screen before its Reveal")
            reveal(page, cid)
            after = {x["cid"]: x for x in questions(page)}[cid]
            if after["shown"] != after["n"]:
                problems.append(f"/{slug}: the answer to {cid} is still hidden after its Reveal")
        page.unroute("**/queue/join**")
    page.context.close()
    print({s: (m["words"], m["total_words"], m["figures"], round(m["first_y"] or -1)) for s, m in seen.items()})
    assert not problems, "\n".join(problems)
