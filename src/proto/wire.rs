//! The value codec: a [`Value`] to bytes and back (docs/PROTOCOL.md,
//! section 3), written out by hand over byte slices.
//!
//! The bytes are bincode 2's standard encoding of a serde enum (tags and
//! lengths as varints, zigzag integers); an earlier version went through
//! bincode and serde, which cost several times more per small table than
//! these direct loops. The typed path (`bridge`) reads and writes the same
//! bytes.
//!
//! Decoding is safe on untrusted input:
//! - nesting is counted and stops at [`Limits::max_depth`], each table's
//!   step switching to a fresh stack segment when the thread's stack runs
//!   low, so any depth limit is safe on any thread;
//! - room for a table's parts is reserved only out of a budget equal to the
//!   input's length (every element takes at least one byte), so a tiny
//!   packet claiming 2^40 elements reserves nothing it cannot fill;
//! - a string's claimed length is checked against the bytes actually
//!   present before anything is allocated;
//! - with [`decode_value_within`], the decoded size (values, table entries,
//!   string bytes) is charged as it goes, and decoding stops as soon as a
//!   message would cost more memory than the caller can give it: a dense
//!   frame of one-byte elements decodes to dozens of times its size.

use super::Limits;
use crate::error::{Error, KeyError, ProtocolError};
use crate::stack::guarded;
use crate::value::{ByteString, Key, KeyRepr, Table, Value};

/// Variant tags of a value on the wire. Keys use the same tags.
mod tag {
    pub const NIL: u8 = 0;
    pub const BOOLEAN: u8 = 1;
    pub const INTEGER: u8 = 2;
    pub const NUMBER: u8 = 3;
    pub const STRING: u8 = 4;
    pub const TABLE: u8 = 5;
}

/// Largest varint that takes one byte.
const ONE_BYTE_MAX: u8 = 250;
/// First bytes of the longer varint forms: then a u16, u32 or u64, LE.
const U16_PREFIX: u8 = 0xfb;
const U32_PREFIX: u8 = 0xfc;
const U64_PREFIX: u8 = 0xfd;

/// Minimum wire size of one sequence element (a one-byte tag).
const MIN_ELEMENT_BYTES: usize = 1;
/// Minimum wire size of one hash entry (a two-byte key and a one-byte value).
const MIN_ENTRY_BYTES: usize = 3;

/// The zigzag mapping of a signed integer.
#[inline]
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Appends the encoding of `value` to `out`. Fails, leaving `out` with
/// partial bytes after its original length, when the value nests deeper than
/// `limits.max_depth` or `out` would grow past `max_len` bytes in total
/// (then with [`Error::Convert`]).
pub(crate) fn encode_value(
    value: &Value,
    limits: &Limits,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), Error> {
    let mut w = Encoder {
        out,
        max_len,
        max_depth: limits.max_depth,
    };
    w.value(value, 0)
}

/// Decodes one value that must fill `bytes` exactly.
///
/// Any input gives a value or an error: never a panic, a stack overflow, or
/// an allocation larger than a small multiple of `bytes.len()`.
pub fn decode_value(bytes: &[u8], limits: &Limits) -> Result<Value, Error> {
    decode_value_within(bytes, limits, usize::MAX)
}

/// [`decode_value`], refusing a value whose decoded form would take more
/// than `max_cost` bytes of memory (estimated from the sizes of values,
/// table entries and strings): the error comes
/// as soon as the running total passes the limit, before the rest is built.
pub fn decode_value_within(bytes: &[u8], limits: &Limits, max_cost: usize) -> Result<Value, Error> {
    decode_value_costed(bytes, limits, max_cost).map(|(value, _)| value)
}

/// [`decode_value_within`], also giving the value's estimated decoded size.
pub(crate) fn decode_value_costed(
    bytes: &[u8],
    limits: &Limits,
    max_cost: usize,
) -> Result<(Value, usize), Error> {
    let mut r = Decoder {
        input: bytes,
        pos: 0,
        max_depth: limits.max_depth,
        budget: bytes.len(),
        cost: 0,
        max_cost,
    };
    let value = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(ProtocolError::TrailingBytes {
            count: bytes.len().saturating_sub(r.pos),
        }
        .into());
    }
    Ok((value, r.cost))
}

