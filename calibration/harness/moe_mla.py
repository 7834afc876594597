#!/usr/bin/env python3
"""MoE MLP layers, MLA attention layers and grouped-GEMM micro-benchmarks (bf16, H200).

What each kind is: moe_kernels.py.  kinds:
  moe           the MoE MLP, torch.compile(dynamic=False); `phase` prefill (balanced
                or imbalanced routing) or decode (the router's own top-k, tokens = batch)
  grouped_mm    eager torch._grouped_mm alone (2D x 3D, offs), the gate-up or the down
                GEMM of an MoE config with balanced rows (what inductor calls)
  mla_prefill   the MLA attention half of a layer, expanded form, compiled
  mla_decode    the same for one token per sequence, absorbed form, compiled
  grouped_mm_probe  once per run: does torch._grouped_mm exist, its call convention,
                its error against a per-expert loop of torch.mm

Timing (every kind): one CUDA graph of `calls_per_replay` back-to-back calls rotating
over `buffers` independent argument sets (weights included) of >= 4x L2 in total
(decode_micro.bench), a GPU spin before each of 5 rounds, `median_ms` per call = the
median of the round medians.  torch._dynamo.reset() before every shape; the shapes are
compiled first by worker processes into the on-disk inductor cache (each job reserves
its estimated GPU memory in a budget the workers share: WORKER_MEMORY_GB).

Sets: the validation configs (VALIDATION_MOE, VALIDATION_MLA) were chosen before any
measurement; every record of them is `set: "validation"`, never fitted on.

    PYTHONUNBUFFERED=1 python3 calibration/harness/moe_mla.py --out $OUT            # full
    PYTHONUNBUFFERED=1 python3 calibration/harness/moe_mla.py --quick --out $OUT    # smoke
"""
import fcntl
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

# name: hidden, expert ffn, experts, top_k (published MoE configs, and a few in between)
MOE_CONFIGS = [
    ("mixtral_8x7b", 4096, 14336, 8, 2),
    ("qwen3_30b_a3b", 2048, 768, 128, 8),
    ("deepseek_v3", 7168, 2048, 256, 8),
    ("deepseek_v2_lite", 2048, 1408, 64, 6),
    ("gpt_oss_20b", 2880, 2880, 32, 4),
    ("top1_16e", 4096, 8192, 16, 1),
    ("qwen3_next_like", 2048, 512, 512, 10),
    ("olmoe_like", 2048, 1024, 64, 8),
    ("e512_top22", 3072, 256, 512, 22),
    ("switch_128_top1", 2048, 4096, 128, 1),
    ("qwen3_235b_a22b", 4096, 1536, 128, 8),
    ("dbrx_like", 6144, 10752, 16, 4),
    ("gpt_oss_120b", 2880, 2880, 128, 4),
    ("e32_top2_5120", 5120, 4096, 32, 2),
]
# Fixed before any measurement: whole configs held out.
VALIDATION_MOE = {"gpt_oss_20b", "olmoe_like", "qwen3_235b_a22b", "dbrx_like"}
MOE_PREFILL_TRAIN = (32, 256, 2048, 16384)
MOE_PREFILL_VAL = (128, 1024, 8192)
MOE_DECODE_TRAIN = (1, 8, 128)
MOE_DECODE_VAL = (4, 64)
# (config, tokens, imbalance)
MOE_IMBALANCED = [("mixtral_8x7b", 2048, 1.5), ("mixtral_8x7b", 2048, 2.0), ("qwen3_30b_a3b", 4096, 2.0),
                  ("qwen3_30b_a3b", 4096, 4.0), ("deepseek_v3", 2048, 2.0), ("e512_top22", 1024, 3.0),
                  ("gpt_oss_20b", 2048, 2.0), ("olmoe_like", 4096, 3.0)]
MOE_ROUTED_TRAIN = (1, 16, 128, 1024, 4096, 16384)
MOE_ROUTED_VAL = (4, 64, 512, 2048, 8192)
GMM_TRAIN_TOKENS = (256, 4096, 16384)
GMM_VAL_TOKENS = (2048,)

MLA_CONFIGS = [
    ("deepseek_v3", dict(hidden=7168, heads=128, q_lora_rank=1536)),
    ("deepseek_v2_lite", dict(hidden=2048, heads=16, q_lora_rank=None)),
    ("deepseek_v2", dict(hidden=5120, heads=128, q_lora_rank=1536)),
    ("mla_4096_32h", dict(hidden=4096, heads=32, q_lora_rank=1024)),
    ("kimi_k2", dict(hidden=7168, heads=64, q_lora_rank=1536)),
    ("mla_3072_24h_noq", dict(hidden=3072, heads=24, q_lora_rank=None)),
]
VALIDATION_MLA = {"kimi_k2", "mla_3072_24h_noq"}
MLA_COMMON = dict(kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128)
MLA_PREFILL_TRAIN = [(1, 512), (1, 2048), (4, 2048), (1, 8192), (1, 16384)]
MLA_PREFILL_VAL = [(1, 1024), (2, 4096), (1, 16384)]
MLA_DECODE_TRAIN = [(1, 1024), (1, 32768), (8, 8192), (32, 2048), (64, 16384)]
MLA_DECODE_VAL = [(4, 4096), (16, 32768), (64, 1024)]

