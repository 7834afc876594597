//! `nas`: kernel-aware neural architecture search of transformer layers.
//!
//! This facade re-exports the engine ([`nas_core`]) so that users depend on
//! one crate. The `nas` command-line tool lives in `src/bin/nas.rs`.

pub use nas_core::*;
