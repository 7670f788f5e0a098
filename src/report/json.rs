//! The machine report: stable field names, `schema_version` first.

use serde::Serialize;

use super::{Compliance, Report, Writer};

pub struct Json;

impl Writer for Json {
    fn run_report(&self, report: &Report, _verbose: bool) -> Option<String> {
        Some(render(report))
    }
    fn export(&self, c: &Compliance) -> Option<String> {
        Some(pretty(c))
    }
}

pub fn render(report: &Report) -> String {
    pretty(report)
}

fn pretty(value: &impl Serialize) -> String {
    // Plain structs with string keys: serializing to memory cannot fail.
    let mut s = serde_json::to_string_pretty(value).expect("documents serialize");
    s.push('\n');
    s
}
