"""Checkpoints whose embedding table has more rows than the tokenizer has tokens (a padded vocabulary, common in
published models: rows rounded up to a multiple of 64 or 128) work on every page: no page lists, labels, picks or
samples an id past the tokenizer's, and the embedding map draws only the tokens' rows.

The fixture is stories260K (512 tokens) with its tied embedding padded to 600 rows; the 88 padding rows are 2x
copies of real rows, so that they would win every argmax, top-k list and sample if a page let them."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import STORIES
from lessons.course import load_course_model, mask_padding, token_label, token_step, vocab_tokens

ROWS = 600


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    out = tmp_path_factory.mktemp("padded600")
    sd = load_file(STORIES / "model.safetensors")
    w = sd["model.embed_tokens.weight"]  # (512, 64), tied with lm_head
    g = torch.Generator().manual_seed(0)
    sd["model.embed_tokens.weight"] = torch.cat([w, 2 * w[torch.randint(3, len(w), (ROWS - len(w),), generator=g)]])
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((STORIES / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "vocab_size": ROWS}))
    for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json"):
        shutil.copy(STORIES / f, out / f)
    cm = load_course_model(out, device="cpu")
    assert cm.config.vocab_size == ROWS and cm.tokenizer.vocab_size == 512 == vocab_tokens(cm)
    return cm


def test_the_fixture_would_pick_padding_rows_if_a_page_let_it(padded):
    ids = torch.tensor([[padded.tokenizer.bos_id] + padded.tokenizer.encode("Once upon a time")])
    logits = padded.model(ids).logits[0]  # (T, 600)
    assert (logits.argmax(-1) >= 512).any()  # the raw model prefers padding rows
    assert (mask_padding(logits, 512).argmax(-1) < 512).all()
    assert token_label(padded.tokenizer, 555) == "<unused555>"
    assert token_step(padded) is not None


def test_every_page_opens_on_a_padded_checkpoint(padded):
    """What widgets.on_model sends when a learner opens each page with this model picked."""
    from app.pages import (assembled, attention, gqa, kv_cache, next_token, rmsnorm, rope, sampling, swiglu,
                           tokenization, training)

    for page in (tokenization, attention, rope, rmsnorm, swiglu, gqa, kv_cache, sampling, assembled, next_token,
                 training):
        assert page.refresh(padded), page.__name__


def test_lists_picks_and_samples_are_tokens(padded):
    from app.pages import sampling as page
    from lessons.assembled import compute as AS
    from lessons.kv_cache import compute as K
    from lessons.next_token import compute as N
    from lessons.sampling import compute as S
    from lessons.tokenization import compute as T

    prompt = S.prepare_prompt(padded, "Once upon a time")
    view = S.next_token_view(padded, prompt.ids, S.read_settings(1.0, 0, 1.0, vocab_tokens(padded)))
    assert max(view.ids) < 512 and view.vocab_size == 512 and "<unused" not in " ".join(view.labels)
    steps = list(S.stream_side_by_side(padded, prompt.ids, 12, S.read_settings(1.5, 0, 1.0), seed=3))
    assert max(steps[-1].greedy_ids + steps[-1].sampled_ids) < 512
    *_, (greedy, sampled, status) = page.generation(padded, "Once upon a time", 1.5, 0, 1.0, 8, 1)
    assert "stopped after 8 new tokens" in status and greedy.startswith("Once upon a time")

    run = K.run_cached_vs_uncached(padded, "Once upon a time", 8)
    assert max(run.new_tokens) < 512 and run.same_tokens
    assert "Yes" in K.reveal_same(padded, "Once upon a time", K.SAME_CHOICES[0])

    scored = N.score(padded, "Once upon a time there was a little girl")
    assert max(max(row) for row in scored.top_ids) < 512
    assert max(max(row) for row in scored.lens_top) < 512

    labels, _, ids = AS._top(padded, padded.model(torch.tensor([prompt.ids])).logits[0, -1])
    assert max(ids) < 512 and not any(s.startswith("<unused") for s in labels)

    fig = T.embedding_map(padded, "Once upon a time")
    points = sum(len(t.x) for t in fig.data if t.name not in ("your sentence's tokens", "BOS / EOS"))
    assert points == 512 and "88 padding rows" in fig.layout.title.text  # the kinds' traces: every token once
