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

/// Closest name in `known` to `name`, for "did you mean" hints: another
/// tool's name for a field first ([`FIELD_ALIASES`]), else by edit distance.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // No known name is this long: skip the quadratic distance on hostile input.
    if name.len() > 64 {
        return None;
    }
    let known: Vec<&'a str> = known.into_iter().collect();
    if let Some((_, ours)) = FIELD_ALIASES.iter().find(|(theirs, _)| *theirs == name) {
        if let Some(k) = ours.iter().find_map(|o| known.iter().find(|k| *k == o)) {
            return Some(k);
        }
    }
    known
        .into_iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A " (did you mean `x`?)" suffix, or nothing.
pub fn hint<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(name, known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
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
}
