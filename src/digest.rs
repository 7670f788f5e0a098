//! One-pass multi-digest engine: the hot path.
//!
//! Bytes are hashed as they stream past on their way to the structure
//! inspectors ([`HashingReader`]), so each byte is read from storage once and
//! feeds every digest that any manifest needs, from the same buffer.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Read size for backup data. 64 KiB measured best on this hardware: it keeps
/// the buffer in L2 while the hashers run over it (1.36 GB/s for SHA-256 against
/// 0.85 GB/s with 1 MiB buffers).
pub const READ_BUF: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha256,
    Blake3,
    Md5,
    /// The digests S3 records for objects (`x-amz-checksum-*`), computed in the
    /// same pass when the store promises one of them.
    Sha1,
    Crc32,
    Crc32c,
    Crc64nvme,
    /// The SHA-2 variants a PostgreSQL `backup_manifest` may name.
    Sha224,
    Sha384,
    Sha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 10] = [
        Algorithm::Sha256,
        Algorithm::Blake3,
        Algorithm::Md5,
        Algorithm::Sha1,
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64nvme,
        Algorithm::Sha224,
        Algorithm::Sha384,
        Algorithm::Sha512,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Crc32 => "crc32",
            Algorithm::Crc32c => "crc32c",
            Algorithm::Crc64nvme => "crc64nvme",
            Algorithm::Sha224 => "sha224",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the lowercase hex form.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 | Algorithm::Blake3 => 64,
            Algorithm::Md5 => 32,
            Algorithm::Sha1 => 40,
            Algorithm::Crc32 | Algorithm::Crc32c => 8,
            Algorithm::Crc64nvme => 16,
            Algorithm::Sha224 => 56,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A digest name this version does not know (as lowercased).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown digest algorithm {0:?} (known: sha256, blake3, md5, sha1, crc32, crc32c, crc64nvme, sha224, sha384, sha512)"
)]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, UnknownAlgorithm> {
        match s.to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Ok(Algorithm::Sha256),
            "blake3" | "b3" => Ok(Algorithm::Blake3),
            "md5" => Ok(Algorithm::Md5),
            "sha1" | "sha-1" => Ok(Algorithm::Sha1),
            "crc32" => Ok(Algorithm::Crc32),
            "crc32c" => Ok(Algorithm::Crc32c),
            "crc64nvme" => Ok(Algorithm::Crc64nvme),
            "sha224" | "sha-224" => Ok(Algorithm::Sha224),
            "sha384" | "sha-384" => Ok(Algorithm::Sha384),
            "sha512" | "sha-512" => Ok(Algorithm::Sha512),
            other => Err(UnknownAlgorithm(other.to_string())),
        }
    }
}

/// Finished digests of one byte stream, lowercase hex.
pub type DigestSet = BTreeMap<Algorithm, String>;

/// Buffers at least this large are split across cores by BLAKE3.
const BLAKE3_PARALLEL_MIN: usize = 256 * 1024;

/// Buffer size of the pipelined reader when BLAKE3 is wanted: big enough
/// for it to spread over cores. Otherwise the pipeline uses READ_BUF, which
/// SHA-256 and MD5 hash fastest (the buffer stays in cache).
const PIPE_BUF_BLAKE3: usize = 1024 * 1024;

/// Files at least this large hash each extra digest on its own thread.
pub const LANE_THRESHOLD: u64 = 32 * 1024 * 1024;
/// Chunks queued per lane: bounds memory at LANE_DEPTH buffers per digest.
const LANE_DEPTH: usize = 4;

