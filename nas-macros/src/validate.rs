//! Spec -> nas-core values, with every problem reported at its tokens and
//! all problems of a spec combined into one compile error. Never panics.
//!
//! The rules are nas-core's own (shape validation, family expansion,
//! constraint checks); this module only maps them onto tokens.

use std::collections::BTreeMap;
use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{Ident, LitStr};

use nas_core::error::hint;
use nas_core::gpu::{CostModelKind, GpuTarget, OwnGpu, Registry, SpecSheet};
use nas_core::hardware::{Throughputs, THROUGHPUT_KEYS};
use nas_core::model::{ModelDims, ParamCount, ScalingLaw};
use nas_core::search::constraints::{Bound, CmpOp, Constraint, Constraints, Metric, MetricType};
use nas_core::search::family::{Axis, AxisKind, AxisValue, Family, FfnRounding, Labeled, Rounding, Workload};
use nas_core::search::{CliffAxis, CliffSweep, RankMetric};
use nas_core::shapes::{
    canonical_key, Candidate, LayerShape, GENERATED_CANDIDATE, KNOWN_MODEL, MAX_TRAINING_TOKENS, SEED_CANDIDATE,
};

use crate::ast::*;
use crate::parse::field_tokens;

/// A spec that passed every check, as nas-core values.
pub struct Checked {
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

/// Collects errors; `finish` combines them into one.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    fn span(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }
}

/// Checks a spec and converts it; every error is reported, not just the first.
pub fn validate(spec: &Spec) -> syn::Result<Checked> {
    let mut errors = Errors::default();
    let mut v = Validator {
        errors: &mut errors,
        workload: Workload::layer(2048, 1),
        hardware: Vec::new(),
    };
    let checked = v.spec(spec);
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(checked),
    }
}

struct Validator<'e> {
    errors: &'e mut Errors,
    workload: Workload,
    /// The checked targets, for `fits(gpu, ...)`.
    hardware: Vec<GpuTarget>,
}

/// Remembers the first occurrence of a singleton item or a name.
fn first_seen<'a, T>(seen: &mut BTreeMap<String, T>, key: &str, value: T) -> Option<T>
where
    T: Copy + 'a,
{
    match seen.get(key) {
        Some(first) => Some(*first),
        None => {
            seen.insert(key.to_string(), value);
            None
        }
    }
}

