//! Reports of connections that fail before they authenticate: one by one up
//! to a rate, then one summary a second. Pure bookkeeping over a clock
//! passed in; the driver emits what it decides.
//!
//! Strangers can fail as fast as they can connect (18,000 a second on
//! loopback). One event each would bury the events of established
//! connections and the operator's log; none would hide an attack. So a
//! server reports the first `per_second` failures of each second as they
//! happen, counts the rest, and sums them up once a second with the last
//! error and its peer's address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::error::Error;

/// Length of a counting window, and the least time between two summaries.
const WINDOW: Duration = Duration::from_secs(1);

/// What to do with one failure.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Report it now.
    Report,
    /// Counted for a summary: arm a timer for this moment (set only when
    /// the summary was not due already).
    Counted(Option<Instant>),
}

/// One server's failure reports.
#[derive(Debug)]
pub(super) struct FailureReports {
    per_second: u32,
    /// When the current window began (at its first failure).
    window: Option<Instant>,
    /// Failures reported one by one in the current window.
    shown: u32,
    /// Failures counted for the next summary, and the last of them.
    hidden: u64,
    last: Option<(Error, Option<SocketAddr>)>,
    /// When the next summary is due.
    due: Option<Instant>,
}

impl FailureReports {
    pub(super) fn new(per_second: u32) -> FailureReports {
        FailureReports {
            per_second,
            window: None,
            shown: 0,
            hidden: 0,
            last: None,
            due: None,
        }
    }

    /// A connection failed before authenticating, at `now`.
    pub(super) fn note(
        &mut self,
        now: Instant,
        error: &Error,
        peer: Option<SocketAddr>,
    ) -> Verdict {
        if self.window.is_none_or(|w| now.duration_since(w) >= WINDOW) {
            self.window = Some(now);
            self.shown = 0;
        }
        if self.shown < self.per_second {
            self.shown += 1;
            return Verdict::Report;
        }
        self.count(1, error.clone(), peer, now)
    }

    /// Counts `n` failures (the last being `error`) into the next summary,
    /// for example reports that found no room. Returns the timer to arm.
    pub(super) fn count(
        &mut self,
        n: u64,
        error: Error,
        peer: Option<SocketAddr>,
        now: Instant,
    ) -> Verdict {
        self.hidden = self.hidden.saturating_add(n);
        // A summary's own `last` is the failure it summed up last.
        let last = match error {
            Error::UnauthenticatedFailures {
                last, last_peer, ..
            } => (*last, last_peer),
            error => (error, peer),
        };
        self.last = Some(last);
        if self.due.is_some() {
            return Verdict::Counted(None);
        }
        let due = self.window.map_or(now, |w| w + WINDOW).max(now);
        self.due = Some(due);
        Verdict::Counted(Some(due))
    }

    /// The summary, once it is due: the failures counted since the last one.
    pub(super) fn summary(&mut self, now: Instant) -> Option<Error> {
        if self.due.is_none_or(|due| now < due) || self.hidden == 0 {
            return None;
        }
        self.due = None;
        let (last, last_peer) = self.last.take()?;
        let count = std::mem::take(&mut self.hidden);
        // The next summary comes a whole window later at the earliest.
        self.window = Some(now);
        self.shown = self.per_second;
        Some(Error::UnauthenticatedFailures {
            count,
            last: Box::new(last),
            last_peer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, n], 4000)))
    }

    #[test]
    fn reports_up_to_the_rate_then_sums_up_once_a_second() {
        let t0 = Instant::now();
        let mut r = FailureReports::new(3);
        for i in 0..3 {
            assert_eq!(r.note(t0, &Error::Closed, peer(i)), Verdict::Report);
        }
        let due = t0 + WINDOW;
        assert_eq!(
            r.note(t0, &Error::Closed, peer(7)),
            Verdict::Counted(Some(due))
        );
        for _ in 0..99 {
            assert_eq!(
                r.note(t0, &Error::Shutdown, peer(8)),
                Verdict::Counted(None)
            );
        }
        assert_eq!(r.summary(t0 + WINDOW / 2), None, "not due yet");
        let Some(Error::UnauthenticatedFailures {
            count,
            last,
            last_peer,
        }) = r.summary(due)
        else {
            panic!("a summary is due");
        };
        assert_eq!((count, *last, last_peer), (100, Error::Shutdown, peer(8)));
        assert_eq!(r.summary(due), None, "one summary for them");
        // Right after a summary, failures are counted for the next one, a
        // whole window later.
        assert_eq!(
            r.note(due, &Error::Closed, peer(9)),
            Verdict::Counted(Some(due + WINDOW))
        );
        // A quiet window later, failures are reported one by one again.
        let later = due + 3 * WINDOW;
        assert!(r.summary(later).is_some());
        assert_eq!(
            r.note(later + WINDOW, &Error::Closed, peer(1)),
            Verdict::Report
        );
    }

    #[test]
    fn zero_per_second_gives_summaries_only() {
        let t0 = Instant::now();
        let mut r = FailureReports::new(0);
        assert_eq!(
            r.note(t0, &Error::Closed, peer(1)),
            Verdict::Counted(Some(t0 + WINDOW))
        );
        let Some(Error::UnauthenticatedFailures { count: 1, .. }) = r.summary(t0 + WINDOW) else {
            panic!("summary of one");
        };
    }

    #[test]
    fn a_summary_that_found_no_room_is_counted_into_the_next() {
        let t0 = Instant::now();
        let mut r = FailureReports::new(0);
        r.note(t0, &Error::Closed, peer(1));
        r.note(t0, &Error::Closed, peer(2));
        let summary = r.summary(t0 + WINDOW).unwrap();
        let now = t0 + WINDOW;
        assert!(matches!(
            r.count(2, summary, None, now),
            Verdict::Counted(Some(_))
        ));
        r.note(now, &Error::Shutdown, peer(3));
        let Some(Error::UnauthenticatedFailures {
            count, last_peer, ..
        }) = r.summary(now + WINDOW)
        else {
            panic!("a summary is due");
        };
        assert_eq!((count, last_peer), (3, peer(3)));
    }
}
