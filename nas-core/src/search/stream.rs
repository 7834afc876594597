//! Streaming search: families far too large to hold (10^7 to 10^9
//! candidates) ranked without materializing them.
//!
//! Each kernel's time depends on a few shape fields only, so on a few of the
//! family's axes (attention on hidden, head_dim and window; the MLP on hidden
//! and the FFN ratio...). Kernels are grouped by the axes they read, and each
//! group's time is computed once per distinct assignment of its axes, through
//! the same nalgebra work x throughput product as everything else. A
//! candidate's latency on a GPU is then a sum of a few table lookups. The hot
//! loop walks candidate indices with an odometer over the axes, keeps a
//! bounded top-k per GPU and metric, the constrained top-k, and the
//! Pareto front of latency against quality proxy, and allocates nothing.
//! Chunks of indices run in parallel (rayon); their results merge
//! deterministically. The entries finally reported are re-evaluated exactly
//! (as materialization would), so both give the same rankings.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::cost::{CostModel, LayerModel};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Latencies};
use crate::model::{StepLatency, StepThroughputs};
use crate::search::constraints::{CmpOp, Constraint, Constraints, Metric, Proxies};
use crate::search::family::{AxisKind, AxisValue, Family, Labeled, Workload};
use crate::search::RankMetric;
use crate::shapes::{LayerShape, ShapeField};

/// Largest family the engine accepts (about 4.6 * 10^18: index arithmetic stays in u64).
pub const MAX_COMBINATIONS: u64 = 1 << 62;

/// Most combinations a family of stacks ([`crate::arch`] axes) may have in
/// a streamed search: each is validated and its stack timed one by one, and
/// the tables over all its axes hold one entry per combination (2^18).
pub const MAX_STACK_COMBINATIONS: u64 = 1 << 18;

/// A family of stacks must have at most [`MAX_STACK_COMBINATIONS`] combinations.
pub fn check_stack_family(family: &Family) -> Result<()> {
    let combinations = family.combinations();
    if family.is_arch() && combinations > MAX_STACK_COMBINATIONS as u128 {
        let axis = family
            .axes
            .iter()
            .find(|a| a.kind.is_arch())
            .map_or("experts", |a| a.kind.name());
        return Err(Error::Spec(format!(
            "the family has {} combinations; a family with `{axis}` (a mixture of experts, a layer pattern or latent \
             attention: a stack of layer kinds, timed candidate by candidate) has at most {MAX_STACK_COMBINATIONS}: \
             give its axes fewer values",
            crate::search::family::shown_count(combinations)
        )));
    }
    Ok(())
}

/// Lookup tables larger than this many entries are not merged further.
const MAX_TABLE: u64 = 1 << 22;

/// Most values (f64) all lookup tables of one search hold together, work
/// tables included (2^26: 512 MiB). Checked before each table is allocated.
pub const MAX_TABLE_VALUES: u64 = 1 << 26;

/// Most (quality-table entry, GPU) pairs the Pareto front tracks per chunk
/// of the search (2^17: 2 MiB per chunk in flight).
pub const MAX_PARETO_SLOTS: u64 = 1 << 17;

/// Most entries a streamed search reports per list (`top_k`).
pub const MAX_TOP_K: usize = 10_000;

/// Most entries a search reports in one list over all its GPUs (`top_k` x
/// GPUs): each entry is kept, and written, with its shape and per-kernel
/// times (about 1 KiB in memory), three lists per GPU.
pub const MAX_REPORTED: usize = 50_000;

/// `top_k` on `gpus` GPUs must report at most [`MAX_REPORTED`] entries per list.
pub fn check_reported(top_k: usize, gpus: usize) -> std::result::Result<(), String> {
    let entries = top_k.saturating_mul(gpus);
    if entries > MAX_REPORTED {
        return Err(format!(
            "`top_k` = {top_k} on {gpus} GPUs reports {entries} candidates per list; a search reports at most \
             {MAX_REPORTED} (top_k x GPUs): ask for fewer"
        ));
    }
    Ok(())
}

/// Extra entries kept beyond k until the exact re-evaluation, so that values
/// an ulp apart in the streamed sums cannot push a true top-k entry out.
const MARGIN: usize = 16;

/// Candidates per parallel chunk.
const CHUNK: u64 = 1 << 16;

/// What to search.
pub struct StreamSpec<'a> {
    pub family: &'a Family,
    pub workload: Workload,
    pub hardware: &'a [Gpu],
    pub constraints: &'a Constraints,
    pub top_k: usize,
    /// What the constrained top is ordered by (ties: higher quality proxy, then name).
    pub rank_by: RankMetric,
}

/// One reported candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    /// Position in the family's enumeration order.
    pub index: u64,
    pub name: String,
    pub shape: LayerShape,
    pub total_ms: f64,
    /// total_ms per million of D*F (unrounded), as the seed's rankings.
    pub ms_per_mparam_proxy: f64,
    pub quality_proxy: f64,
    /// Whether it passes every constraint on this GPU.
    pub passes: bool,
    pub bottleneck: &'static str,
    /// Whole-model prefill and decode on this GPU (a whole model on a GPU with step throughputs).
    pub latency: Option<StepLatency>,
}

/// Everything the search found on one GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuResult {
    pub hardware: String,
    pub total_ms_top: Vec<Ranked>,
    pub ms_per_mparam_proxy_top: Vec<Ranked>,
    /// Candidates that pass the constraints on this GPU, by (the spec's
    /// `rank_by`, -quality_proxy, name); with `total_ms`, the seed's constrained ranking.
    pub constrained_top: Vec<Ranked>,
    /// How many valid candidates pass the constraints on this GPU.
    pub passing: u64,
    /// Candidates no other beats on both latency and quality proxy, fastest first.
    pub pareto_front: Vec<Ranked>,
}

/// The result of a streaming search.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamResult {
    pub combinations: u64,
    pub valid: u64,
    /// Valid candidates that pass the GPU-independent clauses (latency
    /// clauses, which hold per GPU, assumed to hold: `GpuResult::passing`).
    pub passing: u64,
    pub per_gpu: Vec<GpuResult>,
}

/// A lookup table over some of the family's axes: `width` values per entry.
#[derive(Clone, Debug)]
struct Table {
    /// Per family axis, its stride in this table (0 when the table does not read it).
    strides: Vec<u64>,
    values: Vec<f64>,
}

/// The axes a table reads, as a bit mask, and their mixed-radix layout.
fn layout(mask: u64, radix: &[u64]) -> (Vec<u64>, u64) {
    let mut strides = vec![0; radix.len()];
    let mut size = 1u64;
    for a in (0..radix.len()).rev() {
        if mask & (1 << a) != 0 {
            strides[a] = size;
            size = size.saturating_mul(radix[a]);
        }
    }
    (strides, size)
}

/// The precomputed tables of one search.
struct Plan<'a> {
    spec: &'a StreamSpec<'a>,
    radix: Vec<u64>,
    combinations: u64,
    /// Kernel-group latency tables, `gpus` values per entry.
    terms: Vec<Table>,
    /// 1.0 where the combination of the table's axes gives a valid shape.
    valid: Table,
    /// (quality_proxy, 1 / (D*F/1e6)) per entry.
    quality: Table,
    /// Where the constraints hold: a truth table over the latency clauses
    /// (bit `a` set when they hold for assignment `a` of the latency atoms;
    /// without latency clauses, 1.0 or 0.0).
    passes: Table,
    gpus: usize,
    /// Whole-model prefill and decode tables, when the ranking or the constraints read them.
    whole: Option<WholePlan>,
    /// A family of stacks: every combination's name rank (the constrained
    /// list's tie-break, as materialization sorts it).
    names: Option<Table>,
    /// How many of the innermost axes form a block, and the block's size.
    inner_axes: usize,
    inner: u64,
    /// Per position in a block, every table's entry offset (`tables().len()` per position).
    offsets: Vec<u64>,
}

