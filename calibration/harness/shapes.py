"""Shape lists for the calibration harness.

Layer shapes are tuples in the order of LAYER_KEYS:
    (hidden_dim, num_heads, num_kv_heads, head_dim, ffn_dim, seq_len, batch_size,
     use_qk_norm, window_size)
window_size None means full causal attention (SDPA); an int means a causal
sliding window of that many keys (the query itself included), run through
flex_attention.

TRAIN and VALIDATION never share a shape (checked by check_sets()).
"""

LAYER_KEYS = (
    "hidden_dim", "num_heads", "num_kv_heads", "head_dim", "ffn_dim",
    "seq_len", "batch_size", "use_qk_norm", "window_size",
)

T, F = True, False

#   D     H   Hkv  Dh    F      S      B  qk  window
TRAIN = [
    # tiny layers
    (512,   8,  8,  64,  2048,   128,  1, F, None),
    (512,   8,  2,  64,  1536,   256,  1, T, None),
    (768,  12,  4,  64,  3072,   512,  1, F, None),
    (1024, 16,  4,  64,  4096,   256,  2, F, None),
    (1024,  8,  8, 128,  2816,   512,  1, T, None),
    (640,  10,  2,  64,  2560,   384,  1, F, None),
    (1024,  8,  1, 128,  4096,   128,  4, F, None),
    # unaligned hidden / ffn, odd head dims
    (1000, 10,  2, 100,  5000,  1024,  1, F, None),
    (1152,  4,  1, 256,  6912,  1024,  1, T, 512),
    (1152,  4,  1, 256,  6912,  2048,  1, T, None),
    (2000, 16,  4, 128,  5000,  2048,  1, F, None),
    (2304,  8,  4, 256,  9216,  2048,  1, F, None),
    (2304,  8,  4, 256,  9000,  1024,  2, T, 512),
    (3000, 24,  8, 128, 11008,  1024,  1, F, None),
    (3000, 20,  5,  96,  9000,  2048,  1, T, None),
    (2048, 32,  4,  64,  5632,  2048,  1, F, None),
    (2560, 20,  4, 128,  6912,  1024,  1, F, None),
    (1536, 12,  2, 128,  8960,  1024,  1, F, None),
    (1536, 16, 16,  96,  6144,   512,  4, T, None),
    (2048, 16,  8, 100,  6000,  2048,  1, T, None),
    (1024, 16,  8,  64,  3000,  4096,  1, F, 1024),
    # mid-size / head-dim and GQA coverage
    (4096, 32, 32, 128, 11008,  2048,  1, F, None),
    (4096, 32,  8, 128, 14336,  2048,  1, F, None),
    (4096, 32,  8, 128, 14336,  4096,  1, T, None),
    (3072, 24,  8, 128,  8192,  2048,  1, F, None),
    (3840, 16,  8, 256, 15360,  8192,  1, T, 4096),
    # long sequences, with and without windows
    (2048, 16,  4, 128,  8192,  4096,  1, F, None),
    (2048, 16,  4, 128,  8192,  8192,  1, F, None),
    (2048, 16,  4, 128,  8192, 16384,  1, F, None),
    (2048, 16,  4, 128,  8192, 16384,  1, F, 1024),
    (2048, 16,  4, 128,  8192,  8192,  1, F, 512),
    (4096, 32,  8, 128, 14336, 16384,  1, F, 4096),
    (4096, 32,  8, 128, 14336,  8192,  1, F, None),
    (1152,  4,  1, 256,  6912, 16384,  1, T, 512),
    (2560,  8,  4, 256, 10240,  8192,  1, T, 1024),
    (1536, 12,  2, 128,  8960,  8192,  1, F, 4096),
    # batch > 1
    (4096, 32,  8, 128, 14336,  1024,  2, F, None),
    (4096, 32,  8, 128, 14336,  1024,  8, F, None),
    (2048, 32,  4,  64,  5632,  2048,  4, F, None),
    (1024, 16,  4,  64,  4096,  1024,  8, T, None),
    (2304,  8,  4, 256,  9216,  4096,  2, T, 1024),
    (3000, 24,  8, 128, 11008,   512,  4, F, None),
    # big layers
    (8192, 64,  8, 128, 28672,  2048,  1, F, None),
    (8192, 64,  8, 128, 28672,  4096,  1, F, None),
    (6144, 48,  8, 128, 16384,  4096,  1, T, None),
    (4096, 32,  4, 128, 14336,  4096,  1, T, None),
    (7168, 56,  8, 128, 20480,  2048,  1, F, None),
    (5376, 32, 16, 128, 21504,  2048,  1, T, 1024),
    (2048,  8,  1, 256, 16384,  2048,  1, F, None),
]

