#!/usr/bin/env python3
"""Measure one decode step of whole bf16 decoder models on the GPU.

A Llama-style model (the architecture `nas` counts: bias-free q/k/v/o, gated
GeGLU MLP, RMSNorm, optional QK-norm, embeddings, LM head unless tied) with
random bf16 weights, distinct per layer, and a KV cache filled to `context`
tokens. One step: every one of `batch` sequences feeds one token through all
layers, writes its K and V into the cache, attends over the context (over the
last `window` tokens for a sliding window), and computes its logits. The
step is captured once as a CUDA graph and replayed; the result is the median
of rounds of replays (what a serving engine with CUDA graphs sees; no
sampling, no host work).

    PYTHONUNBUFFERED=1 python3 calibration/harness/decode.py --out $OUT

Writes $OUT/decode.jsonl (one JSON line per (model, batch, context)) and a
table on stdout.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

MODELS = {
    # name: hidden, layers, heads, kv_heads, head_dim, ffn, vocab, tied, qk_norm, window
    "llama3_8b": (4096, 32, 32, 8, 128, 14336, 128256, False, False, None),
    "llama2_7b": (4096, 32, 32, 32, 128, 11008, 32000, False, False, None),
    "mistral_7b": (4096, 32, 32, 8, 128, 14336, 32000, False, False, 4096),
    "qwen3_4b": (2560, 36, 32, 8, 128, 9728, 151936, True, True, None),
    "llama3_2_1b": (2048, 16, 32, 8, 64, 8192, 128256, True, False, None),
}
# Never fitted on: `nas calibrate --decode` fits on the other models only.
VALIDATION = ("mistral_7b", "llama3_2_1b")
BATCHES = (1, 8, 32)
CONTEXTS = (1024, 8192)
MEMORY_LIMIT = 70 * 2**30  # leave room on an 80 GB card


def env_info():
    props = torch.cuda.get_device_properties(0)
    try:
        drv = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        drv = f"unknown ({type(e).__name__})"
    return {"gpu": torch.cuda.get_device_name(0), "driver": drv, "torch": torch.__version__,
            "cuda": torch.version.cuda, "gpu_mem_bytes": int(props.total_memory)}


def rmsnorm(x, w, eps=1e-6):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


class Model:
    def __init__(self, dims, batch, context):
        d, layers, h, kv, hd, f, vocab, tied, qk, window = dims
        dev, dt = "cuda", torch.bfloat16
        self.dims, self.batch = dims, batch
        self.cached = min(context, window) if window else context
        scale = 0.02
        self.emb = torch.randn(vocab, d, device=dev, dtype=dt) * scale
        self.lm = self.emb if tied else torch.randn(vocab, d, device=dev, dtype=dt) * scale
        self.final = torch.ones(d, device=dev, dtype=dt)
        self.layers = []
        for _ in range(layers):
            self.layers.append({
                "n1": torch.ones(d, device=dev, dtype=dt), "n2": torch.ones(d, device=dev, dtype=dt),
                "qkv": torch.randn(d, (h + 2 * kv) * hd, device=dev, dtype=dt) * scale,
                "o": torch.randn(h * hd, d, device=dev, dtype=dt) * scale,
                "gu": torch.randn(d, 2 * f, device=dev, dtype=dt) * scale,
                "down": torch.randn(f, d, device=dev, dtype=dt) * scale,
                "qn": torch.ones(hd, device=dev, dtype=dt), "kn": torch.ones(hd, device=dev, dtype=dt),
                # the cache: (batch, kv heads, cached tokens, head_dim); the step writes its slot
                "k": torch.randn(batch, kv, self.cached, hd, device=dev, dtype=dt),
                "v": torch.randn(batch, kv, self.cached, hd, device=dev, dtype=dt),
            })
        self.tokens = torch.randint(0, vocab, (batch,), device=dev)
        self.slot = self.cached - 1

    def step(self):
        d, layers, h, kv, hd, f, vocab, tied, qk, window = self.dims
        b, g = self.batch, h // kv
        x = self.emb[self.tokens]
        for L in self.layers:
            y = rmsnorm(x, L["n1"])
            qkv = y @ L["qkv"]
            q, k, v = qkv.split([h * hd, kv * hd, kv * hd], dim=-1)
            q, k = q.view(b, h, hd), k.view(b, kv, hd)
            if qk:
                q, k = rmsnorm(q, L["qn"]), rmsnorm(k, L["kn"])
            L["k"][:, :, self.slot] = k
            L["v"][:, :, self.slot] = v.view(b, kv, hd)
            qg = q.view(b, kv, g, hd)
            scores = (qg @ L["k"].transpose(-1, -2)).float() * hd ** -0.5  # (b, kv, g, cached)
            att = (torch.softmax(scores, dim=-1).to(q.dtype) @ L["v"]).reshape(b, h * hd)
            x = x + att @ L["o"]
            y = rmsnorm(x, L["n2"])
            gate, up = (y @ L["gu"]).split([f, f], dim=-1)
            x = x + (torch.nn.functional.gelu(gate, approximate="tanh") * up) @ L["down"]
        return rmsnorm(x, self.final) @ self.lm.t()


def bytes_needed(dims, batch, context):
    d, layers, h, kv, hd, f, vocab, tied, qk, window = dims
    weights = 2 * (vocab * d * (1 if tied else 2) + layers * (d * (h + 2 * kv) * hd + h * hd * d + 3 * d * f))
    cached = min(context, window) if window else context
    return weights + 2 * 2 * layers * batch * kv * cached * hd


def measure(model, replays=20, rounds=7):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            model.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model.step()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / replays)
    return statistics.median(times), times


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "decode_out"))
    p.add_argument("--quick", action="store_true", help="one model, one batch, one context")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    env = env_info()
    print(f"GPU {env['gpu']} | driver {env['driver']} | torch {env['torch']} | CUDA {env['cuda']}", flush=True)
    torch.manual_seed(0)
    models = {"llama3_2_1b": MODELS["llama3_2_1b"]} if a.quick else MODELS
    t0 = time.time()
    with open(os.path.join(a.out, "decode.jsonl"), "w") as out:
        for name, dims in models.items():
            for batch in (BATCHES[:1] if a.quick else BATCHES):
                for context in (CONTEXTS[:1] if a.quick else CONTEXTS):
                    if bytes_needed(dims, batch, context) > MEMORY_LIMIT:
                        print(f"{name:12} b{batch:<3} ctx{context:<6} skipped (does not fit)", flush=True)
                        continue
                    model = Model(dims, batch, context)
                    median, times = measure(model)
                    d, layers, h, kv, hd, f, vocab, tied, qk, window = dims
                    record = {
                        "kind": "decode", "model": name,
                        "set": "validation" if name in VALIDATION else "train", **env,
                        "shape": {"name": name, "hidden_dim": d, "num_heads": h, "num_kv_heads": kv, "head_dim": hd,
                                  "ffn_dim": f, "seq_len": context, "batch_size": batch, "use_qk_norm": qk,
                                  "window_size": window, "num_layers": layers, "vocab_size": vocab,
                                  "tie_embeddings": tied, "context_len": context},
                        "median_ms": median, "rounds_ms": times,
                        "method": "CUDA graph of one eager decode step, 20 replays per round, median of 7 rounds",
                    }
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                    print(f"{name:12} b{batch:<3} ctx{context:<6} {median:8.3f} ms  ({time.time() - t0:5.1f} s)",
                          flush=True)
                    del model
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
