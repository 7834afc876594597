//! The `nas` command line: the engine for people who do not write Rust.
//! JSON in, JSON out; exit 0 on success, 2 with a one-line error otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};

use nas::calibrate::CalibrationBlock;
use nas::cost::{LatencyMatrix, TilePenalties};
use nas::hardware::{self, HardwareProfile, Overrides};
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
    /// Predict the latency of each layer shape in a JSON file on one GPU.
    Predict {
        /// GPU profile key (see `nas hardware`).
        #[arg(long)]
        hardware: String,
        /// JSON array of shapes in the seed's keys.
        #[arg(long)]
        configs: PathBuf,
        /// A calibration file: the seed's calibration DB (its overrides for this GPU apply).
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Replace one throughput of the profile, e.g. `matmul_tflops=600` (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Write a multi-hardware pack (PREFIX.json and PREFIX.md).
    Pack {
        /// The seed tool's search (the only pack this command builds so far).
        #[arg(long, required = true)]
        seed: bool,
        /// The seed's calibration DB; a path with no file gives status `unavailable`.
        #[arg(long)]
        calibration_db: Option<PathBuf>,
        /// Output prefix: writes PREFIX.json and PREFIX.md.
        #[arg(long)]
        out: PathBuf,
    },
    /// List the known GPU profiles and where their numbers come from.
    Hardware,
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

fn run(command: Command) -> Result<()> {
    match command {
        Command::Predict {
            hardware,
            configs,
            calibration,
            overrides,
        } => predict(&hardware, &configs, calibration.as_deref(), &overrides),
        Command::Pack {
            seed: _,
            calibration_db,
            out,
        } => {
            let calibration = match calibration_db {
                Some(path) => CalibrationBlock::load(&path)?,
                None => CalibrationBlock::disabled(),
            };
            let pack = nas::search::seed::pack_spec(calibration)?.evaluate()?;
            pack.write(&out)?;
            eprintln!("wrote {0}.json and {0}.md", out.display());
            Ok(())
        }
        Command::Hardware => {
            for p in hardware::BUILTIN.iter() {
                println!("{:<6} {:<6} {}", p.key, p.label, p.provenance);
                let values: Vec<String> = hardware::THROUGHPUT_KEYS
                    .iter()
                    .zip(p.throughputs.values())
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!("       {}", values.join(" "));
            }
            Ok(())
        }
    }
}

/// Reads a whole JSON file, naming the file and the position of a syntax error.
fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_slice(&text).map_err(|e| Error::Input {
        place: path.display().to_string(),
        problem: format!("invalid JSON: {e}"),
    })
}

fn predict(hardware_key: &str, configs: &Path, calibration: Option<&Path>, overrides: &[String]) -> Result<()> {
    let mut profile: HardwareProfile = hardware::builtin(hardware_key)?;
    if let Some(path) = calibration {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let block = CalibrationBlock::from_bytes(&path.display().to_string(), &bytes)?;
        profile = profile.with_overrides(&block.overrides_for(hardware_key));
    }
    let assignments = overrides
        .iter()
        .map(|o| Overrides::parse_assignment(o))
        .collect::<Result<Vec<_>>>()?;
    profile = profile.with_overrides(&Overrides::new(assignments)?);

    let doc = read_json(configs)?;
    let items = doc.as_array().ok_or_else(|| Error::Input {
        place: configs.display().to_string(),
        problem: "expected a JSON array of shapes".into(),
    })?;
    let mut names = Vec::with_capacity(items.len());
    let mut shapes: Vec<LayerShape> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let place = format!("{}: configs[{i}]", configs.display());
        let (name, shape) = LayerShape::from_json(item, &place)?;
        names.push(name.ok_or_else(|| Error::Input {
            place,
            problem: "missing key `name`".into(),
        })?);
        shapes.push(shape);
    }

    let latency = LatencyMatrix::seed(&shapes, &[profile.throughputs]);
    let out: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let kernels = latency.kernels(i, 0);
            let per_kernel: Map<String, Value> = kernels.named().map(|(k, v)| (k.to_string(), json!(v))).collect();
            json!({
                "name": name,
                "total_ms": latency.total_ms(i, 0),
                "per_kernel": per_kernel,
                "bottleneck": kernels.bottleneck(),
                "tile_penalties": TilePenalties::of(&shapes[i]),
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&out).map_err(|e| Error::Spec(e.to_string()))?;
    println!("{text}");
    Ok(())
}
