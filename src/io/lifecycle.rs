//! A link's life as the session decides it: open, control frames, local
//! close, and the end, each turned into the network's events.

use std::time::Instant;

use super::driver::Driver;
use crate::error::Error;
use crate::proto::control_frame;
use crate::proto::secure::Sealer;
use crate::proto::session::{Input, Session, SessionEvent};
use crate::proto::{FrameKind, OutFrame, SendQueue};
use crate::shared::{
    Abandoned, CloseReason, ConnectStatus, Connection, EventKind, Link, ObjectId, Role, SendError,
    State,
};

impl Driver {
    /// Acts on what the session asked for, then re-arms its timer. False
    /// when the link is gone.
    pub(super) fn on_session_events(&mut self, t: usize) -> bool {
        let mut write = false;
        loop {
            let Some(io) = self.links.get_mut(&t) else {
                return false;
            };
            let Some(event) = io.session.poll_event() else {
                // A handshake step (a Noise message, the key confirmation) or a Close to send.
                if write || io.session.has_transmit() {
                    self.flush(t);
                }
                break;
            };
            match event {
                SessionEvent::Established { sealer } => self.open(t, sealer),
                SessionEvent::SendControl(FrameKind::Close) => {
                    // Behind everything queued, whatever the queue's limit;
                    // nothing may be queued after it.
                    let mut out = io.link.lock();
                    if out.state == State::Open {
                        out.state = State::Closing;
                    }
                    let close = control_frame(FrameKind::Close);
                    if let Err(e) = out.queue.push(OutFrame::Borrowed(&close)) {
                        drop(out);
                        self.abort(t, e.into(), true);
                        return false;
                    }
                    write = true;
                }
                SessionEvent::SendControl(kind) => send_control(&io.link, kind),
                SessionEvent::ShutdownWrite => {
                    if io.stream.shutdown(std::net::Shutdown::Write).is_err() {
                        // The connection is gone already (the peer reset
                        // it): end as if its stream ended, as the session
                        // judges that (a peer's Close seen makes it clean).
                        io.session.end_of_stream();
                        let now = Instant::now();
                        while !matches!(io.session.poll_input(now), Input::Empty) {}
                    }
                }
                SessionEvent::Closed { reason, error } => {
                    if let Some(error) = error {
                        let object = object_of(&io.link);
                        let peer = Some(peer_of(&io.link));
                        match io.link.role {
                            // A stranger's failure: rate-limited, and kept
                            // from established connections' room.
                            Role::Accepted(server) if !io.session.is_established() => {
                                let listener = super::link_io::token(server.0);
                                self.report_failure(listener, object, error, peer);
                            }
                            _ => self.emit(EventKind::Error {
                                object,
                                error,
                                peer,
                            }),
                        }
                    }
                    if reason == CloseReason::ClosedByPeer {
                        // Best effort: the peer may still read what we had queued.
                        self.flush(t);
                    }
                    self.finish(t, reason);
                    return false;
                }
            }
        }
        self.arm(t);
        true
    }

    /// The handshake finished: the link is usable. `sealer` is set for
    /// encrypted links.
    fn open(&mut self, t: usize, sealer: Option<Sealer>) {
        let Some(io) = self.links.get(&t) else {
            return;
        };
        let link = io.link.clone();
        let server = io.server.clone();
        let attempt = io.attempt;
        let sealed = match sealer {
            Some(sealer) => link.lock().queue.start_sealing(sealer),
            None => Ok(()),
        };
        if let Err(e) = sealed {
            self.abort(t, e.into(), true);
            return;
        }
        let (closing, queued) = {
            let mut out = link.lock();
            let closing = out.state == State::Closing;
            if !closing {
                out.state = State::Open;
            }
            if matches!(link.role, Role::Client(_)) {
                let connected_to = link.candidate(attempt).unwrap_or(link.peer);
                out.peer_port = Some(connected_to.port());
                out.connected_to = Some(connected_to);
                out.connect = ConnectStatus::Connected(link.created.elapsed());
                link.connect_changed.notify_all();
            }
            (closing, !out.queue.is_empty())
        };
        match (link.role, server) {
            (Role::Accepted(server_id), Some(server)) => {
                server
                    .conns
                    .lock()
                    .insert(link.connection_id(), link.clone());
                self.emit(EventKind::Connect {
                    connection: Connection::new(link.clone()),
                    server: server_id,
                });
                self.spread(t);
            }
            (Role::Client(client), _) => self.emit(EventKind::Connected {
                client,
                result: Ok(()),
            }),
            (Role::Accepted(_), None) => {}
        }
        if closing && let Some(io) = self.links.get_mut(&t) {
            io.session.close(Instant::now(), queued);
        }
        // Send what was queued while connecting.
        self.flush(t);
    }

