//! The direct path in: received bytes straight into any `Deserialize`
//! type, with no [`Value`] in between.
//!
//! It reads the shapes the direct writer (and the value encoder) produce
//! as a stream: scalars, strings borrowed from the input, sequences,
//! structs, maps, enums. Anything else (a type mismatch, a tuple with
//! holes, a table read as bytes, a `Value` target) is decoded into a
//! [`Value`] at that spot and handed to the `Value` path's deserializer, so
//! both paths give the same result, errors included.
//!
//! The wire decoder's safety rules hold: tables nest at most
//! `limits.max_depth` deep (deeper input is an error, never a stack
//! overflow); claimed counts are capped by the bytes left before anything
//! is reserved; string lengths are checked against the bytes present;
//! keys follow Lua's rules (nil, NaN and tables are refused); a map key
//! that appears twice is refused; bytes left over are an error.

use std::collections::HashSet;

use serde::de::{self, Deserialize, DeserializeSeed, Visitor};

use super::de::Input;
use super::format::{get_varint, tag, unzigzag};
use super::path::{Fail, Step, at_boxed};
use crate::error::{Error, KeyError, ProtocolError};
use crate::proto::Limits;
use crate::stack::{Room, guarded};

/// Runs `f` for a table at `depth`, checking (and growing) the stack only
/// every few levels: recursion deepens only with tables, and a level takes
/// well under 1 KiB of stack against the guard's 64 KiB red zone. The check
/// is the reader's cheap [`Room`] one; only when it says low does stacker
/// check (and maybe switch stacks).
#[inline(always)]
fn guarded_at<'de, 'l, R>(
    r: &mut Reader<'de, 'l>,
    depth: usize,
    f: impl FnOnce(&mut Reader<'de, 'l>) -> R,
) -> R {
    if depth.is_multiple_of(4) && r.room.low() {
        guarded_on(r, f)
    } else {
        f(r)
    }
}

/// [`guarded_at`]'s stack-guarded case.
#[inline(never)]
fn guarded_on<'de, 'l, R>(r: &mut Reader<'de, 'l>, f: impl FnOnce(&mut Reader<'de, 'l>) -> R) -> R {
    guarded(|| {
        // Maybe on a new stack segment: measure its room.
        let outer = std::mem::replace(&mut r.room, Room::here());
        let result = f(&mut *r);
        r.room = outer;
        result
    })
}
use crate::value::{Key, KeyRef, Value, float_to_integer};

/// Decodes one value that must fill `bytes` exactly into a `T`.
pub(crate) fn decode_serialized<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    limits: &Limits,
) -> Result<T, Error> {
    let mut r = Reader {
        input: bytes,
        pos: 0,
        limits,
        room: Room::here(),
    };
    let value = T::deserialize(Slot {
        r: &mut r,
        depth: 0,
    })
    .map_err(|e| *e)?;
    if r.pos != bytes.len() {
        return Err(ProtocolError::TrailingBytes {
            count: bytes.len().saturating_sub(r.pos),
        }
        .into());
    }
    Ok(value)
}

fn malformed(text: &str) -> Fail {
    Box::new(ProtocolError::Malformed(text.to_owned()).into())
}

fn ends_early() -> Fail {
    malformed("value ends early")
}

struct Reader<'de, 'l> {
    input: &'de [u8],
    pos: usize,
    limits: &'l Limits,
    /// The stack's room, for [`guarded_at`].
    room: Room,
}

