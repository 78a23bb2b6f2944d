"""The course model: the shipped baby Llama and its tokenizer, loaded once and shared read-only.

Every lesson function takes a `CourseModel` as its first argument, so a test can pass the
shipped model (or a tiny one it trains itself) without any UI.

    >>> cm = load_course_model()            # assets/model, or $INSIDE_LLAMA_MODEL
    >>> p = prepare_text(cm, "To be, or not to be", max_tokens=128)
    >>> p.ids[:1] == [cm.tokenizer.bos_id], p.labels[1]
    (True, 'To')
"""

from __future__ import annotations

import json
import os
import threading
import unicodedata
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llama import Llama, Trace, load_pretrained
from llama.fast import DecodeStep
from llama.checkpoint import default_device, resolve_path
from llama.tokenizer.interface import Tokenizer, load_tokenizer
from lessons.inputs import MAX_TEXT_CHARS, LessonError, clean_text  # noqa: F401 (re-exported)
from llama.tokenizer import BPETokenizer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = ROOT / "assets" / "model"


@dataclass
class CourseModel:
    model: Llama
    tokenizer: Tokenizer  # our BPETokenizer for the course model; HF tokenizers / sentencepiece for others
    path: Path
    train_log: list = field(default_factory=list)
    card: str = ""
    # The speed knob for generation, chosen by the loader: a llama.fast.DecodeStep (same tokens, fewer
    # operations per step), or None for the model's own forward pass.
    decode_step: DecodeStep | None = None

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device


def validation_excerpt(cm: "CourseModel") -> str:
    """The first characters of the model's held-out validation text (val_excerpt.txt beside it). A model directory
    without one (any real checkpoint) uses the course model's: held-out TinyShakespeare, shipped in assets/."""
    own = cm.path / "val_excerpt.txt"
    return (own if own.exists() else DEFAULT_MODEL_DIR / "val_excerpt.txt").read_text(encoding="utf-8")


def load_course_model(path: str | Path | None = None, device: str | torch.device | None = None,
                      fast_decode: bool = False) -> CourseModel:
    """Load a model directory (config.json, model.safetensors, a tokenizer) in eval mode, read-only.

    `path` is a local directory or a Hub id (default: $INSIDE_LLAMA_MODEL, else the shipped assets/model). The
    tokenizer is whatever the directory holds (llama.tokenizer.load_tokenizer: our BPE for the course model,
    Hugging Face `tokenizers` or `sentencepiece` for real checkpoints). On CUDA a checkpoint stored in bf16 runs in
    bf16; everything else runs in fp32. fast_decode=True prepares a `llama.fast.DecodeStep` (fused weights, no
    compile) for generation when the architecture has one. Raises CheckpointError or OSError for a missing or
    malformed directory."""
    path = resolve_path(path or os.environ.get("INSIDE_LLAMA_MODEL") or DEFAULT_MODEL_DIR)
    device = torch.device(device) if device is not None else default_device()
    dtype = torch.float32
    if device.type == "cuda" and stored_dtype(path) == torch.bfloat16:
        dtype = torch.bfloat16
    model = load_pretrained(path, device=device, dtype=dtype)
    model.requires_grad_(False)
    tok = load_tokenizer(path)
    log_path, card_path = path / "train_log.json", path / "MODEL_CARD.md"
    log = json.loads(log_path.read_text()) if log_path.exists() else []
    card = card_path.read_text(encoding="utf-8") if card_path.exists() else ""
    step = None
    if fast_decode:
        try:
            step = DecodeStep(model)
        except ValueError:  # an architecture the fast step does not cover: the plain forward pass
            step = None
    return CourseModel(model, tok, path, log, card, step)


def stored_dtype(path: Path) -> torch.dtype | None:
    """The precision config.json says the weights are stored in (`torch_dtype`, or transformers 5's `dtype`)."""
    try:
        d = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    name = d.get("dtype") or d.get("torch_dtype")
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(name)


