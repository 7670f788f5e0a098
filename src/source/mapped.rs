//! Large local files read through a sliding window of a memory mapping, so
//! the hashers read the page cache where it lies instead of through a copy
//! (the copy was half the time of a BLAKE3 pass), and BLAKE3 spreads over
//! every core as `b3sum` does.
//!
//! A mapped file that shrinks while it is read raises SIGBUS on the pages
//! past its new end. [`guard`] catches exactly those faults: it maps zero
//! pages over the rest of the window, marks the window, and the read then
//! fails with a storage error, so a truncated backup is a finding, never a
//! crash and never a digest of zeros passed off as the file's.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

use crate::digest::Lend;

/// Bytes mapped at a time: peak RSS stays near two windows (one being
/// unmapped) whatever the file's size, since mapped pages count as the
/// process's until unmapped; a window is large enough for BLAKE3 to split
/// across cores, and few enough windows keep their set-up out of the way.
const WINDOW: u64 = 32 * 1024 * 1024;

/// A local file read front to back through windows of a mapping.
pub struct MappedFile {
    file: Arc<File>,
    size: u64,
    pos: u64,
    window: Option<Window>,
    /// The end of what the kernel was asked to read ahead.
    requested: u64,
}

struct Window {
    /// Dropped first: the range leaves the guard's table before it is
    /// unmapped, so a fault at an address the system hands out again is
    /// never taken for one of this window's.
    guard: guard::Registration,
    map: Mmap,
    /// File offset of the mapping's first byte.
    start: u64,
}

/// Whether large files may be mapped here: the guard is in place.
pub fn available() -> bool {
    guard::available()
}

impl MappedFile {
    /// `size` is the listed size: the file is read up to it, and a file
    /// found shorter fails the read.
    pub fn new(file: File, size: u64) -> Self {
        MappedFile {
            file: Arc::new(file),
            size,
            pos: 0,
            window: None,
            requested: 0,
        }
    }

    /// The window holding `self.pos`, mapped if need be; `None` at the end.
    fn window(&mut self) -> io::Result<Option<&Window>> {
        if self.pos >= self.size {
            // The listed bytes are through. A file that grew meanwhile (still
            // being written) is not the one listed: a plain read would have
            // found the extra bytes, and so must this one.
            let now = self.file.metadata()?.len();
            if now != self.size {
                return Err(io::Error::other(format!(
                    "the file is now {now} bytes but the listing said {}: it changed during verification",
                    self.size
                )));
            }
            return Ok(None);
        }
        let current = self
            .window
            .as_ref()
            .is_some_and(|w| self.pos >= w.start && self.pos < w.start + w.map.len() as u64);
        if !current {
            let start = self.pos - self.pos % WINDOW;
            let len = WINDOW.min(self.size - start) as usize;
            // The old window leaves the guard's table first; then, on a
            // thread of its own, it is unmapped and the reads of this
            // window and the next are started. Both calls can block (an
            // unmap for its TLB flush, WILLNEED until its reads are queued),
            // so neither holds up the hashing.
            let old = self.window.take().map(|Window { guard, map, .. }| {
                drop(guard);
                map
            });
            let ahead = self.requested.max(start)..(start + 2 * WINDOW).min(self.size);
            self.requested = self.requested.max(ahead.end);
            let file = Arc::clone(&self.file);
            std::thread::spawn(move || {
                drop(old);
                if let Some(len) = std::num::NonZeroU64::new(ahead.end.saturating_sub(ahead.start))
                {
                    let _ = rustix::fs::fadvise(
                        &*file,
                        ahead.start,
                        Some(len),
                        rustix::fs::Advice::WillNeed,
                    );
                }
            });
            // SAFETY: the mapping is read-only and private to this reader;
            // the one hazard, the file shrinking under it, is caught by the
            // guard registered before any byte is touched. Not populated:
            // the hashing threads fault the pages in side by side, where
            // populating would do it on this thread alone.
            let map = unsafe { MmapOptions::new().offset(start).len(len).map(&*self.file)? };
            let guard = guard::register(map.as_ptr() as usize, map.len()).ok_or_else(|| {
                io::Error::other("no SIGBUS guard for a mapped read (too many at once)")
            })?;
            self.window = Some(Window { map, start, guard });
        }
        Ok(self.window.as_ref())
    }
}

/// The error for a window whose pages vanished under the read of a file
/// listed at `size` bytes.
fn shrunk(w: &Window, size: u64) -> io::Result<()> {
    match w.guard.faulted() {
        false => Ok(()),
        true => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the file shrank while it was read (bytes between offsets {} and {} were gone; the listing said {} bytes)",
                w.start,
                w.start + w.map.len() as u64,
                size
            ),
        )),
    }
}

impl Read for MappedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (pos, size) = (self.pos, self.size);
        let Some(w) = self.window()? else {
            return Ok(0);
        };
        let from = (pos - w.start) as usize;
        let n = buf.len().min(w.map.len() - from);
        buf[..n].copy_from_slice(&w.map[from..from + n]);
        shrunk(w, size)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Lend for MappedFile {
    fn lend_rest(&mut self, f: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
        let mut lent = 0u64;
        loop {
            let (pos, size) = (self.pos, self.size);
            let Some(w) = self.window()? else {
                return Ok(lent);
            };
            let from = (pos - w.start) as usize;
            f(&w.map[from..]);
            shrunk(w, size)?;
            let n = (w.map.len() - from) as u64;
            self.pos += n;
            lent += n;
        }
    }
}

impl super::BackupReader for MappedFile {
    fn lender(&mut self) -> Option<&mut dyn Lend> {
        Some(self)
    }
}

