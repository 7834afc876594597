//! The shape-list reader (`nas predict --configs`) on arbitrary bytes, and
//! both cost models on every shape it accepts: reading never panics, and an
//! accepted shape never makes a count overflow (debug assertions are on) nor
//! a latency non-finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nas_core::calibrate::profile::MAX_MS_PER_UNIT;
use nas_core::cost::kernel_aware::{KernelAwareModel, ALL_RESOURCES};
use nas_core::cost::LatencyMatrix;
use nas_core::hardware::{Throughputs, MIN_THROUGHPUT, SEED_CONSTANTS};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = nas_core::input::parse_json(data, "fuzz.json") else {
        return;
    };
    let Ok(configs) = nas_core::shapes::configs_from_json(&doc, "fuzz.json") else {
        return;
    };
    let shapes: Vec<_> = configs.into_iter().map(|(_, s)| s).collect();
    // the built-in GPUs, and the slowest GPU a profile may describe
    let mut throughputs: Vec<_> = SEED_CONSTANTS.iter().map(|(_, t)| *t).collect();
    throughputs.push(Throughputs::from_values([MIN_THROUGHPUT; 10]));
    let seed = LatencyMatrix::seed(&shapes, &throughputs);
    let model = KernelAwareModel::new(132, 0.0);
    // the largest cost per unit a calibration profile may give
    let inverse = nalgebra::DMatrix::from_element(ALL_RESOURCES.len(), 1, MAX_MS_PER_UNIT);
    let aware = LatencyMatrix::new(nas_core::cost::LayerModel::KernelAware(model), &shapes, &inverse);
    for i in 0..shapes.len() {
        for g in 0..throughputs.len() {
            let t = seed.total_ms(i, g);
            assert!(t.is_finite() && t > 0.0, "seed latency {t} for {:?}", shapes[i]);
        }
        let t = aware.total_ms(i, 0);
        assert!(t.is_finite() && t > 0.0, "kernel-aware latency {t} for {:?}", shapes[i]);
    }
});
