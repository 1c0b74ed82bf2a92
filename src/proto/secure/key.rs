//! The pre-shared key: parsed from hex, zeroized on drop, never printed.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroize;

use super::SecureError;
use crate::error::Error;

/// What a valid key looks like, for [`Error::InvalidArgument`].
const EXPECTED: &str = "32 or 64 hex digits (128- or 256-bit key)";

/// A pre-shared key of 128 or 256 bits.
///
/// The bytes are overwritten with zeros when the key is dropped, and
/// [`Debug`](fmt::Debug) shows only the key's size, never its bytes:
///
/// ```
/// use tablenet::proto::secure::SecretKey;
///
/// let key = SecretKey::from_hex("0C03EA65238DD2C25EB87CE563868098")?;
/// assert_eq!(key.bits(), 128);
/// assert_eq!(format!("{key:?}"), "SecretKey(128 bits)");
/// # Ok::<(), tablenet::Error>(())
/// ```
#[derive(Clone)]
pub struct SecretKey {
    /// The key in the first `len` bytes; the rest stay zero.
    bytes: [u8; 32],
    /// 16 or 32.
    len: usize,
}

impl SecretKey {
    /// Parses a key from 32 hex digits (a 128-bit key) or 64 hex digits (a
    /// 256-bit key), upper or lower case.
    ///
    /// Any other length is refused, and so is a character that is not a hex
    /// digit; the error names the character and its position (counted from
    /// 1). The error never repeats the key's digits.
    pub fn from_hex(text: &str) -> Result<SecretKey, Error> {
        // The `hex` crate checks the length before the characters and counts
        // positions in bytes; name the first non-hex character, counted in
        // characters, whatever the length.
        if let Some((index, c)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(invalid(format!(
                "non-hex character {c:?} at position {}",
                index + 1
            )));
        }
        // Only ASCII hex digits are left: one byte per digit.
        let digits = text.len();
        let mut key = SecretKey {
            bytes: [0; 32],
            len: digits / 2,
        };
        let out = match digits {
            32 | 64 => key.bytes.get_mut(..digits / 2),
            _ => None,
        }
        .ok_or_else(|| invalid(format!("{digits} hex digits")))?;
        // Decoded in place, so no copy of the key is left behind. Cannot
        // fail after the checks above; if it did, say so without the digits.
        hex::decode_to_slice(text, out)
            .map_err(|_| invalid(format!("{digits} digits that do not decode")))?;
        Ok(key)
    }

    /// A new 256-bit key from the operating system's random number
    /// generator: what a key should be. Never derive a key from a password
    /// or a phrase: anyone who connects can test guesses offline (see
    /// docs/PROTOCOL.md, section 5.7).
    ///
    /// Fails only if the operating system's generator does
    /// ([`SecureError::Random`](super::SecureError::Random)).
    ///
    /// ```
    /// use tablenet::proto::secure::SecretKey;
    ///
    /// let key = SecretKey::generate()?;
    /// assert_eq!(key.bits(), 256);
    /// // Share it as 64 hex digits; the other side parses the same key.
    /// let digits = key.to_hex();
    /// assert_eq!(digits.len(), 64);
    /// assert_eq!(SecretKey::from_hex(&digits)?.to_hex(), digits);
    /// # Ok::<(), tablenet::Error>(())
    /// ```
    pub fn generate() -> Result<SecretKey, Error> {
        let mut key = SecretKey {
            bytes: [0; 32],
            len: 32,
        };
        getrandom::fill(&mut key.bytes).map_err(|e| SecureError::Random(e.to_string()))?;
        Ok(key)
    }

    /// The key as lowercase hex digits (32 or 64), as
    /// [`from_hex`](Self::from_hex) reads it back: for handing a generated
    /// key to the other side.
    ///
    /// The returned string is the secret itself and, unlike the key, is not
    /// zeroized when dropped: print or store it only where the key belongs.
    ///
    /// ```
    /// use tablenet::proto::secure::SecretKey;
    ///
    /// let key = SecretKey::from_hex("0C03EA65238DD2C25EB87CE563868098")?;
    /// assert_eq!(key.to_hex(), "0c03ea65238dd2c25eb87ce563868098");
    /// # Ok::<(), tablenet::Error>(())
    /// ```
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// The key's size in bits: 128 or 256.
    pub fn bits(&self) -> usize {
        self.len * 8
    }

    /// The key's bytes.
    pub(super) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

fn invalid(got: String) -> Error {
    Error::InvalidArgument {
        argument: "key",
        expected: EXPECTED,
        got,
    }
}

impl FromStr for SecretKey {
    type Err = Error;

    /// Same as [`SecretKey::from_hex`].
    fn from_str(text: &str) -> Result<SecretKey, Error> {
        SecretKey::from_hex(text)
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({} bits)", self.bits())
    }
}
