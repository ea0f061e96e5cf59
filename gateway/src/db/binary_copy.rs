//! Reading the output of `COPY (…) TO STDOUT (FORMAT binary)`, for readers
//! of millions of rows (chain validation): the tuples are read in place,
//! field by field, instead of as a decoded row object per tuple with a
//! string allocated per text column.
//!
//! The format
//! (<https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>):
//! the 11-byte signature `PGCOPY\n\377\r\n\0`, a 32-bit flags field (bits
//! 16–31 are critical: a reader refuses any it does not know, and bit 16,
//! OIDs included, is not expected here; bits 0–15 may be ignored), a 32-bit
//! header extension length and that many bytes; then per tuple a 16-bit
//! field count and, per field, a 32-bit length (−1 for NULL) and the value
//! in its type's binary send format; a field count of −1 ends the data.
//! Integers are big-endian.
//!
//! Nothing says which type a field has. Statements read this way select
//! columns of the very types their readers expect, not casts (a cast would
//! convert a column whose type had been changed, where reading it as it is
//! fails: a field whose length does not fit the type read is an error,
//! never a misread).

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::PgConnection;
use uuid::Uuid;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Output that is not binary COPY data of the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("binary COPY data: {0}")]
pub struct Malformed(&'static str);

impl From<Malformed> for sqlx::Error {
    fn from(malformed: Malformed) -> Self {
        sqlx::Error::Decode(Box::new(malformed))
    }
}

/// Everything `statement` (a `COPY … TO STDOUT (FORMAT binary)`) writes,
/// into `buffer` (emptied first: a reader of many pages reuses one buffer
/// rather than growing and faulting in a new one per page). Callers bound
/// what one statement selects.
pub async fn read_all(
    conn: &mut PgConnection,
    statement: &str,
    buffer: &mut Vec<u8>,
) -> sqlx::Result<()> {
    buffer.clear();
    let mut stream = conn.copy_out_raw(statement).await?;
    while let Some(chunk) = stream.try_next().await? {
        buffer.extend_from_slice(&chunk);
    }
    Ok(())
}

/// The tuples of binary COPY data, each of `columns` fields.
pub struct Tuples<'a> {
    rest: &'a [u8],
    columns: usize,
}

impl<'a> Tuples<'a> {
    /// Checks the header of `data`.
    pub fn new(data: &'a [u8], columns: usize) -> Result<Self, Malformed> {
        let rest = data
            .strip_prefix(SIGNATURE)
            .ok_or(Malformed("no signature"))?;
        let (flags, rest) = split_i32(rest)?;
        if flags as u32 & 0xffff_0000 != 0 {
            return Err(Malformed("unexpected critical header flags"));
        }
        let (extension, rest) = split_i32(rest)?;
        let rest = usize::try_from(extension)
            .ok()
            .and_then(|length| rest.get(length..))
            .ok_or(Malformed("bad header extension"))?;
        Ok(Self { rest, columns })
    }

    /// The next tuple; `None` at the trailer, which must end the data.
    pub fn next_tuple(&mut self) -> Result<Option<Fields<'a>>, Malformed> {
        let (count, rest) = split_i16(self.rest)?;
        if count == -1 {
            if !rest.is_empty() {
                return Err(Malformed("data after the trailer"));
            }
            self.rest = rest;
            return Ok(None);
        }
        if usize::try_from(count).ok() != Some(self.columns) {
            return Err(Malformed("unexpected field count"));
        }
        let mut fields = Fields { rest };
        for _ in 0..self.columns {
            fields.field()?;
        }
        let tuple = &rest[..rest.len() - fields.rest.len()];
        self.rest = fields.rest;
        Ok(Some(Fields { rest: tuple }))
    }
}

/// The fields of one tuple, read in order.
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The next field's value, `None` for NULL.
    fn field(&mut self) -> Result<Option<&'a [u8]>, Malformed> {
        let (length, rest) = split_i32(self.rest)?;
        if length == -1 {
            self.rest = rest;
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| Malformed("negative field length"))?;
        if rest.len() < length {
            return Err(Malformed("truncated field"));
        }
        let (value, rest) = rest.split_at(length);
        self.rest = rest;
        Ok(Some(value))
    }

    /// The next field, as `T`.
    pub fn read<T: Field<'a>>(&mut self) -> Result<T, Malformed> {
        T::read(self.field()?)
    }

    /// Checks that every field was read: a reader that took fewer than the
    /// statement selects has its columns out of step with it.
    pub fn finish(self) -> Result<(), Malformed> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Malformed("fields left unread"))
        }
    }
}

