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
    let duplicate = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::de::DeserializeSeed::deserialize(
        Unique {
            path: String::new(),
            duplicate: &duplicate,
        },
        &mut de,
    )
    .and_then(|v| de.end().map(|()| v));
    match (parsed, duplicate.into_inner()) {
        (Err(e), Some((path, key))) => Err(Error::input(
            place,
            format!(
                "{}: key `{key}` is given twice (line {}, column {})",
                if path.is_empty() { "top level" } else { path.as_str() },
                e.line(),
                e.column()
            ),
        )),
        (Ok(v), _) => Ok(v),
        (Err(e), None) => Err(json_error(&e, place)),
    }
}

/// A JSON value whose objects must not repeat a key (serde_json's `Value`
/// silently keeps the last). `path` is where it is (`family.axes[2]`); the
/// first duplicate found is recorded in `duplicate` (path, key).
struct Unique<'a> {
    path: String,
    duplicate: &'a std::cell::RefCell<Option<(String, String)>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Unique {
            path: format!("{}[{}]", self.path, out.len()),
            duplicate: self.duplicate,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let value = map.next_value_seed(Unique {
                path,
                duplicate: self.duplicate,
            })?;
            if out.contains_key(&key) {
                // Stop here: the error is reported with the path, not serde's text.
                let mut d = self.duplicate.borrow_mut();
                if d.is_none() {
                    *d = Some((self.path.clone(), key));
                }
                return Err(serde::de::Error::custom("duplicate key"));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
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
    fn duplicate_keys_are_refused_with_their_path() {
        let text = r#"{"family": {"axes": [{"axis": "hidden_dim", "axis": "head_dim"}]}}"#;
        let e = parse_json(text.as_bytes(), "s.json").unwrap_err().to_string();
        assert_eq!(
            e,
            "s.json: family.axes[0]: key `axis` is given twice (line 1, column 63)"
        );
        let e = parse_json(br#"{"top_k": 1, "top_k": 2}"#, "s.json")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "s.json: top level: key `top_k` is given twice (line 1, column 24)");
        let v = parse_json(br#"{"a": [1, 2.5, -3, null, true, "x", {"b": {}}]}"#, "s.json").unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, 2.5, -3, null, true, "x", {"b": {}}]}));
    }

    #[test]
    fn endless_streams_stop_at_the_limit() {
        let e = read_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(e, "/dev/zero: larger than 64 MiB, the limit for an input file");
    }
}
