//! Families: value lists per axis, whose cross product (with derivation
//! rules for what is not an axis) gives candidates named by a template.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::arch::{Architecture, LayerPattern};
use crate::error::{hint_or_list, Error, Result};
use crate::model::ModelDims;
use crate::precision::{KvCachePrecision, Precision, WeightPrecision};
use crate::shapes::{Candidate, LayerShape, ShapeField};

/// An axis a family can vary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AxisKind {
    HiddenDim,
    HeadDim,
    /// Without this axis, heads = hidden_dim / head_dim (skipped when it does not divide).
    NumHeads,
    KvHeads,
    /// kv heads = heads / group; a group that does not divide the heads
    /// skips the combination (or, under [`GqaRounding::Down`], the seed's
    /// rule: kv heads = max(1, floor(heads / group))).
    GqaGroup,
    FfnDim,
    /// ffn_dim = hidden_dim * ratio, rounded to the family's multiple.
    FfnRatio,
    /// `None` is full attention.
    Window,
    QkNorm,
    SeqLen,
    BatchSize,
    /// Whole-model axes: they change no layer's latency, only the model's
    /// parameters, memory, prefill and decode.
    NumLayers,
    VocabSize,
    TieEmbeddings,
    ContextLen,
    /// Deployment precision: the weights' format (bf16, fp8, int4) and the
    /// KV cache's (bf16, fp8).
    Weights,
    KvCache,
    /// Mixture of experts, layer pattern and latent attention ([`crate::arch`]).
    Experts,
    TopK,
    ExpertFfnDim,
    SharedExperts,
    SharedExpertFfnDim,
    FirstDenseLayers,
    LayerPattern,
    KvLoraRank,
    QLoraRank,
    RopeHeadDim,
    VHeadDim,
}

impl AxisKind {
    pub const ALL: [AxisKind; 28] = [
        AxisKind::HiddenDim,
        AxisKind::HeadDim,
        AxisKind::NumHeads,
        AxisKind::KvHeads,
        AxisKind::GqaGroup,
        AxisKind::FfnDim,
        AxisKind::FfnRatio,
        AxisKind::Window,
        AxisKind::QkNorm,
        AxisKind::SeqLen,
        AxisKind::BatchSize,
        AxisKind::NumLayers,
        AxisKind::VocabSize,
        AxisKind::TieEmbeddings,
        AxisKind::ContextLen,
        AxisKind::Weights,
        AxisKind::KvCache,
        AxisKind::Experts,
        AxisKind::TopK,
        AxisKind::ExpertFfnDim,
        AxisKind::SharedExperts,
        AxisKind::SharedExpertFfnDim,
        AxisKind::FirstDenseLayers,
        AxisKind::LayerPattern,
        AxisKind::KvLoraRank,
        AxisKind::QLoraRank,
        AxisKind::RopeHeadDim,
        AxisKind::VHeadDim,
    ];

    /// The axes of [`crate::arch`]: a family with one of them is a family of stacks.
    pub fn is_arch(self) -> bool {
        matches!(
            self,
            AxisKind::Experts
                | AxisKind::TopK
                | AxisKind::ExpertFfnDim
                | AxisKind::SharedExperts
                | AxisKind::SharedExpertFfnDim
                | AxisKind::FirstDenseLayers
                | AxisKind::LayerPattern
                | AxisKind::KvLoraRank
                | AxisKind::QLoraRank
                | AxisKind::RopeHeadDim
                | AxisKind::VHeadDim
        )
    }

    /// The axis's name in specs and name templates.
    pub fn name(self) -> &'static str {
        match self {
            AxisKind::HiddenDim => "hidden_dim",
            AxisKind::HeadDim => "head_dim",
            AxisKind::NumHeads => "num_heads",
            AxisKind::KvHeads => "kv_heads",
            AxisKind::GqaGroup => "gqa_group",
            AxisKind::FfnDim => "ffn_dim",
            AxisKind::FfnRatio => "ffn_ratio",
            AxisKind::Window => "window",
            AxisKind::QkNorm => "qk_norm",
            AxisKind::SeqLen => "seq_len",
            AxisKind::BatchSize => "batch_size",
            AxisKind::NumLayers => "num_layers",
            AxisKind::VocabSize => "vocab_size",
            AxisKind::TieEmbeddings => "tie_embeddings",
            AxisKind::ContextLen => "context_len",
            AxisKind::Weights => "weights",
            AxisKind::KvCache => "kv_cache",
            AxisKind::Experts => "experts",
            AxisKind::TopK => "top_k",
            AxisKind::ExpertFfnDim => "expert_ffn_dim",
            AxisKind::SharedExperts => "shared_experts",
            AxisKind::SharedExpertFfnDim => "shared_expert_ffn_dim",
            AxisKind::FirstDenseLayers => "first_dense_layers",
            AxisKind::LayerPattern => "layer_pattern",
            AxisKind::KvLoraRank => "kv_lora_rank",
            AxisKind::QLoraRank => "q_lora_rank",
            AxisKind::RopeHeadDim => "rope_head_dim",
            AxisKind::VHeadDim => "v_head_dim",
        }
    }

    /// An axis by name; the seed's shape keys are accepted too (`num_heads`, `window_size`...).
    pub fn from_name(name: &str) -> Result<AxisKind> {
        let name = match name {
            "heads" => "num_heads",
            "num_kv_heads" => "kv_heads",
            "window_size" => "window",
            "use_qk_norm" => "qk_norm",
            other => other,
        };
        AxisKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            Error::Spec(format!(
                "unknown axis `{}`{}",
                shown(name),
                hint_or_list(name, AxisKind::ALL.iter().map(|k| k.name()))
            ))
        })
    }
}

