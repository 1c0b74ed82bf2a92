//! The old value codec, through serde and bincode 2.0.1, kept as a
//! test-only reference for the hand-written codec in [`super::wire`].
//!
//! Until commit 0efc4f2 this was `src/proto/wire.rs`. Commit 8eeb58f
//! replaced it with direct loops over byte slices that are meant to produce
//! and accept exactly the same bytes, with the same limits (depth, decoded
//! cost, reservation budget) and the same errors. This copy exists so that
//! claim stays checked: the property tests at the bottom run both codecs on
//! random values, random bytes and mutated encodings and require the same
//! bytes, the same values, the same costs and the same error variants. It
//! also pins the wire format to what bincode 2's standard configuration
//! itself produces (docs/PROTOCOL.md, sections 3 and 6), which is why
//! bincode stays a dev-dependency.
//!
//! Trimmed to what the comparison needs (encode, costed decode) and renamed
//! (`reference_*`); otherwise the code is the old module's, adapted only
//! where the crate's internals moved. Never compiled outside tests.

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
pub(super) fn reference_encode_value(
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

/// Decodes one value that must fill `bytes` exactly, refusing one whose
/// decoded form would cost more than `max_cost` bytes; also gives the
/// value's estimated decoded size (the old `decode_value_costed`).
pub(super) fn reference_decode_value_costed(
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

// ------------------------------------------------- equivalence with `wire`

#[cfg(test)]
mod equivalence {
    use proptest::prelude::*;

    use super::super::tests::{arb_key, arb_value, same};
    use super::super::wire::{decode_value_costed, encode_value};
    use super::{reference_decode_value_costed, reference_encode_value};
    use crate::error::{Error, ProtocolError};
    use crate::proto::Limits;
    use crate::value::{Key, Table, Value};

    /// What two results must agree on: the whole error, except the free text
    /// of `Malformed` and `Convert`, which the two codecs word differently
    /// (bincode's messages carry, for one, how many more bytes it needed).
    fn kind(e: &Error) -> String {
        match e {
            Error::Protocol(ProtocolError::Malformed(_)) => "Malformed".to_string(),
            Error::Convert(_) => "Convert".to_string(),
            other => format!("{other:?}"),
        }
    }

    fn limits(max_depth: usize) -> Limits {
        Limits {
            max_depth,
            ..Limits::default()
        }
    }

    /// Integers around every varint boundary (of their zigzag form) and the
    /// extremes.
    fn arb_big_integer() -> impl Strategy<Value = i64> {
        let edges: Vec<i64> = [0u64, 125, 126, 250, 251, 32_767, 32_768, 65_535, 65_536]
            .into_iter()
            .chain([
                u32::MAX as u64 / 2,
                u32::MAX as u64 / 2 + 1,
                i64::MAX as u64,
            ])
            .flat_map(|n| {
                let n = n as i64;
                [
                    n,
                    -n,
                    n.saturating_sub(1),
                    -n.saturating_add(1),
                    n.saturating_add(1),
                ]
            })
            .chain([i64::MIN, i64::MAX])
            .collect();
        prop_oneof![
            proptest::sample::select(edges),
            any::<i64>(),
            (0u32..64).prop_map(|s| (1i64 << (s % 63)) - 1),
        ]
    }

    /// Strings whose lengths sit on the one-, three- and five-byte varint
    /// boundaries, and a few plain long ones.
    fn arb_long_string() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 240..260),
            1 => (65_530usize..65_542, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
            4 => proptest::collection::vec(any::<u8>(), 0..1000),
        ]
    }

    fn arb_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            arb_big_integer().prop_map(Value::Integer),
            arb_long_string().prop_map(Value::from),
            any::<f64>().prop_map(Value::Number),
            Just(Value::Number(f64::NAN)),
            Just(Value::Number(-0.0)),
        ]
    }

    /// A table with holes and every kind of key: slots 1..n set or left
    /// empty at random, integer keys past the end, and other keys.
    fn arb_holey_table() -> impl Strategy<Value = Value> {
        let element = prop_oneof![
            3 => any::<i64>().prop_map(Value::Integer),
            1 => arb_leaf(),
            1 => arb_value(),
            1 => Just(Value::Nil),
        ];
        (
            proptest::collection::vec(proptest::option::weighted(0.7, element.clone()), 0..24),
            proptest::collection::vec((arb_key(), element.clone()), 0..8),
            proptest::collection::vec((arb_big_integer(), element), 0..4),
            proptest::collection::vec(Just(Value::Nil), 0..3),
        )
            .prop_map(|(slots, keyed, far, nils)| {
                // Sometimes a sequence with nils in it, sometimes set keys.
                let mut t = if nils.is_empty() {
                    Table::new()
                } else {
                    let mut seq: Vec<Value> = slots.iter().flatten().cloned().collect();
                    seq.extend(nils);
                    seq.push(Value::Boolean(true));
                    Table::from_sequence(seq)
                };
                for (i, v) in (1i64..).zip(slots) {
                    if let Some(v) = v {
                        t.set(i, v);
                    }
                }
                for (k, v) in keyed {
                    t.set(k, v);
                }
                for (i, v) in far {
                    t.set(Key::from(i), v);
                }
                Value::Table(t)
            })
    }

    /// `v` as the only element (or the value under a string key) of `n`
    /// tables, one inside the other.
    fn nest(mut v: Value, n: usize, keyed: bool) -> Value {
        for _ in 0..n {
            let mut t = Table::new();
            if keyed {
                t.set("k", v);
            } else {
                t.set(1, v);
            }
            v = Value::Table(t);
        }
        v
    }

    /// A value and the depth limit to code it under: ordinary values under
    /// the default limit, and values nested to just under, at or just over
    /// a small limit.
    fn arb_case() -> impl Strategy<Value = (Value, usize)> {
        let value = prop_oneof![
            3 => arb_value(),
            2 => arb_holey_table(),
            1 => arb_leaf(),
        ];
        prop_oneof![
            2 => value.clone().prop_map(|v| (v, Limits::DEFAULT_MAX_DEPTH)),
            2 => (value, 1usize..12, 0usize..4, any::<bool>()).prop_map(
                |(v, max_depth, slack, keyed)| {
                    // v is up to about 7 tables deep itself.
                    let n = (max_depth + slack).saturating_sub(4);
                    (nest(v, n, keyed), max_depth)
                }
            ),
        ]
    }

    /// One change to an encoding.
    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Set(usize, u8),
        Insert(usize, u8),
        Delete(usize),
        Truncate(usize),
    }

    /// Bytes that mean something on the wire: the tags, and the varint
    /// prefixes around 250.
    fn arb_wire_byte() -> impl Strategy<Value = u8> {
        prop_oneof![0u8..8, 248u8..=255, any::<u8>()]
    }

    fn arb_mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, 1 << bit)),
            (any::<usize>(), arb_wire_byte()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (any::<usize>(), arb_wire_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Delete),
            any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
        let len = bytes.len();
        match *m {
            Mutation::Flip(i, mask) if len > 0 => bytes[i % len] ^= mask,
            Mutation::Set(i, b) if len > 0 => bytes[i % len] = b,
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(n) => bytes.truncate(n % (len + 1)),
            _ => {}
        }
    }

    /// Encodes with both codecs under `max_len` and requires the same bytes
    /// or the same error.
    fn check_encode(v: &Value, l: &Limits, max_len: usize) -> Result<(), TestCaseError> {
        let (mut new, mut old) = (vec![0xAA], vec![0xAA]);
        let a = encode_value(v, l, &mut new, max_len);
        let b = reference_encode_value(v, l, &mut old, max_len);
        match (&a, &b) {
            (Ok(()), Ok(())) => prop_assert_eq!(&new, &old, "bytes of {:?}", v),
            (Err(x), Err(y)) => prop_assert_eq!(kind(x), kind(y), "encoding {:?}", v),
            _ => prop_assert!(false, "encode of {:?}: new {:?}, reference {:?}", v, a, b),
        }
        Ok(())
    }

    /// Decodes `bytes` with both codecs under three cost caps (none, a
    /// random one, and one byte under the value's own cost) and requires the
    /// same value and cost, or the same error.
    fn check_decode(bytes: &[u8], l: &Limits, extra_cap: usize) -> Result<(), TestCaseError> {
        let full = decode_value_costed(bytes, l, usize::MAX);
        let cost = full.as_ref().map_or(extra_cap, |(_, c)| *c);
        for cap in [usize::MAX, extra_cap, cost.saturating_sub(1)] {
            let a = decode_value_costed(bytes, l, cap);
            let b = reference_decode_value_costed(bytes, l, cap);
            match (&a, &b) {
                (Ok((x, cx)), Ok((y, cy))) => {
                    prop_assert!(same(x, y), "{:02x?} decoded to {:?} and {:?}", bytes, x, y);
                    prop_assert_eq!(cx, cy, "cost of {:02x?} under cap {}", bytes, cap);
                    if cap == usize::MAX {
                        // The same layout too: both encode to the same bytes.
                        let (mut ex, mut ey) = (Vec::new(), Vec::new());
                        encode_value(x, l, &mut ex, usize::MAX).unwrap();
                        encode_value(y, l, &mut ey, usize::MAX).unwrap();
                        prop_assert_eq!(ex, ey);
                    }
                }
                (Err(x), Err(y)) => prop_assert_eq!(
                    kind(x),
                    kind(y),
                    "decoding {:02x?} under cap {}",
                    bytes,
                    cap
                ),
                _ => prop_assert!(
                    false,
                    "decode of {:02x?} under cap {}: new {:?}, reference {:?}",
                    bytes,
                    cap,
                    a,
                    b
                ),
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// (a) The same bytes (or the same error) for any value, depth limit
        /// and size limit; and (b, c) both decode those bytes back alike.
        #[test]
        fn wire_matches_bincode_reference_on_values(
            (v, max_depth) in arb_case(),
            cut in any::<usize>(),
            cap in 0usize..4096,
        ) {
            let l = limits(max_depth);
            check_encode(&v, &l, usize::MAX)?;
            let mut full = Vec::new();
            if encode_value(&v, &l, &mut full, usize::MAX).is_ok() {
                // A size limit somewhere inside the encoding.
                check_encode(&v, &l, 1 + cut % (full.len() + 1))?;
                check_decode(&full, &l, cap)?;
                // And under a depth limit one lower.
                check_decode(&full, &limits(max_depth.saturating_sub(1).max(1)), cap)?;
            }
        }

        /// (b, c) Valid encodings with a few bytes flipped, set, inserted,
        /// deleted or cut off decode alike.
        #[test]
        fn wire_matches_bincode_reference_on_mutated_encodings(
            (v, max_depth) in arb_case(),
            mutations in proptest::collection::vec(arb_mutation(), 1..4),
            cap in 0usize..4096,
        ) {
            let l = limits(max_depth);
            let mut bytes = Vec::new();
            if encode_value(&v, &l, &mut bytes, usize::MAX).is_ok() {
                for m in &mutations {
                    mutate(&mut bytes, m);
                }
                check_decode(&bytes, &l, cap)?;
            }
        }

        /// (b, c) Random bytes, plain or made of wire-meaningful bytes, and
        /// after a table tag, decode alike.
        #[test]
        fn wire_matches_bincode_reference_on_random_bytes(
            plain in proptest::collection::vec(any::<u8>(), 0..64),
            wire in proptest::collection::vec(arb_wire_byte(), 0..256),
            max_depth in 1usize..8,
            cap in 0usize..4096,
        ) {
            let l = limits(max_depth);
            check_decode(&plain, &l, cap)?;
            check_decode(&wire, &l, cap)?;
            let mut table = vec![5];
            table.extend_from_slice(&wire);
            check_decode(&table, &l, cap)?;
        }
    }
}