enum Hasher {
    Sha256(Sha256),
    Blake3(Box<blake3::Hasher>),
    Md5(Md5),
    Sha1(sha1::Sha1),
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64nvme(crc64fast_nvme::Digest),
    Sha224(sha2::Sha224),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(a: Algorithm) -> Hasher {
        match a {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
            Algorithm::Crc64nvme => Hasher::Crc64nvme(crc64fast_nvme::Digest::new()),
            Algorithm::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            Algorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Blake3(_) => Algorithm::Blake3,
            Hasher::Md5(_) => Algorithm::Md5,
            Hasher::Sha1(_) => Algorithm::Sha1,
            Hasher::Crc32(_) => Algorithm::Crc32,
            Hasher::Crc32c(_) => Algorithm::Crc32c,
            Hasher::Crc64nvme(_) => Algorithm::Crc64nvme,
            Hasher::Sha224(_) => Algorithm::Sha224,
            Hasher::Sha384(_) => Algorithm::Sha384,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    fn update(&mut self, buf: &[u8]) {
        self.update_spread(buf, true)
    }

    /// `spread`: BLAKE3 may take every core for a large buffer (it is a
    /// tree); without it, it stays on the calling thread.
    fn update_spread(&mut self, buf: &[u8], spread: bool) {
        match self {
            Hasher::Sha256(h) => h.update(buf),
            Hasher::Blake3(h) => {
                if spread && buf.len() >= BLAKE3_PARALLEL_MIN {
                    h.update_rayon(buf);
                } else {
                    h.update(buf);
                }
            }
            Hasher::Md5(h) => h.update(buf),
            Hasher::Sha1(h) => h.update(buf),
            Hasher::Crc32(h) => h.update(buf),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, buf),
            Hasher::Crc64nvme(h) => h.write(buf),
            Hasher::Sha224(h) => h.update(buf),
            Hasher::Sha384(h) => h.update(buf),
            Hasher::Sha512(h) => h.update(buf),
        }
    }

    fn finish(self) -> (Algorithm, String) {
        match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Blake3(h) => (Algorithm::Blake3, h.finalize().to_hex().to_string()),
            Hasher::Md5(h) => (Algorithm::Md5, hex::encode(h.finalize())),
            Hasher::Sha1(h) => (Algorithm::Sha1, hex::encode(h.finalize())),
            // Big-endian, as S3 encodes its CRCs (before base64).
            Hasher::Crc32(h) => (Algorithm::Crc32, format!("{:08x}", h.finalize())),
            Hasher::Crc32c(c) => (Algorithm::Crc32c, format!("{c:08x}")),
            Hasher::Crc64nvme(h) => (Algorithm::Crc64nvme, format!("{:016x}", h.sum64())),
            Hasher::Sha224(h) => (Algorithm::Sha224, hex::encode(h.finalize())),
            Hasher::Sha384(h) => (Algorithm::Sha384, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        }
    }
}

/// Relative cost per byte of each digest on one core (x86-64 with SHA-NI
/// and AVX2, measured with `scripts/bench.sh`): MD5 is the slowest, BLAKE3
/// on one core about a fifth of it, the CRCs next to nothing.
fn cost(a: Algorithm) -> u32 {
    match a {
        Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64nvme => 1,
        Algorithm::Blake3 => 4,
        Algorithm::Sha1 => 6,
        Algorithm::Sha256 | Algorithm::Sha224 => 7,
        Algorithm::Sha384 | Algorithm::Sha512 => 12,
        Algorithm::Md5 => 19,
    }
}

/// Splits digests (by index) into at most `cores` groups, the costliest
/// first onto the least loaded group, so no core carries much more than the
/// slowest digest; `true` when BLAKE3 alone is the heaviest group and may
/// spread over every core (nothing slower would be held up by it).
fn wide_groups(algorithms: &[Algorithm], cores: usize) -> (Vec<Vec<usize>>, bool) {
    let mut order: Vec<usize> = (0..algorithms.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost(algorithms[i])));
    let mut groups: Vec<(u32, Vec<usize>)> =
        vec![(0, Vec::new()); cores.clamp(1, algorithms.len().max(1))];
    for i in order {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("one group");
        lightest.0 += cost(algorithms[i]);
        lightest.1.push(i);
    }
    let heaviest = groups
        .iter()
        .max_by_key(|(load, _)| *load)
        .expect("one group");
    let others: u32 = groups.iter().map(|(l, _)| l).sum::<u32>() - heaviest.0;
    let spread = heaviest.1.len() == 1
        && algorithms[heaviest.1[0]] == Algorithm::Blake3
        && others < heaviest.0;
    (
        groups
            .into_iter()
            .map(|(_, g)| g)
            .filter(|g| !g.is_empty())
            .collect(),
        spread,
    )
}

