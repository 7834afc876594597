//! The DSL's keywords.

syn::custom_keyword!(search);
syn::custom_keyword!(hardware);
syn::custom_keyword!(gpu);
syn::custom_keyword!(workload);
syn::custom_keyword!(known);
syn::custom_keyword!(seed);
syn::custom_keyword!(candidate);
syn::custom_keyword!(family);
syn::custom_keyword!(space);
syn::custom_keyword!(top);
syn::custom_keyword!(sweep);
syn::custom_keyword!(step);
syn::custom_keyword!(constraints);
syn::custom_keyword!(rank_by);
syn::custom_keyword!(calibration_db);
syn::custom_keyword!(cost_model);
syn::custom_keyword!(full);
syn::custom_keyword!(round_to);
syn::custom_keyword!(round_up_to);
syn::custom_keyword!(round_down_to);
syn::custom_keyword!(round_down);

/// Item keywords, for "did you mean" on an unknown item.
pub const ITEMS: [&str; 13] = [
    "hardware",
    "gpu",
    "workload",
    "known",
    "seed",
    "candidate",
    "family",
    "space",
    "sweep",
    "constraints",
    "rank_by",
    "calibration_db",
    "cost_model",
];