def card_rows(card: str) -> dict[str, str]:
    """The '| key | value |' rows of a model card's tables, keys lower-cased, Markdown bold removed:

        >>> card_rows("| | |\\n|---|---|\\n| data | TinyShakespeare |")
        {'data': 'TinyShakespeare'}
    """
    rows = {}
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) == 2 and cells[0] and not set(cells[0]) <= set("-: "):
            rows.setdefault(cells[0].lower(), cells[1].replace("**", ""))
    return rows


def training_summary(cm: CourseModel) -> dict:
    """The figures the training script measured at the end (summary.json beside the model: validation loss on the
    whole held-out split, its size in tokens and characters, steps, tokens seen); {} when the directory has none."""
    path = cm.path / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


_LRUS: weakref.WeakSet = weakref.WeakSet()  # every LRU, for their after-fork reset
os.register_at_fork(after_in_child=lambda: [c._after_fork() for c in list(_LRUS)])


CACHE_BYTES = 128 << 20  # the default bound of each LRU: 128 MiB of tensors, arrays and text


def nbytes(value, _seen: set | None = None, _depth: int = 0) -> int:
    """About how many bytes a cached value holds: its tensors' storages (each counted once, however many views
    share it), numpy arrays, strings, numbers, and what containers, dataclasses and plain objects hold, followed
    10 levels deep. A torch Module counts nothing: cached models are variants whose weights belong to the loaded
    model (llama.variant), and loaded models are counted by whoever loads them (lessons.models).

        >>> t = torch.zeros(1000)  # 4,000 bytes of float32
        >>> nbytes(t), nbytes([t, t, t[:10]])  # one storage, counted once (+ the list)
        (4000, 4080)
    """
    import numpy as np

    seen = set() if _seen is None else _seen
    if value is None or isinstance(value, (bool, torch.nn.Module, type)) or _depth > 10:
        return 0
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            return 0
        storage = value.untyped_storage()
        key = ("storage", storage.data_ptr(), value.device.type)
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(value, (int, float, complex)):
        return 32
    if isinstance(value, (str, bytes)):
        return len(value) + 49
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return value.nbytes if value.base is None else nbytes(value.base, seen, _depth + 1)
    if isinstance(value, dict):
        items = list(value.items())
        return 64 + 16 * len(items) + sum(nbytes(k, seen, _depth + 1) + nbytes(v, seen, _depth + 1)
                                          for k, v in items)
    if isinstance(value, (list, tuple, set, frozenset)):
        return 56 + 8 * len(value) + sum(nbytes(v, seen, _depth + 1) for v in value)
    if hasattr(value, "to_plotly_json") and hasattr(value, "_data"):  # a Plotly figure: its traces' data
        return nbytes(value._data, seen, _depth + 1)
    fields = getattr(value, "__dict__", None)
    if fields is None and hasattr(value, "__slots__"):
        fields = {n: getattr(value, n, None) for n in value.__slots__}
    return 64 + (nbytes(fields, seen, _depth + 1) if fields else 0)