WORKER_MEMORY_GB = 96.0  # of the H200's ~140 GB, for all pre-compile workers together
COMPILED_KINDS = ("moe", "moe_routed", "mla_prefill", "mla_decode")

if os.environ.get("NAS_HARNESS_TINY"):  # a CPU smoke test of the plumbing only (NAS_DEVICE=cpu)
    MOE_CONFIGS = [("tiny_a", 64, 32, 8, 2), ("tiny_b", 64, 48, 16, 4)]
    VALIDATION_MOE = {"tiny_b"}
    MOE_IMBALANCED = [("tiny_a", 32, 2.0)]
    MLA_CONFIGS = [("tiny_mla", dict(hidden=64, heads=4, q_lora_rank=32)),
                   ("tiny_mla_noq", dict(hidden=64, heads=4, q_lora_rank=None))]
    VALIDATION_MLA = {"tiny_mla_noq"}
    MLA_COMMON = dict(kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8)
    MOE_PREFILL_TRAIN, MOE_PREFILL_VAL, MOE_DECODE_TRAIN, MOE_DECODE_VAL = (32,), (16,), (2,), (3,)
    MLA_PREFILL_TRAIN, MLA_PREFILL_VAL = [(1, 16)], [(2, 8)]
    MLA_DECODE_TRAIN, MLA_DECODE_VAL = [(2, 16)], [(1, 8)]


def moe_cfg(name):
    for n, h, f, e, k in MOE_CONFIGS:
        if n == name:
            return h, f, e, k
    raise KeyError(name)


def mla_cfg(name):
    for n, d in MLA_CONFIGS:
        if n == name:
            return {**d, **MLA_COMMON}
    raise KeyError(name)


def plan(quick):
    """[(tier, kind, shape)] in timing order; shape carries `config` and `set`."""
    pts = {"moe": [], "mla_prefill": [], "mla_decode": [], "grouped_mm": []}
    if quick:
        pts["moe"] = [moe_shape("qwen3_30b_a3b", 256, "prefill", 1.0), moe_shape("mixtral_8x7b", 8, "decode", 1.0),
                      moe_shape("olmoe_like", 1024, "prefill", 3.0)]
        pts["mla_prefill"] = [mla_shape("deepseek_v2_lite", "prefill", 1, 512)]
        pts["mla_decode"] = [mla_shape("deepseek_v3", "decode", 4, 1024)]
        pts["grouped_mm"] = [gmm_shape("qwen3_30b_a3b", 256, "gate_up")]
        return [(0, k, s) for k, v in pts.items() for s in v]
    for n, h, f, e, k in MOE_CONFIGS:
        val = n in VALIDATION_MOE
        for t in (MOE_PREFILL_VAL if val else MOE_PREFILL_TRAIN):
            pts["moe"].append(moe_shape(n, t, "prefill", 1.0))
        for b in (MOE_DECODE_VAL if val else MOE_DECODE_TRAIN):
            pts["moe"].append(moe_shape(n, b, "decode", 1.0))
        for t in (GMM_VAL_TOKENS if val else GMM_TRAIN_TOKENS):
            for which in ("gate_up", "down"):
                pts["grouped_mm"].append(gmm_shape(n, t, which))
    for n, t, imb in MOE_IMBALANCED:
        pts["moe"].append(moe_shape(n, t, "prefill", imb))
    for n, _ in MLA_CONFIGS:
        val = n in VALIDATION_MLA
        for b, s in (MLA_PREFILL_VAL if val else MLA_PREFILL_TRAIN):
            pts["mla_prefill"].append(mla_shape(n, "prefill", b, s))
        for b, c in (MLA_DECODE_VAL if val else MLA_DECODE_TRAIN):
            pts["mla_decode"].append(mla_shape(n, "decode", b, c))
    out = []
    for tier in (0, 1):
        for kind in ("moe", "mla_prefill", "mla_decode", "grouped_mm"):
            for i, s in enumerate(pts[kind]):
                if i % 2 == tier:
                    out.append((tier, kind, s))
    return out


