//! The direct path out: any `Serialize` type straight into the wire
//! encoding, with no [`Value`] in between.
//!
//! It writes exactly the bytes that [`to_value`](super::to_value) followed
//! by the value encoder writes, and refuses exactly what that refuses (the
//! bridge tests check both on one table of tricky types). Counts are
//! written as placeholders sized for serde's length hint and patched at the
//! end (a struct's `None` fields are left out, so its count is known only
//! then). A map whose keys are integers or repeat is the one case built as a
//! [`Table`] and encoded by the value encoder: there the table's own rules
//! (keys `1..n` in the sequence part, a repeated key keeps its first place)
//! decide the bytes.

use std::collections::HashSet;

use serde::ser::{self, Impossible, Serialize};

use super::format::{put_varint, put_varint_width, tag, varint_len, zigzag};
use super::path::{Fail, Step, at, at_boxed, within};
use super::rules;
use crate::error::{Error, KeyError};
use crate::proto::Limits;
use crate::stack::{Room, guarded};
use crate::value::{Key, KeyRepr, Table, Value};

/// Appends the encoding of `value` to `out`. Fails, leaving `out` with
/// partial bytes after its original length, when the value cannot be sent
/// (the error names the field), nests deeper than `limits.max_depth`, or
/// `out` would grow past `max_len` bytes (then with `too_large`).
pub(crate) fn encode_serialized<T: Serialize + ?Sized>(
    value: &T,
    limits: &Limits,
    out: &mut Vec<u8>,
    max_len: usize,
    too_large: Error,
) -> Result<(), Error> {
    let mut w = Writer {
        out,
        max_len,
        limits,
        too_large,
        room: Room::here(),
    };
    let before = w.out.len();
    value
        .serialize(Slot {
            w: &mut w,
            depth: 0,
            in_some: false,
        })
        .map_err(|e| *e)?;
    if w.out.len() == before {
        w.out.push(tag::NIL);
    }
    w.check().map_err(|e| *e)
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    max_len: usize,
    limits: &'a Limits,
    /// The error for a value larger than `max_len`.
    too_large: Error,
    /// The stack's room, for [`guard_at`].
    room: Room,
}

