//! Small local files read whole, in one system call, into a buffer each
//! worker thread reuses: for a tree of many small backups the per-file
//! cost (reads, allocation, zeroing) was as large as the hashing. The
//! hashers then read the buffer in place ([`Lend`]).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};

use crate::digest::Lend;

/// Buffers a thread keeps for its next files.
const POOLED: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A file's bytes, read up to one past the listed size: a file that grew
/// since it was listed reads longer than the listing, and is caught as
/// any other read that disagrees with it.
pub struct WholeFile {
    buf: Vec<u8>,
    len: usize,
    pos: usize,
}

impl WholeFile {
    pub fn read(mut file: File, size: u64) -> io::Result<WholeFile> {
        let want = usize::try_from(size).map_err(io::Error::other)? + 1;
        let mut buf = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        if buf.len() < want {
            buf.resize(want, 0); // zeroed once per buffer, not per file
        }
        let mut len = 0;
        while len < want {
            match file.read(&mut buf[len..want]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(WholeFile { buf, len, pos: 0 })
    }
}

impl Drop for WholeFile {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOLED {
                p.push(buf);
            }
        });
    }
}

impl Read for WholeFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Lend for WholeFile {
    fn lend_rest(&mut self, f: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
        let rest = &self.buf[self.pos..self.len];
        if !rest.is_empty() {
            f(rest);
        }
        self.pos = self.len;
        Ok(rest.len() as u64)
    }
}

impl super::BackupReader for WholeFile {
    fn lender(&mut self) -> Option<&mut dyn Lend> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_is_there_and_reuses_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, vec![1u8; 5000]).unwrap();
        std::fs::write(&b, b"grown since listed").unwrap();
        let mut w = WholeFile::read(File::open(&a).unwrap(), 5000).unwrap();
        let mut head = [0u8; 10];
        w.read_exact(&mut head).unwrap();
        let mut rest = Vec::new();
        assert_eq!(
            w.lend_rest(&mut |s| rest.extend_from_slice(s)).unwrap(),
            4990
        );
        assert_eq!(rest, vec![1u8; 4990]);
        drop(w);
        // Listed at 5 bytes, now 18: one byte past the listing is read, so
        // the length disagrees with the listing.
        let mut w = WholeFile::read(File::open(&b).unwrap(), 5).unwrap();
        let mut all = Vec::new();
        w.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"grown ");
        assert_eq!(w.len, 6);
    }
}