/// The whole-model part of a plan: prefill = layers x layer + outside, decode
/// = layers x per-layer kernels + per-step kernels, on each GPU.
struct WholePlan {
    /// (num_layers, batch_size) per entry (NaN for a plain layer).
    layers: Table,
    /// Per entry, per GPU the prefill outside its layers, then per GPU the
    /// decode kernels run once per step (2G values).
    outside: Table,
    /// Per-layer decode kernel groups, G values per entry.
    decode: Vec<Table>,
    /// The latency clauses, in the order of the passes table's truth bits.
    atoms: Vec<Atom>,
    /// A family of stacks ([`crate::arch`] axes): `layers` holds per entry
    /// (1, batch_size), `outside` per GPU the whole prefill, then per GPU the
    /// whole decode step, each from the candidate's stack; `decode` is empty.
    stack: bool,
}

/// A comparison or range on a latency metric, evaluated per GPU in the hot loop.
#[derive(Clone, Copy, Debug)]
struct Atom {
    /// 0 prefill_ms, 1 decode_ms, 2 decode_tokens_per_s.
    metric: usize,
    test: AtomTest,
}

#[derive(Clone, Copy, Debug)]
enum AtomTest {
    Compare(CmpOp, f64),
    Range(f64, f64, bool),
}

impl Atom {
    /// As `Constraint::holds_on`: NaN satisfies nothing.
    #[inline(always)]
    fn holds(&self, latency: [f64; 3]) -> bool {
        let v = latency[self.metric];
        match self.test {
            AtomTest::Compare(op, b) => v.partial_cmp(&b).is_some_and(|o| op.holds(o)),
            AtomTest::Range(lo, hi, inclusive) => v >= lo && if inclusive { v <= hi } else { v < hi },
        }
    }
}

/// Most latency clauses a streamed search evaluates (its truth table has 2^5 bits).
pub const MAX_LATENCY_CLAUSES: usize = 5;

/// The latency clauses of `c`, in evaluation order.
fn latency_atoms(c: &Constraint, out: &mut Vec<Atom>) {
    let index = |m: Metric| match m {
        Metric::PrefillMs => 0,
        Metric::DecodeMs => 1,
        _ => 2,
    };
    match c {
        Constraint::Compare { metric, op, bound } if metric.is_latency() => out.push(Atom {
            metric: index(*metric),
            test: AtomTest::Compare(*op, bound.as_f64().unwrap_or(f64::NAN)),
        }),
        Constraint::Range {
            metric,
            lo,
            hi,
            inclusive,
        } if metric.is_latency() => out.push(Atom {
            metric: index(*metric),
            test: AtomTest::Range(
                lo.as_f64().unwrap_or(f64::NAN),
                hi.as_f64().unwrap_or(f64::NAN),
                *inclusive,
            ),
        }),
        Constraint::All(cs) | Constraint::Any(cs) => cs.iter().for_each(|c| latency_atoms(c, out)),
        _ => {}
    }
}

/// Whether `c` holds on `s` when latency clause `i` (in `latency_atoms`
/// order, counted by `next`) holds exactly when bit `i` of `bits` is set.
fn holds_with(c: &Constraint, s: &LayerShape, bits: u64, next: &mut usize) -> bool {
    match c {
        Constraint::Compare { metric, .. } | Constraint::Range { metric, .. } if metric.is_latency() => {
            let b = (bits >> *next) & 1 == 1;
            *next += 1;
            b
        }
        // No short cut: every atom below must be counted.
        Constraint::All(cs) => all_with(cs, s, bits, next),
        Constraint::Any(cs) => {
            let mut any = false;
            for c in cs.iter() {
                any |= holds_with(c, s, bits, next);
            }
            any
        }
        other => other.holds(s),
    }
}

/// Whether every clause holds, each visited (no short cut).
fn all_with(clauses: &[Constraint], s: &LayerShape, bits: u64, next: &mut usize) -> bool {
    let mut all = true;
    for c in clauses {
        all &= holds_with(c, s, bits, next);
    }
    all
}

/// The truth table of `clauses` on `s` over `atoms` latency clauses.
fn truth_table(clauses: &[Constraint], s: &LayerShape, atoms: usize) -> u64 {
    (0..1u64 << atoms)
        .filter(|&bits| all_with(clauses, s, bits, &mut 0))
        .fold(0, |t, bits| t | (1 << bits))
}

impl<'a> Plan<'a> {
    fn new(spec: &'a StreamSpec<'a>) -> Result<Self> {
        spec.family.check()?;
        spec.constraints.check()?;
        if spec.hardware.is_empty() {
            return Err(Error::Spec("a search needs at least one hardware target".into()));
        }
        if spec.top_k > MAX_TOP_K {
            return Err(Error::Spec(format!(
                "`top_k` = {} is more than a search reports (the limit is {MAX_TOP_K})",
                spec.top_k
            )));
        }
        let radix: Vec<u64> = spec.family.axes.iter().map(|a| a.values.len() as u64).collect();
        if radix.len() > 63 {
            return Err(Error::Spec("a family has at most 63 axes".into()));
        }
        let combinations = spec.family.combinations();
        if combinations > MAX_COMBINATIONS as u128 {
            return Err(Error::Spec(format!(
                "the family has {} combinations; the streaming search handles at most 2^62",
                crate::search::family::shown_count(combinations)
            )));
        }
        let family = spec.family;
        check_stack_family(family)?;
        check_precisions(family, spec.workload, spec.hardware)?;
        let fields = |fs: &[ShapeField]| fs.iter().fold(0u64, |m, f| m | family.field_axes(*f));

        // One plan evaluates GPUs of one layer model (`search_range` splits the rest).
        let model = spec.hardware[0].layer_model();
        // A stack candidate's layer is priced as its dense stand-in: a kernel
        // reads what the stand-in's fields are made of.
        let merged = group_kernels(
            (0..model.kernels().len()).map(|k| (k, fields(&ShapeField::through_layer_view(model.kernel_fields(k))))),
            &radix,
        );

        let shape_mask = validity_mask(family);
        let reps = Representatives::new(spec, &radix, shape_mask)?;
        let valid = reps.table(shape_mask, 1, |shape, out| {
            out[0] = f64::from(u8::from(shape.is_some()))
        })?;

        let inverse: Vec<nalgebra::DMatrix<f64>> = spec.hardware.iter().map(Gpu::inverse_throughputs).collect();
        let mut terms = Vec::new();
        for (mask, kernels) in &merged {
            terms.push(group_latency(&reps, *mask, kernels, &model, &inverse)?);
        }

        let quality_mask = fields(&[ShapeField::HiddenDim, ShapeField::FfnDim]);
        // (quality proxy, 1 / (D*F/1e6)): the hot loop multiplies rather than divides.
        let quality = reps.table(quality_mask, 2, |shape, out| {
            if let Some(s) = shape {
                let p = Proxies::of(s);
                out.copy_from_slice(&[p.quality_proxy, 1.0 / p.param_proxy_raw]);
            }
        })?;
        // The Pareto front keeps one slot per quality entry and GPU in every chunk in flight.
        let slots = (quality.values.len() as u64 / 2).saturating_mul(spec.hardware.len().min(MAX_GPUS) as u64);
        if slots > MAX_PARETO_SLOTS {
            return Err(Error::Spec(format!(
                "the axes that decide the quality proxy (`hidden_dim` and the FFN size) have {} combinations \
                 together, on {} GPUs; the streaming search's Pareto front tracks at most {MAX_PARETO_SLOTS} \
                 (combinations x GPUs): give these axes fewer values",
                quality.values.len() / 2,
                spec.hardware.len().min(MAX_GPUS)
            )));
        }

        let mut metrics: Vec<Metric> = Vec::new();
        spec.constraints.clauses.iter().for_each(|c| c.metrics(&mut metrics));
        // Latency clauses are evaluated per GPU in the hot loop; the table holds the rest.
        let pass_mask = metrics
            .iter()
            .filter(|m| !m.is_latency())
            .fold(0u64, |m, metric| m | fields(metric.fields()));
        let mut atoms = Vec::new();
        spec.constraints
            .clauses
            .iter()
            .for_each(|c| latency_atoms(c, &mut atoms));
        if atoms.len() > MAX_LATENCY_CLAUSES {
            return Err(Error::Spec(format!(
                "the constraints have {} clauses on prefill_ms, decode_ms or decode_tokens_per_s; a streamed \
                 search evaluates at most {MAX_LATENCY_CLAUSES}",
                atoms.len()
            )));
        }
        let passes = reps.table(pass_mask, 1, |shape, out| {
            out[0] = shape.map_or(0.0, |s| truth_table(&spec.constraints.clauses, s, atoms.len()) as f64);
        })?;

        let whole = if spec.rank_by.is_whole_model() || !atoms.is_empty() {
            let steps: Vec<StepThroughputs> = spec.hardware.iter().map(Gpu::step_throughputs).collect::<Result<_>>()?;
            if family.is_arch() {
                Some(stack_plan(&reps, &radix, spec.hardware, atoms)?)
            } else {
                Some(whole_plan(&reps, &radix, &fields, &steps, atoms)?)
            }
        } else {
            None
        };

        // Blocks: the innermost axes, up to about 4096 positions.
        let mut inner_axes = 1;
        let mut inner = radix[radix.len() - 1];
        while inner_axes < radix.len() && inner * radix[radix.len() - 1 - inner_axes] <= 4096 {
            inner *= radix[radix.len() - 1 - inner_axes];
            inner_axes += 1;
        }
        let mut all: Vec<&Table> = terms.iter().chain([&valid, &quality, &passes]).collect();
        if let Some(w) = &whole {
            all.extend([&w.layers, &w.outside]);
            all.extend(&w.decode);
        }
        let names = if family.is_arch() {
            Some(name_ranks(family, spec.workload, &radix)?)
        } else {
            None
        };
        all.extend(&names);
        if all.len() > MAX_TABLES {
            return Err(Error::Spec("internal: too many lookup tables".into()));
        }
        let first_inner = radix.len() - inner_axes;
        let offsets = (0..inner)
            .flat_map(|j| {
                let mut digits = vec![0u64; radix.len()];
                let mut rest = j;
                for a in (first_inner..radix.len()).rev() {
                    digits[a] = rest % radix[a];
                    rest /= radix[a];
                }
                all.iter()
                    .map(|tab| (first_inner..radix.len()).map(|a| digits[a] * tab.strides[a]).sum())
                    .collect::<Vec<u64>>()
            })
            .collect();
        Ok(Plan {
            spec,
            radix,
            combinations: combinations as u64,
            terms,
            valid,
            quality,
            passes,
            gpus: inverse.len(),
            whole,
            names,
            inner_axes,
            inner,
            offsets,
        })
    }
}

