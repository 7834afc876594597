//! nas-core: everything of the `nas` toolkit that runs.
//!
//! Layer shapes go in ([`shapes`]), GPU profiles say how fast each resource
//! is ([`hardware`]), the cost model turns work into milliseconds through
//! nalgebra ([`cost`]), searches enumerate, constrain and rank candidates
//! ([`search`]), calibration reads measured numbers ([`calibrate`]) and
//! reports write the pack ([`report`]). This crate never depends on the
//! `nas-macros` crate: the macro uses these rules, not the other way round.

pub mod calibrate;
pub mod cost;
pub mod error;
pub mod gpu;
pub mod hardware;
pub mod input;
pub mod model;
pub mod parallel;
pub mod precision;
pub mod report;
pub mod search;
pub mod shapes;
pub mod stack;

pub use error::{Error, Result};