/// Most layers the stacks of one family of stacks ([`crate::arch`] axes)
/// list in all, combinations x the deepest `num_layers` (2^25: about 40 s
/// in a debug build, a few seconds in a release one).
pub const MAX_STACK_LAYERS: u64 = 1 << 25;

/// One value an axis takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AxisValue {
    Int(u64),
    Ratio(f64),
    /// A window in tokens, or `None` for full attention.
    Window(Option<u64>),
    Bool(bool),
    Weights(WeightPrecision),
    KvCache(KvCachePrecision),
    /// A layer pattern, `"5:1"`.
    Pattern(LayerPattern),
}

impl AxisValue {
    /// The text a name template shows when no label is given: integers as
    /// is, ratios shortest with `.` as `p` (`3`, `5p333`), full windows as `full`.
    pub fn default_label(&self) -> String {
        match *self {
            AxisValue::Int(v) | AxisValue::Window(Some(v)) => v.to_string(),
            AxisValue::Window(None) => "full".into(),
            AxisValue::Bool(b) => b.to_string(),
            AxisValue::Weights(p) => p.name().to_string(),
            AxisValue::KvCache(p) => p.name().to_string(),
            AxisValue::Pattern(p) => p.to_string(),
            AxisValue::Ratio(r) => {
                let text = format!("{r:?}");
                text.strip_suffix(".0").unwrap_or(&text).replace('.', "p")
            }
        }
    }
}

/// An axis value and the text it shows in candidate names.
#[derive(Clone, Debug, PartialEq)]
pub struct Labeled {
    pub value: AxisValue,
    pub label: Option<Cow<'static, str>>,
}

impl Labeled {
    pub const fn new(value: AxisValue) -> Self {
        Labeled { value, label: None }
    }

    pub const fn with_label(value: AxisValue, label: &'static str) -> Self {
        Labeled {
            value,
            label: Some(Cow::Borrowed(label)),
        }
    }

    pub fn label(&self) -> Cow<'_, str> {
        match &self.label {
            Some(l) => Cow::Borrowed(l.as_ref()),
            None => Cow::Owned(self.value.default_label()),
        }
    }
}

/// An axis and its values, in the order they are enumerated.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub kind: AxisKind,
    pub values: Cow<'static, [Labeled]>,
}

/// How `hidden_dim * ffn_ratio` becomes a multiple of `multiple`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// To the nearest multiple, ties to even (Python's `round`).
    NearestEven,
    Up,
    Down,
}

/// Rounding of ratio-derived FFN sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FfnRounding {
    pub multiple: u64,
    pub rounding: Rounding,
}

impl FfnRounding {
    pub fn apply(&self, hidden_dim: u64, ratio: f64) -> u64 {
        let units = hidden_dim as f64 * ratio / self.multiple as f64;
        let units = match self.rounding {
            Rounding::NearestEven => units.round_ties_even(),
            Rounding::Up => units.ceil(),
            Rounding::Down => units.floor(),
        };
        (units.max(0.0) as u64).saturating_mul(self.multiple)
    }
}

/// How a `gqa_group` axis gives kv heads when the group does not divide the
/// heads (heads = hidden_dim / head_dim vary along a family).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GqaRounding {
    /// kv heads = heads / group exactly; a combination whose group does not
    /// divide its heads is skipped (counted among the invalid ones, with
    /// the reason), so a name's `{gqa_group}` is always the group it has.
    #[default]
    Exact,
    /// The seed's rule, asked for explicitly (`gqa_group: 4 round_down` in
    /// the DSL, `"round": "down"` in a JSON spec): kv heads = max(1,
    /// floor(heads / group)); the name shows the declared group, the shape
    /// the group it gets (6 heads in group 4: 1 kv head, a group of 6).
    Down,
}

/// The run-time defaults candidates fall back to: seq_len and batch_size,
/// and whole-model fields (context, training tokens and loss fit...) that
/// neither the candidate nor an axis sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub seq_len: u64,
    pub batch_size: u64,
    pub model: ModelDims,
    /// The precision of candidates that declare none (bf16 unless set).
    pub precision: Precision,
}

impl Workload {
    /// A layer workload without whole-model defaults.
    pub const fn layer(seq_len: u64, batch_size: u64) -> Self {
        Workload {
            seq_len,
            batch_size,
            model: ModelDims::NONE,
            precision: Precision::BF16,
        }
    }
}

/// A family of candidates: the cross product of its axes, first axis outermost.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub source: Cow<'static, str>,
    pub axes: Cow<'static, [Axis]>,
    pub ffn_rounding: FfnRounding,
    pub gqa_rounding: GqaRounding,
    pub template: Cow<'static, str>,
}

/// Most combinations a family may have to be listed candidate by candidate
/// ([`Family::expand`]); larger ones are streamed.
pub const MAX_MATERIALIZED: u128 = 1_000_000;

/// Most values one axis may take (an axis's table lookups and the streaming
/// search's block offsets scale with it).
pub const MAX_AXIS_VALUES: usize = 1 << 16;

/// Longest candidate name, in bytes: a name template's text plus its longest
/// labels must fit (checked before any name is built), and so must every
/// declared candidate's name.
pub const MAX_NAME_LEN: usize = 256;

/// Longest text a derived (non-axis) part of a name template shows: a u64
/// has at most 20 digits, a ratio's shortest form at most 24 characters.
const MAX_DERIVED_LABEL: usize = 24;

/// Most states the check that labels do not run together explores.
pub const MAX_NAME_STATES: usize = 100_000;

/// A combination count as messages show it: [`Family::combinations`]
/// saturates at `u128::MAX`, which is shown as what it means, "2^128 or more"
/// (eight axes of 65,536 values make exactly 2^128).
pub fn shown_count(n: u128) -> String {
    match n {
        u128::MAX => "2^128 or more".to_string(),
        n => n.to_string(),
    }
}

