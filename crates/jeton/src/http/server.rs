//! Serving the app over TCP with connection hygiene: how long a client may
//! take to send a request's headers, how long an idle keep-alive connection
//! stays open, and how many connections are served at once.
//!
//! `axum::serve` has none of these, so connections are served here with
//! hyper's HTTP/1.1 server: each gets its client address (`ConnectInfo`, which
//! `ClientIpLayer` reads) and is drained on shutdown. The two timeouts live
//! in [`Deadlines`], a wrapper around the socket, because hyper's own header
//! timer also runs while a connection is idle, which would make the idle
//! timeout and the header timeout one setting.
//!
//! Idle connections give way to new ones: when every slot is taken and a
//! new connection waits for one, every idle keep-alive connection (between
//! a response and the next request's first byte) is closed at once, and
//! one that turns idle while a connection waits closes as soon as its
//! response is out. (A new connection that has sent nothing yet is not
//! closed: its request may be on its way; the header timeout bounds it.) Reopening a connection costs a client a round trip; without this, a
//! few thousand idle connections kept open by anyone would hold every slot
//! for a whole keep-alive timeout each.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{Semaphore, watch},
    time::{Instant, Sleep},
};
use tower::ServiceExt;

/// Connection limits; `docs/api-decisions.md` says why these defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has to send a request's headers, from the accepted
    /// connection or the first byte of a later request.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may sit idle between a response and
    /// the next request, while no new connection waits for a slot.
    pub keep_alive_timeout: Duration,
    /// Connections served at once; more wait in the listen queue until one
    /// closes (idle ones close for them).
    pub max_connections: usize,
}

/// Default of [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
        }
    }
}

