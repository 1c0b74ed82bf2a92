//! Hostile input must not make the decoders allocate much more than the input.
//!
//! A counting global allocator measures the peak heap use while decoding.
//! This file is its own test binary, and its one test runs the cases in turn,
//! so no other test's allocations are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tablenet::proto::{FrameDecoder, Limits, decode_value};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY is not needed here: the crate forbids unsafe, but this test binary
// must implement the unsafe GlobalAlloc trait; it only forwards to System.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: forwarding the caller's valid layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Relaxed);
        // SAFETY: ptr was allocated by System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap growth, in bytes, while running `f`.
fn peak_growth(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    f();
    PEAK.load(Relaxed) - base
}

/// `levels` nested tables, each claiming 2^40 sequence elements and giving one.
fn lying_nested(levels: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..levels {
        bytes.extend_from_slice(&[5, 253]);
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    }
    bytes.extend_from_slice(&[5, 0, 0]);
    bytes
}

#[test]
fn hostile_lengths_allocate_in_proportion_to_the_input() {
    // Run on a thread with a known stack, so only heap use is measured.
    std::thread::Builder::new()
        .stack_size(8 * 1024 * 1024)
        .spawn(run_cases)
        .unwrap()
        .join()
        .unwrap();
}

fn run_cases() {
    let deep = Limits {
        max_depth: 2_000,
        ..Limits::default()
    };

    // 1,000 nested tables each claiming 2^40 elements: about 10 KB of input.
    // Unbounded pre-allocation would reserve far more than a gigabyte.
    let input = lying_nested(1_000);
    let mut result = None;
    let peak = peak_growth(|| result = Some(decode_value(&input, &deep)));
    assert!(result.unwrap().is_err(), "a lying length must fail");
    // A value slot is 40 bytes; the budget allows one slot per input byte,
    // plus bookkeeping. 64 bytes per input byte is a generous ceiling.
    assert!(
        peak <= 64 * input.len(),
        "decoding {} bytes peaked at {peak} bytes",
        input.len()
    );

    // A string claiming 2^40 bytes with ten bytes present.
    let mut input = vec![4, 253];
    input.extend_from_slice(&(1u64 << 40).to_le_bytes());
    input.extend_from_slice(&[b'x'; 10]);
    let peak = peak_growth(|| assert!(decode_value(&input, &deep).is_err()));
    assert!(peak <= 4096, "string claim peaked at {peak} bytes");

    // A hash part claiming 2^40 entries.
    let mut input = vec![5, 0, 253];
    input.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let peak = peak_growth(|| assert!(decode_value(&input, &deep).is_err()));
    assert!(peak <= 4096, "hash claim peaked at {peak} bytes");

    // A frame header claiming 16 MiB - 1 followed by ten bytes: the stream
    // decoder holds what arrived, not what was claimed.
    let mut decoder = FrameDecoder::new(&Limits::default());
    let peak = peak_growth(|| {
        decoder.push(&(16 * 1024 * 1024 - 1u32).to_le_bytes());
        decoder.push(&[1; 10]);
        assert!(decoder.next_frame().unwrap().is_none());
    });
    assert!(peak <= 64 * 1024, "frame claim peaked at {peak} bytes");
}
