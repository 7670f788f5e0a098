//! The output formats, typed: each names its writer, its file name and the
//! documents it can render.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::export::Compliance;
use super::{Report, Writer, csv, html, json, junit, markdown, prometheus, text};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Json,
    Csv,
    Md,
    Junit,
    Prometheus,
    Html,
}

/// The two documents a format may render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    RunReport,
    ComplianceExport,
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Document::RunReport => "run report",
            Document::ComplianceExport => "compliance export",
        })
    }
}

/// A format asked for a document it has no form of (text has no
/// compliance export, HTML no run report).
#[derive(Debug, thiserror::Error)]
#[error("the {document} has no {format} format")]
pub struct Unsupported {
    pub format: Format,
    pub document: Document,
}

/// A name that is no format of the document it was asked for.
#[derive(Debug, thiserror::Error)]
#[error("unknown format {name:?} (known: {})", names(known))]
pub struct UnknownFormat {
    pub name: String,
    pub known: &'static [Format],
}

fn names(formats: &[Format]) -> String {
    formats
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Format {
    /// Every format, in the order the run's report files were always listed.
    pub const ALL: &[Format] = &[
        Format::Json,
        Format::Text,
        Format::Csv,
        Format::Md,
        Format::Junit,
        Format::Prometheus,
        Format::Html,
    ];
    /// What a run report renders to, in the order `--format` lists them.
    pub const RUN_REPORT: &[Format] = &[
        Format::Text,
        Format::Json,
        Format::Csv,
        Format::Md,
        Format::Junit,
        Format::Prometheus,
    ];
    /// The same, in the order the config's `[report] formats` lists them.
    pub const REPORT_FILES: &[Format] = &[
        Format::Json,
        Format::Text,
        Format::Csv,
        Format::Md,
        Format::Junit,
        Format::Prometheus,
    ];
    /// What the compliance export renders to (`report --format`).
    pub const EXPORT: &[Format] = &[
        Format::Text,
        Format::Html,
        Format::Json,
        Format::Csv,
        Format::Md,
        Format::Junit,
        Format::Prometheus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Md => "md",
            Format::Junit => "junit",
            Format::Prometheus => "prometheus",
            Format::Html => "html",
        }
    }

    /// The file `run` writes the run report to, if this format has one.
    pub fn report_file(self) -> Option<&'static str> {
        Some(match self {
            Format::Json => "report.json",
            Format::Text => "report.txt",
            Format::Csv => "findings.csv",
            Format::Md => "report.md",
            Format::Junit => "junit.xml",
            Format::Prometheus => "backproof.prom",
            Format::Html => return None,
        })
    }

    pub fn writer(self) -> &'static dyn Writer {
        match self {
            Format::Text => &text::Text,
            Format::Json => &json::Json,
            Format::Csv => &csv::Csv,
            Format::Md => &markdown::Markdown,
            Format::Junit => &junit::Junit,
            Format::Prometheus => &prometheus::Prometheus,
            Format::Html => &html::Html,
        }
    }

    /// The run report in this format.
    pub fn run_report(self, report: &Report, verbose: bool) -> Result<String, Unsupported> {
        self.writer()
            .run_report(report, verbose)
            .ok_or(Unsupported {
                format: self,
                document: Document::RunReport,
            })
    }

    /// The compliance export in this format (text: the Markdown one, which
    /// reads as plain text on a terminal).
    pub fn export(self, c: &Compliance) -> Result<String, Unsupported> {
        let writer = match self {
            Format::Text => Format::Md.writer(),
            f => f.writer(),
        };
        writer.export(c).ok_or(Unsupported {
            format: self,
            document: Document::ComplianceExport,
        })
    }

    /// The format named `name` among `known`.
    pub fn parse_among(name: &str, known: &'static [Format]) -> Result<Format, UnknownFormat> {
        known
            .iter()
            .copied()
            .find(|f| f.name() == name)
            .ok_or_else(|| UnknownFormat {
                name: name.to_string(),
                known,
            })
    }

    /// A clap value parser accepting the formats in `known`, listed in that
    /// order in `--help` and in the error for anything else.
    pub fn value_parser(
        known: &'static [Format],
    ) -> impl clap::builder::TypedValueParser<Value = Format> {
        use clap::builder::TypedValueParser;
        clap::builder::PossibleValuesParser::new(known.iter().map(|f| f.name()))
            .try_map(move |name| Format::parse_among(&name, known))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Format, UnknownFormat> {
        Format::parse_among(name, Format::ALL)
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), *f);
        }
        let e = Format::parse_among("html", Format::REPORT_FILES).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown format \"html\" (known: json, text, csv, md, junit, prometheus)"
        );
    }

    #[test]
    fn every_run_report_format_has_a_file_and_others_none() {
        for f in Format::ALL {
            assert_eq!(
                f.report_file().is_some(),
                Format::RUN_REPORT.contains(f),
                "{f}"
            );
            assert_eq!(
                Format::REPORT_FILES.contains(f),
                Format::RUN_REPORT.contains(f),
                "{f}"
            );
        }
    }
}
