"""Layer 1: a byte-level BPE tokenizer you can train, read, and hand to Hugging Face.

What it adds to base.py: learning merges from text, encoding and decoding with
them, special tokens, the merge history, and the tokenizer.json file format.

Ids, for the default special tokens:

    0, 1, 2     <s> (BOS), </s> (EOS), <pad> (PAD): `special_tokens` in the order given
    3 .. 258    the 256 bytes: byte b is id 3 + b
    259 ..      one new token per merge, in the order learned: merge k makes id 259 + k

so `vocab_size` = specials + 256 + merges.

Training is incremental, which is what makes it fast enough to run live:

  1. pre-tokenize the text once and count the unique words ({' the': 5318, ...});
  2. count adjacent pairs once, over unique words, weighted by their counts;
  3. repeatedly take the most frequent pair (ties: the smallest ids), give it a
     new id, and rewrite only the words that contain it; in those, only the
     neighbours of each occurrence change: x a b y -> x X y takes (x, a) (a, b)
     (b, y) away from the counts and adds (x, X) (X, y). A heap keeps the most
     frequent pair at hand.

A naive trainer recounts every pair in the corpus after every merge; that is
the same result (tests/test_tokenizer.py checks it) a few hundred times slower.

    >>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=262)
    >>> [(m.step, m.left, m.right, m.token, m.count) for m in tok.merges]
    [(0, 'l', 'o', 'lo', 150), (1, 'lo', 'w', 'low', 150), (2, 'Ġ', 'low', 'Ġlow', 149)]
    >>> tok.encode("lowest"), tok.encode("lowest", upto_merge=0)
    ([260, 104, 118, 119], [111, 114, 122, 104, 118, 119])
    >>> tok.pieces(tok.encode(" lower"))
    [' low', 'e', 'r']

Encoding a word applies the learned merges in the order they were learned (the
lowest-ranked pair present first), exactly as Hugging Face's BPE model does, so
`BPETokenizer.load(path)` and `tokenizers.Tokenizer.from_file(path)` give the
same ids for any text; tests/test_tokenizer.py checks that with hypothesis.
`encode(text, upto_merge=k)` uses only the first k merges: the text as the
tokenizer would have cut it after k training steps.

Special tokens are atomic: they never take part in merges, a special token's
text inside the input becomes its id (as in Hugging Face), and `encode` adds
BOS/EOS on request.
"""

from __future__ import annotations

import codecs
import heapq
import json
import os
import threading
import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import regex

from .base import (GPT2_SPLIT_PATTERN, SPLIT_PATTERN, bytes_to_token_string, get_stats, merge, pretokenize,
                   token_string_to_bytes, unicode_to_bytes)

DEFAULT_SPECIAL_TOKENS = ("<s>", "</s>", "<pad>")
# The BPE model fields of a tokenizer.json that `from_json_dict` knows (each reproduced or refused).
_MODEL_KEYS = {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
               "byte_fallback", "ignore_merges", "vocab", "merges", "inside_llama"}  # BOS, EOS, PAD -> ids 0, 1, 2

# Training time grows with the text: about 0.5 s per MB of natural text at vocabulary
# 2048, and up to ~15 s per MB for the worst case we know (random letter strings,
# where every word is unique and no pair dominates). A text over this limit is
# refused up front rather than left to run for minutes; TinyShakespeare is 1.1 M.
MAX_TRAIN_CHARS = 2_000_000
# Encoding is cheaper (about 0.3 s per MB, ~3 s per MB for one giant word), but
# the lesson encodes whatever is pasted.
MAX_ENCODE_CHARS = 20_000_000
# Words longer than this many bytes are encoded with a heap instead of the simple loop (see _encode_long_word).
LONG_WORD = 64

