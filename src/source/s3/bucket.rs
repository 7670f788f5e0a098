//! The bucket's own settings: versioning, Object Lock, the lifecycle of
//! noncurrent versions and default encryption, read with the bucket
//! configuration getters. A getter a store does not implement, or refuses,
//! leaves that one fact unread rather than failing the run.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::BucketVersioningStatus;

use super::S3Source;
use super::client::{describe, runtime};
use crate::source::facts::{
    BucketFacts, BucketSettings, NoncurrentExpiry, ObjectLock, Retention, Unread, Versioning,
};

/// Whether a getter's error means "this bucket has no such configuration".
fn not_configured<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>, code: &str) -> bool {
    match e {
        SdkError::ServiceError(s) => {
            s.err().code() == Some(code) || s.raw().status().as_u16() == 404
        }
        _ => false,
    }
}

fn unread<E>(e: &SdkError<E, HttpResponse>) -> Unread
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    Unread {
        reason: describe(e),
    }
}

impl S3Source {
    pub(super) fn bucket_facts(&self) -> BucketFacts {
        BucketFacts {
            bucket: self.bucket.clone(),
            region: self.client.config().region().map(|r| r.to_string()),
            settings: self.settings(),
        }
    }

    fn settings(&self) -> Result<BucketSettings, Unread> {
        let rt = runtime();
        let versioning = rt
            .block_on(
                self.client
                    .get_bucket_versioning()
                    .bucket(&self.bucket)
                    .send(),
            )
            .map_err(|e| unread(&e))?;
        let versioning = match versioning.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            Some(other) => Versioning::Other(other.as_str().to_string()),
            None => Versioning::NeverEnabled,
        };

        let object_lock = match rt.block_on(
            self.client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send(),
        ) {
            Ok(l) => Ok(match l.object_lock_configuration() {
                Some(c) if c.object_lock_enabled().is_some() => ObjectLock::Enabled {
                    default_retention: c.rule().and_then(|r| r.default_retention()).map(|d| {
                        Retention {
                            mode: d.mode().map(|m| m.as_str().to_string()),
                            days: d.days(),
                            years: d.years(),
                        }
                    }),
                },
                _ => ObjectLock::NotEnabled,
            }),
            Err(e) if not_configured(&e, "ObjectLockConfigurationNotFoundError") => {
                Ok(ObjectLock::NotEnabled)
            }
            Err(e) => Err(unread(&e)),
        };

        let noncurrent = match rt.block_on(
            self.client
                .get_bucket_lifecycle_configuration()
                .bucket(&self.bucket)
                .send(),
        ) {
            Ok(l) => Ok(l
                .rules()
                .iter()
                .filter(|r| r.status().as_str() == "Enabled")
                .filter_map(|r| r.noncurrent_version_expiration())
                .filter_map(|n| n.noncurrent_days())
                .min()
                .map_or(
                    NoncurrentExpiry::NoExpiringRule,
                    NoncurrentExpiry::AfterDays,
                )),
            Err(e) if not_configured(&e, "NoSuchLifecycleConfiguration") => {
                Ok(NoncurrentExpiry::NoLifecycleRules)
            }
            Err(e) => Err(unread(&e)),
        };

        let default_encryption = match rt.block_on(
            self.client
                .get_bucket_encryption()
                .bucket(&self.bucket)
                .send(),
        ) {
            Ok(e) => Ok(e
                .server_side_encryption_configuration()
                .map(|c| c.rules())
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.apply_server_side_encryption_by_default())
                .map(|d| d.sse_algorithm().as_str().to_string())
                .next()),
            Err(e) if not_configured(&e, "ServerSideEncryptionConfigurationNotFoundError") => {
                Ok(None)
            }
            Err(e) => Err(unread(&e)),
        };
        Ok(BucketSettings {
            versioning,
            object_lock,
            noncurrent,
            default_encryption,
        })
    }
}
