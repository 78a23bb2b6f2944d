"""Lesson 2 (attention): the compute functions on the course model, without any UI."""

import math

import numpy as np
import pytest
import torch

from lessons.attention import compute as C
from lessons.course import plot_label

TEXT = "To be, or not to be: that is the question. To be, or not to be."


@pytest.fixture(scope="module")
def traced(cm):
    return C.trace_text(cm, TEXT)


def test_trace_shapes_follow_the_config(cm, traced):
    cfg, t = cm.config, traced
    T = len(cm.tokenizer.encode(TEXT)) + 1  # + BOS
    assert t.attn.shape == (cfg.n_layers, cfg.n_heads, T, T)
    assert t.q.shape == (cfg.n_layers, cfg.n_heads, T, cfg.head_dim)
    assert t.k.shape == t.v.shape == (cfg.n_layers, cfg.n_kv_heads, T, cfg.head_dim)
    assert t.ids[0] == cm.tokenizer.bos_id and len(t.labels) == T
    assert t.n_rep == cfg.n_rep and [t.kv_head(h) for h in range(cfg.n_heads)] == [h // cfg.n_rep for h in range(cfg.n_heads)]


def test_trace_is_the_models_own_attention(cm, traced):
    with torch.no_grad():
        layers = cm.model(torch.tensor([traced.ids]), trace=True).trace.layers
    for l, lt in enumerate(layers):
        np.testing.assert_allclose(traced.attn[l], lt.attn[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(traced.q[l], lt.q_rot[0].numpy(), atol=1e-6)
        assert not np.allclose(traced.q[l], lt.q[0].numpy(), atol=1e-4)  # after RoPE, not before


def test_rows_sum_to_one_and_the_mask_is_exact(traced):
    np.testing.assert_allclose(traced.attn.sum(-1), 1.0, atol=1e-5)
    upper = ~C.causal_mask(traced.n_tokens)
    assert upper.sum() == traced.n_tokens * (traced.n_tokens - 1) // 2
    assert np.all(traced.attn[..., upper] == 0.0)  # exp(-inf) is exactly 0
    assert np.all(traced.attn[..., 0, 0] == 1.0)  # BOS sees only itself


def test_reconstructed_softmax_equals_traced_attention(traced):
    np.testing.assert_allclose(C.reconstruct_attention(traced), traced.attn, atol=2e-6)


def test_query_steps_reproduce_one_row_for_every_head(traced):
    t = traced
    for layer in range(t.n_layers):
        for head in range(t.n_heads):
            for query in (1, t.n_tokens // 2, t.n_tokens - 1):
                s = C.query_steps(t, layer, head, query)
                np.testing.assert_allclose(s.probs, t.attn[layer, head, query], atol=2e-6)
                assert s.kv_head == head // t.n_rep
                assert np.all(np.isneginf(s.scaled[query + 1:])) and np.all(s.probs[query + 1:] == 0)
                np.testing.assert_allclose(s.scaled[: query + 1], s.dots[: query + 1] / math.sqrt(t.head_dim), rtol=1e-5)
                np.testing.assert_allclose(s.out, s.probs @ t.v[layer, s.kv_head], atol=1e-5)
                np.testing.assert_allclose(s.traced, t.attn[layer, head, query])


def test_gqa_head_mapping_matters(traced):
    """Reading the wrong key/value head does not reproduce the model's weights (when there is more than one)."""
    t = traced
    if t.k.shape[1] == 1:  # MQA: every query head reads the one KV head, nothing to get wrong
        assert all(t.kv_head(h) == 0 for h in range(t.n_heads))
        return
    q = t.q[0, 0]  # (T, hs) query head 0 reads KV head 0
    wrong = q @ t.k[0, 1].T / math.sqrt(t.head_dim)  # (T, T)
    wrong = C.softmax(np.where(C.causal_mask(t.n_tokens), wrong, -np.inf))
    assert np.abs(wrong - t.attn[0, 0]).max() > 1e-2


def test_scale_factor_one_is_the_model_and_bigger_is_sharper(traced):
    s = C.query_steps(traced, 1, 1, traced.n_tokens - 1)
    np.testing.assert_allclose(C.scaled_softmax(s, 1.0), s.probs[: s.query + 1], atol=1e-6)
    root = math.sqrt(traced.head_dim)
    p_root, p_small = C.scaled_softmax(s, root), C.scaled_softmax(s, 1e-6)
    assert C.entropy_bits(p_root) < C.entropy_bits(s.probs) and p_root.max() > s.probs.max()
    np.testing.assert_allclose(p_small, 1 / (s.query + 1), atol=1e-4)  # factor -> 0: uniform
    ent, top = C.scale_sweep(s, C.SCALE_FACTORS)
    assert np.all(np.diff(ent) <= 1e-9) and np.all(np.diff(top) >= -1e-9)  # monotone in the factor
    assert 0 <= ent.min() and ent.max() <= 1 + 1e-9 and abs(ent[0] - 1) < 0.05


def test_entropy_bits():
    assert C.entropy_bits(np.array([1.0, 0, 0])) == 0.0
    assert C.entropy_bits(np.array([0.25] * 4)) == pytest.approx(2.0)


def test_head_stats_are_fractions_and_match_a_direct_count(traced):
    t, st = traced, C.head_stats(traced)
    for x in (st.entropy, st.previous, st.bos, st.self_):
        assert x.shape == (t.n_layers, t.n_heads)
        assert np.all(x >= 0) and np.all(x <= 1)
    assert st.first_query == 2
    l, h = t.n_layers - 1, t.n_heads - 1
    rows = range(2, t.n_tokens)
    assert st.previous[l, h] == pytest.approx(np.mean([t.attn[l, h, i, i - 1] for i in rows]), abs=1e-6)
    assert st.bos[l, h] == pytest.approx(np.mean([t.attn[l, h, i, 0] for i in rows]), abs=1e-6)
    assert st.self_[l, h] == pytest.approx(np.mean([t.attn[l, h, i, i] for i in rows]), abs=1e-6)
    ent = np.mean([C.entropy_bits(t.attn[l, h, i, : i + 1].astype(np.float64)) / math.log2(i + 1) for i in rows])
    assert st.entropy[l, h] == pytest.approx(ent, abs=1e-5)


def test_figures_show_the_chosen_head_with_the_mask_as_gaps(cm, traced):
    fig = C.heatmap_figure(traced, 1, 1)
    assert "head 1" in fig.layout.title.text and "Layer 1" in fig.layout.title.text
    assert fig.layout.xaxis.title.text.startswith("key") and fig.layout.yaxis.title.text.startswith("query")
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(z[~C.causal_mask(traced.n_tokens)]).all() and not np.isnan(z[C.causal_mask(traced.n_tokens)]).any()
    assert list(fig.data[0].x) == traced.labels and traced.labels[0] == "0 &lt;s&gt;"
    grid = C.heads_grid_figure(traced, 2)
    assert len(grid.data) == cm.config.n_heads
    np.testing.assert_allclose(np.nan_to_num(np.asarray(grid.data[3].z, dtype=float)), traced.attn[2, 3], atol=1e-6)
    summary = C.summary_figure(traced, C.head_stats(traced))
    assert len(summary.data) == 4 and np.asarray(summary.data[1].z).shape == (cm.config.n_layers, cm.config.n_heads)
    s = C.query_steps(traced, 0, cm.config.n_heads - 1, 5)
    qfig = C.query_figure(traced, s)
    assert f"uses KV head {(cm.config.n_heads - 1) // cm.config.n_rep}" in qfig.layout.title.text
    sfig = C.scale_figure(traced, s, 3.0)
    assert "Scores × 3 for query 5" in sfig.layout.title.text and "entropy" in sfig.layout.title.text


def test_the_forward_pass_runs_once_per_text(cm):
    a = C.trace_text(cm, TEXT)
    assert C.trace_text(cm, TEXT) is a  # cached: sliders only slice it
    assert C.trace_text(cm, TEXT + " Ay.") is not a


def test_slider_values_are_clamped_with_a_notice(traced):
    t = traced
    layer, head, query, note = C.clamp(t, 99, -3, 10_000)
    assert (layer, head, query) == (t.n_layers - 1, 0, t.n_tokens - 1)
    assert "layers 0 to" in note and "heads 0 to" in note and "positions 0 to" in note
    assert C.clamp(t, 1, 1, 2) == (1, 1, 2, "")
    assert C.clamp(t, None, float("nan"), "x")[:3] == (0, 0, t.n_tokens - 1)


def test_views_never_raise_on_bad_input(cm):
    for bad in ("", "   \n\t ", None):
        a = C.analyze_view(cm, bad, 0, 0, 0, 1.0)
        assert "empty" in a.message and a.n_tokens == 0
        assert a.heatmap.layout.annotations[0].text == a.message  # a figure that says why, not a blank one
        msg, fig = C.query_view(cm, bad, 0, 0, 3)
        assert "empty" in msg and fig.layout.annotations[0].text == msg
        assert "empty" in C.reveal_previous_token(cm, bad, "layer 0")
        assert "empty" in C.reveal_scaling(cm, bad, None)
    msg, _ = C.scale_view(cm, TEXT, 0, 0, 1, "lots")
    assert "not a number" in msg


def test_long_text_is_cut_to_the_limit_with_a_notice(cm):
    a = C.analyze_view(cm, "To be, or not to be. " * 400, 0, 0, None, 1.0)
    assert a.n_tokens == C.MAX_TOKENS and a.query == C.MAX_TOKENS - 1
    assert f"the limit is {C.MAX_TOKENS} tokens" in a.message and len(a.heatmap.data[0].x) == C.MAX_TOKENS


def test_emoji_and_odd_unicode_are_shown_not_crashed(cm):
    a = C.analyze_view(cm, "😀🎉🦙", 0, 0, None, 1.0)
    assert a.n_tokens > 1 and "single bytes" in a.message and len(a.heatmap.data) == 1
    t = C.trace_text(cm, "a\u200bb\x00c\u202ed")
    assert any("U+0000" in s for s in t.labels) and not any("\x00" in s or "\u202e" in s for s in t.labels)
    assert plot_label("<s>") == "&lt;s&gt;" and plot_label("a\u200bb") == "aU+200Bb"


def test_reveals_are_computed_on_the_text(cm, traced):
    prev = C.head_stats(traced).previous
    best_l, best_h = np.unravel_index(prev.argmax(), prev.shape)
    right = C.reveal_previous_token(cm, TEXT, f"layer {best_l}")
    assert f"**layer {best_l}, head {best_h}**" in right and "is right" in right and f"{prev.max():.2f}" in right
    wrong = C.reveal_previous_token(cm, TEXT, f"layer {(best_l + 1) % traced.n_layers}")
    assert "You guessed" in wrong or traced.n_layers == 1
    assert "Make a prediction first" in C.reveal_previous_token(cm, TEXT, None)
    sc = C.reveal_scaling(cm, TEXT, C.SCALE_CHOICES[0])
    rows = traced.n_layers * traced.n_heads * (traced.n_tokens - 1)
    assert "**sharper (lower entropy)**" in sc and f"of {rows} attention rows" in sc and "is right" in sc