/// Every precision a family can give (its `weights` and `kv_cache` axes, the
/// workload's otherwise) must run on every GPU: the error names the GPU and
/// what it supports.
pub fn check_precisions(family: &Family, workload: Workload, hardware: &[Gpu]) -> Result<()> {
    use crate::precision::Precision;
    let values = |kind: AxisKind| -> Vec<AxisValue> {
        family
            .axes
            .iter()
            .find(|a| a.kind == kind)
            .map(|a| a.values.iter().map(|l| l.value).collect())
            .unwrap_or_default()
    };
    let mut weights: Vec<_> = values(AxisKind::Weights)
        .into_iter()
        .filter_map(|v| match v {
            AxisValue::Weights(p) => Some(p),
            _ => None,
        })
        .collect();
    if weights.is_empty() {
        weights.push(workload.precision.weights);
    }
    let mut kv: Vec<_> = values(AxisKind::KvCache)
        .into_iter()
        .filter_map(|v| match v {
            AxisValue::KvCache(p) => Some(p),
            _ => None,
        })
        .collect();
    if kv.is_empty() {
        kv.push(workload.precision.kv_cache);
    }
    for gpu in hardware {
        for &w in &weights {
            for &k in &kv {
                gpu.check_precision(&Precision::new(w, k))?;
            }
        }
    }
    Ok(())
}

/// The table over `mask` of the summed time of `kernels` on every GPU
/// (`gpus` values per entry): the group's work columns times their inverse
/// throughputs, one nalgebra product for the whole table. Entries no valid
/// candidate uses get zero work (they are never read).
fn group_latency(
    reps: &Representatives,
    mask: u64,
    kernels: &[usize],
    model: &LayerModel,
    inverse: &[nalgebra::DMatrix<f64>],
) -> Result<Table> {
    use nalgebra::DMatrix;
    let all = model.columns();
    let columns: Vec<usize> = (0..all.len()).filter(|&c| kernels.contains(&all[c].0)).collect();
    let work = reps.table(mask, columns.len(), |shape, out| {
        if let Some(shape) = shape {
            // Both layer models have at most 41 work columns.
            let mut row = [0.0; 64];
            model.work_row(shape, &mut row[..all.len()]);
            for (o, &c) in out.iter_mut().zip(&columns) {
                *o = row[c];
            }
        }
    })?;
    let entries = work.values.len() / columns.len().max(1);
    let (gpus, width) = (inverse.len() as u64, columns.len() as u64);
    // The work's copy, the product, its transpose and the result, while the work table is still held.
    reps.charge(mask, (entries as u64).saturating_mul(width + 3 * gpus))?;
    let inverse = DMatrix::from_fn(columns.len(), inverse.len(), |c, g| inverse[g][(all[columns[c]].1, 0)]);
    let product = DMatrix::from_row_slice(entries, columns.len(), &work.values) * inverse;
    // Row-major, as the hot loop reads it.
    let values = product.transpose().as_slice().to_vec();
    reps.refund(entries as u64 * (2 * width + 2 * gpus));
    Ok(Table {
        strides: work.strides,
        values,
    })
}

/// The whole-model tables: decode kernels grouped by the axes they read
/// (folded into groups that read a superset, as the layer's kernels are),
/// each table holding the group's time on every GPU.
fn whole_plan(
    reps: &Representatives,
    radix: &[u64],
    fields: &dyn Fn(&[ShapeField]) -> u64,
    steps: &[StepThroughputs],
    atoms: Vec<Atom>,
) -> Result<WholePlan> {
    use crate::model::{self, decode_kernel_fields, decode_kernel_ms, decode_kernel_per_layer, DECODE_KERNELS};
    let gpus = steps.len();
    let layers = reps.table(
        fields(&[ShapeField::NumLayers, ShapeField::BatchSize]),
        2,
        |shape, out| {
            if let Some(s) = shape {
                let whole = s.model.num_layers.is_some() && s.model.vocab_size.is_some();
                out[0] = s.model.num_layers.filter(|_| whole).map_or(f64::NAN, |l| l as f64);
                out[1] = s.batch_size as f64;
            }
        },
    )?;
    let step_kernels: Vec<usize> = (0..DECODE_KERNELS.len())
        .filter(|&k| !decode_kernel_per_layer(k))
        .collect();
    let outside_fields = [
        ShapeField::HiddenDim,
        ShapeField::BatchSize,
        ShapeField::SeqLen,
        ShapeField::VocabSize,
    ];
    let outside_mask = step_kernels
        .iter()
        .fold(fields(&outside_fields), |m, &k| m | fields(decode_kernel_fields(k)));
    let outside = reps.table(outside_mask, 2 * gpus, |shape, out| {
        let Some(s) = shape else { return };
        for (g, step) in steps.iter().enumerate() {
            out[g] = model::prefill_outside_layers_ms(s, step).unwrap_or(f64::NAN);
            let (batch, context) = (s.batch_size, model::context_of(s));
            out[gpus + g] = step_kernels
                .iter()
                .map(|&k| decode_kernel_ms(s, step, batch, context, k).unwrap_or(f64::NAN))
                .sum();
        }
    })?;
    // Per-layer kernels, grouped as the layer model's are.
    let merged = group_kernels(
        (0..DECODE_KERNELS.len())
            .filter(|&k| decode_kernel_per_layer(k))
            .map(|k| (k, fields(decode_kernel_fields(k)))),
        radix,
    );
    let mut decode = Vec::new();
    for (mask, kernels) in &merged {
        if layout(*mask, radix).1 > MAX_TABLE * 4 {
            return Err(Error::Spec(format!(
                "the axes a decode kernel reads have {} combinations together; the streaming search handles at most {}",
                layout(*mask, radix).1,
                MAX_TABLE * 4
            )));
        }
        decode.push(reps.table(*mask, gpus, |shape, out| {
            let Some(s) = shape else { return };
            let (batch, context) = (s.batch_size, model::context_of(s));
            for (g, step) in steps.iter().enumerate() {
                out[g] = kernels
                    .iter()
                    .map(|&k| decode_kernel_ms(s, step, batch, context, k).unwrap_or(f64::NAN))
                    .sum();
            }
        })?);
    }
    Ok(WholePlan {
        layers,
        outside,
        decode,
        atoms,
        stack: false,
    })
}

