"""A LLaMA written from scratch, leaf to root: norms, RoPE, KV cache, attention,
feed-forward, block, model.

Module names follow Hugging Face transformers (`q_proj`, `gate_proj`,
`input_layernorm`, ...) so that a checkpoint's tensor names and the names a
learner sees in the course are the same, and loading is a plain rename.

Notation (shape comments):
    B    batch size
    T    query positions in this call
    S    key/value positions visible to them (earlier cached positions included)
    C    model width, config.dim
    nh   query heads           nkv  key/value heads     hs  head size (C // nh)
    H    feed-forward hidden size                       V   vocabulary size

Pictures in the course come from this exact forward pass: call the model with
`trace=True` and it also returns a `Trace` of per-layer intermediates
(attention probabilities, q and k before and after RoPE, the residual stream
around every norm, feed-forward gate activations). Tracing only records; it
never changes the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blockwise import blockwise_attention
from .config import LlamaConfig

# ----------------------------------------------------------------------------- norms


class RMSNorm(nn.Module):
    """Llama's norm: divide by the root mean square, then scale by a learned gain.

    y = x / sqrt(mean(x^2) + eps) * g. Unlike LayerNorm there is no mean
    subtraction and no bias, so it is cheaper, and it is invariant to scaling x
    (RMSNorm(3x) == RMSNorm(x)) but not to shifting it.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # (C,) the learned gain g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()  # the mean of squares is taken in fp32 even for bf16 models, as in transformers
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class LayerNorm(nn.Module):
    """The original Transformer's norm: subtract the mean, divide by the std, scale and shift.

    y = (x - mean(x)) / sqrt(var(x) + eps) * g + b. Invariant to both shifting
    and scaling x. Kept here so lessons and ablations can compare it with RMSNorm.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # (C,)
        self.bias = nn.Parameter(torch.zeros(dim))  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return self.weight * x.to(dtype) + self.bias


def make_norm(cfg: LlamaConfig) -> nn.Module:
    return RMSNorm(cfg.dim, cfg.norm_eps) if cfg.norm == "rmsnorm" else LayerNorm(cfg.dim, cfg.norm_eps)


# ----------------------------------------------------------------------------- positions


def rope_frequencies(head_dim: int, theta: float = 10000.0, scaling: dict | None = None) -> torch.Tensor:
    """theta_i = theta^(-2i/hs) for each rotated pair i: fast for i=0, slow for the last pair.

        >>> rope_frequencies(4, 100.0)
        tensor([1.0000, 0.1000])

    `scaling` (config.rope_scaling) stretches them for a longer context, as transformers does:
      linear  every frequency / factor (position interpolation, Chen et al. 2023, "Extending Context
              Window of Large Language Models via Positional Interpolation");
      llama3  Llama 3.1's rule: pairs whose wavelength 2*pi/theta_i is longer than
              original_max_position_embeddings / low_freq_factor turn `factor` times slower, pairs
              shorter than original / high_freq_factor stay as they are, and the ones between are
              blended smoothly (Meta's reference code, llama-models `apply_scaling`).

        >>> rope_frequencies(4, 100.0, {"rope_type": "linear", "factor": 2.0})
        tensor([0.5000, 0.0500])
    """
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (hs/2,)
    if scaling is None:
        return freqs
    factor = scaling["factor"]
    if scaling["rope_type"] == "linear":
        return freqs / factor
    # llama3
    old_context = scaling["original_max_position_embeddings"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    wavelen = 2 * math.pi / freqs  # (hs/2,) positions per full turn of each pair
    scaled = torch.where(wavelen > old_context / low, freqs / factor, freqs)  # slow pairs slowed down further
    smooth = (old_context / wavelen - low) / (high - low)  # 0 at the slow edge, 1 at the fast edge
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    between = (wavelen >= old_context / high) & (wavelen <= old_context / low)
    return torch.where(between, blended, scaled)


def precompute_rope(head_dim: int, max_seq_len: int, theta: float = 10000.0,
                    scaling: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real cos and sin of the rotation angle m * theta_i for position m and pair i.

    Returned as two (max_seq_len, hs/2) tables, not as complex numbers, so a
    lesson can plot them directly.
    """
    freqs = rope_frequencies(head_dim, theta, scaling)  # (hs/2,)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), freqs)  # (T, hs/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair of x by its angle.

    x is (..., T, hs) and cos/sin are (T, hs/2). Pair i is (x[i], x[i + hs/2]):
    the "rotate_half" layout of Hugging Face checkpoints, so their weights load
    as they are. (Meta's original code paired neighbours (x[2i], x[2i+1]); the
    two layouts differ by a fixed permutation of q_proj/k_proj rows, which is
    why loading a Meta checkpoint needs one and loading an HF one does not.)

        [x1, x2] -> [x1 cos - x2 sin, x1 sin + x2 cos]
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (..., T, hs/2) each
    if cos.dtype != x.dtype:  # (the model casts its tables once per forward pass)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def sinusoidal_positions(max_seq_len: int, dim: int) -> torch.Tensor:
    """The fixed absolute encoding of "Attention Is All You Need", added to token embeddings.

    PE[m, 2i] = sin(m / 10000^(2i/C)), PE[m, 2i+1] = cos(m / 10000^(2i/C)).
    """
    pos = torch.arange(max_seq_len, dtype=torch.float32)[:, None]  # (T, 1)
    div = 10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (C/2,)
    pe = torch.zeros(max_seq_len, dim)  # (T, C)
    pe[:, 0::2] = torch.sin(pos / div)
    pe[:, 1::2] = torch.cos(pos / div)[:, : dim // 2]
    return pe


# ----------------------------------------------------------------------------- KV cache


class KVCache:
    """Keys and values of earlier positions, preallocated for `max_seq_len` positions.

    During generation each new token's k and v are written at its position and
    attention reads everything up to it, so a step costs O(S) instead of
    recomputing all S positions. One per layer; see `Llama.new_cache`.

    Positions are written in order: a call must continue exactly where the
    cache stops (`length`). To run a new prompt on the same cache, `reset()` it;
    to go back to an earlier position (re-run the last step, branch off a
    shared prefix), `rewind(n)` keeps the first n positions. Anything else (a
    gap, a position already written, a batch of another size, no room left)
    raises a ValueError that names the cache, instead of silently attending to
    stale keys.
    """

    def __init__(self, batch_size: int, n_kv_heads: int, max_seq_len: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None, name: str = "KVCache"):
        shape = (batch_size, n_kv_heads, max_seq_len, head_dim)  # (B, nkv, max_seq_len, hs)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0  # positions 0 .. length-1 are filled
        self.name = name  # says which cache an error is about, e.g. "KV cache of layer 3"

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nkv, T, hs) at input_pos (T,) = length .. length+T-1; return all keys/values
        so far, (B, nkv, S, hs) with S = length + T."""
        B, T = k.shape[0], k.shape[2]
        start = int(input_pos[0])
        end = start + T
        if len(input_pos) != T or (T > 1 and not torch.equal(input_pos, torch.arange(start, end, device=input_pos.device))):
            raise ValueError(f"{self.name}: positions {input_pos.tolist()} are not {T} consecutive positions")
        if start != self.length:
            what = "would leave a gap" if start > self.length else "were already written"
            raise ValueError(f"{self.name}: it holds positions 0..{self.length - 1}, so the next call must start at "
                             f"position {self.length}, not {start} (positions {start}..{end - 1} {what}); "
                             f"call reset() for a new sequence or rewind(n) to go back")
        if end > self.capacity:
            raise ValueError(f"{self.name}: room for {self.capacity} positions, asked to write up to position {end - 1}")
        if B != self.k.shape[0]:
            raise ValueError(f"{self.name}: made for batch size {self.k.shape[0]}, called with {B}")
        self.k.narrow(2, start, T).copy_(k)  # k[:, :, start:end] = k
        self.v.narrow(2, start, T).copy_(v)
        self.length = end
        return self.k.narrow(2, 0, end), self.v.narrow(2, 0, end)  # (B, nkv, S, hs) views, no copy

    def rewind(self, n: int) -> None:
        """Forget every position from n on (the next call starts at position n)."""
        if not 0 <= n <= self.length:
            raise ValueError(f"{self.name}: cannot rewind to {n}; it holds {self.length} positions")
        self.length = n

    def reset(self) -> None:
        """Empty the cache (the stored numbers are left in place; they are overwritten before being read)."""
        self.length = 0

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2


# ----------------------------------------------------------------------------- attention

# How Attention computes softmax(q k^T / sqrt(hs)) v; all give the same numbers (within 1e-5 in fp32).
#   "manual"     the readable path: the whole (T, S) matrix of scores, masked, then a softmax per row;
#                the only one that records attention probabilities, so a traced call always takes it.
#   "sdpa"       PyTorch's fused kernel (F.scaled_dot_product_attention).
#   "blockwise"  blockwise.py: tiles of at most attn_block_size x attn_block_size scores with an online
#                softmax, skipping the tiles that causality masks (FlashAttention's idea, in plain PyTorch).
ATTN_BACKENDS = ("manual", "sdpa", "blockwise")


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Share each K/V head with n_rep query heads (GQA/MQA). Same as torch.repeat_interleave(x, n_rep, dim=1).

    (B, nkv, S, hs) -> (B, nkv * n_rep, S, hs); head j serves query heads j*n_rep ... j*n_rep + n_rep - 1.
    """
    if n_rep == 1:
        return x
    B, nkv, S, hs = x.shape
    return x[:, :, None].expand(B, nkv, n_rep, S, hs).reshape(B, nkv * n_rep, S, hs)


def manual_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The readable path ("manual"): every score of the call at once, then a softmax per row.

    q is (B, nh, T, hs); k and v are (B, nkv, S, hs); mask is (T, S) with True where a query may attend (None: every
    key is visible, one new token). Returns the output (B, nh, T, hs) and the attention probabilities
    (B, nh, T, S), which sum to 1 over S. It holds the whole (B, nh, T, S) matrix of scores: the memory the
    "blockwise" and "sdpa" backends avoid (llama/memory.py measures it).
    """
    n_rep = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, nh, S, hs)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, nh, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    att = F.softmax(scores.float(), dim=-1).to(q.dtype)  # (B, nh, T, S), rows sum to 1
    return att @ v, att  # (B, nh, T, hs), (B, nh, T, S)


class Attention(nn.Module):
    """Causal self-attention with grouped K/V heads (MHA when nkv == nh, MQA when nkv == 1)."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim, self.n_rep = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.n_rep
        bias = cfg.attention_bias
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=bias)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=bias)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=bias)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=bias)

    def forward(self, x, rope, input_pos, mask, cache: KVCache | None = None, backend: str = "manual", tr=None,
                block_size: int = 64):
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        if tr is not None:
            tr.q, tr.k, tr.v = q, k, v
        if rope is not None:
            cos, sin = rope  # (T, hs/2) each, already at input_pos
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if tr is not None:
            tr.q_rot, tr.k_rot = q, k
        if cache is not None:
            k, v = cache.update(input_pos, k, v)  # (B, nkv, S, hs)
        if backend == "sdpa" and tr is None:
            # The fused kernel computes the same softmax(q k^T / sqrt(hs)) v without
            # materialising the (T, S) matrix; it shares K/V heads itself (enable_gqa).
            causal = k.shape[2] == T  # no cache or a prefill from position 0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None if causal else mask,
                                               is_causal=causal and T > 1, enable_gqa=self.n_rep > 1)
        elif backend == "blockwise" and tr is None:
            # The same softmax, tile by tile: no (T, S) matrix, and no mask (it masks by positions).
            y = blockwise_attention(q, k, v, input_pos, block_size)  # (B, nh, T, hs)
        else:
            y, att = manual_attention(q, k, v, mask)  # (B, nh, T, hs), (B, nh, T, S); mask None: one new token
            if tr is not None:
                tr.attn = att
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, nh*hs)
        return self.o_proj(y)


