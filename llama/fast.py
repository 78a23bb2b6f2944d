"""A faster one-token decode step, prepared once by whoever loads the model (gpt-fast's recipe).

model.py is the readable path and stays the only definition of the maths. A decode step of a small
model is nearly all overhead (the course model: ~5 MFLOP a token, ~3 ms a token on one thread before this
module: operator dispatch, and matrix products whose weight layout the CPU reads slowly for one row), so
this module computes the same function with fewer, faster operations for the one case generation
repeats: one new token per row after a prefill. It adds these, and no new maths:

- fused weights, built once here (the model is not touched): q/k/v_proj stacked into one matrix and
  gate/up_proj into another, so a layer makes 4 matrix products instead of 7;
- weights stored transposed, (in, out): `x @ W` for a few rows of x runs about 3x faster on a CPU than
  F.linear's (out, in) layout (measured on the course model's shapes); the activations stay 2-D (B, C);
- each RMSNorm's gain folded into the weights that read its output, its mean of squares taken as one
  product, and RoPE at the step's position as one (hs, hs) rotation matrix shared by every layer (one
  product instead of eight element-wise operations); each residual add done inside the product before it;
- a static shape: the new token attends to every slot of the preallocated `KVCache` through a mask
  (slots after its position get probability exactly 0), so each step has the same shapes and needs no
  per-step checks or slicing;
- optionally torch.compile of that step (`compile=True`), which fuses the small element-wise
  operations (norms, RoPE, SwiGLU) into a few C++ loops. It compiles on the first step (tens of
  seconds, minutes on a loaded machine), once per batch size and cache size.

    >>> step = DecodeStep(model)                          # or DecodeStep(model, compile=True)
    >>> generate(model, [bos], 20, decode_step=step)      # the same tokens as generate(model, [bos], 20)

The prompt (the prefill) and any call that is not one new token run the model's own forward pass.
Covers Llama-style models (RoPE, RMSNorm before each sub-layer, SwiGLU); other configs raise ValueError.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import KVCache, Llama


class DecodeStep:
    """`step(ids, input_pos, cache)` -> next-token logits (B, V): the last position of
    `model(ids, input_pos, cache=cache).logits`, and the cache grows by the new positions, as there.

    Read-only on the model, so one DecodeStep can serve many requests at once (each with its own cache).
    """

    def __init__(self, model: Llama, compile: bool = False):
        cfg = model.config
        if (cfg.position, cfg.norm, cfg.norm_placement, cfg.ffn) != ("rope", "rmsnorm", "pre", "swiglu"):
            raise ValueError("the fast decode step covers Llama-style models (RoPE, pre-norm RMSNorm, SwiGLU); "
                             f"this one has position={cfg.position}, norm={cfg.norm}, "
                             f"norm_placement={cfg.norm_placement}, ffn={cfg.ffn}: use the plain forward pass")
        self.model = model
        self.compiled = compile

        def kn(*ws):  # (N, K) weights stacked along N, then stored transposed: (K, N), contiguous
            return torch.cat(ws).t().contiguous().detach()

        def cat(*bs):  # the matching biases (N,); None when the projections have none
            return None if bs[0] is None else torch.cat(bs).detach()

        # Each RMSNorm's gain g is folded into the weights that read the norm's output: (x r g) @ W = (x r) @ (g W).
        self.layers = []
        for b in model.layers:
            a, m = b.self_attn, b.mlp
            g1, g2 = b.input_layernorm.weight.detach()[:, None], b.post_attention_layernorm.weight.detach()[:, None]
            self.layers.append((
                g1 * kn(a.q_proj.weight, a.k_proj.weight, a.v_proj.weight),  # (C, (nh + 2 nkv) hs)
                cat(a.q_proj.bias, a.k_proj.bias, a.v_proj.bias),
                kn(a.o_proj.weight), cat(a.o_proj.bias),  # (nh hs, C)
                g2 * kn(m.gate_proj.weight, m.up_proj.weight),  # (C, 2H)
                cat(m.gate_proj.bias, m.up_proj.bias),
                kn(m.down_proj.weight), cat(m.down_proj.bias),  # (H, C)
            ))
        self.lm_head = model.norm.weight.detach()[:, None] * kn(model.lm_head.weight)  # (C, V)
        # RMSNorm's mean of squares as one product, eps included: eps + (x * x) @ (1/C, ..., 1/C) (see _rms_scale)
        device = model.embed_tokens.weight.device
        self._mean = torch.full((cfg.dim, 1), 1.0 / cfg.dim, device=device)  # fp32, as RMSNorm's statistics
        self._eps = torch.full((1, 1), cfg.norm_eps, device=device)
        half = torch.arange(cfg.head_dim // 2, device=device)
        hs = cfg.head_dim  # where cos, -sin, sin, cos go in the flattened (hs, hs) rotation: rows in, columns out
        self._rot_index = torch.cat([half * hs + half, (half + hs // 2) * hs + half, half * hs + half + hs // 2,
                                     (half + hs // 2) * hs + half + hs // 2])
        self._step = torch.compile(self.one_token, fullgraph=True) if compile else self.one_token

    def __call__(self, ids: torch.Tensor, input_pos: torch.Tensor, cache: list[KVCache]) -> torch.Tensor:
        B, T = ids.shape
        pos = cache[0].length
        if T != 1 or pos == 0 or pos >= cache[0].capacity or int(input_pos[0]) != pos:
            # the prefill, or a call the step does not cover: the model's own forward (and its checks)
            return self.model(ids, input_pos, cache=cache, logits_to_keep=1).logits[:, -1]
        logits = self._step(ids, input_pos, [c.k for c in cache], [c.v for c in cache])
        for c in cache:
            c.length = pos + 1
        return logits

    def one_token(self, ids: torch.Tensor, input_pos: torch.Tensor, ks: list[torch.Tensor],
                  vs: list[torch.Tensor]) -> torch.Tensor:
        """Llama.forward for one new token per row: ids (B, 1) at input_pos (1,); ks, vs are the layers'
        cache tensors (B, nkv, S_max, hs), written at input_pos in place. Returns logits (B, V)."""
        model, cfg = self.model, self.model.config
        nh, nkv, hs = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        x = F.embedding(ids[:, 0], model.embed_tokens.weight)  # (B, C): one token per row, so 2-D throughout
        B = x.shape[0]
        cos = model.rope_cos[input_pos].to(x.dtype)[0]  # (hs/2,)
        sin = model.rope_sin[input_pos].to(x.dtype)[0]
        # RoPE at this position as one (hs, hs) matrix, built once for every layer: h @ rot gives model.apply_rope's
        # (x1 cos - x2 sin, x1 sin + x2 cos) for each pair (i, i + hs/2), in one product instead of eight operations.
        rot = torch.zeros(hs * hs, dtype=x.dtype, device=x.device)
        rot[self._rot_index] = torch.cat([cos, -sin, sin, cos])
        rot = rot.view(hs, hs)
        # The causal mask over every cache slot, additive: the new token sees positions 0..input_pos.
        mask = torch.zeros(1, ks[0].shape[2], dtype=x.dtype, device=x.device).masked_fill_(
            torch.arange(ks[0].shape[2], device=ids.device) > input_pos, float("-inf"))  # (1, S_max)
        for (wqkv, bqkv, wo, bo, wgu, bgu, wd, bd), k_cache, v_cache in zip(self.layers, ks, vs):
            h = x * self._rms_scale(x)  # RMSNorm; its gain is in wqkv
            qkv = _matmul(h, wqkv, bqkv).view(B, nh + 2 * nkv, hs)  # heads of q, k and v
            qk, v = qkv[:, :nh + nkv], qkv[:, nh + nkv:]
            qk = qk @ rot  # RoPE on q and k heads at once, (B, nh + nkv, hs)
            k_cache.index_copy_(2, input_pos, qk[:, nh:, None])  # (B, nkv, 1, hs) into (B, nkv, S_max, hs)
            v_cache.index_copy_(2, input_pos, v[:, :, None])
            y = F.scaled_dot_product_attention(qk[:, :nh, None], k_cache, v_cache, attn_mask=mask,
                                               enable_gqa=nkv != nh)  # (B, nh, 1, hs)
            x = _matmul(y.view(B, nh * hs), wo, bo, add_to=x)  # the residual add inside the product
            h = x * self._rms_scale(x)  # its gain is in wgu
            gate, up = _matmul(h, wgu, bgu).chunk(2, dim=-1)  # (B, H) each
            x = _matmul(F.silu(gate) * up, wd, bd, add_to=x)
        return (x * self._rms_scale(x)) @ self.lm_head  # (B, V); the final norm's gain is in lm_head

    def _rms_scale(self, x: torch.Tensor) -> torch.Tensor:
        """1 / sqrt(mean(x^2) + eps) per row, (B, 1): model.RMSNorm's scale, its mean of squares written as
        eps + (x * x) @ (1/C, ..., 1/C), one product: three operations where x.pow(2).mean() + eps dispatches
        six (a mean is a sum and a division, and each Python number becomes a tensor) for one short row."""
        xf = x if x.dtype == torch.float32 else x.float()  # half precision: the squares in fp32, as RMSNorm does
        r = torch.rsqrt(torch.addmm(self._eps, xf * xf, self._mean))
        return r if r.dtype == x.dtype else r.to(x.dtype)


def _matmul(x: torch.Tensor, w_kn: torch.Tensor, b: torch.Tensor | None,
            add_to: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, K) @ w_kn (K, N) (+ b) (+ add_to, a residual (B, N)): F.linear with the weight stored transposed,
    in one operation where it can be. For a few rows, a (K, N) weight streams through memory in the order the
    CPU's matrix routine reads fastest: about 3x faster than F.linear's (N, K) for the course model's one-token
    steps (bench/bench_model.py)."""
    if add_to is not None:
        return torch.addmm(add_to if b is None else add_to + b, x, w_kn)
    return x @ w_kn if b is None else torch.addmm(b, x, w_kn)
