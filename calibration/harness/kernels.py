"""What gets measured: the decoder layer and the micro-benchmark kernels.

Every builder returns a Job: a callable, a factory for argument sets (so the
timer can rotate input buffers), and the flop / byte counts used for the
throughput columns.  The same builders run in the pre-compile workers and in
the timing process, so both hand torch.compile identical graphs (and the
timing process hits the on-disk inductor cache the workers filled).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as Fn

BF16 = torch.bfloat16
EPS = 1e-6

try:  # flex_attention is needed for sliding windows only
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    HAVE_FLEX = True
except Exception:  # pragma: no cover - depends on torch version
    HAVE_FLEX = False


# ----------------------------------------------------------------------------
# torch / dynamo settings shared by every process
# ----------------------------------------------------------------------------

def setup_torch():
    import torch._dynamo
    cfg = torch._dynamo.config
    for name in ("cache_size_limit", "recompile_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, 1024)
    for name in ("accumulated_cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, 1 << 16)
    torch.backends.cuda.matmul.allow_tf32 = True  # irrelevant for bf16, set for clarity


def dynamo_counters():
    """Graph count / graph breaks / recompiles recorded by dynamo since the last clear."""
    try:
        from torch._dynamo.utils import counters
        stats = dict(counters.get("stats", {}))
        breaks = sum(counters.get("graph_break", {}).values())
        recompiles = sum(counters.get("recompiles", {}).values()) if "recompiles" in counters else None
        return {"unique_graphs": stats.get("unique_graphs"), "graph_breaks": breaks,
                "recompiles": recompiles}
    except Exception:
        return {}


def clear_dynamo_counters():
    try:
        from torch._dynamo.utils import counters
        counters.clear()
    except Exception:
        pass


# ----------------------------------------------------------------------------
# shared math
# ----------------------------------------------------------------------------

def rms_norm(x, w):
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
    return y.to(x.dtype) * w


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    return x * cos + rotate_half(x) * sin


def rope_tables(S, Dh, device="cuda"):
    inv = 1.0 / (10000.0 ** (torch.arange(0, Dh, 2, device=device, dtype=torch.float32) / Dh))
    t = torch.arange(S, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(BF16), emb.sin().to(BF16)


def window_mask_mod(window):
    if window is None:
        def causal(b, h, q_idx, kv_idx):
            return q_idx >= kv_idx
        return causal

    def sliding(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < window)
    return sliding


def make_block_mask(S, window):
    """Built once per shape, outside the timed graph."""
    mod = window_mask_mod(window)
    try:
        return create_block_mask(mod, None, None, S, S, device="cuda")
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return create_block_mask(mod, None, None, S, S, device="cuda", _compile=True)


def attn_pairs(S, window):
    """Number of (query, key) pairs a causal (sliding-window) attention touches per head."""
    if window is None or window >= S:
        return S * (S + 1) // 2
    w = window
    return w * (w + 1) // 2 + (S - w) * w


# ----------------------------------------------------------------------------
# the decoder layer
# ----------------------------------------------------------------------------

class DecoderLayer(nn.Module):
    def __init__(self, D, H, Hkv, Dh, Fd, use_qk_norm, window):
        super().__init__()
        self.D, self.H, self.Hkv, self.Dh, self.Fd = D, H, Hkv, Dh, Fd
        self.use_qk_norm, self.window = use_qk_norm, window
        self.norm1 = nn.Parameter(torch.ones(D) + 0.1 * torch.randn(D))
        self.qkv = nn.Linear(D, (H + 2 * Hkv) * Dh, bias=False)
        if use_qk_norm:
            self.q_norm = nn.Parameter(torch.ones(Dh) + 0.1 * torch.randn(Dh))
            self.k_norm = nn.Parameter(torch.ones(Dh) + 0.1 * torch.randn(Dh))
        self.o = nn.Linear(H * Dh, D, bias=False)
        self.norm2 = nn.Parameter(torch.ones(D) + 0.1 * torch.randn(D))
        self.gate_up = nn.Linear(D, 2 * Fd, bias=False)
        self.down = nn.Linear(Fd, D, bias=False)

    def forward(self, x, cos, sin, block_mask=None):
        B, S, _ = x.shape
        H, Hkv, Dh = self.H, self.Hkv, self.Dh
        h = rms_norm(x, self.norm1)
        qkv = self.qkv(h)
        q, k, v = qkv.split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
        q = q.view(B, S, H, Dh)
        k = k.view(B, S, Hkv, Dh)
        v = v.view(B, S, Hkv, Dh)
        if self.use_qk_norm:
            q = rms_norm(q, self.q_norm)
            k = rms_norm(k, self.k_norm)
        q = apply_rope(q.transpose(1, 2), cos, sin)
        k = apply_rope(k.transpose(1, 2), cos, sin)
        v = v.transpose(1, 2)
        if self.window is None:
            a = Fn.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            a = flex_attention(q, k, v, block_mask=block_mask, enable_gqa=True)
        a = a.transpose(1, 2).reshape(B, S, H * Dh)
        x = x + self.o(a)
        h = rms_norm(x, self.norm2)
        g, u = self.gate_up(h).chunk(2, dim=-1)
        return x + self.down(Fn.gelu(g, approximate="tanh") * u)


def layer_flops(d):
    B, S, D, H, Hkv, Dh, Fd = (d["batch_size"], d["seq_len"], d["hidden_dim"], d["num_heads"],
                               d["num_kv_heads"], d["head_dim"], d["ffn_dim"])
    gemm = 2 * B * S * (D * (H + 2 * Hkv) * Dh + H * Dh * D + D * 2 * Fd + Fd * D)
    attn = 4 * B * H * Dh * attn_pairs(S, d["window_size"])
    return gemm, attn


def build_layer(d, seed=0):
    """Returns (compiled_fn, args, eager_module)."""
    torch.manual_seed(seed)
    if d["window_size"] is not None and not HAVE_FLEX:
        raise RuntimeError("flex_attention not available in this torch")
    with torch.device("cuda"):  # initialise on the GPU: CPU init of big layers takes seconds
        layer = DecoderLayer(d["hidden_dim"], d["num_heads"], d["num_kv_heads"], d["head_dim"],
                             d["ffn_dim"], d["use_qk_norm"], d["window_size"])
        for p in layer.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=1.0 / math.sqrt(p.shape[1]))
    layer = layer.to(dtype=BF16).eval()
    for p in layer.parameters():
        p.requires_grad_(False)
    x = torch.randn(d["batch_size"], d["seq_len"], d["hidden_dim"], device="cuda", dtype=BF16)
    cos, sin = rope_tables(d["seq_len"], d["head_dim"])
    bm = make_block_mask(d["seq_len"], d["window_size"]) if d["window_size"] is not None else None
    cfn = torch.compile(layer)  # default mode, static shapes
    return cfn, (x, cos, sin, bm), layer


# ----------------------------------------------------------------------------
# micro-benchmark jobs
# ----------------------------------------------------------------------------

class Job:
    """fn(*args) is one call; make_args(i) builds the i-th independent input set."""

    def __init__(self, fn, make_args, flops=0, bytes_=0, ws_bytes=0, compiled=False, extra=None):
        self.fn, self.make_args = fn, make_args
        self.flops, self.bytes, self.ws_bytes = flops, bytes_, ws_bytes
        self.compiled = compiled
        self.extra = extra or {}


_COMPILED = {}


def compiled(name, fn):
    """One torch.compile wrapper per micro op (static shapes: a recompile per shape)."""
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(fn, dynamic=False)
    return _COMPILED[name]


def _randn(*shape):
    return torch.randn(*shape, device="cuda", dtype=BF16)


def gemm_job(s):
    M, N, K = s["M"], s["N"], s["K"]

    def make(i):
        return (_randn(M, K), _randn(N, K) * (1.0 / math.sqrt(K)),
                torch.empty(M, N, device="cuda", dtype=BF16))

    def fn(a, w, c):
        return torch.mm(a, w.t(), out=c)
    ws = 2 * (M * K + N * K + M * N)
    return Job(fn, make, flops=2 * M * N * K, bytes_=ws, ws_bytes=ws)


def _attn_inputs(B, H, Hkv, S, Dh):
    # same layout as in the layer: [B, S, heads, Dh] viewed as [B, heads, S, Dh]
    q = _randn(B, S, H, Dh).transpose(1, 2)
    k = _randn(B, S, Hkv, Dh).transpose(1, 2)
    v = _randn(B, S, Hkv, Dh).transpose(1, 2)
    return q, k, v


def sdpa_backend_name(s):
    """Which fused SDPA kernel PyTorch picks for these inputs (None if unknown)."""
    try:
        q, k, v = _attn_inputs(s["B"], s["H"], s["Hkv"], 64, s["Dh"])
        choice = int(torch._fused_sdp_choice(q, k, v, None, 0.0, True,
                                             scale=None, enable_gqa=True))
        from torch.nn.attention import SDPBackend
        for name, b in SDPBackend.__members__.items():
            if int(b) == choice:
                return name
        return str(choice)
    except Exception as e:  # pragma: no cover
        return f"unknown ({type(e).__name__})"


def sdpa_job(s):
    B, H, Hkv, S, Dh = s["B"], s["H"], s["Hkv"], s["S"], s["Dh"]

    def make(i):
        return _attn_inputs(B, H, Hkv, S, Dh)

    def fn(q, k, v):
        return Fn.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    flops = 4 * B * H * Dh * attn_pairs(S, None)
    ws = 2 * B * S * Dh * (2 * H + 2 * Hkv)
    return Job(fn, make, flops=flops, bytes_=ws, ws_bytes=ws,
               extra={"backend": sdpa_backend_name(s)})


def _flex_call(q, k, v, block_mask):
    return flex_attention(q, k, v, block_mask=block_mask, enable_gqa=True)


def flex_job(s):
    if not HAVE_FLEX:
        raise RuntimeError("flex_attention not available")
    B, H, Hkv, S, Dh, W = s["B"], s["H"], s["Hkv"], s["S"], s["Dh"], s["window"]
    bm = make_block_mask(S, W)
    fn = compiled("flex", _flex_call)

    def make(i):
        return _attn_inputs(B, H, Hkv, S, Dh) + (bm,)
    flops = 4 * B * H * Dh * attn_pairs(S, W)
    ws = 2 * B * S * Dh * (2 * H + 2 * Hkv)
    # fraction of 128x128 blocks the block mask keeps (what the kernel actually visits)
    try:
        kept = (int(bm.kv_num_blocks.sum()) + int(bm.full_kv_num_blocks.sum())
                if bm.full_kv_num_blocks is not None else int(bm.kv_num_blocks.sum()))
        nb = math.ceil(S / 128)
        extra = {"blocks_visited": kept, "blocks_total": nb * nb}
    except Exception:
        extra = {}
    return Job(fn, make, flops=flops, bytes_=ws, ws_bytes=ws, compiled=True, extra=extra)


def _rmsnorm(x, w):
    return rms_norm(x, w)


def rmsnorm_job(s):
    r, c = s["rows"], s["cols"]
    fn = compiled("rmsnorm", _rmsnorm)

    def make(i):
        return _randn(r, c), 1.0 + 0.1 * _randn(c)
    b = 2 * (2 * r * c + c)
    return Job(fn, make, bytes_=b, ws_bytes=b, compiled=True)


def _qk_norm_rope(qkv, cos, sin, qw, kw, H, Hkv, Dh, qk_norm):
    S = qkv.shape[0]
    q, k, _ = qkv.split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
    q = q.view(1, S, H, Dh)
    k = k.view(1, S, Hkv, Dh)
    if qk_norm:
        q = rms_norm(q, qw)
        k = rms_norm(k, kw)
    return apply_rope(q.transpose(1, 2), cos, sin), apply_rope(k.transpose(1, 2), cos, sin)


def qk_norm_rope_job(s):
    S, H, Hkv, Dh, qk = s["tokens"], s["H"], s["Hkv"], s["Dh"], s["qk_norm"]
    base = compiled("qk_norm_rope", _qk_norm_rope)
    cos, sin = rope_tables(S, Dh)

    def fn(qkv, qw, kw):
        return base(qkv, cos, sin, qw, kw, H, Hkv, Dh, qk)

    def make(i):
        return _randn(S, (H + 2 * Hkv) * Dh), 1.0 + 0.1 * _randn(Dh), 1.0 + 0.1 * _randn(Dh)
    b = 2 * (2 * S * (H + Hkv) * Dh + 2 * S * Dh)
    ws = 2 * (S * (H + 2 * Hkv) * Dh + S * (H + Hkv) * Dh)
    return Job(fn, make, bytes_=b, ws_bytes=ws, compiled=True)


def _geglu(gu):
    g, u = gu.chunk(2, dim=-1)
    return Fn.gelu(g, approximate="tanh") * u


def geglu_job(s):
    M, Fd = s["M"], s["F"]
    fn = compiled("geglu", _geglu)

    def make(i):
        return (_randn(M, 2 * Fd),)
    b = 2 * (3 * M * Fd)
    return Job(fn, make, bytes_=b, ws_bytes=b, compiled=True)


def residual_job(s):
    r, c = s["rows"], s["cols"]

    def make(i):
        return _randn(r, c), _randn(r, c), torch.empty(r, c, device="cuda", dtype=BF16)

    def fn(a, b, out):
        return torch.add(a, b, out=out)
    b = 2 * 3 * r * c
    return Job(fn, make, bytes_=b, ws_bytes=b)


MICRO_BUILDERS = {
    "gemm": gemm_job,
    "attention_sdpa": sdpa_job,
    "attention_flex": flex_job,
    "rmsnorm": rmsnorm_job,
    "qk_norm_rope": qk_norm_rope_job,
    "geglu": geglu_job,
    "residual_add": residual_job,
}
COMPILED_MICRO = ("attention_flex", "rmsnorm", "qk_norm_rope", "geglu")
