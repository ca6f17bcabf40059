//! The TCP echo: greets each connection with the pod's identity, echoes every byte back, and
//! closes its side once the client has closed its own.

use std::sync::Arc;

use tokio::{
    io::{AsyncWriteExt, copy},
    net::{TcpListener, TcpStream},
};

use super::{Workload, server::next_connection};

/// Serves the TCP echo on `listener` until the process ends.
pub async fn serve_tcp_echo(listener: TcpListener, workload: Workload) {
    let greeting: Arc<str> = format!("pod={} version={}\n", workload.pod, workload.version).into();
    loop {
        let (stream, _) = next_connection(&listener).await;
        tokio::spawn(echo(stream, greeting.clone()));
    }
}

/// Greets, echoes until the client half-closes, then half-closes too.
async fn echo(mut stream: TcpStream, greeting: Arc<str>) -> std::io::Result<()> {
    stream.write_all(greeting.as_bytes()).await?;
    let (mut from_client, mut to_client) = stream.split();
    copy(&mut from_client, &mut to_client).await?;
    to_client.shutdown().await
}
