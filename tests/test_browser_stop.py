"""The training lab's Stop, as a learner presses it: at any moment of a run (queued, preparing, training, after the
end), the run ends within a second, says where it stopped, keeps its curve, shows no red "Error" anywhere, and
Train pressed right after runs again. Twenty runs in one page: every other Stop at a random moment after Train, the
others at a random moment after the first curve arrived (so they land inside the training whatever the load)."""

import random
import time

from ui import no_errors, svg_text, text_of

RUNS = 20
STARTED = """() => !!document.querySelector('.pending')
  || document.querySelector('#training-status').textContent.includes('Preparing')"""
ENDED = """() => {
  const s = document.querySelector('#training-status');
  const t = s ? s.textContent : '';
  return (t.includes('Stopped') || t.includes('Done')) && !document.querySelector('.pending');
}"""
# Gradio's status tracker writes "Error" over an output whose event failed; a toast says it too.
ERROR_BADGES = """() => [...document.querySelectorAll('.error, .toast-body')]
  .filter(e => e.textContent.includes('Error')).length"""


def test_stop_ends_every_run_within_a_second_and_train_runs_again(page, app_url):
    rng = random.Random(24)
    page.goto(app_url + "training")
    page.locator("#training-curve .main-svg").first.wait_for(timeout=60_000)
    box = page.get_by_label("number input for time budget (seconds)")
    box.fill("10")  # every run is stopped long before its budget: wall time is the Stops', not the budget's
    box.press("Enter")
    train, stop = page.get_by_role("button", name="Train", exact=True), page.get_by_role("button", name="Stop", exact=True)
    slow, stopped_at = [], []
    for i in range(RUNS):
        train.click()
        page.wait_for_function(STARTED, timeout=5_000, polling=20)  # Train right after Stop runs again
        if i % 2:  # inside the training itself, whatever the machine's load
            page.wait_for_function("() => document.querySelector('#training-status').textContent"
                                   ".includes('Training')", timeout=60_000, polling=50)
            page.wait_for_timeout(rng.uniform(0, 800))
        else:  # anywhere: preparing, training, or already done
            page.wait_for_timeout(rng.uniform(100, 2600))
        stop.click()
        t0 = time.perf_counter()
        page.wait_for_function(ENDED, timeout=30_000, polling=20)
        waited = time.perf_counter() - t0
        status = text_of(page.locator("#training-status")).strip()
        if waited > 1.0:
            slow.append(f"run {i}: ended {waited:.2f} s after Stop ({status[:60]!r})")
        assert page.evaluate(ERROR_BADGES) == 0, f"run {i}: a red Error after Stop"
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
