//! The Hugging Face config reader (`nas predict --configs`, `nas import`) on
//! arbitrary bytes, and every figure of each stack it accepts: reading never
//! panics, an accepted stack validates, its counts never overflow (debug
//! assertions are on) and its latency on the H200 is finite and positive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nas_core::gpu::{GpuTarget, Registry};
use nas_core::stack::{hf, latency, params, StackWorkload};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = nas_core::input::parse_json(data, "fuzz.json") else {
        return;
    };
    let Ok(imported) = hf::from_config(&doc, "fuzz.json") else {
        return;
    };
    let stack = imported.stack;
    stack.validate().unwrap();
    let counts = params::count(&stack);
    assert!(counts.active <= counts.total);
    let w = StackWorkload {
        seq_len: 128,
        batch: 2,
        context: 4096,
    };
    let _ = params::kv_cache(&stack, w.context);
    let _ = params::memory_needed(&stack, &w);
    let gpu = Registry::builtin().resolve(&GpuTarget::builtin("h200")).unwrap();
    if let Ok(t) = latency::predict(&stack, &gpu, &w) {
        assert!(t.prefill_ms.is_finite() && t.prefill_ms > 0.0, "prefill {}", t.prefill_ms);
        assert!(t.decode_ms.is_finite() && t.decode_ms > 0.0, "decode {}", t.decode_ms);
    }
});