impl<'de> Reader<'de, '_> {
    /// The tag at the cursor, and the bytes it takes, without moving.
    #[inline(always)]
    fn peek_tag(&self) -> Result<(u8, usize), Fail> {
        let first = *self.input.get(self.pos).ok_or_else(ends_early)?;
        if first <= tag::TABLE {
            return Ok((first, 1));
        }
        if first == 0xfd {
            return Err(malformed("a value tag in the 9-byte varint form"));
        }
        let mut pos = self.pos;
        let tag = get_varint(self.input, &mut pos).ok_or_else(|| malformed("invalid value tag"))?;
        match u8::try_from(tag) {
            Ok(t) if t <= tag::TABLE => Ok((t, pos - self.pos)),
            _ => Err(malformed(&format!("unknown value tag {tag}"))),
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, Fail> {
        get_varint(self.input, &mut self.pos)
            .ok_or_else(|| malformed("invalid or truncated varint"))
    }

    /// A count, capped by the bytes left (each item takes at least one).
    #[inline]
    fn count(&mut self) -> Result<u64, Fail> {
        self.varint()
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    #[inline]
    fn bytes(&mut self, n: usize) -> Result<&'de [u8], Fail> {
        let end = self.pos.checked_add(n).ok_or_else(ends_early)?;
        let input: &'de [u8] = self.input;
        let bytes = input.get(self.pos..end).ok_or_else(ends_early)?;
        self.pos = end;
        Ok(bytes)
    }

    /// A string's payload (after its tag).
    #[inline]
    fn string(&mut self) -> Result<&'de [u8], Fail> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| ends_early())?;
        self.bytes(len)
    }

    #[inline]
    fn boolean(&mut self) -> Result<bool, Fail> {
        match self.bytes(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            [b] => Err(malformed(&format!("boolean byte {b:#04x} is not 0 or 1"))),
            _ => Err(ends_early()),
        }
    }

    #[inline]
    fn float(&mut self) -> Result<f64, Fail> {
        let mut le = [0u8; 8];
        le.copy_from_slice(self.bytes(8)?);
        Ok(f64::from_le_bytes(le))
    }

    /// A key (tag and payload), with Lua's key rules.
    #[inline(always)]
    fn key(&mut self) -> Result<KeyRef<'de>, Fail> {
        // The common case first: a short string key.
        let input: &'de [u8] = self.input;
        if let (Some(&tag::STRING), Some(&len)) = (input.get(self.pos), input.get(self.pos + 1))
            && len <= 250
        {
            let start = self.pos + 2;
            if let Some(name) = input.get(start..start + usize::from(len)) {
                self.pos = start + usize::from(len);
                return Ok(KeyRef::String(name));
            }
        }
        self.other_key()
    }

    /// [`key`](Self::key) of anything but a short string.
    #[inline(never)]
    fn other_key(&mut self) -> Result<KeyRef<'de>, Fail> {
        let (t, n) = self.peek_tag()?;
        self.pos += n;
        let bad = |e: KeyError| -> Fail { Box::new(ProtocolError::InvalidKey(e).into()) };
        match t {
            tag::BOOLEAN => Ok(KeyRef::Boolean(self.boolean()?)),
            tag::INTEGER => Ok(KeyRef::Integer(unzigzag(self.varint()?))),
            tag::NUMBER => {
                let f = self.float()?;
                KeyRef::Number(f)
                    .normalize()
                    .ok_or_else(|| bad(KeyError::NaN))
            }
            tag::STRING => Ok(KeyRef::String(self.string()?)),
            tag::NIL => Err(bad(KeyError::Nil)),
            _ => Err(bad(KeyError::Table)),
        }
    }

    /// Enters a table at `depth` (tables above it): past its tag.
    #[inline]
    fn enter(&mut self, depth: usize) -> Result<(), Fail> {
        if depth >= self.limits.max_depth {
            return Err(Box::new(Error::TooDeep {
                limit: self.limits.max_depth,
            }));
        }
        self.pos += 1;
        Ok(())
    }

    /// Moves past one value at `depth`, checking it as the decoder would
    /// (except for repeated keys).
    fn skip(&mut self, depth: usize) -> Result<(), Fail> {
        let (t, n) = self.peek_tag()?;
        if t == tag::TABLE {
            if depth >= self.limits.max_depth {
                return Err(Box::new(Error::TooDeep {
                    limit: self.limits.max_depth,
                }));
            }
            self.pos += n;
            let seq = self.count()?;
            for _ in 0..seq {
                guarded_at(self, depth + 1, |r| r.skip(depth + 1))?;
            }
            let hash = self.count()?;
            for _ in 0..hash {
                self.key()?;
                guarded_at(self, depth + 1, |r| r.skip(depth + 1))?;
            }
            return Ok(());
        }
        self.pos += n;
        match t {
            tag::NIL => {}
            tag::BOOLEAN => {
                self.boolean()?;
            }
            tag::INTEGER => {
                self.varint()?;
            }
            tag::NUMBER => {
                self.bytes(8)?;
            }
            _ => {
                self.string()?;
            }
        }
        Ok(())
    }

    /// The value at the cursor, decoded into a [`Value`] by the value
    /// decoder (the fallback for shapes the stream does not read).
    fn value_here(&mut self, depth: usize) -> Result<Value, Fail> {
        let start = self.pos;
        self.skip(depth)?;
        let input: &'de [u8] = self.input;
        let bytes = input.get(start..self.pos).ok_or_else(ends_early)?;
        let max_depth = self.limits.max_depth;
        let limits = Limits {
            max_depth: max_depth.saturating_sub(depth),
            ..*self.limits
        };
        crate::proto::decode_value(bytes, &limits).map_err(|e| {
            Box::new(match e {
                Error::TooDeep { .. } => Error::TooDeep { limit: max_depth },
                e => e,
            })
        })
    }
}

