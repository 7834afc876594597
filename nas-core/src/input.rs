//! Reading input files with limits, so hostile input gets a clear error
//! instead of exhausting memory.
//!
//! Every file the tool reads (shape lists, search specs, calibration DBs and
//! profiles, measurements) goes through [`read_file`] (at most
//! [`MAX_INPUT_BYTES`], also for endless streams such as `/dev/zero`) and, if
//! JSON, [`parse_json`] (serde_json's nesting limit of 128, reported as such).

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// The largest input file read: 64 MiB. The largest real input (a
/// measurement file of a long calibration run) is under 1 MiB.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// Deepest JSON nesting accepted (serde_json's own recursion limit).
pub const MAX_JSON_DEPTH: usize = 128;

/// Reads a whole file of at most [`MAX_INPUT_BYTES`]; the error names the file.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::input(path.display().to_string(), "is a folder, not a file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large(&path.display().to_string()));
    }
    Ok(bytes)
}

fn too_large(place: &str) -> Error {
    Error::input(
        place,
        format!("larger than {} MiB, the limit for an input file", MAX_INPUT_BYTES >> 20),
    )
}

/// Parses JSON text, naming `place` and the line and column of a problem.
/// Nesting deeper than [`MAX_JSON_DEPTH`] is an error saying so.
pub fn parse_json(bytes: &[u8], place: &str) -> Result<Value> {
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large(place));
    }
    serde_json::from_slice(bytes).map_err(|e| json_error(&e, place))
}

/// A serde_json error as one of ours: nesting too deep is said in words.
pub fn json_error(e: &serde_json::Error, place: &str) -> Error {
    Error::input(place, format!("invalid JSON: {}", json_problem(e)))
}

/// What is wrong with JSON text, in words: serde_json's message, or the
/// nesting limit said plainly.
pub fn json_problem(e: &serde_json::Error) -> String {
    if e.to_string().starts_with("recursion limit exceeded") {
        format!(
            "nested more than {MAX_JSON_DEPTH} levels deep (line {}, column {})",
            e.line(),
            e.column()
        )
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_named() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let e = parse_json(deep.as_bytes(), "f.json").unwrap_err().to_string();
        assert_eq!(
            e,
            "f.json: invalid JSON: nested more than 128 levels deep (line 1, column 128)"
        );
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_json(ok.as_bytes(), "f.json").is_ok());
    }

    #[test]
    fn endless_streams_stop_at_the_limit() {
        let e = read_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(e, "/dev/zero: larger than 64 MiB, the limit for an input file");
    }
}
