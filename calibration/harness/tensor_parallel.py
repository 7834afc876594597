"""Tensor-parallel truth on several GPUs of one host: NCCL collectives alone,
tensor-parallel prefill layers and tensor-parallel decode steps.

Run with torchrun, one process per GPU:

    torchrun --nproc-per-node N calibration/harness/tensor_parallel.py --out DIR [--quick]

What is timed (rank 0 writes the records; every rank runs the same work):
- `collective`: `dist.all_reduce` (sum), `dist.all_gather_into_tensor` and
  `dist.all_to_all_single` on bf16 buffers of 4 KiB to 1 GiB per GPU, many
  calls captured in one CUDA graph, timed as the other harnesses time graphs
  (timing.py: warm-up, median of rounds of replays).
- `tp_layer`: one bf16 decoder layer of kernels.py's form split Megatron-style
  over the N GPUs (column-parallel QKV and gate-up, row-parallel output and
  down, an all-reduce after each), compiled halves with the all-reduces
  between them, the whole layer in one CUDA graph.
- `tp_decode`: one decode step of a whole model (DESIGN.md's decode truth:
  embedding, every layer with its own weights and its own KV cache, one
  query over the cache, final norm, LM head) with every GPU holding its
  shard, vocabulary-parallel embedding (all-reduce) and LM head
  (all-gather of the logits), the whole step in one CUDA graph.

NVLink multicast stays off (the device's notes require it): NCCL_NVLS_ENABLE=0,
TORCH_SYMM_MEM_DISABLE_MULTICAST=1, NVSHMEM_DISABLE_NVLS=1 are set before NCCL
starts. With one process (N = 1) every collective is a no-op call: that run
checks the harness, it measures no link.
"""
import os

for _k, _v in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1")):
    os.environ[_k] = _v

import argparse
import json
import math
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernels import BF16, rms_norm, rope_tables, apply_rope, setup_torch  # noqa: E402
from timing import capture, replay_once_ms, time_graph  # noqa: E402

# Models the layers and steps are measured on (name, hidden, heads, kv heads,
# head dim, ffn, layers of the decode step, vocabulary). Validation names are
# chosen before any fit and never fitted on.
MODELS = [
    ("llama3-8b", 4096, 32, 8, 128, 14336, 32, 128256),
    ("qwen2.5-14b", 5120, 40, 8, 128, 13824, 48, 152064),
    ("llama3-70b", 8192, 64, 8, 128, 28672, 80, 128256),
    ("mistral-small-24b", 5120, 32, 8, 128, 32768, 40, 131072),
]
VALIDATION = {"mistral-small-24b"}


def meta(world):
    p = torch.cuda.get_device_properties(0)
    return {"gpu": torch.cuda.get_device_name(0), "sm_count": p.multi_processor_count, "gpus": world,
            "torch": torch.__version__, "nccl": ".".join(map(str, torch.cuda.nccl.version())),
            "cuda": torch.version.cuda, "nvls": os.environ.get("NCCL_NVLS_ENABLE")}


def time_fn(fn, calls, rounds=5, target_round_ms=8.0):
    """Captures `calls` calls of fn in one graph; median ms per call."""
    g = capture(lambda: fn(), [()], calls)
    g_ms = replay_once_ms(g)
    replays = int(min(50, max(3, math.ceil(target_round_ms / max(g_ms, 1e-3)))))
    med, rounds_ms = time_graph(g, replays, rounds, calls_per_replay=calls)
    del g
    return med, rounds_ms


