//! Tests' clock: the sans-IO layers never read the time; their tests start
//! every session at one fixed instant and move time on by hand.

use std::sync::LazyLock;
use std::time::Instant;

/// The instant every test's clock starts at (read once per test process).
pub(crate) fn epoch() -> Instant {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    *EPOCH
}