_ROLES = ("bos", "eos", "pad")  # what the first three special tokens are
# Names that say a special token's role when a tokenizer.json we did not write is loaded.
_ROLE_NAMES = {
    "bos": ("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "[CLS]"),
    "eos": ("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", "<|eot_id|>", "[SEP]"),
    "pad": ("<pad>", "<|pad|>", "[PAD]"),
}


def _hex_bytes(err: UnicodeDecodeError):
    """Codec error handler: show a byte that is not (part of) a whole character as <0xE4>."""
    return "".join(f"<0x{b:02X}>" for b in err.object[err.start:err.end]), err.end


codecs.register_error("inside_llama_hex", _hex_bytes)


@dataclass(frozen=True)
class Merge:
    """One training step: `pair` became `new_id`.

    `count` is how often the pair occurred in the training words when it was
    merged (None when loaded from a file that does not record it); `left`,
    `right` and `token` are the Hugging Face spellings: 'Ġ' + 't' -> 'Ġt'.
    """

    step: int
    pair: tuple[int, int]
    new_id: int
    count: int | None
    left: str
    right: str
    token: str


# Every tokenizer, so that a forked child (the app runs heavy jobs in one) gets a fresh cache lock: the thread that
# held the parent's at the fork does not exist in the child.
_TOKENIZERS: weakref.WeakSet = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: [setattr(t, "_cache_lock", threading.Lock()) for t in list(_TOKENIZERS)])