# ----------------------------------------------------------------------------- feed-forward


class FeedForward(nn.Module):
    """Llama's SwiGLU MLP: down(silu(gate(x)) * up(x)), or a classic relu/gelu MLP: down(act(up(x)))."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.kind = cfg.ffn
        bias = cfg.mlp_bias
        if self.kind == "swiglu":
            self.gate_proj = nn.Linear(cfg.dim, cfg.hidden_dim, bias=bias)
        self.up_proj = nn.Linear(cfg.dim, cfg.hidden_dim, bias=bias)
        self.down_proj = nn.Linear(cfg.hidden_dim, cfg.dim, bias=bias)

    def forward(self, x, tr=None):
        if self.kind == "swiglu":
            gate = F.silu(self.gate_proj(x))  # (B, T, H) the gate, ~0 for negative inputs
            h = gate * self.up_proj(x)  # (B, T, H)
        else:
            gate = F.relu(self.up_proj(x)) if self.kind == "relu" else F.gelu(self.up_proj(x))
            h = gate
        if tr is not None:
            tr.gate = gate
        return self.down_proj(h)


# ----------------------------------------------------------------------------- block and model


@dataclass
class LayerTrace:
    """What one block saw. Attention tensors are (B, heads, T, ...); residual tensors are (B, T, C)."""

    attn_in: torch.Tensor | None = None  # residual stream entering the attention norm
    attn_norm_out: torch.Tensor | None = None  # ... and leaving it (input of q/k/v_proj)
    q: torch.Tensor | None = None  # (B, nh, T, hs) before RoPE
    k: torch.Tensor | None = None  # (B, nkv, T, hs) before RoPE
    v: torch.Tensor | None = None  # (B, nkv, T, hs)
    q_rot: torch.Tensor | None = None  # after RoPE (same as q when position != "rope")
    k_rot: torch.Tensor | None = None
    attn: torch.Tensor | None = None  # (B, nh, T, S) attention probabilities
    ffn_in: torch.Tensor | None = None  # residual stream entering the feed-forward norm
    ffn_norm_out: torch.Tensor | None = None
    gate: torch.Tensor | None = None  # (B, T, H) silu(gate_proj(x)) for SwiGLU, act(up_proj(x)) otherwise
    out: torch.Tensor | None = None  # residual stream leaving the block


@dataclass
class Trace:
    embeddings: torch.Tensor | None = None  # (B, T, C) token (+ absolute position) embeddings
    layers: list[LayerTrace] = field(default_factory=list)
    final_norm_in: torch.Tensor | None = None
    final_norm_out: torch.Tensor | None = None


@dataclass
class LlamaOutput:
    logits: torch.Tensor  # (B, T, V)
    trace: Trace | None = None


class Block(nn.Module):
    """One Llama layer: x + attn(norm(x)), then + ffn(norm(x)) (pre-norm); or norm(x + f(x)) (post-norm)."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.pre_norm = cfg.norm_placement == "pre"
        self.input_layernorm = make_norm(cfg)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = make_norm(cfg)  # HF's name; in a pre-norm block it is the FFN's input norm
        self.mlp = FeedForward(cfg)

    def forward(self, x, rope, input_pos, mask, cache=None, backend="manual", tr: LayerTrace | None = None,
                block_size: int = 64):
        if self.pre_norm:
            attn_in = x
            h = self.input_layernorm(x)
            x = x + self.self_attn(h, rope, input_pos, mask, cache, backend, tr, block_size)
            ffn_in = x
            g = self.post_attention_layernorm(x)
            out = x + self.mlp(g, tr)
        else:
            # Post-norm: the norms act on the sums, so those are what we record as their inputs.
            attn_in = x + self.self_attn(x, rope, input_pos, mask, cache, backend, tr, block_size)
            h = self.input_layernorm(attn_in)
            ffn_in = h + self.mlp(h, tr)
            g = out = self.post_attention_layernorm(ffn_in)
        if tr is not None:
            tr.attn_in, tr.attn_norm_out, tr.ffn_in, tr.ffn_norm_out, tr.out = attn_in, h, ffn_in, g, out
        return out


