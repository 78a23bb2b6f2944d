"""Tokenizers of real checkpoints behind the lessons' small interface: Llama 2's sentencepiece (through
`sentencepiece`, and its tokenizer.json through `tokenizers`), a Llama-3-style byte-level BPE
tokenizer.json, and our own BPE, each chosen by `load_tokenizer` and checked against transformers."""

import json
import shutil

import pytest
from conftest import ROOT, SHAKESPEARE, STORIES

from lessons.course import token_label
from llama.tokenizer import (BPETokenizer, HFTokenizer, SentencePieceTokenizer, Tokenizer, is_own_tokenizer_json,
                             load_tokenizer)
from llama.tokenizer.base import SPLIT_PATTERN

STRINGS = ["Once upon a time", "Hello world", " leading space", "héllo wörld", "日本語のテキスト", "emoji 🤖🙂 end",
           "tabs\tand\nnew lines\n", "x\u200by", "ab\ufffdc", "numbers 1234567 and 3.14", "<s> inside </s> text",
           "", "a"]


@pytest.fixture(scope="module")
def auto_stories():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(STORIES)


def test_stories260k_directory_gives_transformers_ids(auto_stories):
    tok = load_tokenizer(STORIES)
    assert isinstance(tok, HFTokenizer) and isinstance(tok, Tokenizer)
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (1, 2, None, 512)
    for s in STRINGS + ["two  spaces", "   "]:
        ids = tok.encode(s)
        assert ids == auto_stories.encode(s, add_special_tokens=False), s
        assert tok.encode(s, add_bos=True) == auto_stories.encode(s), s  # transformers adds BOS by default
        for skip in (False, True):
            assert tok.decode([1] + ids + [2], skip_special_tokens=skip) == \
                auto_stories.decode([1] + ids + [2], skip_special_tokens=skip)


def test_pieces_and_bytes_of_a_byte_fallback_vocabulary():
    tok = load_tokenizer(STORIES)
    ids = tok.encode("héllo 日本")  # '日本' is not in a 512-token vocabulary: byte fallback
    assert tok.pieces(ids) == [" h", "é", "ll", "o", " ", "<0xE6>", "<0x97>", "<0xA5>", "<0xE6>", "<0x9C>", "<0xAC>"]
    assert b"".join(tok.token_bytes(i) for i in ids).decode() == " héllo 日本"  # sentencepiece's leading '▁'
    assert tok.id_to_token(ids[0]) == "▁h" and tok.token_to_id("▁h") == ids[0] and tok.token_to_id("nope") is None
    assert token_label(tok, 1) == "<s>" and token_label(tok, ids[0]) == "␣h"


def test_sentencepiece_model_alone(tmp_path, auto_stories):
    shutil.copy(STORIES / "tokenizer.model", tmp_path / "tokenizer.model")
    shutil.copy(STORIES / "tokenizer_config.json", tmp_path / "tokenizer_config.json")
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, SentencePieceTokenizer) and isinstance(tok, Tokenizer)
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (1, 2, None, 512)
    assert tok.special_tokens == {"<unk>": 0, "<s>": 1, "</s>": 2}
    hf = load_tokenizer(STORIES)
    for s in STRINGS:
        if "<s>" in s:
            continue  # sentencepiece reads special-token text as text; transformers makes it the special id
        assert tok.encode(s) == auto_stories.encode(s, add_special_tokens=False), s
        ids = tok.encode(s, add_bos=True, add_eos=True)
        assert tok.decode(ids, skip_special_tokens=True) == auto_stories.decode(ids, skip_special_tokens=True), s
        assert tok.pieces(ids[1:-1]) == hf.pieces(ids[1:-1]), s
    # Why a directory's tokenizer.json wins over tokenizer.model: this sentencepiece model collapses runs
    # of spaces (its normalizer's remove_extra_whitespaces), transformers does not.
    assert tok.encode("two  spaces") != auto_stories.encode("two  spaces", add_special_tokens=False)
    assert tok.decode(tok.encode("a b", add_bos=True)) == "<s>a b"


@pytest.fixture(scope="module")
def llama3_style(tmp_path_factory):
    """A small Llama-3-style tokenizer.json trained by `tokenizers`: Llama 3's split regex, ByteLevel bytes,
    <|begin_of_text|> / <|end_of_text|> / <|eot_id|> specials, and a tokenizer_config.json naming them."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator([SHAKESPEARE.read_text(encoding="utf-8")[:50_000]], trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    d = tmp_path_factory.mktemp("llama3")
    hf.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "tokenizer_class": "PreTrainedTokenizerFast"}))
    return d


def test_llama3_style_byte_level_tokenizer_json(llama3_style):
    from transformers import AutoTokenizer

    ref = AutoTokenizer.from_pretrained(llama3_style)
    tok = load_tokenizer(llama3_style)
    assert isinstance(tok, HFTokenizer) and not is_own_tokenizer_json(llama3_style / "tokenizer.json")
    assert (tok.bos_id, tok.eos_id) == (tok.token_to_id("<|begin_of_text|>"), tok.token_to_id("<|eot_id|>"))
    for s in STRINGS + ["<|begin_of_text|>Hi<|eot_id|>", "two  spaces"]:
        ids = tok.encode(s)
        assert ids == ref.encode(s, add_special_tokens=False), s
        assert tok.decode(ids) == ref.decode(ids) == s.replace("\ufffd", "\ufffd"), s
        assert tok.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True), s
        assert b"".join(tok.token_bytes(i) for i in ids).decode("utf-8") == s, s
    ids = tok.encode("日本")
    assert "".join(tok.pieces(ids)).startswith("<0xE6>") and tok.id_to_token(ids[0]) == "æ"
    assert token_label(tok, tok.bos_id) == "<|begin_of_text|>"


def test_the_course_tokenizer_stays_our_bpe():
    tok = load_tokenizer(ROOT / "assets" / "model")
    assert type(tok) is BPETokenizer and isinstance(tok, Tokenizer)
    assert is_own_tokenizer_json(ROOT / "assets" / "model" / "tokenizer.json")


def test_a_directory_without_a_tokenizer_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer.json or tokenizer.model"):
        load_tokenizer(tmp_path)
