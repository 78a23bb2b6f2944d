"""Lesson 6 (MQA and GQA): the pure compute functions, on the course model and on real Llama configs."""

import numpy as np
import pytest
import torch

from lessons.grading import NO_PICK
from lessons.gqa import compute as C
from lessons.inputs import LessonError
from llama.config import LlamaConfig

HOSTILE = [float("nan"), float("inf"), -float("inf"), 1e20, 1.8e308, -1, 4.5, "abc", None]


@pytest.fixture(scope="module", params=["course model", "stories260K"])
def cm(request, cm, stories_cm):
    """Every test of this module runs on the course model and on stories260K (a real Llama 2-architecture
    checkpoint: 8 query heads / 4 K/V heads, HF tokenizer, no held-out text of its own), as the picker loads it."""
    return cm if request.param == "course model" else stories_cm


def test_divisors_and_head_to_group_map():
    assert C.divisors(8) == [1, 2, 4, 8] and C.divisors(6) == [1, 2, 3, 6] and C.divisors(1) == [1]
    assert C.head_groups(8, 8) == list(range(8))  # MHA: every query head its own K/V head
    assert C.head_groups(8, 2) == [0, 0, 0, 0, 1, 1, 1, 1]  # GQA: h // n_rep
    assert C.head_groups(8, 1) == [0] * 8  # MQA
    with pytest.raises(ValueError, match="cannot be shared evenly"):
        C.head_groups(8, 3)
    assert [C.attention_kind(8, k) for k in (8, 2, 1)] == ["MHA", "GQA", "MQA"]


def test_impossible_kv_heads_snap_to_a_divisor_with_a_notice():
    assert C.clamp_kv_heads(8, 4) == (4, "")
    n, notice = C.clamp_kv_heads(8, 3)
    assert n == 4 and "cannot be shared evenly" in notice and "1, 2, 4, 8" in notice
    assert C.clamp_kv_heads(8, 0)[0] == 1 and C.clamp_kv_heads(8, 99)[0] == 8
    for bad in HOSTILE:
        n, notice = C.clamp_kv_heads(8, bad, default=2)
        assert n in C.divisors(8) and notice, bad


def test_slider_steps_go_on_to_the_next_possible_count(cm):
    """Arrow keys move a slider by 1; a step that lands between possible counts goes on in its direction, so
    every count is reachable from every other (snapping to the nearest would fall back, e.g. 3 -> 4 -> 3)."""
    nh = cm.config.n_heads
    for options, clamp in ((C.divisors(nh), lambda v, prev: C.clamp_kv_heads(nh, v, previous=prev)[0]),
                           (C.conversion_options(cm), lambda v, prev: C.clamp_conversion(cm, v, previous=prev)[0])):
        shown, seen = cm.config.n_kv_heads, []
        while shown < nh:  # ArrowRight: one more each time
            shown = clamp(shown + 1, shown)
            seen.append(shown)
        assert seen == [o for o in options if o > cm.config.n_kv_heads]
        seen = []
        while shown > 1:  # ArrowLeft all the way down
            shown = clamp(shown - 1, shown)
            seen.append(shown)
        assert seen == sorted((o for o in options if o < nh), reverse=True)
    assert C.snap([1, 2, 3, 6], 4) == 3 and C.snap([1, 2, 3, 6], 5) == 6  # no previous value: the nearest


def test_every_view_clamps_hostile_numbers_with_a_notice(cm):
    c = cm.config
    for bad in HOSTILE:
        fig, notice, n = C.sharing_view(cm, bad)
        assert n in C.divisors(c.n_heads) and notice and f"share {n} K/V head" in fig.layout.title.text, bad
        fig, table, notice, t, b, d = C.memory_view(cm, bad, bad, bad, bad)
        assert notice and C.MIN_CONTEXT <= t <= C.MAX_CONTEXT and 1 <= b <= C.MAX_BATCH and d == C.DEFAULT_DTYPE
        assert f"{t:,} tokens x batch {b}" in table, bad
        fig, md, notice, layer = C.maps_view(cm, "To be", bad)
        assert notice and 0 <= layer < c.n_layers and f"Layer {layer}" in md, bad
        n, notice = C.clamp_conversion(cm, bad)
        assert n in C.conversion_options(cm) and notice, bad
    fig, md, notice, layer = C.maps_view(cm, "ab\ud800c", 0)
    assert "U+FFFD" in md
    assert "U+FFFD" in C.repeat_markdown(cm, C.repeat_check(cm, "ab\ud800c"))
    with pytest.raises(LessonError, match="empty"):
        C.maps_view(cm, "  ", 0)


