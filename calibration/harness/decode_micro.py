#!/usr/bin/env python3
"""Micro-benchmarks of what a decode step is made of (bf16, H100/H200-class GPUs).

Each point is captured as one CUDA graph of `calls_per_replay` back-to-back
calls, rotating over `buffers` independent input sets whose total is >= 4x L2
(capped at 512 sets; `rotated_bytes` says how much was rotated), unless the
record says `l2_resident: true` (one input set, replayed warm on purpose).
`median_ms` is per call: median over 5 rounds of the per-replay time /
calls_per_replay (timing.time_graph, GPU spin before each round).

kinds (`set: "micro"`, `truth: "decode_micro"`):
  skinny_gemm   out[M,N] = A[M,K] @ W[N,K]^T via torch.mm(out=) (cuBLAS), M 1..256
  lm_head       the same GEMM at vocabulary sizes (N = vocab, K = hidden)
  decode_attention  F.scaled_dot_product_attention of q [B,H,1,Dh] over a cache
                slice [B,Hkv,keys,Dh] (enable_gqa), eager (inductor calls the same aten op)
  rmsnorm, add_rmsnorm, residual_add, rope (optional QK-norm), act_mul
                torch.compile(dynamic=False), shapes [batch, dim]

    PYTHONUNBUFFERED=1 python3 calibration/harness/decode_micro.py --out $OUT          # full, < 6 min
    PYTHONUNBUFFERED=1 python3 calibration/harness/decode_micro.py --quick --out $OUT  # smoke
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

MS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# (N, K): weight bytes 128 KB .. 2.1 GB, typical model projections included
GEMM_NK = [(256, 256), (512, 512), (768, 768), (1024, 1024), (1152, 896), (2048, 2048), (2304, 2048),
           (3072, 3072), (4096, 4096), (6144, 4096), (8192, 4096), (4096, 14336), (8192, 8192),
           (28672, 4096), (10240, 8192), (16384, 16384), (8192, 28672), (57344, 8192), (32768, 16384),
           (65536, 16384)]
L2_NK = [(1024, 1024), (2048, 2048), (4096, 4096), (6144, 4096), (8192, 4096), (4096, 14336)]
L2_MS = (1, 16, 64)
LM_VK = [(32000, 4096), (50257, 768), (128256, 2048), (128256, 3072), (128256, 4096), (151936, 896),
         (151936, 2560), (152064, 5120), (256000, 2304), (128256, 8192)]
LM_BS = (1, 4, 16, 64)
ATT_HEADS = [(32, 8, 128), (32, 8, 64), (14, 2, 64), (8, 4, 256), (32, 32, 128), (40, 8, 128)]
ATT_CTX = (128, 512, 2048, 8192, 32768)
ATT_BS = (1, 4, 16, 64)
ATT_WIN = [(32, 8, 128, 4096, c, b) for c in (8192, 32768) for b in ATT_BS] + \
          [(32, 8, 128, 512, c, b) for c in (2048, 8192) for b in (1, 16)] + \
          [(8, 4, 256, 4096, c, b) for c in (8192, 32768) for b in (1, 16)]
ATT_MAX_BYTES = 24e9
EW_BS = (1, 4, 16, 64, 256)
EW_D = (768, 2048, 4096, 8192)
ACT_F = (2048, 8192, 14336, 28672)
ROPE_HEADS = [(32, 8, 128), (16, 8, 128), (8, 4, 256), (14, 2, 64), (64, 8, 128)]
ROPE_BS = (1, 16, 64)


def plan(quick):
    """[(tier, kind, shape)]; tier 0 = every other point of each grid, tier 1 = the rest."""
    g = []
    if quick:
        g += [("skinny_gemm", {"M": m, "N": n, "K": k}) for m in (1, 16) for n, k in [(4096, 4096), (57344, 8192)]]
        g += [("skinny_gemm_l2", {"M": 1, "N": 4096, "K": 4096})]
        g += [("lm_head", {"M": 4, "N": 128256, "K": 4096})]
        g += [("decode_attention", {"B": b, "H": 32, "Hkv": 8, "Dh": 128, "context": c, "window": None})
              for b, c in [(1, 2048), (16, 8192)]]
        g += [("decode_attention", {"B": 4, "H": 32, "Hkv": 8, "Dh": 128, "context": 8192, "window": 4096})]
        g += [("rmsnorm", {"rows": 1, "cols": 4096}), ("add_rmsnorm", {"rows": 16, "cols": 4096}),
              ("residual_add", {"rows": 16, "cols": 4096}), ("act_mul", {"rows": 16, "F": 14336}),
              ("rope", {"rows": 16, "H": 16, "Hkv": 8, "Dh": 128, "qk_norm": True})]
        return [(0, k, s) for k, s in g]
    grids = {
        "skinny_gemm": [{"M": m, "N": n, "K": k} for n, k in GEMM_NK for m in MS],
        "skinny_gemm_l2": [{"M": m, "N": n, "K": k} for n, k in L2_NK for m in L2_MS],
        "lm_head": [{"M": b, "N": v, "K": d} for v, d in LM_VK for b in LM_BS],
        "decode_attention": [{"B": b, "H": h, "Hkv": kv, "Dh": dh, "context": c, "window": None}
                             for h, kv, dh in ATT_HEADS for c in ATT_CTX for b in ATT_BS
                             if att_bytes(b, kv, dh, c, None) <= ATT_MAX_BYTES]
        + [{"B": b, "H": h, "Hkv": kv, "Dh": dh, "context": c, "window": w} for h, kv, dh, w, c, b in ATT_WIN],
        "rmsnorm": [{"rows": b, "cols": d} for d in EW_D for b in EW_BS],
        "add_rmsnorm": [{"rows": b, "cols": d} for d in EW_D for b in EW_BS],
        "residual_add": [{"rows": b, "cols": d} for d in EW_D for b in EW_BS],
        "act_mul": [{"rows": b, "F": f} for f in ACT_F for b in EW_BS],
        "rope": [{"rows": b, "H": h, "Hkv": kv, "Dh": dh, "qk_norm": q} for h, kv, dh in ROPE_HEADS
                 for b in ROPE_BS for q in (False, True)],
    }
    out = []
    for tier in (0, 1):
        for k, pts in grids.items():
            for i, s in enumerate(pts):
                if i % 2 == tier:
                    out.append((tier, k, s))
    return out


COMPILED_KINDS = ("rmsnorm", "add_rmsnorm", "residual_add", "act_mul", "rope")


def att_keys(context, window):
    pos = context
    lo = max(0, pos + 1 - window) if window else 0
    return lo, pos


def att_bytes(b, kv, dh, context, window):
    # allocated cache (both K and V), capacity context + 1
    return 2 * 2 * b * kv * (context + 1) * dh


# ----------------------------------------------------------------------------
# builders: (fn, make_args(i), flops, bytes, ws_bytes, extra)
# ----------------------------------------------------------------------------

_COMP = {}


def _ops():
    import torch
    import torch.nn.functional as Fn

    def rms_norm(x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    def f_rmsnorm(x, w):
        return rms_norm(x, w)

    def f_add_rmsnorm(x, r, w):
        y = x + r
        return y, rms_norm(y, w)

    def f_residual_add(x, r):
        return x + r

    def f_act_mul(gu):
        F = gu.shape[1] // 2
        return Fn.gelu(gu[:, :F], approximate="tanh") * gu[:, F:]

    def make_rope(H, Hkv, Dh, qk):
        def f_rope(qkv, qn, kn, cos, sin):
            b = qkv.shape[0]
            q, k, v = qkv.split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
            q = q.reshape(b, H, Dh)
            k = k.reshape(b, Hkv, Dh)
            if qk:
                q = rms_norm(q, qn)
                k = rms_norm(k, kn)
            return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v.reshape(b, Hkv, Dh)
        return f_rope

    return {"rmsnorm": f_rmsnorm, "add_rmsnorm": f_add_rmsnorm, "residual_add": f_residual_add,
            "act_mul": f_act_mul, "make_rope": make_rope}


def build(kind, s):
    import torch
    import torch.nn.functional as Fn
    bf = torch.bfloat16

    def rn(*shape, std=1.0):
        return torch.randn(*shape, device="cuda", dtype=bf) * std

    if kind in ("skinny_gemm", "skinny_gemm_l2", "lm_head"):
        M, N, K = s["M"], s["N"], s["K"]

        def fn(a, w, c):
            return torch.mm(a, w.t(), out=c)
        wb = 2 * N * K
        c = torch.empty(M, N, device="cuda", dtype=bf)

        def make(i):
            return (rn(M, K), rn(N, K, std=K ** -0.5), c)
        return fn, make, 2 * M * N * K, 2 * (M * K + N * K + M * N), wb, {"weight_bytes": wb}
    if kind == "decode_attention":
        B, H, Hkv, Dh, ctx, win = s["B"], s["H"], s["Hkv"], s["Dh"], s["context"], s["window"]
        lo, pos = att_keys(ctx, win)
        keys = pos + 1 - lo
        gqa = H != Hkv

        def fn(q, kc, vc):
            return Fn.scaled_dot_product_attention(q, kc[:, :, lo:pos + 1], vc[:, :, lo:pos + 1], enable_gqa=gqa)

        def make(i):
            return (rn(B, H, 1, Dh), rn(B, Hkv, ctx + 1, Dh), rn(B, Hkv, ctx + 1, Dh))
        kvb = 2 * 2 * B * Hkv * keys * Dh
        byts = kvb + 2 * 2 * B * H * Dh
        extra = {"kv_tokens_attended": keys, "kv_bytes": kvb, "backend": sdpa_backend(B, H, Hkv, Dh, keys, gqa)}
        return fn, make, 4 * B * H * Dh * keys, byts, att_bytes(B, Hkv, Dh, ctx, win), extra
    ops = _ops()
    key = (kind, json.dumps(s, sort_keys=True))
    if kind == "rope":
        B, H, Hkv, Dh, qk = s["rows"], s["H"], s["Hkv"], s["Dh"], s["qk_norm"]
        if key not in _COMP:
            _COMP[key] = torch.compile(ops["make_rope"](H, Hkv, Dh, qk), dynamic=False)
        fn = _COMP[key]
        cos, sin = rn(Dh), rn(Dh)
        qn, kn = rn(Dh), rn(Dh)
        n = (H + 2 * Hkv) * Dh

        def make(i):
            return (rn(B, n), qn, kn, cos, sin)
        byts = 2 * 2 * B * n
        return fn, make, 0, byts, byts // 2, {}
    if kind not in _COMP:
        _COMP[kind] = torch.compile(ops[kind], dynamic=False)
    fn = _COMP[kind]
    if kind == "rmsnorm":
        B, D = s["rows"], s["cols"]
        w = rn(D)
        return fn, (lambda i: (rn(B, D), w)), 0, 2 * (2 * B * D + D), 2 * B * D, {}
    if kind == "add_rmsnorm":
        B, D = s["rows"], s["cols"]
        w = rn(D)
        return fn, (lambda i: (rn(B, D), rn(B, D), w)), 0, 2 * (4 * B * D + D), 4 * B * D, {}
    if kind == "residual_add":
        B, D = s["rows"], s["cols"]
        return fn, (lambda i: (rn(B, D), rn(B, D))), 0, 2 * 3 * B * D, 4 * B * D, {}
    if kind == "act_mul":
        B, F = s["rows"], s["F"]
        return fn, (lambda i: (rn(B, 2 * F),)), 0, 2 * 3 * B * F, 4 * B * F, {}
    raise KeyError(kind)


def sdpa_backend(B, H, Hkv, Dh, keys, gqa):
    import torch
    try:
        q = torch.randn(B, H, 1, Dh, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, Hkv, keys, Dh, device="cuda", dtype=torch.bfloat16)
        choice = int(torch._fused_sdp_choice(q, k, k, None, 0.0, False, scale=None, enable_gqa=gqa))
        from torch.nn.attention import SDPBackend
        for name, b in SDPBackend.__members__.items():
            if int(b) == choice:
                return name
        return str(choice)
    except Exception as e:  # noqa: BLE001
        return f"unknown ({type(e).__name__})"


def compile_one(job):
    fn, make, *_ = build(job["kind"], job["shape"])
    a = make(0)
    fn(*a)
    fn(*a)


def bench(fn, make, ws, l2, resident, max_buf=512, target_graph_ms=1.0, target_round_ms=8.0, max_calls=1000):
    import torch
    import timing as T
    first = make(0)
    t_est = T.eager_estimate_ms(fn, first)
    if resident:
        nbuf = 1
    else:
        nbuf = int(max(1, min(max_buf, math.ceil(4 * l2 / max(ws, 1)))))
    calls = int(max(nbuf, min(max_calls, math.ceil(target_graph_ms / max(t_est, 1e-4)))))
    calls = int(math.ceil(calls / nbuf) * nbuf)
    arg_sets = [first] + [make(i) for i in range(1, nbuf)]
    g = T.capture(fn, arg_sets, calls)
    g_ms = T.replay_once_ms(g)
    if g_ms < 0.5 * target_graph_ms and calls < max_calls:
        more = int(min(max_calls, calls * math.ceil(target_graph_ms / max(g_ms, 1e-3))))
        more = max(nbuf, (more // nbuf) * nbuf)
        if more > calls:
            del g
            calls = more
            g = T.capture(fn, arg_sets, calls)
            g_ms = T.replay_once_ms(g)
    replays = int(min(50, max(3, math.ceil(target_round_ms / max(g_ms, 1e-3)))))
    med, rounds_ms = T.time_graph(g, replays, 5, calls_per_replay=calls)
    out = fn(*first)
    outs = out if isinstance(out, tuple) else (out,)
    finite = all(bool(torch.isfinite(o).all().item()) for o in outs)
    del g, arg_sets, first
    return {"median_ms": med, "times_ms": rounds_ms, "rounds": 5, "replays_per_round": replays,
            "calls_per_replay": calls, "buffers": nbuf, "rotated_bytes": nbuf * ws, "output_finite": finite,
            "spread": C.fnum((max(rounds_ms) - min(rounds_ms)) / med, 4)}


def measure(kind, s, env, pre):
    import torch
    rkind = "skinny_gemm" if kind == "skinny_gemm_l2" else kind
    rec = {"kind": rkind, "set": "micro", "truth": "decode_micro", **env, "shape": s}
    if kind in COMPILED_KINDS:
        rec["compiled"] = True
    if pre is not None:
        rec["precompile_s"] = pre.get("compile_s")
    try:
        t = time.time()
        fn, make, flops, byts, ws, extra = build(kind, s)
        rec.update(extra)
        resident = kind == "skinny_gemm_l2"
        rec["l2_resident"] = resident
        if kind in ("skinny_gemm", "skinny_gemm_l2", "lm_head"):
            rec["layout"] = "out[M,N] = A[M,K] @ W[N,K]^T, torch.mm(out=) -> cuBLAS"
        if kind == "decode_attention":
            rec["impl"] = "sdpa"
        rec["setup_s"] = round(time.time() - t, 3)
        gemm = kind in ("skinny_gemm", "skinny_gemm_l2", "lm_head")
        rec.update(bench(fn, make, ws, env["l2_bytes"], resident, max_buf=2048 if gemm else 512,
                         max_calls=2048 if gemm else 1000))
        rec["bytes"] = byts
        rec["gbps"] = C.fnum(byts / (rec["median_ms"] * 1e6), 1)
        if flops:
            rec["flops"] = flops
            rec["tflops"] = C.fnum(flops / (rec["median_ms"] * 1e9), 3)
    except Exception as e:  # noqa: BLE001
        rec["median_ms"] = None
        rec["error"] = C.err_text(e)
    torch.cuda.empty_cache()
    return rec


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "decode_out"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--budget-s", type=float, default=None, help="soft: no new point past it (default 400, quick 60)")
    p.add_argument("--workers", type=int, default=7)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--jobs")
    p.add_argument("--claim-dir")
    p.add_argument("--worker-id", type=int, default=0)
    a = p.parse_args()
    C.set_env_defaults()
    if a.worker:
        return C.run_worker(compile_one, a.jobs, a.claim_dir, a.worker_id)
    if a.budget_s is None:
        a.budget_s = 60.0 if a.quick else 400.0
    T0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    log = C.Log(os.path.join(a.out, "micro-log.txt"))
    pts = plan(a.quick)
    counts = {}
    for _, k, _ in pts:
        counts[k] = counts.get(k, 0) + 1
    log(f"decode_micro: {len(pts)} points {counts}, budget {a.budget_s:.0f}s")
    pre = {}
    cjobs = [(i, {"kind": k, "shape": s}) for i, (_, k, s) in enumerate(pts) if k in COMPILED_KINDS]
    if a.workers > 0 and cjobs:
        done = C.precompile(__file__, [j for _, j in cjobs], a.workers, T0 + 0.3 * a.budget_s, a.out, log,
                            "micro-precompile-log.txt")
        for n, (i, _) in enumerate(cjobs):
            if n in done:
                pre[i] = done[n]
    import torch
    C.setup_torch()
    env = C.env_info()
    log(json.dumps(env))
    C.warm_clocks()
    w = C.Writer(os.path.join(a.out, "micro.jsonl"))
    skipped, recs = [], []
    for i, (tier, k, s) in enumerate(pts):
        if time.time() - T0 > a.budget_s:
            skipped.append((tier, k, s))
            continue
        rec = measure(k, s, env, pre.get(i))
        w.write(rec)
        recs.append(rec)
        ms = rec.get("median_ms")
        if ms is None:
            log(f"{i + 1:4d} {k} {json.dumps(s)} ERROR {rec['error'][:200]}")
        else:
            log(f"{i + 1:4d} t{tier} {k:16s} {json.dumps(s):80s} {ms * 1e3:10.2f} us {rec['gbps']:8.1f} GB/s"
                + (f" {rec['tflops']:7.2f} TF/s" if rec.get("tflops") else "")
                + f" buf {rec['buffers']} calls {rec['calls_per_replay']}"
                + (f" {rec.get('backend')}" if k == "decode_attention" else "")
                + ("" if rec["output_finite"] else " NONFINITE"))
    for t, k, s in skipped:
        log(f"  skipped (budget): t{t} {k} {json.dumps(s)}")
    ok = [r for r in recs if r.get("median_ms")]
    log(f"done: {len(ok)}/{len(pts)} measured, {len(recs) - len(ok)} errors, {len(skipped)} skipped (budget), "
        f"{sum(1 for r in ok if not r['output_finite'])} non-finite; wall {time.time() - T0:.0f}s")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
