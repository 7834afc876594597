//! The seed model's throughputs: the effective rates its formula divides
//! work by, their checks, and validated overrides.

use std::collections::BTreeMap;

use crate::error::{hint, Error, Result};

/// Effective throughputs of one GPU, in the seed's units: GB/s for
/// memory-bound kernels, TFLOP/s for matrix and attention work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throughputs {
    pub hbm_bandwidth_gbps: f64,
    pub rmsnorm_gbps: f64,
    pub rmsnorm_gbps_small: f64,
    pub qk_norm_rope_gbps: f64,
    pub qk_norm_rope_separate_gbps: f64,
    pub geglu_gbps: f64,
    pub matmul_tflops: f64,
    pub matmul_tflops_small: f64,
    pub attention_tflops: f64,
    pub residual_add_gbps: f64,
}

/// Every key of [`Throughputs`], in the seed's order.
pub const THROUGHPUT_KEYS: [&str; 10] = [
    "hbm_bandwidth_gbps",
    "rmsnorm_gbps",
    "rmsnorm_gbps_small",
    "qk_norm_rope_gbps",
    "qk_norm_rope_separate_gbps",
    "geglu_gbps",
    "matmul_tflops",
    "matmul_tflops_small",
    "attention_tflops",
    "residual_add_gbps",
];

impl Throughputs {
    /// The value under a seed key.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.slot(key).map(|i| self.values()[i])
    }

    /// All values in [`THROUGHPUT_KEYS`] order.
    pub fn values(&self) -> [f64; 10] {
        [
            self.hbm_bandwidth_gbps,
            self.rmsnorm_gbps,
            self.rmsnorm_gbps_small,
            self.qk_norm_rope_gbps,
            self.qk_norm_rope_separate_gbps,
            self.geglu_gbps,
            self.matmul_tflops,
            self.matmul_tflops_small,
            self.attention_tflops,
            self.residual_add_gbps,
        ]
    }

    /// Builds throughputs from values in [`THROUGHPUT_KEYS`] order.
    pub const fn from_values(v: [f64; 10]) -> Self {
        Throughputs {
            hbm_bandwidth_gbps: v[0],
            rmsnorm_gbps: v[1],
            rmsnorm_gbps_small: v[2],
            qk_norm_rope_gbps: v[3],
            qk_norm_rope_separate_gbps: v[4],
            geglu_gbps: v[5],
            matmul_tflops: v[6],
            matmul_tflops_small: v[7],
            attention_tflops: v[8],
            residual_add_gbps: v[9],
        }
    }

    fn slot(&self, key: &str) -> Option<usize> {
        THROUGHPUT_KEYS.iter().position(|k| *k == key)
    }

    /// Replaces the values named in `overrides`; every key and value was
    /// checked when the [`Overrides`] was built.
    pub fn apply(&self, overrides: &Overrides) -> Self {
        let mut v = self.values();
        for (key, value) in &overrides.0 {
            if let Some(i) = self.slot(key) {
                v[i] = *value;
            }
        }
        Throughputs::from_values(v)
    }

    /// The first key whose value is not a finite positive number, if any.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (key, value) in THROUGHPUT_KEYS.iter().zip(self.values()) {
            check_value(key, value)?;
        }
        Ok(())
    }
}

/// Smallest throughput accepted (TFLOP/s or GB/s): slower than any GPU by
/// far, and large enough that every latency of a valid shape stays finite.
pub const MIN_THROUGHPUT: f64 = 1e-3;

fn check_value(key: &str, value: f64) -> std::result::Result<(), String> {
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("`{key}` must be a finite positive number, got {value}"));
    }
    if value < MIN_THROUGHPUT {
        return Err(format!(
            "`{key}` = {value:?} is absurdly small (the limit is {MIN_THROUGHPUT})"
        ));
    }
    Ok(())
}

/// The seed tool's constants of its three GPUs, in the seed's order (the
/// A100's 2039 GB/s HBM is the 80 GB SXM part's; all are guesses, not
/// measurements). The GPUs themselves live in [`crate::gpu::Registry`].
pub const SEED_CONSTANTS: [(&str, Throughputs); 3] = [
    (
        "a100",
        Throughputs::from_values([2039.0, 1300.0, 600.0, 900.0, 500.0, 1200.0, 200.0, 50.0, 155.0, 1800.0]),
    ),
    (
        "t4",
        Throughputs::from_values([320.0, 150.0, 80.0, 80.0, 50.0, 150.0, 30.0, 8.0, 25.0, 280.0]),
    ),
    (
        "h100",
        Throughputs::from_values([
            3350.0, 2400.0, 1000.0, 1600.0, 900.0, 2200.0, 500.0, 120.0, 400.0, 3000.0,
        ]),
    ),
];

/// The seed's constants of `key`, if the seed tool had that GPU.
pub fn seed_constants(key: &str) -> Option<Throughputs> {
    SEED_CONSTANTS.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

/// Replacement throughputs for one profile, checked on construction: only
/// known keys, only finite positive values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides(BTreeMap<String, f64>);

impl Overrides {
    /// Checks every key and value; the error names the first bad one.
    pub fn new(values: impl IntoIterator<Item = (String, f64)>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (key, value) in values {
            if !THROUGHPUT_KEYS.contains(&key.as_str()) {
                return Err(Error::Hardware(format!(
                    "unknown override key `{key}`{}; known: {}",
                    hint(&key, THROUGHPUT_KEYS),
                    THROUGHPUT_KEYS.join(", ")
                )));
            }
            check_value(&key, value).map_err(|e| Error::Hardware(format!("override {e}")))?;
            map.insert(key, value);
        }
        Ok(Overrides(map))
    }

    /// Parses `KEY=VALUE`, as given on the command line.
    pub fn parse_assignment(text: &str) -> Result<(String, f64)> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| Error::Hardware(format!("override `{text}` is not KEY=VALUE")))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| Error::Hardware(format!("override `{text}`: `{}` is not a number", value.trim())))?;
        Ok((key.trim().to_string(), value))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_constants_match_the_seed_table() {
        let h100 = seed_constants("h100").unwrap();
        assert_eq!(h100.get("matmul_tflops_small"), Some(120.0));
        assert_eq!(seed_constants("t4").unwrap().residual_add_gbps, 280.0);
        assert_eq!(seed_constants("h200"), None);
        for (_, t) in &SEED_CONSTANTS {
            t.check().unwrap();
        }
    }

    #[test]
    fn overrides_reject_unknown_keys_and_bad_values() {
        let e = Overrides::new([("matmul_tflop".to_string(), 1.0)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `matmul_tflops`"), "{e}");
        for bad in [f64::NAN, f64::INFINITY, 0.0, -3.0] {
            let e = Overrides::new([("matmul_tflops".to_string(), bad)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("finite positive"), "{e}");
        }
        let o = Overrides::new([("matmul_tflops".to_string(), 600.0)]).unwrap();
        assert_eq!(seed_constants("h100").unwrap().apply(&o).matmul_tflops, 600.0);
    }

    #[test]
    fn parses_assignments() {
        assert_eq!(Overrides::parse_assignment("a=1.5").unwrap(), ("a".into(), 1.5));
        assert!(Overrides::parse_assignment("a").is_err());
        assert!(Overrides::parse_assignment("a=x").is_err());
    }
}
