//! The value codec: a [`Value`] to bytes and back, through serde and bincode.
//!
//! This is the only module that touches bincode. bincode 2.0.1 is pinned
//! (3.0.0 is a tombstone that does not compile) and is unmaintained
//! (RUSTSEC-2025-0141); keeping it behind these two functions means it can be
//! replaced by any encoder of the same bytes (docs/PROTOCOL.md fixes them)
//! without touching anything else.
//!
//! bincode alone is not safe on untrusted input: it recurses without limit
//! (a packet of nested tables overflows the stack) and pre-allocates whatever
//! length a packet claims. So decoding here goes through a `DeserializeSeed`
//! that
//! - counts nesting and stops at [`Limits::max_depth`], switching to a fresh
//!   stack segment when the thread's stack runs low, so any depth limit is
//!   safe on any thread;
//! - reserves room for a table only out of a budget equal to the input's
//!   length (every element takes at least one byte), so a tiny packet claiming
//!   2^40 elements reserves nothing it cannot fill;
//! - borrows strings from the input, so a claimed string length is checked
//!   against the bytes actually present before anything is allocated;
//! - with [`decode_value_within`], charges the decoded size (values, table
//!   entries, string bytes) as it goes, and stops as soon as a message
//!   would cost more memory than the caller can give it: a dense frame of
//!   one-byte elements decodes to dozens of times its size.

use std::cell::Cell;
use std::fmt;

use bincode::config::{Configuration, standard};
use bincode::enc::write::Writer;
use bincode::error::{DecodeError, EncodeError};
use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq, SerializeTuple};

use super::Limits;
use crate::error::{Error, KeyError, ProtocolError};
use crate::stack::guarded;
use crate::value::{ByteString, Key, KeyRepr, Table, Value};

/// bincode's standard configuration: little-endian, variable-length integers.
const CONFIG: Configuration = standard();

/// Variant tags of a value on the wire. Keys use the same tags.
mod tag {
    pub const NIL: u32 = 0;
    pub const BOOLEAN: u32 = 1;
    pub const INTEGER: u32 = 2;
    pub const NUMBER: u32 = 3;
    pub const STRING: u32 = 4;
    pub const TABLE: u32 = 5;
}
const VARIANTS: &[&str] = &["Nil", "Boolean", "Integer", "Number", "String", "Table"];

/// Minimum wire size of one sequence element (a one-byte tag).
const MIN_ELEMENT_BYTES: usize = 1;
/// Minimum wire size of one hash entry (a two-byte key and a one-byte value).
const MIN_ENTRY_BYTES: usize = 3;

/// Appends the encoding of `value` to `out`. Fails, leaving `out` with
/// partial bytes after its original length, when the value nests deeper than
/// `limits.max_depth` or `out` would grow past `max_len` bytes in total.
pub(crate) fn encode_value(
    value: &Value,
    limits: &Limits,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), Error> {
    let failure = Cell::new(None);
    let ctx = EncodeCtx {
        max_depth: limits.max_depth,
        failure: &failure,
    };
    let writer = LimitedWriter { out, max_len };
    let result = bincode::serde::encode_into_writer(
        WireValue {
            value,
            depth: 0,
            ctx: &ctx,
        },
        writer,
        CONFIG,
    );
    match (result, failure.take()) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(e)) => Err(e),
        // Unreachable in practice: our Serialize impls and writer record every failure.
        (Err(e), None) => Err(Error::Convert(format!("encoding failed: {e}"))),
    }
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
    let ctx = DecodeCtx {
        max_depth: limits.max_depth,
        budget: Cell::new(bytes.len()),
        failure: Cell::new(None),
        cost: Cell::new(0),
        max_cost,
    };
    let seed = ValueSeed {
        ctx: &ctx,
        depth: 0,
    };
    match bincode::serde::seed_decode_from_slice(seed, bytes, CONFIG) {
        Ok((value, read)) if read == bytes.len() => Ok((value, ctx.cost.get())),
        Ok((_, read)) => Err(ProtocolError::TrailingBytes {
            count: bytes.len().saturating_sub(read),
        }
        .into()),
        Err(e) => Err(ctx.failure.take().unwrap_or_else(|| malformed(&e))),
    }
}

