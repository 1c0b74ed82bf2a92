//! [`Table`]: a Lua table of basic values, with a sequence part and a hash part.

use std::mem;

use super::Value;
use super::hash_part::{HashIntoIter, HashIter, HashPart};
use super::key::{Key, KeyRef, Probe, Repr};
use crate::error::KeyError;
use crate::stack::guarded;

/// A Lua-like table.
///
/// Keys `1..=n` with non-nil values live in a compact *sequence part* (what
/// Lua's `#t` measures); every other key lives in a *hash part* that keeps
/// insertion order (removing a key moves the last-inserted entry into its
/// place). Lua's key rules apply: nil and NaN are never keys, a float with an
/// integral value is the same key as that integer, and setting a key to
/// [`Value::Nil`] removes it.
///
/// Deeply nested tables are safe: dropping never recurses, and cloning,
/// comparing and formatting switch to a fresh stack segment when needed.
///
/// ```
/// use tablenet::{Table, Value, table};
/// let mut t = table! { "OpCode" => 10, "Data" => "From server" };
/// t.push("first"); // key 1
/// t.set(2, "second");
/// assert_eq!(t.get("OpCode"), Some(&Value::Integer(10)));
/// assert_eq!(t.get(2.0), t.get(2)); // 2.0 and 2 are the same key
/// assert_eq!(t.sequence_len(), 2);
/// t.set("OpCode", Value::Nil); // removes
/// assert_eq!(t.get("OpCode"), None);
/// ```
#[derive(Default)]
pub struct Table {
    /// Values for keys 1..=seq.len(); never `Nil`.
    seq: Vec<Value>,
    /// All other keys; values never `Nil`; never holds the key `seq.len() + 1`.
    hash: HashPart,
}

impl Table {
    /// An empty table. Does not allocate.
    pub const fn new() -> Table {
        Table {
            seq: Vec::new(),
            hash: HashPart::new(),
        }
    }

    /// An empty table with room for `seq` sequence values and `hash` other entries.
    pub fn with_capacity(seq: usize, hash: usize) -> Table {
        let mut t = Table {
            seq: Vec::with_capacity(seq),
            hash: HashPart::new(),
        };
        t.hash.reserve(hash);
        t
    }

    /// Builds a table whose sequence part is `values` (keys 1, 2, ...).
    /// A `Nil` in `values` leaves a hole, as in the Lua constructor `{1, nil, 3}`.
    pub fn from_sequence(values: Vec<Value>) -> Table {
        if values.iter().all(|v| !v.is_nil()) {
            return Table {
                seq: values,
                hash: HashPart::new(),
            };
        }
        let mut t = Table::new();
        for (i, v) in (1i64..).zip(values) {
            t.set(i, v);
        }
        t
    }

    /// Number of entries (sequence and hash part together).
    pub fn len(&self) -> usize {
        self.seq.len() + self.hash.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the sequence part: the `n` such that keys `1..=n` are all
    /// present. This is a border in Lua's sense, what `#t` returns.
    pub fn sequence_len(&self) -> usize {
        self.seq.len()
    }

    /// The values for keys `1..=sequence_len()`, in order.
    pub fn sequence(&self) -> &[Value] {
        &self.seq
    }

    /// Number of entries outside the sequence part.
    pub fn hash_len(&self) -> usize {
        self.hash.len()
    }

    /// Where a normalised integer key sits in the sequence part, if it does.
    fn seq_index(&self, i: i64) -> Option<usize> {
        let idx = usize::try_from(i).ok()?.checked_sub(1)?;
        (idx < self.seq.len()).then_some(idx)
    }

    /// The value at `key`, or `None` when absent (Lua would give nil).
    pub fn get<'k>(&self, key: impl Into<KeyRef<'k>>) -> Option<&Value> {
        let key = key.into().normalize()?;
        if let KeyRef::Integer(i) = key
            && let Some(idx) = self.seq_index(i)
        {
            return self.seq.get(idx);
        }
        self.hash.get(Probe(key))
    }