#   D     H   Hkv  Dh    F      S      B  qk  window
VALIDATION = [
    (896,  14,  2,  64,  4864,   256,  1, F, None),
    (768,  12, 12,  64,  3072,   384,  2, F, None),
    (960,  15,  5,  64,  2560,   512,  1, T, None),
    (512,   8,  4,  64,  1408,   200,  1, T, None),
    (1792, 14,  2, 128,  4864,  1536,  1, F, None),
    (2816, 22, 11, 128,  7000,  2048,  1, F, None),
    (3584, 28,  4, 128, 18944,  3000,  1, F, None),
    (5120, 40,  8, 128, 13824,  2048,  1, F, None),
    (5120, 40,  8, 128, 17408,  4096,  1, T, None),
    (2048, 20,  4, 100,  5504,  2048,  1, F, None),
    (1600, 16,  8, 100,  4000,  1000,  1, T, None),
    (2304, 24,  8,  96,  9216,  3000,  1, F, None),
    (1280, 20,  4,  64,  5120,   768,  3, F, None),
    (3072, 16, 16, 256, 24576,  2048,  1, F, None),
    (2000, 16,  2,  96,  7777,   640,  2, F, None),
    (2048, 16,  4, 128,  8192,  6144,  1, F, None),
    (2048, 16,  4, 128,  8192, 12288,  1, F, 2048),
    (4096, 32,  8, 128, 14336, 12288,  1, F, None),
    (1152,  4,  1, 256,  6912,  6144,  1, T, 2048),
    (3584, 16,  8, 256, 14336,  6144,  1, T, 2048),
    (2560,  8,  4, 256, 10240,  3000,  3, T, 1024),
    (3000, 24,  6, 128, 10000, 10000,  1, F, 1536),
    (1536, 12,  4, 128,  6000,  4096,  2, F, 512),
    (4096, 32, 32, 128, 11008,  4096,  1, F, None),
    (1024, 16,  2,  64,  3500,  2048,  6, F, None),
    (4096, 32,  8, 128, 14336,  1536,  3, F, None),
    (8192, 64,  8, 128, 24576,  3000,  1, F, None),
    (5632, 44,  4, 128, 18000,  2048,  1, F, None),
]

# --quick: a handful of shapes that touch every code path.
QUICK_TRAIN = [
    (1024, 16,  4,  64,  4096,   256,  2, F, None),
    (1152,  4,  1, 256,  6912,  2048,  1, T, 512),
    (4096, 32,  8, 128, 14336,  2048,  1, F, None),
]
QUICK_VALIDATION = [
    (1600, 16,  8, 100,  4000,  1000,  1, T, None),
    (2304, 24,  8,  96,  9216,  3000,  1, F, 2048),
]


