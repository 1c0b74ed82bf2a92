//! [`ByteString`]: a Lua string, 8-bit clean.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use smallvec::SmallVec;

/// Strings up to this many bytes live inside the value, without a heap
/// allocation: table keys and short texts, the common case on the wire.
const INLINE: usize = 16;

/// A Lua string: any bytes, not necessarily UTF-8.
///
/// Binary payloads round-trip byte for byte, and are encoded on the wire as
/// one length-prefixed run. [`ByteString::to_str`] gives `&str` access when
/// the bytes are UTF-8.
///
/// Up to 16 bytes are stored inline (the type is as small as a `Vec<u8>`), so
/// short keys and texts cost no allocation.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteString(SmallVec<[u8; INLINE]>);

impl ByteString {
    /// An empty string. Does not allocate.
    pub const fn new() -> Self {
        ByteString(SmallVec::new_const())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Bytes a string of `len` bytes allocates on the heap (0 when it is
    /// stored inline).
    pub(crate) const fn heap_size_of(len: usize) -> usize {
        if len > INLINE { len } else { 0 }
    }

    /// The text, if the bytes are valid UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The text, with invalid UTF-8 sequences replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// Gives back the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0.into_vec()
    }
}

impl Deref for ByteString {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ByteString {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for ByteString {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(v: Vec<u8>) -> Self {
        // Reuses the vector's buffer when it is longer than the inline room.
        ByteString(SmallVec::from_vec(v))
    }
}

impl From<&[u8]> for ByteString {
    fn from(v: &[u8]) -> Self {
        ByteString(SmallVec::from_slice(v))
    }
}

impl<const N: usize> From<&[u8; N]> for ByteString {
    fn from(v: &[u8; N]) -> Self {
        ByteString(SmallVec::from_slice(v))
    }
}

impl From<&str> for ByteString {
    fn from(v: &str) -> Self {
        ByteString(SmallVec::from_slice(v.as_bytes()))
    }
}

impl From<String> for ByteString {
    fn from(v: String) -> Self {
        ByteString::from(v.into_bytes())
    }
}

impl From<ByteString> for Vec<u8> {
    fn from(v: ByteString) -> Self {
        v.into_bytes()
    }
}

impl PartialEq<str> for ByteString {
    fn eq(&self, other: &str) -> bool {
        self.0.as_slice() == other.as_bytes()
    }
}

impl PartialEq<&str> for ByteString {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_slice() == other.as_bytes()
    }
}

impl PartialEq<[u8]> for ByteString {
    fn eq(&self, other: &[u8]) -> bool {
        self.0.as_slice() == other
    }
}

/// Writes bytes as a Lua-style quoted string: printable ASCII as is, the rest
/// escaped (`\n`, `\"`, `\xNN`), so any bytes print on one readable line.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("\"")?;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        write!(f, "\\x{b:02X}")?;
                    }
                }
                c => fmt::Write::write_char(f, c)?,
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02X}")?;
        }
    }
    f.write_str("\"")
}

impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_quoted(f, &self.0)
    }
}

impl fmt::Display for ByteString {
    /// The text, lossily decoded as UTF-8, without quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}
