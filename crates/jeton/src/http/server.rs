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

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
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
    /// the next request.
    pub keep_alive_timeout: Duration,
    /// Connections served at once; more wait in the listen queue until one
    /// closes.
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
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
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
        let app = app.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let io = TokioIo::new(Deadlines::new(stream, limits));
        let connection = graceful.watch(http1::Builder::new().serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
    /// Bytes of the current head seen so far: any content yet, and whether
    /// the last one ended a line (`\r` aside).
    content: bool,
    at_line_start: bool,
    timer: Pin<Box<Sleep>>,
}

impl<S> Deadlines<S> {
    fn new(inner: S, limits: ConnectionLimits) -> Deadlines<S> {
        Deadlines {
            inner,
            limits,
            phase: Phase::Head,
            content: false,
            at_line_start: false,
            timer: Box::pin(tokio::time::sleep(limits.header_read_timeout)),
        }
    }

    fn read(&mut self, bytes: &[u8]) {
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
    fn wrote(&mut self, cx: &mut Context<'_>) {
        self.phase = Phase::Idle;
        let deadline = Instant::now() + self.limits.keep_alive_timeout;
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
        let mut deadlines = Deadlines::new((), ConnectionLimits::default());
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
