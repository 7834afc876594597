#!/usr/bin/env bash
# Fits the kernel-aware model to the committed measurements and writes the
# profiles and fidelity reports. Runs on any machine with the Rust toolchain
# (no GPU): the measurements were taken by harness/measure.py (README.md).
#
#   bash calibration/fit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin nas
nas=target/release/nas
for pair in "h100:h100-sxm" "h200:h200"; do
  gpu=${pair%%:*}
  profile=calibration/${pair##*:}.json
  data=calibration/data/$gpu
  # Training layers only; the validation set is never fitted on.
  "$nas" calibrate --out "$profile" \
    --measurements "$data/layers.jsonl" "$data/layers-supplement.jsonl" "$data/layers-supplement-2.jsonl"
  "$nas" fidelity --calibration "$profile" --measurements "$data/layers.jsonl" \
    --set validation --seed-hardware h100 --out "docs/results/fidelity-$gpu"
done
# Decode: bandwidth and per-kernel cost fitted on measured decode steps (H100
# only), on the `train` models; the `validation` models are never fitted on.
"$nas" calibrate --out calibration/h100-sxm.json \
  --measurements calibration/data/h100/layers.jsonl calibration/data/h100/layers-supplement.jsonl \
  calibration/data/h100/layers-supplement-2.jsonl --decode calibration/data/h100/decode.jsonl
"$nas" fidelity --calibration calibration/h100-sxm.json --decode calibration/data/h100/decode.jsonl \
  --seed-hardware h100 --out docs/results/decode-fidelity-h100
