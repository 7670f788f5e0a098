//! Locations as reports, logs and errors show them: never with a password.
//! A leaf module: the restore engine and the history both use it.

use url::Url;

/// `scheme://user:secret@host/…` shows as `scheme://user:***@host/…`, and
/// a `password=` query parameter (libpq and the MySQL URL syntax both take
/// one) as `password=***`. Anything that is no URL (a path) or holds no
/// password comes back as it is. Parsing with `url` finds the real end of
/// the user info, so a password holding an `@` (or a query holding one)
/// leaks nothing.
pub fn redact(location: &str) -> String {
    let Ok(mut url) = Url::parse(location) else {
        // Not a URL at all, or one too malformed to tell where its user
        // info ends: hide everything after the scheme if it may hold one.
        return match location.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') || has_password_pair(rest) => {
                format!("{scheme}://***")
            }
            _ => redact_pairs(location),
        };
    };
    let mut changed = false;
    if url.password().is_some() {
        if url.set_password(Some("***")).is_err() {
            return format!("{}://***", url.scheme());
        }
        changed = true;
    }
    if url.query_pairs().any(|(k, _)| is_password_key(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_password_key(&k) {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        url.to_string()
    } else {
        location.to_string()
    }
}

/// Free text that may quote a location or a config line (a TOML error
/// shows the offending line): every URL in it redacted, and every
/// `password = value` pair (libpq key/value strings, config lines) masked.
pub fn redact_text(text: &str) -> String {
    static URL_IN_TEXT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s"'`<>]+"#).expect("valid pattern")
    });
    let urls = URL_IN_TEXT.replace_all(text, |c: &regex::Captures| redact(&c[0]));
    redact_pairs(&urls)
}

/// `password=secret`, `password = 'se cret'`, `pass: "x"` and the like.
fn redact_pairs(text: &str) -> String {
    static PAIR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)\b((?:password|passwd|pwd|pass|secret_access_key|aws_secret_access_key)\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,]+)"#,
        )
        .expect("valid pattern")
    });
    PAIR.replace_all(text, "${1}***").into_owned()
}

fn is_password_key(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "passwd" | "pwd" | "pass"
    )
}

fn has_password_pair(text: &str) -> bool {
    redact_pairs(text) != text
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_is_hidden() {
        assert_eq!(
            redact("postgres://app:secret@db.example:5432/audit"),
            "postgres://app:***@db.example:5432/audit"
        );
        assert_eq!(
            redact("mysql://root:pw@localhost/?socket=/tmp/my.sock"),
            "mysql://root:***@localhost/?socket=/tmp/my.sock"
        );
    }

    #[test]
    fn a_password_containing_an_at_sign_is_hidden_whole() {
        assert_eq!(
            redact("postgres://app:p@ss@db.example/audit"),
            "postgres://app:***@db.example/audit"
        );
        assert_eq!(redact("http://u:p@ss@host/x"), "http://u:***@host/x");
    }

    #[test]
    fn a_password_query_parameter_is_hidden() {
        assert_eq!(
            redact("postgres://app@db/audit?password=SeCrEt&sslmode=require"),
            "postgres://app@db/audit?password=***&sslmode=require"
        );
        assert_eq!(
            redact("mysql://root@localhost/?PASSWORD=SeCrEt"),
            "mysql://root@localhost/?PASSWORD=***"
        );
        assert!(!redact("postgres://u:a@b/db?password=x%40y").contains("x%40y"));
    }

    #[test]
    fn free_text_hides_urls_and_password_pairs() {
        let line = r#"5 | scratch_url = "postgres://u:SeCrEt@db/x?password=SeCrEt2""#;
        let out = super::redact_text(line);
        assert!(!out.contains("SeCrEt"), "{out}");
        assert!(out.contains("postgres://u:***@db/x"), "{out}");
        let conninfo = "host=db user=app password='Se Cret' dbname=x";
        assert_eq!(
            super::redact_text(conninfo),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(super::redact_text("no secrets here"), "no secrets here");
    }

    #[test]
    fn no_password_or_no_url_is_left_alone() {
        for s in [
            "postgres:///postgres?user=postgres&host=/tmp/bp&port=5433",
            "postgres://app@db.example/audit",
            "/var/lib/backproof/history.sqlite",
            "relative/history.sqlite",
            "mysql://root@localhost/?socket=/tmp/a@b/my.sock",
        ] {
            assert_eq!(redact(s), s);
        }
    }
}
