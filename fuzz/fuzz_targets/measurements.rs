//! The measurement reader (`nas calibrate --measurements`, JSON lines) on
//! arbitrary bytes, as one or two files (split at the first 0xFF byte): it
//! never panics, and what it accepts fits (NNLS) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nas_core::calibrate::{CalibrationProfile, MeasurementSet, PhysicalLimits};

fuzz_target!(|data: &[u8]| {
    let sources: Vec<(String, Vec<u8>)> = data
        .splitn(2, |b| *b == 0xff)
        .enumerate()
        .map(|(i, part)| (format!("file{i}.jsonl"), part.to_vec()))
        .collect();
    let Ok(set) = MeasurementSet::from_sources(&sources) else {
        return;
    };
    if set.measurements.len() <= 64 {
        // the H100's peaks, whatever GPU the records name
        let limits = PhysicalLimits {
            hbm_gbps: 3350.0,
            dense_bf16_tflops: 989.4,
            dense_fp8_tflops: Some(1978.9),
            source: "fuzz".into(),
        };
        if let Ok((profile, rows)) = CalibrationProfile::fit(&set, &[], Some(limits)) {
            for r in rows {
                assert!(
                    r.predicted_ms.is_finite(),
                    "prediction {} ({})",
                    r.predicted_ms,
                    r.origin
                );
            }
            let _ = profile.to_json();
        }
    }
});
