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
# Decode, H200: the kernel-aware decode model fitted on compiled decode steps
# (whole models and 4-layer stacks of larger ones; `train` models only, the
# `validation` models are never fitted on) together with the decode
# micro-benchmarks (skinny GEMMs, LM heads, decode attention, elementwise).
# MoE and MLA, H200: the MoE model fitted on MoE MLP layers, routed MoE MLPs and
# grouped GEMMs, MLA's own constants on MLA prefill and split-cache decode layers
# (`train` configs only; harness/moe_mla.py).
# Precision, H200: fp8 layers, fp8 and int4 decode steps, fp8 and int4 GEMMs
# (precision_micro.py, two runs), fitted with every bf16 constant fixed; the
# fp8 layers of the bf16 validation shapes, the validation models' steps and
# the `micro_validation` GEMMs are never fitted on.
h200=calibration/data/h200
"$nas" calibrate --out calibration/h200.json \
  --measurements "$h200/layers.jsonl" "$h200/layers-supplement.jsonl" "$h200/layers-supplement-2.jsonl" \
  --decode "$h200/decode.jsonl" "$h200/decode-stack.jsonl" --decode-micro "$h200/decode-micro.jsonl" \
  --moe "$h200/moe.jsonl" "$h200/moe-routed.jsonl" --mla "$h200/mla.jsonl" "$h200/mla-decode-split.jsonl" \
  --precision "$h200/fp8-micro.jsonl" "$h200/int4-micro.jsonl" "$h200/fp8-layers.jsonl" \
  "$h200/precision-layers.jsonl" "$h200/precision-micro.jsonl" "$h200/precision-decode.jsonl" \
  "$h200/precision-decode-stack.jsonl"
"$nas" fidelity --calibration calibration/h200.json --decode "$h200/decode.jsonl" "$h200/decode-stack.jsonl" \
  --seed-hardware h100 --out docs/results/decode-fidelity-h200
h200p=("$h200/fp8-micro.jsonl" "$h200/int4-micro.jsonl" "$h200/fp8-layers.jsonl" "$h200/precision-layers.jsonl"
        "$h200/precision-micro.jsonl" "$h200/precision-decode.jsonl" "$h200/precision-decode-stack.jsonl")
"$nas" fidelity --calibration calibration/h200.json --precision "${h200p[@]}" \
  --measurements "$h200/layers.jsonl" --out docs/results/precision-fidelity-h200
"$nas" fidelity --calibration calibration/h200.json --moe "$h200/moe.jsonl" "$h200/moe-routed.jsonl" \
  --mla "$h200/mla.jsonl" "$h200/mla-decode-split.jsonl" --out docs/results/moe-mla-fidelity
# Whole mixed sliding/global and MoE models' decode steps (decode_stacks.py),
# every one held out: `nas predict --configs` on the fitted profile.
"$nas" fidelity --calibration calibration/h200.json --stacks "$h200/decode-mixed.jsonl" "$h200/decode-moe.jsonl" \
  --out docs/results/stack-decode-fidelity-h200
# Decode, H100: no H100 was lent for compiled decode steps, so the H200's
# decode model is carried over through the two spec sheets (transferred, not
# measured); so are its MoE model and MLA constants. The H100's eager decode steps (a slower truth) are compared only
# to show the gap, never fitted on.
h100=calibration/data/h100
"$nas" calibrate --out calibration/h100-sxm.json \
  --measurements "$h100/layers.jsonl" "$h100/layers-supplement.jsonl" "$h100/layers-supplement-2.jsonl" \
  --transfer-decode-from calibration/h200.json --transfer-precision-from calibration/h200.json
"$nas" fidelity --calibration calibration/h100-sxm.json --decode "$h100/decode.jsonl" \
  --seed-hardware h100 --out docs/results/decode-fidelity-h100