class LRU:
    """The one cache for the lessons' per-model work: thread-safe, least-recently-used, bounded to `size` results
    and to `max_bytes` (`nbytes` of the results held; default CACHE_BYTES). A 1B-parameter model's traced forward
    pass is hundreds of MB, the course model's a few: the byte bound keeps a cache's memory the same whatever the
    model, and the newest result always stays (else every figure of a page would recompute it).

    The app serves a class from one model, so many threads ask at once:
    - one computation per key: a second caller for a key being computed waits for that result (a per-key
      in-flight Future), it does not compute it again;
    - no blocking of other keys: the work runs outside the lock, so a slow forward pass for one key never
      delays a hit (or a computation) for another;
    - a failure is not cached: the exception goes to the caller and to every waiter, and the next call retries.

    Keys start with the model object (`(cm.model, ...)`; modules hash by identity), so a result is never served
    for another model. The cache holds the model weakly: when a model is dropped (a test's throwaway model, a
    learner's model evicted by the picker), its entries go with it.

        >>> c = LRU(2); c.get_or_compute("a", lambda: 1), c.get_or_compute("a", lambda: 2)
        (1, 1)
    """

    def __init__(self, size: int, max_bytes: int | None = None):
        self.size, self.data, self.lock = size, OrderedDict(), threading.Lock()
        self.max_bytes = CACHE_BYTES if max_bytes is None else max_bytes
        self.sizes: dict = {}  # stored key -> nbytes of its value
        self.bytes = 0  # their sum
        self.pending: dict = {}  # key -> Future of a computation in flight
        self._models: dict = {}  # id(model) -> weakref.finalize that drops the model's entries
        self._dead: list[int] = []  # ids of models that died while the lock was held
        _LRUS.add(self)

    def _after_fork(self) -> None:
        """In a forked child (app.background) the threads that held the lock or were computing a key are gone:
        a fresh lock, and no waiting on their computations."""
        self.lock, self.pending = threading.Lock(), {}

    def _key(self, key):
        """(model, *rest) -> (id(model), *rest): the stored key does not keep the model alive. A finalizer
        drops the model's entries when it dies, before its id can be reused."""
        if isinstance(key, tuple) and key and isinstance(key[0], torch.nn.Module):
            model = key[0]
            if id(model) not in self._models:
                self._models[id(model)] = weakref.finalize(model, self._forget, id(model))
            return ("model", id(model)) + key[1:]
        return key

    def _forget(self, model_id: int) -> None:
        # Runs when the model dies, possibly inside garbage collection on a thread that holds the lock:
        # never wait for it. The dead id is noted, and purged now if the lock is free, else on the next call.
        self._dead.append(model_id)
        if self.lock.acquire(blocking=False):
            try:
                self._purge()
            finally:
                self.lock.release()

    def _purge(self) -> None:
        while self._dead:
            model_id = self._dead.pop()
            self._models.pop(model_id, None)
            for k in [k for k in self.data if isinstance(k, tuple) and k[:2] == ("model", model_id)]:
                self._drop(k)

    def _drop(self, k) -> None:
        del self.data[k]
        self.bytes -= self.sizes.pop(k, 0)

    def get_or_compute(self, key, fn):
        """The cached value for key, or fn() computed once (by this caller, or awaited from the caller already
        computing it) and stored. Raises what fn raised (nothing is stored then)."""
        with self.lock:
            self._purge()
            k = self._key(key)
            if k in self.data:
                self.data.move_to_end(k)
                return self.data[k]
            waiting = self.pending.get(k)
            if waiting is None:
                mine = self.pending[k] = Future()
        if waiting is not None:
            return waiting.result()  # raises the computing caller's exception
        try:
            value = fn()
        except BaseException as e:
            with self.lock:
                del self.pending[k]
            mine.set_exception(e)
            raise
        size = nbytes(value)  # outside the lock: it walks the value
        with self.lock:
            del self.pending[k]
            if k in self.data:  # (cannot happen while the key was pending; kept exact anyway)
                self._drop(k)
            self.data[k], self.sizes[k] = value, size
            self.bytes += size
            while len(self.data) > self.size or (self.bytes > self.max_bytes and len(self.data) > 1):
                self._drop(next(iter(self.data)))  # the least recently used
        mine.set_result(value)
        return value

    def __len__(self) -> int:
        return len(self.data)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()
            self.sizes.clear()
            self.bytes = 0


_TRACES = LRU(8)  # (model, ids) -> Trace; about 12 MB each for the shipped model at 128 tokens


def trace(model: Llama, ids: tuple[int, ...]) -> Trace:
    """The model's traced forward pass on one sequence of ids (batch of 1), cached by (model, ids), so every
    figure of a page (and every lesson) reads the same recorded tensors. Read-only: slice it, never write."""

    @torch.inference_mode()  # grad mode is per thread: the app's global switch does not reach Gradio's workers
    def run():
        x = torch.tensor([ids], dtype=torch.long, device=model.embed_tokens.weight.device)  # (1, T)
        return model(x, trace=True).trace

    return _TRACES.get_or_compute((model, tuple(ids)), run)


@dataclass
class Prepared:
    """A learner's text, ready for the model: ids start with BOS; labels are readable token strings."""

    ids: list[int]
    labels: list[str]
    notice: str = ""  # non-empty when the text was cut or replaced; show it on the page


