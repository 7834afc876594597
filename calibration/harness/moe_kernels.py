"""The MoE MLP and the MLA attention layer as the harness times them (bf16).

Shared by moe_mla.py (MoE and MLA layers, grouped-GEMM micro-benchmarks) and
decode_stacks.py (whole-model decode steps).  Every builder is a pure function
of its shape, so the pre-compile workers and the timing process hand
torch.compile identical graphs.  torch is imported lazily: the parent of the
pre-compile workers never touches the GPU.

MoE MLP (one layer, no norm, no residual), tokens x [T, H]:
  router      logits = x @ Wr^T [T, E]; softmax in fp32; top-k; the k weights
              renormalized to sum 1 (Mixtral, Qwen3-MoE)
  grouping    the T*k (token, expert) slots sorted by expert (stable argsort),
              rows per expert counted (scatter_add) and their cumulative ends
              (int32 `offs`), the token rows gathered in that order [T*k, H]
  gate-up     torch._grouped_mm(xs, W13^T, offs) -> [T*k, 2F]  (W13 [E, 2F, H])
  activation  silu(gate) * up -> [T*k, F]
  down        torch._grouped_mm(a, W2^T, offs) -> [T*k, H]     (W2 [E, H, F])
  combine     rows times their routing weight, index_add_ back into [T, H]
Routing: `balanced` (prefill): the router runs, its k weights are used, but the
experts are a fixed assignment in which each expert gets T*k/E rows (within
one row when E does not divide T*k; each token's k experts distinct), tokens
in a random order; `imbalanced`: the busiest expert gets `imbalance` x the mean
rows, the others share the rest; `router` (decode): the router's own top-k on
random weights decides (each record says how many distinct experts it touched).

MLA (DeepSeek-V2/V3 attention half of a layer: RMSNorm, projections, RoPE,
attention, output projection, residual add):
  prefill, expanded form: q = x Wq (or q_a = x Wqa, RMSNorm, q = q_a Wqb),
      [c_kv, k_pe] = x Wkva, RMSNorm(c_kv), [k_nope, v] = c_kv Wkvb, RoPE on
      q_pe and k_pe (k_pe shared by every head), SDPA causal over q = [q_nope,
      q_pe], k = [k_nope, k_pe] (qk dim nope+rope) and v (v dim), o = attn Wo
  decode, absorbed form: q as above for one token per sequence; the new
      latent [RMSNorm(c_kv), RoPE(k_pe)] written into the latent cache
      [B, context+1, kv_lora_rank + rope]; q_nope absorbed through W_UK into
      the latent (bmm over heads), scores = [q_lat, q_pe] . cache (one bmm),
      fp32 softmax, o_lat = p . cache[..., :kv_lora_rank] (one bmm), o through
      W_UV (bmm over heads), then Wo.
"""
import math
import os

EPS = 1e-6
DEV = os.environ.get("NAS_DEVICE", "cuda")


def _torch():
    import torch
    return torch


def rms_norm(x, w):
    torch = _torch()
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype) * w


def rotate_half(x):
    torch = _torch()
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(positions, dim):
    """bf16 cos/sin [len(positions), dim] (rotate-half layout)."""
    torch = _torch()
    inv = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, device=DEV, dtype=torch.float32) / dim))
    pos = torch.as_tensor(positions, device=DEV, dtype=torch.float32)
    fr = pos[:, None] * inv[None, :]
    emb = torch.cat((fr, fr), dim=-1)
    return emb.cos().to(torch.bfloat16), emb.sin().to(torch.bfloat16)


# ----------------------------------------------------------------------------
# MoE
# ----------------------------------------------------------------------------

