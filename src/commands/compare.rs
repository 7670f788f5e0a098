//! `backproof compare SRC DST`: is the copy complete and current?

use std::path::PathBuf;

use super::CommandError;
use super::verify::Verified;
use crate::source::S3Options;
use crate::verify::VerifyOptions;

pub struct CompareRequest {
    /// The original.
    pub src: PathBuf,
    /// The copy.
    pub dst: PathBuf,
    pub options: VerifyOptions,
    pub s3: S3Options,
    /// Record the comparison here; `None` for `--no-history`.
    pub history: Option<PathBuf>,
    /// The keys this process compares.
    pub shard: crate::shard::Shard,
}

pub fn compare(req: &CompareRequest) -> Verified {
    let report = crate::compare::compare(&req.src, &req.dst, &req.options, &req.s3, req.shard);
    let recorded: Result<(), CommandError> = match &req.history {
        Some(h) => super::record(&report, h),
        None => Ok(()),
    };
    Verified { report, recorded }
}
