//! The `nas` command line: the engine for people who do not write Rust.
//! JSON in, JSON out; exit 0 on success, 2 with a one-line error otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};

use nas::calibrate::{CalibrationBlock, CalibrationProfile, MeasurementSet};
use nas::cost::TilePenalties;
use nas::gpu::{CostModelKind, Gpu, GpuTarget, Latencies, Registry};
use nas::hardware::Overrides;
use nas::report::fidelity::FidelityReport;
use nas::shapes::LayerShape;
use nas::{Error, Result};

#[derive(Parser)]
#[command(
    name = "nas",
    version,
    about = "Kernel-aware neural architecture search of transformer layers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Predict the latency of each layer shape or model in a JSON file on one GPU.
    Predict {
        /// GPU key (see `nas hardware`).
        #[arg(long)]
        hardware: String,
        /// A Hugging Face `config.json` (an object with `model_type`; named by
        /// the file's stem), a JSON array of shapes in the seed's keys, or an
        /// array mixing both (a config in an array is named by its `name` or
        /// `_name_or_path`). Shape defaults: `batch_size` 1, `window_size` null
        /// (full attention), `use_qk_norm` false (no QK-norm, as in Llama,
        /// Mistral, Qwen2.5; say `true` for Qwen3, Gemma 3, OLMo 2); each
        /// shape's answer has a `config`: the shape as evaluated.
        #[arg(long)]
        configs: PathBuf,
        /// Prompt tokens per sequence, for configs (default 2048) and shapes that set no `seq_len`.
        #[arg(long)]
        seq_len: Option<u64>,
        /// Sequences per step, for configs (default 1) and shapes that set no `batch_size`.
        #[arg(long)]
        batch: Option<u64>,
        /// Tokens in the KV cache at a decode step, for configs (default: the
        /// sequence length) and whole-model shapes that set no `context_len`.
        #[arg(long)]
        context: Option<u64>,
        /// Training tokens of the loss estimate, for dense configs and whole-model
        /// shapes that set no `training_tokens`.
        #[arg(long)]
        training_tokens: Option<u64>,
        /// `measured` (the kernel-aware model on the GPU's measured profile) or
        /// `seed` (the seed tool's formula and constants). Default: measured.
        #[arg(long, value_name = "measured|seed")]
        cost_model: Option<String>,
        /// A calibration file: a measured profile from `nas calibrate` (instead of
        /// the GPU's built-in one), or, with `--cost-model seed`, the seed's
        /// calibration DB (its overrides for this GPU apply).
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Replace one seed throughput, e.g. `matmul_tflops=600` (repeatable; `--cost-model seed`).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// The published fit of the loss estimate (for shapes with `training_tokens`).
        #[arg(long, value_parser = ["chinchilla", "epoch"], default_value = "chinchilla")]
        scaling_law: String,
        /// What N counts in the loss estimate.
        #[arg(long, value_parser = ["all", "non_embedding"], default_value = "all")]
        loss_params: String,
        /// Tensor-parallel GPUs: adds `tensor_parallel` (one GPU's shard, its
        /// memory fit, prefill and decode with the all-reduces) to every whole model.
        #[arg(long, value_name = "N")]
        tp: Option<u64>,
        /// Expert parallelism for MoE configs: 1 (each expert's FFN split over
        /// the `--tp` GPUs, the default) or equal to `--tp` (experts spread whole).
        #[arg(long, value_name = "N", requires = "tp")]
        ep: Option<u64>,
        /// Weight precision of every shape that does not set `weights` itself:
        /// bf16, fp8 (e4m3, per-tensor scales, dynamic activation quantization)
        /// or int4 (weight-only, bf16 scales and zeros per group of 128).
        #[arg(long, value_name = "bf16|fp8|int4")]
        weights: Option<String>,
        /// KV-cache precision of every shape that does not set `kv_cache` itself: bf16 or fp8 (e4m3).
        #[arg(long = "kv-cache", value_name = "bf16|fp8")]
        kv_cache: Option<String>,
    },
    /// Write a multi-hardware pack (PREFIX.json, PREFIX.md and PREFIX.html).
    Pack {
        /// The seed tool's search (the only pack this command builds so far).
        #[arg(long, required = true)]
        seed: bool,
        /// `seed` (parity with the seed tool: the default here) or `measured`.
        #[arg(long, value_name = "measured|seed", default_value = "seed")]
        cost_model: String,
        /// GPUs, comma-separated (default: the seed's a100,t4,h100).
        #[arg(long, value_delimiter = ',')]
        hardware: Vec<String>,
        /// The seed's calibration DB; a path with no file gives status `unavailable`.
        #[arg(long)]
        calibration_db: Option<PathBuf>,
        /// Output prefix: writes PREFIX.json, PREFIX.md and PREFIX.html.
        #[arg(long)]
        out: PathBuf,
        /// Weight precision of every candidate of the seed's search:
        /// bf16, fp8 (e4m3, per-tensor scales, dynamic activation quantization)
        /// or int4 (weight-only, bf16 scales and zeros per group of 128).
        #[arg(long, value_name = "bf16|fp8|int4")]
        weights: Option<String>,
        /// KV-cache precision of every candidate: bf16 or fp8 (e4m3).
        #[arg(long = "kv-cache", value_name = "bf16|fp8")]
        kv_cache: Option<String>,
    },
    /// Predict single kernels (GEMMs, decode and prefill attention, MoE MLPs, MLA decode) on one GPU:
    /// a JSON array of queries in, one answer per query out (latency, what
    /// limits it, per resource, provenance).
    Kernel {
        /// GPU key (see `nas hardware`).
        #[arg(long)]
        hardware: String,
        /// `measured` (default) or `seed`.
        #[arg(long, value_name = "measured|seed")]
        cost_model: Option<String>,
        /// A measured profile of this GPU instead of the built-in one.
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// JSON array of queries: {"kernel": "gemm", "m", "n", "k"},
        /// {"kernel": "decode_attention", "batch", "kv_len", "num_heads", "num_kv_heads", "head_dim", "window"?},
        /// {"kernel": "prefill_attention", "batch", "seq_len", "num_heads", "num_kv_heads", "head_dim", "window"?},
        /// {"kernel": "moe", "num_tokens", "hidden_size", "inter_size", "num_experts", "topk", "imbalance"?, "router"?},
        /// {"kernel": "mla_decode", "batch", "kv_len", "hidden_size", "num_heads", "q_lora_rank"?, "kv_lora_rank",
        /// "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"}.
        #[arg(long)]
        queries: PathBuf,
    },
    /// List the known GPUs: spec sheets, cost models, and where every number comes from.
    Hardware,
    /// Print Hugging Face configs as the DSL's `known` block (with a comment on
    /// what the DSL cannot express yet) and as JSON shapes, to start a search
    /// from a real model.
    Import {
        /// `config.json` files (each an object with `model_type`).
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// The `seq_len` of the JSON shape.
        #[arg(long, default_value_t = 2048)]
        seq_len: u64,
    },
    /// Fit the kernel-aware model's throughputs to GPU measurements (JSON lines
    /// from calibration/harness/measure.py) and write a calibration profile.
    Calibrate {
        /// Measurement files of one GPU.
        #[arg(long, required = true, num_args = 1..)]
        measurements: Vec<PathBuf>,
        /// Where to write the profile (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Measurement sets left out of the fit (repeatable).
        #[arg(long = "exclude-set", default_values = ["validation"])]
        exclude_sets: Vec<String>,
        /// Measured decode steps: compiled ones (`calibration/harness/decode_compiled.py`,
        /// `truth: compiled_graph`) fit the kernel-aware decode model; the older
        /// eager ones (`decode.py`) a bandwidth and a per-kernel cost. `train` records only.
        #[arg(long, num_args = 1..)]
        decode: Vec<PathBuf>,
        /// Micro-benchmarks of decode kernels (`calibration/harness/decode_micro.py`;
        /// also `measure.py`'s GEMMs of at most 256 rows and its elementwise kernels):
        /// fitted together with compiled decode steps, or, with
        /// `--transfer-decode-from`, used to refit the transferred model's
        /// single-kernel constants on this GPU's own measurements.
        #[arg(long, num_args = 1..)]
        decode_micro: Vec<PathBuf>,
        /// Carry the kernel-aware decode model of another GPU's profile over to
        /// this one through the two spec sheets (for a GPU whose decode was not
        /// measured; the profile says it was transferred).
        #[arg(long, conflicts_with = "decode")]
        transfer_decode_from: Option<PathBuf>,
        /// Measured MoE MLPs (`calibration/harness/moe_mla.py`: `moe`, `moe_routed`
        /// and `grouped_mm` records) to fit the MoE model on (`train` configs only).
        /// Without it, `--transfer-decode-from` carries the other profile's MoE model over.
        #[arg(long, num_args = 1..)]
        moe: Vec<PathBuf>,
        /// Measured MLA attention layers (`mla_prefill`, `mla_decode` records) to fit
        /// MLA's own constants on (needs the decode model). Without it,
        /// `--transfer-decode-from` carries the other profile's MLA constants over.
        #[arg(long, num_args = 1..)]
        mla: Vec<PathBuf>,
        /// fp8 and int4 measurements of this GPU (`calibration/harness/precision_micro.py`:
        /// fp8 layers, fp8 and int4 decode steps, fp8 and int4 GEMMs): fits the
        /// profile's precision section with its bf16 constants fixed. Needs the
        /// bf16 decode model (`--decode` or `--transfer-decode-from`).
        #[arg(long, num_args = 1..)]
        precision: Vec<PathBuf>,
        /// Carry another GPU's precision section over to this one through the two
        /// spec sheets (for a GPU whose fp8 and int4 kernels were not measured;
        /// the profile says it was transferred).
        #[arg(long, conflicts_with = "precision")]
        transfer_precision_from: Option<PathBuf>,
        /// Peak HBM bandwidth (GB/s) bounding the fit, for a GPU with no built-in spec sheet.
        #[arg(long, requires = "dense_bf16_tflops")]
        hbm_gbps: Option<f64>,
        /// Dense bf16 peak (TFLOP/s) bounding the fit, for a GPU with no built-in spec sheet.
        #[arg(long, requires = "hbm_gbps")]
        dense_bf16_tflops: Option<f64>,
    },
    /// Search a family given as JSON (see `docs/SEARCH.md`), streaming it
    /// however large: per GPU the top candidates by latency and by latency
    /// per size, the constrained top, and the Pareto front of latency vs quality.
    Search {
        /// The search spec (JSON).
        #[arg(long)]
        spec: PathBuf,
        /// `measured` or `seed` for every GPU, replacing the spec's `cost_model`.
        #[arg(long, value_name = "measured|seed")]
        cost_model: Option<String>,
        /// Write the result here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Weight precision of the spec's workload (candidates without a `weights` axis or field):
        /// bf16, fp8 (e4m3, per-tensor scales, dynamic activation quantization)
        /// or int4 (weight-only, bf16 scales and zeros per group of 128).
        #[arg(long, value_name = "bf16|fp8|int4")]
        weights: Option<String>,
        /// KV-cache precision of the spec's workload: bf16 or fp8 (e4m3).
        #[arg(long = "kv-cache", value_name = "bf16|fp8")]
        kv_cache: Option<String>,
    },
    /// Measure the streaming engine: evaluate the first N candidates of a
    /// 10^8-candidate family, and print one JSON line.
    Bench {
        /// How many candidates (each evaluated on every GPU).
        #[arg(long, default_value_t = 20_000_000)]
        candidates: u64,
        /// GPUs, comma-separated.
        #[arg(long, default_value = "h100,h200", value_delimiter = ',')]
        hardware: Vec<String>,
        /// `measured` (default) or `seed`.
        #[arg(long, value_name = "measured|seed")]
        cost_model: Option<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Compare a calibration profile's predictions (and the seed model's) with
    /// measured layers: writes PREFIX.md (tables), PREFIX.svg (scatter plot) and
    /// PREFIX.html (both in one page).
    Fidelity {
        /// The calibration profile (from `nas calibrate`).
        #[arg(long)]
        calibration: PathBuf,
        /// Measurement files with the layers to compare (with `--precision`: the
        /// bf16 layers whose validation shapes mark fp8 layers as held out).
        #[arg(long, num_args = 1.., required_unless_present_any = ["decode", "moe", "precision", "stacks"])]
        measurements: Vec<PathBuf>,
        /// Instead of layers, compare fp8 / int4 measurements (`precision_micro.py`)
        /// with the profile's precision section (writes PREFIX.md).
        #[arg(long, num_args = 1.., conflicts_with = "decode")]
        precision: Vec<PathBuf>,
        /// Instead of layers, compare measured decode steps with the profile's
        /// decode fit and the seed's roofline (writes PREFIX.md).
        #[arg(long, num_args = 1.., conflicts_with = "measurements")]
        decode: Vec<PathBuf>,
        /// Instead of layers, compare measured MoE MLPs (with `--mla`, MLA layers too)
        /// with the profile's MoE and MLA models and a spec-sheet roofline (writes PREFIX.md).
        #[arg(long, num_args = 1.., conflicts_with_all = ["measurements", "decode"])]
        moe: Vec<PathBuf>,
        /// MLA layers for the `--moe` report.
        #[arg(long, num_args = 1.., requires = "moe")]
        mla: Vec<PathBuf>,
        /// Instead of layers, compare measured decode steps of whole mixed
        /// sliding/global and MoE models (`decode_stacks.py`: records that carry
        /// their Hugging Face config) with `nas predict --configs` on the
        /// profile's GPU (writes PREFIX.md).
        #[arg(long, num_args = 1.., conflicts_with_all = ["measurements", "decode", "moe", "precision"])]
        stacks: Vec<PathBuf>,
        /// Which measurement set to compare on.
        #[arg(long, default_value = "validation")]
        set: String,
        /// The seed profile to show beside ours.
        #[arg(long, default_value = "h100")]
        seed_hardware: String,
        /// Output prefix: writes PREFIX.md, PREFIX.svg and PREFIX.html.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints a line to stdout. A reader that went away (`nas ... | head`) ends
/// the output quietly; any other write error (a full disk under
/// `nas search > r.json`) returns it from the calling function, so the tool
/// exits 2 instead of leaving a truncated file behind a success.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*).and_then(|()| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(Error::Io {
                path: "standard output".into(),
                source: e,
            });
        }
    }};
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Predict {
            hardware,
            configs,
            seq_len,
            batch,
            context,
            training_tokens,
            cost_model,
            calibration,
            overrides,
            scaling_law,
            loss_params,
            tp,
            ep,
            weights,
            kv_cache,
        } => {
            let fit = nas::model::LossFit {
                law: nas::model::ScalingLaw::from_name(&scaling_law).unwrap_or_default(),
                count: nas::model::ParamCount::from_name(&loss_params).unwrap_or_default(),
            };
            let cost_model = cost_model.as_deref().map(cost_model_kind).transpose()?;
            let flags = WorkloadFlags::checked(seq_len, batch, context, training_tokens)?;
            let precision = precision_flags(weights.as_deref(), kv_cache.as_deref())?;
            let gpu = predict_gpu(&hardware, cost_model, calibration.as_deref(), &overrides)?;
            predict(
                gpu,
                &configs,
                fit,
                &flags,
                precision,
                tp.map(|tp| nas::parallel::stack::Deployment {
                    tp,
                    ep: ep.unwrap_or(1),
                }),
            )
        }
        Command::Import { files, seq_len } => import(&files, seq_len),
        Command::Pack {
            seed: _,
            cost_model,
            hardware,
            calibration_db,
            out,
            weights,
            kv_cache,
        } => {
            let precision = precision_flags(weights.as_deref(), kv_cache.as_deref())?;
            let calibration = match calibration_db {
                Some(path) => CalibrationBlock::load(&path)?,
                None => CalibrationBlock::disabled(),
            };
            let mut spec = nas::search::seed::pack_spec(calibration)?;
            let kind = cost_model_kind(&cost_model)?;
            if kind != CostModelKind::Seed || !hardware.is_empty() {
                let keys: Vec<String> = match hardware.is_empty() {
                    true => ["a100", "t4", "h100"].map(String::from).to_vec(),
                    false => hardware,
                };
                spec.hardware = resolve_keys(&keys, Some(kind))?;
                spec.limitations = nas::search::limitations_for(&spec.hardware);
            }
            if let Some((w, k)) = precision {
                let set = |p: &mut nas::precision::Precision| {
                    if let Some(w) = w {
                        p.weights = w;
                    }
                    if let Some(k) = k {
                        p.kv_cache = k;
                    }
                };
                spec.candidates.iter_mut().for_each(|c| set(&mut c.shape.precision));
                if let Some(g) = &mut spec.generated_search {
                    set(&mut g.workload.precision);
                }
            }
            let pack = spec.evaluate()?;
            pack.write_into_existing_folder(&out)?;
            eprintln!("wrote {0}.json, {0}.md and {0}.html", out.display());
            Ok(())
        }
        Command::Calibrate {
            measurements,
            out,
            exclude_sets,
            decode,
            decode_micro,
            transfer_decode_from,
            moe,
            mla,
            precision,
            transfer_precision_from,
            hbm_gbps,
            dense_bf16_tflops,
        } => {
            let limits =
                hbm_gbps
                    .zip(dense_bf16_tflops)
                    .map(|(hbm_gbps, dense_bf16_tflops)| nas::calibrate::PhysicalLimits {
                        hbm_gbps,
                        dense_bf16_tflops,
                        dense_fp8_tflops: None,
                        source: "given to nas calibrate (--hbm-gbps, --dense-bf16-tflops)".into(),
                    });
            // Read first: a bad precision file fails before anything is fitted or printed.
            let precision_set = match precision.is_empty() {
                true => None,
                false => Some(nas::calibrate::precision_fit::read(&precision)?),
            };
            let mut notes = Vec::new();
            let (profile, data) = calibrate(
                &measurements,
                &exclude_sets,
                Extras {
                    decode: &decode,
                    decode_micro: &decode_micro,
                    transfer_decode_from: transfer_decode_from.as_deref(),
                    moe: &moe,
                    mla: &mla,
                },
                limits,
                &mut notes,
            )?;
            let profile = calibrate_precision(
                profile,
                &data,
                &exclude_sets,
                precision_set,
                transfer_precision_from.as_deref(),
                &mut notes,
            )?;
            // A profile that reading would refuse is an error before anything is shown.
            let text = profile.to_json()?;
            for line in &notes {
                say!("{line}");
            }
            nas::report::write::write_atomic(&out, text.as_bytes())?;
            say!("wrote {}", out.display());
            Ok(())
        }
        Command::Search {
            spec,
            cost_model,
            out,
            quiet,
            weights,
            kv_cache,
        } => {
            let cost_model = cost_model.as_deref().map(cost_model_kind).transpose()?;
            precision_flags(weights.as_deref(), kv_cache.as_deref())?;
            search(
                &spec,
                cost_model,
                out.as_deref(),
                quiet,
                weights.as_deref(),
                kv_cache.as_deref(),
            )
        }
        Command::Bench {
            candidates,
            hardware,
            cost_model,
            quiet,
        } => {
            let cost_model = cost_model.as_deref().map(cost_model_kind).transpose()?;
            bench(candidates, &resolve_keys(&hardware, cost_model)?, quiet)
        }
        Command::Fidelity {
            calibration,
            measurements,
            set,
            seed_hardware,
            out,
            decode,
            moe,
            mla,
            precision,
            stacks,
        } => match (decode.is_empty(), moe.is_empty(), precision.is_empty()) {
            _ if !stacks.is_empty() => stack_decode_fidelity(&calibration, &stacks, &out),
            (_, false, _) => moe_mla_fidelity(&calibration, &moe, &mla, &out),
            (true, true, true) => fidelity(&calibration, &measurements, &set, &seed_hardware, &out),
            (false, true, _) => decode_fidelity(&calibration, &decode, &seed_hardware, &out),
            (true, true, false) => precision_fidelity(&calibration, &precision, &measurements, &set, &out),
        },
        Command::Hardware => list_hardware(),
        Command::Kernel {
            hardware,
            cost_model,
            calibration,
            queries,
        } => {
            let cost_model = cost_model.as_deref().map(cost_model_kind).transpose()?;
            let gpu = predict_gpu(&hardware, cost_model, calibration.as_deref(), &[])?;
            let doc = read_json(&queries)?;
            let list = nas::gpu::KernelQuery::list_from_json(&doc).map_err(|e| Error::Input {
                place: queries.display().to_string(),
                problem: e.to_string(),
            })?;
            let answers = list
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    gpu.kernel(q).map_err(|e| Error::Input {
                        place: format!("{}: queries[{i}]", queries.display()),
                        problem: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let text = serde_json::to_string_pretty(&answers).map_err(|e| Error::Spec(e.to_string()))?;
            say!("{text}");
            Ok(())
        }
    }
}

