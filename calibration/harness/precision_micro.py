#!/usr/bin/env python3
"""Deployment-precision micro-benchmarks (issue 15): fp8 and int4 GEMMs, fp8 prefill layers,
and a probe of which attention kernels read an fp8 KV cache -- each beside a bf16 baseline
of the same shape, timed the same way.

Timing (as decode_micro.py, whose `bench` this reuses): one CUDA graph of
`calls_per_replay` back-to-back calls rotating over `buffers` independent input
sets (weights included) totalling >= 4x L2, GPU spin before each round, 5 rounds;
`median_ms` is per call (median of the round medians). Layers: one forward per
replay, same weights and input (as measure.py).

kinds (`set: "micro"`, `truth: "precision_micro"`):
  bf16_gemm      torch.mm(A[M,K] bf16, W[N,K].t(), out=C)                       (cuBLAS)
  fp8_gemm       dynamic per-tensor activation quantization + torch._scaled_mm:
                 s = amax(|A|)/448; A8 = clamp(A/s).to(e4m3) (torch.compile, dynamic=False),
                 then _scaled_mm(A8, W8[N,K].t(), scale_a=s, scale_b=sw, out_dtype=bf16)
  fp8_gemm_bare  the same _scaled_mm on pre-quantized A8 (no quantization); `fast_accum` says
                 use_fast_accum (False for the main grid)
  fp8_quant      the compiled quantization alone ([M,K] bf16 -> e4m3 + scale)
  int4_gemm      torch._weight_int4pack_mm(A bf16, W packed by torch._convert_weight_to_int4pack,
                 group 128, scales+zeros bf16 [K/128, N, 2]) -- tinygemm, weight-only
  layer          (`set: "fp8_layer"`) the decoder layer of kernels.py, torch.compile'd; `precision`
                 "fp8": its four projections as fp8_gemm (dynamic activation quantization,
                 per-tensor weight scales), attention / norms / RoPE bf16; "bf16": kernels.py as is
  fp8_kv_probe   which F.scaled_dot_product_attention backend accepts fp8 K/V (and flex_attention)

    PYTHONUNBUFFERED=1 python3 calibration/harness/precision_micro.py --out $OUT          # full, < 7 min
    PYTHONUNBUFFERED=1 python3 calibration/harness/precision_micro.py --quick --out $OUT  # smoke
"""
import gc
import json
import math
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import decode_common as C  # noqa: E402

FP8_MAX = 448.0
GROUP = 128
MS = (1, 16, 64, 256, 1024, 4096, 16384, 32768)
MS_T0 = (1, 64, 1024, 16384)  # tier 0: every other M
NK = [(4096, 4096), (6144, 4096), (14336, 4096), (4096, 14336), (8192, 8192), (28672, 8192),
      (8192, 28672), (128256, 4096)]
INT4_MS = (1, 4, 16, 64)
FAST_ACC_NK = [(4096, 4096), (8192, 8192)]
IKT_NK = [(4096, 4096), (8192, 8192)]
# (D, H, Hkv, Dh, F, S, B): all in data/h200/layers.jsonl too (bf16, same harness method)
LAYERS = [(4096, 32, 8, 128, 14336, 2048, 1), (4096, 32, 8, 128, 14336, 8192, 1),
          (8192, 64, 8, 128, 28672, 2048, 1), (2048, 16, 4, 128, 8192, 4096, 1),
          (4096, 32, 8, 128, 14336, 1024, 8), (5120, 40, 8, 128, 13824, 2048, 1)]


def layer_shape(t):
    D, H, Hkv, Dh, F, S, B = t
    return {"hidden_dim": D, "num_heads": H, "num_kv_heads": Hkv, "head_dim": Dh, "ffn_dim": F,
            "seq_len": S, "batch_size": B, "use_qk_norm": False, "window_size": None}


def plan(quick):
    """[(tier, kind, shape)] in priority order (the budget skips from the end)."""
    if quick:
        p = [(0, "kv_probe", {})]
        for m in (1, 16, 4096):
            for k in ("bf16_gemm", "fp8_gemm", "fp8_gemm_bare"):
                p.append((0, k, {"M": m, "N": 4096, "K": 4096}))
        for k in ("bf16_gemm", "fp8_gemm", "fp8_gemm_bare"):
            p.append((0, k, {"M": 16, "N": 128256, "K": 4096}))
        p.append((0, "fp8_gemm_bare", {"M": 4096, "N": 8192, "K": 8192, "fast_accum": True}))
        p.append((0, "fp8_gemm_bare", {"M": 4096, "N": 8192, "K": 8192}))
        for m in (1, 16):
            p.append((0, "int4_gemm", {"M": m, "N": 4096, "K": 4096, "inner_k_tiles": 8}))
        p.append((0, "int4_gemm", {"M": 1, "N": 4096, "K": 4096, "inner_k_tiles": 4}))
        p.append((0, "fp8_quant", {"M": 16, "K": 4096}))
        for prec in ("bf16", "fp8"):
            p.append((0, "layer", {**layer_shape((2048, 16, 4, 128, 8192, 2048, 1)), "precision": prec}))
        p.append((0, "flex_probe", {}))
        return p
    p = [(0, "kv_probe", {})]
    for tier, ms in ((0, MS_T0), (1, tuple(m for m in MS if m not in MS_T0))):
        for n, k in NK:
            for m in ms:
                for kind in ("bf16_gemm", "fp8_gemm", "fp8_gemm_bare"):
                    p.append((tier, kind, {"M": m, "N": n, "K": k}))
        i4 = (1, 16) if tier == 0 else (4, 64)
        for n, k in NK:
            for m in i4:
                p.append((tier, "int4_gemm", {"M": m, "N": n, "K": k, "inner_k_tiles": 8}))
                if m == 4:
                    p.append((tier, "bf16_gemm", {"M": m, "N": n, "K": k}))
    for t in LAYERS:
        for prec in ("fp8", "bf16"):
            p.append((2, "layer", {**layer_shape(t), "precision": prec}))
    for k in sorted({k for _, k in NK}):
        for m in MS:
            p.append((3, "fp8_quant", {"M": m, "K": k}))
    for n, k in FAST_ACC_NK:
        for m in MS:
            p.append((3, "fp8_gemm_bare", {"M": m, "N": n, "K": k, "fast_accum": True}))
    for n, k in IKT_NK:
        for m in (1, 16):
            for ikt in (2, 4):
                p.append((3, "int4_gemm", {"M": m, "N": n, "K": k, "inner_k_tiles": ikt}))
    p.append((3, "flex_probe", {}))
    for sh in ({"B": 1, "H": 32, "Hkv": 8, "Sq": 4096, "Skv": 4096, "Dh": 128},
               {"B": 16, "H": 32, "Hkv": 8, "Sq": 1, "Skv": 8192, "Dh": 128}):
        for kv in ("bf16", "fp8"):
            p.append((3, "flex_kv", {**sh, "kv_dtype": kv}))
    return p


