//! A streaming msgpack reader that never trusts a declared length: values
//! are skipped byte by byte as they arrive (no allocation from a length
//! field, no recursion: nesting is a counter), and only short strings and
//! integers a caller asks for are kept.

use std::io::{self, Read};

use rmp::Marker;

/// Strings kept for a caller are cut to this many bytes.
pub const MAX_KEPT: usize = 4096;

/// A reader that counts the bytes it has handed out, for messages.
pub struct Counted<'a> {
    pub inner: &'a mut dyn Read,
    pub offset: u64,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Why the stream is not msgpack, worded for the report.
#[derive(Debug, PartialEq, Eq)]
pub struct Bad(pub String);

fn eof_or(e: io::Error, what: &str) -> Bad {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Bad(format!("ends inside {what}: truncated"))
    } else {
        Bad(format!("{what}: {e}"))
    }
}

fn marker(r: &mut dyn Read) -> Result<Marker, Bad> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).map_err(|e| eof_or(e, "a value"))?;
    Ok(Marker::from_u8(b[0]))
}

fn be(r: &mut dyn Read, n: usize) -> Result<u64, Bad> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b[8 - n..])
        .map_err(|e| eof_or(e, "a length or number"))?;
    Ok(u64::from_be_bytes(b))
}

fn skip_bytes(r: &mut dyn Read, n: u64) -> Result<(), Bad> {
    let got = io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| eof_or(e, "a string"))?;
    if got < n {
        return Err(Bad(format!(
            "ends {} bytes into a {n}-byte string or binary: truncated",
            got
        )));
    }
    Ok(())
}

/// One value's head: what it is and how much follows.
enum Head {
    /// An integer (unsigned, or a negative one as its two's complement).
    Int(u64),
    /// A value with no payload (nil, bool, float bytes already consumed).
    Scalar,
    /// A string or binary of this many bytes, still unread.
    Bytes { len: u64, is_str: bool },
    /// This many values follow (2 per map entry).
    Items(u64),
}

fn head(r: &mut dyn Read) -> Result<Head, Bad> {
    let m = marker(r)?;
    Ok(match m {
        Marker::FixPos(n) => Head::Int(u64::from(n)),
        Marker::FixNeg(n) => Head::Int(n as i64 as u64),
        Marker::Null | Marker::True | Marker::False => Head::Scalar,
        Marker::U8 | Marker::I8 => Head::Int(be(r, 1)?),
        Marker::U16 | Marker::I16 => Head::Int(be(r, 2)?),
        Marker::U32 | Marker::I32 => Head::Int(be(r, 4)?),
        Marker::U64 | Marker::I64 => Head::Int(be(r, 8)?),
        Marker::F32 => {
            be(r, 4)?;
            Head::Scalar
        }
        Marker::F64 => {
            be(r, 8)?;
            Head::Scalar
        }
        Marker::FixStr(n) => Head::Bytes {
            len: u64::from(n),
            is_str: true,
        },
        Marker::Str8 => Head::Bytes {
            len: be(r, 1)?,
            is_str: true,
        },
        Marker::Str16 => Head::Bytes {
            len: be(r, 2)?,
            is_str: true,
        },
        Marker::Str32 => Head::Bytes {
            len: be(r, 4)?,
            is_str: true,
        },
        Marker::Bin8 => Head::Bytes {
            len: be(r, 1)?,
            is_str: false,
        },
        Marker::Bin16 => Head::Bytes {
            len: be(r, 2)?,
            is_str: false,
        },
        Marker::Bin32 => Head::Bytes {
            len: be(r, 4)?,
            is_str: false,
        },
        Marker::FixArray(n) => Head::Items(u64::from(n)),
        Marker::Array16 => Head::Items(be(r, 2)?),
        Marker::Array32 => Head::Items(be(r, 4)?),
        Marker::FixMap(n) => Head::Items(2 * u64::from(n)),
        Marker::Map16 => Head::Items(2 * be(r, 2)?),
        Marker::Map32 => Head::Items(2 * be(r, 4)?),
        // Extension: a type byte, then the data.
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16 => {
            let len = match m {
                Marker::FixExt1 => 1,
                Marker::FixExt2 => 2,
                Marker::FixExt4 => 4,
                Marker::FixExt8 => 8,
                _ => 16,
            };
            Head::Bytes {
                len: len + 1,
                is_str: false,
            }
        }
        Marker::Ext8 => Head::Bytes {
            len: be(r, 1)? + 1,
            is_str: false,
        },
        Marker::Ext16 => Head::Bytes {
            len: be(r, 2)? + 1,
            is_str: false,
        },
        Marker::Ext32 => Head::Bytes {
            len: be(r, 4)? + 1,
            is_str: false,
        },
        Marker::Reserved => return Err(Bad("byte 0xc1 is not a msgpack value".into())),
    })
}

