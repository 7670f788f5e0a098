//! Signed requests to one AWS service in one region: the credentials from
//! the SDK's standard chain (the same as S3's), the endpoint from the
//! standard overrides, SigV4 over the blocking HTTP client the project
//! already has, and retries with backoff for throttling and 5xx replies.
//!
//! Why not the SDK crates: aws-sdk-ec2 alone is about a million lines of
//! generated code, built at opt-level 2 like every dependency; the few
//! describe/list/get calls backproof makes cost a page of code here.

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::source::s3::client::{runtime, sdk_config};

/// The AWS services the cloud sources read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Ec2,
    Ebs,
    Rds,
}

impl Service {
    /// The signing name and endpoint prefix.
    pub fn name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Ebs => "ebs",
            Service::Rds => "rds",
        }
    }

    /// `AWS_ENDPOINT_URL_EC2` and the like.
    fn endpoint_env(self) -> &'static str {
        match self {
            Service::Ec2 => "AWS_ENDPOINT_URL_EC2",
            Service::Ebs => "AWS_ENDPOINT_URL_EBS",
            Service::Rds => "AWS_ENDPOINT_URL_RDS",
        }
    }
}

/// Attempts per request: the first and three retries.
const ATTEMPTS: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// Credentials this close to expiry are fetched again.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// A request that failed for good: what the service or the transport said.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{service} {what}: {reason}")]
pub struct CallError {
    pub service: &'static str,
    pub what: String,
    pub reason: String,
    /// The service's error code ("ThrottlingException"), when it answered.
    pub code: Option<String>,
    pub status: Option<u16>,
}

impl From<CallError> for std::io::Error {
    fn from(e: CallError) -> Self {
        std::io::Error::other(e)
    }
}

/// A reply with a 2xx status.
pub struct Reply {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One service in one region.
pub struct Client {
    service: Service,
    region: String,
    endpoint: String,
    agent: ureq::Agent,
    provider: Option<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} client at {}", self.service.name(), self.endpoint)
    }
}

/// The endpoint a service is reached at: its own override, the global
/// one, the profile's, or AWS's public endpoint for the region.
fn endpoint(service: Service, region: &str, profile_endpoint: Option<&str>) -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    var(service.endpoint_env())
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .or_else(|| profile_endpoint.map(str::to_string))
        .unwrap_or_else(|| format!("https://{}.{region}.amazonaws.com", service.name()))
        .trim_end_matches('/')
        .to_string()
}

/// RFC 3986 percent-encoding of a path segment or query value, as SigV4
/// wants it.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string from pairs, keys sorted (SigV4's canonical order, and
/// stable for tests).
pub fn query(pairs: &[(&str, String)]) -> String {
    let mut v: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    v.sort();
    v.join("&")
}

/// Throttling and server-side trouble: worth another try.
fn transient(status: u16, code: Option<&str>) -> bool {
    status == 429
        || status >= 500
        || matches!(
            code,
            Some(
                "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "RequestThrottled"
                    | "RequestThrottledException"
                    | "SlowDown"
                    | "ServiceUnavailable"
                    | "InternalError"
                    | "InternalServerException"
            )
        )
}

/// The error code and message of a failed reply: XML (`<Code>`,
/// `<Message>`) for the query services, JSON (`__type`, `message`) or
/// the `x-amzn-ErrorType` header for EBS.
fn error_of(headers: &[(String, String)], body: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(body);
    if let Ok(doc) = roxmltree::Document::parse(&text) {
        let find = |name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        return (find("Code"), find("Message"));
    }
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k).or_else(|| j.get(k.to_ascii_lowercase())))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let header = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amzn-errortype"))
        .map(|(_, v)| v.split(':').next().unwrap_or(v).to_string());
    let code = header
        .or_else(|| field("__type"))
        .map(|c| c.rsplit('#').next().unwrap_or(&c).to_string());
    let mut message = field("Message");
    if let Some(reason) = field("Reason") {
        message = Some(format!("{} ({reason})", message.unwrap_or_default()));
    }
    (code, message)
}

