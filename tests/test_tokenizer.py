"""The from-scratch BPE (llama/tokenizer): exactly Hugging Face `tokenizers` on our own tokenizer.json,
incremental training equal to the naive algorithm, merge history, special tokens, bad input."""

import json
from collections import Counter

import pytest
import regex
from conftest import SHAKESPEARE
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, pre_tokenizers

from llama.tokenizer import bpe
from llama.tokenizer import MAX_TRAIN_CHARS, SPLIT_PATTERN, BPETokenizer, get_stats, merge, pretokenize
from llama.tokenizer.base import LETTER_CLASS, NUMBER_CLASS, bytes_to_unicode, token_string_to_bytes

TEXT = SHAKESPEARE.read_text(encoding="utf-8")
SLICE = TEXT[:300_000]

# Text that exercises every corner of the split regex and of UTF-8: emoji (with ZWJ and skin tones), CJK,
# combining marks, right-to-left scripts, control characters, runs of spaces and newlines, contractions in
# odd cases (including long s, which case-folds to 's'), digits of several scripts, Unicode 17 letters.
FRAGMENTS = [
    "👩‍👩‍👧‍👦", "👍🏽", "🙂", "你好，世界。", "日本語のテキスト", "한국어", "e\u0301", "a\u0308\u0323", "Zalgo\u0336\u0337",
    "مرحبا بالعالم", "שלום עולם", "\u202eRTL\u202c", "\x00", "\x07\x1b[0m", "\t", "\r\n", "\n\n\n", "   ", " \n ",
    "\u00a0", "\u3000", "\u2028", "'s", "'S", "'ll", "'LL", "'Re", "'ſ", "can't", "I'M", "12345", "٣٤٥", "１２３",
    "Ⅻ", "<s>", "</s>", "<pad>", "<s", "pad>", "Ġthe", "Ċ", "\U000323b0", "\u0558x", "x\U00011de0", "¡¿", "\ufeff",
    "\ufffd", "ſt", "ﬆ", "ß", "İ", "Kelvin", " the", "the", "!!!", "...\n", "--", " ", "",
]
any_char = st.characters(codec="utf-8")  # every code point except the surrogates, which UTF-8 cannot hold
texts = st.lists(st.one_of(st.text(any_char, max_size=8), st.sampled_from(FRAGMENTS)), max_size=12).map("".join)


@pytest.fixture(scope="module")
def tok():
    """Trained once on 300,000 characters of TinyShakespeare to a vocabulary of 1024."""
    return BPETokenizer.train(SLICE, 1024)


@pytest.fixture(scope="module")
def wild(tmp_path_factory):
    """A tokenizer whose merges are mostly multi-byte: trained on a shuffle of FRAGMENTS and random code points
    (CJK, emoji, Arabic, Latin-1), with the Hugging Face tokenizer loaded from its saved file."""
    import random

    rng = random.Random(0)
    parts = []
    for _ in range(4000):
        if rng.random() < 0.5:
            parts.append(rng.choice(FRAGMENTS))
        else:
            lo, hi = rng.choice([(0x20, 0x250), (0x4E00, 0x4E80), (0x1F600, 0x1F650), (0x600, 0x650)])
            parts.append("".join(chr(rng.randrange(lo, hi)) for _ in range(rng.randrange(1, 6))))
    t = BPETokenizer.train("".join(parts), 1500)
    return t, Tokenizer.from_file(str(t.save(tmp_path_factory.mktemp("wild") / "tokenizer.json")))


@pytest.fixture(scope="module")
def saved(tok, tmp_path_factory):
    return tok.save(tmp_path_factory.mktemp("tok") / "tokenizer.json")


@pytest.fixture(scope="module")
def hf(saved):
    return Tokenizer.from_file(str(saved))


# ----------------------------------------------------------------------------- the two layer-0 helpers


def test_get_stats_and_merge_docstring_examples():
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_stats([1, 2], {(1, 2): 5}, weight=3) == {(1, 2): 8}
    assert merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge([1, 1, 1], (1, 1), 4) == [4, 1]
    assert merge([], (1, 2), 4) == [] and merge([1], (1, 2), 4) == [1]


