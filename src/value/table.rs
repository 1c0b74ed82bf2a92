//! [`Table`]: a Lua table of basic values, with a sequence part and a hash part.

use std::mem;

use super::Value;
use super::hash_part::{HashIntoIter, HashIter, HashPart};
use super::key::{Key, KeyRef, Probe, Repr};
use crate::error::KeyError;
use crate::stack::guarded;

/// Most slots the array part holds (its counts are 32-bit); integer keys
/// beyond it live in the hash part.
const MAX_ARRAY: usize = u32::MAX as usize;

/// Memory a hash entry takes beyond its value, about: its key and its
/// index slot.
pub(crate) const HASH_ENTRY_BYTES: usize = mem::size_of::<Key>() + 2 * mem::size_of::<usize>();

/// A Lua-like table.
///
/// Like Lua's, a table has an *array part* and a *hash part*. Keys `1..=n`
/// with non-nil values form the *sequence part* (what Lua's `#t` measures),
/// at the front of the array part. Integer keys after it stay in the array
/// part, with empty slots for the missing ones, while at least half of the
/// slots are used, so `{nil, true, true}` costs one slot per key and not a
/// hash entry. Every other key lives in the hash part, which keeps insertion
/// order (removing a key moves the last-inserted entry into its place).
/// Lua's key rules apply: nil and NaN are never keys, a float with an
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
    /// Values for keys `1..=arr.len()`; `Nil` marks an absent key. Never
    /// ends in `Nil`, and at least half of its slots hold values.
    arr: Vec<Value>,
    /// `arr[..border]` holds no `Nil`, and `arr[border]` is `Nil` (or
    /// `border == arr.len()`): the sequence part.
    border: u32,
    /// Values (not `Nil`) in `arr`. With `border`, 32 bits, so that a
    /// [`Value`] holding a table stays six words; the array part never grows
    /// past [`MAX_ARRAY`] slots.
    count: u32,
    /// All other keys; values never `Nil`; never holds an integer key in
    /// `1..=arr.len() + 1` (unless the array is [`MAX_ARRAY`] long).
    hash: HashPart,
}

impl Table {
    /// An empty table. Does not allocate.
    pub const fn new() -> Table {
        Table {
            arr: Vec::new(),
            border: 0,
            count: 0,
            hash: HashPart::new(),
        }
    }

    /// An empty table with room for `seq` sequence values and `hash` other entries.
    pub fn with_capacity(seq: usize, hash: usize) -> Table {
        let mut t = Table::new();
        t.arr.reserve(seq);
        t.hash.reserve(hash);
        t
    }