/// One value at the cursor, `depth` tables deep.
struct Slot<'r, 'de, 'l> {
    r: &'r mut Reader<'de, 'l>,
    depth: usize,
}

/// Hands the value at the cursor to the `Value` path's deserializer.
macro_rules! fallback {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let value = $self.r.value_here($self.depth)?;
        de::Deserializer::$method(Input::from(value), $($arg),*).map_err(Box::new)
    }};
}

impl<'de> Slot<'_, 'de, '_> {
    #[inline(always)]
    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        // The common case first: an integer in a one-byte varint.
        if let Some(&[tag::INTEGER, v]) = self
            .r
            .input
            .get(self.r.pos..)
            .and_then(|b| b.first_chunk::<2>())
            && v <= 250
        {
            self.r.pos += 2;
            return visitor.visit_i64(unzigzag(v.into()));
        }
        // Then one in the 2-byte form (`FB` and a little-endian u16).
        if let Some(&[tag::INTEGER, 0xfb, lo, hi]) = self
            .r
            .input
            .get(self.r.pos..)
            .and_then(|b| b.first_chunk::<4>())
        {
            self.r.pos += 4;
            return visitor.visit_i64(unzigzag(u16::from_le_bytes([lo, hi]).into()));
        }
        self.integer_slow(visitor)
    }

    /// Sequence-part elements then hash-part entries, as map entries.
    /// Inline, so a struct's table is entered with no call of its own.
    #[inline(always)]
    fn table_map<V: Visitor<'de>>(
        self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, Fail> {
        // The common case first: a struct's table with no sequence part
        // and a one-byte hash count, read by the leaner [`Fields`].
        if let Some(names) = fields
            && let Some(&[tag::TABLE, 0, n]) = self
                .r
                .input
                .get(self.r.pos..)
                .and_then(|b| b.first_chunk::<3>())
            && n <= 250
        {
            self.r.enter(self.depth)?;
            self.r.pos += 2;
            let depth = self.depth + 1;
            return guarded_at(self.r, depth, move |r| {
                let mut entries = Fields {
                    r,
                    depth,
                    left: n.into(),
                    names,
                    next_name: 0,
                    key_at: 0,
                };
                let value = visitor.visit_map(&mut entries)?;
                entries.finish()?;
                Ok(value)
            });
        }
        self.table_map_slow(fields, visitor)
    }

    /// [`table_map`](Self::table_map) of any other table (or not a table).
    #[inline(never)]
    fn table_map_slow<V: Visitor<'de>>(
        self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, Fail> {
        let (t, _) = self.r.peek_tag()?;
        if t != tag::TABLE {
            return fallback!(self, deserialize_map(visitor));
        }
        self.r.enter(self.depth)?;
        let seq = self.r.count()?;
        let depth = self.depth + 1;
        guarded_at(self.r, depth, move |r| {
            let mut entries = Entries {
                r,
                depth,
                seq_left: seq,
                index: 0,
                hash_left: None,
                fields: fields.is_some(),
                names: fields.unwrap_or_default(),
                next_name: 0,
                key: KeyRef::Integer(0),
                seen: fields.is_none().then(Seen::default),
            };
            let value = visitor.visit_map(&mut entries)?;
            entries.finish()?;
            Ok(value)
        })
    }

    #[inline(always)]
    fn str_like<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        // The common case first: a string with a one-byte length.
        let input: &'de [u8] = self.r.input;
        let pos = self.r.pos;
        if let Some([tag::STRING, len, rest @ ..]) = input.get(pos..)
            && *len <= 250
            && let Some(bytes) = rest.get(..usize::from(*len))
        {
            self.r.pos = pos + 2 + bytes.len();
            return match std::str::from_utf8(bytes) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(bytes),
            };
        }
        self.str_like_slow(visitor)
    }
}

