"""Controls that do what the hand does. The training lab's Stop, as a learner presses it: at any moment of a run (queued, preparing, training, after the
end), the run ends within a second, says where it stopped, keeps its curve, shows no red "Error" anywhere, and
Train pressed right after runs again. Twenty runs in one page: every other Stop at a random moment after Train, the
others at a random moment after the first curve arrived (so they land inside the training whatever the load)."""

import json
import random
import time

from ui import idle, no_errors, svg_text, text_of, wait_svg

RUNS = 20
STARTED = """() => !!document.querySelector('.pending')
  || document.querySelector('#training-status').textContent.includes('Preparing')"""
ENDED = """() => {
  const s = document.querySelector('#training-status');
  const t = s ? s.textContent : '';
  return (t.includes('Stopped') || t.includes('Done')) && !document.querySelector('.pending');
}"""
# Gradio's status tracker writes "Error" over an output whose event failed; a toast says it too.
# The page's own clock, from the Stop click to the moment ENDED holds (the status says the run ended and no event
# runs): what the learner sees. A wall clock around Playwright's calls adds its round trips, hundreds of ms on a
# loaded machine, and misses the click's own wait.
STOP_CLOCK = """
window.__stop = {};
const ended = %s;
// A run is on while an event is pending or the status says neither Stopped nor Done (a Stop pressed at once after
// Train can come while the last run's "Stopped ..." is still shown: its end is the new run's).
const running = () => !!document.querySelector('.pending') || !ended();
document.addEventListener('click', e => {
  if (e.target.closest && e.target.closest('.stop-button'))
    window.__stop = {click: performance.now(), running: running()};
}, true);
new MutationObserver(() => {
  const s = window.__stop;
  if (!s.click || s.ended) return;
  if (running()) s.running = true;
  else if (s.running) s.ended = performance.now();
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
""" % ENDED
ERROR_BADGES = """() => [...document.querySelectorAll('.error, .toast-body')]
  .filter(e => e.textContent.includes('Error')).length"""


def test_stop_ends_every_run_within_a_second_and_train_runs_again(page, app_url):
    rng = random.Random(24)
    page.add_init_script(STOP_CLOCK)
    page.goto(app_url + "training")
    page.locator("#training-curve .main-svg").first.wait_for(timeout=60_000)
    box = page.get_by_label("number input for time budget (seconds)")
    box.fill("10")  # every run is stopped long before its budget: wall time is the Stops', not the budget's
    box.press("Enter")
    train, stop = page.get_by_role("button", name="Train", exact=True), page.get_by_role("button", name="Stop", exact=True)
    slow, stopped_at = [], []
    for i in range(RUNS):
        train.click()
        if i % 5 == 4:  # Stop at once: its request races the run's own to the server (either may arrive first)
            stop.click()
            page.wait_for_timeout(300)  # the run's pending marks are up by now
        else:
            try:  # Train right after Stop runs again
                page.wait_for_function(STARTED, timeout=5_000, polling=20)
            except Exception as e:
                raise AssertionError(f"run {i}: Train did not start within 5 s of its click "
                                     f"(status {text_of(page.locator('#training-status'))[:80]!r})") from e
            if i % 2:  # inside the training itself, whatever the machine's load: a step's update has arrived
                page.wait_for_function("() => document.querySelector('#training-status').textContent"
                                       ".includes('Training: step')", timeout=60_000, polling=50)
                page.wait_for_timeout(rng.uniform(0, 800))
            else:  # anywhere: preparing, training, or already done
                page.wait_for_timeout(rng.uniform(100, 2600))
            stop.click()
        page.wait_for_function(ENDED, timeout=30_000, polling=20)
        clock = page.evaluate("() => window.__stop")
        if "ended" in clock:
            waited = (clock["ended"] - clock["click"]) / 1e3
        else:  # the run had ended before the Stop (pressed "anywhere": it may come after the end) and none began
            assert not clock["running"], f"run {i}: the page's clock saw no end after Stop ({clock})"
            waited = 0.0
        status = text_of(page.locator("#training-status")).strip()
        if waited > 1.0:
            slow.append(f"run {i}: ended {waited:.2f} s after Stop ({status[:60]!r})")
        assert page.evaluate(ERROR_BADGES) == 0, f"run {i}: a red Error after Stop"
        assert i % 5 != 4 or status.startswith("Stopped"), f"run {i}: Stop at once, yet {status[:60]!r}"
        if "Stopped at step" in status:
            stopped_at.append(i)
            step = int(status.split("Stopped at step ")[1].split()[0].replace(",", ""))
            assert step >= 1 and "optimizer step" in svg_text(page, "training-curve")  # the curve is kept
        else:
            assert status.startswith(("Stopped before the first step", "Done")), status
    assert not slow, "\n".join(slow)
    assert len(stopped_at) >= RUNS // 2, "half the Stops land inside the training"
    # The model of the last stopped (or finished) run is the learner's: it generates.
    page.get_by_role("button", name="Generate with my model").click()
    page.wait_for_function("() => document.querySelector('#training-generated textarea').value.startsWith('JULIET:')",
                           timeout=30_000)
    no_errors(page)


