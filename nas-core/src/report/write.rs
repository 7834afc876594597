//! Writing files so that readers see the old file or the whole new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `PREFIX.ext` (the prefix may itself contain dots: `pack.v2` -> `pack.v2.json`).
pub fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// The files of a report written under `prefix`: `PREFIX.EXT` for each of
/// `exts`. A prefix that names a device or a pipe (`--out /dev/null`) is an
/// error: its files would be new regular files beside it (`/dev/null.json`
/// in `/dev`), not output to it.
pub fn report_paths(prefix: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    if is_special(prefix) {
        let names: Vec<String> = exts.iter().map(|e| format!(".{e}")).collect();
        return Err(Error::io(
            prefix,
            std::io::Error::other(format!(
                "is a device or a pipe, but a report is several files named from its prefix ({}): give a \
                 prefix in a folder, such as out/report",
                names.join(", ")
            )),
        ));
    }
    Ok(exts.iter().map(|e| with_suffix(prefix, e)).collect())
}

/// The path a write goes to: `path` itself, or for a symbolic link the file
/// it names (so a link to a file elsewhere is written through, not replaced
/// by a regular file).
fn resolve_link(path: &Path) -> PathBuf {
    let mut at = path.to_path_buf();
    // a bounded walk: a cycle of links is left to the write's own error
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&at) {
                Ok(target) => {
                    at = match at.parent() {
                        Some(dir) if target.is_relative() => dir.join(target),
                        _ => target,
                    }
                }
                Err(_) => break,
            },
            _ => break,
        }
    }
    at
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it
/// over `path`. On any error the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomic(&[(path, bytes)])
}

/// Writes several files (a report's `.json` and `.md`) so that either all are
/// replaced or none is: every temporary file is written and synced before the
/// first rename. A folder that does not exist, a target that is a folder, or a
/// file that cannot be written is an error naming the path. A target that
/// exists and is not a regular file (`/dev/null`, `/dev/stdout`, a pipe) is
/// written in place, never replaced by a file.
pub fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    let resolved: Vec<(PathBuf, &Path, &[u8])> = files.iter().map(|(p, b)| (resolve_link(p), *p, *b)).collect();
    let files: Vec<(&Path, &[u8])> = resolved.iter().map(|(at, _, b)| (at.as_path(), *b)).collect();
    let files = files.as_slice();
    let mut temps: Vec<(PathBuf, &Path)> = Vec::new();
    let cleanup = |temps: &[(PathBuf, &Path)]| {
        for (tmp, _) in temps {
            let _ = std::fs::remove_file(tmp);
        }
    };
    let (special, regular): (Vec<_>, Vec<_>) = files.iter().partition(|(path, _)| is_special(path));
    for (path, bytes) in regular {
        match write_temp(path, bytes) {
            Ok(tmp) => temps.push((tmp, path)),
            Err(e) => {
                cleanup(&temps);
                return Err(e);
            }
        }
    }
    for (path, bytes) in special {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.flush()));
        if let Err(e) = written {
            cleanup(&temps);
            return Err(Error::io(path.to_path_buf(), e));
        }
    }
    for (i, (tmp, path)) in temps.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, path) {
            cleanup(&temps[i..]);
            return Err(Error::io(*path, e));
        }
    }
    Ok(())
}

/// Whether `path` exists and is neither a regular file nor a folder (a
/// device, a pipe, a socket): renaming a file over it would destroy it.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Writes and syncs the temporary file for `path`; returns its name.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fail = |message: String| Error::io(path, std::io::Error::other(message));
    if !dir.is_dir() {
        return Err(fail(format!("folder {} does not exist", dir.display())));
    }
    if path.is_dir() {
        return Err(fail("is a folder, not a file".into()));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::io(path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_reports_missing_folders() {
        let dir = std::env::temp_dir().join(format!("nas-write-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("a.json");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        let e = write_atomic(&dir.join("missing/a.json"), b"x").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert_eq!(
            with_suffix(Path::new("out/pack.v2"), "md"),
            PathBuf::from("out/pack.v2.md")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn device_nodes_are_written_in_place_never_replaced() {
        let null = Path::new("/dev/null");
        write_atomic(null, b"discarded").unwrap();
        let meta = std::fs::metadata(null).unwrap();
        assert!(!meta.is_file(), "/dev/null is still a device");
        if Path::new("/dev/full").exists() {
            let e = write_atomic(Path::new("/dev/full"), b"x").unwrap_err().to_string();
            assert!(e.starts_with("/dev/full: "), "{e}");
            assert!(!std::fs::metadata("/dev/full").unwrap().is_file());
        }
    }
}