impl<'de> de::Deserializer<'de> for Slot<'_, 'de, '_> {
    type Error = Fail;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        match t {
            tag::NIL => {
                self.r.pos += n;
                visitor.visit_unit()
            }
            tag::BOOLEAN => {
                self.r.pos += n;
                visitor.visit_bool(self.r.boolean()?)
            }
            tag::INTEGER => {
                self.r.pos += n;
                visitor.visit_i64(unzigzag(self.r.varint()?))
            }
            tag::NUMBER => {
                self.r.pos += n;
                visitor.visit_f64(self.r.float()?)
            }
            tag::STRING => self.str_like(visitor),
            _ => fallback!(self, deserialize_any(visitor)),
        }
    }

    #[inline(always)]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        if let Some(&[tag::BOOLEAN, b @ (0 | 1)]) = self
            .r
            .input
            .get(self.r.pos..)
            .and_then(|b| b.first_chunk::<2>())
        {
            self.r.pos += 2;
            return visitor.visit_bool(b == 1);
        }
        self.deserialize_bool_slow(visitor)
    }

    #[inline(always)]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }
    #[inline(always)]
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.integer(visitor)
    }

    #[inline(always)]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.deserialize_f64(visitor)
    }
    #[inline(always)]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        // The common case first: a number, tag and 8 bytes in one read.
        if let Some(&[tag::NUMBER, ref le @ ..]) = self
            .r
            .input
            .get(self.r.pos..)
            .and_then(|b| b.first_chunk::<9>())
        {
            self.r.pos += 9;
            return visitor.visit_f64(f64::from_le_bytes(*le));
        }
        self.deserialize_f64_slow(visitor)
    }

    #[inline(always)]
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.str_like(visitor)
    }
    #[inline(always)]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.str_like(visitor)
    }
    #[inline(always)]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.str_like(visitor)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, _) = self.r.peek_tag()?;
        if t != tag::STRING {
            return fallback!(self, deserialize_identifier(visitor));
        }
        self.str_like(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        if t != tag::STRING {
            return fallback!(self, deserialize_bytes(visitor));
        }
        self.r.pos += n;
        visitor.visit_borrowed_bytes(self.r.string()?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.deserialize_bytes(visitor)
    }

    #[inline(always)]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        if t == tag::NIL {
            self.r.pos += n;
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        if t != tag::NIL {
            return fallback!(self, deserialize_unit(visitor));
        }
        self.r.pos += n;
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Fail> {
        self.deserialize_unit(visitor)
    }

    #[inline(always)]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Fail> {
        visitor.visit_newtype_struct(self)
    }

    /// A table's sequence part. A hole, extra elements or a hash part are
    /// errors, as on the `Value` path (a table with them is no sequence).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, _) = self.r.peek_tag()?;
        if t != tag::TABLE {
            return fallback!(self, deserialize_seq(visitor));
        }
        self.r.enter(self.depth)?;
        let len = self.r.count()?;
        self.elements(len, None, visitor)
    }

    /// Streams a table of exactly `len` sequence elements; any other
    /// shape (holes, a hash part) goes through the `Value` path.
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        if t == tag::TABLE {
            let start = self.r.pos;
            self.r.pos += n;
            let claimed = self.r.count()?;
            if claimed == len as u64 {
                self.r.pos = start;
                self.r.enter(self.depth)?;
                self.r.count()?;
                return self.elements(claimed, Some(len), visitor);
            }
            self.r.pos = start;
        }
        fallback!(self, deserialize_tuple(len, visitor))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Fail> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.table_map(None, visitor)
    }
    #[inline(always)]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fail> {
        self.table_map(Some(fields), visitor)
    }

    /// `{name = payload}` streams; a bare name and every other shape go
    /// through the `Value` path.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        if t == tag::TABLE {
            let start = self.r.pos;
            self.r.pos += n;
            if self.r.count()? == 0 && self.r.count()? == 1 {
                self.r.pos = start;
                self.r.enter(self.depth)?;
                self.r.count()?;
                self.r.count()?;
                let key = self.r.key()?;
                let (t, _) = self.r.peek_tag()?;
                if t != tag::NIL {
                    let depth = self.depth + 1;
                    return guarded_at(self.r, depth, move |r| {
                        visitor.visit_enum(Variant { r, depth, key })
                    });
                }
            }
            self.r.pos = start;
        }
        fallback!(self, deserialize_enum(name, variants, visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        self.r.skip(self.depth)?;
        visitor.visit_unit()
    }
}

