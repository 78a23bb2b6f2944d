"""Parameters, FLOPs and weight memory of a Llama, from its config alone (no model is built).

Everything comes from one place, `layer_shapes` and `top_shapes`: the name and
shape of every parameter exactly as `llama.model.Llama(cfg).named_parameters()`
lists them (tests/test_count.py checks that on small configs). Counts, FLOPs and
bytes are arithmetic on those shapes, so a 405B model costs microseconds.

    >>> cfg = LlamaConfig.from_name("llama2-7b")
    >>> layer_shapes(cfg)["self_attn.k_proj.weight"]      # (nkv * hs, C)
    (4096, 4096)
    >>> parameter_counts(cfg).total                       # Meta's and Hugging Face's count
    6738415616
    >>> weight_bytes(cfg, "bf16") / 2**30                 # GiB
    12.551277160644531

Notation as in model.py: C width, L layers, nh / nkv query / key-value heads,
hs head size, H feed-forward width, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import LlamaConfig

# Bytes per stored parameter. int8 ignores the few scale factors a quantiser keeps beside the weights.
BYTES_PER_PARAMETER = {"fp32": 4, "bf16": 2, "int8": 1}


def _norm_shapes(name: str, cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """RMSNorm has a gain (C,); LayerNorm adds a bias (C,)."""
    shapes = {f"{name}.weight": (cfg.dim,)}
    if cfg.norm == "layernorm":
        shapes[f"{name}.bias"] = (cfg.dim,)
    return shapes


def _linear_shapes(name: str, n_in: int, n_out: int, bias: bool) -> dict[str, tuple[int, ...]]:
    """nn.Linear(n_in, n_out) stores its weight as (n_out, n_in), then a bias (n_out,) if it has one."""
    shapes = {f"{name}.weight": (n_out, n_in)}
    if bias:
        shapes[f"{name}.bias"] = (n_out,)
    return shapes


def layer_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter of one block, named and shaped as `Llama(cfg).layers[i].named_parameters()`.

        >>> layer_shapes(LlamaConfig.from_name("test"))["mlp.gate_proj.weight"]   # (H, C)
        (96, 32)
    """
    C, H, hs = cfg.dim, cfg.hidden_dim, cfg.head_dim
    q_width, kv_width = cfg.n_heads * hs, cfg.n_kv_heads * hs  # nh*hs and nkv*hs (GQA: kv_width < q_width)
    attn, mlp = cfg.attention_bias, cfg.mlp_bias
    return {
        **_norm_shapes("input_layernorm", cfg),
        **_linear_shapes("self_attn.q_proj", C, q_width, attn),
        **_linear_shapes("self_attn.k_proj", C, kv_width, attn),
        **_linear_shapes("self_attn.v_proj", C, kv_width, attn),
        **_linear_shapes("self_attn.o_proj", q_width, C, attn),
        **_norm_shapes("post_attention_layernorm", cfg),
        **(_linear_shapes("mlp.gate_proj", C, H, mlp) if cfg.ffn == "swiglu" else {}),  # relu/gelu MLPs have no gate
        **_linear_shapes("mlp.up_proj", C, H, mlp),
        **_linear_shapes("mlp.down_proj", H, C, mlp),
    }


def top_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """The parameters outside the blocks, as `Llama(cfg).named_parameters()` lists them.

    A tied lm_head is the embedding matrix itself, so it is not listed (nor counted) a second time.
    """
    shapes = {"embed_tokens.weight": (cfg.vocab_size, cfg.dim)}  # (V, C) one row per token
    if cfg.position == "learned":
        shapes["embed_positions.weight"] = (cfg.max_seq_len, cfg.dim)  # (max_seq_len, C)
    shapes.update(_norm_shapes("norm", cfg))
    if not cfg.tie_embeddings:
        shapes.update(_linear_shapes("lm_head", cfg.dim, cfg.vocab_size, bias=False))
    return shapes


