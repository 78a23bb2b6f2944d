"""The reference trainers and the comparison table (llama/tokenizer/references.py)."""

import os
import re

import pytest
from conftest import SHAKESPEARE

from llama.tokenizer import BPETokenizer, compare_tokenizers, train_all, train_hf_bpe, train_sentencepiece
from llama.tokenizer.references import VocabTooSmall

TEXT = SHAKESPEARE.read_text(encoding="utf-8")[:100_000]
PASTED = ("Hello world! A learner pastes a few hundred characters here: numbers 1234567, "
          "emoji 🙂🙂, accents café naïve, 你好世界, and a second line.\nSecond line, the end.\n")
KEYS = {"name", "vocab_size", "n_tokens", "chars_per_token", "bytes_per_token", "byte_fallback_count", "encode_ms",
        "tokens"}


@pytest.fixture(scope="module")
def shakespeare_rows(tmp_path_factory):
    cwd = os.getcwd()
    work = tmp_path_factory.mktemp("cwd")
    os.chdir(work)  # sentencepiece must leave no file behind, in the working directory or anywhere
    try:
        toks = train_all(TEXT, 600)
    finally:
        os.chdir(cwd)
    assert list(work.iterdir()) == []
    return toks, compare_tokenizers(TEXT, toks)


def _library_ids(tok, text):
    """Each library's own encode, called directly (not through compare_tokenizers)."""
    if isinstance(tok, BPETokenizer):
        return tok.encode(text)
    if hasattr(tok, "get_vocab_size"):
        return tok.encode(text).ids
    return tok.encode(text)


def test_rows_hold_sane_statistics(shakespeare_rows):
    toks, rows = shakespeare_rows
    assert [r["name"] for r in rows] == list(toks)
    for r in rows:
        assert set(r) == KEYS
        assert r["vocab_size"] == 600
        assert r["n_tokens"] == len(_library_ids(toks[r["name"]], TEXT)) == len(r["tokens"])  # the library's count
        assert 0 < r["n_tokens"] < len(TEXT) / 1.8  # at 600 tokens every one compresses English ~2x
        assert r["bytes_per_token"] == pytest.approx(r["chars_per_token"])  # ASCII text: a byte per character
        assert r["encode_ms"] > 0
    # fewer tokens, more characters per token: the ratio orders the tokenizers as the counts do
    assert sorted(rows, key=lambda r: r["n_tokens"]) == sorted(rows, key=lambda r: -r["chars_per_token"])
    ours, hf, sp_bpe, sp_uni = rows
    # byte-level BPE: the display strings are the text; nothing is a partial character in ASCII English
    assert "".join(ours["tokens"]) == "".join(hf["tokens"]) == TEXT
    assert ours["byte_fallback_count"] == hf["byte_fallback_count"] == 0
    # sentencepiece never saw a newline (it trains on lines): each one is the byte piece <0x0A>, as in Llama 2;
    # the other byte pieces are characters too rare for character_coverage 0.99995 (under 1 in 20,000)
    byte_pieces = [t for t in sp_bpe["tokens"] if re.fullmatch(r"<0x[0-9A-F]{2}>", t)]
    # (issue 22 item 6) byte tokens are parts of characters, by one definition for every kind: in ASCII text every
    # byte piece (<0x0A> included) is a whole character, so sentencepiece counts none, like the byte-level BPEs
    assert sp_bpe["byte_fallback_count"] == 0 < len(byte_pieces) and byte_pieces.count("<0x0A>") == TEXT.count("\n")
    rare = {chr(int(t[3:5], 16)) for t in byte_pieces if t != "<0x0A>"}  # ASCII text: one byte per character
    assert all(TEXT.count(ch) < 0.00005 * len(TEXT) for ch in rare)
    assert sp_uni["byte_fallback_count"] == 0
    # the two BPE trainers learn the same statistics from the same words: token counts within 1%
    assert abs(ours["n_tokens"] - hf["n_tokens"]) < 0.01 * ours["n_tokens"]


def test_hf_reference_is_configured_like_ours():
    hf = train_hf_bpe(TEXT, 400)
    ours = BPETokenizer.train(TEXT, 400)
    assert hf.get_vocab_size() == 400 and [hf.token_to_id(s) for s in ("<s>", "</s>", "<pad>")] == [0, 1, 2]
    # the same pair counts: the first merges agree (order can differ only where counts tie)
    hf_merges = {tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in _hf_merges(hf)[:20]}
    assert hf_merges == {(m.left, m.right) for m in ours.merges[:20]}
    s = "Whence is that knocking?\n"
    assert hf.decode(hf.encode(s).ids) == s


