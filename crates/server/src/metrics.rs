//! The HTTP port (`GET /metrics`, `GET /health`): accepts, reads a request head and writes back
//! what `replica::metrics` answers for the node's latest view. Scraping never slows the node.

use std::sync::Arc;
use std::time::Duration;

use replica::metrics::{Instruments, Links, MAX_REQUEST_HEAD};
use replica::session::NodeView;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A request head must arrive within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the port reads to answer: the node's view, the shell's instruments, the peer links.
#[derive(Clone)]
pub struct Sources {
    pub view: watch::Receiver<NodeView>,
    pub instruments: Arc<Instruments>,
    pub transport: transport::Transport,
}

/// Serves until the process ends. With `tls`, over HTTPS only.
pub async fn serve(listener: TcpListener, sources: Sources, tls: Option<Arc<crate::secrets::Secrets>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, say: wait instead of spinning on the error.
                tracing::warn!(%error, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (sources, tls) = (sources.clone(), tls.as_ref().and_then(|secrets| secrets.current().tls));
        tokio::spawn(async move {
            match tls {
                None => answer(stream, &sources).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream)).await {
                        answer(stream, &sources).await;
                    }
                }
            }
        });
    }
}

/// Reads one request and answers it.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, sources: &Sources) {
    let Ok(head) = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await else { return };
    let stats = sources.transport.stats();
    let links = Links {
        accepted: stats.inbound_accepted,
        refused: stats.inbound_rejected,
        failed: stats.inbound_errors,
        refused_full: stats.peers.iter().map(|(peer, peer_stats)| (peer.0, peer_stats.dropped_full)).collect(),
        frame_versions: stats.peers.iter().map(|(peer, peer_stats)| (peer.0, peer_stats.frame_version)).collect(),
    };
    let view = *sources.view.borrow();
    let response = replica::metrics::respond(head.as_deref(), &view, &sources.instruments, &links);
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// Reads until the request head is whole; None if it grows past `MAX_REQUEST_HEAD` (if the
/// connection ends first, what came is used).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    loop {
        if replica::metrics::head_complete(&head) {
            return Some(head);
        }
        if head.len() >= MAX_REQUEST_HEAD {
            return None;
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Some(head),
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defect: the head was taken from the first read alone, so a request split across two
    /// TCP segments got 404.
    #[tokio::test]
    async fn a_request_split_across_writes_is_read_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let client = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
            stream.write_all(b"GET /met").await.expect("write");
            stream.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream.write_all(b"rics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").await.expect("write");
        });
        let (mut stream, _) = listener.accept().await.expect("accept");
        let head = read_head(&mut stream).await.expect("a head within the limit");
        client.await.expect("client");
        assert!(head.starts_with(b"GET /metrics?x=1 HTTP/1.1\r\n"));
    }
}