/// `measured` or `seed`, as the CLI's `--cost-model` takes it.
fn cost_model_kind(word: &str) -> Result<CostModelKind> {
    CostModelKind::from_name(word).map_err(|e| Error::Spec(format!("--cost-model: {e}")))
}

/// Built-in GPUs by key (trimmed), each under `cost_model` (default measured).
fn resolve_keys(keys: &[String], cost_model: Option<CostModelKind>) -> Result<Vec<Gpu>> {
    let targets: Vec<GpuTarget> = keys
        .iter()
        .map(|k| GpuTarget {
            cost_model,
            ..GpuTarget::builtin_owned(k.trim())
        })
        .collect();
    Registry::builtin().resolve_all(&targets)
}

/// `nas hardware`: per GPU its spec sheet, the cost models it has, and where
/// each number comes from.
fn list_hardware() -> Result<()> {
    let registry = Registry::builtin();
    for e in registry.entries() {
        say!("{} ({})", e.key, e.label);
        let s = &e.spec;
        let show = |v: Option<f64>, unit: &str| v.map_or("unknown".to_string(), |v| format!("{v} {unit}"));
        say!(
            "  spec sheet: {} SMs, {} L2, HBM {}, dense bf16 {}, dense fp8 {}, memory {}",
            s.sm_count.map_or("unknown".into(), |n| n.to_string()),
            s.l2_bytes.map_or("unknown".into(), |b| format!("{} MiB", b >> 20)),
            show(s.hbm_gbps, "GB/s"),
            show(s.dense_bf16_tflops, "TFLOP/s"),
            show(s.dense_fp8_tflops, "TFLOP/s"),
            show(s.memory_gib.map(|m| (m * 100.0).round() / 100.0), "GiB"),
        );
        say!("    source: {}", s.source);
        let names = |v: Vec<&str>| v.join(", ");
        say!(
            "  precisions its kernels run: weights {}; KV cache {}",
            names(nas::precision::supported_weights(s).iter().map(|p| p.name()).collect()),
            names(nas::precision::supported_kv_cache(s).iter().map(|p| p.name()).collect())
        );
        for kind in CostModelKind::ALL {
            match registry.resolve(&GpuTarget::builtin(e.key).with_cost_model(kind)) {
                Ok(gpu) => {
                    let p = gpu.provenance();
                    let default = if kind == CostModelKind::Measured {
                        " (default)"
                    } else {
                        ""
                    };
                    say!("  cost model `{}`{default}: {}", kind.name(), p.source);
                    if let Some(profile) = &p.profile {
                        say!(
                            "    profile: {profile}, data sha256 {}",
                            p.data_sha256.as_deref().unwrap_or("?")
                        );
                    }
                    match &p.validation {
                        Some(v) => say!(
                            "    held out: MAPE {:.2}%, {:.1}% within ±10%, worst {:.1}% on {} `{}` layers never fitted on",
                            v.mape_pct,
                            v.within_10_pct,
                            v.max_abs_pct,
                            v.rows,
                            v.set
                        ),
                        None if kind == CostModelKind::Measured => say!("    held out: none recorded in the profile"),
                        None => {}
                    }
                    if let Some(t) = gpu.seed_throughputs() {
                        let values: Vec<String> = nas::hardware::THROUGHPUT_KEYS
                            .iter()
                            .zip(t.values())
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        say!("    {}", values.join(" "));
                    }
                    say!("    decode: {}", p.decode);
                    match &p.precision {
                        Some(x) => say!("    precision: {x}"),
                        None if kind == CostModelKind::Seed => {
                            say!("    precision: bf16 only (the seed's formula has no precision)")
                        }
                        None => say!("    precision: bf16 only (no precision section)"),
                    }
                }
                Err(err) => say!("  cost model `{}`: not available ({err})", kind.name()),
            }
        }
    }
    Ok(())
}

