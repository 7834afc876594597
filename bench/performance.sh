#!/usr/bin/env bash
# The figures of docs/PERFORMANCE.md: engine throughput, the 10^8-candidate
# search (time and peak RSS), and the seed pack's wall time. Release build.
#   bash bench/performance.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin nas
nas=target/release/nas
echo "== machine"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core)'
echo "SIMD: $(grep -o -w -E 'avx2|avx512f|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
nproc
echo "== nas bench --candidates 20000000 (5 runs)"
for _ in 1 2 3 4 5; do "$nas" bench --candidates 20000000 --quiet; done
echo "== nas bench --candidates 100663296 (the whole family, 3 runs)"
for _ in 1 2 3; do "$nas" bench --candidates 100663296 --quiet; done
echo "== criterion: the engine on the measured model vs a plain scalar loop of the seed model"
cargo bench -p nas-core --bench engine -- engine_vs_scalar --warm-up-time 1 --measurement-time 3 2>&1 | grep -E '^engine_vs_scalar|thrpt'
echo "== nas search --spec examples/specs/bench-1e8.json (end to end, JSON out; /usr/bin/time -v)"
for _ in 1 2 3; do
  /usr/bin/time -f 'wall %e s, peak RSS %M KiB' "$nas" search --spec examples/specs/bench-1e8.json --out /tmp/nas-bench-1e8.json --quiet
done
echo "== nas pack --seed (20 runs)"
out=$(mktemp -d)
python3 - "$nas" "$out" <<'PY'
import subprocess, sys, time, statistics
nas, out = sys.argv[1], sys.argv[2]
times = []
for _ in range(20):
    t = time.perf_counter()
    subprocess.run([nas, "pack", "--seed", "--calibration-db", "calibration/seed/noeris-cost-model-training.json",
                    "--out", out + "/pack"], check=True)
    times.append((time.perf_counter() - t) * 1000)
print(f"median {statistics.median(times):.1f} ms, min {min(times):.1f} ms, max {max(times):.1f} ms over {len(times)} runs")
PY
rm -rf "$out"
