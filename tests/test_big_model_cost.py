"""A real-size Llama through the picker on a CPU: every slow action's cost is stated before it runs (lessons.cost
estimates it, app/costs words it), and the heavy views shrink (fewer steps timed, fewer tokens generated, a shorter
held-out slice), while the course model's pages read and compute exactly as before.

The big model is stories260K dressed as TinyLlama-1.1B: its `num_parameters` says 1,100,048,384 and its measured
rate is set to one of a 1.1B model on this 2-core CPU (lessons.cost.measured_rate measures it on the real thing), so
every page runs in milliseconds but sizes and words itself as for a 1B model."""

import re

import pytest

from conftest import STORIES
from lessons import cost
from lessons.course import load_course_model

TINYLLAMA = 1_100_048_384
# A 1.1B model measured on this machine (bench/bench_bigmodel.py): about 0.7 s per one-token pass, 50 tokens/s of
# prefill, a second row of a decode step 1.3 s more
RATE = cost.Rate(read_s=6e-10, flop_s=1.8e-11, device="cpu", row_s=1.2e-9)
NOTICE = re.compile(r"⏱️ .+: about \d+ (s|min) with this 1\.1B-parameter model on this server's CPU\.")


@pytest.fixture(scope="module")
def big():
    cm = load_course_model(STORIES, device="cpu")
    cm.model.num_parameters = lambda: TINYLLAMA  # dressed: sized and worded as a 1.1B model
    cost._RATES[cm.model] = RATE
    return cm


def test_estimates_follow_parameters_and_work(big):
    one = cost.passes(big, 1, 1)
    assert one.seconds == pytest.approx(TINYLLAMA * (RATE.read_s + RATE.flop_s))
    assert cost.passes(big, 100, 1).seconds == pytest.approx(TINYLLAMA * (RATE.read_s + 100 * RATE.flop_s))
    # generation: a prefill of the prompt (both rows), then one pass per later token, and the second row's extra
    g = cost.generation(big, 10, 24, rows=2)
    assert g.seconds == pytest.approx(TINYLLAMA * (24 * RATE.read_s + (20 + 23) * RATE.flop_s + 23 * RATE.row_s))
    assert g.slow and g.parameters == TINYLLAMA and g.device == "cpu"
    # the KV-cache timing: each repeat runs the cached and the uncached steps
    t1, t3 = cost.kv_timing(big, 10, 8, 1), cost.kv_timing(big, 10, 8, 3)
    assert t3.seconds == pytest.approx(3 * t1.seconds)
    assert t1.seconds > cost.generation(big, 10, 8).seconds + cost.uncached_generation(big, 10, 7).seconds
    assert cost.most_within(lambda n: cost.Cost(2.0 * n, 1, "cpu"), 2, 50, 20) == 10
    assert cost.most_within(lambda n: cost.Cost(99.0, 1, "cpu"), 2, 50, 20) == 2


def test_the_wording(big):
    from app import costs

    c = cost.generation(big, 10, 24, rows=2)
    assert NOTICE.fullmatch(costs.notice(c, "Generate (24 tokens)"))
    assert costs.duration(4.2) == "about 4 s" and costs.duration(37) == "about 40 s"
    assert costs.duration(130) == "about 2 min" and costs.size(TINYLLAMA) == "1.1B"
    assert costs.label("Measure", c).startswith("Measure (about ")
    assert re.fullmatch(r"Reveal \(runs the model; about \d+ s\)", costs.label("Reveal (runs the model)", c))
    quick = cost.Cost(0.4, TINYLLAMA, "cpu")
    assert costs.notice(quick, "x") == "" and costs.label("Measure", quick) == "Measure"


def test_the_course_model_is_not_measured_and_keeps_its_defaults(cm):
    from lessons.gqa import compute as G
    from lessons.kv_cache import compute as K
    from lessons.rope import compute as R
    from lessons.sampling import compute as S

    assert not cost.big(cm)
    assert cost.passes(cm, 100, 3).seconds == 0 and cm.model not in cost._RATES
    assert K.default_timed(cm, 10) == 128 and K.timing_repeats(cm) == K.TIMING_REPEATS == 3
    assert K.default_new_tokens(cm, 10) == 12 and K.same_tokens(cm, "JULIET:\nO Romeo, Romeo!") == 32
    assert S.reveal_tokens(cm) == S.REVEAL_TOKENS == 40 and S.default_new_tokens(cm) == 80
    assert R.loss_chars(cm) == R.LOSS_CHARS == 3000 and len(G.eval_text(cm)) == G.EVAL_CHARS