/// Reads a whole JSON file (at most 64 MiB, nested at most 128 deep), naming
/// the file and the position of a syntax error.
fn read_json(path: &Path) -> Result<Value> {
    let bytes = nas::input::read_file(path)?;
    nas::input::parse_json(&bytes, &path.display().to_string())
}

/// What `--calibration` held: the seed's DB (overrides of the seed model) or
/// a measured profile (the kernel-aware model).
enum Calibration {
    SeedDb(CalibrationBlock),
    Profile(nas::gpu::MeasuredProfile),
}

fn read_calibration(path: &Path) -> Result<Calibration> {
    let bytes = nas::input::read_file(path)?;
    let place = path.display().to_string();
    let is_profile = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("model").is_some());
    if is_profile {
        Ok(Calibration::Profile(nas::gpu::registry::read_profile(&place)?))
    } else {
        Ok(Calibration::SeedDb(CalibrationBlock::from_bytes(&place, &bytes)?))
    }
}

/// The GPU `predict` evaluates on: `--hardware` under `--cost-model`, with
/// `--calibration`'s profile or seed DB and `--override`s applied.
fn predict_gpu(
    hardware_key: &str,
    cost_model: Option<CostModelKind>,
    calibration: Option<&Path>,
    overrides: &[String],
) -> Result<Gpu> {
    let assignments = overrides
        .iter()
        .map(|o| Overrides::parse_assignment(o))
        .collect::<Result<Vec<_>>>()?;
    let overrides = Overrides::new(assignments)?;
    let kind = cost_model.unwrap_or_default();
    if kind == CostModelKind::Measured && !overrides.is_empty() {
        return Err(Error::Spec(
            "--override changes seed-model throughputs; add --cost-model seed (a measured profile has its own fitted ones)"
                .into(),
        ));
    }
    let target = GpuTarget {
        cost_model: Some(kind),
        ..GpuTarget::builtin_owned(hardware_key)
    };
    let calibration = calibration.map(read_calibration).transpose()?;
    let gpu = match calibration {
        Some(Calibration::Profile(profile)) => {
            if kind == CostModelKind::Seed {
                return Err(Error::Spec(format!(
                    "--calibration {} is a measured profile, but --cost-model seed was asked for",
                    profile.source
                )));
            }
            Registry::builtin().resolve(&GpuTarget {
                profile: Some(profile.source.clone()),
                ..target
            })?
        }
        Some(Calibration::SeedDb(block)) => {
            if kind != CostModelKind::Seed {
                return Err(Error::Spec(
                    "--calibration names the seed's calibration DB, which adjusts the seed model: add --cost-model seed"
                        .into(),
                ));
            }
            Registry::builtin()
                .resolve(&target)?
                .with_overrides(&block.overrides_for(hardware_key))
        }
        None => Registry::builtin().resolve(&target)?,
    };
    Ok(gpu.with_overrides(&overrides))
}

