//! One `Parse` impl per node of the DSL. Parsing stops at the first syntax
//! error (syn's rule); everything else is checked in `validate`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::buffer::Cursor;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, bracketed, parenthesized, Attribute, Ident, LitBool, LitFloat, LitInt, LitStr, Token};

use nas_core::search::constraints::CmpOp;
use nas_core::search::family::Rounding;

use crate::ast::*;
use crate::kw;

/// The tokens between two cursors of one stream: what a node was written as.
fn tokens_between(start: Cursor, end: Cursor) -> TokenStream {
    let mut out = TokenStream::new();
    let mut c = start;
    while c != end {
        match c.token_tree() {
            Some((tt, next)) => {
                out.extend([tt]);
                c = next;
            }
            None => break,
        }
    }
    out
}

impl Parse for Spec {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        input
            .parse::<kw::search>()
            .map_err(|e| syn::Error::new(e.span(), "expected `search NAME { ... }` (optionally `pub search`)"))?;
        let name = input.parse()?;
        let body;
        braced!(body in input);
        let mut items = Vec::new();
        while !body.is_empty() {
            items.push(body.parse()?);
            while body.peek(Token![,]) || body.peek(Token![;]) {
                body.parse::<proc_macro2::TokenTree>()?;
            }
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the search's closing brace"));
        }
        Ok(Spec {
            attrs,
            vis,
            name,
            items,
        })
    }
}

fn fields(input: ParseStream) -> syn::Result<Vec<Field>> {
    let body;
    braced!(body in input);
    Ok(Punctuated::<Field, Token![,]>::parse_terminated(&body)?
        .into_iter()
        .collect())
}

impl Parse for Item {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // Doc comments on items are allowed and ignored.
        input.call(Attribute::parse_outer)?;
        let look = input.lookahead1();
        if look.peek(kw::hardware) {
            input.parse::<kw::hardware>()?;
            input.parse::<Token![:]>()?;
            let list;
            // errors about the list (`hardware: []`) point at its brackets
            let brackets = bracketed!(list in input);
            let names = Punctuated::<Ident, Token![,]>::parse_terminated(&list)?;
            Ok(Item::Hardware {
                list: brackets.span.join(),
                names: names.into_iter().collect(),
            })
        } else if look.peek(kw::gpu) {
            input.parse::<kw::gpu>()?;
            let name = input.parse()?;
            let base = if input.peek(Token![:]) {
                input.parse::<Token![:]>()?;
                Some(input.parse()?)
            } else {
                None
            };
            Ok(Item::Gpu(GpuDef {
                name,
                base,
                fields: fields(input)?,
            }))
        } else if look.peek(kw::workload) {
            let span = input.parse::<kw::workload>()?.span;
            Ok(Item::Workload {
                span,
                fields: fields(input)?,
            })
        } else if look.peek(kw::known) || look.peek(kw::seed) || look.peek(kw::candidate) {
            let kind = if input.peek(kw::known) {
                input.parse::<kw::known>()?;
                FixedKind::Known
            } else if input.peek(kw::seed) {
                input.parse::<kw::seed>()?;
                FixedKind::Seed
            } else {
                input.parse::<kw::candidate>()?;
                FixedKind::Candidate
            };
            Ok(Item::Fixed(FixedDef {
                kind,
                name: input.parse()?,
                fields: fields(input)?,
            }))
        } else if look.peek(kw::family) {
            input.parse::<kw::family>()?;
            Ok(Item::Family(FamilyDef {
                name: input.parse()?,
                top: None,
                fields: fields(input)?,
            }))
        } else if look.peek(kw::space) {
            input.parse::<kw::space>()?;
            let name = input.parse()?;
            input.parse::<kw::top>()?;
            let top = input.parse()?;
            Ok(Item::Family(FamilyDef {
                name,
                top: Some(top),
                fields: fields(input)?,
            }))
        } else if look.peek(kw::sweep) {
            input.parse::<kw::sweep>()?;
            let axis = input.parse()?;
            input.parse::<Token![in]>()?;
            let from = input.parse()?;
            input.parse::<Token![..]>()?;
            let to = input.parse()?;
            input.parse::<kw::step>()?;
            let step = input.parse()?;
            Ok(Item::Sweep(SweepDef {
                axis,
                from,
                to,
                step,
                fields: fields(input)?,
            }))
        } else if look.peek(kw::constraints) {
            let span = input.parse::<kw::constraints>()?.span;
            let body;
            braced!(body in input);
            let clauses = Punctuated::<Clause, Token![,]>::parse_terminated_with(&body, parse_or)?;
            Ok(Item::Constraints {
                span,
                clauses: clauses.into_iter().collect(),
            })
        } else if look.peek(kw::rank_by) {
            input.parse::<kw::rank_by>()?;
            input.parse::<Token![:]>()?;
            Ok(Item::RankBy { metric: input.parse()? })
        } else if look.peek(kw::cost_model) {
            let span = input.parse::<kw::cost_model>()?.span;
            input.parse::<Token![:]>()?;
            let mut def = CostModelDef {
                span,
                all: None,
                per_gpu: Vec::new(),
            };
            if input.peek(syn::token::Brace) {
                let body;
                braced!(body in input);
                while !body.is_empty() {
                    let gpu: Ident = body.parse()?;
                    body.parse::<Token![:]>()?;
                    def.per_gpu.push((gpu, body.parse()?));
                    if body.is_empty() {
                        break;
                    }
                    body.parse::<Token![,]>()?;
                }
            } else {
                def.all = Some(input.parse()?);
            }
            Ok(Item::CostModel(def))
        } else if look.peek(kw::calibration_db) {
            input.parse::<kw::calibration_db>()?;
            input.parse::<Token![:]>()?;
            Ok(Item::CalibrationDb { path: input.parse()? })
        } else if input.peek(Ident) {
            let ident: Ident = input.parse()?;
            let name = ident.to_string();
            let hint = match name.as_str() {
                // the JSON spec's key: in the DSL a space says how many it keeps
                "top_k" | "top" => " (a space keeps its best N: `space NAME top N { ... }`)".to_string(),
                _ => nas_core::error::hint(&name, kw::ITEMS),
            };
            Err(syn::Error::new(
                ident.span(),
                format!("unknown item `{name}`{hint}; expected one of: {}", kw::ITEMS.join(", ")),
            ))
        } else {
            Err(look.error())
        }
    }
}

