#!/usr/bin/env bash
# Cold build cost of the quick start, of a plain `cargo build`, and of a crate
# that depends on `nas` without its CLI (docs/COMPILE-COST.md). A benchmark
# script, not a test: each build runs once, niced, in a fresh target folder
# under $WORK (default /tmp/nas-build-cost), dependencies already downloaded.
#
#   bash bench/build_cost.sh [QUICK_START_COMMAND...]
# The default quick start is this tree's: cargo build --release -p nas-examples --example seed_pack
set -uo pipefail
cd "$(dirname "$0")/.."
src=$PWD
work=${WORK:-/tmp/nas-build-cost}
rm -rf "$work" && mkdir -p "$work"
quick=("$@")
[ ${#quick[@]} -gt 0 ] || quick=(cargo build --release --offline -p nas-examples --example seed_pack)
t() {
  local log=$1; shift
  local s; s=$(date +%s.%N)
  "$@" > "$log" 2>&1; local rc=$?
  echo "rc=$rc wall=$(echo "$(date +%s.%N) - $s" | bc) s compiled=$(grep -c '^ *Compiling' "$log")"
}
echo "== quick start: ${quick[*]}"
t "$work/qs.log" nice env CARGO_TARGET_DIR="$work/t-qs" "${quick[@]}"
echo "== cold cargo build (dev profile)"
t "$work/b.log" nice env CARGO_TARGET_DIR="$work/t-b" cargo build --offline
echo "== a dependent crate: nas = { path, default-features = false }, cargo build --release"
mkdir -p "$work/dep/src"
cat > "$work/dep/Cargo.toml" <<TOML
[package]
name = "dep"
version = "0.1.0"
edition = "2021"
[dependencies]
nas = { path = "$src", default-features = false }
[workspace]
TOML
echo 'fn main() { println!("{}", nas::search::stream::bench_family().axes.len()); }' > "$work/dep/src/main.rs"
(cd "$work/dep" && t "$work/dep.log" nice env CARGO_TARGET_DIR="$work/t-dep" cargo build --release --offline \
  && echo "crates in its tree: $(cargo tree --offline -e normal --prefix none | sort -u | wc -l)")
rm -rf "$work"/t-*
