"""The course map's whole-model picture (lessons/overview.py) on the course model and on stories260K: one block per
layer of the config, the shapes a token meets, the residual stream's size after each block, and top-5 next-token
probabilities equal to a fresh forward pass's softmax; the predicted token appended as text."""

import pytest
import torch

from lessons.inputs import LessonError
from lessons.overview import overview

MODELS = ["cm", "stories_cm"]


@pytest.fixture(params=MODELS)
def model(request):
    return request.getfixturevalue(request.param)


def test_the_picture_has_one_block_per_layer_and_the_shapes_of_the_loaded_model(model):
    c = model.config
    ov = overview(model, "Once upon a time, the king said")
    T = len(ov.ids)
    assert ov.ids[0] == model.tokenizer.bos_id and ov.ids[1:] == model.tokenizer.encode("Once upon a time, the king said")
    assert len(ov.tokens) == T
    assert ov.n_layers == c.n_layers and len(ov.residual_rms) == c.n_layers + 1  # embeddings + one per block
    assert ov.shapes["embeddings"] == ov.shapes["block"] == (1, T, c.dim)
    assert ov.shapes["attention"] == (1, c.n_heads, T, T)
    assert ov.shapes["ffn"] == (1, T, c.hidden_dim)
    assert ov.shapes["logits"] == (1, T, c.vocab_size) and ov.shapes["probabilities"] == (c.vocab_size,)
    # the residual stream's RMS at the last position, recomputed from an independent pass of the blocks
    with torch.no_grad():
        x = model.model.embed_tokens(torch.tensor([ov.ids]))
        assert ov.residual_rms[0] == pytest.approx(float(x[0, -1].pow(2).mean().sqrt()), rel=1e-5)
    assert all(r > 0 for r in ov.residual_rms)


def test_top5_probabilities_are_the_softmax_of_the_models_logits(model):
    ov = overview(model, "To be, or not to be")
    with torch.no_grad():
        logits = model.model(torch.tensor([ov.ids])).logits[0, -1].float()  # a fresh, untraced forward pass
    probs = torch.softmax(logits, -1)
    want_p, want_i = probs.topk(5)
    assert [i for i, _, _ in ov.top] == want_i.tolist()
    assert [p for _, _, p in ov.top] == pytest.approx(want_p.tolist(), abs=1e-5)
    assert sum(p for _, _, p in ov.top) <= 1 + 1e-6
    assert [p for _, _, p in ov.top] == sorted((p for _, _, p in ov.top), reverse=True)
    assert ov.predicted == ov.top[0][1]
    assert ov.final_rms > 0


def test_the_predicted_token_is_appended_as_text_and_the_model_reads_it_next(model):
    text = "Once upon a time"
    ov = overview(model, text)
    assert ov.next_text.startswith(text) and len(ov.next_text) > len(text)
    nxt = overview(model, ov.next_text)
    assert nxt.ids[:len(ov.ids)] == ov.ids  # the same tokens, then the predicted one
    assert nxt.ids[len(ov.ids)] == ov.top[0][0]


def test_empty_and_long_text(cm):
    with pytest.raises(LessonError):
        overview(cm, "   ")
    long = "to be or not " * 300  # 3,900 characters (under the 5,000 cap), far over 127 tokens
    ov = overview(cm, long)  # the next token follows the end of the text: the model reads the last 127 tokens
    assert len(ov.ids) == 128 and ov.ids[1:] == cm.tokenizer.encode(long)[-127:] and "the last 127" in ov.notice
    nxt = overview(cm, ov.next_text)  # appending at the limit: the new token is read, the oldest drops out
    assert len(nxt.ids) == 128 and nxt.ids[-1] == ov.top[0][0]


def test_a_30_layer_model_draws_30_blocks(cm):
    """The picture is drawn from the loaded model's config: a 30-layer Llama (random weights, the course tokenizer)
    gets 30 residual bars after the embedding's, in the same one-screen picture."""
    from app.whole_model import picture
    from lessons.course import CourseModel
    from llama import Llama, LlamaConfig

    torch.manual_seed(0)
    deep = Llama(LlamaConfig(dim=32, n_layers=30, n_heads=4, n_kv_heads=2, vocab_size=cm.config.vocab_size,
                             max_seq_len=64, multiple_of=16)).eval()
    ov = overview(CourseModel(deep, cm.tokenizer, cm.path), "To be, or not to be")
    assert ov.n_layers == 30 and len(ov.residual_rms) == 31
    html = picture(ov, "a 30-layer test model")
    assert html.count("<rect ") == 31 and "30 × Llama block" in html
    assert "after block 30: RMS" in html and "after block 31" not in html
