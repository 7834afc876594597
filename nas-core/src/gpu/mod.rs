//! GPUs: a spec sheet (the physical limits) plus the cost model a GPU is
//! evaluated with.

pub mod spec_sheet;

pub use spec_sheet::{PeakUnit, SpecSheet};