def _embedding(n: int, dim: int, skeleton: bool) -> nn.Embedding:
    """nn.Embedding(n, dim); on the meta device without its random fill (torch's meta normal_ would
    import the compiler stack, seconds of a model load)."""
    return nn.Embedding(n, dim, _weight=torch.empty(n, dim)) if skeleton else nn.Embedding(n, dim)


class Llama(nn.Module):
    """The whole model: embeddings -> n_layers blocks -> final norm -> lm_head.

        >>> model = Llama(LlamaConfig.from_name("test"))
        >>> model(torch.tensor([[1, 5, 9]])).logits.shape
        torch.Size([1, 3, 512])
    """

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.config = cfg
        skeleton = torch.get_default_device().type == "meta"  # a loader's `with torch.device("meta")`
        self.embed_tokens = _embedding(cfg.vocab_size, cfg.dim, skeleton)
        if cfg.position == "learned":
            self.embed_positions = _embedding(cfg.max_seq_len, cfg.dim, skeleton)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # One of ATTN_BACKENDS ("manual", the readable path and the only one that records attention;
        # "sdpa"; "blockwise"). Chosen by whoever loads the model, never inside it.
        self.attn_backend = "manual"
        self.attn_block_size = 64  # positions per tile of the "blockwise" backend
        if not skeleton:
            self.init_tables()
            self.init_weights()
        # else: a loader is building the skeleton on the "meta" device (shapes, no memory); it assigns the
        # file's weights and then calls init_tables() on the real device (`checkpoint.load_pretrained`).

    def init_tables(self) -> None:
        """Tables derived from the config, not learned: not saved in checkpoints (persistent=False)."""
        cfg = self.config
        if cfg.position == "rope":
            cos, sin = precompute_rope(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta, cfg.rope_scaling)
            self.register_buffer("rope_cos", cos, persistent=False)  # (max_seq_len, hs/2)
            self.register_buffer("rope_sin", sin, persistent=False)
        elif cfg.position == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_positions(cfg.max_seq_len, cfg.dim), persistent=False)  # (max_seq_len, C)

    def init_weights(self) -> None:
        """Random weights for training from scratch: N(0, 0.02), biases 0, norms 1."""
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                # GPT-2's scaled init: each layer adds two projections to the residual stream.
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layers))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once

    def new_cache(self, batch_size: int = 1, max_seq_len: int | None = None) -> list[KVCache]:
        """A fresh, empty KV cache per layer, with room for max_seq_len positions (default: the whole context).
        Kept outside the module so one shared model serves many users."""
        cfg, w = self.config, self.embed_tokens.weight
        n = min(max_seq_len or cfg.max_seq_len, cfg.max_seq_len)
        return [KVCache(batch_size, cfg.n_kv_heads, n, cfg.head_dim, w.dtype, w.device, name=f"KV cache of layer {i}")
                for i in range(cfg.n_layers)]

    def forward(self, idx: torch.Tensor, input_pos: torch.Tensor | None = None,
                cache: list[KVCache] | None = None, trace: bool = False, logits_to_keep: int = 0) -> LlamaOutput:
        """idx (B, T) token ids at positions input_pos (T,) (default 0..T-1). With a cache, earlier
        positions' keys and values come from it and this call's are added to it. logits_to_keep=n > 0
        computes the output layer for the last n positions only (logits (B, n, V); transformers' name):
        generation needs just the last one."""
        cfg = self.config
        B, T = idx.shape
        backend = self.attn_backend
        if backend not in ATTN_BACKENDS:
            raise ValueError(f"attn_backend must be one of {', '.join(ATTN_BACKENDS)}, not {backend!r}")
        if T == 0:
            raise ValueError("no tokens: idx must hold at least one token per row, (B, T) with T >= 1")
        from_start = input_pos is None
        if from_start:
            input_pos = torch.arange(T, device=idx.device)
        elif input_pos.shape != (T,):
            raise ValueError(f"input_pos must give one position per token, shape ({T},), not {tuple(input_pos.shape)}")
        last = T - 1 if from_start else int(input_pos[-1])
        if not from_start and T > 1:
            lo, hi = (int(p) for p in torch.aminmax(input_pos))
            if lo < 0:
                raise ValueError(f"position {lo} is negative: positions count from 0")
            last = max(last, hi)  # (only the check reads it so: positions given to a cache are consecutive)
        if last >= cfg.max_seq_len:
            raise ValueError(f"position {last} is past the model's context of {cfg.max_seq_len} tokens")
        if last < 0:
            raise ValueError(f"position {last} is negative: positions count from 0")
        lo, hi = torch.aminmax(idx)
        if int(lo) < 0 or int(hi) >= cfg.vocab_size:  # embedding would fail deep inside (a device assert on CUDA)
            bad = int(lo) if int(lo) < 0 else int(hi)
            raise ValueError(f"token id {bad} is outside the model's vocabulary of {cfg.vocab_size} ids (0..{cfg.vocab_size - 1})")
        if cache is not None and len(cache) != cfg.n_layers:
            raise ValueError(f"the KV cache has {len(cache)} layers, the model {cfg.n_layers}: make it with model.new_cache")
        S = last + 1 if cache is not None else T
        # The causal mask: the query in row i may attend to the keys in rows 0..i of the sequence. With a
        # cache, key slot j holds position j and the queries sit at input_pos, so the mask is (T, S), not
        # (T, T). Without a cache the keys are this call's own T rows, whatever positions input_pos gives
        # them (they only turn RoPE): causal by row, as transformers' position_ids.
        # (The fused kernel masks by itself when queries and keys cover the same positions, the
        # blockwise path masks each tile by positions, and one new token at the end may attend to
        # every key: no mask to build in these cases.)
        q_slot = input_pos if cache is not None or from_start else torch.arange(T, device=idx.device)  # (T,)
        mask = None
        if trace or (T > 1 and (backend == "manual" or (backend == "sdpa" and S != T))):
            mask = torch.arange(S, device=idx.device)[None, :] <= q_slot[:, None]  # (T, S) True = may attend

        x = self.embed_tokens(idx)  # (B, T, C)
        rope = None
        if cfg.position == "rope":
            if from_start or T == 1:  # a view of consecutive rows, no gather
                rope = self.rope_cos[last + 1 - T:last + 1], self.rope_sin[last + 1 - T:last + 1]  # (T, hs/2) each
            else:
                rope = self.rope_cos[input_pos], self.rope_sin[input_pos]
            rope = rope[0].to(x.dtype), rope[1].to(x.dtype)  # once here, not in every layer
        elif cfg.position == "learned":
            x = x + self.embed_positions(input_pos)
        elif cfg.position == "sinusoidal":
            x = x + self.pos_table[input_pos].to(x.dtype)

        tr = Trace(embeddings=x) if trace else None
        for i, layer in enumerate(self.layers):
            lt = LayerTrace() if trace else None
            x = layer(x, rope, q_slot, mask, cache[i] if cache is not None else None, backend, lt,
                      self.attn_block_size)
            if trace:
                tr.layers.append(lt)
        if self.config.norm_placement == "pre":
            h = self.norm(x)
        else:
            h = x  # a post-norm block already ends in a norm
        if trace:
            tr.final_norm_in, tr.final_norm_out = x, h
        if logits_to_keep > 0:
            h = h[:, -logits_to_keep:]  # (B, n, C)
        return LlamaOutput(self.lm_head(h), tr)