def test_byte_table_is_gpt2s():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert (table[0x20], table[0x0A], table[0x00], table[ord("a")], table[0xE4]) == ("Ġ", "Ċ", "Ā", "a", "ä")
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert token_string_to_bytes("Ġthe") == b" the"
    assert token_string_to_bytes("<|end of text|>") == b"<|end of text|>"  # a space: not byte-level, own UTF-8


# ----------------------------------------------------------------------------- pre-tokenization


def _hf_class(cls, s):
    pieces = pre_tokenizers.Split(Regex(cls), behavior="removed").pre_tokenize_str(s)
    outside = set("".join(p for p, _ in pieces))
    return set(s) - outside


def test_letter_and_number_classes_equal_oniguruma_on_every_code_point():
    """The \\p{L} / \\p{N} correction in base.py: regex and Hugging Face's Oniguruma agree on all of Unicode."""
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for ours, theirs in ((LETTER_CLASS, r"\p{L}"), (NUMBER_CLASS, r"\p{N}"), (r"\s", r"\s")):
        mine = set(regex.compile("(?V1)" + ours).findall(every))
        hf = _hf_class(theirs, every)
        assert mine == hf, f"{theirs}: only ours {sorted(mine - hf)[:5]}, only HF {sorted(hf - mine)[:5]}"


def test_pretokenize_docstring_example():
    assert pretokenize("Hello world's 12345!\n") == ["Hello", " world", "'s", " ", "123", "45", "!\n"]
    assert pretokenize("") == []


HF_SPLIT = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_pretokenize_equals_huggingface_split(s):
    words = pretokenize(s)
    assert words == [w for w, _ in HF_SPLIT.pre_tokenize_str(s)]
    assert "".join(words) == s  # every character is in some word


# ----------------------------------------------------------------------------- exactness against tokenizers


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_encode_equals_huggingface_and_round_trips(tok, hf, wild, s):
    for ours, theirs in ((tok, hf), wild):
        ids = ours.encode(s)
        assert ids == theirs.encode(s).ids
        assert ours.decode(ids) == s
        assert theirs.decode(ids, skip_special_tokens=False) == s


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 1023), max_size=20))
def test_decode_of_any_ids_equals_huggingface(tok, hf, wild, ids):
    """Including id sequences cut inside a character: invalid UTF-8 becomes U+FFFD the same way."""
    for ours, theirs in ((tok, hf), wild):
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False)
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)


def test_wild_tokenizer_learned_multibyte_merges(wild):
    t, _ = wild
    assert t.vocab_size == 1500
    assert sum(any(b >= 0x80 for b in t.token_bytes(m.new_id)) for m in t.merges) > len(t.merges) / 2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(st.sampled_from("aeiou thsrnd\u00e9\u4e00\u4e01"), min_size=1, max_size=300) | texts,
       st.integers(0, 765))
def test_long_word_heap_path_equals_the_simple_loop(tok, s, k):
    """_encode_long_word (heap, for words over LONG_WORD bytes) and the readable loop agree on every word."""
    for word in pretokenize(s):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(bpe, "LONG_WORD", 10**9)
            loop = tok._encode_word(word, k)
            mp.setattr(bpe, "LONG_WORD", 0)
            assert tok._encode_word(word, k) == loop


def test_very_long_words_are_exact_and_fast(tok, hf):
    import random
    import time

    rng = random.Random(0)
    letters = "".join(rng.choice("etaoinshrdlu") for _ in range(100_000))  # one 100,000-letter word
    for s in (letters, "ab" * 20_000, " " * 50_000 + "x", "🙂" * 5000):
        t = time.perf_counter()
        ids = tok.encode(s)
        assert time.perf_counter() - t < 15.0  # a guard against the quadratic path, with room for a busy CI machine
        assert ids == hf.encode(s).ids and tok.decode(ids) == s
    t = time.perf_counter()
    BPETokenizer.train(letters, 1024)
    assert time.perf_counter() - t < 40.0  # touching only occurrences: ~1 s, where recounting the word takes ~60 s+