# ----------------------------------------------------------------------------
# fp8 helpers
# ----------------------------------------------------------------------------

def quant_fn(x):
    """Dynamic per-tensor e4m3 quantization, as a serving engine does per call."""
    import torch
    amax = x.abs().amax().float().clamp(min=1e-12)
    scale = amax / FP8_MAX
    q = (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


_QUANT = {}


def compiled_quant(M, K):
    import torch
    key = (M, K)
    if key not in _QUANT:
        _QUANT[key] = torch.compile(quant_fn, dynamic=False)
    return _QUANT[key]


def quant_weight(w):
    import torch
    s = (w.float().abs().amax() / FP8_MAX).clamp(min=1e-12)
    return (w.float() / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), s.float()


# ----------------------------------------------------------------------------
# int4 helpers (tinygemm layout, as torchao packs it)
# ----------------------------------------------------------------------------

INT4_API = {}


def int4_pack(q_int, inner_k_tiles):
    """q_int: int32 [N, K] in 0..15 on the GPU -> packed weight (tries the uint8 [N, K/2] API first)."""
    import torch
    errs = []
    u8 = ((q_int[:, ::2] << 4) | q_int[:, 1::2]).to(torch.uint8)
    try:
        w = torch._convert_weight_to_int4pack(u8, inner_k_tiles)
        INT4_API["input"] = "uint8 [N, K/2], high nibble = even k"
        return w
    except Exception as e:  # noqa: BLE001
        errs.append(C.err_text(e))
    try:
        w = torch._convert_weight_to_int4pack(q_int.to(torch.int32), inner_k_tiles)
        INT4_API["input"] = "int32 [N, K]"
        return w
    except Exception as e:  # noqa: BLE001
        errs.append(C.err_text(e))
    raise RuntimeError("int4 pack failed: " + " | ".join(errs))


# ----------------------------------------------------------------------------
# builders: (fn, make(i), flops, bytes, ws_bytes, extra)
# ----------------------------------------------------------------------------

_CHECK = {}


def build(kind, s):
    import torch
    bf = torch.bfloat16
    f8 = torch.float8_e4m3fn

    def rn(*shape, std=1.0):
        return torch.randn(*shape, device="cuda", dtype=bf) * std

    if kind == "bf16_gemm":
        M, N, K = s["M"], s["N"], s["K"]
        c = torch.empty(M, N, device="cuda", dtype=bf)

        def fn(a, w, c):
            return torch.mm(a, w.t(), out=c)

        def make(i):
            return (rn(M, K), rn(N, K, std=K ** -0.5), c)
        wb = 2 * N * K
        return fn, make, 2 * M * N * K, 2 * (M * K + N * K + M * N), wb + 2 * M * K, {
            "weight_bytes": wb, "precision": "bf16",
            "layout": "out[M,N] = A[M,K] @ W[N,K]^T, torch.mm(out=) -> cuBLAS"}
    if kind in ("fp8_gemm", "fp8_gemm_bare"):
        M, N, K = s["M"], s["N"], s["K"]
        Mp = max(M, s.get("pad_M", 0))
        fast = bool(s.get("fast_accum", False))
        wb = N * K
        extra = {"weight_bytes": wb, "precision": "fp8_e4m3", "scaling": "per-tensor",
                 "fast_accum": fast, "quant_bytes": 5 * M * K}
        if Mp != M:
            extra["padded_M"] = Mp

        def make_w():
            w = rn(N, K, std=K ** -0.5)
            w8, sw = quant_weight(w)
            return w, w8, sw

        if kind == "fp8_gemm":
            qf = compiled_quant(Mp, K)
            t0 = time.time()
            qf(rn(Mp, K))
            torch.cuda.synchronize()
            extra["compile_s"] = round(time.time() - t0, 3)

            def fn(a, w8, sw):
                q, sa = qf(a)
                return torch._scaled_mm(q, w8.t(), scale_a=sa, scale_b=sw, out_dtype=bf, use_fast_accum=fast)

            def make(i):
                w, w8, sw = make_w()
                a = rn(Mp, K)
                if i == 0:
                    _CHECK["ref"] = (a, w)
                return (a, w8, sw)
            extra["layout"] = ("out[M,N] = _scaled_mm(quant(A[M,K] bf16), W8[N,K]^T, per-tensor scales), "
                               "quant = torch.compile(amax -> scale -> cast e4m3)")
            return fn, make, 2 * M * N * K, M * K + N * K + 2 * M * N, wb + 2 * Mp * K, extra

        def fn(a8, w8, sa, sw):
            return torch._scaled_mm(a8, w8.t(), scale_a=sa, scale_b=sw, out_dtype=bf, use_fast_accum=fast)

        def make(i):
            w, w8, sw = make_w()
            a = rn(Mp, K)
            a8, sa = quant_weight(a)
            if i == 0:
                _CHECK["ref"] = (a, w)
            return (a8, w8, sa, sw)
        extra["layout"] = "out[M,N] = _scaled_mm(A8[M,K], W8[N,K]^T, per-tensor scales), A8 pre-quantized"
        return fn, make, 2 * M * N * K, M * K + N * K + 2 * M * N, wb + Mp * K, extra
    if kind == "fp8_quant":
        M, K = s["M"], s["K"]
        qf = compiled_quant(M, K)
        t0 = time.time()
        qf(rn(M, K))
        torch.cuda.synchronize()
        ct = round(time.time() - t0, 3)
        def fq(x):
            q, sc = qf(x)  # q is an output of the compiled graph (written); only the scale is returned
            return sc
        return fq, (lambda i: (rn(M, K),)), 0, 3 * M * K, 3 * M * K, {
            "compile_s": ct, "precision": "fp8_e4m3",
            "layout": "torch.compile(amax(|A|) -> s = amax/448 -> clamp(A/s).to(e4m3)); bytes = read A + write A8"}
    if kind == "int4_gemm":
        M, N, K, ikt = s["M"], s["N"], s["K"], s["inner_k_tiles"]
        ng = K // GROUP

        def make(i):
            q = torch.randint(0, 16, (N, K), device="cuda", dtype=torch.int32)
            wp = int4_pack(q, ikt)
            sc = (torch.rand(N, ng, device="cuda") * 0.02 / math.sqrt(K) * 8 + 1e-4).to(bf)
            zr = torch.zeros(N, ng, device="cuda", dtype=bf)
            sz = torch.stack([sc, zr], dim=2).transpose(0, 1).contiguous()  # [K/g, N, 2]
            a = rn(M, K)
            if i == 0:
                _CHECK["int4"] = (q, sc)
            del q
            return (a, wp, sz)

        def fn(a, wp, sz):
            return torch._weight_int4pack_mm(a, wp, GROUP, sz)
        wb = N * K // 2 + ng * N * 2 * 2
        return fn, make, 2 * M * N * K, 2 * M * K + wb + 2 * M * N, wb + 2 * M * K, {
            "weight_bytes": wb, "precision": "int4_g128", "group_size": GROUP,
            "layout": "out[M,N] = torch._weight_int4pack_mm(A[M,K] bf16, pack(W[N,K] int4), 128, "
                      "scales_and_zeros[K/128,N,2] bf16); weight bytes = N*K/2 + scales+zeros"}
    if kind == "flex_kv":
        from torch.nn.attention.flex_attention import flex_attention
        B, H, Hkv, Sq, Skv, Dh = s["B"], s["H"], s["Hkv"], s["Sq"], s["Skv"], s["Dh"]
        kvd = torch.float8_e4m3fn if s["kv_dtype"] == "fp8" else bf
        cf = torch.compile(flex_attention, dynamic=False)

        def fn(q, k, v):
            return cf(q, k, v, enable_gqa=True)

        def make(i):
            return (rn(B, H, Sq, Dh), rn(B, Hkv, Skv, Dh).to(kvd), rn(B, Hkv, Skv, Dh).to(kvd))
        t0 = time.time()
        fn(*make(0))
        torch.cuda.synchronize()
        eb = 1 if s["kv_dtype"] == "fp8" else 2
        kvb = 2 * eb * B * Hkv * Skv * Dh
        return fn, make, 4 * B * H * Sq * Skv * Dh, kvb + 2 * 2 * B * H * Sq * Dh, kvb + 2 * B * H * Sq * Dh, {
            "compile_s": round(time.time() - t0, 3), "kv_bytes": kvb, "precision": "kv_" + s["kv_dtype"],
            "layout": "torch.compile(flex_attention)(q bf16 [B,H,Sq,Dh], k/v [B,Hkv,Skv,Dh], enable_gqa), "
                      "no mask (every query sees every key)"}
    raise KeyError(kind)


def check_err(kind, s, fn, first):
    """Relative error of one call against a bf16 reference (small shapes only)."""
    import torch
    try:
        if kind in ("fp8_gemm", "fp8_gemm_bare") and "ref" in _CHECK:
            a, w = _CHECK.pop("ref")
            y = fn(*first).float()[: s["M"]]
            ref = (a[: s["M"]].float() @ w.float().t())
            return C.fnum(((y - ref).norm() / ref.norm()).item(), 5)
        if kind == "int4_gemm" and "int4" in _CHECK:
            q, sc = _CHECK.pop("int4")
            wd = (q.float() - 8.0) * sc.float().repeat_interleave(GROUP, dim=1)
            y = fn(*first).float()
            ref = first[0].float() @ wd.t()
            return C.fnum(((y - ref).norm() / ref.norm()).item(), 5)
    except Exception as e:  # noqa: BLE001
        return "error: " + C.err_text(e)[:200]
    return None


# ----------------------------------------------------------------------------
# fp8 layer
# ----------------------------------------------------------------------------

def make_fp8_linear_cls():
    import torch
    import torch.nn as nn

    class Fp8Linear(nn.Module):
        def __init__(self, lin):
            super().__init__()
            w8, s = quant_weight(lin.weight.detach())
            self.register_buffer("w8", w8)
            self.register_buffer("sw", s)

        def forward(self, x):
            shp = x.shape
            x2 = x.reshape(-1, shp[-1])
            q, sa = quant_fn(x2)
            y = torch._scaled_mm(q, self.w8.t(), scale_a=sa, scale_b=self.sw, out_dtype=torch.bfloat16)
            return y.reshape(*shp[:-1], y.shape[-1])
    return Fp8Linear


def build_layer(d):
    """(compiled fn, args, eager bf16 module): precision fp8 swaps the four projections."""
    import torch
    import kernels as K
    shape = {k: v for k, v in d.items() if k not in ("precision", "set")}
    cfn, args, layer = K.build_layer(shape)
    eager = layer
    if d["precision"] == "fp8":
        import copy
        Fp8Linear = make_fp8_linear_cls()
        l8 = copy.deepcopy(layer)
        for name in ("qkv", "o", "gate_up", "down"):
            setattr(l8, name, Fp8Linear(getattr(layer, name)))
        l8 = l8.eval()
        cfn = torch.compile(l8)
    return cfn, args, eager


def measure_layer(d, env, pre):
    import torch
    import kernels as K
    import timing as T
    shape = {k: v for k, v in d.items() if k not in ("precision", "set")}
    rec = {"kind": "layer", "set": d.get("set", "fp8_layer"), "truth": "precision_micro", **env, "shape": shape,
           "precision": d["precision"]}
    if d["precision"] == "fp8":
        rec["layout"] = ("kernels.DecoderLayer; qkv/o/gate_up/down = dynamic per-tensor e4m3 activation "
                         "quant + torch._scaled_mm (per-tensor weight scale), bf16 out; attention, norms bf16")
    gf, af = K.layer_flops(shape)
    rec.update({"flops": gf + af, "gemm_flops": gf, "attn_flops": af})
    if pre is not None:
        rec["precompile_s"] = pre.get("compile_s")
        if pre.get("error"):
            rec["precompile_error"] = pre["error"]
    torch._dynamo.reset()
    _QUANT.clear()
    K.clear_dynamo_counters()
    cfn = args = eager = g = y = None
    try:
        with torch.no_grad():
            cfn, args, eager = build_layer(d)
            torch.cuda.synchronize()
            t0 = time.time()
            y = cfn(*args)
            torch.cuda.synchronize()
            rec["compile_s"] = C.fnum(time.time() - t0, 3)
            rec["output_finite"] = bool(torch.isfinite(y).all().item())
            if shape["batch_size"] * shape["seq_len"] <= 4096:
                ref = eager(*args).float()
                rec["rel_err_vs_bf16_eager"] = C.fnum(((y.float() - ref).norm() / ref.norm()).item(), 6)
                del ref
            y = None
            g = T.capture(cfn, [args], 1)
            t1 = T.replay_once_ms(g)
            replays = int(min(200, max(3, math.ceil(50.0 / max(t1, 1e-3)))))
            med, rms = T.time_graph(g, replays, 5)
            rec.update({"median_ms": C.fnum(med, 5), "times_ms": [C.fnum(x, 5) for x in rms], "rounds": 5,
                        "replays_per_round": replays, "tflops": C.fnum(rec["flops"] / (med * 1e9), 2)})
    except Exception as e:  # noqa: BLE001
        rec["error"] = C.err_text(e)
        rec["median_ms"] = None
    rec.update(K.dynamo_counters())
    del cfn, args, eager, g, y
    torch._dynamo.reset()
    gc.collect()
    torch.cuda.empty_cache()
    return rec


# ----------------------------------------------------------------------------
# fp8 KV-cache probes
# ----------------------------------------------------------------------------

def kv_probe(env):
    import torch
    import torch.nn.functional as Fn
    from torch.nn.attention import SDPBackend, sdpa_kernel
    bf, f8 = torch.bfloat16, torch.float8_e4m3fn
    recs = []
    cases = [("decode", 4, 32, 8, 1, 4096, 128), ("prefill", 1, 32, 8, 1024, 1024, 128)]
    for name, B, H, Hkv, Sq, Skv, Dh in cases:
        for qd in ("bf16", "fp8"):
            for be in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH", "default"):
                rec = {"kind": "fp8_kv_probe", "set": "probe", "truth": "precision_micro", **env,
                       "shape": {"case": name, "B": B, "H": H, "Hkv": Hkv, "Sq": Sq, "Skv": Skv, "Dh": Dh},
                       "impl": "sdpa", "backend": be, "q_dtype": qd, "kv_dtype": "float8_e4m3fn"}
                try:
                    q = torch.randn(B, H, Sq, Dh, device="cuda", dtype=bf)
                    if qd == "fp8":
                        q = q.to(f8)
                    k = torch.randn(B, Hkv, Skv, Dh, device="cuda", dtype=bf).to(f8)
                    v = torch.randn(B, Hkv, Skv, Dh, device="cuda", dtype=bf).to(f8)
                    causal = Sq > 1
                    if be == "default":
                        o = Fn.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
                    else:
                        with sdpa_kernel([getattr(SDPBackend, be)]):
                            o = Fn.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
                    torch.cuda.synchronize()
                    rec["ok"] = True
                    rec["out_dtype"] = str(o.dtype).replace("torch.", "")
                    rec["output_finite"] = bool(torch.isfinite(o.float()).all().item())
                except Exception as e:  # noqa: BLE001
                    rec["ok"] = False
                    rec["error"] = C.err_text(e)[:300]
                recs.append(rec)
    return recs


def flex_probe(env):
    """Compiled flex_attention with bf16 q and fp8 k/v (decode-like and prefill-like)."""
    import torch
    from torch.nn.attention.flex_attention import flex_attention
    bf, f8 = torch.bfloat16, torch.float8_e4m3fn
    recs = []
    cf = torch.compile(flex_attention, dynamic=False)
    for name, B, H, Hkv, Sq, Skv, Dh in [("prefill", 1, 32, 8, 1024, 1024, 128)]:
        for qd in ("bf16", "fp8"):
            rec = {"kind": "fp8_kv_probe", "set": "probe", "truth": "precision_micro", **env,
                   "shape": {"case": name, "B": B, "H": H, "Hkv": Hkv, "Sq": Sq, "Skv": Skv, "Dh": Dh},
                   "impl": "flex_attention (torch.compile)", "backend": "flex", "q_dtype": qd,
                   "kv_dtype": "float8_e4m3fn"}
            t0 = time.time()
            try:
                q = torch.randn(B, H, Sq, Dh, device="cuda", dtype=bf)
                if qd == "fp8":
                    q = q.to(f8)
                k = torch.randn(B, Hkv, Skv, Dh, device="cuda", dtype=bf).to(f8)
                v = torch.randn(B, Hkv, Skv, Dh, device="cuda", dtype=bf).to(f8)
                o = cf(q, k, v, enable_gqa=True)
                torch.cuda.synchronize()
                rec["ok"] = True
                rec["out_dtype"] = str(o.dtype).replace("torch.", "")
                rec["output_finite"] = bool(torch.isfinite(o.float()).all().item())
            except Exception as e:  # noqa: BLE001
                rec["ok"] = False
                rec["error"] = C.err_text(e)[:300]
            rec["compile_s"] = round(time.time() - t0, 3)
            recs.append(rec)
    return recs


# ----------------------------------------------------------------------------
# worker / main
# ----------------------------------------------------------------------------

def compile_one(job):
    import torch
    if job["kind"] == "decode":
        import decode_compiled as DC
        DC.compile_one(job["shape"])
        return
    if job["kind"] == "flex":
        build("flex_kv", job["shape"])
        return
    if job["kind"] == "quant":
        M, K = job["shape"]["M"], job["shape"]["K"]
        compiled_quant(M, K)(torch.randn(M, K, device="cuda", dtype=torch.bfloat16))
    elif job["kind"] == "layer":
        torch._dynamo.reset()
        _QUANT.clear()
        cfn, args, _ = build_layer(job["shape"])
        cfn(*args)
        del cfn, args
        torch._dynamo.reset()


def measure_micro(kind, s, env):
    import torch
    import decode_micro as DM
    rec = {"kind": kind, "set": "micro", "truth": "precision_micro", **env,
           "shape": {k: s[k] for k in ("M", "N", "K") if k in s} if kind != "flex_kv" else s}
    if "inner_k_tiles" in s:
        rec["inner_k_tiles"] = s["inner_k_tiles"]
    try:
        t = time.time()
        fn, make, flops, byts, ws, extra = build(kind, s)
        rec.update(extra)
        rec["setup_s"] = round(time.time() - t, 3)
        rec.update(DM.bench(fn, make, ws, env["l2_bytes"], False, max_buf=2048, max_calls=2048))
        rec["bytes"] = byts
        rec["gbps"] = C.fnum(byts / (rec["median_ms"] * 1e6), 1)
        if flops:
            rec["flops"] = flops
            rec["tflops"] = C.fnum(flops / (rec["median_ms"] * 1e9), 3)
        if kind in ("fp8_gemm", "fp8_gemm_bare", "int4_gemm") and s.get("M", 0) <= 4096 \
                and s.get("N", 0) * s.get("K", 0) <= 8192 * 8192:
            # one more input set for the error check (the timed sets are gone)
            _CHECK.clear()
            first = make(0)
            e = check_err(kind, s, fn, first)
            if e is not None:
                rec["rel_err_vs_bf16"] = e
        if kind == "int4_gemm":
            rec["int4_pack_input"] = INT4_API.get("input")
    except Exception as e:  # noqa: BLE001
        rec["median_ms"] = None
        rec["error"] = C.err_text(e)
    _CHECK.clear()
    gc.collect()
    torch.cuda.empty_cache()
    return rec


def est_s(kind, s):
    """Rough wall seconds for one point (for the budget)."""
    if kind == "layer":
        return 6.0
    if kind in ("kv_probe",):
        return 3.0
    if kind == "flex_probe":
        return 25.0
    if kind == "flex_kv":
        return 10.0
    M, N, K = s.get("M", 1), s.get("N", 1), s.get("K", 1)
    gemm_ms = 2 * M * N * K / 6e11 + (N * K) / 3e9
    return 0.3 + 25 * gemm_ms / 1e3


# ----------------------------------------------------------------------------
# the second run (issue 15): what the fits and their validation need
# ----------------------------------------------------------------------------
# Chosen before anything was fitted, by fixed rules:
#  - fp8 validation layers: every shape of shapes.VALIDATION (the bf16 fit's validation set) whose GEMM
#    sizes _scaled_mm accepts (hidden_dim, ffn_dim and heads x head_dim multiples of 16), except
#    (5120, 40, 8, 128, 13824, 2048, 1): already measured in fp8-layers.jsonl (the first run). 23 layers.
#  - fp8 training layers: 10 shapes of shapes.TRAIN (sizes, head dims 64/100/128/256, QK-norm,
#    windows, batch > 1, MHA), all multiples of 16.
#  - fp8 and int4 decode steps: the 12 models + 4 stacks of decode_compiled.py at 4 (batch, context)
#    points each; validation models by decode_compiled's own rule (index 2, 5, 8, 11 of each list).
#  - fp8 GEMMs: M sweeps filling the first grid's gaps, 4 more (N, K) of Llama-8B/70B-class layers, and
#    40 random (M, N, K) (seed 15; even index: set "micro", odd: "micro_validation", never fitted on).
FP8_TRAIN_LAYERS = [
    (512, 8, 8, 64, 2048, 128, 1, False, None),
    (768, 12, 4, 64, 3072, 512, 1, False, None),
    (1024, 16, 4, 64, 4096, 256, 2, False, None),
    (1152, 4, 1, 256, 6912, 2048, 1, True, None),
    (1152, 4, 1, 256, 6912, 1024, 1, True, 512),
    (2048, 32, 4, 64, 5632, 2048, 1, False, None),
    (3072, 24, 8, 128, 8192, 2048, 1, False, None),
    (4096, 32, 32, 128, 11008, 2048, 1, False, None),
    (2048, 16, 4, 128, 8192, 16384, 1, False, 1024),
    (2048, 16, 8, 100, 6000, 2048, 1, True, None),
]
FIRST_RUN_LAYER = (5120, 40, 8, 128, 13824, 2048, 1, False, None)
DEC_POINTS = {"fp8": [(1, 512), (16, 2048), (64, 8192), (4, 8192)],
              "int4": [(1, 512), (4, 2048), (16, 8192), (64, 512)]}
SWEEP_MS = (2, 4, 8, 32, 128, 512, 2048, 8192)
SWEEP_NK = [(4096, 4096), (8192, 8192)]
NK2 = [(28672, 4096), (10240, 8192), (57344, 8192), (2048, 2048)]
NK2_MS = (1, 16, 128, 1024, 8192, 32768)
INT4_MS2 = (2, 8, 32)
INT4_NK2 = [(4096, 4096), (14336, 4096), (8192, 8192), (28672, 8192)]
FLEX_DECODE = [{"B": 1, "H": 32, "Hkv": 8, "Sq": 1, "Skv": 8192, "Dh": 128},
               {"B": 64, "H": 32, "Hkv": 8, "Sq": 1, "Skv": 2048, "Dh": 128},
               {"B": 16, "H": 8, "Hkv": 4, "Sq": 1, "Skv": 4096, "Dh": 256}]


def aligned16(t):
    D, H, Hkv, Dh, F = t[:5]
    return D % 16 == 0 and F % 16 == 0 and (H * Dh) % 16 == 0 and ((H + 2 * Hkv) * Dh) % 16 == 0


def layer_spec(t, set_name):
    import shapes as SH
    return {**SH.as_dict(t), "precision": "fp8", "set": set_name}


def random_gemms(n=40, seed=15):
    import random
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        m = int(round(math.exp(rng.uniform(0.0, math.log(32768)))))
        nn = int(round(math.exp(rng.uniform(math.log(512), math.log(32768))) / 16)) * 16
        k = int(round(math.exp(rng.uniform(math.log(512), math.log(32768))) / 16)) * 16
        if rng.random() < 0.5:
            nn, k = max(128, nn // 128 * 128), max(128, k // 128 * 128)
        if m * k > 2 ** 28 or nn * k > 2 ** 29 or 2 * m * nn * k > 4e13:
            continue
        out.append({"M": max(1, m), "N": nn, "K": k, "role": "random",
                    "set": "micro" if len(out) % 2 == 0 else "micro_validation"})
    return out


def plan_second(quick):
    """[(tier, kind, spec)] in timing order (the budget skips from the end)."""
    import shapes as SH
    import decode_compiled as DC
    val = [t for t in SH.VALIDATION if aligned16(t) and t != FIRST_RUN_LAYER]
    assert not set(FP8_TRAIN_LAYERS) & set(SH.VALIDATION)
    assert all(aligned16(t) for t in FP8_TRAIN_LAYERS) and all(t in SH.TRAIN for t in FP8_TRAIN_LAYERS)
    p = []
    gem = random_gemms()
    if quick:
        gem = gem[:2]
        val, train = val[:2], FP8_TRAIN_LAYERS[:1]
    else:
        train = FP8_TRAIN_LAYERS
    for g in gem:
        p.append((0, "fp8_gemm", g))
    for n, k in ([] if quick else SWEEP_NK):
        for m in SWEEP_MS:
            p.append((0, "fp8_gemm", {"M": m, "N": n, "K": k, "role": "sweep", "set": "micro"}))
    for n, k in (NK2[:1] if quick else NK2):
        for m in (NK2_MS[:2] if quick else NK2_MS):
            p.append((0, "fp8_gemm", {"M": m, "N": n, "K": k, "role": "layer_nk", "set": "micro"}))
    for t in val:
        p.append((1, "layer", layer_spec(t, "validation")))
    for t in train:
        p.append((1, "layer", layer_spec(t, "train")))
    names = [n for n, _ in DC.MODELS] + [n for n, _ in DC.STACKS]
    if quick:
        names = ["qwen2_5_0_5b", "llama3_70b_stack"]
    for prec in ("fp8", "int4"):
        pts = DEC_POINTS[prec][:2] if quick else DEC_POINTS[prec]
        for n in names:
            layers = DC.STACK_LAYERS if DC.is_stack(n) else DC.dims_of(n)[1]
            for b, c in pts:
                if DC.counts(DC.dims_of(n), layers, b, c, prec)["mem_needed"] <= DC.MEM_LIMIT:
                    p.append((2, "decode", {"model": n, "batch": b, "context": c, "precision": prec}))
    for n, k in (INT4_NK2[:1] if quick else INT4_NK2):
        for m in INT4_MS2:
            p.append((4, "int4_gemm", {"M": m, "N": n, "K": k, "inner_k_tiles": 8, "set": "micro"}))
    for s in (FLEX_DECODE[:1] if quick else FLEX_DECODE):
        for kv in ("bf16", "fp8"):
            p.append((4, "flex_kv", {**s, "kv_dtype": kv}))
    return p


def est_second(kind, s, compiled):
    if kind == "layer":
        return 3.5 if compiled else 12.0
    if kind == "decode":
        return 1.2 if compiled else 6.0
    if kind == "flex_kv":
        return 4.0 if compiled else 12.0
    return est_s(kind, s) + (0.0 if compiled else 1.5)


def main_second(a):
    """The second precision run: fp8 layers (train + validation), fp8 and int4 decode steps of whole
    models (decode_compiled.py's step with the projections + MLP in fp8 / int4), more fp8 GEMMs and
    int4 GEMMs, flex_attention decode with an fp8 cache. One pre-compile pool for all of it, then one
    timing process; every point in its own try (an error is recorded, the run goes on)."""
    import decode_compiled as DC
    T0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    log = C.Log(os.path.join(a.out, "precision-log.txt"))
    pts = plan_second(a.quick)
    counts = {}
    for _, k, s in pts:
        key = k + ("_" + s["precision"] if k == "decode" else "")
        counts[key] = counts.get(key, 0) + 1
    log(f"precision_micro --suite second: {len(pts)} points {counts}, budget {a.budget_s:.0f}s, "
        f"hard {a.hard_limit_s:.0f}s, pre-compile cap {a.precompile_s:.0f}s, workers {a.workers}")
    jobs, seen, job_of = [], set(), {}
    for i, (_, k, s) in enumerate(pts):
        if k == "layer":
            job_of[i] = len(jobs)
            jobs.append({"kind": "layer", "shape": s})
        elif k == "decode":
            job_of[i] = len(jobs)
            jobs.append({"kind": "decode", "shape": s})
        elif k == "flex_kv":
            job_of[i] = len(jobs)
            jobs.append({"kind": "flex", "shape": s})
        elif k == "fp8_gemm":
            key = (s["M"], s["K"])
            if key not in seen:
                seen.add(key)
                job_of[i] = len(jobs)
                jobs.append({"kind": "quant", "shape": {"M": s["M"], "K": s["K"]}})
    done = {}
    if a.workers > 0 and jobs:
        done = C.precompile(__file__, jobs, a.workers, T0 + a.precompile_s, a.out, log,
                            "precision-precompile-log.txt")
        with open(os.path.join(a.out, "precision-precompile.jsonl"), "w") as f:
            for j in sorted(done):
                f.write(json.dumps(done[j]) + "\n")
    compiled_quant_keys = {(jobs[j]["shape"]["M"], jobs[j]["shape"]["K"]) for j in done
                           if jobs[j]["kind"] == "quant" and not done[j].get("error")}

    def pre_of(i):
        j = job_of.get(i)
        return done.get(j) if j is not None else None

    def compiled(i, k, s):
        if k == "fp8_gemm":
            return (s["M"], s["K"]) in compiled_quant_keys
        if k == "int4_gemm":
            return True
        r = pre_of(i)
        return r is not None and not r.get("error")

    import torch
    C.setup_torch()
    env = C.env_info()
    log(json.dumps(env))
    log(f"timing starts at {time.time() - T0:.0f}s")
    C.warm_clocks()
    w_micro = C.Writer(os.path.join(a.out, "precision-micro.jsonl"))
    w_layer = C.Writer(os.path.join(a.out, "precision-layers.jsonl"))
    w_dec = C.Writer(os.path.join(a.out, "precision-decode.jsonl"))
    w_stack = C.Writer(os.path.join(a.out, "precision-decode-stack.jsonl"))
    w_flex = C.Writer(os.path.join(a.out, "precision-flex-kv.jsonl"))
    skipped, recs = [], []
    cur, W, profiled = None, None, set()
    int4_eager = False
    for i, (tier, k, s) in enumerate(pts):
        el = time.time() - T0
        if el + est_second(k, s, compiled(i, k, s)) > a.budget_s or el > a.hard_limit_s:
            skipped.append((tier, k, s))
            continue
        try:
            if k == "layer":
                rec = measure_layer(s, env, pre_of(i))
                w_layer.write(rec)
                recs.append(rec)
                if rec.get("median_ms") is None:
                    log(f"{i + 1:4d} t{tier} layer {s['set']} {json.dumps(s)[:140]} ERROR {rec['error'][:300]}")
                else:
                    log(f"{i + 1:4d} t{tier} layer fp8 {s['set']:10s} D{s['hidden_dim']} H{s['num_heads']}/"
                        f"{s['num_kv_heads']} Dh{s['head_dim']} F{s['ffn_dim']} S{s['seq_len']} B{s['batch_size']} "
                        f"qk{int(s['use_qk_norm'])} w{s['window_size']}: {rec['median_ms']:.4f} ms "
                        f"{rec['tflops']} TF/s compile {rec.get('compile_s')}s err {rec.get('rel_err_vs_bf16_eager')}")
                continue
            if k == "decode":
                n, prec = s["model"], s["precision"]
                if (prec, n) != cur:
                    W = None
                    gc.collect()
                    torch.cuda.empty_cache()
                    torch._dynamo.reset()
                    from torch._dynamo.utils import counters
                    counters.clear()
                    dims = DC.dims_of(n)
                    t = time.time()
                    W = DC.make_weights(dims, DC.STACK_LAYERS if DC.is_stack(n) else dims[1], precision=prec)
                    torch.cuda.synchronize()
                    log(f"     weights {n} {prec}: {time.time() - t:.1f}s")
                    cur = (prec, n)
                first = (prec, n) not in profiled
                rec = DC.measure_point(n, s["batch"], s["context"], W, env, pre_of(i), first, log,
                                       int4_eager=(prec == "int4" and int4_eager))
                if rec.get("median_ms") is None and prec == "int4" and not int4_eager:
                    log(f"     int4 step failed compiled ({rec.get('error', '')[:200]}); retrying with the int4 GEMM "
                        f"called eagerly (a graph break) for every int4 step from here on")
                    int4_eager = True
                    torch._dynamo.reset()
                    rec = DC.measure_point(n, s["batch"], s["context"], W, env, None, first, log, int4_eager=True)
                    rec["compiled_attempt_error"] = "see log"
                profiled.add((prec, n))
                (w_stack if DC.is_stack(n) else w_dec).write(rec)
                recs.append(rec)
                ms = rec.get("median_ms")
                log(f"{i + 1:4d} t{tier} decode {prec:4s} {n:26s} b{s['batch']:<3d} ctx{s['context']:<6d} "
                    + (f"{ms:9.4f} ms {rec['gbps']:7.1f} GB/s finite={rec['output_finite']} spread={rec['spread']} "
                       f"compile {rec['compile_s']}s" if ms else f"ERROR {rec.get('error', '')[:300]}"))
                continue
            if cur is not None:
                W, cur = None, None
                gc.collect()
                torch.cuda.empty_cache()
            rec = measure_micro(k, s, env)
            for key in ("role", "set"):
                if key in s:
                    rec[key] = s[key]
            if k == "flex_kv":
                rec["set"] = "probe"
            (w_flex if k == "flex_kv" else w_micro).write(rec)
            recs.append(rec)
            ms = rec.get("median_ms")
            if ms is None:
                log(f"{i + 1:4d} t{tier} {k} {json.dumps(s)} ERROR {rec['error'][:300]}")
            else:
                log(f"{i + 1:4d} t{tier} {k:10s} {json.dumps(s):90s} {ms * 1e3:10.2f} us {rec['gbps']:8.1f} GB/s"
                    + (f" {rec['tflops']:8.2f} TF/s" if rec.get("tflops") else "")
                    + f" buf {rec['buffers']} calls {rec['calls_per_replay']}"
                    + ("" if rec.get("output_finite", True) else " NONFINITE"))
        except Exception as e:  # noqa: BLE001  (one point's failure must not end the run)
            log(f"{i + 1:4d} t{tier} {k} {json.dumps(s)[:150]} UNCAUGHT {C.err_text(e)}")
            gc.collect()
            torch.cuda.empty_cache()
    for t, k, s in skipped:
        log(f"  skipped (budget): t{t} {k} {json.dumps(s)}")
    ok = [r for r in recs if r.get("median_ms")]
    log(f"done: {len(ok)} measured, {len(recs) - len(ok)} errors, {len(skipped)} skipped (budget); "
        f"wall {time.time() - T0:.0f}s")


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "precision_out"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--budget-s", type=float, default=None, help="hard: no point started that would end past it "
                   "(default 400, quick 90)")
    p.add_argument("--precompile-s", type=float, default=None, help="pre-compile phase cap (default 110, quick 45)")
    p.add_argument("--workers", type=int, default=7)
    p.add_argument("--suite", choices=("first", "second"), default="first",
                   help="first: the grid of the first run; second: fp8 layers, fp8/int4 decode steps, more GEMMs")
    p.add_argument("--hard-limit-s", type=float, default=None, help="second suite: nothing starts past it")
    p.add_argument("--worker", action="store_true")
    p.add_argument("--jobs")
    p.add_argument("--claim-dir")
    p.add_argument("--worker-id", type=int, default=0)
    a = p.parse_args()
    C.set_env_defaults()
    if a.worker:
        return C.run_worker(compile_one, a.jobs, a.claim_dir, a.worker_id)
    if a.suite == "second":
        if a.budget_s is None:
            a.budget_s = 90.0 if a.quick else 330.0
        if a.precompile_s is None:
            a.precompile_s = 45.0 if a.quick else 130.0
        if a.hard_limit_s is None:
            a.hard_limit_s = a.budget_s + 20.0
        return main_second(a)
    if a.budget_s is None:
        a.budget_s = 90.0 if a.quick else 400.0
    if a.precompile_s is None:
        a.precompile_s = 45.0 if a.quick else 110.0
    T0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    log = C.Log(os.path.join(a.out, "precision-log.txt"))
    pts = plan(a.quick)
    counts = {}
    for _, k, _ in pts:
        counts[k] = counts.get(k, 0) + 1
    log(f"precision_micro: {len(pts)} points {counts}, budget {a.budget_s:.0f}s")
    # pre-compile: layers first (slowest), then the quantizers of every (M, K) used
    jobs, seen = [], set()
    for _, k, s in pts:
        if k == "layer":
            jobs.append({"kind": "layer", "shape": s})
    for _, k, s in pts:
        if k in ("fp8_gemm", "fp8_quant"):
            key = (max(s["M"], s.get("pad_M", 0)), s["K"])
            if key not in seen:
                seen.add(key)
                jobs.append({"kind": "quant", "shape": {"M": key[0], "K": key[1]}})
    pre = {}
    if a.workers > 0 and jobs:
        done = C.precompile(__file__, jobs, a.workers, T0 + a.precompile_s, a.out, log,
                            "precision-precompile-log.txt")
        for i, j in enumerate(jobs):
            if i in done and j["kind"] == "layer":
                pre[json.dumps(j["shape"], sort_keys=True)] = done[i]
    import torch
    C.setup_torch()
    env = C.env_info()
    log(json.dumps(env))
    log(f"timing starts at {time.time() - T0:.0f}s")
    C.warm_clocks()
    wm = C.Writer(os.path.join(a.out, "fp8-micro.jsonl"))
    wi = C.Writer(os.path.join(a.out, "int4-micro.jsonl"))
    wl = C.Writer(os.path.join(a.out, "fp8-layers.jsonl"))
    wk = C.Writer(os.path.join(a.out, "fp8-kv-probe.jsonl"))
    skipped, recs = [], []
    int4_dead, int4_ok, int4_fail = None, 0, 0
    for i, (tier, k, s) in enumerate(pts):
        el = time.time() - T0
        if el + est_s(k, s) > a.budget_s:
            skipped.append((tier, k, s))
            continue
        if k == "kv_probe" or k == "flex_probe":
            rs = kv_probe(env) if k == "kv_probe" else flex_probe(env)
            for r in rs:
                wk.write(r)
                log(f"{i + 1:4d} probe {r['impl']:28s} {r['backend']:20s} {r['shape']['case']:8s} q {r['q_dtype']}: "
                    + ("OK " + r.get("out_dtype", "") if r["ok"] else "no: " + r["error"][:150]))
            continue
        if k == "layer":
            if time.time() - T0 > a.budget_s - 30 and json.dumps(s, sort_keys=True) not in pre:
                skipped.append((tier, k, s))
                continue
            rec = measure_layer(s, env, pre.get(json.dumps(s, sort_keys=True)))
            wl.write(rec)
            recs.append(rec)
            if rec.get("median_ms") is None:
                log(f"{i + 1:4d} layer {rec['precision']} {json.dumps(s)[:120]} ERROR {rec['error'][:300]}")
            else:
                log(f"{i + 1:4d} t{tier} layer {rec['precision']:4s} D{s['hidden_dim']} F{s['ffn_dim']} "
                    f"S{s['seq_len']} B{s['batch_size']}: {rec['median_ms']:.4f} ms {rec['tflops']} TF/s "
                    f"compile {rec.get('compile_s')}s err {rec.get('rel_err_vs_bf16_eager')}")
            continue
        if k == "int4_gemm" and int4_dead:
            rec = {"kind": k, "set": "micro", "truth": "precision_micro", **env,
                   "shape": {x: s[x] for x in ("M", "N", "K")}, "inner_k_tiles": s["inner_k_tiles"],
                   "median_ms": None, "error": "skipped: " + int4_dead}
            wi.write(rec)
            continue
        rec = measure_micro(k, s, env)
        if rec.get("error") and k in ("fp8_gemm", "fp8_gemm_bare") and s["M"] < 16 and "pad_M" not in s:
            log(f"{i + 1:4d} {k} {json.dumps(s)} ERROR {rec['error'][:200]}; retry padded to M=16")
            rec0 = rec
            rec = measure_micro(k, {**s, "pad_M": 16}, env)
            rec["unpadded_error"] = rec0["error"]
        (wk if k == "flex_kv" else wi if k == "int4_gemm" or (k == "bf16_gemm" and s["M"] == 4) else wm).write(rec)
        recs.append(rec)
        ms = rec.get("median_ms")
        if ms is None:
            log(f"{i + 1:4d} {k} {json.dumps(s)} ERROR {rec['error'][:300]}")
            if k == "int4_gemm":
                int4_fail += 1
                if int4_fail >= 2 and int4_ok == 0:
                    int4_dead = "int4 failed on its first points: " + rec["error"][:200]
        else:
            if k == "int4_gemm":
                int4_ok += 1
            log(f"{i + 1:4d} t{tier} {k:14s} {json.dumps(s):70s} {ms * 1e3:10.2f} us {rec['gbps']:8.1f} GB/s"
                + (f" {rec['tflops']:8.2f} TF/s" if rec.get("tflops") else "")
                + f" buf {rec['buffers']} calls {rec['calls_per_replay']}"
                + (f" err {rec['rel_err_vs_bf16']}" if "rel_err_vs_bf16" in rec else "")
                + ("" if rec["output_finite"] else " NONFINITE"))
    for t, k, s in skipped:
        log(f"  skipped (budget): t{t} {k} {json.dumps(s)}")
    ok = [r for r in recs if r.get("median_ms")]
    log(f"done: {len(ok)} measured, {len(recs) - len(ok)} errors, {len(skipped)} skipped (budget); "
        f"wall {time.time() - T0:.0f}s")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
