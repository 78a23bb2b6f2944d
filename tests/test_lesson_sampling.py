"""Lesson 8 compute: the filters the chart shows are the ones `generate` uses, and streaming matches it."""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from lessons.grading import NO_PICK
from lessons.inputs import LessonError
from lessons.sampling import compute as C
from llama.generate import generate, next_token_distribution, stream_generate_rows


@pytest.fixture(scope="module")
def ids(cm):
    return C.prepare_prompt(cm, C.DEFAULT_PROMPT).ids


def test_prompt_starts_with_bos_and_long_prompts_keep_their_end(cm):
    p = C.prepare_prompt(cm, "ROMEO:\n")
    assert p.ids[0] == cm.tokenizer.bos_id and p.notice == ""
    long = C.prepare_prompt(cm, "To be, or not to be. " * 200 + "THE END")
    limit = C.prompt_limit(cm)
    assert len(long.ids) == limit <= cm.config.max_seq_len and long.ids[0] == cm.tokenizer.bos_id
    assert f"the limit is {limit} tokens" in long.notice
    assert cm.tokenizer.decode(long.ids[1:]).endswith("THE END")  # the end is what gets continued
    for empty in ("", "   \n", None):
        with pytest.raises(ValueError, match="empty"):
            C.prepare_prompt(cm, empty)
    assert len(C.prepare_prompt(cm, "🙂🙂").ids) > 1  # emoji are bytes to a byte-level BPE


@pytest.mark.parametrize("t,k,p", [(1.0, 10, 0.9), (0.7, None, 0.5), (1.5, 50, None), (1.0, None, None)])
def test_renormalised_probabilities_sum_to_one(cm, ids, t, k, p):
    s = C.read_settings(t, k, p)
    d = C.next_token_view(cm, ids, s)
    full = next_token_distribution(C.last_logits(cm, ids), s.temperature, s.top_k, s.top_p)
    assert math.isclose(float(full.sum()), 1.0, abs_tol=1e-5)
    assert int((full > 0).sum()) == d.n_kept
    assert math.isclose(sum(d.renorm) + d.rest_kept_mass, 1.0, abs_tol=1e-5)
    assert all((r > 0) == (st == C.KEPT) for r, st in zip(d.renorm, d.status))
    # renormalising divides the kept probabilities by their total
    kept = [(p0, r) for p0, r, st in zip(d.probs, d.renorm, d.status) if st == C.KEPT]
    assert all(math.isclose(r, p0 / d.kept_mass, rel_tol=1e-4) for p0, r in kept)


@pytest.mark.parametrize("k", [1, 3, 10, 37])
def test_top_k_keeps_exactly_k(cm, ids, k):
    d = C.next_token_view(cm, ids, C.read_settings(1.0, k, 1.0), n=64)
    logits = C.last_logits(cm, ids)
    ties = int((logits == torch.topk(logits, k).values[-1]).sum()) - 1
    assert k <= d.n_kept <= k + ties
    assert d.status[:k] == [C.KEPT] * k and set(d.status[k + ties:]) == {C.CUT_K}


@pytest.mark.parametrize("p", [0.3, 0.6, 0.9])
def test_top_p_keeps_the_smallest_set_reaching_p(cm, ids, p):
    s = C.read_settings(0.8, 0, p)
    d = C.next_token_view(cm, ids, s, n=cm.config.vocab_size)
    probs = sorted(d.probs, reverse=True)
    kept = sum(probs[:d.n_kept])
    assert kept >= p - 1e-6  # reaches p ...
    assert sum(probs[:d.n_kept - 1]) < p  # ... and one token fewer would not
    assert set(d.status[:d.n_kept]) == {C.KEPT} and set(d.status[d.n_kept:]) == {C.CUT_P}


def test_top_p_runs_on_what_top_k_kept(cm, ids):
    d = C.next_token_view(cm, ids, C.read_settings(1.0, 5, 0.5), n=10)
    assert set(d.status[5:]) == {C.CUT_K}
    within_k = sum(d.probs[:5])
    mass = [sum(d.probs[:i]) / within_k for i in range(5)]  # share of the top-k mass held by the ones above
    assert d.n_kept == sum(m < 0.5 for m in mass)


