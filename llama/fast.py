"""A faster one-token decode step, prepared once by whoever loads the model (gpt-fast's recipe).

model.py is the readable path and stays the only definition of the maths. A decode step of a small
model is nearly all per-step overhead (the course model: ~5 MFLOP a token, ~3 ms a token on one thread
before this module, almost all of it Python and operator dispatch), so this module computes the same
function with fewer, bigger operations for the one case generation repeats: one new token per row
after a prefill. It adds three things and no new maths:

- fused weights, built once here (the model is not touched): q/k/v_proj stacked into one matrix and
  gate/up_proj into another, so a layer makes 4 matrix products instead of 7;
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

        def cat(*ts):  # fused weights (or biases); None when the projections have none
            return None if ts[0] is None else torch.cat(ts).detach()

        self.layers = []
        for b in model.layers:
            a, m = b.self_attn, b.mlp
            self.layers.append((
                b.input_layernorm.weight.detach(),
                cat(a.q_proj.weight, a.k_proj.weight, a.v_proj.weight),  # ((nh + 2 nkv) hs, C)
                cat(a.q_proj.bias, a.k_proj.bias, a.v_proj.bias),
                a.o_proj.weight.detach(), None if a.o_proj.bias is None else a.o_proj.bias.detach(),
                b.post_attention_layernorm.weight.detach(),
                cat(m.gate_proj.weight, m.up_proj.weight),  # (2H, C)
                cat(m.gate_proj.bias, m.up_proj.bias),
                m.down_proj.weight.detach(), None if m.down_proj.bias is None else m.down_proj.bias.detach(),
            ))
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
        nh, nkv, hs, C = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.dim
        x = F.embedding(ids, model.embed_tokens.weight)  # (B, 1, C)
        B = x.shape[0]
        cos = model.rope_cos[input_pos].to(x.dtype)  # (1, hs/2)
        sin = model.rope_sin[input_pos].to(x.dtype)
        # The causal mask over every cache slot: the new token sees positions 0..input_pos.
        mask = (torch.arange(ks[0].shape[2], device=ids.device) <= input_pos)[None]  # (1, S_max)
        for (n1, wqkv, bqkv, wo, bo, n2, wgu, bgu, wd, bd), k_cache, v_cache in zip(self.layers, ks, vs):
            h = F.rms_norm(x, (C,), n1, cfg.norm_eps)
            qkv = F.linear(h, wqkv, bqkv).view(B, nh + 2 * nkv, hs)  # (B, nh + 2 nkv, hs) heads of q, k, v
            qk, v = qkv[:, :nh + nkv], qkv[:, nh + nkv:]
            x1, x2 = qk.chunk(2, dim=-1)  # RoPE on q and k heads at once, as model.apply_rope
            qk = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, nh + nkv, hs)
            k_cache.index_copy_(2, input_pos, qk[:, nh:, None])  # (B, nkv, 1, hs) into (B, nkv, S_max, hs)
            v_cache.index_copy_(2, input_pos, v[:, :, None])
            y = F.scaled_dot_product_attention(qk[:, :nh, None], k_cache, v_cache, attn_mask=mask,
                                               enable_gqa=nkv != nh)  # (B, nh, 1, hs)
            x = x + F.linear(y.view(B, 1, nh * hs), wo, bo)
            h = F.rms_norm(x, (C,), n2, cfg.norm_eps)
            gate, up = F.linear(h, wgu, bgu).chunk(2, dim=-1)  # (B, 1, H) each
            x = x + F.linear(F.silu(gate) * up, wd, bd)
        x = F.rms_norm(x, (C,), model.norm.weight, cfg.norm_eps)
        return F.linear(x[:, -1], model.lm_head.weight)  # (B, V)