    /// Builds a table whose sequence part is `values` (keys 1, 2, ...).
    /// A `Nil` in `values` leaves a hole, as in the Lua constructor `{1, nil, 3}`.
    pub fn from_sequence(values: Vec<Value>) -> Table {
        if values.len() <= MAX_ARRAY && values.iter().all(|v| !v.is_nil()) {
            // Fits: checked just above.
            let n = values.len() as u32;
            return Table {
                border: n,
                count: n,
                arr: values,
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
        self.count as usize + self.hash.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the sequence part: the `n` such that keys `1..=n` are all
    /// present. This is a border in Lua's sense, what `#t` returns.
    pub fn sequence_len(&self) -> usize {
        self.border as usize
    }

    /// The values for keys `1..=sequence_len()`, in order.
    pub fn sequence(&self) -> &[Value] {
        self.arr.get(..self.border as usize).unwrap_or(&[])
    }

    /// Number of entries outside the sequence part.
    pub fn hash_len(&self) -> usize {
        self.len() - self.border as usize
    }

    /// Where a normalised integer key sits in the array part, if it does.
    fn arr_index(&self, i: i64) -> Option<usize> {
        let idx = usize::try_from(i).ok()?.checked_sub(1)?;
        (idx < self.arr.len()).then_some(idx)
    }

    /// The value at `key`, or `None` when absent (Lua would give nil).
    pub fn get<'k>(&self, key: impl Into<KeyRef<'k>>) -> Option<&Value> {
        let key = key.into().normalize()?;
        if let KeyRef::Integer(i) = key
            && let Some(idx) = self.arr_index(i)
        {
            return self.arr.get(idx).filter(|v| !v.is_nil());
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
            KeyRef::Integer(i) if self.arr_index(i).is_some() => {
                let idx = self.arr_index(i)?;
                self.arr.get_mut(idx)?
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
            let key = i64::from(self.border) + 1;
            self.set_key(Key::from(key), value);
        }
    }

    /// Sets a normalised key. With [`Table::insert_new`], the one place that
    /// keeps the two parts' invariants.
    pub(crate) fn set_key(&mut self, key: Key, value: Value) -> Option<Value> {
        if let Repr::Integer(i) = *key.repr() {
            if i as u64 == self.arr.len() as u64 + 1
                && self.arr.len() < MAX_ARRAY
                && !value.is_nil()
            {
                self.append(value);
                return None;
            }
            if let Some(idx) = self.arr_index(i) {
                return if value.is_nil() {
                    self.clear_slot(idx)
                } else {
                    self.fill_slot(idx, value)
                };
            }
            if !value.is_nil() && self.extends_array(i) {
                let old = self.take_hash_integer(i);
                self.extend_to(i, value);
                return old;
            }
        }
        if value.is_nil() {
            self.hash.swap_remove(Probe(key.as_ref()))
        } else {
            self.hash.insert(key, value)
        }
    }

    /// Inserts a key that must not be present yet, with a value that is not
    /// `Nil` (the decoder's rule: a key set twice is an error). Gives the key
    /// back when it is present, else about how many bytes of memory the table
    /// grew by (new array slots, holes and spare capacity included, or a hash
    /// entry; the value's own size is not counted).
    pub(crate) fn insert_new(&mut self, key: Key, value: Value) -> Result<usize, Key> {
        debug_assert!(!value.is_nil());
        if let Repr::Integer(i) = *key.repr() {
            let slots = self.arr.capacity();
            if i as u64 == self.arr.len() as u64 + 1 && self.arr.len() < MAX_ARRAY {
                self.append(value);
                return Ok(self.slot_growth(slots));
            }
            if let Some(idx) = self.arr_index(i) {
                if self.arr.get(idx).is_some_and(|v| !v.is_nil()) {
                    return Err(key);
                }
                self.fill_slot(idx, value);
                return Ok(0);
            }
            if self.extends_array(i) {
                if self.hash.len() > 0 && self.hash.get(Probe(KeyRef::Integer(i))).is_some() {
                    return Err(key);
                }
                self.extend_to(i, value);
                return Ok(self.slot_growth(slots));
            }
        }
        self.insert_new_hashed(key, value)
    }

    /// [`Table::insert_new`] straight into the hash part: for a key that is
    /// not an integer (those never go in the array part), the decoder's
    /// common case, kept inline.
    #[inline]
    pub(crate) fn insert_new_hashed(&mut self, key: Key, value: Value) -> Result<usize, Key> {
        match self.hash.insert_new(key, value) {
            Ok(()) => Ok(HASH_ENTRY_BYTES),
            Err((key, _)) => Err(key),
        }
    }

    /// Bytes of array slots allocated since the capacity was `before`.
    fn slot_growth(&self, before: usize) -> usize {
        self.arr.capacity().saturating_sub(before) * mem::size_of::<Value>()
    }

    /// Appends `value` at key `arr.len() + 1` (never in the hash part) to
    /// an array shorter than [`MAX_ARRAY`]: the common case, kept short.
    fn append(&mut self, value: Value) {
        let at_border = self.border as usize == self.arr.len();
        self.arr.push(value);
        self.count += 1;
        if at_border {
            self.border += 1;
        }
        if self.hash.len() > 0 {
            self.absorb_following();
        }
    }

    /// Whether integer key `i`, past the array part, belongs in it: the next
    /// key always, a later one while the array stays at least half full.
    fn extends_array(&self, i: i64) -> bool {
        usize::try_from(i).is_ok_and(|i| {
            i > self.arr.len() && i <= MAX_ARRAY && i <= (self.count as usize + 1) * 2
        })
    }

    /// Puts `value` (not `Nil`) in array slot `idx`, returning what was there.
    fn fill_slot(&mut self, idx: usize, value: Value) -> Option<Value> {
        let slot = self.arr.get_mut(idx)?; // idx comes from arr_index
        let old = mem::replace(slot, value);
        if !old.is_nil() {
            return Some(old);
        }
        self.count += 1;
        self.advance_border();
        None
    }

    /// Empties array slot `idx`, returning what was there. Trailing empty
    /// slots are dropped, and an array that falls below half full moves its
    /// keys after the sequence part to the hash part.
    fn clear_slot(&mut self, idx: usize) -> Option<Value> {
        let slot = self.arr.get_mut(idx)?; // idx comes from arr_index
        let old = mem::replace(slot, Value::Nil);
        if old.is_nil() {
            return None;
        }
        self.count -= 1;
        // The array never holds more than MAX_ARRAY slots.
        self.border = self.border.min(idx as u32);
        while self.arr.last().is_some_and(Value::is_nil) {
            self.arr.pop();
        }
        if (self.count as usize) * 2 < self.arr.len() {
            // Keys past the hole after the sequence part; key border + 1 is
            // the hole itself, so the hash part's invariant holds.
            let tail = self.arr.split_off(self.border as usize);
            self.count = self.border;
            for (k, v) in (i64::from(self.border) + 1..).zip(tail) {
                if !v.is_nil() {
                    self.hash.insert(Key::from(k), v);
                }
            }
        }
        Some(old)
    }

    /// Grows the array part to end at key `i` with `value`, taking the keys
    /// it now covers from the hash part, then any that follow it.
    fn extend_to(&mut self, i: i64, value: Value) {
        let old_len = self.arr.len();
        // extends_array checked that i fits usize and is past the array.
        let new_len = i as usize;
        self.arr.resize(new_len - 1, Value::Nil);
        self.arr.push(value);
        self.count += 1;
        if self.hash.len() > 0 {
            // Key old_len + 1 is never in the hash part.
            for idx in old_len + 1..new_len - 1 {
                if let Some(v) = self.take_hash_integer(idx as i64 + 1)
                    && let Some(slot) = self.arr.get_mut(idx)
                {
                    *slot = v;
                    self.count += 1;
                }
            }
        }
        self.advance_border();
        self.absorb_following();
    }

    /// Removes integer key `i` from the hash part.
    fn take_hash_integer(&mut self, i: i64) -> Option<Value> {
        if self.hash.len() == 0 {
            return None;
        }
        self.hash.swap_remove(Probe(KeyRef::Integer(i)))
    }

    /// Moves the border past the values that now follow it.
    fn advance_border(&mut self) {
        while self
            .arr
            .get(self.border as usize)
            .is_some_and(|v| !v.is_nil())
        {
            self.border += 1;
        }
    }

    /// Makes room for `n` more sequence values.
    pub(crate) fn reserve_sequence(&mut self, n: usize) {
        self.arr.reserve(n);
    }

    /// Makes room for `n` more hash entries.
    pub(crate) fn reserve_hash(&mut self, n: usize) {
        self.hash.reserve(n);
    }

    /// Moves keys `n + 1, n + 2, ...` from the hash part into the array,
    /// where `n` is the array part's length.
    fn absorb_following(&mut self) {
        while self.arr.len() < MAX_ARRAY {
            // Below MAX_ARRAY, so it fits.
            match self.take_hash_integer(self.arr.len() as i64 + 1) {
                Some(v) => {
                    self.arr.push(v);
                    self.count += 1;
                }
                None => break,
            }
        }
        self.advance_border();
    }

    /// Iterates over all entries: the sequence part in order, then the other
    /// integer keys of the array part in order, then the hash part in
    /// insertion order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            arr: self.arr.iter(),
            next_index: 1,
            arr_left: self.count as usize,
            hash: self.hash.iter(),
        }
    }

    /// The entries outside the sequence part, in [`Table::iter`]'s order.
    pub(crate) fn hash_entries(&self) -> Iter<'_> {
        let border = self.border as usize;
        Iter {
            arr: self.arr.get(border..).unwrap_or(&[]).iter(),
            next_index: i64::from(self.border) + 1,
            arr_left: (self.count - self.border) as usize,
            hash: self.hash.iter(),
        }
    }