def test_impossible_sliders_get_a_meaning_and_a_note():
    s = C.read_settings(0, 0, 0)
    assert s.greedy and s.top_k is None and 0 < s.top_p < 1e-3
    assert any("greedy" in n for n in s.notes) and any("top-p 0" in n for n in s.notes) and len(s.notes) == 2
    s = C.read_settings(-1, -5, 7)
    assert s.temperature == 0 and s.top_k is None and s.top_p is None and len(s.notes) == 4
    assert any("negative" in n for n in s.notes)
    s = C.read_settings(1.0, None, None)  # blank top-k / top-p boxes: off, nothing to say
    assert (s.temperature, s.top_k, s.top_p, s.notes) == (1.0, None, None, ())
    assert C.read_settings(99, 3, 0.5).temperature == C.MAX_TEMPERATURE


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e20, 1.8e308, -3, 4.5, "abc", None])
def test_every_bad_value_is_repaired_with_a_notice(bad):
    s = C.read_settings(bad, bad, bad, vocab_size=1000)
    assert 0 <= s.temperature <= C.MAX_TEMPERATURE and not math.isnan(s.temperature)
    assert s.top_k is None or (isinstance(s.top_k, int) and 1 <= s.top_k <= 1000)
    assert s.top_p is None or 0 < s.top_p < 1
    assert s.notes  # every one of these needs a word on the page
    seed, note = C.read_seed(bad)
    assert isinstance(seed, int) and 0 <= seed <= C.MAX_SEED and note
    n, note = C.read_new_tokens(bad)
    assert isinstance(n, int) and 1 <= n <= C.MAX_NEW_TOKENS and note


def test_seed_minus_one_is_not_reported_as_a_huge_number():
    assert C.read_seed(-1) == (0, "Seed -1 is out of range (0 to 4294967295): using 0.")
    assert C.read_seed(7) == (7, "") and C.read_seed(4.5)[0] == 4


def test_lone_surrogate_in_the_prompt_gets_a_notice(cm):
    p = C.prepare_prompt(cm, "ab\ud800c")
    assert "U+FFFD" in p.notice and len(p.ids) > 1
    with pytest.raises(LessonError, match="empty"):
        C.prepare_prompt(cm, "  ")
    assert C.read_prediction(None, C.SEED_CHOICES) is None and C.read_prediction("", C.SEED_CHOICES) is None
    with pytest.raises(LessonError, match="not one of"):
        C.read_prediction("maybe", C.SEED_CHOICES)


def test_temperature_zero_is_greedy_and_matches_generate(cm, ids):
    s = C.read_settings(0, 7, 0.3)
    d = C.next_token_view(cm, ids, s)
    assert d.n_kept == 1 and d.status[0] == C.KEPT and d.renorm[0] == 1.0
    steps = list(C.stream_side_by_side(cm, ids, 25, s, seed=3, interval=0))
    last = steps[-1]
    want = generate(cm.model, ids, 25)
    assert last.done and last.greedy_ids == want and last.sampled_ids == want
    assert want[0] == d.ids[0]  # the chart's one survivor is the token greedy generation picks


def test_same_seed_same_continuation_and_stream_concatenates(cm, ids):
    s = C.read_settings(1.0, 20, 0.95)
    runs = [list(C.stream_side_by_side(cm, ids, 16, s, seed=11, interval=0)) for _ in range(2)]
    a, b = runs[0][-1], runs[1][-1]
    assert a.sampled_ids == b.sampled_ids and a.sampled_text == b.sampled_text
    want = generate(cm.model, ids, 16, temperature=1.0, top_k=20, top_p=0.95, seed=11)
    assert a.sampled_ids == want
    assert a.sampled_text == cm.tokenizer.decode([t for t in want if t != cm.config.eos_token_id])
    # streamed token by token: each step adds one token, and the pieces add up to the final text
    streamed = [st.sampled_ids for st in runs[0][:-1]]
    assert [len(x) for x in streamed] == list(range(1, len(streamed) + 1))
    pieces = [cm.tokenizer.token_bytes(t) for t in want if t != cm.config.eos_token_id]
    assert b"".join(pieces).decode("utf-8", errors="replace") == a.sampled_text
    other = list(C.stream_side_by_side(cm, ids, 16, s, seed=12))[-1]
    assert other.greedy_ids == a.greedy_ids  # greedy ignores the seed


