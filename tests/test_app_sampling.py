"""Lesson 8 page through the real app: every main event by api_name (gradio_client), then a real browser."""

import json

PROMPT = "ROMEO:\n"


def _plot_json(out):
    return json.loads(out["plot"])


def test_distribution_event(client):
    fig, summary, msg = client.predict(PROMPT, 1.0, 10, 0.9, api_name="/sampling_distribution")
    data = _plot_json(fig)["data"]
    assert len(data[-1]["y"]) == 20 and abs(sum(data[-1]["y"]) - 1) < 1e-4  # kept tokens renormalised, all shown
    assert "tokens survive" in summary and msg == ""
    fig, summary, msg = client.predict(PROMPT, 0, 0, 0, api_name="/sampling_distribution")
    assert "greedy" in msg.lower() and "top-p 0" in msg and "Greedy" in summary
    fig, summary, msg = client.predict("Sir, " * 2000, 1.0, 10, 0.9, api_name="/sampling_distribution")
    assert "only its end is used" in msg and "the limit is" in msg and "tokens survive" in summary
    fig, summary, msg = client.predict("   ", 1.0, 10, 0.9, api_name="/sampling_distribution")
    assert "empty" in msg and "Type a prompt" in fig["plot"] and summary == ""


def test_generate_event_streams_to_a_final_text(client):
    greedy, sampled, status = client.predict(PROMPT, 1.0, 10, 0.9, 24, 5, api_name="/sampling_generate")
    assert greedy.startswith(PROMPT) and sampled.startswith(PROMPT) and len(greedy) > len(PROMPT)
    assert "stopped" in status and "seed 5" in status
    again = client.predict(PROMPT, 1.0, 10, 0.9, 24, 5, api_name="/sampling_generate")
    assert again[1] == sampled  # same seed, same continuation
    g0, s0, st0 = client.predict(PROMPT, 0, 10, 0.9, 24, 5, api_name="/sampling_generate")
    assert g0 == s0 == greedy and "greedy" in st0
    job = client.submit(PROMPT, 1.0, 10, 0.9, 24, 5, api_name="/sampling_generate")
    job.result()
    assert len(job.outputs()) > 2  # streamed: partial texts arrived before the final one
    assert "empty" in client.predict("", 1.0, 10, 0.9, 24, 5, api_name="/sampling_generate")[2]


def test_reveal_events(client):
    md = client.predict(PROMPT, None, api_name="/sampling_reveal_seeds")
    assert "seed 1" in md and "seed 2" in md and "greedy" in md
    md = client.predict(PROMPT, "It goes up", api_name="/sampling_reveal_nucleus")
    assert "tokens kept by top-p 0.9" in md and ("Right" in md or "Not this time" in md)
    assert "empty" in client.predict("", None, api_name="/sampling_reveal_nucleus")


def test_page_in_a_real_browser(page, app_url):
    page.goto(app_url + "sampling")
    title = page.locator("#sampling-dist .gtitle")
    title.wait_for(timeout=60_000)
    before = title.text_content()
    assert "T = 1.00" in before
    # move the temperature slider with the keyboard: each key release runs the chart (app/main.py's HEAD
    # script), so wait for the last value rather than the first change
    slider = page.get_by_label("range slider for temperature T")
    slider.focus()
    for _ in range(4):
        slider.press("ArrowRight")
    page.wait_for_function("() => { const t = document.querySelector('#sampling-dist .gtitle');"
                           " return t && t.textContent.includes('T = 1.20'); }", timeout=30_000)
    assert "T = 1.20" in title.text_content() and title.text_content() != before
    # generate: text streams into both boxes
    page.get_by_role("button", name="Generate greedy and sampled").click()
    page.wait_for_function("() => { const t = document.querySelector('#sampling-sampled textarea');"
                           " return t && t.value.length > 20; }", timeout=60_000)
    page.locator("#sampling-status", has_text="stopped").wait_for(timeout=60_000)
    assert page.locator("#sampling-greedy textarea").input_value().startswith("ROMEO:")
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0
    assert "Error" not in " ".join(page.locator(".toast-wrap").all_inner_texts())
    assert page.errors == []