/// A template as error messages show it: at most 60 characters.
pub fn shown(template: &str) -> Cow<'_, str> {
    match template.char_indices().nth(60) {
        Some((end, _)) => Cow::Owned(format!("{}...", &template[..end])),
        None => Cow::Borrowed(template),
    }
}

/// Candidates a family produced, and the combinations it skipped with why.
#[derive(Clone, Debug, Default)]
pub struct Expansion {
    pub candidates: Vec<Candidate>,
    pub skipped: Vec<(String, String)>,
}

/// A piece of a parsed name template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    Axis(AxisKind),
}

/// Parses `gen_h{hidden_dim}_w{window}`; unknown names and stray braces are errors.
pub fn parse_template(template: &str) -> Result<Vec<TemplatePart>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(Error::Spec(format!(
                "name template `{}` has a `}}` without `{{`",
                shown(template)
            )));
        }
        if open > 0 {
            parts.push(TemplatePart::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| Error::Spec(format!("name template `{}` has a `{{` without `}}`", shown(template))))?;
        let name = &rest[open + 1..open + close];
        let kind =
            AxisKind::from_name(name).map_err(|e| Error::Spec(format!("name template `{}`: {e}", shown(template))))?;
        parts.push(TemplatePart::Axis(kind));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest.to_string()));
    }
    Ok(parts)
}

