//! The fault proxy: a loopback TCP proxy that sits on one link of the
//! federation (a child's `[upstream] url` names the proxy, the proxy dials
//! the parent) and does to the bytes what a bad WAN link does to them.
//!
//! It works on TCP bytes only and never parses them, so it carries plain
//! HTTP/2 today and mutual TLS tomorrow alike.
//!
//! Faults, all settable while connections are open:
//! - **latency** per direction: each chunk read is delivered `latency` later
//!   (a delay line; reading goes on meanwhile, order is kept);
//! - **bandwidth** per direction: a token bucket in bytes per second;
//! - **stall** (blackhole): open connections forward nothing, new ones are
//!   accepted but not dialled through, until the stall is lifted — then the
//!   held bytes flow on, as after a routing flap shorter than TCP's timeout;
//! - **cut**: close both sides of every open connection now (FIN);
//! - **reset**: abort every open connection now (RST, `SO_LINGER` 0);
//! - **cut mid-stream**: cut every connection once exactly N more bytes
//!   have been forwarded in one direction (the middle of a batch);
//! - **refuse**: new connections are reset as soon as they are accepted.
//!
//! Design constraints:
//! - Listens on 127.0.0.1 only.
//! - Bytes held in the delay line are bounded ([`CHUNK_BYTES`] ×
//!   [`CHUNKS_QUEUED`] per direction), so a slow link pushes back on the
//!   sender as a real one does instead of swallowing a whole window.
//! - Every connection task is tracked and ends when the proxy is dropped.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest read from one side, and so the unit of the delay line.
pub const CHUNK_BYTES: usize = 8 * 1024;
/// Chunks one direction may hold between reading and writing.
pub const CHUNKS_QUEUED: usize = 8;
/// How long the proxy tries to dial the parent for a new connection.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Which way bytes travel on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client (the child site) to target (its parent).
    Up,
    /// Target back to the client.
    Down,
}

/// The standing faults of a link. `LinkFaults::default()` is a clean link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFaults {
    pub latency_up: Duration,
    pub latency_down: Duration,
    /// Bytes per second child → parent; `None` is unlimited.
    pub bandwidth_up: Option<u64>,
    /// Bytes per second parent → child; `None` is unlimited.
    pub bandwidth_down: Option<u64>,
    pub stalled: bool,
    pub refusing: bool,
}

impl LinkFaults {
    fn latency(&self, dir: Direction) -> Duration {
        match dir {
            Direction::Up => self.latency_up,
            Direction::Down => self.latency_down,
        }
    }

    fn bandwidth(&self, dir: Direction) -> Option<u64> {
        match dir {
            Direction::Up => self.bandwidth_up,
            Direction::Down => self.bandwidth_down,
        }
    }
}

/// What crossed the link so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Bytes forwarded child → parent.
    pub bytes_up: u64,
    /// Bytes forwarded parent → child.
    pub bytes_down: u64,
    /// Connections accepted and dialled through (or waiting on a stall).
    pub connections: u64,
    /// Connections reset on accept because the link was refusing.
    pub refused: u64,
    /// Connections closed by a cut (including cuts mid-stream).
    pub cuts: u64,
    /// Connections aborted by a reset.
    pub resets: u64,
}

/// How an open connection is told to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Open,
    Cut,
    Reset,
}

/// State shared by the accept loop, the connections and the handle.
#[derive(Debug)]
struct Link {
    target: SocketAddr,
    faults: watch::Sender<LinkFaults>,
    /// Each open connection's ending switch, by connection number.
    // std Mutex: held only to insert, remove or signal, never across an await.
    open: Mutex<HashMap<u64, watch::Sender<Ending>>>,
    next_conn: AtomicU64,
    /// An armed cut mid-stream: cut once the direction's byte counter
    /// reaches this absolute value.
    cut_at: Mutex<Option<(Direction, u64)>>,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    connections: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
    resets: AtomicU64,
    /// The last [`JOURNAL_ENTRIES`] connection events, for post-mortems.
    journal: Mutex<VecDeque<String>>,
    /// When the proxy started; journal times are relative to it.
    born: Instant,
}