def test_sliders_open_and_snap_to_what_their_figures_show(cm):
    """Issue 11: the conversion slider opened at 1 while the figure showed the model as trained, and stayed at a
    typed 4 while the figure showed 3. Each view returns the value its figure shows, for the slider."""
    from app.pages import gqa as page

    first = page.initial(cm)
    nkv = cm.config.n_kv_heads
    assert list(first["results"]) == [nkv]  # the opening figure: the model as trained; the slider opens at nkv
    impossible = next(k for k in range(1, cm.config.n_heads + 1) if k not in C.conversion_options(cm))
    fig, md, results, n = C.conversion_view(cm, impossible, first["results"], previous=nkv)
    assert n in C.conversion_options(cm) and n != impossible and "not a possible conversion" in md
    assert str(n) in list(fig.data[0].x) and f"{results[n]:.3f}" in list(fig.data[0].text)


def test_sharing_diagram_draws_one_line_per_query_head(cm):
    nh = cm.config.n_heads
    for nkv in C.divisors(nh):
        fig = C.sharing_figure(nh, nkv)
        assert len(fig.layout.shapes) == nh
        assert C.attention_kind(nh, nkv) in fig.layout.title.text
        assert len(fig.data[1].x) == nkv  # the K/V heads drawn


def test_attention_parameter_count_matches_the_real_model(cm):
    attn = cm.model.layers[0].self_attn
    per_layer = sum(p.numel() for m in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj) for p in m.parameters())
    assert C.attention_parameters(cm.config) == per_layer * cm.config.n_layers
    c7 = LlamaConfig.from_name("llama2-7b")
    assert C.attention_parameters(c7) == 32 * 4 * 4096 * 4096
    assert C.attention_parameters(c7, 8) < C.attention_parameters(c7)


def test_memory_chart_opens_with_the_shipped_configurations(cm):
    """Issue 22 item 5: by default every real Llama is drawn with the K/V heads it shipped with (Llama 2 7B 32,
    Llama 2 70B and Llama 3 8B 8), whatever the slider says; the learner's ratio is a separate choice."""
    for n_kv in (1, cm.config.n_kv_heads, cm.config.n_heads):
        fig, table, notice = C.memory_comparison(cm, n_kv, 4096, 1, "fp16 / bf16")
        names = [t.name for t in fig.data if t.type == "scatter"]
        assert "Llama 2 7B (32 K/V heads)" in names and "Llama 2 70B (8 K/V heads)" in names
        assert "Llama 3 8B (8 K/V heads)" in names and f"this model ({cm.config.n_kv_heads} K/V heads)" in names
        assert "as shipped" in fig.layout.title.text and notice == ""
    fig, *_ = C.memory_comparison(cm, 1, 4096, 1, "fp16 / bf16", mine=True)  # the learner's ratio, on request
    k = C.scaled_kv_heads(LlamaConfig.from_name("llama2-7b"), 1 / cm.config.n_heads)
    assert f"Llama 2 7B ({k} K/V heads)" in [t.name for t in fig.data if t.type == "scatter"] and k < 32


def test_memory_comparison_scales_real_configs_by_the_same_ratio(cm):
    nh = cm.config.n_heads
    fig, table, notice = C.memory_comparison(cm, 1, 4096, 2, "fp16 / bf16", mine=True)  # MQA everywhere
    assert notice == "" and "Llama 2 70B" in table and "Llama 3 8B" in table
    c70 = LlamaConfig.from_name("llama2-70b")  # 64 query heads
    assert C.scaled_kv_heads(c70, 1 / 8) == 8 and C.scaled_kv_heads(c70, 1 / 3) == 16  # 21.3 -> nearest divisor
    k = C.scaled_kv_heads(c70, 1 / nh)
    assert 64 % k == 0 and all(abs(k - 64 / nh) <= abs(d - 64 / nh) for d in C.divisors(64))
    assert "2.00 GiB" in C.memory_comparison(cm, nh, 4096, 1, "fp16 / bf16", mine=True)[1]  # Llama 2 7B, MHA
    _, _, notice = C.memory_comparison(cm, nh + 5, 4096, 1, "fp32", mine=True)
    assert "out of range" in notice
    _, table, notice = C.memory_comparison(cm, 1, 0, 1, "fp32")
    assert "out of range" in notice and f"{C.MIN_CONTEXT:,} tokens" in table


