//! Locations as reports, logs and errors show them: never with a password.
//! A leaf module: the restore engine and the history both use it.

use url::Url;

/// `scheme://user:secret@host/…` shows as `scheme://user:***@host/…`.
/// Anything that is no URL (a path) or has no password comes back as it
/// is. Parsing with `url` finds the real end of the user info, so a
/// password holding an `@` (or a query holding one) leaks nothing.
pub fn redact(location: &str) -> String {
    let Ok(mut url) = Url::parse(location) else {
        // Not a URL at all, or one too malformed to tell where its user
        // info ends: hide everything after the scheme if it may hold one.
        return match location.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => format!("{scheme}://***"),
            _ => location.to_string(),
        };
    };
    if url.password().is_none() || url.set_password(Some("***")).is_err() {
        return location.to_string();
    }
    url.to_string()
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