/// Connection events a link remembers.
const JOURNAL_ENTRIES: usize = 200;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; the
    // proxy keeps working with it rather than poisoning every later call.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Link {
    fn note(&self, event: std::fmt::Arguments<'_>) {
        let line = format!(
            "{:>8.3}s up {} down {} {event}",
            self.born.elapsed().as_secs_f64(),
            self.bytes_up.load(Ordering::Relaxed),
            self.bytes_down.load(Ordering::Relaxed),
        );
        let mut journal = lock(&self.journal);
        if journal.len() == JOURNAL_ENTRIES {
            journal.pop_front();
        }
        journal.push_back(line);
    }

    fn bytes(&self, dir: Direction) -> &AtomicU64 {
        match dir {
            Direction::Up => &self.bytes_up,
            Direction::Down => &self.bytes_down,
        }
    }

    /// Signals every open connection to end; returns how many.
    fn end_all(&self, how: Ending) -> usize {
        let open = lock(&self.open);
        for switch in open.values() {
            switch.send_replace(how);
        }
        let counter = match how {
            Ending::Reset => &self.resets,
            _ => &self.cuts,
        };
        counter.fetch_add(open.len() as u64, Ordering::Relaxed);
        open.len()
    }

    /// How many of `wanted` bytes may go out in `dir` before an armed cut.
    fn allowance(&self, dir: Direction, wanted: usize) -> usize {
        match *lock(&self.cut_at) {
            Some((d, at)) if d == dir => {
                let sent = self.bytes(dir).load(Ordering::Relaxed);
                wanted.min(at.saturating_sub(sent) as usize)
            }
            _ => wanted,
        }
    }

    /// Counts `n` forwarded bytes; fires an armed cut whose mark they reach.
    /// Returns whether the connection was cut.
    fn forwarded(&self, dir: Direction, n: usize) -> bool {
        let total = self.bytes(dir).fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let fire = {
            let mut cut_at = lock(&self.cut_at);
            match *cut_at {
                Some((d, at)) if d == dir && total >= at => {
                    *cut_at = None;
                    true
                }
                _ => false,
            }
        };
        if fire {
            self.end_all(Ending::Cut);
        }
        fire
    }
}

