//! The listener under the simulated tenant, with one extra power: a request
//! handler can cut its own connection so that the client gets a connection
//! error instead of an HTTP answer.
//!
//! Every accepted socket is wrapped in a [`ResettableStream`] whose
//! [`ConnectionHandle`] reaches handlers as axum's `ConnectInfo`. After
//! [`ConnectionHandle::reset`], the next read or write on the socket fails,
//! hyper drops the connection, and the socket is closed with `SO_LINGER` 0,
//! which makes the kernel send a TCP reset rather than an orderly close.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections can be reset from inside a handler.
pub(crate) struct ResettableListener {
    inner: TcpListener,
}

impl ResettableListener {
    pub(crate) fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

/// What a handler holds to cut the connection its request came on.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    peer: SocketAddr,
    reset: Arc<AtomicBool>,
}

impl ConnectionHandle {
    /// Makes the connection fail on its next read or write.
    pub(crate) fn reset(&self) {
        tracing::debug!(peer = %self.peer, "resetting a sandbox connection");
        self.reset.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, ResettableListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = ConnectionHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => return wrap(stream, peer),
                // Accept errors are per-connection (for example the peer
                // gave up during the handshake); the listener stays usable.
                Err(error) => tracing::debug!(%error, "sandbox accept failed"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnectionHandle {
            peer: self.inner.local_addr()?,
            reset: Arc::default(),
        })
    }
}

fn wrap(inner: TcpStream, peer: SocketAddr) -> (ResettableStream, ConnectionHandle) {
    let reset = Arc::new(AtomicBool::new(false));
    let handle = ConnectionHandle {
        peer,
        reset: reset.clone(),
    };
    (ResettableStream { inner, reset }, handle)
}

/// A TCP stream that starts failing once its handle asks for a reset.
pub(crate) struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    fn refuse_if_reset(&self) -> Option<io::Error> {
        if !self.reset.load(Ordering::SeqCst) {
            return None;
        }
        // Zero linger turns the close that follows into a TCP reset.
        let _ = self.inner.set_zero_linger();
        Some(io::ErrorKind::ConnectionReset.into())
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(error) = self.refuse_if_reset() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.refuse_if_reset() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.refuse_if_reset() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