impl<'de> Slot<'_, 'de, '_> {
    /// [`integer`](Self::integer) past its inline common case.
    #[inline(never)]
    fn integer_slow<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        match t {
            tag::INTEGER => {
                self.r.pos += n;
                visitor.visit_i64(unzigzag(self.r.varint()?))
            }
            tag::NUMBER => {
                let start = self.r.pos;
                self.r.pos += n;
                match float_to_integer(self.r.float()?) {
                    Some(i) => visitor.visit_i64(i),
                    None => {
                        self.r.pos = start;
                        fallback!(self, deserialize_i64(visitor))
                    }
                }
            }
            _ => fallback!(self, deserialize_i64(visitor)),
        }
    }

    /// [`str_like`](Self::str_like) past its inline common case.
    #[inline(never)]
    fn str_like_slow<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        if t != tag::STRING {
            return fallback!(self, deserialize_str(visitor));
        }
        self.r.pos += n;
        let bytes = self.r.string()?;
        match std::str::from_utf8(bytes) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => visitor.visit_borrowed_bytes(bytes),
        }
    }

    /// `deserialize_f64` past its inline common case.
    #[inline(never)]
    fn deserialize_f64_slow<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        match t {
            tag::NUMBER => {
                self.r.pos += n;
                visitor.visit_f64(self.r.float()?)
            }
            tag::INTEGER => {
                self.r.pos += n;
                visitor.visit_f64(unzigzag(self.r.varint()?) as f64)
            }
            _ => fallback!(self, deserialize_f64(visitor)),
        }
    }

    /// `deserialize_bool` past its inline common case.
    #[inline(never)]
    fn deserialize_bool_slow<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        let (t, n) = self.r.peek_tag()?;
        if t != tag::BOOLEAN {
            return fallback!(self, deserialize_bool(visitor));
        }
        self.r.pos += n;
        visitor.visit_bool(self.r.boolean()?)
    }

    /// Visits `len` sequence elements (the table entered, its count read),
    /// then requires an empty hash part. `tuple`: a tuple's length, whose
    /// elements may be nil.
    fn elements<V: Visitor<'de>>(
        self,
        len: u64,
        tuple: Option<usize>,
        visitor: V,
    ) -> Result<V::Value, Fail> {
        let depth = self.depth + 1;
        guarded_at(self.r, depth, move |r| -> Result<V::Value, Fail> {
            let mut seq = Elements {
                r,
                depth,
                left: len,
                taken: 0,
                holes: tuple.is_some(),
            };
            let value = visitor.visit_seq(&mut seq)?;
            if seq.left > 0 {
                let taken = seq.taken;
                return Err(de::Error::invalid_length(
                    (taken as u64 + seq.left) as usize,
                    &ExpectedFewer(taken),
                ));
            }
            let hash = seq.r.count()?;
            if hash > 0 {
                let key = seq
                    .r
                    .key()?
                    .to_key()
                    .map(|k| k.to_string())
                    .unwrap_or_default();
                return Err(Box::new(Error::Convert(match tuple {
                    Some(n) => format!(
                        "expected a tuple of {n} elements (keys 1 to {n}), found a table with the key {key}"
                    ),
                    None => format!(
                        "expected a sequence (a table with keys 1 to n only), found a table with the key {key}"
                    ),
                })));
            }
            Ok(value)
        })
    }
}

/// "a sequence of n elements", for a visitor that stopped after `n` of them.
struct ExpectedFewer(usize);

impl de::Expected for ExpectedFewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a sequence of {} elements", self.0)
    }
}

/// A table's sequence part as a serde sequence.
struct Elements<'r, 'de, 'l> {
    r: &'r mut Reader<'de, 'l>,
    depth: usize,
    left: u64,
    taken: usize,
    /// Nil elements are allowed (a tuple's `None`s).
    holes: bool,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de, '_> {
    type Error = Fail;

    #[inline(always)]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Fail> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let index = self.taken;
        self.taken += 1;
        if !self.holes && self.r.peek_tag()?.0 == tag::NIL {
            return Err(Box::new(Error::Convert(format!(
                "expected a sequence (a table with keys 1 to n only), found a table with a hole at key {}",
                index + 1
            ))));
        }
        let slot = Slot {
            r: &mut *self.r,
            depth: self.depth,
        };
        at_boxed(seed.deserialize(slot), Step::Index(index)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // Every element takes at least one byte.
        Some(
            usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(self.r.remaining()),
        )
    }
}

/// Keys seen in a map, to refuse one that appears twice.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<KeyRef<'de>>,
    many: HashSet<Key>,
}

impl<'de> Seen<'de> {
    /// False when `key` was seen before.
    fn insert(&mut self, key: KeyRef<'de>) -> bool {
        if self.few.len() < 16 {
            if self.few.contains(&key) {
                return false;
            }
            self.few.push(key);
            return true;
        }
        match key.to_key() {
            Ok(k) => !self.few.contains(&key) && self.many.insert(k),
            Err(_) => false,
        }
    }
}

/// A table's entries as a serde map: the sequence part under keys
/// `1..n`, then the hash part. Nil values are skipped.
struct Entries<'r, 'de, 'l> {
    r: &'r mut Reader<'de, 'l>,
    depth: usize,
    seq_left: u64,
    /// Sequence elements passed so far.
    index: i64,
    /// Hash entries left; `None` until the sequence part is done.
    hash_left: Option<u64>,
    /// The keys are a struct's field names (for error paths).
    fields: bool,
    /// The struct's field names as its `Deserialize` declares them: a key
    /// equal to one is handed over as that name, with no UTF-8 check.
    names: &'static [&'static str],
    /// Where in `names` the next key is expected (the writer writes
    /// fields in declaration order, leaving out absent ones).
    next_name: usize,
    /// The key of the entry being read.
    key: KeyRef<'de>,
    /// Keys seen, for a map (a struct's derive refuses repeated fields).
    seen: Option<Seen<'de>>,
}