/// The whole-model tables of a family of stacks: every candidate's prefill
/// and decode from its own stack ([`crate::model::step_latency_on`]), in
/// one table over every axis (a stack's time reads every field), so the
/// family's combinations are bounded by the table budget. Entries no valid
/// candidate has stay 0 (they are never read).
fn stack_plan(reps: &Representatives, radix: &[u64], hardware: &[Gpu], atoms: Vec<Atom>) -> Result<WholePlan> {
    let gpus = hardware.len();
    let all = (0..radix.len()).fold(0u64, |m, a| m | (1 << a));
    let steps: Vec<StepThroughputs> = hardware.iter().map(Gpu::step_throughputs).collect::<Result<_>>()?;
    let layers = reps.table(all, 2, |shape, out| {
        if let Some(s) = shape {
            out[0] = if crate::model::figures(s).is_some() {
                1.0
            } else {
                f64::NAN
            };
            out[1] = s.batch_size as f64;
        }
    })?;
    let failed = std::sync::Mutex::new(None);
    let outside = reps.table(all, 2 * gpus, |shape, out| {
        let Some(s) = shape else { return };
        for (g, gpu) in hardware.iter().enumerate() {
            // The layer's own time does not enter a stack's steps.
            match crate::model::step_latency_on(s, gpu, &steps[g], 0.0) {
                Ok(l) => {
                    out[g] = l.prefill_ms;
                    out[gpus + g] = l.decode_ms;
                }
                Err(e) => {
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(e);
                    }
                }
            }
        }
    })?;
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(WholePlan {
        layers,
        outside,
        decode: Vec::new(),
        atoms,
        stack: true,
    })
}

/// The rank of every combination's name among all of them (invalid ones
/// rank by their index: they are never read), as a table over every axis:
/// only for a family of stacks, whose combinations are few
/// ([`MAX_STACK_COMBINATIONS`]).
fn name_ranks(family: &Family, workload: Workload, radix: &[u64]) -> Result<Table> {
    let all = (0..radix.len()).fold(0u64, |m, a| m | (1 << a));
    let (strides, size) = layout(all, radix);
    let template = crate::search::family::parse_template(&family.template)?;
    let mut names: Vec<(String, u64)> = (0..size)
        .into_par_iter()
        .map(|i| {
            let picks = family.decode(i as u128);
            let name = match family.shape_of(&picks, workload) {
                Ok(shape) => crate::search::family::render(&template, &picks, family, &shape),
                Err(_) => String::new(),
            };
            (name, i)
        })
        .collect();
    names.par_sort();
    let mut values = vec![0.0; size as usize];
    for (rank, (_, i)) in names.iter().enumerate() {
        values[*i as usize] = rank as f64;
    }
    Ok(Table { strides, values })
}

/// The axes that decide whether a combination is valid: the sizes of its
/// heads and FFN; for a family of stacks every axis (its rules read the
/// layers, the vocabulary, the window, QK-norm and precision too), so its
/// validity is checked combination by combination.
fn validity_mask(family: &Family) -> u64 {
    if family.is_arch() {
        return (0..family.axes.len()).fold(0u64, |m, a| m | (1 << a));
    }
    [
        ShapeField::HiddenDim,
        ShapeField::NumHeads,
        ShapeField::NumKvHeads,
        ShapeField::HeadDim,
        ShapeField::FfnDim,
    ]
    .iter()
    .fold(0u64, |m, f| m | family.field_axes(*f))
}

/// Kernels grouped by the axes they read (`(kernel, axis mask)` pairs): a
/// group folds into one that reads a superset of its axes while that
/// group's table stays small. Returns `(mask, kernels)` per table.
fn group_kernels(kernels: impl Iterator<Item = (usize, u64)>, radix: &[u64]) -> Vec<(u64, Vec<usize>)> {
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
    for (k, mask) in kernels {
        match groups.iter_mut().find(|(m, _)| *m == mask) {
            Some((_, ks)) => ks.push(k),
            None => groups.push((mask, vec![k])),
        }
    }
    groups.sort_by_key(|(m, _)| std::cmp::Reverse(m.count_ones()));
    let mut merged: Vec<(u64, Vec<usize>)> = Vec::new();
    for (mask, kernels) in groups {
        let host = merged
            .iter_mut()
            .filter(|(m, _)| m & mask == mask && layout(*m, radix).1 <= MAX_TABLE)
            .min_by_key(|(m, _)| layout(*m, radix).1);
        match host {
            Some((_, ks)) => ks.extend(kernels),
            None => merged.push((mask, kernels)),
        }
    }
    merged
}

/// Digits of entry `entry` of a table over `mask`, in family-axis order (other axes 0).
fn digits_of(radix: &[u64], mask: u64, mut entry: u64) -> Vec<u64> {
    let mut digits = vec![0u64; radix.len()];
    for a in (0..radix.len()).rev() {
        if mask & (1 << a) != 0 {
            digits[a] = entry % radix[a];
            entry /= radix[a];
        }
    }
    digits
}

/// For any subset of axes and any values on it, a valid candidate that has
/// those values (if one exists): the shape a table entry is computed from.
struct Representatives<'a> {
    spec: &'a StreamSpec<'a>,
    radix: Vec<u64>,
    /// The axes that decide validity (hidden, heads, kv heads, head_dim, FFN).
    shape_mask: u64,
    /// A valid candidate's digits: values for axes no table entry fixes.
    base: Vec<u64>,
    /// Every valid combination of the shape axes, as an entry of their layout.
    valid: Vec<u64>,
    /// Table values allocated so far (at most [`MAX_TABLE_VALUES`]).
    used: AtomicU64,
}

impl<'a> Representatives<'a> {
    fn new(spec: &'a StreamSpec<'a>, radix: &[u64], shape_mask: u64) -> Result<Self> {
        let (_, size) = layout(shape_mask, radix);
        if size > MAX_TABLE * 4 {
            return Err(Error::Spec(format!(
                "the axes that decide heads, kv heads and FFN size have {size} combinations together; \
                 the streaming search handles at most {}",
                MAX_TABLE * 4
            )));
        }
        let family = spec.family;
        let picks = |digits: &[u64]| -> Vec<&Labeled> {
            family
                .axes
                .iter()
                .zip(digits)
                .map(|(axis, &d)| &axis.values[d as usize])
                .collect()
        };
        // Validity of the shape axes, with every other axis at its first value.
        let valid: Vec<u64> = (0..size)
            .into_par_iter()
            .filter(|&e| {
                family
                    .build_shape(&picks(&digits_of(radix, shape_mask, e)), spec.workload)
                    .is_ok_and(|s| shape_valid(&s))
            })
            .collect();
        let Some(&first) = valid.first() else {
            return Err(Error::Spec(NO_VALID_CANDIDATE.into()));
        };
        let base = digits_of(radix, shape_mask, first);
        // Every value of every other axis must be valid on its own (window 0, seq 0...).
        for (a, axis) in family.axes.iter().enumerate() {
            if shape_mask & (1 << a) != 0 {
                continue;
            }
            for d in 0..radix[a] {
                let mut digits = base.clone();
                digits[a] = d;
                family.shape_of(&picks(&digits), spec.workload).map_err(|why| {
                    Error::Spec(format!(
                        "axis `{}` value {}: {why}",
                        axis.kind.name(),
                        axis.values[d as usize].label()
                    ))
                })?;
            }
        }
        // With every axis at its largest value no FLOP count may overflow (they only grow).
        let largest: Vec<u64> = radix
            .iter()
            .enumerate()
            .map(|(a, _)| {
                (0..radix[a])
                    .max_by(|&x, &y| {
                        size_key(&family.axes[a].values[x as usize])
                            .total_cmp(&size_key(&family.axes[a].values[y as usize]))
                    })
                    .unwrap_or(0)
            })
            .collect();
        if let Ok(shape) = family.build_shape(&picks(&largest), spec.workload) {
            let relaxed = LayerShape {
                num_kv_heads: 1,
                ..shape
            };
            if let Err(p) = relaxed.validate() {
                if p.key.is_none() {
                    return Err(Error::Spec(format!("the family's largest shapes are too large: {p}")));
                }
            }
        }
        Ok(Representatives {
            spec,
            radix: radix.to_vec(),
            shape_mask,
            base,
            valid,
            used: AtomicU64::new(0),
        })
    }

