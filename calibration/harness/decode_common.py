"""Helpers shared by decode_compiled.py and decode_micro.py (no torch import at module level).

- env_info: the GPU / driver / library versions every record carries
- precompile: N worker processes that compile every job once (filling the
  on-disk inductor cache) before the single timing process starts
- Writer / Log: JSON lines and a log file under --out
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time


def set_env_defaults():
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", "/tmp/nas_calib_inductor_cache")
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


def setup_torch():
    import torch
    import torch._dynamo
    cfg = torch._dynamo.config
    for name in ("cache_size_limit", "recompile_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, 1024)
    for name in ("accumulated_cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, 1 << 16)
    import warnings
    warnings.filterwarnings("ignore")


def err_text(e):
    return f"{type(e).__name__}: {e}".replace("\n", " ")[:400]


def fnum(x, nd=6):
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return None
    return round(float(x), nd)


def env_info():
    import torch
    import triton
    props = torch.cuda.get_device_properties(0)
    try:
        drv = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        drv = f"unknown ({type(e).__name__})"
    return {
        "gpu": torch.cuda.get_device_name(0),
        "sm_count": props.multi_processor_count,
        "driver": drv,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "l2_bytes": int(getattr(props, "L2_cache_size", 50 * 1024 * 1024)),
        "gpu_mem_bytes": int(props.total_memory),
    }


def warm_clocks(seconds=0.5):
    """Large GEMMs so the clocks are up before anything is timed."""
    import torch
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t = time.time()
    while time.time() - t < seconds:
        for _ in range(20):
            a @ a
        torch.cuda.synchronize()
    del a
    torch.cuda.empty_cache()


class Writer:
    def __init__(self, path):
        self.f = open(path, "a")

    def write(self, rec):
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()


class Log:
    def __init__(self, path):
        self.f = open(path, "a")
        self.t0 = time.time()

    def __call__(self, msg):
        line = f"[{time.time() - self.t0:6.1f}s] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def run_worker(script_compile_one, jobs_path, claim_dir, worker_id):
    """Worker loop: claim jobs by an exclusive file, compile each with script_compile_one(job)."""
    import gc
    import torch
    setup_torch()
    with open(jobs_path) as f:
        jobs = json.load(f)
    out = open(os.path.join(claim_dir, f"worker{worker_id}.jsonl"), "a")
    for i, job in enumerate(jobs):
        try:
            fd = os.open(os.path.join(claim_dir, f"claim_{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
        except FileExistsError:
            continue
        t0 = time.time()
        err = None
        try:
            with torch.no_grad():
                script_compile_one(job)
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001
            err = err_text(e)
        rec = {"i": i, "job": job, "compile_s": round(time.time() - t0, 3), "worker": worker_id}
        if err:
            rec["error"] = err
        out.write(json.dumps(rec) + "\n")
        out.flush()
        print(f"[w{worker_id}] {i:3d} {rec['compile_s']:6.1f}s {json.dumps(job)[:110]}"
              + (f"  ERROR {err[:200]}" if err else ""), flush=True)
        gc.collect()
        torch.cuda.empty_cache()
    out.close()


def precompile(script, jobs, workers, deadline, out_dir, log, log_name="precompile_log.txt"):
    """Start `workers` processes of `script --worker ...`; returns {job index: record}."""
    claim_dir = tempfile.mkdtemp(prefix="nas_decode_precompile_")
    jobs_path = os.path.join(claim_dir, "jobs.json")
    with open(jobs_path, "w") as f:
        json.dump(jobs, f)
    env = dict(os.environ)
    ncpu = os.cpu_count() or 8
    env["TORCHINDUCTOR_COMPILE_THREADS"] = str(max(2, ncpu // max(1, workers)))
    procs = []
    for w in range(workers):
        cmd = [sys.executable, os.path.abspath(script), "--worker", "--jobs", jobs_path,
               "--claim-dir", claim_dir, "--worker-id", str(w)]
        logf = open(os.path.join(claim_dir, f"worker{w}.log"), "w")
        procs.append((subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT), logf))
    timed_out = False
    while any(p.poll() is None for p, _ in procs):
        if time.time() > deadline:
            timed_out = True
            for p, _ in procs:
                if p.poll() is None:
                    p.kill()  # our own child, by handle
            break
        time.sleep(0.5)
    for p, logf in procs:
        try:
            p.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        logf.close()
    done = {}
    with open(os.path.join(out_dir, log_name), "w") as agg:
        for w in range(workers):
            lp = os.path.join(claim_dir, f"worker{w}.log")
            if os.path.exists(lp):
                agg.write(f"===== worker {w}\n" + open(lp).read()[-300000:])
    for w in range(workers):
        path = os.path.join(claim_dir, f"worker{w}.jsonl")
        if os.path.exists(path):
            for line in open(path):
                try:
                    r = json.loads(line)
                    done[r["i"]] = r
                except Exception:  # noqa: BLE001
                    pass
    errs = [r for r in done.values() if r.get("error")]
    log(f"pre-compile: {len(done)}/{len(jobs)} jobs by {workers} workers, {len(errs)} errors"
        + (" (stopped at its deadline)" if timed_out else ""))
    for r in errs[:5]:
        log(f"  pre-compile error: {json.dumps(r['job'])[:100]}: {r['error'][:200]}")
    return done


def worker_args(argv):
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true")
    p.add_argument("--jobs")
    p.add_argument("--claim-dir")
    p.add_argument("--worker-id", type=int, default=0)
    a, _ = p.parse_known_args(argv)
    return a
