//! The seed's calibration DB reader on arbitrary bytes: it never panics, and
//! a DB it accepts gives overrides that keep the seed model's latencies finite
//! and a block that serializes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nas_core::calibrate::CalibrationBlock;
use nas_core::cost::LatencyMatrix;
use nas_core::hardware::SEED_CONSTANTS;
use nas_core::shapes::LayerShape;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = CalibrationBlock::from_bytes("fuzz.json", data) else {
        return;
    };
    let shape = LayerShape {
        hidden_dim: 2048,
        num_heads: 16,
        num_kv_heads: 2,
        head_dim: 128,
        ffn_dim: 8192,
        seq_len: 2048,
        batch_size: 1,
        use_qk_norm: true,
        window_size: None,
        model: nas_core::model::ModelDims::NONE,
        precision: nas_core::precision::Precision::BF16,
    };
    for (key, throughputs) in SEED_CONSTANTS.iter() {
        let t = throughputs.apply(&block.overrides_for(key));
        t.check().expect("overrides keep throughputs valid");
        let ms = LatencyMatrix::seed(&[shape], &[t]).total_ms(0, 0);
        assert!(ms.is_finite() && ms > 0.0, "latency {ms} with {t:?}");
    }
    serde_json::to_string(&block).expect("the block serializes");
});
