#!/usr/bin/env python3
"""Decode steps of whole bf16 models, compiled, one CUDA graph per step (DESIGN.md's truth).

One step: one token for each of `batch` sequences through a whole model:
embedding gather; every layer with its OWN weights and its OWN preallocated
KV cache (capacity context + 1 tokens; the new token's K and V are written at
position `context`); RMSNorm, fused QKV GEMM, optional QK-RMSNorm, RoPE
(rotate-half, the new token's position), attention of the one query over the
cache through F.scaled_dot_product_attention(enable_gqa=True) -- a sliding
window model attends only to the last `window` keys (the cache is sliced,
[context + 1 - window, context + 1)), else to all context + 1 keys (the new
token's included); output GEMM, residual, RMSNorm, GeGLU MLP (fused gate-up
GEMM, gelu_tanh(gate) * up, down GEMM), residual; final RMSNorm; LM head.

The layer function, the embedding gather and the head each go through
torch.compile (default mode, dynamic=False; torch._dynamo.reset() per model,
recompile limits raised). The whole step (embed + every layer + head) is
captured in ONE torch.cuda.CUDAGraph and replayed: 1 warm-up round, then 5
rounds (timing.time_graph: a GPU spin before each round so the CPU launch is
not counted; the round's value is the median of its per-replay times), the
median of the 5. Random weights N(0, 1/fan_in), never zeros.

    PYTHONUNBUFFERED=1 python3 calibration/harness/decode_compiled.py --out $OUT           # full, < 9 min
    PYTHONUNBUFFERED=1 python3 calibration/harness/decode_compiled.py --quick --out $OUT   # smoke, < 2 min

Writes decode.jsonl (kind "decode": whole models, the record schema of
data/h100/decode.jsonl plus fields), decode-stack.jsonl (kind "decode_stack":
a truncated stack of a 14B-123B layer shape plus embedding and head),
decode-precompile.jsonl, decode-log.txt, decode-precompile-log.txt.
"""
import json
import math
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import decode_common as C  # noqa: E402

# name: hidden, layers, heads, kv_heads, head_dim, ffn, vocab, tied, qk_norm, window
MODELS = [
    ("gpt2_small_like", (768, 12, 12, 12, 64, 3072, 50257, True, False, None)),
    ("qwen2_5_0_5b", (896, 24, 14, 2, 64, 4864, 151936, True, False, None)),
    ("llama3_2_1b", (2048, 16, 32, 8, 64, 8192, 128256, True, False, None)),
    ("qwen3_1_7b", (2048, 28, 16, 8, 128, 6144, 151936, True, True, None)),
    ("gemma2_2b_like", (2304, 26, 8, 4, 256, 9216, 256000, True, False, None)),
    ("llama3_2_3b", (3072, 28, 24, 8, 128, 8192, 128256, True, False, None)),
    ("phi3_mini_like", (3072, 32, 32, 32, 96, 8192, 32064, False, False, None)),
    ("qwen3_4b", (2560, 36, 32, 8, 128, 9728, 151936, True, True, None)),
    ("qwen2_5_7b", (3584, 28, 28, 4, 128, 18944, 152064, False, False, None)),
    ("mistral_7b", (4096, 32, 32, 8, 128, 14336, 32000, False, False, 4096)),
    ("llama3_8b", (4096, 32, 32, 8, 128, 14336, 128256, False, False, None)),
    ("llama2_7b", (4096, 32, 32, 32, 128, 11008, 32000, False, False, None)),
]
# Layer shapes of models beyond 8B, measured as a truncated stack of STACK_LAYERS layers + embedding + head.
STACKS = [
    ("qwen2_5_14b_stack", (5120, 48, 40, 8, 128, 13824, 152064, False, False, None)),
    ("qwen2_5_32b_stack", (5120, 64, 40, 8, 128, 27648, 152064, False, False, None)),
    ("llama3_70b_stack", (8192, 80, 64, 8, 128, 28672, 128256, False, False, None)),
    ("mistral_large_like_stack", (12288, 88, 96, 8, 128, 28672, 32768, False, False, None)),
]
STACK_LAYERS = 4
# The validation rule, fixed before any measurement: every third entry of each list
# (index 2, 5, 8, 11): llama3_2_1b, llama3_2_3b, qwen2_5_7b, llama2_7b; llama3_70b_stack.
def validation_names():
    return {n for lst in (MODELS, STACKS) for i, (n, _) in enumerate(lst) if i % 3 == 2}