impl<'de> Entries<'_, 'de, '_> {
    /// Reads up to the next entry whose value is not nil; its key.
    #[inline(always)]
    fn next_key(&mut self) -> Result<Option<KeyRef<'de>>, Fail> {
        while self.seq_left > 0 {
            self.seq_left -= 1;
            self.index += 1;
            let (t, n) = self.r.peek_tag()?;
            if t == tag::NIL {
                self.r.pos += n;
                continue;
            }
            let key = KeyRef::Integer(self.index);
            if let Some(seen) = &mut self.seen {
                seen.insert(key);
            }
            return Ok(Some(key));
        }
        let left = match self.hash_left {
            Some(left) => left,
            None => self.r.count()?,
        };
        let mut left = left;
        while left > 0 {
            left -= 1;
            let key = self.r.key()?;
            if let Some(seen) = &mut self.seen
                && !seen.insert(key)
            {
                return Err(Box::new(
                    ProtocolError::DuplicateKey {
                        key: crate::error::inert(
                            key.to_key()
                                .map(|k| k.to_string())
                                .unwrap_or_default()
                                .as_bytes(),
                        ),
                    }
                    .into(),
                ));
            }
            let (t, n) = self.r.peek_tag()?;
            if t == tag::NIL {
                self.r.pos += n;
                continue;
            }
            self.hash_left = Some(left);
            return Ok(Some(key));
        }
        self.hash_left = Some(0);
        Ok(None)
    }

    /// Moves to the next entry, and says how its key is handed over.
    #[inline(always)]
    fn next_entry(&mut self) -> Result<Next<'de>, Fail> {
        // The common case: a struct's hash part, a short string key and a
        // value that is not nil.
        if self.fields && self.seq_left == 0 {
            let input: &'de [u8] = self.r.input;
            let left = match self.hash_left {
                Some(left) => left,
                // The hash part's count, in one byte.
                None => match input.get(self.r.pos) {
                    Some(&n) if n <= 250 => {
                        self.r.pos += 1;
                        self.hash_left = Some(n.into());
                        n.into()
                    }
                    _ => return self.next_entry_slow(),
                },
            };
            if left == 0 {
                return Ok(Next::Done);
            }
            let pos = self.r.pos;
            if let Some([tag::STRING, len, rest @ ..]) = input.get(pos..)
                && *len <= 250
                && let Some((name, after)) = rest.split_at_checked(usize::from(*len))
                && let Some(&t) = after.first()
                && t != tag::NIL
                && t <= tag::TABLE
            {
                self.r.pos = pos + 2 + name.len();
                self.hash_left = Some(left - 1);
                self.key = KeyRef::String(name);
                return Ok(match self.known_name(name) {
                    Some(known) => Next::Known(known),
                    None => Next::Name(name),
                });
            }
        }
        self.next_entry_slow()
    }

    /// [`next_entry`](Self::next_entry) of anything else.
    #[inline(never)]
    fn next_entry_slow(&mut self) -> Result<Next<'de>, Fail> {
        Ok(match self.next_key()? {
            Some(KeyRef::String(name)) if self.fields => {
                self.key = KeyRef::String(name);
                match self.known_name(name) {
                    Some(known) => Next::Known(known),
                    None => Next::Name(name),
                }
            }
            Some(key) => {
                self.key = key;
                Next::Key(key)
            }
            None => Next::Done,
        })
    }

    /// Skips entries the visitor did not read.
    #[inline(always)]
    fn finish(&mut self) -> Result<(), Fail> {
        // The common case: the visitor read every entry.
        if self.seq_left == 0 && self.hash_left == Some(0) {
            return Ok(());
        }
        self.finish_slow()
    }

    /// [`finish`](Self::finish) with entries left, or the hash part's
    /// count not read yet.
    #[inline(never)]
    fn finish_slow(&mut self) -> Result<(), Fail> {
        while self.next_key()?.is_some() {
            self.r.skip(self.depth)?;
        }
        Ok(())
    }

    #[inline(always)]
    fn known_name(&mut self, key: &[u8]) -> Option<&'static str> {
        known_name(self.names, &mut self.next_name, key)
    }

    fn step(&self) -> Step<'de> {
        match self.key {
            KeyRef::String(s) if self.fields => match std::str::from_utf8(s) {
                Ok(name) => Step::Field(name),
                Err(_) => Step::Key(self.key),
            },
            key => Step::Key(key),
        }
    }
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de, '_> {
    type Error = Fail;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Fail> {
        match self.next_entry()? {
            Next::Known(known) => seed.deserialize(KnownName(known)).map(Some),
            Next::Name(name) => seed.deserialize(FieldName(name)).map(Some),
            Next::Key(key) => seed
                .deserialize(Input::from(key))
                .map(Some)
                .map_err(Box::new),
            Next::Done => Ok(None),
        }
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Fail> {
        let slot = Slot {
            r: &mut *self.r,
            depth: self.depth,
        };
        match seed.deserialize(slot) {
            Ok(value) => Ok(value),
            Err(e) => Err(super::path::within_boxed(e, self.step())),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        let left = self.seq_left.saturating_add(self.hash_left.unwrap_or(0));
        // Every entry takes at least one byte.
        Some(
            usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.r.remaining()),
        )
    }
}

