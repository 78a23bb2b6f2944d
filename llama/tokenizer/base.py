"""Layer 0 of the tokenizer: the parts every byte-level BPE is built from.

Nothing here learns anything. This module holds

  * the two list operations BPE is made of: `get_stats` counts adjacent pairs,
    `merge` replaces every occurrence of one pair by a new id;
  * GPT-2's byte-to-unicode table, which gives each of the 256 bytes a visible
    character (a space is 'Ġ', a newline 'Ċ'), so vocabulary entries read like
    Hugging Face ByteLevel ones: the token for b" the" is written 'Ġthe';
  * the pre-tokenizer: Llama 3's split pattern, which cuts text into words
    before BPE sees it, so a merge never crosses a word boundary.

`bpe.py` builds the trainable tokenizer on top of these.
"""

from __future__ import annotations

from functools import lru_cache

import regex

# ----------------------------------------------------------------------------- pairs and merges


def get_stats(ids, counts=None, weight=1):
    """Count adjacent pairs, adding `weight` per occurrence into `counts` (a new dict if None).

    [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}

    The trainer calls this once per *unique* word with the word's frequency as
    `weight`, which is why a corpus of 1 MB costs only ~15,000 calls.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids, pair, idx):
    """Replace every occurrence of `pair`, left to right, by the single id `idx`.

    [1, 2, 3, 1, 2], (1, 2), 4 -> [4, 3, 4]
    [1, 1, 1], (1, 1), 4       -> [4, 1]       (occurrences never overlap)
    """
    out = []
    i = 0
    n = len(ids)
    while i < n:
        if i < n - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ----------------------------------------------------------------------------- bytes as printable characters


@lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable characters.

    Printable Latin-1 bytes stand for themselves ('a' -> 'a', '!' -> '!'); the
    other 68 (control bytes, space, 0x7F-0xA0, 0xAD) are shifted to U+0100
    onwards in byte order, so they stay visible in a JSON vocabulary:

        0x20 ' '  -> 'Ġ'     0x0A '\\n' -> 'Ċ'     0x00 -> 'Ā'     0xE4 -> 'ä'

    It is the exact table of Hugging Face's ByteLevel pre-tokenizer, which is
    what makes our saved vocabulary loadable there.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return dict(sorted(table.items()))


@lru_cache(maxsize=None)
def unicode_to_bytes() -> dict[str, int]:
    """The inverse table: 'Ġ' -> 0x20."""
    return {c: b for b, c in bytes_to_unicode().items()}


def bytes_to_token_string(b: bytes) -> str:
    """b' the' -> 'Ġthe', the spelling of a token in a Hugging Face ByteLevel vocabulary."""
    table = bytes_to_unicode()
    return "".join(table[x] for x in b)


def token_string_to_bytes(s: str) -> bytes:
    """'Ġthe' -> b' the'. A string with a character outside the table (a special
    token such as '<|end of text|>' with real spaces) stands for its own UTF-8,
    which is exactly how Hugging Face's ByteLevel decoder treats such tokens."""
    table = unicode_to_bytes()
    try:
        return bytes(table[c] for c in s)
    except KeyError:
        return s.encode("utf-8")


# ----------------------------------------------------------------------------- pre-tokenization

