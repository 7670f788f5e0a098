//! Gzip streams as `gzip -d` reads them: any number of members one after
//! another (`cat a.gz b.gz`, pigz), then optionally zero padding (tape and
//! block devices pad to a block; `gzip -t` accepts it). Anything else after
//! the last member is damage.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

pub struct Members<R: BufRead> {
    /// The member being read; `None` between members and at the end.
    member: Option<GzDecoder<R>>,
    /// Zero bytes seen after the last member.
    pub padding: u64,
}

impl<R: BufRead> Members<R> {
    pub fn new(r: R) -> Self {
        Members {
            member: Some(GzDecoder::new(r)),
            padding: 0,
        }
    }

    /// After a member: another one, zero padding to the end, or damage.
    fn next_member(&mut self, mut r: R) -> io::Result<bool> {
        let first = match r.fill_buf()? {
            [] => return Ok(false),
            b => b[0],
        };
        match first {
            0x1f => {
                self.member = Some(GzDecoder::new(r));
                Ok(true)
            }
            0 => loop {
                let buf = r.fill_buf()?;
                if buf.is_empty() {
                    return Ok(false);
                }
                if let Some(at) = buf.iter().position(|&b| b != 0) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "data after the zero padding that follows the last gzip member ({} zero bytes, then 0x{:02x})",
                            self.padding + at as u64,
                            buf[at]
                        ),
                    ));
                }
                let n = buf.len();
                self.padding += n as u64;
                r.consume(n);
            },
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("invalid gzip header after a complete member (first byte 0x{other:02x})"),
            )),
        }
    }
}

impl<R: BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let r = self.member.take().expect("a member").into_inner();
            if !self.next_member(r)? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Members;
    use std::io::{Read, Write};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Members::new(std::io::BufReader::with_capacity(7, bytes)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_then_zero_padding_read_as_gzip_does() {
        let mut two = gz(b"hello ");
        two.extend(gz(b"world"));
        assert_eq!(read(&two).unwrap(), b"hello world");
        two.extend([0u8; 1000]);
        assert_eq!(read(&two).unwrap(), b"hello world");
        let mut junk = two.clone();
        junk.push(7);
        assert!(read(&junk).is_err());
        let mut bad = gz(b"x");
        bad.extend(b"garbage");
        assert!(read(&bad).is_err());
    }
}