/// `--seq-len`, `--batch`, `--context`, `--training-tokens`: the workload of
/// configs, and of shapes that set none.
struct WorkloadFlags {
    seq_len: Option<u64>,
    batch: Option<u64>,
    context: Option<u64>,
    training_tokens: Option<u64>,
}

impl WorkloadFlags {
    fn checked(
        seq_len: Option<u64>,
        batch: Option<u64>,
        context: Option<u64>,
        training_tokens: Option<u64>,
    ) -> Result<Self> {
        let limits = [
            ("--seq-len", seq_len, nas::shapes::MAX_DIM),
            ("--batch", batch, nas::shapes::MAX_DIM),
            ("--context", context, nas::shapes::MAX_DIM),
            ("--training-tokens", training_tokens, nas::shapes::MAX_TRAINING_TOKENS),
        ];
        for (flag, value, limit) in limits {
            if let Some(v) = value {
                if v == 0 || v > limit {
                    return Err(Error::Spec(format!("{flag}: must be between 1 and {limit}, got {v}")));
                }
            }
        }
        Ok(WorkloadFlags {
            seq_len,
            batch,
            context,
            training_tokens,
        })
    }

    /// A config's workload: the flags, else 2048 tokens, batch 1, context = seq_len.
    fn workload(&self) -> nas::stack::StackWorkload {
        let seq_len = self.seq_len.unwrap_or(2048);
        nas::stack::StackWorkload {
            seq_len,
            batch: self.batch.unwrap_or(1),
            context: self.context.unwrap_or(seq_len),
        }
    }

    /// Sets the keys a shape object leaves out (the whole-model ones only on
    /// whole-model shapes).
    fn fill(&self, item: &Value) -> Value {
        let mut item = item.clone();
        if let Value::Object(obj) = &mut item {
            let whole = obj.contains_key("num_layers");
            let keys = [
                ("seq_len", self.seq_len, true),
                ("batch_size", self.batch, true),
                ("context_len", self.context, whole),
                ("training_tokens", self.training_tokens, whole),
            ];
            for (key, value, applies) in keys {
                if let (Some(v), true, false) = (value, applies, obj.contains_key(key)) {
                    obj.insert(key.into(), json!(v));
                }
            }
        }
        item
    }
}

/// One entry of `predict`'s input: a shape (its index among the shapes) or
/// a Hugging Face config read into a stack.
enum PredictItem {
    Shape(usize),
    Config(String, nas::stack::ModelStack),
}

/// The name of a Hugging Face config inside an array: `name`, else `_name_or_path`, else its place.
fn config_name(item: &Value, place: &str, i: usize) -> Result<String> {
    for key in ["name", "_name_or_path"] {
        match item.get(key) {
            Some(Value::String(s)) if !s.is_empty() => return Ok(s.clone()),
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => {
                return Err(Error::Input {
                    place: format!("{place}: configs[{i}]"),
                    problem: format!("{key}: must be a string"),
                })
            }
        }
    }
    Ok(format!("configs[{i}]"))
}

/// A shape object with the precision flags set where it sets none itself.
fn fill_precision(mut item: Value, precision: PrecisionFlags) -> Value {
    if let (Some((w, k)), Value::Object(obj)) = (precision, &mut item) {
        if let Some(w) = w {
            obj.entry("weights").or_insert_with(|| json!(w.name()));
        }
        if let Some(k) = k {
            obj.entry("kv_cache").or_insert_with(|| json!(k.name()));
        }
    }
    item
}

/// `--weights` and `--kv-cache`, checked: each `None` when not given.
type PrecisionFlags = Option<(
    Option<nas::precision::WeightPrecision>,
    Option<nas::precision::KvCachePrecision>,
)>;

fn precision_flags(weights: Option<&str>, kv_cache: Option<&str>) -> Result<PrecisionFlags> {
    use nas::precision::{KvCachePrecision, WeightPrecision};
    let w = weights
        .map(|w| WeightPrecision::from_name(w).map_err(|e| Error::Spec(format!("--weights: {e}"))))
        .transpose()?;
    let k = kv_cache
        .map(|k| KvCachePrecision::from_name(k).map_err(|e| Error::Spec(format!("--kv-cache: {e}"))))
        .transpose()?;
    Ok((w.is_some() || k.is_some()).then_some((w, k)))
}