    /// A table over `mask` with `width` values per entry, filled by `value`
    /// from the entry's representative shape (None when no valid candidate
    /// has the entry's values; the values then stay 0).
    ///
    /// Representatives are valid by construction: shape axes come from a
    /// valid combination, every other axis value was checked on its own, and
    /// the largest corner too. The shape axes of `mask` pick one of a few
    /// distinct partial shapes, built once; the other axes (sequence, batch,
    /// window, QK-norm, whole-model sizes) each set one field of it.
    fn table(&self, mask: u64, width: usize, value: impl Fn(Option<&LayerShape>, &mut [f64]) + Sync) -> Result<Table> {
        let (strides, size) = layout(mask, &self.radix);
        self.charge(mask, size.saturating_mul(width as u64))?;
        let family = self.spec.family;
        let axes = self.radix.len();
        let (part_strides, part_count) = layout(mask & self.shape_mask, &self.radix);
        let (_, shape_size) = layout(self.shape_mask, &self.radix);
        // For each combination of the mask's shape axes, the first valid
        // combination of all shape axes that agrees with it, as a shape.
        let mut part_of = vec![u32::MAX; part_count as usize];
        let mut parts = Vec::new();
        for &e in &self.valid {
            let digits = digits_of(&self.radix, self.shape_mask, e);
            let key: u64 = digits.iter().zip(&part_strides).map(|(x, s)| x * s).sum();
            if part_of[key as usize] != u32::MAX {
                continue;
            }
            let picks: Vec<&Labeled> = (0..axes)
                .map(|a| {
                    let d = if self.shape_mask & (1 << a) != 0 {
                        digits[a]
                    } else {
                        self.base[a]
                    };
                    &family.axes[a].values[d as usize]
                })
                .collect();
            if let Ok(shape) = family.build_shape(&picks, self.spec.workload) {
                part_of[key as usize] = parts.len() as u32;
                parts.push(shape);
            }
        }
        debug_assert!(parts.len() as u64 <= shape_size);
        let setters: Vec<usize> = (0..axes).filter(|a| mask & !self.shape_mask & (1 << a) != 0).collect();
        let mut values = vec![0.0; size as usize * width];
        values
            .par_chunks_mut(width.max(1))
            .enumerate()
            .for_each(|(entry, out)| {
                let mut rest = entry as u64;
                let mut fixed = [0u64; 64];
                for a in (0..axes).rev() {
                    if mask & (1 << a) != 0 {
                        fixed[a] = rest % self.radix[a];
                        rest /= self.radix[a];
                    }
                }
                let key: u64 = (0..axes).map(|a| fixed[a] * part_strides[a]).sum();
                let shape = parts.get(part_of[key as usize] as usize).map(|part| {
                    let mut shape = *part;
                    for &a in &setters {
                        let axis = &family.axes[a];
                        set_field(&mut shape, axis.kind, axis.values[fixed[a] as usize].value);
                    }
                    shape
                });
                value(shape.as_ref(), out);
            });
        Ok(Table { strides, values })
    }

    /// Takes `values` from the search's table budget ([`MAX_TABLE_VALUES`]),
    /// or says which axes make a table too large, before anything is allocated.
    fn charge(&self, mask: u64, values: u64) -> Result<()> {
        let used = self.used.load(Ordering::Relaxed).saturating_add(values);
        if used > MAX_TABLE_VALUES {
            let axes: Vec<String> = (0..self.radix.len())
                .filter(|a| mask & (1 << a) != 0)
                .map(|a| format!("`{}` ({})", self.spec.family.axes[a].kind.name(), self.radix[a]))
                .collect();
            return Err(Error::Spec(format!(
                "the streaming search's lookup tables would hold more than {MAX_TABLE_VALUES} values (the axes {} \
                 are read together): give these axes fewer values",
                axes.join(", ")
            )));
        }
        self.used.store(used, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back `values` to the table budget (a work table no longer held).
    fn refund(&self, values: u64) {
        self.used.store(
            self.used.load(Ordering::Relaxed).saturating_sub(values),
            Ordering::Relaxed,
        );
    }
}

/// Sets the field a non-shape axis decides (the values were checked when
/// the family was planned; nothing else can reach here).
fn set_field(shape: &mut LayerShape, kind: AxisKind, value: AxisValue) {
    match (kind, value) {
        (AxisKind::SeqLen, AxisValue::Int(v)) => shape.seq_len = v,
        (AxisKind::BatchSize, AxisValue::Int(v)) => shape.batch_size = v,
        (AxisKind::Window, AxisValue::Window(w)) => shape.window_size = w,
        (AxisKind::Window, AxisValue::Int(w)) => shape.window_size = Some(w),
        (AxisKind::QkNorm, AxisValue::Bool(b)) => shape.use_qk_norm = b,
        (AxisKind::NumLayers, AxisValue::Int(v)) => shape.model.num_layers = Some(v),
        (AxisKind::VocabSize, AxisValue::Int(v)) => shape.model.vocab_size = Some(v),
        (AxisKind::TieEmbeddings, AxisValue::Bool(b)) => shape.model.tie_embeddings = Some(b),
        (AxisKind::ContextLen, AxisValue::Int(v)) => shape.model.context_len = Some(v),
        (AxisKind::Weights, AxisValue::Weights(p)) => shape.precision.weights = p,
        (AxisKind::KvCache, AxisValue::KvCache(p)) => shape.precision.kv_cache = p,
        _ => {}
    }
}

/// Valid apart from the sizes other axes set (window, sequence, batch, QK-norm).
fn shape_valid(s: &LayerShape) -> bool {
    s.validate().is_ok()
}

/// Orders an axis's values by how much work they make (for the overflow check).
fn size_key(l: &Labeled) -> f64 {
    use crate::search::family::AxisValue;
    match l.value {
        AxisValue::Int(v) => v as f64,
        AxisValue::Ratio(r) => r,
        AxisValue::Window(w) => w.map_or(f64::INFINITY, |w| w as f64),
        AxisValue::Bool(_) => 0.0,
        // fp8 and int4 count fewer bytes than bf16: bf16 is the largest
        AxisValue::Weights(p) => match p {
            crate::precision::WeightPrecision::Bf16 => 2.0,
            crate::precision::WeightPrecision::Fp8 => 1.0,
            crate::precision::WeightPrecision::Int4 => 0.0,
        },
        AxisValue::KvCache(p) => p.bytes_per_value() as f64,
        // more full-attention layers in each period cache more
        AxisValue::Pattern(p) => p.full as f64 / (p.sliding + p.full) as f64,
    }
}

/// A bounded list of the best entries by (key, tie, order), ascending, each
/// with its candidate index. `order` is the index itself, except in a
/// family of stacks' constrained list, where it is the rank of the
/// candidate's name (materialization breaks ties there by name, and a
/// stack's layer time ties across its experts and layers).
#[derive(Clone, Debug)]
struct TopK {
    cap: usize,
    items: Vec<(f64, f64, u64, u64)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        // The plan refuses k above MAX_TOP_K; the capacity never trusts it.
        TopK {
            cap: k.saturating_add(MARGIN),
            items: Vec::with_capacity(k.min(MAX_TOP_K) + MARGIN + 1),
        }
    }

    /// Whether (key, tie, order) could enter: the hot loop's only test, almost always false.
    #[inline(always)]
    fn admits(&self, key: f64, tie: f64, order: u64) -> bool {
        match self.items.last() {
            Some(&(k, t, o, _)) if self.items.len() >= self.cap => {
                key < k || (key == k && (tie < t || (tie == t && order < o)))
            }
            _ => true,
        }
    }

    fn insert(&mut self, key: f64, tie: f64, order: u64, index: u64) {
        let at = self.items.partition_point(|&(k, t, o, i)| {
            k < key || (k == key && (t < tie || (t == tie && (o < order || (o == order && i < index)))))
        });
        self.items.insert(at, (key, tie, order, index));
        self.items.truncate(self.cap);
    }

    fn merge(mut self, other: TopK) -> TopK {
        for (k, t, o, i) in other.items {
            if self.admits(k, t, o) || self.items.len() < self.cap {
                self.insert(k, t, o, i);
            }
        }
        self
    }
}

/// What one chunk of indices found.
#[derive(Clone, Debug)]
struct Partial {
    valid: u64,
    passing: u64,
    /// Per GPU: candidates passing every clause on it (latency clauses included).
    passing_gpu: Vec<u64>,
    /// Per GPU: by total, by ms per Mparam, constrained by (total, -quality).
    tops: Vec<[TopK; 3]>,
    /// Per quality-table entry and GPU (entry * gpus + gpu): (fastest total, its index).
    pareto: Vec<(f64, u64)>,
}

impl Partial {
    fn new(plan: &Plan) -> Self {
        let k = plan.spec.top_k;
        let groups = plan.quality.values.len() / 2;
        Partial {
            valid: 0,
            passing: 0,
            passing_gpu: vec![0; plan.gpus],
            tops: (0..plan.gpus)
                .map(|_| [TopK::new(k), TopK::new(k), TopK::new(k)])
                .collect(),
            pareto: vec![(f64::INFINITY, u64::MAX); groups * plan.gpus],
        }
    }