class BPETokenizer:
    """A trained byte-level BPE: `train`, `encode`, `decode`, `save`, `load`.

    Build one with `BPETokenizer.train(text, vocab_size)` or `BPETokenizer.load(path)`;
    the constructor takes the learned tables directly:

        vocab           {id: bytes} for every ordinary token (all 256 bytes among them)
        merges          [((left_id, right_id), new_id, count), ...] in the order learned
        special_tokens  {text: id}; the first three are BOS, EOS, PAD unless `roles` says otherwise
        not_special     texts among special_tokens that a tokenizer.json marks "special": false:
                        atomic in encoding like the others, but kept by decode(skip_special_tokens=True)
    """

    def __init__(self, vocab, merges, special_tokens=None, *, pattern=SPLIT_PATTERN, roles=None, ignore_merges=False,
                 not_special=()):
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.not_special: frozenset[str] = frozenset(not_special)
        if not self.not_special <= set(self.special_tokens):
            raise ValueError(f"not_special {sorted(self.not_special - set(self.special_tokens))} are not added tokens")
        self.pattern = pattern
        self.ignore_merges = ignore_merges
        self._vocab: dict[int, bytes] = dict(vocab)
        self._id_of_bytes = {b: i for i, b in self._vocab.items()}
        if len(self._id_of_bytes) != len(self._vocab):
            raise ValueError("two token ids have the same bytes; a tokenizer.json vocabulary cannot hold that")
        clash = set(self._vocab) & set(self.special_tokens.values())
        if clash:
            raise ValueError(f"ids {sorted(clash)} are both special and ordinary tokens")
        missing = [b for b in range(256) if bytes([b]) not in self._id_of_bytes]
        if missing:
            raise ValueError(f"not a byte-level vocabulary: no token for bytes {missing[:8]}")
        self._byte_ids = [self._id_of_bytes[bytes([b])] for b in range(256)]
        self._special_of_id = {i: s for s, i in self.special_tokens.items()}
        self._skippable = {i for s, i in self.special_tokens.items() if s not in self.not_special}

        self.merges: list[Merge] = []
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}  # pair -> (step, new_id)
        for step, (pair, new_id, count) in enumerate(merges):
            pair = (int(pair[0]), int(pair[1]))
            parts = [self._vocab.get(i) for i in pair]
            if None in parts or self._vocab.get(new_id) != parts[0] + parts[1]:
                raise ValueError(f"merge {step} {pair} -> {new_id}: the new token is not the two tokens joined")
            self._ranks.setdefault(pair, (step, new_id))
            self.merges.append(Merge(step, pair, new_id, count, self.id_to_token(pair[0]),
                                     self.id_to_token(pair[1]), self.id_to_token(new_id)))

        if roles is None:  # by position: (BOS, EOS, PAD) as in DEFAULT_SPECIAL_TOKENS
            roles = dict(zip(_ROLES, sorted(self.special_tokens, key=self.special_tokens.get)))
        self.roles: dict[str, str] = {r: s for r, s in roles.items() if s in self.special_tokens}
        self._special_re = None
        if self.special_tokens:
            # Longest first, so at any position the longest special token wins, as in Hugging Face.
            alternatives = sorted(self.special_tokens, key=len, reverse=True)
            self._special_re = regex.compile("(" + "|".join(regex.escape(s) for s in alternatives) + ")")
        # word -> ids, shared by every thread that encodes with this tokenizer (the app's learners).
        # Lookups are single dict reads; the lock makes "clear when full, then insert" one step.
        self._cache: dict[str, list[int]] = {}
        self._cache_lock = threading.Lock()
        _TOKENIZERS.add(self)

    def __getstate__(self) -> dict:
        """For copy/deepcopy/pickle (a gr.State holding a tokenizer is deep-copied): no lock, an empty cache."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_cache", "_cache_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cache, self._cache_lock = {}, threading.Lock()
        _TOKENIZERS.add(self)

    # ------------------------------------------------------------------------- training

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens=DEFAULT_SPECIAL_TOKENS, *, pattern=SPLIT_PATTERN,
              on_merge=None) -> "BPETokenizer":
        """Learn merges from `text` until the vocabulary has `vocab_size` tokens.

        `vocab_size` counts everything: specials + 256 bytes + merges. It must
        be at least specials + 256. If the text runs out of pairs first (every
        word already a single token), training stops there: the vocabulary is
        then smaller than asked, which is what `.vocab_size` reports. A pair
        whose bytes are already a token (reached through another pair) or spell
        a special token is skipped, so every merge makes a new, distinct token.
        `on_merge(merge)` is called after each step (for a live progress view).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        specials = _check_special_tokens(special_tokens)
        n_base = len(specials) + 256
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, not {type(vocab_size).__name__}")
        if vocab_size < n_base:
            raise ValueError(f"vocab_size={vocab_size} is too small: it must be at least {n_base} "
                             f"({len(specials)} special tokens + 256 byte tokens)")
        if not text:
            raise ValueError("cannot train on an empty text")
        if len(text) > MAX_TRAIN_CHARS:
            raise ValueError(f"training text has {len(text):,} characters; the limit is MAX_TRAIN_CHARS="
                             f"{MAX_TRAIN_CHARS:,} (train on a slice)")

        # 1. Unique words with their counts. Special tokens are cut out first, as encode does.
        special_ids = {s: i for i, s in enumerate(specials)}
        words: Counter[str] = Counter()
        for piece, is_special in _split_on_specials(text, _specials_regex(specials)):
            if not is_special:
                words.update(pretokenize(piece, pattern))
        if not words:
            raise ValueError("the training text holds nothing but special tokens")
        vocab = {len(specials) + b: bytes([b]) for b in range(256)}
        word_ids = [[len(specials) + b for b in w.encode("utf-8")] for w in words]
        freqs = list(words.values())

        # 2. Pair counts, once. `where` remembers which words hold a pair, so a merge visits only those.
        counts: dict[tuple[int, int], int] = {}
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for w, (ids, freq) in enumerate(zip(word_ids, freqs)):
            get_stats(ids, counts, freq)
            for pair in zip(ids, ids[1:]):
                where[pair].add(w)
        # A max-heap by count (negated for heapq); ties go to the smallest pair of ids.
        # Entries go stale when a count changes; a fresh one is pushed, and stale ones are skipped on pop.
        heap = [(-c, pair) for pair, c in counts.items()]
        heapq.heapify(heap)

        # 3. Merge, updating only what the merge touched.
        known = set(vocab.values())
        special_spellings = set(specials)
        skipped: set[tuple[int, int]] = set()
        merges = []
        while n_base + len(merges) < vocab_size:
            best = _pop_most_frequent(heap, counts, skipped)
            if best is None:
                break  # no pair left anywhere: the text supports no more merges
            pair, count = best
            new_bytes = vocab[pair[0]] + vocab[pair[1]]
            if new_bytes in known or bytes_to_token_string(new_bytes) in special_spellings:
                skipped.add(pair)  # never to be merged; its count stays true for the other pairs' sake
                continue
            new_id = n_base + len(merges)
            vocab[new_id] = new_bytes
            known.add(new_bytes)
            merges.append((pair, new_id, count))

            delta: defaultdict[tuple[int, int], int] = defaultdict(int)
            for w in where.pop(pair):
                for p in _merge_in_word(word_ids, w, pair, new_id, freqs[w], delta):
                    where[p].add(w)
            for p, d in delta.items():
                if d:
                    c = counts.get(p, 0) + d
                    if c > 0:
                        counts[p] = c
                        heapq.heappush(heap, (-c, p))
                    else:
                        counts.pop(p, None)
            if on_merge is not None:
                on_merge(_merge_record(len(merges) - 1, pair, new_id, count, vocab))

        return cls(vocab, merges, special_ids, pattern=pattern)

    # ------------------------------------------------------------------------- encoding

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False,
               upto_merge: int | None = None) -> list[int]:
        """Text -> ids. `upto_merge=k` uses only the first k merges (k=0: plain bytes).

        "hello" -> [104, 101, 108, 108, 111] at k=0 (bytes + 3), fewer ids as k grows.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        if len(text) > MAX_ENCODE_CHARS:
            raise ValueError(f"text has {len(text):,} characters; the limit is MAX_ENCODE_CHARS={MAX_ENCODE_CHARS:,}")
        if upto_merge is not None and not (0 <= upto_merge <= len(self.merges)):
            raise ValueError(f"upto_merge must be between 0 and {len(self.merges)}, not {upto_merge}")
        limit = len(self.merges) if upto_merge is None else upto_merge
        ids = [self._role_id("bos")] if add_bos else []
        for piece, is_special in _split_on_specials(text, self._special_re):
            if is_special:
                ids.append(self.special_tokens[piece])
                continue
            for word in pretokenize(piece, self.pattern):
                if limit == len(self.merges):
                    cached = self._cache.get(word)
                    if cached is None:
                        cached = tuple(self._encode_word(word, limit))  # a tuple: no caller can change it
                        with self._cache_lock:
                            if len(self._cache) >= 500_000:
                                self._cache.clear()  # bound the memory; words repeat, so it refills quickly
                            self._cache[word] = cached
                    ids.extend(cached)
                else:
                    ids.extend(self._encode_word(word, limit))
        if add_eos:
            ids.append(self._role_id("eos"))
        return ids

    def encode_as_of(self, text: str, k: int) -> list[int]:
        """`text` as the tokenizer cut it after k training steps: encode(text, upto_merge=k)."""
        return self.encode(text, upto_merge=k)

    def _encode_word(self, word: str, limit: int) -> list[int]:
        """One pre-tokenized word -> ids: apply merges in learned order, the earliest present first.

        ' the' -> bytes [35, 119, 107, 104] -> merge 0 ('Ġ', 't') -> [259, 107, 104]
               -> merge 1 ('h', 'e') -> [259, 260] -> merge 12 ('Ġt', 'he') -> [271]   (TinyShakespeare)
        """
        if self.ignore_merges and limit == len(self.merges):
            whole = self._id_of_bytes.get(word.encode("utf-8"))
            if whole is not None:  # Hugging Face's ignore_merges: a word in the vocabulary is one token
                return [whole]
        ids = [self._byte_ids[b] for b in word.encode("utf-8")]
        if len(ids) > LONG_WORD:
            return self._encode_long_word(ids, limit)
        ranks = self._ranks
        never = (limit, -1)
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, never)[0])
            step, new_id = ranks.get(pair, never)
            if step >= limit:
                break  # no pair in this word was merged within the first `limit` steps
            ids = merge(ids, pair, new_id)
        return ids

    def _encode_long_word(self, ids: list[int], limit: int) -> list[int]:
        """The same result as the loop in `_encode_word`, for long words.

        The loop rescans the whole word once per merge it applies, which is
        quadratic: a 100,000-letter word would take seconds. Here every adjacent
        pair waits in a heap keyed (step, position), the symbols form a linked
        list, and a merge only pushes the two pairs it creates: O(n log n), the
        algorithm of Hugging Face's BPE model. Pairs of equal step pop left to
        right, and a pair made by merge s can only have a later step, so the
        merges happen in the same order as in the loop.
        """
        ranks = self._ranks
        n = len(ids)
        sym = list(ids)
        nxt = [*range(1, n), -1]  # linked list over positions; a merged-away position is dead
        prv = [*range(-1, n - 1)]
        dead = [False] * n

        def candidate(i, j):
            r = ranks.get((sym[i], sym[j]))
            return None if r is None or r[0] >= limit else (r[0], i)

        heap = [c for c in (candidate(i, i + 1) for i in range(n - 1)) if c]
        heapq.heapify(heap)
        while heap:
            step, i = heapq.heappop(heap)
            j = nxt[i]
            if dead[i] or j == -1 or ranks.get((sym[i], sym[j]), (-1,))[0] != step:
                continue  # stale: this position's pair changed since it was pushed
            sym[i] = ranks[(sym[i], sym[j])][1]
            dead[j] = True
            nxt[i] = nxt[j]
            if nxt[j] != -1:
                prv[nxt[j]] = i
            for c in (candidate(prv[i], i) if prv[i] != -1 else None, candidate(i, nxt[i]) if nxt[i] != -1 else None):
                if c:
                    heapq.heappush(heap, c)
        return [sym[i] for i in range(n) if not dead[i]]

    # ------------------------------------------------------------------------- decoding and display

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text. Bytes that do not form valid UTF-8 (a token sequence cut
        inside a character) become U+FFFD, one per maximal invalid run, exactly as
        Hugging Face's ByteLevel decoder (Rust's from_utf8_lossy) does."""
        skip = self._skippable if skip_special_tokens else ()
        parts = [self.token_bytes(i) for i in ids if i not in skip]
        return b"".join(parts).decode("utf-8", errors="replace")

    def token_bytes(self, i: int) -> bytes:
        """The bytes a token stands for: 262 -> b' t'. A special token stands for its text."""
        if i in self._vocab:
            return self._vocab[i]
        if i in self._special_of_id:
            return token_string_to_bytes(self._special_of_id[i])
        raise ValueError(f"token id {i!r} is not in the vocabulary (0..{self.vocab_size - 1})")

    def id_to_token(self, i: int) -> str:
        """The token as a Hugging Face vocabulary spells it: 262 -> 'Ġt'; specials as themselves."""
        if i in self._special_of_id:
            return self._special_of_id[i]
        return bytes_to_token_string(self.token_bytes(i))

    def token_to_id(self, token: str) -> int | None:
        """'Ġt' -> 262; None for a string that is not a token."""
        if token in self.special_tokens:
            return self.special_tokens[token]
        try:
            return self._id_of_bytes.get(bytes(unicode_to_bytes()[c] for c in token))
        except KeyError:
            return None

    def pieces(self, ids) -> list[str]:
        """Readable text of each token, for colouring: [262, 104, 101] -> [' t', 'h', 'e'].

        A token holding only part of a character shows its bytes: 'é' cut into two
        tokens reads ['<0xC3>', '<0xA9>'], the notation sentencepiece uses.
        """
        return [self.token_bytes(i).decode("utf-8", errors="inside_llama_hex") for i in ids]

    # ------------------------------------------------------------------------- facts

    @property
    def vocab_size(self) -> int:
        return len(self._vocab) + len(self.special_tokens)

    @property
    def bos_id(self) -> int | None:
        return self.special_tokens.get(self.roles.get("bos"))

    @property
    def eos_id(self) -> int | None:
        return self.special_tokens.get(self.roles.get("eos"))

    @property
    def pad_id(self) -> int | None:
        return self.special_tokens.get(self.roles.get("pad"))

    def _role_id(self, role: str) -> int:
        i = self.special_tokens.get(self.roles.get(role))
        if i is None:
            raise ValueError(f"this tokenizer has no {role.upper()} token")
        return i

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens})")

    # ------------------------------------------------------------------------- tokenizer.json

    def to_json_dict(self) -> dict:
        """The Hugging Face tokenizer.json content: a BPE model whose pre-tokenizer
        is our regex split followed by the ByteLevel byte mapping (use_regex=False,
        so the bytes are not split a second time), and a ByteLevel decoder.

        Merge counts and special-token roles ride in the model section under
        "inside_llama": Hugging Face ignores unknown keys there (it refuses them
        at the top level). Without them a loaded tokenizer has counts of None.
        """
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
        if self.pattern == GPT2_SPLIT_PATTERN:  # Hugging Face's own ByteLevel split is exactly GPT-2's
            pre_tokenizer = dict(byte_level, use_regex=True)
        else:
            pre_tokenizer = {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": self.pattern}, "behavior": "Isolated", "invert": False},
                byte_level]}
        vocab = {self.id_to_token(i): i for i in sorted([*self._vocab, *self._special_of_id])}
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": s not in self.not_special}
                             for s, i in self.special_tokens.items()],
            "normalizer": None,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": None,
            "decoder": byte_level,
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                "ignore_merges": self.ignore_merges,
                "vocab": vocab,
                "merges": [[m.left, m.right] for m in self.merges],
                "inside_llama": {"merge_counts": [m.count for m in self.merges], "special_roles": self.roles},
            },
        }

    def save(self, path) -> Path:
        """Write a Hugging Face tokenizer.json to `path` (or path/tokenizer.json for a folder); returns the file."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        path.write_text(json.dumps(self.to_json_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path) -> "BPETokenizer":
        """Read a tokenizer.json: ours, or any Hugging Face byte-level BPE that splits
        with a regex (Split + ByteLevel) or with ByteLevel's own GPT-2 regex. Anything
        that would change the ids in a way this class does not compute (a normalizer,
        a post-processor adding tokens, dropout, subword prefixes) is refused."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        return cls.from_json_dict(d)

    @classmethod
    def from_json_dict(cls, d: dict) -> "BPETokenizer":
        """Build from a tokenizer.json's content. Every option is either reproduced exactly or refused
        with a ValueError naming it: nothing is silently approximated."""
        model = d.get("model") or {}
        if model.get("type", "BPE") != "BPE" or "merges" not in model:
            raise ValueError(f"not a BPE tokenizer (model type {model.get('type')!r})")
        unknown = sorted(set(model) - _MODEL_KEYS)
        if unknown:
            raise ValueError(f"unsupported BPE model options {unknown}")
        for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(key):
                raise ValueError(f"unsupported BPE option {key}={model[key]!r}")
        if model.get("byte_fallback"):
            raise ValueError("unsupported BPE option byte_fallback=true (not a byte-level BPE)")
        for key in ("truncation", "padding"):
            if d.get(key) is not None:
                raise ValueError(f"unsupported tokenizer.json option {key}={d[key]!r}: it changes the ids of an encoding")
        if d.get("normalizer") is not None:
            raise ValueError(f"unsupported normalizer {d['normalizer'].get('type')!r}: it changes the text before splitting")
        post = d.get("post_processor")
        if post is not None and post.get("type") != "ByteLevel":
            raise ValueError(f"unsupported post-processor {post.get('type')!r}: it would add tokens to every encoding")
        decoder = d.get("decoder") or {}
        if decoder.get("type") != "ByteLevel":
            raise ValueError(f"unsupported decoder {decoder.get('type')!r}: a byte-level BPE decodes with ByteLevel")
        pattern = _pattern_of(d.get("pre_tokenizer"))

        specials, not_special = {}, set()
        for t in sorted(d.get("added_tokens") or [], key=lambda t: t["id"]):
            for key in ("single_word", "lstrip", "rstrip"):
                if t.get(key):
                    raise ValueError(f"unsupported added token option {key}=true on {t['content']!r}")
            specials[t["content"]] = t["id"]
            if not t.get("special", True):
                not_special.add(t["content"])
        table = unicode_to_bytes()
        vocab = {}
        for token, i in model["vocab"].items():
            if token in specials:
                if specials[token] != i:
                    raise ValueError(f"special token {token!r} has id {specials[token]} and vocabulary id {i}")
                continue
            if any(c not in table for c in token):
                raise ValueError(f"vocabulary entry {token!r} is not written in ByteLevel characters")
            vocab[i] = bytes(table[c] for c in token)
        ids = {bytes_to_token_string(b): i for i, b in vocab.items()}
        extra = model.get("inside_llama") or {}
        counts = extra.get("merge_counts") or [None] * len(model["merges"])
        merges = []
        for step, m in enumerate(model["merges"]):
            left, right = m.split(" ", 1) if isinstance(m, str) else m
            try:
                merges.append(((ids[left], ids[right]), ids[left + right], counts[step]))
            except KeyError as e:
                raise ValueError(f"merge {step} ({left!r}, {right!r}) uses a token missing from the vocabulary: {e}")
        roles = extra.get("special_roles")
        if roles is None:
            roles = {r: s for r, names in _ROLE_NAMES.items() for s in specials if s in names}
        return cls(vocab, merges, specials, pattern=pattern, roles=roles,
                   ignore_merges=bool(model.get("ignore_merges")), not_special=not_special)