BATCHES = (1, 4, 16, 64)
CONTEXTS = (512, 2048, 8192)
EXTRA_16K = [("llama3_8b", 1), ("llama3_8b", 16), ("qwen3_4b", 4), ("mistral_7b", 16),
             ("gemma2_2b_like", 4), ("llama3_2_1b", 64)]
MEM_LIMIT = 124 * 2**30  # of the H200's ~139 GiB


def dims_of(name):
    for n, d in MODELS + STACKS:
        if n == name:
            return d
    raise KeyError(name)


def is_stack(name):
    return any(n == name for n, _ in STACKS)


def kv_range(context, window):
    """(lo, pos): keys attended are cache positions [lo, pos] (pos = context, the new token)."""
    pos = context
    lo = max(0, pos + 1 - window) if window else 0
    return lo, pos


GROUP = 128  # int4 group size (bf16 scale and zero per group of 128 along K)
PRECISIONS = ("bf16", "fp8", "int4")


def matrix_bytes(n, k, precision):
    """Bytes of one [N, K] projection weight: bf16 2NK; fp8 (e4m3, one per-tensor fp32 scale) NK + 4;
    int4 (tinygemm, group 128) NK/2 + (K/128) * N * 2 * 2 (bf16 scales and zeros)."""
    if precision == "fp8":
        return n * k + 4
    if precision == "int4":
        return n * k // 2 + (k // GROUP) * n * 2 * 2
    return 2 * n * k


def counts(dims, layers, batch, context, precision="bf16"):
    d, _, h, kv, hd, f, vocab, tied, qk, window = dims
    lo, pos = kv_range(context, window)
    keys = pos + 1 - lo
    layer_params = d * (h + 2 * kv) * hd + h * hd * d + 2 * d * f + f * d
    # the four projections + MLP in `precision`; norms, embedding and LM head bf16
    mats = [((h + 2 * kv) * hd, d), (d, h * hd), (2 * f, d), (d, f)]
    layer_bytes = sum(matrix_bytes(n, k, precision) for n, k in mats) + 2 * (2 * d + (2 * hd if qk else 0))
    weight_bytes = layers * layer_bytes + 2 * (vocab * d + d) + 2 * batch * d
    kv_read = 2 * 2 * layers * batch * kv * keys * hd
    kv_alloc = 2 * 2 * layers * batch * kv * (context + 1) * hd
    flops = 2 * batch * (layers * layer_params + vocab * d) + 4 * batch * h * hd * keys * layers
    return {"weight_bytes": weight_bytes, "kv_bytes_read": kv_read, "kv_cache_alloc_bytes": kv_alloc,
            "kv_tokens_attended": keys, "flops": flops,
            "mem_needed": weight_bytes + kv_alloc + (0 if tied else 2 * vocab * d) + 4 * batch * vocab + 2**31
            + (2 * max(n * k for n, k in mats) if precision != "bf16" else 0)}


def plan(quick):
    """[(tier, name, batch, context)] in timing order (tier 0 first)."""
    if quick:
        pts = [(0, "qwen2_5_0_5b", 1, 512), (0, "qwen2_5_0_5b", 16, 2048), (0, "qwen3_1_7b", 4, 512),
               (0, "gemma2_2b_like", 1, 512), (0, "mistral_7b", 1, 8192), (0, "llama3_70b_stack", 1, 512),
               (0, "llama3_70b_stack", 64, 2048)]
        return pts
    pts = []
    names = [n for n, _ in MODELS] + [n for n, _ in STACKS]
    for tier, sel in ((0, lambda b, c: b in (1, 16) and c in (512, 8192)), (1, lambda b, c: not (b in (1, 16) and c in (512, 8192)))):
        for n in names:
            for b in BATCHES:
                for c in CONTEXTS:
                    if sel(b, c):
                        pts.append((tier, n, b, c))
    for n, b in EXTRA_16K:
        pts.append((2, n, b, 16384))
    out = []
    for t, n, b, c in pts:
        layers = STACK_LAYERS if is_stack(n) else dims_of(n)[1]
        if counts(dims_of(n), layers, b, c)["mem_needed"] <= MEM_LIMIT:
            out.append((t, n, b, c))
    return out


