//! Spec -> nas-core values: a thin translator into nas-core's one spec
//! builder (`nas_core::search::spec_builder`), which holds every rule,
//! default and key name. Each value goes in with a place (an index into this
//! module's table of tokens); each error the builder reports comes back as a
//! `syn::Error` at those tokens, all of them combined. Never panics.

use proc_macro2::TokenStream;
use quote::ToTokens;

use nas_core::search::family::Rounding;
use nas_core::search::spec_builder::{self as b, Place};

use crate::ast::*;
use crate::parse::field_tokens;

/// A spec that passed every check, as nas-core values.
pub type Checked = b::Built;

/// Checks a spec and converts it; every error is reported, not just the first.
pub fn validate(spec: &Spec) -> syn::Result<Checked> {
    let mut places = Places::default();
    let input = places.spec(spec);
    b::build(&input).map_err(|errors| {
        let mut all: Option<syn::Error> = None;
        for e in errors {
            let tokens = places.0.get(e.place.0).cloned().unwrap_or_default();
            let e = syn::Error::new_spanned(tokens, e.message);
            match &mut all {
                Some(all) => all.combine(e),
                None => all = Some(e),
            }
        }
        all.unwrap_or_else(|| syn::Error::new(proc_macro2::Span::call_site(), "invalid spec"))
    })
}

/// The tokens each [`Place`] stands for.
#[derive(Default)]
struct Places(Vec<TokenStream>);

impl Places {
    fn place(&mut self, tokens: impl ToTokens) -> Place {
        self.0.push(tokens.into_token_stream());
        Place(self.0.len() - 1)
    }

    fn word(&mut self, ident: &syn::Ident) -> b::Word {
        b::Word {
            text: ident.to_string(),
            place: self.place(ident),
        }
    }

    fn number(&mut self, n: &Number) -> b::Atom {
        b::Atom {
            value: match n.value {
                NumberValue::Int(v) => b::Scalar::Int(v),
                NumberValue::Float(v) => b::Scalar::Float(v),
            },
            place: self.place(&n.tokens),
        }
    }

    fn scalar(&mut self, s: &Scalar) -> b::Atom {
        match s {
            Scalar::Number(n) => self.number(n),
            Scalar::Bool(v) => b::Atom {
                value: b::Scalar::Bool(v.value),
                place: self.place(v),
            },
            Scalar::Full(_) => b::Atom {
                value: b::Scalar::Full,
                place: self.place(s.span_tokens()),
            },
            Scalar::Str(v) => b::Atom {
                value: b::Scalar::Str(v.value()),
                place: self.place(v),
            },
            Scalar::Word(w) => b::Atom {
                value: b::Scalar::Word(w.to_string()),
                place: self.place(w),
            },
        }
    }

    fn value(&mut self, v: &Value) -> b::Value {
        match v {
            Value::Scalar(s) => b::Value::Scalar(self.scalar(s)),
            Value::List { span, items } => b::Value::List {
                place: self.place(quote::quote_spanned!(*span=> list)),
                items: items
                    .iter()
                    .map(|i| b::ListItem {
                        value: self.scalar(&i.value),
                        label: i.label.as_ref().map(|l| b::Atom {
                            value: b::Scalar::Str(l.value()),
                            place: self.place(l),
                        }),
                    })
                    .collect(),
            },
        }
    }

    fn fields(&mut self, fields: &[Field]) -> Vec<b::Field> {
        fields
            .iter()
            .map(|f| b::Field {
                name: self.word(&f.name),
                value: self.value(&f.value),
                rounding: f.rounding.as_ref().map(|r| {
                    let keyword = proc_macro2::Ident::new("round", r.keyword);
                    b::RoundingInput {
                        place: self.place(&keyword),
                        mode: Some(b::Atom {
                            value: b::Scalar::Str(
                                match r.mode {
                                    Rounding::NearestEven => "nearest",
                                    Rounding::Up => "up",
                                    Rounding::Down => "down",
                                }
                                .into(),
                            ),
                            place: self.place(&keyword),
                        }),
                        multiple: r.multiple.as_ref().map(|m| self.number(m)),
                    }
                }),
                place: self.place(field_tokens(f)),
            })
            .collect()
    }