fn predict(
    gpu: Gpu,
    configs: &Path,
    loss_fit: nas::model::LossFit,
    flags: &WorkloadFlags,
    precision: PrecisionFlags,
    deployment: Option<nas::parallel::stack::Deployment>,
) -> Result<()> {
    let doc = read_json(configs)?;
    let place = configs.display().to_string();
    let mut items = Vec::new();
    let mut names = Vec::new();
    let mut shapes: Vec<LayerShape> = Vec::new();
    let mut warnings = Vec::new();
    let mut add_config = |name: String, value: &Value, at: &str, items: &mut Vec<PredictItem>| -> Result<()> {
        let imported = nas::stack::hf::from_config(value, at)?;
        warnings.extend(imported.warnings);
        items.push(PredictItem::Config(name, imported.stack));
        Ok(())
    };
    match &doc {
        Value::Object(_) if nas::stack::hf::is_hf_config(&doc) => {
            let stem = configs
                .file_stem()
                .map_or("config".into(), |s| s.to_string_lossy().into_owned());
            add_config(stem, &doc, &place, &mut items)?;
        }
        Value::Array(list) => {
            for (i, item) in list.iter().enumerate() {
                let at = format!("{place}: configs[{i}]");
                if nas::stack::hf::is_hf_config(item) {
                    add_config(config_name(item, &place, i)?, item, &at, &mut items)?;
                } else {
                    let (name, shape) = LayerShape::from_json(&fill_precision(flags.fill(item), precision), &at)?;
                    let name = name.ok_or_else(|| Error::Input {
                        place: at.clone(),
                        problem: "missing key `name`".into(),
                    })?;
                    items.push(PredictItem::Shape(shapes.len()));
                    names.push(name);
                    shapes.push(shape);
                }
            }
        }
        // The shapes' reader names what it expected.
        _ => {
            nas::shapes::configs_from_json(&doc, &place)?;
        }
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if precision.is_some() {
        if let Some(PredictItem::Config(name, _)) = items.iter().find(|i| matches!(i, PredictItem::Config(..))) {
            return Err(Error::Spec(format!(
                "{place}: `{name}`: --weights and --kv-cache apply to shapes so far; a Hugging Face config is priced \
                 in bf16 (write it as a shape: `nas import` prints one)"
            )));
        }
    }
    for (name, shape) in names.iter().zip(&mut shapes) {
        shape.model.loss_fit = loss_fit;
        gpu.check_precision(&shape.precision)
            .map_err(|e| Error::Spec(format!("{place}: `{name}`: {e}")))?;
    }
    let latency = Latencies::new(std::slice::from_ref(&gpu), &shapes);
    let step = gpu.step_throughputs()?;
    let source = gpu.provenance().summary();
    let workload = flags.workload();
    let training = flags.training_tokens.map(|t| (loss_fit, t));
    // Everything that can fail is done before the first byte is printed:
    // the configs' answers, and every shape's split over the GPUs.
    if let Some(d) = deployment {
        nas::parallel::CollectiveModel::for_gpu(&gpu.key, d.tp)?;
        for &i in items.iter().filter_map(|item| match item {
            PredictItem::Shape(i) => Some(i),
            PredictItem::Config(..) => None,
        }) {
            let problem = if d.ep != 1 {
                Some("--ep needs a mixture of experts; a shape has none".to_string())
            } else {
                nas::parallel::shard(&shapes[i], d.tp).err().map(|p| p.message)
            };
            if let Some(problem) = problem {
                return Err(Error::Spec(format!("{place}: `{}`: {problem}", names[i])));
            }
        }
    }
    let answers: Vec<Option<Value>> = items
        .iter()
        .map(|item| match item {
            PredictItem::Shape(_) => Ok(None),
            PredictItem::Config(name, stack) => {
                let p = nas::stack::report::predict(name, stack, &gpu, &workload, training)?;
                let mut o = serde_json::to_value(&p).map_err(|e| Error::Spec(e.to_string()))?;
                if let (Some(deployment), Value::Object(obj)) = (deployment, &mut o) {
                    let figures = nas::parallel::stack::stack_figures(stack, &gpu, &workload, deployment)
                        .map_err(|e| Error::Spec(format!("{place}: `{name}`: {e}")))?;
                    obj.insert("tensor_parallel".into(), json!(figures));
                }
                Ok(Some(o))
            }
        })
        .collect::<Result<_>>()?;
    // One answer at a time: a 64 MiB shape list holds 300,000 shapes, whose
    // answers as one JSON tree took 4 GiB.
    say_json_array(items.len(), |n| {
        Ok(match &items[n] {
            PredictItem::Shape(i) => {
                let i = *i;
                let kernels = latency.kernels(i, 0);
                let per_kernel: Map<String, Value> = kernels.named().map(|(k, v)| (k.to_string(), json!(v))).collect();
                let mut o = json!({
                    "name": names[i],
                    // the shape as evaluated, defaults filled in (`use_qk_norm`, `batch_size`...)
                    "config": shapes[i],
                    "total_ms": latency.total_ms(i, 0),
                    "per_kernel": per_kernel,
                    "bottleneck": kernels.bottleneck(),
                    "tile_penalties": TilePenalties::of(&shapes[i]),
                    "cost_model": gpu.cost_model().name(),
                    "source": source,
                });
                if let (Value::Object(obj), Some(label)) = (&mut o, shapes[i].precision.report_label()) {
                    obj.insert("precision".into(), json!(label));
                    if let Some(p) = gpu.precision_provenance(&shapes[i].precision) {
                        obj.insert("precision_source".into(), json!(p));
                    }
                }
                whole_model_keys(&mut o, &shapes[i], latency.total_ms(i, 0), &gpu, &step)?;
                if let (Some(deployment), Value::Object(obj)) = (deployment, &mut o) {
                    let figures = nas::parallel::figures(&shapes[i], &gpu, deployment.tp)
                        .map_err(|e| Error::Spec(format!("{place}: `{}`: {e}", names[i])))?;
                    if let Some(figures) = figures {
                        obj.insert("tensor_parallel".into(), json!(figures));
                    }
                }
                o
            }
            PredictItem::Config(..) => answers[n].clone().unwrap_or(Value::Null),
        })
    })
}

/// Prints a JSON array of `n` values made one at a time by `item`, byte for
/// byte as `serde_json::to_string_pretty` prints the whole array, holding
/// only one value in memory. Write errors are handled as [`say!`]'s.
fn say_json_array(n: usize, item: impl Fn(usize) -> Result<Value>) -> Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed: Option<Error> = None;
    let mut write = || -> std::io::Result<()> {
        if n == 0 {
            return writeln!(out, "[]");
        }
        out.write_all(b"[\n")?;
        for i in 0..n {
            let value = match item(i) {
                Ok(v) => v,
                Err(e) => {
                    // Ends the array where the error is met; the error is what the command returns.
                    failed = Some(e);
                    return out.flush();
                }
            };
            let text = serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?;
            for (j, line) in text.lines().enumerate() {
                if j > 0 {
                    out.write_all(b"\n")?;
                }
                out.write_all(b"  ")?;
                out.write_all(line.as_bytes())?;
            }
            out.write_all(if i + 1 < n { b",\n" } else { b"\n" })?;
        }
        out.write_all(b"]\n")?;
        out.flush()
    };
    let written = write();
    if let Some(e) = failed {
        return Err(e);
    }
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::Io {
            path: "standard output".into(),
            source: e,
        }),
    }
}

/// `nas import`: each config as the DSL's `known` block and as a JSON shape.
fn import(files: &[PathBuf], seq_len: u64) -> Result<()> {
    if seq_len == 0 || seq_len > nas::shapes::MAX_DIM {
        return Err(Error::Spec(format!(
            "--seq-len: must be between 1 and {}, got {seq_len}",
            nas::shapes::MAX_DIM
        )));
    }
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        let doc = read_json(file)?;
        let place = file.display().to_string();
        if !nas::stack::hf::is_hf_config(&doc) {
            return Err(Error::Input {
                place,
                problem: "expected a Hugging Face config (a JSON object with `model_type`)".into(),
            });
        }
        let imported = nas::stack::hf::from_config(&doc, &place)?;
        for w in &imported.warnings {
            eprintln!("warning: {w}");
        }
        let stem = file
            .file_stem()
            .map_or("config".into(), |s| s.to_string_lossy().into_owned());
        texts.push(nas::stack::report::import(&stem, &place, &imported.stack, seq_len)?);
    }
    say!("{}", texts.join("\n").trim_end());
    Ok(())
}

/// Adds what a whole-model shape allows: `params` (and `active_params` for
/// a mixture of experts), `weight_bytes`, `kv_cache_bytes_per_token`,
/// `prefill_ms`, `decode_ms` (with their per-kernel breakdowns) and
/// `loss_estimate` (with training tokens; none for a mixture of experts).
fn whole_model_keys(
    out: &mut Value,
    shape: &LayerShape,
    layer_ms: f64,
    gpu: &Gpu,
    step: &nas::model::StepThroughputs,
) -> Result<()> {
    let (Some(figures), Value::Object(obj)) = (nas::model::figures(shape), out) else {
        return Ok(());
    };
    obj.insert("params".into(), json!(figures.parameters.total));
    if let Some(active) = figures.parameters.active {
        obj.insert("active_params".into(), json!(active));
    }
    obj.insert("weight_bytes".into(), json!(figures.memory.weight_bytes));
    obj.insert(
        "kv_cache_bytes_per_token".into(),
        json!(figures.memory.kv_cache_bytes_per_token),
    );
    if let Some((p, d)) = nas::model::steps_on(shape, gpu, step, layer_ms)? {
        obj.insert("prefill_ms".into(), json!(p.total_ms));
        obj.insert("prefill_per_kernel".into(), json!(p.per_kernel));
        obj.insert("decode_ms".into(), json!(d.total_ms));
        obj.insert("decode_per_kernel".into(), json!(d.per_kernel));
    }
    if let Some(loss) = figures.loss_estimate {
        obj.insert("loss_estimate".into(), json!(loss));
    }
    Ok(())
}

/// One line of `nas calibrate`'s summary: how a fit meets one set of its records.
fn residual_line(label: &str, unit: &str, s: &nas::calibrate::profile::ResidualStats) -> String {
    format!(
        "  {label} {:>4} {unit}  MAPE {:>6.2}%  max {:>6.2}%  within10 {:>5.1}%",
        s.rows, s.mape_pct, s.max_abs_pct, s.within_10_pct
    )
}

/// What `nas calibrate` fits besides the layer model.
struct Extras<'a> {
    decode: &'a [PathBuf],
    decode_micro: &'a [PathBuf],
    transfer_decode_from: Option<&'a Path>,
    moe: &'a [PathBuf],
    mla: &'a [PathBuf],
}