def test_generation_stops_at_the_context(cm):
    ctx = cm.config.max_seq_len
    prep = C.prepare_prompt(cm, "Sir, " * 400)
    assert len(prep.ids) == C.prompt_limit(cm)
    ids = (prep.ids * ctx)[:ctx - 4]  # a window 4 tokens short of the context
    last = list(C.stream_side_by_side(cm, ids, 50, C.read_settings(1.0, 0, 1.0), seed=0))[-1]
    eos = cm.config.eos_token_id
    for new, reason in ((last.greedy_ids, last.greedy_reason), (last.sampled_ids, last.sampled_reason)):
        if new[-1] != eos:
            assert len(new) == 4 and "context is full" in reason and f"{ctx} tokens" in reason
        else:
            assert "EOS" in reason


def test_stream_updates_at_a_bounded_rate(cm, ids):
    s = C.read_settings(1.0, 0, 0.9)
    # no interval can pass within the run: the first token and the final texts only
    steps = list(C.stream_side_by_side(cm, ids, 40, s, seed=1, interval=1e9))
    assert len(steps) == 2 and len(steps[0].sampled_ids) == 1 and steps[-1].done
    assert steps[-1].sampled_ids == list(C.stream_side_by_side(cm, ids, 40, s, seed=1, interval=0))[-1].sampled_ids


def test_figure_comes_from_the_model(cm, ids):
    d = C.next_token_view(cm, ids, C.read_settings(1.0, 10, 0.9))
    fig = C.distribution_figure(d)
    assert len(fig.data[-1].y) == C.N_BARS and f"keeps {d.n_kept} of {cm.config.vocab_size}" in fig.layout.title.text
    assert {tr.name for tr in fig.data[:-1]} <= {C.KEPT, C.CUT_K, C.CUT_P}


def expected_nucleus_answer(cm, ids, top_p=0.9, temperatures=(0.5, 1.5)) -> str:
    """Counted here without the lesson's code: the model's logits, softmax at each temperature, and the number of
    tokens whose higher-ranked tokens hold less than top_p."""
    with torch.inference_mode():
        z = cm.model(torch.tensor([ids])).logits[0, -1].double()
    counts = []
    for t in temperatures:
        p = torch.softmax(z / t, -1).sort(descending=True).values
        counts.append(int(((p.cumsum(0) - p) < top_p).sum()))
    lo, hi = counts
    return C.NUCLEUS_CHOICES[0] if hi > lo else C.NUCLEUS_CHOICES[1] if hi < lo else C.NUCLEUS_CHOICES[2]


def expected_seed_answer(cm, ids, n=C.REVEAL_TOKENS) -> str:
    """Two seeds at T = 0.1, each run alone through llama.generate (not the lesson's batched rows)."""
    a, b = (generate(cm.model, ids, n, temperature=0.1, seed=s) for s in (1, 2))
    if a == b:
        return C.SEED_CHOICES[1]
    return C.SEED_CHOICES[2] if a[0] != b[0] and a[1:] == b[1:] else C.SEED_CHOICES[0]


@pytest.mark.parametrize("prompt", [C.DEFAULT_PROMPT, "The king"])
def test_reveals_are_graded_by_an_independent_measurement(cm, prompt):
    ids = C.prepare_prompt(cm, prompt).ids
    want = expected_nucleus_answer(cm, ids)
    wrong = next(c for c in C.NUCLEUS_CHOICES if c != want)
    r = C.reveal_nucleus(cm, ids)
    assert C.nucleus_reveal_markdown(r, want).startswith("✅")
    assert C.nucleus_reveal_markdown(r, wrong).startswith("❌")
    assert C.nucleus_reveal_markdown(r, None).startswith(NO_PICK) and want in \
        C.nucleus_reveal_markdown(r, None)
    want = expected_seed_answer(cm, ids)
    wrong = next(c for c in C.SEED_CHOICES if c != want)
    items = list(C.reveal_seeds(cm, ids))
    assert isinstance(items[0], str) and isinstance(items[-1], C.SeedReveal)
    assert C.seed_reveal_markdown(items[-1], want).startswith("✅")
    md = C.seed_reveal_markdown(items[-1], wrong)
    assert md.startswith("❌") and "seed 1" in md and "seed 2" in md
    assert C.seed_reveal_markdown(items[-1], None).startswith(NO_PICK)


