//! Reaching S3: options, the shared runtime, the client built from the
//! SDK's standard chain, `s3://` URLs, and SDK errors as readable lines.

use std::net::IpAddr;
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};

/// How to reach S3: each `None` leaves the choice to the SDK's standard
/// chain (environment, profile files, SSO, instance roles).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub profile: Option<String>,
    pub region: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` and the profile's.
    pub endpoint_url: Option<String>,
    /// Path-style addressing; implied for IP and localhost endpoints.
    pub path_style: bool,
    /// Also read every noncurrent version and check it against the
    /// checksums S3 stored for it.
    pub all_versions: bool,
}

/// One runtime for every S3 source of a run: two workers are plenty for
/// network I/O, which only waits.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("backproof-s3")
            .enable_all()
            .build()
            .expect("tokio runtime starts")
    })
}

/// A location that is not a usable `s3://` URL.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} is not an s3:// URL")]
    NotS3(String),
    #[error("{0:?} names no bucket")]
    NoBucket(String),
}

/// `s3://bucket/prefix` split into bucket and key part.
pub fn parse_url(url: &str) -> Result<(String, String), UrlError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| UrlError::NotS3(url.to_string()))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(UrlError::NoBucket(url.to_string()));
    }
    Ok((bucket.to_string(), key.to_string()))
}

/// Stores reached by IP or as localhost have no per-bucket DNS names.
fn wants_path_style(endpoint: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint)
        .split('/')
        .next()
        .unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok()
}

/// An error and its causes on one line, without the SDK's debug dump.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

/// An SDK error as one readable line: the service's code and message when
/// the server answered, the transport's cause chain otherwise.
pub fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let status = s.raw().status().as_u16();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m} (HTTP {status})"),
                (Some(c), None) => format!("{c} (HTTP {status})"),
                // HEAD replies carry no error body: the status must do.
                _ => match status {
                    401 | 403 => format!(
                        "access denied (HTTP {status}): wrong credentials, or no permission to read"
                    ),
                    404 => "not found (HTTP 404)".to_string(),
                    _ => format!("HTTP {status}: {}", chain(e)),
                },
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            let why = chain(e);
            // The credential chain runs inside dispatch: say which failed.
            if why.contains("credentials") {
                format!("no usable AWS credentials: {why}")
            } else {
                format!("cannot reach the S3 endpoint: {why}")
            }
        }
        _ => chain(e),
    }
}

/// A failed S3 request: [`describe`]'s line, with the SDK's error kept as
/// the cause.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct RequestError {
    reason: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl RequestError {
    pub fn new<E>(e: SdkError<E, HttpResponse>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        RequestError {
            reason: describe(&e),
            source: Box::new(e),
        }
    }
}

impl From<RequestError> for std::io::Error {
    fn from(e: RequestError) -> Self {
        std::io::Error::other(e)
    }
}

/// The SDK's standard chain (environment, profile files, SSO, instance
/// roles) with a profile, region and endpoint where given: shared by every
/// AWS source, so S3, EBS and RDS find the same credentials.
pub(crate) fn sdk_config(
    profile: Option<&str>,
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    if let Some(e) = endpoint_url {
        loader = loader.endpoint_url(e);
    }
    runtime().block_on(loader.load())
}

/// Builds an S3 client from the standard chain plus the options.
pub fn client(opts: &S3Options) -> Client {
    let sdk = sdk_config(
        opts.profile.as_deref(),
        opts.region.as_deref(),
        opts.endpoint_url.as_deref(),
    );
    // The endpoint the SDK will use, as far as path style cares.
    let endpoint = opts
        .endpoint_url
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| sdk.endpoint_url().map(str::to_string))
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let path_style = opts.path_style || endpoint.as_deref().is_some_and(wants_path_style);
    let mut b = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(path_style)
        // GETs ask for no checksum, so the SDK validates none: backproof
        // checks the stored checksums itself, and a mismatch is a finding
        // with both values, not a read error.
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // Transient failures (timeouts, 5xx, throttling) are retried with
        // exponential backoff; what persists becomes a finding.
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .read_timeout(std::time::Duration::from_secs(60))
                .build(),
        );
    // S3-compatible stores rarely care about the region, but the signer
    // needs one.
    if sdk.region().is_none() {
        b = b.region(Region::new("us-east-1"));
    }
    Client::from_conf(b.build())
}

pub(super) fn to_utc(t: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_else(Utc::now)
}

pub(super) fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_path_style() {
        assert_eq!(
            parse_url("s3://b/x/y").unwrap(),
            ("b".to_string(), "x/y".to_string())
        );
        assert_eq!(
            parse_url("s3://b").unwrap(),
            ("b".to_string(), String::new())
        );
        assert!(parse_url("s3:///x").is_err());
        assert!(wants_path_style("http://127.0.0.1:8333"));
        assert!(wants_path_style("http://localhost:9000/"));
        assert!(wants_path_style("http://[::1]:9000"));
        assert!(!wants_path_style("https://s3.eu-west-1.amazonaws.com"));
    }
}