    fn merge(mut self, other: Partial) -> Partial {
        self.valid += other.valid;
        self.passing += other.passing;
        for (m, t) in self.passing_gpu.iter_mut().zip(&other.passing_gpu) {
            *m += t;
        }
        for (mine, theirs) in self.tops.iter_mut().zip(other.tops) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m = std::mem::replace(m, TopK::new(0)).merge(t);
            }
        }
        for (m, t) in self.pareto.iter_mut().zip(other.pareto) {
            if (t.0, t.1) < (m.0, m.1) {
                *m = t;
            }
        }
        self
    }
}

/// Most lookup tables the hot loop walks: kernel groups (at most one per
/// kernel) plus validity, quality and constraints, and the whole-model tables.
const MAX_TABLES: usize = 40;

/// Most GPUs one pass evaluates; more are searched in several passes.
const MAX_GPUS: usize = 8;

impl Plan<'_> {
    /// Evaluates indices `start..end`.
    fn run_chunk(&self, start: u64, end: u64) -> Partial {
        if self.whole.is_some() {
            self.run_g::<true>(start, end)
        } else {
            self.run_g::<false>(start, end)
        }
    }

    fn run_g<const W: bool>(&self, start: u64, end: u64) -> Partial {
        match self.gpus {
            1 => self.run::<1, W>(start, end),
            2 => self.run::<2, W>(start, end),
            3 => self.run::<3, W>(start, end),
            4 => self.run::<4, W>(start, end),
            5 => self.run::<5, W>(start, end),
            6 => self.run::<6, W>(start, end),
            7 => self.run::<7, W>(start, end),
            _ => self.run::<8, W>(start, end),
        }
    }

    /// The hot loop, for `G` GPUs: table lookups, a few compares, no allocation.
    ///
    /// Candidates are walked in blocks over the innermost axes: each table's
    /// entry is the block's base plus a precomputed offset, and a block whose
    /// outer axes make an invalid shape is skipped whole.
    fn run<const G: usize, const W: bool>(&self, start: u64, end: u64) -> Partial {
        let mut out = Partial::new(self);
        let tables = self.tables();
        let count = tables.len();
        let terms = self.terms.len();
        let (valid_t, quality_t, passes_t) = (terms, terms + 1, terms + 2);
        let (layers_t, outside_t, decode_t) = (terms + 3, terms + 4, terms + 5);
        let (inner, outer_axes) = (self.inner, self.radix.len() - self.inner_axes);
        let valid_per_block = (outer_axes..self.radix.len()).all(|a| self.valid.strides[a] == 0);
        let empty = Vec::new();
        let (whole_decode, atoms): (&[Table], &[Atom]) = match &self.whole {
            Some(w) => (&w.decode, &w.atoms),
            None => (&empty, &[]),
        };
        let by_efficiency = self.spec.rank_by == RankMetric::MsPerMparamProxy;
        let rank_by = self.spec.rank_by;

        let mut block = start / inner;
        let mut digits = vec![0u64; outer_axes];
        let mut rest = block;
        for a in (0..outer_axes).rev() {
            digits[a] = rest % self.radix[a];
            rest /= self.radix[a];
        }
        let mut base = [0u64; MAX_TABLES];
        for (t, b) in base.iter_mut().enumerate().take(count) {
            *b = (0..outer_axes).map(|a| digits[a] * tables[t].strides[a]).sum();
        }
        // Current admission thresholds of each top-k (infinite until full).
        let mut worst = [[f64::INFINITY; 3]; G];
        let mut worst_quality = [f64::INFINITY; G];
        let mut worst_order = [u64::MAX; G];
        let names_t = count - 1;
        let refresh = |top: &TopK| top.items.last().filter(|_| top.items.len() >= top.cap).copied();

        let mut j0 = start % inner;
        let mut index = start;
        while index < end {
            let j1 = inner.min(j0 + (end - index));
            if !valid_per_block || self.valid.values[base[valid_t] as usize] != 0.0 {
                for j in j0..j1 {
                    let offset = &self.offsets[j as usize * count..j as usize * count + count];
                    let at = |t: usize| (base[t] + offset[t]) as usize;
                    if !valid_per_block && self.valid.values[at(valid_t)] == 0.0 {
                        continue;
                    }
                    out.valid += 1;
                    let q = at(quality_t);
                    let (quality, per_param) = (self.quality.values[2 * q], self.quality.values[2 * q + 1]);
                    let truth = self.passes.values[at(passes_t)];
                    let passes = truth != 0.0;
                    out.passing += u64::from(passes);
                    let mut totals = [0.0f64; G];
                    for (t, term) in self.terms.iter().enumerate() {
                        let row = &term.values[at(t) * G..at(t) * G + G];
                        for g in 0..G {
                            totals[g] += row[g];
                        }
                    }
                    // Whole-model prefill and decode on each GPU.
                    let mut prefill = [0.0f64; G];
                    let mut decode = [0.0f64; G];
                    let mut batch = 0.0;
                    if W {
                        if let Some(w) = &self.whole {
                            let l = at(layers_t);
                            let layers = w.layers.values[2 * l];
                            batch = w.layers.values[2 * l + 1];
                            let o = at(outside_t) * 2 * G;
                            let outside = &w.outside.values[o..o + 2 * G];
                            let mut per_layer = [0.0f64; G];
                            for (t, term) in whole_decode.iter().enumerate() {
                                let e = at(decode_t + t) * G;
                                let row = &term.values[e..e + G];
                                for g in 0..G {
                                    per_layer[g] += row[g];
                                }
                            }
                            if w.stack {
                                // `layers` is 1 for a whole stack, NaN for a plain layer.
                                for g in 0..G {
                                    prefill[g] = layers * outside[g];
                                    decode[g] = layers * outside[G + g];
                                }
                            } else {
                                for g in 0..G {
                                    prefill[g] = layers * totals[g] + outside[g];
                                    decode[g] = layers * per_layer[g] + outside[G + g];
                                }
                            }
                        }
                    }
                    let candidate = block * inner + j;
                    for g in 0..G {
                        let total = totals[g];
                        let efficiency = total * per_param;
                        if total < worst[g][0] {
                            let top = &mut out.tops[g][0];
                            top.insert(total, 0.0, candidate, candidate);
                            worst[g][0] = refresh(top).map_or(f64::INFINITY, |w| w.0);
                        }
                        if efficiency < worst[g][1] {
                            let top = &mut out.tops[g][1];
                            top.insert(efficiency, 0.0, candidate, candidate);
                            worst[g][1] = refresh(top).map_or(f64::INFINITY, |w| w.0);
                        }
                        let (key, passes_here) = if W {
                            let tokens = batch * 1e3 / decode[g];
                            let latency = [prefill[g], decode[g], tokens];
                            let passes_here = passes && {
                                let bits = atoms
                                    .iter()
                                    .enumerate()
                                    .fold(0u64, |b, (i, a)| b | (u64::from(a.holds(latency)) << i));
                                (truth as u64 >> bits) & 1 == 1
                            };
                            out.passing_gpu[g] += u64::from(passes_here);
                            let key = match rank_by {
                                RankMetric::TotalMs => total,
                                RankMetric::MsPerMparamProxy => efficiency,
                                RankMetric::PrefillMs => prefill[g],
                                RankMetric::DecodeMs => decode[g],
                                RankMetric::DecodeTokensPerS => -tokens,
                            };
                            (if key.is_nan() { f64::INFINITY } else { key }, passes_here)
                        } else {
                            (if by_efficiency { efficiency } else { total }, passes)
                        };
                        let order = match &self.names {
                            Some(n) => n.values[at(names_t)] as u64,
                            None => candidate,
                        };
                        if passes_here
                            && (key < worst[g][2]
                                || (key == worst[g][2]
                                    && (-quality < worst_quality[g]
                                        || (-quality == worst_quality[g] && order < worst_order[g]))))
                        {
                            let top = &mut out.tops[g][2];
                            top.insert(key, -quality, order, candidate);
                            let w = refresh(top);
                            worst[g][2] = w.map_or(f64::INFINITY, |w| w.0);
                            worst_quality[g] = w.map_or(f64::INFINITY, |w| w.1);
                            worst_order[g] = w.map_or(u64::MAX, |w| w.2);
                        }
                        let best = &mut out.pareto[q * G + g];
                        if total < best.0 {
                            *best = (total, candidate);
                        }
                    }
                }
            } else {
                // An invalid block still counts toward nothing; nothing to do.
            }
            index += j1 - j0;
            j0 = 0;
            block += 1;
            // Next block: carry through the outer axes.
            let mut a = outer_axes;
            while a > 0 {
                a -= 1;
                digits[a] += 1;
                for (b, t) in base.iter_mut().zip(&tables) {
                    *b += t.strides[a];
                }
                if digits[a] < self.radix[a] {
                    break;
                }
                for (b, t) in base.iter_mut().zip(&tables) {
                    *b -= t.strides[a] * self.radix[a];
                }
                digits[a] = 0;
            }
        }
        if !W || atoms.is_empty() {
            out.passing_gpu.iter_mut().for_each(|p| *p = out.passing);
        }
        out
    }

    /// Every table the hot loop reads: kernel groups, then validity, quality, constraints.
    fn tables(&self) -> Vec<&Table> {
        let mut all: Vec<&Table> = self
            .terms
            .iter()
            .chain([&self.valid, &self.quality, &self.passes])
            .collect();
        if let Some(w) = &self.whole {
            all.extend([&w.layers, &w.outside]);
            all.extend(&w.decode);
        }
        // Last: the hot loop finds it at `count - 1`.
        all.extend(&self.names);
        all
    }
}