def _by_module(shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """{"q_proj.weight": (8, 4), "q_proj.bias": (8,)} -> {"q_proj": 40}"""
    counts: dict[str, int] = {}
    for name, shape in shapes.items():
        module = name.rsplit(".", 1)[0]
        counts[module] = counts.get(module, 0) + math.prod(shape)
    return counts


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a Llama by module, named as in `llama.model`; `layer` is one block (all L are alike)."""

    embed_tokens: int  # V * C
    embed_positions: int  # max_seq_len * C with learned positions, else 0
    layer: dict[str, int]  # one block: {"input_layernorm": C, "self_attn.q_proj": C * nh * hs, ...}
    n_layers: int
    norm: int  # the final norm
    lm_head: int  # V * C, or 0 when tied to embed_tokens

    @property
    def per_layer(self) -> int:
        return sum(self.layer.values())

    @property
    def attention(self) -> int:
        """q/k/v/o_proj of one block."""
        return sum(n for name, n in self.layer.items() if name.startswith("self_attn."))

    @property
    def mlp(self) -> int:
        """gate/up/down_proj of one block."""
        return sum(n for name, n in self.layer.items() if name.startswith("mlp."))

    @property
    def norms(self) -> int:
        """Every norm of the model: two per block and the final one."""
        per_layer = sum(n for name, n in self.layer.items() if name.endswith("layernorm"))
        return self.n_layers * per_layer + self.norm

    @property
    def non_embedding(self) -> int:
        """All but the input lookups (embed_tokens, embed_positions): Kaplan et al.'s N, plus an untied lm_head."""
        return self.n_layers * self.per_layer + self.norm + self.lm_head

    @property
    def total(self) -> int:
        """Every stored parameter once, as `sum(p.numel() for p in model.parameters())` counts them."""
        return self.embed_tokens + self.embed_positions + self.non_embedding


def parameter_counts(cfg: LlamaConfig) -> ParameterCount:
    """Parameters per component and in total.

        >>> c = parameter_counts(LlamaConfig.from_name("llama3.2-1b"))   # tied: lm_head is embed_tokens
        >>> c.embed_tokens, c.lm_head, c.total
        (262668288, 0, 1235814400)
    """
    top = _by_module(top_shapes(cfg))
    return ParameterCount(embed_tokens=top["embed_tokens"], embed_positions=top.get("embed_positions", 0),
                          layer=_by_module(layer_shapes(cfg)), n_layers=cfg.n_layers, norm=top["norm"],
                          lm_head=top.get("lm_head", 0))


def matmul_weights(cfg: LlamaConfig) -> int:
    """Weights each token is multiplied by in a forward pass: every matrix of every block, and lm_head's
    V * C (also when tied: the matrix is shared, the multiply is not). Embedding rows are looked up, not
    multiplied; biases and norm gains are additions and scalings, left out."""
    per_layer = sum(math.prod(s) for s in layer_shapes(cfg).values() if len(s) == 2)  # the (n_out, n_in) weights
    return cfg.n_layers * per_layer + cfg.vocab_size * cfg.dim


def flops_per_token(cfg: LlamaConfig, context: int | None = None) -> int:
    """Forward-pass FLOPs for one token that attends to `context` positions (default: cfg.max_seq_len).

        2 * matmul_weights  +  2 * 2 * L * context * (nh * hs)

    A weight costs one multiply and one add per token (2 FLOPs): Kaplan et al. 2020, "Scaling Laws for
    Neural Language Models", Section 2.1 and Table 1 (C_forward ~ 2N + 2 n_layer n_ctx d_attn). The second
    term is attention itself: q . k for each of `context` keys and the probability-weighted sum of as many
    values, each nh * hs multiply-adds per key. Both products are counted, as in Hoffmann et al. 2022
    (Chinchilla), Appendix F, and Chowdhery et al. 2022 (PaLM), Appendix B, so it is twice Kaplan's term.
    GQA shares K/V heads but every query head still scores every key, so nkv does not appear. Softmax,
    norms, RoPE, activations and biases (a few FLOPs per number, not per weight) are left out.

        >>> flops_per_token(LlamaConfig.from_name("llama2-7b"), context=4096) / 1e9
        15.3616384
    """
    context = cfg.max_seq_len if context is None else context
    attention = 2 * 2 * cfg.n_layers * context * cfg.n_heads * cfg.head_dim
    return 2 * matmul_weights(cfg) + attention


def weight_bytes(cfg: LlamaConfig, dtype: str = "bf16") -> int:
    """Bytes to store every parameter once in `dtype` ("fp32", "bf16" or "int8"); a tied lm_head is free.

        >>> weight_bytes(LlamaConfig.from_name("llama3-8b"), "int8") / 1e9
        8.030261248
    """
    if dtype not in BYTES_PER_PARAMETER:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(BYTES_PER_PARAMETER)}")
    return parameter_counts(cfg).total * BYTES_PER_PARAMETER[dtype]