/// The declared field name in `names` equal to `key`, looked for at
/// `*next` first (the writer writes fields in declaration order, leaving
/// out absent ones); `*next` then points past it.
#[inline(always)]
fn known_name(
    names: &'static [&'static str],
    next: &mut usize,
    key: &[u8],
) -> Option<&'static str> {
    if let Some(&name) = names.get(*next)
        && same(name.as_bytes(), key)
    {
        *next += 1;
        return Some(name);
    }
    let at = names.iter().position(|n| n.as_bytes() == key)?;
    *next = at + 1;
    names.get(at).copied()
}

/// A struct's table in its common shape (no sequence part, a one-byte
/// hash count) as a serde map: what [`Entries`] does for it, with less
/// state to set up per table and to update per field.
struct Fields<'r, 'de, 'l> {
    r: &'r mut Reader<'de, 'l>,
    depth: usize,
    /// Hash entries left.
    left: usize,
    /// The struct's field names as its `Deserialize` declares them (see
    /// [`known_name`]).
    names: &'static [&'static str],
    /// Where in `names` the next key is expected.
    next_name: usize,
    /// Where the key of the entry being read starts: read again only for
    /// an error's path.
    key_at: usize,
}

impl<'de> Fields<'_, 'de, '_> {
    /// Moves to the next entry whose value is not nil, and says how its
    /// key is handed over.
    #[inline(always)]
    fn next_entry(&mut self) -> Result<Next<'de>, Fail> {
        if self.left == 0 {
            return Ok(Next::Done);
        }
        // The common case: a short string key and a value that is not nil.
        let input: &'de [u8] = self.r.input;
        let pos = self.r.pos;
        if let Some([tag::STRING, len, rest @ ..]) = input.get(pos..)
            && *len <= 250
            && let Some((name, after)) = rest.split_at_checked(usize::from(*len))
            && let Some(&t) = after.first()
            && t != tag::NIL
            && t <= tag::TABLE
        {
            self.r.pos = pos + 2 + name.len();
            self.left -= 1;
            self.key_at = pos;
            return Ok(match known_name(self.names, &mut self.next_name, name) {
                Some(known) => Next::Known(known),
                None => Next::Name(name),
            });
        }
        self.next_entry_slow()
    }

    /// [`next_entry`](Self::next_entry) of any other key, or past nil
    /// values.
    #[inline(never)]
    fn next_entry_slow(&mut self) -> Result<Next<'de>, Fail> {
        while self.left > 0 {
            self.left -= 1;
            let at = self.r.pos;
            let key = self.r.key()?;
            let (t, n) = self.r.peek_tag()?;
            if t == tag::NIL {
                self.r.pos += n;
                continue;
            }
            self.key_at = at;
            return Ok(match key {
                KeyRef::String(name) => match known_name(self.names, &mut self.next_name, name) {
                    Some(known) => Next::Known(known),
                    None => Next::Name(name),
                },
                key => Next::Key(key),
            });
        }
        Ok(Next::Done)
    }

    /// Skips entries the visitor did not read.
    #[inline(always)]
    fn finish(&mut self) -> Result<(), Fail> {
        if self.left == 0 {
            return Ok(());
        }
        self.finish_slow()
    }

    /// [`finish`](Self::finish) with entries left.
    #[inline(never)]
    fn finish_slow(&mut self) -> Result<(), Fail> {
        while self.left > 0 {
            self.left -= 1;
            self.r.key()?;
            self.r.skip(self.depth)?;
        }
        Ok(())
    }

    /// The current entry's step, for an error's path.
    #[cold]
    #[inline(never)]
    fn step(&self) -> Step<'de> {
        let mut again = Reader {
            input: self.r.input,
            pos: self.key_at,
            limits: self.r.limits,
            room: self.r.room,
        };
        // The key was read from these bytes before, so this cannot fail.
        match again.key() {
            Ok(KeyRef::String(s)) => match std::str::from_utf8(s) {
                Ok(name) => Step::Field(name),
                Err(_) => Step::Key(KeyRef::String(s)),
            },
            Ok(key) => Step::Key(key),
            Err(_) => Step::Key(KeyRef::String(b"")),
        }
    }
}