def plan_supplement(quick):
    """The second run: MoE MLPs of tokens already routed (`moe_routed`, balanced, combine without
    atomics) and the absorbed MLA decode with a split latent cache (`cache: "split"`)."""
    pts = {"moe_routed": [], "mla_decode": []}
    for n, h, f, e, k in (MOE_CONFIGS[:2] if quick else MOE_CONFIGS):
        val = n in VALIDATION_MOE
        for t in ((16,) if quick else (MOE_ROUTED_VAL if val else MOE_ROUTED_TRAIN)):
            s = moe_shape(n, t, "routed", 1.0)
            pts["moe_routed"].append(s)
    for n, _ in (MLA_CONFIGS[:1] if quick else MLA_CONFIGS):
        val = n in VALIDATION_MLA
        for b, c in ((MLA_DECODE_TRAIN[:1]) if quick else (MLA_DECODE_VAL if val else MLA_DECODE_TRAIN)):
            s = mla_shape(n, "decode", b, c)
            s["cache"] = "split"
            pts["mla_decode"].append(s)
    out = []
    for tier in (0, 1):
        for kind in ("moe_routed", "mla_decode"):
            for i, s in enumerate(pts[kind]):
                if i % 2 == tier:
                    out.append((tier, kind, s))
    return out


def moe_shape(name, tokens, phase, imbalance):
    h, f, e, k = moe_cfg(name)
    return {"config": name, "set": "validation" if name in VALIDATION_MOE else "train", "tokens": tokens,
            "hidden": h, "expert_ffn": f, "experts": e, "top_k": k, "phase": phase,
            "routing": "router" if phase == "decode" else ("balanced" if imbalance <= 1.0 else "imbalanced"),
            **({"combine": "unpermute_sum", "router": False} if phase == "routed" else {}),
            "imbalance": imbalance}


def gmm_shape(name, tokens, which):
    h, f, e, k = moe_cfg(name)
    rows = tokens * k
    n, kk = (2 * f, h) if which == "gate_up" else (h, f)
    return {"config": name, "set": "validation" if name in VALIDATION_MOE else "train", "tokens": tokens,
            "rows": rows, "groups": e, "N": n, "K": kk, "gemm": which, "top_k": k}


def mla_shape(name, phase, b, n):
    a = mla_cfg(name)
    s = {"config": name, "set": "validation" if name in VALIDATION_MLA else "train", **a, "batch": b}
    if phase == "prefill":
        s["seq_len"] = n
    else:
        s["context"] = n
    return s


def est_gb(kind, s):
    if kind in ("moe", "moe_routed"):
        T, H, F, E, k = s["tokens"], s["hidden"], s["expert_ffn"], s["experts"], s["top_k"]
        return (K.moe_weight_bytes(H, F, E) + 2 * T * k * (3 * H + 6 * F) + 16 * T * E) / 1e9
    if kind == "grouped_mm":
        return 2 * (s["rows"] * s["K"] + s["groups"] * s["N"] * s["K"] + s["rows"] * s["N"]) / 1e9
    a = s
    wb = K.mla_weight_bytes(a)
    H = a["heads"]
    if kind == "mla_prefill":
        T = s["batch"] * s["seq_len"]
        return (wb + 2 * T * (H * (192 * 3 + 128 * 3) + 4 * a["hidden"])) / 1e9
    return (wb + 2 * s["batch"] * (s["context"] + 1) * 576 + 8 * s["batch"] * H * (s["context"] + 1)) / 1e9


# ----------------------------------------------------------------------------
# builders: (fn, make_args(i), extra fields, working-set bytes of one arg set)
# ----------------------------------------------------------------------------

