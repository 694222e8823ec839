//! Each fault of the proxy against a local echo (or sink) server on
//! 127.0.0.1:0. Timings use real time with margins wide enough for a busy
//! 2-core machine; bounds are one-sided where only one side can be promised.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const STEP: Duration = Duration::from_secs(5);

/// An echo server: every byte read is written back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// What a sink server saw: bytes received, connections that ended.
#[derive(Default)]
struct Sink {
    received: AtomicU64,
    closed: AtomicU64,
}

/// A server that only counts what it receives and when a connection ends.
async fn sink_server() -> (SocketAddr, Arc<Sink>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = Arc::new(Sink::default());
    let seen = sink.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    seen.received.fetch_add(n as u64, Ordering::SeqCst);
                }
                seen.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, sink)
}

/// Sends `payload` and reads the same number of bytes back.
async fn round_trip(stream: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    stream.write_all(payload).await.unwrap();
    let mut back = vec![0; payload.len()];
    tokio::time::timeout(STEP, stream.read_exact(&mut back))
        .await
        .expect("echo within the step")
        .unwrap();
    back
}

/// What the next read on `stream` yields: `Ok(0)` for an orderly close,
/// the error for a reset, within [`STEP`].
async fn next_read(stream: &mut TcpStream) -> io::Result<usize> {
    let mut buf = [0u8; 64];
    tokio::time::timeout(STEP, stream.read(&mut buf))
        .await
        .expect("the connection ends within the step")
}

#[tokio::test]
async fn a_clean_link_forwards_both_ways_and_counts_the_bytes() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&mut c, &payload).await, payload);
    let counters = proxy.counters();
    assert_eq!(counters.bytes_up, 100_000);
    assert_eq!(counters.bytes_down, 100_000);
    assert_eq!(counters.connections, 1);
}

#[tokio::test]
async fn added_latency_delays_each_direction() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut c, b"warm").await;
    proxy.set_latency(Duration::from_millis(150), Duration::from_millis(100));
    let t = Instant::now();
    round_trip(&mut c, b"ping").await;
    let rtt = t.elapsed();
    assert!(rtt >= Duration::from_millis(250), "round trip took {rtt:?}");
    assert!(
        rtt < Duration::from_millis(1_500),
        "round trip took {rtt:?}"
    );
}

#[tokio::test]
async fn a_bandwidth_limit_caps_the_throughput() {
    let (target, sink) = sink_server().await;
    let proxy = FaultProxy::start(target).await.unwrap();
    proxy.set_bandwidth(Some(100_000), None);
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    let t = Instant::now();
    c.write_all(&vec![7u8; 50_000]).await.unwrap();
    while sink.received.load(Ordering::SeqCst) < 50_000 {
        assert!(t.elapsed() < STEP, "the sink never got the bytes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // 50 kB at 100 kB/s, less the bucket's 50 ms head start.
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(420),
        "50 kB took only {took:?}"
    );
    assert!(took < Duration::from_secs(3), "50 kB took {took:?}");
}

#[tokio::test]
async fn a_stall_forwards_nothing_until_it_is_lifted() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut c, b"before").await;
    proxy.set_stalled(true);
    c.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 4];
    let early = tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut buf)).await;
    assert!(early.is_err(), "a stalled link delivered {buf:?}");
    // A connection opened during the stall is accepted but not dialled.
    let mut late = TcpStream::connect(proxy.addr()).await.unwrap();
    late.write_all(b"late").await.unwrap();
    proxy.heal();
    tokio::time::timeout(STEP, c.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"held");
    tokio::time::timeout(STEP, late.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"late");
}

#[tokio::test]
async fn a_cut_closes_both_sides_of_every_open_connection() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut a, b"a").await;
    round_trip(&mut b, b"b").await;
    assert_eq!(proxy.cut(), 2);
    assert_eq!(next_read(&mut a).await.unwrap(), 0, "an orderly close");
    assert_eq!(next_read(&mut b).await.unwrap(), 0, "an orderly close");
    assert_eq!(proxy.counters().cuts, 2);
    // The link itself still works.
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut c, b"again").await, b"again");
}

#[tokio::test]
async fn a_reset_aborts_the_connection_with_rst() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut c, b"x").await;
    assert_eq!(proxy.reset(), 1);
    let err = next_read(&mut c).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(proxy.counters().resets, 1);
}

#[tokio::test]
async fn a_refusing_link_resets_new_connections_and_spares_open_ones() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut open, b"open").await;
    proxy.set_refusing(true);
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    let _ = refused.write_all(b"hello").await;
    let err = next_read(&mut refused).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(proxy.counters().refused, 1);
    assert_eq!(round_trip(&mut open, b"still").await, b"still");
    proxy.heal();
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut after, b"after").await, b"after");
}

#[tokio::test]
async fn a_cut_mid_stream_forwards_exactly_the_bytes_before_the_mark() {
    let (target, sink) = sink_server().await;
    let proxy = FaultProxy::start(target).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    c.write_all(&[1u8; 1_000]).await.unwrap();
    let t = Instant::now();
    while sink.received.load(Ordering::SeqCst) < 1_000 {
        assert!(t.elapsed() < STEP);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut_after(Direction::Up, 10_000);
    // The write may fail part-way once the proxy closes: that is the cut.
    let _ = c.write_all(&vec![2u8; 100_000]).await;
    let ended = next_read(&mut c).await;
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
    // Let the sink drain what reached it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.received.load(Ordering::SeqCst), 11_000);
    assert_eq!(
        sink.closed.load(Ordering::SeqCst),
        1,
        "the parent side is closed too"
    );
    assert_eq!(proxy.counters().bytes_up, 11_000);
    assert_eq!(proxy.counters().cuts, 1);
}

#[tokio::test]
async fn a_dead_target_resets_the_client() {
    // Bound and dropped: nothing listens there now.
    let gone = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(gone).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    let err = next_read(&mut c).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
}