impl Parse for Field {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = input.parse()?;
        input.parse::<Token![:]>()?;
        let value = input.parse()?;
        let rounding = if input.peek(kw::round_down) {
            let keyword = input.parse::<kw::round_down>()?.span;
            Some(RoundingSpec {
                mode: Rounding::Down,
                keyword,
                multiple: None,
            })
        } else if input.peek(kw::round_to) || input.peek(kw::round_up_to) || input.peek(kw::round_down_to) {
            let (mode, keyword) = if input.peek(kw::round_to) {
                (Rounding::NearestEven, input.parse::<kw::round_to>()?.span)
            } else if input.peek(kw::round_up_to) {
                (Rounding::Up, input.parse::<kw::round_up_to>()?.span)
            } else {
                (Rounding::Down, input.parse::<kw::round_down_to>()?.span)
            };
            Some(RoundingSpec {
                mode,
                keyword,
                multiple: Some(input.parse()?),
            })
        } else {
            None
        };
        Ok(Field { name, value, rounding })
    }
}

impl Parse for Value {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(syn::token::Bracket) {
            let list;
            let bracket = bracketed!(list in input);
            let items = Punctuated::<ListItem, Token![,]>::parse_terminated(&list)?;
            Ok(Value::List {
                span: bracket.span.join(),
                items: items.into_iter().collect(),
            })
        } else {
            Ok(Value::Scalar(input.parse()?))
        }
    }
}

impl Parse for ListItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let value = input.parse()?;
        let label = if input.peek(Token![as]) {
            input.parse::<Token![as]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(ListItem { value, label })
    }
}

impl Parse for Scalar {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitBool) {
            Ok(Scalar::Bool(input.parse()?))
        } else if input.peek(kw::full) {
            Ok(Scalar::Full(input.parse::<kw::full>()?.span))
        } else if input.peek(LitStr) {
            Ok(Scalar::Str(input.parse()?))
        } else if input.peek(LitInt) || input.peek(LitFloat) || input.peek(Token![-]) || input.peek(syn::token::Paren) {
            Ok(Scalar::Number(input.parse()?))
        } else if input.peek(syn::Ident) {
            // a bare word: a precision (`fp8`); the spec builder says where one is not allowed
            Ok(Scalar::Word(input.parse()?))
        } else {
            Err(input.error("expected a number, `true`, `false`, `full`, a word (`fp8`) or a string"))
        }
    }
}

impl Parse for Number {
    /// `term (('*' | '/') term)*`; division always gives a float.
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let start = input.cursor();
        let mut value = unary(input)?;
        loop {
            let divide = if input.peek(Token![*]) {
                input.parse::<Token![*]>()?;
                false
            } else if input.peek(Token![/]) {
                input.parse::<Token![/]>()?;
                true
            } else {
                break;
            };
            let rhs = unary(input)?;
            value = match (value, rhs, divide) {
                (NumberValue::Int(a), NumberValue::Int(b), false) => a
                    .checked_mul(b)
                    .map_or(NumberValue::Float(a as f64 * b as f64), NumberValue::Int),
                (a, b, false) => NumberValue::Float(a.as_f64() * b.as_f64()),
                (a, b, true) => NumberValue::Float(a.as_f64() / b.as_f64()),
            };
        }
        Ok(Number {
            value,
            tokens: tokens_between(start, input.cursor()),
        })
    }
}