impl Writer<'_> {
    /// Fails once the output has passed its limit (checked per element and
    /// per string, so at most one string past it is ever written).
    #[inline]
    fn check(&self) -> Result<(), Fail> {
        if self.out.len() > self.max_len {
            return Err(self.too_large());
        }
        Ok(())
    }

    /// The error for output past `max_len`, kept out of the hot paths.
    #[cold]
    #[inline(never)]
    fn too_large(&self) -> Fail {
        Box::new(self.too_large.clone())
    }

    #[inline]
    fn integer(&mut self, i: i64) {
        let n = zigzag(i);
        if n <= 250 {
            // Tag and one-byte varint in one capacity check.
            self.out.extend_from_slice(&[tag::INTEGER, n as u8]);
        } else {
            self.out.push(tag::INTEGER);
            put_varint(self.out, n);
        }
    }

    #[inline]
    fn string(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        if self.out.len().saturating_add(bytes.len()) > self.max_len {
            return Err(self.too_large());
        }
        if bytes.len() <= SHORT {
            self.short_string(bytes);
            return Ok(());
        }
        match u8::try_from(bytes.len()) {
            Ok(n) if n <= 250 => self.out.extend_from_slice(&[tag::STRING, n]),
            _ => {
                self.out.push(tag::STRING);
                put_varint(self.out, bytes.len() as u64);
            }
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// [`string`](Self::string) inlined for a struct's field name.
    #[inline(always)]
    fn name(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        if bytes.len() <= SHORT && self.out.len().saturating_add(bytes.len()) <= self.max_len {
            self.short_string(bytes);
            return Ok(());
        }
        self.string(bytes)
    }

    /// A string of at most [`SHORT`] bytes (field names, most keys): tag,
    /// length and bytes assembled in a fixed-size buffer and appended with
    /// one fixed-size copy (no `memcpy` call), then cut to length.
    #[inline(always)]
    fn short_string(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        let mut buf = [0u8; SHORT + 2];
        buf[0] = tag::STRING;
        buf[1] = len as u8;
        // Two overlapping fixed-size copies cover any length in a range
        // (the `None`s do not happen: the lengths are checked just before).
        if let (Some(head), Some(tail)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
            put(&mut buf, 2, head);
            put(&mut buf, len - 6, tail);
        } else if let (Some(head), Some(tail)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>())
        {
            put(&mut buf, 2, head);
            put(&mut buf, len - 2, tail);
        } else if let (Some(&first), Some(&middle), Some(&last)) =
            (bytes.first(), bytes.get(len / 2), bytes.last())
        {
            // The first, middle and last bytes cover lengths 1 to 3.
            put(&mut buf, 2, &[first]);
            put(&mut buf, 2 + len / 2, &[middle]);
            put(&mut buf, 1 + len, &[last]);
        }
        let end = self.out.len() + 2 + len;
        self.out.extend_from_slice(&buf);
        self.out.truncate(end);
    }

    fn key(&mut self, key: &Key) -> Result<(), Fail> {
        match key.repr() {
            KeyRepr::Boolean(b) => self.out.extend_from_slice(&[tag::BOOLEAN, u8::from(*b)]),
            KeyRepr::Integer(i) => self.integer(*i),
            KeyRepr::Number(bits) => {
                self.out.push(tag::NUMBER);
                self.out.extend_from_slice(&bits.to_le_bytes());
            }
            KeyRepr::String(s) => self.string(s.as_bytes())?,
        }
        Ok(())
    }

    /// Opens a table at `depth` (tables entered above it).
    #[inline]
    fn open_table(&mut self, depth: usize) -> Result<(), Fail> {
        self.check_depth(depth)?;
        self.out.push(tag::TABLE);
        Ok(())
    }

    /// Refuses a table at `depth` when the limit is reached.
    #[inline]
    fn check_depth(&self, depth: usize) -> Result<(), Fail> {
        if depth >= self.limits.max_depth {
            return Err(self.too_deep());
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self) -> Fail {
        Box::new(Error::TooDeep {
            limit: self.limits.max_depth,
        })
    }

    /// Writes a count placeholder wide enough for `upper` (any count when
    /// `None`).
    #[inline(always)]
    fn open_count(&mut self, upper: Option<usize>) -> Count {
        let at = self.out.len();
        if upper.is_some_and(|n| n <= 250) {
            self.out.push(0);
            return Count { at, width: 1 };
        }
        let width = upper.map_or(9, |n| varint_len(n as u64));
        put_varint_width(self.out, 0, width);
        Count { at, width }
    }

    /// Patches a placeholder with the real count, in the shortest form.
    #[inline(always)]
    fn close_count(&mut self, count: Count, n: usize) {
        if count.width == 1 && n <= 250 {
            // The common case: a one-byte count, patched in place.
            if let Some(slot) = self.out.get_mut(count.at) {
                *slot = n as u8;
            }
        } else {
            self.close_long_count(count, n);
        }
    }

    /// [`close_count`](Self::close_count) of a wider placeholder.
    #[inline(never)]
    fn close_long_count(&mut self, count: Count, n: usize) {
        let n = n as u64;
        let end = count.at + count.width;
        if varint_len(n) == count.width {
            let mut bytes = Vec::with_capacity(9);
            put_varint_width(&mut bytes, n, count.width);
            if let Some(slot) = self.out.get_mut(count.at..end) {
                slot.copy_from_slice(&bytes);
            }
        } else {
            let mut bytes = Vec::with_capacity(9);
            put_varint(&mut bytes, n);
            self.out.splice(count.at..end, bytes);
        }
    }

    /// `{name = ...}` opened: the table, its empty sequence part, one hash
    /// entry and its key. The payload follows.
    fn open_variant(&mut self, depth: usize, name: &str) -> Result<(), Fail> {
        self.open_table(depth)?;
        self.out.extend_from_slice(&[0, 1]);
        self.string(name.as_bytes())
    }
}

/// Copies `bytes` into `buf` at `at` (nothing if it would not fit).
#[inline(always)]
fn put<const N: usize>(buf: &mut [u8], at: usize, bytes: &[u8; N]) {
    if let Some(slot) = buf.get_mut(at..at + N) {
        slot.copy_from_slice(bytes);
    }
}

/// Strings up to this long take [`Writer::short_string`]'s path.
const SHORT: usize = 16;

/// A count placeholder: where, and how wide.
#[derive(Clone, Copy)]
struct Count {
    at: usize,
    width: usize,
}

/// Serializes one value where a value goes. Nothing written: the value is
/// nil (every other value writes at least its tag, so the output's length
/// tells, and a result stays one register wide); the caller decides what
/// that means (an absent
/// field, a hole in a tuple, an error in a sequence, `00` at the top).
struct Slot<'s, 'a> {
    w: &'s mut Writer<'a>,
    /// Tables entered above this value.
    depth: usize,
    /// Directly inside `Some`: nil here would lose the `Some`.
    in_some: bool,
}

impl Slot<'_, '_> {
    fn nil(self) -> Result<(), Fail> {
        if self.in_some {
            return Err(Box::new(rules::nil_in_some()));
        }
        Ok(())
    }
}

/// Serializes `value` at `depth`, through [`guarded`] when `guard`
/// (see [`guard_at`]). `Ok(false)`: the value is nil (nothing written).
#[inline]
fn nested<T: Serialize + ?Sized>(
    w: &mut Writer<'_>,
    depth: usize,
    guard: bool,
    value: &T,
) -> Result<bool, Fail> {
    let before = w.out.len();
    if guard {
        nested_guarded(w, depth, value)?;
    } else {
        value.serialize(Slot {
            w: &mut *w,
            depth,
            in_some: false,
        })?;
    }
    Ok(w.out.len() != before)
}

/// Levels between stack checks: each level of a derived type takes well
/// under 1 KiB of stack, against the guard's 64 KiB red zone.
const GUARD_EVERY: usize = 4;

/// Whether the elements of a container, at `depth`, are serialized through
/// [`guarded`]. Recursion only deepens with tables, so the stack is checked
/// every few levels, and once per container when it opens rather than for
/// every element (the check asks for a margin over the red zone).
#[inline]
fn guard_at(w: &Writer<'_>, depth: usize) -> bool {
    depth.is_multiple_of(GUARD_EVERY) && w.room.low()
}

/// Serializes `value` on a stack with room (stack-guarded).
#[inline(never)]
fn nested_guarded<T: Serialize + ?Sized>(
    w: &mut Writer<'_>,
    depth: usize,
    value: &T,
) -> Result<(), Fail> {
    guarded(|| {
        // Maybe on a new stack segment: measure its room.
        let outer = std::mem::replace(&mut w.room, Room::here());
        let result = value.serialize(Slot {
            w: &mut *w,
            depth,
            in_some: false,
        });
        w.room = outer;
        result
    })
}

impl<'s, 'a> ser::Serializer for Slot<'s, 'a> {
    type Ok = ();
    type Error = Fail;
    type SerializeSeq = SeqWriter<'s, 'a>;
    type SerializeTuple = SeqWriter<'s, 'a>;
    type SerializeTupleStruct = SeqWriter<'s, 'a>;
    type SerializeTupleVariant = SeqWriter<'s, 'a>;
    type SerializeMap = MapWriter<'s, 'a>;
    type SerializeStruct = StructWriter<'s, 'a>;
    type SerializeStructVariant = StructWriter<'s, 'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Fail> {
        self.w.out.extend_from_slice(&[tag::BOOLEAN, u8::from(v)]);
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Fail> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Fail> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Fail> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Fail> {
        self.w.integer(v);
        Ok(())
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), Fail> {
        let v = i64::try_from(v).map_err(|_| rules::integer_out_of_range(v))?;
        self.serialize_i64(v)
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Fail> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Fail> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Fail> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Fail> {
        let v = i64::try_from(v).map_err(|_| rules::integer_out_of_range(v))?;
        self.serialize_i64(v)
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), Fail> {
        let v = i64::try_from(v).map_err(|_| rules::integer_out_of_range(v))?;
        self.serialize_i64(v)
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Fail> {
        self.serialize_f64(f64::from(v))
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Fail> {
        let b = v.to_le_bytes();
        self.w.out.extend_from_slice(&[
            tag::NUMBER,
            b[0],
            b[1],
            b[2],
            b[3],
            b[4],
            b[5],
            b[6],
            b[7],
        ]);
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<(), Fail> {
        self.w.string(v.encode_utf8(&mut [0; 4]).as_bytes())?;
        Ok(())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Fail> {
        self.w.string(v.as_bytes())?;
        Ok(())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Fail> {
        self.w.string(v)?;
        Ok(())
    }
    #[inline]
    fn serialize_none(self) -> Result<(), Fail> {
        self.nil()
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Fail> {
        value.serialize(Slot {
            in_some: true,
            ..self
        })
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), Fail> {
        self.nil()
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Fail> {
        self.nil()
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Fail> {
        self.serialize_str(variant)
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Fail> {
        value.serialize(self)
    }
    /// `{name = payload}`, or the bare name when the payload is nil.
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Fail> {
        let start = self.w.out.len();
        // The depth is checked once the payload is known not to be nil.
        self.w.out.extend_from_slice(&[tag::TABLE, 0, 1]);
        self.w.string(variant.as_bytes())?;
        let depth = self.depth + 1;
        let written = at_boxed(
            nested(self.w, depth, guard_at(self.w, depth), value),
            Step::Field(variant),
        )?;
        if !written {
            self.w.out.truncate(start);
            self.w.string(variant.as_bytes())?;
        } else if self.depth >= self.w.limits.max_depth {
            return Err(Box::new(Error::TooDeep {
                limit: self.w.limits.max_depth,
            }));
        }
        Ok(())
    }
    #[inline(always)]
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqWriter<'s, 'a>, Fail> {
        SeqWriter::open(self.w, self.depth, len, false, None)
    }
    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<SeqWriter<'s, 'a>, Fail> {
        SeqWriter::open(self.w, self.depth, Some(len), true, None)
    }
    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqWriter<'s, 'a>, Fail> {
        self.serialize_tuple(len)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqWriter<'s, 'a>, Fail> {
        self.w.open_variant(self.depth, variant)?;
        SeqWriter::open(self.w, self.depth + 1, Some(len), true, Some(variant))
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<MapWriter<'s, 'a>, Fail> {
        let start = self.w.out.len();
        self.w.open_table(self.depth)?;
        self.w.out.push(0);
        let count = self.w.open_count(len);
        let guard = guard_at(self.w, self.depth + 1);
        Ok(MapWriter {
            w: self.w,
            depth: self.depth,
            start,
            count,
            entries: Vec::new(),
            seen: HashSet::new(),
            table: None,
            key: None,
            guard,
        })
    }
    #[inline]
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<StructWriter<'s, 'a>, Fail> {
        StructWriter::open(self.w, self.depth, len, None)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<StructWriter<'s, 'a>, Fail> {
        self.w.open_variant(self.depth, variant)?;
        StructWriter::open(self.w, self.depth + 1, len, Some(variant))
    }
}

/// A sequence, tuple or tuple struct (or a tuple variant's payload). In a
/// tuple a nil element is a hole: the elements after it go to the hash
/// part under their keys, as the value encoder writes `{1, nil, 3}`.
struct SeqWriter<'s, 'a> {
    w: &'s mut Writer<'a>,
    /// The table's depth.
    depth: usize,
    /// Nil elements are holes (a tuple), not errors (a sequence).
    tuple: bool,
    /// The count being written: the sequence part's, then (after a hole)
    /// the hash part's.
    count: Count,
    /// Elements handed in so far.
    index: usize,
    /// Elements in the sequence part, once a hole ended it.
    seq_len: Option<usize>,
    /// Entries in the hash part.
    hash_len: usize,
    /// For a tuple variant: its name, for error paths.
    variant: Option<&'static str>,
    /// Elements go through the stack guard ([`guard_at`]).
    guard: bool,
}

impl<'s, 'a> SeqWriter<'s, 'a> {
    #[inline(always)]
    fn open(
        w: &'s mut Writer<'a>,
        depth: usize,
        len: Option<usize>,
        tuple: bool,
        variant: Option<&'static str>,
    ) -> Result<Self, Fail> {
        w.check_depth(depth)?;
        let count = match len {
            Some(n) if n <= 250 => {
                // Tag and one-byte count placeholder at once.
                let at = w.out.len() + 1;
                w.out.extend_from_slice(&[tag::TABLE, 0]);
                Count { at, width: 1 }
            }
            _ => {
                w.out.push(tag::TABLE);
                w.open_count(len)
            }
        };
        let guard = guard_at(w, depth + 1);
        Ok(SeqWriter {
            w,
            depth,
            tuple,
            count,
            index: 0,
            seq_len: None,
            hash_len: 0,
            variant,
            guard,
        })
    }

    #[inline]
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fail> {
        let result = self.element(value);
        match self.variant {
            Some(name) => at_boxed(result, Step::Field(name)),
            None => result,
        }
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fail> {
        let index = self.index;
        self.index += 1;
        self.w.check()?;
        let step = Step::Index(index);
        if self.seq_len.is_none() {
            let written = at_boxed(nested(self.w, self.depth + 1, self.guard, value), step)?;
            if !written {
                if !self.tuple {
                    return Err(Box::new(within(rules::nil_in_sequence(), step)));
                }
                // The first hole: the sequence part ends, the hash part starts.
                self.w.close_count(self.count, index);
                self.seq_len = Some(index);
                // At most the remaining elements.
                let left = self.count_upper().saturating_sub(index + 1);
                self.count = self.w.open_count(Some(left));
            }
            return Ok(());
        }
        let start = self.w.out.len();
        self.w.integer(index as i64 + 1);
        if at_boxed(nested(self.w, self.depth + 1, self.guard, value), step)? {
            self.hash_len += 1;
        } else {
            self.w.out.truncate(start);
        }
        Ok(())
    }

    /// The most elements the placeholder's width allows.
    #[inline]
    fn count_upper(&self) -> usize {
        match self.count.width {
            1 => 250,
            3 => usize::from(u16::MAX),
            5 => u32::MAX as usize,
            _ => usize::MAX,
        }
    }

    #[inline]
    fn finish(self) -> Result<(), Fail> {
        match self.seq_len {
            None => {
                self.w.close_count(self.count, self.index);
                self.w.out.push(0);
            }
            Some(_) => self.w.close_count(self.count, self.hash_len),
        }
        Ok(())
    }
}

impl ser::SerializeSeq for SeqWriter<'_, '_> {
    type Ok = ();
    type Error = Fail;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fail> {
        self.push(value)
    }
    #[inline]
    fn end(self) -> Result<(), Fail> {
        self.finish()
    }
}

impl ser::SerializeTuple for SeqWriter<'_, '_> {
    type Ok = ();
    type Error = Fail;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fail> {
        self.push(value)
    }
    #[inline]
    fn end(self) -> Result<(), Fail> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for SeqWriter<'_, '_> {
    type Ok = ();
    type Error = Fail;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fail> {
        self.push(value)
    }
    #[inline]
    fn end(self) -> Result<(), Fail> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for SeqWriter<'_, '_> {
    type Ok = ();
    type Error = Fail;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fail> {
        self.push(value)
    }
    #[inline]
    fn end(self) -> Result<(), Fail> {
        self.finish()
    }
}

/// A struct (or a struct variant's payload): a table of field names. A nil
/// field is left out.
struct StructWriter<'s, 'a> {
    w: &'s mut Writer<'a>,
    depth: usize,
    count: Count,
    fields: usize,
    variant: Option<&'static str>,
    /// Fields go through the stack guard ([`guard_at`]).
    guard: bool,
}

impl<'s, 'a> StructWriter<'s, 'a> {
    #[inline]
    fn open(
        w: &'s mut Writer<'a>,
        depth: usize,
        len: usize,
        variant: Option<&'static str>,
    ) -> Result<Self, Fail> {
        w.check_depth(depth)?;
        let count = if len <= 250 {
            // Tag, empty sequence part and one-byte count placeholder at once.
            let at = w.out.len() + 2;
            w.out.extend_from_slice(&[tag::TABLE, 0, 0]);
            Count { at, width: 1 }
        } else {
            w.out.extend_from_slice(&[tag::TABLE, 0]);
            w.open_count(Some(len))
        };
        let guard = guard_at(w, depth + 1);
        Ok(StructWriter {
            w,
            depth,
            count,
            fields: 0,
            variant,
            guard,
        })
    }

    #[inline(always)]
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Fail> {
        let start = self.w.out.len();
        // Also the check that the output has not passed its limit: the
        // name's check is stricter and fails with the same error.
        self.w.name(key.as_bytes())?;
        if at_boxed(
            nested(self.w, self.depth + 1, self.guard, value),
            Step::Field(key),
        )? {
            self.fields += 1;
        } else {
            self.w.out.truncate(start);
        }
        Ok(())
    }

    #[inline]
    fn finish(self) -> Result<(), Fail> {
        self.w.close_count(self.count, self.fields);
        Ok(())
    }
}

impl ser::SerializeStruct for StructWriter<'_, '_> {
    type Ok = ();
    type Error = Fail;
    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Fail> {
        self.field(key, value)
    }
    #[inline]
    fn end(self) -> Result<(), Fail> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for StructWriter<'_, '_> {
    type Ok = ();
    type Error = Fail;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Fail> {
        let result = self.field(key, value);
        match self.variant {
            Some(name) => at_boxed(result, Step::Field(name)),
            None => result,
        }
    }
    #[inline]
    fn end(self) -> Result<(), Fail> {
        self.finish()
    }
}

/// Map sizes up to which repeated keys are found by a linear scan.
const LINEAR_LOOKUP: usize = 16;

/// A map. Written directly while its keys are neither integers nor
/// repeated; otherwise built as a [`Table`] (see the module docs).
struct MapWriter<'s, 'a> {
    w: &'s mut Writer<'a>,
    depth: usize,
    /// Where the table starts, to rewrite it as a built table.
    start: usize,
    count: Count,
    /// The keys written so far.
    entries: Vec<Key>,
    /// The same, for lookups once there are many.
    seen: HashSet<Key>,
    /// The table being built, once direct writing stopped.
    table: Option<Table>,
    /// The key given to `serialize_key`, waiting for its value.
    key: Option<Key>,
    /// Values go through the stack guard ([`guard_at`]).
    guard: bool,
}

impl MapWriter<'_, '_> {
    /// Whether `key` forces building a table: an integer key may belong in
    /// the sequence part, and a repeated key replaces an earlier value.
    fn needs_table(&self, key: &Key) -> bool {
        matches!(key.repr(), KeyRepr::Integer(_))
            || if self.entries.len() <= LINEAR_LOOKUP {
                self.entries.contains(key)
            } else {
                self.seen.contains(key)
            }
    }

    /// Reads back the entries written so far into a table, and drops their
    /// bytes.
    fn start_table(&mut self) -> Result<Table, Fail> {
        let mut body = self.w.out.split_off(self.start);
        // Make it a complete table to decode: patch the hash count.
        let count_at = self.count.at - self.start;
        let mut fixed = body.split_off(count_at + self.count.width);
        body.truncate(count_at);
        put_varint(&mut body, self.entries.len() as u64);
        body.append(&mut fixed);
        let limits = Limits {
            max_depth: usize::MAX,
            ..*self.w.limits
        };
        match crate::proto::decode_value(&body, &limits)? {
            Value::Table(t) => Ok(t),
            _ => Err(Box::new(Error::Convert(
                "map rebuilt as a non-table".to_owned(),
            ))),
        }
    }
}

impl ser::SerializeMap for MapWriter<'_, '_> {
    type Ok = ();
    type Error = Fail;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Fail> {
        self.key = Some(guarded(|| key.serialize(KeyWriter))?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fail> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error::Convert("map value serialized before its key".to_owned()))?;
        self.w.check()?;
        if self.table.is_none() && self.needs_table(&key) {
            self.table = Some(self.start_table()?);
        }
        if let Some(table) = &mut self.table {
            let value = at(guarded(|| super::to_value(value)), Step::Key(key.as_ref()))?;
            table.set(key, value);
            return Ok(());
        }
        let start = self.w.out.len();
        self.w.key(&key)?;
        let written = at_boxed(
            nested(self.w, self.depth + 1, self.guard, value),
            Step::Key(key.as_ref()),
        )?;
        if written {
            if self.entries.len() == LINEAR_LOOKUP {
                self.seen.extend(self.entries.iter().cloned());
            }
            if self.entries.len() >= LINEAR_LOOKUP {
                self.seen.insert(key.clone());
            }
            self.entries.push(key);
        } else {
            self.w.out.truncate(start);
        }
        Ok(())
    }

    fn end(self) -> Result<(), Fail> {
        match self.table {
            None => self.w.close_count(self.count, self.entries.len()),
            Some(table) => {
                self.w.out.truncate(self.start);
                let max_depth = self.w.limits.max_depth;
                let limits = Limits {
                    max_depth: max_depth.saturating_sub(self.depth),
                    ..*self.w.limits
                };
                let value = Value::Table(table);
                crate::proto::encode_value(&value, &limits, self.w.out, self.w.max_len).map_err(
                    |e| match e {
                        Error::TooDeep { .. } => Error::TooDeep { limit: max_depth },
                        Error::Convert(_) => self.w.too_large.clone(),
                        e => e,
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// Serializes a map key into a [`Key`], with Lua's key rules.
struct KeyWriter;

impl KeyWriter {
    fn table() -> Result<Key, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Table)))
    }
}

impl ser::Serializer for KeyWriter {
    type Ok = Key;
    type Error = Fail;
    type SerializeSeq = Impossible<Key, Fail>;
    type SerializeTuple = Impossible<Key, Fail>;
    type SerializeTupleStruct = Impossible<Key, Fail>;
    type SerializeTupleVariant = Impossible<Key, Fail>;
    type SerializeMap = Impossible<Key, Fail>;
    type SerializeStruct = Impossible<Key, Fail>;
    type SerializeStructVariant = Impossible<Key, Fail>;

    fn serialize_bool(self, v: bool) -> Result<Key, Fail> {
        Ok(Key::from(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Key, Fail> {
        Ok(Key::from(i64::from(v)))
    }
    fn serialize_i16(self, v: i16) -> Result<Key, Fail> {
        Ok(Key::from(i64::from(v)))
    }
    fn serialize_i32(self, v: i32) -> Result<Key, Fail> {
        Ok(Key::from(i64::from(v)))
    }
    fn serialize_i64(self, v: i64) -> Result<Key, Fail> {
        Ok(Key::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Key, Fail> {
        i64::try_from(v)
            .map(Key::from)
            .map_err(|_| Box::new(rules::integer_out_of_range(v)))
    }
    fn serialize_u8(self, v: u8) -> Result<Key, Fail> {
        Ok(Key::from(i64::from(v)))
    }
    fn serialize_u16(self, v: u16) -> Result<Key, Fail> {
        Ok(Key::from(i64::from(v)))
    }
    fn serialize_u32(self, v: u32) -> Result<Key, Fail> {
        Ok(Key::from(i64::from(v)))
    }
    fn serialize_u64(self, v: u64) -> Result<Key, Fail> {
        i64::try_from(v)
            .map(Key::from)
            .map_err(|_| Box::new(rules::integer_out_of_range(v)))
    }
    fn serialize_u128(self, v: u128) -> Result<Key, Fail> {
        i64::try_from(v)
            .map(Key::from)
            .map_err(|_| Box::new(rules::integer_out_of_range(v)))
    }
    fn serialize_f32(self, v: f32) -> Result<Key, Fail> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Key, Fail> {
        Key::from_f64(v).map_err(|e| Box::new(Error::InvalidKey(e)))
    }
    fn serialize_char(self, v: char) -> Result<Key, Fail> {
        Ok(Key::from(&*v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> Result<Key, Fail> {
        Ok(Key::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Key, Fail> {
        Ok(Key::from(v))
    }
    fn serialize_none(self) -> Result<Key, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Nil)))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Key, Fail> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Key, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Nil)))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Key, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Nil)))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Key, Fail> {
        Ok(Key::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Key, Fail> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Key, Fail> {
        Self::table()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Impossible<Key, Fail>, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Table)))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Impossible<Key, Fail>, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Table)))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Impossible<Key, Fail>, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Table)))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Impossible<Key, Fail>, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Table)))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Impossible<Key, Fail>, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Table)))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Impossible<Key, Fail>, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Table)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Impossible<Key, Fail>, Fail> {
        Err(Box::new(Error::InvalidKey(KeyError::Table)))
    }
}
