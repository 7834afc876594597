#!/usr/bin/env python3
"""Decode steps of whole mixed and MoE stacks, compiled, one CUDA graph per step (bf16, H200).

The truth DESIGN.md defines for decode, for layer stacks that are not uniform:
one token for each of `batch` sequences through a whole model: embedding
gather; every layer with its OWN weights and its OWN preallocated KV cache;
final RMSNorm; LM head (tied to the embedding where the config says so).

kinds (every record `set: "validation"`: a truth for the composed model, never fitted on):
  decode_mixed  dense layers of two kinds, `sliding_attention` and `full_attention`
                (Gemma-2-like 1:1, Gemma-3-like 5:1): RMSNorm, fused QKV GEMM, optional
                QK-RMSNorm, RoPE, the new K/V written into the cache, SDPA (enable_gqa) of
                the one query over the cache, output GEMM, residual, RMSNorm, GeGLU MLP
                (fused gate-up GEMM, gelu_tanh(gate) * up, down GEMM), residual. A full
                layer's cache holds context + 1 tokens, all attended; a sliding layer's
                holds min(context + 1, window) tokens (a ring buffer: the new token
                overwrites slot context mod capacity) and all of them are attended.
                (No Gemma post-norms, embedding scale or soft-capping: DESIGN.md's layer.)
  decode_moe    the same attention (full, QK-norm where the config has it) and the MoE MLP
                of moe_kernels.py in place of the dense MLP: router GEMM, fp32 softmax,
                top-k on random weights (renormalized), tokens sorted by expert,
                torch._grouped_mm gate-up, SiLU-and-mul, torch._grouped_mm down, weighted
                index_add_ combine.
Each record carries the model as a Hugging Face config.json-like object (`config`),
for `nas predict --configs`.

Each layer function, the embedding and the head go through torch.compile (default mode,
dynamic=False; dynamo reset per point); the whole step is captured in one
torch.cuda.CUDAGraph and replayed: 1 warm-up round, then 5 rounds (timing.time_graph),
the median of the round medians. Weights N(0, 1/fan_in), never zeros.

    PYTHONUNBUFFERED=1 python3 calibration/harness/decode_stacks.py --out $OUT
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
import moe_kernels as K  # noqa: E402

# Dense mixed stacks: name, hidden, layers, heads, kv_heads, head_dim, ffn, vocab, qk_norm, window, pattern
MIXED = [
    ("gemma2_2b_like", 2304, 26, 8, 4, 256, 9216, 256000, False, 4096, "1:1"),
    ("gemma2_9b_like", 3584, 42, 16, 8, 256, 14336, 256000, False, 4096, "1:1"),
    ("gemma3_1b_like", 1152, 26, 4, 1, 256, 6912, 262144, True, 512, "5:1"),
    ("gemma3_4b_like", 2560, 34, 8, 4, 256, 10240, 262144, True, 1024, "5:1"),
    ("gemma3_12b_like", 3840, 48, 16, 8, 256, 15360, 262144, True, 1024, "5:1"),
    ("gemma3_4b_like_w128", 2560, 34, 8, 4, 256, 10240, 262144, True, 128, "5:1"),
]
MIXED_POINTS = [(1, 8192), (1, 32768), (8, 16384), (32, 32768)]
# MoE stacks: name, model_type, hidden, layers, heads, kv_heads, head_dim, expert ffn, experts, top_k, vocab, qk_norm
MOE = [
    ("mixtral_8x7b", "mixtral", 4096, 32, 32, 8, 128, 14336, 8, 2, 32000, False),
    ("qwen3_30b_a3b", "qwen3_moe", 2048, 48, 32, 4, 128, 768, 128, 8, 151936, True),
    ("top1_16e_like", "mixtral", 4096, 24, 32, 8, 128, 6144, 16, 1, 32000, False),
]
MOE_POINTS = [(1, 1024), (8, 4096), (32, 2048), (64, 8192), (128, 1024)]
MEM_LIMIT = 128 * 2**30


def layer_types(L, pattern):
    if pattern == "1:1":  # Gemma-2: even layers sliding, odd layers full
        return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(L)]
    return ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(L)]  # Gemma-3 5:1


def mixed_config(m):
    name, d, L, h, kv, hd, f, vocab, qk, window, pattern = m
    return {"model_type": "gemma3_text" if qk else "gemma2", "hidden_size": d, "intermediate_size": f,
            "num_hidden_layers": L, "num_attention_heads": h, "num_key_value_heads": kv, "head_dim": hd,
            "vocab_size": vocab, "sliding_window": window, "layer_types": layer_types(L, pattern),
            "tie_word_embeddings": True, "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6,
            "max_position_embeddings": 131072, "attention_bias": False, "torch_dtype": "bfloat16",
            "_nas_truth": "DESIGN.md decode layer: 2 RMSNorms per layer, QK-norm " + ("yes" if qk else "no")
                          + ", no post-norms, no embedding scale, no soft-capping"}


def moe_config(m):
    name, mt, d, L, h, kv, hd, f, e, k, vocab, qk = m
    c = {"model_type": mt, "hidden_size": d, "num_hidden_layers": L, "num_attention_heads": h,
         "num_key_value_heads": kv, "head_dim": hd, "vocab_size": vocab, "num_experts_per_tok": k,
         "tie_word_embeddings": False, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
         "torch_dtype": "bfloat16", "hidden_act": "silu"}
    if mt == "mixtral":
        c.update({"num_local_experts": e, "intermediate_size": f, "sliding_window": None})
    else:
        c.update({"num_experts": e, "moe_intermediate_size": f, "intermediate_size": 6144, "norm_topk_prob": True,
                  "decoder_sparse_step": 1, "mlp_only_layers": [], "attention_bias": False})
    return c


# ----------------------------------------------------------------------------
# layers (torch imported lazily)
# ----------------------------------------------------------------------------

def make_attention(H, Hkv, Dh, qk, slot, keys):
    """Attention half for one token per sequence: writes K/V at cache slot `slot`, attends cache[:, :, :keys]."""
    def attn(x, n1, wqkv, qn, kn, wo, kc, vc, cos, sin):
        import torch.nn.functional as Fn
        b = x.shape[0]
        h = K.rms_norm(x, n1)
        qkv = Fn.linear(h, wqkv)
        q, k, v = qkv.split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
        q = q.reshape(b, H, Dh)
        k = k.reshape(b, Hkv, Dh)
        v = v.reshape(b, Hkv, Dh)
        if qk:
            q = K.rms_norm(q, qn)
            k = K.rms_norm(k, kn)
        q = q * cos + K.rotate_half(q) * sin
        k = k * cos + K.rotate_half(k) * sin
        kc[:, :, slot] = k
        vc[:, :, slot] = v
        o = Fn.scaled_dot_product_attention(q.unsqueeze(2), kc[:, :, :keys], vc[:, :, :keys], enable_gqa=(H != Hkv))
        return x + Fn.linear(o.reshape(b, H * Dh), wo)
    return attn


def make_dense_layer(H, Hkv, Dh, F, qk, slot, keys):
    attn = make_attention(H, Hkv, Dh, qk, slot, keys)

    def layer(x, n1, wqkv, qn, kn, wo, n2, wgu, wd, kc, vc, cos, sin):
        import torch.nn.functional as Fn
        x = attn(x, n1, wqkv, qn, kn, wo, kc, vc, cos, sin)
        h = K.rms_norm(x, n2)
        gu = Fn.linear(h, wgu)
        return x + Fn.linear(Fn.gelu(gu[:, :F], approximate="tanh") * gu[:, F:], wd)
    return layer


def make_moe_layer(H, Hkv, Dh, F, k, qk, slot, keys):
    attn = make_attention(H, Hkv, Dh, qk, slot, keys)

    def layer(x, n1, wqkv, qn, kn, wo, n2, wr, w13t, w2t, kc, vc, cos, sin):
        x = attn(x, n1, wqkv, qn, kn, wo, kc, vc, cos, sin)
        h = K.rms_norm(x, n2)
        return x + K.moe_core(h, wr, w13t, w2t, None, k, F, True)
    return layer


def embed(tokens, emb):
    import torch.nn.functional as Fn
    return Fn.embedding(tokens, emb)


def head(x, nf, lm):
    import torch.nn.functional as Fn
    return Fn.linear(K.rms_norm(x, nf), lm)


# ----------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------

def model_of(name):
    for m in MIXED:
        if m[0] == name:
            return "decode_mixed", m
    for m in MOE:
        if m[0] == name:
            return "decode_moe", m
    raise KeyError(name)


def dims(kind, m):
    """(d, L, h, kv, hd, vocab, qk, tied, kinds per layer, window)."""
    if kind == "decode_mixed":
        name, d, L, h, kv, hd, f, vocab, qk, window, pattern = m
        return d, L, h, kv, hd, vocab, qk, True, layer_types(L, pattern), window
    name, mt, d, L, h, kv, hd, f, e, k, vocab, qk = m
    return d, L, h, kv, hd, vocab, qk, False, ["full_attention"] * L, None


def cache_tokens(lt, context, window):
    return context + 1 if lt == "full_attention" else min(context + 1, window)


def counts(kind, m, layers, batch, context):
    d, L, h, kv, hd, vocab, qk, tied, kinds, window = dims(kind, m)
    attn_params = d * (h + 2 * kv) * hd + h * hd * d
    if kind == "decode_mixed":
        f = m[6]
        mlp_params, mlp_touched = 3 * d * f, 3 * d * f
        e = k = None
    else:
        f, e, k = m[7], m[8], m[9]
        mlp_params = e * 3 * d * f + e * d
        touched = e * (1 - (1 - k / e) ** batch)
        mlp_touched = touched * 3 * d * f + e * d
    kinds = kinds[:layers]
    cached = [cache_tokens(lt, context, window) for lt in kinds]
    kv_alloc = sum(2 * 2 * batch * kv * c * hd for c in cached)
    weight_bytes = 2 * (layers * (attn_params + mlp_params + 2 * d) + vocab * d * (1 if tied else 2) + d)
    weight_read = 2 * (layers * (attn_params + mlp_touched + 2 * d) + vocab * d * (1 if tied else 2) + d)
    return {"weight_bytes": weight_bytes, "weight_bytes_read_expected": int(weight_read), "kv_bytes_read": kv_alloc,
            "kv_cache_alloc_bytes": kv_alloc, "kv_tokens_attended_per_kind": {
                lt: cache_tokens(lt, context, window) for lt in sorted(set(kinds))},
            "mem_needed": weight_bytes + kv_alloc + 4 * batch * vocab + 3 * 2**30}


def plan():
    pts = []
    for m in MIXED:
        for b, c in MIXED_POINTS:
            pts.append((m[0], b, c))
    for m in MOE:
        for b, c in MOE_POINTS:
            pts.append((m[0], b, c))
    keep, skip = [], []
    for n, b, c in pts:
        kind, m = model_of(n)
        (keep if counts(kind, m, dims(kind, m)[1], b, c)["mem_needed"] <= MEM_LIMIT else skip).append((n, b, c))
    # models interleaved (MoE and mixed alternate), each model's points together (its weights made once)
    names = [m[0] for m in MIXED]
    moes = [m[0] for m in MOE]
    order = []
    for i in range(max(len(names), len(moes))):
        order += moes[i:i + 1] + names[i:i + 1]
    keep.sort(key=lambda p: order.index(p[0]))
    return keep, skip


def make_weights(kind, m, layers, empty=False, seed=0):
    import torch
    bf = torch.bfloat16
    d, L, h, kv, hd, vocab, qk, tied, kinds, window = dims(kind, m)
    g = torch.Generator(device=K.DEV)
    g.manual_seed(seed)

    def rn(*shape, std):
        t = torch.empty(*shape, device=K.DEV, dtype=bf)
        if not empty:
            t.normal_(0.0, std, generator=g)
        return t

    def norm(n):
        t = torch.empty(n, device=K.DEV, dtype=bf)
        if not empty:
            t.normal_(1.0, 0.1, generator=g)
        return t
    W = {"emb": rn(vocab, d, std=1.0), "nf": norm(d), "layers": []}
    W["lm"] = W["emb"] if tied else rn(vocab, d, std=d ** -0.5)
    for _ in range(layers):
        Lw = {"n1": norm(d), "wqkv": rn((h + 2 * kv) * hd, d, std=d ** -0.5), "qn": norm(hd), "kn": norm(hd),
              "wo": rn(d, h * hd, std=(h * hd) ** -0.5), "n2": norm(d)}
        if kind == "decode_mixed":
            f = m[6]
            Lw["wgu"] = rn(2 * f, d, std=d ** -0.5)
            Lw["wd"] = rn(d, f, std=f ** -0.5)
        else:
            f, e = m[7], m[8]
            Lw["wr"] = rn(e, d, std=d ** -0.5)
            Lw["w13t"] = rn(e, 2 * f, d, std=d ** -0.5).transpose(1, 2)
            Lw["w2t"] = rn(e, d, f, std=f ** -0.5).transpose(1, 2)
        W["layers"].append(Lw)
    return W


def make_caches(kind, m, layers, batch, context, empty=False):
    import torch
    d, L, h, kv, hd, vocab, qk, tied, kinds, window = dims(kind, m)
    out = []
    for lt in kinds[:layers]:
        n = cache_tokens(lt, context, window)
        kc = torch.empty(batch, kv, n, hd, device=K.DEV, dtype=torch.bfloat16)
        vc = torch.empty(batch, kv, n, hd, device=K.DEV, dtype=torch.bfloat16)
        if not empty:
            kc.normal_()
            vc.normal_()
        out.append((lt, kc, vc))
    return out


class Step:
    def __init__(self, kind, m, W, caches, batch, context, eager=False):
        import torch
        d, L, h, kv, hd, vocab, qk, tied, kinds, window = dims(kind, m)
        comp = (lambda fn: fn) if eager else (lambda fn: torch.compile(fn, dynamic=False))
        self.kind, self.W, self.caches = kind, W, caches
        self.fns = {}
        for lt in sorted(set(lt for lt, _, _ in caches)):
            n = cache_tokens(lt, context, window)
            slot = context % n if lt == "sliding_attention" else context
            if kind == "decode_mixed":
                self.fns[lt] = comp(make_dense_layer(h, kv, hd, m[6], qk, slot, n))
            else:
                self.fns[lt] = comp(make_moe_layer(h, kv, hd, m[7], m[9], qk, slot, n))
        self.embed = comp(embed)
        self.head = comp(head)
        self.cos, self.sin = K.rope_tables([context], hd)
        self.tokens = torch.randint(0, vocab, (batch,), device=K.DEV)
        self.logits = None

    def __call__(self):
        W = self.W
        x = self.embed(self.tokens, W["emb"])
        for L, (lt, kc, vc) in zip(W["layers"], self.caches):
            if self.kind == "decode_mixed":
                x = self.fns[lt](x, L["n1"], L["wqkv"], L["qn"], L["kn"], L["wo"], L["n2"], L["wgu"], L["wd"],
                                 kc, vc, self.cos, self.sin)
            else:
                x = self.fns[lt](x, L["n1"], L["wqkv"], L["qn"], L["kn"], L["wo"], L["n2"], L["wr"], L["w13t"],
                                 L["w2t"], kc, vc, self.cos, self.sin)
        self.logits = self.head(x, W["nf"], W["lm"])
        return self.logits


def compile_layers(kind, m):
    """Layers a worker needs to compile every layer function: one of each kind."""
    d, L, h, kv, hd, vocab, qk, tied, kinds, window = dims(kind, m)
    firsts = sorted({lt: i for i, lt in reversed(list(enumerate(kinds)))}.items(), key=lambda t: t[1])
    return [i for _, i in firsts]


def compile_one(job):
    import torch
    torch._dynamo.reset()
    kind, m = model_of(job["model"])
    idx = compile_layers(kind, m)
    n = max(idx) + 1
    W = make_weights(kind, m, n, empty=True)
    caches = make_caches(kind, m, n, job["batch"], job["context"], empty=True)
    W["layers"] = [W["layers"][i] for i in idx]
    caches = [caches[i] for i in idx]
    with torch.no_grad():
        st = Step(kind, m, W, caches, job["batch"], job["context"])
        st()
        st()
    if K.DEV == "cuda":
        torch.cuda.synchronize()


def profile_kernels(g):
    import torch
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        g.replay()
        torch.cuda.synchronize()
    uniq = {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        n, t = uniq.get(e.name, (0, 0.0))
        uniq[e.name] = (n + 1, t + e.time_range.elapsed_us())
    top = sorted(uniq.items(), key=lambda kv: -kv[1][1])
    return [[nm[:120], c, round(t, 2)] for nm, (c, t) in top[:14]], sum(c for _, (c, _) in top), \
        round(sum(t for _, (_, t) in top), 2)


def measure_point(name, batch, context, W, env, pre, profile_it, log):
    import torch
    import timing as T
    kind, m = model_of(name)
    d, L, h, kv, hd, vocab, qk, tied, kinds, window = dims(kind, m)
    cnt = counts(kind, m, L, batch, context)
    cfg = mixed_config(m) if kind == "decode_mixed" else moe_config(m)
    rec = {"kind": kind, "model": name, "set": "validation", "truth": "compiled_graph", **env, "batch": batch,
           "context": context, "config": cfg, "num_layers": L,
           "layer_kind_counts": {lt: kinds.count(lt) for lt in sorted(set(kinds))}}
    rec.update({k: v for k, v in cnt.items() if k != "mem_needed"})
    if pre is not None:
        rec["precompile_s"] = pre.get("compile_s")
        if pre.get("error"):
            rec["precompile_error"] = pre["error"][:300]
    caches = st = g = None
    try:
        torch._dynamo.reset()
        from torch._dynamo.utils import counters
        counters.clear()
        caches = make_caches(kind, m, L, batch, context)
        st = Step(kind, m, W, caches, batch, context)
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
        g_ms = T.replay_once_ms(g)
        replays = int(min(200, max(3, math.ceil(40.0 / max(g_ms, 1e-3)))))
        med, rounds_ms = T.time_graph(g, replays, 5)
        rec.update({"median_ms": med, "times_ms": rounds_ms, "rounds": 5, "replays_per_round": replays,
                    "spread": C.fnum((max(rounds_ms) - min(rounds_ms)) / med, 4),
                    "gbps": C.fnum((cnt["weight_bytes_read_expected"] + cnt["kv_bytes_read"]) / (med * 1e6), 1),
                    "method": "torch.compile'd layer kinds/embed/head (default mode, static shapes), whole step in "
                              "one CUDA graph; 1 warm-up round, median of 5 rounds of replays (median per round)"})
        if kind == "decode_moe":
            # distinct experts the step's batch touched in the first layer (the router on its input)
            x = st.embed(st.tokens, W["emb"])
            hL = K.rms_norm(x, W["layers"][0]["n2"])
            ids = torch.topk(torch.softmax(torch.nn.functional.linear(hL, W["layers"][0]["wr"]).float(), -1),
                             m[9], -1).indices
            rec["experts_touched_layer0_input_embedding"] = int(torch.unique(ids).numel())
            e, k = m[8], m[9]
            rec["experts_touched_expected"] = C.fnum(e * (1 - (1 - k / e) ** batch), 3)
        if profile_it:
            try:
                rec["kernels"], rec["kernels_per_step"], rec["kernel_us_total"] = profile_kernels(g)
            except Exception as e:  # noqa: BLE001
                rec["profile_error"] = C.err_text(e)[:200]
        rec["graph_breaks"] = sum(counters.get("graph_break", {}).values())
        rec["unique_graphs"] = dict(counters.get("stats", {})).get("unique_graphs")
    except Exception as e:  # noqa: BLE001
        rec["median_ms"] = None
        rec["error"] = C.err_text(e)
        log("    " + traceback.format_exc().replace("\n", " | ")[-700:])
    del g, st, caches
    torch.cuda.empty_cache()
    return rec


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "stacks_out"))
    p.add_argument("--budget-s", type=float, default=240.0)
    p.add_argument("--precompile-s", type=float, default=90.0)
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--only", choices=["mixed", "moe"], default=None)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--jobs")
    p.add_argument("--claim-dir")
    p.add_argument("--worker-id", type=int, default=0)
    a = p.parse_args()
    C.set_env_defaults()
    if a.worker:
        return C.run_worker(compile_one, a.jobs, a.claim_dir, a.worker_id)
    T0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    log = C.Log(os.path.join(a.out, "decode-stacks-log.txt"))
    pts, skip = plan()
    if a.only:
        want = "decode_mixed" if a.only == "mixed" else "decode_moe"
        pts = [p_ for p_ in pts if model_of(p_[0])[0] == want]
    log(f"decode_stacks: {len(pts)} points, budget {a.budget_s:.0f}s")
    for n, b, c in skip:
        log(f"  does not fit in {MEM_LIMIT / 2**30:.0f} GiB, not measured: {n} b{b} ctx{c}")
    pre = {}
    if a.workers > 0:
        jobs = [{"model": n, "batch": b, "context": c} for n, b, c in pts]
        pre = C.precompile(__file__, jobs, a.workers, T0 + a.precompile_s, a.out, log, "decode-stacks-precompile-log.txt")
    import torch
    C.setup_torch()
    env = C.env_info()
    log(json.dumps(env))
    C.warm_clocks()
    writers = {"decode_mixed": C.Writer(os.path.join(a.out, "decode-mixed.jsonl")),
               "decode_moe": C.Writer(os.path.join(a.out, "decode-moe.jsonl"))}
    cur, W, profiled, skipped, recs = None, None, set(), [], []
    for i, (n, b, c) in enumerate(pts):
        if time.time() - T0 > a.budget_s:
            skipped.append((n, b, c))
            continue
        kind, m = model_of(n)
        if n != cur:
            W = None
            torch.cuda.empty_cache()
            t = time.time()
            W = make_weights(kind, m, dims(kind, m)[1])
            torch.cuda.synchronize()
            log(f"  weights of {n}: {time.time() - t:.1f}s, {torch.cuda.memory_allocated() / 2**30:.1f} GiB")
            cur = n
        rec = measure_point(n, b, c, W, env, pre.get(i), n not in profiled, log)
        profiled.add(n)
        writers[kind].write(rec)
        recs.append(rec)
        ms = rec.get("median_ms")
        log(f"{len(recs):3d}/{len(pts)} {n:24s} b{b:<4d} ctx{c:<6d} "
            + (f"{ms:9.4f} ms {rec['gbps']:7.1f} GB/s finite={rec['output_finite']} spread={rec['spread']} "
               f"compile {rec['compile_s']}s" + (f" touched {rec.get('experts_touched_layer0_input_embedding')}"
                                                  if kind == "decode_moe" else "")
               if ms else f"ERROR {rec.get('error', '')[:300]}"))
    for n, b, c in skipped:
        log(f"  skipped (budget): {n} b{b} ctx{c}")
    ok = [r for r in recs if r.get("median_ms")]
    log(f"done: {len(ok)}/{len(pts)} measured, {len(recs) - len(ok)} errors, {len(skipped)} skipped; "
        f"wall {time.time() - T0:.0f}s")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