    /// The array part's entries after the sequence part, in key order.
    pub(crate) fn array_tail(&self) -> impl Iterator<Item = (i64, &Value)> {
        let border = self.border as usize;
        (i64::from(self.border) + 1..)
            .zip(self.arr.get(border..).unwrap_or(&[]))
            .filter(|(_, v)| !v.is_nil())
    }

    /// The hash part's entries, in insertion order.
    pub(crate) fn hash_part(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.hash.iter()
    }

    /// Slots in the array part (for tests).
    #[cfg(test)]
    pub(crate) fn array_slots(&self) -> usize {
        self.arr.len()
    }

    /// Panics unless the parts keep their invariants (for tests).
    #[cfg(test)]
    pub(crate) fn assert_invariants(&self) {
        let arr = &self.arr;
        assert!(arr.last().is_none_or(|v| !v.is_nil()), "array ends in nil");
        let (border, count) = (self.border as usize, self.count as usize);
        assert_eq!(count, arr.iter().filter(|v| !v.is_nil()).count());
        assert!(count * 2 >= arr.len(), "array under half full");
        assert!(arr[..border].iter().all(|v| !v.is_nil()));
        assert!(border == arr.len() || arr[border].is_nil());
        for (k, _) in self.hash.iter() {
            if let KeyRef::Integer(i) = k.as_ref() {
                assert!(
                    !(1..=arr.len() as i64 + 1).contains(&i),
                    "key {i} in the hash part"
                );
            }
        }
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
        self.arr.iter_mut().for_each(&mut take);
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
            arr: self.arr.clone(),
            border: self.border,
            count: self.count,
            hash: self.hash.clone(),
        })
    }
}