def collectives(world, quick, deadline, out):
    sizes = [4 << 10 << (2 * i) for i in range(6 if quick else 10)]  # 4 KiB .. 1 GiB
    for op in ("all_reduce", "all_gather", "all_to_all"):
        for nbytes in sizes:
            if time.time() > deadline:
                return
            n = nbytes // 2
            n -= n % world
            x = torch.randn(n, device="cuda", dtype=BF16)
            if op == "all_reduce":
                fn = lambda: dist.all_reduce(x)  # noqa: E731
            elif op == "all_gather":
                shard = x[: n // world].clone()
                fn = lambda: dist.all_gather_into_tensor(x, shard)  # noqa: E731
            else:
                y = torch.empty_like(x)
                fn = lambda: dist.all_to_all_single(y, x)  # noqa: E731
            calls = max(1, min(64, int(2e8 // max(nbytes, 1))))
            med, rounds = time_fn(fn, calls)
            out({"kind": "collective", "set": "train", "op": op, "bytes": 2 * n, "calls_per_replay": calls,
                 "median_ms": med, "times_ms": rounds})
            del x


def shard_dims(model, world):
    name, d, h, kv, hd, f, layers, vocab = model
    kv_local = max(1, kv // world)
    return d, h // world, kv_local, hd, f // world, layers, -(-vocab // world)


def tp_layer(model, world, seq, batch, out):
    d, h, kv, hd, f, _, _ = shard_dims(model, world)
    g = torch.Generator(device="cuda").manual_seed(0)
    rn = lambda *s: torch.randn(*s, device="cuda", dtype=BF16, generator=g) * s[-1] ** -0.5  # noqa: E731
    w = {"n1": torch.ones(d, device="cuda", dtype=BF16), "qkv": rn((h + 2 * kv) * hd, d), "o": rn(d, h * hd),
         "n2": torch.ones(d, device="cuda", dtype=BF16), "gu": rn(2 * f, d), "down": rn(d, f)}
    cos, sin = rope_tables(seq, hd)

    def attn_half(x):
        b, s, _ = x.shape
        qkv = Fn.linear(rms_norm(x, w["n1"]), w["qkv"])
        q, k, v = qkv.split([h * hd, kv * hd, kv * hd], dim=-1)
        q = apply_rope(q.view(b, s, h, hd).transpose(1, 2), cos, sin)
        k = apply_rope(k.view(b, s, kv, hd).transpose(1, 2), cos, sin)
        a = Fn.scaled_dot_product_attention(q, k, v.view(b, s, kv, hd).transpose(1, 2), is_causal=True,
                                            enable_gqa=(h != kv))
        return Fn.linear(a.transpose(1, 2).reshape(b, s, h * hd), w["o"])

    def mlp_half(x):
        gg, u = Fn.linear(rms_norm(x, w["n2"]), w["gu"]).chunk(2, dim=-1)
        return Fn.linear(Fn.gelu(gg, approximate="tanh") * u, w["down"])

    attn_c, mlp_c = torch.compile(attn_half, dynamic=False), torch.compile(mlp_half, dynamic=False)
    x = torch.randn(batch, seq, d, device="cuda", dtype=BF16)

    def layer():
        a = attn_c(x)
        dist.all_reduce(a)
        y = x + a
        m = mlp_c(y)
        dist.all_reduce(m)
        return y + m

    layer()
    torch.cuda.synchronize()
    med, rounds = time_fn(layer, 4)
    out({"kind": "tp_layer", "set": "validation" if model[0] in VALIDATION else "train", "model": model[0],
         "shape": {"hidden_dim": d, "num_heads": model[2], "num_kv_heads": model[3], "head_dim": hd,
                   "ffn_dim": model[5], "seq_len": seq, "batch_size": batch, "use_qk_norm": False,
                   "window_size": None},
         "tp": world, "per_gpu": {"num_heads": h, "num_kv_heads": kv, "ffn_dim": f},
         "median_ms": med, "times_ms": rounds})


def tp_decode(model, world, batch, context, out):
    d, h, kv, hd, f, layers, vocab_local = shard_dims(model, world)
    free = torch.cuda.mem_get_info()[0]
    per_layer = 2 * ((h + 2 * kv) * hd * d + h * hd * d + 3 * f * d) + 2 * 2 * batch * kv * (context + 1) * hd
    if per_layer * layers + 4 * vocab_local * d > 0.8 * free:
        return
    mk = lambda *s: torch.empty(*s, device="cuda", dtype=BF16).normal_(std=s[-1] ** -0.5)  # noqa: E731
    L = [{"qkv": mk((h + 2 * kv) * hd, d), "o": mk(d, h * hd), "gu": mk(2 * f, d), "down": mk(d, f),
          "kc": mk(batch, kv, context + 1, hd), "vc": mk(batch, kv, context + 1, hd)} for _ in range(layers)]
    emb, lm = mk(vocab_local, d), mk(vocab_local, d)
    ones = torch.ones(d, device="cuda", dtype=BF16)
    cos, sin = rope_tables(context + 1, hd)
    cos, sin = cos[..., context:, :], sin[..., context:, :]
    tokens = torch.randint(0, vocab_local, (batch,), device="cuda")
    logits = torch.empty(world * batch, vocab_local, device="cuda", dtype=BF16)

    def attn_half(x, qkv_w, o_w, kc, vc):
        qkv = Fn.linear(rms_norm(x, ones), qkv_w)
        q, k, v = qkv.split([h * hd, kv * hd, kv * hd], dim=-1)
        q = apply_rope(q.view(batch, 1, h, hd).transpose(1, 2), cos, sin)
        k = apply_rope(k.view(batch, 1, kv, hd).transpose(1, 2), cos, sin)
        kc[:, :, context:] = k
        vc[:, :, context:] = v.view(batch, 1, kv, hd).transpose(1, 2)
        a = Fn.scaled_dot_product_attention(q, kc, vc, enable_gqa=(h != kv))
        return Fn.linear(a.transpose(1, 2).reshape(batch, h * hd), o_w)

    def mlp_half(x, gu_w, down_w):
        gg, u = Fn.linear(rms_norm(x, ones), gu_w).chunk(2, dim=-1)
        return Fn.linear(Fn.gelu(gg, approximate="tanh") * u, down_w)

    attn_c, mlp_c = torch.compile(attn_half, dynamic=False), torch.compile(mlp_half, dynamic=False)
    head_c = torch.compile(lambda x: Fn.linear(rms_norm(x, ones), lm), dynamic=False)

    def step():
        x = Fn.embedding(tokens, emb)
        dist.all_reduce(x)
        for w in L:
            a = attn_c(x, w["qkv"], w["o"], w["kc"], w["vc"])
            dist.all_reduce(a)
            x = x + a
            m = mlp_c(x, w["gu"], w["down"])
            dist.all_reduce(m)
            x = x + m
        dist.all_gather_into_tensor(logits, head_c(x))
        return logits

    step()
    torch.cuda.synchronize()
    med, rounds = time_fn(step, 1, rounds=5)
    name, d0, h0, kv0, hd0, f0, layers0, vocab0 = model
    out({"kind": "tp_decode", "set": "validation" if name in VALIDATION else "train", "model": name,
         "config": {"model_type": "llama", "hidden_size": d0, "num_attention_heads": h0,
                    "num_key_value_heads": kv0, "head_dim": hd0, "intermediate_size": f0,
                    "num_hidden_layers": layers0, "vocab_size": vocab0, "tie_word_embeddings": False},
         "tp": world, "batch": batch, "context": context, "median_ms": med, "times_ms": rounds})
    del L, emb, lm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="a few points of each kind (checks the harness)")
    ap.add_argument("--budget-s", type=float, default=500.0)
    args = ap.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    setup_torch()
    deadline = time.time() + args.budget_s
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"tensor-parallel-tp{world}.jsonl")
    fh = open(path, "w") if rank == 0 else None
    base = meta(world)

    def out(rec):
        if fh:
            fh.write(json.dumps({**base, **rec}) + "\n")
            fh.flush()
            print(rec["kind"], rec.get("op", rec.get("model")), rec.get("bytes", ""), f"{rec['median_ms']:.4f} ms",
                  flush=True)

    collectives(world, args.quick, deadline, out)
    models = MODELS[:1] if args.quick else MODELS
    for model in models:
        for seq, batch in ([(2048, 1)] if args.quick else [(1024, 1), (4096, 1), (2048, 4)]):
            if time.time() < deadline:
                tp_layer(model, world, seq, batch, out)
        for batch, context in ([(8, 2048)] if args.quick else [(1, 4096), (16, 4096), (64, 2048)]):
            if time.time() < deadline:
                tp_decode(model, world, batch, context, out)
        torch._dynamo.reset()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
