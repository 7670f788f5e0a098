//! Checksum manifests: `SHA256SUMS`-style files (sha256sum, b3sum and md5sum
//! output, GNU or BSD tagged lines) and per-file sidecars (`x.dump.sha256`).

use crate::digest::Algorithm;

/// How a file name marks a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestName {
    /// A list for many files (`SHA256SUMS`, `B3SUMS`, `MD5SUMS`, `CHECKSUMS`).
    /// The algorithm is `None` when only the line can tell.
    Sums(Option<Algorithm>),
    /// A sidecar for one file: `target` is the file name it covers.
    Sidecar {
        target: String,
        algorithm: Algorithm,
    },
}

const SIDECAR_EXTS: &[(&str, Algorithm)] = &[
    (".sha256", Algorithm::Sha256),
    (".sha256sum", Algorithm::Sha256),
    (".b3", Algorithm::Blake3),
    (".blake3", Algorithm::Blake3),
    (".md5", Algorithm::Md5),
];

/// Recognises manifests by name. Content decides nothing here on purpose: a
/// backup must never be mistaken for a manifest and so escape verification.
pub fn classify_name(name: &str) -> Option<ManifestName> {
    let upper = name.to_ascii_uppercase();
    let base = upper.strip_suffix(".TXT").unwrap_or(&upper);
    match base {
        "SHA256SUMS" | "SHA256SUM" => return Some(ManifestName::Sums(Some(Algorithm::Sha256))),
        "B3SUMS" | "BLAKE3SUMS" => return Some(ManifestName::Sums(Some(Algorithm::Blake3))),
        "MD5SUMS" | "MD5SUM" => return Some(ManifestName::Sums(Some(Algorithm::Md5))),
        "CHECKSUMS" | "SUMS" => return Some(ManifestName::Sums(None)),
        _ => {}
    }
    for (ext, algorithm) in SIDECAR_EXTS {
        if let Some(target) = name.strip_suffix(ext)
            && !target.is_empty()
        {
            return Some(ManifestName::Sidecar {
                target: target.to_string(),
                algorithm: *algorithm,
            });
        }
    }
    None
}

/// One expected digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line in the manifest.
    pub line: usize,
    /// The covered file, as a key relative to the source root.
    pub target: String,
    pub algorithm: Algorithm,
    /// Lowercase hex.
    pub digest: String,
}

impl Entry {
    /// What this line promises about its target, as manifest `manifest`'s.
    pub fn expectation(&self, manifest: &str) -> crate::expectation::Expectation {
        crate::expectation::Expectation {
            algorithm: self.algorithm,
            digest: self.digest.clone(),
            manifest: manifest.to_string(),
            line: self.line,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Key of the manifest file itself.
    pub key: String,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}:{line}: {reason}")]
pub struct ManifestError {
    pub key: String,
    /// 1-based; 0 when the file as a whole is at fault.
    pub line: usize,
    pub reason: String,
}

/// Parses a manifest whose own key is `key` (relative to the source root);
/// names inside are relative to the manifest's directory.
pub fn parse(key: &str, kind: &ManifestName, text: &str) -> Result<Manifest, ManifestError> {
    let dir = key.rfind('/').map(|i| &key[..i]).unwrap_or("");
    let err = |line: usize, reason: String| ManifestError {
        key: key.to_string(),
        line,
        reason,
    };
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (algorithm_hint, digest, name) = split_line(line).ok_or_else(|| {
            err(
                line_no,
                format!(
                    "not a checksum line: {:?} (expected \"<hex digest>  <file name>\")",
                    shorten(line)
                ),
            )
        })?;
        let name = match (name, kind) {
            (Some(n), _) => n,
            (None, ManifestName::Sidecar { target, .. }) => target.clone(),
            (None, ManifestName::Sums(_)) => {
                return Err(err(line_no, "digest without a file name".into()));
            }
        };
        let algorithm = match (algorithm_hint, kind) {
            (Some(a), _) => a,
            (None, ManifestName::Sidecar { algorithm, .. }) => *algorithm,
            (None, ManifestName::Sums(Some(a))) => *a,
            (None, ManifestName::Sums(None)) => match digest.len() {
                32 => Algorithm::Md5,
                64 => Algorithm::Sha256,
                n => {
                    return Err(err(
                        line_no,
                        format!("cannot tell the algorithm of a {n}-digit digest"),
                    ));
                }
            },
        };
        if digest.len() != algorithm.hex_len() || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(
                line_no,
                format!(
                    "{:?} is not a {} digest ({} hex digits expected)",
                    shorten(&digest),
                    algorithm,
                    algorithm.hex_len()
                ),
            ));
        }
        let target = resolve(dir, &name).map_err(|e| err(line_no, e.to_string()))?;
        entries.push(Entry {
            line: line_no,
            target,
            algorithm,
            digest: digest.to_ascii_lowercase(),
        });
    }
    if entries.is_empty() {
        return Err(err(0, "no checksum lines".into()));
    }
    Ok(Manifest {
        key: key.to_string(),
        entries,
    })
}