/// Skips `n` whole values, however nested.
pub fn skip(r: &mut dyn Read, n: u64) -> Result<(), Bad> {
    let mut left = n;
    while left > 0 {
        left -= 1;
        match head(r)? {
            Head::Int(_) | Head::Scalar => {}
            Head::Bytes { len, .. } => skip_bytes(r, len)?,
            Head::Items(k) => left = left.saturating_add(k),
        }
    }
    Ok(())
}

/// A value a caller asked to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    Int(u64),
    /// A string, cut to [`MAX_KEPT`] bytes.
    Str(String),
}

fn read_str(r: &mut dyn Read, len: u64) -> Result<String, Bad> {
    let keep = len.min(MAX_KEPT as u64);
    let mut buf = Vec::new();
    r.take(keep)
        .read_to_end(&mut buf)
        .map_err(|e| eof_or(e, "a string"))?;
    if (buf.len() as u64) < keep {
        return Err(Bad(format!(
            "ends {} bytes into a {len}-byte string: truncated",
            buf.len()
        )));
    }
    skip_bytes(r, len - keep)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Reads one value that should be a map, keeping the values of the keys
/// named in `want` that are strings or integers. `Ok(None)` when the value
/// is not a map (it is skipped whole).
pub fn map_fields(r: &mut dyn Read, want: &[&str]) -> Result<Option<Vec<(String, Kept)>>, Bad> {
    let items = match head(r)? {
        Head::Items(k) if k % 2 == 0 => k,
        Head::Items(k) => {
            skip(r, k)?;
            return Ok(None);
        }
        Head::Bytes { len, .. } => {
            skip_bytes(r, len)?;
            return Ok(None);
        }
        Head::Int(_) | Head::Scalar => return Ok(None),
    };
    let mut kept = Vec::new();
    for _ in 0..items / 2 {
        let key = match head(r)? {
            Head::Bytes { len, is_str: true } if len <= 64 => read_str(r, len)?,
            Head::Bytes { len, .. } => {
                skip_bytes(r, len)?;
                String::new()
            }
            Head::Items(k) => {
                skip(r, k)?;
                String::new()
            }
            _ => String::new(),
        };
        if !want.contains(&key.as_str()) {
            skip(r, 1)?;
            continue;
        }
        match head(r)? {
            Head::Int(v) => kept.push((key, Kept::Int(v))),
            Head::Bytes { len, is_str: true } => kept.push((key, Kept::Str(read_str(r, len)?))),
            Head::Bytes { len, .. } => skip_bytes(r, len)?,
            Head::Items(k) => skip(r, k)?,
            Head::Scalar => {}
        }
    }
    Ok(Some(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_are_skipped_and_fields_kept() {
        // {"Key": "app/a", "Value": bin(3), "Nested": [1, {"x": -1}], "N": 300}
        let mut b = vec![0x84];
        b.extend(b"\xa3Key\xa5app/a");
        b.extend(b"\xa5Value\xc4\x03abc");
        b.extend(b"\xa6Nested\x92\x01\x81\xa1x\xff");
        b.extend(b"\xa1N\xcd\x01\x2c");
        b.push(0xc0); // the next value
        let mut r = &b[..];
        let got = map_fields(&mut r, &["Key", "N"]).unwrap().unwrap();
        assert_eq!(
            got,
            vec![
                ("Key".into(), Kept::Str("app/a".into())),
                ("N".into(), Kept::Int(300))
            ]
        );
        assert_eq!(r, &[0xc0]);
    }

    #[test]
    fn declared_lengths_are_not_trusted() {
        // A str32 claiming 4 GiB, then nothing: an error, no allocation.
        let b = [0xdb, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert!(skip(&mut &b[..], 1).unwrap_err().0.contains("truncated"));
        // An array32 of 4 billion items ends at the end of the data.
        let b = [0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(skip(&mut &b[..], 1).unwrap_err().0.contains("truncated"));
        assert!(skip(&mut &[0xc1u8][..], 1).is_err());
    }
}
