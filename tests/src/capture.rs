//! A loopback TCP proxy that records every byte it forwards, both ways, so
//! a test can scan what crossed a link (the privacy scan looks for NIKs and
//! phone numbers in it). It forwards as it reads — no fault, no delay.
//!
//! The accept loop and every connection's copy loops belong to the
//! [`CaptureProxy`]: dropping it (or [`CaptureProxy::stop`]) cancels them.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A running capture proxy: listens on `127.0.0.1:0`, dials `target`.
pub struct CaptureProxy {
    addr: SocketAddr,
    captured: Arc<Mutex<Vec<u8>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl CaptureProxy {
    /// Starts a proxy in front of `target`.
    ///
    /// # Errors
    /// Binding a loopback port failed.
    pub async fn start(target: SocketAddr) -> anyhow::Result<CaptureProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind the capture proxy")?;
        let addr = listener.local_addr().context("read the proxy address")?;
        let captured = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            target,
            captured.clone(),
            stop.clone(),
        ));
        Ok(CaptureProxy {
            addr,
            captured,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every byte forwarded so far, both directions, in arrival order per
    /// read (the two directions interleave by read, never mid-read).
    pub fn captured(&self) -> Vec<u8> {
        self.captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting and closes every forwarded connection.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for CaptureProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    captured: Arc<Mutex<Vec<u8>>>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let captured = captured.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = forward(client, target, captured) => {}
                    }
                });
            }
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// Copies both ways until either side closes; a refused dial just closes
/// the client (the child retries, as it would against a down parent).
async fn forward(client: TcpStream, target: SocketAddr, captured: Arc<Mutex<Vec<u8>>>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, captured.clone()),
        pump(server_read, client_write, captured),
    );
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    captured: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn forwards_both_ways_and_records_every_byte() {
        let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let target = echo.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(b"pong!").await.unwrap();
        });
        let proxy = CaptureProxy::start(target).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"ping!").await.unwrap();
        let mut reply = [0u8; 5];
        c.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"pong!");
        server.await.unwrap();
        let seen = proxy.captured();
        assert_eq!(seen.len(), 10);
        assert!(seen.starts_with(b"ping!"));
        assert!(seen.ends_with(b"pong!"));
        proxy.stop().await;
    }
}