# A second training batch, measured after a first fit showed the gap: the
# TRAIN set above has no GEMM whose N or K is not a multiple of 8 (the
# tensor-core alignment), so a fit on it cannot learn what misaligned sizes
# cost inside a compiled layer. Also more tiny layers and batch > 1 windows.
#   D     H   Hkv  Dh    F      S      B  qk  window
SUPPLEMENT_TRAIN = [
    # ffn_dim not a multiple of 8 (gate-up N = 2F and down K = F misaligned)
    (1024, 16,  4,  64,  2750,  1024,  1, F, None),
    (1536, 12,  4, 128,  4099,  2048,  1, F, None),
    (2048, 16,  4, 128,  5461,  1024,  1, T, None),
    (2048, 16,  8, 128,  7001,  2048,  1, F, None),
    (1280, 10,  2, 128,  3413,   512,  2, F, None),
    (3072, 24,  8, 128,  8191,  1024,  1, F, None),
    (1800, 16,  4, 128,  7203,  2048,  1, F, 1024),
    (2560, 20,  4, 128, 10242,  4096,  1, T, None),
    # hidden_dim not a multiple of 8 (every GEMM has it as N or K)
    (1003,  8,  2, 128,  4096,  1024,  1, F, None),
    (1500, 12,  4, 128,  6000,  2048,  1, T, None),
    (2050, 16,  4, 128,  8192,  1024,  2, F, None),
    # tiny layers
    (256,   4,  1,  64,  1024,   128,  1, F, None),
    (512,   8,  2,  64,  2000,   200,  1, T, None),
    (896,   7,  1, 128,  3000,   300,  1, F, None),
    # head_dim 100 (FlashAttention fallback), batch > 1 with a window
    (3200, 32,  8, 100,  8192,  1024,  1, F, None),
    (2048, 16,  4, 128,  8192,  2048,  4, F, 512),
]


# A third training batch: broader coverage of the regimes the first fits
# found hardest (launch-bound tiny layers with batch > 1 and MHA, head_dim
# 96/100 with several GQA groups and lengths, 64-dim heads at medium size).
#   D     H   Hkv  Dh    F      S      B  qk  window
SUPPLEMENT_TRAIN_2 = [
    (640,  10, 10,  64,  2560,   256,  2, F, None),
    (768,  12,  6,  64,  3072,   256,  3, F, None),
    (1024, 16, 16,  64,  4096,   384,  1, T, None),
    (896,  14,  7,  64,  3584,   320,  2, T, None),
    (1152, 18,  6,  64,  4608,   192,  4, F, None),
    (1536, 24,  8,  64,  6144,   640,  1, F, None),
    (384,   6,  6,  64,  1536,   512,  1, F, None),
    (1200, 12,  4, 100,  4800,  1536,  1, F, None),
    (2000, 20, 10, 100,  8000,  2048,  1, F, None),
    (2400, 24,  4, 100,  9600,  1024,  2, F, None),
    (1600, 16,  2, 100,  6400,  4096,  1, T, None),
    (800,   8,  8, 100,  3200,   768,  1, F, None),
    (1920, 20,  5,  96,  7680,  2048,  1, F, None),
    (1536, 16,  4,  96,  6144,  1024,  2, T, None),
    (2304, 24, 24,  96,  9216,  1536,  1, F, None),
    (2560, 40,  8,  64, 10240,  2048,  1, F, None),
    (1792, 28,  4,  64,  7168,  1024,  3, T, None),
    (3072, 48,  8,  64, 12288,  2048,  1, F, 1024),
]


def as_dict(t):
    d = dict(zip(LAYER_KEYS, t))
    d["use_qk_norm"] = bool(d["use_qk_norm"])
    return d


def layer_sets(quick=False, supplement=0):
    if supplement:
        extra = SUPPLEMENT_TRAIN if supplement == 1 else SUPPLEMENT_TRAIN_2
        return [as_dict(t) for t in extra], []
    tr = QUICK_TRAIN if quick else TRAIN
    va = QUICK_VALIDATION if quick else VALIDATION
    return [as_dict(t) for t in tr], [as_dict(t) for t in va]