# Llama 3's split pattern, verbatim from its tokenizer.json (the same as GPT-4's
# cl100k_base). Read it alternative by alternative:
#
#   (?i:'s|'t|'re|'ve|'m|'ll|'d)      English contractions, in any case: "it's" -> "it", "'s"
#   [^\r\n\p{L}\p{N}]?\p{L}+          a run of letters with at most one leading space or
#                                     punctuation mark: " the", "(the", "Hello"
#   \p{N}{1,3}                        numbers in chunks of up to three digits: "2024" -> "202", "4"
#    ?[^\s\p{L}\p{N}]+[\r\n]*         punctuation runs, optionally after a space: " ...", "!\n"
#   \s*[\r\n]+                        line breaks, with the spaces before them
#   \s+(?!\S)|\s+                     other whitespace; a run before a word leaves its last
#                                     space for that word, so " the" stays one word
#
# Why this one and not GPT-2's: it is what Llama 3 uses; cutting numbers into
# three-digit chunks keeps the vocabulary from filling with one-off numbers;
# and the contractions match in any case ("IT'S"). Every character falls into
# some alternative, so the words always concatenate back to the text.
SPLIT_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# GPT-2's pattern, what Hugging Face's ByteLevel(use_regex=True) applies; kept so
# GPT-2-style tokenizer.json files can be loaded too.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# The same pattern must split text identically in two regex engines: the
# `regex` module here and Oniguruma inside Hugging Face `tokenizers`. Their
# classes differ by Unicode version: regex 2026.11 knows Unicode 17.0, the
# Oniguruma in tokenizers 0.23 knows 16.0, so the letters and digits new in 17.0
# (a few CJK blocks, Beria Erfe, Sidetic, Tangut additions, ...) are letters to
# one and unassigned to the other. We take them out of \p{L} and \p{N} on our
# side. tests/test_tokenizer.py compares both classes over every code point, so
# an upgrade of either library that moves this line fails loudly.
_UNICODE_17_LETTERS = (
    (0x0558, 0x0558), (0x058B, 0x058C), (0x088F, 0x088F), (0x0C5C, 0x0C5C), (0x0CDC, 0x0CDC),
    (0x208F, 0x208F), (0x209D, 0x209F), (0xA7CE, 0xA7CF), (0xA7D2, 0xA7D2), (0xA7D4, 0xA7D4),
    (0xA7DD, 0xA7DD), (0xA7E2, 0xA7E2), (0xA7F1, 0xA7F1), (0xAB6C, 0xAB6D), (0x107BB, 0x107BF),
    (0x10940, 0x10959), (0x10EC5, 0x10EC7), (0x10ED9, 0x10EEE), (0x11B0A, 0x11B0A), (0x11DB0, 0x11DDB),
    (0x11DF1, 0x11DF1), (0x16EA0, 0x16EB8), (0x16EBB, 0x16ED3), (0x16FF2, 0x16FF3), (0x187F8, 0x187FF),
    (0x18CD6, 0x18CDA), (0x18D09, 0x18D20), (0x18D80, 0x18DF2), (0x18E00, 0x19191), (0x191A0, 0x191D2),
    (0x1B123, 0x1B128), (0x1B168, 0x1B168), (0x1D6A6, 0x1D6A6), (0x1DF1F, 0x1DF24), (0x1DF2B, 0x1DF81),
    (0x1DF90, 0x1DF96), (0x1DFCD, 0x1DFFF), (0x1E6C0, 0x1E6DE), (0x1E6E0, 0x1E6E2), (0x1E6E4, 0x1E6E5),
    (0x1E6E7, 0x1E6ED), (0x1E6F0, 0x1E6F4), (0x1E6FE, 0x1E6FF), (0x2B73A, 0x2B73F), (0x2B81E, 0x2B81E),
    (0x2CEA2, 0x2CEAD), (0x323B0, 0x33479), (0x3D000, 0x3FC3F),
)
_UNICODE_17_NUMBERS = ((0x11DE0, 0x11DE9), (0x1246F, 0x1246F), (0x12475, 0x1247F), (0x12550, 0x12686),
                       (0x16FF4, 0x16FF6))


def _char_ranges(ranges) -> str:
    return "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)


LETTER_CLASS = r"[\p{L}--[%s]]" % _char_ranges(_UNICODE_17_LETTERS)
NUMBER_CLASS = r"[\p{N}--[%s]]" % _char_ranges(_UNICODE_17_NUMBERS)


@lru_cache(maxsize=16)
def compile_split_pattern(pattern: str = SPLIT_PATTERN) -> regex.Pattern:
    """Compile a Hugging Face split pattern so `regex` splits exactly as Oniguruma does.

    Only \\p{L} and \\p{N} are rewritten (see above); version 1 syntax (V1) is
    what allows the set difference [A--B], also inside another class.
    """
    python = pattern.replace(r"\p{L}", LETTER_CLASS).replace(r"\p{N}", NUMBER_CLASS)
    return regex.compile("(?V1)" + python)


def pretokenize(text: str, pattern: str = SPLIT_PATTERN) -> list[str]:
    """Cut text into the words BPE works within.

    "Hello world's 12345!\\n" -> ['Hello', ' world', "'s", ' ', '123', '45', '!\\n']
    """
    return compile_split_pattern(pattern).findall(text)
