//! [`to_value`]: a serde `Serializer` whose output is a [`Value`].

use serde::ser::{self, Serialize};

use super::path::{Step, at};
use super::rules;
use crate::error::Error;
use crate::stack::guarded;
use crate::value::{Key, Table, Value};

/// Converts any `T: Serialize` into a [`Value`].
///
/// Structs and maps become tables, sequences and tuples become tables with
/// keys `1..n`, `None` becomes nil (so a `None` field leaves its key absent),
/// and enum variants become their name or `{Variant = payload}`. Fails when
/// an integer does not fit `i64`, or a map key is nil, NaN or a table.
///
/// ```
/// use tablenet::{to_value, Value};
/// #[derive(serde::Serialize)]
/// struct Msg { op_code: u8, data: &'static str, extra: Option<i32> }
/// let v = to_value(&Msg { op_code: 10, data: "From server", extra: None }).unwrap();
/// assert_eq!(v["op_code"], Value::Integer(10));
/// assert_eq!(v["data"].as_str(), Some("From server"));
/// assert!(v["extra"].is_nil());
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    value.serialize(ValueSerializer)
}

/// Serializes a nested value: one table level deeper, so stack-guarded.
fn nested<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    guarded(|| value.serialize(ValueSerializer))
}

/// `{name = payload}`. A nil payload (`Variant(None)`, `Variant(())`) cannot
/// live in a table, so it becomes the bare name, which reads back as that
/// variant with a nil payload.
fn variant(name: &'static str, payload: Value) -> Value {
    if payload.is_nil() {
        return Value::String(name.into());
    }
    let mut table = Table::with_capacity(0, 1);
    table.set(name, payload);
    Value::Table(table)
}

/// The serde `Serializer` behind [`to_value`].
struct ValueSerializer;

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = SeqSerializer;
    type SerializeTuple = SeqSerializer;
    type SerializeTupleStruct = SeqSerializer;
    type SerializeTupleVariant = VariantSerializer<SeqSerializer>;
    type SerializeMap = MapSerializer;
    type SerializeStruct = StructSerializer;
    type SerializeStructVariant = VariantSerializer<StructSerializer>;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Boolean(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        Ok(Value::Integer(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        Value::try_from(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        Value::try_from(v)
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Error> {
        Value::try_from(v)
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        Ok(Value::Number(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(Value::from(&*v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Error> {
        let value = value.serialize(self)?;
        if value.is_nil() {
            return Err(rules::nil_in_some());
        }
        Ok(value)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant_name: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        Ok(variant(
            variant_name,
            at(nested(value), Step::Field(variant_name))?,
        ))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSerializer, Error> {
        Ok(SeqSerializer {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            holes: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSerializer, Error> {
        Ok(SeqSerializer {
            items: Vec::with_capacity(len.min(4096)),
            holes: true,
        })
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqSerializer, Error> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSerializer<SeqSerializer>, Error> {
        Ok(VariantSerializer {
            name: variant,
            inner: self.serialize_tuple(len)?,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapSerializer, Error> {
        // No capacity hint: integer keys may land in the sequence part.
        Ok(MapSerializer {
            table: Table::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<StructSerializer, Error> {
        Ok(StructSerializer(Table::with_capacity(0, len)))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSerializer<StructSerializer>, Error> {
        Ok(VariantSerializer {
            name: variant,
            inner: self.serialize_struct(name, len)?,
        })
    }
}

/// Builds a sequence (also tuples and tuple structs). In a tuple, nil
/// elements leave holes, as in the Lua constructor `{1, nil, 3}` (its length
/// is fixed, so it reads back); in a sequence they are an error.
struct SeqSerializer {
    items: Vec<Value>,
    /// A tuple: nil elements are holes.
    holes: bool,
}

impl SeqSerializer {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let index = self.items.len();
        let value = at(nested(value), Step::Index(index))?;
        if value.is_nil() && !self.holes {
            return Err(super::path::within(
                rules::nil_in_sequence(),
                Step::Index(index),
            ));
        }
        self.items.push(value);
        Ok(())
    }
    fn finish(self) -> Value {
        Value::Table(Table::from_sequence(self.items))
    }
}

impl ser::SerializeSeq for SeqSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}

/// Builds a map. Keys follow Lua's rules (nil, NaN and tables are refused;
/// `1.0` is the key `1`); a repeated key keeps the last value.
struct MapSerializer {
    table: Table,
    /// The key given to `serialize_key`, waiting for its value.
    key: Option<Key>,
}

impl ser::SerializeMap for MapSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(Key::try_from(nested(key)?)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error::Convert("map value serialized before its key".to_owned()))?;
        let value = at(nested(value), Step::Key(key.as_ref()))?;
        self.table.set(key, value);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Table(self.table))
    }
}

/// Builds a struct: a table keyed by field name. A nil field is left absent.
struct StructSerializer(Table);

impl ser::SerializeStruct for StructSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.0.set(key, at(nested(value), Step::Field(key))?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Table(self.0))
    }
}

/// A tuple or struct variant: the payload built by `inner`, wrapped as
/// `{name = payload}`.
struct VariantSerializer<S> {
    name: &'static str,
    inner: S,
}

impl ser::SerializeTupleVariant for VariantSerializer<SeqSerializer> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        at(self.inner.push(value), Step::Field(self.name))
    }
    fn end(self) -> Result<Value, Error> {
        Ok(variant(self.name, self.inner.finish()))
    }
}

impl ser::SerializeStructVariant for VariantSerializer<StructSerializer> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        at(
            ser::SerializeStruct::serialize_field(&mut self.inner, key, value),
            Step::Field(self.name),
        )
    }
    fn end(self) -> Result<Value, Error> {
        Ok(variant(self.name, Value::Table(self.inner.0)))
    }
}