/// Describes a bincode decoding error in words.
fn malformed(e: &DecodeError) -> Error {
    let text = match e {
        DecodeError::UnexpectedEnd { additional } => {
            format!("value ends early ({additional} more bytes needed)")
        }
        DecodeError::InvalidBooleanValue(b) => format!("boolean byte {b:#04x} is not 0 or 1"),
        DecodeError::OutsideUsizeRange(n) => format!("length {n} is out of range"),
        DecodeError::InvalidIntegerType { .. } => "invalid variable-length integer".to_string(),
        DecodeError::OtherString(s) => s.clone(),
        other => format!("{other:?}"),
    };
    ProtocolError::Malformed(text).into()
}

// ---------------------------------------------------------------- encoding

struct EncodeCtx<'a> {
    max_depth: usize,
    /// The structured error behind a serde error, read back after encoding.
    failure: &'a Cell<Option<Error>>,
}

impl EncodeCtx<'_> {
    fn fail<E: ser::Error>(&self, e: Error) -> E {
        let text = e.to_string();
        self.failure.set(Some(e));
        E::custom(text)
    }
}

/// Appends to a Vec, refusing to grow it past `max_len`.
struct LimitedWriter<'a> {
    out: &'a mut Vec<u8>,
    max_len: usize,
}

impl Writer for LimitedWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        if self.out.len() + bytes.len() > self.max_len {
            return Err(EncodeError::Other("frame too large"));
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

struct WireValue<'a> {
    value: &'a Value,
    /// Tables entered so far.
    depth: usize,
    ctx: &'a EncodeCtx<'a>,
}

impl ser::Serialize for WireValue<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Nil => s.serialize_unit_variant("Value", tag::NIL, "Nil"),
            Value::Boolean(b) => s.serialize_newtype_variant("Value", tag::BOOLEAN, "Boolean", b),
            Value::Integer(i) => s.serialize_newtype_variant("Value", tag::INTEGER, "Integer", i),
            Value::Number(f) => s.serialize_newtype_variant("Value", tag::NUMBER, "Number", f),
            Value::String(b) => {
                s.serialize_newtype_variant("Value", tag::STRING, "String", &WireBytes(b))
            }
            Value::Table(table) => {
                if self.depth >= self.ctx.max_depth {
                    return Err(self.ctx.fail(Error::TooDeep {
                        limit: self.ctx.max_depth,
                    }));
                }
                let inner = WireTable {
                    table,
                    depth: self.depth + 1,
                    ctx: self.ctx,
                };
                guarded(|| s.serialize_newtype_variant("Value", tag::TABLE, "Table", &inner))
            }
        }
    }
}

/// A byte string as one length-prefixed run (not one element per byte).
struct WireBytes<'a>(&'a ByteString);

impl ser::Serialize for WireBytes<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0.as_bytes())
    }
}

/// A table: its sequence part, then its hash part.
struct WireTable<'a> {
    table: &'a Table,
    depth: usize,
    ctx: &'a EncodeCtx<'a>,
}

impl ser::Serialize for WireTable<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut tuple = s.serialize_tuple(2)?;
        tuple.serialize_element(&WireSequence(self))?;
        tuple.serialize_element(&WireHash(self))?;
        tuple.end()
    }
}

struct WireSequence<'a>(&'a WireTable<'a>);

impl ser::Serialize for WireSequence<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let items = t.table.sequence();
        let mut seq = s.serialize_seq(Some(items.len()))?;
        for value in items {
            seq.serialize_element(&WireValue {
                value,
                depth: t.depth,
                ctx: t.ctx,
            })?;
        }
        seq.end()
    }
}

struct WireHash<'a>(&'a WireTable<'a>);

impl ser::Serialize for WireHash<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut map = s.serialize_map(Some(t.table.hash_len()))?;
        let value = |value| WireValue {
            value,
            depth: t.depth,
            ctx: t.ctx,
        };
        for (i, v) in t.table.array_tail() {
            map.serialize_entry(&WireKey::Integer(i), &value(v))?;
        }
        for (key, v) in t.table.hash_part() {
            map.serialize_entry(&WireKey::Key(key), &value(v))?;
        }
        map.end()
    }
}

/// A key, with the same tags as the equal value: an integer key from the
/// array part, or a key of the hash part.
enum WireKey<'a> {
    Integer(i64),
    Key(&'a Key),
}

