//! A TOML error pinned to the key it is about. The toml crate places an
//! error inside a tagged table (`[[checks]]` with `type = ...`) at the
//! table's header, since serde buffers such tables before it knows their
//! variant; a user needs the line of the unknown key or the bad value.

use std::fmt;
use std::ops::Range;

/// Shown after a bad duration, wherever one is read.
pub const DURATION_FORMS: &str =
    "a duration is written like \"26h\", \"3d\", \"90min\", \"2w\" or \"1h 30m\"";

/// A config or pack error at its line, with that line (secrets masked).
#[derive(Debug)]
pub struct Located {
    pub line: usize,
    /// The key on that line, when the error is about one.
    pub key: Option<String>,
    pub message: String,
    excerpt: String,
}

impl Located {
    pub fn new(text: &str, err: &toml::de::Error) -> Located {
        let mut message = err.message().trim_end().to_string();
        if message.contains("expected a duration") {
            message = format!("{message}: {DURATION_FORMS}");
        }
        let span = err.span().unwrap_or(0..0);
        let mut start = line_start(text, span.start);
        if is_header(line_at(text, start))
            && let Some(at) = in_table(text, &span, err.message())
        {
            start = at;
        }
        let excerpt = line_at(text, start).trim_end().to_string();
        Located {
            line: text[..start].matches('\n').count() + 1,
            key: key_of(&excerpt),
            message,
            excerpt: crate::redact::redact_text(&excerpt),
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(k) = &self.key {
            write!(f, ", key `{k}`")?;
        }
        write!(
            f,
            ": {}\n  {} | {}",
            crate::redact::redact_text(&self.message),
            self.line,
            self.excerpt
        )
    }
}

fn line_start(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

fn line_at(text: &str, start: usize) -> &str {
    text[start..].lines().next().unwrap_or("")
}

fn is_header(line: &str) -> bool {
    line.trim_start().starts_with('[')
}

/// The key a `key = value` line sets (bare or quoted).
fn key_of(line: &str) -> Option<String> {
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches(['"', '\'']);
    (!k.is_empty() && !is_header(line)).then(|| k.to_string())
}

/// Inside the table whose header starts at `span`: the start of the line
/// the message is about (`unknown field `k``: the line setting k; `invalid
/// value: string "v"`: the line holding "v").
fn in_table(text: &str, span: &Range<usize>, message: &str) -> Option<usize> {
    let unknown = between(message, "unknown field `", "`");
    let value = between(message, "string \"", "\"");
    let body = line_start(text, span.start);
    let mut at = body + line_at(text, body).len() + 1;
    while at < text.len() {
        let line = line_at(text, at);
        if is_header(line) {
            return None;
        }
        let hit = match (unknown, value) {
            (Some(k), _) => key_of(line).is_some_and(|key| key == k),
            (None, Some(v)) => line.contains(&format!("\"{v}\"")),
            _ => false,
        };
        if hit {
            return Some(at);
        }
        at += line.len() + 1;
    }
    None
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let rest = &s[s.find(open)? + open.len()..];
    Some(&rest[..rest.find(close)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locate(text: &str) -> Located {
        // Tagged like the policy's checks.
        #[derive(serde::Deserialize, Debug)]
        #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
        #[allow(dead_code)]
        enum Check {
            Freshness {
                source: String,
                #[serde(with = "humantime_serde")]
                fail_after: std::time::Duration,
            },
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            checks: Vec<Check>,
        }
        let e = toml::from_str::<Doc>(text).unwrap_err();
        Located::new(text, &e)
    }

    #[test]
    fn an_unknown_key_in_a_tagged_table_is_reported_at_its_own_line() {
        let l = locate(
            "[[checks]]\ntype = \"freshness\"\nsource = \"db\"\nmax_age = \"26h\"\nfail_after = \"26h\"\n",
        );
        assert_eq!((l.line, l.key.as_deref()), (4, Some("max_age")), "{l}");
        assert!(l.to_string().contains("4 | max_age = \"26h\""), "{l}");
    }

    #[test]
    fn a_bad_duration_names_its_key_and_the_accepted_forms() {
        let l = locate(
            "[[checks]]\ntype = \"freshness\"\nsource = \"db\"\n\nfail_after = \"26 hourz\"\n",
        );
        assert_eq!((l.line, l.key.as_deref()), (5, Some("fail_after")), "{l}");
        let s = l.to_string();
        assert!(s.contains("\"26h\", \"3d\", \"90min\""), "{s}");
    }

    #[test]
    fn an_error_outside_a_tagged_table_keeps_its_position() {
        let text = "checks = 3\n";
        let l = locate(text);
        assert_eq!(l.line, 1, "{l}");
        assert_eq!(l.key.as_deref(), Some("checks"));
    }
}
