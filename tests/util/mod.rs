//! Shared helpers for the loopback tests: waiting for events with deadlines.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use tablenet::{Event, EventKind, Network};

/// Default deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Collects events until `pred` matches one (returned with everything seen
/// before it), or panics with what was seen at the deadline.
pub fn wait_for(net: &Network, mut pred: impl FnMut(&Event) -> bool) -> (Event, Vec<Event>) {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "deadline passed; events seen: {seen:#?}");
        let mut batch = net.wait_events(left).into_iter();
        while let Some(ev) = batch.next() {
            if pred(&ev) {
                seen.extend(batch);
                return (ev, seen);
            }
            seen.push(ev);
        }
    }
}

/// Collects events until `n` match `pred`.
pub fn collect(net: &Network, n: usize, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut others = 0usize;
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "deadline passed with {} of {n} events ({others} others)",
            got.len()
        );
        for ev in net.wait_events(left) {
            if pred(&ev) {
                got.push(ev);
            } else {
                others += 1;
            }
        }
    }
    got
}

/// Waits for the next `Connect` and returns its connection handle.
pub fn accept(net: &Network) -> tablenet::Connection {
    match wait_for(net, |e| matches!(e.kind, EventKind::Connect { .. }))
        .0
        .kind
    {
        EventKind::Connect { connection, .. } => connection,
        _ => unreachable!(),
    }
}
