"""One typed config for every model in the course.

A `LlamaConfig` describes a Llama exactly as Hugging Face's `LlamaConfig` does
(sizes, norm epsilon, RoPE base, tied embeddings), plus a few *teaching
switches* that let a lesson swap one Llama choice for its predecessor:

    norm            "rmsnorm" (Llama)  | "layernorm" (GPT-2, original Transformer)
    position        "rope" (Llama)     | "learned" | "sinusoidal" | "none"
    ffn             "swiglu" (Llama)   | "relu" | "gelu"
    norm_placement  "pre" (Llama)      | "post" (original Transformer)

The defaults are Llama's, and only the default model can be saved in the
Hugging Face layout that transformers understands.

Example:
    >>> cfg = LlamaConfig(dim=64, n_layers=2, n_heads=8, n_kv_heads=2, vocab_size=256)
    >>> cfg.head_dim, cfg.hidden_dim, cfg.n_rep
    (8, 192, 4)

Published Llamas add a few facts that change the numbers, all read by
`checkpoint.config_from_hf`: an explicit `head_dim` (Llama 3.2 3B-style shapes
where hidden / heads is not the head size), biases on the projections
(`attention_bias`, `mlp_bias`), several end-of-sequence ids (Llama 3 lists
`<|end_of_text|>` and `<|eot_id|>`), and `rope_scaling` (Llama 3.1/3.2 stretch
the slow RoPE frequencies to reach a longer context; see `model.rope_frequencies`).

`PRESETS` holds the published sizes of Llama 1, 2, 3, 3.1 and 3.2 by name
("llama2-7b", "llama3.2-1b", ...) and `PRESET_FACTS` what their papers add
(tokenizer, training tokens, source); `count.py` turns them into parameters,
FLOPs and bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

NORMS = ("rmsnorm", "layernorm")
POSITIONS = ("rope", "learned", "sinusoidal", "none")
FFNS = ("swiglu", "relu", "gelu")
PLACEMENTS = ("pre", "post")
# RoPE frequency schemes computed here, with the fields each one needs (transformers' names).
ROPE_SCALINGS = {
    "linear": ("factor",),  # every frequency divided by factor (position interpolation, Chen et al. 2023)
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


def llama_hidden_dim(dim: int, multiple_of: int = 256, ffn_dim_multiplier: float | None = None) -> int:
    """The SwiGLU hidden size as Meta's Llama code derives it.

    Start from the 4*dim of a classic MLP, keep 2/3 of it (SwiGLU has three
    matrices instead of two, so this keeps the parameter count equal), apply the
    optional multiplier (Llama 2 70B, Llama 3), then round up to `multiple_of`.

        >>> llama_hidden_dim(4096)          # Llama 2 7B
        11008
        >>> llama_hidden_dim(4096, 1024, 1.3)  # Llama 3 8B
        14336
    """
    hidden = 4 * dim
    hidden = int(2 * hidden / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


@dataclass
class LlamaConfig:
    dim: int = 288  # width of the residual stream (HF: hidden_size)
    n_layers: int = 6
    n_heads: int = 6  # query heads
    n_kv_heads: int | None = None  # key/value heads; None = n_heads (MHA); 1 = MQA; between = GQA
    vocab_size: int = 32000
    hidden_dim: int | None = None  # feed-forward width; None = derived as Llama does (below)
    multiple_of: int = 32  # round the derived hidden_dim up to a multiple of this
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0  # RoPE base: 10,000 in Llama 1/2, 500,000 in Llama 3
    max_seq_len: int = 256  # longest context; sizes the RoPE table and the KV cache
    tie_embeddings: bool = False  # lm_head shares the token embedding matrix
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2  # Llama 3 lists several; generation stops at any of them
    pad_token_id: int | None = None
    head_dim: int | None = None  # size of one head; None = dim // n_heads (Llama 1/2/3 8B), set explicitly by some models
    attention_bias: bool = False  # biases on q/k/v/o_proj (Llama has none; some derived models do)
    mlp_bias: bool = False  # biases on gate/up/down_proj
    # None = plain RoPE; else {"rope_type": "linear" | "llama3", ...the fields in ROPE_SCALINGS}
    rope_scaling: dict | None = None
    # teaching switches (defaults are Llama's)
    norm: str = "rmsnorm"
    position: str = "rope"
    ffn: str = "swiglu"
    norm_placement: str = "pre"
    # derived in __post_init__
    n_rep: int = field(init=False)  # query heads per KV head

    def __post_init__(self):
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        checks = [
            (self.dim > 0 and self.n_layers > 0 and self.n_heads > 0 and self.vocab_size > 0,
             "dim, n_layers, n_heads and vocab_size must be positive"),
            (self.head_dim is not None or self.dim % self.n_heads == 0,
             f"dim={self.dim} is not divisible by n_heads={self.n_heads} (give head_dim explicitly)"),
            (self.head_dim is None or self.head_dim > 0, "head_dim must be positive"),
            (1 <= self.n_kv_heads <= self.n_heads and self.n_heads % self.n_kv_heads == 0,
             f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}"),
            (self.norm in NORMS, f"norm must be one of {NORMS}, got {self.norm!r}"),
            (self.position in POSITIONS, f"position must be one of {POSITIONS}, got {self.position!r}"),
            (self.ffn in FFNS, f"ffn must be one of {FFNS}, got {self.ffn!r}"),
            (self.norm_placement in PLACEMENTS, f"norm_placement must be one of {PLACEMENTS}, got {self.norm_placement!r}"),
            (self.max_seq_len > 0, "max_seq_len must be positive"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"LlamaConfig: {msg}")
        if self.head_dim is None:
            self.head_dim = self.dim // self.n_heads
        if self.rope_scaling is not None:
            self.rope_scaling = _check_rope_scaling(self.rope_scaling)
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"LlamaConfig: RoPE rotates pairs, so head_dim={self.head_dim} must be even")
        self.n_rep = self.n_heads // self.n_kv_heads
        if self.hidden_dim is None:
            self.hidden_dim = llama_hidden_dim(self.dim, self.multiple_of, self.ffn_dim_multiplier)

    @property
    def eos_ids(self) -> tuple[int, ...]:
        """Every end-of-sequence id, as a tuple: 2 -> (2,), [128001, 128009] -> (128001, 128009), None -> ()."""
        eos = self.eos_token_id
        if eos is None:
            return ()
        return tuple(int(i) for i in eos) if isinstance(eos, (list, tuple)) else (int(eos),)

    @property
    def is_standard_llama(self) -> bool:
        """True when every teaching switch is at Llama's default (so transformers can run it)."""
        return (self.norm, self.position, self.ffn, self.norm_placement) == ("rmsnorm", "rope", "swiglu", "pre")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def replace(self, **changes) -> "LlamaConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_name(cls, name: str, **overrides) -> "LlamaConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


