//! A streaming search written as JSON, for people who do not write Rust
//! (`nas search --spec FILE.json`): the same concepts as `nas_search!`.
//!
//! ```json
//! {
//!   "hardware": ["a100", "t4", "h100", {"key": "mine", "base": "h100", "matmul_tflops": 600}],
//!   "workload": {"seq_len": 2048, "batch_size": 1},
//!   "family": {
//!     "axes": [
//!       {"axis": "hidden_dim", "values": [1536, 2048, 2560]},
//!       {"axis": "head_dim", "values": [64, 128]},
//!       {"axis": "gqa_group", "values": [4]},
//!       {"axis": "ffn_ratio", "values": [4.0, {"value": 5.333, "label": "5p33"}], "round": "up", "multiple": 128},
//!       {"axis": "window", "values": [512, null]},
//!       {"axis": "qk_norm", "values": [true, false]}
//!     ],
//!     "name": "g_h{hidden_dim}_hd{head_dim}_f{ffn_ratio}_w{window}_{qk_norm}"
//!   },
//!   "constraints": [
//!     {"metric": "hidden_dim", "op": ">=", "value": 2048},
//!     {"metric": "ffn_ratio", "in": [3.75, 5.5]},
//!     {"any": [{"metric": "num_heads", "op": ">=", "value": 16}, {"metric": "head_dim", "op": "==", "value": 256}]}
//!   ],
//!   "top_k": 25
//! }
//! ```

use serde_json::{Map, Value};

use crate::error::{hint, Error, Result};
use crate::gpu::{Gpu, Registry};
use crate::search::constraints::{CmpOp, Constraints};
use crate::search::family::{Family, Workload};
use crate::search::spec_builder::{self as b, Place};
use crate::shapes::kind_of;

/// A search read from JSON, ready for [`crate::search::stream::search`].
#[derive(Clone, Debug)]
pub struct JsonSearch {
    /// The GPUs, resolved with the cost model asked for (profile files read).
    pub hardware: Vec<Gpu>,
    pub workload: Workload,
    pub family: Family,
    pub constraints: Constraints,
    pub top_k: usize,
    /// What each GPU's constrained top is ordered by (default `total_ms`).
    pub rank_by: crate::search::RankMetric,
}

/// The keys of the top level (the JSON syntax; what they hold is the builder's).
pub const TOP_KEYS: [&str; 8] = [
    "hardware",
    "cost_model",
    "workload",
    "training",
    "family",
    "constraints",
    "top_k",
    "rank_by",
];

impl JsonSearch {
    /// Reads and checks a search spec; every error names the JSON path, and
    /// all of them are reported (`PATH: problem; PATH: problem`).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut t = Translator::default();
        let input = t.spec(v);
        let built = if t.errors.is_empty() {
            match b::build(&input) {
                Ok(built) => Some(built),
                Err(errors) => {
                    for e in errors {
                        let path = t.path(e.place);
                        t.errors.push((path, e.message));
                    }
                    None
                }
            }
        } else {
            None
        };
        let Some(built) = built else {
            return Err(combined(t.errors));
        };
        let mut hardware = Vec::new();
        for (target, place) in built.hardware.iter().zip(&t.hardware_places) {
            match Registry::builtin().resolve(target) {
                Ok(gpu) => hardware.push(gpu),
                Err(e) => t.errors.push((t.path(*place), e.to_string())),
            }
        }
        let Some((family, top_k)) = built.space else {
            t.errors.push(("spec".into(), "missing key `family`".into()));
            return Err(combined(t.errors));
        };
        if !t.errors.is_empty() {
            return Err(combined(t.errors));
        }
        Ok(JsonSearch {
            hardware,
            workload: built.workload,
            family,
            constraints: Constraints {
                clauses: built.constraints.into(),
            },
            top_k,
            rank_by: built.rank_by,
        })
    }
}

/// Every error as one: the first's place, then the rest as `PATH: problem`.
fn combined(errors: Vec<(String, String)>) -> Error {
    let mut it = errors.into_iter();
    let (place, mut problem) = it.next().unwrap_or_else(|| ("spec".into(), "invalid spec".into()));
    for (p, m) in it {
        problem.push_str(&format!("; {p}: {m}"));
    }
    Error::Input { place, problem }
}

