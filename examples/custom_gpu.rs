// A search on a GPU the seed does not know, declared inline, next to an H100
// whose matmul throughput is overridden.
//
//     cargo run --release -p nas-examples --example custom_gpu
//
// Writes docs/results/custom-gpu.{json,md,html}. The `workstation` numbers below
// are illustrative values for the example, NOT measurements: replace them
// with your own (the calibration harness under calibration/ measures them).

nas::nas_search! {
    /// Llama-style layers on an H100 and on a workstation card.
    pub search CustomGpu {
        hardware: [h100, h100_fast_gemm, workstation],
        // Hand-set throughputs are the seed formula's: ask for it explicitly.
        cost_model: seed,

        // Start from a known profile and change what you know better.
        gpu h100_fast_gemm: h100 {
            matmul_tflops: 650.0,
            label: "H100 (faster GEMMs)",
            provenance: "seed H100 constants with matmul_tflops raised (illustrative)",
        }

        // Or give every throughput.
        gpu workstation {
            label: "Workstation GPU",
            provenance: "illustrative values for this example, not measured",
            hbm_bandwidth_gbps: 1000.0,
            rmsnorm_gbps: 700.0,
            rmsnorm_gbps_small: 350.0,
            qk_norm_rope_gbps: 500.0,
            qk_norm_rope_separate_gbps: 280.0,
            geglu_gbps: 650.0,
            matmul_tflops: 160.0,
            matmul_tflops_small: 60.0,
            attention_tflops: 120.0,
            residual_add_gbps: 850.0,
        }

        workload { seq_len: 2048, batch_size: 4 }

        known llama3_8b { hidden_dim: 4096, heads: 32, kv_heads: 8, head_dim: 128, ffn_dim: 14336, qk_norm: false }
        family llama_like {
            hidden_dim: [3072, 4096],
            head_dim: 128,
            kv_heads: [4, 8],
            ffn_dim: [8192, 11008, 14336],
            qk_norm: false,
            name: "ll_h{hidden_dim}_kv{kv_heads}_f{ffn_dim}",
        }
        constraints { param_proxy_m >= 30.0 }
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), nas::Error> {
    let pack = CustomGpu::evaluate()?;
    for gpu in &pack.hardware_profiles {
        let best = &pack.reports[gpu].rankings.total_ms[0];
        println!(
            "{gpu}: fastest {} at {:.3} ms ({} bound)",
            best.name, best.total_ms, best.bottleneck
        );
    }
    pack.write("docs/results/custom-gpu")?;
    println!("wrote docs/results/custom-gpu.json, .md and .html");
    Ok(())
}
