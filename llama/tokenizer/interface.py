"""Layer 3: the small interface every tokenizer of the course offers, and `load_tokenizer`.

The lessons only ever ask a tokenizer these things (see `Tokenizer`): ids for a
text, text for ids, a readable piece per token, the bytes a token stands for,
and the BOS/EOS/PAD ids. Three classes provide them:

    BPETokenizer            our from-scratch byte-level BPE (bpe.py): the course model's
                            tokenizer, and the one the tokenization lesson trains
    HFTokenizer             any Hugging Face tokenizer.json, run by the `tokenizers` library:
                            Llama 3's 128K byte-level BPE, Llama 2's converted sentencepiece, ...
    SentencePieceTokenizer  a sentencepiece `tokenizer.model` (Llama 1/2), run by `sentencepiece`

    >>> tok = load_tokenizer("../shared/models/stories260K")   # HFTokenizer (see below)
    >>> ids = tok.encode("Once upon a time", add_bos=True)
    >>> ids, tok.pieces(ids)
    ([1, 403, 407, 261, 378], ['<s>', ' Once', ' upon', ' a', ' time'])

Which file `load_tokenizer(directory)` reads:

  1. tokenizer.json written by our BPETokenizer (it carries an "inside_llama" block in its
     model section) -> BPETokenizer, so the course model keeps its own from-scratch code;
  2. any other tokenizer.json -> HFTokenizer. This is what transformers 5's AutoTokenizer runs
     too, so the ids are transformers' ids by construction. We prefer it to tokenizer.model when
     a directory holds both: a converted tokenizer.json is not always identical to its
     sentencepiece model (stories260K's sentencepiece model collapses runs of spaces,
     `remove_extra_whitespaces`; its tokenizer.json, and transformers, do not), and transformers
     is the reference the lessons compare with;
  3. only tokenizer.model -> SentencePieceTokenizer (transformers itself needs the protobuf
     package to convert it; `sentencepiece` reads it directly).

The BOS/EOS/PAD roles come from tokenizer_config.json when it names them (`bos_token`,
...), else from the usual spellings (`<s>`, `<|begin_of_text|>`, `<|end_of_text|>`, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

from .base import unicode_to_bytes
from .bpe import _ROLE_NAMES, BPETokenizer


@runtime_checkable
class Tokenizer(Protocol):
    """What a lesson may ask of a tokenizer (`cm.tokenizer`)."""

    vocab_size: int
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    special_tokens: dict[str, int]  # text -> id of every special (control) token

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]: ...

    def decode(self, ids, skip_special_tokens: bool = False) -> str: ...

    def pieces(self, ids) -> list[str]:
        """Readable text of each token; a token holding part of a character shows its bytes, '<0xE4>'."""

    def token_bytes(self, i: int) -> bytes: ...

    def id_to_token(self, i: int) -> str:
        """The token as the vocabulary spells it ('Ġthe', '▁the', '<s>')."""

    def token_to_id(self, token: str) -> int | None: ...


def _checked_ids(ids, vocab_size: int) -> list[int]:
    """ids as a list of ints, or a ValueError naming the first one outside 0..vocab_size-1."""
    out = [int(i) for i in ids]
    bad = next((i for i in out if not 0 <= i < vocab_size), None)
    if bad is not None:
        raise ValueError(f"token id {bad} is not in the vocabulary (0..{vocab_size - 1})")
    return out


def _readable(b: bytes) -> str:
    return b.decode("utf-8", errors="inside_llama_hex")  # registered in bpe.py: b'\xe4' -> '<0xE4>'


def _roles(directory: Path, specials: dict[str, int]) -> dict[str, int | None]:
    """{'bos': id, 'eos': id, 'pad': id} from tokenizer_config.json, else from the usual names."""
    cfg = {}
    path = directory / "tokenizer_config.json"
    if path.exists():
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
    out = {}
    for role, names in _ROLE_NAMES.items():
        named = cfg.get(f"{role}_token")
        if isinstance(named, dict):
            named = named.get("content")
        if isinstance(named, str) and named in specials:
            out[role] = specials[named]
        else:
            out[role] = next((specials[s] for s in names if s in specials), None)
    return out


class _Roles:
    """The BOS/EOS id a caller asked for, or a clear error when the tokenizer has none (both wrappers)."""

    def _need(self, role: str) -> int:
        i = getattr(self, f"{role}_id")
        if i is None:
            raise ValueError(f"this tokenizer has no {role.upper()} token")
        return i


class HFTokenizer(_Roles):
    """A Hugging Face tokenizer.json run by the `tokenizers` library, behind the course's interface.

    Byte-level vocabularies (Llama 3: 'Ġthe') and sentencepiece-style ones with byte fallback
    (Llama 2: '▁the', '<0xE4>') both give true bytes per token, so `pieces` shows a character cut
    across tokens as '<0xE4>' exactly as our BPE does."""

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer as _HF

        path = Path(path)
        self.path = path
        self._tok = _HF.from_file(str(path))
        d = json.loads(path.read_text(encoding="utf-8"))
        decoders = d.get("decoder") or {}
        kinds = {x.get("type") for x in decoders.get("decoders", [decoders])}
        self._byte_level = "ByteLevel" in kinds
        self._metaspace = "ByteFallback" in kinds or "Metaspace" in kinds or "Replace" in kinds
        self.special_tokens = {t["content"]: t["id"] for t in d.get("added_tokens") or [] if t.get("special")}
        roles = _roles(path.parent, self.special_tokens)
        self.bos_id, self.eos_id, self.pad_id = roles["bos"], roles["eos"], roles["pad"]
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self._special_of_id = {i: s for s, i in self.special_tokens.items()}

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        ids = self._tok.encode(text, add_special_tokens=False).ids  # BOS/EOS only on request, as in our BPE
        return ([self._need("bos")] if add_bos else []) + ids + ([self._need("eos")] if add_eos else [])

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text, as `tokenizers` decodes them; an id outside the vocabulary is refused (`tokenizers` itself
        drops it without a word; a model with a padded vocabulary uses `for_model`)."""
        return self._tok.decode(_checked_ids(ids, self.vocab_size), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, i: int) -> str:
        s = self._tok.id_to_token(int(i)) if 0 <= int(i) < self.vocab_size else None
        if s is None:
            raise ValueError(f"token id {i!r} is not in the vocabulary (0..{self.vocab_size - 1})")
        return s

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def token_bytes(self, i: int) -> bytes:
        """The bytes a token stands for: 'Ġthe' -> b' the', '▁the' -> b' the', '<0xE4>' -> b'\\xe4'."""
        s = self.id_to_token(i)
        if i in self._special_of_id:
            return s.encode("utf-8")
        if self._byte_level:
            table = unicode_to_bytes()
            if all(c in table for c in s):
                return bytes(table[c] for c in s)
            return s.encode("utf-8")  # an added token written in plain text
        if self._metaspace:
            if len(s) == 6 and s.startswith("<0x") and s.endswith(">"):
                return bytes([int(s[3:5], 16)])
            return s.replace("▁", " ").encode("utf-8")
        return self._tok.decode([int(i)], skip_special_tokens=False).encode("utf-8")

    def pieces(self, ids) -> list[str]:
        return [_readable(self.token_bytes(i)) for i in ids]

    def __repr__(self) -> str:
        return f"HFTokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"