def _check_rope_scaling(d: dict) -> dict:
    """{"rope_type": "llama3", "factor": 8.0, ...} -> the same, validated, with plain Python numbers."""
    if not isinstance(d, dict):
        raise ValueError(f"LlamaConfig: rope_scaling must be a dict, got {type(d).__name__}")
    kind = d.get("rope_type", d.get("type"))
    if kind not in ROPE_SCALINGS:
        raise ValueError(f"LlamaConfig: rope_scaling type {kind!r} is not computed here; "
                         f"supported: {sorted(ROPE_SCALINGS)} (or None for plain RoPE)")
    missing = [k for k in ROPE_SCALINGS[kind] if d.get(k) is None]
    if missing:
        raise ValueError(f"LlamaConfig: rope_scaling {kind!r} needs {missing}")
    out = {"rope_type": kind, **{k: float(d[k]) for k in ROPE_SCALINGS[kind]}}
    if "original_max_position_embeddings" in out:
        out["original_max_position_embeddings"] = int(out["original_max_position_embeddings"])
    if out["factor"] <= 0 or (kind == "llama3" and out["high_freq_factor"] <= out["low_freq_factor"]):
        raise ValueError(f"LlamaConfig: rope_scaling {out} has a non-positive factor or high_freq_factor <= "
                         "low_freq_factor")
    return out


# Named presets. The real Llama sizes are used for memory and parameter arithmetic
# in the lessons (nobody instantiates a 70B model here); the small ones are trained.
# Published sizes are Meta's params.json / Hugging Face config.json values; each
# family's shared settings come first. `llama_hidden_dim` turns multiple_of and
# ffn_dim_multiplier into the published intermediate_size (tests/test_count.py checks them).
_LLAMA1 = dict(vocab_size=32000, max_seq_len=2048, norm_eps=1e-6, multiple_of=256)
_LLAMA2 = dict(vocab_size=32000, max_seq_len=4096, norm_eps=1e-5, multiple_of=256)
_LLAMA3 = dict(vocab_size=128256, max_seq_len=8192, norm_eps=1e-5, rope_theta=500000.0,
               bos_token_id=128000, eos_token_id=128001, n_kv_heads=8)
# Llama 3.1 and 3.2 reach 128K positions by slowing RoPE's slow pairs (see model.rope_frequencies).
_LLAMA31 = dict(_LLAMA3, max_seq_len=131072, rope_scaling=dict(
    rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192))
_LLAMA32 = dict(_LLAMA31, tie_embeddings=True, rope_scaling=dict(_LLAMA31["rope_scaling"], factor=32.0))

