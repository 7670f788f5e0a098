//! The snapshots in another region, where copies of a source's snapshots
//! should be: listed for the region_copy promise, which matches them to
//! the originals. Same credentials and endpoints as the source.

use super::signed::{Client, Service};
use super::{CloudUrl, Kind, ec2, rds};
use crate::source::SourceError;
use crate::source::facts::CloudSnapshot;
use crate::source::s3::S3Options;

/// Every snapshot this account holds in `region` of the source's kind (EBS
/// or RDS), oldest first. Not narrowed by volume or tag: a copy carries
/// neither its original's volume id nor, unless asked, its tags.
pub fn in_region(
    location: &str,
    opts: &S3Options,
    region: &str,
) -> Result<Vec<CloudSnapshot>, SourceError> {
    let url = CloudUrl::parse(location).map_err(|e| SourceError {
        location: location.to_string(),
        reason: e.to_string(),
    })?;
    let profile = opts.profile.as_deref();
    let shown = CloudUrl {
        region: region.to_string(),
        id: None,
        tag: None,
        ..url.clone()
    }
    .location();
    let err = |e: super::signed::CallError| SourceError {
        location: shown.clone(),
        reason: e.to_string(),
    };
    match url.kind {
        Kind::Ebs => ec2::snapshots(
            &Client::new(Service::Ec2, region, profile),
            &ec2::Select::default(),
        )
        .map_err(err),
        Kind::Rds => rds::snapshots(&Client::new(Service::Rds, region, profile), None).map_err(err),
    }
}