fn calibrate(
    files: &[PathBuf],
    exclude_sets: &[String],
    extras: Extras,
    limits: Option<nas::calibrate::PhysicalLimits>,
    notes: &mut Vec<String>,
) -> Result<(CalibrationProfile, MeasurementSet)> {
    let Extras {
        decode: decode_files,
        decode_micro: decode_micro_files,
        transfer_decode_from,
        moe: moe_files,
        mla: mla_files,
    } = extras;
    // What the fit prints, shown by the caller only once the profile is
    // known to be writable: a refused fit prints nothing on standard output.
    macro_rules! note {
        ($($arg:tt)*) => { notes.push(format!($($arg)*)) };
    }
    let data = MeasurementSet::read(files)?;
    let excluded: Vec<&str> = exclude_sets.iter().map(String::as_str).collect();
    let (mut profile, rows) = CalibrationProfile::fit(&data, &excluded, limits)?;
    let no_limits = || Error::Spec(format!("no physical limits known for `{}`", profile.gpu));
    if let Some(from_path) = transfer_decode_from {
        let from = read_profile(from_path)?;
        let fit = from.decode_model.as_ref().ok_or_else(|| Error::Input {
            place: from_path.display().to_string(),
            problem: "the profile has no kernel-aware decode model to transfer".into(),
        })?;
        let (from_limits, to_limits) = (
            from.physical_limits().ok_or_else(no_limits)?,
            profile.physical_limits().ok_or_else(no_limits)?,
        );
        let source = format!("{} ({})", from.gpu, from_path.display());
        let mut moved = fit.transfer(&from_limits, &to_limits, &source);
        note!("decode: kernel-aware model transferred from {source}");
        if !decode_micro_files.is_empty() {
            let (micro, skipped, _) = nas::calibrate::decode_fit::read_micro(decode_micro_files)?;
            if let Some(m) = micro.first() {
                nas::calibrate::decode::check_same_gpu("decode micro-benchmarks", &m.gpu, &profile.gpu)?;
            }
            let files: Vec<String> = decode_micro_files.iter().map(|f| f.display().to_string()).collect();
            moved = moved.refine(
                &micro,
                &to_limits,
                &format!(
                    "{} micro-benchmarks of {} ({})",
                    micro.len(),
                    profile.gpu,
                    files.join(", ")
                ),
            )?;
            note!(
                "decode: single-kernel constants refitted on {} micro-benchmarks ({skipped} left out)",
                micro.len()
            );
            for (name, f) in &moved.fitted {
                note!("  {name:<28} {:>12.3} {}", f.throughput, f.unit);
            }
            if let Some(s) = moved.residuals.get("refined_micro") {
                note!(
                    "  refined micro MAPE {:.2}% within10 {:.1}%",
                    s.mape_pct,
                    s.within_10_pct
                );
            }
        }
        profile.decode_model = Some(moved);
        if let (Some(m), true) = (&from.moe_model, moe_files.is_empty()) {
            profile.moe_model = Some(m.transfer(&from_limits, &to_limits, &source));
            note!("moe: MoE model transferred from {source}");
        }
        if let (Some(m), true) = (&from.mla_model, mla_files.is_empty()) {
            profile.mla_model = Some(m.transfer(&from_limits, &to_limits, &source));
            note!("mla: MLA constants transferred from {source}");
        }
    }
    let compiled = |r: &nas::calibrate::decode::DecodeRecord| r.truth.as_deref() == Some("compiled_graph");
    if transfer_decode_from.is_none() && !decode_micro_files.is_empty() && decode_files.is_empty() {
        return Err(Error::Spec(
            "--decode-micro goes with --decode (compiled steps) or --transfer-decode-from".into(),
        ));
    }
    if !decode_files.is_empty() {
        let (records, sha) = nas::calibrate::decode::read(decode_files)?;
        nas::calibrate::decode::check_same_gpu("decode steps", &records[0].gpu, &profile.gpu)?;
        if !decode_micro_files.is_empty() && !records.iter().all(compiled) {
            return Err(Error::Spec(
                "--decode-micro goes with compiled decode steps (truth compiled_graph)".into(),
            ));
        }
        if records.iter().any(compiled) {
            if !records.iter().all(compiled) {
                return Err(Error::Spec(
                    "the decode files mix compiled and eager steps: fit one kind of truth at a time".into(),
                ));
            }
            let limits = profile.physical_limits().ok_or_else(no_limits)?;
            let (micro, skipped, _) = nas::calibrate::decode_fit::read_micro(decode_micro_files)?;
            if let Some(m) = micro.first() {
                nas::calibrate::decode::check_same_gpu("decode micro-benchmarks", &m.gpu, &profile.gpu)?;
            }
            if !decode_micro_files.is_empty() {
                note!(
                    "decode micro-benchmarks: {} fitted on, {skipped} left out (failed or warm in L2)",
                    micro.len()
                );
            }
            let fit = nas::calibrate::decode_fit::fit(&records, &micro, &sha, &limits)?;
            note!(
                "decode: kernel-aware model, ramp {} MiB, fitted on {} ({} records)",
                fit.ramp_bytes / 1048576.0,
                fit.trained_on.join(", "),
                records.len()
            );
            for (name, f) in &fit.fitted {
                note!("  {name:<28} {:>12.3} {}", f.throughput, f.unit);
            }
            for (set, s) in &fit.residuals {
                notes.push(residual_line(&format!("decode {set:<20}"), "steps", s));
            }
            profile.decode_model = Some(fit);
        } else {
            let layer = profile.step_throughputs().ok_or_else(|| {
                Error::Spec("the layer fit has no bandwidth or GEMM throughput to start decode from".into())
            })?;
            let fit = nas::calibrate::decode::fit(&records, &sha, &layer)?;
            note!(
                "decode: {:.0} GB/s, {:.4} ms per kernel; MAPE {:.2}% on {} (train), {} on the rest",
                fit.bandwidth_gbps,
                fit.launch_ms,
                fit.train_mape_pct,
                fit.trained_on.join(", "),
                fit.validation_mape_pct
                    .map_or("n/a".to_string(), |m| format!("{m:.2}%"))
            );
            profile.decode = Some(fit);
        }
    }
    if !moe_files.is_empty() {
        let (records, skipped, sha) = nas::calibrate::moe_fit::read(moe_files)?;
        let limits = profile.physical_limits().ok_or_else(no_limits)?;
        let fit = nas::calibrate::moe_fit::fit(&records, &sha, &limits, profile.sm_count)?;
        note!(
            "moe: {} records ({skipped} left out: failed or the probe), ramp {} MiB, fitted on {}",
            records.len(),
            fit.ramp_bytes / 1048576.0,
            fit.trained_on.join(", ")
        );
        for (name, f) in &fit.fitted {
            note!("  {name:<32} {:>12.3} {}", f.throughput, f.unit);
        }
        for (set, s) in &fit.residuals {
            notes.push(residual_line(&format!("moe {set:<28}"), "rows", s));
        }
        profile.moe_model = Some(fit);
    }
    if !mla_files.is_empty() {
        let (records, skipped, sha) = nas::calibrate::mla_fit::read(mla_files)?;
        let fit = nas::calibrate::mla_fit::fit(&records, &sha, &profile)?;
        note!(
            "mla: {} records ({skipped} left out: failed), fitted on {}",
            records.len(),
            fit.trained_on.join(", ")
        );
        for (name, f) in &fit.fitted {
            note!("  {name:<32} {:>12.3} {}", f.throughput, f.unit);
        }
        for (set, s) in &fit.residuals {
            notes.push(residual_line(&format!("mla {set:<28}"), "rows", s));
        }
        profile.mla_model = Some(fit);
    }
    note!(
        "fitted {} ({} SMs) on {} records",
        profile.gpu,
        profile.sm_count,
        rows.len()
    );
    note!("{:<34} {:>12} unit", "resource", "throughput");
    for (name, f) in &profile.fitted {
        let note = match profile.fallbacks.get(name) {
            Some(to) => format!(" (no data: uses {to})"),
            None if f.ms_per_unit == 0.0 => " (fitted to zero: no measurable cost)".to_string(),
            None if profile.at_limit(name) => " (at its physical limit)".to_string(),
            None => String::new(),
        };
        note!("{name:<34} {:>12.2} {}{note}", f.throughput, f.unit);
    }
    note!(
        "{:<14} {:>6} {:>8} {:>8} {:>10}",
        "residuals",
        "rows",
        "MAPE%",
        "max%",
        "within10%"
    );
    let cv = profile.cross_validation.iter().map(|(k, s)| (format!("cv {k}"), s));
    let held = profile.validation.iter().map(|(k, s)| (format!("held-out {k}"), s));
    let own = profile.residuals.iter().map(|(k, s)| (k.clone(), s));
    for (kind, s) in own.chain(cv).chain(held) {
        note!(
            "{kind:<14} {:>6} {:>8.2} {:>8.2} {:>10.1}",
            s.rows,
            s.mape_pct,
            s.max_abs_pct,
            s.within_10_pct
        );
    }
    let mut worst = rows.clone();
    worst.sort_by(|a, b| b.relative_error().abs().total_cmp(&a.relative_error().abs()));
    note!("worst rows:");
    for r in worst.iter().take(8) {
        note!(
            "  {:+7.1}%  {:<12} measured {:.4} ms, predicted {:.4} ms  ({})",
            r.relative_error() * 100.0,
            r.kind,
            r.measured_ms,
            r.predicted_ms,
            r.origin
        );
    }
    Ok((profile, data))
}