/// A value read from one field (`Option<T>`: a field that may be NULL).
pub trait Field<'a>: Sized {
    fn read(value: Option<&'a [u8]>) -> Result<Self, Malformed>;
}

/// A non-NULL value in its binary send format.
trait Value<'a>: Sized {
    fn decode(bytes: &'a [u8]) -> Result<Self, Malformed>;
}

impl<'a, T: Value<'a>> Field<'a> for T {
    fn read(value: Option<&'a [u8]>) -> Result<Self, Malformed> {
        T::decode(value.ok_or(Malformed("unexpected NULL"))?)
    }
}

impl<'a, T: Value<'a>> Field<'a> for Option<T> {
    fn read(value: Option<&'a [u8]>) -> Result<Self, Malformed> {
        value.map(T::decode).transpose()
    }
}

fn exactly<const N: usize>(bytes: &[u8]) -> Result<[u8; N], Malformed> {
    bytes
        .try_into()
        .map_err(|_| Malformed("field length does not fit its type"))
}

impl Value<'_> for i64 {
    fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        Ok(i64::from_be_bytes(exactly(bytes)?))
    }
}

impl Value<'_> for i32 {
    fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        Ok(i32::from_be_bytes(exactly(bytes)?))
    }
}

impl Value<'_> for Uuid {
    fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        Ok(Uuid::from_bytes(exactly(bytes)?))
    }
}

impl<'a> Value<'a> for &'a str {
    fn decode(bytes: &'a [u8]) -> Result<Self, Malformed> {
        std::str::from_utf8(bytes).map_err(|_| Malformed("text that is not UTF-8"))
    }
}

/// `timestamptz`: microseconds since 2000-01-01 UTC (`infinity` is out of range).
impl Value<'_> for DateTime<Utc> {
    fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        i64::decode(bytes)?
            .checked_add(POSTGRES_EPOCH_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .ok_or(Malformed("timestamp out of range"))
    }
}

fn split_i16(bytes: &[u8]) -> Result<(i16, &[u8]), Malformed> {
    let (head, rest) = bytes
        .split_first_chunk::<2>()
        .ok_or(Malformed("truncated"))?;
    Ok((i16::from_be_bytes(*head), rest))
}