def test_attention_parameters_match_the_model(cm):
    """The lesson's attention count (llama.count) against the modules of the loaded model."""
    real = sum(p.numel() for layer in cm.model.layers for p in layer.self_attn.parameters())
    assert C.attention_parameters(cm.config) == real


def test_cache_against_weights_is_computed_from_the_configs(cm):
    """Issue 10: at batch 1 and 4k tokens the weights dominate (Llama 2 7B: 2 GiB of fp16 cache against
    about 12.55 GiB of weights); batch x context makes the cache dominate."""
    md = C.cache_vs_weights(cm, 4096, 1, "fp16 / bf16")
    row = next(r for r in md.splitlines() if r.startswith("| Llama 2 7B"))
    assert "12.55 GiB" in row and "2.00 GiB" in row and "0.16x" in row
    # 2 * 32 layers * 32 heads * 128 * 2 bytes = 512 KiB per token; 6,738,415,616 * 2 bytes / 512 KiB
    assert f"{6_738_415_616 * 2 / (2 * 32 * 32 * 128 * 2):,.0f} tokens" in row
    row = next(r for r in C.cache_vs_weights(cm, 8192, 8, "fp16 / bf16").splitlines()
               if r.startswith("| Llama 2 7B"))
    assert "32.00 GiB" in row and "2.55x" in row  # eight 8k sequences: the cache outgrows the weights


def test_repeating_kv_heads_gives_mha_with_identical_logits(cm):
    before = {k: v.clone() for k, v in cm.model.state_dict().items()}
    mha = C.convert_kv_heads(cm.model, cm.config.n_heads)
    assert mha.config.n_kv_heads == cm.config.n_heads and mha is not cm.model
    idx = torch.tensor([cm.tokenizer.encode("To be, or not to be: that is the question.")])
    torch.testing.assert_close(mha(idx).logits, cm.model(idx).logits, atol=1e-5, rtol=0)
    r = C.repeat_check(cm, "To be, or not to be")
    assert r["max_diff"] < 1e-5 and r["k_rows_after"] == cm.config.n_heads * cm.config.head_dim
    assert r["v_rows_after"] == cm.config.n_heads * cm.config.head_dim  # issue 22 item 14: v_proj grows too
    md = C.repeat_markdown(cm, r)
    assert f"v_proj from {r['v_rows_before']} to {r['v_rows_after']}" in md
    assert all(torch.equal(v, cm.model.state_dict()[k]) for k, v in before.items())  # cm.model untouched


def test_pooling_to_the_same_count_changes_nothing_and_fewer_changes_the_loss(cm):
    nkv = cm.config.n_kv_heads
    same = C.convert_kv_heads(cm.model, nkv)
    for a, b in zip(same.state_dict().values(), cm.model.state_dict().values()):
        assert torch.equal(a, b)
    r = C.converted_loss(cm, nkv)
    assert r["delta"] == 0 and r["how"] == "unchanged" and r["tokens"] >= cm.config.max_seq_len
    assert r["tokens"] == r["windows"] * cm.config.max_seq_len
    assert f"{r['tokens']:,} tokens ({r['windows']} window" in C.conversion_markdown(cm, r)  # names the text
    pooled = C.converted_loss(cm, 1)
    assert pooled["how"] == "mean-pooled" and abs(pooled["delta"]) > 1e-3
    mq = C.convert_kv_heads(cm.model, 1)
    k = cm.model.layers[0].self_attn.k_proj.weight.view(nkv, cm.config.head_dim, -1)  # (nkv, hs, C)
    torch.testing.assert_close(mq.layers[0].self_attn.k_proj.weight, k.mean(0))  # the GQA paper's mean-pool
    with pytest.raises(ValueError):
        C.converted_loss(cm, cm.config.n_heads + 1)


def test_progress_is_reported_while_measuring(cm):
    seen = []
    C.converted_loss(cm, 1, lambda f, d: seen.append((f, d)))
    assert seen and seen[-1][0] == 1.0 and all(isinstance(d, str) for _, d in seen)
    fig = C.conversion_figure(cm, {1: 5.0, cm.config.n_kv_heads: 4.0})
    assert list(fig.data[0].x) == ["1", str(cm.config.n_kv_heads)]
    base = C.base_loss(cm)
    assert f"{base['tokens']:,} held-out tokens" in fig.layout.title.text
    # the title names the text: the model's own held-out excerpt, or the course's Shakespeare for a model without
    own = (cm.path / "val_excerpt.txt").exists()
    assert ("val_excerpt.txt" in fig.layout.title.text) == own
    assert ("Shakespeare excerpt (not this model's own text)" in fig.layout.title.text) == (not own)