def _hf_merges(tok):
    import json

    return json.loads(tok.to_str())["model"]["merges"]


def test_sentencepiece_models_round_trip_with_byte_fallback():
    for model_type in ("bpe", "unigram"):
        sp = train_sentencepiece(TEXT, 500, model_type)
        assert [sp.id_to_piece(i) for i in range(4)] == ["<s>", "</s>", "<pad>", "<unk>"]
        assert sp.get_piece_size() == 500
        s = "Thou art 你好 🙂"
        ids = sp.encode(s)
        assert sp.decode(ids) == s
        assert any(sp.is_byte(i) for i in ids) and sp.unk_id() not in ids  # unseen characters went to bytes
    with pytest.raises(ValueError, match="model_type"):
        train_sentencepiece(TEXT, 500, "wordpiece")


def test_sentencepiece_is_configured_as_llama_1_and_2():
    """LLaMA paper section 2.1: byte fallback for unknown characters, numbers split into digits; Meta's
    tokenizer.model: character_coverage 0.99995, so a character rarer than 1 in 20,000 gets no piece."""
    rare = TEXT + "\ncafé\n"  # one 'é' in ~100,000 characters: below the coverage cut
    sp = train_sentencepiece(rare, 600)
    pieces = [sp.id_to_piece(i) for i in sp.encode("café")]
    assert pieces[-2:] == ["<0xC3>", "<0xA9>"] and sp.decode(sp.encode("café")) == "café"
    common = train_sentencepiece("café au lait, un café.\n" * 200 + TEXT[:5_000], 500)
    assert "<0xC3>" not in [common.id_to_piece(i) for i in common.encode("café")]  # frequent enough for a piece
    digits = train_sentencepiece("In 2024, 2024 and 1999 and 2024 again: 31415 31415.\n" * 100, 300)
    vocab = [digits.id_to_piece(i) for i in range(digits.get_piece_size())]
    learned = [p for p in vocab if not (digits.is_byte(vocab.index(p)) or digits.is_control(vocab.index(p)))]
    assert "▁and" in learned and not [p for p in learned if sum(ch.isdigit() for ch in p) > 1]  # no 2-digit piece
    assert [digits.id_to_piece(i) for i in digits.encode("2024")][-4:] == ["2", "0", "2", "4"]


def test_small_pasted_text_works_for_every_tokenizer():
    """What the lesson runs live: a few hundred characters and a vocabulary larger than they support."""
    toks = train_all(PASTED, 512)
    rows = compare_tokenizers(PASTED, toks)
    assert len(rows) == 4
    for r in rows:
        assert 260 <= r["vocab_size"] <= 512, r["name"]
        assert 0 < r["n_tokens"] <= len(PASTED.encode("utf-8")) + 1
    ours = rows[0]
    assert ours["vocab_size"] < 512  # clamped: the text ran out of pairs
    assert toks["ours (byte-level BPE)"].decode(toks["ours (byte-level BPE)"].encode(PASTED)) == PASTED
    # byte-level BPE trained on the text merges its own characters whole: no partial-character tokens
    assert ours["byte_fallback_count"] == 0
    # a CJK text with more distinct characters than the asked vocabulary leaves room for:
    # sentencepiece alone needs more, so train_all raises its size to the minimum it names
    cjk = "".join(chr(0x4E00 + i) for i in range(300)) + "\n" + "，".join(chr(0x4E00 + i) for i in range(0, 300, 7))
    with pytest.raises(VocabTooSmall) as e:
        train_sentencepiece(cjk, 300)
    assert e.value.minimum > 300 and "vocab_size >=" in str(e.value)
    rows = compare_tokenizers(cjk, train_all(cjk, 300))
    assert [r["vocab_size"] >= e.value.minimum for r in rows[2:]] == [True, True]


def test_comparison_accepts_a_list_and_the_empty_text():
    tok = BPETokenizer.train(PASTED, 300)
    rows = compare_tokenizers("", [tok])
    assert rows[0]["name"] == "tokenizer 0" and rows[0]["n_tokens"] == 0 and rows[0]["chars_per_token"] == 0.0
    rows = compare_tokenizers("你", {"ours": tok})
    assert rows[0]["tokens"] == ["<0xE4>", "<0xBD>", "<0xA0>"] and rows[0]["byte_fallback_count"] == 3
    with pytest.raises(TypeError, match="cannot compare"):
        compare_tokenizers("x", {"dict": {}})


def test_reference_trainers_refuse_bad_input():
    for train in (train_hf_bpe, train_sentencepiece):
        with pytest.raises(ValueError, match="empty"):
            train("   \n", 300)
        with pytest.raises(ValueError, match="too small"):
            train(PASTED, 100)