/// Splits GNU (`HEX  NAME`, `HEX *NAME`, `\HEX  NAME` with escapes), BSD
/// (`SHA256 (NAME) = HEX`) and bare (`HEX`, sidecars) lines.
fn split_line(line: &str) -> Option<(Option<Algorithm>, String, Option<String>)> {
    // BSD tagged form.
    if let Some((tag, rest)) = line.split_once(" (")
        && let Some((name, hex)) = rest.rsplit_once(") = ")
    {
        let algorithm = match tag {
            "SHA256" => Algorithm::Sha256,
            "BLAKE3" => Algorithm::Blake3,
            "MD5" => Algorithm::Md5,
            _ => return None,
        };
        return Some((
            Some(algorithm),
            hex.trim().to_string(),
            Some(name.to_string()),
        ));
    }
    // GNU coreutils escapes names holding a backslash or newline and marks the
    // line with a leading backslash.
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let hex_end = line.find(|c: char| c.is_whitespace()).unwrap_or(line.len());
    let hex = &line[..hex_end];
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let rest = &line[hex_end..];
    if rest.trim().is_empty() {
        return Some((None, hex.to_string(), None));
    }
    // Exactly one separator space, then ' ' (text) or '*' (binary) mode.
    let name = rest.strip_prefix(' ')?;
    let name = name.strip_prefix([' ', '*']).unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    let name = if escaped {
        name.replace("\\n", "\n").replace("\\\\", "\\")
    } else {
        name.to_string()
    };
    Some((None, hex.to_string(), Some(name)))
}

/// A manifest line naming a file backproof must not look up.
#[derive(Debug, thiserror::Error)]
enum NameError {
    #[error("absolute path {0:?}: manifests must name files relative to themselves")]
    Absolute(String),
    #[error("{0:?} points outside the source")]
    Outside(String),
    #[error("{0:?} names no file")]
    NoFile(String),
}

/// Joins a manifest-relative name onto the manifest's directory, refusing
/// names that leave the source.
fn resolve(dir: &str, name: &str) -> Result<String, NameError> {
    if name.starts_with('/') {
        return Err(NameError::Absolute(name.to_string()));
    }
    let mut parts: Vec<&str> = if dir.is_empty() {
        vec![]
    } else {
        dir.split('/').collect()
    };
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(NameError::Outside(name.to_string()));
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(NameError::NoFile(name.to_string()));
    }
    Ok(parts.join("/"))
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn names() {
        assert_eq!(
            classify_name("SHA256SUMS"),
            Some(ManifestName::Sums(Some(Algorithm::Sha256)))
        );
        assert_eq!(
            classify_name("a.sql.gz.b3"),
            Some(ManifestName::Sidecar {
                target: "a.sql.gz".into(),
                algorithm: Algorithm::Blake3
            })
        );
        assert_eq!(classify_name("a.sql.gz"), None);
        assert_eq!(classify_name(".sha256"), None);
    }

    #[test]
    fn gnu_bsd_and_bare_lines() {
        let kind = ManifestName::Sums(Some(Algorithm::Sha256));
        let text = format!("{H}  a.dump\n{H} *sub/b.tar\n\n# comment\nSHA256 (c d.sql) = {H}\n");
        let m = parse("pg/SHA256SUMS", &kind, &text).unwrap();
        let targets: Vec<_> = m.entries.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(targets, ["pg/a.dump", "pg/sub/b.tar", "pg/c d.sql"]);
        assert_eq!(m.entries[2].line, 5);

        let side = ManifestName::Sidecar {
            target: "x.sql".into(),
            algorithm: Algorithm::Sha256,
        };
        let m = parse("x.sql.sha256", &side, &format!("{H}\n")).unwrap();
        assert_eq!(m.entries[0].target, "x.sql");
    }

    #[test]
    fn bad_line_names_its_number() {
        let kind = ManifestName::Sums(Some(Algorithm::Sha256));
        let e = parse(
            "SHA256SUMS",
            &kind,
            &format!("{H}  a\nthis is not a checksum line\n"),
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("SHA256SUMS", &kind, &format!("{}  a\n", &H[..60])).unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse("SHA256SUMS", &kind, &format!("{H}  ../../etc/passwd\n")).unwrap_err();
        assert!(e.reason.contains("outside"), "{e}");
    }
}