/// A digest computed on the reading thread, or on its own thread fed with
/// copies of the same buffers: with several digests of one large file, the
/// file is hashed at the speed of the slowest digest, not of their sum.
enum Lane {
    Inline(Hasher),
    Threaded {
        tx: std::sync::mpsc::SyncSender<std::sync::Arc<[u8]>>,
        handle: std::thread::JoinHandle<(Algorithm, String)>,
    },
}

/// A stream that can lend its unread bytes where they lie (a mapped file),
/// so the hashers read them without a copy.
pub trait Lend {
    /// Calls `f` with each unread stretch in order, to the end; the bytes
    /// lent, or the storage error that stopped it.
    fn lend_rest(&mut self, f: &mut dyn FnMut(&[u8])) -> io::Result<u64>;
}

/// The running hashers for one stream; only the requested ones exist.
pub struct Hashers {
    lanes: Vec<Lane>,
    bytes: u64,
    blake3: bool,
}

impl Hashers {
    /// All digests on the calling thread.
    pub fn new(algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        Hashers::with_lanes(algorithms, false)
    }

    /// With `threaded`, every digest but the cheapest runs on its own thread.
    pub fn with_lanes(algorithms: impl IntoIterator<Item = Algorithm>, threaded: bool) -> Self {
        let mut algorithms: Vec<Algorithm> = algorithms.into_iter().collect();
        algorithms.sort();
        algorithms.dedup();
        let blake3 = algorithms.contains(&Algorithm::Blake3);
        // Cheapest first: it stays inline, beside the reading and decoding.
        algorithms.sort_by_key(|a| match a {
            Algorithm::Crc32c | Algorithm::Crc64nvme | Algorithm::Crc32 => 0,
            Algorithm::Blake3 => 1,
            Algorithm::Sha256 | Algorithm::Sha224 => 2,
            Algorithm::Sha384 | Algorithm::Sha512 => 2,
            Algorithm::Sha1 => 3,
            Algorithm::Md5 => 4,
        });
        let lanes = algorithms
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                if !threaded || i == 0 {
                    return Lane::Inline(Hasher::new(a));
                }
                let (tx, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<[u8]>>(LANE_DEPTH);
                let handle = std::thread::spawn(move || {
                    let mut h = Hasher::new(a);
                    for chunk in rx {
                        h.update(&chunk);
                    }
                    h.finish()
                });
                Lane::Threaded { tx, handle }
            })
            .collect();
        Hashers {
            lanes,
            bytes: 0,
            blake3,
        }
    }

    pub fn update(&mut self, buf: &[u8]) {
        self.bytes += buf.len() as u64;
        let mut shared: Option<std::sync::Arc<[u8]>> = None;
        for lane in &mut self.lanes {
            match lane {
                Lane::Inline(h) => h.update(buf),
                Lane::Threaded { tx, .. } => {
                    let chunk = shared
                        .get_or_insert_with(|| std::sync::Arc::from(buf))
                        .clone();
                    // A send fails only if the lane thread died; finish() reports it.
                    let _ = tx.send(chunk);
                }
            }
        }
    }

    /// Hashes a large borrowed buffer: with several digests, the digests
    /// are split into one group per core, balanced by their cost
    /// ([`wide_groups`]), and the groups run side by side over the same
    /// bytes (no copies), so the pass takes about as long as the slowest
    /// digest alone. BLAKE3 spreads over every core when nothing slower
    /// needs them.
    pub fn update_wide(&mut self, buf: &[u8]) {
        let mut inline: Vec<Option<&mut Hasher>> = Vec::new();
        for lane in &mut self.lanes {
            match lane {
                Lane::Inline(h) => inline.push(Some(h)),
                Lane::Threaded { .. } => return self.update(buf),
            }
        }
        if inline.len() < 2 {
            return self.update(buf);
        }
        self.bytes += buf.len() as u64;
        let algorithms: Vec<Algorithm> = inline.iter().flatten().map(|h| h.algorithm()).collect();
        // Asked once: the answer reads cgroup files each time.
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let (groups, spread) = wide_groups(&algorithms, cores);
        let mut groups: Vec<Vec<&mut Hasher>> = groups
            .into_iter()
            .map(|g| g.into_iter().filter_map(|i| inline[i].take()).collect())
            .collect();
        let run = move |group: Vec<&mut Hasher>| {
            for h in group {
                h.update_spread(buf, spread);
            }
        };
        let first = groups.remove(0);
        std::thread::scope(|s| {
            for g in groups {
                s.spawn(move || run(g));
            }
            run(first);
        });
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn finish(self) -> DigestSet {
        let mut out = DigestSet::new();
        for lane in self.lanes {
            let (a, hex) = match lane {
                Lane::Inline(h) => h.finish(),
                Lane::Threaded { tx, handle } => {
                    drop(tx);
                    handle.join().expect("digest lane panicked")
                }
            };
            out.insert(a, hex);
        }
        out
    }
}

