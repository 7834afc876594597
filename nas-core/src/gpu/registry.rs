//! The one registry of GPUs: built-ins (spec sheets, the seed's constants
//! where the seed had them, measured profiles embedded at build time, so a
//! user's binary needs no file) and the user's own GPUs, declared in a spec.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::calibrate::CalibrationProfile;
use crate::error::{hint, Error, Result};
use crate::hardware::{self, Throughputs};

use super::spec_sheet::{self, SpecSheet};
use super::{CostModelKind, Gpu, GpuCost, MeasuredProfile};

/// One GPU the registry knows.
#[derive(Clone, Debug)]
pub struct RegistryEntry {
    pub key: &'static str,
    pub label: &'static str,
    pub spec: SpecSheet,
    /// The seed's constants, where the seed tool had this GPU.
    pub seed: Option<Throughputs>,
    /// The embedded measured profile, or why it could not be read.
    pub measured: Option<std::result::Result<MeasuredProfile, String>>,
}

/// The built-in GPUs, in the order `nas hardware` lists them.
#[derive(Debug)]
pub struct Registry {
    entries: Vec<RegistryEntry>,
}

const H100_PROFILE: (&str, &str) = (
    "calibration/h100-sxm.json",
    include_str!("../../../calibration/h100-sxm.json"),
);
const H200_PROFILE: (&str, &str) = ("calibration/h200.json", include_str!("../../../calibration/h200.json"));

