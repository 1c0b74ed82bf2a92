//! The streaming `FrameDecoder`, fed the input in chunks whose sizes come
//! from the input, against the same decoder fed the whole stream at once:
//! both must give the same preamble, the same frames and the same error.
//!
//! Input layout:
//!
//! ```text
//! [config][n][n chunk sizes][stream bytes...]
//! config bit 0: the stream starts with a preamble (next_preamble first)
//!        bit 1: take frames with next_raw_frame instead of next_frame
//!        bit 2: receive with read_buffer/filled instead of push
//!        bit 3: release_idle_memory after each drain
//!        bits 4-5: max frame size (default, 16, 64, 4096)
//!        bit 6: decode each Message frame's value
//! n: number of chunk sizes (low 4 bits; 0 = the whole stream in one push);
//!    the sizes (0..=255 bytes, 0 = an empty push) are used in turn,
//!    cyclically.
//! ```

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use tablenet::proto::{FrameDecoder, Limits, Preamble};
use tablenet::{Error, ProtocolError};
use tablenet_fuzz::{limits_for, take_byte};

#[derive(Debug, PartialEq)]
enum Item {
    Preamble(Preamble),
    Frame(Vec<u8>),
    Raw([u8; 4], Vec<u8>),
    /// A preamble error: which bytes were present when it was refused
    /// depends on the chunking, so only the fact is compared.
    PreambleError,
    Error(String),
}

struct Reader {
    decoder: FrameDecoder,
    limits: Limits,
    config: u8,
    preamble_done: bool,
    failed: bool,
    items: Vec<Item>,
}

impl Reader {
    fn new(config: u8) -> Reader {
        let limits = limits_for(config >> 4);
        Reader {
            decoder: FrameDecoder::new(&limits),
            limits,
            config,
            preamble_done: config & 1 == 0,
            failed: false,
            items: Vec::new(),
        }
    }

    fn receive(&mut self, mut chunk: &[u8]) {
        if self.config & 4 == 0 {
            self.decoder.push(chunk);
            return;
        }
        loop {
            let buf = self.decoder.read_buffer();
            assert!(buf.len() >= 4096, "read_buffer offers less than 4 KiB");
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            self.decoder.filled(n);
            chunk = &chunk[n..];
            if chunk.is_empty() {
                return;
            }
        }
    }

    /// Takes out everything complete; stops for good at the first error.
    fn drain(&mut self) {
        if self.failed {
            return;
        }
        if !self.preamble_done {
            match self.decoder.next_preamble() {
                Ok(Some(p)) => {
                    assert_eq!(p.version, tablenet::proto::VERSION);
                    assert!(p.extension.len() <= tablenet::proto::MAX_EXTENSION);
                    self.items.push(Item::Preamble(p));
                    self.preamble_done = true;
                }
                Ok(None) => return,
                Err(e) => {
                    if let Error::Protocol(ProtocolError::BadMagic { found, .. }) = &e {
                        assert!(found.len() <= 4);
                    }
                    black_box(e.to_string());
                    self.items.push(Item::PreambleError);
                    self.failed = true;
                    return;
                }
            }
        }
        loop {
            let expected_len = self.decoder.next_frame_len();
            let before = self.decoder.buffered();
            let item = if self.config & 2 != 0 {
                match self.decoder.next_raw_frame() {
                    Ok(Some((prefix, payload))) => {
                        assert_eq!(u32::from_le_bytes(prefix) as usize, payload.len());
                        Ok(Some(Item::Raw(prefix, payload.to_vec())))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            } else {
                match self.decoder.next_frame() {
                    Ok(Some(frame)) => {
                        if self.config & 0x40 != 0 {
                            black_box(frame.decode_value(&self.limits).ok());
                        }
                        Ok(Some(Item::Frame(frame.body.to_vec())))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            match item {
                Ok(Some(item)) => {
                    let len = expected_len.expect("a frame came out that next_frame_len missed");
                    assert!(len <= self.limits.max_frame_size);
                    assert_eq!(before - self.decoder.buffered(), 4 + len);
                    self.items.push(item);
                }
                Ok(None) => {
                    assert_eq!(before, self.decoder.buffered());
                    break;
                }
                Err(e) => {
                    self.items.push(Item::Error(e.to_string()));
                    self.failed = true;
                    break;
                }
            }
        }
        if self.config & 8 != 0 {
            self.decoder.release_idle_memory();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let config = take_byte(&mut data);
    let n = usize::from(take_byte(&mut data) & 0x0f);
    let (sizes, stream) = data.split_at(n.min(data.len()));

    // The reference: everything in one push.
    let mut whole = Reader::new(config);
    whole.receive(stream);
    whole.drain();

    // The same stream in chunks.
    let mut chunked = Reader::new(config);
    let mut rest = stream;
    let mut cut = sizes.iter().cycle();
    if sizes.iter().all(|&size| size == 0) {
        // No sizes, or only empty pushes (which would never finish): one
        // empty push, then the whole stream.
        chunked.receive(&[]);
        chunked.drain();
        chunked.receive(rest);
        chunked.drain();
    } else {
        while !rest.is_empty() && !chunked.failed {
            let size = usize::from(*cut.next().unwrap_or(&255)).min(rest.len());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            chunked.receive(chunk);
            chunked.drain();
        }
    }
    assert_eq!(
        whole.items, chunked.items,
        "chunking changed the decoded stream"
    );
    if !whole.failed {
        assert_eq!(whole.decoder.buffered(), chunked.decoder.buffered());
    }
    black_box(&chunked.items);
});