/// What the accept loop tells the open connections.
#[derive(Debug, Clone, Copy, Default)]
struct Signal {
    /// Stop: idle connections close now, busy ones after their response.
    shutting_down: bool,
    /// Moves each time a new connection finds every slot taken: idle
    /// connections close.
    pressure: u64,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for the open connections' requests to finish (idle
/// connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (signals, _) = watch::channel(Signal::default());
    // Set while a new connection waits for a slot: connections that turn
    // idle meanwhile close at once rather than after the keep-alive timeout.
    let waiting = Arc::new(AtomicBool::new(false));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                waiting.store(true, Ordering::SeqCst);
                signals.send_modify(|signal| signal.pressure += 1);
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                };
                waiting.store(false, Ordering::SeqCst);
                slot
            }
        };
        let app = app.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let deadlines = Deadlines::new(stream, limits, Arc::clone(&waiting));
        let idle = Arc::clone(&deadlines.idle);
        let connection = http1::Builder::new().serve_connection(TokioIo::new(deadlines), service);
        let mut signals = signals.subscribe();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = loop {
                tokio::select! {
                    // The connection first: bytes that arrived make it busy.
                    biased;
                    result = connection.as_mut() => break result,
                    changed = signals.changed() => {
                        let signal = *signals.borrow_and_update();
                        if changed.is_err() || signal.shutting_down || idle.load(Ordering::SeqCst) {
                            // hyper closes an idle connection at once, and a
                            // busy one once its response is out.
                            connection.as_mut().graceful_shutdown();
                            break connection.await;
                        }
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    signals.send_modify(|signal| signal.shutting_down = true);
    // Every connection holds a slot until it closes: all of them back means
    // all are closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// A failed `accept`: one connection's trouble (it was reset before we took
/// it) is skipped; running out of file descriptors or memory is waited out a
/// little, rather than spinning.
async fn accept_failed(error: &io::Error) {
    use io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Where a connection stands, as its bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers: the header timer runs.
    Head,
    /// The headers are in: the request's own timeout governs the rest.
    Busy,
    /// A response went out: the idle timer runs until the next byte.
    Idle,
}

/// A socket that fails a read with `TimedOut` once its deadline passes
/// while it waits for bytes: the headers of a request within the header
/// timeout (however slowly they trickle in), the next request within the
/// keep-alive timeout. hyper then closes the connection.
///
/// The end of the headers is the first empty line (CRLF or a bare LF) after
/// some content: blank lines before a request, which the parser skips, do
/// not count. A read only moves the phase on and a write (a response) makes
/// the connection idle, so a request's body and the handler's work are
/// never cut short here: the request timeout covers them.
struct Deadlines<S> {
    inner: S,
    limits: ConnectionLimits,
    phase: Phase,
    /// Whether the connection is idle between a response and the next
    /// request's first byte, for the accept loop to close it under
    /// pressure.
    idle: Arc<AtomicBool>,
    /// Whether a new connection waits for a slot (shared by all).
    waiting: Arc<AtomicBool>,
    /// Bytes of the current head seen so far: any content yet, and whether
    /// the last one ended a line (`\r` aside).
    content: bool,
    at_line_start: bool,
    timer: Pin<Box<Sleep>>,
}

impl<S> Deadlines<S> {
    fn new(inner: S, limits: ConnectionLimits, waiting: Arc<AtomicBool>) -> Deadlines<S> {
        Deadlines {
            inner,
            limits,
            phase: Phase::Head,
            idle: Arc::new(AtomicBool::new(false)),
            waiting,
            content: false,
            at_line_start: false,
            timer: Box::pin(tokio::time::sleep(limits.header_read_timeout)),
        }
    }

    fn read(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.idle.store(false, Ordering::SeqCst);
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            self.content = false;
            self.at_line_start = false;
            let deadline = Instant::now() + self.limits.header_read_timeout;
            self.timer.as_mut().reset(deadline);
        }
        if self.phase != Phase::Head {
            return;
        }
        for &byte in bytes {
            match byte {
                b'\n' if self.content && self.at_line_start => {
                    self.phase = Phase::Busy;
                    return;
                }
                b'\n' => self.at_line_start = true,
                b'\r' => {}
                _ => {
                    self.content = true;
                    self.at_line_start = false;
                }
            }
        }
    }

    /// A response (or part of one) went out. The timer is polled here, so
    /// that it wakes the connection's task even if hyper's last read was
    /// polled while the connection was busy and so did not register it.
    /// While a new connection waits for a slot, the keep-alive timeout is
    /// zero: the connection closes as soon as it is idle.
    fn wrote(&mut self, cx: &mut Context<'_>) {
        self.phase = Phase::Idle;
        self.idle.store(true, Ordering::SeqCst);
        let keep_alive = if self.waiting.load(Ordering::SeqCst) {
            Duration::ZERO
        } else {
            self.limits.keep_alive_timeout
        };
        let deadline = Instant::now() + keep_alive;
        self.timer.as_mut().reset(deadline);
        let _ = self.timer.as_mut().poll(cx);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadlines<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending
                if this.phase != Phase::Busy && this.timer.as_mut().poll(cx).is_ready() =>
            {
                let what = match this.phase {
                    Phase::Head => "the request's headers took too long",
                    _ => "the connection was idle too long",
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlines<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.wrote(cx);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.wrote(cx);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(chunks: &[&[u8]]) -> Phase {
        let waiting = Arc::new(AtomicBool::new(false));
        let mut deadlines = Deadlines::new((), ConnectionLimits::default(), waiting);
        for chunk in chunks {
            deadlines.read(chunk);
        }
        deadlines.phase
    }

    #[tokio::test]
    async fn the_head_ends_at_the_first_empty_line_after_content() {
        assert_eq!(phases(&[b"GET / HTTP/1.1\r\nHost: x\r\n"]), Phase::Head);
        assert_eq!(phases(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]), Phase::Busy);
        assert_eq!(phases(&[b"GET / HTTP/1.1\nHost: x\n\n"]), Phase::Busy);
        assert_eq!(
            phases(&[b"GET / HTTP/1.1\r\nHost: x\r", b"\n\r", b"\n"]),
            Phase::Busy
        );
        // Blank lines before the request are not the end of its head.
        assert_eq!(phases(&[b"\r\n\r\n\r\nGET / HTTP/1.1\r\n"]), Phase::Head);
    }
}
