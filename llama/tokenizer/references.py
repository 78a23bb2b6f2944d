"""Layer 2: the library tokenizers the lesson compares ours with, trained on the same text.

What it adds: three reference trainers and one comparison.

    train_hf_bpe(text, vocab_size)                   Hugging Face `tokenizers` BPE, set up exactly
                                                     like ours (Llama 3 split regex, ByteLevel bytes,
                                                     <s> </s> <pad> at ids 0, 1, 2)
    train_sentencepiece(text, vocab_size, "bpe")     sentencepiece BPE, configured as Llama 1 and 2
    train_sentencepiece(text, vocab_size, "unigram") sentencepiece Unigram, same options
    train_all(text, vocab_size)                      ours and all three, as {name: tokenizer}
    compare_tokenizers(text, {name: tokenizer})      one row of statistics per tokenizer

    toks = train_all(shakespeare[:100_000], 512)
    rows = compare_tokenizers("First Citizen:\\nBefore we proceed any further, hear me speak.\\n", toks)
    rows[0] -> {'name': 'ours (byte-level BPE)', 'vocab_size': 512, 'n_tokens': 25,
                'chars_per_token': 2.44, 'bytes_per_token': 2.44, 'byte_fallback_count': 0,
                'encode_ms': 0.2, 'tokens': ['First', ' Citizen', ':\\n', 'B', 'e', 'f', 'ore', ...]}
    rows[2]['tokens'] (sentencepiece BPE) -> [' F', 'irst', ' Citizen', ':', '<0x0A>', 'B', ...]

Everything is trained in memory: sentencepiece writes its model into a BytesIO
and no file is left behind. The libraries are imported inside the functions, so
`import llama.tokenizer` stays light.

Small texts (what a learner pastes) are the normal case here, so vocabulary
sizes bend rather than break: every trainer stops early when the text supports
no more tokens (so `vocab_size` in the rows may be smaller than asked), and
sentencepiece, which needs one piece per character it keeps (those covering
99.995% of the text's characters) besides its 256 byte pieces, raises a
ValueError naming the minimum, which `train_all` then uses.
"""

from __future__ import annotations

import io
import re
import time

from .base import SPLIT_PATTERN, token_string_to_bytes
from .bpe import DEFAULT_SPECIAL_TOKENS, MAX_TRAIN_CHARS, BPETokenizer


CHARACTER_COVERAGE = 0.99995  # Llama 1/2's: the rarest characters (0.005% of the text) get no piece, only bytes


class VocabTooSmall(ValueError):
    """sentencepiece needs a larger vocabulary for this text; `.minimum` says how large."""

    def __init__(self, message: str, minimum: int):
        super().__init__(message)
        self.minimum = minimum