    /// True when `key` is present.
    pub fn contains_key<'k>(&self, key: impl Into<KeyRef<'k>>) -> bool {
        self.get(key).is_some()
    }

    /// The nested table at `key`, for changing it in place.
    ///
    /// (There is no general `get_mut`: writing `Nil` through it would break
    /// the rule that absent keys have no entry. Use [`Table::set`] for values.)
    pub fn get_table_mut<'k>(&mut self, key: impl Into<KeyRef<'k>>) -> Option<&mut Table> {
        let key = key.into().normalize()?;
        let slot = match key {
            KeyRef::Integer(i) if self.seq_index(i).is_some() => {
                let idx = self.seq_index(i)?;
                self.seq.get_mut(idx)?
            }
            _ => self.hash.get_mut(Probe(key))?,
        };
        match slot {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// Sets `key` to `value`, returning the previous value. Setting
    /// [`Value::Nil`] removes the key.
    ///
    /// For float keys, or keys that arrive as [`Value`]s, use
    /// [`Table::try_set`] or build the key with `Key::try_from`.
    pub fn set(&mut self, key: impl Into<Key>, value: impl Into<Value>) -> Option<Value> {
        self.set_key(key.into(), value.into())
    }

    /// Sets a key given as a [`Value`], as Lua's `t[k] = v` does. Fails, and
    /// changes nothing, when `key` is nil, NaN or a table.
    pub fn try_set(&mut self, key: Value, value: Value) -> Result<Option<Value>, KeyError> {
        Ok(self.set_key(Key::try_from(key)?, value))
    }

    /// Removes `key`, returning its value.
    pub fn remove<'k>(&mut self, key: impl Into<KeyRef<'k>>) -> Option<Value> {
        let key = key.into().to_key().ok()?;
        self.set_key(key, Value::Nil)
    }

    /// Appends `value` at key `sequence_len() + 1`, like Lua's
    /// `table.insert(t, v)`. Appending `Nil` does nothing.
    pub fn push(&mut self, value: impl Into<Value>) {
        let value = value.into();
        if !value.is_nil() {
            self.seq.push(value);
            self.absorb_following();
        }
    }

    /// Sets a normalised key. The one place that keeps the two parts' invariants.
    pub(crate) fn set_key(&mut self, key: Key, value: Value) -> Option<Value> {
        let n = self.seq.len();
        if let Repr::Integer(i) = *key.repr() {
            if let Some(idx) = self.seq_index(i) {
                if !value.is_nil() {
                    return self.seq.get_mut(idx).map(|slot| mem::replace(slot, value));
                }
                // Removing key i from the sequence: keys after it move to the
                // hash part, as in Lua, so they stay reachable by their keys.
                let tail = self.seq.split_off(idx + 1);
                let old = self.seq.pop();
                self.hash.reserve(tail.len());
                for (k, v) in (i + 1..).zip(tail) {
                    self.hash.insert(Key::from(k), v);
                }
                return old;
            }
            if i as u64 == n as u64 + 1 && !value.is_nil() {
                // The hash part never holds key n + 1, so nothing is replaced.
                self.seq.push(value);
                self.absorb_following();
                return None;
            }
        }
        if value.is_nil() {
            self.hash.swap_remove(Probe(key.as_ref()))
        } else {
            self.hash.insert(key, value)
        }
    }

    /// Inserts a key that must not be present yet (the decoder's rule: a key
    /// set twice is an error). Gives the key back when it is present.
    pub(crate) fn insert_new(&mut self, key: Key, value: Value) -> Result<(), Key> {
        if let Repr::Integer(i) = *key.repr() {
            if self.seq_index(i).is_some() {
                return Err(key);
            }
            if i as u64 == self.seq.len() as u64 + 1 {
                self.push(value);
                return Ok(());
            }
        }
        self.hash.insert_new(key, value).map_err(|(key, _)| key)
    }

    /// Makes room for `n` more sequence values.
    pub(crate) fn reserve_sequence(&mut self, n: usize) {
        self.seq.reserve(n);
    }

    /// Makes room for `n` more hash entries.
    pub(crate) fn reserve_hash(&mut self, n: usize) {
        self.hash.reserve(n);
    }

    /// Moves keys `n + 1, n + 2, ...` from the hash part into the sequence.
    fn absorb_following(&mut self) {
        if self.hash.len() == 0 {
            return;
        }
        while let Ok(next) = i64::try_from(self.seq.len() + 1) {
            match self.hash.swap_remove(Probe(KeyRef::Integer(next))) {
                Some(v) => self.seq.push(v),
                None => break,
            }
        }
    }

    /// Iterates over all entries: the sequence part in order, then the hash
    /// part in insertion order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            seq: self.seq.iter(),
            next_index: 1,
            hash: self.hash.iter(),
        }
    }

    /// The hash part's entries, in insertion order.
    pub(crate) fn hash_entries(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.hash.iter()
    }

    /// Moves every nested non-empty table out into `out`, leaving empty ones.
    fn take_children(&mut self, out: &mut Vec<Table>) {
        let mut take = |v: &mut Value| {
            if let Value::Table(t) = v
                && !t.is_empty()
            {
                out.push(mem::take(t));
            }
        };
        self.seq.iter_mut().for_each(&mut take);
        self.hash.for_each_value_mut(take);
    }
}

