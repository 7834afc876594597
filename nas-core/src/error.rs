//! The one error type of nas-core: every failure names the problem and the place.

use std::path::PathBuf;

/// Everything that can go wrong in nas-core. Each variant's message is a
/// complete sentence a user can act on; the CLI prints it on one line.
/// `Debug` prints the same line, so `fn main() -> Result<(), nas::Error>`
/// reports a failure as the message, not as a dump of the enum.
#[derive(thiserror::Error)]
pub enum Error {
    /// A layer shape that no kernel could run (zero sizes, kv heads that do not divide heads...).
    #[error("{place}: {problem}")]
    Shape { place: String, problem: String },

    /// An unknown GPU, or an override that would make a profile meaningless.
    #[error("{0}")]
    Hardware(String),

    /// A search specification that is inconsistent (family, template, constraint, metric).
    #[error("{0}")]
    Spec(String),

    /// Input that is not the JSON we expect, with where it went wrong.
    #[error("{place}: {problem}")]
    Input { place: String, problem: String },

    /// A file that could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn shape(place: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Shape {
            place: place.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn input(place: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Input {
            place: place.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Result alias used throughout nas-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Other tools' names for our fields (Hugging Face `config.json`, GPT-2),
/// each with our names for it, preferred first: the one `known` has is suggested.
pub const FIELD_ALIASES: &[(&str, &[&str])] = &[
    ("num_attention_heads", &["heads", "num_heads"]),
    ("n_head", &["heads", "num_heads"]),
    ("num_key_value_heads", &["kv_heads", "num_kv_heads"]),
    ("n_kv_heads", &["kv_heads", "num_kv_heads"]),
    ("intermediate_size", &["ffn_dim"]),
    ("n_inner", &["ffn_dim"]),
    ("num_hidden_layers", &["num_layers"]),
    ("n_layer", &["num_layers"]),
    ("hidden_size", &["hidden_dim"]),
    ("n_embd", &["hidden_dim"]),
    ("d_model", &["hidden_dim"]),
    ("head_size", &["head_dim"]),
    ("attention_head_size", &["head_dim"]),
    ("sliding_window", &["window", "window_size"]),
    ("max_position_embeddings", &["context_len"]),
    ("tie_word_embeddings", &["tie_embeddings"]),
];

/// What a "did you mean" says when no known name is close.
pub const NOTHING_CLOSE: &str = "no known name is close";

/// The known names closest to `name`, for "did you mean" hints: another
/// tool's name for a field first ([`FIELD_ALIASES`]), then a name equal to
/// it but for case (`H100` is `h100`), else the names at the smallest edit
/// distance (compared in lower case) that start with the same letter: a
/// different first letter is a different thing, not a typo (`b200` is not
/// an `h200`). Ties are all returned, in `known`'s order; an empty list when
/// nothing is close.
pub fn suggestions<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    // No known name is this long: skip the quadratic distance on hostile input.
    if name.len() > 64 {
        return Vec::new();
    }
    let known: Vec<&'a str> = known.into_iter().collect();
    let lower = name.to_lowercase();
    if let Some((_, ours)) = FIELD_ALIASES.iter().find(|(theirs, _)| *theirs == lower) {
        if let Some(k) = ours.iter().find_map(|o| known.iter().find(|k| *k == o)) {
            return vec![k];
        }
    }
    if let Some(k) = known.iter().find(|k| k.to_lowercase() == lower) {
        return vec![k];
    }
    let first = lower.chars().next();
    let close: Vec<(usize, &'a str)> = known
        .iter()
        .filter(|k| k.to_lowercase().chars().next() == first)
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.chars().count().max(lower.chars().count()) / 3).max(2))
        .collect();
    let Some(best) = close.iter().map(|(d, _)| *d).min() else {
        return Vec::new();
    };
    let mut out: Vec<&'a str> = close.into_iter().filter(|(d, _)| *d == best).map(|(_, k)| k).collect();
    out.dedup();
    out
}

/// The closest known name to `name` (the first of [`suggestions`]).
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    suggestions(name, known).into_iter().next()
}

/// A " (did you mean `x`?)" suffix (" (did you mean `x` or `y`?)" for a
/// tie), or " (no known name is close)".
pub fn hint<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let shown: Vec<String> = suggestions(name, known).iter().map(|k| format!("`{k}`")).collect();
    match shown.as_slice() {
        [] => format!(" ({NOTHING_CLOSE})"),
        [one] => format!(" (did you mean {one}?)"),
        [rest @ .., last] => format!(" (did you mean {} or {last}?)", rest.join(", ")),
    }
}

/// [`hint`] for a message that lists no known names itself: when nothing
/// is close, the known names follow (" (no known name is close); known: a, b").
pub fn hint_or_list<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let known: Vec<&'a str> = known.into_iter().collect();
    match suggestions(name, known.iter().copied()).is_empty() {
        true => format!(" ({NOTHING_CLOSE}); known: {}", known.join(", ")),
        false => hint(name, known),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_the_one_line_message() {
        let e = Error::io(
            "docs/no/such/pack.json",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(format!("{e:?}"), e.to_string());
        assert!(!format!("{e:?}").contains("Io {"), "{e:?}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("h1000", ["a100", "t4", "h100"]), Some("h100"));
        assert_eq!(
            did_you_mean("hiden_dim", ["hidden_dim", "head_dim"]),
            Some("hidden_dim")
        );
        assert_eq!(did_you_mean("zzzzzzzz", ["a100", "t4", "h100"]), None);
    }

    /// Case first: `H100` is `h100` (the edit distance alone tied it with
    /// `a100`, which came first); a different first letter is no typo.
    #[test]
    fn suggestions_prefer_case_and_say_when_nothing_is_close() {
        let gpus = ["a100", "t4", "h100", "h200"];
        assert_eq!(suggestions("H100", gpus), ["h100"]);
        assert_eq!(suggestions("A100", gpus), ["a100"]);
        assert_eq!(suggestions("T4", gpus), ["t4"]);
        assert_eq!(suggestions("b200", gpus), Vec::<&str>::new());
        assert_eq!(hint("b200", gpus), " (no known name is close)");
        assert_eq!(hint("H100", gpus), " (did you mean `h100`?)");
        // a true tie names every name it ties
        assert_eq!(hint("h300", gpus), " (did you mean `h100` or `h200`?)");
        assert_eq!(
            hint("Hidden_Dim", ["head_dim", "hidden_dim"]),
            " (did you mean `hidden_dim`?)"
        );
        assert_eq!(
            hint("NUM_ATTENTION_HEADS", ["num_heads", "heads"]),
            " (did you mean `heads`?)"
        );
        assert_eq!(hint(&"x".repeat(65), gpus), " (no known name is close)");
    }
}
