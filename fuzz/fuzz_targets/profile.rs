//! The calibration-profile reader (`--calibration FILE` with a fitted
//! profile) on arbitrary text: it never panics, and a profile it accepts
//! predicts finite latencies for the largest and smallest valid shapes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nas_core::calibrate::CalibrationProfile;
use nas_core::shapes::LayerShape;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(profile) = CalibrationProfile::from_json(text, "fuzz.json") else {
        return;
    };
    let small = LayerShape {
        hidden_dim: 1,
        num_heads: 1,
        num_kv_heads: 1,
        head_dim: 1,
        ffn_dim: 1,
        seq_len: 1,
        batch_size: 1,
        use_qk_norm: false,
        window_size: Some(1),
        model: nas_core::model::ModelDims::NONE,
        precision: nas_core::precision::Precision::BF16,
    };
    // valid, with counts near the u64 limit
    let large = LayerShape {
        hidden_dim: 1 << 14,
        num_heads: 1 << 6,
        num_kv_heads: 1 << 6,
        head_dim: 1 << 8,
        ffn_dim: 1 << 16,
        seq_len: 1 << 20,
        batch_size: 1 << 4,
        use_qk_norm: true,
        window_size: None,
        model: nas_core::model::ModelDims::NONE,
        precision: nas_core::precision::Precision::BF16,
    };
    // the same in fp8 and int4 (a profile's precision section prices them)
    let in_format = |s: LayerShape, weights| LayerShape {
        precision: nas_core::precision::Precision {
            weights,
            kv_cache: nas_core::precision::KvCachePrecision::Fp8,
        },
        ..s
    };
    use nas_core::precision::WeightPrecision::{Fp8, Int4};
    let shapes = [
        small,
        large,
        in_format(small, Fp8),
        in_format(large, Fp8),
        in_format(small, Int4),
        in_format(large, Int4),
    ];
    let shapes: Vec<LayerShape> = shapes.into_iter().filter(|s| s.validate().is_ok()).collect();
    let latency = profile.predict(&shapes);
    for i in 0..shapes.len() {
        let t = latency.total_ms(i, 0);
        assert!(t.is_finite() && t >= 0.0, "latency {t} for {:?}", shapes[i]);
    }
    let again = profile.to_json().expect("an accepted profile serializes");
    CalibrationProfile::from_json(&again, "again").expect("and reads back");
});
