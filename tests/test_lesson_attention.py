"""Lesson 2 (attention): the compute functions on the course model, without any UI."""

import math

import numpy as np
import pytest
import torch

from lessons.attention import compute as C
from lessons.course import plot_label, trace
from lessons.grading import NO_PICK
from lessons.inputs import LessonError

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


def test_trace_matches_transformers_eager_attention(cm, traced):
    """An independent implementation: Hugging Face's LlamaForCausalLM (eager attention) on the same weights and ids."""
    from transformers import LlamaForCausalLM

    ref = LlamaForCausalLM.from_pretrained(cm.path, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        out = ref(torch.tensor([traced.ids]), output_attentions=True)
    for l, a in enumerate(out.attentions):
        np.testing.assert_allclose(traced.attn[l], a[0].numpy(), atol=2e-5)


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
    ent, top = C.scale_sweep(s, C.scale_factors(traced))
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


@pytest.mark.parametrize("value, expected, word", [
    (9, "last", "out of range"), (-3, 0, "out of range"), (4.5, 4, "not a whole number"),
    (float("nan"), 0, "not a number"), (float("inf"), "last", "out of range"), (1e20, "last", "out of range"),
    (1.8e308, "last", "out of range"), ("abc", 0, "not a number"), (2, 2, ""),
])
def test_every_slider_value_is_clamped_or_rounded_with_a_notice(traced, value, expected, word):
    t = traced
    last = {"layer": t.n_layers - 1, "head": t.n_heads - 1}
    for name, kw in (("layer", dict(layer=value, head=0)), ("head", dict(layer=0, head=value))):
        sl = C.read_sliders(t, **kw)
        assert getattr(sl, name) == (last[name] if expected == "last" else expected)
        assert word in sl.notice if word else sl.notice == ""
    q = C.read_sliders(t, 0, 0, value)
    in_range = isinstance(value, int) and 0 <= value < t.n_tokens
    assert 0 <= q.query <= t.n_tokens - 1 and (q.notice == "" if in_range else word in q.notice)
    f = C.read_sliders(t, 0, 0, 3, value).factor
    assert C.SCALE_MIN <= f <= C.scale_max(t.head_dim) and math.isfinite(f)


def test_views_raise_a_lesson_error_for_text_the_model_cannot_use(cm):
    for bad in ("", "   \n\t ", None, 42):
        for call in (lambda: C.analyze_view(cm, bad, 0, 0, 0, 1.0), lambda: C.view(cm, bad, 0, 0, 3, 1.0),
                     lambda: C.reveal_previous_token(cm, bad, "layer 0"), lambda: C.reveal_scaling(cm, bad, None)):
            with pytest.raises(LessonError):
                call()
    a = C.analyze_view(cm, "ab\ud800c", 0, 0, None, 1.0)  # a lone surrogate: replaced, with a notice
    assert "not valid Unicode" in a.view.notice
    with pytest.raises(LessonError, match="not one of"):
        C.reveal_scaling(cm, TEXT, "much sharper")  # only an API client can send an unknown choice


def test_long_text_is_cut_to_the_limit_with_a_notice(cm):
    a = C.analyze_view(cm, "To be, or not to be. " * 400, 0, 0, None, 1.0)
    assert a.n_tokens == C.MAX_TOKENS and a.view.sliders.query == C.MAX_TOKENS - 1
    assert f"the limit is {C.MAX_TOKENS} tokens" in a.view.notice and len(a.view.heatmap.data[0].x) == C.MAX_TOKENS


def test_emoji_and_odd_unicode_are_shown_not_crashed(cm):
    a = C.analyze_view(cm, "😀🎉🦙", 0, 0, None, 1.0)
    assert a.n_tokens > 1 and "single bytes" in a.view.notice and len(a.view.heatmap.data) == 1
    t = C.trace_text(cm, "a\u200bb\x00c\u202ed")
    assert any("U+0000" in s for s in t.labels) and not any("\x00" in s or "\u202e" in s for s in t.labels)
    assert plot_label("<s>") == "&lt;s&gt;" and plot_label("a\u200bb") == "aU+200Bb"


def test_dot_product_picture_is_lengths_times_cosine(traced):
    """Independent of the figure code: norms and cosines from the raw q and k, and the picture's coordinates."""
    t, layer, head, query = traced, 1, 2, 9
    q = t.q[layer, head, query].astype(np.float64)
    k = t.k[layer, head // t.n_rep, : query + 1].astype(np.float64)
    fig = C.dot_figure(t, layer, head, query)
    x, y = np.array(fig.data[0].x), np.array(fig.data[0].y)
    np.testing.assert_allclose(np.hypot(x, y), np.linalg.norm(k, axis=1), rtol=1e-6)  # each key at its length
    np.testing.assert_allclose(np.linalg.norm(q) * x, k @ q, rtol=1e-6, atol=1e-9)  # score = |q| x reach along q
    assert np.all(y >= 0) and fig.data[1].x[1] == pytest.approx(np.linalg.norm(q))
    assert f"highest: {t.labels[int(np.argmax(k @ q))]}" in fig.layout.title.text
    md = C.dot_readout(t, layer, head, query)
    assert f"variance {t.q[layer, head].astype(np.float64).var():.2f}" in md and "mean 0 and variance 1" in md


def test_o_proj_terms_sum_to_what_attention_adds_to_the_residual_stream(cm, traced):
    """Checked against the model's own residual stream: ffn_in - attn_in is attention's output (pre-norm)."""
    assert cm.config.norm_placement == "pre"
    layers = trace(cm.model, traced.ids).layers
    for layer in (0, traced.n_layers - 1):
        added = (layers[layer].ffn_in - layers[layer].attn_in)[0].numpy()  # (T, C)
        for query in (0, 5, traced.n_tokens - 1):
            terms = C.head_contributions(cm, traced, layer, query)
            assert terms.shape == (traced.n_heads, cm.config.dim)
            np.testing.assert_allclose(terms.sum(0), added[query], atol=1e-4)
    fig = C.heads_mix_figure(cm, traced, 2, 5)
    assert len(fig.data[0].y) == traced.n_heads + 1


def _previous_token_weights(t):
    """Mean weight on the previous token per (layer, head), queries 2..T-1: counted here, not by head_stats."""
    out = np.zeros((t.n_layers, t.n_heads))
    for l in range(t.n_layers):
        for h in range(t.n_heads):
            out[l, h] = np.mean([t.attn[l, h, i, i - 1] for i in range(2, t.n_tokens)])
    return out


def test_reveal_previous_token_grades_every_choice_from_the_measurement(cm, traced):
    prev = _previous_token_weights(traced)
    best_l, best_h = np.unravel_index(prev.argmax(), prev.shape)
    for l in range(cm.config.n_layers):
        md = C.reveal_previous_token(cm, TEXT, f"layer {l}")
        assert f"**layer {best_l}, head {best_h}**" in md and f"**{prev.max():.2f}**" in md
        assert md.startswith("✅") == (l == best_l) and md.startswith("❌") == (l != best_l)
    none = C.reveal_previous_token(cm, TEXT, None)
    assert none.startswith(NO_PICK) and f"*layer {best_l}*" in none.splitlines()[0]  # the measurement is shown


def _manual_forward(cm, ids, divide: bool):
    """The model's forward pass written out here from its weights, with or without the 1/sqrt(d) (pre-norm Llama,
    RoPE on interleaved halves as llama.model.apply_rope): (logits (T, V), attention per layer (nh, T, T))."""
    m, cfg = cm.model, cm.config
    T, hs = len(ids), cfg.head_dim
    x = m.embed_tokens.weight[torch.tensor(ids)].double()  # (T, C)
    cos, sin = m.rope_cos[:T].double(), m.rope_sin[:T].double()

    def rms(v, w):
        return v / torch.sqrt(v.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * w.double()

    def rope(v):  # (n, T, hs)
        a, b = v[..., : hs // 2], v[..., hs // 2:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)

    attns = []
    for layer in m.layers:
        at = layer.self_attn
        h = rms(x, layer.input_layernorm.weight)
        q = rope((h @ at.q_proj.weight.double().T).view(T, cfg.n_heads, hs).transpose(0, 1))
        k = rope((h @ at.k_proj.weight.double().T).view(T, cfg.n_kv_heads, hs).transpose(0, 1))
        v = (h @ at.v_proj.weight.double().T).view(T, cfg.n_kv_heads, hs).transpose(0, 1)
        k, v = k.repeat_interleave(cfg.n_rep, 0), v.repeat_interleave(cfg.n_rep, 0)
        s = q @ k.transpose(1, 2) / (math.sqrt(hs) if divide else 1.0)
        a = torch.softmax(s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")), -1)
        attns.append(a.numpy())
        x = x + (a @ v).transpose(0, 1).reshape(T, -1) @ at.o_proj.weight.double().T
        g = rms(x, layer.post_attention_layernorm.weight)
        mlp = layer.mlp
        x = x + (torch.nn.functional.silu(g @ mlp.gate_proj.weight.double().T) * (g @ mlp.up_proj.weight.double().T)) \
            @ mlp.down_proj.weight.double().T
    return rms(x, m.norm.weight) @ m.lm_head.weight.double().T, attns


def test_reveal_scaling_reruns_every_layer_and_grades_from_an_independent_forward(cm, traced):
    ids = list(traced.ids)
    logits, attns = _manual_forward(cm, ids, divide=True)
    np.testing.assert_allclose(np.stack(attns), traced.attn, atol=1e-4)  # the manual forward is the model
    _, attns_without = _manual_forward(cm, ids, divide=False)

    def mean_entropy(attns):
        a = np.stack(attns)[:, :, 1:]  # (L, nh, T-1, T): query 0 sees only BOS
        ent = -(a * np.log(np.maximum(a, 1e-30))).sum(-1) / np.log(np.arange(2, len(ids) + 1))
        return ent.mean()

    e_with, e_without = mean_entropy(attns), mean_entropy(attns_without)
    expected = C.SCALE_CHOICES[0] if e_without < e_with else C.SCALE_CHOICES[1]
    r = C.rerun_without_scaling(cm, TEXT)
    assert r.entropy["without"].mean() == pytest.approx(e_without, abs=1e-3)
    tgt = torch.tensor(ids[1:])
    assert r.loss["model"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits[:-1], tgt)), abs=1e-3)
    for choice in C.SCALE_CHOICES:
        md = C.reveal_scaling(cm, TEXT, choice)
        assert md.startswith("✅") == (choice == expected) and md.startswith("❌") == (choice != expected)
        assert f"| {e_with:.3f} | {e_without:.3f} |" in md and "re-running the model" in md
    none = C.reveal_scaling(cm, TEXT, None)
    assert none.startswith(NO_PICK) and f"*{expected}*" in none.splitlines()[0]
    assert cm.model.layers[0].self_attn.q_proj.weight.data_ptr() != \
        C.without_scaling(cm.model).layers[0].self_attn.q_proj.weight.data_ptr()  # the shared model is untouched


def test_figures_are_valid_plotly(cm, traced):
    """The page's figures skip Plotly's validation for speed (_figure): rebuilt here with it on, a misspelt
    property or a bad value would raise."""
    import plotly.graph_objects as go

    v = C.view(cm, TEXT, 1, 2, 5, 2.0)
    for fig in (v.dot, v.heatmap, v.grid, v.mix, v.steps, v.scale, C.summary_view(cm, TEXT)):
        go.Figure(fig.to_dict())  # raises ValueError on anything Plotly does not know


def test_analyze_leaves_the_summary_to_its_reveal(cm):
    """The summary of every head answers the previous-token question: Analyze does not draw it."""
    a = C.analyze_view(cm, TEXT, 0, 0, None, 1.0)
    assert not hasattr(a, "summary")
    fig = C.summary_view(cm, TEXT)
    np.testing.assert_allclose(np.asarray(fig.data[1].z, dtype=float), np.round(_previous_token_weights(
        C.trace_text(cm, TEXT)), 3), atol=1e-3)


def test_every_view_and_reveal_on_stories260K(stories_cm):
    """A real pretrained Llama with another shape (5 layers, 8 heads, 4 KV heads, head_dim 8) and a Hugging Face
    sentencepiece tokenizer: every function the page calls, at the edges of its ranges."""
    cm, cfg = stories_cm, stories_cm.config
    a = C.analyze_view(cm, TEXT, 99, 99, None, 99)
    t = C.trace_text(cm, TEXT)
    assert t.attn.shape == (cfg.n_layers, cfg.n_heads, t.n_tokens, t.n_tokens) == (5, 8, t.n_tokens, t.n_tokens)
    assert t.q.shape[-1] == 8 and t.k.shape[1] == 4 and a.n_tokens == t.n_tokens
    sl = a.view.sliders
    assert (sl.layer, sl.head, sl.factor) == (4, 7, C.scale_max(8)) and "out of range" in a.view.notice
    assert "Layer 4, head 7 (KV head 3)" in a.view.heatmap.layout.title.text and len(a.view.grid.data) == 8
    np.testing.assert_allclose(C.reconstruct_attention(t), t.attn, atol=1e-5)
    layers = trace(cm.model, t.ids).layers
    added = (layers[4].ffn_in - layers[4].attn_in)[0].numpy()
    np.testing.assert_allclose(C.head_contributions(cm, t, 4, 3).sum(0), added[3], atol=1e-4)
    assert len(a.view.mix.data[0].y) == 9 and "√d = 2.83" in a.view.steps.layout.title.text
    assert C.summary_view(cm, TEXT).data[0].z.shape == (5, 8)
    assert C.layer_choices(cm) == [f"layer {l}" for l in range(5)]
    md = C.reveal_previous_token(cm, TEXT, "layer 4")
    assert md.count("| layer ") == 5 and "head 7" in md
    md = C.reveal_scaling(cm, TEXT, C.SCALE_CHOICES[0])
    assert "√d = 2.83" in md and "| layer | 0 | 1 | 2 | 3 | 4 |" in md
    assert "5 layers, each with 8 query heads of size d = 8 and 4 key/value heads" in C.model_facts(cm)
    assert "single bytes" in C.analyze_view(cm, "🦙🦙", 0, 0, None, 1.0).view.notice


def test_issue_22_default_state_and_footnote_4(cm):
    """Item 22: the page opens on a query with keys after it, so panel 1's grey bars (scores the mask hides) exist
    as its sentence says; item 4: footnote 4's readout blames independence, with the live variances."""
    from app.pages.attention import _model_values

    t = C.trace_text(cm, C.DEFAULT_TEXT)
    m = _model_values(cm)
    assert m["query"]["value"] < t.n_tokens - 1
    grey = m["figures"][5].data[1]  # query_figure's future keys
    assert np.isfinite(np.array(grey.y, dtype=float)).sum() == t.n_tokens - 1 - m["query"]["value"]
    md = C.dot_readout(t, 0, 0, m["query"]["value"])
    assert "*independent*" in md and "independence is" in md and "times that" in md


def test_toy_example_uses_the_real_heads_functions():
    """Issue 21's toy: three 2-D tokens through masked_scores and softmax, the functions that score a real head."""
    toy = C.toy_attention(C.TOY_DEFAULT)
    q, k, v = toy.q, toy.k, toy.v
    s = q @ k.T / np.sqrt(2)
    s[np.triu_indices(3, 1)] = -np.inf
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    assert np.allclose(toy.weights, w) and np.allclose(toy.out, w @ v)
    assert np.allclose(toy.weights.sum(1), 1) and toy.weights[0, 1] == 0 and toy.weights[0, 2] == 0
    assert "−∞ (masked)" in C.toy_steps_markdown(toy)
    assert "not a number" in C.toy_attention([["a", "x", 0, 0, 0, 0, 0]]).notice


def test_the_dot_product_scatter_labels_the_few_keys_that_matter_and_no_labels_pile_up(cm):
    t = C.trace_text(cm, "To be, or not to be, that is the question: " * 4)
    q = len(t.labels) - 1
    keys = C.dot_figure(t, 0, 0, q).data[0]
    shown = [(x, y) for x, y, s in zip(keys.x, keys.y, keys.text) if s]
    assert 2 <= len(shown) <= 6 < len(keys.x)  # the few that matter; every key still has its hover
    span = max(max(keys.x) - min(keys.x), max(keys.y) - min(keys.y))
    assert all(math.hypot(a[0] - b[0], a[1] - b[1]) >= 0.08 * span for i, a in enumerate(shown) for b in shown[:i])
    best = int(max(range(len(keys.x)), key=lambda j: keys.marker.color[j]))
    assert keys.text[best]  # the highest score is named