fn split_i32(bytes: &[u8]) -> Result<(i32, &[u8]), Malformed> {
    let (head, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(Malformed("truncated"))?;
    Ok((i32::from_be_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binary COPY data of `tuples`, each a list of fields (`None`: NULL).
    fn data(tuples: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        for tuple in tuples {
            out.extend_from_slice(&(tuple.len() as i16).to_be_bytes());
            for field in *tuple {
                match field {
                    Some(value) => {
                        out.extend_from_slice(&(value.len() as i32).to_be_bytes());
                        out.extend_from_slice(value);
                    }
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// The first tuple of `data`, of `columns` fields.
    fn first(data: &[u8], columns: usize) -> Fields<'_> {
        Tuples::new(data, columns)
            .unwrap()
            .next_tuple()
            .unwrap()
            .unwrap()
    }

    #[test]
    fn tuples_are_read_field_by_field_and_end_at_the_trailer() {
        let id = Uuid::new_v4();
        let at = 0i64.to_be_bytes();
        let seven = 7i64.to_be_bytes();
        let copied = data(&[
            &[
                Some(&seven),
                Some(id.as_bytes()),
                Some(b"KES"),
                Some(&at),
                None,
            ],
            &[Some(&seven), None, Some(b""), Some(&at), Some(b"1.5")],
        ]);
        let mut tuples = Tuples::new(&copied, 5).unwrap();
        let mut first = tuples.next_tuple().unwrap().unwrap();
        assert_eq!(first.read::<i64>().unwrap(), 7);
        assert_eq!(first.read::<Uuid>().unwrap(), id);
        assert_eq!(first.read::<&str>().unwrap(), "KES");
        let midnight = first.read::<DateTime<Utc>>().unwrap();
        assert_eq!(midnight.to_rfc3339(), "2000-01-01T00:00:00+00:00");
        assert_eq!(first.read::<Option<&str>>().unwrap(), None);
        let mut second = tuples.next_tuple().unwrap().unwrap();
        assert_eq!(second.read::<i64>().unwrap(), 7);
        assert_eq!(second.read::<Option<Uuid>>().unwrap(), None);
        assert_eq!(second.read::<&str>().unwrap(), "");
        second.read::<DateTime<Utc>>().unwrap();
        assert_eq!(second.read::<Option<&str>>().unwrap(), Some("1.5"));
        assert!(tuples.next_tuple().unwrap().is_none());
    }

    #[test]
    fn a_header_extension_is_skipped_and_low_flag_bits_ignored() {
        let seven = 7i64.to_be_bytes();
        let plain = data(&[&[Some(&seven)]]);
        let mut extended = plain[..11].to_vec();
        extended.extend_from_slice(&1i32.to_be_bytes()); // a flag a reader may ignore
        extended.extend_from_slice(&3i32.to_be_bytes());
        extended.extend_from_slice(b"abc");
        extended.extend_from_slice(&plain[19..]);
        let mut tuples = Tuples::new(&extended, 1).unwrap();
        let mut fields = tuples.next_tuple().unwrap().unwrap();
        assert_eq!(fields.read::<i64>().unwrap(), 7);
        fields.finish().unwrap();
        assert!(tuples.next_tuple().unwrap().is_none());
    }

    #[test]
    fn timestamps_are_the_instants_postgresql_stored() {
        // Microseconds from 2000-01-01 UTC, either side of it and of a second.
        let cases = [
            (0, "2000-01-01T00:00:00.000000Z"),
            (1, "2000-01-01T00:00:00.000001Z"),
            (-1, "1999-12-31T23:59:59.999999Z"),
            (-946_684_800_000_000, "1970-01-01T00:00:00.000000Z"),
            (849_105_296_123_456, "2026-11-27T14:34:56.123456Z"),
        ];
        for (micros, expected) in cases {
            let stored = DateTime::<Utc>::read(Some(&i64::to_be_bytes(micros))).unwrap();
            let written = stored.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(written, expected, "{micros}");
        }
        assert!(DateTime::<Utc>::read(Some(&i64::MIN.to_be_bytes())).is_err());
    }

    #[test]
    fn anything_but_the_expected_shape_is_an_error_not_a_misread() {
        let seven = 7i64.to_be_bytes();
        let good = data(&[&[Some(&seven)]]);
        // A field count other than the reader's.
        assert!(Tuples::new(&good, 2).unwrap().next_tuple().is_err());
        // Cut short anywhere: in the header, inside a field, before the trailer.
        let every = |data: &[u8]| -> Result<Vec<i64>, Malformed> {
            let mut tuples = Tuples::new(data, 1)?;
            let mut values = Vec::new();
            while let Some(mut fields) = tuples.next_tuple()? {
                values.push(fields.read::<i64>()?);
            }
            Ok(values)
        };
        assert_eq!(every(&good).unwrap(), [7]);
        for cut in 0..good.len() {
            assert!(every(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Data after the trailer, OIDs in the header, a wrong signature.
        let mut after = good.clone();
        after.push(0);
        let mut tuples = Tuples::new(&after, 1).unwrap();
        assert!(tuples.next_tuple().unwrap().is_some());
        assert!(tuples.next_tuple().is_err());
        let mut oids = good.clone();
        oids[11..15].copy_from_slice(&(1i32 << 16).to_be_bytes());
        assert!(Tuples::new(&oids, 1).is_err());
        // A negative length other than NULL's, a negative field count.
        let mut minus_two = good.clone();
        minus_two[21..25].copy_from_slice(&(-2i32).to_be_bytes());
        assert!(every(&minus_two).is_err());
        let mut count = good.clone();
        count[19..21].copy_from_slice(&(-2i16).to_be_bytes());
        assert!(every(&count).is_err());
        // A reader that leaves a field unread.
        let two = data(&[&[Some(&seven), Some(&seven)]]);
        let mut fields = first(&two, 2);
        fields.read::<i64>().unwrap();
        assert!(fields.finish().is_err());
        assert!(Tuples::new(b"PGCOPY\n", 1).is_err());
        // A value whose length does not fit the type asked for, and NULL
        // where a value is required.
        let mut fields = first(&good, 1);
        assert!(fields.read::<i32>().is_err());
        let null = data(&[&[None]]);
        let mut fields = first(&null, 1);
        assert!(fields.read::<i64>().is_err());
        // Text that is not UTF-8, and a timestamp past chrono's range (infinity).
        let bad = data(&[&[Some(&[0xff, 0xfe]), Some(&i64::MAX.to_be_bytes())]]);
        let mut fields = first(&bad, 2);
        assert!(fields.read::<&str>().is_err());
        assert!(fields.read::<DateTime<Utc>>().is_err());
    }
}