impl ser::Serialize for WireKey<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let key = match self {
            WireKey::Integer(i) => {
                return s.serialize_newtype_variant("Value", tag::INTEGER, "Integer", i);
            }
            WireKey::Key(key) => key,
        };
        match key.repr() {
            KeyRepr::Boolean(b) => s.serialize_newtype_variant("Value", tag::BOOLEAN, "Boolean", b),
            KeyRepr::Integer(i) => s.serialize_newtype_variant("Value", tag::INTEGER, "Integer", i),
            KeyRepr::Number(bits) => {
                let f = f64::from_bits(*bits);
                s.serialize_newtype_variant("Value", tag::NUMBER, "Number", &f)
            }
            KeyRepr::String(b) => {
                s.serialize_newtype_variant("Value", tag::STRING, "String", &WireBytes(b))
            }
        }
    }
}

// ---------------------------------------------------------------- decoding

struct DecodeCtx {
    max_depth: usize,
    /// Bytes of input not yet promised to a reservation.
    budget: Cell<usize>,
    /// The structured error behind a serde error, read back after decoding.
    failure: Cell<Option<Error>>,
    /// Estimated bytes of memory the decoded value takes so far.
    cost: Cell<usize>,
    max_cost: usize,
}

/// Memory one value takes where it is stored (a sequence slot, a hash value).
const VALUE_COST: usize = std::mem::size_of::<Value>();

impl DecodeCtx {
    /// Charges `n` bytes of decoded memory; an error once over the limit.
    fn spend<E: de::Error>(&self, n: usize) -> Result<(), E> {
        let cost = self.cost.get().saturating_add(n);
        self.cost.set(cost);
        if cost > self.max_cost {
            return Err(self.fail(
                ProtocolError::DecodedTooLarge {
                    limit: self.max_cost,
                }
                .into(),
            ));
        }
        Ok(())
    }

    fn fail<E: de::Error>(&self, e: Error) -> E {
        let text = e.to_string();
        self.failure.set(Some(e));
        E::custom(text)
    }

    /// How many of `claimed` items of at least `min_bytes` each to reserve
    /// room for: never more than the unpromised input could hold.
    fn reserve(&self, claimed: usize, min_bytes: usize) -> usize {
        let budget = self.budget.get();
        let n = claimed.min(budget / min_bytes);
        self.budget.set(budget - n * min_bytes);
        n
    }
}

#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    ctx: &'a DecodeCtx,
    /// Tables entered so far.
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_enum("Value", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tablenet value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, variant) = data.variant::<u32>()?;
        self.ctx.spend(VALUE_COST)?;
        Ok(match tag {
            tag::NIL => {
                variant.unit_variant()?;
                Value::Nil
            }
            tag::BOOLEAN => Value::Boolean(variant.newtype_variant()?),
            tag::INTEGER => Value::Integer(variant.newtype_variant()?),
            tag::NUMBER => Value::Number(variant.newtype_variant()?),
            tag::STRING => {
                Value::String(variant.newtype_variant_seed(BytesSeed { ctx: self.ctx })?)
            }
            tag::TABLE => {
                self.ctx.spend(std::mem::size_of::<Table>())?;
                if self.depth >= self.ctx.max_depth {
                    return Err(self.ctx.fail(Error::TooDeep {
                        limit: self.ctx.max_depth,
                    }));
                }
                let visitor = TableVisitor {
                    ctx: self.ctx,
                    depth: self.depth + 1,
                };
                Value::Table(guarded(|| variant.tuple_variant(2, visitor))?)
            }
            other => {
                return Err(self
                    .ctx
                    .fail(ProtocolError::Malformed(format!("unknown value tag {other}")).into()));
            }
        })
    }
}

/// Reads a byte string borrowed from the input, charges it, then copies it
/// once.
struct BytesSeed<'a> {
    ctx: &'a DecodeCtx,
}

impl<'de> DeserializeSeed<'de> for BytesSeed<'_> {
    type Value = ByteString;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<ByteString, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for BytesSeed<'_> {
    type Value = ByteString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteString, E> {
        // Charged before the copy: a refused string costs nothing.
        self.ctx.spend(ByteString::heap_size_of(v.len()))?;
        Ok(ByteString::from(v))
    }
}

/// A table's two parts, decoded straight into one `Table`.
struct TableVisitor<'a> {
    ctx: &'a DecodeCtx,
    depth: usize,
}