/// The SIGBUS guard: a fixed table of the mapped ranges being read, and a
/// handler that rescues faults inside them and passes every other fault on
/// to the handler that was there before (Rust's own, for stack overflows).
mod guard {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Once, OnceLock};

    /// Windows mapped at once, process-wide: one per worker, with room to
    /// spare for any `--jobs`.
    const SLOTS: usize = 1024;

    struct Slot {
        start: AtomicUsize,
        len: AtomicUsize,
        faulted: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        faulted: AtomicBool::new(false),
    };
    static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
    static INSTALL: Once = Once::new();
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    /// The handler found at install time, set before ours is installed.
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
    static PAGE: AtomicUsize = AtomicUsize::new(4096);

    /// A registered range; dropping it frees the slot.
    pub struct Registration(usize);

    impl Registration {
        pub fn faulted(&self) -> bool {
            TABLE[self.0].faulted.load(Ordering::Acquire)
        }
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            let s = &TABLE[self.0];
            s.len.store(0, Ordering::Release);
            s.faulted.store(false, Ordering::Release);
            s.start.store(0, Ordering::Release);
        }
    }

    /// Whether the handler is in place (installing it on first use): only
    /// then may a file be mapped.
    pub fn available() -> bool {
        INSTALL.call_once(install);
        INSTALLED.load(Ordering::Acquire)
    }

    /// Registers `[start, start + len)`; `None` when every slot is taken
    /// or there is no handler.
    pub fn register(start: usize, len: usize) -> Option<Registration> {
        if !available() {
            return None;
        }
        for (i, s) in TABLE.iter().enumerate() {
            // A slot is claimed by its start going from 0 to the range's.
            if s.start
                .compare_exchange(0, start, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                s.faulted.store(false, Ordering::Release);
                s.len.store(len, Ordering::Release);
                return Some(Registration(i));
            }
        }
        None
    }

    fn install() {
        // SAFETY: plain libc calls with valid, zeroed structures.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Release);
            }
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
                return; // no guard: files are read, not mapped
            }
            let _ = PREVIOUS.set(previous);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    }

    /// Runs on the faulting thread. Only async-signal-safe work: atomics,
    /// `mmap` (a plain system call on Linux), and the previous handler.
    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
        let addr = unsafe { (*info).si_addr() } as usize;
        let page = PAGE.load(Ordering::Acquire);
        for s in &TABLE {
            let start = s.start.load(Ordering::Acquire);
            let len = s.len.load(Ordering::Acquire);
            if start == 0 || addr < start || addr >= start + len {
                continue;
            }
            let from = addr & !(page - 1);
            // SAFETY: the range lies inside a mapping this process owns and
            // only reads; zero pages replace the vanished file pages.
            let r = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    start + len - from,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                s.faulted.store(true, Ordering::Release);
                return;
            }
        }
        // Not a mapped read of ours: what would have happened without us.
        // SAFETY: a handler the system reported is called as it was
        // installed: with siginfo when SA_SIGINFO says so.
        unsafe {
            match PREVIOUS.get() {
                Some(prev) if prev.sa_flags & libc::SA_SIGINFO != 0 && prev.sa_sigaction > 1 => {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(prev.sa_sigaction);
                    f(sig, info, ctx);
                }
                Some(prev) if prev.sa_sigaction > 1 => {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                    f(sig);
                }
                _ => {
                    // The default action: restore it and return, so the
                    // fault repeats and ends the process as it would have.
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Lend;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, bytes).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_and_lends_every_byte_across_windows() {
        let data: Vec<u8> = (0..(2 * WINDOW as usize + 12345))
            .map(|i| (i * 31 + i / 7) as u8)
            .collect();
        let (_d, p) = file_of(&data);
        let mut m = MappedFile::new(File::open(&p).unwrap(), data.len() as u64);
        let mut head = vec![0u8; 1000];
        m.read_exact(&mut head).unwrap();
        let mut rest = head;
        let lent = m.lend_rest(&mut |w| rest.extend_from_slice(w)).unwrap();
        assert_eq!(lent, data.len() as u64 - 1000);
        assert_eq!(rest, data);
        assert_eq!(m.read(&mut [0u8; 8]).unwrap(), 0);
    }

    #[test]
    fn a_file_that_grew_since_it_was_listed_fails_at_its_end() {
        let (_d, p) = file_of(&vec![3u8; 5 * 1024 * 1024]);
        let mut m = MappedFile::new(File::open(&p).unwrap(), 5 * 1024 * 1024);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"more")
            .unwrap();
        let err = m.lend_rest(&mut |_| {}).expect_err("grown");
        assert!(
            err.to_string().contains("changed during verification"),
            "{err}"
        );
    }

    #[test]
    fn a_file_cut_short_under_the_mapping_fails_the_read_not_the_process() {
        let len = WINDOW as usize + 3 * 4096 * 16;
        let (_d, p) = file_of(&vec![5u8; len]);
        let mut m = MappedFile::new(File::open(&p).unwrap(), len as u64);
        let mut first = [0u8; 4096];
        m.read_exact(&mut first).unwrap();
        // The first window is mapped and populated; cut the file inside it.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(8192)
            .unwrap();
        let mut seen = 0u64;
        let err = m.lend_rest(&mut |w| seen += w.iter().map(|&b| b as u64).sum::<u64>());
        let err = err.expect_err("a shrunk file must fail the read");
        assert!(err.to_string().contains("shrank"), "{err}");
        // The bytes still there were read as they were, the rest as zeros:
        // no digest of them is ever used, the error says why.
        assert!(seen >= 4096 * 5, "{seen}");
    }
}
