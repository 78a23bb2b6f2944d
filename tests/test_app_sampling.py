"""Lesson 8 page through the real app: every main event by api_name (gradio_client), hostile values, then a real
browser."""

import json

import pytest
import torch

from lessons.grading import NO_PICK
from lessons.sampling import compute as C
from llama.generate import generate
import raw_api
from ui import text_of

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
    assert "empty" in msg  # a notice; the chart and summary stay as they were



@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e20, 1.8e308, -5, 4.5, "abc"])
def test_hostile_values_are_repaired_with_a_notice(app_url, bad):
    fig, summary, msg = raw_api.call(app_url, "sampling_distribution", PROMPT, bad, bad, bad)
    assert "⚠️" in msg and ("tokens survive" in summary or "Greedy" in summary)
    greedy, sampled, status = raw_api.call(app_url, "sampling_generate", PROMPT, 1.0, 0, 0.9, bad, bad)
    assert greedy.startswith(PROMPT) and "stopped" in status and "Seed" in status and "Max new tokens" in status


def test_lone_surrogates_get_a_notice(app_url):
    fig, summary, msg = raw_api.call(app_url, "sampling_distribution", "ab\ud800c", 1.0, 10, 0.9)
    assert "U+FFFD" in msg and "tokens survive" in summary
    greedy, sampled, status = raw_api.call(app_url, "sampling_generate", "ab\ud800c", 1.0, 0, 0.9, 8, 1)
    assert "U+FFFD" in status and "stopped" in status
    md = raw_api.call(app_url, "sampling_reveal_nucleus", "\udfff", None)[0]
    assert md.startswith(NO_PICK) and "U+FFFD" in md


def test_seed_minus_one_is_reported_as_clamped(client):
    greedy, sampled, status = client.predict(PROMPT, 1.0, 0, 0.9, 8, -1, api_name="/sampling_generate")
    assert "seed 0" in status and "Seed -1 is out of range" in status and "9223372036854775807" not in status


def test_generate_event_streams_at_a_bounded_rate(client, cm):
    greedy, sampled, status = client.predict(PROMPT, 1.0, 10, 0.9, 24, 5, api_name="/sampling_generate")
    assert greedy.startswith(PROMPT) and sampled.startswith(PROMPT) and len(greedy) > len(PROMPT)
    assert "stopped" in status and "seed 5" in status
    ids = C.prepare_prompt(cm, PROMPT).ids
    want = generate(cm.model, ids, 24, temperature=1.0, top_k=10, top_p=0.9, seed=5)
    assert sampled == PROMPT + cm.tokenizer.decode(want, skip_special_tokens=True)  # llama.generate, run alone
    assert greedy == PROMPT + cm.tokenizer.decode(generate(cm.model, ids, 24), skip_special_tokens=True)
    g0, s0, st0 = client.predict(PROMPT, 0, 10, 0.9, 24, 5, api_name="/sampling_generate")
    assert g0 == s0 == greedy and "greedy" in st0
    job = client.submit(PROMPT, 1.0, 0, 0.9, C.MAX_NEW_TOKENS, 5, api_name="/sampling_generate")
    job.result()
    n_out = len(job.outputs())
    # streamed (more than the final text) but not one message per token: the first token, then at most 10 a
    # second, then the final texts. Two rows of 128 tokens would be 128 messages.
    assert 2 <= n_out < C.MAX_NEW_TOKENS // 2
    assert "empty" in client.predict("", 1.0, 10, 0.9, 24, 5, api_name="/sampling_generate")[2]
    greedy, sampled, status = client.predict(PROMPT, 1.0, 10, 0.9, 10_000, 5, api_name="/sampling_generate")
    assert f"using {C.MAX_NEW_TOKENS}" in status


def nucleus_expected(cm, prompt) -> str:
    """Counted here from the model's logits, not with the lesson's code."""
    ids = C.prepare_prompt(cm, prompt).ids
    with torch.inference_mode():
        z = cm.model(torch.tensor([ids])).logits[0, -1].double()
    counts = []
    for t in (0.5, 1.5):
        p = torch.softmax(z / t, -1).sort(descending=True).values
        counts.append(int(((p.cumsum(0) - p) < 0.9).sum()))
    return C.NUCLEUS_CHOICES[0] if counts[1] > counts[0] else C.NUCLEUS_CHOICES[1] if counts[1] < counts[0] \
        else C.NUCLEUS_CHOICES[2]


def seed_expected(cm, prompt) -> str:
    ids = C.prepare_prompt(cm, prompt).ids
    a, b = (generate(cm.model, ids, C.REVEAL_TOKENS, temperature=0.1, seed=s) for s in (1, 2))
    if a == b:
        return C.SEED_CHOICES[1]
    return C.SEED_CHOICES[2] if a[0] != b[0] and a[1:] == b[1:] else C.SEED_CHOICES[0]


def test_reveal_events_grade_an_independent_measurement(client, cm):
    want = nucleus_expected(cm, PROMPT)
    for pick in C.NUCLEUS_CHOICES:
        md = client.predict(PROMPT, pick, api_name="/sampling_reveal_nucleus")
        assert md.startswith("✅" if pick == want else "❌") and "tokens kept by top-p 0.9" in md
    md = client.predict(PROMPT, None, api_name="/sampling_reveal_nucleus")
    assert md.startswith(NO_PICK) and want in md
    want = seed_expected(cm, PROMPT)
    for pick in C.SEED_CHOICES:
        md = client.predict(PROMPT, pick, api_name="/sampling_reveal_seeds")
        assert md.startswith("✅" if pick == want else "❌") and "seed 1" in md and "greedy" in md
    assert "empty" in client.predict("", None, api_name="/sampling_reveal_nucleus")


def test_page_in_a_real_browser(page, app_url):
    page.goto(app_url + "sampling")
    title = page.locator("#sampling-dist .gtitle")
    title.wait_for(timeout=60_000)
    before = text_of(title)
    assert f"T = {C.META_TEMPERATURE:.2f}" in before and f"top-p {C.META_TOP_P:.2f}" in before
    # move the temperature slider with the keyboard: each key release runs the chart (app/main.py's HEAD
    # script), so wait for the last value rather than the first change
    slider = page.get_by_label("range slider for temperature T")
    slider.focus()
    for _ in range(4):
        slider.press("ArrowRight")
    want = f"T = {C.META_TEMPERATURE + 0.2:.2f}"
    page.wait_for_function("t => { const e = document.querySelector('#sampling-dist .gtitle');"
                           " return e && e.textContent.includes(t); }", arg=want, timeout=30_000)
    assert want in text_of(title) and text_of(title) != before
    # generate: text streams into both boxes
    page.get_by_role("button", name="Generate greedy and sampled").click()
    page.wait_for_function("() => { const t = document.querySelector('#sampling-sampled textarea');"
                           " return t && t.value.length > 20; }", timeout=60_000)
    page.locator("#sampling-status", has_text="stopped").wait_for(timeout=60_000)
    assert page.locator("#sampling-greedy textarea").input_value().startswith("ROMEO:")
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0
    assert "Error" not in " ".join(page.locator(".toast-wrap").all_inner_texts())
    assert page.errors == []
