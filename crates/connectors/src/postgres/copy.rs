//! PostgreSQL's binary `COPY … TO STDOUT (FORMAT binary)` stream, parsed straight into the
//! column builders of [`super::decode`].
//!
//! The stream is a header (an 11-byte signature, a flags word and a header extension), then one
//! tuple per row (a 16-bit field count, then per field a 32-bit length, `-1` for NULL, and that
//! many bytes in the type's binary send format), then a trailer (a field count of `-1`). The
//! server sends each row in its own `CopyData` message, but the protocol does not promise it, so
//! a tuple split across messages is carried over and completed by the next one.
//!
//! Values are decoded from the message's bytes in place: nothing is allocated per row.

use super::decode::{Column, ValueError};

/// `PGCOPY\n\377\r\n\0`.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags and header-extension length.
const HEADER_LEN: usize = 11 + 4 + 4;
/// Flag bit 16: every tuple carries an OID field (only for `WITH OIDS`, which we never ask for).
const FLAG_OIDS: u32 = 1 << 16;

/// What went wrong in the stream.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// The stream is not binary COPY data as documented (a protocol or server bug).
    Malformed(String),
    /// A value that the column's decoder refused.
    Value {
        /// The column's position.
        column: usize,
        /// Why.
        error: ValueError,
    },
}

/// Parses a binary COPY stream, chunk by chunk, into one builder per column.
pub(crate) struct CopyParser {
    columns: usize,
    header_done: bool,
    finished: bool,
    /// Bytes of an incomplete header or tuple, carried to the next chunk.
    pending: Vec<u8>,
    /// Scratch: (offset, length) of each field of the tuple being parsed; `None` for NULL.
    fields: Vec<Option<(usize, usize)>>,
}

impl CopyParser {
    /// A parser for tuples of `columns` fields.
    pub(crate) fn new(columns: usize) -> CopyParser {
        CopyParser {
            columns,
            header_done: false,
            finished: false,
            pending: Vec::new(),
            fields: Vec::with_capacity(columns),
        }
    }