impl PartialEq for Table {
    /// Same keys with equal values, whatever the hash part's order or how
    /// each table split its keys between its parts.
    fn eq(&self, other: &Table) -> bool {
        if self.len() != other.len() || self.border != other.border {
            return false;
        }
        guarded(|| {
            if self.arr.len() == other.arr.len() && self.hash.len() == other.hash.len() {
                // The same split: compare the array parts slot by slot.
                self.arr == other.arr
                    && self
                        .hash
                        .iter()
                        .all(|(k, v)| other.hash.get(Probe(k.as_ref())) == Some(v))
            } else {
                self.sequence() == other.sequence()
                    && self.array_tail().all(|(k, v)| other.get(k) == Some(v))
                    && self
                        .hash
                        .iter()
                        .all(|(k, v)| other.get(k.as_ref()) == Some(v))
            }
        })
    }
}

/// Iterator over a table's entries; see [`Table::iter`].
pub struct Iter<'a> {
    arr: std::slice::Iter<'a, Value>,
    next_index: i64,
    /// Values left in `arr`, for an exact length.
    arr_left: usize,
    hash: HashIter<'a>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (KeyRef<'a>, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        while self.arr_left > 0 {
            let v = self.arr.next()?;
            let k = KeyRef::Integer(self.next_index);
            self.next_index = self.next_index.wrapping_add(1);
            if !v.is_nil() {
                self.arr_left -= 1;
                return Some((k, v));
            }
        }
        self.hash.next().map(|(k, v)| (k.as_ref(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.arr_left + self.hash.size_hint().0;
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
    /// Consumes the table, in [`Table::iter`]'s order.
    fn into_iter(mut self) -> IntoIter {
        let arr = mem::take(&mut self.arr);
        let hash = mem::take(&mut self.hash).into_iter();
        IntoIter {
            arr: arr.into_iter(),
            next_index: 1,
            hash,
        }
    }
}

/// Owning iterator over a table's entries.
pub struct IntoIter {
    arr: std::vec::IntoIter<Value>,
    next_index: i64,
    hash: HashIntoIter,
}

impl Iterator for IntoIter {
    type Item = (Key, Value);
    fn next(&mut self) -> Option<(Key, Value)> {
        for v in self.arr.by_ref() {
            let k = Key::from(self.next_index);
            self.next_index = self.next_index.wrapping_add(1);
            if !v.is_nil() {
                return Some((k, v));
            }
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
