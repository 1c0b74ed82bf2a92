//! [`Limits`]: the bounds every decoder and encoder checks.

use crate::error::Error;

/// Bounds on what the codec accepts and produces.
///
/// Both directions check them: a value that breaks a limit is refused before
/// it is sent, and bytes from a peer that break one give an error before any
/// allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, in bytes, counting the frame kind byte and the encoded
    /// value but not the 4-byte length prefix. Default 16 MiB.
    pub max_frame_size: usize,
    /// Deepest nesting of tables in one value (`{}` is depth 1). Default 128.
    pub max_depth: usize,
}

impl Limits {
    /// Default maximum frame size: 16 MiB.
    pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;
    /// Default maximum nesting depth: 128 tables.
    pub const DEFAULT_MAX_DEPTH: usize = 128;
    /// Largest allowed `max_frame_size`: what the 4-byte length prefix can say.
    pub const MAX_FRAME_SIZE_CAP: usize = u32::MAX as usize;
    /// Largest allowed `max_depth`.
    pub const MAX_DEPTH_CAP: usize = 100_000;

    /// Checks that every field is in range; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        if !(16..=Self::MAX_FRAME_SIZE_CAP).contains(&self.max_frame_size) {
            return Err(Error::InvalidArgument {
                argument: "max_frame_size",
                expected: "16..=4294967295 bytes",
                got: self.max_frame_size.to_string(),
            });
        }
        if !(1..=Self::MAX_DEPTH_CAP).contains(&self.max_depth) {
            return Err(Error::InvalidArgument {
                argument: "max_depth",
                expected: "1..=100000 tables",
                got: self.max_depth.to_string(),
            });
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_size: Self::DEFAULT_MAX_FRAME_SIZE,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}
