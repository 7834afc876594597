//! One spec builder for both front ends: the `nas_search!` DSL
//! (nas-macros/src/validate.rs) and the JSON spec of `nas search`
//! (`spec_json.rs`) translate their syntax into a [`SpecInput`] of abstract
//! values, each tagged with a [`Place`] the front end maps back (a token span
//! through the macro's own table, a JSON path). Defaults, key names, limits
//! and every rule live here once.
//!
//! [`build`] collects every error (each at its place), never panics and does
//! no I/O: the macro runs it at compile time. Profile files named by GPUs are
//! read later, by [`crate::gpu::Registry::resolve`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Display;

use crate::arch::{Architecture, LayerPattern, ARCH_KEYS};
use crate::error::hint;
use crate::gpu::{CostModelKind, GpuTarget, OwnGpu, Registry, SpecSheet};
use crate::hardware::{Throughputs, THROUGHPUT_KEYS};
use crate::model::{ModelDims, ParamCount, ScalingLaw};
use crate::precision::{KvCachePrecision, Precision, WeightPrecision};
use crate::search::constraints::{Bound, CmpOp, Constraint, Constraints, Metric, MetricType};
use crate::search::family::{Axis, AxisKind, AxisValue, Family, FfnRounding, GqaRounding, Labeled, Rounding, Workload};
use crate::search::{CliffAxis, CliffSweep, RankMetric};
use crate::shapes::{
    canonical_key, Candidate, LayerShape, GENERATED_CANDIDATE, KNOWN_MODEL, MAX_DIM, MAX_EXPERTS, MAX_LAYERS,
    MAX_TRAINING_TOKENS, SEED_CANDIDATE,
};

/// The default workload: the seed's (`seq_len` 2048, `batch_size` 1).
pub const DEFAULT_SEQ_LEN: u64 = 2048;
pub const DEFAULT_BATCH_SIZE: u64 = 1;
/// How many of the best a space keeps when its input does not say.
pub const DEFAULT_TOP_K: usize = 25;
/// The default ffn rounding: to the nearest multiple of 128, ties to even.
pub const DEFAULT_FFN_ROUNDING: FfnRounding = FfnRounding {
    multiple: 128,
    rounding: Rounding::NearestEven,
};

/// The keys of a workload.
pub const WORKLOAD_KEYS: [&str; 8] = [
    "seq_len",
    "batch_size",
    "context_len",
    "training_tokens",
    "scaling_law",
    "loss_params",
    "weights",
    "kv_cache",
];

/// The keys of a fixed candidate (short aliases as the DSL writes them).
pub const SHAPE_FIELDS: [&str; 15] = [
    "hidden_dim",
    "heads",
    "kv_heads",
    "head_dim",
    "ffn_dim",
    "seq_len",
    "batch_size",
    "qk_norm",
    "window",
    "num_layers",
    "vocab_size",
    "tie_embeddings",
    "context_len",
    "weights",
    "kv_cache",
];

/// The keys of a declared GPU besides its throughputs.
pub const GPU_KEYS: [&str; 4] = ["label", "provenance", "memory_gib", "profile"];

/// Where a value came from, as an index the front end maps back (the DSL:
/// into its table of token streams; JSON: into its table of paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place(pub usize);

/// One problem at one place.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildError {
    pub place: Place,
    pub message: String,
}

/// A scalar value as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Int(i128),
    Float(f64),
    Bool(bool),
    /// Full attention: the DSL's `full`, JSON's `null`.
    Full,
    Str(String),
    /// A bare word (the DSL's `fp8`); JSON writes it as a string.
    Word(String),
}

impl Scalar {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(v) => Some(*v as f64),
            Scalar::Float(v) => Some(*v),
            _ => None,
        }
    }
}

impl Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v:?}"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Full => f.write_str("full"),
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Word(s) => f.write_str(s),
        }
    }
}

/// A scalar and its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Atom {
    pub value: Scalar,
    pub place: Place,
}

/// Most GPUs one search targets (DSL `hardware`, JSON `hardware`): the
/// streaming search walks the family once per 8 GPUs and keeps `top_k`
/// entries per list per GPU, so time and memory grow with each.
pub const MAX_HARDWARE: usize = 64;

/// A name (a GPU, a metric, a candidate) and its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    pub text: String,
    pub place: Place,
}

/// A list entry, optionally with the label it shows in names.
#[derive(Clone, Debug, PartialEq)]
pub struct ListItem {
    pub value: Atom,
    pub label: Option<Atom>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(Atom),
    List { place: Place, items: Vec<ListItem> },
}

/// How `ffn_ratio` rounds: `mode` is "nearest", "up" or "down".
#[derive(Clone, Debug, PartialEq)]
pub struct RoundingInput {
    pub place: Place,
    pub mode: Option<Atom>,
    pub multiple: Option<Atom>,
}

