//! The parsed spec. Every node keeps the tokens it came from, so that
//! validation can put each error under the token that caused it.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, LitBool, LitInt, LitStr, Visibility};

pub struct Spec {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub items: Vec<Item>,
}

pub enum Item {
    Hardware { list: Span, names: Vec<Ident> },
    Gpu(GpuDef),
    Workload { span: Span, fields: Vec<Field> },
    Fixed(FixedDef),
    Family(FamilyDef),
    Sweep(SweepDef),
    Constraints { span: Span, clauses: Vec<Clause> },
    RankBy { metric: Ident },
    CalibrationDb { path: LitStr },
    CostModel(CostModelDef),
}

/// `cost_model: seed`, or per GPU: `cost_model: { a100: seed, t4: seed }`.
pub struct CostModelDef {
    pub span: Span,
    /// One word for every GPU.
    pub all: Option<Ident>,
    /// (GPU, word) pairs; GPUs not named take the default.
    pub per_gpu: Vec<(Ident, Ident)>,
}

/// `gpu my_gpu: a100 { matmul_tflops: 250.0 }`
pub struct GpuDef {
    pub name: Ident,
    pub base: Option<Ident>,
    pub fields: Vec<Field>,
}

/// Which keyword declared a fixed candidate; it sets the default source label.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FixedKind {
    Known,
    Seed,
    Candidate,
}

/// `known llama3_8b { hidden_dim: 4096, ... }`
pub struct FixedDef {
    pub kind: FixedKind,
    pub name: Ident,
    pub fields: Vec<Field>,
}

/// `family gen { axes..., name: "..." }`, or `space gen top 25 { ... }` for a
/// large space of which only the top entries are reported.
pub struct FamilyDef {
    pub name: Ident,
    pub top: Option<LitInt>,
    pub fields: Vec<Field>,
}

/// `sweep hidden_dim in 3840..4352 step 32 { base fields }`
pub struct SweepDef {
    pub axis: Ident,
    pub from: Number,
    pub to: Number,
    pub step: Number,
    pub fields: Vec<Field>,
}

/// `key: value`
pub struct Field {
    pub name: Ident,
    pub value: Value,
    pub rounding: Option<RoundingSpec>,
}

/// `round_to 128` after a ratio list; `round_down` (no multiple) after a
/// `gqa_group`.
pub struct RoundingSpec {
    pub mode: nas_core::search::family::Rounding,
    /// The keyword (`round_to`, `round_up_to`, `round_down_to`, `round_down`).
    pub keyword: proc_macro2::Span,
    pub multiple: Option<Number>,
}

pub enum Value {
    Scalar(Scalar),
    List { span: Span, items: Vec<ListItem> },
}

/// A list entry, optionally with the label it shows in names: `4.0 as "4p0"`.
pub struct ListItem {
    pub value: Scalar,
    pub label: Option<LitStr>,
}

pub enum Scalar {
    Number(Number),
    Bool(LitBool),
    /// `full`: full attention, for windows.
    Full(Span),
    Str(LitStr),
    /// A bare word: a precision (`bf16`, `fp8`, `int4`).
    Word(Ident),
}

/// A number written as a literal or a constant expression (`16.0 / 3.0`, `-5`).
#[derive(Clone)]
pub struct Number {
    pub value: NumberValue,
    pub tokens: TokenStream,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NumberValue {
    Int(i128),
    Float(f64),
}

impl NumberValue {
    pub fn as_f64(self) -> f64 {
        match self {
            NumberValue::Int(v) => v as f64,
            NumberValue::Float(v) => v,
        }
    }
}

/// One constraint clause.
pub enum Clause {
    /// `fits(gpu, batch: B, context: C)`.
    Fits {
        gpu: Ident,
        batch: Number,
        context: Number,
        tokens: TokenStream,
    },
    Compare {
        metric: Ident,
        op: nas_core::search::constraints::CmpOp,
        value: Scalar,
        tokens: TokenStream,
    },
    Range {
        metric: Ident,
        lo: Scalar,
        hi: Scalar,
        inclusive: bool,
        tokens: TokenStream,
    },
    All(Vec<Clause>, TokenStream),
    Any(Vec<Clause>, TokenStream),
}

impl Scalar {
    pub fn span_tokens(&self) -> TokenStream {
        use quote::ToTokens;
        match self {
            Scalar::Number(n) => n.tokens.clone(),
            Scalar::Bool(b) => b.to_token_stream(),
            Scalar::Full(span) => quote::quote_spanned!(*span=> full),
            Scalar::Str(s) => s.to_token_stream(),
            Scalar::Word(w) => w.to_token_stream(),
        }
    }
}