def test_tinyshakespeare_exact_and_round_trip(tok, hf):
    lines = TEXT.splitlines(keepends=True)[:4000]
    assert [tok.encode(line) for line in lines] == [e.ids for e in hf.encode_batch(lines)]
    ids = tok.encode(TEXT)
    assert ids == hf.encode(TEXT).ids
    assert tok.decode(ids) == TEXT
    assert len(ids) < 0.42 * len(TEXT.encode())  # 1024 tokens: about 2.5 bytes per token


def test_encode_is_fast_enough_for_the_training_script(tok):
    import time

    t = time.perf_counter()
    tok.encode(TEXT)
    assert time.perf_counter() - t < 5.0


# ----------------------------------------------------------------------------- vocabulary and merge history


def test_ids_layout_and_vocab_entries(tok):
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 2)
    assert tok.special_tokens == {"<s>": 0, "</s>": 1, "<pad>": 2}
    assert tok.vocab_size == 1024 == 3 + 256 + len(tok.merges)
    assert [tok.token_bytes(3 + b) for b in range(256)] == [bytes([b]) for b in range(256)]
    assert [m.new_id for m in tok.merges] == list(range(259, 1024))
    assert [m.step for m in tok.merges] == list(range(len(tok.merges)))
    the = tok.encode(" the")
    assert len(the) == 1 and tok.id_to_token(the[0]) == "Ġthe" and tok.pieces(the) == [" the"]
    assert tok.token_to_id("Ġthe") == the[0] and tok.token_to_id("<s>") == 0 and tok.token_to_id("not a token") is None
    assert len({tok.token_bytes(i) for i in range(3, 1024)}) == 1021  # every merge made a distinct token
    for m in tok.merges:
        assert tok.token_bytes(m.new_id) == tok.token_bytes(m.pair[0]) + tok.token_bytes(m.pair[1])
        assert m.token == m.left + m.right == tok.id_to_token(m.new_id)


def test_pieces_show_partial_characters_as_bytes(tok):
    assert tok.pieces(tok.encode("你")) == ["<0xE4>", "<0xBD>", "<0xA0>"]
    assert "".join(tok.pieces(tok.encode("To be, or not"))) == "To be, or not"


def _weighted_stats(tok, words, upto):
    stats = {}
    for word, n in words.items():
        get_stats(tok._encode_word(word, upto), stats, n)
    return stats


def test_merge_counts_are_the_pair_counts_at_that_step(tok):
    words = Counter(pretokenize(SLICE))
    first = {}
    for word, n in words.items():
        get_stats([3 + b for b in word.encode()], first, n)
    assert tok.merges[0].count == max(first.values())
    assert tok.merges[0].pair == min(p for p, c in first.items() if c == tok.merges[0].count)  # ties: smallest ids
    for k in (1, 200, len(tok.merges) - 1):  # replay: the pair merged at step k was the most frequent then
        stats = _weighted_stats(tok, words, k)
        m = tok.merges[k]
        assert stats[m.pair] == m.count == max(stats.values())


def test_counts_decrease_and_are_real(tok):
    counts = [m.count for m in tok.merges]
    assert all(isinstance(c, int) and c > 0 for c in counts)
    assert counts[0] > counts[-1]


def _naive_train(text, vocab_size, n_special=3):
    """The textbook trainer: recount every pair of every word after each merge, same tie rule."""
    words = Counter(pretokenize(text))
    seqs = {w: [n_special + b for b in w.encode()] for w in words}
    vocab = {n_special + b: bytes([b]) for b in range(256)}
    merges, banned = [], set()
    while n_special + 256 + len(merges) < vocab_size:
        stats = {}
        for w, n in words.items():
            get_stats(seqs[w], stats, n)
        stats = {p: c for p, c in stats.items() if p not in banned}
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))
        if vocab[pair[0]] + vocab[pair[1]] in vocab.values():
            banned.add(pair)
            continue
        new_id = n_special + 256 + len(merges)
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        merges.append((pair, new_id, stats[pair]))
        seqs = {w: merge(s, pair, new_id) for w, s in seqs.items()}
    return merges


def test_incremental_training_equals_naive_training():
    text = TEXT[:20_000] + " aaaaaaa aaaa aaa ab abab ababab" * 20  # overlapping pairs too
    fast = BPETokenizer.train(text, 480)
    assert [(m.pair, m.new_id, m.count) for m in fast.merges] == _naive_train(text, 480)