/// JSON -> builder input: paths for places, errors of the syntax itself
/// (wrong JSON types, unknown keys of the JSON form).
#[derive(Default)]
struct Translator {
    paths: Vec<String>,
    errors: Vec<(String, String)>,
    /// The place of each hardware entry, in order.
    hardware_places: Vec<Place>,
}

impl Translator {
    fn place(&mut self, path: impl Into<String>) -> Place {
        self.paths.push(path.into());
        Place(self.paths.len() - 1)
    }

    fn path(&self, place: Place) -> String {
        self.paths.get(place.0).cloned().unwrap_or_else(|| "spec".into())
    }

    fn error(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.errors.push((path.into(), problem.into()));
    }

    fn object<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.error(path, format!("expected an object, got {}", kind_of(v)));
        }
        o
    }

    fn known_keys(&mut self, obj: &Map<String, Value>, known: &[&str], path: &str) {
        for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            self.error(
                path,
                format!(
                    "unknown key `{k}`{}; expected: {}",
                    hint(k, known.iter().copied()),
                    known.join(", ")
                ),
            );
        }
    }

    fn string(&mut self, v: Option<&Value>, path: &str, what: &str) -> Option<String> {
        match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.error(path, format!("expected a string, got {other}"));
                None
            }
            None => {
                let (parent, _) = path.rsplit_once('.').unwrap_or(("spec", ""));
                self.error(parent, format!("missing string `{what}`"));
                None
            }
        }
    }

    fn word(&mut self, text: String, path: &str) -> b::Word {
        b::Word {
            text,
            place: self.place(path),
        }
    }

    /// A JSON scalar as the builder's; arrays and objects are errors here.
    fn atom(&mut self, v: &Value, path: &str) -> b::Atom {
        let value = match v {
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => b::Scalar::Int(i.into()),
                (_, Some(u)) => b::Scalar::Int(u.into()),
                _ => b::Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::Bool(x) => b::Scalar::Bool(*x),
            Value::Null => b::Scalar::Full,
            Value::String(s) => b::Scalar::Str(s.clone()),
            other => {
                self.error(
                    path,
                    format!("expected a number, string, boolean or null, got {}", kind_of(other)),
                );
                b::Scalar::Full
            }
        };
        b::Atom {
            value,
            place: self.place(path),
        }
    }

    fn field(&mut self, name: &str, v: &Value, path: &str) -> b::Field {
        b::Field {
            name: self.word(name.to_string(), path),
            value: b::Value::Scalar(self.atom(v, path)),
            rounding: None,
            place: self.place(path),
        }
    }

    fn spec(&mut self, v: &Value) -> b::SpecInput {
        let place = self.place("spec");
        let mut items = Vec::new();
        let Some(top) = self.object(v, "spec") else {
            return b::SpecInput { place, items };
        };
        self.known_keys(top, &TOP_KEYS, "spec");

        let mut cost_model = b::CostModelInput {
            place: self.place("cost_model"),
            all: None,
            per_gpu: Vec::new(),
        };
        match top.get("cost_model") {
            None => {}
            Some(Value::Object(map)) => {
                for (key, word) in map {
                    let path = format!("cost_model.{key}");
                    if let Some(w) = self.cost_model_word(word, &path) {
                        let gpu = self.word(key.clone(), &path);
                        cost_model.per_gpu.push((gpu, w));
                    }
                }
            }
            Some(other) => cost_model.all = self.cost_model_word(other, "cost_model"),
        }

        let mut names = Vec::new();
        let hardware_place = self.place("hardware");
        match top.get("hardware") {
            Some(Value::Array(entries)) => {
                for (i, h) in entries.iter().enumerate() {
                    let path = format!("hardware[{i}]");
                    match h {
                        Value::String(key) => names.push(self.word(key.clone(), &path)),
                        Value::Object(obj) => {
                            let Some(key) = self.string(obj.get("key"), &format!("{path}.key"), "key") else {
                                continue;
                            };
                            let base = match obj.get("base") {
                                None => None,
                                Some(Value::String(base)) => Some(self.word(base.clone(), &format!("{path}.base"))),
                                Some(other) => {
                                    self.error(format!("{path}.base"), format!("expected a GPU key, got {other}"));
                                    None
                                }
                            };
                            if let Some(word) = obj.get("cost_model") {
                                let cm_path = format!("{path}.cost_model");
                                if let Some(w) = self.cost_model_word(word, &cm_path) {
                                    let gpu = self.word(key.clone(), &cm_path);
                                    cost_model.per_gpu.push((gpu, w));
                                }
                            }
                            let fields = obj
                                .iter()
                                .filter(|(k, _)| !matches!(k.as_str(), "key" | "base" | "cost_model"))
                                .map(|(k, v)| self.field(k, v, &format!("{path}.{k}")))
                                .collect();
                            let name = self.word(key, &path);
                            names.push(name.clone());
                            items.push(b::ItemInput::Gpu(b::GpuInput { name, base, fields }));
                        }
                        other => self.error(path, format!("expected a GPU key or an object, got {other}")),
                    }
                }
                self.hardware_places = names.iter().map(|n: &b::Word| n.place).collect();
                items.push(b::ItemInput::Hardware {
                    place: hardware_place,
                    names,
                });
            }
            Some(other) => self.error("hardware", format!("expected a non-empty array, got {other}")),
            None => self.error("spec", "missing key `hardware`"),
        }
        items.push(b::ItemInput::CostModel(cost_model));

        let mut workload = Vec::new();
        if let Some(w) = top.get("workload") {
            if let Some(w) = self.object(w, "workload") {
                for (k, v) in w {
                    workload.push(self.field(k, v, &format!("workload.{k}")));
                }
            }
        }
        if let Some(t) = top.get("training") {
            if let Some(obj) = self.object(t, "training") {
                self.known_keys(obj, &["tokens", "law", "params"], "training");
                if !obj.contains_key("tokens") {
                    self.error("training", "missing key `tokens`");
                }
                for (json, key) in [
                    ("tokens", "training_tokens"),
                    ("law", "scaling_law"),
                    ("params", "loss_params"),
                ] {
                    if let Some(v) = obj.get(json) {
                        workload.push(self.field(key, v, &format!("training.{json}")));
                    }
                }
            }
        }
        let workload_place = self.place("workload");
        items.push(b::ItemInput::Workload {
            place: workload_place,
            fields: workload,
        });

        match top.get("family") {
            Some(f) => {
                if let Some(family) = self.family(f, top.get("top_k")) {
                    items.push(b::ItemInput::Family(family));
                }
            }
            None => self.error("spec", "missing key `family`"),
        }

        match top.get("rank_by") {
            None => {}
            Some(Value::String(name)) => {
                let word = self.word(name.clone(), "rank_by");
                items.push(b::ItemInput::RankBy(word));
            }
            Some(other) => self.error("rank_by", format!("expected a metric name, got {other}")),
        }

        match top.get("constraints") {
            None => {}
            Some(Value::Array(list)) => {
                let clauses = list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| self.clause(c, &format!("constraints[{i}]")))
                    .collect();
                let place = self.place("constraints");
                items.push(b::ItemInput::Constraints { place, clauses });
            }
            Some(other) => self.error("constraints", format!("expected an array, got {other}")),
        }
        b::SpecInput { place, items }
    }

    fn cost_model_word(&mut self, v: &Value, path: &str) -> Option<b::Word> {
        match v {
            Value::String(word) => Some(self.word(word.clone(), path)),
            other => {
                self.error(path, format!("expected `measured` or `seed`, got {other}"));
                None
            }
        }
    }

    fn family(&mut self, v: &Value, top_k: Option<&Value>) -> Option<b::FamilyInput> {
        let obj = self.object(v, "family")?;
        self.known_keys(obj, &["axes", "name", "source"], "family");
        let mut fields = Vec::new();
        for key in ["name", "source"] {
            if let Some(v) = obj.get(key) {
                fields.push(self.field(key, v, &format!("family.{key}")));
            }
        }
        match obj.get("axes") {
            Some(Value::Array(axes)) => {
                for (i, axis) in axes.iter().enumerate() {
                    fields.extend(self.axis(axis, &format!("family.axes[{i}]")));
                }
            }
            _ => self.error("family", "missing array `axes`"),
        }
        let top = top_k.map(|t| self.atom(t, "top_k"));
        Some(b::FamilyInput {
            name: self.word("family".into(), "family"),
            mode: b::FamilyMode::Space { top },
            fields,
        })
    }

    fn axis(&mut self, v: &Value, path: &str) -> Option<b::Field> {
        let obj = self.object(v, path)?;
        self.known_keys(obj, &["axis", "values", "round", "multiple"], path);
        let name = self.string(obj.get("axis"), &format!("{path}.axis"), "axis")?;
        let values_path = format!("{path}.values");
        let Some(list) = obj.get("values").and_then(Value::as_array) else {
            self.error(path, "missing array `values`");
            return None;
        };
        let mut items = Vec::new();
        for (j, item) in list.iter().enumerate() {
            let p = format!("{values_path}[{j}]");
            items.push(match item {
                Value::Object(o) => {
                    self.known_keys(o, &["value", "label"], &p);
                    b::ListItem {
                        value: self.atom(o.get("value").unwrap_or(&Value::Null), &format!("{p}.value")),
                        label: o.get("label").map(|l| self.atom(l, &format!("{p}.label"))),
                    }
                }
                other => b::ListItem {
                    value: self.atom(other, &p),
                    label: None,
                },
            });
        }
        let rounding = (obj.contains_key("round") || obj.contains_key("multiple")).then(|| b::RoundingInput {
            place: self.place(path),
            mode: obj.get("round").map(|r| self.atom(r, &format!("{path}.round"))),
            multiple: obj.get("multiple").map(|m| self.atom(m, &format!("{path}.multiple"))),
        });
        Some(b::Field {
            name: self.word(name, path),
            value: b::Value::List {
                place: self.place(values_path),
                items,
            },
            rounding,
            place: self.place(path),
        })
    }

    fn clause(&mut self, v: &Value, path: &str) -> Option<b::ClauseInput> {
        let obj = self.object(v, path)?;
        let place = self.place(path);
        if let Some(fits) = obj.get("fits") {
            self.known_keys(obj, &["fits"], path);
            let fpath = format!("{path}.fits");
            let f = self.object(fits, &fpath)?;
            self.known_keys(f, &["gpu", "batch", "context"], &fpath);
            let gpu = self.string(f.get("gpu"), &format!("{fpath}.gpu"), "gpu")?;
            let arg = |t: &mut Self, k: &str| match f.get(k) {
                Some(v) => Some(t.atom(v, &format!("{fpath}.{k}"))),
                None => {
                    t.error(fpath.as_str(), format!("missing `{k}`"));
                    None
                }
            };
            let (batch, context) = (arg(self, "batch"), arg(self, "context"));
            return Some(b::ClauseInput::Fits {
                gpu: self.word(gpu, &format!("{fpath}.gpu")),
                batch: batch?,
                context: context?,
                place,
            });
        }
        for (key, all) in [("all", true), ("any", false)] {
            if let Some(items) = obj.get(key) {
                self.known_keys(obj, &[key], path);
                let Some(items) = items.as_array() else {
                    self.error(path, format!("`{key}` takes an array of constraints"));
                    return None;
                };
                let parts = items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.clause(c, &format!("{path}.{key}[{i}]")))
                    .collect::<Option<Vec<_>>>()?;
                return Some(if all {
                    b::ClauseInput::All(parts, place)
                } else {
                    b::ClauseInput::Any(parts, place)
                });
            }
        }
        let Some(metric) = obj.get("metric").and_then(Value::as_str) else {
            self.error(path, "missing string `metric` (or `all` / `any`)");
            return None;
        };
        let metric = self.word(metric.to_string(), &format!("{path}.metric"));
        if let Some(range) = obj.get("in") {
            self.known_keys(obj, &["metric", "in", "inclusive"], path);
            let rpath = format!("{path}.in");
            let Some([lo, hi]) = range
                .as_array()
                .map(Vec::as_slice)
                .and_then(|a| <&[Value; 2]>::try_from(a).ok())
            else {
                self.error(path, "`in` takes [low, high]");
                return None;
            };
            let inclusive = match obj.get("inclusive") {
                Some(i) => self.atom(i, &format!("{path}.inclusive")),
                None => b::Atom {
                    value: b::Scalar::Bool(true),
                    place,
                },
            };
            return Some(b::ClauseInput::Range {
                metric,
                lo: self.atom(lo, &format!("{rpath}[0]")),
                hi: self.atom(hi, &format!("{rpath}[1]")),
                inclusive,
                range: self.place(rpath),
                place,
            });
        }
        self.known_keys(obj, &["metric", "op", "value"], path);
        let op = match obj.get("op").and_then(Value::as_str) {
            Some(">=") => CmpOp::Ge,
            Some(">") => CmpOp::Gt,
            Some("<=") => CmpOp::Le,
            Some("<") => CmpOp::Lt,
            Some("==") => CmpOp::Eq,
            Some("!=") => CmpOp::Ne,
            _ => {
                let got = obj.get("op").map_or("nothing".to_string(), Value::to_string);
                self.error(path, format!("`op` is one of >=, >, <=, <, ==, !=; got {got}"));
                return None;
            }
        };
        let Some(value) = obj.get("value") else {
            self.error(path, "missing `value`");
            return None;
        };
        Some(b::ClauseInput::Compare {
            metric,
            op,
            value: self.atom(value, &format!("{path}.value")),
            place,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "hardware": ["a100", {"key": "mine", "base": "h100", "matmul_tflops": 600}],
            "cost_model": "seed",
            "family": {
                "axes": [
                    {"axis": "hidden_dim", "values": [1536, 2048]},
                    {"axis": "head_dim", "values": [128]},
                    {"axis": "ffn_ratio", "values": [4.0, {"value": 5.333, "label": "5p33"}], "round": "up"},
                    {"axis": "window", "values": [512, null]}
                ],
                "name": "g_h{hidden_dim}_f{ffn_ratio}_w{window}"
            },
            "constraints": [{"metric": "hidden_dim", "op": ">=", "value": 2048}, {"metric": "ffn_ratio", "in": [3.75, 5.5]}],
            "top_k": 3
        })
    }

    #[test]
    fn reads_a_whole_spec() {
        let s = JsonSearch::from_json(&spec()).unwrap();
        let mine = s.hardware[1].seed_throughputs().unwrap();
        assert_eq!((mine.matmul_tflops, mine.attention_tflops), (600.0, 400.0));
        assert_eq!(s.family.combinations(), 8);
        assert_eq!(s.family.ffn_rounding.rounding, crate::search::family::Rounding::Up);
        assert_eq!(s.constraints.clauses.len(), 2);
        assert_eq!(s.top_k, 3);
    }

    #[test]
    fn errors_name_the_json_path() {
        let cases = [
            (
                "/family/axes/0/axis",
                json!("hiden_dim"),
                "family.axes[0]: unknown field `hiden_dim` (did you mean `hidden_dim`?)",
            ),
            (
                "/family/axes/1/values/0",
                json!(-4),
                "family.axes[1].values[0]: `head_dim` must be positive, got -4",
            ),
            ("/constraints/0/op", json!("=>"), "constraints[0]: `op` is one of"),
            ("/constraints/1/in", json!([5.5, 3.75]), "constraints[1].in: the range"),
            ("/hardware/0", json!("h1000"), "hardware[0]: unknown hardware `h1000`"),
            ("/top_k", json!(0), "top_k: `top_k` must be at least 1, got 0"),
            ("/family/name", json!("g_h{hidden_dim}"), "family.name: name template"),
        ];
        for (pointer, value, expected) in cases {
            let mut v = spec();
            *v.pointer_mut(pointer).unwrap() = value;
            let e = JsonSearch::from_json(&v).unwrap_err().to_string();
            assert!(e.contains(expected), "{pointer}: expected `{expected}` in `{e}`");
        }
        let mut v = spec();
        v.as_object_mut().unwrap().insert("topk".into(), json!(3));
        assert!(JsonSearch::from_json(&v)
            .unwrap_err()
            .to_string()
            .contains("did you mean `top_k`"));
    }
}