def test_a_big_model_gets_smaller_views_within_the_budget(big):
    from lessons.gqa import compute as G
    from lessons.kv_cache import compute as K
    from lessons.rope import compute as R
    from lessons.sampling import compute as S

    assert cost.big(big)
    limit = K.timing_limit(big)  # 14 steps for 1.1B parameters (the work limit)
    n = K.default_timed(big, 10)
    assert 2 <= n < min(128, limit) and K.timing_repeats(big) == 1  # fewer steps than before, once each
    assert K.timing_cost(big, 10, n).seconds <= K.BIG_BUDGET_S < K.timing_cost(big, 10, n + 1).seconds
    runs = K.default_new_tokens(big, 10)
    assert 2 <= runs < 12 and K.cached_vs_uncached_cost(big, 10, runs).seconds <= K.OPEN_BUDGET_S
    assert K.same_tokens(big, "JULIET:\nO Romeo, Romeo!") < 32
    assert S.default_new_tokens(big) == 24 and S.reveal_tokens(big) == 16  # from 80 and 40
    # the held-out slice: about EVAL_WORK / parameters tokens (254 for 1.1B), not 3,000 characters
    chars = R.loss_chars(big)
    tokens = len(big.tokenizer.encode(R.validation_slice(big, chars)))
    assert chars < 3000 and 200 <= tokens <= 300
    assert len(G.eval_text(big)) == chars
    assert "first {:,} characters".format(chars) in G.eval_source({"own_text": False, "text_chars": chars})


def test_every_heavy_page_states_its_cost_before_and_while(big):
    """What widgets.on_model sends when the page opens with the big model: the page's message names each slow
    action's cost; the buttons that start them carry it; the handlers say it in their progress."""
    from app.pages import assembled, attention, gqa, kv_cache, next_token, rope, sampling

    for page in (kv_cache, sampling, gqa, rope, next_token, attention, assembled):
        out = page.refresh(big)
        msg = out[0]["value"] if isinstance(out[0], dict) else out[0]
        assert NOTICE.search(msg), (page.__name__, msg)
        labels = [u["value"] for u in out if isinstance(u, dict) and isinstance(u.get("value"), str)
                  and re.search(r"[(;] ?about \d+ (s|min)\)$", u["value"])]
        if page in (kv_cache, sampling, gqa, rope):
            assert labels, page.__name__
    # the KV-cache page's sliders open at the big model's sizes
    v = kv_cache.first_view(big)
    assert v["timed"]["value"] < 13 and "1.1B-parameter" in v["timed"]["info"]
    assert v["new_tokens"]["value"] < 12
    assert "1.1B-parameter" in sampling.first_view(big)["max_new"]["info"]

    seen = []

    def progress(fraction, desc=""):
        seen.append(desc)

    kv_cache.reveal_same(big, kv_cache.DEFAULT_PROMPT, None, progress=progress)
    assert re.search(r"\(about \d+ (s|min)\)", seen[-1]), seen
    list(sampling.generation(big, "Once upon a time", 0.6, 0, 0.9, 4, 0, progress=progress))
    assert seen[-1].startswith("generating 4 tokens (about"), seen
    kv_cache.timing(big, kv_cache.DEFAULT_PROMPT, 3, progress=progress)
    assert re.search(r"step \d+ of 3, with and without the cache \(about \d+ s\)", seen[-1]), seen


def test_the_course_model_pages_say_nothing_new(cm):
    from app.pages import assembled, gqa, kv_cache, next_token, rope, sampling

    for page in (kv_cache, sampling, gqa, next_token, assembled):
        out = page.refresh(cm)
        assert out[0] == "", page.__name__
    assert rope.first_view(cm)["loss_btn"]["value"].endswith("(about a second)")
    assert kv_cache.first_view(cm)["measure"]["value"] == kv_cache.MEASURE_LABEL


def test_on_zerogpu_a_picked_model_is_not_sized_down_or_announced(big, monkeypatch):
    """On a ZeroGPU Space a picked model is loaded to "cuda" (app.context.registry) and its heavy actions run on a lent
    GPU: no CPU costs, no smaller views."""
    import torch

    assert cost.big(big)
    monkeypatch.setattr(type(big), "device", property(lambda self: torch.device("cuda")))  # as loaded there
    assert not cost.big(big) and cost.passes(big, 100, 1).seconds == 0 and not cost.generation(big, 10, 24).slow
    import importlib

    from app.pages import home

    # nor is opening a page (the estimate runs outside the lent GPU's call, and touches no tensor on the device)
    assert all(importlib.import_module(f"app.pages.{slug}").opening_cost(big).seconds == 0 for slug in OPENED)
    assert home.pages_open(big) == ""


# ---------------------------------------------------------------- opening a page with a picked model
OPENING = re.compile(r"Opening with this 1\.1B-parameter model: about \d+ (s|min) on this CPU")
# pages whose opening work runs the picked model (each has `opening_cost`, wired to widgets.on_model)
OPENED = ("kv_cache", "gqa", "rope", "next_token", "attention", "assembled", "rmsnorm", "swiglu", "relative",
          "meta_code", "sampling")