/// A running proxy for one link. Dropping it closes the listener and every
/// connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    link: Arc<Link>,
    token: CancellationToken,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `target`.
    ///
    /// # Errors
    /// Binding 127.0.0.1:0 failed.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let link = Arc::new(Link {
            target,
            faults: watch::Sender::new(LinkFaults::default()),
            open: Mutex::default(),
            next_conn: AtomicU64::new(0),
            cut_at: Mutex::new(None),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            journal: Mutex::default(),
            born: Instant::now(),
        });
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            link.clone(),
            token.clone(),
            tracker.clone(),
        ));
        tracker.close();
        Ok(FaultProxy { addr, link, token })
    }

    /// Where children connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for an `[upstream] url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.link.target
    }

    pub fn faults(&self) -> LinkFaults {
        self.link.faults.borrow().clone()
    }

    /// Applies `change` to the standing faults.
    pub fn update(&self, change: impl FnOnce(&mut LinkFaults)) {
        self.link.faults.send_modify(change);
        self.link
            .note(format_args!("faults now {:?}", *self.link.faults.borrow()));
    }

    pub fn set_latency(&self, up: Duration, down: Duration) {
        self.update(|f| {
            f.latency_up = up;
            f.latency_down = down;
        });
    }

    /// Bytes per second in each direction; `None` is unlimited.
    pub fn set_bandwidth(&self, up: Option<u64>, down: Option<u64>) {
        self.update(|f| {
            f.bandwidth_up = up;
            f.bandwidth_down = down;
        });
    }

    pub fn set_stalled(&self, stalled: bool) {
        self.update(|f| f.stalled = stalled);
    }

    pub fn set_refusing(&self, refusing: bool) {
        self.update(|f| f.refusing = refusing);
    }

    /// Closes both sides of every open connection now; returns how many.
    pub fn cut(&self) -> usize {
        self.link.note(format_args!("cut"));
        self.link.end_all(Ending::Cut)
    }

    /// Aborts every open connection with a TCP reset now; returns how many.
    pub fn reset(&self) -> usize {
        self.link.note(format_args!("reset"));
        self.link.end_all(Ending::Reset)
    }

    /// Cuts every open connection once `bytes` more have been forwarded in
    /// `dir` (replacing an earlier arming). The cut falls exactly on that
    /// byte: nothing beyond it is forwarded.
    pub fn cut_after(&self, dir: Direction, bytes: u64) {
        let at = self.link.bytes(dir).load(Ordering::Relaxed) + bytes;
        *lock(&self.link.cut_at) = Some((dir, at));
        self.link
            .note(format_args!("cut armed at {at} bytes {dir:?}"));
    }

    /// Clears every standing fault and disarms a pending cut; open
    /// connections carry on (a stall releases what it held).
    pub fn heal(&self) {
        *lock(&self.link.cut_at) = None;
        self.link.faults.send_replace(LinkFaults::default());
        self.link.note(format_args!("healed"));
    }

    pub fn counters(&self) -> LinkCounters {
        let l = &self.link;
        LinkCounters {
            bytes_up: l.bytes_up.load(Ordering::Relaxed),
            bytes_down: l.bytes_down.load(Ordering::Relaxed),
            connections: l.connections.load(Ordering::Relaxed),
            refused: l.refused.load(Ordering::Relaxed),
            cuts: l.cuts.load(Ordering::Relaxed),
            resets: l.resets.load(Ordering::Relaxed),
        }
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        lock(&self.link.open).len()
    }

    /// The latest connection events (accepted, refused, dialled, ended;
    /// fault changes), oldest first, with seconds since the proxy started
    /// and the byte counters at that moment.
    pub fn journal(&self) -> Vec<String> {
        lock(&self.link.journal).iter().cloned().collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    link: Arc<Link>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let client = tokio::select! {
            _ = token.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => {
                    // EMFILE and friends: back off briefly instead of
                    // spinning; the child retries and the test goes on.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let refusing = link.faults.borrow().refusing;
        if refusing {
            abort(&client);
            link.refused.fetch_add(1, Ordering::Relaxed);
            link.note(format_args!("refused a connection"));
            continue;
        }
        link.connections.fetch_add(1, Ordering::Relaxed);
        let id = link.next_conn.fetch_add(1, Ordering::Relaxed);
        link.note(format_args!("#{id} accepted"));
        let (switch, ending) = watch::channel(Ending::Open);
        lock(&link.open).insert(id, switch);
        let link = link.clone();
        let token = token.clone();
        tracker.spawn(async move {
            let how = connection(id, client, &link, ending, &token).await;
            lock(&link.open).remove(&id);
            link.note(format_args!("#{id} ended: {how}"));
        });
    }
}

/// Makes the coming close of `stream` a reset (RST) instead of a FIN.
fn abort(stream: &TcpStream) {
    // Best effort: a socket that is already dead needs no reset.
    let _ = stream.set_zero_linger();
}

async fn ended(ending: &mut watch::Receiver<Ending>) -> Ending {
    match ending.wait_for(|e| *e != Ending::Open).await {
        Ok(e) => *e,
        // The switch is gone only when the proxy is shutting down.
        Err(_) => Ending::Cut,
    }
}

/// One proxied connection, from dialling the target to closing both sides;
/// returns how it ended, for the journal.
async fn connection(
    id: u64,
    mut client: TcpStream,
    link: &Link,
    mut ending: watch::Receiver<Ending>,
    token: &CancellationToken,
) -> &'static str {
    let _ = client.set_nodelay(true);
    let mut faults = link.faults.subscribe();
    let dial = async {
        // A stalled link forwards nothing, the connection attempt included.
        if faults.wait_for(|f| !f.stalled).await.is_err() {
            return None;
        }
        match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(link.target)).await {
            Ok(Ok(stream)) => Some(stream),
            _ => None,
        }
    };
    let dialled = tokio::select! {
        _ = token.cancelled() => return "proxy stopped before dialling",
        how = ended(&mut ending) => {
            if how == Ending::Reset {
                abort(&client);
                return "reset before dialling";
            }
            return "cut before dialling";
        }
        stream = dial => stream,
    };
    let Some(mut upstream) = dialled else {
        // The parent is down: the child sees its connection reset, as it
        // would if it had dialled the parent itself.
        abort(&client);
        return "dial failed, client reset";
    };
    let _ = upstream.set_nodelay(true);
    link.note(format_args!("#{id} dialled the target"));
    let how = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let both = async {
            tokio::try_join!(
                pump(client_read, upstream_write, Direction::Up, link),
                pump(upstream_read, client_write, Direction::Down, link),
            )
        };
        tokio::select! {
            _ = token.cancelled() => (Ending::Cut, "proxy stopped"),
            how = ended(&mut ending) => match how {
                Ending::Reset => (how, "reset by the nemesis"),
                _ => (how, "cut by the nemesis"),
            },
            done = both => match done {
                // Both sides closed in turn: a clean end.
                Ok(_) => (Ending::Cut, "closed by both sides"),
                // One side failed (a reset, a dead peer): pass it on.
                Err(_) => (Ending::Reset, "a side failed, both reset"),
            },
        }
    };
    if how.0 == Ending::Reset {
        abort(&client);
        abort(&upstream);
    }
    how.1
}