impl Validator<'_> {
    fn spec(&mut self, spec: &Spec) -> Checked {
        let mut singletons: BTreeMap<String, Span> = BTreeMap::new();
        let mut single = |v: &mut Self, what: &str, span: Span| {
            if let Some(first) = first_seen(&mut singletons, what, span) {
                v.errors.span(span, format!("`{what}` is given twice"));
                v.errors.span(first, format!("first `{what}` is here"));
            }
        };

        // Workload first: candidates fall back to it wherever they are declared.
        for item in &spec.items {
            if let Item::Workload { span, fields } = item {
                single(self, "workload", *span);
                self.workload(fields);
            }
        }

        let gpus: Vec<&GpuDef> = spec
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Gpu(g) => Some(g),
                _ => None,
            })
            .collect();
        let mut hardware = Vec::new();
        let mut listed: Vec<&Ident> = Vec::new();
        let mut candidates = Vec::new();
        let mut origins: BTreeMap<String, Span> = BTreeMap::new();
        let mut space = None;
        let mut sweeps = Vec::new();
        let mut constraints = Vec::new();
        let mut constraints_span = None;
        let mut rank_by = RankMetric::TotalMs;
        let mut rank_by_ident = None;
        let mut constraint_clauses: &[Clause] = &[];
        let mut calibration_db = None;

        // The cost model, then hardware: `fits(gpu, ...)` constraints need its memory.
        let mut cost_models = CostModels::default();
        for item in &spec.items {
            if let Item::CostModel(def) = item {
                single(self, "cost_model", def.span);
                cost_models = self.cost_models(def);
            }
        }
        for item in &spec.items {
            if let Item::Hardware { span, names } = item {
                single(self, "hardware", *span);
                hardware = self.hardware(names, &gpus, &cost_models);
                listed.extend(names);
            }
        }
        for (gpu, _) in cost_models.per_gpu.values() {
            if !listed.is_empty() && !listed.contains(&gpu) {
                self.errors.at(
                    gpu,
                    format!("`cost_model` names `{gpu}`, which is not listed in `hardware`"),
                );
            }
        }
        self.hardware = hardware.clone();
        for item in &spec.items {
            match item {
                Item::Gpu(_) | Item::Workload { .. } | Item::Hardware { .. } | Item::CostModel(_) => {}
                Item::Fixed(def) => {
                    if let Some(c) = self.fixed(def) {
                        self.add_candidate(&mut candidates, &mut origins, c, def.name.span(), None);
                    }
                }
                Item::Family(def) => {
                    let Some(family) = self.family(def) else { continue };
                    if let Some(top) = &def.top {
                        single(self, "space", def.name.span());
                        match top.base10_parse::<usize>() {
                            Ok(k) if k >= 1 && self.space(def, &family) => space = Some((family, k)),
                            Ok(k) if k >= 1 => {}
                            _ => self.errors.at(top, "`top` must be a positive integer"),
                        }
                    } else if let Some(members) = self.members(def, &family) {
                        for c in members {
                            self.add_candidate(&mut candidates, &mut origins, c, def.name.span(), Some(&def.name));
                        }
                    }
                }
                Item::Sweep(def) => sweeps.extend(self.sweep(def)),
                Item::Constraints { span, clauses } => {
                    single(self, "constraints", *span);
                    constraints_span = Some(*span);
                    constraint_clauses = clauses;
                    constraints = self.constraints(clauses);
                }
                Item::RankBy { metric } => {
                    single(self, "rank_by", metric.span());
                    match RankMetric::from_name(&metric.to_string()) {
                        Ok(m) => {
                            rank_by = m;
                            rank_by_ident = Some(metric);
                        }
                        Err(e) => self.errors.at(metric, e),
                    }
                }
                Item::CalibrationDb { path } => {
                    single(self, "calibration_db", path.span());
                    calibration_db = Some(path.value());
                }
            }
        }

        if !singletons.contains_key("hardware") {
            self.errors.at(
                &spec.name,
                "a search needs its hardware targets: add `hardware: [a100, t4, h100]`",
            );
        }
        for gpu in &gpus {
            if !listed.iter().any(|n| **n == gpu.name) && singletons.contains_key("hardware") {
                self.errors.at(
                    &gpu.name,
                    format!("gpu `{}` is declared but not listed in `hardware: [...]`", gpu.name),
                );
            }
        }
        if candidates.is_empty() && space.is_none() && self.errors.0.is_none() {
            self.errors.at(
                &spec.name,
                "a search needs at least one candidate (`known`, `seed`, `candidate`, `family` or `space`)",
            );
        }
        // Latencies are whole-model metrics: they need a candidate with layers and a vocabulary.
        let whole_models = candidates.iter().any(|c| nas_core::model::figures(&c.shape).is_some())
            || space.as_ref().is_some_and(|(f, _): &(Family, usize)| {
                f.field_axes(nas_core::shapes::ShapeField::NumLayers) != 0
                    && f.field_axes(nas_core::shapes::ShapeField::VocabSize) != 0
            });
        if !whole_models && (!candidates.is_empty() || space.is_some()) {
            let mut latency: Vec<&Ident> = rank_by_ident.filter(|_| rank_by.is_whole_model()).into_iter().collect();
            latency_metrics(constraint_clauses, &mut latency);
            for ident in latency {
                self.errors.at(
                    ident,
                    format!(
                        "`{ident}` is a whole-model latency: it needs candidates with `num_layers` and `vocab_size`, \
                         and no candidate of this search has them"
                    ),
                );
            }
        }
        // Latency clauses cannot be known at compile time: `report` assumes
        // they hold, so this fires only when the other clauses fail everywhere.
        if let (Some(span), false) = (constraints_span, constraints.is_empty()) {
            self.satisfiable(span, &constraints, &candidates);
        }

        Checked {
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
        origins: &mut BTreeMap<String, Span>,
        c: Candidate,
        span: Span,
        family: Option<&Ident>,
    ) {
        if let Some(first) = first_seen(origins, &c.name, span) {
            let message = match family {
                Some(f) => format!(
                    "family `{f}` makes a candidate named `{}`, a name already taken",
                    c.name
                ),
                None => format!("duplicate candidate name `{}`", c.name),
            };
            self.errors.span(span, message);
            self.errors.span(first, format!("`{}` is first declared here", c.name));
            return;
        }
        all.push(c);
    }

    fn cost_models(&mut self, def: &CostModelDef) -> CostModels {
        let mut out = CostModels::default();
        let word = |v: &mut Self, w: &Ident| match CostModelKind::from_name(&w.to_string()) {
            Ok(k) => Some(k),
            Err(e) => {
                v.errors.at(w, e);
                None
            }
        };
        out.all = def.all.as_ref().and_then(|w| word(self, w));
        for (gpu, w) in &def.per_gpu {
            let key = gpu.to_string();
            if out.per_gpu.contains_key(&key) {
                self.errors.at(gpu, format!("`cost_model` names `{key}` twice"));
                continue;
            }
            if let Some(k) = word(self, w) {
                out.per_gpu.insert(key, (gpu.clone(), k));
            }
        }
        out
    }

    fn hardware(&mut self, names: &[Ident], gpus: &[&GpuDef], cost_models: &CostModels) -> Vec<GpuTarget> {
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        let mut targets = Vec::new();
        let registry = Registry::builtin();
        let mut known: Vec<String> = registry.keys().iter().map(|k| k.to_string()).collect();
        known.extend(gpus.iter().map(|g| g.name.to_string()));
        for name in names {
            let key = name.to_string();
            if let Some(first) = first_seen(&mut seen, &key, name.span()) {
                self.errors.at(name, format!("hardware `{key}` is listed twice"));
                self.errors.span(first, format!("`{key}` is first listed here"));
                continue;
            }
            let target = if let Some(gpu) = gpus.iter().find(|g| g.name == key) {
                match self.gpu(gpu) {
                    Some(t) => t,
                    None => continue,
                }
            } else if registry.entry(&key).is_ok() {
                GpuTarget::builtin_owned(&key)
            } else {
                self.errors.at(
                    name,
                    format!(
                        "unknown hardware `{key}`{}; known: {} (declare your own with `gpu {key} {{ ... }}`)",
                        hint(&key, known.iter().map(String::as_str)),
                        known.join(", ")
                    ),
                );
                continue;
            };
            let target = GpuTarget {
                cost_model: cost_models.of(&key),
                ..target
            };
            match registry.check(&target) {
                Ok(()) => targets.push(target),
                Err(e) => self.errors.at(name, e),
            }
        }
        if names.is_empty() {
            self.errors.span(Span::call_site(), "`hardware: []` lists no GPU");
        }
        targets
    }

    fn gpu(&mut self, def: &GpuDef) -> Option<GpuTarget> {
        let key = def.name.to_string();
        let registry = Registry::builtin();
        if registry.entry(&key).is_ok() {
            self.errors
                .at(&def.name, format!("`{key}` is a built-in GPU; give yours another name"));
            return None;
        }
        let base = match &def.base {
            Some(b) => match registry.entry(&b.to_string()) {
                Ok(e) => Some(e),
                Err(e) => {
                    self.errors.at(b, e);
                    return None;
                }
            },
            None => None,
        };
        let mut allowed: Vec<&str> = THROUGHPUT_KEYS.to_vec();
        allowed.extend(["label", "provenance", "memory_gib", "profile"]);
        let fields = self.field_map(&def.fields, &allowed, |n| allowed.iter().find(|a| **a == n).copied())?;
        let mut given = [None; 10];
        let mut ok = true;
        for (i, k) in THROUGHPUT_KEYS.iter().enumerate() {
            if let Some(f) = fields.get(k) {
                match scalar_number(&f.value) {
                    Some(n) if n.value.as_f64().is_finite() && n.value.as_f64() > 0.0 => {
                        given[i] = Some(n.value.as_f64())
                    }
                    Some(n) => {
                        self.errors
                            .at(&n.tokens, format!("`{k}` must be a finite positive number"));
                        ok = false;
                    }
                    None => {
                        self.errors.at(field_tokens(f), format!("`{k}` must be a number"));
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
            None if given.iter().all(Option::is_none) && (profile.is_some() || base.is_some()) => None,
            None => {
                let missing: Vec<&str> = THROUGHPUT_KEYS
                    .iter()
                    .zip(given)
                    .filter(|(_, g)| g.is_none())
                    .map(|(k, _)| *k)
                    .collect();
                if !missing.is_empty() {
                    self.errors.at(
                        &def.name,
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
                nas_core::gpu::registry::SEED_PROVENANCE
            ),
            None => "declared in the spec".to_string(),
        });
        if !ok {
            return None;
        }
        let mut spec = base.map_or(SpecSheet::UNKNOWN, |b| b.spec.clone());
        if let Some(f) = fields.get("memory_gib") {
            let checked = scalar_number(&f.value)
                .ok_or_else(|| "`memory_gib` must be a number".to_string())
                .and_then(|n| nas_core::gpu::spec_sheet::check_memory_gib(n.value.as_f64()))
                .map_err(|e| format!("`memory_gib`: {e}"));
            match checked {
                Ok(gib) => spec.memory_gib = Some(gib),
                Err(e) => {
                    self.errors.at(field_tokens(f), e);
                    return None;
                }
            }
        }
        let seed = match values {
            Some(v) => {
                let t = Throughputs::from_values(v);
                if let Err(e) = t.check() {
                    self.errors.at(&def.name, format!("hardware `{key}`: {e}"));
                    return None;
                }
                Some((t, provenance.into()))
            }
            None => None,
        };
        Some(GpuTarget {
            key: key.into(),
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
            Value::Scalar(Scalar::Str(s)) => Some(s.value()),
            _ => {
                self.errors.at(field_tokens(f), format!("`{key}` must be a string"));
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
            let name = f.name.to_string();
            match canonical(&name) {
                None => {
                    self.errors.at(
                        &f.name,
                        format!(
                            "unknown field `{name}`{}; expected one of: {}",
                            hint(&name, allowed.iter().copied()),
                            allowed.join(", ")
                        ),
                    );
                    ok = false;
                }
                Some(key) => {
                    if let Some(first) = map.get(key) {
                        self.errors.at(&f.name, format!("`{name}` is given twice"));
                        self.errors
                            .at(&first.name, format!("`{}` is first given here", first.name));
                        ok = false;
                    } else {
                        map.insert(key, f);
                    }
                    if f.rounding.is_some() {
                        self.errors
                            .at(&f.name, "rounding (`round_to`) applies to `ffn_ratio` in a family only");
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(map)
    }

    /// A positive integer, or an error at its tokens.
    fn positive_int(&mut self, key: &str, value: &Scalar) -> Option<u64> {
        match value {
            Scalar::Number(n) => match n.value {
                NumberValue::Int(v) if v >= 1 && v <= u64::MAX as i128 => Some(v as u64),
                NumberValue::Int(0) => {
                    self.errors.at(&n.tokens, format!("`{key}` must be at least 1, got 0"));
                    None
                }
                NumberValue::Int(v) if v < 0 => {
                    self.errors.at(&n.tokens, format!("`{key}` must be positive, got {v}"));
                    None
                }
                NumberValue::Int(v) => {
                    self.errors.at(&n.tokens, format!("`{key}` = {v} is too large"));
                    None
                }
                NumberValue::Float(f) => {
                    self.errors
                        .at(&n.tokens, format!("`{key}` must be an integer, got {f:?}"));
                    None
                }
            },
            other => {
                self.errors
                    .at(other.span_tokens(), format!("`{key}` must be a positive integer"));
                None
            }
        }
    }

    fn workload(&mut self, fields: &[Field]) {
        let allowed = [
            "seq_len",
            "batch_size",
            "context_len",
            "training_tokens",
            "scaling_law",
            "loss_params",
        ];
        let Some(map) = self.field_map(fields, &allowed, |n| allowed.iter().find(|a| **a == n).copied()) else {
            return;
        };
        for (key, f) in map {
            let Value::Scalar(s) = &f.value else {
                self.errors.at(field_tokens(f), format!("`{key}` takes one value"));
                continue;
            };
            match (key, s) {
                ("scaling_law", Scalar::Str(name)) => match ScalingLaw::from_name(&name.value()) {
                    Some(law) => self.workload.model.loss_fit.law = law,
                    None => self.errors.at(name, "`scaling_law` is \"chinchilla\" or \"epoch\""),
                },
                ("loss_params", Scalar::Str(name)) => match ParamCount::from_name(&name.value()) {
                    Some(count) => self.workload.model.loss_fit.count = count,
                    None => self.errors.at(name, "`loss_params` is \"all\" or \"non_embedding\""),
                },
                ("scaling_law" | "loss_params", other) => {
                    self.errors.at(other.span_tokens(), format!("`{key}` takes a string"));
                }
                ("training_tokens", Scalar::Number(n)) => {
                    let t = n.value.as_f64();
                    if t.fract() == 0.0 && t >= 1.0 && t <= MAX_TRAINING_TOKENS as f64 {
                        self.workload.model.training_tokens = Some(t as u64);
                    } else {
                        self.errors.at(
                            &n.tokens,
                            "`training_tokens` must be a whole number of tokens from 1 to 1e16",
                        );
                    }
                }
                _ => {
                    if let Some(v) = self.positive_int(key, s) {
                        match key {
                            "seq_len" => self.workload.seq_len = v,
                            "batch_size" => self.workload.batch_size = v,
                            "context_len" => self.workload.model.context_len = Some(v),
                            _ => self.errors.at(field_tokens(f), format!("`{key}` must be a number")),
                        }
                    }
                }
            }
        }
    }

    /// Reads a shape from fields; `given` supplies keys set elsewhere (a sweep's axis).
    fn shape_fields<'f>(
        &mut self,
        owner: &Ident,
        fields: &'f [Field],
        extra: &[&str],
        given: Option<(&'static str, u64, &Ident)>,
    ) -> Option<(LayerShape, BTreeMap<&'static str, &'f Field>)> {
        let mut allowed: Vec<&str> = vec![
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
        ];
        allowed.extend(extra);
        let extras: Vec<&'static str> = ["source"].into_iter().filter(|e| extra.contains(e)).collect();
        let map = self.field_map(fields, &allowed, |n| {
            canonical_key(n)
                .filter(|k| *k != "name")
                .or_else(|| extras.iter().find(|e| **e == n).copied())
        })?;
        if let Some((key, _, sweep_axis)) = given {
            if let Some(f) = map.get(key) {
                self.errors
                    .at(&f.name, format!("`{key}` is set by the sweep over `{sweep_axis}`"));
                return None;
            }
        }
        let mut ok = true;
        let mut size = |v: &mut Self, key: &'static str, default: Option<u64>| -> u64 {
            if let Some((k, value, _)) = given {
                if k == key {
                    return value;
                }
            }
            match map.get(key) {
                Some(f) => match &f.value {
                    Value::Scalar(s) => v.positive_int(key, s).unwrap_or_else(|| {
                        ok = false;
                        1
                    }),
                    Value::List { .. } => {
                        v.errors.at(
                            field_tokens(f),
                            format!("`{key}` takes one value here (lists are for families)"),
                        );
                        ok = false;
                        1
                    }
                },
                None => default.unwrap_or_else(|| {
                    v.errors.at(owner, format!("`{owner}` is missing `{key}`"));
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
        let use_qk_norm = match map.get("use_qk_norm").map(|f| &f.value) {
            None => true,
            Some(Value::Scalar(Scalar::Bool(b))) => b.value,
            Some(_) => {
                self.errors
                    .at(field_tokens(map["use_qk_norm"]), "`qk_norm` must be `true` or `false`");
                ok = false;
                true
            }
        };
        let window_size = match map.get("window_size").map(|f| &f.value) {
            None | Some(Value::Scalar(Scalar::Full(_))) => None,
            Some(Value::Scalar(s)) => {
                let w = self.positive_int("window", s);
                ok &= w.is_some();
                w
            }
            Some(Value::List { .. }) => {
                self.errors
                    .at(field_tokens(map["window_size"]), "`window` takes one value here");
                ok = false;
                None
            }
        };
        let mut optional = |v: &mut Self, key: &'static str| -> Option<u64> {
            let f = map.get(key)?;
            match &f.value {
                Value::Scalar(s) => {
                    let n = v.positive_int(key, s);
                    ok &= n.is_some();
                    n
                }
                Value::List { .. } => {
                    v.errors.at(field_tokens(f), format!("`{key}` takes one value here"));
                    ok = false;
                    None
                }
            }
        };
        let num_layers = optional(self, "num_layers");
        let vocab_size = optional(self, "vocab_size");
        let context_len = optional(self, "context_len");
        let tie_embeddings = match map.get("tie_embeddings").map(|f| &f.value) {
            None => None,
            Some(Value::Scalar(Scalar::Bool(b))) => Some(b.value),
            Some(_) => {
                self.errors.at(
                    field_tokens(map["tie_embeddings"]),
                    "`tie_embeddings` must be `true` or `false`",
                );
                ok = false;
                None
            }
        };
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
        };
        if let Err(problem) = shape.validate() {
            match problem.key.and_then(|k| map.get(k)) {
                Some(f) => self.errors.at(field_tokens(f), problem),
                None => self.errors.at(owner, problem),
            }
            return None;
        }
        Some((shape, map))
    }

    fn fixed(&mut self, def: &FixedDef) -> Option<Candidate> {
        let (shape, map) = self.shape_fields(&def.name, &def.fields, &["source"], None)?;
        let source = match map.get("source") {
            Some(f) => match &f.value {
                Value::Scalar(Scalar::Str(s)) => s.value(),
                _ => {
                    self.errors.at(field_tokens(f), "`source` must be a string");
                    return None;
                }
            },
            None => match def.kind {
                FixedKind::Known => KNOWN_MODEL.to_string(),
                FixedKind::Seed => SEED_CANDIDATE.to_string(),
                FixedKind::Candidate => "candidate".to_string(),
            },
        };
        Some(Candidate::new(def.name.to_string(), source, shape))
    }

    fn family(&mut self, def: &FamilyDef) -> Option<Family> {
        let axis_names: Vec<&str> = AxisKind::ALL.iter().map(|k| k.name()).collect();
        let mut allowed = axis_names.clone();
        allowed.extend(["name", "source"]);
        let mut axes = Vec::new();
        let mut template: Option<&LitStr> = None;
        let mut source = GENERATED_CANDIDATE.to_string();
        let mut rounding = FfnRounding {
            multiple: 128,
            rounding: Rounding::NearestEven,
        };
        let mut seen: BTreeMap<String, &Ident> = BTreeMap::new();
        let mut ok = true;
        for f in &def.fields {
            let name = f.name.to_string();
            if name == "name" || name == "source" {
                match &f.value {
                    Value::Scalar(Scalar::Str(s)) if name == "name" => template = Some(s),
                    Value::Scalar(Scalar::Str(s)) => source = s.value(),
                    _ => {
                        self.errors.at(field_tokens(f), format!("`{name}` must be a string"));
                        ok = false;
                    }
                }
                continue;
            }
            let kind = match AxisKind::from_name(&name) {
                Ok(k) => k,
                Err(_) => {
                    self.errors.at(
                        &f.name,
                        format!(
                            "unknown field `{name}`{}; a family takes the axes {} and `name`, `source`",
                            hint(&name, allowed.iter().copied()),
                            axis_names.join(", ")
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            if let Some(first) = seen.get(kind.name()) {
                self.errors
                    .at(&f.name, format!("axis `{}` is given twice", kind.name()));
                self.errors.at(first, "first given here");
                ok = false;
                continue;
            }
            seen.insert(kind.name().to_string(), &f.name);
            match (&f.rounding, kind) {
                (Some(r), AxisKind::FfnRatio) => {
                    let multiple = match &r.multiple.value {
                        NumberValue::Int(m) if *m >= 1 => *m as u64,
                        _ => {
                            self.errors
                                .at(&r.multiple.tokens, "the rounding multiple must be a positive integer");
                            ok = false;
                            1
                        }
                    };
                    rounding = FfnRounding {
                        multiple,
                        rounding: r.mode,
                    };
                }
                (Some(_), _) => {
                    self.errors
                        .at(&f.name, "rounding (`round_to`) applies to `ffn_ratio` only");
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
        let Some(template) = template else {
            self.errors.at(
                &def.name,
                format!("family `{}` needs a name template: `name: \"...\"`", def.name),
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
            template: template.value().into(),
        };
        if let Err(e) = nas_core::search::family::parse_template(&template.value()) {
            self.errors.at(template, e);
            return None;
        }
        if let Err(e) = family.check() {
            self.errors.at(&def.name, e);
            return None;
        }
        Some(family)
    }

    /// A family's candidates, enumerated now: names must not collide and at
    /// least one combination must be valid.
    fn members(&mut self, def: &FamilyDef, family: &Family) -> Option<Vec<Candidate>> {
        let template = template_of(def);
        let expansion = match family.expand(self.workload) {
            Ok(x) => x,
            Err(e) => {
                self.errors.at(template, e);
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
            self.errors.at(
                &def.name,
                format!(
                    "family `{}` yields no valid candidate ({} combinations, all invalid; e.g. {})",
                    def.name,
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
    fn space(&mut self, def: &FamilyDef, family: &Family) -> bool {
        if let Err(e) = family.check_names_distinct() {
            self.errors.at(template_of(def), e);
            return false;
        }
        match nas_core::search::stream::count_valid(family, self.workload) {
            Ok(0) | Err(_) => {
                self.errors
                    .at(&def.name, format!("space `{}` yields no valid candidate", def.name));
                false
            }
            Ok(_) => true,
        }
    }

    fn axis_values(&mut self, kind: AxisKind, value: &Value) -> Option<Vec<Labeled>> {
        let items: Vec<(&Scalar, Option<&LitStr>)> = match value {
            Value::Scalar(s) => vec![(s, None)],
            Value::List { span, items } => {
                if items.is_empty() {
                    self.errors.span(*span, format!("axis `{}` has no values", kind.name()));
                    return None;
                }
                items.iter().map(|i| (&i.value, i.label.as_ref())).collect()
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (scalar, label) in items {
            let value = match (kind, scalar) {
                (AxisKind::QkNorm | AxisKind::TieEmbeddings, Scalar::Bool(b)) => Some(AxisValue::Bool(b.value)),
                (AxisKind::QkNorm | AxisKind::TieEmbeddings, other) => {
                    self.errors.at(
                        other.span_tokens(),
                        format!("`{}` takes `true` or `false`", kind.name()),
                    );
                    None
                }
                (AxisKind::Window, Scalar::Full(_)) => Some(AxisValue::Window(None)),
                (AxisKind::Window, other) => self.positive_int("window", other).map(|w| AxisValue::Window(Some(w))),
                (AxisKind::FfnRatio, Scalar::Number(n)) => {
                    let r = n.value.as_f64();
                    if r.is_finite() && r > 0.0 {
                        Some(AxisValue::Ratio(r))
                    } else {
                        self.errors
                            .at(&n.tokens, "`ffn_ratio` must be a finite positive number");
                        None
                    }
                }
                (AxisKind::FfnRatio, other) => {
                    self.errors.at(other.span_tokens(), "`ffn_ratio` takes numbers");
                    None
                }
                (k, other) => self.positive_int(k.name(), other).map(AxisValue::Int),
            };
            match value {
                Some(v) => out.push(Labeled {
                    value: v,
                    label: label.map(|l| l.value().into()),
                }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn sweep(&mut self, def: &SweepDef) -> Option<CliffSweep> {
        let axis = match def.axis.to_string().as_str() {
            "hidden_dim" => CliffAxis::HiddenDim,
            "ffn_dim" => CliffAxis::FfnDim,
            other => {
                self.errors.at(
                    &def.axis,
                    format!(
                        "cannot sweep `{other}`{}; sweeps vary `hidden_dim` or `ffn_dim`",
                        hint(other, ["hidden_dim", "ffn_dim"])
                    ),
                );
                return None;
            }
        };
        let key = axis.name();
        let from = self.positive_int(key, &Scalar::Number(def.from.clone()));
        let to = self.positive_int(key, &Scalar::Number(def.to.clone()));
        let step = self.positive_int("step", &Scalar::Number(def.step.clone()));
        let (from, to, step) = (from?, to?, step?);
        if from >= to {
            let mut range = def.from.tokens.clone();
            range.extend(def.to.tokens.clone());
            self.errors.at(range, format!("the sweep {from}..{to} is empty"));
            return None;
        }
        let points = (to - from).div_ceil(step);
        if points > nas_core::search::MAX_SWEEP_POINTS {
            let mut range = def.from.tokens.clone();
            range.extend(def.to.tokens.clone());
            let limit = nas_core::search::MAX_SWEEP_POINTS;
            self.errors.at(
                range,
                format!("the sweep has {points} points, more than the limit of {limit}"),
            );
            return None;
        }
        let (base, _) = self.shape_fields(&def.axis, &def.fields, &[], Some((key, from, &def.axis)))?;
        let values: Vec<u64> = (from..to).step_by(step as usize).collect();
        for &v in &values {
            let shape = match axis {
                CliffAxis::HiddenDim => LayerShape { hidden_dim: v, ..base },
                CliffAxis::FfnDim => LayerShape { ffn_dim: v, ..base },
            };
            if let Err(p) = shape.validate() {
                self.errors.at(&def.axis, format!("at {key} = {v}: {p}"));
                return None;
            }
        }
        Some(CliffSweep {
            axis,
            base,
            values: values.into(),
        })
    }

    fn constraints(&mut self, clauses: &[Clause]) -> Vec<Constraint> {
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

    fn clause(&mut self, clause: &Clause) -> Option<Constraint> {
        match clause {
            Clause::Fits {
                gpu,
                batch,
                context,
                tokens,
            } => {
                let key = gpu.to_string();
                let Some(profile) = self.hardware.iter().find(|h| h.key == key) else {
                    let known: Vec<&str> = self.hardware.iter().map(|h| h.key.as_ref()).collect();
                    self.errors.at(
                        gpu,
                        format!(
                            "`fits` names `{key}`, which is not a target of this search{}; targets: {}",
                            hint(&key, known.iter().copied()),
                            known.join(", ")
                        ),
                    );
                    return None;
                };
                let Some(memory_gib) = memory_of(profile) else {
                    self.errors.at(
                        gpu,
                        format!("gpu `{key}` declares no memory: add `memory_gib: N` to its `gpu` item"),
                    );
                    return None;
                };
                let (batch, context) = (
                    self.positive_int("batch", &Scalar::Number(batch.clone()))?,
                    self.positive_int("context", &Scalar::Number(context.clone()))?,
                );
                let c = Constraint::Fits {
                    gpu: key.into(),
                    memory_gib,
                    batch,
                    context,
                };
                self.checked(c, tokens)
            }
            Clause::Compare { metric, op, value, .. } => {
                let m = self.metric(metric)?;
                let bound = self.bound(value)?;
                let c = Constraint::Compare {
                    metric: m,
                    op: *op,
                    bound,
                };
                self.checked(c, &value.span_tokens())
            }
            Clause::Range {
                metric,
                lo,
                hi,
                inclusive,
                tokens,
            } => {
                let m = self.metric(metric)?;
                let (lo_b, hi_b) = (self.bound(lo)?, self.bound(hi)?);
                let c = Constraint::Range {
                    metric: m,
                    lo: lo_b,
                    hi: hi_b,
                    inclusive: *inclusive,
                };
                if m.kind() != MetricType::Bool && (lo_b.kind() == MetricType::Bool || hi_b.kind() == MetricType::Bool)
                {
                    return self.checked(c, &lo.span_tokens());
                }
                let mut range = lo.span_tokens();
                range.extend(hi.span_tokens());
                let at = if m.kind() == MetricType::Bool {
                    tokens.clone()
                } else {
                    range
                };
                self.checked(c, &at)
            }
            Clause::All(parts, _) | Clause::Any(parts, _) => {
                let parts: Vec<Option<Constraint>> = parts.iter().map(|p| self.clause(p)).collect();
                let parts: Vec<Constraint> = parts.into_iter().collect::<Option<_>>()?;
                Some(match clause {
                    Clause::All(..) => Constraint::All(parts.into()),
                    _ => Constraint::Any(parts.into()),
                })
            }
        }
    }

    fn checked(&mut self, c: Constraint, at: &TokenStream) -> Option<Constraint> {
        match c.check() {
            Ok(()) => Some(c),
            Err(e) => {
                self.errors.at(at, e);
                None
            }
        }
    }

    fn metric(&mut self, ident: &Ident) -> Option<Metric> {
        let name = ident.to_string();
        let canonical = canonical_key(&name).unwrap_or(&name);
        match Metric::from_name(canonical) {
            Ok(m) => Some(m),
            Err(e) => {
                self.errors.at(ident, e);
                None
            }
        }
    }

    fn bound(&mut self, value: &Scalar) -> Option<Bound> {
        match value {
            Scalar::Number(n) => Some(match n.value {
                NumberValue::Int(v) => match i64::try_from(v) {
                    Ok(v) => Bound::Int(v),
                    Err(_) => Bound::Float(v as f64),
                },
                NumberValue::Float(v) if v.is_finite() => Bound::Float(v),
                NumberValue::Float(_) => {
                    self.errors.at(&n.tokens, "a bound must be finite");
                    return None;
                }
            }),
            Scalar::Bool(b) => Some(Bound::Bool(b.value)),
            other => {
                self.errors
                    .at(other.span_tokens(), "expected a number or `true`/`false`");
                None
            }
        }
    }

    /// Reports top-level bounds on one metric that no value can meet together.
    fn contradictions(&mut self, clauses: &[Clause], converted: &[Constraint]) -> bool {
        struct Side<'a> {
            value: f64,
            strict: bool,
            at: &'a TokenStream,
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
            let at = clause.tokens();
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
                    let (later, earlier) = if std::ptr::eq(l.at, at) {
                        (l.at, h.at)
                    } else {
                        (h.at, l.at)
                    };
                    self.errors.at(
                        later,
                        format!(
                            "contradictory bounds: no `{}` satisfies this and an earlier clause",
                            metric.name()
                        ),
                    );
                    self.errors.at(earlier, "the clause it contradicts");
                    return true;
                }
            }
        }
        false
    }

    fn satisfiable(&mut self, span: Span, clauses: &[Constraint], candidates: &[Candidate]) {
        let constraints = Constraints {
            clauses: clauses.to_vec().into(),
        };
        if candidates.is_empty() || candidates.iter().any(|c| constraints.report(&c.shape).passes) {
            return;
        }
        let example = &candidates[0];
        let failed = constraints.report(&example.shape).failed.join(", ");
        self.errors.span(
            span,
            format!(
                "no declared candidate satisfies these constraints (all {} fail; e.g. `{}`: {failed})",
                candidates.len(),
                example.name
            ),
        );
    }
}

/// The metric names of clauses on `prefill_ms`, `decode_ms` and `decode_tokens_per_s`.
fn latency_metrics<'a>(clauses: &'a [Clause], out: &mut Vec<&'a Ident>) {
    for c in clauses {
        match c {
            Clause::Compare { metric, .. } | Clause::Range { metric, .. } => {
                let name = metric.to_string();
                if Metric::from_name(&name).is_ok_and(Metric::is_latency) {
                    out.push(metric);
                }
            }
            Clause::All(parts, _) | Clause::Any(parts, _) => latency_metrics(parts, out),
            Clause::Fits { .. } => {}
        }
    }
}

/// The `name: "..."` of a family definition (checked to exist before).
fn template_of(def: &FamilyDef) -> TokenStream {
    match def.fields.iter().find(|f| f.name == "name").map(|f| &f.value) {
        Some(Value::Scalar(s)) => s.span_tokens(),
        _ => def.name.to_token_stream(),
    }
}

fn bound_f64(b: Bound) -> Option<f64> {
    match b {
        Bound::Int(v) => Some(v as f64),
        Bound::Float(v) => Some(v),
        Bound::Bool(v) => Some(f64::from(u8::from(v))),
    }
}

fn scalar_number(v: &Value) -> Option<&Number> {
    match v {
        Value::Scalar(Scalar::Number(n)) => Some(n),
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
    per_gpu: BTreeMap<String, (Ident, CostModelKind)>,
}

impl CostModels {
    fn of(&self, key: &str) -> Option<CostModelKind> {
        self.per_gpu.get(key).map(|(_, k)| *k).or(self.all)
    }
}
