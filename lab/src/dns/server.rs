//! The DNS server: the current records behind an atomic swap, served over UDP and TCP.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, UdpSocket},
    task::JoinSet,
    time::timeout,
};

use super::{
    records::DnsRecords,
    wire::{Transport, answer_packet},
};

/// How long a TCP connection may wait for its next query, or take to send or receive one.
pub(crate) const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP connections served at once; more are closed as they arrive.
const MAX_TCP_CONNECTIONS: usize = 256;

/// Pause after a failed `accept` (say, out of file descriptors) before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The largest UDP datagram.
const MAX_DATAGRAM: usize = 65_535;

/// The cluster DNS server: cheap to clone, every clone serves and updates the same records.
#[derive(Debug, Clone)]
pub struct ClusterDns {
    records: Arc<ArcSwap<DnsRecords>>,
}

impl ClusterDns {
    /// A server answering from `records` until the next [`ClusterDns::update`].
    pub fn new(records: DnsRecords) -> ClusterDns {
        ClusterDns {
            records: Arc::new(ArcSwap::from_pointee(records)),
        }
    }

    /// Replaces the records; queries that arrive afterwards see only the new ones.
    pub fn update(&self, records: DnsRecords) {
        self.records.store(Arc::new(records));
    }

    /// Serves UDP on `socket` and TCP on `listener` until dropped.
    pub async fn serve(self, socket: UdpSocket, listener: TcpListener) {
        tokio::join!(self.clone().serve_udp(socket), self.serve_tcp(listener));
    }

    /// Serves queries arriving on `socket` until dropped.
    pub async fn serve_udp(self, socket: UdpSocket) {
        let mut buffer = vec![0; MAX_DATAGRAM];
        loop {
            let (length, peer) = match socket.recv_from(&mut buffer).await {
                Ok(received) => received,
                Err(error) => {
                    tracing::warn!(%error, "DNS: receiving a UDP query failed");
                    continue;
                }
            };
            let response = answer_packet(&self.records.load(), &buffer[..length], Transport::Udp);
            if let Some(response) = response
                && let Err(error) = socket.send_to(&response, peer).await
            {
                tracing::debug!(%error, %peer, "DNS: sending a UDP response failed");
            }
        }
    }

    /// Accepts connections on `listener` and serves each until it closes or idles; dropping
    /// this future closes them all.
    pub async fn serve_tcp(self, listener: TcpListener) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) if connections.len() < MAX_TCP_CONNECTIONS => {
                        connections.spawn(serve_connection(self.records.clone(), stream, peer));
                    }
                    Ok((_, peer)) => {
                        tracing::warn!(%peer, "DNS: {MAX_TCP_CONNECTIONS} TCP connections open, closing a new one");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "DNS: accepting a TCP connection failed");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    }
                },
                Some(finished) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = finished {
                        tracing::error!(%error, "DNS: a TCP connection task failed");
                    }
                }
            }
        }
    }
}

/// Answers the length-prefixed queries on one connection, in order, until the client closes,
/// sends something unanswerable, or stays idle for [`TCP_IDLE_TIMEOUT`].
pub(crate) async fn serve_connection<S>(
    records: Arc<ArcSwap<DnsRecords>>,
    mut stream: S,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let query = match timeout(TCP_IDLE_TIMEOUT, read_frame(&mut stream)).await {
            Ok(Ok(Some(query))) => query,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::debug!(%error, %peer, "DNS: reading a TCP query failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "DNS: closing an idle TCP connection");
                return;
            }
        };
        let Some(response) = answer_packet(&records.load(), &query, Transport::Tcp) else {
            return;
        };
        let length = u16::try_from(response.len()).unwrap_or(u16::MAX);
        let mut frame = Vec::with_capacity(response.len() + 2);
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(&response);
        match timeout(TCP_IDLE_TIMEOUT, stream.write_all(&frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, %peer, "DNS: sending a TCP response failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "DNS: TCP client stopped reading, closing");
                return;
            }
        }
    }
}

/// The next length-prefixed message, or `None` when the client closed between messages.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0; 2];
    match stream.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let mut message = vec![0; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}