def check_sets():
    every_train = TRAIN + SUPPLEMENT_TRAIN + SUPPLEMENT_TRAIN_2
    tr, va = set(every_train), set(VALIDATION)
    assert len(tr) == len(every_train), "duplicate train shape"
    assert len(va) == len(VALIDATION), "duplicate validation shape"
    assert not (tr & va), f"train/validation overlap: {tr & va}"
    for t in every_train + VALIDATION:
        d = as_dict(t)
        assert d["num_heads"] % d["num_kv_heads"] == 0, t
        assert d["window_size"] is None or d["window_size"] < d["seq_len"], t
    return len(TRAIN), len(VALIDATION)


# ----------------------------------------------------------------------------
# micro-benchmark grids
# ----------------------------------------------------------------------------

def _dedup(seq):
    out, seen = [], set()
    for s in seq:
        key = tuple(sorted(s.items())) if isinstance(s, dict) else s
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def layer_gemms(layers):
    """The four GEMMs (M, N, K) of each layer: out = x[M,K] @ W[N,K]^T."""
    out = []
    for d in layers:
        m = d["batch_size"] * d["seq_len"]
        D, H, Hkv, Dh, Fd = (d["hidden_dim"], d["num_heads"], d["num_kv_heads"],
                             d["head_dim"], d["ffn_dim"])
        out += [
            {"M": m, "N": (H + 2 * Hkv) * Dh, "K": D, "role": "qkv"},
            {"M": m, "N": D, "K": H * Dh, "role": "o"},
            {"M": m, "N": 2 * Fd, "K": D, "role": "gate_up"},
            {"M": m, "N": D, "K": Fd, "role": "down"},
        ]
    return out


def gemm_grid(quick=False):
    import random
    if quick:
        g = [{"M": s, "N": s, "K": s, "role": "square"} for s in (256, 1000, 4096, 8192)]
        g += [{"M": 2048, "N": 28672, "K": 4096, "role": "sweep"}]
        return g
    g = []
    for s in (64, 128, 256, 384, 512, 768, 1000, 1024, 1553, 2000, 2048, 3000,
              4000, 4096, 4113, 6144, 8192, 12288, 16384):
        g.append({"M": s, "N": s, "K": s, "role": "square"})
    for (n, k) in ((4096, 4096), (28672, 4096), (4096, 14336), (6144, 4096),
                   (1536, 1024), (1024, 1024)):
        for m in (64, 128, 256, 512, 1000, 2048, 4096, 8192, 16384, 32768):
            g.append({"M": m, "N": n, "K": k, "role": "sweep"})
    rng = random.Random(1234)
    n_rand = 0
    while n_rand < 48:
        m = int(round(2 ** rng.uniform(6, 15)))
        n = int(round(2 ** rng.uniform(6, 14.5)))
        k = int(round(2 ** rng.uniform(6, 14.5)))
        if 2.0 * m * n * k > 6e12:
            continue
        g.append({"M": m, "N": n, "K": k, "role": "random"})
        n_rand += 1
    tr, _ = layer_sets(False)
    g += layer_gemms(tr)
    return _dedup_gemm(g)


def _dedup_gemm(g):
    out, seen = [], set()
    for s in g:
        key = (s["M"], s["N"], s["K"])
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def sdpa_grid(quick=False):
    """Full causal attention through SDPA. Keys B, H, Hkv, S, Dh, window=None."""
    def a(B, H, Hkv, S, Dh):
        return {"B": B, "H": H, "Hkv": Hkv, "S": S, "Dh": Dh, "window": None}
    if quick:
        return [a(1, 32, 8, 2048, 128), a(1, 16, 8, 1024, 100), a(1, 16, 8, 4096, 256),
                a(2, 16, 4, 1024, 64), a(1, 24, 8, 2048, 96)]
    g = []
    for Dh in (128, 64, 256, 96, 100):
        H = 32 if Dh <= 128 else 16
        for S in (256, 1024, 4096, 16384):
            g.append(a(1, H, 8, S, Dh))
    for B in (2, 4, 8):
        g.append(a(B, 32, 8, 2048, 128))
    g.append(a(8, 32, 8, 512, 128))
    for Hkv in (32, 16, 4, 1):
        g.append(a(1, 32, Hkv, 4096, 128))
    for S in (1024, 4096, 16384):
        g.append(a(1, 4, 1, S, 256))
    for S in (1000, 3000, 6144, 12288):
        g.append(a(1, 32, 8, S, 128))
    g.append(a(1, 64, 8, 4096, 128))
    g.append(a(4, 16, 4, 2048, 64))
    return _dedup(g)