def build(kind, s, empty=False, compiled=True):
    import torch
    comp = (lambda f: torch.compile(f, dynamic=False)) if compiled else (lambda f: f)
    bf = torch.bfloat16
    gen = torch.Generator(device=K.DEV)
    gen.manual_seed(1234)
    if kind == "moe":
        T, H, F, E, k = s["tokens"], s["hidden"], s["expert_ffn"], s["experts"], s["top_k"]
        decode = s["phase"] == "decode"
        fn = comp(K.make_moe_fn(k, F, decode))
        ids = K.balanced_ids(T, k, E, s["imbalance"], seed=7)
        ws = K.moe_weight_bytes(H, F, E) + 2 * T * H

        def make(i):
            g = torch.Generator(device=K.DEV)
            g.manual_seed(100 + i)
            wr, w13t, w2t = K.moe_weights(H, F, E, gen=g, empty=empty)
            x = torch.empty(T, H, device=K.DEV, dtype=bf)
            if not empty:
                x.normal_(generator=g)
            return (x, wr, w13t, w2t, ids)
        return fn, make, {}, ws
    if kind == "moe_routed":
        T, H, F, E, k = s["tokens"], s["hidden"], s["expert_ffn"], s["experts"], s["top_k"]
        fn = comp(K.make_moe_routed_fn(k, F))
        ids = K.balanced_ids(T, k, E, 1.0, seed=7)
        ws = 2 * 3 * E * H * F + 2 * T * H
        gw = torch.Generator(device=K.DEV)
        gw.manual_seed(77)
        topv = torch.rand(T, k, device=K.DEV, generator=gw) + 0.1
        topv = topv / topv.sum(-1, keepdim=True)

        def make(i):
            g = torch.Generator(device=K.DEV)
            g.manual_seed(500 + i)
            _, w13t, w2t = K.moe_weights(H, F, E, gen=g, empty=empty)
            x = torch.empty(T, H, device=K.DEV, dtype=bf)
            if not empty:
                x.normal_(generator=g)
            return (x, w13t, w2t, topv, ids)
        return fn, make, {}, ws
    if kind == "grouped_mm":
        rows, E, N, Kd = s["rows"], s["groups"], s["N"], s["K"]
        fn = K.grouped_mm_fn()
        offs, per = K.balanced_offs(rows, E)

        def make(i):
            g = torch.Generator(device=K.DEV)
            g.manual_seed(200 + i)
            a = torch.empty(rows, Kd, device=K.DEV, dtype=bf)
            w = torch.empty(E, N, Kd, device=K.DEV, dtype=bf)
            if not empty:
                a.normal_(generator=g)
                w.normal_(0.0, Kd ** -0.5, generator=g)
            return (a, w.transpose(1, 2), offs)
        return fn, make, {"rows_per_group_max": max(per), "groups_with_rows": sum(1 for p in per if p > 0)}, \
            2 * (rows * Kd + E * N * Kd + rows * N)
    a = s
    if kind == "mla_prefill":
        B, S = s["batch"], s["seq_len"]
        fn = comp(K.make_mla_prefill_fn(a))
        cos, sin = K.rope_tables(list(range(S)), a["qk_rope_head_dim"])
        ws = K.mla_weight_bytes(a) + 2 * B * S * a["hidden"]

        def make(i):
            g = torch.Generator(device=K.DEV)
            g.manual_seed(300 + i)
            W = K.mla_weights(a, gen=g, empty=empty)
            x = torch.empty(B, S, a["hidden"], device=K.DEV, dtype=bf)
            if not empty:
                x.normal_(generator=g)
            return (x, W, cos, sin)
        return fn, make, {}, ws
    B, Cx = s["batch"], s["context"]
    if s.get("cache") == "split":
        fn = comp(K.make_mla_decode_split_fn(a, Cx))
        cos, sin = K.rope_tables([Cx], a["qk_rope_head_dim"])
        kl, dr = a["kv_lora_rank"], a["qk_rope_head_dim"]
        ws = K.mla_weight_bytes(a) + 2 * B * (Cx + 1) * (kl + dr)

        def make(i):
            g = torch.Generator(device=K.DEV)
            g.manual_seed(600 + i)
            W = K.mla_weights(a, gen=g, empty=empty)
            x = torch.empty(B, a["hidden"], device=K.DEV, dtype=bf)
            ckv = torch.empty(B, Cx + 1, kl, device=K.DEV, dtype=bf)
            kpe = torch.empty(B, Cx + 1, dr, device=K.DEV, dtype=bf)
            if not empty:
                x.normal_(generator=g)
                ckv.normal_(generator=g)
                kpe.normal_(generator=g)
            return (x, W, ckv, kpe, cos, sin)
        return fn, make, {}, ws
    fn = comp(K.make_mla_decode_fn(a, Cx))
    cos, sin = K.rope_tables([Cx], a["qk_rope_head_dim"])
    lat = a["kv_lora_rank"] + a["qk_rope_head_dim"]
    ws = K.mla_weight_bytes(a) + 2 * B * (Cx + 1) * lat

    def make(i):
        g = torch.Generator(device=K.DEV)
        g.manual_seed(400 + i)
        W = K.mla_weights(a, gen=g, empty=empty)
        x = torch.empty(B, a["hidden"], device=K.DEV, dtype=bf)
        cache = torch.empty(B, Cx + 1, lat, device=K.DEV, dtype=bf)
        if not empty:
            x.normal_(generator=g)
            cache.normal_(generator=g)
        return (x, W, cache, cos, sin)
    return fn, make, {}, ws


def compile_one(job):
    import torch
    torch._dynamo.reset()
    fn, make, _, _ = build(job["kind"], job["shape"], empty=True)
    a = make(0)
    with torch.no_grad():
        fn(*a)
        fn(*a)
    if K.DEV == "cuda":
        torch.cuda.synchronize()