def test_a_model_without_held_out_text_is_measured_on_shakespeare_and_says_so(stories_cm):
    """stories260K ships no val_excerpt.txt: the loss is measured on the course's held-out TinyShakespeare (a
    different domain from its training text), and every readout of a loss says so."""
    from conftest import ROOT

    assert not (stories_cm.path / "val_excerpt.txt").exists()
    assert C.eval_text(stories_cm) == (ROOT / "assets" / "model" / "val_excerpt.txt").read_text()[:C.EVAL_CHARS]
    r = C.converted_loss(stories_cm, 2)
    md = C.conversion_markdown(stories_cm, r)
    assert "course's held-out TinyShakespeare excerpt" in md and "ships no held-out text" in md
    assert "val_excerpt.txt" not in md
    assert "Shakespeare" in C.pool_question(stories_cm)
    assert "course's held-out TinyShakespeare excerpt" in C.reveal_pooling(stories_cm, None)
    assert r["seq_len"] == C.eval_window(stories_cm) == 512 and r["tokens"] == r["windows"] * 512


def test_loss_window_fits_a_model_with_a_long_context(stories_cm):
    """A Llama with a context far longer than the eval text (Llama 3.2: 131,072) is measured in windows of at
    most MAX_EVAL_WINDOW tokens; the text would hold no full window of its context."""
    from lessons.course import CourseModel
    from llama.model import Llama

    long = Llama(stories_cm.config.replace(max_seq_len=131_072)).eval()
    long.load_state_dict(stories_cm.model.state_dict())
    lm = CourseModel(long, stories_cm.tokenizer, stories_cm.path)
    r = C.converted_loss(lm, 2)
    assert r["seq_len"] == C.MAX_EVAL_WINDOW and r["windows"] >= 1 and np.isfinite(r["loss"])


def test_attention_maps_grouped_by_kv_head(cm):
    c = cm.config
    fig, md = C.grouped_attention_figure(cm, "ROMEO: But soft, what light through yonder window breaks?", 0)
    assert len(fig.data) == c.n_heads
    titles = [a.text for a in fig.layout.annotations]
    for h in range(c.n_heads):
        assert f"q{h} → K/V {h // c.n_rep}" in titles
    attn, _, _ = C.attention_maps(cm, "ROMEO: But soft", 0)
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-5)  # probabilities
    same, other = C.head_differences(attn, c.n_kv_heads)
    assert 0 < same <= 1 and "share a K/V head" in md  # heads sharing keys still attend differently
    with pytest.raises(ValueError, match="empty"):
        C.grouped_attention_figure(cm, "   ", 0)
    with pytest.raises(ValueError, match="does not exist"):
        C.grouped_attention_figure(cm, "hello", c.n_layers)


def test_head_differences_on_known_maps():
    a = np.eye(3)[None].repeat(4, 0)  # 4 identical heads
    a[2:] = np.roll(np.eye(3), 1, axis=1)  # heads 2 and 3 attend elsewhere
    same, other = C.head_differences(a, 2)  # groups {0,1} and {2,3}
    assert same == 0.0 and other == 1.0


def _loss(model, cm):
    """Mean next-token loss on the eval text, computed here: windows of max_seq_len tokens, each after BOS."""
    import torch.nn.functional as F

    T = cm.config.max_seq_len
    ids = torch.tensor(cm.tokenizer.encode(C.eval_text(cm)))
    n = len(ids) // T
    chunks = ids[: n * T].view(n, T)  # (windows, T)
    x = torch.cat([torch.full((n, 1), cm.tokenizer.bos_id), chunks[:, :-1]], dim=1)
    with torch.no_grad():
        return float(F.cross_entropy(model(x).logits.flatten(0, 1), chunks.flatten()))