    /// Local close: flush what is queued (within the linger time), send our
    /// end of stream, wait for the peer's, then close.
    pub(super) fn close_locally(&mut self, t: usize) {
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        let queued = {
            let mut out = io.link.lock();
            out.state = State::Closing;
            !out.queue.is_empty()
        };
        io.session.close(Instant::now(), queued);
        if self.on_session_events(t) {
            self.flush(t);
        }
    }

    /// Ends a link because of `error` (`report`: emit an `Error` event too;
    /// false when one was already reported).
    pub(super) fn abort(&mut self, t: usize, error: Error, report: bool) {
        if let Some(io) = self.links.get_mut(&t) {
            io.session.abort(error, report);
            self.on_session_events(t);
        }
    }

    /// Removes a link and reports its end.
    pub(super) fn finish(&mut self, t: usize, reason: CloseReason) {
        let Some(io) = self.links.remove(&t) else {
            return;
        };
        self.account_buffer(io.charged, 0);
        io.deregister(self.poll.registry());
        let _ = io.stream.shutdown(std::net::Shutdown::Both);
        let link = io.link.clone();
        let after = self.net.config.handshake_timeout;
        let shutting_down = self.shutdown.is_some();
        let handshake_failure = |reason: &CloseReason| match reason {
            CloseReason::Error(e) => e.clone(),
            CloseReason::Timeout => Error::Timeout {
                operation: "handshake",
                after,
            },
            // Its network shut down (the last `Network` handle was dropped,
            // say): say so, not just "closed".
            _ if shutting_down => Error::Shutdown,
            _ => Error::Closed,
        };
        let was_open = io.session.is_established();
        let never_connected = {
            let mut out = link.lock();
            if self.shutdown.is_some() {
                self.record_abandoned(&link, &out.queue, &io.session, &reason);
            }
            out.state = State::Closed;
            link.notify_writable(&mut out);
            out.stream = None;
            out.queue.clear();
            out.control.clear();
            let pending = matches!(out.connect, ConnectStatus::Pending);
            if pending {
                out.connect = ConnectStatus::Failed(handshake_failure(&reason));
                link.connect_changed.notify_all();
            }
            pending
        };
        if let Some(server) = &io.server {
            server.conns.lock().remove(&link.connection_id());
            if io.counted {
                server.admission.lock().release(link.peer.ip());
            }
        }
        match link.role {
            Role::Client(client) if was_open => {
                self.emit(EventKind::ServerClose { client, reason })
            }
            Role::Client(client) if never_connected => {
                let error = handshake_failure(&reason);
                self.emit(EventKind::Connected {
                    client,
                    result: Err(error),
                });
            }
            Role::Accepted(server) if was_open => self.emit(EventKind::ClientClose {
                connection: link.connection_id(),
                server,
                reason,
            }),
            _ => {}
        }
    }
}

impl Driver {
    /// During shutdown: notes what a link that did not close cleanly leaves
    /// behind, for the shutdown's report.
    fn record_abandoned(
        &self,
        link: &Link,
        queue: &SendQueue,
        session: &Session,
        reason: &CloseReason,
    ) {
        let clean_reason = matches!(
            reason,
            CloseReason::ClosedLocally | CloseReason::ClosedByPeer
        );
        let closed_cleanly = !session.is_established() || session.is_write_shut();
        if clean_reason && queue.is_empty() && closed_cleanly {
            return;
        }
        let reason = if clean_reason {
            // Cut short by the shutdown's deadline.
            CloseReason::Timeout
        } else {
            reason.clone()
        };
        self.net.record_abandoned(Abandoned {
            object: object_of(link),
            frames: queue.unsent_frames(),
            bytes: queue.len(),
            reason,
        });
    }
}

/// Sends an empty control frame (sealed on encrypted links). A full send
/// queue skips it: that peer is not reading, and its silence will tell.
fn send_control(link: &Link, kind: FrameKind) {
    let _: Result<(), SendError> = link.send_frame(OutFrame::Borrowed(&control_frame(kind)), false);
}

/// The peer a link's events name: the accepted peer, or the address a
/// client connected to (else the first it tries).
pub(super) fn peer_of(link: &Link) -> std::net::SocketAddr {
    match link.role {
        Role::Accepted(_) => link.peer,
        Role::Client(_) => link.lock().connected_to.unwrap_or(link.peer),
    }
}

/// The object a link's events name.
pub(super) fn object_of(link: &Link) -> ObjectId {
    match link.role {
        Role::Accepted(_) => ObjectId::Connection(link.connection_id()),
        Role::Client(id) => ObjectId::Client(id),
    }
}