    fn clause(&mut self, c: &Clause) -> b::ClauseInput {
        match c {
            Clause::Fits {
                gpu,
                batch,
                context,
                tokens,
            } => b::ClauseInput::Fits {
                gpu: self.word(gpu),
                batch: self.number(batch),
                context: self.number(context),
                place: self.place(tokens),
            },
            Clause::Compare {
                metric,
                op,
                value,
                tokens,
            } => b::ClauseInput::Compare {
                metric: self.word(metric),
                op: *op,
                value: self.scalar(value),
                place: self.place(tokens),
            },
            Clause::Range {
                metric,
                lo,
                hi,
                inclusive,
                tokens,
            } => {
                let mut range = lo.span_tokens();
                range.extend(hi.span_tokens());
                let range = self.place(range);
                b::ClauseInput::Range {
                    metric: self.word(metric),
                    lo: self.scalar(lo),
                    hi: self.scalar(hi),
                    inclusive: b::Atom {
                        value: b::Scalar::Bool(*inclusive),
                        place: range,
                    },
                    range,
                    place: self.place(tokens),
                }
            }
            Clause::All(parts, tokens) => {
                b::ClauseInput::All(parts.iter().map(|p| self.clause(p)).collect(), self.place(tokens))
            }
            Clause::Any(parts, tokens) => {
                b::ClauseInput::Any(parts.iter().map(|p| self.clause(p)).collect(), self.place(tokens))
            }
        }
    }

    fn spec(&mut self, spec: &Spec) -> b::SpecInput {
        let place = self.place(&spec.name);
        let items = spec
            .items
            .iter()
            .map(|item| match item {
                Item::Hardware { list, names } => {
                    let mut brackets = proc_macro2::Group::new(proc_macro2::Delimiter::Bracket, TokenStream::new());
                    brackets.set_span(*list);
                    b::ItemInput::Hardware {
                        place: self.place(brackets),
                        names: names.iter().map(|n| self.word(n)).collect(),
                    }
                }
                Item::Gpu(g) => b::ItemInput::Gpu(b::GpuInput {
                    name: self.word(&g.name),
                    base: g.base.as_ref().map(|n| self.word(n)),
                    fields: self.fields(&g.fields),
                }),
                Item::Workload { span, fields } => b::ItemInput::Workload {
                    place: self.place(quote::quote_spanned!(*span=> workload)),
                    fields: self.fields(fields),
                },
                Item::Fixed(def) => b::ItemInput::Fixed(b::FixedInput {
                    kind: match def.kind {
                        FixedKind::Known => b::FixedKind::Known,
                        FixedKind::Seed => b::FixedKind::Seed,
                        FixedKind::Candidate => b::FixedKind::Candidate,
                    },
                    name: self.word(&def.name),
                    fields: self.fields(&def.fields),
                }),
                Item::Family(def) => b::ItemInput::Family(b::FamilyInput {
                    name: self.word(&def.name),
                    mode: match &def.top {
                        None => b::FamilyMode::Listed,
                        Some(top) => b::FamilyMode::Space {
                            top: Some(b::Atom {
                                value: match top.base10_parse::<i128>() {
                                    Ok(v) => b::Scalar::Int(v),
                                    Err(_) => b::Scalar::Str(top.to_string()),
                                },
                                place: self.place(top),
                            }),
                        },
                    },
                    fields: self.fields(&def.fields),
                }),
                Item::Sweep(def) => {
                    let mut range = def.from.tokens.clone();
                    range.extend(def.to.tokens.clone());
                    b::ItemInput::Sweep(b::SweepInput {
                        axis: self.word(&def.axis),
                        from: self.number(&def.from),
                        to: self.number(&def.to),
                        step: self.number(&def.step),
                        range: self.place(range),
                        fields: self.fields(&def.fields),
                    })
                }
                Item::Constraints { span, clauses } => b::ItemInput::Constraints {
                    place: self.place(quote::quote_spanned!(*span=> constraints)),
                    clauses: clauses.iter().map(|c| self.clause(c)).collect(),
                },
                Item::RankBy { metric } => b::ItemInput::RankBy(self.word(metric)),
                Item::CalibrationDb { path } => b::ItemInput::CalibrationDb(b::Atom {
                    value: b::Scalar::Str(path.value()),
                    place: self.place(path),
                }),
                Item::CostModel(def) => b::ItemInput::CostModel(b::CostModelInput {
                    place: self.place(quote::quote_spanned!(def.span=> cost_model)),
                    all: def.all.as_ref().map(|w| self.word(w)),
                    per_gpu: def.per_gpu.iter().map(|(g, w)| (self.word(g), self.word(w))).collect(),
                }),
            })
            .collect();
        b::SpecInput { place, items }
    }
}
