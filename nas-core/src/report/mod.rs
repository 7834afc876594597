//! The pack: serde types in the seed's JSON schema, its Markdown summary (one
//! renderer), its HTML page with SVG charts, and writing them without ever
//! leaving half a file.

pub mod charts;
pub mod fidelity;
pub mod html;
pub mod markdown;
pub mod pack;
pub mod precision_fidelity;
pub mod write;

pub use pack::*;