/// A reader that hashes every byte it hands out and remembers whether the
/// underlying storage failed, so that a storage error is told apart from a
/// format error found by whoever reads through it.
pub struct HashingReader<R> {
    inner: R,
    hashers: Hashers,
    storage_error: Option<String>,
    on_progress: Option<Box<dyn FnMut(u64) + Send>>,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, hashers: Hashers) -> Self {
        HashingReader {
            inner,
            hashers,
            storage_error: None,
            on_progress: None,
        }
    }

    /// Called with the number of bytes of each read, for progress bars.
    pub fn on_progress(mut self, f: impl FnMut(u64) + Send + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Reads whatever the consumer left unread, so the digests cover the
    /// whole stream. Returns the number of bytes drained.
    pub fn drain(&mut self) -> io::Result<u64> {
        let mut buf = vec![0u8; READ_BUF];
        let mut n = 0u64;
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Like [`drain`](Self::drain), for large files: a second thread issues
    /// the reads while this one hashes, so the kernel's copy out of the page
    /// cache (or the wait for the disk) overlaps the hashing instead of
    /// adding to it. Memory stays at PIPE_BUFFERS buffers.
    pub fn drain_pipelined(&mut self) -> io::Result<u64>
    where
        R: Send,
    {
        const PIPE_BUFFERS: usize = 4;
        let buf_size = if self.hashers.blake3 {
            PIPE_BUF_BLAKE3
        } else {
            READ_BUF
        };
        let HashingReader {
            inner,
            hashers,
            storage_error,
            on_progress,
        } = self;
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(PIPE_BUFFERS);
        let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(PIPE_BUFFERS);
        for _ in 0..PIPE_BUFFERS {
            empty_tx
                .send(vec![0u8; buf_size])
                .expect("channel has room");
        }
        let mut total = 0u64;
        let read_result = std::thread::scope(|s| {
            let reader = s.spawn(move || -> io::Result<()> {
                for mut buf in empty_rx {
                    // Fill the whole buffer: short reads would defeat BLAKE3's split.
                    let mut n = 0;
                    while n < buf.len() {
                        match inner.read(&mut buf[n..]) {
                            Ok(0) => break,
                            Ok(k) => n += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    if n == 0 || full_tx.send((buf, n)).is_err() {
                        return Ok(());
                    }
                }
                Ok(())
            });
            for (buf, n) in full_rx {
                hashers.update(&buf[..n]);
                if let Some(p) = on_progress.as_mut() {
                    p(n as u64);
                }
                total += n as u64;
                // The reader may already have stopped; the buffer is then dropped.
                let _ = empty_tx.send(buf);
            }
            reader.join().expect("reader thread panicked")
        });
        if let Err(e) = read_result {
            *storage_error = Some(e.to_string());
            return Err(e);
        }
        Ok(total)
    }

    /// Like [`drain`](Self::drain), for a stream that lends its bytes in
    /// place (`lender` finds its [`Lend`]): each stretch is hashed where it
    /// lies with [`Hashers::update_wide`]. `None`: the stream cannot lend.
    pub fn drain_lent(
        &mut self,
        lender: impl FnOnce(&mut R) -> Option<&mut dyn Lend>,
    ) -> Option<io::Result<u64>> {
        let HashingReader {
            inner,
            hashers,
            storage_error,
            on_progress,
        } = self;
        let lent = lender(inner)?.lend_rest(&mut |stretch| {
            hashers.update_wide(stretch);
            if let Some(p) = on_progress.as_mut() {
                p(stretch.len() as u64);
            }
        });
        if let Err(e) = &lent {
            *storage_error = Some(e.to_string());
        }
        Some(lent)
    }

    pub fn storage_error(&self) -> Option<&str> {
        self.storage_error.as_deref()
    }

    pub fn bytes_read(&self) -> u64 {
        self.hashers.bytes()
    }

    pub fn finish(self) -> DigestSet {
        self.hashers.finish()
    }

    /// The digests, and the reader back: some readers have checks of their
    /// own to hand over once the bytes are through.
    pub fn into_parts(self) -> (DigestSet, R) {
        (self.hashers.finish(), self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hashers.update(&buf[..n]);
                if let Some(p) = &mut self.on_progress {
                    p(n as u64);
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.storage_error = Some(e.to_string());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut h = Hashers::new(Algorithm::ALL);
        h.update(b"ab");
        h.update(b"c");
        let d = h.finish();
        assert_eq!(
            d[&Algorithm::Sha256],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d[&Algorithm::Md5], "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            d[&Algorithm::Blake3],
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(
            d[&Algorithm::Sha1],
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // Check values of the CRC catalogue ("123456789"), via the same hashers.
        let mut h = Hashers::new(Algorithm::ALL);
        h.update(b"123456789");
        let d = h.finish();
        assert_eq!(d[&Algorithm::Crc32], "cbf43926");
        assert_eq!(d[&Algorithm::Crc32c], "e3069283");
        assert_eq!(d[&Algorithm::Crc64nvme], "ae8b14860a799888");
    }

    #[test]
    fn threaded_lanes_agree_with_inline() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut inline = Hashers::new(Algorithm::ALL);
        let mut lanes = Hashers::with_lanes(Algorithm::ALL, true);
        for chunk in data.chunks(READ_BUF - 7) {
            inline.update(chunk);
            lanes.update(chunk);
        }
        assert_eq!(inline.finish(), lanes.finish());
    }

    #[test]
    fn wide_groups_keep_the_slowest_digest_alone() {
        use Algorithm::*;
        let (g, spread) = wide_groups(&[Sha256, Blake3, Md5], 2);
        assert_eq!(g, vec![vec![2], vec![0, 1]]);
        assert!(!spread);
        let (g, spread) = wide_groups(&[Blake3, Crc32c], 2);
        assert_eq!(g, vec![vec![0], vec![1]]);
        assert!(spread, "BLAKE3 is the slowest: it may take both cores");
        let (g, spread) = wide_groups(&[Blake3], 4);
        assert_eq!((g, spread), (vec![vec![0]], true));
        let (g, _) = wide_groups(&[Sha256, Md5], 1);
        assert_eq!(g, vec![vec![1, 0]]);
    }

    #[test]
    fn wide_updates_agree_with_inline() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 5 + i / 11) as u8).collect();
        let mut inline = Hashers::new(Algorithm::ALL);
        let mut wide = Hashers::new(Algorithm::ALL);
        for chunk in data.chunks(1_000_003) {
            inline.update(chunk);
            wide.update_wide(chunk);
        }
        assert_eq!(wide.bytes(), inline.bytes());
        assert_eq!(inline.finish(), wide.finish());
    }

    #[test]
    fn drain_covers_unread_bytes() {
        let data = vec![7u8; 200_000];
        let mut r = HashingReader::new(&data[..], Hashers::new([Algorithm::Sha256]));
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        r.drain().unwrap();
        assert_eq!(r.bytes_read(), 200_000);
        let expected = hex::encode(Sha256::digest(&data));
        assert_eq!(r.finish()[&Algorithm::Sha256], expected);
    }
}