def flex_grid(quick=False):
    """Attention through compiled flex_attention with a causal (sliding-window) block mask.
    window None here means plain causal through flex (for comparison with SDPA)."""
    def a(B, H, Hkv, S, Dh, W):
        return {"B": B, "H": H, "Hkv": Hkv, "S": S, "Dh": Dh, "window": W}
    if quick:
        return [a(1, 32, 8, 4096, 128, 1024), a(1, 4, 1, 4096, 256, 512)]
    g = []
    for S in (4096, 16384):
        for W in (512, 1024, 4096):
            g.append(a(1, 32, 8, S, 128, W))
    g.append(a(1, 32, 8, 4096, 128, None))
    for W in (1024, 4096):
        g.append(a(1, 16, 8, 8192, 256, W))
    g.append(a(1, 4, 1, 16384, 256, 512))
    g.append(a(1, 16, 4, 4096, 64, 1024))
    g.append(a(2, 32, 8, 4096, 128, 1024))
    g.append(a(1, 24, 8, 4096, 96, 1024))
    return g


def rmsnorm_grid(quick=False):
    if quick:
        return [{"rows": r, "cols": c} for r, c in ((256, 1024), (8192, 4096), (4096, 1152))]
    g = []
    for c in (1024, 2304, 4096, 8192):
        for r in (128, 512, 2048, 8192, 32768):
            g.append({"rows": r, "cols": c})
    g += [{"rows": 4096, "cols": 1000}, {"rows": 4096, "cols": 1152},
          {"rows": 4096, "cols": 5120}, {"rows": 16384, "cols": 3000}]
    return g


def qk_norm_rope_grid(quick=False):
    """Input: the fused qkv GEMM output [tokens, (H+2Hkv)*Dh]; output: rotated q, k."""
    if quick:
        return [{"tokens": 4096, "H": 32, "Hkv": 8, "Dh": 128, "qk_norm": True},
                {"tokens": 1024, "H": 8, "Hkv": 4, "Dh": 256, "qk_norm": False}]
    g = []
    for (H, Hkv, Dh) in ((32, 8, 128), (8, 4, 256), (16, 4, 64)):
        for tok in (512, 4096, 16384):
            for qk in (True, False):
                g.append({"tokens": tok, "H": H, "Hkv": Hkv, "Dh": Dh, "qk_norm": qk})
    return g


def geglu_grid(quick=False):
    """Input [M, 2F] (gate | up), output [M, F] = gelu_tanh(gate) * up."""
    if quick:
        return [{"M": 2048, "F": 14336}, {"M": 256, "F": 5000}]
    g = []
    for Fd in (2048, 5000, 8192, 14336, 28672):
        for m in (256, 2048, 8192, 32768):
            g.append({"M": m, "F": Fd})
    return g


def residual_grid(quick=False):
    if quick:
        return [{"rows": 4096, "cols": 4096}]
    g = []
    for c in (1024, 4096, 8192):
        for r in (128, 2048, 8192, 32768):
            g.append({"rows": r, "cols": c})
    return g


if __name__ == "__main__":
    print("train/validation:", check_sets())
    print("gemm:", len(gemm_grid()), "sdpa:", len(sdpa_grid()), "flex:", len(flex_grid()),
          "rmsnorm:", len(rmsnorm_grid()), "qk_norm_rope:", len(qk_norm_rope_grid()),
          "geglu:", len(geglu_grid()), "residual:", len(residual_grid()))
