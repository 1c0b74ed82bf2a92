//! The connection preamble: the first bytes each side sends, at once, before
//! any frame.
//!
//! ```text
//! +-------------+---------+-------+-------------------+-----------------+
//! | magic "TBLN"| version | flags | ext_len: u16 LE   | ext (ext_len B) |
//! +-------------+---------+-------+-------------------+-----------------+
//! ```
//!
//! The magic and the version byte are fixed for all versions, so any two
//! builds can tell each other which version they speak. `flags` bit 0 says
//! the sender is configured with a key; bit 1 that it refuses the connection
//! (`ext` then holds the reason). Otherwise `ext` carries the encryption
//! handshake's opening message (empty in plain mode).

use crate::error::{Error, ProtocolError};

/// The four bytes every tablenet stream starts with.
pub const MAGIC: [u8; 4] = *b"TBLN";
/// The protocol version this build speaks.
pub const VERSION: u8 = 2;
/// Flag bit: the sender has a key and will only talk encrypted.
pub const FLAG_ENCRYPTED: u8 = 0x01;
/// Flag bit: the sender refuses the connection (for example a server at its
/// connection limit); the extension holds the reason as UTF-8 text, and the
/// sender closes the connection after the preamble.
pub const FLAG_REFUSED: u8 = 0x02;
/// Longest extension a preamble may carry.
pub const MAX_EXTENSION: usize = 1024;
/// Bytes before the extension.
const FIXED_LEN: usize = 8;

/// One side's opening announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preamble {
    /// Protocol version (always [`VERSION`] once decoded: others are refused).
    pub version: u8,
    /// Flag bits; see [`FLAG_ENCRYPTED`].
    pub flags: u8,
    /// Handshake data for the negotiated mode; at most [`MAX_EXTENSION`] bytes.
    pub extension: Vec<u8>,
}

impl Preamble {
    /// A version-[`VERSION`] preamble with no extension.
    pub fn plain() -> Preamble {
        Preamble {
            version: VERSION,
            flags: 0,
            extension: Vec::new(),
        }
    }

    /// A preamble that refuses the connection, giving `reason` (cut to
    /// [`MAX_EXTENSION`] bytes at a character boundary).
    pub fn refusal(reason: &str) -> Preamble {
        let mut end = reason.len().min(MAX_EXTENSION);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Preamble {
            version: VERSION,
            flags: FLAG_REFUSED,
            extension: reason.as_bytes().get(..end).unwrap_or_default().to_vec(),
        }
    }

    /// True when the sender is configured with a key.
    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// The reason, when the sender refuses the connection: the peer's text
    /// made inert (control characters and invalid UTF-8 escaped, at most
    /// 128 bytes shown), safe to print.
    pub fn refused(&self) -> Option<String> {
        (self.flags & FLAG_REFUSED != 0).then(|| crate::error::inert(&self.extension))
    }

    /// Appends the preamble's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let len = u16::try_from(self.extension.len())
            .ok()
            .filter(|&n| usize::from(n) <= MAX_EXTENSION)
            .ok_or(Error::InvalidArgument {
                argument: "extension",
                expected: "at most 1024 bytes",
                got: format!("{} bytes", self.extension.len()),
            })?;
        out.extend_from_slice(&MAGIC);
        out.push(self.version);
        out.push(self.flags);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.extension);
        Ok(())
    }
}

/// Guesses what a peer that is not tablenet speaks, from its first bytes.
fn hint(found: &[u8]) -> &'static str {
    const HTTP: [&[u8]; 7] = [
        b"GET ", b"POST", b"HEAD", b"PUT ", b"HTTP", b"OPTI", b"DELE",
    ];
    if HTTP
        .iter()
        .any(|m| found.starts_with(m) || m.starts_with(found))
    {
        ": looks like HTTP"
    } else if found.starts_with(&[0x16, 0x03]) || found == [0x16] {
        ": looks like TLS"
    } else if found.starts_with(b"SSH-") {
        ": looks like SSH"
    } else {
        ""
    }
}

/// Decodes a preamble from the start of `input`. `Ok(None)` means more bytes
/// are needed; otherwise gives the preamble and how many bytes it used.
///
/// Fails as soon as the bytes present rule tablenet out: a wrong magic byte
/// (each checked as it arrives), another version (byte 4), unknown flags
/// (byte 5), or an over-long extension (once both `ext_len` bytes are in).
pub fn decode(input: &[u8]) -> Result<Option<(Preamble, usize)>, Error> {
    let magic_seen = input.len().min(MAGIC.len());
    let seen = input.get(..magic_seen).unwrap_or_default();
    if Some(seen) != MAGIC.get(..magic_seen) {
        return Err(ProtocolError::BadMagic {
            found: seen.to_vec(),
            hint: hint(seen),
        }
        .into());
    }
    let Some(&version) = input.get(4) else {
        return Ok(None);
    };
    if version != VERSION {
        return Err(ProtocolError::UnsupportedVersion {
            theirs: version,
            ours: VERSION,
        }
        .into());
    }
    let Some(&flags) = input.get(5) else {
        return Ok(None);
    };
    if flags & !(FLAG_ENCRYPTED | FLAG_REFUSED) != 0 {
        return Err(ProtocolError::UnknownFlags { flags }.into());
    }
    let Some(fixed) = input.first_chunk::<FIXED_LEN>() else {
        return Ok(None);
    };
    let [_, _, _, _, _, _, len_lo, len_hi] = *fixed;
    let len = usize::from(u16::from_le_bytes([len_lo, len_hi]));
    if len > MAX_EXTENSION {
        return Err(ProtocolError::ExtensionTooLong {
            len,
            limit: MAX_EXTENSION,
        }
        .into());
    }
    let Some(extension) = input.get(FIXED_LEN..FIXED_LEN + len) else {
        return Ok(None);
    };
    let preamble = Preamble {
        version,
        flags,
        extension: extension.to_vec(),
    };
    Ok(Some((preamble, FIXED_LEN + len)))
}