def skipped_for_memory(quick):
    if quick:
        return []
    kept = {(n, b, c) for _, n, b, c in plan(False)}
    out = []
    for n, _ in MODELS + STACKS:
        for b in BATCHES:
            for c in CONTEXTS:
                if (n, b, c) not in kept:
                    out.append((n, b, c))
    for n, b in EXTRA_16K:
        if (n, b, 16384) not in kept:
            out.append((n, b, 16384))
    return out


# ----------------------------------------------------------------------------
# the step (torch imported lazily: the pre-compile parent never touches CUDA)
# ----------------------------------------------------------------------------

FP8_MAX = 448.0


def _fns(precision="bf16", int4_eager=False):
    """(make_layer_fn, embed, head). `precision` is that of the four projections + MLP:
    bf16 F.linear; fp8: dynamic per-tensor e4m3 quantization of the activation (amax -> scale ->
    clamp -> cast, inside the compiled layer) + torch._scaled_mm with the weight's per-tensor scale,
    bf16 out; int4: torch._weight_int4pack_mm (tinygemm, group 128, bf16 scales and zeros).
    A weight is passed as (tensor, scale) and used through `lin`."""
    import torch
    import torch.nn.functional as Fn

    def rms_norm(x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    def int4_mm(x, w, s):
        return torch._weight_int4pack_mm(x, w, GROUP, s)

    if int4_eager:
        int4_mm = torch._dynamo.disable(int4_mm)

    def lin(x, w, s):
        if precision == "fp8":
            amax = x.abs().amax().float().clamp(min=1e-12)
            sa = amax / FP8_MAX
            q = (x.float() / sa).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
            return torch._scaled_mm(q, w.t(), scale_a=sa, scale_b=s, out_dtype=torch.bfloat16)
        if precision == "int4":
            return int4_mm(x, w, s)
        return Fn.linear(x, w)

    def make_layer_fn(H, Hkv, Dh, F, qk, lo, pos):
        def layer(x, n1, wqkv, qn, kn, wo, n2, wgu, wd, kc, vc, cos, sin, sqkv, so, sgu, sd):
            b = x.shape[0]
            h = rms_norm(x, n1)
            qkv = lin(h, wqkv, sqkv)
            q, k, v = qkv.split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
            q = q.reshape(b, H, Dh)
            k = k.reshape(b, Hkv, Dh)
            v = v.reshape(b, Hkv, Dh)
            if qk:
                q = rms_norm(q, qn)
                k = rms_norm(k, kn)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            kc[:, :, pos] = k
            vc[:, :, pos] = v
            o = Fn.scaled_dot_product_attention(q.unsqueeze(2), kc[:, :, lo:pos + 1], vc[:, :, lo:pos + 1],
                                                enable_gqa=(H != Hkv))
            x = x + lin(o.reshape(b, H * Dh), wo, so)
            h = rms_norm(x, n2)
            gu = lin(h, wgu, sgu)
            x = x + lin(Fn.gelu(gu[:, :F], approximate="tanh") * gu[:, F:], wd, sd)
            return x
        return layer

    def embed(tokens, emb):
        return Fn.embedding(tokens, emb)

    def head(x, nf, lm):
        return Fn.linear(rms_norm(x, nf), lm)

    return make_layer_fn, embed, head


def rope_at(pos, Dh):
    import torch
    inv = 1.0 / (10000.0 ** (torch.arange(0, Dh, 2, device="cuda", dtype=torch.float32) / Dh))
    fr = pos * inv
    emb = torch.cat((fr, fr))
    return emb.cos().to(torch.bfloat16), emb.sin().to(torch.bfloat16)


def quant_weight_fp8(w):
    """e4m3 weight with one per-tensor fp32 scale (amax / 448)."""
    import torch
    s = (w.float().abs().amax() / FP8_MAX).clamp(min=1e-12)
    return (w.float() / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), s.float()


def int4_weight(n, k, g):
    """A random int4 weight [N, K] packed for tinygemm (uint8 [N, K/2], even k in the high nibble,
    inner_k_tiles 8) and its bf16 scales and zeros [K/128, N, 2]; dequantized (q - 8) * scale + zero,
    magnitude ~ N(0, 1/K)."""
    import torch
    q = torch.randint(0, 16, (n, k), device="cuda", dtype=torch.int32, generator=g)
    u8 = ((q[:, ::2] << 4) | q[:, 1::2]).to(torch.uint8)
    del q
    wp = torch._convert_weight_to_int4pack(u8, 8)
    del u8
    ng = k // GROUP
    sc = (torch.rand(n, ng, device="cuda", generator=g) * 0.2 + 0.1) / math.sqrt(k)
    sz = torch.stack([sc, torch.zeros_like(sc)], dim=2).transpose(0, 1).contiguous().to(torch.bfloat16)
    return wp, sz


def make_weights(dims, layers, seed=0, precision="bf16"):
    """Random weights; the four projections + MLP in `precision` (each a (tensor, scale) pair; bf16:
    scale None), norms, embedding and LM head bf16."""
    import torch
    bf = torch.bfloat16
    d, _, h, kv, hd, f, vocab, tied, qk, window = dims
    g = torch.Generator(device="cuda")
    g.manual_seed(seed)

    def rn(*shape, std):
        return (torch.randn(*shape, device="cuda", dtype=bf, generator=g) * std)

    def norm(n):
        return (1.0 + 0.1 * torch.randn(n, device="cuda", generator=g)).to(bf)

    def mat(n, k):
        if precision == "int4":
            return int4_weight(n, k, g)
        w = rn(n, k, std=k ** -0.5)
        if precision == "fp8":
            w8, s = quant_weight_fp8(w)
            del w
            return w8, s
        return w, None

    W = {"emb": rn(vocab, d, std=1.0), "nf": norm(d), "layers": [], "precision": precision}
    W["lm"] = W["emb"] if tied else rn(vocab, d, std=d ** -0.5)
    for _ in range(layers):
        W["layers"].append({
            "n1": norm(d), "wqkv": mat((h + 2 * kv) * hd, d), "qn": norm(hd), "kn": norm(hd),
            "wo": mat(d, h * hd), "n2": norm(d), "wgu": mat(2 * f, d), "wd": mat(d, f)})
    return W


def make_caches(dims, layers, batch, context):
    import torch
    d, _, h, kv, hd, f, vocab, tied, qk, window = dims
    out = []
    for _ in range(layers):
        kc = torch.empty(batch, kv, context + 1, hd, device="cuda", dtype=torch.bfloat16).normal_()
        vc = torch.empty(batch, kv, context + 1, hd, device="cuda", dtype=torch.bfloat16).normal_()
        out.append((kc, vc))
    return out


class Step:
    """Compiled functions + tensors of one (model, batch, context) point."""

    def __init__(self, dims, W, caches, batch, context, eager=False, int4_eager=False):
        import torch
        make_layer_fn, embed, head = _fns(W.get("precision", "bf16"), int4_eager)
        d, _, h, kv, hd, f, vocab, tied, qk, window = dims
        lo, pos = kv_range(context, window)
        comp = (lambda fn: fn) if eager else (lambda fn: torch.compile(fn, dynamic=False))
        self.layer = comp(make_layer_fn(h, kv, hd, f, qk, lo, pos))
        self.embed = comp(embed)
        self.head = comp(head)
        self.W, self.caches = W, caches
        self.cos, self.sin = rope_at(pos, hd)
        self.tokens = torch.randint(0, vocab, (batch,), device="cuda")
        self.logits = None

    def __call__(self):
        W = self.W
        x = self.embed(self.tokens, W["emb"])
        for L, (kc, vc) in zip(W["layers"], self.caches):
            x = self.layer(x, L["n1"], L["wqkv"][0], L["qn"], L["kn"], L["wo"][0], L["n2"], L["wgu"][0],
                           L["wd"][0], kc, vc, self.cos, self.sin, L["wqkv"][1], L["wo"][1], L["wgu"][1],
                           L["wd"][1])
        self.logits = self.head(x, W["nf"], W["lm"])
        return self.logits


def compile_one(job):
    """Worker: compile the three functions of one point on one layer's tensors."""
    import torch
    torch._dynamo.reset()
    dims = dims_of(job["model"])
    W = make_weights(dims, 1, precision=job.get("precision", "bf16"))
    caches = make_caches(dims, 1, job["batch"], job["context"])
    st = Step(dims, W, caches, job["batch"], job["context"], int4_eager=job.get("int4_eager", False))
    st()
    st()
    torch.cuda.synchronize()


def sdpa_backend(dims, batch, context):
    import torch
    d, _, h, kv, hd, f, vocab, tied, qk, window = dims
    lo, pos = kv_range(context, window)
    try:
        q = torch.randn(batch, h, 1, hd, device="cuda", dtype=torch.bfloat16)
        kk = torch.randn(batch, kv, pos + 1 - lo, hd, device="cuda", dtype=torch.bfloat16)
        choice = int(torch._fused_sdp_choice(q, kk, kk, None, 0.0, False, scale=None, enable_gqa=(h != kv)))
        from torch.nn.attention import SDPBackend
        for name, b in SDPBackend.__members__.items():
            if int(b) == choice:
                return name
        return str(choice)
    except Exception as e:  # noqa: BLE001
        return f"unknown ({type(e).__name__})"


def classify(name):
    n = name.lower()
    if any(s in n for s in ("flash", "fmha", "attention", "cudnn", "sdpa")):
        return "attention"
    if any(s in n for s in ("gemm", "gemv", "cutlass", "xmma", "nvjet", "cublas", "splitk", "sm90")):
        return "gemm"
    if n.startswith("triton"):
        return "triton"
    return "other"


def profile_kernels(g):
    """Kernels inside one replay of the graph (torch.profiler / CUPTI): count and summed time by category."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        g.replay()
        torch.cuda.synchronize()
    evs = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    cats, cat_us, uniq = {}, {}, {}
    for e in evs:
        c = classify(e.name)
        us = e.time_range.elapsed_us()
        cats[c] = cats.get(c, 0) + 1
        cat_us[c] = cat_us.get(c, 0.0) + us
        n, t = uniq.get(e.name, (0, 0.0))
        uniq[e.name] = (n + 1, t + us)
    top = sorted(uniq.items(), key=lambda kv: -kv[1][1])[:10]
    return len(evs), cats, {k: round(v, 2) for k, v in cat_us.items()}, top


PROFILE_AT = {(1, 512), (16, 8192), (64, 2048), (64, 8192), (1, 16384)}


def measure_point(name, batch, context, W, env, pre, first, log, int4_eager=False):
    import torch
    import timing as T
    dims = dims_of(name)
    stack = is_stack(name)
    layers = STACK_LAYERS if stack else dims[1]
    d, full_layers, h, kv, hd, f, vocab, tied, qk, window = dims
    precision = W.get("precision", "bf16")
    cnt = counts(dims, layers, batch, context, precision)
    rec = {"kind": "decode_stack" if stack else "decode", "model": name,
           "set": "validation" if name in validation_names() else "train", **env,
           "shape": {"name": name, "hidden_dim": d, "num_heads": h, "num_kv_heads": kv, "head_dim": hd,
                     "ffn_dim": f, "seq_len": context, "batch_size": batch, "use_qk_norm": qk,
                     "window_size": window, "num_layers": layers, "vocab_size": vocab,
                     "tie_embeddings": tied, "context_len": context},
           "truth": "compiled_graph", "batch": batch, "context": context}
    if stack:
        rec["full_num_layers"] = full_layers
    if precision != "bf16":
        # nas-core's keys: the projections + MLP in `weights`; KV cache, norms, embedding, head bf16
        rec["shape"]["weights"] = precision
        rec["precision"] = {"fp8": "fp8_e4m3", "int4": "int4_g128"}[precision]
        rec["precision_layout"] = (
            "qkv/o/gate_up/down: dynamic per-tensor e4m3 activation quant (amax/448, inside the compiled "
            "layer) + torch._scaled_mm, per-tensor weight scale, bf16 out" if precision == "fp8" else
            "qkv/o/gate_up/down: torch._weight_int4pack_mm (tinygemm, inner_k_tiles 8), group 128, bf16 "
            "scales and zeros" + (" called eagerly (torch._dynamo.disable: a graph break)" if int4_eager
                                  else " inside the compiled layer")) + "; attention, norms, embedding, LM head bf16"
    rec.update({k: v for k, v in cnt.items() if k != "mem_needed"})
    rec["sdpa_backend"] = sdpa_backend(dims, batch, context)
    if pre is not None:
        rec["precompile_s"] = pre.get("compile_s")
        if pre.get("error"):
            rec["precompile_error"] = pre["error"]
    caches = st = g = None
    try:
        caches = make_caches(dims, layers, batch, context)
        st = Step(dims, W, caches, batch, context, int4_eager=int4_eager)
        t = time.time()
        with torch.no_grad():
            st()
        torch.cuda.synchronize()
        rec["compile_s"] = round(time.time() - t, 3)
        with torch.no_grad():
            g = T.capture(st, [()], 1)
        g.replay()
        torch.cuda.synchronize()
        lg = st.logits
        rec["output_finite"] = bool(torch.isfinite(lg).all().item())
        rec["logits_std"] = C.fnum(lg.float().std().item(), 4)
        g_ms = T.replay_once_ms(g)
        replays = int(min(200, max(3, math.ceil(40.0 / max(g_ms, 1e-3)))))
        med, rounds_ms = T.time_graph(g, replays, 5)
        rec.update({"median_ms": med, "rounds_ms": rounds_ms, "times_ms": rounds_ms, "rounds": 5,
                    "replays_per_round": replays,
                    "spread": C.fnum((max(rounds_ms) - min(rounds_ms)) / med, 4),
                    "gbps": C.fnum((cnt["weight_bytes"] + cnt["kv_bytes_read"]) / (med * 1e6), 1),
                    "method": "torch.compile'd layer/embed/head (default mode, static shapes), whole step in one "
                              "CUDA graph; 1 warm-up round, median of 5 rounds of replays (median per round)"})
        if first:
            try:
                ref = Step(dims, W, caches, batch, context, eager=True)
                ref.tokens = st.tokens
                with torch.no_grad():
                    yr = ref().float()
                rec["rel_err_vs_eager"] = C.fnum(((lg.float() - yr).norm() / yr.norm()).item(), 6)
                del ref, yr
            except Exception as e:  # noqa: BLE001
                log(f"    eager reference failed: {C.err_text(e)}")
        if first or (batch, context) in PROFILE_AT:
            try:
                n, cats, cat_us, top = profile_kernels(g)
                rec["kernels_per_step"] = n
                rec["kernels_by_category"] = cats
                rec["kernel_us_by_category"] = cat_us
                log(f"    kernels per step {n} {cats} us {cat_us}; top by time: "
                    + "; ".join(f"{k[:50]} {c}x {t:.0f}us" for k, (c, t) in top[:6]))
            except Exception as e:  # noqa: BLE001
                rec["kernels_per_step"] = None
                log(f"    profile failed: {C.err_text(e)}")
        from torch._dynamo.utils import counters
        rec["graph_breaks"] = sum(counters.get("graph_break", {}).values())
        rec["unique_graphs"] = dict(counters.get("stats", {})).get("unique_graphs")
    except Exception as e:  # noqa: BLE001
        rec["median_ms"] = None
        rec["error"] = C.err_text(e)
        log("    " + traceback.format_exc().replace("\n", " | ")[-600:])
    del g, st, caches
    torch.cuda.empty_cache()
    return rec


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "decode_out"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--budget-s", type=float, default=None, help="soft: no new point past it (default 480, quick 100)")
    p.add_argument("--hard-limit-s", type=float, default=530.0)
    p.add_argument("--workers", type=int, default=7)
    p.add_argument("--precompile-frac", type=float, default=0.4)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--jobs")
    p.add_argument("--claim-dir")
    p.add_argument("--worker-id", type=int, default=0)
    a = p.parse_args()
    C.set_env_defaults()
    if a.worker:
        return C.run_worker(compile_one, a.jobs, a.claim_dir, a.worker_id)
    if a.budget_s is None:
        a.budget_s = 100.0 if a.quick else 480.0
    T0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    log = C.Log(os.path.join(a.out, "decode-log.txt"))
    pts = plan(a.quick)
    log(f"decode_compiled: {len(pts)} points, budget {a.budget_s:.0f}s, hard {a.hard_limit_s:.0f}s, "
        f"workers {a.workers}; validation models {sorted(validation_names())}")
    for n, b, c in skipped_for_memory(a.quick):
        log(f"  does not fit in {MEM_LIMIT / 2**30:.0f} GiB, not measured: {n} b{b} ctx{c}")
    pre = {}
    if a.workers > 0:
        jobs = [{"model": n, "batch": b, "context": c} for _, n, b, c in pts]
        done = C.precompile(__file__, jobs, a.workers, T0 + a.precompile_frac * a.budget_s, a.out, log,
                            "decode-precompile-log.txt")
        with open(os.path.join(a.out, "decode-precompile.jsonl"), "w") as f:
            for i in sorted(done):
                f.write(json.dumps(done[i]) + "\n")
        pre = done
    import torch
    C.setup_torch()
    env = C.env_info()
    log(json.dumps(env))
    C.warm_clocks()
    wd = C.Writer(os.path.join(a.out, "decode.jsonl"))
    ws = C.Writer(os.path.join(a.out, "decode-stack.jsonl"))
    cur, W, profiled, skipped, recs = None, None, set(), [], []
    for i, (tier, n, b, c) in enumerate(pts):
        el = time.time() - T0
        if el > a.budget_s or el > a.hard_limit_s:
            skipped.append((tier, n, b, c))
            continue
        if n != cur:
            W = None
            torch.cuda.empty_cache()
            torch._dynamo.reset()
            from torch._dynamo.utils import counters
            counters.clear()
            dims = dims_of(n)
            W = make_weights(dims, STACK_LAYERS if is_stack(n) else dims[1])
            cur = n
        rec = measure_point(n, b, c, W, env, pre.get(i), n not in profiled, log)
        profiled.add(n)
        (ws if is_stack(n) else wd).write(rec)
        recs.append(rec)
        ms = rec.get("median_ms")
        log(f"{i + 1:3d}/{len(pts)} t{tier} {n:26s} b{b:<3d} ctx{c:<6d} "
            + (f"{ms:9.4f} ms {rec['gbps']:7.1f} GB/s finite={rec['output_finite']} spread={rec['spread']} "
               f"compile {rec['compile_s']}s {rec['sdpa_backend']}" if ms else f"ERROR {rec.get('error', '')[:200]}"))
    for t, n, b, c in skipped:
        log(f"  skipped (budget): t{t} {n} b{b} ctx{c}")
    ok = [r for r in recs if r.get("median_ms")]
    log(f"done: {len(ok)}/{len(pts)} points measured, {len(recs) - len(ok)} errors, {len(skipped)} skipped "
        f"(budget), {sum(1 for r in ok if not r.get('output_finite'))} non-finite; wall {time.time() - T0:.0f}s")
    log(f"{'model':26s} {'set':10s} {'b':>3s} {'ctx':>6s} {'ms':>9s} {'GB/s':>7s}")
    for r in ok:
        log(f"{r['model']:26s} {r['set']:10s} {r['batch']:3d} {r['context']:6d} {r['median_ms']:9.4f} {r['gbps']:7.1f}")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