@settings(max_examples=60, deadline=None)
@given(st.text(st.sampled_from("aab c\n"), min_size=1, max_size=300))
@example("aaaa aaaa aaaaaaa")
@example("abab ababab baba\nab")
def test_incremental_training_equals_naive_training_on_repetitive_text(s):
    """Runs like 'aaaa' and 'abab' are where updating only an occurrence's neighbours can go wrong."""
    if not s.strip():
        return
    fast = BPETokenizer.train(s, 300)
    assert [(m.pair, m.new_id, m.count) for m in fast.merges] == _naive_train(s, 300)


def test_encode_as_of_merge_k_replays_training(tok):
    s = "First Citizen:\nBefore we proceed any further, hear me speak."
    assert tok.encode(s, upto_merge=0) == [3 + b for b in s.encode()]
    assert tok.encode_as_of(s, len(tok.merges)) == tok.encode(s)
    lengths = [len(tok.encode(s, upto_merge=k)) for k in range(0, len(tok.merges) + 1, 50)]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] > lengths[-1]
    # the text as it was cut after 41 steps = the tokenizer trained for just 41 steps
    small = BPETokenizer.train(SLICE, 3 + 256 + 41)
    assert tok.encode(s, upto_merge=41) == small.encode(s)
    for k in (0, 41):
        assert tok.decode(tok.encode(s, upto_merge=k)) == s


def test_on_merge_reports_every_step():
    seen = []
    t = BPETokenizer.train(SLICE[:5000], 300, on_merge=seen.append)
    assert seen == t.merges


# ----------------------------------------------------------------------------- special tokens


def test_special_tokens_are_atomic_and_never_merged(tok, hf):
    special = set(tok.special_tokens.values())
    assert not any(set(m.pair) & special for m in tok.merges)
    s = "<s>Hello</s><pad><s"
    assert tok.encode(s) == hf.encode(s).ids == [0, *tok.encode("Hello"), 1, 2, *tok.encode("<s")]
    assert tok.decode(tok.encode(s)) == s
    assert tok.decode(tok.encode(s), skip_special_tokens=True) == "Hello<s"