def test_batched_rows_stop_one_by_one_and_match_single_runs(cm, ids):
    """llama.generate.stream_generate_rows (the library addition this lesson uses): a row that yields the
    stop token is None afterwards while the others go on, and each row's tokens are those of a run alone."""
    first = generate(cm.model, ids, 1, eos_id=None)[0]  # greedy's first token, used as the stop token
    rows = [{}, {"temperature": 1.0, "top_p": 0.9, "seed": 4}]
    steps = list(stream_generate_rows(cm.model, ids, 12, rows, eos_id=first))
    assert steps[0][0] == first and all(s[0] is None for s in steps[1:])
    sampled = [s[1] for s in steps if s[1] is not None]
    assert sampled == generate(cm.model, ids, 12, temperature=1.0, top_p=0.9, seed=4, eos_id=first)
    assert len(steps) == len(sampled)  # the loop ends when the last live row stops or after 12 steps
    with torch.inference_mode():
        x = torch.tensor([ids])
        torch.testing.assert_close(cm.model(x, logits_to_keep=1).logits[:, -1], cm.model(x).logits[:, -1])
        assert cm.model(x, logits_to_keep=1).logits.shape == (1, 1, cm.config.vocab_size)


# ----------------------------------------------------------------------------- stories260K (the picker's real Llama)


def test_distribution_on_stories260K(stories_cm):
    prep = C.prepare_prompt(stories_cm, "Once upon a time")
    assert prep.ids[0] == stories_cm.tokenizer.bos_id == 1 and prep.labels[1] == "␣Once" and prep.notice == ""
    assert C.prompt_limit(stories_cm) == 256  # half the 512-token context
    s = C.read_settings(1.0, 10, 0.9, stories_cm.config.vocab_size)
    d = C.next_token_view(stories_cm, prep.ids, s)
    assert d.vocab_size == 512 and 1 <= d.n_kept <= 10 and math.isclose(sum(d.renorm) + d.rest_kept_mass, 1.0)
    want = next_token_distribution(stories_cm.model(torch.tensor([prep.ids])).logits[0, -1], 1.0, 10, 0.9)
    assert math.isclose(d.renorm[0], float(want[d.ids[0]]), rel_tol=1e-5)
    assert "of 512 tokens" in C.distribution_figure(d).layout.title.text
    assert C.read_settings(0, 1000, 1, 512).top_k == 512  # top-k clamps to this model's vocabulary


def test_generation_and_reveals_on_stories260K(stories_cm):
    ids = C.prepare_prompt(stories_cm, "Once upon a time").ids
    s = C.read_settings(0.8, 0, 0.9, 512)
    last = list(C.stream_side_by_side(stories_cm, ids, 24, s, seed=3))[-1]
    assert last.done and last.greedy_ids == generate(stories_cm.model, ids, 24)
    assert last.sampled_ids == generate(stories_cm.model, ids, 24, temperature=0.8, top_p=0.9, seed=3)
    assert last.greedy_text == stories_cm.tokenizer.decode(last.greedy_ids, skip_special_tokens=True)
    assert C.nucleus_reveal_markdown(C.reveal_nucleus(stories_cm, ids), expected_nucleus_answer(stories_cm, ids)) \
        .startswith("✅")
    r = list(C.reveal_seeds(stories_cm, ids))[-1]
    assert C.seed_reveal_markdown(r, expected_seed_answer(stories_cm, ids)).startswith("✅")


def test_stop_reason_knows_every_eos_id(stories_cm):
    """Llama 3 lists several end-of-text ids (config eos_token_id [a, b]); stopping at any of them is EOS."""
    cm = SimpleNamespace(config=dataclasses.replace(stories_cm.config, eos_token_id=[2, 7]),
                         tokenizer=stories_cm.tokenizer)
    assert "EOS" in C.stop_reason(cm, 5, [40, 7], 80) and "EOS" in C.stop_reason(cm, 5, [40, 2], 80)
    assert "EOS" in C.stop_reason(stories_cm, 5, [40, 2], 80) and "`</s>`" in C.stop_reason(stories_cm, 5, [2], 80)
    assert "max-new-tokens" in C.stop_reason(cm, 5, [40, 8], 2)


@pytest.mark.parametrize("kept, index", [((3, 7, 12), 0), ((12, 7, 3), 1), ((5, 5, 5), 2)])
def test_nucleus_answer_follows_the_counts(kept, index):
    """Every branch of the nucleus answer, from counts made up here (a real prompt shows only one of them)."""
    r = C.NucleusReveal(0.9, (0.5, 1.0, 1.5), kept)
    assert r.answer == C.NUCLEUS_CHOICES[index]
    md = C.nucleus_reveal_markdown(r, C.NUCLEUS_CHOICES[index])
    assert md.startswith("✅") and all(f"| {t:g} | {k} |" in md for t, k in zip(r.temperatures, kept))