fn embedded((path, text): (&'static str, &str)) -> std::result::Result<MeasuredProfile, String> {
    let source: Cow<'static, str> = Cow::Owned(format!("{path} (built in)"));
    CalibrationProfile::from_json(text, path)
        .map(|p| MeasuredProfile {
            profile: Arc::new(p),
            source,
        })
        .map_err(|e| e.to_string())
}

/// Where the seed's constants come from.
pub const SEED_PROVENANCE: &str = "seed tool's hand-set constants (not measured)";

impl Registry {
    /// The built-ins, built once per process.
    pub fn builtin() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            let seed = hardware::seed_constants;
            Registry {
                entries: vec![
                    RegistryEntry {
                        key: "a100",
                        label: "A100",
                        spec: spec_sheet::A100,
                        seed: seed("a100"),
                        measured: None,
                    },
                    RegistryEntry {
                        key: "t4",
                        label: "T4",
                        spec: spec_sheet::T4,
                        seed: seed("t4"),
                        measured: None,
                    },
                    RegistryEntry {
                        key: "h100",
                        label: "H100",
                        spec: spec_sheet::H100,
                        seed: seed("h100"),
                        measured: Some(embedded(H100_PROFILE)),
                    },
                    RegistryEntry {
                        key: "h200",
                        label: "H200",
                        spec: spec_sheet::H200,
                        seed: None,
                        measured: Some(embedded(H200_PROFILE)),
                    },
                ],
            }
        })
    }

    pub fn entries(&self) -> &[RegistryEntry] {
        &self.entries
    }

    pub fn keys(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.key).collect()
    }

    /// The entry under `key`, with a "did you mean" on a miss.
    pub fn entry(&self, key: &str) -> Result<&RegistryEntry> {
        self.entries.iter().find(|e| e.key == key).ok_or_else(|| {
            Error::Hardware(format!(
                "unknown hardware `{key}`{}; known: {}",
                hint(key, self.keys()),
                self.keys().join(", ")
            ))
        })
    }

    /// Checks that `target` can be resolved, without reading any file (the
    /// macro calls this while the code compiles).
    pub fn check(&self, target: &GpuTarget) -> Result<()> {
        self.resolve_with(target, &|_| Ok(None)).map(|_| ())
    }

    /// Checks, without reading any file, that `target` runs and prices
    /// `precision` ([`Gpu::check_precision`]); a profile the target names by
    /// file is checked when it is read ([`Registry::resolve`] callers check
    /// again). A target that does not resolve passes here (its own error is
    /// reported where it is listed).
    pub fn check_precision(
        &self,
        target: &GpuTarget,
        precision: &crate::precision::Precision,
    ) -> std::result::Result<(), String> {
        if precision.is_bf16() {
            return Ok(());
        }
        match self.resolve_with(target, &|_| Ok(None)) {
            Ok(Some(gpu)) => gpu.check_precision(precision).map_err(|e| e.to_string()),
            Ok(None) => {
                let spec = match &target.own {
                    Some(own) => own.spec.clone(),
                    None => match self.entry(&target.key) {
                        Ok(e) => e.spec.clone(),
                        Err(_) => return Ok(()),
                    },
                };
                crate::precision::check_supported(&spec, &target.key, precision)
            }
            Err(_) => Ok(()),
        }
    }

    /// The GPU `target` names, with the cost model it asks for; a profile
    /// file it names is read now.
    pub fn resolve(&self, target: &GpuTarget) -> Result<Gpu> {
        self.resolve_with(target, &|path| read_profile(path).map(Some))?
            .ok_or_else(|| Error::Hardware(format!("hardware `{}`: internal: unresolved", target.key)))
    }

    /// The built-in GPU the profile at `path` was measured on, priced with
    /// that profile (a profile of no built-in GPU is an error).
    pub fn resolve_profile(&self, path: &str) -> Result<Gpu> {
        let profile = read_profile(path)?.profile;
        let sheet = spec_sheet::for_device_name(&profile.gpu);
        let entry = self.entries.iter().find(|e| Some(&e.spec) == sheet).ok_or_else(|| {
            Error::Hardware(format!(
                "the profile `{path}` was measured on `{}`, which is no built-in GPU",
                profile.gpu
            ))
        })?;
        self.resolve(&GpuTarget {
            profile: Some(Cow::Owned(path.to_string())),
            ..GpuTarget::builtin(entry.key)
        })
    }

    /// Resolves every target; the same key twice is an error.
    pub fn resolve_all(&self, targets: &[GpuTarget]) -> Result<Vec<Gpu>> {
        let mut seen = std::collections::BTreeSet::new();
        targets
            .iter()
            .map(|t| {
                if !seen.insert(t.key.as_ref()) {
                    return Err(Error::Spec(format!("hardware `{}` is listed twice", t.key)));
                }
                self.resolve(t)
            })
            .collect()
    }

    fn resolve_with(
        &self,
        target: &GpuTarget,
        read: &dyn Fn(&str) -> Result<Option<MeasuredProfile>>,
    ) -> Result<Option<Gpu>> {
        let key = target.key.as_ref();
        let (label, spec, seed, embedded, builtin) = match &target.own {
            Some(own) => (own.label.clone(), own.spec.clone(), own.seed.clone(), None, false),
            None => {
                let e = self.entry(key)?;
                (
                    Cow::Borrowed(e.label),
                    e.spec.clone(),
                    e.seed.map(|t| (t, Cow::Borrowed(SEED_PROVENANCE))),
                    e.measured.clone(),
                    true,
                )
            }
        };
        let cost = match (target.cost_model(), &target.profile) {
            (CostModelKind::Seed, Some(path)) => {
                return Err(Error::Hardware(format!(
                "hardware `{key}`: the profile `{path}` is a measured profile, but the seed cost model was asked for"
            )))
            }
            (CostModelKind::Seed, None) => match seed {
                Some((throughputs, provenance)) => Some(GpuCost::Seed {
                    throughputs,
                    provenance,
                }),
                None => {
                    return Err(Error::Hardware(format!(
                        "hardware `{key}` has no seed constants (the seed tool knew a100, t4 and h100); \
                         use the measured cost model for it"
                    )))
                }
            },
            (CostModelKind::Measured, Some(path)) => match read(path)? {
                Some(m) => {
                    // A built-in GPU takes only a profile measured on that GPU.
                    if builtin && spec_sheet::for_device_name(&m.profile.gpu) != Some(&spec) {
                        return Err(Error::Hardware(format!(
                            "hardware `{key}`: the profile `{path}` was measured on `{}`, not on an {label}",
                            m.profile.gpu
                        )));
                    }
                    m.profile
                        .check_physical(&spec)
                        .map_err(|e| Error::Hardware(format!("hardware `{key}`: the profile `{path}`: {e}")))?;
                    Some(GpuCost::Measured(m))
                }
                None => None,
            },
            (CostModelKind::Measured, None) => match embedded {
                Some(Ok(m)) => Some(GpuCost::Measured(m)),
                Some(Err(e)) => {
                    return Err(Error::Hardware(format!(
                        "hardware `{key}`: its built-in profile is unreadable: {e}"
                    )))
                }
                None => return Err(no_measured_profile(key)),
            },
        };
        Ok(cost.map(|cost| Gpu {
            key: target.key.clone(),
            label,
            spec,
            cost,
        }))
    }
}

