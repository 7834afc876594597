#!/usr/bin/env bash
# Compile cost of nas_search!: wall time of `cargo build` of a crate whose
# spec declares 10,000 candidates, against the same crate with a one-candidate
# spec. Dependencies are built first (warm-up) so only the crate itself counts.
#
#   bash bench/compile_cost.sh [runs]     (default 3 runs each; prints medians)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
work="$repo/target/compile-cost"
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<TOML
[package]
name = "compile-cost"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
nas = { path = "$repo" }

[workspace]
TOML

write_spec() { # $1 = large|empty
  if [ "$1" = large ]; then
    family='family big {
            hidden_dim: [1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
                         4352, 4608, 4864, 5120, 5376, 5632, 5888, 6144, 6400, 6656, 6912, 7168],
            head_dim: [64, 128],
            kv_heads: [1, 2],
            ffn_dim: [4096, 5120, 6144, 7168, 8192, 9216, 10240, 11264, 12288, 13312],
            window: [512, 1024, 2048, 4096, full],
            qk_norm: [true, false],
            name: "c_h{hidden_dim}_hd{head_dim}_kv{kv_heads}_f{ffn_dim}_w{window}_{qk_norm}",
        }'
  else
    family='known one { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }'
  fi
  cat > "$work/src/main.rs" <<RS
nas::nas_search! {
    search Cost {
        hardware: [a100, t4, h100],
        $family
    }
}

fn main() {
    println!("{}", Cost::CANDIDATES.len());
}
RS
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

time_build() { # prints seconds of one `cargo build` of the crate
  touch "$work/src/main.rs"
  local t0 t1
  t0=$(date +%s.%N)
  cargo build --quiet --manifest-path "$work/Cargo.toml"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

write_spec empty
cargo build --quiet --manifest-path "$work/Cargo.toml"   # warm-up: dependencies
for kind in empty large; do
  write_spec $kind
  cargo build --quiet --manifest-path "$work/Cargo.toml"   # warm-up of this spec
  count=$("$work/target/debug/compile-cost")
  times=$(for _ in $(seq "$runs"); do time_build; done)
  echo "$kind: $count candidates, cargo build median $(echo "$times" | median) s over $runs runs ($(echo $times))"
done