impl Client {
    /// A client for `service` in `region`, on the standard credential
    /// chain with the given profile.
    pub fn new(service: Service, region: &str, profile: Option<&str>) -> Client {
        let sdk = sdk_config(profile, Some(region), None);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_body(Some(Duration::from_secs(60)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            service,
            region: region.to_string(),
            endpoint: endpoint(service, region, sdk.endpoint_url()),
            agent,
            provider: sdk.credentials_provider(),
            cached: Mutex::new(None),
        }
    }

    fn error(&self, what: &str, reason: String) -> CallError {
        CallError {
            service: self.service.name(),
            what: what.to_string(),
            reason,
            code: None,
            status: None,
        }
    }

    /// Credentials from the chain, kept until shortly before they expire.
    fn credentials(&self, what: &str) -> Result<Credentials, CallError> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE);
            if fresh {
                return Ok(c.clone());
            }
        }
        let Some(provider) = &self.provider else {
            return Err(self.error(what, "no usable AWS credentials: none configured".into()));
        };
        let c = runtime()
            .block_on(provider.provide_credentials())
            .map_err(|e| self.error(what, format!("no usable AWS credentials: {e}")))?;
        *cached = Some(c.clone());
        Ok(c)
    }

    /// One request, signed, retried while the failure is transient.
    /// `path_and_query` is already encoded; `what` names the call in errors.
    pub fn call(
        &self,
        method: &str,
        path_and_query: &str,
        form: Option<&str>,
        what: &str,
    ) -> Result<Reply, CallError> {
        let url = format!("{}{path_and_query}", self.endpoint);
        let mut wait = FIRST_WAIT;
        let mut attempt = 1;
        loop {
            match self.once(method, &url, form, what) {
                Ok(r) => return Ok(r),
                Err(e)
                    if attempt < ATTEMPTS
                        && e.status.is_none_or(|s| transient(s, e.code.as_deref())) =>
                {
                    tracing::debug!(error = %e, attempt, "retrying");
                    std::thread::sleep(wait);
                    wait *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        form: Option<&str>,
        what: &str,
    ) -> Result<Reply, CallError> {
        let creds = self.credentials(what)?;
        let identity: Identity = creds.into();
        let host = url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(url)
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut headers = vec![("host", host.as_str())];
        if form.is_some() {
            headers.push(("content-type", content_type));
        }
        let body = form.unwrap_or("").as_bytes();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.name())
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| self.error(what, format!("cannot sign: {e}")))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| self.error(what, format!("cannot sign: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| self.error(what, format!("cannot sign: {e}")))?
            .into_parts();
        let signed: Vec<(String, String)> = instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let reply = match method {
            "POST" => {
                let mut req = self.agent.post(url).header("content-type", content_type);
                for (k, v) in &signed {
                    req = req.header(k, v);
                }
                req.send(body)
            }
            _ => {
                let mut req = self.agent.get(url);
                for (k, v) in &signed {
                    req = req.header(k, v);
                }
                req.call()
            }
        };
        let mut reply = reply.map_err(|e| CallError {
            service: self.service.name(),
            what: what.to_string(),
            reason: format!("cannot reach {}: {e}", self.endpoint),
            code: None,
            status: None,
        })?;
        let status = reply.status().as_u16();
        let headers: Vec<(String, String)> = reply
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        reply
            .body_mut()
            .as_reader()
            .take(256 << 20)
            .read_to_end(&mut body)
            .map_err(|e| CallError {
                service: self.service.name(),
                what: what.to_string(),
                reason: format!("reply cut short: {e}"),
                code: None,
                status: None,
            })?;
        if (200..300).contains(&status) {
            return Ok(Reply { headers, body });
        }
        let (code, message) = error_of(&headers, &body);
        let reason = match (&code, &message) {
            (Some(c), Some(m)) => format!("{c}: {m} (HTTP {status})"),
            (Some(c), None) => format!("{c} (HTTP {status})"),
            (None, _) if status == 401 || status == 403 => format!(
                "access denied (HTTP {status}): wrong credentials, or no permission to read"
            ),
            _ => format!("HTTP {status}"),
        };
        Err(CallError {
            service: self.service.name(),
            what: what.to_string(),
            reason,
            code,
            status: Some(status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_errors() {
        assert_eq!(encode("a b/c+=~"), "a%20b%2Fc%2B%3D~");
        assert_eq!(
            query(&[("b", "2".into()), ("a", "x y".into())]),
            "a=x%20y&b=2"
        );
        let xml = b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>slow down</Message></Error></Errors></Response>";
        assert_eq!(
            error_of(&[], xml),
            (
                Some("RequestLimitExceeded".into()),
                Some("slow down".into())
            )
        );
        let json = br#"{"message":"The block token is expired","Reason":"INVALID_BLOCK_TOKEN"}"#;
        let h = vec![(
            "x-amzn-ErrorType".to_string(),
            "ValidationException:http://internal".to_string(),
        )];
        let (code, msg) = error_of(&h, json);
        assert_eq!(code.as_deref(), Some("ValidationException"));
        assert!(msg.unwrap().contains("INVALID_BLOCK_TOKEN"));
        assert!(transient(503, None));
        assert!(transient(400, Some("Throttling")));
        assert!(!transient(400, Some("InvalidSnapshot.NotFound")));
    }
}