PRESETS: dict[str, dict] = {
    "test": dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=512, max_seq_len=64, multiple_of=16),
    "tiny": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=1024, max_seq_len=128, multiple_of=32),
    "baby": dict(dim=192, n_layers=6, n_heads=6, n_kv_heads=3, vocab_size=1024, max_seq_len=256, multiple_of=64),
    # the comment after each published size is its hidden_dim (intermediate_size)
    "llama1-7b": dict(_LLAMA1, dim=4096, n_layers=32, n_heads=32),  # 11008
    "llama1-13b": dict(_LLAMA1, dim=5120, n_layers=40, n_heads=40),  # 13824
    "llama1-33b": dict(_LLAMA1, dim=6656, n_layers=60, n_heads=52),  # 17920
    "llama1-65b": dict(_LLAMA1, dim=8192, n_layers=80, n_heads=64),  # 22016
    "llama2-7b": dict(_LLAMA2, dim=4096, n_layers=32, n_heads=32),  # 11008
    "llama2-13b": dict(_LLAMA2, dim=5120, n_layers=40, n_heads=40),  # 13824
    "llama2-70b": dict(_LLAMA2, dim=8192, n_layers=80, n_heads=64, n_kv_heads=8,
                       multiple_of=4096, ffn_dim_multiplier=1.3),  # 28672
    "llama3-8b": dict(_LLAMA3, dim=4096, n_layers=32, n_heads=32, multiple_of=1024, ffn_dim_multiplier=1.3),  # 14336
    "llama3-70b": dict(_LLAMA3, dim=8192, n_layers=80, n_heads=64, multiple_of=4096, ffn_dim_multiplier=1.3),  # 28672
    "llama3.1-8b": dict(_LLAMA31, dim=4096, n_layers=32, n_heads=32, multiple_of=1024, ffn_dim_multiplier=1.3),  # 14336
    "llama3.1-70b": dict(_LLAMA31, dim=8192, n_layers=80, n_heads=64, multiple_of=4096, ffn_dim_multiplier=1.3),  # 28672
    "llama3.1-405b": dict(_LLAMA31, dim=16384, n_layers=126, n_heads=128, multiple_of=4096,
                          ffn_dim_multiplier=1.2),  # 53248
    "llama3.2-1b": dict(_LLAMA32, dim=2048, n_layers=16, n_heads=32, multiple_of=256, ffn_dim_multiplier=1.5),  # 8192
    "llama3.2-3b": dict(_LLAMA32, dim=3072, n_layers=28, n_heads=24, multiple_of=256, ffn_dim_multiplier=1.0),  # 8192
}


@dataclass(frozen=True)
class PresetFacts:
    """What a paper or model card says about a published Llama beyond its config.

        >>> PRESET_FACTS["llama2-7b"].train_tokens
        '2.0T'
    """

    name: str  # as the papers write it, e.g. "Llama 2 7B"
    tokenizer: str
    train_tokens: str | None  # pretraining tokens in the source's own words ("15T+": over 15 trillion, "~15T": about 15)
    source: str  # where the sizes and token counts are published


_SENTENCEPIECE = "SentencePiece BPE, 32K vocabulary"
_TIKTOKEN = "tiktoken-based BPE, 128K vocabulary"
_LLAMA1_SRC = "LLaMA (Touvron et al. 2023a), Table 2"
_LLAMA2_SRC = "Llama 2 (Touvron et al. 2023b), Table 1"
_LLAMA3_SRC = "Llama 3 model card (Meta 2024); sizes also in The Llama 3 Herd of Models, Table 3"
_HERD_SRC = "The Llama 3 Herd of Models (Llama Team 2024), Table 3; tokens: Section 1"
_LLAMA32_SRC = "Llama 3.2 model card (Meta 2024)"

PRESET_FACTS: dict[str, PresetFacts] = {
    "llama1-7b": PresetFacts("LLaMA 7B", _SENTENCEPIECE, "1.0T", _LLAMA1_SRC),
    "llama1-13b": PresetFacts("LLaMA 13B", _SENTENCEPIECE, "1.0T", _LLAMA1_SRC),
    "llama1-33b": PresetFacts("LLaMA 33B", _SENTENCEPIECE, "1.4T", _LLAMA1_SRC),
    "llama1-65b": PresetFacts("LLaMA 65B", _SENTENCEPIECE, "1.4T", _LLAMA1_SRC),
    "llama2-7b": PresetFacts("Llama 2 7B", _SENTENCEPIECE, "2.0T", _LLAMA2_SRC),
    "llama2-13b": PresetFacts("Llama 2 13B", _SENTENCEPIECE, "2.0T", _LLAMA2_SRC),
    "llama2-70b": PresetFacts("Llama 2 70B", _SENTENCEPIECE, "2.0T", _LLAMA2_SRC),
    "llama3-8b": PresetFacts("Llama 3 8B", _TIKTOKEN, "15T+", _LLAMA3_SRC),
    "llama3-70b": PresetFacts("Llama 3 70B", _TIKTOKEN, "15T+", _LLAMA3_SRC),
    "llama3.1-8b": PresetFacts("Llama 3.1 8B", _TIKTOKEN, "~15T", _HERD_SRC),
    "llama3.1-70b": PresetFacts("Llama 3.1 70B", _TIKTOKEN, "~15T", _HERD_SRC),
    "llama3.1-405b": PresetFacts("Llama 3.1 405B", _TIKTOKEN, "~15T", _HERD_SRC),
    "llama3.2-1b": PresetFacts("Llama 3.2 1B", _TIKTOKEN, "up to 9T", _LLAMA32_SRC),
    "llama3.2-3b": PresetFacts("Llama 3.2 3B", _TIKTOKEN, "up to 9T", _LLAMA32_SRC),
}
