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