class SentencePieceTokenizer(_Roles):
    """A sentencepiece model (tokenizer.model of Llama 1/2) run by the `sentencepiece` library.

    Text is encoded as sentencepiece does (a '▁' before the first word, unknown characters as
    their UTF-8 bytes with byte fallback); special-token text inside the input is ordinary text
    here, as in sentencepiece."""

    def __init__(self, path: str | Path):
        import sentencepiece as spm

        path = Path(path)
        self.path = path
        self._sp = spm.SentencePieceProcessor(model_file=str(path))
        sp = self._sp
        self.vocab_size = sp.vocab_size()
        self.special_tokens = {sp.id_to_piece(i): i for i in range(self.vocab_size)
                               if sp.is_control(i) or sp.is_unknown(i)}
        self._special_of_id = {i: s for s, i in self.special_tokens.items()}
        roles = _roles(path.parent, self.special_tokens)
        own = {"bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id()}
        self.bos_id, self.eos_id, self.pad_id = (roles[r] if roles[r] is not None else (own[r] if own[r] >= 0 else None)
                                                 for r in ("bos", "eos", "pad"))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        ids = self._sp.encode(text)
        if add_bos:
            ids = [self._need("bos")] + ids
        if add_eos:
            ids = ids + [self._need("eos")]
        return ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text. sentencepiece drops control tokens; unless skip_special_tokens they are written
        as their text ('<s>'), as Hugging Face does."""
        ids = _checked_ids(ids, self.vocab_size)
        if skip_special_tokens:
            return self._sp.decode([i for i in ids if i not in self._special_of_id])
        out, run = [], []
        for i in ids:
            if i in self._special_of_id:
                out += [self._sp.decode(run), self._special_of_id[i]]
                run = []
            else:
                run.append(i)
        return "".join(out + [self._sp.decode(run)])

    def id_to_token(self, i: int) -> str:
        if not 0 <= int(i) < self.vocab_size:
            raise ValueError(f"token id {i!r} is not in the vocabulary (0..{self.vocab_size - 1})")
        return self._sp.id_to_piece(int(i))

    def token_to_id(self, token: str) -> int | None:
        i = self._sp.piece_to_id(token)
        return None if self._sp.is_unknown(i) and token != self._sp.id_to_piece(i) else i

    def token_bytes(self, i: int) -> bytes:
        """'▁the' -> b' the', '<0xE4>' -> b'\\xe4' (a byte-fallback token), '<s>' -> b'<s>'."""
        s = self.id_to_token(i)
        if self._sp.is_byte(int(i)):
            return bytes([int(s[3:5], 16)])
        return s.replace("▁", " ").encode("utf-8")

    def pieces(self, ids) -> list[str]:
        return [_readable(self.token_bytes(i)) for i in ids]

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"


def decode_continuation(tok: Tokenizer, prompt_ids, new_ids, skip_special_tokens: bool = False) -> str:
    """The text that new_ids add after prompt_ids: decode(prompt + new) with decode(prompt) taken off its front.

    Decoding the new ids on their own loses what joins them to the prompt: a sentencepiece-style tokenizer
    (Llama 1/2, stories260K) drops the space of a first piece '▁there', so "Once upon a time," + "there was"
    would read "Once upon a time,there was"; and a character cut between the two halves would decode as two
    U+FFFD. transformers' TextStreamer decodes the same way (the whole sequence, then the part not yet shown).

        >>> tok = load_tokenizer("../shared/models/stories260K")
        >>> prompt = tok.encode("Once upon a time,", add_bos=True)
        >>> tok.decode(tok.encode(" there was")), decode_continuation(tok, prompt, tok.encode(" there was"))
        ('there was', ' there was')

    When the prompt's own text changes once the new ids follow it (its last bytes were half a character),
    the part from the first changed character on is returned.
    """
    prompt_ids, new_ids = [int(i) for i in prompt_ids], [int(i) for i in new_ids]
    if not prompt_ids:
        return tok.decode(new_ids, skip_special_tokens=skip_special_tokens)
    head = tok.decode(prompt_ids, skip_special_tokens=skip_special_tokens)
    full = tok.decode(prompt_ids + new_ids, skip_special_tokens=skip_special_tokens)
    if full.startswith(head):
        return full[len(head):]
    same = next((i for i, (a, b) in enumerate(zip(head, full)) if a != b), min(len(head), len(full)))
    return full[same:]


UNUSED = "<unused{}>"  # a padded row without a token, as Gemma spells its spare ones: decode, pieces, labels


class PaddedTokenizer:
    """A tokenizer for a model whose embedding table has more rows than the tokenizer has tokens.

    Published checkpoints often pad the vocabulary to a multiple of 64 or 128 (faster matrix products; room for
    tokens added later): the model gives logits for ids the tokenizer cannot spell. This wrapper answers for
    them, as "<unusedN>" in decode, pieces, id_to_token and token_bytes, instead of raising "token id N is not
    in the vocabulary". Sampling is left as transformers and vLLM leave it (the padded rows are not masked: the
    numbers stay the reference's, and a trained model gives those rows almost no probability); when one is
    picked, it shows as a visible placeholder rather than vanishing from the text (`tokenizers` decodes it as
    "") or failing. skip_special_tokens=True drops the placeholders with the special tokens.

    vocab_size stays the tokenizer's own count; `model_vocab_size` is the model's rows. Ids at or past the
    model's rows are still refused (ValueError). Everything else is the wrapped tokenizer's.
    """

    def __init__(self, tok: Tokenizer, model_vocab_size: int):
        self.inner, self.model_vocab_size = tok, int(model_vocab_size)

    def __getattr__(self, name):  # vocab_size, bos_id, encode, special_tokens, merges, ...: the tokenizer's own
        if name.startswith("__") or name == "inner":  # (copy and pickle look these up before `inner` exists)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def is_unused(self, i: int) -> bool:
        """True for an id of a padded row (one the tokenizer has no token for); ValueError outside the model."""
        i = int(i)
        if not 0 <= i < self.model_vocab_size:
            raise ValueError(f"token id {i} is not in the model's vocabulary (0..{self.model_vocab_size - 1})")
        return i >= self.inner.vocab_size

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        out, real, run = [], [], []  # real: every real id so far, so a run after a placeholder keeps its space

        def flush():
            if run:
                out.append(decode_continuation(self.inner, real, run, skip_special_tokens))
                real.extend(run)
                run.clear()

        for i in (int(i) for i in ids):
            if self.is_unused(i):
                flush()
                out.append("" if skip_special_tokens else UNUSED.format(i))
            else:
                run.append(i)
        flush()
        return "".join(out)

    def id_to_token(self, i: int) -> str:
        return UNUSED.format(int(i)) if self.is_unused(i) else self.inner.id_to_token(i)

    def token_bytes(self, i: int) -> bytes:
        return UNUSED.format(int(i)).encode() if self.is_unused(i) else self.inner.token_bytes(i)

    def pieces(self, ids) -> list[str]:
        ids = [int(i) for i in ids]
        if not any(self.is_unused(i) for i in ids):
            return self.inner.pieces(ids)
        return [UNUSED.format(i) if self.is_unused(i) else self.inner.pieces([i])[0] for i in ids]

    def __repr__(self) -> str:
        return f"PaddedTokenizer({self.inner!r}, model_vocab_size={self.model_vocab_size})"


def for_model(tok: Tokenizer, model_vocab_size: int) -> Tokenizer:
    """The tokenizer to use with a model of model_vocab_size embedding rows: `tok` itself when the two agree
    (or the model has fewer rows), else a `PaddedTokenizer` that spells the padded rows "<unusedN>".

        >>> cm_tokenizer = for_model(load_tokenizer(path), model.config.vocab_size)
    """
    if isinstance(tok, PaddedTokenizer):
        tok = tok.inner
    return PaddedTokenizer(tok, model_vocab_size) if model_vocab_size > tok.vocab_size else tok


def is_own_tokenizer_json(path: str | Path) -> bool:
    """True for a tokenizer.json that our BPETokenizer wrote (its model section has an 'inside_llama' block)."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    return "inside_llama" in (d.get("model") or {})


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of a model directory (or a tokenizer.json / tokenizer.model file); see the module
    docstring for which file wins. Raises FileNotFoundError when there is none."""
    path = Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").exists():
            path = path / "tokenizer.json"
        elif (path / "tokenizer.model").exists():
            path = path / "tokenizer.model"
        else:
            raise FileNotFoundError(f"no tokenizer.json or tokenizer.model in {path}")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".model":
        return SentencePieceTokenizer(path)
    if is_own_tokenizer_json(path):
        return BPETokenizer.load(path)
    return HFTokenizer(path)