def vocab_tokens(cm: CourseModel) -> int:
    """How many of the model's output rows are tokens: the tokenizer's vocabulary. Many published checkpoints pad
    their embedding table and lm_head past it (to a multiple of 64 or 128, for fast matrix products); ids from
    vocab_tokens(cm) on are padding rows that no text encodes to, so pages list, label and sample only ids below it."""
    return min(int(cm.tokenizer.vocab_size), int(cm.config.vocab_size))


def mask_padding(logits: torch.Tensor, n: int) -> torch.Tensor:
    """logits (..., V) with the padding columns n.. set to -inf (a copy; the same tensor when there are none), so
    argmax, top-k, softmax and sampling see only the tokenizer's tokens."""
    if logits.shape[-1] <= n:
        return logits
    out = logits.clone()
    out[..., n:] = float("-inf")
    return out


def token_step(cm: CourseModel):
    """The decode step generation should use (llama.generate's `decode_step`): the loader's (cm.decode_step, or
    the model's forward pass) with the padding rows masked, so a generated id is always one of the tokenizer's.
    None (the model's own forward pass) when the model has no padding and no decode step of its own."""
    n, V = vocab_tokens(cm), cm.config.vocab_size
    if V <= n:
        return cm.decode_step
    model, base = cm.model, cm.decode_step

    def step(x, pos, cache):
        logits = base(x, pos, cache) if base is not None else model(x, pos, cache=cache, logits_to_keep=1).logits[:, -1]
        return mask_padding(logits, n)  # (B, V)

    return step


def token_label(tok: BPETokenizer, i: int) -> str:
    """A short readable label for one token: '<s>' for specials, spaces as '␣', newlines as '⏎', and
    a piece of a multi-byte character as its byte, '<0xF0>' (the tokenizer's own `pieces` notation). An id past
    the tokenizer's vocabulary (a padding row of the model's embedding table, see vocab_tokens) is '<unused600>',
    as llama.tokenizer.for_model names it."""
    if i >= tok.vocab_size:
        return f"<unused{i}>"
    if i in (tok.bos_id, tok.eos_id, tok.pad_id):
        return tok.id_to_token(i)
    s = tok.pieces([i])[0]
    return s.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥") or "∅"


def plot_label(s: str) -> str:
    """A token label that Plotly shows as typed: invisible or control characters become U+XXXX, and
    '<', '>', '&' become HTML entities (Plotly reads '<s>' as a strikethrough tag otherwise).

        >>> plot_label('<s>'), plot_label('a\\u200bb')
        ('&lt;s&gt;', 'aU+200Bb')
    """
    out = []
    for ch in s:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(f"U+{ord(ch):04X}")
        else:
            out.append({"<": "&lt;", ">": "&gt;", "&": "&amp;"}.get(ch, ch))
    return "".join(out)


def unique_labels(labels: list[str]) -> list[str]:
    """Plotly merges equal category labels on an axis, so number repeated ones: ['a', 'b', 'a'] -> ['0 a', '1 b', '2 a']."""
    return [f"{i} {s}" for i, s in enumerate(labels)]


def prepare_text(cm: CourseModel, text: str, max_tokens: int = 128) -> Prepared:
    """BOS + the text's tokens, at most max_tokens in all. The text is cleaned first (`lessons.inputs.clean_text`:
    lone surrogates replaced, cut at MAX_TEXT_CHARS, each with a notice); empty text raises LessonError."""
    text, cleaned = clean_text(text)
    notices = [cleaned] if cleaned else []
    ids = [cm.tokenizer.bos_id] + cm.tokenizer.encode(text)
    limit = min(max_tokens, cm.config.max_seq_len)
    if len(ids) > limit:
        notices.append(f"The text has {len(ids) - 1} tokens; only the first {limit - 1} (after BOS) are shown "
                       f"(the limit is {limit} tokens).")
        ids = ids[:limit]
    return Prepared(ids, [token_label(cm.tokenizer, i) for i in ids], " ".join(notices))