def _check(text: str, vocab_size: int, n_special: int) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if not text.strip():
        raise ValueError("cannot train on an empty text")
    if len(text) > MAX_TRAIN_CHARS:
        raise ValueError(f"training text has {len(text):,} characters; the limit is {MAX_TRAIN_CHARS:,}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256 + n_special:
        raise ValueError(f"vocab_size={vocab_size!r} is too small: it must be at least {256 + n_special} "
                         f"({n_special} special tokens + 256 bytes)")


def train_hf_bpe(text: str, vocab_size: int, special_tokens=DEFAULT_SPECIAL_TOKENS):
    """Hugging Face `tokenizers` byte-level BPE with our pre-tokenizer: a `tokenizers.Tokenizer`.

    The whole text is one training sequence, as for ours, so both see the same
    words with the same counts. The merges come out nearly, not exactly, the
    same: Hugging Face breaks ties between equally frequent pairs by its own ids.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    _check(text, vocab_size, len(special_tokens))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def train_sentencepiece(text: str, vocab_size: int, model_type: str = "bpe"):
    """sentencepiece BPE or Unigram with byte fallback: a `SentencePieceProcessor`.

    The options are Llama 1 and 2's (LLaMA paper, Touvron et al. 2023, section 2.1:
    "we split all numbers into individual digits, and fallback to bytes to decompose
    unknown UTF-8 characters"; Meta's tokenizer.model records character_coverage
    0.99995): no normalization (the text is kept as is), a space becomes '▁' and
    one is added in front, digits are split, only the characters that together
    cover 99.995% of the training text get a piece of their own, and a character
    without one (rare, or never seen) falls back to byte pieces <0x..>.
    sentencepiece trains on lines, so it never sees a newline: encoding one
    gives the byte piece <0x0A>, exactly as Llama 2's tokenizer does.

    Ids: <s> 0, </s> 1, <pad> 2, <unk> 3 (never produced, thanks to byte fallback).
    A vocabulary larger than the text supports comes out smaller
    (hard_vocab_limit=False); one too small raises VocabTooSmall.
    """
    import sentencepiece as spm

    if model_type not in ("bpe", "unigram"):
        raise ValueError(f"model_type must be 'bpe' or 'unigram', not {model_type!r}")
    _check(text, vocab_size, 4)
    lines = [line for line in text.splitlines() if line.strip()]
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            byte_fallback=True, character_coverage=CHARACTER_COVERAGE, split_digits=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
            hard_vocab_limit=False, bos_id=0, eos_id=1, pad_id=2, unk_id=3, pad_piece="<pad>",
            # sentencepiece silently drops lines longer than this (4192 bytes by default)
            max_sentence_length=max(4192, *(len(line.encode("utf-8")) + 1 for line in lines)),
            # One thread: Unigram's scores depend on the thread count (16 by default), and its thread pool does
            # not survive a fork (the app trains in a forked child, app.background: a segfault). A lesson's text
            # trains as fast on one (0.19 s on the default text, either way).
            num_threads=1, minloglevel=2)
    except RuntimeError as e:
        m = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(e))
        if m:
            need = int(m.group(2))
            raise VocabTooSmall(f"sentencepiece needs vocab_size >= {need} for this text (4 special pieces, "
                                f"256 byte pieces and one per character it keeps); got {vocab_size}", need) from None
        raise ValueError(f"sentencepiece could not train on this text: {e}") from None
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def train_all(text: str, vocab_size: int) -> dict:
    """Ours and the three references, trained on `text` to (at most) `vocab_size`.

    sentencepiece's vocabulary is raised to its minimum if `vocab_size` is below it.
    """
    out = {
        "ours (byte-level BPE)": BPETokenizer.train(text, vocab_size),
        "tokenizers BPE": train_hf_bpe(text, vocab_size),
    }
    for model_type, name in (("bpe", "sentencepiece BPE"), ("unigram", "sentencepiece Unigram")):
        try:
            out[name] = train_sentencepiece(text, vocab_size, model_type)
        except VocabTooSmall as e:
            out[name] = train_sentencepiece(text, e.minimum, model_type)
    return out


# ----------------------------------------------------------------------------- comparison


def _readable(b: bytes) -> str:
    return b.decode("utf-8", errors="inside_llama_hex")  # the handler is registered in bpe.py


def is_partial(b: bytes) -> bool:
    """A token that is not whole characters (a piece of one): b'\\xe4\\xbd' is, b'\\xe4\\xbd\\xa0' ('你') is not."""
    try:
        b.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def _encode(tok, text: str):
    """(ids, display strings, byte-fallback count, vocab size) for one tokenizer of any supported kind."""
    if isinstance(tok, BPETokenizer):
        ids = tok.encode(text)
        return ids, lambda: tok.pieces(ids), lambda: sum(is_partial(tok.token_bytes(i)) for i in ids), tok.vocab_size
    kind = type(tok).__module__ + "." + type(tok).__name__
    if kind.startswith("sentencepiece"):
        ids = tok.encode(text)

        def pieces():
            return [tok.id_to_piece(i).replace("▁", " ") for i in ids]

        def partial_bytes():
            # A byte piece <0xNN> is part of a character only when NN >= 0x80 (a byte of a multi-byte UTF-8
            # character); <0x0A>, a newline sentencepiece never learns as a piece, is a whole character.
            return sum(tok.is_byte(i) and int(tok.id_to_piece(i)[3:5], 16) >= 0x80 for i in ids)

        return ids, pieces, partial_bytes, tok.get_piece_size()
    if hasattr(tok, "encode") and hasattr(tok, "get_vocab_size"):  # a tokenizers.Tokenizer
        enc = tok.encode(text)
        byte_level = type(tok.decoder).__name__ == "ByteLevel"

        def pieces():
            if byte_level:
                return [_readable(token_string_to_bytes(t)) for t in enc.tokens]
            return list(enc.tokens)

        def fallbacks():
            return sum(is_partial(token_string_to_bytes(t)) for t in enc.tokens) if byte_level else 0

        return enc.ids, pieces, fallbacks, tok.get_vocab_size()
    raise TypeError(f"cannot compare a {kind}: expected BPETokenizer, tokenizers.Tokenizer or SentencePieceProcessor")


def compare_tokenizers(text: str, tokenizers) -> list[dict]:
    """Encode `text` with each tokenizer and return one row per tokenizer.

    `tokenizers` is {name: tokenizer} (a list or tuple is named by position).
    Each row holds name, vocab_size, n_tokens, chars_per_token, bytes_per_token,
    byte_fallback_count, encode_ms and tokens (one display string per token).

    byte_fallback_count counts tokens that are parts of characters rather than
    whole characters, by one definition for every kind: sentencepiece's <0x..>
    byte pieces of bytes 0x80 and above (a <0x0A> newline piece is a whole
    character), and for byte-level BPE the tokens whose bytes are only part of a
    character. encode_ms is one timed call,
    as the learner would experience it.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if not isinstance(tokenizers, dict):
        tokenizers = {f"tokenizer {k}": t for k, t in enumerate(tokenizers)}
    n_chars, n_bytes = len(text), len(text.encode("utf-8"))
    rows = []
    for name, tok in tokenizers.items():
        t0 = time.perf_counter()
        ids, pieces, fallbacks, vocab_size = _encode(tok, text)
        encode_ms = (time.perf_counter() - t0) * 1000
        n = len(ids)
        rows.append({
            "name": name,
            "vocab_size": vocab_size,
            "n_tokens": n,
            "chars_per_token": n_chars / n if n else 0.0,
            "bytes_per_token": n_bytes / n if n else 0.0,
            "byte_fallback_count": int(fallbacks()),
            "encode_ms": encode_ms,
            "tokens": pieces(),
        })
    return rows