# ----------------------------------------------------------------------------- sliders from the keyboard and the mouse

FOCUS_RING = """() => { const s = getComputedStyle(document.activeElement);
  return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }"""


def value_stays(page, slider, want: str) -> None:
    """After the server has answered every press, the slider still shows `want` (it never jumps back)."""
    idle(page)
    page.wait_for_timeout(300)  # a late answer would land here
    idle(page)
    assert slider.input_value() == want


def test_every_key_press_counts_the_slider_never_jumps_back_and_enter_applies_a_typed_value(page, app_url):
    page.goto(app_url + "attention")
    page.locator("#attention-heatmap .main-svg").first.wait_for(timeout=60_000)
    idle(page)
    layer = page.locator('input[aria-label^="range slider for Layer"]')
    assert layer.input_value() == "0"
    layer.focus()
    for _ in range(5):  # five presses 50 ms apart: the first one's answer comes while the others are made
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(50)
    assert page.evaluate(FOCUS_RING), "a focused slider shows a focus ring"
    value_stays(page, layer, "5")
    wait_svg(page, "attention-heatmap", "Layer 5, head")
    box = page.locator('input[aria-label^="number input for Layer"]')
    box.fill("2")
    box.press("Enter")  # applies at once: no need to leave the box
    wait_svg(page, "attention-heatmap", "Layer 2, head")
    value_stays(page, layer, "2")

    page.goto(app_url + "rope")
    m = page.locator("#rope-m input[type=range]")
    m.wait_for(timeout=60_000)
    idle(page)
    start = int(m.input_value())
    m.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight" if start < 4 else "ArrowLeft")
        page.wait_for_timeout(50)
    value_stays(page, m, str(start + 4 if start < 4 else start - 4))
    no_errors(page)


def test_dragging_the_merge_slider_asks_the_server_once_when_let_go(page, app_url):
    page.goto(app_url + "tokenization")
    page.wait_for_selector("#replay-chips .chip", timeout=60_000)
    idle(page)
    # The replay's own requests (it is queued): by its event's number, since a load-chain event still finishing on a
    # loaded machine joins the queue too.
    replay = page.evaluate("() => window.gradio_config.dependencies.find(d => d.api_name === 'tokenization_replay').id")
    joins = []

    def on_request(r):
        if "queue/join" in r.url and json.loads(r.post_data or "{}").get("fn_index") == replay:
            joins.append(r.url)

    page.on("request", on_request)
    slider = page.locator("#merge-slider input[type=range]")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    t0 = time.perf_counter()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=60)  # a 60-step drag
    page.wait_for_timeout(100)
    during, dragged = len(joins), time.perf_counter() - t0
    page.mouse.up()
    idle(page)
    k = int(slider.input_value())
    assert 0 < k
    # the replay of merge k arrives (idle() can return before the release's request has even started)
    page.wait_for_function(f"() => document.querySelector('#replay-chips').innerText.includes('after {k} merge')",
                           timeout=60_000)
    assert during == 0, f"{during} requests while dragging"
    assert len(joins) == 1, joins  # one replay, on release
    assert dragged < 10, f"the 60-step drag took {dragged:.1f} s"
    no_errors(page)