def moe_core(x, wr, w13t, w2t, ids, k, F, use_router_ids):
    """The MoE MLP. w13t = W13.transpose(1, 2) [E, H, 2F], w2t = W2.transpose(1, 2) [E, F, H]."""
    torch = _torch()
    import torch.nn.functional as Fn
    T = x.shape[0]
    E = wr.shape[0]
    logits = Fn.linear(x, wr)
    probs = torch.softmax(logits.float(), dim=-1)
    topv, topi = torch.topk(probs, k, dim=-1)
    topv = topv / topv.sum(dim=-1, keepdim=True)
    if use_router_ids:
        ids = topi
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    tok = order // k
    counts = torch.zeros(E, device=x.device, dtype=torch.int32).scatter_add_(
        0, flat, torch.ones_like(flat, dtype=torch.int32))
    offs = torch.cumsum(counts, 0, dtype=torch.int32)
    xs = x.index_select(0, tok)
    h = torch._grouped_mm(xs, w13t, offs=offs)
    a = Fn.silu(h[:, :F]) * h[:, F:]
    y = torch._grouped_mm(a, w2t, offs=offs)
    wts = topv.reshape(-1).index_select(0, order).to(y.dtype)
    out = torch.zeros((T, x.shape[1]), device=x.device, dtype=x.dtype)
    return out.index_add_(0, tok, y * wts[:, None])


def moe_routed_core(x, w13t, w2t, topv, ids, k, F):
    """The MoE MLP of tokens already routed (`nas kernel`'s moe): grouping, gate-up, activation,
    down, and a combine without atomics (rows unpermuted, weighted, summed over the k slots)."""
    torch = _torch()
    import torch.nn.functional as Fn
    T = x.shape[0]
    E = w13t.shape[0]
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    tok = order // k
    counts = torch.zeros(E, device=x.device, dtype=torch.int32).scatter_add_(
        0, flat, torch.ones_like(flat, dtype=torch.int32))
    offs = torch.cumsum(counts, 0, dtype=torch.int32)
    xs = x.index_select(0, tok)
    h = torch._grouped_mm(xs, w13t, offs=offs)
    a = Fn.silu(h[:, :F]) * h[:, F:]
    y = torch._grouped_mm(a, w2t, offs=offs)
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel(), device=x.device, dtype=order.dtype)
    yt = y.index_select(0, inv).view(T, k, -1)
    return (yt.float() * topv.unsqueeze(-1)).sum(dim=1).to(x.dtype)


def make_moe_routed_fn(k, F):
    def moe_routed(x, w13t, w2t, topv, ids):
        return moe_routed_core(x, w13t, w2t, topv, ids, k, F)
    return moe_routed


def make_moe_fn(k, F, use_router_ids):
    def moe(x, wr, w13t, w2t, ids):
        return moe_core(x, wr, w13t, w2t, ids, k, F, use_router_ids)
    return moe


def moe_weights(H, F, E, gen=None, empty=False):
    """(wr [E, H], w13t [E, H, 2F] (a transposed view), w2t [E, F, H] (a transposed view))."""
    torch = _torch()
    bf = torch.bfloat16

    def rn(*shape, std):
        t = torch.empty(*shape, device=DEV, dtype=bf)
        if not empty:
            t.normal_(0.0, std, generator=gen)
        return t
    wr = rn(E, H, std=H ** -0.5)
    w13 = rn(E, 2 * F, H, std=H ** -0.5)
    w2 = rn(E, H, F, std=F ** -0.5)
    return wr, w13.transpose(1, 2), w2.transpose(1, 2)