/// One chunk in the delay line; `data: None` is the sender's end of stream.
struct Chunk {
    due: Instant,
    data: Option<Vec<u8>>,
}

/// Forwards one direction: a reader that timestamps chunks into a bounded
/// delay line and a writer that releases them when due, at the allowed rate,
/// unless stalled. Ends after forwarding the sender's end of stream.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    dir: Direction,
    link: &Link,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(CHUNKS_QUEUED);
    let reader = async {
        let faults = link.faults.subscribe();
        loop {
            let mut buf = vec![0; CHUNK_BYTES];
            let n = from.read(&mut buf).await?;
            let due = Instant::now() + faults.borrow().latency(dir);
            let data = (n > 0).then(|| {
                buf.truncate(n);
                buf
            });
            let end = data.is_none();
            if tx.send(Chunk { due, data }).await.is_err() || end {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let writer = async {
        let mut faults = link.faults.subscribe();
        let mut bucket = TokenBucket::new();
        while let Some(chunk) = rx.recv().await {
            tokio::time::sleep_until(chunk.due).await;
            let Some(data) = chunk.data else {
                to.shutdown().await?;
                return Ok(());
            };
            let mut rest = data.as_slice();
            while !rest.is_empty() {
                if faults.wait_for(|f| !f.stalled).await.is_err() {
                    return Ok(());
                }
                let rate = faults.borrow().bandwidth(dir);
                let piece = rate.map_or(rest.len(), |r| piece_bytes(r).min(rest.len()));
                let n = link.allowance(dir, piece);
                if n > 0 {
                    if let Some(rate) = rate {
                        bucket.take(n, rate).await;
                    }
                    to.write_all(&rest[..n]).await?;
                    rest = &rest[n..];
                }
                if link.forwarded(dir, n) {
                    // Cut mid-stream: this connection is being closed; not
                    // one byte more may pass.
                    std::future::pending::<()>().await;
                }
            }
        }
        Ok(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

/// Bytes written at once under a rate limit: 20 ms worth, so the flow is
/// smooth rather than bursty, within sane bounds.
fn piece_bytes(rate: u64) -> usize {
    ((rate / 50) as usize).clamp(256, CHUNK_BYTES)
}

/// A token bucket holding at most 50 ms of traffic (a small router buffer).
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new() -> TokenBucket {
        TokenBucket {
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    async fn take(&mut self, n: usize, rate: u64) {
        let rate = rate.max(1) as f64;
        let capacity = (rate / 20.0).max(256.0);
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(capacity) - n as f64;
        self.last = now;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / rate)).await;
            self.tokens = 0.0;
            self.last = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests;