/// Streams the whole family. `progress` is called with the number of
/// candidates done so far (from worker threads; keep it cheap).
pub fn search(spec: &StreamSpec, progress: &(dyn Fn(u64) + Sync)) -> Result<StreamResult> {
    search_range(spec, None, progress)
}

/// Streams the first `limit` candidates of the family (all when `None`).
pub fn search_range(spec: &StreamSpec, limit: Option<u64>, progress: &(dyn Fn(u64) + Sync)) -> Result<StreamResult> {
    check_reported(spec.top_k, spec.hardware.len()).map_err(Error::Spec)?;
    // The Pareto fronts of all GPUs hold at most one entry per quality-table
    // entry and GPU: bounded over every GPU, not only over one pass's.
    let quality_axes = spec.family.field_axes(ShapeField::HiddenDim) | spec.family.field_axes(ShapeField::FfnDim);
    let quality_entries = spec
        .family
        .axes
        .iter()
        .enumerate()
        .filter(|(a, _)| quality_axes & (1 << a) != 0)
        .fold(1u64, |n, (_, axis)| n.saturating_mul(axis.values.len() as u64));
    let slots = quality_entries.saturating_mul(spec.hardware.len() as u64);
    if slots > MAX_PARETO_SLOTS {
        return Err(Error::Spec(format!(
            "the axes that decide the quality proxy (`hidden_dim` and the FFN size) have {quality_entries} \
             combinations together, on {} GPUs; the streaming search's Pareto fronts hold at most \
             {MAX_PARETO_SLOTS} (combinations x GPUs): give these axes fewer values, or the search fewer GPUs",
            spec.hardware.len()
        )));
    }
    // One pass per run of GPUs that share a layer model (at most MAX_GPUS
    // each); the passes share nothing but their counts.
    let mut runs: Vec<&[Gpu]> = Vec::new();
    let mut start = 0;
    for g in 1..=spec.hardware.len() {
        if g == spec.hardware.len()
            || g - start == MAX_GPUS
            || spec.hardware[g].layer_model() != spec.hardware[start].layer_model()
        {
            runs.push(&spec.hardware[start..g]);
            start = g;
        }
    }
    if runs.len() > 1 {
        let mut merged: Option<StreamResult> = None;
        for group in runs {
            let part = search_range(
                &StreamSpec {
                    hardware: group,
                    ..*spec
                },
                limit,
                progress,
            )?;
            match &mut merged {
                Some(m) => m.per_gpu.extend(part.per_gpu),
                None => merged = Some(part),
            }
        }
        return merged.ok_or_else(|| Error::Spec("a search needs at least one hardware target".into()));
    }
    let plan = Plan::new(spec)?;
    let end = limit.map_or(plan.combinations, |l| l.min(plan.combinations));
    let done = AtomicU64::new(0);
    let chunk = CHUNK.div_ceil(plan.inner) * plan.inner;
    let chunks = end.div_ceil(chunk);
    let partial = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let (lo, hi) = (c * chunk, ((c + 1) * chunk).min(end));
            let part = plan.run_chunk(lo, hi);
            progress(done.fetch_add(hi - lo, Ordering::Relaxed) + (hi - lo));
            part
        })
        .reduce(|| Partial::new(&plan), Partial::merge);
    if partial.valid == 0 {
        return Err(Error::Spec(NO_VALID_CANDIDATE.into()));
    }
    finish(&plan, partial, end)
}

