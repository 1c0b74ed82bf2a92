//! [`HashPart`]: a table's non-sequence entries, in insertion order.
//!
//! Most tables sent over a network are small records (`{OpCode=10, Data=...}`).
//! For those, a vector searched linearly beats hashing: no hash to compute, one
//! allocation. Past [`SMALL_MAX`] entries the part switches to an `IndexMap`
//! with std's randomly seeded SipHash, which keeps lookups O(1) and resists
//! hash flooding by a hostile peer.

use indexmap::IndexMap;
use indexmap::map::Entry;
use thin_vec::ThinVec;

use super::Value;
use super::key::{Key, Probe};

/// Largest hash part kept as a plain vector.
const SMALL_MAX: usize = 8;

///
/// The small form is a [`ThinVec`] (one pointer, its length and capacity in
/// the allocation), so the whole part is two words and a [`Value`] holding a
/// table stays six words.
pub(crate) enum HashPart {
    Small(ThinVec<(Key, Value)>),
    Large(Box<IndexMap<Key, Value>>),
}

impl Default for HashPart {
    fn default() -> HashPart {
        HashPart::Small(ThinVec::new())
    }
}

impl Clone for HashPart {
    fn clone(&self) -> HashPart {
        match self {
            HashPart::Small(v) => HashPart::Small(v.clone()),
            HashPart::Large(m) => HashPart::Large(m.clone()),
        }
    }
}

impl HashPart {
    pub(crate) const fn new() -> HashPart {
        HashPart::Small(ThinVec::new())
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            HashPart::Small(v) => v.len(),
            HashPart::Large(m) => m.len(),
        }
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        match self {
            HashPart::Small(v) if v.len() + n <= SMALL_MAX => v.reserve_exact(n),
            HashPart::Small(_) => self.grow(n),
            HashPart::Large(m) => m.reserve(n),
        }
    }

    /// Switches to the map form, with room for `extra` more entries.
    fn grow(&mut self, extra: usize) {
        if let HashPart::Small(v) = self {
            let mut map = IndexMap::with_capacity(v.len() + extra);
            map.extend(v.drain(..));
            *self = HashPart::Large(Box::new(map));
        }
    }

    pub(crate) fn get(&self, probe: Probe<'_>) -> Option<&Value> {
        match self {
            HashPart::Small(v) => v.iter().find(|(k, _)| probe.matches(k)).map(|(_, v)| v),
            HashPart::Large(m) => m.get(&probe),
        }
    }

    pub(crate) fn get_mut(&mut self, probe: Probe<'_>) -> Option<&mut Value> {
        match self {
            HashPart::Small(v) => v.iter_mut().find(|(k, _)| probe.matches(k)).map(|(_, v)| v),
            HashPart::Large(m) => m.get_mut(&probe),
        }
    }

    /// Sets `key`, keeping its position if present; gives the old value.
    pub(crate) fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        match self.insert_new(key, value) {
            Ok(()) => None,
            Err((key, value)) => self
                .get_mut(Probe(key.as_ref()))
                .map(|slot| std::mem::replace(slot, value)),
        }
    }

    /// Inserts a key that is not present; gives both back when it is.
    #[inline]
    pub(crate) fn insert_new(&mut self, key: Key, value: Value) -> Result<(), (Key, Value)> {
        // The common case inline: a small part with room reserved.
        if let HashPart::Small(v) = self
            && v.len() < v.capacity().min(SMALL_MAX)
        {
            if v.iter().any(|(k, _)| *k == key) {
                return Err((key, value));
            }
            v.push((key, value));
            return Ok(());
        }
        self.insert_new_slow(key, value)
    }

    /// [`HashPart::insert_new`] when the part must grow.
    #[inline(never)]
    fn insert_new_slow(&mut self, key: Key, value: Value) -> Result<(), (Key, Value)> {
        if let HashPart::Small(v) = self {
            if v.iter().any(|(k, _)| *k == key) {
                return Err((key, value));
            }
            if v.len() < SMALL_MAX {
                v.push((key, value));
                return Ok(());
            }
            self.grow(1);
        }
        match self {
            HashPart::Large(m) => match m.entry(key) {
                Entry::Occupied(e) => Err((e.key().clone(), value)),
                Entry::Vacant(e) => {
                    e.insert(value);
                    Ok(())
                }
            },
            // grow() above always leaves the map form.
            HashPart::Small(_) => Err((key, value)),
        }
    }

    /// Removes `probe`'s key; the last entry takes its place.
    pub(crate) fn swap_remove(&mut self, probe: Probe<'_>) -> Option<Value> {
        match self {
            HashPart::Small(v) => {
                let at = v.iter().position(|(k, _)| probe.matches(k))?;
                Some(v.swap_remove(at).1)
            }
            HashPart::Large(m) => m.swap_remove(&probe),
        }
    }

    pub(crate) fn iter(&self) -> HashIter<'_> {
        match self {
            HashPart::Small(v) => HashIter::Small(v.iter()),
            HashPart::Large(m) => HashIter::Large(m.iter()),
        }
    }

    pub(crate) fn for_each_value_mut(&mut self, mut f: impl FnMut(&mut Value)) {
        match self {
            HashPart::Small(v) => v.iter_mut().for_each(|(_, v)| f(v)),
            HashPart::Large(m) => m.values_mut().for_each(f),
        }
    }
}

/// Borrowing iterator over a hash part, in insertion order.
pub(crate) enum HashIter<'a> {
    Small(std::slice::Iter<'a, (Key, Value)>),
    Large(indexmap::map::Iter<'a, Key, Value>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a Key, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HashIter::Small(it) => it.next().map(|(k, v)| (k, v)),
            HashIter::Large(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            HashIter::Small(it) => it.size_hint(),
            HashIter::Large(it) => it.size_hint(),
        }
    }
}

impl IntoIterator for HashPart {
    type Item = (Key, Value);
    type IntoIter = HashIntoIter;
    fn into_iter(self) -> HashIntoIter {
        match self {
            HashPart::Small(v) => HashIntoIter::Small(v.into_iter()),
            HashPart::Large(m) => HashIntoIter::Large(m.into_iter()),
        }
    }
}

/// Owning iterator over a hash part, in insertion order.
pub(crate) enum HashIntoIter {
    Small(thin_vec::IntoIter<(Key, Value)>),
    Large(indexmap::map::IntoIter<Key, Value>),
}

impl Iterator for HashIntoIter {
    type Item = (Key, Value);
    fn next(&mut self) -> Option<(Key, Value)> {
        match self {
            HashIntoIter::Small(it) => it.next(),
            HashIntoIter::Large(it) => it.next(),
        }
    }
}