    /// Parse every complete tuple of `chunk` (after the bytes carried over from the previous
    /// chunk) into `out`, one value per column. Returns the number of rows appended.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut [Column]) -> Result<usize, CopyError> {
        if self.pending.is_empty() {
            let (rows, used) = self.parse(chunk, out)?;
            if used < chunk.len() {
                self.pending.extend_from_slice(&chunk[used..]);
            }
            Ok(rows)
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(chunk);
            let (rows, used) = self.parse(&buf, out)?;
            buf.drain(..used);
            self.pending = buf;
            Ok(rows)
        }
    }

    /// Check that the stream ended where it should: after the trailer, with nothing left over.
    pub(crate) fn finish(&self) -> Result<(), CopyError> {
        if !self.finished {
            return Err(CopyError::Malformed(format!(
                "the COPY stream ended without its trailer ({} bytes of an incomplete row left)",
                self.pending.len()
            )));
        }
        Ok(())
    }

    /// Parse complete tuples from `buf`; returns rows appended and bytes consumed.
    fn parse(&mut self, buf: &[u8], out: &mut [Column]) -> Result<(usize, usize), CopyError> {
        let mut pos = 0usize;
        if !self.header_done {
            if buf.len() < HEADER_LEN {
                return Ok((0, 0));
            }
            if &buf[..11] != SIGNATURE {
                return Err(CopyError::Malformed(
                    "the COPY stream does not start with the binary signature".into(),
                ));
            }
            let flags = be_u32(&buf[11..15]);
            if flags & FLAG_OIDS != 0 {
                return Err(CopyError::Malformed("the COPY stream carries OIDs".into()));
            }
            let extension = be_u32(&buf[15..19]) as usize;
            if buf.len() < HEADER_LEN + extension {
                return Ok((0, 0));
            }
            pos = HEADER_LEN + extension;
            self.header_done = true;
        }
        let mut rows = 0usize;
        loop {
            if self.finished {
                if pos < buf.len() {
                    return Err(CopyError::Malformed(format!(
                        "{} bytes after the COPY trailer",
                        buf.len() - pos
                    )));
                }
                return Ok((rows, pos));
            }
            let Some(count) = buf.get(pos..pos + 2) else {
                return Ok((rows, pos));
            };
            let count = i16::from_be_bytes([count[0], count[1]]);
            if count == -1 {
                self.finished = true;
                pos += 2;
                continue;
            }
            if count as usize != self.columns || count < 0 {
                return Err(CopyError::Malformed(format!(
                    "a row of {count} fields where {} columns were expected",
                    self.columns
                )));
            }
            // Find every field before appending any, so a tuple split across chunks is
            // appended once, whole.
            let mut at = pos + 2;
            self.fields.clear();
            for _ in 0..self.columns {
                let Some(len) = buf.get(at..at + 4) else {
                    return Ok((rows, pos));
                };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                at += 4;
                if len < 0 {
                    self.fields.push(None);
                } else {
                    let len = len as usize;
                    if buf.len() < at + len {
                        return Ok((rows, pos));
                    }
                    self.fields.push(Some((at, len)));
                    at += len;
                }
            }
            for (i, (field, column)) in self.fields.iter().zip(out.iter_mut()).enumerate() {
                let value = field.map(|(start, len)| &buf[start..start + len]);
                column
                    .append(value)
                    .map_err(|error| CopyError::Value { column: i, error })?;
            }
            rows += 1;
            pos = at;
        }
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::Int64Type;

    use super::super::decode::Kind;
    use super::*;

    /// A binary COPY stream of rows of (int8, text), as PostgreSQL writes it.
    fn stream(rows: &[(Option<i64>, Option<&str>)]) -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        for (id, name) in rows {
            b.extend_from_slice(&2i16.to_be_bytes());
            match id {
                Some(v) => {
                    b.extend_from_slice(&8i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
            match name {
                Some(s) => {
                    b.extend_from_slice(&(s.len() as i32).to_be_bytes());
                    b.extend_from_slice(s.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b
    }

    fn columns() -> Vec<Column> {
        vec![Column::new(&Kind::Int8, 4), Column::new(&Kind::Text, 4)]
    }

    const ROWS: [(Option<i64>, Option<&str>); 4] = [
        (Some(1), Some("a")),
        (None, Some("")),
        (Some(-7), None),
        (Some(i64::MAX), Some("héllo")),
    ];

    fn check(out: &mut [Column]) {
        let ids = out[0].finish().unwrap();
        let names = out[1].finish().unwrap();
        let ids = ids.as_primitive::<Int64Type>();
        let names = names.as_string::<i32>();
        assert_eq!(ids.len(), 4);
        assert_eq!(ids.value(0), 1);
        assert!(ids.is_null(1));
        assert_eq!(ids.value(2), -7);
        assert_eq!(ids.value(3), i64::MAX);
        assert_eq!(names.value(0), "a");
        assert_eq!(names.value(1), "");
        assert!(names.is_valid(1));
        assert!(names.is_null(2));
        assert_eq!(names.value(3), "héllo");
    }

    #[test]
    fn whole_stream_in_one_chunk() {
        let data = stream(&ROWS);
        let mut out = columns();
        let mut p = CopyParser::new(2);
        assert_eq!(p.feed(&data, &mut out).unwrap(), 4);
        p.finish().unwrap();
        check(&mut out);
    }

    #[test]
    fn every_split_point_gives_the_same_rows() {
        let data = stream(&ROWS);
        for size in 1..data.len() {
            let mut out = columns();
            let mut p = CopyParser::new(2);
            let mut rows = 0;
            for chunk in data.chunks(size) {
                rows += p.feed(chunk, &mut out).unwrap();
            }
            assert_eq!(rows, 4, "chunks of {size} bytes");
            p.finish().unwrap();
            check(&mut out);
        }
    }

    #[test]
    fn truncated_and_malformed_streams_are_errors() {
        let data = stream(&ROWS);
        let mut p = CopyParser::new(2);
        let mut out = columns();
        p.feed(&data[..data.len() - 5], &mut out).unwrap();
        assert!(matches!(p.finish(), Err(CopyError::Malformed(m)) if m.contains("trailer")));

        let mut p = CopyParser::new(3);
        assert!(matches!(
            p.feed(&data, &mut columns()),
            Err(CopyError::Malformed(m)) if m.contains("3 columns")
        ));

        let mut bad = data.clone();
        bad[0] = b'X';
        assert!(matches!(
            CopyParser::new(2).feed(&bad, &mut columns()),
            Err(CopyError::Malformed(_))
        ));

        let mut extra = data.clone();
        extra.push(0);
        assert!(matches!(
            CopyParser::new(2).feed(&extra, &mut columns()),
            Err(CopyError::Malformed(m)) if m.contains("after the COPY trailer")
        ));
    }

    #[test]
    fn a_bad_value_names_its_column() {
        let mut data = stream(&[(Some(1), Some("a"))]);
        // Make the text invalid UTF-8.
        let at = data.len() - 3;
        data[at] = 0xff;
        // Text is validated when the batch is finished.
        let mut out = columns();
        CopyParser::new(2).feed(&data, &mut out).unwrap();
        let e = out[1].finish().unwrap_err();
        assert!(e.reason.contains("UTF-8"), "{e:?}");
    }
}
