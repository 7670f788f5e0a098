//! Text that came from outside (file and object names, tool output) as it is
//! shown to a person: control characters escaped, so that no name can forge
//! a line of a report or move the terminal's cursor (`\n` shows as `\n`,
//! ESC as `\u{1b}`). Machine formats escape by their own rules (JSON, XML,
//! CSV quoting) and do not use this.

use std::borrow::Cow;

pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("nightly.dump"), "nightly.dump");
        assert_eq!(printable("a\nOK: 99"), "a\\nOK: 99");
        assert_eq!(printable("\u{1b}[2Jx\r\t"), "\\u{1b}[2Jx\\r\\t");
        assert_eq!(printable("größe-ß.sql"), "größe-ß.sql");
    }
}
