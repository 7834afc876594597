//! Checked spec -> Rust: a unit struct with `const` tables and two methods.
//! Every path is absolute (`::nas::__private::...`, `::core::...`), so the
//! expansion compiles with no imports, even under `#![no_implicit_prelude]`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, ToTokens};

use nas_core::gpu::{GpuTarget, SpecSheet};
use nas_core::model::ModelDims;
use nas_core::precision::Precision;
use nas_core::search::constraints::{Bound, Constraint};
use nas_core::search::family::{AxisValue, Family};
use nas_core::search::CliffSweep;
use nas_core::shapes::{Candidate, LayerShape};

use crate::ast::Spec;
use crate::validate::Checked;

pub fn expand(spec: &Spec, checked: &Checked) -> TokenStream {
    let Spec { attrs, vis, name, .. } = spec;
    let hardware = checked.hardware.iter().map(target);
    let candidates = checked.candidates.iter().map(candidate);
    let constraints = checked.constraints.iter().map(constraint);
    let space = match &checked.space {
        Some((family, top)) => {
            let family = family_tokens(family);
            quote!(::core::option::Option::Some((#family, #top)))
        }
        None => quote!(::core::option::Option::None),
    };
    let (seq_len, batch_size) = (checked.workload.seq_len, checked.workload.batch_size);
    let workload_model = model_tokens(&checked.workload.model);
    let workload_precision = precision_tokens(&checked.workload.precision);
    let sweeps = checked.sweeps.iter().map(sweep);
    let calibration_db = match &checked.calibration_db {
        Some(path) => quote!(::core::option::Option::Some(#path)),
        None => quote!(::core::option::Option::None),
    };
    let rank_by = variant(checked.rank_by);
    quote! {
        #(#attrs)*
        #vis struct #name;

        #[allow(dead_code)]
        impl #name {
            /// The GPUs this search targets, in declared order, with the cost
            /// model asked for (resolved against the registry at run time).
            pub const HARDWARE: &'static [::nas::__private::GpuTarget] = &[#(#hardware),*];
            /// Every candidate, fixed ones and family members, in declared order.
            pub const CANDIDATES: &'static [::nas::__private::Candidate] = &[#(#candidates),*];
            /// The quality constraints; a candidate passes when all hold.
            pub const CONSTRAINTS: &'static [::nas::__private::Constraint] = &[#(#constraints),*];
            /// The default sequence length and batch size of candidates.
            pub const WORKLOAD: ::nas::__private::Workload =
                ::nas::__private::Workload {
                    seq_len: #seq_len, batch_size: #batch_size, model: #workload_model, precision: #workload_precision,
                };
            /// A larger space (its axes, streamed at run time, never a table) and
            /// how many of its best are reported, if declared.
            pub const SPACE: ::core::option::Option<(::nas::__private::Family, usize)> = #space;
            /// Kernel-cliff sweeps.
            pub const SWEEPS: &'static [::nas::__private::CliffSweep] = &[#(#sweeps),*];
            /// The seed-format calibration DB read at run time, if declared.
            pub const CALIBRATION_DB: ::core::option::Option<&'static str> = #calibration_db;
            /// The metric this search ranks by.
            pub const RANK_BY: ::nas::__private::RankMetric = ::nas::__private::RankMetric::#rank_by;

            /// The search as nas-core values (a measured profile a `gpu` names is read now).
            pub fn spec() -> ::core::result::Result<::nas::search::SearchSpec, ::nas::Error> {
                ::nas::__private::spec(
                    Self::HARDWARE,
                    Self::CANDIDATES,
                    Self::CONSTRAINTS,
                    Self::SPACE,
                    Self::WORKLOAD,
                    Self::SWEEPS,
                    Self::RANK_BY,
                )
            }

            /// The declared `space` streamed on every GPU: per GPU its best by each
            /// ranking, its best passing the constraints, and its Pareto front of
            /// latency vs quality proxy (`None` without a `space`).
            pub fn search_space() -> ::core::result::Result<
                ::core::option::Option<::nas::search::stream::StreamResult>,
                ::nas::Error,
            > {
                ::nas::__private::search_space(
                    Self::HARDWARE,
                    Self::CONSTRAINTS,
                    Self::SPACE,
                    Self::WORKLOAD,
                    Self::RANK_BY,
                )
            }

            /// Every candidate on every GPU, ranked: the pack, ready to `write`.
            pub fn evaluate() -> ::core::result::Result<::nas::report::Pack, ::nas::Error> {
                ::nas::__private::evaluate(Self::spec()?, Self::CALIBRATION_DB)
            }
        }
    }
}

/// The identifier of an enum variant, from its Debug name.
fn variant(x: impl std::fmt::Debug) -> proc_macro2::Ident {
    format_ident!("{}", format!("{x:?}"))
}

fn str_lit(s: &str) -> Literal {
    Literal::string(s)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> TokenStream) -> TokenStream {
    match v {
        Some(v) => {
            let v = f(v);
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    }
}

fn cow(s: &str) -> TokenStream {
    let s = str_lit(s);
    quote!(::nas::__private::Cow::Borrowed(#s))
}

fn target(t: &GpuTarget) -> TokenStream {
    let key = cow(&t.key);
    let cost_model = opt(t.cost_model, |k| {
        let k = variant(k);
        quote!(::nas::__private::CostModelKind::#k)
    });
    let profile = opt(t.profile.as_deref(), cow);
    let own = opt(t.own.as_ref(), |own| {
        let label = cow(&own.label);
        let spec = spec_sheet(&own.spec);
        let seed = opt(own.seed.as_ref(), |(t, provenance)| {
            let values = t.values().map(Literal::f64_suffixed);
            let provenance = cow(provenance);
            quote!((::nas::__private::Throughputs::from_values([#(#values),*]), #provenance))
        });
        quote!(::nas::__private::OwnGpu { label: #label, spec: #spec, seed: #seed })
    });
    quote! {
        ::nas::__private::GpuTarget { key: #key, cost_model: #cost_model, profile: #profile, own: #own }
    }
}

fn spec_sheet(s: &SpecSheet) -> TokenStream {
    let u = |v: Option<u64>| opt(v, |x| Literal::u64_suffixed(x).into_token_stream());
    let f = |v: Option<f64>| opt(v, |x| Literal::f64_suffixed(x).into_token_stream());
    let (sm, l2) = (u(s.sm_count), u(s.l2_bytes));
    let (hbm, bf16, fp8, memory) = (
        f(s.hbm_gbps),
        f(s.dense_bf16_tflops),
        f(s.dense_fp8_tflops),
        f(s.memory_gib),
    );
    let source = cow(&s.source);
    let bf16_cores = opt(s.bf16_tensor_cores, |b| quote!(#b));
    quote! {
        ::nas::__private::SpecSheet {
            sm_count: #sm, l2_bytes: #l2, hbm_gbps: #hbm, dense_bf16_tflops: #bf16,
            dense_fp8_tflops: #fp8, bf16_tensor_cores: #bf16_cores, memory_gib: #memory, source: #source,
        }
    }
}

/// `[sizes], qk_norm, window (0 = full)`: the compact form `__private::shape` takes.
fn shape_args(s: &LayerShape) -> TokenStream {
    let sizes = [
        s.hidden_dim,
        s.num_heads,
        s.num_kv_heads,
        s.head_dim,
        s.ffn_dim,
        s.seq_len,
        s.batch_size,
    ]
    .map(Literal::u64_unsuffixed);
    let qk = s.use_qk_norm;
    let window = Literal::u64_unsuffixed(s.window_size.unwrap_or(0));
    quote!([#(#sizes),*], #qk, #window)
}

fn candidate(c: &Candidate) -> TokenStream {
    let (name, source, args) = (str_lit(&c.name), str_lit(&c.source), shape_args(&c.shape));
    let model = model_tokens(&c.shape.model);
    if c.shape.precision.is_bf16() {
        return quote!(::nas::__private::candidate(#name, #source, #args, #model));
    }
    let precision = precision_tokens(&c.shape.precision);
    quote!(::nas::__private::candidate_in(#name, #source, #args, #model, #precision))
}

/// A precision as a `const` expression.
fn precision_tokens(p: &Precision) -> TokenStream {
    if p.is_bf16() {
        return quote!(::nas::__private::Precision::BF16);
    }
    let (w, kv) = (variant(p.weights), variant(p.kv_cache));
    quote! {
        ::nas::__private::Precision {
            weights: ::nas::__private::WeightPrecision::#w,
            kv_cache: ::nas::__private::KvCachePrecision::#kv,
        }
    }
}

/// Whole-model fields: a short const for a plain layer, else a struct literal.
fn model_tokens(m: &ModelDims) -> TokenStream {
    if *m == ModelDims::NONE {
        return quote!(::nas::__private::ModelDims::NONE);
    }
    let opt_u64 = |v: Option<u64>| match v {
        Some(v) => {
            let v = Literal::u64_unsuffixed(v);
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    };
    let (layers, vocab, context, tokens) = (
        opt_u64(m.num_layers),
        opt_u64(m.vocab_size),
        opt_u64(m.context_len),
        opt_u64(m.training_tokens),
    );
    let tie = match m.tie_embeddings {
        Some(b) => quote!(::core::option::Option::Some(#b)),
        None => quote!(::core::option::Option::None),
    };
    let (law, count) = (variant(m.loss_fit.law), variant(m.loss_fit.count));
    quote! {
        ::nas::__private::ModelDims {
            num_layers: #layers,
            vocab_size: #vocab,
            tie_embeddings: #tie,
            context_len: #context,
            training_tokens: #tokens,
            loss_fit: ::nas::__private::LossFit {
                law: ::nas::__private::ScalingLaw::#law,
                count: ::nas::__private::ParamCount::#count,
            },
        }
    }
}

/// A family as a `const` expression: its axes become `const` arrays.
fn family_tokens(f: &Family) -> TokenStream {
    let source = str_lit(&f.source);
    let template = str_lit(&f.template);
    let axes = f.axes.iter().map(|axis| {
        let kind = variant(axis.kind);
        let values = axis.values.iter().map(|v| {
            let value = match v.value {
                AxisValue::Int(x) => quote!(::nas::__private::AxisValue::Int(#x)),
                AxisValue::Ratio(r) => {
                    let r = Literal::f64_suffixed(r);
                    quote!(::nas::__private::AxisValue::Ratio(#r))
                }
                AxisValue::Window(Some(w)) => {
                    quote!(::nas::__private::AxisValue::Window(::core::option::Option::Some(#w)))
                }
                AxisValue::Window(None) => quote!(::nas::__private::AxisValue::Window(::core::option::Option::None)),
                AxisValue::Bool(b) => quote!(::nas::__private::AxisValue::Bool(#b)),
                AxisValue::Weights(p) => {
                    let p = variant(p);
                    quote!(::nas::__private::AxisValue::Weights(::nas::__private::WeightPrecision::#p))
                }
                AxisValue::KvCache(p) => {
                    let p = variant(p);
                    quote!(::nas::__private::AxisValue::KvCache(::nas::__private::KvCachePrecision::#p))
                }
            };
            let label = match &v.label {
                Some(l) => {
                    let l = str_lit(l);
                    quote!(::core::option::Option::Some(::nas::__private::Cow::Borrowed(#l)))
                }
                None => quote!(::core::option::Option::None),
            };
            quote!(::nas::__private::Labeled { value: #value, label: #label })
        });
        quote! {
            ::nas::__private::Axis {
                kind: ::nas::__private::AxisKind::#kind,
                values: ::nas::__private::Cow::Borrowed(&[#(#values),*]),
            }
        }
    });
    let multiple = f.ffn_rounding.multiple;
    let rounding = variant(f.ffn_rounding.rounding);
    let gqa_rounding = variant(f.gqa_rounding);
    quote! {
        ::nas::__private::Family {
            source: ::nas::__private::Cow::Borrowed(#source),
            axes: ::nas::__private::Cow::Borrowed(&[#(#axes),*]),
            ffn_rounding: ::nas::__private::FfnRounding {
                multiple: #multiple,
                rounding: ::nas::__private::Rounding::#rounding,
            },
            gqa_rounding: ::nas::__private::GqaRounding::#gqa_rounding,
            template: ::nas::__private::Cow::Borrowed(#template),
        }
    }
}

fn bound(b: &Bound) -> TokenStream {
    match *b {
        Bound::Int(v) => {
            let v = Literal::i64_suffixed(v);
            quote!(::nas::__private::Bound::Int(#v))
        }
        Bound::Float(v) => {
            let v = Literal::f64_suffixed(v);
            quote!(::nas::__private::Bound::Float(#v))
        }
        Bound::Bool(v) => quote!(::nas::__private::Bound::Bool(#v)),
    }
}

fn constraint(c: &Constraint) -> TokenStream {
    match c {
        Constraint::Compare { metric, op, bound: b } => {
            let metric = variant(metric);
            let op = variant(op);
            let b = bound(b);
            quote! {
                ::nas::__private::Constraint::Compare {
                    metric: ::nas::__private::Metric::#metric,
                    op: ::nas::__private::CmpOp::#op,
                    bound: #b,
                }
            }
        }
        Constraint::Range {
            metric,
            lo,
            hi,
            inclusive,
        } => {
            let metric = variant(metric);
            let (lo, hi) = (bound(lo), bound(hi));
            quote! {
                ::nas::__private::Constraint::Range {
                    metric: ::nas::__private::Metric::#metric,
                    lo: #lo,
                    hi: #hi,
                    inclusive: #inclusive,
                }
            }
        }
        Constraint::Fits {
            gpu,
            memory_gib,
            batch,
            context,
        } => {
            let gpu = str_lit(gpu);
            let memory_gib = Literal::f64_suffixed(*memory_gib);
            let (batch, context) = (Literal::u64_unsuffixed(*batch), Literal::u64_unsuffixed(*context));
            quote! {
                ::nas::__private::Constraint::Fits {
                    gpu: ::nas::__private::Cow::Borrowed(#gpu),
                    memory_gib: #memory_gib,
                    batch: #batch,
                    context: #context,
                }
            }
        }
        Constraint::All(parts) | Constraint::Any(parts) => {
            let variant = format_ident!("{}", if matches!(c, Constraint::All(_)) { "All" } else { "Any" });
            let parts = parts.iter().map(constraint);
            quote!(::nas::__private::Constraint::#variant(::nas::__private::Cow::Borrowed(&[#(#parts),*])))
        }
    }
}

fn sweep(s: &CliffSweep) -> TokenStream {
    let axis = variant(s.axis);
    let base = shape_args(&s.base);
    let values = s.values.iter().map(|v| Literal::u64_unsuffixed(*v));
    quote! {
        ::nas::__private::CliffSweep {
            axis: ::nas::__private::CliffAxis::#axis,
            base: ::nas::__private::shape(#base),
            values: ::nas::__private::Cow::Borrowed(&[#(#values),*]),
        }
    }
}