/// The error for the measured model of a GPU nobody measured, with the ways out.
pub fn no_measured_profile(key: &str) -> Error {
    Error::Hardware(format!(
        "hardware `{key}` has no measured profile: ask for the seed's constants for it \
         (`cost_model: seed` in a spec, `--cost-model seed` on the command line), or measure it \
         (calibration/README.md) and name its profile"
    ))
}

/// Reads a measured profile a spec or the command line names.
pub fn read_profile(path: &str) -> Result<MeasuredProfile> {
    let bytes = crate::input::read_file(std::path::Path::new(path))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::input(path, "not UTF-8 text"))?;
    Ok(MeasuredProfile {
        profile: Arc::new(CalibrationProfile::from_json(&text, path)?),
        source: Cow::Owned(path.to_string()),
    })
}

/// A GPU as a spec names it: a registry key or a GPU of the user's own, the
/// cost model asked for, and a measured profile's file if one is named.
/// Constant-constructible, so the macro can emit it in a `const` table.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuTarget {
    pub key: Cow<'static, str>,
    /// `None`: the default, [`CostModelKind::Measured`].
    pub cost_model: Option<CostModelKind>,
    /// A profile file read at run time (the measured model).
    pub profile: Option<Cow<'static, str>>,
    /// The user's own GPU; `None` for a built-in.
    pub own: Option<OwnGpu>,
}

/// A GPU of the user's own.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnGpu {
    pub label: Cow<'static, str>,
    pub spec: SpecSheet,
    /// Throughputs of the seed's formula, with where they come from.
    pub seed: Option<(Throughputs, Cow<'static, str>)>,
}

impl GpuTarget {
    /// A built-in GPU under its default cost model.
    pub const fn builtin(key: &'static str) -> Self {
        GpuTarget {
            key: Cow::Borrowed(key),
            cost_model: None,
            profile: None,
            own: None,
        }
    }

    /// A built-in GPU named by a run-time string, under its default cost model.
    pub fn builtin_owned(key: &str) -> Self {
        GpuTarget {
            key: Cow::Owned(key.to_string()),
            cost_model: None,
            profile: None,
            own: None,
        }
    }

    /// The same target under `kind`.
    pub fn with_cost_model(self, kind: CostModelKind) -> Self {
        GpuTarget {
            cost_model: Some(kind),
            ..self
        }
    }

    pub fn cost_model(&self) -> CostModelKind {
        self.cost_model.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_profiles_are_read_and_measured_is_the_default() {
        let r = Registry::builtin();
        for key in ["h100", "h200"] {
            let gpu = r.resolve(&GpuTarget::builtin(key)).unwrap();
            assert_eq!(gpu.cost_model(), CostModelKind::Measured, "{key}");
            assert!(gpu.provenance().profile.unwrap().contains("(built in)"));
        }
        let seed = r
            .resolve(&GpuTarget::builtin("h100").with_cost_model(CostModelKind::Seed))
            .unwrap();
        assert_eq!(seed.seed_throughputs().unwrap().matmul_tflops, 500.0);
    }

    #[test]
    fn no_silent_fallback() {
        let r = Registry::builtin();
        let e = r.resolve(&GpuTarget::builtin("a100")).unwrap_err().to_string();
        assert!(
            e.contains("`a100` has no measured profile") && e.contains("cost_model: seed"),
            "{e}"
        );
        let e = r
            .resolve(&GpuTarget::builtin("h200").with_cost_model(CostModelKind::Seed))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`h200` has no seed constants"), "{e}");
        let e = r.resolve(&GpuTarget::builtin("h1000")).unwrap_err().to_string();
        assert!(e.contains("unknown hardware `h1000` (did you mean `h100`?)"), "{e}");
        let twice = [GpuTarget::builtin("h100"), GpuTarget::builtin("h100")];
        let e = r.resolve_all(&twice).unwrap_err().to_string();
        assert!(e.contains("`h100` is listed twice"), "{e}");
    }

    #[test]
    fn a_profile_of_another_gpu_is_refused() {
        let dir = std::env::temp_dir().join(format!("nas-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h200.json");
        std::fs::write(&path, H200_PROFILE.1).unwrap();
        let target = GpuTarget {
            profile: Some(Cow::Owned(path.display().to_string())),
            ..GpuTarget::builtin("h100")
        };
        let e = Registry::builtin().resolve(&target).unwrap_err().to_string();
        assert!(e.contains("was measured on `NVIDIA H200`, not on an H100"), "{e}");
        // The compile-time check reads no file, so it cannot tell.
        Registry::builtin().check(&target).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
