//! Stack safety for recursive walks of a [`Value`](crate::Value).
//!
//! A user can build a value nested a million tables deep, and a thread may
//! run with a small stack. Every recursive walk (clone, equality, formatting,
//! encoding, decoding, serde) runs its per-table step through [`guarded`],
//! which moves onto a fresh heap-allocated stack segment when the current one
//! runs low. Drop does not recurse at all (see `Table`'s `Drop`).

/// Stack that must remain before a recursive step runs in place.
const RED_ZONE: usize = 64 * 1024;
/// Size of each new stack segment when the red zone is reached.
const SEGMENT: usize = 1024 * 1024;

/// Runs `f`, first switching to a new stack segment if little stack is left.
#[inline]
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