def dressed():
    """A fresh big model (no page has cached its work yet): stories260K dressed as TinyLlama-1.1B."""
    cm = load_course_model(STORIES, device="cpu")
    cm.model.num_parameters = lambda: TINYLLAMA
    cost._RATES[cm.model] = RATE
    return cm


def counted_work(cm, fn) -> float:
    """Seconds that RATE gives the forward passes `fn` really runs through cm.model (each pass read once, each
    token its arithmetic), counted on the model's forward."""
    shapes, forward = [], cm.model.forward

    def counting(ids, *a, **k):
        shapes.append(tuple(ids.shape))
        return forward(ids, *a, **k)

    cm.model.forward = counting
    try:
        fn()
    finally:
        del cm.model.forward
    P = cm.model.num_parameters()
    return len(shapes) * P * RATE.read_s + sum(b * t for b, t in shapes) * P * RATE.flop_s


def test_each_page_estimates_its_opening_from_the_work_it_does():
    """A page's opening estimate (`opening_cost`) counts the forward passes its `refresh` runs: within 0.7x-2.1x of
    them (Meta's own forward on the meta_code page runs outside our model's forward). A fresh model each time, so
    no page's caches hide its work; the course model's estimate is nothing."""
    import importlib

    from app.pages import home

    seen, kept = [], []
    for slug in OPENED:
        page = importlib.import_module(f"app.pages.{slug}")
        fresh = dressed()
        kept.append(fresh)  # alive till the end: no later model takes its id in a page's cache
        estimate = page.opening_cost(fresh)
        real = counted_work(fresh, lambda: page.refresh(fresh))
        assert real > 0 and 0.7 <= estimate.seconds / real <= 2.1, (slug, estimate.seconds, real)
        seen.append(estimate)
    assert sum(c.slow for c in seen) >= 9  # every page but the ones opening on one short pass
    lo, hi = min(c.seconds for c in seen if c.slow), max(c.seconds for c in seen)
    line = home.pages_open(fresh)
    assert re.fullmatch(r"⏱️ With this 1\.1B-parameter model on this server's CPU, a lesson takes about \d+–\d+ s "
                        r"to open \(each page says its own while it opens\)\.", line), line
    from app import costs
    assert costs.span(lo, hi) in line and line in home.device_line(fresh)  # beside the picker's choice


def test_the_course_model_opens_with_nothing_new(cm, stories_cm):
    import importlib

    from app import costs
    from app.pages import home

    for slug in OPENED:
        page = importlib.import_module(f"app.pages.{slug}")
        for m in (cm, stories_cm):
            assert page.opening_cost(m).seconds == 0 and costs.opening(page.opening_cost(m)) == ""
    assert home.pages_open(cm) == "" and home.pages_open(stories_cm) == ""
    assert "lesson takes" not in home.device_line(cm)
    assert cm.model not in cost._RATES and stories_cm.model not in cost._RATES  # nothing measured for them


def test_a_page_says_its_opening_cost_before_it_runs_the_model(monkeypatch):
    """The event widgets.on_model wires on a real page (GQA, built here): with the big model picked, the progress
    line names the opening's cost before the page's first forward pass; with stories260K (not big) it does not."""
    import gradio as gr

    import lessons
    from app import context, costs, share, widgets
    from app.pages import gqa

    big = dressed()
    models = {"big": big, "stories": load_course_model(STORIES, device="cpu")}  # fresh: no cached page
    monkeypatch.setattr(context, "resolve", lambda key: models[key])  # before the page's handlers import it
    monkeypatch.setattr(context, "lent_gpu", lambda key: False)
    # the build's module-level bookkeeping (figure ids, link fields) goes back as it was: app.main builds the app
    # in other tests of the same session
    monkeypatch.setattr(widgets, "_plot_ids", dict(widgets._plot_ids))
    for name in ("_pending_box", "_pending_fields"):
        monkeypatch.setattr(share, name, [])
    with gr.Blocks() as demo:
        gqa.build(context.course(), lessons.get("gqa"))
    dep = next(d for d in demo.fns.values() if d.name == "refresh")
    for key, says in (("big", True), ("stories", False)):
        picked, log = models[key], []
        forward = picked.model.forward
        picked.model.forward = lambda *a, **k: (log.append("forward"), forward(*a, **k))[1]
        try:
            out = dep.fn(key, progress=lambda f, desc="": log.append(desc))
        finally:
            del picked.model.forward
        said = [x for x in log if x != "forward" and OPENING.fullmatch(x)]
        assert "forward" in log, log  # the page computed its opening figures with the picked model
        if says:
            assert said and log.index(said[0]) < log.index("forward"), log
            assert said[0].endswith(f": {costs.duration(gqa.opening_cost(big).seconds)} on this CPU")
        else:
            assert not any("Opening" in x for x in log if x != "forward"), log
        assert len(out) == len(dep.outputs) and bool(NOTICE.search(out[0])) == says  # then the page, as before