impl Family {
    /// Checks, without enumerating, that no two candidates can share a name:
    /// every axis with several values is in the template, with distinct labels.
    pub fn check_names_distinct(&self) -> Result<()> {
        let parts = parse_template(&self.template)?;
        for axis in self.axes.iter().filter(|a| a.values.len() > 1) {
            if !parts.contains(&TemplatePart::Axis(axis.kind)) {
                return Err(Error::Spec(format!(
                    "name template `{}` does not name the axis `{}`, so candidates that differ only there \
                     would share a name: add `{{{}}}` to it",
                    self.template,
                    axis.kind.name(),
                    axis.kind.name()
                )));
            }
            let mut labels: Vec<String> = axis.values.iter().map(|v| v.label().into_owned()).collect();
            labels.sort();
            if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
                return Err(Error::Spec(format!(
                    "axis `{}` has two values labelled `{}`",
                    axis.kind.name(),
                    w[0]
                )));
            }
        }
        self.check_labels_do_not_run_together(&parts)
    }

    /// Checks, without enumerating, that no two label choices concatenate to
    /// the same name (`a_b` + `c` and `a` + `b_c` under `{x}_{y}`): a search
    /// over pairs of partial names, one ahead of the other by a suffix (the
    /// Sardinas-Patterson idea over the template's parts). Templates with a
    /// derived placeholder (not an axis of the family) are not analysed; at
    /// most [`MAX_NAME_STATES`] states are explored.
    fn check_labels_do_not_run_together(&self, template: &[TemplatePart]) -> Result<()> {
        use std::collections::{HashSet, VecDeque};
        // Each part's strings: a text, or an axis's labels.
        let mut parts: Vec<Vec<String>> = Vec::new();
        let mut axis_of: Vec<Option<AxisKind>> = Vec::new();
        for part in template {
            match part {
                TemplatePart::Text(t) => {
                    parts.push(vec![t.clone()]);
                    axis_of.push(None);
                }
                TemplatePart::Axis(kind) => match self.axes.iter().find(|a| a.kind == *kind) {
                    Some(axis) => {
                        parts.push(axis.values.iter().map(|v| v.label().into_owned()).collect());
                        axis_of.push(Some(*kind));
                    }
                    None => return Ok(()),
                },
            }
        }
        let n = parts.len();
        let sets: Vec<HashSet<&str>> = parts.iter().map(|p| p.iter().map(String::as_str).collect()).collect();
        let sorted: Vec<Vec<(&str, usize)>> = parts
            .iter()
            .map(|p| {
                let mut v: Vec<(&str, usize)> = p.iter().enumerate().map(|(i, w)| (w.as_str(), i)).collect();
                v.sort();
                v
            })
            .collect();
        let positions: Vec<std::collections::HashMap<&str, usize>> = parts
            .iter()
            .map(|p| p.iter().enumerate().map(|(i, w)| (w.as_str(), i)).collect())
            .collect();
        let index_of = |part: usize, w: &str| positions[part].get(w).copied();
        // Whether a party that has consumed `b` parts, with `surplus` left to
        // match, can go on: the next part has a string that the surplus
        // begins with, or one that begins with the surplus. States that
        // cannot are never queued (under `{a}_{b}` every surplus dies at the
        // `_`), so only states that could lead to a collision count.
        let viable = |b: usize, surplus: &str| -> bool {
            if surplus.is_empty() {
                return true;
            }
            if b == n {
                return false;
            }
            (1..=surplus.len()).any(|cut| surplus.is_char_boundary(cut) && sets[b].contains(&surplus[..cut]))
                || sorted[b]
                    .get(sorted[b].partition_point(|(w, _)| *w < surplus))
                    .is_some_and(|(w, _)| w.starts_with(surplus))
        };
        // (ahead's choices, behind's choices, ahead's surplus): each list of
        // choices is one index per part consumed.
        type State = (Vec<usize>, Vec<usize>, String);
        let mut queue: VecDeque<State> = VecDeque::new();
        for k in 0..n {
            for (long, w) in parts[k].iter().enumerate() {
                for cut in 0..w.len() {
                    if !w.is_char_boundary(cut) {
                        continue;
                    }
                    if let Some(short) = sets[k].get(&w[..cut]).and_then(|p| index_of(k, p)) {
                        if !viable(k + 1, &w[cut..]) {
                            continue;
                        }
                        let mut a = vec![0; k];
                        let mut b = a.clone();
                        a.push(long);
                        b.push(short);
                        queue.push_back((a, b, w[cut..].to_string()));
                    }
                }
            }
        }
        // Breadth first, for the shortest example, within a small budget;
        // then depth first (a collision is a chain of a few states, found
        // before the queue grows) within the whole one.
        let mut initial = queue;
        let passes: &[(bool, usize)] = if initial.len() > MAX_NAME_STATES {
            &[(true, MAX_NAME_STATES)]
        } else {
            &[(false, MAX_NAME_STATES / 10), (true, MAX_NAME_STATES)]
        };
        for (pass, &(depth_first, budget)) in passes.iter().enumerate() {
            let mut queue = if pass + 1 == passes.len() {
                std::mem::take(&mut initial)
            } else {
                initial.clone()
            };
            let mut seen: HashSet<(usize, usize, String)> = HashSet::new();
            while let Some((ahead, behind, surplus)) = if depth_first {
                queue.pop_back()
            } else {
                queue.pop_front()
            } {
                if surplus.is_empty() && ahead.len() == behind.len() {
                    return Err(self.run_together_error(&parts, &axis_of, ahead, behind));
                }
                // With nothing left over, the party fewer parts in consumes next.
                let (ahead, behind) = if surplus.is_empty() && ahead.len() < behind.len() {
                    (behind, ahead)
                } else {
                    (ahead, behind)
                };
                if !seen.insert((ahead.len(), behind.len(), surplus.clone())) {
                    continue;
                }
                if seen.len() > budget || queue.len() > 8 * budget {
                    if !depth_first {
                        break;
                    }
                    // Not proven either way: refused rather than risking two
                    // candidates with one name.
                    return Err(Error::Spec(format!(
                        "name template `{}`: its labels are too many, and too alike, to check that they never run \
                     together into one name; put a text between the placeholders that no label contains \
                     (`{{a}}_{{b}}`)",
                        shown(&self.template)
                    )));
                }
                let b = behind.len();
                if b == n {
                    continue;
                }
                // A string of the next part that the surplus begins with...
                for cut in 0..=surplus.len() {
                    if !surplus.is_char_boundary(cut) {
                        continue;
                    }
                    if let Some(i) = sets[b].get(&surplus[..cut]).and_then(|w| index_of(b, w)) {
                        if !viable(b + 1, &surplus[cut..]) {
                            continue;
                        }
                        let mut next = behind.clone();
                        next.push(i);
                        queue.push_back((ahead.clone(), next, surplus[cut..].to_string()));
                    }
                }
                // ...or one that begins with the surplus and goes beyond it.
                let from = sorted[b].partition_point(|(w, _)| *w < surplus.as_str());
                for &(w, i) in sorted[b][from..]
                    .iter()
                    .take_while(|(w, _)| w.starts_with(surplus.as_str()))
                {
                    if w.len() > surplus.len() && viable(ahead.len(), &w[surplus.len()..]) {
                        let mut next = behind.clone();
                        next.push(i);
                        queue.push_back((next, ahead.clone(), w[surplus.len()..].to_string()));
                    }
                }
            }

            // the queue ran dry within the budget: no two choices make one name
            if queue.is_empty() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn run_together_error(
        &self,
        parts: &[Vec<String>],
        axis_of: &[Option<AxisKind>],
        mut a: Vec<usize>,
        mut b: Vec<usize>,
    ) -> Error {
        a.resize(parts.len(), 0);
        b.resize(parts.len(), 0);
        // The one enumerated first, first.
        if b < a {
            std::mem::swap(&mut a, &mut b);
        }
        let name: String = a.iter().enumerate().map(|(p, &i)| parts[p][i].as_str()).collect();
        let describe = |choices: &[usize]| {
            choices
                .iter()
                .enumerate()
                .filter_map(|(p, &i)| {
                    axis_of[p]
                        .filter(|_| parts[p].len() > 1)
                        .map(|k| format!("{}={}", k.name(), parts[p][i]))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        Error::Spec(format!(
            "name template `{}` gives `{name}` to two candidates ({}; {}): their labels run into each other; \
             separate the placeholders or change the labels",
            shown(&self.template),
            describe(&a),
            describe(&b)
        ))
    }

    /// Number of combinations (before skipping invalid ones).
    pub fn combinations(&self) -> u128 {
        // Saturates: eight axes of 2^16 values overflow even a u128, and a
        // wrapped count would slip past every size limit.
        self.axes
            .iter()
            .fold(1u128, |p, a| p.saturating_mul(a.values.len() as u128))
    }

    /// Checks the axes themselves: no duplicates, no empty value lists, the
    /// required axes present, no two axes that set the same thing.
    pub fn check(&self) -> Result<()> {
        let mut seen = BTreeMap::new();
        for axis in self.axes.iter() {
            if seen.insert(axis.kind, ()).is_some() {
                return Err(Error::Spec(format!("axis `{}` is given twice", axis.kind.name())));
            }
            if axis.values.is_empty() {
                return Err(Error::Spec(format!("axis `{}` has no values", axis.kind.name())));
            }
            if axis.values.len() > MAX_AXIS_VALUES {
                return Err(Error::Spec(format!(
                    "axis `{}` has {} values; an axis takes at most {MAX_AXIS_VALUES}",
                    axis.kind.name(),
                    axis.values.len()
                )));
            }
        }
        for required in [AxisKind::HiddenDim, AxisKind::HeadDim] {
            if !seen.contains_key(&required) {
                return Err(Error::Spec(format!("a family needs the axis `{}`", required.name())));
            }
        }
        for (a, b) in [
            (AxisKind::KvHeads, AxisKind::GqaGroup),
            (AxisKind::FfnDim, AxisKind::FfnRatio),
        ] {
            if seen.contains_key(&a) && seen.contains_key(&b) {
                return Err(Error::Spec(format!("give `{}` or `{}`, not both", a.name(), b.name())));
            }
        }
        if !seen.contains_key(&AxisKind::FfnDim) && !seen.contains_key(&AxisKind::FfnRatio) {
            return Err(Error::Spec("a family needs the axis `ffn_dim` or `ffn_ratio`".into()));
        }
        if let Some(arch) = self.axes.iter().find(|a| a.kind.is_arch()) {
            // Every candidate's stack lists its layers: bound the layers built in all.
            let deepest = self
                .axes
                .iter()
                .filter(|a| a.kind == AxisKind::NumLayers)
                .flat_map(|a| a.values.iter())
                .filter_map(|v| match v.value {
                    AxisValue::Int(n) => Some(n),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let layers = self.combinations().saturating_mul(deepest as u128);
            if layers > MAX_STACK_LAYERS as u128 {
                return Err(Error::Spec(format!(
                    "`{}` makes the family's candidates stacks of layer kinds, each listing its layers: its {} \
                     combinations of up to {deepest} layers build {} layers in all, more than the {MAX_STACK_LAYERS} \
                     a search builds; give it fewer values or fewer layers",
                    arch.kind.name(),
                    shown_count(self.combinations()),
                    shown_count(layers)
                )));
            }
            for required in [AxisKind::NumLayers, AxisKind::VocabSize] {
                if !seen.contains_key(&required) {
                    return Err(Error::Spec(format!(
                        "`{}` makes the family's candidates stacks of layer kinds (whole models): it needs the axis \
                         `{}`",
                        arch.kind.name(),
                        required.name()
                    )));
                }
            }
        }
        if self.ffn_rounding.multiple == 0 {
            return Err(Error::Spec("the ffn rounding multiple must be at least 1".into()));
        }
        let longest = self.longest_name()?;
        if longest > MAX_NAME_LEN {
            return Err(Error::Spec(format!(
                "name template `{}` makes names of up to {longest} bytes; a candidate name has at most {MAX_NAME_LEN}",
                shown(&self.template)
            )));
        }
        Ok(())
    }

    /// The longest name the template can make (text plus each part's longest
    /// label), without building one.
    fn longest_name(&self) -> Result<usize> {
        let parts = parse_template(&self.template)?;
        Ok(parts.iter().fold(0usize, |n, part| {
            n.saturating_add(match part {
                TemplatePart::Text(t) => t.len(),
                TemplatePart::Axis(kind) => match self.axes.iter().find(|a| a.kind == *kind) {
                    Some(axis) => axis.values.iter().map(|v| v.label().len()).max().unwrap_or(0),
                    None => MAX_DERIVED_LABEL,
                },
            })
        }))
    }

    /// Enumerates every combination, builds and validates its shape, names it.
    /// Invalid combinations are skipped (and listed); two candidates with one
    /// name are an error.
    ///
    /// A family of more than [`MAX_MATERIALIZED`] combinations is an error
    /// before anything is allocated: stream it instead
    /// ([`crate::search::stream`], a DSL `space`, `nas search`).
    pub fn expand(&self, workload: Workload) -> Result<Expansion> {
        self.check()?;
        let template = parse_template(&self.template)?;
        let total = self.combinations();
        if total > MAX_MATERIALIZED {
            return Err(Error::Spec(format!(
                "the family has {} combinations, more than the {MAX_MATERIALIZED} that can be listed one by one; \
                 stream it instead (a `space` in nas_search!, or `nas search --spec`)",
                shown_count(total)
            )));
        }
        let mut out = Expansion::default();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for index in 0..total {
            let picks = self.decode(index);
            let describe = || self.describe(&picks);
            let shape = match self.shape_of(&picks, workload) {
                Ok(shape) => shape,
                Err(reason) => {
                    out.skipped.push((describe(), reason));
                    continue;
                }
            };
            let name = render(&template, &picks, self, &shape);
            if let Some(first) = names.insert(name.clone(), describe()) {
                return Err(Error::Spec(format!(
                    "name template `{}` gives `{name}` to two candidates ({first}; {}): add the axes that differ to it",
                    self.template,
                    describe()
                )));
            }
            out.candidates.push(Candidate::new(name, self.source.clone(), shape));
        }
        Ok(out)
    }

    /// A combination as messages show it: `hidden_dim=1536, head_dim=256, ...`.
    pub fn describe(&self, picks: &[&Labeled]) -> String {
        picks
            .iter()
            .zip(self.axes.iter())
            .map(|(l, a)| format!("{}={}", a.kind.name(), l.label()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Up to `n` skipped combinations among the first `tries`, each with why
    /// (`hidden_dim=1536, ...: gqa_group 4 does not divide num_heads 6`): the
    /// examples an error about a family that yields nothing gives. Bounded
    /// work, whatever the family's size.
    pub fn sample_skips(&self, workload: Workload, n: usize, tries: u128) -> Vec<String> {
        (0..self.combinations().min(tries))
            .filter_map(|index| {
                let picks = self.decode(index);
                self.shape_of(&picks, workload)
                    .err()
                    .map(|why| format!("{}: {why}", self.describe(&picks)))
            })
            .take(n)
            .collect()
    }

    /// The value picked on each axis for combination `index` (last axis fastest).
    pub fn decode(&self, mut index: u128) -> Vec<&Labeled> {
        let mut picks = vec![None; self.axes.len()];
        for (slot, axis) in self.axes.iter().enumerate().rev() {
            let n = axis.values.len() as u128;
            picks[slot] = Some(&axis.values[(index % n) as usize]);
            index /= n;
        }
        picks.into_iter().map(|p| p.expect("every axis picked")).collect()
    }

    fn pick(&self, picks: &[&Labeled], kind: AxisKind) -> Option<AxisValue> {
        self.axes.iter().position(|a| a.kind == kind).map(|i| picks[i].value)
    }

    /// The shape of one combination, or why it is skipped.
    pub fn shape_of(&self, picks: &[&Labeled], workload: Workload) -> std::result::Result<LayerShape, String> {
        let shape = self.build_shape(picks, workload)?;
        shape.validate()?;
        Ok(shape)
    }

    /// The candidate name of one combination.
    pub fn name_of(&self, picks: &[&Labeled], shape: &LayerShape) -> Result<String> {
        Ok(render(&parse_template(&self.template)?, picks, self, shape))
    }

    /// Bit mask of the axes (by position) that a shape field is derived from.
    pub fn field_axes(&self, field: ShapeField) -> u64 {
        let axis = |kind: AxisKind| {
            self.axes
                .iter()
                .position(|a| a.kind == kind)
                .map_or(0u64, |i| 1u64 << i)
        };
        let heads = if axis(AxisKind::NumHeads) != 0 {
            axis(AxisKind::NumHeads)
        } else {
            axis(AxisKind::HiddenDim) | axis(AxisKind::HeadDim)
        };
        match field {
            ShapeField::HiddenDim => axis(AxisKind::HiddenDim),
            ShapeField::HeadDim => axis(AxisKind::HeadDim),
            ShapeField::NumHeads => heads,
            ShapeField::NumKvHeads => match (axis(AxisKind::KvHeads), axis(AxisKind::GqaGroup)) {
                (kv, _) if kv != 0 => kv,
                (_, group) if group != 0 => group | heads,
                _ => heads,
            },
            ShapeField::FfnDim => match axis(AxisKind::FfnDim) {
                0 => axis(AxisKind::FfnRatio) | axis(AxisKind::HiddenDim),
                f => f,
            },
            ShapeField::SeqLen => axis(AxisKind::SeqLen),
            ShapeField::BatchSize => axis(AxisKind::BatchSize),
            ShapeField::UseQkNorm => axis(AxisKind::QkNorm),
            ShapeField::WindowSize => axis(AxisKind::Window),
            ShapeField::NumLayers => axis(AxisKind::NumLayers),
            ShapeField::VocabSize => axis(AxisKind::VocabSize),
            ShapeField::TieEmbeddings => axis(AxisKind::TieEmbeddings),
            ShapeField::ContextLen => axis(AxisKind::ContextLen),
            ShapeField::Weights => axis(AxisKind::Weights),
            ShapeField::KvCache => axis(AxisKind::KvCache),
            ShapeField::Experts => axis(AxisKind::Experts),
            ShapeField::TopK => axis(AxisKind::TopK),
            ShapeField::ExpertFfnDim => axis(AxisKind::ExpertFfnDim),
            ShapeField::SharedExperts => axis(AxisKind::SharedExperts),
            ShapeField::SharedExpertFfnDim => axis(AxisKind::SharedExpertFfnDim),
            ShapeField::FirstDenseLayers => axis(AxisKind::FirstDenseLayers),
            ShapeField::LayerPattern => axis(AxisKind::LayerPattern),
            ShapeField::KvLoraRank => axis(AxisKind::KvLoraRank),
            ShapeField::QLoraRank => axis(AxisKind::QLoraRank),
            ShapeField::RopeHeadDim => axis(AxisKind::RopeHeadDim),
            ShapeField::VHeadDim => axis(AxisKind::VHeadDim),
        }
    }

    /// Whether the family has an axis of [`crate::arch`]: its candidates are stacks.
    pub fn is_arch(&self) -> bool {
        self.axes.iter().any(|a| a.kind.is_arch())
    }

    /// The shape a combination describes, derived but not validated (the
    /// streaming search evaluates terms of shapes that are valid only in part).
    pub fn build_shape(&self, picks: &[&Labeled], workload: Workload) -> std::result::Result<LayerShape, String> {
        let int = |kind| match self.pick(picks, kind) {
            Some(AxisValue::Int(v)) => Ok(Some(v)),
            None => Ok(None),
            Some(other) => Err(format!("axis `{}` takes integers, got {other:?}", kind.name())),
        };
        let hidden_dim = int(AxisKind::HiddenDim)?.unwrap_or(0);
        let head_dim = int(AxisKind::HeadDim)?.unwrap_or(0);
        if hidden_dim == 0 || head_dim == 0 {
            return Err("hidden_dim and head_dim must be at least 1".into());
        }
        let num_heads = match int(AxisKind::NumHeads)? {
            Some(h) => h,
            None if hidden_dim % head_dim == 0 => hidden_dim / head_dim,
            None => {
                return Err(format!(
                    "hidden_dim {hidden_dim} is not a multiple of head_dim {head_dim}"
                ))
            }
        };
        let num_kv_heads = match (int(AxisKind::KvHeads)?, int(AxisKind::GqaGroup)?) {
            (Some(kv), _) => kv,
            (None, Some(0)) => return Err("gqa_group must be at least 1".into()),
            (None, Some(group)) => match self.gqa_rounding {
                GqaRounding::Down => (num_heads / group).max(1),
                GqaRounding::Exact if num_heads % group == 0 => num_heads / group,
                GqaRounding::Exact => return Err(format!("gqa_group {group} does not divide num_heads {num_heads}")),
            },
            (None, None) => num_heads,
        };
        let ffn_dim = match (int(AxisKind::FfnDim)?, self.pick(picks, AxisKind::FfnRatio)) {
            (Some(f), _) => f,
            (None, Some(AxisValue::Ratio(r))) if r.is_finite() && r > 0.0 => self.ffn_rounding.apply(hidden_dim, r),
            (None, other) => return Err(format!("ffn_ratio must be a positive number, got {other:?}")),
        };
        let window_size = match self.pick(picks, AxisKind::Window) {
            None => None,
            Some(AxisValue::Window(w)) => w,
            Some(AxisValue::Int(w)) => Some(w),
            Some(other) => return Err(format!("axis `window` takes sizes or full, got {other:?}")),
        };
        let use_qk_norm = match self.pick(picks, AxisKind::QkNorm) {
            None => crate::shapes::DEFAULT_USE_QK_NORM,
            Some(AxisValue::Bool(b)) => b,
            Some(other) => return Err(format!("axis `qk_norm` takes true or false, got {other:?}")),
        };
        let shape = LayerShape {
            hidden_dim,
            num_heads,
            num_kv_heads,
            head_dim,
            ffn_dim,
            seq_len: int(AxisKind::SeqLen)?.unwrap_or(workload.seq_len),
            batch_size: int(AxisKind::BatchSize)?.unwrap_or(workload.batch_size),
            use_qk_norm,
            window_size,
            model: ModelDims {
                num_layers: int(AxisKind::NumLayers)?.or(workload.model.num_layers),
                vocab_size: int(AxisKind::VocabSize)?.or(workload.model.vocab_size),
                tie_embeddings: match self.pick(picks, AxisKind::TieEmbeddings) {
                    None => workload.model.tie_embeddings,
                    Some(AxisValue::Bool(b)) => Some(b),
                    Some(other) => return Err(format!("axis `tie_embeddings` takes true or false, got {other:?}")),
                },
                context_len: int(AxisKind::ContextLen)?.or(workload.model.context_len),
                ..workload.model
            },
            precision: Precision {
                weights: match self.pick(picks, AxisKind::Weights) {
                    None => workload.precision.weights,
                    Some(AxisValue::Weights(p)) => p,
                    Some(other) => return Err(format!("axis `weights` takes bf16, fp8 or int4, got {other:?}")),
                },
                kv_cache: match self.pick(picks, AxisKind::KvCache) {
                    None => workload.precision.kv_cache,
                    Some(AxisValue::KvCache(p)) => p,
                    Some(other) => return Err(format!("axis `kv_cache` takes bf16 or fp8, got {other:?}")),
                },
            },
            arch: Architecture {
                experts: int(AxisKind::Experts)?,
                top_k: int(AxisKind::TopK)?,
                expert_ffn_dim: int(AxisKind::ExpertFfnDim)?,
                shared_experts: int(AxisKind::SharedExperts)?,
                shared_expert_ffn_dim: int(AxisKind::SharedExpertFfnDim)?,
                first_dense_layers: int(AxisKind::FirstDenseLayers)?,
                layer_pattern: match self.pick(picks, AxisKind::LayerPattern) {
                    None => None,
                    Some(AxisValue::Pattern(p)) => Some(p),
                    Some(other) => return Err(format!("axis `layer_pattern` takes \"a:b\" patterns, got {other:?}")),
                },
                kv_lora_rank: int(AxisKind::KvLoraRank)?,
                q_lora_rank: int(AxisKind::QLoraRank)?,
                rope_head_dim: int(AxisKind::RopeHeadDim)?,
                v_head_dim: int(AxisKind::VHeadDim)?,
            },
        };
        Ok(shape)
    }
}

/// Fills a template: an axis shows its label; a derived quantity that is not
/// an axis of the family shows its value.
pub fn render(template: &[TemplatePart], picks: &[&Labeled], family: &Family, shape: &LayerShape) -> String {
    let mut name = String::new();
    for part in template {
        match part {
            TemplatePart::Text(t) => name.push_str(t),
            TemplatePart::Axis(kind) => match family.axes.iter().position(|a| a.kind == *kind) {
                Some(i) => name.push_str(&picks[i].label()),
                None => name.push_str(&derived_label(*kind, shape)),
            },
        }
    }
    name
}

fn derived_label(kind: AxisKind, s: &LayerShape) -> String {
    let optional = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
    let value = match kind {
        AxisKind::HiddenDim => AxisValue::Int(s.hidden_dim),
        AxisKind::HeadDim => AxisValue::Int(s.head_dim),
        AxisKind::NumHeads => AxisValue::Int(s.num_heads),
        AxisKind::KvHeads => AxisValue::Int(s.num_kv_heads),
        AxisKind::GqaGroup => AxisValue::Int(s.gqa_group()),
        AxisKind::FfnDim => AxisValue::Int(s.ffn_dim),
        AxisKind::FfnRatio => AxisValue::Ratio(s.ffn_dim as f64 / s.hidden_dim as f64),
        AxisKind::Window => AxisValue::Window(s.window_size),
        AxisKind::QkNorm => AxisValue::Bool(s.use_qk_norm),
        AxisKind::SeqLen => AxisValue::Int(s.seq_len),
        AxisKind::BatchSize => AxisValue::Int(s.batch_size),
        AxisKind::NumLayers => return s.model.num_layers.map_or("none".into(), |v| v.to_string()),
        AxisKind::VocabSize => return s.model.vocab_size.map_or("none".into(), |v| v.to_string()),
        AxisKind::TieEmbeddings => AxisValue::Bool(s.model.tie_embeddings.unwrap_or(false)),
        AxisKind::ContextLen => AxisValue::Int(crate::model::context_of(s)),
        AxisKind::Weights => AxisValue::Weights(s.precision.weights),
        AxisKind::KvCache => AxisValue::KvCache(s.precision.kv_cache),
        AxisKind::LayerPattern => return s.arch.layer_pattern.map_or("none".into(), |p| p.to_string()),
        AxisKind::Experts => return optional(s.arch.experts),
        AxisKind::TopK => return optional(s.arch.top_k),
        AxisKind::ExpertFfnDim => return optional(s.arch.moe(s.ffn_dim).map(|m| m.expert_ffn_dim)),
        AxisKind::SharedExperts => return optional(s.arch.shared_experts),
        AxisKind::SharedExpertFfnDim => {
            return optional(
                s.arch
                    .moe(s.ffn_dim)
                    .filter(|m| m.shared_experts > 0)
                    .map(|m| m.shared_expert_ffn_dim),
            )
        }
        AxisKind::FirstDenseLayers => return optional(s.arch.first_dense_layers),
        AxisKind::KvLoraRank => return optional(s.arch.kv_lora_rank),
        AxisKind::QLoraRank => return optional(s.arch.q_lora_rank),
        AxisKind::RopeHeadDim => return optional(s.arch.latent(s.head_dim).map(|l| l.rope_head_dim)),
        AxisKind::VHeadDim => return optional(s.arch.latent(s.head_dim).map(|l| l.v_head_dim)),
    };
    value.default_label()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A huge ratio saturates (and the shape is then rejected as absurd)
    /// instead of overflowing when rounded to a multiple.
    #[test]
    fn ffn_rounding_saturates() {
        let up = FfnRounding {
            multiple: 128,
            rounding: Rounding::Up,
        };
        assert_eq!(up.apply(2048, 1e300), u64::MAX);
        assert_eq!(up.apply(2048, 4.0), 8192);
    }

    #[test]
    fn combination_counts_saturate_instead_of_wrapping() {
        let wide: Vec<u64> = (1..=1 << 16).collect();
        let kinds = [
            AxisKind::HiddenDim,
            AxisKind::HeadDim,
            AxisKind::NumHeads,
            AxisKind::KvHeads,
            AxisKind::FfnDim,
            AxisKind::SeqLen,
            AxisKind::BatchSize,
            AxisKind::NumLayers,
        ];
        let f = family(kinds.iter().map(|k| ints(*k, &wide)).collect(), "x");
        assert_eq!(f.combinations(), u128::MAX, "2^128 does not wrap to 0");
    }

    fn ints(kind: AxisKind, v: &[u64]) -> Axis {
        Axis {
            kind,
            values: v.iter().map(|&x| Labeled::new(AxisValue::Int(x))).collect(),
        }
    }

    fn family(axes: Vec<Axis>, template: &str) -> Family {
        Family {
            source: "generated_candidate".into(),
            axes: axes.into(),
            ffn_rounding: FfnRounding {
                multiple: 128,
                rounding: Rounding::NearestEven,
            },
            gqa_rounding: GqaRounding::Exact,
            template: template.to_string().into(),
        }
    }

    const W: Workload = Workload::layer(2048, 1);

    #[test]
    fn expands_in_axis_order_and_skips_invalid() {
        let f = family(
            vec![
                ints(AxisKind::HiddenDim, &[1280, 2048]),
                ints(AxisKind::HeadDim, &[256, 512]),
                ints(AxisKind::FfnDim, &[4096]),
            ],
            "h{hidden_dim}_hd{head_dim}_nh{num_heads}",
        );
        let e = f.expand(W).unwrap();
        let names: Vec<_> = e.candidates.iter().map(|c| c.name.as_ref()).collect();
        assert_eq!(names, ["h1280_hd256_nh5", "h2048_hd256_nh8", "h2048_hd512_nh4"]);
        assert_eq!(e.skipped.len(), 1);
        assert!(e.skipped[0].1.contains("not a multiple"), "{:?}", e.skipped);
    }

    #[test]
    fn colliding_names_are_an_error() {
        let f = family(
            vec![
                ints(AxisKind::HiddenDim, &[1024, 2048]),
                ints(AxisKind::HeadDim, &[128]),
                ints(AxisKind::FfnDim, &[4096]),
            ],
            "same",
        );
        assert!(f
            .expand(W)
            .unwrap_err()
            .to_string()
            .contains("gives `same` to two candidates"));
    }

    #[test]
    fn labels_that_run_together_are_an_error() {
        // `h{hidden_dim}{head_dim}`: 1 + 23 and 12 + 3 both give `h123`.
        let f = family(
            vec![ints(AxisKind::HiddenDim, &[1, 12]), ints(AxisKind::HeadDim, &[23, 3])],
            "h{hidden_dim}{head_dim}",
        );
        let e = f.check_names_distinct().unwrap_err().to_string();
        assert!(
            e.contains("gives `h123` to two candidates (hidden_dim=1, head_dim=23; hidden_dim=12, head_dim=3)"),
            "{e}"
        );
        // A separator that no label holds keeps them apart.
        let f = family(
            vec![ints(AxisKind::HiddenDim, &[1, 12]), ints(AxisKind::HeadDim, &[23, 3])],
            "h{hidden_dim}_{head_dim}",
        );
        assert!(f.check_names_distinct().is_ok());
    }

    #[test]
    fn template_names_must_be_axes() {
        let e = parse_template("h{hiden_dim}").unwrap_err().to_string();
        assert!(e.contains("did you mean `hidden_dim`"), "{e}");
        assert!(parse_template("h{hidden_dim").is_err());
    }

    #[test]
    fn ratio_labels_and_rounding() {
        assert_eq!(AxisValue::Ratio(3.0).default_label(), "3");
        assert_eq!(AxisValue::Ratio(5.333).default_label(), "5p333");
        let up = FfnRounding {
            multiple: 128,
            rounding: Rounding::Up,
        };
        assert_eq!(up.apply(2048, 5.333), 11008);
        let even = FfnRounding {
            multiple: 128,
            rounding: Rounding::NearestEven,
        };
        assert_eq!(even.apply(2560, 16.0 / 3.0), 13696);
        // 64 * 2.5 / 32 = 5 exactly; 96 * 2.5 / 32 = 7.5 -> 8 (ties to even)
        let even32 = FfnRounding {
            multiple: 32,
            rounding: Rounding::NearestEven,
        };
        assert_eq!(even32.apply(96, 2.5), 256);
        assert_eq!(even32.apply(160, 2.5), 384);
    }
}
