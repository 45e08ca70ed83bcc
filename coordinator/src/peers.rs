//! Connections per peer: the coordinator keeps at most
//! [`CoordinatorConfig::max_connections_per_peer`](crate::CoordinatorConfig)
//! connections open from one IP address. A connection past the limit is
//! closed as soon as it is accepted, before a byte is read, so a peer
//! holding idle connections (which HTTP/2 keeps until its preface comes)
//! cannot take every socket the process may open.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Open connections per peer address.
#[derive(Debug, Default)]
struct Open(Mutex<HashMap<IpAddr, usize>>);

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection counted against its peer until it is dropped.
#[derive(Debug)]
pub struct PeerConn {
    stream: TcpStream,
    peer: Option<IpAddr>,
    open: Arc<Open>,
}

impl Drop for PeerConn {
    fn drop(&mut self) {
        let Some(peer) = self.peer else { return };
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                open.remove(&peer);
            }
        }
    }
}

/// The listener's connections, with TCP_NODELAY (Nagle's algorithm stalls
/// small writes for milliseconds; the server builder's `tcp_nodelay` does
/// not reach sockets handed in) and at most `max` open per peer (0: no
/// limit). Refusals are logged once per peer until it is back under the
/// limit.
pub fn accept(
    listener: TcpListener,
    max: usize,
) -> impl Stream<Item = io::Result<PeerConn>> + Send + 'static {
    let open = Arc::new(Open::default());
    let warned = Arc::new(Mutex::new(std::collections::HashSet::new()));
    TcpListenerStream::new(listener).filter_map(move |conn| {
        let (open, warned) = (open.clone(), warned.clone());
        async move {
            let stream = match conn {
                Ok(s) => s,
                Err(e) => return Some(Err(e)),
            };
            let _ = stream.set_nodelay(true);
            let peer = stream.peer_addr().ok().map(|a| a.ip());
            if let Some(ip) = peer {
                let mut counts = open.lock();
                let n = counts.entry(ip).or_default();
                let mut warned = warned.lock().unwrap_or_else(|p| p.into_inner());
                if max > 0 && *n >= max {
                    if warned.insert(ip) {
                        tracing::warn!(
                            peer = %ip,
                            limit = max,
                            "connection refused: the peer has as many open as \
                             --max-connections-per-peer allows"
                        );
                    }
                    return None;
                }
                *n += 1;
                warned.remove(&ip);
            }
            Some(Ok(PeerConn { stream, peer, open }))
        }
    })
}

impl Connected for PeerConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for PeerConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// Past the limit a connection is closed at once (the peer reads EOF);
    /// once one of the peer's connections goes, a new one is served.
    #[tokio::test]
    async fn a_peer_past_its_limit_is_closed_until_one_of_its_connections_goes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepted = Box::pin(accept(listener, 2));
        let (c1, c2) = (
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        );
        let s1 = accepted.next().await.unwrap().unwrap();
        let _s2 = accepted.next().await.unwrap().unwrap();
        // The third is accepted by the kernel, then closed by us: pulling
        // the stream for it yields nothing until the fourth comes.
        let mut c3 = TcpStream::connect(addr).await.unwrap();
        let next = tokio::spawn(async move {
            let s = accepted.next().await.unwrap().unwrap();
            (s, accepted)
        });
        let mut buf = [0u8; 1];
        let eof = tokio::time::timeout(Duration::from_secs(10), c3.read(&mut buf)).await;
        assert!(matches!(eof, Ok(Ok(0)) | Ok(Err(_))), "{eof:?}");
        drop((s1, c1));
        let _c4 = TcpStream::connect(addr).await.unwrap();
        let (s4, _accepted) = tokio::time::timeout(Duration::from_secs(10), next)
            .await
            .expect("served once under the limit")
            .unwrap();
        assert_eq!(s4.peer.map(|p| p.is_loopback()), Some(true));
        drop(c2);
    }
}