def balanced_ids(T, k, E, imbalance=1.0, seed=0):
    """Expert ids [T, k] (int64): balanced (each expert T*k/E rows, within one), or the busiest
    expert with `imbalance` x the mean rows and the others sharing the rest evenly."""
    torch = _torch()
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    n = T * k
    if imbalance <= 1.0:
        base = (torch.arange(n, dtype=torch.int64) % E).reshape(T, k)
        perm = torch.randperm(T, generator=g)
        return base[perm].contiguous().to(DEV)
    mean = n / E
    hot = min(n, int(round(imbalance * mean)))
    rest = n - hot
    counts = [hot] + [rest // (E - 1) + (1 if i < rest % (E - 1) else 0) for i in range(E - 1)]
    flat = torch.cat([torch.full((c,), e, dtype=torch.int64) for e, c in enumerate(counts) if c > 0])
    flat = flat[torch.randperm(n, generator=g)]
    return flat.reshape(T, k).contiguous().to(DEV)


def moe_counts(T, H, F, E, k, rows_per_expert):
    """FLOPs and minimum bytes of one MoE MLP; rows_per_expert: list of E ints."""
    touched = sum(1 for r in rows_per_expert if r > 0)
    rows = T * k
    flops = 2 * rows * H * 3 * F + 2 * T * H * E
    weight_bytes = 2 * touched * 3 * H * F
    act_bytes = 2 * (T * H + rows * H + rows * 2 * F + rows * 3 * F + rows * H + T * H)
    return {"flops": flops, "gemm_flops": 2 * rows * H * 3 * F, "router_flops": 2 * T * H * E,
            "experts_touched": touched, "rows_max": max(rows_per_expert), "rows": rows,
            "expert_weight_bytes_touched": weight_bytes, "bytes": weight_bytes + 2 * E * H + act_bytes}


def moe_weight_bytes(H, F, E):
    return 2 * (E * H + 3 * E * H * F)


def grouped_mm_fn():
    torch = _torch()

    def gmm(a, bt, offs):
        return torch._grouped_mm(a, bt, offs=offs)
    return gmm


def balanced_offs(rows, E):
    """Cumulative int32 ends of E groups sharing `rows` rows evenly (within one)."""
    torch = _torch()
    per = [rows // E + (1 if i < rows % E else 0) for i in range(E)]
    ends, s = [], 0
    for p in per:
        s += p
        ends.append(s)
    return torch.tensor(ends, dtype=torch.int32, device=DEV), per


# ----------------------------------------------------------------------------
# MLA
# ----------------------------------------------------------------------------

def mla_weights(a, gen=None, empty=False, layers=1):
    """Weights of the attention half of one MLA layer (dict of tensors)."""
    torch = _torch()
    bf = torch.bfloat16
    D, H, ql, kl = a["hidden"], a["heads"], a["q_lora_rank"], a["kv_lora_rank"]
    dn, dr, dv = a["qk_nope_head_dim"], a["qk_rope_head_dim"], a["v_head_dim"]

    def rn(*shape, std):
        t = torch.empty(*shape, device=DEV, dtype=bf)
        if not empty:
            t.normal_(0.0, std, generator=gen)
        return t

    def norm(n):
        t = torch.empty(n, device=DEV, dtype=bf)
        if not empty:
            t.normal_(1.0, 0.1, generator=gen)
        return t
    W = {"n1": norm(D)}
    if ql:
        W["wqa"] = rn(ql, D, std=D ** -0.5)
        W["qan"] = norm(ql)
        W["wqb"] = rn(H * (dn + dr), ql, std=ql ** -0.5)
    else:
        W["wq"] = rn(H * (dn + dr), D, std=D ** -0.5)
    W["wkva"] = rn(kl + dr, D, std=D ** -0.5)
    W["kvan"] = norm(kl)
    wkvb = rn(H, dn + dv, kl, std=kl ** -0.5)
    W["wkvb"] = wkvb.reshape(H * (dn + dv), kl)
    W["wuk"] = wkvb[:, :dn, :]          # [H, dn, kl] (a view)
    W["wuv"] = wkvb[:, dn:, :]          # [H, dv, kl] (a view)
    W["wo"] = rn(D, H * dv, std=(H * dv) ** -0.5)
    return W


def mla_weight_bytes(a):
    D, H, ql, kl = a["hidden"], a["heads"], a["q_lora_rank"], a["kv_lora_rank"]
    dn, dr, dv = a["qk_nope_head_dim"], a["qk_rope_head_dim"], a["v_head_dim"]
    q = (ql * D + ql + H * (dn + dr) * ql) if ql else H * (dn + dr) * D
    return 2 * (D + q + (kl + dr) * D + kl + H * (dn + dv) * kl + D * H * dv)


def _q_proj(h, W, has_q_lora):
    import torch.nn.functional as Fn
    if has_q_lora:
        return Fn.linear(rms_norm(Fn.linear(h, W["wqa"]), W["qan"]), W["wqb"])
    return Fn.linear(h, W["wq"])


def make_mla_prefill_fn(a):
    H, kl = a["heads"], a["kv_lora_rank"]
    dn, dr, dv = a["qk_nope_head_dim"], a["qk_rope_head_dim"], a["v_head_dim"]
    has_q = bool(a["q_lora_rank"])
    scale = (dn + dr) ** -0.5

    def mla_prefill(x, W, cos, sin):
        torch = _torch()
        import torch.nn.functional as Fn
        B, S, _ = x.shape
        h = rms_norm(x, W["n1"])
        q = _q_proj(h, W, has_q).view(B, S, H, dn + dr)
        q_nope, q_pe = q.split([dn, dr], dim=-1)
        kva = Fn.linear(h, W["wkva"])
        c, k_pe = kva.split([kl, dr], dim=-1)
        c = rms_norm(c, W["kvan"])
        kv = Fn.linear(c, W["wkvb"]).view(B, S, H, dn + dv)
        k_nope, v = kv.split([dn, dv], dim=-1)
        cs, sn = cos[None, :, None, :], sin[None, :, None, :]
        q_pe = q_pe * cs + rotate_half(q_pe) * sn
        k_pe = k_pe.view(B, S, 1, dr)
        k_pe = k_pe * cs + rotate_half(k_pe) * sn
        qf = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)
        kf = torch.cat([k_nope, k_pe.expand(B, S, H, dr)], dim=-1).transpose(1, 2)
        o = Fn.scaled_dot_product_attention(qf, kf, v.transpose(1, 2), is_causal=True, scale=scale)
        return x + Fn.linear(o.transpose(1, 2).reshape(B, S, H * dv), W["wo"])
    return mla_prefill


def make_mla_decode_fn(a, pos):
    """One token per sequence at position `pos` (= context): the cache holds pos + 1 latents."""
    H, kl = a["heads"], a["kv_lora_rank"]
    dn, dr, dv = a["qk_nope_head_dim"], a["qk_rope_head_dim"], a["v_head_dim"]
    has_q = bool(a["q_lora_rank"])
    scale = (dn + dr) ** -0.5

    def mla_decode(x, W, cache, cos, sin):
        torch = _torch()
        import torch.nn.functional as Fn
        B = x.shape[0]
        h = rms_norm(x, W["n1"])
        q = _q_proj(h, W, has_q).view(B, H, dn + dr)
        q_nope, q_pe = q.split([dn, dr], dim=-1)
        kva = Fn.linear(h, W["wkva"])
        c, k_pe = kva.split([kl, dr], dim=-1)
        c = rms_norm(c, W["kvan"])
        k_pe = k_pe * cos + rotate_half(k_pe) * sin
        q_pe = q_pe * cos + rotate_half(q_pe) * sin
        cache[:, pos] = torch.cat([c, k_pe], dim=-1)
        q_lat = torch.bmm(q_nope.transpose(0, 1), W["wuk"]).transpose(0, 1)      # [B, H, kl]
        qf = torch.cat([q_lat, q_pe], dim=-1)                                     # [B, H, kl + dr]
        scores = torch.bmm(qf, cache.transpose(1, 2)).float() * scale             # [B, H, pos + 1]
        p = torch.softmax(scores, dim=-1).to(x.dtype)
        o_lat = torch.bmm(p, cache[:, :, :kl])                                    # [B, H, kl]
        o = torch.bmm(o_lat.transpose(0, 1), W["wuv"].transpose(1, 2)).transpose(0, 1)  # [B, H, dv]
        return x + Fn.linear(o.reshape(B, H * dv), W["wo"])
    return mla_decode


def make_mla_decode_split_fn(a, pos):
    """The absorbed decode with the latent cache in two contiguous tensors, c_kv [B, pos+1, kv_lora_rank]
    and k_pe [B, pos+1, rope]: scores = q_lat . c_kv + q_pe . k_pe (two bmm), o_lat = p . c_kv (one bmm)."""
    H, kl = a["heads"], a["kv_lora_rank"]
    dn, dr, dv = a["qk_nope_head_dim"], a["qk_rope_head_dim"], a["v_head_dim"]
    has_q = bool(a["q_lora_rank"])
    scale = (dn + dr) ** -0.5

    def mla_decode_split(x, W, ckv, kpe, cos, sin):
        torch = _torch()
        import torch.nn.functional as Fn
        B = x.shape[0]
        h = rms_norm(x, W["n1"])
        q = _q_proj(h, W, has_q).view(B, H, dn + dr)
        q_nope, q_pe = q.split([dn, dr], dim=-1)
        kva = Fn.linear(h, W["wkva"])
        c, k_pe = kva.split([kl, dr], dim=-1)
        c = rms_norm(c, W["kvan"])
        k_pe = k_pe * cos + rotate_half(k_pe) * sin
        q_pe = q_pe * cos + rotate_half(q_pe) * sin
        ckv[:, pos] = c
        kpe[:, pos] = k_pe
        q_lat = torch.bmm(q_nope.transpose(0, 1), W["wuk"]).transpose(0, 1)              # [B, H, kl]
        scores = (torch.bmm(q_lat, ckv.transpose(1, 2)) + torch.bmm(q_pe, kpe.transpose(1, 2))).float() * scale
        p = torch.softmax(scores, dim=-1).to(x.dtype)                                     # [B, H, pos + 1]
        o_lat = torch.bmm(p, ckv)                                                          # [B, H, kl]
        o = torch.bmm(o_lat.transpose(0, 1), W["wuv"].transpose(1, 2)).transpose(0, 1)     # [B, H, dv]
        return x + Fn.linear(o.reshape(B, H * dv), W["wo"])
    return mla_decode_split


def mla_flops_prefill(a, B, S):
    D, H, ql, kl = a["hidden"], a["heads"], a["q_lora_rank"], a["kv_lora_rank"]
    dn, dr, dv = a["qk_nope_head_dim"], a["qk_rope_head_dim"], a["v_head_dim"]
    T = B * S
    q = (ql * D + H * (dn + dr) * ql) if ql else H * (dn + dr) * D
    proj = 2 * T * (q + (kl + dr) * D + H * (dn + dv) * kl + D * H * dv)
    pairs = S * (S + 1) // 2
    attn = 2 * B * H * pairs * ((dn + dr) + dv)
    return proj, attn


def mla_flops_decode(a, B, keys):
    D, H, ql, kl = a["hidden"], a["heads"], a["q_lora_rank"], a["kv_lora_rank"]
    dn, dr, dv = a["qk_nope_head_dim"], a["qk_rope_head_dim"], a["v_head_dim"]
    q = (ql * D + H * (dn + dr) * ql) if ql else H * (dn + dr) * D
    proj = 2 * B * (q + (kl + dr) * D + H * dn * kl + H * dv * kl + D * H * dv)
    attn = 2 * B * H * keys * ((kl + dr) + kl)
    return proj, attn


def sdpa_backend(q, k, v, causal):
    torch = _torch()
    try:
        choice = int(torch._fused_sdp_choice(q, k, v, None, 0.0, causal, scale=None))
        from torch.nn.attention import SDPBackend
        for name, b in SDPBackend.__members__.items():
            if int(b) == choice:
                return name
        return str(choice)
    except Exception as e:  # noqa: BLE001
        return f"unknown ({type(e).__name__})"


def is_pow2(n):
    return n > 0 and (n & (n - 1)) == 0


def ceil_div(a, b):
    return -(-a // b)


__all__ = [n for n in dir() if not n.startswith("_")]
_ = math