class MemoryBudget:
    """GPU memory shared by the pre-compile workers: a job reserves its estimate (GB) in a
    flock-protected counter file and waits while the others' reservations leave too little."""

    def __init__(self, path, budget_gb):
        self.path, self.budget = path, budget_gb

    def _update(self, delta, only_if_fits):
        with open(self.path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            text = f.read().strip()
            used = float(text) if text else 0.0
            if only_if_fits and used > 0 and used + delta > self.budget:
                fcntl.flock(f, fcntl.LOCK_UN)
                return False
            f.seek(0)
            f.truncate()
            f.write(repr(max(0.0, used + delta)))
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
            return True

    def acquire(self, gb):
        while not self._update(gb, True):
            time.sleep(0.2)

    def release(self, gb):
        self._update(-gb, False)


def run_worker(jobs_path, claim_dir, worker_id):
    """Claims jobs by exclusive files; each holds its memory estimate in the shared budget."""
    import gc
    import torch
    C.setup_torch()
    with open(jobs_path) as f:
        jobs = json.load(f)
    out = open(os.path.join(claim_dir, f"worker{worker_id}.jsonl"), "a")
    budget = MemoryBudget(os.path.join(claim_dir, "memory_gb"), WORKER_MEMORY_GB)
    for i, job in enumerate(jobs):
        try:
            fd = os.open(os.path.join(claim_dir, f"claim_{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
        except FileExistsError:
            continue
        gb = min(WORKER_MEMORY_GB, 1.3 * job["gb"] + 0.5)
        t0 = time.time()
        budget.acquire(gb)
        waited = time.time() - t0
        err = None
        try:
            compile_one(job)
        except Exception as e:  # noqa: BLE001
            err = C.err_text(e)
        finally:
            gc.collect()
            if K.DEV == "cuda":
                torch.cuda.empty_cache()
            budget.release(gb)
        rec = {"i": i, "job": {k: v for k, v in job.items() if k != "gb"}, "compile_s": round(time.time() - t0 - waited, 3),
               "waited_s": round(waited, 3), "worker": worker_id, "gb": round(job["gb"], 2)}
        if err:
            rec["error"] = err
        out.write(json.dumps(rec) + "\n")
        out.flush()
        print(f"[w{worker_id}] {i:3d} {rec['compile_s']:6.1f}s (waited {waited:.1f}s) {job['kind']} "
              f"{json.dumps(job['shape'])[:100]}" + (f"  ERROR {err[:300]}" if err else ""), flush=True)
    out.close()


def profile_graph(g):
    """Kernels of one replay (CUPTI): [(name, count, us)] largest first, and the total."""
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
    return [[name[:120], c, round(t, 2)] for name, (c, t) in top[:16]], sum(c for _, (c, _) in top), \
        round(sum(t for _, (_, t) in top), 2)


def probe(env, log):
    """torch._grouped_mm: exists? convention (2D a [M,K], 3D b [E,K,N] column-major view, int32 ends)? error?"""
    import torch
    rec = {"kind": "grouped_mm_probe", "set": "micro", "truth": "moe_mla", **env,
           "has_grouped_mm": hasattr(torch, "_grouped_mm")}
    try:
        E, Kd, N = 4, 256, 384
        a = torch.randn(96, Kd, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(E, N, Kd, device="cuda", dtype=torch.bfloat16) * Kd ** -0.5
        ends = [16, 48, 48, 96]
        offs = torch.tensor(ends, device="cuda", dtype=torch.int32)
        y = torch._grouped_mm(a, w.transpose(1, 2), offs=offs)
        lo, parts = 0, []
        for e, hi in enumerate(ends):
            parts.append(torch.mm(a[lo:hi], w[e].t()))
            lo = hi
        ref = torch.cat(parts).float()
        rec["convention"] = ("torch._grouped_mm(a[M,K] bf16, w[E,N,K].transpose(1,2), offs=int32 cumulative row ends [E])"
                             " -> [M,N]; an empty group (equal ends) allowed")
        rec["out_shape"] = list(y.shape)
        rec["rel_err_vs_loop"] = C.fnum(((y.float() - ref).norm() / ref.norm()).item(), 6)
        try:
            import inspect
            rec["signature"] = str(inspect.signature(torch._grouped_mm))
        except Exception as e:  # noqa: BLE001
            rec["signature"] = f"unavailable ({type(e).__name__})"
        # unaligned offsets (not multiples of 16 rows): allowed?
        y2 = torch._grouped_mm(a[:93], w.transpose(1, 2), offs=torch.tensor([5, 40, 41, 93], device="cuda",
                                                                              dtype=torch.int32))
        rec["odd_offsets_ok"] = bool(torch.isfinite(y2).all().item())
    except Exception as e:  # noqa: BLE001
        rec["error"] = C.err_text(e)
    log(f"probe: {json.dumps({k: v for k, v in rec.items() if k not in env})}")
    return rec


def rel_err_vs_eager(kind, s, fn, args):
    import torch
    if kind == "moe":
        ref = K.make_moe_fn(s["top_k"], s["expert_ffn"], s["phase"] == "decode")
    elif kind == "moe_routed":
        ref = K.make_moe_routed_fn(s["top_k"], s["expert_ffn"])
    elif kind == "mla_decode" and s.get("cache") == "split":
        ref = K.make_mla_decode_split_fn(s, s["context"])
    elif kind == "mla_prefill":
        ref = K.make_mla_prefill_fn(s)
    else:
        ref = K.make_mla_decode_fn(s, s["context"])
    with torch.no_grad():
        y = fn(*args).float()
        yr = ref(*args).float()
    return C.fnum(((y - yr).norm() / yr.norm().clamp_min(1e-30)).item(), 6)


def eager_loop(fn, args, rounds=5):
    """Fallback timing (only when graph capture fails): median of `rounds` rounds of n eager calls."""
    import statistics
    import torch
    import timing as T
    t = T.eager_estimate_ms(fn, args)
    n = int(max(3, min(200, math.ceil(20.0 / max(t, 1e-3)))))
    meds = []
    for _ in range(rounds):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(n):
            fn(*args)
        e1.record()
        torch.cuda.synchronize()
        meds.append(e0.elapsed_time(e1) / n)
    med = statistics.median(meds)
    return {"median_ms": med, "times_ms": meds, "rounds": rounds, "replays_per_round": n, "calls_per_replay": 1,
            "buffers": 1, "timing": "eager_loop", "output_finite": True,
            "spread": C.fnum((max(meds) - min(meds)) / med, 4)}


def measure(kind, s, env, pre, log, profile_it):
    import torch
    import decode_micro as DM
    import timing as T
    rec = {"kind": kind, "set": s["set"], "truth": "moe_mla", **env,
           "shape": {k: v for k, v in s.items() if k not in ("set",)}, "compiled": kind in COMPILED_KINDS}
    if pre is not None:
        rec["precompile_s"] = pre.get("compile_s")
        if pre.get("error"):
            rec["precompile_error"] = pre["error"][:300]
    try:
        if kind in COMPILED_KINDS:
            torch._dynamo.reset()
            from torch._dynamo.utils import counters
            counters.clear()
        t0 = time.time()
        fn, make, extra, ws = build(kind, s)
        rec.update(extra)
        first = make(0)
        with torch.no_grad():
            out = fn(*first)
        torch.cuda.synchronize()
        rec["compile_s"] = round(time.time() - t0, 3)
        if kind == "moe":
            ids = None
            if s["phase"] == "decode":
                wr = first[1]
                probs = torch.softmax(torch.nn.functional.linear(first[0], wr).float(), -1)
                ids = torch.topk(probs, s["top_k"], -1).indices
            else:
                ids = first[4]
            rows = torch.bincount(ids.reshape(-1), minlength=s["experts"]).tolist()
            rec.update(K.moe_counts(s["tokens"], s["hidden"], s["expert_ffn"], s["experts"], s["top_k"], rows))
            if s["phase"] == "decode":
                e, k, b = s["experts"], s["top_k"], s["tokens"]
                rec["experts_touched_expected"] = C.fnum(e * (1 - (1 - k / e) ** b), 3)
        elif kind == "moe_routed":
            rows = torch.bincount(first[4].reshape(-1), minlength=s["experts"]).tolist()
            c = K.moe_counts(s["tokens"], s["hidden"], s["expert_ffn"], s["experts"], s["top_k"], rows)
            c["flops"] = c.pop("gemm_flops")
            c.pop("router_flops")
            c["bytes"] -= 2 * s["experts"] * s["hidden"]
            rec.update(c)
        elif kind == "grouped_mm":
            rows, E, N, Kd = s["rows"], s["groups"], s["N"], s["K"]
            rec["flops"] = 2 * rows * N * Kd
            touched = rec["groups_with_rows"]
            rec["bytes"] = 2 * (rows * Kd + touched * N * Kd + rows * N)
        elif kind == "mla_prefill":
            proj, attn = K.mla_flops_prefill(s, s["batch"], s["seq_len"])
            rec.update({"flops": proj + attn, "gemm_flops": proj, "attn_flops": attn,
                        "bytes": K.mla_weight_bytes(s) + 2 * 2 * s["batch"] * s["seq_len"] * s["hidden"]})
            x, W, cos, sin = first
            H, dn, dr, dv = s["heads"], s["qk_nope_head_dim"], s["qk_rope_head_dim"], s["v_head_dim"]
            q = torch.empty(s["batch"], H, s["seq_len"], dn + dr, device="cuda", dtype=torch.bfloat16)
            v = torch.empty(s["batch"], H, s["seq_len"], dv, device="cuda", dtype=torch.bfloat16)
            rec["sdpa_backend"] = K.sdpa_backend(q, q, v, True)
            del q, v
        else:
            keys = s["context"] + 1
            proj, attn = K.mla_flops_decode(s, s["batch"], keys)
            lat = s["kv_lora_rank"] + s["qk_rope_head_dim"]
            rec.update({"flops": proj + attn, "gemm_flops": proj, "attn_flops": attn, "kv_tokens_attended": keys,
                        "latent_cache_bytes": 2 * s["batch"] * keys * lat,
                        "bytes": K.mla_weight_bytes(s) + 2 * s["batch"] * keys * lat})
        if kind != "grouped_mm" and est_gb(kind, s) < 40:
            try:
                rec["rel_err_vs_eager"] = rel_err_vs_eager(kind, s, fn, first)
            except Exception as e:  # noqa: BLE001
                rec["rel_err_vs_eager_error"] = C.err_text(e)[:200]
        del out
        try:
            with torch.no_grad():
                rec.update(DM.bench(fn, lambda i: first if i == 0 else make(i), ws, env["l2_bytes"], False,
                                    max_buf=64, max_calls=400))
            rec["timing"] = "cuda_graph"
        except Exception as e:  # noqa: BLE001
            # not capturable: time eager calls between events instead, and say so
            rec["graph_error"] = C.err_text(e)[:300]
            torch.cuda.synchronize()
            with torch.no_grad():
                rec.update(eager_loop(fn, first))
        rec["rotated_bytes"] = int(rec.get("rotated_bytes", 0))
        ms = rec["median_ms"]
        if rec.get("flops"):
            rec["tflops"] = C.fnum(rec["flops"] / (ms * 1e9), 3)
        if rec.get("bytes"):
            rec["gbps"] = C.fnum(rec["bytes"] / (ms * 1e6), 1)
        if kind in COMPILED_KINDS:
            from torch._dynamo.utils import counters
            rec["graph_breaks"] = sum(counters.get("graph_break", {}).values())
            rec["unique_graphs"] = dict(counters.get("stats", {})).get("unique_graphs")
        if profile_it:
            try:
                with torch.no_grad():
                    g = T.capture(fn, [first], 1)
                rec["kernels"], rec["kernels_per_call"], rec["kernel_us_total"] = profile_graph(g)
                del g
            except Exception as e:  # noqa: BLE001
                rec["profile_error"] = C.err_text(e)[:200]
        del first
    except Exception as e:  # noqa: BLE001
        rec["median_ms"] = None
        rec["error"] = C.err_text(e)
        log("    " + traceback.format_exc().replace("\n", " | ")[-700:])
    torch.cuda.empty_cache()
    return rec


def precompile(jobs, workers, deadline, out_dir, log, stem="moe-mla"):
    import subprocess
    import tempfile
    claim_dir = tempfile.mkdtemp(prefix="nas_moe_precompile_")
    jobs_path = os.path.join(claim_dir, "jobs.json")
    with open(jobs_path, "w") as f:
        json.dump(jobs, f)
    env = dict(os.environ)
    env["TORCHINDUCTOR_COMPILE_THREADS"] = str(max(1, (os.cpu_count() or 8) // max(1, workers)))
    procs = []
    for w in range(workers):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--jobs", jobs_path, "--claim-dir", claim_dir,
               "--worker-id", str(w)]
        logf = open(os.path.join(claim_dir, f"worker{w}.log"), "w")
        procs.append((subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT), logf))
    timed_out = False
    while any(p.poll() is None for p, _ in procs):
        if time.time() > deadline:
            timed_out = True
            for p, _ in procs:
                if p.poll() is None:
                    p.kill()  # our own child, by its handle
            break
        time.sleep(0.5)
    for p, logf in procs:
        try:
            p.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        logf.close()
    with open(os.path.join(out_dir, f"{stem}-precompile-log.txt"), "w") as agg:
        for w in range(workers):
            lp = os.path.join(claim_dir, f"worker{w}.log")
            if os.path.exists(lp):
                agg.write(f"===== worker {w}\n" + open(lp).read()[-200000:])
    done = {}
    for w in range(workers):
        path = os.path.join(claim_dir, f"worker{w}.jsonl")
        if os.path.exists(path):
            for line in open(path):
                try:
                    r = json.loads(line)
                    done[r["i"]] = r
                except Exception:  # noqa: BLE001
                    pass
    with open(os.path.join(out_dir, f"{stem}-precompile.jsonl"), "w") as f:
        for i in sorted(done):
            f.write(json.dumps(done[i]) + "\n")
    errs = [r for r in done.values() if r.get("error")]
    log(f"pre-compile: {len(done)}/{len(jobs)} jobs by {workers} workers, {len(errs)} errors"
        + (" (stopped at its deadline)" if timed_out else ""))
    for r in errs[:6]:
        log(f"  pre-compile error: {json.dumps(r['job'])[:120]}: {r['error'][:300]}")
    return done


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "moe_out"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--budget-s", type=float, default=330.0, help="soft: no new point past it")
    p.add_argument("--precompile-s", type=float, default=110.0, help="pre-compile stops at this many seconds")
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--supplement", action="store_true", help="the second run: moe_routed and the split-cache MLA decode")
    p.add_argument("--worker", action="store_true")
    p.add_argument("--jobs")
    p.add_argument("--claim-dir")
    p.add_argument("--worker-id", type=int, default=0)
    a = p.parse_args()
    C.set_env_defaults()
    if a.worker:
        return run_worker(a.jobs, a.claim_dir, a.worker_id)
    T0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    stem = "moe-mla-supplement" if a.supplement else "moe-mla"
    log = C.Log(os.path.join(a.out, f"{stem}-log.txt"))
    pts = plan_supplement(a.quick) if a.supplement else plan(a.quick)
    counts = {}
    for _, k, s in pts:
        key = f"{k}/{s['set']}"
        counts[key] = counts.get(key, 0) + 1
    log(f"moe_mla: {len(pts)} points {counts}; budget {a.budget_s:.0f}s; validation MoE {sorted(VALIDATION_MOE)}, "
        f"MLA {sorted(VALIDATION_MLA)}")
    pre = {}
    cj = [(i, {"kind": k, "shape": s, "gb": est_gb(k, s)}) for i, (_, k, s) in enumerate(pts) if k in COMPILED_KINDS]
    if a.workers > 0 and cj:
        done = precompile([j for _, j in cj], a.workers, T0 + a.precompile_s, a.out, log, stem)
        for n, (i, _) in enumerate(cj):
            if n in done:
                pre[i] = done[n]
    import torch
    C.setup_torch()
    env = C.env_info()
    log(json.dumps(env))
    C.warm_clocks()
    wm = C.Writer(os.path.join(a.out, "moe-routed.jsonl" if a.supplement else "moe.jsonl"))
    wl = C.Writer(os.path.join(a.out, "mla-decode-split.jsonl" if a.supplement else "mla.jsonl"))
    if not a.supplement:
        wm.write(probe(env, log))
    skipped, recs = [], []
    for i, (tier, k, s) in enumerate(pts):
        if time.time() - T0 > a.budget_s:
            skipped.append((tier, k, s))
            continue
        rec = measure(k, s, env, pre.get(i), log, profile_it=(k in COMPILED_KINDS and tier == 0 and not a.no_profile))
        (wl if k.startswith("mla") else wm).write(rec)
        recs.append(rec)
        ms = rec.get("median_ms")
        tag = json.dumps({kk: s[kk] for kk in s if kk in ("config", "tokens", "phase", "imbalance", "batch", "seq_len",
                                                         "context", "gemm")})
        if ms is None:
            log(f"{i + 1:4d} {k} {tag} ERROR {rec.get('error', '')[:300]}")
        else:
            log(f"{i + 1:4d} t{tier} {k:12s} {s['set'][:5]} {tag:90s} {ms * 1e3:10.2f} us"
                + (f" {rec['tflops']:7.1f} TF/s" if rec.get("tflops") else "")
                + (f" {rec['gbps']:7.0f} GB/s" if rec.get("gbps") else "")
                + f" buf {rec['buffers']} calls {rec['calls_per_replay']} spread {rec['spread']}"
                + (f" touched {rec['experts_touched']}/{s['experts']}" if k.startswith("moe") else "")
                + (f" {rec.get('sdpa_backend')}" if k == "mla_prefill" else "")
                + (f" err {rec.get('rel_err_vs_eager')}" if rec.get("rel_err_vs_eager") is not None else "")
                + (f" breaks {rec.get('graph_breaks')}" if rec.get("graph_breaks") else "")
                + ("" if rec.get("output_finite", True) else " NONFINITE"))
    for t, k, s in skipped:
        log(f"  skipped (budget): t{t} {k} {json.dumps(s)[:150]}")
    ok = [r for r in recs if r.get("median_ms")]
    log(f"done: {len(ok)}/{len(pts)} measured, {len(recs) - len(ok)} errors, {len(skipped)} skipped (budget); "
        f"wall {time.time() - T0:.0f}s")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