/// The precision section: fitted on this GPU's fp8 / int4 measurements
/// (`--precision`), or carried over from another profile (`--transfer-precision-from`).
fn calibrate_precision(
    mut profile: CalibrationProfile,
    data: &MeasurementSet,
    exclude_sets: &[String],
    set: Option<nas::calibrate::precision_fit::PrecisionSet>,
    transfer_from: Option<&Path>,
    notes: &mut Vec<String>,
) -> Result<CalibrationProfile> {
    macro_rules! note {
        ($($arg:tt)*) => { notes.push(format!($($arg)*)) };
    }
    use nas::calibrate::precision_fit;
    let no_limits = || Error::Spec(format!("no physical limits known for `{}`", profile.gpu));
    if let Some(from_path) = transfer_from {
        let from = read_profile(from_path)?;
        let fit = from.precision.as_ref().ok_or_else(|| Error::Input {
            place: from_path.display().to_string(),
            problem: "the profile has no precision section to transfer".into(),
        })?;
        if profile.decode_model.is_none() {
            return Err(Error::Spec(
                "--transfer-precision-from needs this profile's bf16 decode model (--decode or --transfer-decode-from)"
                    .into(),
            ));
        }
        let (from_limits, to_limits) = (
            from.physical_limits().ok_or_else(no_limits)?,
            profile.physical_limits().ok_or_else(no_limits)?,
        );
        let source = format!("{} ({})", from.gpu, from_path.display());
        profile.precision = Some(fit.transfer(&from_limits, &to_limits, &source));
        note!("precision: fp8 / int4 constants transferred from {source} (not measured on this GPU)");
        return Ok(profile);
    }
    let Some(set) = set else {
        return Ok(profile);
    };
    if set.gpu != profile.gpu {
        return Err(Error::Spec(format!(
            "the precision files were measured on `{}`, the layers on `{}`: calibrate one GPU at a time",
            set.gpu, profile.gpu
        )));
    }
    let validation: Vec<LayerShape> = data
        .measurements
        .iter()
        .filter(|m| exclude_sets.contains(&m.set))
        .filter_map(|m| match &m.subject {
            nas::calibrate::Subject::Layer(s) => Some(**s),
            _ => None,
        })
        .collect();
    let limits = profile.physical_limits().ok_or_else(no_limits)?;
    let (fit, rows) = precision_fit::fit(&profile, &set, &validation, &limits)?;
    note!(
        "precision: fitted on {} records ({} skipped: bf16 twins, bare GEMMs, probes)",
        fit.data.records.values().sum::<usize>(),
        fit.data.skipped
    );
    for (section, map) in [("layer", &fit.layer), ("kernel", &fit.kernel), ("decode", &fit.decode)] {
        for (name, f) in map {
            note!("  {section:<7} {name:<28} {:>12.3} {}", f.throughput, f.unit);
        }
    }
    for (key, s) in &fit.residuals {
        notes.push(residual_line(&format!("{key:<34}"), "rows", s));
    }
    let mut worst: Vec<_> = rows.iter().filter(|r| r.set == "validation").collect();
    worst.sort_by(|a, b| b.relative_error().abs().total_cmp(&a.relative_error().abs()));
    for r in worst.iter().take(6) {
        note!(
            "  worst held-out {:+7.1}%  {:<18} {}  measured {:.4} ms, predicted {:.4} ms",
            r.relative_error() * 100.0,
            r.group,
            r.name,
            r.measured_ms,
            r.predicted_ms
        );
    }
    profile.precision = Some(fit);
    Ok(profile)
}