impl<'de> de::MapAccess<'de> for Fields<'_, 'de, '_> {
    type Error = Fail;

    #[inline(always)]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Fail> {
        match self.next_entry()? {
            Next::Known(known) => seed.deserialize(KnownName(known)).map(Some),
            Next::Name(name) => seed.deserialize(FieldName(name)).map(Some),
            Next::Key(key) => seed
                .deserialize(Input::from(key))
                .map(Some)
                .map_err(Box::new),
            Next::Done => Ok(None),
        }
    }

    #[inline(always)]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Fail> {
        let slot = Slot {
            r: &mut *self.r,
            depth: self.depth,
        };
        match seed.deserialize(slot) {
            Ok(value) => Ok(value),
            Err(e) => Err(super::path::within_boxed(e, self.step())),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        // Every entry takes at least one byte.
        Some(self.left.min(self.r.remaining()))
    }
}

/// How [`Entries`] hands over the next entry's key.
enum Next<'de> {
    /// A struct's declared field name.
    Known(&'static str),
    /// Another string key of a struct.
    Name(&'de [u8]),
    /// Any key of a map, or a struct's key that is not a string.
    Key(KeyRef<'de>),
    /// No entries left.
    Done,
}

/// `a == b`, for short slices without a `memcmp` call: two overlapping
/// fixed-size comparisons cover any length in a range.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        0 => true,
        1..=3 => a.first() == b.first() && a.last() == b.last() && a.get(1) == b.get(1),
        4..=8 => {
            a.first_chunk::<4>() == b.first_chunk::<4>()
                && a.last_chunk::<4>() == b.last_chunk::<4>()
        }
        9..=16 => {
            a.first_chunk::<8>() == b.first_chunk::<8>()
                && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        _ => a == b,
    }
}

/// A struct's field name: what the `Value` path's deserializer does with a
/// string key (text when UTF-8, else bytes), without building one.
struct FieldName<'de>(&'de [u8]);

impl<'de> de::Deserializer<'de> for FieldName<'de> {
    type Error = Fail;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        match std::str::from_utf8(self.0) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => visitor.visit_borrowed_bytes(self.0),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier
    }
}

/// A key equal to one of the struct's declared field names: the same
/// string [`FieldName`] would hand over, already known to be text.
struct KnownName(&'static str);

impl<'de> de::Deserializer<'de> for KnownName {
    type Error = Fail;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fail> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier
    }
}

/// `{name = payload}` on the wire, with the cursor at the payload.
struct Variant<'r, 'de, 'l> {
    r: &'r mut Reader<'de, 'l>,
    /// The payload's depth.
    depth: usize,
    key: KeyRef<'de>,
}

impl<'r, 'de, 'l> de::EnumAccess<'de> for Variant<'r, 'de, 'l> {
    type Error = Fail;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Fail> {
        let variant = seed.deserialize(Input::from(self.key))?;
        Ok((variant, self))
    }
}

impl<'de, 'l> Variant<'_, 'de, 'l> {
    fn step(&self) -> Step<'de> {
        match self.key {
            KeyRef::String(s) => match std::str::from_utf8(s) {
                Ok(name) => Step::Field(name),
                Err(_) => Step::Key(self.key),
            },
            key => Step::Key(key),
        }
    }

    fn slot(&mut self) -> Slot<'_, 'de, 'l> {
        Slot {
            r: &mut *self.r,
            depth: self.depth,
        }
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de, '_> {
    type Error = Fail;

    fn unit_variant(self) -> Result<(), Fail> {
        let payload = self.r.value_here(self.depth)?;
        Err(Box::new(Error::Convert(format!(
            "expected a unit variant (a bare variant name), found a variant with a payload: {}",
            Input::from(payload)
        ))))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(mut self, seed: T) -> Result<T::Value, Fail> {
        let step = self.step();
        at_boxed(seed.deserialize(self.slot()), step)
    }

    fn tuple_variant<V: Visitor<'de>>(mut self, len: usize, visitor: V) -> Result<V::Value, Fail> {
        let step = self.step();
        at_boxed(
            de::Deserializer::deserialize_tuple(self.slot(), len, visitor),
            step,
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        mut self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fail> {
        let step = self.step();
        at_boxed(self.slot().table_map(Some(fields), visitor), step)
    }
}