fn unary(input: ParseStream) -> syn::Result<NumberValue> {
    if input.peek(Token![-]) {
        input.parse::<Token![-]>()?;
        return Ok(match unary(input)? {
            NumberValue::Int(v) => NumberValue::Int(-v),
            NumberValue::Float(v) => NumberValue::Float(-v),
        });
    }
    if input.peek(syn::token::Paren) {
        let inner;
        parenthesized!(inner in input);
        let n: Number = inner.parse()?;
        return Ok(n.value);
    }
    if input.peek(LitInt) {
        let lit: LitInt = input.parse()?;
        return Ok(NumberValue::Int(lit.base10_parse()?));
    }
    let lit: LitFloat = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), "expected a number"))?;
    Ok(NumberValue::Float(lit.base10_parse()?))
}

/// `a || b || ...`
fn parse_or(input: ParseStream) -> syn::Result<Clause> {
    let start = input.cursor();
    let mut parts = vec![parse_and(input)?];
    while input.peek(Token![||]) {
        input.parse::<Token![||]>()?;
        parts.push(parse_and(input)?);
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Clause::Any(parts, tokens_between(start, input.cursor()))
    })
}

/// `a && b && ...`
fn parse_and(input: ParseStream) -> syn::Result<Clause> {
    let start = input.cursor();
    let mut parts = vec![parse_atom(input)?];
    while input.peek(Token![&&]) {
        input.parse::<Token![&&]>()?;
        parts.push(parse_atom(input)?);
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Clause::All(parts, tokens_between(start, input.cursor()))
    })
}

/// `(clause)`, `metric OP value` or `metric in lo..hi` / `lo..=hi`.
fn parse_atom(input: ParseStream) -> syn::Result<Clause> {
    if input.peek(syn::token::Paren) {
        let inner;
        parenthesized!(inner in input);
        return parse_or(&inner);
    }
    let start = input.cursor();
    let metric: Ident = input.parse()?;
    if metric == "fits" && input.peek(syn::token::Paren) {
        let inner;
        parenthesized!(inner in input);
        let gpu: Ident = inner.parse()?;
        let named = |key: &str| -> syn::Result<Number> {
            inner.parse::<Token![,]>()?;
            let name: Ident = inner.parse()?;
            if name != key {
                return Err(syn::Error::new(name.span(), format!("expected `{key}: N` here")));
            }
            inner.parse::<Token![:]>()?;
            inner.parse()
        };
        let batch = named("batch")?;
        let context = named("context")?;
        if inner.peek(Token![,]) {
            inner.parse::<Token![,]>()?;
        }
        if !inner.is_empty() {
            return Err(inner.error("`fits` takes a GPU, `batch: N` and `context: N`"));
        }
        return Ok(Clause::Fits {
            gpu,
            batch,
            context,
            tokens: tokens_between(start, input.cursor()),
        });
    }
    if input.peek(Token![in]) {
        input.parse::<Token![in]>()?;
        let lo: Scalar = input.parse()?;
        let inclusive = if input.peek(Token![..=]) {
            input.parse::<Token![..=]>()?;
            true
        } else {
            input.parse::<Token![..]>()?;
            false
        };
        let hi: Scalar = input.parse()?;
        return Ok(Clause::Range {
            metric,
            lo,
            hi,
            inclusive,
            tokens: tokens_between(start, input.cursor()),
        });
    }
    let op = if input.peek(Token![>=]) {
        input.parse::<Token![>=]>()?;
        CmpOp::Ge
    } else if input.peek(Token![<=]) {
        input.parse::<Token![<=]>()?;
        CmpOp::Le
    } else if input.peek(Token![==]) {
        input.parse::<Token![==]>()?;
        CmpOp::Eq
    } else if input.peek(Token![!=]) {
        input.parse::<Token![!=]>()?;
        CmpOp::Ne
    } else if input.peek(Token![>]) {
        input.parse::<Token![>]>()?;
        CmpOp::Gt
    } else if input.peek(Token![<]) {
        input.parse::<Token![<]>()?;
        CmpOp::Lt
    } else {
        return Err(input.error("expected a comparison (>=, >, <=, <, ==, !=) or `in lo..=hi`"));
    };
    let value = input.parse()?;
    Ok(Clause::Compare {
        metric,
        op,
        value,
        tokens: tokens_between(start, input.cursor()),
    })
}

/// Lets validation point at a whole field: its name through its value.
pub fn field_tokens(field: &Field) -> TokenStream {
    let mut t = field.name.to_token_stream();
    match &field.value {
        Value::Scalar(s) => t.extend(s.span_tokens()),
        Value::List { items, .. } => {
            if let Some(last) = items.last() {
                t.extend(last.value.span_tokens());
            }
        }
    }
    t
}