/// Re-evaluates the kept entries exactly and orders them as materialization would.
fn finish(plan: &Plan, partial: Partial, combinations: u64) -> Result<StreamResult> {
    let spec = plan.spec;
    let k = spec.top_k;
    // Every candidate any list keeps, evaluated exactly once for all GPUs.
    let gpu_count = partial.tops.len();
    let mut wanted: Vec<u64> = partial
        .tops
        .iter()
        .flat_map(|tops| tops.iter().flat_map(|t| t.items.iter().map(|&(_, _, _, i)| i)))
        .chain(partial.pareto.iter().filter(|e| e.1 != u64::MAX).map(|e| e.1))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let template = crate::search::family::parse_template(&spec.family.template)?;
    let mut shapes = Vec::with_capacity(wanted.len());
    let mut names = Vec::with_capacity(wanted.len());
    for &i in &wanted {
        let picks = spec.family.decode(i as u128);
        let shape = spec
            .family
            .shape_of(&picks, spec.workload)
            .map_err(|e| Error::Spec(format!("candidate {i}: {e}")))?;
        names.push(crate::search::family::render(&template, &picks, spec.family, &shape));
        shapes.push(shape);
    }
    let latency = Latencies::new(spec.hardware, &shapes);
    // Whole-model latencies where a GPU has step throughputs (required when
    // the ranking or the constraints read them, and then checked by the plan).
    let steps: Vec<Option<StepThroughputs>> = spec.hardware.iter().map(|g| g.step_throughputs().ok()).collect();
    let reads_latency = spec.constraints.reads_latency();
    let ranked = |index: u64, g: usize| -> Result<Ranked> {
        let n = wanted.binary_search(&index).unwrap_or(0);
        let shape = shapes[n];
        let p = Proxies::of(&shape);
        let total_ms = latency.total_ms(n, g);
        let whole = steps[g]
            .as_ref()
            .filter(|_| crate::model::figures(&shape).is_some())
            .map(|step| crate::model::step_latency_on(&shape, &spec.hardware[g], step, total_ms))
            .transpose()?;
        let on_gpu = if reads_latency {
            Some(whole.unwrap_or(StepLatency::UNAVAILABLE))
        } else {
            None
        };
        Ok(Ranked {
            index,
            name: names[n].clone(),
            shape,
            total_ms,
            ms_per_mparam_proxy: total_ms / p.param_proxy_raw,
            quality_proxy: p.quality_proxy,
            passes: spec.constraints.passes_on(&shape, on_gpu.as_ref()),
            bottleneck: latency.kernels(n, g).bottleneck(),
            latency: whole,
        })
    };
    let rank_key = |r: &Ranked| {
        spec.rank_by.key(
            r.total_ms,
            r.ms_per_mparam_proxy,
            &r.latency.unwrap_or(StepLatency::UNAVAILABLE),
        )
    };
    let mut per_gpu = Vec::new();
    for (g, tops) in partial.tops.iter().enumerate() {
        let ranked_list =
            |top: &TopK| -> Result<Vec<Ranked>> { top.items.iter().map(|&(_, _, _, i)| ranked(i, g)).collect() };
        let mut by_total = ranked_list(&tops[0])?;
        by_total.sort_by(|a, b| a.total_ms.total_cmp(&b.total_ms).then(a.index.cmp(&b.index)));
        by_total.truncate(k);
        let mut by_efficiency = ranked_list(&tops[1])?;
        by_efficiency.sort_by(|a, b| {
            a.ms_per_mparam_proxy
                .total_cmp(&b.ms_per_mparam_proxy)
                .then(a.index.cmp(&b.index))
        });
        by_efficiency.truncate(k);
        let mut constrained = ranked_list(&tops[2])?;
        // Streamed sums can differ from the exact ones by an ulp: the exact verdict decides.
        constrained.retain(|r| r.passes);
        constrained.sort_by(|a, b| {
            rank_key(a)
                .total_cmp(&rank_key(b))
                .then(b.quality_proxy.total_cmp(&a.quality_proxy))
                .then_with(|| a.name.cmp(&b.name))
        });
        constrained.truncate(k);

        let mut front: Vec<Ranked> = partial
            .pareto
            .iter()
            .skip(g)
            .step_by(gpu_count)
            .filter(|e| e.1 != u64::MAX)
            .map(|e| ranked(e.1, g))
            .collect::<Result<_>>()?;
        front.sort_by(|a, b| {
            a.total_ms
                .total_cmp(&b.total_ms)
                .then(b.quality_proxy.total_cmp(&a.quality_proxy))
                .then(a.index.cmp(&b.index))
        });
        let mut best_quality = f64::NEG_INFINITY;
        front.retain(|r| {
            let keep = r.quality_proxy > best_quality;
            best_quality = best_quality.max(r.quality_proxy);
            keep
        });
        per_gpu.push(GpuResult {
            hardware: spec.hardware[g].key.to_string(),
            total_ms_top: by_total,
            ms_per_mparam_proxy_top: by_efficiency,
            constrained_top: constrained,
            passing: partial.passing_gpu[g],
            pareto_front: front,
        });
    }
    Ok(StreamResult {
        combinations,
        valid: partial.valid,
        passing: partial.passing,
        per_gpu,
    })
}

/// The number of valid candidates of a family, without enumerating them
/// (for compile-time checks of huge spaces).
/// What streaming a family in which no combination is valid says.
const NO_VALID_CANDIDATE: &str = "the family yields no valid candidate";

pub fn count_valid(family: &Family, workload: Workload) -> Result<u64> {
    let constraints = Constraints::default();
    let spec = StreamSpec {
        family,
        workload,
        hardware: &[],
        constraints: &constraints,
        top_k: 0,
        rank_by: RankMetric::TotalMs,
    };
    let radix: Vec<u64> = family.axes.iter().map(|a| a.values.len() as u64).collect();
    check_stack_family(family)?;
    let mask = validity_mask(family);
    let reps = match Representatives::new(&spec, &radix, mask) {
        Ok(reps) => reps,
        Err(Error::Spec(e)) if e == NO_VALID_CANDIDATE => return Ok(0),
        Err(e) => return Err(e),
    };
    let others: u64 = radix
        .iter()
        .enumerate()
        .filter(|(a, _)| mask & (1 << a) == 0)
        .map(|(_, n)| *n)
        .product();
    Ok(reps.valid.len() as u64 * others)
}

/// The family `nas bench` streams: 100,663,296 combinations of 16 sequence
/// lengths, 128 widths, 4 head sizes, 6 kv-head counts, 32 FFN ratios, 32
/// windows and QK-norm on or off (outermost first), batch 1; 30,146,560
/// (30%) are valid shapes (kv heads must divide heads).
pub fn bench_family() -> Family {
    use crate::search::family::{Axis, AxisKind, AxisValue, FfnRounding, GqaRounding, Rounding};
    let ints = |kind, values: Vec<u64>| Axis {
        kind,
        values: values
            .into_iter()
            .map(|v| Labeled::new(AxisValue::Int(v)))
            .collect::<Vec<_>>()
            .into(),
    };
    Family {
        source: "generated_candidate".into(),
        axes: vec![
            ints(AxisKind::SeqLen, (1..=16).map(|i| i * 512).collect()),
            ints(AxisKind::HiddenDim, (0..128).map(|i| 1024 + 128 * i).collect()),
            ints(AxisKind::HeadDim, vec![64, 96, 128, 256]),
            ints(AxisKind::KvHeads, vec![1, 2, 4, 8, 16, 32]),
            Axis {
                kind: AxisKind::FfnRatio,
                values: (0..32)
                    .map(|i| Labeled::new(AxisValue::Ratio(2.0 + 0.125 * i as f64)))
                    .collect::<Vec<_>>()
                    .into(),
            },
            Axis {
                kind: AxisKind::Window,
                values: (0..32)
                    .map(|i| Labeled::new(AxisValue::Window((i < 31).then_some(128 * (i + 1)))))
                    .collect::<Vec<_>>()
                    .into(),
            },
            Axis {
                kind: AxisKind::QkNorm,
                values: vec![
                    Labeled::new(AxisValue::Bool(true)),
                    Labeled::new(AxisValue::Bool(false)),
                ]
                .into(),
            },
        ]
        .into(),
        ffn_rounding: FfnRounding {
            multiple: 128,
            rounding: Rounding::NearestEven,
        },
        gqa_rounding: GqaRounding::Exact,
        template: "b_s{seq_len}_h{hidden_dim}_hd{head_dim}_kv{kv_heads}_f{ffn_ratio}_w{window}_{qk_norm}".into(),
    }
}
pub use crate::search::search_report::{GpuSearchResult, SearchEntry, SearchReport};