impl<'de> Visitor<'de> for TableVisitor<'_> {
    type Value = Table;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut parts: A) -> Result<Table, A::Error> {
        let mut table = Table::new();
        let ctx = self.ctx;
        let depth = self.depth;
        let truncated = || ctx.fail(ProtocolError::Malformed("table ends early".into()).into());
        parts
            .next_element_seed(SequencePart {
                ctx,
                depth,
                table: &mut table,
            })?
            .ok_or_else(truncated)?;
        parts
            .next_element_seed(HashPart {
                ctx,
                depth,
                table: &mut table,
            })?
            .ok_or_else(truncated)?;
        Ok(table)
    }
}

struct SequencePart<'a, 't> {
    ctx: &'a DecodeCtx,
    depth: usize,
    table: &'t mut Table,
}

impl<'de> DeserializeSeed<'de> for SequencePart<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SequencePart<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table's sequence part")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let room = self
            .ctx
            .reserve(seq.size_hint().unwrap_or(0), MIN_ELEMENT_BYTES);
        self.table.reserve_sequence(room);
        let seed = ValueSeed {
            ctx: self.ctx,
            depth: self.depth,
        };
        let mut index: i64 = 0;
        while let Some(value) = seq.next_element_seed(seed)? {
            index += 1;
            // A nil leaves a hole; later elements then land in the hash part
            // under their index, as in the Lua constructor `{1, nil, 3}`.
            if !value.is_nil() {
                // Indices only grow, so the key is always new.
                let grown = self
                    .table
                    .insert_new(Key::from(index), value)
                    .map_err(|_| {
                        self.ctx
                            .fail(ProtocolError::Malformed("sequence index repeated".into()).into())
                    })?;
                self.ctx.spend(grown)?;
            }
        }
        Ok(())
    }
}

struct HashPart<'a, 't> {
    ctx: &'a DecodeCtx,
    depth: usize,
    table: &'t mut Table,
}

impl<'de> DeserializeSeed<'de> for HashPart<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HashPart<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table's hash part")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let room = self
            .ctx
            .reserve(map.size_hint().unwrap_or(0), MIN_ENTRY_BYTES);
        // Room in the hash part, reserved at the first key that goes there
        // for sure: integer keys mostly land in the array part.
        let mut room = Some(room);
        let seed = ValueSeed {
            ctx: self.ctx,
            depth: self.depth,
        };
        while let Some(key) = map.next_key_seed(KeySeed { ctx: self.ctx })? {
            if !matches!(key.repr(), KeyRepr::Integer(_))
                && let Some(room) = room.take()
            {
                self.table.reserve_hash(room);
            }
            let value = map.next_value_seed(seed)?;
            // A key seen before (in either part) makes the encoding
            // ambiguous: refuse it. A nil value sets nothing, as in Lua.
            let duplicate = if value.is_nil() {
                self.table.contains_key(key.as_ref()).then_some(key)
            } else {
                match self.table.insert_new(key, value) {
                    Ok(grown) => {
                        self.ctx.spend(grown)?;
                        None
                    }
                    Err(key) => Some(key),
                }
            };
            if let Some(key) = duplicate {
                let key = crate::error::inert(key.to_string().as_bytes());
                return Err(self.ctx.fail(ProtocolError::DuplicateKey { key }.into()));
            }
        }
        Ok(())
    }
}

/// A key: a value tag and payload, with Lua's key rules applied.
struct KeySeed<'a> {
    ctx: &'a DecodeCtx,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_enum("Value", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table key")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Key, A::Error> {
        let (tag, variant) = data.variant::<u32>()?;
        let bad = |e: KeyError| self.ctx.fail(ProtocolError::InvalidKey(e).into());
        match tag {
            tag::BOOLEAN => Ok(Key::from(variant.newtype_variant::<bool>()?)),
            tag::INTEGER => Ok(Key::from(variant.newtype_variant::<i64>()?)),
            tag::NUMBER => Key::from_f64(variant.newtype_variant()?).map_err(bad),
            tag::STRING => Ok(Key::from(
                variant.newtype_variant_seed(BytesSeed { ctx: self.ctx })?,
            )),
            tag::NIL => Err(bad(KeyError::Nil)),
            tag::TABLE => Err(bad(KeyError::Table)),
            other => Err(self
                .ctx
                .fail(ProtocolError::Malformed(format!("unknown key tag {other}")).into())),
        }
    }
}
