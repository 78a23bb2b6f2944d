"""Memory with real-size models: every variant a page builds (RoPE off, another rope_theta, K/V heads pooled or
repeated, the attention twin without 1/sqrt(d)) shares the loaded model's weights and owns only what changes, and
the lessons' caches are bounded in bytes, not only in entries. (bench/bench_bigmodel.py measures the resident
memory of a 1B-shape model through every page; these tests check the mechanisms on the shipped model, in seconds.)"""

import threading

import torch

from lessons.attention import compute as A
from lessons.course import LRU, nbytes
from lessons.gqa import compute as G
from lessons.rope import compute as R
from llama.variant import shared_variant


def owned_bytes(variant, base) -> int:
    """Bytes of the variant's tensors (parameters and buffers) that are not the base model's own storage."""
    base_ptrs = {t.untyped_storage().data_ptr() for t in [*base.parameters(), *base.buffers()]}
    mine = {}
    for t in [*variant.parameters(), *variant.buffers()]:
        s = t.untyped_storage()
        if s.data_ptr() not in base_ptrs:
            mine[s.data_ptr()] = s.nbytes()
    return sum(mine.values())


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_rope_variants_own_only_their_rope_tables(cm):
    before = {k: v.clone() for k, v in cm.model.state_dict().items()}
    for position, theta in (("none", None), ("rope", 500_000.0), ("rope", 100.0)):
        v = R.variant_model(cm.model, position, theta)
        tables = sum(b.untyped_storage().nbytes() for b in v.buffers())
        assert owned_bytes(v, cm.model) == tables < weight_bytes(cm.model) / 10, (position, theta)
    for k, t in cm.model.state_dict().items():  # the shared model is untouched
        assert torch.equal(t, before[k]), k


def test_kv_conversion_owns_only_the_new_k_and_v_projections(cm):
    c = cm.config
    for n_kv in G.conversion_options(cm):
        new = G.convert_kv_heads(cm.model, n_kv)
        kv = 2 * c.n_layers * n_kv * c.head_dim * c.dim * 4  # k_proj and v_proj of every layer, fp32
        assert owned_bytes(new, cm.model) == kv, n_kv
        assert new.config.n_kv_heads == n_kv and cm.config.n_kv_heads == c.n_kv_heads
    # ... and measures the same loss as a full copy built the old way would
    pooled = G.convert_kv_heads(cm.model, 1)
    ids = torch.tensor([[cm.tokenizer.bos_id] + cm.tokenizer.encode("To be, or not to be")])
    full = type(cm.model)(c.replace(n_kv_heads=1)).eval()
    full.load_state_dict(pooled.state_dict())
    torch.testing.assert_close(pooled(ids).logits, full(ids).logits, rtol=0, atol=0)


def test_attention_twin_owns_only_its_scaled_queries(cm):
    twin = A.without_scaling(cm.model)
    c = cm.config
    assert owned_bytes(twin, cm.model) == c.n_layers * c.n_heads * c.head_dim * c.dim * 4  # q_proj, fp32


def test_a_variant_never_changes_the_shared_model_it_reads(cm):
    """Variants hold their own Parameter objects and modes over the shared storage: setting gradients or training
    mode on a variant (llama.train.evaluate toggles the mode) leaves the shared model as it was."""
    v = shared_variant(cm.model, cm.config.replace(position="none"))
    v.train().requires_grad_(True)
    assert not cm.model.training and not any(p.requires_grad for p in cm.model.parameters())


def test_lru_is_bounded_in_bytes_and_keeps_the_newest():
    cache = LRU(100, max_bytes=9_999)
    for i in range(10):
        cache.get_or_compute(i, lambda: torch.zeros(500))  # 2,000 bytes each
    assert cache.bytes <= 9_999 and len(cache) == 4 and cache.get_or_compute(9, lambda: None) is not None
    big = cache.get_or_compute("big", lambda: torch.zeros(100_000))  # larger than the bound: kept alone
    assert len(cache) == 1 and cache.bytes == nbytes(big) == 400_000
    cache.get_or_compute("small", lambda: torch.zeros(10))
    assert len(cache) == 1 and cache.bytes == 40  # the big one went
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


def test_lru_byte_count_stays_exact_when_models_die_and_threads_race(cm):
    cache = LRU(50, max_bytes=1 << 20)
    models = [shared_variant(cm.model) for _ in range(3)]
    for m in models:
        cache.get_or_compute((m, "x"), lambda: torch.zeros(1000))
    threads = [threading.Thread(target=lambda i=i: cache.get_or_compute(("t", i), lambda: torch.zeros(2000)))
               for i in range(20)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    del models, m
    import gc
    gc.collect()
    cache.get_or_compute("after", lambda: torch.zeros(1))
    assert len(cache) == 21 and cache.bytes == sum(cache.sizes.values()) == 20 * 8000 + 4


def test_nbytes_counts_shared_storage_once_and_walks_results():
    t = torch.zeros(1000)
    assert nbytes(t) == 4000 and nbytes([t, t[:10], t.view(10, 100)]) < 4200
    trace = R.LayerQK(*(torch.zeros(2, 3, 4) for _ in range(5)))
    assert nbytes([trace]) >= 5 * 96
    assert nbytes(cm_free := {"m": torch.nn.Linear(1000, 1000)}) < 1000 and cm_free  # a module counts nothing


def test_a_big_model_generates_fewer_tokens_by_default_on_a_cpu(cm):
    """Each generated token is a forward pass of the whole model: the sampling page starts a 1.1B model at 24 tokens
    (80 took two minutes on a 2-core CPU), the course model at 80, and says why in the slider's info."""
    from types import SimpleNamespace

    from app.pages import sampling as page
    from lessons.sampling import compute as S

    def sized(n, device="cpu"):
        return SimpleNamespace(model=SimpleNamespace(num_parameters=lambda: n), device=torch.device(device))

    assert S.default_new_tokens(cm) == S.DEFAULT_NEW_TOKENS == 80
    assert S.default_new_tokens(sized(1_100_048_384)) == 24 and S.default_new_tokens(sized(8_000_000_000)) == 16
    assert S.default_new_tokens(sized(1_100_048_384, "cuda")) == 80
    assert page.first_view(cm)["max_new"]["value"] == 80