def test_add_bos_and_eos(tok):
    ids = tok.encode("To be", add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id == 0 and ids[-1] == tok.eos_id == 1 and ids[1:-1] == tok.encode("To be")
    assert tok.encode("", add_bos=True) == [0] and tok.encode("") == []
    bare = BPETokenizer.train("no specials here, no specials there", 260, special_tokens=())
    assert bare.bos_id is None and bare.encode("no")[0] == ord("n")
    with pytest.raises(ValueError, match="no BOS"):
        bare.encode("x", add_bos=True)


def test_special_spelled_like_a_mergeable_token_is_never_produced_by_a_merge(tmp_path):
    """A special whose spelling is a byte-level string ('Ġthe' = b' the') must not become a merge."""
    t = BPETokenizer.train(SLICE[:50_000], 600, special_tokens=("<s>", "</s>", "<pad>", "Ġthe"))
    assert t.special_tokens["Ġthe"] == 3
    assert all(m.token != "Ġthe" for m in t.merges)
    hf = Tokenizer.from_file(str(t.save(tmp_path / "t.json")))
    for s in ("the the the", "Ġthe", " the"):
        assert t.encode(s) == hf.encode(s).ids


# ----------------------------------------------------------------------------- files


def test_save_load_round_trip(tok, saved):
    back = BPETokenizer.load(saved)
    assert back.merges == tok.merges  # counts included
    assert (back.bos_id, back.eos_id, back.pad_id, back.vocab_size) == (0, 1, 2, 1024)
    s = "O Romeo, Romeo! wherefore art thou Romeo? 🙂"
    assert back.encode(s, add_bos=True) == tok.encode(s, add_bos=True)
    d = json.loads(saved.read_text(encoding="utf-8"))
    assert d["model"]["type"] == "BPE" and d["model"]["vocab"]["Ġthe"] == tok.encode(" the")[0]
    assert [t["content"] for t in d["added_tokens"] if t["special"]] == ["<s>", "</s>", "<pad>"]
    assert back.save(saved.parent / "again.json").read_text(encoding="utf-8") == saved.read_text(encoding="utf-8")


def test_load_files_written_by_huggingface(tok, hf, tmp_path):
    # Hugging Face re-saving drops our extra field: merges load without counts, roles come from the names.
    (tmp_path / "hf.json").write_text(hf.to_str(), encoding="utf-8")
    back = BPETokenizer.load(tmp_path / "hf.json")
    assert [m.pair for m in back.merges] == [m.pair for m in tok.merges]
    assert all(m.count is None for m in back.merges) and back.bos_id == 0
    # a tokenizer trained by Hugging Face itself (its own id order), and GPT-2's ByteLevel(use_regex) layout
    from llama.tokenizer import train_hf_bpe

    theirs = train_hf_bpe(SLICE[:50_000], 500)
    theirs.save(str(tmp_path / "theirs.json"))
    ours = BPETokenizer.load(tmp_path / "theirs.json")
    gpt2 = json.loads(theirs.to_str())
    gpt2["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    gpt2_hf = Tokenizer.from_str(json.dumps(gpt2))
    gpt2_ours = BPETokenizer.from_json_dict(gpt2)
    for s in ("Good morrow, cousin! 1234567 isn't IT'S", "  spaced\n\n\tout  ", "你好 🙂 e\u0301"):
        assert ours.encode(s) == theirs.encode(s).ids
        assert gpt2_ours.encode(s) == gpt2_hf.encode(s).ids
        assert ours.decode(ours.encode(s)) == s


def test_load_refuses_what_it_cannot_compute(tok, tmp_path):
    d = tok.to_json_dict()
    for key, value, message in [
        ("normalizer", {"type": "NFC"}, "normalizer"),
        ("post_processor", {"type": "TemplateProcessing"}, "post-processor"),
        ("decoder", {"type": "WordPiece"}, "ByteLevel"),
        ("pre_tokenizer", {"type": "Whitespace"}, "pre-tokenizer"),
    ]:
        with pytest.raises(ValueError, match=message):
            BPETokenizer.from_json_dict({**d, key: value})
    with pytest.raises(ValueError, match="not a BPE"):
        BPETokenizer.from_json_dict({**d, "model": {"type": "WordPiece", "vocab": {}}})
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        BPETokenizer.load(tmp_path / "bad.json")


# ----------------------------------------------------------------------------- bad input


def test_bad_training_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 259"):
        BPETokenizer.train("some text", 258)
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train("some text", 255, special_tokens=())
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train("", 300)
    with pytest.raises(ValueError, match="nothing but special tokens"):
        BPETokenizer.train("<s></s>", 300)
    with pytest.raises(ValueError, match="MAX_TRAIN_CHARS"):
        BPETokenizer.train("a" * (MAX_TRAIN_CHARS + 1), 300)  # refused at once, not trained for minutes
    with pytest.raises(TypeError):
        BPETokenizer.train(b"bytes", 300)
    with pytest.raises(TypeError):
        BPETokenizer.train("text", 300.0)
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer.train("text", 300, special_tokens=("<s>", "<s>"))
    with pytest.raises(ValueError, match="non-empty"):
        BPETokenizer.train("text", 300, special_tokens=("",))
    with pytest.raises(ValueError, match="byte token"):
        BPETokenizer.train("text", 300, special_tokens=("a",))


def test_vocab_larger_than_the_text_supports_is_clamped():
    t = BPETokenizer.train("ab ab ab", 10_000)
    # words 'ab' and ' ab': merges a+b, then ' '+'ab'; nothing is left to merge after that
    assert [m.token for m in t.merges] == ["ab", "Ġab"] and t.vocab_size == 3 + 256 + 2
    assert t.encode("ab ab ab") == [259, 260, 260]


def test_bad_encode_and_decode_input(tok):
    with pytest.raises(ValueError, match="upto_merge"):
        tok.encode("x", upto_merge=len(tok.merges) + 1)
    with pytest.raises(ValueError, match="upto_merge"):
        tok.encode("x", upto_merge=-1)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([1024])
    with pytest.raises(TypeError):
        tok.encode(None)
