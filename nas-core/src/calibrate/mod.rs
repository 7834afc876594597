//! Where profile numbers come from: the seed's calibration DB (parity) and,
//! later, least-squares fits of our own measurements.

pub mod seed_db;

pub use seed_db::{CalibrationBlock, CalibrationStatus, OperatorSummary};
