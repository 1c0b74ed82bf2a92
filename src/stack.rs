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

/// Extra stack asked for by [`Room::low`] over the red zone: what a
/// container's elements may use between the check, made when the
/// container opens, and their own calls.
const CHECK_MARGIN: usize = 16 * 1024;

/// The stack a walk started on, to tell cheaply whether [`guarded`] could
/// switch stacks soon: a comparison of a local's address, where stacker's
/// own check reads a thread-local and calls into assembly.
#[derive(Clone, Copy)]
pub(crate) struct Room {
    /// Below this address, less than the red zone plus the margin is left.
    floor: usize,
    /// Where the walk started: above it is not this stack (or the stack
    /// grows up), and every check says low.
    base: usize,
}

impl Room {
    /// The room on the current stack (in a new segment, that segment's).
    #[inline(never)]
    pub(crate) fn here() -> Room {
        let base = here();
        match stacker::remaining_stack() {
            Some(left) => Room {
                floor: base
                    .saturating_sub(left)
                    .saturating_add(RED_ZONE + CHECK_MARGIN),
                base,
            },
            // Unknown: always low, so every step goes through `guarded`.
            None => Room {
                floor: usize::MAX,
                base: 0,
            },
        }
    }

    /// Whether little stack is left (or this is another stack): then the
    /// caller runs its steps through [`guarded`], which checks exactly.
    #[inline(always)]
    pub(crate) fn low(&self) -> bool {
        let at = here();
        at < self.floor || at > self.base
    }
}

/// The address of a local: where the stack is now.
#[inline(always)]
fn here() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}