impl Drop for Table {
    /// Iterative, so a table nested a million deep drops without recursing.
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut t) = pending.pop() {
            t.take_children(&mut pending);
            // `t` now holds no non-empty tables, so its own drop is shallow.
        }
    }
}

impl Clone for Table {
    fn clone(&self) -> Table {
        guarded(|| Table {
            seq: self.seq.clone(),
            hash: self.hash.clone(),
        })
    }
}

impl PartialEq for Table {
    /// Same keys with equal values, whatever the hash part's order.
    fn eq(&self, other: &Table) -> bool {
        if self.seq.len() != other.seq.len() || self.hash_len() != other.hash_len() {
            return false;
        }
        guarded(|| {
            self.seq == other.seq
                && self
                    .hash
                    .iter()
                    .all(|(k, v)| other.hash.get(Probe(k.as_ref())) == Some(v))
        })
    }
}

/// Iterator over a table's entries; see [`Table::iter`].
pub struct Iter<'a> {
    seq: std::slice::Iter<'a, Value>,
    next_index: i64,
    hash: HashIter<'a>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (KeyRef<'a>, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(v) = self.seq.next() {
            let k = KeyRef::Integer(self.next_index);
            self.next_index = self.next_index.wrapping_add(1);
            return Some((k, v));
        }
        self.hash.next().map(|(k, v)| (k.as_ref(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.seq.len() + self.hash.size_hint().0;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Table {
    type Item = (KeyRef<'a>, &'a Value);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Table {
    type Item = (Key, Value);
    type IntoIter = IntoIter;
    /// Consumes the table: the sequence part first, then the hash part.
    fn into_iter(mut self) -> IntoIter {
        let seq = mem::take(&mut self.seq);
        let hash = mem::take(&mut self.hash).into_iter();
        IntoIter {
            seq: seq.into_iter(),
            next_index: 1,
            hash,
        }
    }
}

/// Owning iterator over a table's entries.
pub struct IntoIter {
    seq: std::vec::IntoIter<Value>,
    next_index: i64,
    hash: HashIntoIter,
}

impl Iterator for IntoIter {
    type Item = (Key, Value);
    fn next(&mut self) -> Option<(Key, Value)> {
        if let Some(v) = self.seq.next() {
            let k = Key::from(self.next_index);
            self.next_index = self.next_index.wrapping_add(1);
            return Some((k, v));
        }
        self.hash.next()
    }
}

impl<K: Into<Key>, V: Into<Value>> FromIterator<(K, V)> for Table {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Table {
        let mut t = Table::new();
        t.extend(iter);
        t
    }
}

impl<K: Into<Key>, V: Into<Value>> Extend<(K, V)> for Table {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.set(k, v);
        }
    }
}

impl<'k, K: Into<KeyRef<'k>>> std::ops::Index<K> for Table {
    type Output = Value;
    /// The value at `key`, or [`Value::Nil`] when absent, as in Lua.
    fn index(&self, key: K) -> &Value {
        self.get(key).unwrap_or(&Value::Nil)
    }
}