/// `key: value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: Word,
    pub value: Value,
    pub rounding: Option<RoundingInput>,
    /// The whole field (name and value).
    pub place: Place,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedKind {
    Known,
    Seed,
    Candidate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GpuInput {
    pub name: Word,
    pub base: Option<Word>,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FixedInput {
    pub kind: FixedKind,
    pub name: Word,
    pub fields: Vec<Field>,
}

/// A family listed candidate by candidate, or a space streamed at run time
/// keeping the best `top` ([`DEFAULT_TOP_K`] when absent).
#[derive(Clone, Debug, PartialEq)]
pub enum FamilyMode {
    Listed,
    Space { top: Option<Atom> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct FamilyInput {
    pub name: Word,
    pub mode: FamilyMode,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SweepInput {
    pub axis: Word,
    pub from: Atom,
    pub to: Atom,
    pub step: Atom,
    /// `from..to`.
    pub range: Place,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CostModelInput {
    pub place: Place,
    pub all: Option<Word>,
    pub per_gpu: Vec<(Word, Word)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClauseInput {
    Fits {
        gpu: Word,
        batch: Atom,
        context: Atom,
        place: Place,
    },
    Compare {
        metric: Word,
        op: CmpOp,
        value: Atom,
        place: Place,
    },
    Range {
        metric: Word,
        lo: Atom,
        hi: Atom,
        /// A boolean: whether `hi` is in the range.
        inclusive: Atom,
        /// `lo..hi`.
        range: Place,
        place: Place,
    },
    All(Vec<ClauseInput>, Place),
    Any(Vec<ClauseInput>, Place),
}

impl ClauseInput {
    /// Comparisons, ranges and `fits` in this clause, nested ones included.
    pub fn atoms(&self) -> usize {
        match self {
            ClauseInput::All(cs, _) | ClauseInput::Any(cs, _) => cs.iter().map(ClauseInput::atoms).sum(),
            _ => 1,
        }
    }

    pub fn place(&self) -> Place {
        match self {
            ClauseInput::Fits { place, .. }
            | ClauseInput::Compare { place, .. }
            | ClauseInput::Range { place, .. }
            | ClauseInput::All(_, place)
            | ClauseInput::Any(_, place) => *place,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemInput {
    Hardware { place: Place, names: Vec<Word> },
    Gpu(GpuInput),
    Workload { place: Place, fields: Vec<Field> },
    Fixed(FixedInput),
    Family(FamilyInput),
    Sweep(SweepInput),
    Constraints { place: Place, clauses: Vec<ClauseInput> },
    RankBy(Word),
    CalibrationDb(Atom),
    CostModel(CostModelInput),
}

/// A whole spec: its place (the DSL: the search's name; JSON: the top level) and items.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecInput {
    pub place: Place,
    pub items: Vec<ItemInput>,
}

/// A spec that passed every check, as nas-core values.
#[derive(Clone, Debug)]
pub struct Built {
    pub hardware: Vec<GpuTarget>,
    pub candidates: Vec<Candidate>,
    /// A space: streamed at run time, so only its axes are kept.
    pub space: Option<(Family, usize)>,
    pub workload: Workload,
    pub sweeps: Vec<CliffSweep>,
    pub constraints: Vec<Constraint>,
    pub rank_by: RankMetric,
    pub calibration_db: Option<String>,
}

/// Checks a spec and converts it; every error is reported, in the order of
/// the input, not just the first.
pub fn build(spec: &SpecInput) -> Result<Built, Vec<BuildError>> {
    let mut b = Builder {
        errors: Vec::new(),
        workload: Workload::layer(DEFAULT_SEQ_LEN, DEFAULT_BATCH_SIZE),
        hardware: Vec::new(),
        precisions: Vec::new(),
    };
    let built = b.spec(spec);
    if b.errors.is_empty() {
        Ok(built)
    } else {
        Err(b.errors)
    }
}

struct Builder {
    errors: Vec<BuildError>,
    workload: Workload,
    /// The checked targets, for `fits(gpu, ...)`.
    hardware: Vec<GpuTarget>,
    /// Every precision a candidate, family or the workload asks for, where:
    /// each must run on every GPU of the search.
    precisions: Vec<(Precision, Place)>,
}

fn first_seen<T: Copy>(seen: &mut BTreeMap<String, T>, key: &str, value: T) -> Option<T> {
    match seen.get(key) {
        Some(first) => Some(*first),
        None => {
            seen.insert(key.to_string(), value);
            None
        }
    }
}

impl Builder {
    fn at(&mut self, place: Place, message: impl Display) {
        self.errors.push(BuildError {
            place,
            message: message.to_string(),
        });
    }

    fn spec(&mut self, spec: &SpecInput) -> Built {
        let mut singletons: BTreeMap<String, Place> = BTreeMap::new();
        let single = |b: &mut Self, singletons: &mut BTreeMap<String, Place>, what: &str, place: Place| {
            if let Some(first) = first_seen(singletons, what, place) {
                b.at(place, format!("`{what}` is given twice"));
                b.at(first, format!("first `{what}` is here"));
            }
        };

        // Workload first: candidates fall back to it wherever they are declared.
        for item in &spec.items {
            if let ItemInput::Workload { place, fields } = item {
                single(self, &mut singletons, "workload", *place);
                self.workload(fields);
            }
        }

        let gpus: Vec<&GpuInput> = spec
            .items
            .iter()
            .filter_map(|i| match i {
                ItemInput::Gpu(g) => Some(g),
                _ => None,
            })
            .collect();
        // A `gpu` declared twice: the second must not be silently dropped.
        let mut declared: BTreeMap<String, Place> = BTreeMap::new();
        for g in &gpus {
            if let Some(first) = first_seen(&mut declared, &g.name.text, g.name.place) {
                self.at(g.name.place, format!("gpu `{}` is declared twice", g.name.text));
                self.at(first, format!("gpu `{}` is first declared here", g.name.text));
            }
        }
        let mut hardware = Vec::new();
        let mut listed: Vec<&Word> = Vec::new();
        let mut candidates = Vec::new();
        let mut origins: BTreeMap<String, Place> = BTreeMap::new();
        let mut space = None;
        let mut sweeps = Vec::new();
        let mut constraints = Vec::new();
        let mut constraints_place = None;
        let mut rank_by = RankMetric::TotalMs;
        let mut rank_by_word: Option<&Word> = None;
        let mut constraint_clauses: &[ClauseInput] = &[];
        let mut calibration_db = None;

        // The cost model, then hardware: `fits(gpu, ...)` constraints need its memory.
        let mut cost_models = CostModels::default();
        for item in &spec.items {
            if let ItemInput::CostModel(def) = item {
                single(self, &mut singletons, "cost_model", def.place);
                cost_models = self.cost_models(def);
            }
        }
        for item in &spec.items {
            if let ItemInput::Hardware { place, names } = item {
                single(self, &mut singletons, "hardware", *place);
                hardware = self.hardware(*place, names, &gpus, &cost_models);
                listed.extend(names);
            }
        }
        for (gpu, _) in cost_models.per_gpu.values() {
            if !listed.is_empty() && !listed.iter().any(|n| n.text == gpu.text) {
                self.at(
                    gpu.place,
                    format!("`cost_model` names `{}`, which is not listed in `hardware`", gpu.text),
                );
            }
        }
        self.hardware = hardware.clone();
        for item in &spec.items {
            match item {
                ItemInput::Gpu(_)
                | ItemInput::Workload { .. }
                | ItemInput::Hardware { .. }
                | ItemInput::CostModel(_) => {}
                ItemInput::Fixed(def) => {
                    if let Some(c) = self.fixed(def) {
                        self.add_candidate(&mut candidates, &mut origins, c, def.name.place, None);
                    }
                }
                ItemInput::Family(def) => {
                    let family = self.family(def);
                    match &def.mode {
                        FamilyMode::Space { top } => {
                            single(self, &mut singletons, "space", def.name.place);
                            let k = match top {
                                None => Some(DEFAULT_TOP_K),
                                Some(t) => self.top_k(t),
                            };
                            if let Some(k) = k {
                                if let Err(e) = crate::search::stream::check_reported(k, listed.len()) {
                                    let place = top.as_ref().map_or(def.name.place, |t| t.place);
                                    self.at(place, e);
                                }
                            }
                            if let (Some(family), Some(k)) = (family, k) {
                                if self.space(def, &family) {
                                    space = Some((family, k));
                                }
                            }
                        }
                        FamilyMode::Listed => {
                            let limit = crate::search::family::MAX_MATERIALIZED;
                            let family = family.filter(|f| {
                                let total = f.combinations().saturating_add(candidates.len() as u128);
                                let fits = f.combinations() > limit || total <= limit;
                                if !fits {
                                    self.at(
                                        def.name.place,
                                        format!(
                                            "this family's {} combinations and the {} candidates before it are more \
                                             than the {limit} a search lists one by one; make it a `space` (streamed)",
                                            f.combinations(),
                                            candidates.len()
                                        ),
                                    );
                                }
                                fits
                            });
                            if let Some(members) = family.and_then(|f| self.members(def, &f)) {
                                for c in members {
                                    self.add_candidate(
                                        &mut candidates,
                                        &mut origins,
                                        c,
                                        def.name.place,
                                        Some(&def.name),
                                    );
                                }
                            }
                        }
                    }
                }
                ItemInput::Sweep(def) => sweeps.extend(self.sweep(def)),
                ItemInput::Constraints { place, clauses } => {
                    single(self, &mut singletons, "constraints", *place);
                    constraints_place = Some(*place);
                    constraint_clauses = clauses;
                    constraints = self.constraints(clauses);
                }
                ItemInput::RankBy(metric) => {
                    single(self, &mut singletons, "rank_by", metric.place);
                    match RankMetric::from_name(&metric.text) {
                        Ok(m) => {
                            rank_by = m;
                            rank_by_word = Some(metric);
                        }
                        Err(e) => self.at(metric.place, e),
                    }
                }
                ItemInput::CalibrationDb(path) => {
                    single(self, &mut singletons, "calibration_db", path.place);
                    match &path.value {
                        Scalar::Str(s) => calibration_db = Some(s.clone()),
                        _ => self.at(path.place, "`calibration_db` must be a string"),
                    }
                }
            }
        }

        if !singletons.contains_key("hardware") {
            self.at(
                spec.place,
                "a search needs its hardware targets: add `hardware: [h100, h200]` (`nas hardware` lists them all)",
            );
        }
        for gpu in &gpus {
            if !listed.iter().any(|n| n.text == gpu.name.text) && singletons.contains_key("hardware") {
                self.at(
                    gpu.name.place,
                    format!(
                        "gpu `{}` is declared but not listed in `hardware: [...]`",
                        gpu.name.text
                    ),
                );
            }
        }
        if candidates.is_empty() && space.is_none() && self.errors.is_empty() {
            self.at(
                spec.place,
                "a search needs at least one candidate (`known`, `seed`, `candidate`, `family` or `space`)",
            );
        }
        // Latencies are whole-model metrics: they need a candidate with layers and a vocabulary.
        let whole_models = candidates.iter().any(|c| crate::model::figures(&c.shape).is_some())
            || space.as_ref().is_some_and(|(f, _): &(Family, usize)| {
                f.field_axes(crate::shapes::ShapeField::NumLayers) != 0
                    && f.field_axes(crate::shapes::ShapeField::VocabSize) != 0
            });
        if !whole_models && (!candidates.is_empty() || space.is_some()) {
            let mut latency: Vec<&Word> = rank_by_word.filter(|_| rank_by.is_whole_model()).into_iter().collect();
            latency_metrics(constraint_clauses, &mut latency);
            for word in latency {
                self.at(
                    word.place,
                    format!(
                        "`{}` is a whole-model latency: it needs candidates with `num_layers` and `vocab_size`, \
                         and no candidate of this search has them",
                        word.text
                    ),
                );
            }
        }
        // Every precision asked for must run on every GPU (its tensor cores, its cost model).
        let registry = Registry::builtin();
        let mut reported: Vec<(Place, String)> = Vec::new();
        for (precision, place) in std::mem::take(&mut self.precisions) {
            for target in &hardware {
                if let Err(e) = registry.check_precision(target, &precision) {
                    if !reported.iter().any(|(p, m)| *p == place && *m == e) {
                        reported.push((place, e.clone()));
                        self.at(place, e);
                    }
                }
            }
        }
        // Latency clauses cannot be known here: `report` assumes they hold,
        // so this fires only when the other clauses fail everywhere.
        if let (Some(place), false) = (constraints_place, constraints.is_empty()) {
            self.satisfiable(place, &constraints, &candidates);
        }

        Built {
            hardware,
            candidates,
            space,
            workload: self.workload,
            sweeps,
            constraints,
            rank_by,
            calibration_db,
        }
    }

    fn add_candidate(
        &mut self,
        all: &mut Vec<Candidate>,
        origins: &mut BTreeMap<String, Place>,
        c: Candidate,
        place: Place,
        family: Option<&Word>,
    ) {
        let limit = crate::search::family::MAX_NAME_LEN;
        if c.name.len() > limit {
            self.at(
                place,
                format!(
                    "the candidate name `{}` is {} bytes long; a candidate name has at most {limit}",
                    crate::search::family::shown(&c.name),
                    c.name.len()
                ),
            );
            return;
        }
        if let Some(first) = first_seen(origins, &c.name, place) {
            let message = match family {
                Some(f) => format!(
                    "family `{}` makes a candidate named `{}`, a name already taken",
                    f.text, c.name
                ),
                None => format!("duplicate candidate name `{}`", c.name),
            };
            self.at(place, message);
            self.at(first, format!("`{}` is first declared here", c.name));
            return;
        }
        all.push(c);
    }

    fn cost_models(&mut self, def: &CostModelInput) -> CostModels {
        let mut out = CostModels::default();
        let word = |b: &mut Self, w: &Word| match CostModelKind::from_name(&w.text) {
            Ok(k) => Some(k),
            Err(e) => {
                b.at(w.place, e);
                None
            }
        };
        out.all = def.all.as_ref().and_then(|w| word(self, w));
        for (gpu, w) in &def.per_gpu {
            if out.per_gpu.contains_key(&gpu.text) {
                self.at(gpu.place, format!("`cost_model` names `{}` twice", gpu.text));
                continue;
            }
            if let Some(k) = word(self, w) {
                out.per_gpu.insert(gpu.text.clone(), (gpu.clone(), k));
            }
        }
        out
    }

    fn hardware(
        &mut self,
        place: Place,
        names: &[Word],
        gpus: &[&GpuInput],
        cost_models: &CostModels,
    ) -> Vec<GpuTarget> {
        let mut seen: BTreeMap<String, Place> = BTreeMap::new();
        let mut targets = Vec::new();
        let registry = Registry::builtin();
        let mut known: Vec<String> = registry.keys().iter().map(|k| k.to_string()).collect();
        known.extend(gpus.iter().map(|g| g.name.text.clone()));
        for name in names {
            let key = name.text.as_str();
            if let Some(first) = first_seen(&mut seen, key, name.place) {
                self.at(name.place, format!("hardware `{key}` is listed twice"));
                self.at(first, format!("`{key}` is first listed here"));
                continue;
            }
            let target = if let Some(gpu) = gpus.iter().find(|g| g.name.text == key) {
                match self.gpu(gpu) {
                    Some(t) => t,
                    None => continue,
                }
            } else if registry.entry(key).is_ok() {
                GpuTarget::builtin_owned(key)
            } else {
                self.at(
                    name.place,
                    format!(
                        "unknown hardware `{key}`{}; known: {} (declare your own with `gpu {key} {{ ... }}`)",
                        hint(key, known.iter().map(String::as_str)),
                        known.join(", ")
                    ),
                );
                continue;
            };
            let target = GpuTarget {
                cost_model: cost_models.of(key),
                ..target
            };
            match registry.check(&target) {
                Ok(()) => targets.push(target),
                Err(e) => self.at(name.place, e),
            }
        }
        if names.is_empty() {
            self.at(place, "`hardware: []` lists no GPU");
        }
        if names.len() > MAX_HARDWARE {
            self.at(
                place,
                format!(
                    "{} GPUs listed; a search targets at most {MAX_HARDWARE} (its time and its \
                     report grow with every GPU)",
                    names.len()
                ),
            );
        }
        targets
    }

    fn gpu(&mut self, def: &GpuInput) -> Option<GpuTarget> {
        // Any error in the declaration ends it: nothing is checked (or
        // reported) of a GPU that is not what was written.
        let errors_before = self.errors.len();
        let key = def.name.text.as_str();
        let registry = Registry::builtin();
        if registry.entry(key).is_ok() {
            self.at(
                def.name.place,
                format!("`{key}` is a built-in GPU; give yours another name"),
            );
            return None;
        }
        if let Some(builtin) = registry.keys().iter().find(|k| k.eq_ignore_ascii_case(key)) {
            self.at(
                def.name.place,
                format!("`{key}` is the built-in GPU `{builtin}` but for case; give yours another name"),
            );
            return None;
        }
        let base = match &def.base {
            Some(b) => match registry.entry(&b.text) {
                Ok(e) => Some(e),
                Err(e) => {
                    self.at(b.place, e);
                    return None;
                }
            },
            None => None,
        };
        let mut allowed: Vec<&str> = THROUGHPUT_KEYS.to_vec();
        allowed.extend(GPU_KEYS);
        let fields = self.field_map(&def.fields, &allowed, |n| allowed.iter().find(|a| **a == n).copied())?;
        let mut given = [None; 10];
        let mut ok = true;
        for (i, k) in THROUGHPUT_KEYS.iter().enumerate() {
            if let Some(f) = fields.get(k) {
                match scalar_number(&f.value) {
                    Some((n, _)) if n.is_finite() && n > 0.0 => given[i] = Some(n),
                    Some((_, place)) => {
                        self.at(place, format!("`{k}` must be a finite positive number"));
                        ok = false;
                    }
                    None => {
                        self.at(f.place, format!("`{k}` must be a number"));
                        ok = false;
                    }
                }
            }
        }
        let profile = self.string_field(&fields, "profile");
        let values = match base.and_then(|b| b.seed) {
            Some(b) => {
                let mut v = b.values();
                for (slot, g) in v.iter_mut().zip(given) {
                    if let Some(g) = g {
                        *slot = g;
                    }
                }
                Some(v)
            }
            // a `profile` given with a bad value has had its error: the throughputs are not missing
            None if given.iter().all(Option::is_none)
                && (profile.is_some() || base.is_some() || fields.contains_key("profile")) =>
            {
                None
            }
            None => {
                // A throughput given with a bad value has had its error; it is not missing.
                let missing: Vec<&str> = THROUGHPUT_KEYS
                    .iter()
                    .filter(|k| !fields.contains_key(*k))
                    .copied()
                    .collect();
                if !ok {
                    return None;
                }
                if !missing.is_empty() {
                    self.at(
                        def.name.place,
                        format!(
                            "gpu `{key}` is missing {}; give them, start from a GPU with seed constants \
                             (`gpu {key}: h100 {{ ... }}`), or name a measured `profile: \"FILE.json\"`",
                            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                        ),
                    );
                    return None;
                }
                Some(given.map(|g| g.unwrap_or(0.0)))
            }
        };
        let label = self
            .string_field(&fields, "label")
            .unwrap_or_else(|| key.to_uppercase());
        let provenance = self.string_field(&fields, "provenance").unwrap_or_else(|| match &base {
            Some(b) => format!(
                "declared in the spec, from {} ({})",
                b.key,
                crate::gpu::registry::SEED_PROVENANCE
            ),
            None => "declared in the spec".to_string(),
        });
        if !ok {
            return None;
        }
        let mut spec = base.map_or(SpecSheet::UNKNOWN, |b| b.spec.clone());
        if let Some(f) = fields.get("memory_gib") {
            let checked = match scalar_number(&f.value) {
                None => Err("`memory_gib` must be a number of GiB".to_string()),
                Some((n, _)) => crate::gpu::spec_sheet::check_memory_gib(n).map_err(|e| format!("`memory_gib`: {e}")),
            };
            match checked {
                Ok(gib) => spec.memory_gib = Some(gib),
                Err(e) => {
                    self.at(f.place, e);
                    return None;
                }
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        let seed = match values {
            Some(v) => {
                let t = Throughputs::from_values(v);
                if let Err(e) = t.check() {
                    self.at(def.name.place, format!("hardware `{key}`: {e}"));
                    return None;
                }
                Some((t, provenance.into()))
            }
            None => None,
        };
        Some(GpuTarget {
            key: key.to_string().into(),
            cost_model: None,
            profile: profile.map(Into::into),
            own: Some(OwnGpu {
                label: label.into(),
                spec,
                seed,
            }),
        })
    }

    fn string_field(&mut self, fields: &BTreeMap<&str, &Field>, key: &str) -> Option<String> {
        let f = fields.get(key)?;
        match &f.value {
            Value::Scalar(Atom {
                value: Scalar::Str(s), ..
            }) => Some(s.clone()),
            _ => {
                self.at(f.place, format!("`{key}` must be a string"));
                None
            }
        }
    }

    /// Maps field names to canonical keys; unknown and repeated fields are errors.
    fn field_map<'f>(
        &mut self,
        fields: &'f [Field],
        allowed: &[&str],
        canonical: impl Fn(&str) -> Option<&'static str>,
    ) -> Option<BTreeMap<&'static str, &'f Field>> {
        let mut map: BTreeMap<&'static str, &'f Field> = BTreeMap::new();
        let mut ok = true;
        for f in fields {
            let name = f.name.text.as_str();
            match canonical(name) {
                None => {
                    self.at(
                        f.name.place,
                        format!(
                            "unknown field `{name}`{}; expected one of: {}",
                            hint(name, allowed.iter().copied()),
                            allowed.join(", ")
                        ),
                    );
                    ok = false;
                }
                Some(key) => {
                    if let Some(first) = map.get(key) {
                        self.at(f.name.place, format!("`{name}` is given twice"));
                        self.at(first.name.place, format!("`{}` is first given here", first.name.text));
                        ok = false;
                    } else {
                        map.insert(key, f);
                    }
                    if let Some(r) = &f.rounding {
                        self.at(
                            r.place,
                            "rounding applies to a family's `ffn_ratio` (`round_to M`) and `gqa_group` (`round_down`) only",
                        );
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(map)
    }

    /// A positive integer, or an error at its place.
    fn positive_int(&mut self, key: &str, value: &Atom) -> Option<u64> {
        match value.value {
            Scalar::Int(v) if v >= 1 && v <= u64::MAX as i128 => Some(v as u64),
            Scalar::Int(0) => {
                self.at(value.place, format!("`{key}` must be at least 1, got 0"));
                None
            }
            Scalar::Int(v) if v < 0 => {
                self.at(value.place, format!("`{key}` must be positive, got {v}"));
                None
            }
            Scalar::Int(v) => {
                self.at(value.place, format!("`{key}` = {v} is too large"));
                None
            }
            Scalar::Float(f) => {
                self.at(value.place, format!("`{key}` must be an integer, got {f:?}"));
                None
            }
            _ => {
                self.at(
                    value.place,
                    format!("`{key}` must be a positive integer, got {}", value.value),
                );
                None
            }
        }
    }

    /// A window size (full attention is `Scalar::Full`, handled by the caller);
    /// the string `"full"` is pointed at the bare word.
    fn window(&mut self, value: &Atom) -> Option<u64> {
        if let Scalar::Str(text) = &value.value {
            if text.trim().eq_ignore_ascii_case("full") {
                self.at(
                    value.place,
                    format!(
                        "`window` = {} is a string: write bare `full` (no quotes; `null` in a JSON spec) for full \
                         attention, or a positive integer",
                        value.value
                    ),
                );
                return None;
            }
        }
        self.size("window", value)
    }

    /// A weight format: `bf16`, `fp8` or `int4` (a bare word in the DSL, a string in JSON).
    fn weights_of(&mut self, value: &Atom) -> Option<WeightPrecision> {
        match &value.value {
            Scalar::Str(w) | Scalar::Word(w) => match WeightPrecision::from_name(w) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.at(value.place, e);
                    None
                }
            },
            other => {
                self.at(value.place, format!("`weights` takes bf16, fp8 or int4, got {other}"));
                None
            }
        }
    }

    /// A count of experts or layers on a family axis: a positive integer of
    /// at most [`MAX_EXPERTS`] (experts, `top_k`) or [`MAX_LAYERS`]
    /// (`first_dense_layers`); `experts` at least 2 (one expert is a dense MLP).
    fn arch_count(&mut self, kind: AxisKind, value: &Atom) -> Option<u64> {
        let key = kind.name();
        let n = self.positive_int(key, value)?;
        let limit = match kind {
            AxisKind::FirstDenseLayers => MAX_LAYERS,
            _ => MAX_EXPERTS,
        };
        if n > limit {
            self.at(
                value.place,
                format!("`{key}` = {n} is absurdly large (the limit is {limit})"),
            );
            return None;
        }
        if kind == AxisKind::Experts && n < 2 {
            self.at(
                value.place,
                "`experts` = 1 is a dense MLP: a mixture needs at least 2 experts (leave `experts` out for a dense \
                 layer)",
            );
            return None;
        }
        Some(n)
    }

    /// A layer pattern: a string `"a:b"` (`"5:1"`).
    fn layer_pattern_of(&mut self, value: &Atom) -> Option<LayerPattern> {
        match &value.value {
            Scalar::Str(text) => match text.parse::<LayerPattern>() {
                Ok(p) => Some(p),
                Err(e) => {
                    self.at(value.place, e);
                    None
                }
            },
            other => {
                self.at(
                    value.place,
                    format!(
                        "`layer_pattern` takes a string \"a:b\" (a sliding-window layers, then b full-attention \
                         layers: \"5:1\"), got {other}"
                    ),
                );
                None
            }
        }
    }

    /// A KV-cache format: `bf16` or `fp8`.
    fn kv_cache_of(&mut self, value: &Atom) -> Option<KvCachePrecision> {
        match &value.value {
            Scalar::Str(w) | Scalar::Word(w) => match KvCachePrecision::from_name(w) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.at(value.place, e);
                    None
                }
            },
            other => {
                self.at(value.place, format!("`kv_cache` takes bf16 or fp8, got {other}"));
                None
            }
        }
    }

    /// Records that a precision is asked for at `place` (checked against every GPU at the end).
    fn use_precision(&mut self, precision: Precision, place: Place) {
        if !precision.is_bf16() {
            self.precisions.push((precision, place));
        }
    }

    /// A positive integer of at most [`MAX_DIM`] (a size of a layer).
    fn size(&mut self, key: &str, value: &Atom) -> Option<u64> {
        let n = self.positive_int(key, value)?;
        if n > MAX_DIM {
            self.at(
                value.place,
                format!("`{key}` = {n} is absurdly large (the limit is {MAX_DIM})"),
            );
            return None;
        }
        Some(n)
    }

    fn workload(&mut self, fields: &[Field]) {
        let Some(map) = self.field_map(fields, &WORKLOAD_KEYS, |n| {
            WORKLOAD_KEYS.iter().find(|a| **a == n).copied()
        }) else {
            return;
        };
        for (key, f) in map {
            let Value::Scalar(s) = &f.value else {
                self.at(f.place, format!("`{key}` takes one value"));
                continue;
            };
            match (key, &s.value) {
                ("scaling_law", Scalar::Str(name)) => match ScalingLaw::from_name(name) {
                    Some(law) => self.workload.model.loss_fit.law = law,
                    None => self.at(
                        s.place,
                        format!("expected \"chinchilla\" or \"epoch\", got {}", s.value),
                    ),
                },
                ("loss_params", Scalar::Str(name)) => match ParamCount::from_name(name) {
                    Some(count) => self.workload.model.loss_fit.count = count,
                    None => self.at(
                        s.place,
                        format!("expected \"all\" or \"non_embedding\", got {}", s.value),
                    ),
                },
                ("scaling_law", _) => self.at(
                    s.place,
                    format!("expected \"chinchilla\" or \"epoch\", got {}", s.value),
                ),
                ("loss_params", _) => self.at(
                    s.place,
                    format!("expected \"all\" or \"non_embedding\", got {}", s.value),
                ),
                ("weights", _) => {
                    if let Some(w) = self.weights_of(s) {
                        self.workload.precision.weights = w;
                        self.use_precision(Precision::new(w, KvCachePrecision::Bf16), s.place);
                    }
                }
                ("kv_cache", _) => {
                    if let Some(k) = self.kv_cache_of(s) {
                        self.workload.precision.kv_cache = k;
                        self.use_precision(Precision::new(WeightPrecision::Bf16, k), s.place);
                    }
                }
                ("training_tokens", v) => match v.as_f64() {
                    Some(t) if t.fract() == 0.0 && t >= 1.0 && t <= MAX_TRAINING_TOKENS as f64 => {
                        self.workload.model.training_tokens = Some(t as u64)
                    }
                    _ => self.at(
                        s.place,
                        format!("expected a whole number of tokens from 1 to 1e16, got {v}"),
                    ),
                },
                _ => {
                    if let Some(v) = self.size(key, s) {
                        match key {
                            "seq_len" => self.workload.seq_len = v,
                            "batch_size" => self.workload.batch_size = v,
                            _ => self.workload.model.context_len = Some(v),
                        }
                    }
                }
            }
        }
    }

    /// Reads a shape from fields; `given` supplies keys set elsewhere (a sweep's axis).
    fn shape_fields<'f>(
        &mut self,
        owner: &Word,
        fields: &'f [Field],
        extra: &[&str],
        given: Option<(&'static str, u64, &Word)>,
    ) -> Option<(LayerShape, BTreeMap<&'static str, &'f Field>)> {
        let mut allowed: Vec<&str> = SHAPE_FIELDS.to_vec();
        allowed.extend(ARCH_KEYS);
        allowed.extend(extra);
        let extras: Vec<&'static str> = ["source"].into_iter().filter(|e| extra.contains(e)).collect();
        let map = self.field_map(fields, &allowed, |n| {
            canonical_key(n)
                .filter(|k| *k != "name")
                .or_else(|| extras.iter().find(|e| **e == n).copied())
        })?;
        if let Some((key, _, sweep_axis)) = given {
            if let Some(f) = map.get(key) {
                self.at(
                    f.name.place,
                    format!("`{key}` is set by the sweep over `{}`", sweep_axis.text),
                );
                return None;
            }
        }
        let mut ok = true;
        let mut size = |b: &mut Self, key: &'static str, default: Option<u64>| -> u64 {
            if let Some((k, value, _)) = given {
                if k == key {
                    return value;
                }
            }
            match map.get(key) {
                Some(f) => match &f.value {
                    Value::Scalar(s) => b.positive_int(key, s).unwrap_or_else(|| {
                        ok = false;
                        1
                    }),
                    Value::List { .. } => {
                        b.at(
                            f.place,
                            format!("`{key}` takes one value here (lists are for families)"),
                        );
                        ok = false;
                        1
                    }
                },
                None => default.unwrap_or_else(|| {
                    b.at(owner.place, format!("`{}` is missing `{key}`", owner.text));
                    ok = false;
                    1
                }),
            }
        };
        let workload = self.workload;
        let shape_sizes = [
            size(self, "hidden_dim", None),
            size(self, "num_heads", None),
            size(self, "num_kv_heads", None),
            size(self, "head_dim", None),
            size(self, "ffn_dim", None),
            size(self, "seq_len", Some(workload.seq_len)),
            size(self, "batch_size", Some(workload.batch_size)),
        ];
        let boolean = |b: &mut Self, key: &'static str, shown: &str, ok: &mut bool| -> Option<bool> {
            let f = map.get(key)?;
            match &f.value {
                Value::Scalar(Atom {
                    value: Scalar::Bool(v), ..
                }) => Some(*v),
                _ => {
                    b.at(f.place, format!("`{shown}` must be `true` or `false`"));
                    *ok = false;
                    None
                }
            }
        };
        let use_qk_norm =
            boolean(self, "use_qk_norm", "qk_norm", &mut ok).unwrap_or(crate::shapes::DEFAULT_USE_QK_NORM);
        let window_size = match map.get("window_size").map(|f| &f.value) {
            None
            | Some(Value::Scalar(Atom {
                value: Scalar::Full, ..
            })) => None,
            Some(Value::Scalar(s)) => {
                let w = self.window(s);
                ok &= w.is_some();
                w
            }
            Some(Value::List { .. }) => {
                self.at(map["window_size"].place, "`window` takes one value here");
                ok = false;
                None
            }
        };
        let mut optional = |b: &mut Self, key: &'static str| -> Option<u64> {
            let f = map.get(key)?;
            match &f.value {
                Value::Scalar(s) => {
                    let n = b.positive_int(key, s);
                    ok &= n.is_some();
                    n
                }
                Value::List { .. } => {
                    b.at(f.place, format!("`{key}` takes one value here"));
                    ok = false;
                    None
                }
            }
        };
        let num_layers = optional(self, "num_layers");
        let vocab_size = optional(self, "vocab_size");
        let context_len = optional(self, "context_len");
        // Mixture of experts, layer pattern, latent attention: their rules are `arch::Architecture::check`'s.
        let mut arch = Architecture {
            experts: optional(self, "experts"),
            top_k: optional(self, "top_k"),
            expert_ffn_dim: optional(self, "expert_ffn_dim"),
            shared_experts: optional(self, "shared_experts"),
            shared_expert_ffn_dim: optional(self, "shared_expert_ffn_dim"),
            first_dense_layers: optional(self, "first_dense_layers"),
            layer_pattern: None,
            kv_lora_rank: optional(self, "kv_lora_rank"),
            q_lora_rank: optional(self, "q_lora_rank"),
            rope_head_dim: optional(self, "rope_head_dim"),
            v_head_dim: optional(self, "v_head_dim"),
        };
        let mut pattern_ok = true;
        if let Some(f) = map.get("layer_pattern") {
            match &f.value {
                Value::Scalar(s) => match self.layer_pattern_of(s) {
                    Some(p) => arch.layer_pattern = Some(p),
                    None => pattern_ok = false,
                },
                Value::List { .. } => {
                    self.at(f.place, "`layer_pattern` takes one value here (lists are for families)");
                    pattern_ok = false;
                }
            }
        }
        ok &= pattern_ok;
        let tie_embeddings = boolean(self, "tie_embeddings", "tie_embeddings", &mut ok);
        let mut precision = workload.precision;
        for key in ["weights", "kv_cache"] {
            let Some(f) = map.get(key) else { continue };
            let Value::Scalar(s) = &f.value else {
                self.at(
                    f.place,
                    format!("`{key}` takes one value here (lists are for families)"),
                );
                ok = false;
                continue;
            };
            let parsed = match key {
                "weights" => self.weights_of(s).map(|w| precision.weights = w),
                _ => self.kv_cache_of(s).map(|k| precision.kv_cache = k),
            };
            ok &= parsed.is_some();
            if parsed.is_some() {
                let asked = match key {
                    "weights" => Precision::new(precision.weights, KvCachePrecision::Bf16),
                    _ => Precision::new(WeightPrecision::Bf16, precision.kv_cache),
                };
                self.use_precision(asked, s.place);
            }
        }
        if !ok {
            return None;
        }
        let defaults = workload.model;
        let model = ModelDims {
            num_layers: num_layers.or(defaults.num_layers),
            vocab_size: vocab_size.or(defaults.vocab_size),
            tie_embeddings: tie_embeddings.or(defaults.tie_embeddings),
            context_len: context_len.or(defaults.context_len),
            ..defaults
        };
        let [hidden_dim, num_heads, num_kv_heads, head_dim, ffn_dim, seq_len, batch_size] = shape_sizes;
        let shape = LayerShape {
            hidden_dim,
            num_heads,
            num_kv_heads,
            head_dim,
            ffn_dim,
            seq_len,
            batch_size,
            use_qk_norm,
            window_size,
            model,
            precision,
            arch,
        };
        if let Err(problem) = shape.validate() {
            match problem.key.and_then(|k| map.get(k)) {
                Some(f) => self.at(f.place, problem),
                None => self.at(owner.place, problem),
            }
            return None;
        }
        Some((shape, map))
    }

    fn fixed(&mut self, def: &FixedInput) -> Option<Candidate> {
        let (shape, map) = self.shape_fields(&def.name, &def.fields, &["source"], None)?;
        let source = match map.get("source") {
            Some(f) => match &f.value {
                Value::Scalar(Atom {
                    value: Scalar::Str(s), ..
                }) => s.clone(),
                _ => {
                    self.at(f.place, "`source` must be a string");
                    return None;
                }
            },
            None => match def.kind {
                FixedKind::Known => KNOWN_MODEL.to_string(),
                FixedKind::Seed => SEED_CANDIDATE.to_string(),
                FixedKind::Candidate => "candidate".to_string(),
            },
        };
        Some(Candidate::new(def.name.text.clone(), source, shape))
    }

    /// "family `x`" or "space `x`", for messages.
    fn what(def: &FamilyInput) -> String {
        match def.mode {
            FamilyMode::Listed => format!("family `{}`", def.name.text),
            // the JSON spec's one family is named `family` (its key)
            FamilyMode::Space { .. } if def.name.text == "family" => "the family".into(),
            FamilyMode::Space { .. } => format!("space `{}`", def.name.text),
        }
    }

    fn rounding(&mut self, r: &RoundingInput) -> Option<FfnRounding> {
        let mut ok = true;
        let rounding = match &r.mode {
            None => DEFAULT_FFN_ROUNDING.rounding,
            Some(Atom {
                value: Scalar::Str(s), ..
            }) if s == "nearest" => Rounding::NearestEven,
            Some(Atom {
                value: Scalar::Str(s), ..
            }) if s == "up" => Rounding::Up,
            Some(Atom {
                value: Scalar::Str(s), ..
            }) if s == "down" => Rounding::Down,
            Some(other) => {
                self.at(
                    other.place,
                    format!("the rounding is \"nearest\", \"up\" or \"down\", got {}", other.value),
                );
                ok = false;
                Rounding::NearestEven
            }
        };
        let multiple = match &r.multiple {
            None => DEFAULT_FFN_ROUNDING.multiple,
            Some(m) => match m.value {
                Scalar::Int(v) if v >= 1 && v <= MAX_DIM as i128 => v as u64,
                _ => {
                    self.at(m.place, "the rounding multiple must be a positive integer");
                    ok = false;
                    1
                }
            },
        };
        ok.then_some(FfnRounding { multiple, rounding })
    }

    /// `gqa_group`'s rounding: only down (the seed's rule), with no multiple.
    fn gqa_rounding(&mut self, r: &RoundingInput) -> Option<GqaRounding> {
        let down = matches!(&r.mode, Some(Atom { value: Scalar::Str(s), .. }) if s == "down");
        if down && r.multiple.is_none() {
            return Some(GqaRounding::Down);
        }
        let place = match (&r.mode, &r.multiple) {
            (Some(m), _) if !down => m.place,
            (_, Some(m)) => m.place,
            _ => r.place,
        };
        self.at(
            place,
            "`gqa_group` rounds only down, to no multiple: `round_down` in the DSL, `\"round\": \"down\"` in JSON \
             (kv heads = max(1, floor(heads / group)), the seed's rule); without it a group that does not divide \
             the heads skips the combination",
        );
        None
    }

    /// `top_k`: from 1 to [`crate::search::stream::MAX_TOP_K`] (each list is held in full).
    fn top_k(&mut self, t: &Atom) -> Option<usize> {
        let k = self.positive_int("top_k", t)?;
        let limit = crate::search::stream::MAX_TOP_K;
        if k > limit as u64 {
            self.at(
                t.place,
                format!("`top_k` = {k} is more than a search reports (the limit is {limit})"),
            );
            return None;
        }
        Some(k as usize)
    }

    fn family(&mut self, def: &FamilyInput) -> Option<Family> {
        let axis_names: Vec<&str> = AxisKind::ALL.iter().map(|k| k.name()).collect();
        let mut allowed = axis_names.clone();
        allowed.extend(["name", "source"]);
        let mut axes = Vec::new();
        let mut template: Option<(&str, Place)> = None;
        let mut source = GENERATED_CANDIDATE.to_string();
        let mut rounding = DEFAULT_FFN_ROUNDING;
        let mut gqa_rounding = GqaRounding::Exact;
        let mut seen: BTreeMap<String, Place> = BTreeMap::new();
        let mut ok = true;
        for f in &def.fields {
            let name = f.name.text.as_str();
            if name == "name" || name == "source" {
                if let Some(first) = first_seen(&mut seen, name, f.name.place) {
                    self.at(f.name.place, format!("`{name}` is given twice"));
                    self.at(first, "first given here");
                    ok = false;
                    continue;
                }
                match &f.value {
                    Value::Scalar(Atom {
                        value: Scalar::Str(s),
                        place,
                    }) if name == "name" => template = Some((s, *place)),
                    Value::Scalar(Atom {
                        value: Scalar::Str(s), ..
                    }) => source = s.clone(),
                    _ => {
                        self.at(f.place, format!("`{name}` must be a string"));
                        ok = false;
                    }
                }
                continue;
            }
            let kind = match AxisKind::from_name(name) {
                Ok(k) => k,
                Err(_) => {
                    self.at(
                        f.name.place,
                        format!(
                            "unknown field `{name}`{}; a family takes the axes {} and `name`, `source`",
                            hint(name, allowed.iter().copied()),
                            axis_names.join(", ")
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            if let Some(first) = seen.get(kind.name()) {
                self.at(f.name.place, format!("axis `{}` is given twice", kind.name()));
                self.at(*first, "first given here");
                ok = false;
                continue;
            }
            seen.insert(kind.name().to_string(), f.name.place);
            match (&f.rounding, kind) {
                (Some(r), AxisKind::FfnRatio) => match self.rounding(r) {
                    Some(r) => rounding = r,
                    None => ok = false,
                },
                (Some(r), AxisKind::GqaGroup) => match self.gqa_rounding(r) {
                    Some(g) => gqa_rounding = g,
                    None => ok = false,
                },
                (Some(r), _) => {
                    self.at(
                        r.place,
                        "rounding applies to `ffn_ratio` (`round_to M`) and `gqa_group` (`round_down`) only",
                    );
                    ok = false;
                }
                (None, _) => {}
            }
            match self.axis_values(kind, &f.value) {
                Some(values) => axes.push(Axis {
                    kind,
                    values: values.into(),
                }),
                None => ok = false,
            }
        }
        let Some((template, template_place)) = template else {
            if seen.contains_key("name") {
                // given, but not as a string: that error is reported
                return None;
            }
            self.at(
                def.name.place,
                format!("{} needs a name template: `name: \"...\"`", Self::what(def)),
            );
            return None;
        };
        if !ok {
            return None;
        }
        let family = Family {
            source: source.into(),
            axes: axes.into(),
            ffn_rounding: rounding,
            gqa_rounding,
            template: template.to_string().into(),
        };
        if let Err(e) = crate::search::family::parse_template(template) {
            self.at(template_place, e);
            return None;
        }
        if let Err(e) = family.check() {
            self.at(def.name.place, e);
            return None;
        }
        Some(family)
    }

    fn template_place(def: &FamilyInput) -> Place {
        def.fields
            .iter()
            .find(|f| f.name.text == "name")
            .map_or(def.name.place, |f| match &f.value {
                Value::Scalar(s) => s.place,
                Value::List { place, .. } => *place,
            })
    }

    /// A family's candidates, enumerated now: names must not collide and at
    /// least one combination must be valid.
    fn members(&mut self, def: &FamilyInput, family: &Family) -> Option<Vec<Candidate>> {
        let expansion = match family.expand(self.workload) {
            Ok(x) => x,
            Err(e) => {
                self.at(Self::template_place(def), e);
                return None;
            }
        };
        if expansion.candidates.is_empty() {
            let reasons: Vec<String> = expansion
                .skipped
                .iter()
                .take(3)
                .map(|(at, why)| format!("{at}: {why}"))
                .collect();
            self.at(
                def.name.place,
                format!(
                    "{} yields no valid candidate ({} combinations, all invalid; e.g. {})",
                    Self::what(def),
                    expansion.skipped.len(),
                    reasons.join("; ")
                ),
            );
            return None;
        }
        Some(expansion.candidates)
    }

    /// A space is streamed at run time, however large: it is checked without
    /// enumerating it (valid candidates are counted from its axes, and names
    /// stay distinct when the template names every axis that varies).
    fn space(&mut self, def: &FamilyInput, family: &Family) -> bool {
        let combinations = family.combinations();
        if combinations > crate::search::stream::MAX_COMBINATIONS as u128 {
            self.at(
                def.name.place,
                format!(
                    "the family has {} combinations; the streaming search handles at most 2^62",
                    crate::search::family::shown_count(combinations)
                ),
            );
            return false;
        }
        if let Err(e) = crate::search::stream::check_stack_family(family) {
            self.at(def.name.place, e);
            return false;
        }
        if let Err(e) = family.check_names_distinct() {
            self.at(Self::template_place(def), e);
            return false;
        }
        match crate::search::stream::count_valid(family, self.workload) {
            Ok(0) => {
                let reasons = family.sample_skips(self.workload, 3, 100_000);
                let examples = match reasons.is_empty() {
                    true => String::new(),
                    false => format!(" (e.g. {})", reasons.join("; ")),
                };
                self.at(
                    def.name.place,
                    format!("{} yields no valid candidate{examples}", Self::what(def)),
                );
                false
            }
            Err(e) => {
                self.at(def.name.place, format!("{}: {e}", Self::what(def)));
                false
            }
            Ok(_) => true,
        }
    }

    fn axis_values(&mut self, kind: AxisKind, value: &Value) -> Option<Vec<Labeled>> {
        let items: Vec<(&Atom, Option<&Atom>)> = match value {
            Value::Scalar(s) => vec![(s, None)],
            Value::List { place, items } => {
                if items.is_empty() {
                    self.at(*place, format!("axis `{}` has no values", kind.name()));
                    return None;
                }
                items.iter().map(|i| (&i.value, i.label.as_ref())).collect()
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (atom, label) in items {
            let value = match (kind, &atom.value) {
                (AxisKind::QkNorm | AxisKind::TieEmbeddings, Scalar::Bool(b)) => Some(AxisValue::Bool(*b)),
                (AxisKind::QkNorm | AxisKind::TieEmbeddings, other) => {
                    self.at(
                        atom.place,
                        format!("`{}` takes `true` or `false`, got {other}", kind.name()),
                    );
                    None
                }
                (AxisKind::Weights, _) => self.weights_of(atom).map(|w| {
                    self.use_precision(Precision::new(w, KvCachePrecision::Bf16), atom.place);
                    AxisValue::Weights(w)
                }),
                (AxisKind::KvCache, _) => self.kv_cache_of(atom).map(|k| {
                    self.use_precision(Precision::new(WeightPrecision::Bf16, k), atom.place);
                    AxisValue::KvCache(k)
                }),
                (AxisKind::Window, Scalar::Full) => Some(AxisValue::Window(None)),
                (AxisKind::Window, _) => self.window(atom).map(|w| AxisValue::Window(Some(w))),
                (AxisKind::FfnRatio, Scalar::Int(_) | Scalar::Float(_)) => {
                    let r = atom.value.as_f64().unwrap_or(f64::NAN);
                    if r.is_finite() && r > MAX_DIM as f64 {
                        self.at(
                            atom.place,
                            format!(
                                "`ffn_ratio` = {} is absurdly large (the limit is {MAX_DIM})",
                                atom.value
                            ),
                        );
                        None
                    } else if r.is_finite() && r > 0.0 {
                        Some(AxisValue::Ratio(r))
                    } else {
                        self.at(atom.place, "`ffn_ratio` must be a finite positive number");
                        None
                    }
                }
                (AxisKind::FfnRatio, other) => {
                    self.at(atom.place, format!("`ffn_ratio` takes numbers, got {other}"));
                    None
                }
                (AxisKind::LayerPattern, _) => self.layer_pattern_of(atom).map(AxisValue::Pattern),
                (AxisKind::Experts | AxisKind::TopK | AxisKind::SharedExperts | AxisKind::FirstDenseLayers, _) => {
                    self.arch_count(kind, atom).map(AxisValue::Int)
                }
                (k, _) => self.size(k.name(), atom).map(AxisValue::Int),
            };
            let label = match label {
                None => None,
                Some(Atom {
                    value: Scalar::Str(s), ..
                }) => Some(Cow::Owned(s.clone())),
                Some(other) => {
                    self.at(other.place, format!("a label must be a string, got {}", other.value));
                    ok = false;
                    None
                }
            };
            match value {
                Some(value) => out.push(Labeled { value, label }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn sweep(&mut self, def: &SweepInput) -> Option<CliffSweep> {
        let axis = match def.axis.text.as_str() {
            "hidden_dim" => CliffAxis::HiddenDim,
            "ffn_dim" => CliffAxis::FfnDim,
            other => {
                self.at(
                    def.axis.place,
                    format!(
                        "cannot sweep `{other}`{}; sweeps vary `hidden_dim` or `ffn_dim`",
                        hint(other, ["hidden_dim", "ffn_dim"])
                    ),
                );
                return None;
            }
        };
        let key = axis.name();
        let from = self.positive_int(key, &def.from);
        let to = self.positive_int(key, &def.to);
        let step = self.positive_int("step", &def.step);
        let (from, to, step) = (from?, to?, step?);
        if from >= to {
            self.at(def.range, format!("the sweep {from}..{to} is empty"));
            return None;
        }
        let points = (to - from).div_ceil(step);
        if points > crate::search::MAX_SWEEP_POINTS {
            let limit = crate::search::MAX_SWEEP_POINTS;
            self.at(
                def.range,
                format!("the sweep has {points} points, more than the limit of {limit}"),
            );
            return None;
        }
        let (base, map) = self.shape_fields(&def.axis, &def.fields, &[], Some((key, from, &def.axis)))?;
        if let Some(arch_key) = base.arch.first_key() {
            let place = map.get(arch_key).map_or(def.axis.place, |f| f.name.place);
            self.at(
                place,
                format!(
                    "a sweep times one layer shape: `{arch_key}` makes a stack of layer kinds, which a sweep does not \
                     take (search it in a `family` or `space`)"
                ),
            );
            return None;
        }
        let values: Vec<u64> = (from..to).step_by(step as usize).collect();
        for &v in &values {
            let shape = match axis {
                CliffAxis::HiddenDim => LayerShape { hidden_dim: v, ..base },
                CliffAxis::FfnDim => LayerShape { ffn_dim: v, ..base },
            };
            if let Err(p) = shape.validate() {
                self.at(def.axis.place, format!("at {key} = {v}: {p}"));
                return None;
            }
        }
        Some(CliffSweep {
            axis,
            base,
            values: values.into(),
        })
    }

    fn constraints(&mut self, clauses: &[ClauseInput]) -> Vec<Constraint> {
        // Checked before anything else: the contradiction check and the
        // search's tables grow with the number of comparisons.
        let limit = crate::search::constraints::MAX_CONSTRAINT_ATOMS;
        let mut total = 0usize;
        for c in clauses {
            total += c.atoms();
            if total > limit {
                self.at(
                    c.place(),
                    format!(
                        "the constraints hold {} comparisons, more than the {limit} a search takes (the first \
                         beyond them is here)",
                        clauses.iter().map(ClauseInput::atoms).sum::<usize>()
                    ),
                );
                return Vec::new();
            }
        }
        let converted: Vec<Option<Constraint>> = clauses.iter().map(|c| self.clause(c)).collect();
        if converted.iter().any(Option::is_none) {
            return Vec::new();
        }
        let converted: Vec<Constraint> = converted.into_iter().flatten().collect();
        if self.contradictions(clauses, &converted) {
            return Vec::new();
        }
        converted
    }

    fn clause(&mut self, clause: &ClauseInput) -> Option<Constraint> {
        match clause {
            ClauseInput::Fits {
                gpu,
                batch,
                context,
                place,
            } => {
                let key = gpu.text.as_str();
                let Some(target) = self.hardware.iter().find(|h| h.key == key) else {
                    let known: Vec<&str> = self.hardware.iter().map(|h| h.key.as_ref()).collect();
                    let message = format!(
                        "`fits` names `{key}`, which is not a target of this search{}; targets: {}",
                        hint(key, known.iter().copied()),
                        known.join(", ")
                    );
                    self.at(gpu.place, message);
                    return None;
                };
                let Some(memory_gib) = memory_of(target) else {
                    self.at(
                        gpu.place,
                        format!("gpu `{key}` declares no memory: add `memory_gib: N` to its `gpu` item"),
                    );
                    return None;
                };
                let (batch, context) = (self.positive_int("batch", batch), self.positive_int("context", context));
                let c = Constraint::Fits {
                    gpu: key.to_string().into(),
                    memory_gib,
                    batch: batch?,
                    context: context?,
                };
                self.checked(c, *place)
            }
            ClauseInput::Compare { metric, op, value, .. } => {
                let m = self.metric(metric)?;
                let bound = self.bound(value)?;
                let c = Constraint::Compare {
                    metric: m,
                    op: *op,
                    bound,
                };
                self.checked(c, value.place)
            }
            ClauseInput::Range {
                metric,
                lo,
                hi,
                inclusive,
                range,
                place,
            } => {
                let inclusive = match inclusive.value {
                    Scalar::Bool(b) => b,
                    _ => {
                        self.at(
                            inclusive.place,
                            format!("`inclusive` must be `true` or `false`, got {}", inclusive.value),
                        );
                        return None;
                    }
                };
                let m = self.metric(metric)?;
                let (lo_b, hi_b) = (self.bound(lo)?, self.bound(hi)?);
                let c = Constraint::Range {
                    metric: m,
                    lo: lo_b,
                    hi: hi_b,
                    inclusive,
                };
                if m.kind() != MetricType::Bool && (lo_b.kind() == MetricType::Bool || hi_b.kind() == MetricType::Bool)
                {
                    return self.checked(c, lo.place);
                }
                let at = if m.kind() == MetricType::Bool { *place } else { *range };
                self.checked(c, at)
            }
            ClauseInput::All(parts, _) | ClauseInput::Any(parts, _) => {
                let parts: Vec<Option<Constraint>> = parts.iter().map(|p| self.clause(p)).collect();
                let parts: Vec<Constraint> = parts.into_iter().collect::<Option<_>>()?;
                Some(match clause {
                    ClauseInput::All(..) => Constraint::All(parts.into()),
                    _ => Constraint::Any(parts.into()),
                })
            }
        }
    }

    fn checked(&mut self, c: Constraint, at: Place) -> Option<Constraint> {
        match c.check() {
            Ok(()) => Some(c),
            Err(e) => {
                self.at(at, e);
                None
            }
        }
    }

    /// A metric by name or alias, through [`Metric::from_name`] (new metrics flow through).
    fn metric(&mut self, word: &Word) -> Option<Metric> {
        let name = word.text.as_str();
        let canonical = canonical_key(name).unwrap_or(name);
        match Metric::from_name(canonical) {
            Ok(m) => Some(m),
            Err(e) => {
                self.at(word.place, e);
                None
            }
        }
    }

    fn bound(&mut self, value: &Atom) -> Option<Bound> {
        match value.value {
            Scalar::Int(v) => Some(match i64::try_from(v) {
                Ok(v) => Bound::Int(v),
                Err(_) => Bound::Float(v as f64),
            }),
            Scalar::Float(v) if v.is_finite() => Some(Bound::Float(v)),
            Scalar::Float(_) => {
                self.at(value.place, "a bound must be finite");
                None
            }
            Scalar::Bool(b) => Some(Bound::Bool(b)),
            _ => {
                self.at(
                    value.place,
                    format!("expected a number or `true`/`false`, got {}", value.value),
                );
                None
            }
        }
    }

    /// Reports top-level bounds on one metric that no value can meet together.
    fn contradictions(&mut self, clauses: &[ClauseInput], converted: &[Constraint]) -> bool {
        struct Side {
            value: f64,
            strict: bool,
            at: Place,
        }
        let mut lows: BTreeMap<&str, Side> = BTreeMap::new();
        let mut highs: BTreeMap<&str, Side> = BTreeMap::new();
        for (clause, c) in clauses.iter().zip(converted) {
            let (metric, lo, hi) = match c {
                Constraint::Compare { metric, op, bound } => {
                    let Some(v) = bound_f64(*bound) else { continue };
                    match op {
                        CmpOp::Ge => (metric, Some((v, false)), None),
                        CmpOp::Gt => (metric, Some((v, true)), None),
                        CmpOp::Le => (metric, None, Some((v, false))),
                        CmpOp::Lt => (metric, None, Some((v, true))),
                        CmpOp::Eq => (metric, Some((v, false)), Some((v, false))),
                        CmpOp::Ne => continue,
                    }
                }
                Constraint::Range {
                    metric,
                    lo,
                    hi,
                    inclusive,
                } => {
                    let (Some(l), Some(h)) = (bound_f64(*lo), bound_f64(*hi)) else {
                        continue;
                    };
                    (metric, Some((l, false)), Some((h, !inclusive)))
                }
                _ => continue,
            };
            let at = clause.place();
            if let Some((value, strict)) = lo {
                let tighter = lows
                    .get(metric.name())
                    .is_none_or(|s| value > s.value || (value == s.value && strict));
                if tighter {
                    lows.insert(metric.name(), Side { value, strict, at });
                }
            }
            if let Some((value, strict)) = hi {
                let tighter = highs
                    .get(metric.name())
                    .is_none_or(|s| value < s.value || (value == s.value && strict));
                if tighter {
                    highs.insert(metric.name(), Side { value, strict, at });
                }
            }
            if let (Some(l), Some(h)) = (lows.get(metric.name()), highs.get(metric.name())) {
                if l.value > h.value || (l.value == h.value && (l.strict || h.strict)) {
                    let (later, earlier) = if l.at == at { (l.at, h.at) } else { (h.at, l.at) };
                    let name = metric.name();
                    self.at(
                        later,
                        format!("contradictory bounds: no `{name}` satisfies this and an earlier clause"),
                    );
                    self.at(earlier, "the clause it contradicts");
                    return true;
                }
            }
        }
        false
    }

    fn satisfiable(&mut self, place: Place, clauses: &[Constraint], candidates: &[Candidate]) {
        let constraints = Constraints {
            clauses: clauses.to_vec().into(),
        };
        if candidates.is_empty() || candidates.iter().any(|c| constraints.report(&c.shape).passes) {
            return;
        }
        let example = &candidates[0];
        let failed = constraints.report(&example.shape).failed.join(", ");
        self.at(
            place,
            format!(
                "no declared candidate satisfies these constraints (all {} fail; e.g. `{}`: {failed})",
                candidates.len(),
                example.name
            ),
        );
    }
}

/// The metric words of clauses on `prefill_ms`, `decode_ms` and `decode_tokens_per_s`.
fn latency_metrics<'a>(clauses: &'a [ClauseInput], out: &mut Vec<&'a Word>) {
    for c in clauses {
        match c {
            ClauseInput::Compare { metric, .. } | ClauseInput::Range { metric, .. } => {
                if Metric::from_name(&metric.text).is_ok_and(Metric::is_latency) {
                    out.push(metric);
                }
            }
            ClauseInput::All(parts, _) | ClauseInput::Any(parts, _) => latency_metrics(parts, out),
            ClauseInput::Fits { .. } => {}
        }
    }
}

fn bound_f64(b: Bound) -> Option<f64> {
    match b {
        Bound::Int(v) => Some(v as f64),
        Bound::Float(v) => Some(v),
        Bound::Bool(v) => Some(f64::from(u8::from(v))),
    }
}

fn scalar_number(v: &Value) -> Option<(f64, Place)> {
    match v {
        Value::Scalar(a) => a.value.as_f64().map(|n| (n, a.place)),
        _ => None,
    }
}

/// A target's memory capacity: its own declaration or its built-in spec sheet.
fn memory_of(target: &GpuTarget) -> Option<f64> {
    match &target.own {
        Some(own) => own.spec.memory_gib,
        None => Registry::builtin().entry(&target.key).ok()?.spec.memory_gib,
    }
}

/// The `cost_model` item: one word for all GPUs, or per GPU.
#[derive(Default)]
struct CostModels {
    all: Option<CostModelKind>,
    per_gpu: BTreeMap<String, (Word, CostModelKind)>,
}

impl CostModels {
    fn of(&self, key: &str) -> Option<CostModelKind> {
        self.per_gpu.get(key).map(|(_, k)| *k).or(self.all)
    }
}
