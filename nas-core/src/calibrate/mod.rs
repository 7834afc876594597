//! Where profile numbers come from: the seed's calibration DB (parity) and
//! least-squares fits of our own measurements (the kernel-aware model).

pub mod decode;
pub mod decode_fit;
pub mod fit;
pub mod measurements;
pub mod mla_fit;
pub mod moe_fit;
pub mod moe_mla_report;
pub mod precision_fit;
pub mod profile;
pub mod seed_db;
pub mod stack_decode;

pub use measurements::{Measurement, MeasurementSet, Subject};
pub use profile::{CalibrationProfile, PhysicalLimits};
pub use seed_db::{CalibrationBlock, CalibrationStatus, OperatorSummary};