# ----------------------------------------------------------------------------- helpers


def _check_special_tokens(special_tokens) -> tuple[str, ...]:
    if isinstance(special_tokens, str):
        raise TypeError("special_tokens must be a sequence of strings, e.g. ('<s>', '</s>', '<pad>')")
    specials = tuple(special_tokens or ())
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special tokens must be non-empty strings, not {s!r}")
        if s in unicode_to_bytes():
            raise ValueError(f"special token {s!r} is also the spelling of a byte token")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct: {specials}")
    return specials


def _specials_regex(specials):
    if not specials:
        return None
    return regex.compile("(" + "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")")


def _split_on_specials(text, special_re):
    """'a<s>b' -> [('a', False), ('<s>', True), ('b', False)], empty pieces left out."""
    if special_re is None:
        return [(text, False)] if text else []
    parts = special_re.split(text)
    # split with one capturing group alternates: text, special, text, special, ..., text
    return [(p, k % 2 == 1) for k, p in enumerate(parts) if p]


def _merge_in_word(word_ids, w, pair, new_id, freq, delta):
    """Merge `pair` inside training word `w` (in place) and add the pair-count changes to `delta`
    (a defaultdict(int)).

    Only the neighbours of an occurrence change: x a b y -> x X y turns (x, a) (a, b) (b, y)
    into (x, X) (X, y), each weighted by the word's count `freq`. Two occurrences side by
    side (a b a b -> X X) share their middle pair, which becomes (X, X) once.

        [1, 2, 3, 1, 2], pair (1, 2) -> 9, freq 1
        -> [9, 3, 9], delta {(1, 2): -2, (2, 3): -1, (3, 1): -1, (9, 3): 1, (3, 9): 1}

    Returns the new pairs (those holding `new_id`); none if the pair had already left the word.
    The work is proportional to the occurrences, not to the word, so a 100,000-letter word costs
    little more than a short one.
    """
    ids = word_ids[w]
    a, b = pair
    found = []
    i, last = 0, len(ids) - 1
    while True:
        try:
            i = ids.index(a, i, last)  # jump to the next `a` that has a right neighbour
        except ValueError:
            break
        if ids[i + 1] == b:
            found.append(i)
            i += 2  # occurrences never overlap: [a, a, a] merges (a, a) once, like `merge`
        else:
            i += 1
    if not found:
        return ()

    new_pairs = []
    for k, i in enumerate(found):
        joined_left = k > 0 and found[k - 1] == i - 2  # ... a b | a b ...: the previous one is our left
        joined_right = k + 1 < len(found) and found[k + 1] == i + 2
        delta[pair] -= freq
        if i > 0:
            if joined_left:  # (b, a) was taken away by the previous occurrence
                p = (new_id, new_id)
            else:
                delta[ids[i - 1], a] -= freq
                p = (ids[i - 1], new_id)
            delta[p] += freq
            new_pairs.append(p)
        if i + 2 < len(ids):
            delta[b, ids[i + 2]] -= freq
            if not joined_right:  # else the next occurrence adds (X, X)
                p = (new_id, ids[i + 2])
                delta[p] += freq
                new_pairs.append(p)

    merged, start = [], 0
    for i in found:
        merged += ids[start:i]
        merged.append(new_id)
        start = i + 2
    merged += ids[start:]
    word_ids[w] = merged
    return new_pairs