#[cold]
fn malformed(text: String) -> Error {
    ProtocolError::Malformed(text).into()
}

#[cold]
fn ends_early() -> Error {
    malformed("value ends early".to_string())
}

#[cold]
fn too_large() -> Error {
    Error::Convert("the encoded value would pass the frame size limit".to_string())
}

// ---------------------------------------------------------------- encoding

/// Appends to a Vec, refusing to grow it past `max_len`.
struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    max_len: usize,
    max_depth: usize,
}

impl Encoder<'_> {
    /// Fails unless `n` more bytes fit under the limit.
    #[inline(always)]
    fn room(&self, n: usize) -> Result<(), Error> {
        if self.out.len().saturating_add(n) > self.max_len {
            return Err(too_large());
        }
        Ok(())
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) -> Result<(), Error> {
        self.room(1)?;
        self.out.push(b);
        Ok(())
    }

    /// The shortest varint of `n`.
    #[inline(always)]
    fn varint(&mut self, n: u64) -> Result<(), Error> {
        if n <= u64::from(ONE_BYTE_MAX) {
            self.byte(n as u8)
        } else {
            self.long_varint(n)
        }
    }

    #[inline(never)]
    fn long_varint(&mut self, n: u64) -> Result<(), Error> {
        if let Ok(n) = u16::try_from(n) {
            let [a, b] = n.to_le_bytes();
            self.bytes(&[U16_PREFIX, a, b])
        } else if let Ok(n) = u32::try_from(n) {
            let [a, b, c, d] = n.to_le_bytes();
            self.bytes(&[U32_PREFIX, a, b, c, d])
        } else {
            let mut buf = [U64_PREFIX; 9];
            buf[1..].copy_from_slice(&n.to_le_bytes());
            self.bytes(&buf)
        }
    }

    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        self.room(b.len())?;
        self.out.extend_from_slice(b);
        Ok(())
    }

    /// Tag and payload of a string.
    #[inline]
    fn string(&mut self, s: &[u8]) -> Result<(), Error> {
        if s.len() <= usize::from(ONE_BYTE_MAX) {
            // Tag, length and bytes in one check.
            self.room(2 + s.len())?;
            self.out.push(tag::STRING);
            self.out.push(s.len() as u8);
            self.out.extend_from_slice(s);
            return Ok(());
        }
        self.byte(tag::STRING)?;
        self.varint(s.len() as u64)?;
        self.bytes(s)
    }

    #[inline]
    fn integer(&mut self, i: i64) -> Result<(), Error> {
        self.byte(tag::INTEGER)?;
        self.varint(zigzag(i))
    }

    #[inline]
    fn number(&mut self, f: f64) -> Result<(), Error> {
        let mut buf = [tag::NUMBER; 9];
        buf[1..].copy_from_slice(&f.to_le_bytes());
        self.bytes(&buf)
    }

    /// One value, inside `depth` tables.
    fn value(&mut self, value: &Value, depth: usize) -> Result<(), Error> {
        match value {
            Value::Nil => self.byte(tag::NIL),
            Value::Boolean(b) => self.bytes(&[tag::BOOLEAN, u8::from(*b)]),
            Value::Integer(i) => self.integer(*i),
            Value::Number(f) => self.number(*f),
            Value::String(s) => self.string(s.as_bytes()),
            Value::Table(t) => {
                if depth >= self.max_depth {
                    return Err(Error::TooDeep {
                        limit: self.max_depth,
                    });
                }
                guarded(|| self.table(t, depth + 1))
            }
        }
    }

    /// A table's tag, its sequence part, then its hash part; its values
    /// `depth` tables deep.
    fn table(&mut self, t: &Table, depth: usize) -> Result<(), Error> {
        self.byte(tag::TABLE)?;
        let items = t.sequence();
        self.varint(items.len() as u64)?;
        for v in items {
            self.value(v, depth)?;
        }
        self.varint(t.hash_len() as u64)?;
        for (i, v) in t.array_tail() {
            self.integer(i)?;
            self.value(v, depth)?;
        }
        for (key, v) in t.hash_part() {
            match key.repr() {
                KeyRepr::String(s) => self.string(s.as_bytes())?,
                KeyRepr::Integer(i) => self.integer(*i)?,
                KeyRepr::Boolean(b) => self.bytes(&[tag::BOOLEAN, u8::from(*b)])?,
                KeyRepr::Number(bits) => self.number(f64::from_bits(*bits))?,
            }
            self.value(v, depth)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- decoding

struct Decoder<'a> {
    input: &'a [u8],
    /// Where the next byte is read.
    pos: usize,
    max_depth: usize,
    /// Bytes of input not yet promised to a reservation.
    budget: usize,
    /// Estimated bytes of memory the decoded value takes so far.
    cost: usize,
    max_cost: usize,
}

/// Memory one value takes where it is stored (a sequence slot, a hash value).
const VALUE_COST: usize = std::mem::size_of::<Value>();

impl<'a> Decoder<'a> {
    /// Charges `n` bytes of decoded memory; an error once over the limit.
    #[inline(always)]
    fn spend(&mut self, n: usize) -> Result<(), Error> {
        self.cost = self.cost.saturating_add(n);
        if self.cost > self.max_cost {
            return Err(self.over_cost());
        }
        Ok(())
    }

    #[cold]
    fn over_cost(&self) -> Error {
        ProtocolError::DecodedTooLarge {
            limit: self.max_cost,
        }
        .into()
    }

    /// How many of `claimed` items of at least `min_bytes` each to reserve
    /// room for: never more than the unpromised input could hold.
    #[inline]
    fn reserve(&mut self, claimed: u64, min_bytes: usize) -> usize {
        let n = usize::try_from(claimed)
            .unwrap_or(usize::MAX)
            .min(self.budget / min_bytes);
        self.budget -= n * min_bytes;
        n
    }

    /// The next `n` bytes.
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let input: &'a [u8] = self.input;
        let bytes = input
            .get(self.pos..)
            .and_then(|rest| rest.get(..n))
            .ok_or_else(ends_early)?;
        self.pos += n;
        Ok(bytes)
    }

    /// The next `N` bytes, as an array.
    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.input.get(self.pos).ok_or_else(ends_early)?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned varint (a length, a count, a zigzag integer).
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Error> {
        let first = self.byte()?;
        if first <= ONE_BYTE_MAX {
            return Ok(u64::from(first));
        }
        self.long_varint(first)
    }

    /// The rest of a varint whose first byte, already read, is `first`
    /// (over 250).
    #[inline(never)]
    fn long_varint(&mut self, first: u8) -> Result<u64, Error> {
        Ok(match first {
            U16_PREFIX => u64::from(u16::from_le_bytes(self.array()?)),
            U32_PREFIX => u64::from(u32::from_le_bytes(self.array()?)),
            U64_PREFIX => u64::from_le_bytes(self.array()?),
            _ => return Err(malformed(format!("invalid varint prefix {first:#04x}"))),
        })
    }

    /// A tag: a varint read as a 32-bit field, so also in the `FB` and `FC`
    /// forms but never in the `FD` form. Not checked against the known tags.
    #[inline(always)]
    fn tag(&mut self) -> Result<u32, Error> {
        let first = self.byte()?;
        if first <= ONE_BYTE_MAX {
            return Ok(u32::from(first));
        }
        self.long_tag(first)
    }

    #[inline(never)]
    fn long_tag(&mut self, first: u8) -> Result<u32, Error> {
        Ok(match first {
            U16_PREFIX => u32::from(u16::from_le_bytes(self.array()?)),
            U32_PREFIX => u32::from_le_bytes(self.array()?),
            U64_PREFIX => return Err(malformed("a tag in the 9-byte varint form".to_string())),
            _ => return Err(malformed(format!("invalid varint prefix {first:#04x}"))),
        })
    }

    #[inline]
    fn boolean(&mut self) -> Result<bool, Error> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(malformed(format!("boolean byte {b:#04x} is not 0 or 1"))),
        }
    }

    #[inline]
    fn float(&mut self) -> Result<f64, Error> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A string's payload (after its tag), charged before it is copied: a
    /// refused string costs nothing.
    #[inline(always)]
    fn string(&mut self) -> Result<ByteString, Error> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| ends_early())?;
        let bytes = self.take(len)?;
        self.spend(ByteString::heap_size_of(len))?;
        Ok(ByteString::from(bytes))
    }

    /// One value, inside `depth` tables.
    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        let tag = self.tag()?;
        self.spend(VALUE_COST)?;
        Ok(match tag {
            0 => Value::Nil,
            1 => Value::Boolean(self.boolean()?),
            2 => Value::Integer(unzigzag(self.varint()?)),
            3 => Value::Number(self.float()?),
            4 => Value::String(self.string()?),
            5 => {
                self.spend(std::mem::size_of::<Table>())?;
                if depth >= self.max_depth {
                    return Err(Error::TooDeep {
                        limit: self.max_depth,
                    });
                }
                Value::Table(guarded(|| self.table(depth + 1))?)
            }
            other => return Err(malformed(format!("unknown value tag {other}"))),
        })
    }

    /// A table's two parts (after its tag), its values `depth` tables deep.
    fn table(&mut self, depth: usize) -> Result<Table, Error> {
        let mut table = Table::new();
        self.sequence_part(&mut table, depth)?;
        self.hash_part(&mut table, depth)?;
        Ok(table)
    }

    fn sequence_part(&mut self, table: &mut Table, depth: usize) -> Result<(), Error> {
        let n = self.varint()?;
        let room = self.reserve(n, MIN_ELEMENT_BYTES);
        table.reserve_sequence(room);
        // Each element takes a byte, so the input ends long before the index
        // could overflow.
        for index in 1..=n {
            let value = self.value(depth)?;
            // A nil leaves a hole; later elements then land in the hash part
            // under their index, as in the Lua constructor `{1, nil, 3}`.
            if !value.is_nil() {
                // Indices only grow, so the key is always new.
                let grown = table
                    .insert_new(Key::from(index as i64), value)
                    .map_err(|_| malformed("sequence index repeated".to_string()))?;
                self.spend(grown)?;
            }
        }
        Ok(())
    }

    fn hash_part(&mut self, table: &mut Table, depth: usize) -> Result<(), Error> {
        let m = self.varint()?;
        let room = self.reserve(m, MIN_ENTRY_BYTES);
        // Room in the hash part, reserved at the first key that goes there
        // for sure: integer keys mostly land in the array part.
        let mut room = Some(room);
        for _ in 0..m {
            let key = self.key()?;
            if !matches!(key.repr(), KeyRepr::Integer(_))
                && let Some(room) = room.take()
            {
                table.reserve_hash(room);
            }
            let value = self.value(depth)?;
            // A key seen before (in either part) makes the encoding
            // ambiguous: refuse it. A nil value sets nothing, as in Lua.
            let duplicate = if value.is_nil() {
                table.contains_key(key.as_ref()).then_some(key)
            } else {
                let inserted = if matches!(key.repr(), KeyRepr::Integer(_)) {
                    table.insert_new(key, value)
                } else {
                    table.insert_new_hashed(key, value)
                };
                match inserted {
                    Ok(grown) => {
                        self.spend(grown)?;
                        None
                    }
                    Err(key) => Some(key),
                }
            };
            if let Some(key) = duplicate {
                let key = crate::error::inert(key.to_string().as_bytes());
                return Err(ProtocolError::DuplicateKey { key }.into());
            }
        }
        Ok(())
    }

    /// A key: a value tag and payload, with Lua's key rules applied.
    #[inline(always)]
    fn key(&mut self) -> Result<Key, Error> {
        let bad = |e: KeyError| Error::from(ProtocolError::InvalidKey(e));
        match self.tag()? {
            4 => Ok(Key::from(self.string()?)),
            2 => Ok(Key::from(unzigzag(self.varint()?))),
            1 => Ok(Key::from(self.boolean()?)),
            3 => Key::from_f64(self.float()?).map_err(bad),
            0 => Err(bad(KeyError::Nil)),
            5 => Err(bad(KeyError::Table)),
            other => Err(malformed(format!("unknown key tag {other}"))),
        }
    }
}