fn precision_fidelity(profile_path: &Path, files: &[PathBuf], layers: &[PathBuf], set: &str, out: &Path) -> Result<()> {
    let profile = read_profile(profile_path)?;
    let data = nas::calibrate::precision_fit::read(files)?;
    let validation: Vec<LayerShape> = match layers.is_empty() {
        true => Vec::new(),
        false => MeasurementSet::read(layers)?
            .measurements
            .into_iter()
            .filter(|m| m.set == set)
            .filter_map(|m| match &m.subject {
                nas::calibrate::Subject::Layer(s) => Some(**s),
                _ => None,
            })
            .collect(),
    };
    let rows = nas::calibrate::precision_fit::predict_rows(&profile, &data, &validation)?;
    let command = format!(
        "nas fidelity --calibration {} --precision {} --measurements {} --out {}",
        profile_path.display(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        layers
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        out.display()
    );
    let md = nas::report::precision_fidelity::markdown(
        &profile,
        &profile_path.display().to_string(),
        &data,
        &rows,
        &command,
    );
    let path = nas::report::write::with_suffix(out, "md");
    nas::report::write::write_atomic(&path, md.as_bytes())?;
    say!("wrote {}", path.display());
    Ok(())
}

fn moe_mla_fidelity(profile_path: &Path, moe_files: &[PathBuf], mla_files: &[PathBuf], out: &Path) -> Result<()> {
    let profile = read_profile(profile_path)?;
    let (moe, _, moe_sha) = nas::calibrate::moe_fit::read(moe_files)?;
    let (mla, mla_sha) = match mla_files.is_empty() {
        true => (Vec::new(), String::new()),
        false => {
            let (r, _, sha) = nas::calibrate::mla_fit::read(mla_files)?;
            (r, sha)
        }
    };
    let names = |files: &[PathBuf]| {
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut command = format!(
        "nas fidelity --calibration {} --moe {}",
        profile_path.display(),
        names(moe_files)
    );
    if !mla_files.is_empty() {
        command.push_str(&format!(" --mla {}", names(mla_files)));
    }
    command.push_str(&format!(" --out {}", out.display()));
    let md = nas::calibrate::moe_mla_report::fidelity_markdown(&nas::calibrate::moe_mla_report::ReportInput {
        profile: &profile,
        profile_place: &profile_path.display().to_string(),
        moe: &moe,
        moe_sha256: &moe_sha,
        mla: &mla,
        mla_sha256: &mla_sha,
        command: &command,
    })?;
    let path = nas::report::write::with_suffix(out, "md");
    nas::report::write::write_atomic(&path, md.as_bytes())?;
    say!("wrote {}", path.display());
    Ok(())
}

fn stack_decode_fidelity(profile_path: &Path, files: &[PathBuf], out: &Path) -> Result<()> {
    use nas::calibrate::stack_decode;
    let gpu = Registry::builtin().resolve_profile(&profile_path.display().to_string())?;
    let (records, sha) = stack_decode::read(files)?;
    if let nas::gpu::GpuCost::Measured(m) = &gpu.cost {
        nas::calibrate::decode::check_same_gpu("stack decode steps", &records[0].gpu, &m.profile.gpu)?;
    }
    let checked = stack_decode::check(&records, &gpu)?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let command = format!(
        "nas fidelity --calibration {} --stacks {} --out {}",
        profile_path.display(),
        names.join(" "),
        out.display()
    );
    let md = stack_decode::fidelity_markdown(&records, &checked, &gpu, &sha, &command);
    let path = nas::report::write::with_suffix(out, "md");
    nas::report::write::write_atomic(&path, md.as_bytes())?;
    say!("wrote {}", path.display());
    Ok(())
}

fn decode_fidelity(profile_path: &Path, files: &[PathBuf], seed_hardware: &str, out: &Path) -> Result<()> {
    let profile = read_profile(profile_path)?;
    let ours_described = match (&profile.decode_model, &profile.decode) {
        (Some(d), _) => {
            let origin = match &d.transferred_from {
                Some(from) => format!("transferred from {from} through the two spec sheets (not fitted on this GPU)"),
                None => format!("fitted on compiled steps of {} only", d.trained_on.join(", ")),
            };
            format!(
                "the kernel-aware decode model of `{}` ({origin}; the other models are validation, never fitted on)",
                profile_path.display()
            )
        }
        (None, Some(d)) => format!(
            "the bandwidth-and-cost-per-kernel decode fit of `{}` ({:.0} GB/s, {:.4} ms per kernel, fitted on {})",
            profile_path.display(),
            d.bandwidth_gbps,
            d.launch_ms,
            d.trained_on.join(", ")
        ),
        (None, None) => {
            return Err(Error::Input {
                place: profile_path.display().to_string(),
                problem: "the profile has no decode fit (run `nas calibrate ... --decode FILE`)".into(),
            })
        }
    };
    let (records, sha) = nas::calibrate::decode::read(files)?;
    nas::calibrate::decode::check_same_gpu("decode steps", &records[0].gpu, &profile.gpu)?;
    let compiled = records.iter().all(|r| r.truth.as_deref() == Some("compiled_graph"));
    let method = if compiled {
        format!(
            "One decode step of whole bf16 models (and 4-layer stacks of larger ones) with random weights, as \
             `calibration/harness/decode_compiled.py` measures it: compiled layers, the whole step one CUDA graph, \
             distinct weights and KV cache per layer; median of 5 rounds. Data SHA-256 `{sha}`."
        )
    } else {
        format!(
            "One decode step of whole bf16 models measured by `calibration/harness/decode.py` as CUDA-graph \
             replays of an eager PyTorch step: a slower truth, with more kernels, than the compiled step a serving \
             engine runs. Data SHA-256 `{sha}`."
        )
    };
    let seed = seed_gpu(seed_hardware)?.step_throughputs()?;
    let ours = profile
        .step_throughputs()
        .ok_or_else(|| Error::Spec("the profile has no decode throughputs".into()))?;
    let md = nas::calibrate::decode::fidelity_markdown(&records, &method, &ours_described, &seed, &ours);
    let path = nas::report::write::report_paths(out, &["md"])?.remove(0);
    nas::report::write::write_atomic(&path, md.as_bytes())?;
    say!("wrote {}", path.display());
    Ok(())
}

/// A built-in GPU on the seed's constants, to compare a profile with.
fn seed_gpu(key: &str) -> Result<Gpu> {
    Registry::builtin().resolve(&GpuTarget::builtin_owned(key).with_cost_model(CostModelKind::Seed))
}

fn read_profile(path: &Path) -> Result<CalibrationProfile> {
    let place = path.display().to_string();
    let text = String::from_utf8(nas::input::read_file(path)?).map_err(|_| Error::Input {
        place: place.clone(),
        problem: "not UTF-8 text".into(),
    })?;
    CalibrationProfile::from_json(&text, &place)
}

fn fidelity(profile_path: &Path, files: &[PathBuf], set: &str, seed_hardware: &str, out: &Path) -> Result<()> {
    let profile = read_profile(profile_path)?;
    let data = MeasurementSet::read(files)?;
    let seed = seed_gpu(seed_hardware)?;
    let report = FidelityReport::build(&profile, &profile_path.display().to_string(), &data, set, &seed)?;
    let paths = nas::report::write::report_paths(out, &["svg", "md", "html"])?;
    let svg_path = paths[0].clone();
    let svg_name = svg_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let command = format!(
        "nas fidelity --calibration {} --measurements {} --set {set} --seed-hardware {seed_hardware} --out {}",
        profile_path.display(),
        files.join(" "),
        out.display()
    );
    let (ours, rho) = report.stats();
    let (seed_stats, seed_rho) = report.seed_stats();
    say!(
        "{} layers of `{set}`: ours MAPE {:.2}%, within 10% {:.1}%, Spearman {:.4}; seed MAPE {:.2}%, within 10% {:.1}%, Spearman {:.4}",
        report.rows.len(),
        ours.mape_pct,
        ours.within_10_pct,
        rho,
        seed_stats.mape_pct,
        seed_stats.within_10_pct,
        seed_rho
    );
    let (md_path, html_path) = (&paths[1], &paths[2]);
    let (svg, md) = (report.to_svg()?, report.to_markdown(&svg_name, &command));
    let html = report.to_html(&svg_name, &command)?;
    nas::report::write::write_all_atomic(&[
        (&svg_path, svg.as_bytes()),
        (md_path, md.as_bytes()),
        (html_path, html.as_bytes()),
    ])?;
    say!(
        "wrote {}, {} and {}",
        md_path.display(),
        svg_path.display(),
        html_path.display()
    );
    Ok(())
}

/// A progress bar on stderr for work long enough to want one; hidden when
/// stderr is not a terminal or with --quiet.
fn progress_bar(total: u64, evaluations: u64, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    // About a second of work at a few hundred million evaluations per second.
    if quiet || evaluations < 300_000_000 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} candidates ({per_sec}, {eta})") {
        bar.set_style(style);
    }
    bar
}

fn bench(candidates: u64, hardware: &[Gpu], quiet: bool) -> Result<()> {
    let family = nas::search::stream::bench_family();
    let combinations = family.combinations() as u64;
    if candidates == 0 || candidates > combinations {
        return Err(Error::Spec(format!(
            "--candidates must be between 1 and {combinations} (the bench family's size)"
        )));
    }
    let constraints = nas::search::constraints::Constraints::new(nas::search::seed::CONSTRAINTS.to_vec())?;
    let spec = nas::search::stream::StreamSpec {
        family: &family,
        workload: nas::search::seed::WORKLOAD,
        hardware,
        constraints: &constraints,
        top_k: 25,
        rank_by: nas::search::RankMetric::TotalMs,
    };
    let bar = progress_bar(candidates, candidates * hardware.len() as u64, quiet);
    let start = std::time::Instant::now();
    let result = nas::search::stream::search_range(&spec, Some(candidates), &|done| bar.set_position(done))?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let gpus = hardware.len() as f64;
    say!(
        "{}",
        json!({
            "candidates": candidates,
            "valid_candidates": result.valid,
            "hardware": hardware.len(),
            "cost_models": hardware.iter().map(|g| format!("{}: {}", g.key, g.cost_model().name())).collect::<Vec<_>>(),
            "seconds": seconds,
            // The headline: valid candidate x GPU evaluations (invalid combinations are skipped, not evaluated).
            "valid_evaluations_per_second": result.valid as f64 * gpus / seconds,
            "combinations_per_second": candidates as f64 * gpus / seconds,
            "threads": rayon_threads(),
        })
    );
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn search(
    spec_path: &Path,
    cost_model: Option<CostModelKind>,
    out: Option<&Path>,
    quiet: bool,
    weights: Option<&str>,
    kv_cache: Option<&str>,
) -> Result<()> {
    let mut doc = read_json(spec_path)?;
    if let (Some(kind), Value::Object(top)) = (cost_model, &mut doc) {
        top.insert("cost_model".into(), json!(kind.name()));
    }
    // The flags set the workload's precision (replacing the spec's, as --cost-model does).
    if let Value::Object(top) = &mut doc {
        for (key, value) in [("weights", weights), ("kv_cache", kv_cache)] {
            let Some(value) = value else { continue };
            let workload = top.entry("workload").or_insert_with(|| json!({}));
            if let Value::Object(w) = workload {
                w.insert(key.into(), json!(value));
            }
        }
    }
    let spec = nas::search::spec_json::JsonSearch::from_json(&doc).map_err(|e| Error::Input {
        place: spec_path.display().to_string(),
        problem: e.to_string(),
    })?;
    let stream = nas::search::stream::StreamSpec {
        family: &spec.family,
        workload: spec.workload,
        hardware: &spec.hardware,
        constraints: &spec.constraints,
        top_k: spec.top_k,
        rank_by: spec.rank_by,
    };
    let combinations = spec.family.combinations() as u64;
    let bar = progress_bar(
        combinations,
        combinations.saturating_mul(spec.hardware.len() as u64),
        quiet,
    );
    let start = std::time::Instant::now();
    let result = nas::search::stream::search(&stream, &|done| bar.set_position(done)).map_err(|e| Error::Input {
        place: spec_path.display().to_string(),
        problem: e.to_string(),
    })?;
    bar.finish_and_clear();
    if !quiet {
        eprintln!(
            "searched {} candidates ({} valid) on {} GPUs in {:.3} s",
            result.combinations,
            result.valid,
            spec.hardware.len(),
            start.elapsed().as_secs_f64()
        );
    }
    let text = nas::search::stream::SearchReport::new(&stream, &result)?.to_json()?;
    match out {
        Some(path) => nas::report::write::write_atomic(path, text.as_bytes()),
        None => {
            say!("{}", text.trim_end());
            Ok(())
        }
    }
}
