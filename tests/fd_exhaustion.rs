mod util;

// Resource exhaustion: when accept fails for lack of file descriptors, the
// server reports an Error event, backs off instead of spinning, and recovers
// once descriptors are free again.
//
// This file is its own test binary with a single test, because it lowers
// the process's RLIMIT_NOFILE soft limit: no other test may run beside it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tablenet::{Error, EventKind, Network, ObjectId, Source, Value, table};

/// Lowers the soft RLIMIT_NOFILE; restores the previous limits when dropped
/// (also when the test panics).
struct NofileLimit {
    saved: libc::rlimit,
}

impl NofileLimit {
    fn get() -> libc::rlimit {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit through a valid pointer.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
        limit
    }

    fn set(limit: &libc::rlimit) {
        // SAFETY: setrlimit reads one rlimit through a valid pointer.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) };
        assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
    }

    fn lower(soft: u64) -> NofileLimit {
        let saved = NofileLimit::get();
        let lowered = libc::rlimit {
            rlim_cur: soft.min(saved.rlim_cur),
            rlim_max: saved.rlim_max,
        };
        NofileLimit::set(&lowered);
        NofileLimit { saved }
    }
}

impl Drop for NofileLimit {
    fn drop(&mut self) {
        // SAFETY: as in `set`; no panic in drop.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.saved) };
    }
}

/// CPU time (user + system) the whole process has used. getrusage needs no
/// file descriptor, unlike reading /proc while none are left.
fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage through a valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn is_emfile(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMFILE)
}

/// True for the server's "accept failed: out of descriptors" Error.
fn is_accept_error(kind: &EventKind, server: ObjectId) -> bool {
    matches!(
        kind,
        EventKind::Error { object, error: Error::Io { operation: "accept", message, .. }, .. }
            if *object == server && message.contains("os error 24")
    )
}

#[test]
fn accept_out_of_descriptors_reports_backs_off_and_recovers() {
    let start = Instant::now();
    let snet = Network::new();
    let server = snet.server("127.0.0.1", 0, None).unwrap();
    let server_object = ObjectId::Server(server.id());
    let cnet = Network::new();
    let (good, good_conn) = util::connect(&snet, &cnet, &server);
    let ping = |n: i64| -> Value { table! { "ping" => n }.into() };

    // Lower the limit a little above what is open now, then take every
    // descriptor left but one.
    let original = NofileLimit::get().rlim_cur;
    let open = open_descriptors();
    let soft = (open as u64 + 16).max(64);
    let limit = NofileLimit::lower(soft);
    let mut hogs: Vec<File> = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hogs.push(f),
            Err(e) if is_emfile(&e) => break,
            Err(e) => panic!("open /dev/null: {e}"),
        }
        assert!(hogs.len() < 10_000, "the lowered limit had no effect");
    }
    let hogged = hogs.len();
    hogs.pop();
    // The connecting peer takes the last descriptor; the kernel completes
    // its connection into the server's backlog, where accept fails.
    let mut peer = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    assert!(
        File::open("/dev/null").is_err_and(|e| is_emfile(&e)),
        "a descriptor is still free"
    );

    let (ev, others) = util::wait_for(&snet, |e| is_accept_error(&e.kind, server_object));
    assert!(others.is_empty(), "before the accept error: {others:?}");
    let EventKind::Error { error, .. } = &ev.kind else {
        unreachable!()
    };
    println!("soft limit {soft} ({open} open before, {hogged} hogged): {error}");

    // While the connection waits in the backlog: no busy loop. The IO
    // thread retries after its back-off, reporting each failure once.
    const WINDOW: Duration = Duration::from_millis(500);
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let mut errors = 0usize;
    while t0.elapsed() < WINDOW {
        for ev in snet.wait_events(WINDOW.saturating_sub(t0.elapsed())) {
            assert!(is_accept_error(&ev.kind, server_object), "{ev:?}");
            errors += 1;
        }
    }
    let wall = t0.elapsed();
    let cpu = process_cpu() - cpu0;
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    println!(
        "out of descriptors for {wall:?}: process CPU {cpu:?} ({:.1}% of one core), {errors} accept errors",
        share * 100.0
    );
    assert!(
        share < 0.3,
        "the process used {:.0}% of a core while accept kept failing: a busy loop",
        share * 100.0
    );
    assert!(
        (2..=10).contains(&errors),
        "{errors} accept errors in {wall:?}: expected one per 100 ms back-off"
    );

    // Free the descriptors: the waiting peer is accepted and served.
    drop(hogs);
    let freed = Instant::now();
    peer.set_read_timeout(Some(util::DEADLINE)).unwrap();
    let mut preamble = [0u8; 8];
    peer.read_exact(&mut preamble).unwrap();
    assert_eq!(&preamble, b"TBLN\x02\x00\x00\x00");
    let accepted_after = freed.elapsed();
    peer.write_all(b"TBLN\x02\x00\x00\x00").unwrap();
    let (ev, others) = util::wait_for(&snet, |e| matches!(e.kind, EventKind::Connect { .. }));
    for other in others {
        assert!(is_accept_error(&other.kind, server_object), "{other:?}");
    }
    let EventKind::Connect {
        connection: peer_conn,
        ..
    } = ev.kind
    else {
        unreachable!()
    };

    // A new client connects and exchanges a message both ways.
    let (client, conn) = util::connect(&snet, &cnet, &server);
    client.send(&ping(1)).unwrap();
    let (from, packet) = util::receive(&snet);
    assert_eq!(from, Source::Connection(conn.id()));
    assert_eq!(packet, ping(1));
    conn.send(&ping(2)).unwrap();
    let (from, packet) = util::receive(&cnet);
    assert_eq!(from, Source::Client(client.id()));
    assert_eq!(packet, ping(2));
    // And the connection from before the exhaustion still works.
    good.send(&ping(3)).unwrap();
    let (from, packet) = util::receive(&snet);
    assert_eq!(from, Source::Connection(good_conn.id()));
    assert_eq!(packet, ping(3));
    assert_eq!(server.connection_count(), 3);
    println!(
        "recovered: the waiting peer was accepted {accepted_after:?} after descriptors were freed"
    );

    drop(limit);
    assert_eq!(
        NofileLimit::get().rlim_cur,
        original,
        "the limit is restored"
    );
    drop((peer, peer_conn, client, conn, good, good_conn));
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
    let took = start.elapsed();
    println!("fd exhaustion test took {took:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}
