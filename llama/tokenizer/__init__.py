"""The tokenization lesson's code: a from-scratch byte-level BPE, in layers.

    base.py        the parts: pair counting, merging, GPT-2's byte-to-unicode table,
                   Llama 3's split regex (made to agree with Hugging Face's engine)
    bpe.py         BPETokenizer: incremental training, encode/decode, merge history,
                   special tokens, Hugging Face tokenizer.json save/load
    interface.py   the small `Tokenizer` interface the lessons use, HFTokenizer (tokenizers) and
                   SentencePieceTokenizer (sentencepiece) for real checkpoints, and
                   `load_tokenizer(directory)`, which picks the right one
    references.py  the library trainers to compare against (Hugging Face tokenizers,
                   sentencepiece BPE and Unigram) and `compare_tokenizers`

    from llama.tokenizer import BPETokenizer
    tok = BPETokenizer.train(text, vocab_size=2048)      # ids 0,1,2 = <s>, </s>, <pad>
    ids = tok.encode("To be, or not to be", add_bos=True)
    tok.decode(ids), tok.pieces(ids), tok.merges[0]
    tok.save("tokenizer.json")                           # tokenizers.Tokenizer.from_file reads it

references.py imports `tokenizers` and `sentencepiece` only when its functions run.
"""

from .base import GPT2_SPLIT_PATTERN, SPLIT_PATTERN, bytes_to_unicode, get_stats, merge, pretokenize
from .bpe import DEFAULT_SPECIAL_TOKENS, MAX_ENCODE_CHARS, MAX_TRAIN_CHARS, BPETokenizer, Merge
from .interface import (UNUSED, HFTokenizer, PaddedTokenizer, SentencePieceTokenizer, Tokenizer, decode_continuation,
                        for_model, is_own_tokenizer_json, load_tokenizer)
from .references import compare_tokenizers, train_all, train_hf_bpe, train_sentencepiece

__all__ = [
    "BPETokenizer", "Merge", "DEFAULT_SPECIAL_TOKENS", "MAX_TRAIN_CHARS", "MAX_ENCODE_CHARS", "SPLIT_PATTERN",
    "GPT2_SPLIT_PATTERN", "bytes_to_unicode", "get_stats", "merge", "pretokenize",
    "Tokenizer", "HFTokenizer", "SentencePieceTokenizer", "load_tokenizer", "is_own_tokenizer_json",
    "decode_continuation", "PaddedTokenizer", "for_model", "UNUSED",
    "train_hf_bpe", "train_sentencepiece", "train_all", "compare_tokenizers",
]