def _mean_pooled(cm, k):
    """The model with its K/V heads mean-pooled into k, built here from the GQA paper's recipe."""
    from llama.model import Llama

    c = cm.config
    new = Llama(c.replace(n_kv_heads=k)).eval()
    state = dict(cm.model.state_dict())
    for name, p in state.items():
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            state[name] = p.view(k, c.n_kv_heads // k, c.head_dim, c.dim).mean(1).reshape(k * c.head_dim, c.dim)
    new.load_state_dict(state)
    return new


def test_pooling_reveal_grades_one_measurement_computed_here(cm):
    """The grade is computed here from an independently built pooled model and loss. Changing the product's
    answer (e.g. pool_answer's `delta > SAME` to `delta > 10`) makes this fail. One pooled count is one data
    point: the question asks about it, not about a trend."""
    k = C.pool_target(cm)
    assert k == min(d for d in C.divisors(cm.config.n_kv_heads) if d < cm.config.n_kv_heads)
    delta = _loss(_mean_pooled(cm, k), cm) - _loss(cm.model, cm)
    expected = 0 if delta > 0.01 else (2 if delta < -0.01 else 1)
    for i, choice in enumerate(C.POOL_CHOICES):
        md = C.reveal_pooling(cm, choice)
        assert md.startswith("✅") == (i == expected) and md.startswith("❌") == (i != expected)
        assert f"*{C.POOL_CHOICES[expected]}*" in md.splitlines()[0] and f"({delta:+.3f})" in md
    assert "more with fewer" not in " ".join(C.POOL_CHOICES) and f"into {k}" in C.pool_question(cm)
    for none in (None, ""):
        md = C.reveal_pooling(cm, none)
        assert md.startswith(NO_PICK) and C.POOL_CHOICES[expected] in md
    with pytest.raises(LessonError, match="not one of"):  # only an API call can send it; the page shows the notice
        C.reveal_pooling(cm, "a guess of my own")


def test_repeat_reveal_grades_against_logits_computed_here(cm):
    """MHA by copying each K/V head n_rep times, built here with repeat_interleave on the weights; the expected
    answer follows from the logit difference measured here. Changing the product's answer (e.g. ROUNDING = 0,
    or `answer = 1`) makes this fail."""
    from llama.model import Llama

    c = cm.config
    mha = Llama(c.replace(n_kv_heads=c.n_heads)).eval()
    state = {n: (p.view(c.n_kv_heads, c.head_dim, c.dim).repeat_interleave(c.n_rep, 0).reshape(-1, c.dim)
                 if n.endswith(("k_proj.weight", "v_proj.weight")) else p) for n, p in cm.model.state_dict().items()}
    mha.load_state_dict(state)
    text = "Good morrow"
    idx = torch.tensor([[cm.tokenizer.bos_id] + cm.tokenizer.encode(text)])
    with torch.no_grad():
        diff = float((mha(idx).logits - cm.model(idx).logits).abs().max())
    assert diff < 1e-4
    expected = 0  # identical up to rounding: the first choice
    for i, choice in enumerate(C.REPEAT_CHOICES):
        md = C.reveal_repeat(cm, text, choice)
        assert md.startswith("✅") == (i == expected) and md.startswith("❌") == (i != expected)
    md = C.reveal_repeat(cm, text, None)
    assert md.startswith(NO_PICK) and C.REPEAT_CHOICES[0] in md


@pytest.fixture(scope="module")
def mha_cm(stories_cm):
    """An MHA model: stories260K with its 4 K/V heads repeated to 8, one per query head (same outputs)."""
    from lessons.course import CourseModel

    return CourseModel(C.convert_kv_heads(stories_cm.model, stories_cm.config.n_heads), stories_cm.tokenizer,
                       stories_cm.path)


def test_an_mha_model_shows_mha_and_offers_the_conversion(mha_cm):
    """Issue 12: a model without GQA shows MHA and offers the conversion (mean-pooling to any divisor); the
    repeat question and check start from the pooled model, since an MHA model has nothing to repeat."""
    from app.pages import gqa as page

    c = mha_cm.config
    assert c.n_kv_heads == c.n_heads == 8
    first = page.initial(mha_cm)
    assert "**MHA**" in first["heads"] and "mean-pooling" in first["heads"]
    assert "MHA" in first["diagram"].layout.title.text and list(first["results"]) == [8]
    assert first["options"] == [1, 2, 4, 8] and "fewer = mean-pool" in first["convert_info"]
    assert "repeat" not in first["convert_info"]
    assert "into 1" in first["pool_question"] and "MHA already" in first["repeat_question"]
    assert "this model is MHA" in first["maps_md"]
    fig, md, results, n = C.conversion_view(mha_cm, 2, first["results"])
    assert n == 2 and "mean-pooled 8 → 2" in md and set(results) == {2, 8}


def test_an_mha_model_repeats_from_its_pooled_version(mha_cm):
    """The repeat check on an MHA model: pool to pool_target K/V heads, repeat back to MHA, and compare with the
    pooled model. The expected logits are built here from the GQA paper's mean-pool and repeat_interleave."""
    from llama.model import Llama

    c, k = mha_cm.config, C.pool_target(mha_cm)
    assert k == 1 and C.repeat_start(mha_cm) == 1
    pooled = _mean_pooled(mha_cm, k)
    mha = Llama(c).eval()
    mha.load_state_dict({n: (p.view(k, c.head_dim, c.dim).repeat_interleave(c.n_heads // k, 0).reshape(-1, c.dim)
                             if n.endswith(("k_proj.weight", "v_proj.weight")) else p)
                         for n, p in pooled.state_dict().items()})
    idx = torch.tensor([[mha_cm.tokenizer.bos_id] + mha_cm.tokenizer.encode("Once upon a time")])
    with torch.no_grad():
        diff = float((mha(idx).logits - pooled(idx).logits).abs().max())
        moved = float((pooled(idx).logits - mha_cm.model(idx).logits).abs().max())
    assert diff < 1e-4 < moved  # exact against the pooled model, not against the MHA model as trained
    r = C.repeat_check(mha_cm, "Once upon a time")
    assert r["start"] == 1 and r["max_diff"] < 1e-4 and (r["k_rows_before"], r["k_rows_after"]) == (8, 64)
    md = C.reveal_repeat(mha_cm, "Once upon a time", C.REPEAT_CHOICES[0])
    assert md.startswith("✅") and "MHA already" in md and "pooled" in md
    loss = C.repeat_loss(mha_cm)
    assert abs(loss["delta"]) < 1e-4 and loss["base"] == C.converted_loss(mha_cm, 1)["loss"]


def test_a_one_head_model_says_there_is_nothing_to_pool_or_repeat(stories_cm):
    from lessons.course import CourseModel
    from llama.model import Llama

    one = CourseModel(Llama(stories_cm.config.replace(n_heads=1, n_kv_heads=1, head_dim=64)).eval(),
                      stories_cm.tokenizer, stories_cm.path)
    assert "nothing to pool" in C.pool_question(one) and "single attention head" in C.repeat_question(one)
    with pytest.raises(LessonError, match="single attention head"):
        C.repeat_check(one, "Once")


def test_the_page_refills_every_model_dependent_output(cm):
    """app.pages.gqa.refresh (what the page shows when opened with a picked model): slider ranges and values
    from the config, the per-learner states reset to the model as trained, every figure of this model."""
    from app.pages import gqa as page

    c = cm.config
    (msg, kv, kv_shown, heads, diagram, memory, table, configs, layer, maps, maps_md, pool_q, repeat_q, results,
     target_shown, target, convert_md, convert, *labels) = page.refresh(cm)
    assert [b["value"] for b in labels] == list(page.LABELS.values())  # no cost to state for the course model
    assert msg == "" and (kv["maximum"], kv["value"]) == (c.n_heads, c.n_kv_heads) and kv_shown == c.n_kv_heads
    assert f"{c.n_heads} query heads" in kv["info"] and f"{c.n_heads} query heads and {c.n_kv_heads} K/V" in heads
    assert f"share {c.n_kv_heads} K/V head" in diagram.layout.title.text
    assert "as shipped" in memory.layout.title.text  # issue 22 item 5: the shipped K/V heads, this model's too
    assert f"this model ({c.n_kv_heads} K/V heads)" in [t.name for t in memory.data]
    assert f"| this model | {c.n_layers} | {c.n_heads} | {c.n_kv_heads} |" in configs
    assert (layer["maximum"], layer["value"]) == (c.n_layers - 1, 0) and len(maps.data) == c.n_heads
    assert list(results) == [c.n_kv_heads] and target_shown == c.n_kv_heads
    assert (target["maximum"], target["value"]) == (c.n_heads, c.n_kv_heads)
    assert f"{results[c.n_kv_heads]:.3f}" in list(convert.data[0].text) and "unchanged" in convert_md
    assert f"K/V heads into {C.pool_target(cm)}" in pool_q and "GQA → MHA" in repeat_q
