"""CUDA-graph timing: capture, warm up, then median over rounds of replays.

Each round: a GPU spin (torch.cuda._sleep) so the CPU can queue the whole
round ahead of the GPU, then `replays` graph replays with a CUDA event between
every two; the round's value is the median of its per-replay times (divided by
the number of calls captured in one replay).  The reported median is the
median of the round values.
"""
import math
import statistics

import torch

SPIN_CYCLES_PER_MS = 1.4e6  # conservative (clock ~1.4-2 GHz): spin >= the asked time


def _spin(ms):
    if ms > 0:
        torch.cuda._sleep(int(ms * SPIN_CYCLES_PER_MS))


def capture(fn, arg_sets, calls):
    """Capture `calls` calls of fn, rotating over arg_sets, into one CUDA graph."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for a in arg_sets:
            fn(*a)
        fn(*arg_sets[0])
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(calls):
            fn(*arg_sets[i % len(arg_sets)])
    torch.cuda.synchronize()
    return g


def replay_once_ms(g):
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    e0.record()
    g.replay()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1)


def time_graph(g, replays, rounds, calls_per_replay=1, warmup_rounds=1):
    """Returns (median_ms, per_round_medians_ms) per call."""
    for _ in range(warmup_rounds * replays):
        g.replay()
    torch.cuda.synchronize()
    round_meds = []
    spin_ms = min(20.0, 0.05 * replays + 0.2)
    for _ in range(rounds):
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(replays + 1)]
        _spin(spin_ms)
        evs[0].record()
        for i in range(replays):
            g.replay()
            evs[i + 1].record()
        torch.cuda.synchronize()
        ts = [evs[i].elapsed_time(evs[i + 1]) / calls_per_replay for i in range(replays)]
        round_meds.append(statistics.median(ts))
    return statistics.median(round_meds), round_meds


def eager_estimate_ms(fn, args, n=3):
    fn(*args)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(n):
        fn(*args)
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) / n


def bench_micro(job, l2_bytes, rounds=5, target_graph_ms=1.0, target_round_ms=8.0,
                max_calls=200, max_rotate_bytes=1.5e9):
    """Time one micro-benchmark job; returns a dict of timing fields."""
    ws = max(1, job.ws_bytes)
    if ws < 3 * l2_bytes:
        nbuf = int(min(32, math.ceil(3 * l2_bytes / ws), max(1, max_rotate_bytes // ws)))
    else:
        nbuf = 1
    first = job.make_args(0)
    t_est = eager_estimate_ms(job.fn, first)
    calls = int(min(max_calls, max(1, math.ceil(target_graph_ms / max(t_est, 1e-4)))))
    nbuf = max(1, min(nbuf, calls))
    calls = int(math.ceil(calls / nbuf) * nbuf)
    arg_sets = [first] + [job.make_args(i) for i in range(1, nbuf)]
    g = capture(job.fn, arg_sets, calls)
    g_ms = replay_once_ms(g)
    if g_ms < 0.5 * target_graph_ms and calls < max_calls:
        # the eager estimate included launch overhead: capture more calls per replay
        more = int(min(max_calls, calls * math.ceil(target_graph_ms / max(g_ms, 1e-3))))
        more = max(nbuf, (more // nbuf) * nbuf)
        if more > calls:
            del g
            calls = more
            g = capture(job.fn, arg_sets, calls)
            g_ms = replay_once_ms(g)
    replays = int(min(50, max(3, math.ceil(target_round_ms / max(g_ms, 1e-3)))))
    med, rounds_ms = time_graph(g, replays, rounds, calls_per_replay=calls)
    del g, arg_sets, first
    return {"median_ms": med, "times_ms": rounds_ms, "rounds": rounds,
            "replays_per_round": replays, "calls_per_replay": calls, "buffers": nbuf}
