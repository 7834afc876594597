//! The pack: serde types in the seed's JSON schema, its Markdown summary,
//! and writing both without ever leaving half a file.

pub mod fidelity;
pub mod markdown;
pub mod pack;
pub mod write;

pub use pack::*;
