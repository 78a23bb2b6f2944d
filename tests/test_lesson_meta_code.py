"""Lesson 'Reading Meta's Llama code': the conversion to Meta's layout and a forward pass in Meta's structure give
transformers' logits; without the q/k permutation they do not; the page's question is graded from the measurement."""

import pytest
import torch

from lessons.meta_code import compute as C
from lessons.inputs import LessonError
from llama import load_pretrained
from llama.checkpoint import rope_rows_from_meta, rope_rows_to_meta, to_meta_state_dict
from tests.test_reference import hf_model


def test_rope_rows_pair_neighbours_in_meta_order():
    """One head of 4 rows [a0, a1, b0, b1] (pairs (a0, b0), (a1, b1)) becomes [a0, b0, a1, b1], and back."""
    w = torch.arange(8.0).reshape(8, 1)  # two heads
    meta = rope_rows_to_meta(w, 2)
    assert meta[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert torch.equal(rope_rows_from_meta(meta, 2), w)


@pytest.mark.parametrize("nkv", [4, 2, 1])
def test_meta_forward_on_converted_weights_gives_transformers_logits(tmp_path, nkv):
    ref = hf_model(nkv, False, 500000.0)
    ref.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path, device="cpu")
    idx = torch.randint(0, 120, (2, 30))
    w = to_meta_state_dict(ours)
    assert "layers.1.attention.wk.weight" in w and "tok_embeddings.weight" in w and "output.weight" in w
    with torch.no_grad():
        want = ref(idx).logits
        converted = C.meta_forward(w, ours.config, idx)
        torch.testing.assert_close(converted, want, atol=1e-4, rtol=1e-4)
        renamed_only = C.meta_forward(to_meta_state_dict(ours, permute=False), ours.config, idx)
    # random tiny weights give small logits: the renamed-only error is still far above float rounding
    assert (renamed_only - want).abs().max() > 100 * max(float((converted - want).abs().max()), 1e-7)


def test_converting_leaves_the_shared_model_unchanged(cm):
    before = cm.model.layers[0].self_attn.q_proj.weight.clone()
    to_meta_state_dict(cm.model)
    assert torch.equal(cm.model.layers[0].self_attn.q_proj.weight, before)


@pytest.mark.parametrize("which", ["course", "stories"])
def test_compare_on_real_models(cm, stories_cm, which):
    m = cm if which == "course" else stories_cm
    r = C.compare(m, "Once upon a time there was a king")
    assert r.max_diff < 1e-4 * max(r.logit_scale, 1) and r.top1_agree == 1.0
    assert r.max_diff_unpermuted > 0.1
    assert C.permutation_answer(r) == C.PERMUTE_CHOICES[2]
    md = C.reveal_permutation(m, "Once upon a time there was a king", C.PERMUTE_CHOICES[0])
    assert md.startswith("❌") and "renaming" in md
    assert "the same" in C.top_p_agreement(m, "Once upon a time")
    assert len(C.name_rows(m)) >= 11


def test_bad_input_is_a_message(cm):
    with pytest.raises(LessonError):
        C.compare(cm, "")


def test_a_model_meta_does_not_describe_is_refused_with_a_message(cm):
    import copy
    from llama import Llama

    other = copy.copy(cm)
    other.model = Llama(cm.config.replace(norm="layernorm"))
    with pytest.raises(LessonError, match="standard Llama"):
        C.compare(other, "To be")