def _pop_most_frequent(heap, counts, skipped):
    """The (pair, count) with the highest current count, passing over stale heap entries and
    skipped pairs; None when nothing is left."""
    while heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair) == -neg and pair not in skipped:
            return pair, -neg
    return None


def _merge_record(step, pair, new_id, count, vocab) -> Merge:
    spell = bytes_to_token_string
    return Merge(step, pair, new_id, count, spell(vocab[pair[0]]), spell(vocab[pair[1]]), spell(vocab[new_id]))


def _pattern_of(pre_tokenizer) -> str:
    """The split regex a Hugging Face pre-tokenizer applies before the ByteLevel mapping."""
    pt = pre_tokenizer or {}
    steps = pt.get("pretokenizers", []) if pt.get("type") == "Sequence" else [pt]
    if len(steps) == 1 and steps[0].get("type") == "ByteLevel" and steps[0].get("use_regex", True) \
            and not steps[0].get("add_prefix_space"):
        return GPT2_SPLIT_PATTERN
    if (len(steps) == 2 and steps[0].get("type") == "Split" and "Regex" in steps[0].get("pattern", {})
            and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert")
            and steps[1].get("type") == "ByteLevel" and not steps[1].get("use_regex", True)
            and not steps[1].get("add_prefix_space")):
        return steps[0]["pattern"]["Regex"]
    found = [{k: v for k, v in st.items() if k != "pattern"} for st in steps]
    raise ValueError(f"unsupported pre-tokenizer {found}: expected Split(Regex, Isolated) then "
                     "ByteLevel(use_regex=false), or ByteLevel(use_regex=true), without add_prefix_space")
