//! `nas-examples` holds the example programs of `nas` (`seed_pack.rs`,
//! `gemma2b_class.rs`, ...), run from the repository root with
//! `cargo run --release -p nas-examples --example NAME`. The library itself
//! is empty: a package needs one target besides its examples.
